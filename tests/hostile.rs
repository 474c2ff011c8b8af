//! Hostile input: proptest-driven fuzzing of everything an operator (or a
//! file an operator was handed) can feed the program: import lines (docs/design.md, "The command line"
//! `jobs import`), the configuration (docs/design.md, "Configuration": files, environment, flags),
//! durations, and job names (docs/lifecycle.md). Arbitrary strings and bytes with
//! quotes, semicolons, NUL bytes, control characters and invalid UTF-8,
//! megabyte lengths, deeply nested JSON, huge numbers and timestamps at the
//! edges. Nothing may panic or hang (every case runs on its own thread under
//! a time limit); the only outcome besides success is the documented error
//! (and, through the binary, the documented exit code: 65 for invalid input
//! data, 78 for invalid configuration); and the store is unchanged afterwards
//! (an import is all or nothing).
//!
//! The many generated cases go through the library; a handful of explicit
//! ones go through the binary.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Datelike;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use retentiond::config::{self, Overrides, Settings};
use retentiond::import;
use retentiond::lifecycle;
use serde_json::{Value, json};

use common::*;

// ---------------------------------------------------------------------------
// Harness: bounded cases
// ---------------------------------------------------------------------------

/// How long one library call on hostile input may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// Errors must stay short whatever the input: the message of an import, a
/// name or a configuration error is a line for a person, not a copy of a
/// megabyte of input.
const MAX_MESSAGE: usize = 2_000;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// Runs `f` on a thread of its own (2 MiB of stack, like a tokio worker);
/// fails if it panics or does not finish within [`CASE_LIMIT`].
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn a thread");
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(TestCaseError::fail(format!("{what} panicked: {}", panic_message(panic.as_ref())))),
        Err(_) => Err(TestCaseError::fail(format!("{what} did not finish within {CASE_LIMIT:?} (a hang?)"))),
    }
}

fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, max_shrink_time: 30_000, ..Config::default() }
}

/// Runs a property with a fixed number of cases; a failure panics with the
/// minimal input. The runner gets a thread with a large stack: proptest's
/// value trees for these big strategies are deep in a debug build.
fn check<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError> + Send)
where
    S: Strategy + Send,
    S::Value: std::fmt::Debug,
{
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("property".into())
            .stack_size(256 << 20)
            .spawn_scoped(scope, move || TestRunner::new(config(cases)).run(&strategy, test).map_err(|e| e.to_string()))
            .expect("spawn the property's thread")
            .join()
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("{error}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// `text` shortened for failure messages.
fn short(text: &str) -> String {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() { format!("{}… ({} bytes)", &text[..end], text.len()) } else { text.to_string() }
}

// ---------------------------------------------------------------------------
// Hostile material
// ---------------------------------------------------------------------------

const GOOD_LINE: &str =
    r#"{"name":"good-1","job_type":"Import","state":"Completed","created_at":"2024-01-01T00:00:00Z"}"#;

/// Pieces of JSON, SQL, Unicode and numbers that break naive parsers.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "'",
    ";",
    "--",
    "'; DROP TABLE jobs; --",
    "\"name\"",
    "\"job_type\"",
    "\"state\"",
    "\"created_at\"",
    "\"updated_at\"",
    "\"state_changed_at\"",
    "\"cancel_requested\"",
    "\"cancel_requested_at\"",
    "\"hold_reason\"",
    "\"drives\"",
    "\"drive_id\"",
    "\"bytes\"",
    "\"Import\"",
    "\"Completed\"",
    "\"Creating\"",
    "\"Specified\"",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e400",
    "-1e400",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1.5",
    "NaN",
    "Infinity",
    "\"2024-01-01T00:00:00Z\"",
    "\"1970-01-01T00:00:00Z\"",
    "\"1969-12-31T23:59:59.999999Z\"",
    "\"9999-12-31T23:59:59.999999999Z\"",
    "\"9999-12-31T23:59:60.5Z\"",
    "\"2016-12-31T23:59:60Z\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"+10000-01-01T00:00:00Z\"",
    "\"2024-02-30T00:00:00Z\"",
    "\"2024-01-01T00:00:00+23:59\"",
    "\"2024-01-01T00:00:00-23:59\"",
    "\u{feff}",
    "\u{2028}",
    "\u{202e}",
    "é",
    "😀",
    "\u{7f}",
    GOOD_LINE,
];

/// Arbitrary text built from hostile fragments, arbitrary characters and long runs.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        2 => any::<String>(),
        1 => "[a-z0-9_-]{0,12}",
        1 => (1usize..3_000, prop::sample::select(vec!["A", "[", "{\"a\":", "\\\\", "é"])).prop_map(|(n, s)| s.repeat(n)),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// A string for a field: sometimes valid, mostly not.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[A-Za-z0-9][A-Za-z0-9_-]{2,63}",
        2 => any::<String>(),
        2 => prop::sample::select(FRAGMENTS).prop_map(|s| s.trim_matches('"').to_string()),
        1 => (0usize..5_000, prop::sample::select(vec!["a", "A", "'", "\u{0}", "é", "😀", "\n"])).prop_map(|(n, s)| s.repeat(n)),
        1 => Just("x'; DROP TABLE jobs; --".to_string()),
        1 => Just("job\u{0}name".to_string()),
    ]
}

/// A JSON value for a field: a string (hostile or not), a number at the edges, nesting.
fn hostile_value(valid: Vec<&'static str>) -> impl Strategy<Value = Value> {
    let mut valid: Vec<Value> = valid.into_iter().map(Value::from).collect();
    if valid.is_empty() {
        valid.push(json!(1));
    }
    prop_oneof![
        4 => prop::sample::select(valid),
        2 => hostile_string().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => (0usize..200).prop_map(|depth| (0..depth).fold(json!(1), |inner, _| json!([inner]))),
        1 => Just(json!({"nested": {"deeper": ["x"]}})),
    ]
}

const TIMESTAMPS: [&str; 14] = [
    "2024-01-01T00:00:00Z",
    "2024-06-01T12:30:00.123456789Z",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:60.5Z",
    "2016-12-31T23:59:60Z",
    "0000-01-01T00:00:00Z",
    "2024-01-01T00:00:00+23:59",
    "2024-01-01T00:00:00-23:59",
    "2024-01-01T00:00:00",
    "2024-01-01",
    "yesterday",
];

