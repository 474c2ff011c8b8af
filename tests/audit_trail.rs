//! docs/design.md, "The audit trail", the audit trail's own lifecycle: `retention.audit` and
//! `retention.runs` remove old audit rows and run records after the jobs,
//! by the rules of `src/trail.rs`, counted in the run record and the
//! metrics; the statements that do it stay on their indexes.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};

use common::plan::{self, Plan};
use common::*;
use retentiond::store::postgres::sql as pg;
use serde_json::Value;

const DAY: i64 = 86_400;

/// Job ids for inserted audit rows: unique in the table (and within a test binary).
static NEXT_JOB_ID: AtomicI64 = AtomicI64::new(1_000_000);

/// The run lock class of the PostgreSQL store ("RTDR"): a run whose lock is
/// held belongs to a live process.
const RUN_LOCK_CLASS: i64 = 0x5254_4452;

fn ago(env: &TestEnv, days: i64) -> String {
    env.sql_seconds_ago(days * DAY)
}

/// A run record that finished `finished` days ago (`None`: still running),
/// having deleted `deleted` jobs; returns its id. A running run belongs to a
/// live process, so no sweep marks it abandoned: on SQLite this test process
/// (on this host), on PostgreSQL the holder of its lock.
fn run(env: &TestEnv, status: &str, started: i64, finished: Option<i64>, deleted: i64) -> i64 {
    let finished_at = finished.map_or_else(|| "NULL".to_owned(), |days| ago(env, days));
    let id = env.scalar(&format!(
        "INSERT INTO retention_runs ({}, status, started_at, finished_at, deleted_completed, host, pid) \
         VALUES ('purge', '{status}', {}, {finished_at}, {deleted}, {}, {}) RETURNING id",
        env.sql_column("trigger"),
        ago(env, started),
        quote(&hostname()),
        std::process::id(),
    ));
    if status == "running" {
        match env.engine {
            Engine::Sqlite => {}
            Engine::Postgres => env.execute(&format!("SELECT pg_advisory_lock({RUN_LOCK_CLASS}::int4, {id})")),
            Engine::MariaDb => {
                env.execute(&format!("SELECT GET_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', {id}), 0)"))
            }
        }
    }
    id
}

/// `count` audit rows of `run` (`None`: `jobs delete`), deleted `days` days
/// ago, inserted by one statement; returns their ids.
fn audit(env: &TestEnv, run: Option<i64>, days: i64, count: i64) -> Vec<i64> {
    let first = NEXT_JOB_ID.fetch_add(count, Ordering::Relaxed);
    let (numbers, from) = env.sql_numbers(first, first + count - 1);
    let (policy, false_value) = (if run.is_some() { "completed" } else { "manual" }, env.sql_bool(false));
    let run_id = run.map_or_else(|| "NULL".to_owned(), |id| id.to_string());
    let deleted_at = ago(env, days);
    let ids = env.rows(&format!(
        "{numbers}INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
           created_at, state_changed_at, deleted_at, deleted_by) \
         SELECT {run_id}, i, 'trail-' || i, 'Import', '{policy}', 'Completed', {false_value}, {deleted_at}, \
           {deleted_at}, {deleted_at}, 'ops@host' FROM {from} RETURNING id"
    ));
    ids.iter().map(|row| row[0].as_i64().expect("an id")).collect()
}

fn ids(env: &TestEnv, table: &str) -> BTreeSet<i64> {
    env.rows(&format!("SELECT id FROM {table}")).iter().map(|row| row[0].as_i64().expect("an id")).collect()
}

/// Every id but `removed`.
fn without(all: &BTreeSet<i64>, removed: &[i64]) -> BTreeSet<i64> {
    all.iter().copied().filter(|id| !removed.contains(id)).collect()
}

/// Runs `purge` with the trail's retentions and a metrics textfile, in
/// batches of two (so that every walk takes several batches); returns the
/// summary and the metrics.
fn purge(env: &TestEnv, settings: &[(&str, &str)]) -> (Value, Metrics) {
    let path = env.dir().join("purge.prom");
    let summary = env.json_env(&["purge", "--batch-size", "2", "--metrics-textfile", path_str(&path)], settings);
    let metrics = Metrics::parse(&std::fs::read_to_string(&path).expect("the textfile"));
    (summary, metrics)
}

/// The run record of `run_id` as `runs list` prints it.
fn run_record(env: &TestEnv, run_id: &Value) -> Value {
    let runs = env.json(&["runs", "list", "--limit", "0"]);
    runs.as_array().unwrap().iter().find(|run| &run["run_id"] == run_id).cloned().expect("the run's record")
}

#[track_caller]
fn assert_removed(env: &TestEnv, summary: &Value, metrics: &Metrics, audit_rows: u64, runs: u64) {
    assert_eq!(
        (summary["audit_rows_removed"].as_u64(), summary["runs_removed"].as_u64()),
        (Some(audit_rows), Some(runs)),
        "{summary}"
    );
    let record = run_record(env, &summary["run_id"]);
    assert_eq!(
        (record["audit_rows_removed"].as_u64(), record["runs_removed"].as_u64()),
        (Some(audit_rows), Some(runs)),
        "{record}"
    );
    assert_eq!(metrics.value("retentiond_audit_rows_removed_total", &[]), audit_rows as f64);
    assert_eq!(metrics.value("retentiond_run_records_removed_total", &[]), runs as f64);
}

