//! docs/lifecycle.md: every lifecycle operation (set-state, cancel, delete, hold,
//! release) in every state, through the real binary.

#[macro_use]
mod common;

use common::*;
use serde_json::{Value, json};

/// The allowed transitions of docs/lifecycle.md (`Received→Packaging` needs a cancel).
fn transition_allowed(from: &str, to: &str, cancel_requested: bool) -> bool {
    matches!(
        (from, to),
        ("Creating", "Shipping")
            | ("Shipping", "Received")
            | ("Shipping", "Closed")
            | ("Received", "Transferring")
            | ("Transferring", "Packaging")
            | ("Packaging", "Completed")
            | ("Packaging", "Closed")
    ) || (from == "Received" && to == "Packaging" && cancel_requested)
}

fn cancel_allowed(state: &str) -> bool {
    matches!(state, "Creating" | "Shipping" | "Received" | "Transferring")
}

fn delete_allowed(state: &str) -> bool {
    matches!(state, "Creating" | "Completed")
}

/// An old job in `state`, optionally with cancellation requested.
fn old_job(name: &str, state: &str, cancelled: bool) -> Value {
    let changed = days_ago(1000);
    let mut j = job(name, state, changed);
    j = set(j, "job_type", json!(if name.len().is_multiple_of(2) { "Import" } else { "Export" }));
    j = set(j, "drives", drives(name, 2, "Specified"));
    if cancelled {
        j = set(j, "cancel_requested", json!(true));
        j = set(j, "cancel_requested_at", json!(ts(changed - chrono::Duration::days(1))));
    }
    j
}

fn by_name(list: &Value) -> std::collections::BTreeMap<String, Value> {
    list.as_array().expect("array").iter().map(|j| (j["name"].as_str().unwrap().to_string(), j.clone())).collect()
}

every_engine! {
    /// 7 × 7 set-state attempts, with and without a cancel request: exit 0 and
    /// the new state (with fresh timestamps) exactly for the allowed
    /// transitions, exit 4 naming both states and no change otherwise.
    fn set_state_every_state_to_every_state(env: &TestEnv) {
        let mut jobs = Vec::new();
        for from in STATES {
            for to in STATES {
                for cancelled in [false, true] {
                    jobs.push(old_job(&format!("ss-{from}-{to}-{}", u8::from(cancelled)), from, cancelled));
                }
            }
        }
        env.import_ok(&jobs);
        let before = by_name(&env.json(&["jobs", "list", "--limit", "0"]));
        assert_eq!(before.len(), jobs.len());
        let started = now() - chrono::Duration::seconds(2);

        for from in STATES {
            for to in STATES {
                for cancelled in [false, true] {
                    let name = format!("ss-{from}-{to}-{}", u8::from(cancelled));
                    let out = env.run(&["jobs", "set-state", &name, to, "--output", "json"]);
                    if transition_allowed(from, to, cancelled) {
                        out.expect_code(0);
                        let j = out.json();
                        assert_eq!(j["name"], json!(name), "{}", out.describe());
                        assert_eq!(j["state"], json!(to), "{}", out.describe());
                        assert_eq!(j["cancel_requested"], json!(cancelled), "{}", out.describe());
                        assert!(parse_ts(&j["state_changed_at"]) >= started, "state_changed_at not moved: {}", out.describe());
                        assert!(parse_ts(&j["updated_at"]) >= started, "updated_at not moved: {}", out.describe());
                        assert_eq!(j["created_at"], before[&name]["created_at"], "{}", out.describe());
                    } else {
                        out.expect_code(4);
                        assert!(
                            out.stderr.contains(from) && out.stderr.contains(to),
                            "conflict message must name both states {from} and {to}\n{}",
                            out.describe()
                        );
                    }
                }
            }
        }

        let after = by_name(&env.json(&["jobs", "list", "--limit", "0"]));
        for from in STATES {
            for to in STATES {
                for cancelled in [false, true] {
                    let name = format!("ss-{from}-{to}-{}", u8::from(cancelled));
                    if transition_allowed(from, to, cancelled) {
                        assert_eq!(after[&name]["state"], json!(to), "stored state of {name}");
                        assert_eq!(after[&name]["drives"], before[&name]["drives"], "drives of {name}");
                    } else {
                        assert_eq!(after[&name], before[&name], "a refused transition changed {name}");
                    }
                }
            }
        }
    }
}