/// One import line: a JSON object whose fields are present or not, valid or not.
fn hostile_line() -> impl Strategy<Value = String> {
    let drive = (
        hostile_value(vec!["d1", "d2", "D-3", "drive_4"]),
        hostile_value(vec!["Specified", "Completed", "ShippedBack"]),
        prop::option::of(hostile_value(vec![])),
    )
        .prop_map(|(id, state, bytes)| {
            let mut drive = json!({"drive_id": id, "state": state});
            if let Some(bytes) = bytes {
                drive["bytes"] = bytes;
            }
            drive
        });
    let field = |valid: Vec<&'static str>| prop::option::weighted(0.85, hostile_value(valid));
    (
        field(vec!["job-1", "job_2", "3rd-job"]),
        field(vec!["Import", "Export", "import"]),
        field(vec!["Creating", "Completed", "Closed", "Packaging", "completed"]),
        field(TIMESTAMPS.to_vec()),
        prop::option::weighted(0.4, hostile_value(TIMESTAMPS.to_vec())),
        prop::option::weighted(0.4, hostile_value(TIMESTAMPS.to_vec())),
        prop::option::weighted(0.3, hostile_value(vec![])),
        prop::option::weighted(0.3, hostile_value(TIMESTAMPS.to_vec())),
        prop::option::weighted(0.3, hostile_value(vec!["legal hold", ""])),
        prop::option::weighted(0.4, prop::collection::vec(drive, 0..13)),
        prop::option::weighted(0.1, (hostile_string(), hostile_value(vec![]))),
    )
        .prop_map(|(name, job_type, state, created, updated, changed, cancel, cancel_at, hold, drives, extra)| {
            let mut line = serde_json::Map::new();
            let mut put = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    line.insert(key.to_string(), value);
                }
            };
            put("name", name);
            put("job_type", job_type);
            put("state", state);
            put("created_at", created);
            put("updated_at", updated);
            put("state_changed_at", changed);
            put("cancel_requested", cancel);
            put("cancel_requested_at", cancel_at);
            put("hold_reason", hold);
            put("drives", drives.map(Value::Array));
            if let Some((key, value)) = extra {
                put(&key, Some(value));
            }
            Value::Object(line).to_string()
        })
}

// ---------------------------------------------------------------------------
// (a) The import line parser
// ---------------------------------------------------------------------------

/// What docs/lifecycle.md allows of a job that an import accepted.
fn check_imported(text: &str, jobs: &[import::ImportedJob]) -> Result<(), TestCaseError> {
    let lines = text.lines().count();
    let mut names = std::collections::HashSet::new();
    for imported in jobs {
        let job = &imported.job;
        let at = format!("line {} of {}", imported.line, short(text));
        prop_assert!((1..=lines).contains(&imported.line), "{at}: no such line");
        prop_assert!(spec_name(&job.name), "{at}: accepted the name {:?}", job.name);
        prop_assert!(names.insert(job.name.clone()), "{at}: name {:?} twice", job.name);
        prop_assert!(job.drives.len() <= 10, "{at}: {} drives", job.drives.len());
        let mut ids = std::collections::HashSet::new();
        for drive in &job.drives {
            prop_assert!(spec_drive_id(&drive.drive_id), "{at}: drive id {:?}", drive.drive_id);
            prop_assert!(ids.insert(drive.drive_id.clone()), "{at}: drive id {:?} twice", drive.drive_id);
            prop_assert!(drive.bytes >= 0, "{at}: negative bytes");
        }
        if let Some(reason) = &job.hold_reason {
            prop_assert!(spec_reason(reason), "{at}: hold reason {reason:?}");
        }
        for t in [job.created_at, job.updated_at, job.state_changed_at].into_iter().chain(job.cancel_requested_at) {
            prop_assert!(t.year() >= 1970 && t.year() <= 9999, "{at}: timestamp {t:?}");
            prop_assert!(t.timestamp_subsec_nanos() % 1_000 == 0, "{at}: below a microsecond: {t:?}");
        }
        prop_assert!(job.updated_at >= job.created_at && job.state_changed_at >= job.created_at, "{at}: {job:?}");
        prop_assert!(job.cancel_requested || job.cancel_requested_at.is_none(), "{at}: {job:?}");
        prop_assert!(job.cancel_requested_at.is_none_or(|t| t >= job.created_at), "{at}: {job:?}");
    }
    Ok(())
}

/// Parses `text` (bounded); checks the outcome: valid jobs, or an error naming an existing line.
fn parse_checked(text: String) -> Result<Result<Vec<import::ImportedJob>, import::ImportError>, TestCaseError> {
    let input = text.clone();
    let result = bounded("import::parse", move || import::parse(&input))?;
    match &result {
        Ok(jobs) => check_imported(&text, jobs)?,
        Err(error) => {
            // `lines()` ignores a final line ending; an error is always on a line that has text.
            let lines = text.lines().count();
            prop_assert!((1..=lines).contains(&error.line), "error on line {} of {lines}: {error}", error.line);
            prop_assert!(error.to_string().starts_with(&format!("line {}: ", error.line)), "{error}");
            let on_line = text.lines().nth(error.line - 1).unwrap_or_default();
            prop_assert!(!on_line.trim().is_empty(), "error names a blank line {}: {error}", error.line);
        }
    }
    Ok(result)
}

#[test]
fn import_parser_survives_arbitrary_text() {
    check(768, hostile_text(), |text| parse_checked(text).map(|_| ()));
}

#[test]
fn import_parser_survives_hostile_json_lines() {
    check(1_024, hostile_line(), |line| parse_checked(line).map(|_| ()));
}

/// A hostile line among valid ones: the error names that line, or (when
/// the hostile line happens to be valid) every line is taken.
#[test]
fn import_parser_names_the_hostile_line_among_valid_ones() {
    let strategy = (0usize..6, 0usize..6, hostile_line(), prop::bool::ANY);
    check(512, strategy, |(before, after, hostile, blank)| {
        let valid = |i: usize, tag: &str| GOOD_LINE.replace("good-1", &format!("good-{tag}{i}"));
        let mut lines: Vec<String> = (0..before).map(|i| valid(i, "b")).collect();
        if blank {
            lines.push(String::new());
        }
        let hostile_at = lines.len() + 1;
        lines.push(hostile.clone());
        lines.extend((0..after).map(|i| valid(i, "a")));
        match parse_checked(lines.join("\n"))? {
            Err(error) => prop_assert_eq!(error.line, hostile_at, "{}", error),
            Ok(jobs) => prop_assert_eq!(jobs.len(), before + after + 1),
        }
        Ok(())
    });
}

/// Error messages quote a bounded excerpt of the input, never all of it.
#[test]
fn import_errors_stay_short() {
    check(512, hostile_line(), |line| {
        if let Err(error) = parse_checked(line)? {
            let message = error.to_string();
            prop_assert!(message.len() <= MAX_MESSAGE, "{} bytes of error message: {}", message.len(), short(&message));
        }
        Ok(())
    });
}