every_engine! {
    /// `retention.audit = 30d`, `retention.runs = 60d`: old audit rows go
    /// unless their run is running or finished within 30 days; old runs go
    /// once no audit row names them; nothing younger goes.
    fn removal_respects_both_limits(env: &TestEnv) {
        env.migrate();
        let old = run(env, "succeeded", 100, Some(100), 2);
        let old_rows = audit(env, Some(old), 100, 2);
        let failed = run(env, "failed", 90, Some(90), 1);
        let failed_rows = audit(env, Some(failed), 90, 1);
        let middle = run(env, "succeeded", 45, Some(45), 2);
        let middle_rows = audit(env, Some(middle), 45, 2);
        let recent = run(env, "succeeded", 20, Some(20), 2);
        audit(env, Some(recent), 20, 2);
        // Its rows are older than 30 days, but the run finished 20 days ago.
        let straddling = run(env, "succeeded", 40, Some(20), 2);
        audit(env, Some(straddling), 40, 2);
        let running = run(env, "running", 100, None, 0);
        audit(env, Some(running), 100, 2);
        let empty_old = run(env, "succeeded", 70, Some(70), 0);
        run(env, "interrupted", 45, Some(45), 0);
        let manual_old = audit(env, None, 40, 1);
        audit(env, None, 20, 1);
        let (audit_before, runs_before) = (ids(env, "retention_audit"), ids(env, "retention_runs"));

        let (summary, metrics) =
            purge(env, &[("RETENTIOND__RETENTION__AUDIT", "30d"), ("RETENTIOND__RETENTION__RUNS", "60d")]);

        let removed_rows = [old_rows, failed_rows, middle_rows, manual_old].concat();
        assert_eq!(ids(env, "retention_audit"), without(&audit_before, &removed_rows));
        let this_run = summary["run_id"].as_i64().unwrap();
        let mut runs_left = without(&runs_before, &[old, failed, empty_old]);
        runs_left.insert(this_run);
        assert_eq!(ids(env, "retention_runs"), runs_left);
        assert_removed(env, &summary, &metrics, 6, 3);
        assert_eq!(env.count(&format!("retention_runs WHERE id = {running} AND status = 'running'")), 1);

        let text = env.run(&["runs", "list"]);
        text.expect_code(0);
        assert!(text.stdout.contains("REMOVED_AUDIT/RUNS") && text.stdout.contains("6/3"), "{}", text.stdout);

        // Nothing more is old enough: the next sweep removes nothing.
        let (again, metrics) =
            purge(env, &[("RETENTIOND__RETENTION__AUDIT", "30d"), ("RETENTIOND__RETENTION__RUNS", "60d")]);
        assert_removed(env, &again, &metrics, 0, 0);
    }
}

every_engine! {
    /// `retention.audit = off`: a run that deleted jobs keeps its record as
    /// long as its audit rows stay (forever); runs that deleted nothing go
    /// at `retention.runs`, unless an audit row names one all the same (an
    /// abandoned run's counts are zero).
    fn runs_named_by_audit_rows_stay(env: &TestEnv) {
        env.migrate();
        let old = run(env, "succeeded", 100, Some(100), 2);
        audit(env, Some(old), 100, 2);
        let abandoned = run(env, "abandoned", 80, Some(80), 0);
        audit(env, Some(abandoned), 80, 1);
        let empty_old = run(env, "succeeded", 70, Some(70), 0);
        let empty_older = run(env, "failed", 75, Some(75), 0);
        run(env, "succeeded", 45, Some(45), 0);
        run(env, "running", 100, None, 0);
        let (audit_before, runs_before) = (ids(env, "retention_audit"), ids(env, "retention_runs"));

        let (summary, metrics) = purge(env, &[("RETENTIOND__RETENTION__RUNS", "60d")]);

        assert_eq!(ids(env, "retention_audit"), audit_before);
        let mut runs_left = without(&runs_before, &[empty_old, empty_older]);
        runs_left.insert(summary["run_id"].as_i64().unwrap());
        assert_eq!(ids(env, "retention_runs"), runs_left);
        assert_removed(env, &summary, &metrics, 0, 2);
    }
}

every_engine! {
    /// `retention.audit = 90d`, `retention.runs = 30d`: runs past both
    /// limits go with their audit rows; between them only runs that deleted
    /// nothing go, and the rest keep their audit rows.
    fn runs_outlive_their_limit_while_their_audit_rows_stay(env: &TestEnv) {
        env.migrate();
        let spent = run(env, "succeeded", 100, Some(100), 1);
        let spent_rows = audit(env, Some(spent), 100, 1);
        let spent_empty = run(env, "succeeded", 120, Some(120), 0);
        let kept = run(env, "succeeded", 50, Some(50), 1);
        audit(env, Some(kept), 50, 1);
        let empties: Vec<i64> = (0..3).map(|i| run(env, "succeeded", 50 + i, Some(50 + i), 0)).collect();
        run(env, "succeeded", 10, Some(10), 0);
        let (audit_before, runs_before) = (ids(env, "retention_audit"), ids(env, "retention_runs"));

        let (summary, metrics) =
            purge(env, &[("RETENTIOND__RETENTION__AUDIT", "90d"), ("RETENTIOND__RETENTION__RUNS", "30d")]);

        assert_eq!(ids(env, "retention_audit"), without(&audit_before, &spent_rows));
        let mut runs_left = without(&runs_before, &[[spent, spent_empty].as_slice(), &empties].concat());
        runs_left.insert(summary["run_id"].as_i64().unwrap());
        assert_eq!(ids(env, "retention_runs"), runs_left);
        assert_removed(env, &summary, &metrics, 1, 5);
    }
}

