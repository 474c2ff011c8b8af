//! docs/design.md, "A sweep": a sweep — what a real purge deletes and records, dry runs,
//! `--max-deletes`, batches, run_timeout, `schedule.window`, stale runs, concurrent sweeps
//! (docs/design.md promises them for PostgreSQL; the SQLite variant checks that
//! BEGIN IMMEDIATE and the busy timeout serialize them) and failures.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::{Value, json};

const IDLE_14D: (&str, &str) = ("RETENTIOND__RETENTION__CREATING_IDLE", "14d");

/// A finished job (`state`) that entered its state `age` before now.
fn aged(name: &str, state: &str, age: Duration) -> Value {
    job(name, state, now() - age)
}

/// Reads the one `retention_runs` row of `run_id` as a record.
#[track_caller]
fn run_row(env: &TestEnv, run_id: &Value) -> BTreeMap<String, Value> {
    let id = run_id.as_i64().unwrap_or_else(|| panic!("run_id is not an integer: {run_id}"));
    let rows = env.records(&format!("SELECT * FROM retention_runs WHERE id = {id}"));
    assert_eq!(rows.len(), 1, "run row {id}");
    rows.into_iter().next().unwrap()
}

fn names_set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

every_engine! {
    /// A real purge: jobs and their drives gone, one audit row per job with
    /// the right policy, state, run id and copied fields; a `succeeded` run row
    /// with the counts; the name can be used again.
    fn real_purge_deletes_jobs_drives_and_audits_each_once(env: &TestEnv) {
        let started = now() - Duration::seconds(2);
        let eligible = vec![
            set(aged("done-1", "Completed", Duration::days(300)), "drives", drives("done-1", 3, "ShippedBack")),
            set(set(aged("done-2", "Completed", Duration::days(250)), "cancel_requested", json!(true)), "cancel_requested_at", json!(ts(days_ago(260)))),
            set(set(aged("done-3", "Completed", Duration::days(150)), "job_type", json!("Export")), "drives", drives("done-3", 1, "Completed")),
            set(aged("closed-1", "Closed", Duration::days(280)), "drives", drives("closed-1", 2, "NeverReceived")),
            aged("closed-2", "Closed", Duration::days(120)),
            set(creating_job("idle-1", 40), "drives", drives("idle-1", 1, "Specified")),
        ];
        let keepers = [
            set(aged("k-recent", "Completed", Duration::days(10)), "drives", drives("k-recent", 2, "ShippedBack")),
            set(aged("k-transferring", "Transferring", Duration::days(400)), "drives", drives("k-transferring", 2, "Transferring")),
            set(set(aged("k-held", "Completed", Duration::days(400)), "hold_reason", json!("keep")), "drives", drives("k-held", 1, "ShippedBack")),
            aged("k-closed-young", "Closed", Duration::days(30)),
            creating_job("k-creating-fresh", 3),
        ];
        let mut all = eligible.clone();
        all.extend(keepers.iter().cloned());
        env.import_ok(&all);
        assert_eq!(env.count("job_drives"), 3 + 1 + 2 + 1 + 2 + 2 + 1);

        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["dry_run"], false, "{s}");
        assert!(s["run_id"].is_i64(), "a real purge has a run id: {s}");
        assert_eq!(s["counts"], json!({"completed": 3, "closed": 2, "creating_idle": 1, "retain_until": 0}), "{s}");
        assert_eq!(s["total"], 6, "{s}");
        assert_eq!(s["stopped_by"], "done", "{s}");
        assert_eq!(s["skipped_future"], 0, "{s}");
        assert!(s["duration_ms"].is_u64(), "{s}");
        assert!(s.get("jobs").is_none_or(Value::is_null), "jobs are listed only on a dry run: {s}");
        let run_id = s["run_id"].clone();

        // Jobs and drives.
        let kept: BTreeSet<String> = env.job_names().into_iter().collect();
        assert_eq!(kept, names_set(&["k-recent", "k-transferring", "k-held", "k-closed-young", "k-creating-fresh"]));
        assert_eq!(env.count("job_drives"), 2 + 2 + 1, "drives of deleted jobs must be gone");
        assert_eq!(env.count("job_drives WHERE job_id NOT IN (SELECT id FROM jobs)"), 0);

        // Audit rows: exactly one per deleted job, with the job's fields.
        assert_eq!(env.count("retention_audit"), 6);
        assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), 6);
        let expected_policy = |state: &str| match state {
            "Completed" => "completed",
            "Closed" => "closed",
            _ => "creating_idle",
        };
        for j in &eligible {
            let name = j["name"].as_str().unwrap();
            let rows = env.audit_rows(name);
            assert_eq!(rows.len(), 1, "{name}: {rows:?}");
            assert_eq!(rows[0]["run_id"], run_id, "{name}");
            assert_eq!(rows[0]["state"], j["state"], "{name}");
            assert_eq!(rows[0]["policy"], json!(expected_policy(j["state"].as_str().unwrap())), "{name}");
        }
        let entries = env.json(&["audit", "list", "--run", &run_id.to_string(), "--limit", "0"]);
        assert_eq!(entries.as_array().map(Vec::len), Some(6), "{entries}");
        for e in entries.as_array().unwrap() {
            let j = eligible.iter().find(|j| j["name"] == e["job_name"]).unwrap_or_else(|| panic!("unexpected entry {e}"));
            assert_eq!(e["run_id"], run_id, "{e}");
            assert_eq!(e["job_type"], j["job_type"], "{e}");
            assert_eq!(e["state"], j["state"], "{e}");
            assert_eq!(e["cancel_requested"], json!(j.get("cancel_requested") == Some(&json!(true))), "{e}");
            assert_eq!(parse_ts(&e["created_at"]), parse_ts(&j["created_at"]), "{e}");
            assert_eq!(parse_ts(&e["state_changed_at"]), parse_ts(&j["state_changed_at"]), "{e}");
            assert!(parse_ts(&e["deleted_at"]) >= started, "{e}");
            assert!(e["deleted_by"].as_str().is_some_and(|s| s.contains(&hostname())), "deleted_by names the host: {e}");
        }

        // The run record.
        let row = run_row(env, &run_id);
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(row["deleted_completed"], 3, "{row:?}");
        assert_eq!(row["deleted_closed"], 2, "{row:?}");
        assert_eq!(row["deleted_creating_idle"], 1, "{row:?}");
        assert_eq!(row["stopped_by"], "done", "{row:?}");
        assert_eq!(row["error"], Value::Null, "{row:?}");
        assert_ne!(row["finished_at"], Value::Null, "{row:?}");
        assert_eq!(row["host"], json!(hostname()), "{row:?}");
        let runs = env.json(&["runs", "list"]);
        assert_eq!(runs[0]["run_id"], run_id, "{runs}");
        assert_eq!(runs[0]["status"], "succeeded", "{runs}");
        assert_eq!(runs[0]["counts"], json!({"completed": 3, "closed": 2, "creating_idle": 1, "retain_until": 0}), "{runs}");
        assert_eq!(runs[0]["total"], 6, "{runs}");
        assert_eq!(runs[0]["stopped_by"], "done", "{runs}");
        assert!(runs[0]["finished_at"].is_string(), "{runs}");

        // A deleted job is not found, and its name is free again.
        env.run(&["jobs", "show", "done-1"]).expect_code(3);
        let j = env.json(&["jobs", "create", "done-1", "--type", "import"]);
        assert_eq!(j["state"], "Creating");
        assert_eq!(j["drives"], json!([]), "the new c1 must not inherit the old drives");
        assert_eq!(env.show("done-1")["drives"], json!([]));

        // Nothing left: the next purge deletes nothing and is recorded too.
        let s2 = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s2["total"], 0, "{s2}");
        assert_ne!(s2["run_id"], run_id);
        let runs = env.json(&["runs", "list"]);
        assert_eq!(runs[0]["run_id"], s2["run_id"], "newest first: {runs}");
        assert_eq!(runs[1]["run_id"], run_id, "newest first: {runs}");
        assert_eq!(env.count("retention_audit"), 6);
    }
}

