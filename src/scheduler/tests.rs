//! The next ticks across the daylight-saving changes of 2025 in Berlin
//! (northern hemisphere), Sydney and Santiago (southern), the cron syntax
//! accepted, and the loop's handling of late and early wake-ups.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{FixedOffset, Offset, TimeZone};

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&Utc)
}

fn schedule(cron: &str, zone: &str) -> CronSchedule {
    CronSchedule::new(cron, zone).unwrap_or_else(|e| panic!("{e}"))
}

fn any_time() -> Windows {
    Windows::new(&[], "UTC").unwrap()
}

/// The next `count` ticks after `from`, each as "UTC = local zone".
fn walk(cron: &str, zone: &str, from: &str, count: usize) -> Vec<String> {
    let schedule = schedule(cron, zone);
    let ticks: Vec<String> = std::iter::successors(schedule.next_after(utc(from)), |&tick| schedule.next_after(tick))
        .take(count)
        .map(|at| {
            let tick = ZonedTime { at, zone: schedule.zone };
            format!("{} = {}", tick.utc_text(), tick.local_text())
        })
        .collect();
    println!("{cron:?} in {zone} after {from}:\n  {}", ticks.join("\n  "));
    ticks
}

/// The ticks of `cron` in `zone` from `from` to `to`, as instants.
fn ticks_between(cron: &str, zone: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let schedule = schedule(cron, zone);
    std::iter::successors(schedule.next_after(utc(from)), |&tick| schedule.next_after(tick))
        .take_while(|&tick| tick < utc(to))
        .collect()
}

/// Each case: cron, zone, walk from, the next three ticks.
type Walk = (&'static str, &'static str, &'static str, [&'static str; 3]);

#[test]
fn a_daily_time_runs_once_on_both_change_days() {
    let cases: [Walk; 6] = [
        // Spring forward: a daily time in the gap runs once, at the end of the gap, that day.
        // Berlin, 30 March 2025: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        (
            "0 30 2 * * *",
            "Europe/Berlin",
            "2025-03-28T12:00:00Z",
            [
                "2025-03-29T01:30:00Z = 2025-03-29T02:30:00+01:00 Europe/Berlin",
                "2025-03-30T01:00:00Z = 2025-03-30T03:00:00+02:00 Europe/Berlin",
                "2025-03-31T00:30:00Z = 2025-03-31T02:30:00+02:00 Europe/Berlin",
            ],
        ),
        // Sydney, 5 October 2025: 02:00 AEST becomes 03:00 AEDT.
        (
            "0 30 2 * * *",
            "Australia/Sydney",
            "2025-10-03T12:00:00Z",
            [
                "2025-10-03T16:30:00Z = 2025-10-04T02:30:00+10:00 Australia/Sydney",
                "2025-10-04T16:00:00Z = 2025-10-05T03:00:00+11:00 Australia/Sydney",
                "2025-10-05T15:30:00Z = 2025-10-06T02:30:00+11:00 Australia/Sydney",
            ],
        ),
        // Santiago, 7 September 2025: midnight (-04) becomes 01:00 (-03); a
        // five-field daily midnight runs at 01:00 that day.
        (
            "0 0 * * *",
            "America/Santiago",
            "2025-09-05T12:00:00Z",
            [
                "2025-09-06T04:00:00Z = 2025-09-06T00:00:00-04:00 America/Santiago",
                "2025-09-07T04:00:00Z = 2025-09-07T01:00:00-03:00 America/Santiago",
                "2025-09-08T03:00:00Z = 2025-09-08T00:00:00-03:00 America/Santiago",
            ],
        ),
        // Fall back: a daily time in the overlap runs once, in its first pass.
        // Berlin, 26 October 2025: 03:00 CEST becomes 02:00 CET; 02:30 comes twice.
        (
            "0 30 2 * * *",
            "Europe/Berlin",
            "2025-10-24T12:00:00Z",
            [
                "2025-10-25T00:30:00Z = 2025-10-25T02:30:00+02:00 Europe/Berlin",
                "2025-10-26T00:30:00Z = 2025-10-26T02:30:00+02:00 Europe/Berlin",
                "2025-10-27T01:30:00Z = 2025-10-27T02:30:00+01:00 Europe/Berlin",
            ],
        ),
        // Sydney, 6 April 2025: 03:00 AEDT becomes 02:00 AEST.
        (
            "0 30 2 * * *",
            "Australia/Sydney",
            "2025-04-04T12:00:00Z",
            [
                "2025-04-04T15:30:00Z = 2025-04-05T02:30:00+11:00 Australia/Sydney",
                "2025-04-05T15:30:00Z = 2025-04-06T02:30:00+11:00 Australia/Sydney",
                "2025-04-06T16:30:00Z = 2025-04-07T02:30:00+10:00 Australia/Sydney",
            ],
        ),
        // Santiago, 5 April 2025: midnight (-03) becomes 23:00 (-04) the day before.
        (
            "30 23 * * *",
            "America/Santiago",
            "2025-04-04T12:00:00Z",
            [
                "2025-04-05T02:30:00Z = 2025-04-04T23:30:00-03:00 America/Santiago",
                "2025-04-06T02:30:00Z = 2025-04-05T23:30:00-03:00 America/Santiago",
                "2025-04-07T03:30:00Z = 2025-04-06T23:30:00-04:00 America/Santiago",
            ],
        ),
    ];
    for (cron, zone, from, expected) in cases {
        assert_eq!(walk(cron, zone, from, 3), expected);
    }
}