every_engine! {
    /// With both off (the default) nothing of the trail is removed, and the
    /// counters are there at zero from the first scrape.
    fn off_removes_nothing(env: &TestEnv) {
        env.migrate();
        let old = run(env, "succeeded", 1000, Some(1000), 2);
        audit(env, Some(old), 1000, 2);
        audit(env, None, 1000, 1);
        run(env, "succeeded", 1000, Some(1000), 0);
        let (audit_before, runs_before) = (ids(env, "retention_audit"), ids(env, "retention_runs"));

        let (summary, metrics) = purge(env, &[]);

        assert_eq!(ids(env, "retention_audit"), audit_before);
        assert_eq!(ids(env, "retention_runs").len(), runs_before.len() + 1, "only the purge's own run is new");
        assert_removed(env, &summary, &metrics, 0, 0);
        assert_eq!(metrics.type_of("retentiond_audit_rows_removed_total").as_deref(), Some("counter"));
    }
}

every_engine! {
    /// The removal stops at `retention.run_timeout` like the job deletions,
    /// counting what it removed, and the next sweep goes on from there.
    fn removal_stops_at_the_run_timeout(env: &TestEnv) {
        env.migrate();
        let old = run(env, "succeeded", 100, Some(100), 300);
        let rows = audit(env, Some(old), 100, 300);
        // One row per batch, 20 ms apart: 300 rows take 6 s, far past 300 ms.
        let slow = [
            ("RETENTIOND__RETENTION__AUDIT", "30d"),
            ("RETENTIOND__RETENTION__BATCH_SIZE", "1"),
            ("RETENTIOND__RETENTION__BATCH_PAUSE", "20ms"),
            ("RETENTIOND__RETENTION__RUN_TIMEOUT", "300ms"),
        ];
        let first = env.json_env(&["purge"], &slow);
        assert_eq!(first["stopped_by"], "timeout", "{first}");
        let removed = first["audit_rows_removed"].as_u64().unwrap();
        assert!(removed > 0 && removed < 300, "{first}");
        assert_eq!(env.count("retention_audit") as u64, 300 - removed);
        assert_eq!(run_record(env, &first["run_id"])["audit_rows_removed"], removed);
        // The oldest go first.
        let left = ids(env, "retention_audit");
        assert_eq!(left, rows[removed as usize..].iter().copied().collect());

        let second = env.json_env(&["purge"], &[("RETENTIOND__RETENTION__AUDIT", "30d")]);
        assert_eq!(second["audit_rows_removed"].as_u64(), Some(300 - removed), "{second}");
        assert_eq!(env.count("retention_audit"), 0);
    }
}

