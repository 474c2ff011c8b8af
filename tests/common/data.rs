//! Test data: jobs to import, timestamps as the stores keep them, and the
//! small readers of the binary's JSON output.

use std::ffi::OsStr;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, SubsecRound, Timelike, Utc};
use serde_json::{Value, json};

/// The four tables of the store, in a fixed order.
pub const TABLES: [&str; 4] = ["jobs", "job_drives", "retention_runs", "retention_audit"];

/// All job states, in lifecycle order.
pub const STATES: [&str; 7] = ["Creating", "Shipping", "Received", "Transferring", "Packaging", "Completed", "Closed"];

/// SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// RFC 3339 UTC with microseconds, the precision both stores keep.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 timestamp from JSON output.
#[track_caller]
pub fn parse_ts(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp string: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("not RFC 3339: {s}: {e}")).to_utc()
}

/// Now, truncated to whole seconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// `days` days before now (whole seconds).
pub fn days_ago(days: i64) -> DateTime<Utc> {
    now() - chrono::Duration::days(days)
}

/// A time zone without daylight saving and half an hour off UTC, so that a
/// window read in UTC instead would lie 5 h 30 min off.
pub const WINDOW_ZONE: &str = "Asia/Kolkata";

/// A `schedule.window` from `start` to `end` (whole seconds) on the wall
/// clock of [`WINDOW_ZONE`]: tests place windows around the current time
/// instead of waiting for one.
pub fn window_between(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let zone: chrono_tz::Tz = WINDOW_ZONE.parse().expect("a zone");
    // Seconds only where a bound has them, as the daemon logs a window
    // (src/scheduler/window.rs): a test compares the two.
    let wall = |at: DateTime<Utc>| {
        let local = at.with_timezone(&zone);
        local.format(if local.second() == 0 { "%H:%M" } else { "%H:%M:%S" }).to_string()
    };
    format!("{}-{}", wall(start), wall(end))
}

/// A job left in `Creating` (an Export) whose last update was `idle_days` ago.
pub fn creating_job(name: &str, idle_days: i64) -> Value {
    let updated = days_ago(idle_days);
    json!({
        "name": name,
        "job_type": "Export",
        "state": "Creating",
        "created_at": ts(updated - chrono::Duration::days(3)),
        "updated_at": ts(updated),
        "state_changed_at": ts(updated - chrono::Duration::days(3)),
    })
}

/// A job for `jobs import`: type Import, created 10 days before it entered
/// `state` at `changed_at`, last updated then. Adjust fields with [`set`].
pub fn job(name: &str, state: &str, changed_at: DateTime<Utc>) -> Value {
    json!({
        "name": name,
        "job_type": "Import",
        "state": state,
        "created_at": ts(changed_at - chrono::Duration::days(10)),
        "updated_at": ts(changed_at),
        "state_changed_at": ts(changed_at),
    })
}

/// `value` with `key` set.
pub fn set(mut value: Value, key: &str, v: Value) -> Value {
    value[key] = v;
    value
}

/// `n` drives `<prefix>-d<i>` in state `state` with some bytes.
pub fn drives(prefix: &str, n: usize, state: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"drive_id": format!("{prefix}-d{i}"), "state": state, "bytes": 1000 * (i as i64 + 1)}))
            .collect(),
    )
}

/// The `name`s of a JSON array of jobs.
#[track_caller]
pub fn names(jobs: &Value) -> Vec<String> {
    jobs.as_array()
        .unwrap_or_else(|| panic!("not an array: {jobs}"))
        .iter()
        .map(|j| j["name"].as_str().unwrap_or_else(|| panic!("job without name: {j}")).to_string())
        .collect()
}

/// The `job_name`s of a JSON array of audit entries.
#[track_caller]
pub fn audit_names(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {entries}"))
        .iter()
        .map(|e| e["job_name"].as_str().unwrap_or_else(|| panic!("entry without job_name: {e}")).to_string())
        .collect()
}

/// The `jobs` list of a dry-run summary.
#[track_caller]
pub fn dry_run_names(summary: &Value) -> Vec<String> {
    summary["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("dry-run summary without a jobs array: {summary}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_else(|| panic!("job name not a string: {n}")).to_string())
        .collect()
}

/// Sorted copy, for comparisons where order does not matter.
pub fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The host name as the binary records it.
pub fn hostname() -> String {
    whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".into())
}

/// Whether `s` contains `needle`, ignoring ASCII case.
pub fn contains_ci(s: &str, needle: &str) -> bool {
    s.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

/// Helper for `OsStr` → `&str` in paths.
pub fn path_str(p: &Path) -> &str {
    p.as_os_str().to_str().unwrap_or_else(|| panic!("non UTF-8 path {:?}", OsStr::new(p)))
}