every_engine! {
    /// A dry run writes nothing (all four tables identical before and
    /// after) and lists the jobs in deletion order, most overdue first across policies (the age past the policy's retention).
    fn dry_run_writes_nothing_and_lists_in_deletion_order(env: &TestEnv) {
        // Some history first, so that runs and audit are not empty.
        env.import_ok(&[aged("history", "Completed", Duration::days(200))]);
        assert_eq!(env.json(&["purge"])["total"], 1);

        env.import_ok(&[
            set(aged("a-completed-300", "Completed", Duration::days(300)), "drives", drives("a", 2, "ShippedBack")),
            aged("b-closed-290", "Closed", Duration::days(290)),
            creating_job("c-creating-280", 280),
            aged("d-completed-200", "Completed", Duration::days(200)),
            set(aged("e-closed-150", "Closed", Duration::days(150)), "drives", drives("e", 1, "NeverReceived")),
            creating_job("f-creating-100", 100),
            aged("g-completed-91", "Completed", Duration::days(91)),
            aged("young", "Completed", Duration::days(5)),
            set(aged("held", "Completed", Duration::days(500)), "hold_reason", json!("keep")),
            aged("transferring", "Transferring", Duration::days(500)),
        ]);
        let before = env.dump_all();

        let s = env.json(&["purge", "--dry-run"]);
        assert_eq!(s["dry_run"], true, "{s}");
        assert_eq!(s["run_id"], Value::Null, "{s}");
        assert_eq!(dry_run_names(&s), vec!["a-completed-300", "b-closed-290", "d-completed-200", "e-closed-150", "g-completed-91"], "{s}");
        assert_eq!(s["counts"], json!({"completed": 3, "closed": 2, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_eq!(s["total"], 5, "{s}");
        let a_changed = parse_ts(&env.show("a-completed-300")["state_changed_at"]);
        assert_eq!(parse_ts(&s["oldest_eligible_at"]), a_changed, "oldest_eligible_at is a-completed-300's: {s}");

        // Most overdue first: age beyond the policy's retention (idle 14 d, else 90 d).
        let s = env.json_env(&["purge", "--dry-run"], &[IDLE_14D]);
        assert_eq!(
            dry_run_names(&s),
            vec!["c-creating-280", "a-completed-300", "b-closed-290", "d-completed-200", "f-creating-100", "e-closed-150", "g-completed-91"],
            "{s}"
        );
        assert_eq!(s["counts"], json!({"completed": 3, "closed": 2, "creating_idle": 2, "retain_until": 0}), "{s}");

        let s = env.json(&["purge", "--dry-run", "--as-of", &ts(now() + Duration::days(365))]);
        assert!(dry_run_names(&s).contains(&"young".to_string()), "{s}");
        assert!(!dry_run_names(&s).contains(&"held".to_string()), "{s}");
        env.run(&["purge", "--dry-run"]).expect_code(0);
        env.run(&["purge", "--dry-run", "--max-deletes", "2", "--batch-size", "1", "--output", "json"]).expect_code(0);

        // --as-of without --dry-run is a usage error and does nothing.
        let out = env.run(&["purge", "--as-of", &ts(now())]);
        out.expect_code(2);

        assert_eq!(env.dump_all(), before, "a dry run changed the database");
    }
}

every_engine! {
    /// `--max-deletes N` deletes exactly the N oldest eligible jobs, whatever the batch size.
    fn max_deletes_takes_the_oldest_first(env: &TestEnv) {
        let eligible: Vec<String> = (0..10).map(|i| format!("el-{i}")).collect();
        let mut jobs = Vec::new();
        for (i, name) in eligible.iter().enumerate() {
            // e0 is the oldest; Completed and Closed interleave.
            let state = if i % 2 == 0 { "Completed" } else { "Closed" };
            jobs.push(set(aged(name, state, Duration::days(400 - 30 * i as i64)), "drives", drives(name, 1, "ShippedBack")));
        }
        jobs.push(aged("young", "Completed", Duration::days(3)));
        jobs.push(aged("busy", "Transferring", Duration::days(900)));
        // Import youngest first, so that insertion order is not the age order.
        jobs.reverse();
        env.import_ok(&jobs);

        let s = env.json(&["purge", "--max-deletes", "3", "--batch-size", "2"]);
        assert_eq!(s["total"], 3, "{s}");
        assert_eq!(s["stopped_by"], "max_deletes", "{s}");
        assert_eq!(s["counts"], json!({"completed": 2, "closed": 1, "creating_idle": 0, "retain_until": 0}), "{s}");
        let deleted: BTreeSet<String> = audit_names(&env.json(&["audit", "list", "--limit", "0"])).into_iter().collect();
        assert_eq!(deleted, names_set(&["el-0", "el-1", "el-2"]));
        let row = run_row(env, &s["run_id"]);
        assert_eq!(row["stopped_by"], "max_deletes", "{row:?}");
        assert_eq!(row["status"], "succeeded", "{row:?}");

        let s = env.json(&["purge", "--max-deletes", "4", "--batch-size", "1000"]);
        assert_eq!(s["total"], 4, "{s}");
        assert_eq!(s["stopped_by"], "max_deletes", "{s}");
        let deleted: BTreeSet<String> = audit_names(&env.json(&["audit", "list", "--run", &s["run_id"].to_string()])).into_iter().collect();
        assert_eq!(deleted, names_set(&["el-3", "el-4", "el-5", "el-6"]));

        let cap1 = ("RETENTIOND__RETENTION__MAX_DELETES_PER_RUN", "1");
        let s = env.json_env(&["purge"], &[cap1]);
        assert_eq!(s["total"], 1, "retention.max_deletes_per_run caps a run too: {s}");
        assert_eq!(s["stopped_by"], "max_deletes", "{s}");
        assert!(!env.job_exists("el-7") && env.job_exists("el-8") && env.job_exists("el-9"));

        // --max-deletes 0 means no cap, overriding the configuration.
        let s = env.json_env(&["purge", "--max-deletes", "0", "--batch-size", "1"], &[cap1]);
        assert_eq!(s["total"], 2, "{s}");
        assert_eq!(s["stopped_by"], "done", "{s}");
        assert_eq!(sorted(&env.job_names()), vec!["busy", "young"]);
        assert_eq!(env.count("job_drives"), 0);
    }
}

every_engine! {
    /// The same store purged with `--batch-size 1` and `--batch-size 1000`
    /// ends in the same state, capped or not.
    fn batch_size_does_not_change_the_result(env: &TestEnv) {
        let mut jobs = Vec::new();
        for i in 0..25_i64 {
            let name = format!("j{i:02}");
            let j = match i % 3 {
                0 => aged(&name, "Completed", Duration::days(100 + 7 * i) + Duration::seconds(i)),
                1 => aged(&name, "Closed", Duration::days(100 + 7 * i) + Duration::seconds(i)),
                _ => creating_job(&name, 20 + 7 * i),
            };
            jobs.push(set(j, "drives", drives(&name, (i % 3) as usize, "Specified")));
        }
        jobs.push(aged("young", "Completed", Duration::days(2)));
        jobs.push(set(aged("held", "Closed", Duration::days(365)), "hold_reason", json!("keep")));

        let other = env.sibling();
        let mut outcomes = Vec::new();
        for (store, batch) in [(env, "1"), (&other, "1000")] {
            store.import_ok(&jobs);
            let s = store.json_env(&["purge", "--max-deletes", "17", "--batch-size", batch], &[IDLE_14D]);
            assert_eq!(s["total"], 17, "{s}");
            assert_eq!(s["stopped_by"], "max_deletes", "{s}");
            let audit: BTreeSet<(String, String, String)> = store
                .json(&["audit", "list", "--limit", "0"])
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["job_name"].as_str().unwrap().into(), e["policy"].as_str().unwrap().into(), e["state"].as_str().unwrap().into()))
                .collect();
            outcomes.push((s["counts"].clone(), store.job_names(), audit, store.count("job_drives")));
        }
        assert_eq!(outcomes[0], outcomes[1], "batch size 1 and 1000 disagree");
        // The survivors are the least overdue: the 17 deleted are the 17 that
        // became eligible first (age timestamp plus the policy's retention).
        let mut by_eligible: Vec<(chrono::DateTime<chrono::Utc>, String)> = jobs[..25]
            .iter()
            .map(|j| {
                let (key, retention) = if j["state"] == "Creating" {
                    (&j["updated_at"], Duration::days(14))
                } else {
                    (&j["state_changed_at"], Duration::days(90))
                };
                (parse_ts(key) + retention, j["name"].as_str().unwrap().to_string())
            })
            .collect();
        by_eligible.sort();
        let first17: BTreeSet<String> = by_eligible[..17].iter().map(|(_, n)| n.clone()).collect();
        let deleted: BTreeSet<String> = outcomes[0].2.iter().map(|(n, _, _)| n.clone()).collect();
        assert_eq!(deleted, first17);

        for (store, batch) in [(env, "7"), (&other, "1000")] {
            let s = store.json_env(&["purge", "--batch-size", batch], &[IDLE_14D]);
            assert_eq!(s["total"], 8, "{s}");
            assert_eq!(s["stopped_by"], "done", "{s}");
            assert_eq!(sorted(&store.job_names()), vec!["held", "young"]);
            assert_eq!(store.count("retention_audit"), 25);
        }
    }
}

every_engine! {
    /// A `running` run row whose process is gone is marked `abandoned` by the
    /// next purge, whether it finds nothing to delete (its run recorded begun
    /// and finished at once) or deletes (a dry run writes nothing, so it
    /// leaves the row alone).
    fn stale_running_run_is_marked_abandoned(env: &TestEnv) {
        env.migrate();
        let stale_run = |pid: i64| {
            env.execute(&format!(
                "INSERT INTO retention_runs ({}, status, started_at, host, pid, process_started) \
                 VALUES ('purge', 'running', {}, {}, {pid}, 12345)",
                env.sql_column("trigger"),
                env.sql_seconds_ago(3600),
                quote(&hostname())
            ));
            env.scalar(&format!("SELECT id FROM retention_runs WHERE pid = {pid}"))
        };
        let status = |id: i64| env.strings(&format!("SELECT status FROM retention_runs WHERE id = {id}"));

        let before_idle = stale_run(999_999_998);
        env.json(&["purge", "--dry-run"]);
        assert_eq!(status(before_idle), vec!["running"]);
        let idle = env.json(&["purge"]);
        assert_eq!((idle["total"].clone(), idle["stopped_by"].clone()), (json!(0), json!("done")), "{idle}");
        assert_eq!(status(before_idle), vec!["abandoned"], "the idle purge must mark the stale run abandoned");
        let idle_run = run_row(env, &idle["run_id"]);
        assert_eq!((idle_run["status"].clone(), idle_run["stopped_by"].clone()), (json!("succeeded"), json!("done")));
        let runs = env.json(&["runs", "list", "--limit", "0"]);
        let listed = runs.as_array().unwrap().iter().find(|r| r["run_id"] == idle["run_id"]).expect("idle run listed");
        let at = |key: &str| chrono::DateTime::parse_from_rfc3339(listed[key].as_str().unwrap()).unwrap();
        assert!(at("started_at") <= at("finished_at"), "{listed}");
        assert_eq!(listed["total"], 0, "{listed}");

        let stale_id = stale_run(999_999_999);
        env.import_ok(&[aged("old", "Completed", Duration::days(100))]);
        let s = env.json(&["purge"]);
        assert_eq!(s["total"], 1, "{s}");
        assert_eq!(status(stale_id), vec!["abandoned"], "the stale run must be marked abandoned");
        assert_eq!(run_row(env, &s["run_id"])["status"], "succeeded");
        let runs = env.json(&["runs", "list", "--limit", "0"]);
        let stale = runs.as_array().unwrap().iter().find(|r| r["run_id"] == json!(stale_id)).expect("stale run listed");
        assert_eq!(stale["status"], "abandoned", "{runs}");
        assert_eq!(env.count("retention_runs WHERE status = 'running'"), 0);
    }
}

/// Installs a trigger that makes the audit insert of the job named `poison` fail.
fn install_poison_trigger(env: &TestEnv) {
    env.migrate();
    env.execute(&env.sql_poison_audit(Some("poison")));
}

fn remove_poison_trigger(env: &TestEnv) {
    env.execute(env.sql_cure_audit());
}

every_engine! {
    /// A failure in the third batch: the two committed batches stay deleted
    /// and audited; the failed batch's jobs (older and younger than the
    /// poison) and everything after it stay, with drives and no audit rows;
    /// exit 1; the run is `failed` with an error.
    fn failure_mid_batch_rolls_back_that_batch_only(env: &TestEnv) {
        install_poison_trigger(env);
        // Oldest first: job-a1..a6 (batches 1 and 2), job-a7 poison job-a8 (batch 3), job-a9 job-a10.
        let order = ["job-a1", "job-a2", "job-a3", "job-a4", "job-a5", "job-a6", "job-a7", "poison", "job-a8", "job-a9", "job-a10"];
        let jobs: Vec<Value> = order
            .iter()
            .enumerate()
            .map(|(i, name)| set(aged(name, "Completed", Duration::days(300 - 10 * i as i64)), "drives", drives(name, 2, "ShippedBack")))
            .collect();
        env.import_ok(&jobs);

        let out = env.run(&["purge", "--batch-size", "3", "--output", "json"]);
        out.expect_code(1);

        for name in &order[..6] {
            assert!(!env.job_exists(name), "{name} was in a committed batch\n{}", out.describe());
            assert_eq!(env.audit_rows(name).len(), 1, "{name} was in a committed batch");
        }
        for name in &order[6..] {
            assert!(env.job_exists(name), "{name} must still be present\n{}", out.describe());
            assert!(env.audit_rows(name).is_empty(), "{name} must have no audit row");
        }
        assert_eq!(env.count("job_drives"), 2 * 5, "drives of the failed batch must be intact");
        assert_eq!(env.count("retention_audit"), 6);

        let runs = env.records("SELECT * FROM retention_runs");
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0]["status"], "failed", "{runs:?}");
        assert!(runs[0]["error"].as_str().is_some_and(|e| !e.is_empty()), "a failed run records its error: {runs:?}");
        assert_eq!(runs[0]["deleted_completed"], 6, "the run counts what was committed: {runs:?}");
        let audited_runs = env.rows("SELECT DISTINCT run_id FROM retention_audit");
        assert_eq!(audited_runs, vec![vec![runs[0]["id"].clone()]]);
        let listed = env.json(&["runs", "list"]);
        assert_eq!(listed[0]["status"], "failed", "{listed}");
        assert!(listed[0]["error"].is_string(), "{listed}");

        // Without the fault the next purge finishes the job.
        remove_poison_trigger(env);
        let s = env.json(&["purge", "--batch-size", "3"]);
        assert_eq!(s["total"], 5, "{s}");
        assert_eq!(env.count("jobs"), 0);
        assert_eq!(env.count("retention_audit"), 11);
        assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), 11);
    }
}

