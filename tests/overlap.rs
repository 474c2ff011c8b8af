//! docs/design.md, several sweeps at once: a one-shot `purge` started while
//! a running daemon's sweep is between its batches, on one server store.
//! Each eligible job is deleted once, with one audit row; both runs succeed
//! and count what they audited; no error or warning reaches the operator.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Lines of a JSON log at ERROR or WARN.
fn complaints(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|l| matches!(l["level"].as_str(), Some("ERROR" | "WARN")))
        })
        .map(str::to_string)
        .collect()
}

every_engine_with! { ConcurrentSweeps;
    fn a_purge_overlapping_a_daemon_sweep_deletes_each_job_once(env: &TestEnv) {
        let total = 60;
        let mut jobs: Vec<Value> = (0..total).map(|i| job(&format!("both-{i:02}"), "Completed", days_ago(200 - i))).collect();
        jobs.push(job("young", "Completed", days_ago(5)));
        env.import_ok(&jobs);

        // The daemon sweeps once at start, 2 jobs a batch, 100 ms apart: about 3 s.
        let port = free_port();
        let daemon = env
            .daemon_cmd(port, "0 0 0 1 1 *")
            .env("RETENTIOND__SCHEDULE__RUN_ON_START", "true")
            .env("RETENTIOND__RETENTION__BATCH_SIZE", "2")
            .env("RETENTIOND__RETENTION__BATCH_PAUSE", "100ms")
            .spawn_daemon();
        let started = wait_until(Duration::from_secs(30), || env.count("retention_audit") >= 4);
        assert!(started, "the daemon's sweep did not start\n{}", daemon.describe());

        let out = env.cmd(&["purge", "--batch-size", "3", "--output", "json"]).env("RETENTIOND__LOG__FORMAT", "json").run();
        out.expect_code(0);
        let purged = out.json()["total"].as_i64().expect("total");
        assert_eq!(
            env.count("retention_runs WHERE status = 'running'"),
            1,
            "the daemon's sweep was still running when the purge ended: they overlapped\n{}",
            daemon.describe()
        );
        let finished = wait_until(Duration::from_secs(30), || env.count("retention_runs WHERE status = 'running'") == 0);
        assert!(finished, "the daemon's sweep did not finish\n{}", daemon.describe());
        // Its log up to the end of the sweep (SIGTERM then warns, as it should).
        let daemon_log = daemon.stderr();
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(15)).expect_code(0);

        assert!(purged > 0 && purged < total, "the purge took {purged} of {total}: both deleted some");
        assert_eq!(env.count("retention_audit"), total, "one audit row per eligible job");
        assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), total, "each job once");
        assert_eq!(env.job_names(), ["young"]);
        let runs = env.records(
            "SELECT r.id, r.status, r.deleted_completed, (SELECT count(*) FROM retention_audit a WHERE a.run_id = r.id) AS audited \
             FROM retention_runs r ORDER BY r.id",
        );
        assert_eq!(runs.len(), 2, "{runs:?}");
        for run in &runs {
            assert_eq!(run["status"], "succeeded", "{runs:?}");
            assert_eq!(run["deleted_completed"], run["audited"], "{runs:?}");
        }
        assert!(complaints(&out.stderr).is_empty(), "the purge complained:\n{}", out.stderr);
        assert!(complaints(&daemon_log).is_empty(), "the daemon complained:\n{daemon_log}");
    }
}