every_engine! {
    /// A trail retention below `retention.minimum` is refused like any
    /// policy (exit 78) before the database is touched; `off` and the
    /// minimum itself are fine.
    fn a_trail_retention_below_the_minimum_is_refused(env: &TestEnv) {
        for (key, variable) in [("retention.audit", "RETENTIOND__RETENTION__AUDIT"), ("retention.runs", "RETENTIOND__RETENTION__RUNS")] {
            let out = env.run_env(&["purge"], &[(variable, "12h")]);
            out.expect_code(78);
            assert!(out.stderr.contains(&format!("{key} = 12h is below retention.minimum (1d)")), "{}", out.describe());
            env.run_env(&["check-config"], &[(variable, "1d")]).expect_code(0);
            env.run_env(&["check-config"], &[(variable, "off")]).expect_code(0);
        }
        match env.engine {
            Engine::Sqlite => {
                assert!(!env.dir().join("test.db").exists(), "a refused configuration opens no database");
            }
            Engine::Postgres | Engine::MariaDb => {
                env.migrate();
                assert_eq!(env.count("retention_runs"), 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Query plans
// ---------------------------------------------------------------------------

/// `sql` with its numbered parameters (`?N` or `$N`) replaced by literals,
/// highest number first so that `?1` does not eat into `?10`.
fn inline(sql: &str, marker: char, values: &[String]) -> String {
    let mut sql = sql.to_owned();
    for (index, value) in values.iter().enumerate().rev() {
        sql = sql.replace(&format!("{marker}{}", index + 1), value);
    }
    sql
}

/// The planner settings of the store's trail statements, for this session.
fn trail_planner_settings() -> String {
    pg::INDEX_ORDER_SETTINGS.map(|(name, value)| format!("SET {name} = {value}")).join("; ")
}

/// The plans of `sql` with `values` for its parameters, read by
/// `tests/common/plan.rs`. SQLite: `EXPLAIN QUERY PLAN`. PostgreSQL: the
/// statement prepared with the store's planner settings and explained as a
/// generic plan (which knows none of the parameters) and as a custom one.
fn plans(env: &TestEnv, sql: &str, values: &[String], pg_types: &[&str]) -> Vec<(&'static str, Plan)> {
    match env.engine {
        Engine::Sqlite => vec![("", plan::explain(env, &inline(sql, '?', values)))],
        Engine::Postgres => ["force_generic_plan", "force_custom_plan"]
            .into_iter()
            .map(|mode| {
                let name = format!("trail_statement_{}", NEXT_JOB_ID.fetch_add(1, Ordering::Relaxed));
                env.execute(&format!("{}; SET plan_cache_mode = {mode}", trail_planner_settings()));
                env.execute(&format!("PREPARE {name} ({}) AS {sql}", pg_types.join(", ")));
                let explained = env.rows(&format!("EXPLAIN (FORMAT JSON) EXECUTE {name} ({})", values.join(", ")));
                (mode, plan::read_postgres(&plan::explain_json(explained)))
            })
            .collect(),
        Engine::MariaDb => vec![("", plan::explain(env, &inline(sql, '$', values)))],
    }
}

/// How a statement's rows come in order.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// Along its indexes: no sort.
    OfIndexes,
    /// Along two indexes, then merged: SQLite, which cannot merge ordered
    /// subqueries, sorts their rows (at most twice the batch's limit);
    /// PostgreSQL merges them without a sort.
    MergedWalks,
}

/// What a plan must show, and what it must not: each of `indexes` read,
/// `by_key`'s tables looked up by their primary key, and the indexes walked
/// in their order (no full scan of a table, no bitmap scan, no sort but the
/// one `order` allows).
#[track_caller]
fn assert_plans(env: &TestEnv, plans: &[(&str, Plan)], indexes: &[&str], by_key: &[&str], order: Order, what: &str) {
    for (mode, plan) in plans {
        let what = if mode.is_empty() { what.to_owned() } else { format!("{what} ({mode})") };
        for index in indexes {
            plan.assert_uses(index, &what);
        }
        for table in by_key {
            assert!(plan.reads_by_key(table), "{what} does not look {table} up by key:\n{}", plan.text);
        }
        let sorts_merged_walks = match env.engine {
            Engine::Sqlite | Engine::MariaDb => true,
            Engine::Postgres => false,
        };
        if order == Order::MergedWalks && sorts_merged_walks {
            plan.assert_no_full_scan(&what);
            assert!(!plan.bitmap_scans(), "{what} reads through a bitmap:\n{}", plan.text);
        } else {
            plan.assert_in_index_order(&what);
        }
    }
}

/// 20,000 runs an hour apart, two in three having deleted jobs, and 150,000
/// audit rows spread over them, by two statements.
fn large_trail(env: &TestEnv) {
    let (runs_with, runs_from) = env.sql_numbers(0, 20_000 - 1);
    let (audit_with, audit_from) = env.sql_numbers(0, 150_000 - 1);
    let hours_ago = |expression: &str| match env.engine {
        Engine::Sqlite => format!("(CAST(strftime('%s','now') AS INTEGER) - ({expression}) * 3600) * 1000000"),
        Engine::Postgres => format!("now() - ({expression}) * interval '1 hour'"),
        Engine::MariaDb => format!("UTC_TIMESTAMP(6) - INTERVAL ({expression}) HOUR"),
    };
    let (trigger, name) = match env.engine {
        Engine::Sqlite | Engine::Postgres => ("trigger", "'plan-' || i"),
        Engine::MariaDb => ("`trigger`", "CONCAT('plan-', i)"),
    };
    env.execute(&format!(
        "{}INSERT INTO retention_runs ({trigger}, status, started_at, finished_at, deleted_completed, host, pid) \
         SELECT 'purge', 'succeeded', {finished}, {finished}, CASE WHEN i % 3 = 0 THEN 0 ELSE 10 END, 'h', 1 FROM {}",
        runs_with,
        runs_from,
        finished = hours_ago("20000 - i"),
    ));
    let first_run = env.scalar("SELECT min(id) FROM retention_runs");
    env.execute(&format!(
        "{}INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
           created_at, state_changed_at, deleted_at, deleted_by) \
         SELECT {first_run} + i % 20000, 9000000 + i, {name}, 'Import', 'completed', 'Completed', {}, \
           {deleted}, {deleted}, {deleted}, 'ops@host' FROM {}",
        audit_with,
        env.sql_bool(false),
        audit_from,
        deleted = hours_ago("20000 - i % 20000"),
    ));
}

every_engine! {
    /// Each removal batch reads its index in order from its cursor, looks
    /// runs and audit rows up by key, and deletes by primary key; an export
    /// page is a range of the primary key, the export window a range of
    /// `retention_audit_by_deleted_at`. Never a scan of a table, on tables
    /// without statistics and (PostgreSQL, MariaDB) after ANALYZE, on
    /// PostgreSQL as generic and as custom plans. MariaDB claims the rows
    /// of a batch first, then deletes the claimed ids by primary key.
    fn trail_statements_seek_their_indexes(env: &TestEnv) {
        env.migrate();
        large_trail(env);
        let at = |days: i64| match env.engine {
            Engine::Sqlite => (chrono::Utc::now() - chrono::Duration::days(days)).timestamp_micros().to_string(),
            Engine::Postgres => format!("'{}'::timestamptz", ts(chrono::Utc::now() - chrono::Duration::days(days))),
            Engine::MariaDb => env.sql_time(chrono::Utc::now() - chrono::Duration::days(days)),
        };
        let start = match env.engine {
            Engine::Sqlite => "-62135596800000000".to_owned(),
            Engine::Postgres => "'0001-01-01T00:00:00Z'::timestamptz".to_owned(),
            Engine::MariaDb => "'0001-01-01 00:00:00'".to_owned(),
        };
        let (first_id, last_id) = ("(-9223372036854775807 - 1)".to_owned(), "9223372036854775807".to_owned());
        let analysed = match env.engine {
            Engine::Sqlite => vec![false],
            Engine::Postgres | Engine::MariaDb => vec![false, true],
        };
        for analysed in analysed {
            if analysed {
                env.execute(match env.engine {
                    Engine::MariaDb => "ANALYZE TABLE retention_runs, retention_audit PERSISTENT FOR ALL",
                    Engine::Sqlite | Engine::Postgres => "ANALYZE",
                });
            }
            let audit_values = [at(30), start.clone(), first_id.clone(), "1000".to_owned()];
            let remove_audit_rows = match env.engine {
                Engine::Sqlite => retentiond::store::sqlite::sql::REMOVE_AUDIT_ROWS,
                Engine::Postgres => pg::REMOVE_AUDIT_ROWS,
                Engine::MariaDb => retentiond::store::mariadb::sql::CLAIM_EXPIRED_AUDIT_ROWS,
            };
            let remove_run_records = match env.engine {
                Engine::Sqlite => retentiond::store::sqlite::sql::REMOVE_RUN_RECORDS,
                Engine::Postgres => pg::REMOVE_RUN_RECORDS,
                Engine::MariaDb => retentiond::store::mariadb::sql::CLAIM_EXPIRED_RUN_RECORDS,
            };
            let audit_plans = plans(env, remove_audit_rows, &audit_values, &["timestamptz", "timestamptz", "bigint", "bigint"]);
            let audit_by_key: &[&str] = match env.engine {
                Engine::Sqlite | Engine::Postgres => &["retention_runs", "retention_audit"],
                Engine::MariaDb => &["retention_runs"],
            };
            assert_plans(env, &audit_plans, &["retention_audit_by_deleted_at"], audit_by_key, Order::OfIndexes, "the audit removal");
            if env.engine == Engine::MariaDb {
                let claimed = ["'[100, 5000, 140000]'".to_owned()];
                let deletes = [
                    ("the audit rows' delete", retentiond::store::mariadb::sql::DELETE_AUDIT_ROWS, "retention_audit"),
                    ("the run records' delete", retentiond::store::mariadb::sql::DELETE_RUN_RECORDS, "retention_runs"),
                ];
                for (what, delete, table) in deletes {
                    assert_plans(env, &plans(env, delete, &claimed, &[]), &[], &[table], Order::OfIndexes, what);
                }
            }

            let run_values = [at(90), at(60), start.clone(), first_id.clone(), at(90), last_id.clone(), "1000".to_owned()];
            let run_plans = plans(env, remove_run_records, &run_values, &["timestamptz", "timestamptz", "timestamptz", "bigint", "timestamptz", "bigint", "bigint"]);
            let runs_by_key: &[&str] = match env.engine {
                Engine::Sqlite | Engine::Postgres => &["retention_runs"],
                Engine::MariaDb => &[],
            };
            assert_plans(env, &run_plans, &["retention_runs_by_finish", "retention_runs_empty_by_finish", "retention_audit_by_run"], runs_by_key, Order::MergedWalks, "the run removal");

            let page_plans = plans(env, statement!(env, SELECT_AUDIT_PAGE), &["100".to_owned(), "140000".to_owned(), "1000".to_owned()], &["bigint", "bigint", "bigint"]);
            assert_plans(env, &page_plans, &[], &["retention_audit"], Order::OfIndexes, "an export page");

            let window_plans = plans(env, statement!(env, SELECT_AUDIT_ID_RANGE_BETWEEN), &[at(300), at(100)], &["timestamptz", "timestamptz"]);
            assert_plans(env, &window_plans, &["retention_audit_by_deleted_at"], &[], Order::OfIndexes, "the export window");
        }
    }
}

// ---------------------------------------------------------------------------
// audit export
// ---------------------------------------------------------------------------

/// The keys of an audit entry (docs/design.md, "The command line"), in order: also the CSV header.
const ENTRY_KEYS: [&str; 11] = [
    "id",
    "run_id",
    "job_name",
    "job_type",
    "policy",
    "state",
    "cancel_requested",
    "created_at",
    "state_changed_at",
    "deleted_at",
    "deleted_by",
];

/// `count` audit rows whose `deleted_at` is not in id order (a
/// permutation of `count` seconds ten days back), half of them of one run,
/// with `deleted_by` values that CSV must quote (a comma, quotes and a line
/// break together, and each of the last two alone) on some rows.
fn scrambled_trail(env: &TestEnv, count: i64) {
    let run_id = run(env, "succeeded", 20, Some(10), count / 2);
    let (numbers, from) = env.sql_numbers(0, count - 1);
    let deleted_at = match env.engine {
        Engine::Sqlite => format!("{} + ((i * 7919) % {count}) * 1000000 + 123456", ago(env, 10)),
        Engine::Postgres => {
            format!("{} + ((i * 7919) % {count}) * interval '1 second' + interval '123456 microseconds'", ago(env, 10))
        }
        Engine::MariaDb => {
            format!("{} + INTERVAL ((i * 7919) % {count}) SECOND + INTERVAL 123456 MICROSECOND", ago(env, 10))
        }
    };
    let cancelled = match env.engine {
        Engine::Sqlite => "i % 2",
        Engine::Postgres | Engine::MariaDb => "i % 2 = 1",
    };
    let newline = env.sql_char(10);
    env.execute(&format!(
        "{numbers}INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
           created_at, state_changed_at, deleted_at, deleted_by) \
         SELECT CASE WHEN i % 2 = 0 THEN {run_id} END, 5000000 + i, 'export-' || i, \
           CASE WHEN i % 2 = 0 THEN 'Import' ELSE 'Export' END, CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'manual' END, \
           'Completed', {cancelled}, {created}, {created}, {deleted_at}, \
           CASE WHEN i % 3 = 0 THEN 'o''brien, \"night\" shift' || {newline} || '@host' \
             WHEN i % 5 = 0 THEN '\"quoted\"@host' WHEN i % 7 = 0 THEN 'line' || {newline} || 'break@host' \
             ELSE 'ops@host' END FROM {from}",
        created = ago(env, 30),
    ));
}

/// Every entry as `audit list` shows it, in id order.
fn listed(env: &TestEnv) -> Vec<Value> {
    let mut entries = env.json(&["audit", "list", "--limit", "0"]).as_array().unwrap().clone();
    entries.reverse();
    entries
}

fn parse_jsonl(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))).collect()
}