every_engine! {
    /// A failure inside the only batch deletes nothing at all.
    fn failure_in_the_only_batch_deletes_nothing(env: &TestEnv) {
        install_poison_trigger(env);
        let mut jobs: Vec<Value> = (0..5).map(|i| aged(&format!("older{i}"), "Closed", Duration::days(200 + i))).collect();
        jobs.push(set(aged("poison", "Completed", Duration::days(150)), "drives", drives("poison", 1, "ShippedBack")));
        jobs.extend((0..3).map(|i| set(aged(&format!("younger{i}"), "Completed", Duration::days(100 + i)), "drives", drives(&format!("y{i}"), 1, "ShippedBack"))));
        env.import_ok(&jobs);
        let before = env.dump("jobs");
        let drives_before = env.dump("job_drives");

        let out = env.run(&["purge"]);
        out.expect_code(1);
        assert!(!out.stderr.is_empty(), "a failure is reported on stderr");
        assert_eq!(env.dump("jobs"), before, "the failed batch must roll back completely\n{}", out.describe());
        assert_eq!(env.dump("job_drives"), drives_before);
        assert_eq!(env.count("retention_audit"), 0);
        let runs = env.records("SELECT * FROM retention_runs");
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0]["status"], "failed", "{runs:?}");
        assert_eq!(runs[0]["deleted_completed"], 0, "{runs:?}");
        assert_eq!(runs[0]["deleted_closed"], 0, "{runs:?}");
    }
}