/// The moment an import must keep for each of [`TIMESTAMPS`] (as microseconds
/// since 1970), or `None` where it must refuse the line: RFC 3339 with an
/// offset, 1970 to 9999 in UTC, cut (not rounded) to the microsecond, no
/// leap second (docs/lifecycle.md). Written out by hand, not computed by
/// the code under test.
fn expected_moment(stamp: &str) -> Option<i64> {
    const DAY: i64 = 86_400_000_000;
    let last_of_9999 = 253_402_300_799_000_000 + 999_999;
    match stamp {
        "2024-01-01T00:00:00Z" => Some(1_704_067_200_000_000),
        "2024-06-01T12:30:00.123456789Z" => Some(1_717_245_000_123_456),
        "1970-01-01T00:00:00Z" => Some(0),
        "9999-12-31T23:59:59.999999Z" | "9999-12-31T23:59:59.999999999Z" => Some(last_of_9999),
        "2024-01-01T00:00:00+23:59" => Some(1_704_067_200_000_000 - DAY + 60_000_000),
        "2024-01-01T00:00:00-23:59" => Some(1_704_067_200_000_000 + DAY - 60_000_000),
        "1969-12-31T23:59:59.999999Z"
        | "9999-12-31T23:59:60.5Z"
        | "2016-12-31T23:59:60Z"
        | "0000-01-01T00:00:00Z"
        | "2024-01-01T00:00:00"
        | "2024-01-01"
        | "yesterday" => None,
        other => panic!("no expected moment for {other}"),
    }
}

/// What the import accepts is the moment given, cut to the microsecond the
/// stores keep, and what it refuses is what the rules refuse: each of
/// [`TIMESTAMPS`] against [`expected_moment`], and generated seconds of a
/// minute with up to nine fraction digits (second 60, a leap second, refused).
#[test]
fn imported_timestamps_are_kept_as_given() {
    for stamp in TIMESTAMPS {
        let line = GOOD_LINE.replace("2024-01-01T00:00:00Z", stamp);
        let kept = import::parse(&line).map(|jobs| jobs[0].job.created_at.timestamp_micros());
        assert_eq!(kept.as_ref().ok().copied(), expected_moment(stamp), "{stamp}: {kept:?}");
    }
    let strategy = ("[0-9]{0,9}", 0u32..60, 0u32..61);
    check(512, strategy, |(fraction, minute, second)| {
        let stamp = format!("2024-01-01T00:{minute:02}:{second:02}.{fraction}Z").replace(".Z", "Z");
        let line = GOOD_LINE.replace("2024-01-01T00:00:00Z", &stamp);
        let micros_of_fraction: i64 = format!("{fraction:0<6}")[..6].parse().expect("digits");
        let expected = (second < 60)
            .then(|| 1_704_067_200_000_000 + i64::from(minute * 60 + second) * 1_000_000 + micros_of_fraction);
        match parse_checked(line)? {
            Ok(jobs) => prop_assert_eq!(Some(jobs[0].job.created_at.timestamp_micros()), expected, "{}", stamp),
            Err(error) => {
                prop_assert!(expected.is_none(), "{} refused: {}", stamp, error);
                prop_assert!(
                    error.to_string().contains("created_at"),
                    "{}: the error names no field: {}",
                    stamp,
                    error
                );
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// (d) Names, drive ids, hold reasons
// ---------------------------------------------------------------------------

/// docs/lifecycle.md, written independently of the code under test.
fn spec_name(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    (3..=64).contains(&chars.len())
        && chars.iter().all(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        && chars[0].is_ascii_alphanumeric()
}

fn spec_drive_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn spec_reason(reason: &str) -> bool {
    let bidi_control =
        |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    !reason.trim().is_empty()
        && reason.chars().count() <= 500
        && !reason.chars().any(|c| c.is_control() || bidi_control(c))
}

#[test]
fn names_drive_ids_and_hold_reasons_follow_the_spec() {
    let strategy = prop_oneof![
        3 => hostile_string(),
        2 => "[A-Za-z0-9_ .;'\"%*-]{0,70}",
        1 => hostile_text(),
    ];
    check(2_048, strategy, |text| {
        let input = text.clone();
        let (name, drive, reason) = bounded("validate", move || {
            (
                lifecycle::validate_name(&input),
                lifecycle::validate_drive_id(&input),
                lifecycle::validate_hold_reason("hold_reason", &input),
            )
        })?;
        prop_assert_eq!(name.is_ok(), spec_name(&text), "name {:?}: {:?}", short(&text), name);
        prop_assert_eq!(drive.is_ok(), spec_drive_id(&text), "drive id {:?}: {:?}", short(&text), drive);
        prop_assert_eq!(reason.is_ok(), spec_reason(&text), "hold reason {:?}: {:?}", short(&text), reason);
        for error in [name.err(), drive.err(), reason.err()].into_iter().flatten() {
            let message = error.to_string();
            prop_assert!(message.len() <= MAX_MESSAGE, "{} bytes: {}", message.len(), short(&message));
        }
        Ok(())
    });
}

#[test]
fn a_megabyte_name_is_refused_quickly_with_a_short_message() {
    for name in ["a".repeat(1 << 20), format!("{}\u{0}", "a".repeat(1 << 20)), "é".repeat(1 << 19)] {
        let started = Instant::now();
        let error = lifecycle::validate_name(&name).expect_err("a 1 MiB name is invalid");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert!(error.to_string().len() < 400, "{}", error);
    }
    let line = GOOD_LINE.replace("good-1", &"a".repeat(1 << 20));
    let error = import::parse(&line).expect_err("invalid name");
    assert!(error.to_string().len() < 400, "{}", short(&error.to_string()));
}

// ---------------------------------------------------------------------------
// (b), (c) The configuration loader and durations
// ---------------------------------------------------------------------------

/// Every key of the configuration (docs/design.md, "Configuration"), and two that do not exist.
const KEYS: &[(&str, &str)] = &[
    ("database", "url"),
    ("database", "max_connections"),
    ("database", "connect_timeout"),
    ("database", "statement_timeout"),
    ("database", "auto_migrate"),
    ("retention", "completed"),
    ("retention", "closed"),
    ("retention", "creating_idle"),
    ("retention", "minimum"),
    ("retention", "batch_size"),
    ("retention", "batch_pause"),
    ("retention", "max_deletes_per_run"),
    ("retention", "run_timeout"),
    ("schedule", "cron"),
    ("schedule", "timezone"),
    ("schedule", "run_on_start"),
    ("schedule", "singleton"),
    ("schedule", "window"),
    ("metrics", "listen"),
    ("metrics", "pushgateway"),
    ("log", "format"),
    ("log", "level"),
    ("shutdown", "grace"),
    ("retention", "bogus"),
    ("nosuch", "key"),
];

/// Duration-like text: numbers (huge ones too), units, signs, exponents, junk.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        3 => (0u64..1_000).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["99999999999999999999", "18446744073709551615", "1e400", "-5", "0x10", "1.5", "", "+3", "٣", "0"]).prop_map(str::to_string),
    ];
    let unit = prop::sample::select(vec![
        "ns", "us", "µs", "ms", "s", "sec", "m", "min", "h", "hours", "d", "days", "w", "M", "y", "years", "", "x",
        "parsecs", "S", "D",
    ]);
    let part = (number, prop::sample::select(vec!["", " "]), unit).prop_map(|(n, space, u)| format!("{n}{space}{u}"));
    prop_oneof![
        6 => prop::collection::vec(part, 1..4).prop_map(|parts| parts.join(" ")),
        1 => prop::sample::select(vec!["off", "OFF", " off ", "of", "none", "0", " 90d ", "90d\u{0}", "1h\t30m", "∞"]).prop_map(str::to_string),
        1 => hostile_string(),
    ]
}

/// A TOML value, as text: well-formed or not.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => duration_text().prop_map(|s| serde_json::to_string(&s).expect("string")),
        2 => hostile_string().prop_map(|s| serde_json::to_string(&s).expect("string")),
        1 => "[a-zA-Z0-9 ._:/@*,=\\[\\]-]{0,30}".prop_map(|s| format!("'{s}'")),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "1e400", "-1e400", "inf", "-inf", "nan", "1.5", "0.0", "99999999999999999999", "-0", "0x10", "0o7", "0b1",
            "1_000", "true", "false", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "[]", "[1, \"a\"]", "{}",
            "{ a = 1 }", "[[[[[[1]]]]]]", "\"\"\"multi\nline\"\"\"", "'''raw'''", "\"sqlite://x.db\"",
            "\"postgres://u:p@db/jobs\"", "\"postgres://db/jobs?password=x\"", "\"0 0 * * * *\"", "\"127.0.0.1:0\"",
            "\"http://gw:9091\"", "\"debug\"", "\"json\"", "\"UTC\"", "\"a\\u0000b\"", "\"\\u0000\"",
        ])
        .prop_map(str::to_string),
        1 => (0usize..300).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth))),
    ]
}