/// A CSV text (RFC 4180) as rows of fields: quoted fields may hold commas,
/// doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted && field.is_empty() && row.is_empty(), "the CSV ends inside a row");
    rows
}

fn entry_ids(entries: &[Value]) -> Vec<i64> {
    entries.iter().map(|entry| entry["id"].as_i64().expect("an id")).collect()
}

/// The ids of the audit rows deleted in [since, until), in id order, by SQL.
fn ids_between(env: &TestEnv, since: &str, until: &str) -> Vec<i64> {
    let at = |text: &str| match env.engine {
        Engine::Sqlite => chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros().to_string(),
        Engine::Postgres => format!("'{text}'::timestamptz"),
        Engine::MariaDb => {
            let at = chrono::DateTime::parse_from_rfc3339(text).unwrap().naive_utc();
            format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
    };
    env.rows(&format!(
        "SELECT id FROM retention_audit WHERE deleted_at >= {} AND deleted_at < {} ORDER BY id",
        at(since),
        at(until)
    ))
    .iter()
    .map(|row| row[0].as_i64().unwrap())
    .collect()
}

every_engine! {
    /// The whole trail, in id order across several pages, each line an
    /// audit entry of docs/design.md, "The command line" equal to what `audit list` shows.
    fn export_streams_the_trail_in_id_order(env: &TestEnv) {
        env.migrate();
        scrambled_trail(env, 2500);
        let out = env.run(&["audit", "export"]);
        out.expect_code(0);
        let exported = parse_jsonl(&out.stdout);
        assert_eq!(exported, listed(env));
        assert_eq!(exported.len(), 2500);
        let ids = entry_ids(&exported);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "not in id order");
        for entry in &exported {
            let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(sorted(&keys), sorted(&ENTRY_KEYS), "{entry}");
            parse_ts(&entry["deleted_at"]);
        }
        assert!(exported.iter().any(|entry| entry["run_id"].is_null()) && exported.iter().any(|entry| entry["run_id"].is_i64()));
    }
}