every_engine! {
    /// Three purges at once over 2000 eligible jobs: all succeed, each job is
    /// deleted once with exactly one audit row, and the runs' totals add up.
    fn three_concurrent_purges_delete_each_job_once(env: &TestEnv) {
        let mut jobs = Vec::new();
        for i in 0..2000_i64 {
            let name = format!("conc-{i:04}");
            let state = if i % 4 == 3 { "Closed" } else { "Completed" };
            let mut j = aged(&name, state, Duration::days(100) + Duration::minutes(i));
            if i % 10 == 0 {
                j = set(j, "drives", drives(&name, 2, "ShippedBack"));
            }
            jobs.push(j);
        }
        for i in 0..20 {
            jobs.push(set(aged(&format!("keep-{i}"), "Completed", Duration::days(5)), "drives", drives(&format!("keep-{i}"), 1, "ShippedBack")));
        }
        env.import_ok(&jobs);
        env.migrate();

        let running: Vec<Running> =
            (0..3).map(|_| env.cmd(&["purge", "--batch-size", "20", "--output", "json"]).spawn()).collect();
        let outs: Vec<Out> = running.into_iter().map(Running::wait).collect();
        let mut total = 0;
        let mut totals = Vec::new();
        for out in &outs {
            out.expect_code(0);
            let s = out.json();
            assert_eq!(s["stopped_by"], "done", "{}", out.describe());
            let n = s["total"].as_i64().unwrap_or_else(|| panic!("{}", out.describe()));
            totals.push(n);
            total += n;
        }
        eprintln!("concurrent purges deleted {totals:?}");
        assert_eq!(total, 2000, "the three runs' totals must add up to the jobs deleted");
        assert_eq!(env.count("jobs"), 20);
        assert_eq!(env.count("jobs WHERE name LIKE 'conc-%'"), 0);
        assert_eq!(env.count("job_drives"), 20);
        assert_eq!(env.count("retention_audit"), 2000);
        assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), 2000);
        assert_eq!(env.scalar("SELECT count(DISTINCT job_name) FROM retention_audit"), 2000);
        assert_eq!(env.count("retention_audit WHERE policy = 'closed'"), 500);
        let runs = env.records("SELECT status, (deleted_completed + deleted_closed + deleted_creating_idle) AS n FROM retention_runs");
        assert_eq!(runs.len(), 3, "{runs:?}");
        assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
        assert_eq!(runs.iter().map(|r| r["n"].as_i64().unwrap()).sum::<i64>(), 2000, "{runs:?}");
        let per_run = env.rows("SELECT run_id, count(*) FROM retention_audit GROUP BY run_id");
        for r in per_run {
            let id = r[0].as_i64().unwrap();
            let n = r[1].as_i64().unwrap();
            let recorded = env.scalar(&format!("SELECT deleted_completed + deleted_closed + deleted_creating_idle FROM retention_runs WHERE id = {id}"));
            assert_eq!(n, recorded, "run {id}: audit rows vs recorded count");
        }
    }
}

