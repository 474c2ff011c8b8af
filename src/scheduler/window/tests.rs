//! The windows' syntax, and where they open and close: across midnight,
//! chained, and across the daylight-saving changes of 2025 in Berlin and
//! New York (northern hemisphere) and Sydney (southern), with bounds in the
//! skipped hour and in the repeated one.

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&Utc)
}

fn windows(text: &str, zone: &str) -> Windows {
    let list = parse_windows(text).unwrap_or_else(|e| panic!("{e}"));
    Windows::new(&list, zone).unwrap_or_else(|e| panic!("{e}"))
}

/// The state at `now`, e.g. `open until 2025-03-30T04:00:00Z = 2025-03-30T06:00:00+02:00 Europe/Berlin`.
fn state(text: &str, zone: &str, now: &str) -> String {
    let windows = windows(text, zone);
    let shown = |at: Option<DateTime<Utc>>| match at {
        Some(at) => {
            let zoned = windows.zoned(at);
            format!("{} = {}", zoned.utc_text(), zoned.local_text())
        }
        None => "none ahead".to_owned(),
    };
    match windows.at(utc(now)) {
        WindowState::Open { closes } => format!("open until {}", shown(closes)),
        WindowState::Closed { opens } => format!("closed until {}", shown(opens)),
    }
}

/// Each case: windows, zone, now, the state then.
type Case = (&'static str, &'static str, &'static str, &'static str);

fn check(cases: &[Case]) {
    for &(text, zone, now, expected) in cases {
        assert_eq!(state(text, zone, now), expected, "{text:?} in {zone} at {now}");
    }
}

#[test]
fn windows_are_read_and_written_back_in_one_form() {
    for (text, shown) in [
        ("22:00-06:00", "22:00-06:00"),
        (" 9:00 - 17:30 ", "09:00-17:30"),
        ("00:00-24:00", "00:00-24:00"),
        ("18:00-24:00:00", "18:00-24:00"),
        ("23:59:30-00:00:15", "23:59:30-00:00:15"),
        ("06:00:00-07:00:00", "06:00-07:00"),
    ] {
        assert_eq!(text.parse::<Window>().map(|w| w.to_string()), Ok(shown.to_owned()), "{text:?}");
    }
    assert_eq!(parse_windows(""), Ok(vec![]));
    assert_eq!(parse_windows("  "), Ok(vec![]));
    let two = parse_windows("22:00-06:00, 12:00-13:00").unwrap();
    assert_eq!(two.iter().map(Window::to_string).collect::<Vec<_>>(), ["22:00-06:00", "12:00-13:00"]);
    assert_eq!(windows("22:00-06:00, 12:00-13:00", "UTC").describe(), "22:00-06:00, 12:00-13:00");
    assert_eq!(windows("", "UTC").describe(), "any time");
}

#[test]
fn malformed_windows_are_refused_with_what_is_wrong() {
    for (text, expected) in [
        ("22:00", "\"22:00\" is not a window: expected START-END, e.g. \"22:00-06:00\""),
        ("22-06", "\"22-06\": the start \"22\" is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)"),
        ("25:00-06:00", "\"25:00-06:00\": the start \"25:00\" is not a time of day"),
        ("22:00-06:60", "\"22:00-06:60\": the end \"06:60\" is not a time of day"),
        ("22:00-6:00:99", "\"22:00-6:00:99\": the end \"6:00:99\" is not a time of day"),
        ("22:0-06:00", "\"22:0-06:00\": the start \"22:0\" is not a time of day"),
        ("022:00-06:00", "\"022:00-06:00\": the start \"022:00\" is not a time of day"),
        ("22:00-06:00-07:00", "\"22:00-06:00-07:00\": the end \"06:00-07:00\" is not a time of day"),
        ("+1:00-06:00", "\"+1:00-06:00\": the start \"+1:00\" is not a time of day"),
        ("24:30-06:00", "\"24:30-06:00\": the start \"24:30\" is not a time of day"),
        ("24:00-06:00", "\"24:00-06:00\": the start 24:00 is not a time of day (00:00 opens at midnight)"),
        (
            "06:00-06:00",
            "\"06:00-06:00\" opens and closes at the same time; for any time of day leave schedule.window empty",
        ),
        ("00:00-00:00", "\"00:00-00:00\" opens and closes at the same time"),
        ("", "\"\" is not a window"),
    ] {
        let error = text.parse::<Window>().expect_err(text);
        assert!(error.starts_with(expected), "{text:?}: {error}");
    }
    let error = parse_windows("22:00-06:00,,12:00-13:00").expect_err("an empty window");
    assert!(error.starts_with("\"\" is not a window"), "{error}");
    let error = Windows::new(&[], "Europe/Berln").expect_err("zone").to_string();
    assert!(error.starts_with("schedule.timezone = \"Europe/Berln\" is not an IANA time zone"), "{error}");
}