every_engine! {
    /// `--since` is inclusive and `--until` exclusive, on `deleted_at`,
    /// whatever the id order; each bound also works alone.
    fn export_takes_the_window_of_since_and_until(env: &TestEnv) {
        env.migrate();
        scrambled_trail(env, 2500);
        let all = listed(env);
        let mut times: Vec<String> = all.iter().map(|entry| entry["deleted_at"].as_str().unwrap().to_owned()).collect();
        times.sort_by_key(|time| parse_ts(&Value::String(time.clone())));
        let (since, until) = (times[600].clone(), times[1900].clone());

        let window = parse_jsonl(&env.run(&["audit", "export", "--since", &since, "--until", &until]).expect_code(0).stdout);
        assert_eq!(entry_ids(&window), ids_between(env, &since, &until));
        assert_eq!(window.len(), 1300, "since is in, until is out");
        assert_eq!(window.first().map(|entry| entry["id"].clone()), all.iter().find(|entry| window.contains(entry)).map(|entry| entry["id"].clone()));

        let from = parse_jsonl(&env.run(&["audit", "export", "--since", &since]).expect_code(0).stdout);
        assert_eq!(entry_ids(&from), ids_between(env, &since, "9999-01-01T00:00:00Z"));
        let before = parse_jsonl(&env.run(&["audit", "export", "--until", &until]).expect_code(0).stdout);
        assert_eq!(entry_ids(&before), ids_between(env, "1970-01-01T00:00:00Z", &until));
        assert_eq!(from.len() + before.len(), 2500 + 1300);

        let empty = env.run(&["audit", "export", "--since", &since, "--until", &since]);
        assert_eq!(empty.expect_code(0).stdout, "", "an empty window");
    }
}

