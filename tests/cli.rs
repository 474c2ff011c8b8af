//! docs/design.md, "The command line": the command line — usage errors, listings, validation of
//! `jobs create`/`hold`, `jobs seed`, logs on stderr.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use common::*;
use serde_json::{Value, json};

fn valid_name(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

every_engine! {
    /// Usage errors exit 2 and change nothing.
    fn usage_errors_exit_2(env: &TestEnv) {
        env.import_ok(&[job("j-1", "Creating", days_ago(1)), job("old", "Completed", days_ago(200))]);
        let before = env.dump_all();
        let cases: [&[&str]; 9] = [
            &["purge", "--as-of", "2024-01-01T00:00:00Z"],
            &["purge", "--dry-run", "--as-of", "last tuesday"],
            &["jobs", "set-state", "j-1", "Finished"],
            &["jobs", "list", "--state", "bogus"],
            &["jobs", "create", "j-2", "--type", "both"],
            &["jobs", "create", "j-2"],
            &["jobs", "hold", "j-1"],
            &["jobs", "frobnicate"],
            &["purge", "--max-deletes", "many"],
        ];
        for args in cases {
            env.run(args).expect_code(2);
        }
        assert_eq!(env.dump_all(), before);
    }
}

every_engine! {
    /// `jobs list`: creation order, default limit 100, `--limit 0` for all,
    /// `--state` repeatable and case-insensitive.
    fn jobs_list_order_limit_and_state_filter(env: &TestEnv) {
        let base = days_ago(300);
        let jobs: Vec<Value> = (0..120_i64)
            .map(|i| {
                let state = STATES[i as usize % STATES.len()];
                let mut j = job(&format!("list-{i:03}"), state, base + Duration::hours(i));
                j["created_at"] = json!(ts(base + Duration::hours(i)));
                j
            })
            .collect();
        env.import_ok(&jobs);
        let all: Vec<String> = jobs.iter().map(|j| j["name"].as_str().unwrap().to_string()).collect();

        assert_eq!(names(&env.json(&["jobs", "list"])), all[..100].to_vec(), "default limit 100, creation order");
        assert_eq!(names(&env.json(&["jobs", "list", "--limit", "0"])), all);
        assert_eq!(names(&env.json(&["jobs", "list", "--limit", "5"])), all[..5].to_vec());
        let filtered = names(&env.json(&["jobs", "list", "--state", "completed", "--state", "CLOSED", "--limit", "0"]));
        let expected: Vec<String> = jobs
            .iter()
            .filter(|j| j["state"] == "Completed" || j["state"] == "Closed")
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(filtered, expected);
        assert_eq!(names(&env.json(&["jobs", "list", "--state", "Packaging", "--limit", "3"])), vec!["list-004", "list-011", "list-018"]);
        // Global flags may come first.
        assert_eq!(names(&env.json(&["--output", "json", "jobs", "list", "--limit", "1"])), vec!["list-000"]);
    }
}

every_engine! {
    /// `audit list` is newest first and filters by job and run; `runs list`
    /// is newest first.
    fn audit_and_runs_listings(env: &TestEnv) {
        let mut jobs: Vec<Value> = (0..6).map(|i| job(&format!("old-{i}"), "Completed", days_ago(200 - i))).collect();
        jobs.push(job("manual-1", "Creating", days_ago(1)));
        jobs.push(job("manual-2", "Completed", days_ago(1)));
        env.import_ok(&jobs);

        env.json(&["jobs", "delete", "manual-1"]);
        let first = env.json(&["purge", "--max-deletes", "2"]);
        let second = env.json(&["purge"]);
        env.json(&["jobs", "delete", "manual-2"]);

        let all = env.json(&["audit", "list"]);
        let listed = audit_names(&all);
        assert_eq!(listed.len(), 8, "{all}");
        assert_eq!(listed.first().map(String::as_str), Some("manual-2"), "newest first: {all}");
        assert_eq!(listed.last().map(String::as_str), Some("manual-1"), "newest first: {all}");
        let ids: Vec<i64> = all.as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "ids descending: {ids:?}");

        let by_run = env.json(&["audit", "list", "--run", &first["run_id"].to_string()]);
        assert_eq!(sorted(&audit_names(&by_run)), vec!["old-0", "old-1"], "{by_run}");
        assert!(by_run.as_array().unwrap().iter().all(|e| e["run_id"] == first["run_id"] && e["policy"] == "completed"));
        let by_run = env.json(&["audit", "list", "--run", &second["run_id"].to_string()]);
        assert_eq!(sorted(&audit_names(&by_run)), vec!["old-2", "old-3", "old-4", "old-5"], "{by_run}");

        let by_job = env.json(&["audit", "list", "--job", "manual-1"]);
        assert_eq!(by_job.as_array().map(Vec::len), Some(1), "{by_job}");
        assert_eq!(by_job[0]["policy"], "manual");
        assert_eq!(by_job[0]["run_id"], Value::Null);
        assert_eq!(by_job[0]["state"], "Creating");
        assert_eq!(env.json(&["audit", "list", "--job", "nobody"]), json!([]));

        let limited = env.json(&["audit", "list", "--limit", "2"]);
        assert_eq!(audit_names(&limited), listed[..2].to_vec());
        assert_eq!(audit_names(&env.json(&["audit", "list", "--limit", "0"])), listed);

        let runs = env.json(&["runs", "list"]);
        let run_ids: Vec<Value> = runs.as_array().unwrap().iter().map(|r| r["run_id"].clone()).collect();
        assert_eq!(run_ids, vec![second["run_id"].clone(), first["run_id"].clone()], "{runs}");
        assert_eq!(runs[1]["total"], 2, "{runs}");
        assert_eq!(runs[1]["stopped_by"], "max_deletes", "{runs}");
        assert_eq!(runs[0]["total"], 4, "{runs}");
        assert_eq!(runs[0]["counts"], json!({"completed": 4, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{runs}");
        for r in runs.as_array().unwrap() {
            assert!(r["started_at"].is_string() && r["finished_at"].is_string(), "{r}");
            assert_eq!(r["error"], Value::Null, "{r}");
            assert!(r["host"].is_string() && r["pid"].is_i64(), "{r}");
        }
        assert_eq!(env.json(&["runs", "list", "--limit", "1"]).as_array().map(Vec::len), Some(1));
    }
}

every_engine! {
    /// `jobs create` validates name and drives (65), refuses a taken name (4).
    fn create_validates_names_and_drives(env: &TestEnv) {
        env.json(&["jobs", "create", "taken", "--type", "import"]);
        let ten: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
        let mut args: Vec<String> = ["jobs", "create", "ten-drives", "--type", "export"].iter().map(|s| s.to_string()).collect();
        for d in &ten {
            args.extend(["--drive".to_string(), d.clone()]);
        }
        let j = env.json(&args);
        assert_eq!(j["drives"].as_array().map(Vec::len), Some(10));
        let before = env.dump_all();

        let long = "a".repeat(65);
        for bad in ["ab", "bad name", "x;DROP TABLE jobs", "quo\"te", "-dash", "_under", long.as_str(), "jöb"] {
            // `--` so that "-dash" reaches the name check instead of clap.
            let out = env.run(&["jobs", "create", "--type", "import", "--", bad]);
            assert_eq!(out.code, 65, "name {bad:?}\n{}", out.describe());
        }
        env.run(&["jobs", "create", "taken", "--type", "export"]).expect_code(4);

        let mut eleven = args.clone();
        eleven[2] = "eleven-drives".to_string();
        eleven.extend(["--drive".to_string(), "d10".to_string()]);
        env.run(&eleven).expect_code(65);
        env.run(&["jobs", "create", "dup-drives", "--type", "import", "--drive", "x", "--drive", "x"]).expect_code(65);
        assert_eq!(env.dump_all(), before, "refused creates changed the store");

        let exactly_64 = format!("9{}", "z".repeat(63));
        assert_eq!(env.json(&["jobs", "create", &exactly_64, "--type", "import"])["name"], json!(exactly_64));
        assert_eq!(env.json(&["jobs", "create", "abc", "--type", "IMPORT"])["job_type"], "Import");
    }
}

every_engine! {
    /// A hold needs a reason: an empty one is invalid input and changes nothing.
    fn hold_requires_a_reason(env: &TestEnv) {
        env.import_ok(&[job("to-hold", "Completed", days_ago(5))]);
        let before = env.dump_all();
        let out = env.run(&["jobs", "hold", "to-hold", "--reason", ""]);
        out.expect_code(65);
        assert_eq!(env.dump_all(), before);
        env.json(&["jobs", "hold", "to-hold", "--reason", "x"]);
        assert_eq!(env.show("to-hold")["hold_reason"], "x");
    }
}

every_engine! {
    /// `jobs seed --count 2000` makes realistic data: every state, cancelled
    /// and held jobs, drives, ages spread over the past year, consistent
    /// timestamps; a dry run finds some eligible jobs.
    fn seed_makes_realistic_data(env: &TestEnv) {
        let s = env.json(&["jobs", "seed", "--count", "2000", "--seed", "7"]);
        assert_eq!(s["created"], 2000, "{s}");
        assert_eq!(env.count("jobs"), 2000);

        let per_state: BTreeMap<String, i64> = env
            .rows("SELECT state, count(*) FROM jobs GROUP BY state")
            .into_iter()
            .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
            .collect();
        for state in STATES {
            assert!(per_state.get(state).is_some_and(|n| *n > 0), "no {state} job: {per_state:?}");
        }
        assert!(env.count("jobs WHERE hold_reason IS NOT NULL") > 0, "some jobs are held");
        assert!(env.count("job_drives") > 0, "jobs have drives");
        assert_eq!(env.count("job_drives WHERE job_id NOT IN (SELECT id FROM jobs)"), 0);
        let max_drives = env.scalar("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM job_drives GROUP BY job_id) AS t");
        assert!(max_drives <= 10, "at most 10 drives per job, got {max_drives}");

        let jobs = env.json(&["jobs", "list", "--limit", "0"]);
        let jobs = jobs.as_array().unwrap();
        assert_eq!(jobs.len(), 2000);
        let cancelled = jobs.iter().filter(|j| j["cancel_requested"] == true).count();
        assert!(cancelled > 0, "some jobs are cancelled");
        let now = chrono::Utc::now();
        let mut oldest = now;
        let mut unique = BTreeSet::new();
        for j in jobs {
            let name = j["name"].as_str().unwrap();
            assert!(valid_name(name), "invalid seeded name {name:?}");
            assert!(unique.insert(name.to_string()));
            let created = parse_ts(&j["created_at"]);
            let changed = parse_ts(&j["state_changed_at"]);
            let updated = parse_ts(&j["updated_at"]);
            assert!(created <= changed && changed <= updated && updated <= now, "inconsistent timestamps: {j}");
            assert_eq!(j["cancel_requested"] == true, !j["cancel_requested_at"].is_null(), "cancel fields: {j}");
            oldest = oldest.min(created);
        }
        assert!(now - oldest > Duration::days(180), "ages spread over a year; oldest is {oldest}");

        let dry = env.json(&["purge", "--dry-run"]);
        let total = dry["total"].as_i64().unwrap();
        assert!(total > 0 && total < 2000, "a dry run finds some eligible jobs: {dry}");
        assert_eq!(dry_run_names(&dry).len() as i64, total);

        // Seeding again does not collide with the first batch; --prefix names the jobs.
        let s = env.json(&["jobs", "seed", "--count", "50", "--prefix", "demo"]);
        assert_eq!(s["created"], 50, "{s}");
        assert_eq!(env.count("jobs"), 2050);
        assert_eq!(env.count("jobs WHERE name LIKE 'demo%'"), 50);
        let s = env.json(&["jobs", "seed", "--count", "50"]);
        assert_eq!(s["created"], 50, "{s}");
        assert_eq!(env.count("jobs"), 2100);
    }
}

every_engine! {
    /// `migrate` is idempotent and creates the four tables.
    fn migrate_is_idempotent(env: &TestEnv) {
        env.migrate();
        env.migrate();
        for table in TABLES {
            assert_eq!(env.count(table), 0, "{table}");
        }
    }
}

every_engine! {
    /// Results go to stdout and logs to stderr: a JSON purge prints one JSON
    /// document on stdout, and with JSON logs one audit event
    /// (target `retentiond::audit`) per deleted job on stderr.
    fn purge_logs_one_audit_event_per_deleted_job(env: &TestEnv) {
        env.import_ok(&[
            job("log-a", "Completed", days_ago(100)),
            job("log-b", "Closed", days_ago(100)),
            job("log-keep", "Completed", days_ago(1)),
        ]);
        let out = env.run(&["--log-format", "json", "purge", "--output", "json"]);
        out.expect_code(0);
        assert_eq!(out.json()["total"], 2);
        let audit_events: Vec<Value> = out
            .stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "retentiond::audit")
            .collect();
        assert_eq!(audit_events.len(), 2, "one audit event per deleted job\n{}", out.describe());
        for name in ["log-a", "log-b"] {
            assert!(audit_events.iter().any(|e| e.to_string().contains(name)), "no audit event for {name}\n{}", out.describe());
        }

        // Text output is for people but still succeeds and names the job.
        let out = env.run(&["jobs", "show", "log-keep"]);
        out.expect_code(0);
        assert!(out.stdout.contains("log-keep"), "{}", out.describe());
    }
}

every_engine! {
    /// A reader that stops early (`retentiond jobs list | head`) is not a
    /// failure: the command exits 0 without an error on stderr.
    fn closed_stdout_is_not_an_error(env: &TestEnv) {
        env.run(&["jobs", "seed", "--count", "2000"]).expect_code(0);
        let mut child = std::process::Command::new(BIN)
            .args(["--output", "json", "jobs", "list", "--limit", "0"])
            .env("RETENTIOND__DATABASE__URL", &env.url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start retentiond");
        let mut first = [0_u8; 1];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("error"), "{stderr}");
    }
}
