//! docs/design.md, "Retention policies": which jobs the three retention policies select.

#[macro_use]
mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::{Value, json};

const IDLE_14D: (&str, &str) = ("RETENTIOND__RETENTION__CREATING_IDLE", "14d");

/// A job in Creating, created at `created`, last touched at `updated`.
fn creating_job(name: &str, created: DateTime<Utc>, updated: DateTime<Utc>) -> Value {
    json!({
        "name": name,
        "job_type": "Export",
        "state": "Creating",
        "created_at": ts(created),
        "updated_at": ts(updated),
        "state_changed_at": ts(created),
    })
}

/// A finished job created at `created` that entered `state` at `finished`.
fn finished_job(name: &str, state: &str, created: DateTime<Utc>, finished: DateTime<Utc>) -> Value {
    json!({
        "name": name,
        "job_type": "Import",
        "state": state,
        "created_at": ts(created),
        "updated_at": ts(finished),
        "state_changed_at": ts(finished),
        "drives": drives(name, 1, "ShippedBack"),
    })
}

fn dry_run_at(env: &TestEnv, as_of: DateTime<Utc>, extra_env: &[(&str, &str)]) -> Value {
    let summary = env.json_env(&["purge", "--dry-run", "--as-of", &ts(as_of)], extra_env);
    assert_eq!(summary["dry_run"], true, "{summary}");
    assert_eq!(summary["run_id"], Value::Null, "{summary}");
    assert_eq!(parse_ts(&summary["as_of"]), as_of, "{summary}");
    summary
}

/// Asserts that `names` are gone and each left exactly one audit row with
/// `policy` and a run id.
#[track_caller]
fn assert_purged(env: &TestEnv, names: &[&str], policy: &str, run_id: &Value) {
    for name in names {
        assert!(!env.job_exists(name), "{name} should have been deleted");
        let rows = env.audit_rows(name);
        assert_eq!(rows.len(), 1, "one audit row for {name}: {rows:?}");
        assert_eq!(rows[0]["policy"], json!(policy), "policy of {name}: {rows:?}");
        assert_eq!(&rows[0]["run_id"], run_id, "run id of {name}: {rows:?}");
    }
}

#[track_caller]
fn assert_kept(env: &TestEnv, names: &[&str]) {
    for name in names {
        assert!(env.job_exists(name), "{name} should have been kept");
        assert!(env.audit_rows(name).is_empty(), "kept job {name} has an audit row");
    }
}