#[test]
fn a_daily_time_asked_for_in_the_second_pass_of_the_overlap_is_not_run_again() {
    // 02:15 CET, the second pass: 02:30 CEST was 45 minutes ago.
    let schedule = schedule("0 30 2 * * *", "Europe/Berlin");
    assert_eq!(schedule.next_after(utc("2025-10-26T01:15:00Z")), Some(utc("2025-10-27T01:30:00Z")));
}

#[test]
fn an_hourly_schedule_keeps_a_real_hour_between_ticks_across_both_changes() {
    for (zone, spring, autumn) in [
        ("Europe/Berlin", "2025-03-30", "2025-10-26"),
        ("Australia/Sydney", "2025-10-05", "2025-04-06"),
        ("America/Santiago", "2025-09-07", "2025-04-05"),
    ] {
        for (day, ticks_that_day) in [(spring, 23), (autumn, 25)] {
            let from = utc(&format!("{day}T00:00:00Z")) - chrono::TimeDelta::days(1);
            let ticks = ticks_between(
                "0 0 * * * *",
                zone,
                &from.to_rfc3339(),
                &(from + chrono::TimeDelta::days(3)).to_rfc3339(),
            );
            assert!(
                ticks.windows(2).all(|pair| pair[1] - pair[0] == chrono::TimeDelta::hours(1)),
                "{zone} around {day}: one real hour apart: {ticks:?}"
            );
            let tz: Tz = zone.parse().unwrap();
            let on_the_day =
                ticks.iter().filter(|tick| tick.with_timezone(&tz).date_naive().to_string() == day).count();
            assert_eq!(on_the_day, ticks_that_day, "{zone}: hourly ticks on the wall-clock day {day}");
        }
    }
    assert_eq!(
        walk("0 0 * * * *", "Europe/Berlin", "2025-10-25T23:30:00Z", 3),
        [
            "2025-10-26T00:00:00Z = 2025-10-26T02:00:00+02:00 Europe/Berlin",
            "2025-10-26T01:00:00Z = 2025-10-26T02:00:00+01:00 Europe/Berlin",
            "2025-10-26T02:00:00Z = 2025-10-26T03:00:00+01:00 Europe/Berlin",
        ]
    );
    assert_eq!(
        walk("0 0 * * * *", "Australia/Sydney", "2025-10-04T15:30:00Z", 2),
        [
            "2025-10-04T16:00:00Z = 2025-10-05T03:00:00+11:00 Australia/Sydney",
            "2025-10-04T17:00:00Z = 2025-10-05T04:00:00+11:00 Australia/Sydney",
        ]
    );
}