every_engine! {
    /// `retention.run_timeout` stops a sweep between batches: what was
    /// deleted is the oldest, committed and audited; the run says `timeout`.
    fn run_timeout_stops_the_sweep_between_batches(env: &TestEnv) {
        let jobs: Vec<Value> =
            (0..5).map(|i| aged(&format!("slow-{i}"), "Completed", Duration::days(200 - 10 * i))).collect();
        env.import_ok(&jobs);
        let out = env.run_env(
            &["purge", "--batch-size", "1", "--output", "json"],
            &[("RETENTIOND__RETENTION__RUN_TIMEOUT", "1s"), ("RETENTIOND__RETENTION__BATCH_PAUSE", "1500ms")],
        );
        out.expect_code(0);
        let s = out.json();
        assert_eq!(s["stopped_by"], "timeout", "{s}");
        let total = s["total"].as_i64().unwrap();
        assert!((1..5).contains(&total), "{s}");
        assert!(out.elapsed < std::time::Duration::from_secs(5), "{}", out.describe());
        let deleted: BTreeSet<String> = audit_names(&env.json(&["audit", "list"])).into_iter().collect();
        let oldest: BTreeSet<String> = (0..total).map(|i| format!("slow-{i}")).collect();
        assert_eq!(deleted, oldest, "the oldest go first");
        let row = run_row(env, &s["run_id"]);
        assert_eq!(row["stopped_by"], "timeout", "{row:?}");
        assert_eq!(row["deleted_completed"], json!(total), "{row:?}");
    }
}

