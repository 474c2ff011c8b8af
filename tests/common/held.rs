//! What the pacing tests (tests/pacing.rs, tests/mariadb_pacing.rs) check of
//! a purge whose replica they hold back: the audit rows counted while it was
//! held, and the log lines of the pauses.

use std::time::Duration;

use serde_json::Value;

use super::run::Out;

/// The audit rows counted while a replica was held (`samples`: time since
/// it was held, rows), from `settled` on: at least 20 samples, all the same
/// count, short of the `eligible` jobs. `held`: how the replica was held, for
/// the messages.
#[track_caller]
pub fn assert_still_while_held(samples: &[(Duration, i64)], settled: Duration, eligible: i64, out: &Out, held: &str) {
    let still: Vec<i64> = samples.iter().filter(|(at, _)| *at >= settled).map(|&(_, rows)| rows).collect();
    let described = || format!("audit rows (seconds since {held}, rows): {samples:?}\n{}", out.describe());
    assert!(still.len() >= 20, "too few samples while {held}: {}", described());
    assert!(still.iter().all(|&rows| rows == still[0]), "a batch committed while {held}: {}", described());
    assert!(still[0] < eligible, "the purge was done before {held}: {}", described());
}

/// The log lines of the pauses that started.
pub fn pauses(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("sweep paused")))
        .collect()
}