every_engine! {
    /// CSV: a header, then one row per entry, quoted where needed; it parses
    /// back to the same values as the JSON Lines.
    fn export_csv_parses_back(env: &TestEnv) {
        env.migrate();
        scrambled_trail(env, 1500);
        let csv = env.run(&["audit", "export", "--format", "csv"]);
        let rows = parse_csv(&csv.expect_code(0).stdout);
        assert_eq!(rows[0], ENTRY_KEYS);
        let entries = parse_jsonl(&env.run(&["audit", "export", "--format", "jsonl"]).expect_code(0).stdout);
        assert_eq!(rows.len() - 1, entries.len());
        for (row, entry) in rows[1..].iter().zip(&entries) {
            for (field, key) in row.iter().zip(ENTRY_KEYS) {
                let expected = match &entry[key] {
                    Value::Null => String::new(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                assert_eq!(field, &expected, "{key} of {entry}");
            }
        }
        for quoted in [", \"night\" shift\n", "\"quoted\"@", "line\nbreak"] {
            assert!(rows.iter().any(|row| row[10].contains(quoted)), "{quoted:?} comes back whole");
        }
    }
}

every_engine! {
    /// `--output FILE` replaces the file atomically: the same bytes as on
    /// stdout, mode 0600, nothing else left in the directory; an export
    /// that fails leaves the old file as it was and no temporary file.
    fn export_to_a_file_is_atomic(env: &TestEnv) {
        use std::os::unix::fs::PermissionsExt;

        env.migrate();
        scrambled_trail(env, 1200);
        let directory = env.dir().join("exports");
        std::fs::create_dir(&directory).unwrap();
        let file = directory.join("trail.csv");
        std::fs::write(&file, "an older export\n").unwrap();
        let entries = || {
            let mut names: Vec<String> = std::fs::read_dir(&directory).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            names
        };

        let out = env.run(&["audit", "export", "--format", "csv", "--output", path_str(&file)]);
        assert!(out.expect_code(0).stdout.contains("exported 1200 audit entries to"), "{}", out.describe());
        let stdout = env.run(&["audit", "export", "--format", "csv"]).expect_code(0).stdout.clone();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(entries(), ["trail.csv"]);

        // The trail cannot be read: the export fails after opening its file.
        env.execute("DROP TABLE retention_audit");
        let failed = env.run(&["audit", "export", "--output", path_str(&file)]);
        failed.expect_code(1);
        assert!(failed.stderr.contains("retention_audit"), "{}", failed.describe());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout, "the old file stays");
        assert_eq!(entries(), ["trail.csv"], "no temporary file is left");
    }
}

every_engine! {
    /// Bad arguments exit 2 with a message, before the database is touched
    /// (here one that cannot be reached, which would exit 69).
    fn export_refuses_bad_arguments_first(env: &TestEnv) {
        let unreachable = env.unreachable_url();
        let run = |args: &[&str]| env.cmd(args).env("RETENTIOND__DATABASE__URL", unreachable).run();
        run(&["audit", "export"]).expect_code(69);
        let cases: [(&[&str], &str); 5] = [
            (&["audit", "export", "--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"], "is after --until"),
            (&["audit", "export", "--output", "/nonexistent-directory/trail.jsonl"], "does not exist"),
            (&["audit", "export", "--format", "xml"], "xml"),
            (&["audit", "export", "--since", "yesterday"], "RFC 3339"),
            (&["audit", "export", "--output", "/"], "does not name a file"),
        ];
        for (args, message) in cases {
            let out = run(args);
            out.expect_code(2);
            assert!(out.stderr.contains(message), "{}", out.describe());
        }
    }
}

// ---------------------------------------------------------------------------
// A million rows in constant memory
// ---------------------------------------------------------------------------

/// The most memory `audit export` may take over a million rows.
const EXPORT_MEMORY_BOUND_KIB: i64 = 40 * 1024;

/// A million audit rows, by one statement.
fn million_audit_rows(env: &TestEnv) {
    let (numbers, from) = env.sql_numbers(1, 1_000_000);
    let deleted_at = match env.engine {
        Engine::Sqlite => format!("{} + i * 1000", ago(env, 400)),
        Engine::Postgres => format!("{} + i * interval '1 millisecond'", ago(env, 400)),
        Engine::MariaDb => format!("{} + INTERVAL i * 1000 MICROSECOND", ago(env, 400)),
    };
    env.execute(&format!(
        "{numbers}INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
           created_at, state_changed_at, deleted_at, deleted_by) \
         SELECT NULL, i, 'million-' || i, 'Export', 'manual', 'Completed', {}, {deleted_at}, {deleted_at}, \
           {deleted_at}, 'ops@host' FROM {from}",
        env.sql_bool(false),
    ));
}

/// Runs `audit export` over a million rows and measures the process's peak
/// resident memory (`ru_maxrss` from `wait4`, exact, in KiB); reads its
/// output as it comes, checking the rows are whole and in id order.
fn export_a_million_rows(env: &TestEnv) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    env.migrate();
    let loading = std::time::Instant::now();
    million_audit_rows(env);
    let loaded = loading.elapsed();

    let started = std::time::Instant::now();
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().to_ascii_uppercase().starts_with("RETENTIOND") {
            command.env_remove(&key);
        }
    }
    #[expect(clippy::zombie_processes, reason = "reaped by wait4 below, which also gives its peak memory")]
    let child = command
        .args(["audit", "export"])
        .env("RETENTIOND__DATABASE__URL", &env.url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start retentiond");
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let (mut rows, mut last_id) = (0_u64, 0_i64);
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line of UTF-8");
            let id: i64 = line
                .strip_prefix("{\"id\":")
                .and_then(|rest| rest.split(',').next())
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("not an audit entry: {line}"));
            assert!(id > last_id, "id {id} after {last_id}");
            (rows, last_id) = (rows + 1, id);
        }
        rows
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped; the pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let rows = reader.join().expect("the reader");
    let elapsed = started.elapsed();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "audit export exited with {status}");
    assert_eq!(rows, 1_000_000);
    let peak = usage.ru_maxrss;
    let cpu = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    eprintln!(
        "{:?}: exported 1,000,000 audit rows in {:.1} s ({:.1} s user, {:.1} s system; loaded in {:.1} s), peak RSS {peak} KiB",
        env.engine,
        elapsed.as_secs_f64(),
        cpu(usage.ru_utime),
        cpu(usage.ru_stime),
        loaded.as_secs_f64(),
    );
    assert!(peak <= EXPORT_MEMORY_BOUND_KIB, "audit export took {peak} KiB, more than {EXPORT_MEMORY_BOUND_KIB} KiB");
}