/// `schedule.window` set to `window` in [`WINDOW_ZONE`].
fn in_window(window: &str) -> [(&str, &str); 2] {
    [("RETENTIOND__SCHEDULE__TIMEZONE", WINDOW_ZONE), ("RETENTIOND__SCHEDULE__WINDOW", window)]
}

every_engine! {
    /// A window that ends a few seconds into a long sweep stops it after the
    /// batch in flight: no batch starts after the window's end, what was
    /// deleted is committed and audited, the run `succeeded` with
    /// `stopped_by = window`. The next purge, outside the window, deletes
    /// nothing; `--ignore-window` deletes the rest.
    fn a_sweep_stops_at_the_end_of_its_window(env: &TestEnv) {
        let jobs: Vec<Value> =
            (0..40).map(|i| aged(&format!("win-{i}"), "Completed", Duration::days(200 - i))).collect();
        env.import_ok(&jobs);
        let closes = now() + Duration::seconds(6);
        let window = window_between(closes - Duration::hours(1), closes);
        let mut vars = in_window(&window).to_vec();
        vars.push(("RETENTIOND__RETENTION__BATCH_PAUSE", "500ms"));
        let out = env.run_env(&["purge", "--batch-size", "1", "--output", "json"], &vars);
        out.expect_code(0);
        let s = out.json();
        assert_eq!(s["stopped_by"], "window", "{s}");
        let total = s["total"].as_i64().unwrap();
        assert!((1..40).contains(&total), "{s}");
        assert_eq!(s["window"]["open"], true, "{s}");
        assert_eq!(parse_ts(&s["window"]["closes"]), closes, "{s}");
        assert!(s["window"]["closes"].as_str().unwrap().ends_with("+05:30"), "in the zone's time: {s}");
        assert!(out.elapsed < std::time::Duration::from_secs(6 + 10), "{}", out.describe());

        assert_eq!(env.count("jobs"), 40 - total);
        assert_eq!(env.count("retention_audit"), total);
        let row = run_row(env, &s["run_id"]);
        assert_eq!((&row["status"], &row["stopped_by"]), (&json!("succeeded"), &json!("window")), "{row:?}");
        assert_eq!(row["deleted_completed"], json!(total), "{row:?}");
        let micros = |at: DateTime<Utc>| at.timestamp_micros();
        let last_deleted = env.scalar(&format!("SELECT max({}) FROM retention_audit", env.sql_micros("deleted_at")));
        let finished = env.scalar(&format!("SELECT {} FROM retention_runs", env.sql_micros("finished_at")));
        assert!(last_deleted < micros(closes + Duration::seconds(1)), "no batch after the window's end: {last_deleted}");
        assert!(finished >= micros(closes), "it went on until the window's end: {finished}");

        // Outside the window now: nothing.
        let s = env.json_env(&["purge"], &in_window(&window));
        assert_eq!((&s["total"], &s["stopped_by"], &s["run_id"]), (&json!(0), &json!("window"), &Value::Null), "{s}");
        assert_eq!(parse_ts(&s["window"]["next_opens"]), closes - Duration::hours(1) + Duration::days(1), "{s}");
        assert_eq!((env.count("jobs"), env.count("retention_runs")), (40 - total, 1));

        let s = env.json_env(&["purge", "--ignore-window"], &in_window(&window));
        assert_eq!((&s["total"], &s["stopped_by"]), (&json!(40 - total), &json!("done")), "{s}");
        assert!(s.get("window").is_none(), "an ignored window is not reported: {s}");
        assert_eq!((env.count("jobs"), env.count("retention_audit")), (0, 40));
    }
}