#[test]
fn a_window_across_midnight_opens_at_its_start_and_closes_at_its_end_the_next_day() {
    check(&[
        ("22:00-06:00", "UTC", "2025-06-01T21:59:59Z", "closed until 2025-06-01T22:00:00Z = 2025-06-01T22:00:00Z UTC"),
        ("22:00-06:00", "UTC", "2025-06-01T22:00:00Z", "open until 2025-06-02T06:00:00Z = 2025-06-02T06:00:00Z UTC"),
        ("22:00-06:00", "UTC", "2025-06-02T00:00:00Z", "open until 2025-06-02T06:00:00Z = 2025-06-02T06:00:00Z UTC"),
        ("22:00-06:00", "UTC", "2025-06-02T05:59:59Z", "open until 2025-06-02T06:00:00Z = 2025-06-02T06:00:00Z UTC"),
        ("22:00-06:00", "UTC", "2025-06-02T06:00:00Z", "closed until 2025-06-02T22:00:00Z = 2025-06-02T22:00:00Z UTC"),
        // In a zone: 22:00-06:00 Kolkata time (+05:30) is 16:30-00:30 UTC.
        (
            "22:00-06:00",
            "Asia/Kolkata",
            "2025-06-01T16:00:00Z",
            "closed until 2025-06-01T16:30:00Z = 2025-06-01T22:00:00+05:30 Asia/Kolkata",
        ),
        (
            "22:00-06:00",
            "Asia/Kolkata",
            "2025-06-02T00:29:00Z",
            "open until 2025-06-02T00:30:00Z = 2025-06-02T06:00:00+05:30 Asia/Kolkata",
        ),
        // A window that ends at midnight, written either way.
        ("18:00-24:00", "UTC", "2025-06-01T23:00:00Z", "open until 2025-06-02T00:00:00Z = 2025-06-02T00:00:00Z UTC"),
        ("18:00-00:00", "UTC", "2025-06-01T23:00:00Z", "open until 2025-06-02T00:00:00Z = 2025-06-02T00:00:00Z UTC"),
        // Seconds.
        (
            "23:59:30-00:00:15",
            "UTC",
            "2025-06-01T23:59:29Z",
            "closed until 2025-06-01T23:59:30Z = 2025-06-01T23:59:30Z UTC",
        ),
        (
            "23:59:30-00:00:15",
            "UTC",
            "2025-06-02T00:00:00Z",
            "open until 2025-06-02T00:00:15Z = 2025-06-02T00:00:15Z UTC",
        ),
    ]);
}