/// A million rows through `audit export` on PostgreSQL, within the memory
/// bound: about a minute with the debug binary of `cargo test`.
#[test]
fn export_of_a_million_rows_stays_within_its_memory_bound() {
    if let Some(env) = TestEnv::new(Engine::Postgres, "export_of_a_million_rows_stays_within_its_memory_bound") {
        export_a_million_rows(&env);
    }
}

/// The same on SQLite, a benchmark rather than part of the suite (two to
/// three minutes with the debug binary, mostly sqlx handing each row over
/// from its SQLite thread): `cargo test --release --test audit_trail
/// million -- --include-ignored --nocapture` runs both and prints the figures.
#[test]
#[ignore = "a benchmark: run with --include-ignored"]
fn export_of_a_million_rows_stays_within_its_memory_bound_on_sqlite() {
    if let Some(env) = TestEnv::new(Engine::Sqlite, "export_of_a_million_rows_stays_within_its_memory_bound") {
        export_a_million_rows(&env);
    }
}

every_engine! {
    /// Every audit row that names a run names one that exists: an insert or
    /// an update naming a missing run is refused whole, and a run that audit
    /// rows name cannot be removed (SQLite: the foreign key, row by row;
    /// PostgreSQL: migration 5's triggers, once per statement). A run no row
    /// names can go.
    fn audit_rows_name_runs_that_exist(env: &TestEnv) {
        env.migrate();
        let named = run(env, "succeeded", 10, Some(10), 2);
        let rows = audit(env, Some(named), 10, 2);
        let unnamed = run(env, "succeeded", 10, Some(10), 0);
        let missing = unnamed + 1000;
        let (audit_before, runs_before) = (env.dump("retention_audit"), ids(env, "retention_runs"));
        let false_value = env.sql_bool(false);
        let insert = |run_ids: &[i64]| {
            let job_id = NEXT_JOB_ID.fetch_add(run_ids.len() as i64, Ordering::Relaxed);
            let values: Vec<String> = run_ids
                .iter()
                .enumerate()
                .map(|(i, run_id)| {
                    let job = job_id + i as i64;
                    format!(
                        "({run_id}, {job}, 'named-{job}', 'Import', 'completed', 'Completed', {false_value}, \
                         {now}, {now}, {now}, 'ops@host')",
                        now = ago(env, 0)
                    )
                })
                .collect();
            env.try_execute(&format!(
                "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
                   created_at, state_changed_at, deleted_at, deleted_by) VALUES {}",
                values.join(", ")
            ))
        };

        // The refusal each engine gives: SQLite's and MariaDB's foreign key,
        // PostgreSQL's triggers naming the run.
        let names_no_run = format!("retention_audit.run_id {missing} names no row of retention_runs");
        let still_named = format!("run {named} is still named by rows of retention_audit");
        for (refused, because) in [
            (insert(&[named, named, missing]), &names_no_run),
            (insert(&[missing]), &names_no_run),
            (env.try_execute(&format!("UPDATE retention_audit SET run_id = {missing} WHERE id = {}", rows[0])), &names_no_run),
            (env.try_execute(&format!("DELETE FROM retention_runs WHERE id = {named}")), &still_named),
            (env.try_execute(&format!("DELETE FROM retention_runs WHERE id IN ({named}, {unnamed})")), &still_named),
        ] {
            let error = refused.expect_err("refused");
            let expected = match env.engine {
                Engine::Sqlite => "FOREIGN KEY constraint failed",
                Engine::Postgres => because.as_str(),
                Engine::MariaDb => "a foreign key constraint fails",
            };
            assert!(error.contains(expected), "expected {expected:?}: {error}");
        }
        let truncate_refused = match env.engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some("cannot be truncated"),
            Engine::MariaDb => Some("Cannot truncate a table referenced in a foreign key constraint"),
        };
        if let Some(expected) = truncate_refused {
            let error = env.try_execute("TRUNCATE retention_runs").expect_err("refused");
            assert!(error.contains(expected), "{error}");
        }
        assert_eq!(env.dump("retention_audit"), audit_before, "no audit row was written or changed");
        assert_eq!(ids(env, "retention_runs"), runs_before, "no run was removed");

        insert(&[named, named]).expect("rows naming a run that exists");
        env.execute(&format!("DELETE FROM retention_runs WHERE id = {unnamed}"));
        assert_eq!(ids(env, "retention_runs"), without(&runs_before, &[unnamed]));
        assert_eq!(env.count(&format!("retention_audit WHERE run_id = {named}")), 4);
    }
}