/// A configuration file: a few keys with hostile values, sometimes followed by raw garbage.
fn config_text() -> impl Strategy<Value = String> {
    let entry = (prop::sample::select(KEYS), toml_value());
    (prop::collection::vec(entry, 0..4), prop::option::weighted(0.15, hostile_text())).prop_map(|(entries, garbage)| {
        let mut sections: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
        for ((section, key), value) in entries {
            sections.entry(section).or_default().insert(key, value);
        }
        let mut text = String::new();
        for (section, keys) in sections {
            text += &format!("[{section}]\n");
            for (key, value) in keys {
                text += &format!("{key} = {value}\n");
            }
        }
        text + &garbage.unwrap_or_default()
    })
}

fn no_overrides() -> Overrides {
    Overrides { log_format: None, log_level: None }
}

/// Loads `bytes` as the configuration file (bounded).
fn load_bytes(dir: &Path, bytes: &[u8]) -> Result<Result<Settings, String>, TestCaseError> {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile_in(dir).expect("temp file");
    file.write_all(bytes).expect("write");
    let path = file.path().to_owned();
    let result = bounded("config::load", move || {
        let result = config::load(Some(path), &no_overrides()).map_err(|e| e.to_string());
        // Whatever loads must print, as check-config does.
        result.map(|settings| {
            let text = settings.to_redacted_toml();
            (settings, text)
        })
    })?;
    drop(file);
    Ok(result.map(|(settings, _)| settings))
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("retentiond-hostile-").tempdir().expect("temp dir")
}

#[test]
fn config_loader_survives_arbitrary_bytes() {
    let dir = scratch();
    let bytes = prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..600),
        2 => config_text().prop_map(String::into_bytes),
        1 => (config_text(), prop::collection::vec(any::<u8>(), 1..8), any::<usize>()).prop_map(|(text, junk, at)| {
            let mut bytes = text.into_bytes();
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, junk);
            bytes
        }),
    ];
    check(768, bytes, |bytes| {
        if let Err(message) = load_bytes(dir.path(), &bytes)? {
            prop_assert!(message.starts_with("invalid configuration: "), "{message}");
        }
        Ok(())
    });
}

/// An error names a key that was set (or says the file is not TOML); what loads prints as TOML.
#[test]
fn config_errors_name_the_key() {
    let dir = scratch();
    check(1_024, config_text(), |text| {
        if let Err(message) = load_bytes(dir.path(), text.as_bytes())? {
            let named = KEYS.iter().any(|(section, key)| {
                message.contains(&format!("{section}.{key}")) || message.contains(&format!("`{section}`"))
            });
            let not_toml = message.contains("as TOML") || message.contains("cannot parse");
            prop_assert!(named || not_toml, "the error names no key:\n{text}\n=> {message}");
        }
        Ok(())
    });
}

/// check-config prints a configuration that loads back as the same settings
/// (bar a redacted password; `retention.by_type` comes back with every key
/// set to the retention that applies, as check-config shows it).
#[test]
fn config_printed_by_check_config_loads_back() {
    let dir = scratch();
    check(2_048, config_text(), |text| {
        let Ok(settings) = load_bytes(dir.path(), text.as_bytes())? else { return Ok(()) };
        let printed = settings.to_redacted_toml();
        match load_bytes(dir.path(), printed.as_bytes())? {
            Ok(mut again) => {
                prop_assert_eq!(again.database.url.redacted(), settings.database.url.redacted());
                again.database.url = settings.database.url.clone();
                prop_assert_eq!(again.retention.by_type, settings.retention.effective_by_type());
                prop_assert_eq!(again.retention.retentions(), settings.retention.retentions());
                again.retention.by_type = settings.retention.by_type;
                prop_assert_eq!(again, settings, "{}\n=> printed:\n{}", text, printed);
            }
            Err(message) => prop_assert!(false, "{text}\n=> printed:\n{printed}\n=> does not load: {message}"),
        }
        Ok(())
    });
}

/// Durations are humantime's (after trimming), `off` only where a policy
/// allows it; anything else is an error naming the key.
#[test]
fn durations_parse_as_documented_or_name_the_key() {
    let dir = scratch();
    let strategy =
        (duration_text(), prop::sample::select(vec!["shutdown.grace", "retention.completed", "retention.batch_pause"]));
    check(2_048, strategy, |(text, key)| {
        let (section, name) = key.split_once('.').expect("dotted");
        let minimum = if section == "retention" { "minimum = \"0s\"\n" } else { "" };
        let file = format!("[{section}]\n{minimum}{name} = {}\n", serde_json::to_string(&text).expect("string"));
        let result = load_bytes(dir.path(), file.as_bytes())?;
        let off = key == "retention.completed" && text.trim().eq_ignore_ascii_case("off");
        let expected = if off { Ok(None) } else { humantime::parse_duration(text.trim()).map(Some).map_err(|_| ()) };
        match (result, expected) {
            (Ok(settings), Ok(expected)) => {
                let got = match key {
                    "shutdown.grace" => Some(settings.shutdown.grace),
                    "retention.completed" => settings.retention.completed,
                    _ => Some(settings.retention.batch_pause),
                };
                prop_assert_eq!(got, expected, "{:?}", text);
            }
            (Err(message), Err(())) => {
                prop_assert!(message.contains(key) || message.contains("as TOML"), "{text:?}: {message}");
            }
            (result, expected) => {
                prop_assert!(false, "{text:?} for {key}: loaded {result:?}, humantime says {expected:?}")
            }
        }
        Ok(())
    });
}