#[test]
fn windows_that_touch_or_overlap_are_one_and_every_hour_is_any_time() {
    check(&[
        // Several windows: the next to open.
        (
            "01:00-02:00, 12:00-13:00",
            "UTC",
            "2025-06-01T05:00:00Z",
            "closed until 2025-06-01T12:00:00Z = 2025-06-01T12:00:00Z UTC",
        ),
        (
            "12:00-13:00, 01:00-02:00",
            "UTC",
            "2025-06-01T13:00:00Z",
            "closed until 2025-06-02T01:00:00Z = 2025-06-02T01:00:00Z UTC",
        ),
        // Touching and overlapping windows: a sweep goes on to the end of the last.
        (
            "22:00-02:00, 02:00-06:00",
            "UTC",
            "2025-06-01T23:00:00Z",
            "open until 2025-06-02T06:00:00Z = 2025-06-02T06:00:00Z UTC",
        ),
        (
            "01:00-03:00, 02:00-04:00",
            "UTC",
            "2025-06-01T01:30:00Z",
            "open until 2025-06-01T04:00:00Z = 2025-06-01T04:00:00Z UTC",
        ),
        // Every hour of every day: never closes.
        ("00:00-24:00", "Europe/Berlin", "2025-03-30T01:30:00Z", "open until none ahead"),
        ("12:00-00:00, 00:00-12:00", "UTC", "2025-06-01T05:00:00Z", "open until none ahead"),
        ("", "UTC", "2025-06-01T05:00:00Z", "open until none ahead"),
    ]);
}

#[test]
fn spring_forward_a_bound_in_the_skipped_hour_falls_at_the_end_of_the_gap() {
    check(&[
        // Berlin, 30 March 2025: 02:00 CET becomes 03:00 CEST.
        // Across the change: 22:00 CET to 06:00 CEST, 7 hours.
        (
            "22:00-06:00",
            "Europe/Berlin",
            "2025-03-29T20:00:00Z",
            "closed until 2025-03-29T21:00:00Z = 2025-03-29T22:00:00+01:00 Europe/Berlin",
        ),
        (
            "22:00-06:00",
            "Europe/Berlin",
            "2025-03-29T21:00:00Z",
            "open until 2025-03-30T04:00:00Z = 2025-03-30T06:00:00+02:00 Europe/Berlin",
        ),
        // A start in the gap opens when the clock jumps, 03:00 CEST.
        (
            "02:30-05:00",
            "Europe/Berlin",
            "2025-03-29T12:00:00Z",
            "closed until 2025-03-30T01:00:00Z = 2025-03-30T03:00:00+02:00 Europe/Berlin",
        ),
        (
            "02:30-05:00",
            "Europe/Berlin",
            "2025-03-30T01:00:00Z",
            "open until 2025-03-30T03:00:00Z = 2025-03-30T05:00:00+02:00 Europe/Berlin",
        ),
        (
            "02:30-05:00",
            "Europe/Berlin",
            "2025-03-30T00:59:59Z",
            "closed until 2025-03-30T01:00:00Z = 2025-03-30T03:00:00+02:00 Europe/Berlin",
        ),
        // An end in the gap closes when the clock jumps.
        (
            "01:00-02:30",
            "Europe/Berlin",
            "2025-03-30T00:30:00Z",
            "open until 2025-03-30T01:00:00Z = 2025-03-30T03:00:00+02:00 Europe/Berlin",
        ),
        // A window wholly in the gap does not open that day.
        (
            "02:10-02:50",
            "Europe/Berlin",
            "2025-03-29T12:00:00Z",
            "closed until 2025-03-31T00:10:00Z = 2025-03-31T02:10:00+02:00 Europe/Berlin",
        ),
        // New York, 9 March 2025: 02:00 EST becomes 03:00 EDT.
        (
            "22:00-06:00",
            "America/New_York",
            "2025-03-09T03:00:00Z",
            "open until 2025-03-09T10:00:00Z = 2025-03-09T06:00:00-04:00 America/New_York",
        ),
        (
            "02:30-04:00",
            "America/New_York",
            "2025-03-08T12:00:00Z",
            "closed until 2025-03-09T07:00:00Z = 2025-03-09T03:00:00-04:00 America/New_York",
        ),
        (
            "02:30-04:00",
            "America/New_York",
            "2025-03-09T07:00:00Z",
            "open until 2025-03-09T08:00:00Z = 2025-03-09T04:00:00-04:00 America/New_York",
        ),
        // Sydney, 5 October 2025: 02:00 AEST becomes 03:00 AEDT.
        (
            "02:30-05:00",
            "Australia/Sydney",
            "2025-10-04T12:00:00Z",
            "closed until 2025-10-04T16:00:00Z = 2025-10-05T03:00:00+11:00 Australia/Sydney",
        ),
        (
            "02:30-05:00",
            "Australia/Sydney",
            "2025-10-04T16:00:00Z",
            "open until 2025-10-04T18:00:00Z = 2025-10-05T05:00:00+11:00 Australia/Sydney",
        ),
        (
            "22:00-06:00",
            "Australia/Sydney",
            "2025-10-04T12:00:00Z",
            "open until 2025-10-04T19:00:00Z = 2025-10-05T06:00:00+11:00 Australia/Sydney",
        ),
    ]);
}