every_engine! {
    /// Age == retention is eligible; one second younger is not (all three
    /// policies), evaluated at `--as-of`.
    fn boundary_exactly_at_retention_is_eligible_one_second_less_is_not(env: &TestEnv) {
        let as_of = days_ago(1);
        let edge90 = as_of - Duration::days(90);
        let edge14 = as_of - Duration::days(14);
        let one = Duration::seconds(1);
        env.import_ok(&[
            finished_job("completed-exact", "Completed", edge90 - Duration::days(5), edge90),
            finished_job("completed-young", "Completed", edge90 - Duration::days(5), edge90 + one),
            finished_job("closed-exact", "Closed", edge90 - Duration::days(5), edge90),
            finished_job("closed-young", "Closed", edge90 - Duration::days(5), edge90 + one),
            creating_job("creating-exact", as_of - Duration::days(30), edge14),
            creating_job("creating-young", as_of - Duration::days(30), edge14 + one),
        ]);

        let s = dry_run_at(env, as_of, &[]);
        assert_eq!(sorted(&dry_run_names(&s)), vec!["closed-exact", "completed-exact"], "{s}");
        assert_eq!(s["counts"], json!({"completed": 1, "closed": 1, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_eq!(s["total"], 2, "{s}");
        assert_eq!(parse_ts(&s["oldest_eligible_at"]), edge90, "{s}");

        let s = dry_run_at(env, as_of, &[IDLE_14D]);
        let listed = dry_run_names(&s);
        assert_eq!(sorted(&listed), vec!["closed-exact", "completed-exact", "creating-exact"], "{s}");
        assert_eq!(listed.last().map(String::as_str), Some("creating-exact"), "oldest first: {s}");
        assert_eq!(s["counts"], json!({"completed": 1, "closed": 1, "creating_idle": 1, "retain_until": 0}), "{s}");

        let s = dry_run_at(env, as_of + one, &[IDLE_14D]);
        assert_eq!(s["total"], 6, "one second later every job is eligible: {s}");
        let s = dry_run_at(env, as_of - one, &[IDLE_14D]);
        assert_eq!(s["total"], 0, "one second earlier nothing is eligible: {s}");
        assert_eq!(dry_run_names(&s), Vec::<String>::new());
        assert_eq!(s["oldest_eligible_at"], Value::Null, "{s}");

        // Now (a day after as_of) all six are old enough; a real purge takes them.
        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["total"], 6, "{s}");
        assert_eq!(env.count("jobs"), 0);
    }
}

every_engine! {
    /// A finished job's age counts from entering its final state, not from
    /// creation and not from its last update.
    fn age_counts_from_entering_the_final_state(env: &TestEnv) {
        env.import_ok(&[
            finished_job("old-job-finished-recently", "Completed", days_ago(400), days_ago(10)),
            finished_job("closed-old-job-finished-recently", "Closed", days_ago(400), days_ago(10)),
            finished_job("finished-long-ago", "Completed", days_ago(100), days_ago(95)),
            set(
                finished_job("finished-long-ago-touched-since", "Completed", days_ago(200), days_ago(95)),
                "updated_at",
                json!(ts(days_ago(1))),
            ),
        ]);
        let s = env.json(&["purge"]);
        assert_eq!(s["counts"], json!({"completed": 2, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_eq!(s["stopped_by"], "done", "{s}");
        assert_purged(env, &["finished-long-ago", "finished-long-ago-touched-since"], "completed", &s["run_id"]);
        assert_kept(env, &["old-job-finished-recently", "closed-old-job-finished-recently"]);
    }
}

every_engine! {
    /// Cancellation alone never makes a job eligible; a cancelled job that
    /// reached Completed is deleted under `completed` and audited as cancelled.
    fn cancelled_jobs_kept_until_completed(env: &TestEnv) {
        let mut jobs = Vec::new();
        for state in ["Creating", "Shipping", "Received", "Transferring", "Packaging"] {
            let mut j = finished_job(&format!("cancelled-{state}"), state, days_ago(400), days_ago(300));
            j = set(j, "updated_at", json!(ts(days_ago(300))));
            j = set(j, "cancel_requested", json!(true));
            j = set(j, "cancel_requested_at", json!(ts(days_ago(300))));
            jobs.push(j);
        }
        let mut done = finished_job("cancelled-done", "Completed", days_ago(120), days_ago(100));
        done = set(done, "cancel_requested", json!(true));
        done = set(done, "cancel_requested_at", json!(ts(days_ago(110))));
        jobs.push(done);
        env.import_ok(&jobs);

        let s = env.json(&["purge"]);
        assert_eq!(s["total"], 1, "{s}");
        assert_eq!(s["counts"]["completed"], 1, "{s}");
        assert_purged(env, &["cancelled-done"], "completed", &s["run_id"]);
        let rows = env.audit_rows("cancelled-done");
        assert!(TestEnv::truthy(&rows[0]["cancel_requested"]), "audit row must say cancel_requested: {rows:?}");
        assert_eq!(rows[0]["state"], "Completed");
        let listed = env.json(&["audit", "list", "--job", "cancelled-done"]);
        assert_eq!(listed[0]["cancel_requested"], true, "{listed}");
        assert_eq!(listed[0]["policy"], "completed", "{listed}");
        assert_kept(
            env,
            &["cancelled-Creating", "cancelled-Shipping", "cancelled-Received", "cancelled-Transferring", "cancelled-Packaging"],
        );
    }
}

every_engine! {
    /// Old Closed jobs go under policy `closed`; with `retention.closed = off` they stay.
    fn closed_policy_and_closed_off(env: &TestEnv) {
        env.import_ok(&[
            finished_job("closed-old", "Closed", days_ago(130), days_ago(100)),
            finished_job("closed-young", "Closed", days_ago(130), days_ago(80)),
            finished_job("completed-old", "Completed", days_ago(130), days_ago(100)),
        ]);

        let s = env.json_env(&["purge"], &[("RETENTIOND__RETENTION__CLOSED", "off")]);
        assert_eq!(s["counts"], json!({"completed": 1, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_purged(env, &["completed-old"], "completed", &s["run_id"]);
        assert_kept(env, &["closed-old", "closed-young"]);

        let s = env.json(&["purge"]);
        assert_eq!(s["counts"], json!({"completed": 0, "closed": 1, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_purged(env, &["closed-old"], "closed", &s["run_id"]);
        assert_eq!(env.audit_rows("closed-old")[0]["state"], "Closed");
        assert_kept(env, &["closed-young"]);
    }
}

every_engine! {
    /// Idle Creating jobs: kept by default; with `creating_idle = 14d`, deleted
    /// when updated_at is 14 days old or more, whatever created_at says.
    fn idle_creating_off_by_default_on_when_set(env: &TestEnv) {
        env.import_ok(&[
            creating_job("idle-30d", days_ago(400), days_ago(30)),
            creating_job("idle-15d", days_ago(20), days_ago(15)),
            creating_job("idle-13d", days_ago(20), days_ago(13)),
            creating_job("old-but-touched", days_ago(400), days_ago(1)),
            set(finished_job("shipping-old", "Shipping", days_ago(400), days_ago(300)), "drives", json!([])),
        ]);

        let s = env.json(&["purge", "--dry-run"]);
        assert_eq!(s["total"], 0, "creating_idle is off by default: {s}");
        let s = env.json(&["purge"]);
        assert_eq!(s["total"], 0, "creating_idle is off by default: {s}");
        assert_eq!(env.count("jobs"), 5);

        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["counts"], json!({"completed": 0, "closed": 0, "creating_idle": 2, "retain_until": 0}), "{s}");
        assert_purged(env, &["idle-30d", "idle-15d"], "creating_idle", &s["run_id"]);
        assert_eq!(env.audit_rows("idle-30d")[0]["state"], "Creating");
        assert_kept(env, &["idle-13d", "old-but-touched", "shipping-old"]);
    }
}

every_engine! {
    /// A held job is never eligible, whatever its policy; after release it is.
    fn held_jobs_kept_until_released(env: &TestEnv) {
        env.import_ok(&[
            set(finished_job("held-completed", "Completed", days_ago(300), days_ago(200)), "hold_reason", json!("litigation")),
            finished_job("held-closed", "Closed", days_ago(300), days_ago(200)),
            // Held from the start, so that its updated_at stays old.
            set(creating_job("held-creating", days_ago(300), days_ago(200)), "hold_reason", json!("customer asked")),
            finished_job("unheld-completed", "Completed", days_ago(300), days_ago(199)),
        ]);
        env.json(&["jobs", "hold", "held-closed", "--reason", "audit request"]);

        let s = env.json_env(&["purge", "--dry-run"], &[IDLE_14D]);
        assert_eq!(dry_run_names(&s), vec!["unheld-completed"], "{s}");
        let s = env.json_env(&["purge", "--dry-run", "--as-of", &ts(now() + Duration::days(400))], &[IDLE_14D]);
        assert_eq!(dry_run_names(&s), vec!["unheld-completed"], "held jobs are never eligible: {s}");
        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["total"], 1, "{s}");
        assert_purged(env, &["unheld-completed"], "completed", &s["run_id"]);
        assert_kept(env, &["held-completed", "held-closed", "held-creating"]);

        env.json(&["jobs", "release", "held-completed"]);
        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["counts"], json!({"completed": 1, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_purged(env, &["held-completed"], "completed", &s["run_id"]);
        assert_kept(env, &["held-closed", "held-creating"]);

        env.json(&["jobs", "release", "held-closed"]);
        env.json(&["jobs", "release", "held-creating"]);
        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["counts"]["closed"], 1, "{s}");
        assert_purged(env, &["held-closed"], "closed", &s["run_id"]);
        // Releasing is a change (updated_at), so the idle clock may restart;
        // either way the released job is eligible once idle for 14 days.
        let s = env.json_env(&["purge", "--dry-run", "--as-of", &ts(now() + Duration::days(15))], &[IDLE_14D]);
        assert!(dry_run_names(&s).contains(&"held-creating".to_string()), "{s}");
    }
}

every_engine! {
    /// Timestamps in the future are never eligible and are counted in
    /// `skipped_future`, in a dry run and in a real purge; a job with its
    /// own `retain_until` counts once that moment has come (before, it is
    /// kept for that alone).
    fn future_timestamps_kept_and_counted(env: &TestEnv) {
        let later = now() + Duration::days(1);
        env.import_ok(&[
            finished_job("future-completed", "Completed", days_ago(10), later),
            finished_job("future-closed", "Closed", days_ago(10), later + Duration::days(1)),
            creating_job("future-creating", days_ago(10), later),
            finished_job("past-completed", "Completed", days_ago(200), days_ago(100)),
            retained_job("future-due", "Completed", later, days_ago(1)),
            retained_job("future-not-due", "Closed", later, later + Duration::days(30)),
        ]);

        let s = env.json(&["purge", "--dry-run"]);
        assert_eq!(dry_run_names(&s), vec!["past-completed"], "{s}");
        assert_eq!(s["skipped_future"], 3, "{s}");

        let s = env.json_env(&["purge", "--dry-run"], &[IDLE_14D]);
        assert_eq!(s["skipped_future"], 4, "with creating_idle on, the idle job counts too: {s}");

        // Skew is judged by the database's clock, not by --as-of: a year ago,
        // past-completed (which entered Completed 100 days ago) is not "in the future".
        let s = env.json(&["purge", "--dry-run", "--as-of", &ts(days_ago(365))]);
        assert_eq!(s["total"], 0, "{s}");
        assert_eq!(s["skipped_future"], 3, "{s}");

        let s = env.json_env(&["purge"], &[IDLE_14D]);
        assert_eq!(s["total"], 1, "{s}");
        assert_eq!(s["skipped_future"], 4, "{s}");
        assert_purged(env, &["past-completed"], "completed", &s["run_id"]);
        assert_kept(env, &["future-completed", "future-closed", "future-creating", "future-due", "future-not-due"]);

        // A deleting sweep reads the count with its run's start: only the
        // policies it enables count there too.
        let s = env.json(&["purge"]);
        assert_eq!(s["total"], 0, "{s}");
        assert_eq!(s["skipped_future"], 3, "{s}");
    }
}

/// `[retention.by_type.export] completed = "30d"`, from the environment.
const EXPORTS_30D: (&str, &str) = ("RETENTIOND__RETENTION__BY_TYPE__EXPORT__COMPLETED", "30d");

/// A finished job of `job_type` that entered `state` at `finished`.
fn typed_job(name: &str, job_type: &str, state: &str, finished: DateTime<Utc>) -> Value {
    set(finished_job(name, state, finished - Duration::days(10), finished), "job_type", json!(job_type))
}

every_engine! {
    /// docs/configuration.md, `retention.by_type`: exports completed 31 days
    /// ago go under `[retention.by_type.export] completed = "30d"` while
    /// imports of the same age stay under the general 90 days; a policy the
    /// type does not set (closed) falls back to the general one. The dry
    /// run, the forecast and the purge agree.
    fn each_type_has_its_own_retention_and_the_rest_falls_back(env: &TestEnv) {
        env.import_ok(&[
            typed_job("export-31d", "Export", "Completed", days_ago(31)),
            typed_job("import-31d", "Import", "Completed", days_ago(31)),
            typed_job("export-29d12h", "Export", "Completed", days_ago(29) - Duration::hours(12)),
            typed_job("import-100d", "Import", "Completed", days_ago(100)),
            typed_job("closed-export-31d", "Export", "Closed", days_ago(31)),
        ]);

        let dry = env.json_env(&["purge", "--dry-run"], &[EXPORTS_30D]);
        assert_eq!(dry["counts"], json!({"completed": 2, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{dry}");
        assert_eq!(dry["jobs"], json!(["import-100d", "export-31d"]), "most overdue first: {dry}");

        let forecast = env.json_env(&["forecast", "--days", "30"], &[EXPORTS_30D]);
        assert_eq!(forecast["policies"]["completed"]["retention"], json!("import 90d, export 30d"), "{forecast}");
        assert_eq!(forecast["policies"]["closed"]["retention"], json!("90d"), "{forecast}");
        assert_eq!(forecast["per_day"][0]["counts"]["completed"], json!(1), "export-29d12h tomorrow: {forecast}");
        assert_eq!(forecast["total"], json!(1), "the imports and the closed export reach 90 days later: {forecast}");

        let purged = env.json_env(&["purge"], &[EXPORTS_30D]);
        assert_eq!(purged["counts"], json!({"completed": 2, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{purged}");
        assert_purged(env, &["export-31d", "import-100d"], "completed", &purged["run_id"]);
        assert_kept(env, &["import-31d", "export-29d12h", "closed-export-31d"]);

        let general = env.json(&["purge"]);
        assert_eq!(general["total"], json!(0), "without the override the exports wait for 90 days: {general}");
        assert_kept(env, &["import-31d", "export-29d12h", "closed-export-31d"]);
    }
}

every_engine! {
    /// docs/lifecycle.md: under a cap a sweep deletes the jobs that became
    /// eligible first (age plus their rule's retention), across types: an
    /// export 40 days old under 30 days is 10 days overdue, before an import
    /// 95 days old under 90 days (5 days), though the import is older.
    fn the_cap_takes_the_most_overdue_across_types(env: &TestEnv) {
        env.import_ok(&[
            typed_job("import-95d", "Import", "Completed", days_ago(95)),
            typed_job("import-92d", "Import", "Completed", days_ago(92)),
            typed_job("export-40d", "Export", "Completed", days_ago(40)),
            typed_job("export-33d", "Export", "Completed", days_ago(33)),
        ]);

        let dry = env.json_env(&["purge", "--dry-run", "--max-deletes", "2"], &[EXPORTS_30D]);
        assert_eq!(dry["jobs"], json!(["export-40d", "import-95d"]), "{dry}");
        assert_eq!(dry["stopped_by"], json!("max_deletes"), "{dry}");

        let purged = env.json_env(&["purge", "--max-deletes", "2"], &[EXPORTS_30D]);
        assert_eq!(purged["total"], json!(2), "{purged}");
        assert_purged(env, &["export-40d", "import-95d"], "completed", &purged["run_id"]);
        assert_kept(env, &["export-33d", "import-92d"]);
    }
}

every_engine! {
    /// A per-type key for an unknown type or policy, or a value under
    /// `retention.minimum`, exits 78 naming the key, with nothing written;
    /// `check-config` prints each type's effective retentions.
    fn per_type_keys_are_checked_and_shown(env: &TestEnv) {
        env.import_ok(&[typed_job("export-31d", "Export", "Completed", days_ago(31))]);
        let before = env.dump_all();
        let config = |toml: &str| env.write_file("retentiond.toml", toml).to_string_lossy().into_owned();
        for (toml, key) in [
            ("[retention.by_type.export]\ncomplete = \"30d\"\n", "retention.by_type.export.complete"),
            ("[retention.by_type.archive]\ncompleted = \"30d\"\n", "retention.by_type.archive"),
            ("[retention.by_type.export]\ncompleted = \"12h\"\n", "retention.by_type.export.completed = 12h"),
        ] {
            let out = env.run(&["--config", &config(toml), "purge"]);
            out.expect_code(78);
            assert!(out.stderr.contains(key), "stderr must name {key:?}\n{}", out.describe());
        }
        let out = env.run_env(&["purge"], &[("RETENTIOND__RETENTION__BY_TYPE__IMPORT__HELD", "30d")]);
        out.expect_code(78);
        assert!(out.stderr.contains("retention.by_type.import.held"), "{}", out.describe());
        assert_eq!(env.dump_all(), before, "a refused configuration touched the store");

        let out = env.run(&["--config", &config("[retention.by_type.export]\ncompleted = \"30d\"\n"), "check-config"]);
        out.expect_code(0);
        let shown: toml::Table = out.stdout.parse().expect("check-config prints TOML");
        let by_type = &shown["retention"]["by_type"];
        assert_eq!(by_type["export"]["completed"].as_str(), Some("30d"), "{shown}");
        assert_eq!(by_type["import"]["completed"].as_str(), Some("90d"), "{shown}");
        assert_eq!(by_type["export"]["closed"].as_str(), Some("90d"), "{shown}");
        assert_eq!(by_type["import"]["creating_idle"].as_str(), Some("off"), "{shown}");
    }
}

/// A finished job of `state` that entered it at `finished`, kept until `until`.
fn retained_job(name: &str, state: &str, finished: DateTime<Utc>, until: DateTime<Utc>) -> Value {
    set(finished_job(name, state, finished - Duration::days(10), finished), "retain_until", json!(ts(until)))
}

every_engine! {
    /// docs/configuration.md, "A job's own retention": a finished job with
    /// `retain_until` is deleted once the clock reaches it, and never before
    /// `retention.minimum` (1d) after it finished; its policy's retention
    /// does not apply to it; a job in another state and a held job are kept.
    /// The audit row's policy is `retain_until`; dry run, forecast and purge
    /// agree; `jobs retain --clear` returns a job to its policy.
    fn a_job_is_kept_until_its_own_moment(env: &TestEnv) {
        let now = Utc::now();
        let next_year = now + Duration::days(366);
        env.import_ok(&[
            retained_job("until-past-finished-2d", "Completed", days_ago(2), days_ago(1)),
            retained_job("until-past-finished-12h", "Closed", now - Duration::hours(12), days_ago(1)),
            retained_job("until-next-year-finished-400d", "Completed", days_ago(400), next_year),
            retained_job("until-10d-finished-400d", "Closed", days_ago(400), now + Duration::days(10) + Duration::hours(1)),
            set(retained_job("held", "Completed", days_ago(400), days_ago(1)), "hold_reason", json!("legal")),
            set(creating_job("creating", days_ago(400), days_ago(400)), "retain_until", json!(ts(days_ago(1)))),
            finished_job("plain-100d", "Completed", days_ago(110), days_ago(100)),
        ]);
        let shown = parse_ts(&env.show("until-next-year-finished-400d")["retain_until"]);
        assert!((shown - next_year).num_milliseconds().abs() < 1, "{shown} against {next_year}");

        let dry = env.json(&["purge", "--dry-run"]);
        assert_eq!(dry["counts"], json!({"completed": 1, "closed": 0, "creating_idle": 0, "retain_until": 1}), "{dry}");
        assert_eq!(dry["jobs"], json!(["plain-100d", "until-past-finished-2d"]), "due 10 days ago, then 1: {dry}");

        let forecast = env.json(&["forecast", "--days", "30"]);
        assert_eq!(
            forecast["policies"]["retain_until"]["retention"],
            json!("the job's own, at least 1d after it finished"),
            "{forecast}"
        );
        assert_eq!(forecast["per_day"][0]["counts"]["retain_until"], json!(1), "the one finished 12h ago: {forecast}");
        assert_eq!(forecast["per_day"][10]["counts"]["retain_until"], json!(1), "the one due in 10 days: {forecast}");
        assert_eq!(forecast["total"], json!(2), "{forecast}");

        let purged = env.json(&["purge"]);
        assert_eq!(purged["counts"], json!({"completed": 1, "closed": 0, "creating_idle": 0, "retain_until": 1}), "{purged}");
        assert_purged(env, &["until-past-finished-2d"], "retain_until", &purged["run_id"]);
        assert_purged(env, &["plain-100d"], "completed", &purged["run_id"]);
        assert_kept(env, &["until-past-finished-12h", "until-next-year-finished-400d", "until-10d-finished-400d", "held", "creating"]);
        let runs = env.json(&["runs", "list", "--limit", "1"]);
        assert_eq!(runs[0]["counts"]["retain_until"], json!(1), "{runs}");

        let cleared = env.json(&["jobs", "retain", "until-next-year-finished-400d", "--clear"]);
        assert_eq!(cleared["retain_until"], Value::Null, "{cleared}");
        let purged = env.json(&["purge"]);
        assert_eq!(purged["counts"]["completed"], json!(1), "back under its policy's 90 days: {purged}");
        assert_purged(env, &["until-next-year-finished-400d"], "completed", &purged["run_id"]);

        let moved = env.json(&["jobs", "retain", "until-10d-finished-400d", "--until", "2001-01-01T00:00:00+02:00"]);
        assert_eq!(moved["retain_until"], json!("2000-12-31T22:00:00Z"), "{moved}");
        let purged = env.json(&["purge"]);
        assert_purged(env, &["until-10d-finished-400d"], "retain_until", &purged["run_id"]);
        let extended = env.json(&["jobs", "retain", "until-past-finished-12h", "--for", "30d"]);
        let until = parse_ts(&extended["retain_until"]);
        assert!((until - (Utc::now() + Duration::days(30))).num_minutes().abs() < 5, "{extended}");
        let created = env.json(&["jobs", "create", "kept-a-year", "--type", "export", "--retain-for", "365d"]);
        assert!(parse_ts(&created["retain_until"]) > Utc::now() + Duration::days(364), "{created}");
    }
}

every_engine! {
    /// A `retain_until` without a zone or malformed, or a `--retain-for`
    /// that is no duration, exits 65 naming the field, with nothing written.
    fn bad_retention_input_is_refused_naming_the_field(env: &TestEnv) {
        env.import_ok(&[finished_job("finished", "Completed", days_ago(20), days_ago(10))]);
        let before = env.dump_all();
        for (args, field) in [
            (vec!["jobs", "create", "new-job", "--type", "import", "--retain-until", "2027-01-01T00:00:00"], "--retain-until"),
            (vec!["jobs", "create", "new-job", "--type", "import", "--retain-until", "next year"], "--retain-until"),
            (vec!["jobs", "create", "new-job", "--type", "import", "--retain-for", "a while"], "--retain-for"),
            (vec!["jobs", "retain", "finished", "--until", "2027-13-01T00:00:00Z"], "--until"),
            (vec!["jobs", "retain", "finished", "--for", "1 fortnite"], "--for"),
        ] {
            let out = env.run(&args);
            out.expect_code(65);
            assert!(out.stderr.contains(field), "stderr must name {field}\n{}", out.describe());
        }
        let line = set(finished_job("imported", "Closed", days_ago(20), days_ago(10)), "retain_until", json!("2027-01-01"));
        let out = env.import(&[line]);
        out.expect_code(65);
        assert!(out.stderr.contains("retain_until"), "{}", out.describe());
        assert_eq!(env.dump_all(), before, "refused input touched the store");
    }
}