every_engine! {
    /// The happy path from `jobs create` to Completed, with state names in any case.
    fn create_and_walk_the_normal_path(env: &TestEnv) {
        let j = env.json(&["jobs", "create", "walk-1", "--type", "export", "--drive", "disk-a", "--drive", "disk-b"]);
        assert_eq!(j["name"], "walk-1");
        assert_eq!(j["job_type"], "Export");
        assert_eq!(j["state"], "Creating");
        assert_eq!(j["cancel_requested"], false);
        assert_eq!(j["cancel_requested_at"], Value::Null);
        assert_eq!(j["hold_reason"], Value::Null);
        assert_eq!(j["created_at"], j["updated_at"]);
        assert_eq!(j["created_at"], j["state_changed_at"]);
        assert_eq!(
            j["drives"],
            json!([
                {"drive_id": "disk-a", "state": "Specified", "bytes": 0},
                {"drive_id": "disk-b", "state": "Specified", "bytes": 0}
            ])
        );
        for (given, expected) in [
            ("shipping", "Shipping"),
            ("RECEIVED", "Received"),
            ("Transferring", "Transferring"),
            ("packaging", "Packaging"),
            ("completed", "Completed"),
        ] {
            let j = env.json(&["jobs", "set-state", "walk-1", given]);
            assert_eq!(j["state"], expected);
            assert_eq!(env.show("walk-1")["state"], expected);
        }
        assert_eq!(env.count("job_drives"), 2);
    }
}

every_engine! {
    /// Received→Packaging is refused until cancellation is requested; a
    /// cancelled job then reaches Completed along the normal path.
    fn received_to_packaging_only_after_cancel(env: &TestEnv) {
        env.import_ok(&[old_job("skip-copy", "Received", false)]);
        let out = env.run(&["jobs", "set-state", "skip-copy", "Packaging"]);
        out.expect_code(4);
        assert!(out.stderr.contains("Received") && out.stderr.contains("Packaging"), "{}", out.describe());
        assert_eq!(env.show("skip-copy")["state"], "Received");

        let j = env.json(&["jobs", "cancel", "skip-copy"]);
        assert_eq!(j["cancel_requested"], true);
        assert_eq!(j["state"], "Received", "cancel does not change the state by itself");

        assert_eq!(env.json(&["jobs", "set-state", "skip-copy", "Packaging"])["state"], "Packaging");
        env.run(&["jobs", "cancel", "skip-copy"]).expect_code(4);
        let j = env.json(&["jobs", "set-state", "skip-copy", "Completed"]);
        assert_eq!(j["state"], "Completed");
        assert_eq!(j["cancel_requested"], true, "cancel_requested never goes back to false");
    }
}

every_engine! {
    /// Cancel in every state, twice: allowed (and idempotent) before
    /// Packaging, exit 4 from Packaging on, never a state change.
    fn cancel_in_every_state_twice(env: &TestEnv) {
        let jobs: Vec<Value> = STATES.iter().map(|s| old_job(&format!("cancel-{s}"), s, false)).collect();
        let mut pre_cancelled = old_job("cancel-again", "Transferring", true);
        // Between the job's creation (1010 days ago) and its last change (1000 days ago).
        let first_cancel = json!(ts(days_ago(1005) + chrono::Duration::microseconds(123_456)));
        pre_cancelled = set(pre_cancelled, "cancel_requested_at", first_cancel.clone());
        let mut all = jobs.clone();
        all.push(pre_cancelled);
        env.import_ok(&all);
        let started = now() - chrono::Duration::seconds(2);

        for state in STATES {
            let name = format!("cancel-{state}");
            let before = env.show(&name);
            let first = env.run(&["jobs", "cancel", &name, "--output", "json"]);
            if cancel_allowed(state) {
                first.expect_code(0);
                let j = first.json();
                assert_eq!(j["state"], json!(state), "{}", first.describe());
                assert_eq!(j["cancel_requested"], true, "{}", first.describe());
                assert!(parse_ts(&j["cancel_requested_at"]) >= started, "{}", first.describe());
                let stored = env.show(&name);
                assert_eq!(stored, j, "cancel output differs from the stored job");
                assert_eq!(stored["state_changed_at"], before["state_changed_at"], "cancel must not touch state_changed_at");

                let second = env.run(&["jobs", "cancel", &name, "--output", "json"]);
                second.expect_code(0);
                assert_eq!(second.json()["cancel_requested"], true);
                assert_eq!(
                    second.json()["cancel_requested_at"], stored["cancel_requested_at"],
                    "a second cancel is idempotent: {}", second.describe()
                );
                assert_eq!(env.show(&name)["state"], json!(state));
            } else {
                first.expect_code(4);
                assert!(first.stderr.contains(state), "conflict must name the state {state}\n{}", first.describe());
                env.run(&["jobs", "cancel", &name]).expect_code(4);
                assert_eq!(env.show(&name), before, "a refused cancel changed {name}");
            }
        }

        // Already cancelled by import: cancel again keeps the original request time.
        let out = env.run(&["jobs", "cancel", "cancel-again", "--output", "json"]);
        out.expect_code(0);
        assert_eq!(parse_ts(&out.json()["cancel_requested_at"]), parse_ts(&first_cancel));
        assert_eq!(env.show("cancel-again")["state"], "Transferring");
    }
}