every_engine! {
    /// Outside every window, `purge` deletes nothing, writes no run record,
    /// says when the next window opens and exits 0; its metrics count the
    /// skip. A dry run still lists what would go and says the same.
    fn purge_outside_the_window_deletes_nothing_and_says_when_the_next_opens(env: &TestEnv) {
        env.import_ok(&[aged("out-old", "Completed", Duration::days(200)), aged("out-young", "Completed", Duration::days(5))]);
        let opens = now() + Duration::hours(1);
        let window = window_between(opens, opens + Duration::hours(2));
        let textfile = env.dir().join("purge.prom");
        let out = env.run_env(&["purge", "--metrics-textfile", path_str(&textfile)], &in_window(&window));
        out.expect_code(0);
        let local = opens.with_timezone(&WINDOW_ZONE.parse::<chrono_tz::Tz>().unwrap()).to_rfc3339();
        assert_eq!(
            out.stdout,
            format!(
                "outside schedule.window {window} ({WINDOW_ZONE}): deleted nothing; the next window opens at \
                 {local} (--ignore-window deletes now)\n"
            ),
            "{}",
            out.describe()
        );
        assert!(out.stderr.contains("purge skipped: outside schedule.window"), "{}", out.describe());
        let metrics = Metrics::parse(&std::fs::read_to_string(&textfile).expect("the textfile"));
        assert_eq!(metrics.value("retentiond_sweeps_skipped_total", &[("reason", "window")]), 1.0);
        assert_eq!(metrics.value("retentiond_sweeps_total", &[("outcome", "succeeded")]), 0.0);
        assert_eq!((env.count("jobs"), env.count("retention_audit"), env.count("retention_runs")), (2, 0, 0));

        let dry = env.run_env(&["purge", "--dry-run"], &in_window(&window));
        dry.expect_code(0);
        assert!(dry.stdout.contains("would delete 1 jobs"), "{}", dry.describe());
        assert!(
            dry.stdout.contains(&format!("outside schedule.window {window} ({WINDOW_ZONE}): a purge now deletes nothing; the next window opens at {local}")),
            "{}",
            dry.describe()
        );
        let dry = env.json_env(&["purge", "--dry-run"], &in_window(&window));
        assert_eq!(dry_run_names(&dry), ["out-old"], "{dry}");
        assert_eq!(dry["window"], json!({"open": false, "windows": [window], "timezone": WINDOW_ZONE, "next_opens": local}), "{dry}");
        assert_eq!((env.count("jobs"), env.count("retention_runs")), (2, 0));

        let s = env.json_env(&["purge", "--ignore-window"], &in_window(&window));
        assert_eq!(s["total"], 1, "{s}");
        assert_eq!(env.job_names(), ["out-young"]);
    }
}