#[test]
fn fall_back_a_bound_in_the_repeated_hour_falls_in_its_first_pass() {
    check(&[
        // Berlin, 26 October 2025: 03:00 CEST becomes 02:00 CET.
        // Across the change: 22:00 CEST to 06:00 CET, 9 hours.
        (
            "22:00-06:00",
            "Europe/Berlin",
            "2025-10-25T20:00:00Z",
            "open until 2025-10-26T05:00:00Z = 2025-10-26T06:00:00+01:00 Europe/Berlin",
        ),
        // An end in the overlap closes in the first pass (02:30 CEST) ...
        (
            "01:00-02:30",
            "Europe/Berlin",
            "2025-10-26T00:00:00Z",
            "open until 2025-10-26T00:30:00Z = 2025-10-26T02:30:00+02:00 Europe/Berlin",
        ),
        // ... and the second pass (02:15 CET) is outside.
        (
            "01:00-02:30",
            "Europe/Berlin",
            "2025-10-26T01:15:00Z",
            "closed until 2025-10-27T00:00:00Z = 2025-10-27T01:00:00+01:00 Europe/Berlin",
        ),
        // A start in the overlap opens in the first pass and stays open through the second.
        (
            "02:30-04:00",
            "Europe/Berlin",
            "2025-10-25T12:00:00Z",
            "closed until 2025-10-26T00:30:00Z = 2025-10-26T02:30:00+02:00 Europe/Berlin",
        ),
        (
            "02:30-04:00",
            "Europe/Berlin",
            "2025-10-26T01:15:00Z",
            "open until 2025-10-26T03:00:00Z = 2025-10-26T04:00:00+01:00 Europe/Berlin",
        ),
        // New York, 2 November 2025: 02:00 EDT becomes 01:00 EST.
        (
            "01:30-03:00",
            "America/New_York",
            "2025-11-01T12:00:00Z",
            "closed until 2025-11-02T05:30:00Z = 2025-11-02T01:30:00-04:00 America/New_York",
        ),
        (
            "01:30-03:00",
            "America/New_York",
            "2025-11-02T05:30:00Z",
            "open until 2025-11-02T08:00:00Z = 2025-11-02T03:00:00-05:00 America/New_York",
        ),
        (
            "00:00-01:30",
            "America/New_York",
            "2025-11-02T04:00:00Z",
            "open until 2025-11-02T05:30:00Z = 2025-11-02T01:30:00-04:00 America/New_York",
        ),
        (
            "00:00-01:30",
            "America/New_York",
            "2025-11-02T06:15:00Z",
            "closed until 2025-11-03T05:00:00Z = 2025-11-03T00:00:00-05:00 America/New_York",
        ),
        // Sydney, 6 April 2025: 03:00 AEDT becomes 02:00 AEST.
        (
            "22:00-02:30",
            "Australia/Sydney",
            "2025-04-05T12:00:00Z",
            "open until 2025-04-05T15:30:00Z = 2025-04-06T02:30:00+11:00 Australia/Sydney",
        ),
        (
            "22:00-02:30",
            "Australia/Sydney",
            "2025-04-05T16:15:00Z",
            "closed until 2025-04-06T12:00:00Z = 2025-04-06T22:00:00+10:00 Australia/Sydney",
        ),
        (
            "02:30-06:00",
            "Australia/Sydney",
            "2025-04-05T16:15:00Z",
            "open until 2025-04-05T20:00:00Z = 2025-04-06T06:00:00+10:00 Australia/Sydney",
        ),
    ]);
}