#[test]
fn a_fixed_utc_offset_taken_when_the_job_is_created_fires_an_hour_off_after_the_change() {
    // What tokio-cron-scheduler did: the zone's offset at creation (winter,
    // +01:00) is kept for good.
    let created = utc("2025-02-01T12:00:00Z");
    let winter = FixedOffset::east_opt(3600).unwrap();
    assert_eq!(chrono_tz::Europe::Berlin.offset_from_utc_datetime(&created.naive_utc()).fix(), winter);
    let cron = parse_cron("0 30 2 * * *").unwrap();
    let after = utc("2025-06-01T12:00:00Z");
    let fixed = cron.find_next_occurrence(&after.with_timezone(&winter), false).unwrap().with_timezone(&Utc);
    assert_eq!(fixed, utc("2025-06-02T01:30:00Z"), "the fixed offset's tick");
    assert_eq!(fixed.with_timezone(&chrono_tz::Europe::Berlin).to_rfc3339(), "2025-06-02T03:30:00+02:00");

    let zoned = schedule("0 30 2 * * *", "Europe/Berlin").next_after(after).unwrap();
    assert_eq!(zoned, utc("2025-06-02T00:30:00Z"));
    assert_eq!(zoned.with_timezone(&chrono_tz::Europe::Berlin).to_rfc3339(), "2025-06-02T02:30:00+02:00");
}