/// `signal` during a purge: the batch in flight finishes, no new batch
/// starts, the run is `interrupted`, every job that is gone has its audit
/// row, and the process exits 0 at once instead of sleeping out its pause.
fn a_stop_signal_stops_after_the_batch_in_flight(env: &TestEnv, signal: &str) {
    let jobs: Vec<Value> = (0..10).map(|i| aged(&format!("term-{i}"), "Completed", Duration::days(200 - i))).collect();
    env.import_ok(&jobs);
    let running = env
        .cmd(&["purge", "--batch-size", "1", "--output", "json"])
        .env("RETENTIOND__RETENTION__BATCH_PAUSE", "2s")
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.count("retention_audit") == 0 {
        assert!(std::time::Instant::now() < deadline, "the purge deleted nothing within 20 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let signalled = std::time::Instant::now();
    let kill =
        std::process::Command::new("kill").args([&format!("-{signal}"), &running.pid().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = running.wait();
    assert!(signalled.elapsed() < std::time::Duration::from_millis(1500), "it slept out its pause: {}", out.describe());
    out.expect_code(0);
    let s = out.json();
    assert_eq!(s["stopped_by"], "signal", "{s}");
    let total = s["total"].as_i64().unwrap();
    assert!((1..10).contains(&total), "{s}");
    assert_eq!(env.count("jobs"), 10 - total);
    assert_eq!(env.count("retention_audit"), total);
    for i in 0..total {
        assert_eq!(env.audit_rows(&format!("term-{i}")).len(), 1, "the oldest go first, each audited");
    }
    let row = run_row(env, &s["run_id"]);
    assert_eq!(row["status"], "interrupted", "{row:?}");
    assert_eq!(row["stopped_by"], "signal", "{row:?}");
}

every_engine! {
    fn sigterm_stops_after_the_batch_in_flight(env: &TestEnv) {
        a_stop_signal_stops_after_the_batch_in_flight(env, "TERM");
    }
}

every_engine! {
    /// SIGINT (Ctrl-C) stops a purge as SIGTERM does.
    fn sigint_stops_after_the_batch_in_flight(env: &TestEnv) {
        a_stop_signal_stops_after_the_batch_in_flight(env, "INT");
    }
}

every_engine! {
    /// docs/design.md, "A sweep": the set is defined by age, the order inside it is the
    /// store's. On a store whose ages are shuffled relative to the ids (with
    /// ties), a capped purge deletes exactly the N oldest (ties by id), and
    /// deletes them in id order; an uncapped purge leaves nothing eligible.
    fn shuffled_store_capped_purge_takes_the_oldest_in_id_order(env: &TestEnv) {
        let base = now();
        let mut jobs = Vec::new();
        let mut seed = 7_u64;
        for i in 0..240 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Ages 0–399 days in no order; many jobs share a day, so ties are decided by id.
            let days = ((seed >> 33) % 40 * 10) as i64;
            let name = format!("mix-{i:03}");
            let job = match i % 4 {
                0 => set(
                    aged(&name, "Creating", Duration::days(days / 10)),
                    "updated_at",
                    json!(ts(base - Duration::days(days / 10))),
                ),
                1 => job(&name, "Closed", base - Duration::days(days)),
                _ => job(&name, "Completed", base - Duration::days(days)),
            };
            jobs.push(job);
        }
        env.import_ok(&jobs);
        let ids: BTreeMap<String, i64> = env
            .rows("SELECT name, id FROM jobs")
            .into_iter()
            .map(|row| (row[0].as_str().unwrap().to_owned(), row[1].as_i64().unwrap()))
            .collect();
        // Each eligible job's key: its age timestamp (as days before `base`, negated) and id.
        let mut eligible: Vec<((i64, i64), String)> = jobs
            .iter()
            .filter_map(|job| {
                let name = job["name"].as_str().unwrap().to_owned();
                let (column, retention) = match job["state"].as_str().unwrap() {
                    "Creating" => ("updated_at", 14),
                    _ => ("state_changed_at", 90),
                };
                let days = (base - parse_ts(&job[column])).num_days();
                (days >= retention).then(|| ((-days, ids[&name]), name))
            })
            .collect();
        eligible.sort();
        assert!(eligible.len() > 100, "{} eligible", eligible.len());

        let s = env.json_env(&["purge", "--max-deletes", "37", "--batch-size", "5"], &[IDLE_14D]);
        assert_eq!(s["total"], 37, "{s}");
        assert_eq!(s["stopped_by"], "max_deletes", "{s}");
        let run = s["run_id"].as_i64().unwrap();
        let deleted: BTreeSet<String> =
            env.strings(&format!("SELECT job_name FROM retention_audit WHERE run_id = {run}")).into_iter().collect();
        let oldest: BTreeSet<String> = eligible.iter().take(37).map(|(_, name)| name.clone()).collect();
        assert_eq!(deleted, oldest, "the 37 oldest eligible jobs, ties by id");
        let order: Vec<i64> = env
            .rows(&format!("SELECT job_id FROM retention_audit WHERE run_id = {run} ORDER BY id"))
            .into_iter()
            .map(|row| row[0].as_i64().unwrap())
            .collect();
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "deleted in id order: {order:?}");
        let oldest_first: Vec<i64> = eligible.iter().take(37).map(|((_, id), _)| *id).collect();
        assert!(
            !oldest_first.windows(2).all(|pair| pair[0] < pair[1]),
            "the ages are shuffled relative to the ids, so the two orders differ: {oldest_first:?}"
        );

        let s = env.json_env(&["purge", "--batch-size", "7"], &[IDLE_14D]);
        assert_eq!(s["total"].as_u64().unwrap() as usize, eligible.len() - 37, "{s}");
        assert_eq!(s["stopped_by"], "done", "{s}");
        let left = env.json_env(&["purge", "--dry-run"], &[IDLE_14D]);
        assert_eq!(left["total"], 0, "nothing eligible is left: {left}");
        assert_eq!(env.count("retention_audit") as usize, eligible.len());
        assert_eq!(env.count("jobs") as usize, jobs.len() - eligible.len());
    }
}

every_engine! {
    /// More eligible ids than one read statement returns (10,000, shared by
    /// the policies still being read): the first statement exhausts two
    /// policies, the next ones read the third alone while the first batches
    /// run, and the purge deletes every eligible job of each, once, and
    /// nothing else.
    fn a_backlog_larger_than_one_read_statement_is_deleted_whole(env: &TestEnv) {
        purge_a_backlog_larger_than_one_read_statement(env, &[]);
    }
}

every_engine! {
    /// The same with one pooled session (`database.max_connections = 1`):
    /// the reads of the next ids cannot run alongside the batches, and wait
    /// for them instead of for a session the batches keep.
    fn a_backlog_larger_than_one_read_statement_is_deleted_on_one_session(env: &TestEnv) {
        purge_a_backlog_larger_than_one_read_statement(
            env,
            &[("RETENTIOND__DATABASE__MAX_CONNECTIONS", "1"), ("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "5s")],
        );
    }
}

fn purge_a_backlog_larger_than_one_read_statement(env: &TestEnv, settings: &[(&str, &str)]) {
    let base = now();
    let mut jobs = Vec::new();
    for i in 0..11_000_i64 {
        // Ages 100–399 days, not in id order.
        jobs.push(job(&format!("done-{i:05}"), "Completed", base - Duration::days(100 + i * 7_919 % 300)));
    }
    for i in 0..1_200 {
        jobs.push(job(&format!("closed-{i:04}"), "Closed", base - Duration::days(95)));
    }
    for i in 0..300 {
        jobs.push(aged(&format!("idle-{i:03}"), "Creating", Duration::days(20)));
    }
    for i in 0..500 {
        jobs.push(job(&format!("young-{i:03}"), "Completed", base - Duration::days(30)));
    }
    env.import_ok(&jobs);

    let s = env.json_env(&["purge"], &[&[IDLE_14D][..], settings].concat());
    assert_eq!(
        s["counts"],
        json!({"completed": 11_000, "closed": 1_200, "creating_idle": 300, "retain_until": 0}),
        "{s}"
    );
    assert_eq!(s["stopped_by"], "done", "{s}");
    assert_eq!(env.count("retention_audit"), 12_500);
    assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), 12_500);
    assert_eq!(env.strings("SELECT DISTINCT substr(name, 1, 6) FROM jobs"), vec!["young-".to_string()]);
    assert_eq!(env.count("jobs"), 500);
}