every_engine! {
    /// Delete in every state: allowed in Creating and Completed only; the
    /// job and its drives are gone, one manual audit row remains.
    fn delete_in_every_state(env: &TestEnv) {
        let mut jobs: Vec<Value> = STATES.iter().map(|s| old_job(&format!("del-{s}"), s, false)).collect();
        jobs.push(old_job("del-cancelled-done", "Completed", true));
        env.import_ok(&jobs);
        let mut remaining = jobs.len() as i64;

        for j in &jobs {
            let name = j["name"].as_str().unwrap();
            let state = j["state"].as_str().unwrap();
            let before = env.show(name);
            let out = env.run(&["jobs", "delete", name, "--output", "json"]);
            if delete_allowed(state) {
                out.expect_code(0);
                remaining -= 1;
                let entry = out.json();
                assert_eq!(entry["policy"], "manual", "{}", out.describe());
                assert_eq!(entry["run_id"], Value::Null, "{}", out.describe());
                assert_eq!(entry["job_name"], json!(name));
                assert_eq!(entry["job_type"], j["job_type"]);
                assert_eq!(entry["state"], json!(state));
                assert_eq!(entry["cancel_requested"], j.get("cancel_requested").cloned().unwrap_or(json!(false)));
                assert_eq!(parse_ts(&entry["created_at"]), parse_ts(&j["created_at"]));
                assert_eq!(parse_ts(&entry["state_changed_at"]), parse_ts(&j["state_changed_at"]));
                assert!(
                    entry["deleted_by"].as_str().is_some_and(|s| s.contains(&hostname())),
                    "deleted_by names the host (and user): {}",
                    out.describe()
                );
                assert!(entry["id"].is_i64(), "{}", out.describe());

                env.run(&["jobs", "show", name]).expect_code(3);
                assert!(!env.job_exists(name));
                let rows = env.audit_rows(name);
                assert_eq!(rows.len(), 1, "exactly one audit row for {name}: {rows:?}");
                assert_eq!(rows[0]["policy"], "manual");
                assert_eq!(rows[0]["run_id"], Value::Null);
                assert_eq!(rows[0]["state"], json!(state));
                let listed = env.json(&["audit", "list", "--job", name]);
                assert_eq!(audit_names(&listed), vec![name.to_string()]);
                assert_eq!(listed[0]["id"], entry["id"]);
            } else {
                out.expect_code(4);
                assert!(out.stderr.contains(state), "conflict must name the state {state}\n{}", out.describe());
                assert_eq!(env.show(name), before, "a refused delete changed {name}");
                assert!(env.audit_rows(name).is_empty(), "a refused delete left an audit row");
            }
            assert_eq!(env.count("jobs"), remaining);
            assert_eq!(env.count("job_drives"), 2 * remaining, "drives are deleted with their job");
        }
        let cancelled = env.audit_rows("del-cancelled-done");
        assert!(TestEnv::truthy(&cancelled[0]["cancel_requested"]), "audit keeps cancel_requested: {cancelled:?}");
    }
}

every_engine! {
    /// Hold and release in every state; a held job cannot be deleted (exit
    /// 4, nothing changes), a released one can (where its state allows).
    fn hold_and_release_in_every_state(env: &TestEnv) {
        let jobs: Vec<Value> = STATES.iter().map(|s| old_job(&format!("hold-{s}"), s, false)).collect();
        env.import_ok(&jobs);
        let reason = "legal hold: case 42";

        for state in STATES {
            let name = format!("hold-{state}");
            let j = env.json(&["jobs", "hold", &name, "--reason", reason]);
            assert_eq!(j["hold_reason"], json!(reason));
            assert_eq!(j["state"], json!(state));
            let held = env.show(&name);
            assert_eq!(held["hold_reason"], json!(reason));

            let out = env.run(&["jobs", "delete", &name]);
            out.expect_code(4);
            assert!(env.job_exists(&name), "held job {name} was deleted");
            assert!(env.audit_rows(&name).is_empty());
            assert_eq!(env.show(&name), held, "a refused delete changed {name}");

            let j = env.json(&["jobs", "release", &name]);
            assert_eq!(j["hold_reason"], Value::Null);
            assert_eq!(j["state"], json!(state));
            assert_eq!(env.show(&name)["hold_reason"], Value::Null);

            let out = env.run(&["jobs", "delete", &name]);
            if delete_allowed(state) {
                out.expect_code(0);
                assert!(!env.job_exists(&name));
                assert_eq!(env.audit_rows(&name).len(), 1);
            } else {
                out.expect_code(4);
                assert!(env.job_exists(&name));
            }
        }
    }
}

every_engine! {
    /// Every operation on a name that does not exist exits 3.
    fn operations_on_a_missing_job_exit_3(env: &TestEnv) {
        env.import_ok(&[old_job("present", "Completed", false)]);
        let commands: [&[&str]; 6] = [
            &["jobs", "show", "absent"],
            &["jobs", "set-state", "absent", "Shipping"],
            &["jobs", "cancel", "absent"],
            &["jobs", "delete", "absent"],
            &["jobs", "hold", "absent", "--reason", "why"],
            &["jobs", "release", "absent"],
        ];
        for args in commands {
            env.run(args).expect_code(3);
        }
        assert_eq!(env.count("jobs"), 1);
        assert_eq!(env.count("retention_audit"), 0);
    }
}