#[test]
fn five_fields_are_six_with_second_zero() {
    for zone in ["Europe/Berlin", "Australia/Sydney"] {
        for (five, six) in
            [("30 2 * * *", "0 30 2 * * *"), ("*/20 * * * *", "0 */20 * * * *"), ("0 3 * * 1-5", "0 0 3 * * 1-5")]
        {
            let year = ("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
            assert_eq!(
                ticks_between(five, zone, year.0, year.1),
                ticks_between(six, zone, year.0, year.1),
                "{five} in {zone}"
            );
        }
    }
}

#[test]
fn day_of_month_or_day_of_week_as_in_cron() {
    // Fridays, and the 13th whatever its weekday: the usual OR rule.
    let expected = [
        "2025-06-06T00:00:00Z",
        "2025-06-13T00:00:00Z",
        "2025-06-20T00:00:00Z",
        "2025-06-27T00:00:00Z",
        "2025-07-04T00:00:00Z",
        "2025-07-11T00:00:00Z",
        "2025-07-13T00:00:00Z",
        "2025-07-18T00:00:00Z",
    ]
    .map(utc);
    for cron in ["0 0 0 13 * FRI", "0 0 13 * 5"] {
        let ticks = ticks_between(cron, "UTC", "2025-06-01T00:00:00Z", "2025-07-20T00:00:00Z");
        assert_eq!(ticks, expected, "{cron}");
    }
    // A star in either field leaves the other alone.
    let sundays = ticks_between("0 0 * * 0", "UTC", "2025-06-01T00:00:00Z", "2025-06-30T00:00:00Z");
    assert_eq!(sundays.len(), 4, "{sundays:?}");
}

#[test]
fn expressions_and_zones_that_cannot_be_scheduled_are_refused_with_the_reason() {
    for (cron, expected) in [
        ("* * * *", "has 4 fields; it needs five"),
        ("0 0 * * * * 2030", "has 7 fields; it needs five"),
        ("@hourly", "has 1 field; it needs five"),
        ("0 0 25 * * *", "is not a valid cron expression"),
        ("0 61 * * *", "is not a valid cron expression"),
        ("0 0 0 30 2 *", "never fires"),
    ] {
        let error = CronSchedule::new(cron, "UTC").expect_err(cron).to_string();
        assert!(error.starts_with(&format!("schedule.cron = {cron:?} {expected}")), "{cron}: {error}");
    }
    for zone in ["Europe/Berln", "CEST", "+02:00", ""] {
        let error = CronSchedule::new("0 0 * * * *", zone).expect_err(zone).to_string();
        assert!(
            error.starts_with(&format!("schedule.timezone = {zone:?} is not an IANA time zone")),
            "{zone}: {error}"
        );
    }
    for zone in ["UTC", "Etc/UTC", "Europe/Berlin", "America/Santiago", "Asia/Kolkata"] {
        CronSchedule::new("0 0 * * * *", zone).unwrap_or_else(|e| panic!("{zone}: {e}"));
    }
}

fn timetable(cron: &str, zone: &str, now: &str) -> Timetable {
    let timetable = Timetable::new(schedule(cron, zone), any_time(), |_| {});
    timetable.lock().next_after(utc(now));
    timetable
}

#[test]
fn a_wake_up_at_the_tick_ticks_once_and_moves_on() {
    let timetable = timetable("0 0 * * * *", "Europe/Berlin", "2025-10-25T23:30:00Z");
    assert!(
        matches!(timetable.on_wake(utc("2025-10-25T23:59:00Z")), Wake::Sleep(wait) if wait == Duration::from_secs(60))
    );
    assert!(
        matches!(timetable.on_wake(utc("2025-10-25T23:59:30Z")), Wake::Sleep(wait) if wait == Duration::from_secs(30))
    );
    let Wake::Tick { due, missed, .. } = timetable.on_wake(utc("2025-10-26T00:00:00.002Z")) else { panic!("due") };
    assert_eq!((due, missed), (utc("2025-10-26T00:00:00Z"), 0));
    assert!(matches!(timetable.on_wake(utc("2025-10-26T00:00:00.003Z")), Wake::Sleep(_)), "never the same tick twice");
    let next = timetable.next_tick().unwrap();
    assert_eq!(next.utc_text(), "2025-10-26T01:00:00Z");
    assert_eq!(next.local_text(), "2025-10-26T02:00:00+01:00 Europe/Berlin");
    assert_eq!(next.zone_name(), "Europe/Berlin");
}

#[test]
fn ticks_missed_while_asleep_become_one_tick_at_once() {
    let timetable = timetable("0 */10 * * * *", "UTC", "2025-05-01T09:55:00Z");
    // Suspended from 09:59 to 10:35: 10:00, 10:10, 10:20 and 10:30 passed.
    let Wake::Tick { due, late, missed } = timetable.on_wake(utc("2025-05-01T10:35:00Z")) else { panic!("due") };
    assert_eq!((due, late, missed), (utc("2025-05-01T10:00:00Z"), chrono::TimeDelta::minutes(35), 3));
    assert_eq!(timetable.next_tick().unwrap().at, utc("2025-05-01T10:40:00Z"), "counted from now, not replayed");
}

#[test]
fn a_clock_set_back_brings_the_next_tick_forward() {
    let timetable = timetable("0 0 * * * *", "UTC", "2025-05-01T10:30:00Z");
    assert_eq!(timetable.next_tick().unwrap().at, utc("2025-05-01T11:00:00Z"));
    // The clock goes back a day: the hourly tick is due within the hour, not in 25.
    assert!(
        matches!(timetable.on_wake(utc("2025-04-30T10:45:00Z")), Wake::Sleep(wait) if wait == Duration::from_secs(60))
    );
    assert_eq!(timetable.next_tick().unwrap().at, utc("2025-04-30T11:00:00Z"));
}

#[tokio::test]
async fn the_loop_ticks_follows_a_replacement_and_stops_when_told() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let timetable = Timetable::new(schedule("* * * * * *", "UTC"), any_time(), |_| {});
    let stop = CancellationToken::new();
    let counter = ticks.clone();
    let clock = spawn(timetable.clone(), stop.clone(), move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let every_second = ticks.load(Ordering::SeqCst);
    assert!((2..=3).contains(&every_second), "{every_second} ticks in 2.5 s");

    timetable.replace(schedule("0 0 0 1 1 *", "Pacific/Auckland"), any_time());
    let yearly = timetable.next_tick().unwrap();
    assert_eq!(yearly.local_text()[4..], *"-01-01T00:00:00+13:00 Pacific/Auckland", "{yearly:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), every_second, "no tick after the replacement");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), clock).await.expect("stops at once").expect("no panic");
}