#[test]
fn log_level_flag_survives_arbitrary_text() {
    let strategy = prop_oneof![
        hostile_string(),
        hostile_text(),
        "[a-z_:=,\\[\\]{}.*0-9]{0,40}",
        // Directives the way people write them: lists with spaces, targets, spans, fields.
        "((info|warn|debug|off|[a-zé_:Σ]{1,6})(=(info|debug))?(\\[[a-z]{0,3}\\])?[,]?[ \t\n]?){1,4}",
    ];
    check(4_096, strategy, |level| {
        let overrides = Overrides { log_format: None, log_level: Some(level.clone()) };
        let result =
            bounded("config::load", move || config::load(None, &overrides).map(|_| ()).map_err(|e| e.to_string()))?;
        if let Err(message) = result {
            prop_assert!(message.contains("--log-level"), "{level:?}: {message}");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Through the binary
// ---------------------------------------------------------------------------

/// Runs `args` and asserts the exit code, that nothing panicked, and that
/// the store is byte-for-byte what it was.
#[track_caller]
fn refused(env: &TestEnv, out: &Out, code: i32, before: &BTreeMap<&'static str, Vec<String>>) {
    out.expect_code(code);
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    assert!(env.dump_all() == *before, "the store changed\n{}", out.describe());
}

fn baseline(env: &TestEnv) -> BTreeMap<&'static str, Vec<String>> {
    env.import_ok(&[
        job("job-a", "Completed", days_ago(200)),
        set(job("job-b", "Creating", days_ago(3)), "drives", drives("b", 2, "Specified")),
        set(job("job-c", "Transferring", days_ago(1)), "hold_reason", json!("legal")),
    ]);
    env.dump_all()
}

const HOSTILE_NAMES: &[&str] = &[
    "'; DROP TABLE jobs; --",
    "job-a'; DELETE FROM jobs WHERE '1'='1",
    "job-a\"; DROP TABLE retention_audit; --",
    "job-a' OR '1'='1",
    "job-%",
    "_ob-a",
    "%",
    "*",
    "job-a\\",
    "job a",
    "ab",
    "jöb-a",
    "job-a\u{202e}",
    "job-a\n",
    "\t",
    "",
];

every_engine! {
    /// SQL in a name is just an invalid name: refused (65) or not found (3), nothing touched.
    fn hostile_names_are_refused_and_the_store_is_unchanged(env: &TestEnv) {
        let before = baseline(env);
        let long = "a".repeat(100 * 1024); // an argument is at most 128 KiB
        for name in HOSTILE_NAMES.iter().copied().chain([long.as_str()]) {
            let out = env.run(&["jobs", "create", name, "--type", "import"]);
            refused(env, &out, 65, &before);
            assert!(out.stderr.len() < MAX_MESSAGE, "{}", out.describe());
            for args in [
                vec!["jobs", "show", name],
                vec!["jobs", "set-state", name, "Completed"],
                vec!["jobs", "cancel", name],
                vec!["jobs", "hold", name, "--reason", "x"],
                vec!["jobs", "release", name],
                vec!["jobs", "delete", name],
            ] {
                let out = env.run(&args);
                refused(env, &out, 3, &before);
                assert!(out.stderr.len() < MAX_MESSAGE, "{}", out.describe());
            }
        }
        // Wildcards are just characters: `job-_` is a valid name, and no job has it.
        for args in [
            vec!["jobs", "show", "job-_"],
            vec!["jobs", "set-state", "job-_", "Shipping"],
            vec!["jobs", "cancel", "job-_"],
            vec!["jobs", "release", "job-_"],
            vec!["jobs", "delete", "job-_"],
        ] {
            refused(env, &env.run(&args), 3, &before);
        }
        // A hostile hold reason is refused too, before the job is looked at.
        for reason in ["", " ", "tab\there", "bell\u{7}", &"r".repeat(501)] {
            refused(env, &env.run(&["jobs", "hold", "job-a", "--reason", reason]), 65, &before);
        }
        // And a reason full of SQL is stored as text, nothing else.
        env.json(&["jobs", "hold", "job-a", "--reason", "x'); DROP TABLE jobs; --"]);
        assert_eq!(env.show("job-a")["hold_reason"], "x'); DROP TABLE jobs; --");
        assert_eq!(env.job_names(), ["job-a", "job-b", "job-c"]);
    }
}

/// Lines every import must refuse, each with why.
fn hostile_import_lines() -> Vec<(&'static str, String)> {
    let good = |name: &str| GOOD_LINE.replace("good-1", name);
    let with = |key: &str, value: Value| {
        let mut line: Value = serde_json::from_str(&good("hostile-1")).expect("json");
        line[key] = value;
        line.to_string()
    };
    vec![
        ("SQL in the name", with("name", json!("'; DROP TABLE jobs; --"))),
        ("an escaped NUL in the name", with("name", json!("ab\u{0}cd"))),
        ("a raw NUL byte in the name", good("ab\u{0}cd")),
        ("a NUL in the hold reason", with("hold_reason", json!("legal\u{0}hold"))),
        ("a NUL in a drive id", with("drives", json!([{"drive_id": "d\u{0}1", "state": "Specified"}]))),
        ("a 1 MiB name", with("name", json!("a".repeat(1 << 20)))),
        ("a 10 MiB line", with("name", json!("b".repeat(10 << 20)))),
        ("1 Mi levels of nesting", format!("{}{}", "[".repeat(1 << 20), "]".repeat(1 << 20))),
        (
            "nesting in a field",
            with("drives", json!("NEST")).replace("\"NEST\"", &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
        ),
        (
            "bytes 1e400",
            with("drives", json!([{"drive_id": "d1", "state": "Specified"}]))
                .replace("\"Specified\"}", "\"Specified\",\"bytes\":1e400}"),
        ),
        (
            "bytes beyond i64",
            with("drives", json!([{"drive_id": "d1", "state": "Specified"}]))
                .replace("\"Specified\"}", "\"Specified\",\"bytes\":99999999999999999999}"),
        ),
        ("negative bytes", with("drives", json!([{"drive_id": "d1", "state": "Specified", "bytes": -1}]))),
        (
            "eleven drives",
            with(
                "drives",
                Value::Array((0..11).map(|i| json!({"drive_id": format!("d{i}"), "state": "Specified"})).collect()),
            ),
        ),
        ("year 0", with("created_at", json!("0000-01-01T00:00:00Z"))),
        ("a microsecond before 1970", with("created_at", json!("1969-12-31T23:59:59.999999Z"))),
        ("year 10000", with("created_at", json!("+10000-01-01T00:00:00Z"))),
        ("February 30", with("created_at", json!("2024-02-30T00:00:00Z"))),
        ("a number for a timestamp", with("created_at", json!(1_700_000_000))),
        ("a huge number for a timestamp", with("created_at", json!(1e300))),
        ("an unknown state", with("state", json!("Completed'; DROP TABLE jobs; --"))),
        ("an unknown field", with("'; DROP TABLE jobs; --", json!(1))),
        ("a string for a boolean", with("cancel_requested", json!("true"))),
        ("a byte order mark", format!("\u{feff}{}", good("bom-1"))),
        ("not JSON", "'; DROP TABLE jobs; --".to_string()),
    ]
}

every_engine! {
    /// Each hostile line, after two valid ones: exit 65 naming line 3, nothing imported.
    fn hostile_import_lines_are_refused_and_nothing_is_imported(env: &TestEnv) {
        let before = baseline(env);
        for (why, line) in hostile_import_lines() {
            let lines = [GOOD_LINE.replace("good-1", "fresh-1"), GOOD_LINE.replace("good-1", "fresh-2"), line];
            let started = Instant::now();
            let out = env.import_lines(&lines);
            assert_eq!(out.code, 65, "{why}\n{}", out.describe());
            refused(env, &out, 65, &before);
            assert!(out.stderr_names_line(3), "{why}: the error names line 3\n{}", out.describe());
            assert!(started.elapsed() < Duration::from_secs(30), "{why}: {:?}", started.elapsed());
        }
    }
}

every_engine! {
    /// An error message quotes a bounded excerpt of a hostile line, never the
    /// whole line: a 10 MiB value must not become 10 MiB of stderr.
    fn import_errors_quote_a_bounded_excerpt(env: &TestEnv) {
        let before = baseline(env);
        let huge = "A".repeat(10 << 20);
        let line = |key: &str| {
            let mut line: Value = serde_json::from_str(GOOD_LINE).expect("json");
            line[key] = json!(huge);
            line.to_string()
        };
        let cases = [
            ("a 10 MiB state", line("state")),
            ("a 10 MiB job type", line("job_type")),
            ("a 10 MiB unknown field", GOOD_LINE.replace("{\"name\"", &format!("{{\"{huge}\":1,\"name\""))),
            ("a 10 MiB timestamp", line("created_at")),
            ("a 10 MiB name", line("name")),
        ];
        for (why, line) in cases {
            let out = env.import_lines(&[line]);
            refused(env, &out, 65, &before);
            assert!(out.stderr.len() < MAX_MESSAGE, "{why}: {} bytes on stderr: {}", out.stderr.len(), short(&out.stderr));
        }
    }
}

every_engine! {
    /// 50 MB of valid lines, then one invalid line: nothing imported, the error names the last line.
    fn fifty_megabytes_then_one_bad_line_imports_nothing(env: &TestEnv) {
        let before = baseline(env);
        let path = env.dir().join("big.jsonl");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let (mut lines, mut size) = (0, 0);
        while size < 50_000_000 {
            lines += 1;
            let line = GOOD_LINE.replace("good-1", &format!("bulk-{lines:07}"));
            writeln!(file, "{line}").expect("write");
            size += line.len() + 1;
        }
        let last = GOOD_LINE.replace("2024-01-01T00:00:00Z", "2024-13-01T00:00:00Z").replace("good-1", "bulk-last");
        writeln!(file, "{last}").expect("write");
        file.flush().expect("flush");
        drop(file);
        let started = Instant::now();
        let out = env.run(&["jobs", "import", path_str(&path)]);
        let elapsed = started.elapsed();
        refused(env, &out, 65, &before);
        assert!(out.stderr_names_line(lines + 1), "the error names line {}\n{}", lines + 1, out.describe());
        assert!(elapsed < Duration::from_secs(60), "{lines} lines took {elapsed:?}");
        eprintln!("{:?}: a 50 MB import ({} lines) refused in {elapsed:?}", env.engine, lines + 1);
    }
}

every_engine! {
    /// Many valid lines whose last one names an existing job: the database
    /// refuses the batch, all of it (exit 4 naming the line).
    fn a_conflict_on_the_last_of_many_lines_imports_nothing(env: &TestEnv) {
        let before = baseline(env);
        let mut lines: Vec<String> =
            (0..20_000).map(|i| GOOD_LINE.replace("good-1", &format!("many-{i:05}"))).collect();
        lines.push(GOOD_LINE.replace("good-1", "job-b"));
        let out = env.import_lines(&lines);
        refused(env, &out, 4, &before);
        assert!(out.stderr_names_line(20_001), "{}", out.describe());
    }
}

/// An import file with a byte sequence that is not UTF-8 on line 3.
fn invalid_utf8_import() -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["utf-1", "utf-2", "utf-3"] {
        bytes.extend_from_slice(GOOD_LINE.replace("good-1", name).as_bytes());
        bytes.push(b'\n');
    }
    let at = bytes.windows(5).position(|w| w == b"utf-3").expect("third name") + 4;
    bytes[at] = 0xff;
    bytes
}

every_engine! {
    /// Invalid UTF-8, from a file or stdin: exit 65, nothing imported.
    fn invalid_utf8_is_refused_and_nothing_is_imported(env: &TestEnv) {
        let before = baseline(env);
        let path = env.dir().join("bad-utf8.jsonl");
        std::fs::write(&path, invalid_utf8_import()).expect("write");
        refused(env, &env.run(&["jobs", "import", path_str(&path)]), 65, &before);
        refused(env, &env.cmd(&["jobs", "import", "-"]).stdin(&invalid_utf8_import()).run(), 65, &before);
    }
}

every_engine! {
    /// "An error names the line" (docs/design.md, "The command line") holds for bytes that are not UTF-8, too.
    fn invalid_utf8_error_names_the_line(env: &TestEnv) {
        env.migrate();
        let path = env.dir().join("bad-utf8.jsonl");
        std::fs::write(&path, invalid_utf8_import()).expect("write");
        let out = env.run(&["jobs", "import", path_str(&path)]);
        out.expect_code(65);
        assert!(out.stderr_names_line(3), "{}", out.describe());
    }
}

every_engine! {
    /// Timestamps at the edges of 1970..9999, through the binary: the valid
    /// ones are stored as the moment given, cut to the microsecond (read by
    /// SQL and by `jobs show`, whose text imports again as the same moment);
    /// the others are refused with 65, an error naming the line and the
    /// field, and nothing written.
    fn edge_timestamps_read_back_or_are_refused(env: &TestEnv) {
        env.migrate();
        let last_of_9999 = "9999-12-31T23:59:59.999999Z";
        let cases: [(&str, Option<&str>); 8] = [
            ("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00Z")),
            (last_of_9999, Some(last_of_9999)),
            ("9999-12-31T23:59:59.999999999Z", Some(last_of_9999)),
            ("2024-01-01T23:59:59-23:59", Some("2024-01-02T23:58:59Z")),
            ("2016-12-31T23:59:60.5Z", None),
            ("9999-12-31T23:59:60.999999Z", None),
            ("1969-12-31T23:59:59.999999Z", None),
            ("0000-01-01T00:00:00Z", None),
        ];
        for (i, (stamp, expected)) in cases.iter().enumerate() {
            let name = format!("edge-{i}");
            let jobs_before = env.count("jobs");
            let out = env.import_lines(&[GOOD_LINE.replace("2024-01-01T00:00:00Z", stamp).replace("good-1", &name)]);
            let Some(expected) = expected else {
                out.expect_code(65);
                assert!(out.stderr_names_line(1) && out.stderr.contains("created_at"), "{stamp}\n{}", out.describe());
                assert_eq!(env.count("jobs"), jobs_before, "{stamp}: a refused import wrote jobs");
                continue;
            };
            out.expect_code(0);
            let expected = parse_ts(&json!(expected));
            let stored = env.scalar(&format!(
                "SELECT {} FROM jobs WHERE name = {}",
                env.sql_micros("created_at"),
                quote(&name)
            ));
            assert_eq!(stored, expected.timestamp_micros(), "{stamp} is stored as another moment");
            let shown = env.show(&name)["created_at"].clone();
            assert_eq!(parse_ts(&shown), expected, "{stamp} is shown as {shown}");
            let again = format!("{name}-again");
            let line = GOOD_LINE.replace("2024-01-01T00:00:00Z", shown.as_str().expect("text")).replace("good-1", &again);
            env.import_lines(&[line]).expect_code(0);
            assert_eq!(env.show(&again)["created_at"], shown, "{stamp}: shown and imported again");
        }
    }
}

every_engine! {
    /// `--as-of` at the edges of what RFC 3339 can say: a dry run, nothing written.
    fn dry_runs_at_the_edges_of_time(env: &TestEnv) {
        let before = baseline(env);
        for as_of in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2016-12-31T23:59:60Z", "1970-01-01T00:00:00Z"] {
            let out = env.run(&["purge", "--dry-run", "--as-of", as_of, "--output", "json"]);
            refused(env, &out, 0, &before);
        }
        for as_of in ["2024-13-01T00:00:00Z", "yesterday", "99999-01-01T00:00:00Z", "'; DROP TABLE jobs; --"] {
            refused(env, &env.run(&["purge", "--dry-run", "--as-of", as_of]), 2, &before);
        }
    }
}

/// `check-config` with `--config FILE` holding `text` (and extra environment).
fn check_config(env: &TestEnv, text: &[u8], vars: &[(&str, &str)]) -> Out {
    let path = env.dir().join(format!("hostile-{}.toml", fastrand::u64(..)));
    std::fs::write(&path, text).expect("write");
    env.cmd(&["--config", path_str(&path), "check-config"]).envs(vars).run()
}

#[track_caller]
fn config_error(out: &Out, key: &str) {
    out.expect_code(78);
    assert!(out.stderr.contains(key), "the error names {key}\n{}", out.describe());
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
}

#[test]
fn hostile_durations_are_configuration_errors() {
    let env = TestEnv::new(Engine::Sqlite, "hostile_durations").expect("sqlite");
    for value in [
        "99999999999999999999d",
        "1e400s",
        "-5s",
        "0x10s",
        "",
        " ",
        "5",
        "5 parsecs",
        "1h\u{0}",
        "٣s",
        "99999999999999999999999ns",
        "NaN s",
        "∞",
        "'; DROP TABLE jobs; --",
    ] {
        let from_file = format!("[retention]\ncompleted = {}\n", serde_json::to_string(value).expect("string"));
        config_error(&check_config(&env, from_file.as_bytes(), &[]), "retention.completed");
        if !value.contains('\u{0}') {
            let out = env.cmd(&["jobs", "list"]).env("RETENTIOND__RETENTION__COMPLETED", value).run();
            config_error(&out, "retention.completed");
        }
    }
    assert!(!env.dir().join("test.db").exists(), "no command touched the store");
}

#[test]
fn hostile_configuration_files_are_configuration_errors() {
    let env = TestEnv::new(Engine::Sqlite, "hostile_config_files").expect("sqlite");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8", b"[log]\nlevel = \"\xff\xfe\"\n".to_vec()),
        ("a raw NUL byte", b"[log]\nlevel = \"info\0\"\n".to_vec()),
        ("a NUL byte outside a string", b"[log]\0\nlevel = \"info\"\n".to_vec()),
        (
            "deeply nested arrays",
            format!("[log]\nlevel = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        ("deeply nested tables", format!("a = {}1{}\n", "{b=".repeat(10_000), "}".repeat(10_000)).into_bytes()),
        ("a huge integer", b"[retention]\nbatch_size = 99999999999999999999999\n".to_vec()),
        ("a float for an integer", b"[retention]\nbatch_size = 1e400\n".to_vec()),
        ("a duplicated key", b"[retention]\nbatch_size = 1\nbatch_size = 2\n".to_vec()),
        ("random bytes", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
    ];
    for (why, bytes) in cases {
        let out = check_config(&env, &bytes, &[]);
        assert_eq!(out.code, 78, "{why}\n{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{why}\n{}", out.describe());
        assert!(out.stderr.len() < MAX_MESSAGE, "{why}: {} bytes of stderr", out.stderr.len());
    }
    // An environment variable that is not UTF-8.
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .env("RETENTIOND__LOG__LEVEL", std::ffi::OsStr::from_bytes(b"info\xff"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RETENTIOND__LOG__LEVEL"));
}

/// A NUL in any string value of the configuration is a bad value: 78, naming the key.
#[test]
fn configuration_values_with_a_nul_are_refused() {
    let env = TestEnv::new(Engine::Sqlite, "config_nul").expect("sqlite");
    let db = env.dir().join("nul.db");
    let mut accepted = Vec::new();
    for (section, key, value) in [
        ("database", "url", format!("sqlite://{}\u{0}x", path_str(&db))),
        ("schedule", "cron", "0 0 * * * *\u{0}".to_string()),
        ("schedule", "timezone", "UTC\u{0}".to_string()),
        ("metrics", "listen", "127.0.0.1:9464\u{0}".to_string()),
        ("metrics", "pushgateway", "http://g\u{0}w:9091/".to_string()),
        ("log", "format", "json\u{0}".to_string()),
        ("log", "level", "info\u{0}".to_string()),
    ] {
        let dotted = format!("{section}.{key}");
        let text = format!("[{section}]\n{key} = {}\n", serde_json::to_string(&value).expect("string"));
        let path = env.write_file("nul.toml", &text);
        for args in [&["check-config"][..], &["jobs", "list"]] {
            // Not `env.cmd`: its RETENTIOND__DATABASE__URL would override the file's URL.
            let out = Invocation::new(&[&["--config", path_str(&path)][..], args].concat()).cwd(env.dir()).run();
            assert!(!out.stderr.contains("panicked"), "{}", out.describe());
            if out.code != 78 || !out.stderr.contains(&dotted) {
                accepted.push(format!(
                    "{dotted} = {value:?}: `{}` exits {}: {}",
                    args.join(" "),
                    out.code,
                    out.stderr.trim()
                ));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "values with a NUL not refused as configuration (78 naming the key):\n{}",
        accepted.join("\n")
    );
}

every_engine! {
    /// A statement timeout up to the documented 24 days (PostgreSQL's
    /// limit, 2^31 - 1 ms) works with the database; a longer one is refused
    /// as configuration (78, naming the key): never a crashed driver thread
    /// reported as an unreachable database (69).
    fn a_long_statement_timeout_works_or_is_refused(env: &TestEnv) {
        env.migrate();
        for (timeout, code) in [("24d", 0), ("2147483647ms", 0), ("2147483648ms", 78), ("25d", 78), ("365d", 78), ("99999999999y", 78)] {
            let out = env.run_env(&["jobs", "list"], &[("RETENTIOND__DATABASE__STATEMENT_TIMEOUT", timeout)]);
            assert_eq!(out.code, code, "statement_timeout = {timeout}\n{}", out.describe());
            assert!(!out.stderr.contains("panicked"), "statement_timeout = {timeout}\n{}", out.describe());
            if code == 78 {
                assert!(out.stderr.contains("database.statement_timeout"), "{}", out.describe());
            }
        }
    }
}

every_engine! {
    /// A retention of millennia, past what either store's timestamps can
    /// hold before now (PostgreSQL: 4713 BC), is a valid configuration and
    /// sweeps: nothing is that old, so nothing is deleted, and each sweep is
    /// recorded as succeeded. The job is deleted once a retention it has
    /// outlived applies.
    fn a_retention_of_millennia_is_valid_and_sweeps(env: &TestEnv) {
        env.import_ok(&[job("ancient-1", "Completed", "1971-01-01T00:00:00Z".parse().expect("time"))]);
        let vars = |retention| [("RETENTIOND__RETENTION__COMPLETED", retention), ("RETENTIOND__RETENTION__CLOSED", retention)];
        for retention in ["5000y", "7000y", "1000000y", "500000000y"] {
            for args in [&["purge", "--dry-run", "--output", "json"][..], &["purge", "--output", "json"]] {
                let out = env.run_env(args, &vars(retention));
                out.expect_code(0);
                assert_eq!(out.json()["total"], 0, "completed = {retention}\n{}", out.describe());
            }
        }
        assert!(env.job_exists("ancient-1"));
        assert_eq!(env.count("retention_runs WHERE status = 'succeeded'"), 4, "one succeeded run per purge");
        let out = env.run_env(&["purge", "--output", "json"], &vars("50y"));
        out.expect_code(0);
        assert_eq!(out.json()["total"], 1, "{}", out.describe());
        assert!(!env.job_exists("ancient-1"));
    }
}

#[test]
fn check_config_prints_durations_that_load_back() {
    let env = TestEnv::new(Engine::Sqlite, "config_round_trip").expect("sqlite");
    for grace in ["90d", "1h 30m", "1M", "584y", "600y 1ns", "18446744073709551615s 999999999ns"] {
        let out = env.cmd(&["check-config"]).env("RETENTIOND__SHUTDOWN__GRACE", grace).run();
        out.expect_code(0);
        let again = check_config(&env, out.stdout.as_bytes(), &[]);
        assert_eq!(
            again.code,
            0,
            "grace = {grace} printed as\n{}\ndoes not load back:\n{}",
            out.stdout,
            again.describe()
        );
        assert_eq!(again.stdout, out.stdout, "grace = {grace}");
    }
}

/// A `log.level` filter with a non-ASCII character after whitespace (found
/// by `log_level_flag_survives_arbitrary_text`, minimal input "\nnullΣ[")
/// once crashed the parser. Spaces around directives are now dropped, so
/// "info, é=debug" is an ordinary filter; with a control character it is a
/// bad value: 78, naming the key or the flag — from the flag, the
/// environment and the file alike.
#[test]
fn a_log_level_with_non_ascii_after_whitespace_is_a_configuration_error() {
    let env = TestEnv::new(Engine::Sqlite, "log_level_non_ascii").expect("sqlite");
    env.run(&["--log-level", "info, é=debug", "check-config"]).expect_code(0);
    for level in ["\nnullΣ[", "warn,\tü=info"] {
        let out = env.run(&["--log-level", level, "check-config"]);
        config_error(&out, "--log-level");
        let out = env.cmd(&["jobs", "list"]).env("RETENTIOND__LOG__LEVEL", level).run();
        config_error(&out, "log.level");
        let text = format!("[log]\nlevel = {}\n", serde_json::to_string(level).expect("string"));
        config_error(&check_config(&env, text.as_bytes(), &[]), "log.level");
    }
}

/// SIGHUP with such a file: the reload is refused and the daemon keeps
/// running (docs/design.md, "The daemon": "an invalid one is refused with an error and the old
/// one stays").
#[test]
fn sighup_with_a_hostile_log_level_keeps_the_daemon_running() {
    let env = TestEnv::new(Engine::Sqlite, "sighup_hostile_log_level").expect("sqlite");
    env.migrate();
    let port = free_port();
    let config = env.dir().join("retentiond.toml");
    let text = |level: &str| {
        format!(
            "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nformat = \"json\"\nlevel = {}\n",
            serde_json::to_string(level).expect("string")
        )
    };
    std::fs::write(&config, text("info")).expect("write");
    let daemon = env.cmd(&["--config", path_str(&config), "run"]).spawn_daemon();
    assert!(wait_until(Duration::from_secs(30), || readyz_is(port, 200)), "{}", daemon.describe());
    std::fs::write(&config, text("\nnullΣ[")).expect("write");
    daemon.signal("HUP");
    let refused = "configuration reload refused; the previous configuration stays in force";
    let logged = wait_until(Duration::from_secs(10), || daemon.logged(refused) == 1 || !daemon.is_running());
    assert!(logged && daemon.is_running(), "the daemon must refuse the file and keep running\n{}", daemon.describe());
    assert!(readyz_is(port, 200), "{}", daemon.describe());
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30)).expect_code(0);
}
