//! The statements a sweep runs keep one plan, the one they were written for,
//! whatever the planner knows: the per-policy partial indexes for "what is
//! eligible", the primary key for the deleting batch and for the drives it
//! cascades to. None reads the whole of a table it touches (`jobs`,
//! `job_drives`, `retention_audit`, `retention_runs`: a full scan, or a
//! walk of a whole index); those meant to walk an index in order neither
//! sort nor, on PostgreSQL, go through a bitmap. Plans are read from each
//! engine's own format (`tests/common/plan.rs`). Checked on PostgreSQL with
//! no statistics at all (a fresh `jobs import`, autovacuum off), with fresh
//! ones, and with stale ones (a large purge later), each as a custom and as
//! a generic plan (`plan_cache_mode = force_generic_plan`, what a prepared
//! statement runs after five executions); on SQLite without `ANALYZE` and
//! with stale statistics; on MariaDB with none (InnoDB's persistent
//! statistics of the empty tables, their recount off), with fresh ones
//! (`ANALYZE TABLE … PERSISTENT FOR ALL`: InnoDB's and the engine-independent
//! histograms) and with stale ones. MariaDB plans a prepared statement anew
//! at each execution, with its values: its plan is the one of the statement
//! with the values written in, so there is no generic plan to check.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::plan::{Access, Plan, explain};
use common::*;
use retentiond::store::{mariadb::sql as maria, postgres::sql as pg, sqlite::sql as lite};
use sqlx::{Connection, Row};

/// The indexes of what each rule (a policy for one job type) finds
/// eligible: on SQLite one partial index per rule; on PostgreSQL one partial
/// index per policy, led by the job type, a range of it per rule; on
/// MariaDB, which has no partial indexes, one index of the policies'
/// generated columns and the type, a range of it per rule (docs/schema.md).
fn policy_indexes(env: &TestEnv) -> &'static [&'static str] {
    match env.engine {
        Engine::Sqlite => &[
            "jobs_completed_import_by_age",
            "jobs_completed_export_by_age",
            "jobs_closed_import_by_age",
            "jobs_closed_export_by_age",
            "jobs_creating_import_by_idle",
            "jobs_creating_export_by_idle",
            "jobs_retained_import_until",
            "jobs_retained_export_until",
        ],
        Engine::Postgres => {
            &["jobs_completed_by_age", "jobs_closed_by_age", "jobs_creating_by_idle", "jobs_retained_until"]
        }
        Engine::MariaDb => &[MARIADB_POLICY_INDEX],
    }
}

const MARIADB_POLICY_INDEX: &str = "jobs_by_retention";

/// Jobs of the store the plans are checked on.
const JOBS: usize = 30_000;

/// `sql` with its numbered parameters (`?N` or `$N`) replaced by literals,
/// highest number first so that `?1` does not eat into `?10`.
fn inline(sql: &str, marker: char, values: &[String]) -> String {
    let mut sql = sql.to_owned();
    for (index, value) in values.iter().enumerate().rev() {
        sql = sql.replace(&format!("{marker}{}", index + 1), value);
    }
    sql
}

/// What deleting a job does to its drives (`ON DELETE CASCADE`), as each
/// engine runs it: SQLite deletes the child rows of the key; PostgreSQL's
/// foreign key trigger runs this statement, prepared once per session;
/// InnoDB's cascade runs no statement, it seeks the first index whose
/// columns start with `job_id`, as this one does.
const SQLITE_DRIVES_CASCADE: &str = "DELETE FROM job_drives WHERE job_id = ?1";
const POSTGRES_DRIVES_CASCADE: &str = "DELETE FROM ONLY job_drives WHERE $1::bigint OPERATOR(pg_catalog.=) job_id";
const MARIADB_DRIVES_CASCADE: &str = "DELETE FROM job_drives WHERE job_id = $1";

/// The index of job states, which a look-up by id must not read.
const JOBS_BY_STATE: &str = "jobs_by_state";

/// The plan a statement must keep.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Each policy's partial index, no full scan.
    PolicyIndexes,
    /// Each policy's partial index, each read in its order: no full scan,
    /// no sort, no bitmap scan.
    EachPolicyIndexInOrder,
    /// `jobs` through its primary key only: no policy index (a generic plan
    /// could otherwise seek one with the ids as a second condition, reading
    /// every eligible entry for each batch), no full scan.
    JobsByKey,
    /// A job's drives (what deleting a job cascades to) through their
    /// primary key, which starts with the job's id.
    DrivesByJob,
    /// No full scan of the run records (nor of any other table).
    RunRecords,
    /// MariaDB: each rule's first and last entries of the policies' index,
    /// read by the optimizer as it plans (`MIN`, `MAX`): the plan reads no
    /// row of `jobs`.
    PolicyIndexEnds,
}

#[track_caller]
fn assert_shape(env: &TestEnv, plan: &Plan, shape: Shape, what: &str) {
    match shape {
        Shape::PolicyIndexes => {
            assert_each_policy_read(env, plan, &[], what);
            plan.assert_no_full_scan(what);
        }
        Shape::EachPolicyIndexInOrder => {
            assert_each_policy_read(env, plan, &[], what);
            plan.assert_in_index_order(what);
        }
        Shape::JobsByKey => {
            assert!(plan.reads_by_key("jobs"), "{what} does not look jobs up by key:\n{}", plan.text);
            for index in policy_indexes(env).iter().chain(&[JOBS_BY_STATE]) {
                assert!(!plan.uses_index(index), "{what} reads {index}:\n{}", plan.text);
            }
            plan.assert_no_full_scan(what);
        }
        Shape::DrivesByJob => {
            assert!(plan.reads_by_key("job_drives"), "{what} does not look drives up by key:\n{}", plan.text);
            plan.assert_no_full_scan(what);
        }
        Shape::RunRecords => plan.assert_no_full_scan(what),
        Shape::PolicyIndexEnds => {
            assert_eq!(plan.reads("jobs").count(), 0, "{what} reads jobs:\n{}", plan.text);
            let ends = ["Select tables optimized away", "No matching min/max row"]
                .map(|message| plan.text.matches(message).count())
                .iter()
                .sum::<usize>();
            assert_eq!(ends, 8, "{what}: one subquery a rule, each read at its ends:\n{}", plan.text);
            plan.assert_no_full_scan(what);
        }
    }
}

/// Fails unless `plan` reads each policy's jobs through its index: on
/// MariaDB, eight ranges (at least: one per policy and job type) of the one
/// index of the policies, and
/// `jobs` through nothing else but `also` (indexes of few rows).
#[track_caller]
fn assert_each_policy_read(env: &TestEnv, plan: &Plan, also: &[&str], what: &str) {
    for index in policy_indexes(env) {
        plan.assert_uses(index, what);
    }
    if env.engine == Engine::MariaDb {
        let policy_range =
            |access: &Access| matches!(access, Access::IndexRange(index) if index == MARIADB_POLICY_INDEX);
        let ranges = plan.reads("jobs").filter(|access| policy_range(access)).count();
        let others: Vec<_> = plan
            .reads("jobs")
            .filter(|access| !policy_range(access))
            .filter(|access| {
                !matches!(access, Access::IndexRange(index) | Access::WholeIndex(index) if also.contains(&index.as_str()))
            })
            .collect();
        assert!(
            ranges >= 8 && others.is_empty(),
            "{what} reads jobs otherwise than by a range per rule ({ranges} ranges; {others:?}):\n{}",
            plan.text
        );
    }
}

/// A store as a bulk load leaves it: `JOBS` jobs imported at once, their
/// ages in no relation to their ids, most of them eligible, every other one
/// with two drives, a third of them exports.
fn import_shuffled_jobs(env: &TestEnv) {
    let mut lines = Vec::with_capacity(JOBS);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..JOBS {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let days = (state >> 33) % 400;
        let name = format!("plan-{i:06}");
        let job = match i % 10 {
            0 => creating_job(&name, (days % 30) as i64),
            1 => common::job(&name, "Closed", days_ago(days as i64)),
            2 => common::job(&name, "Shipping", days_ago(days as i64 % 20)),
            _ => common::job(&name, "Completed", days_ago(days as i64)),
        };
        let job = if i % 2 == 1 { set(job, "drives", drives(&name, 2, "Completed")) } else { job };
        // Every third job an export, so that each rule has jobs of its own.
        let job = if i % 3 == 2 { set(job, "job_type", serde_json::json!("Export")) } else { job };
        lines.push(job.to_string());
    }
    env.import_lines(&lines).expect_code(0);
}

/// The values of every statement a sweep runs, per backend, and the shape
/// each must keep.
struct Statements {
    list: Vec<(&'static str, &'static str, Vec<String>, Shape)>,
    /// The planner settings the PostgreSQL store reads under, for a session.
    index_order: String,
}

impl Statements {
    fn new(env: &TestEnv, ids: &[i64]) -> Statements {
        let now = Utc::now();
        // Each policy's cut-off for imports, then for exports (`policy::RULES`):
        // exports of their own completed retention, as `retention.by_type` sets it;
        // a job's own `retain_until` is due now, once a day past its final state.
        let days = |days| now - Duration::days(days);
        let rules = [days(90), days(30), days(90), days(90), days(14), days(14), now, now];
        let settled = days(1);
        let at = |t: DateTime<Utc>| match env.engine {
            Engine::Sqlite => t.timestamp_micros().to_string(),
            Engine::Postgres => format!("'{}'::timestamptz", t.to_rfc3339()),
            Engine::MariaDb => env.sql_time(t),
        };
        let (start, first_id): (String, String) = match env.engine {
            Engine::Sqlite => (i64::MIN.to_string(), i64::MIN.to_string()),
            Engine::Postgres => ("'0001-01-01T00:00:00Z'::timestamptz".into(), "(-9223372036854775807 - 1)".into()),
            Engine::MariaDb => ("'0001-01-01 00:00:00'".into(), "(-9223372036854775807 - 1)".into()),
        };
        let last_id = i64::MAX.to_string();
        let mut cutoffs: Vec<String> = rules.iter().map(|cutoff| at(*cutoff)).collect();
        cutoffs.push(at(settled));
        let mut batch = cutoffs.clone();
        for _ in rules {
            batch.extend([start.clone(), first_id.clone()]);
        }
        batch.push("1000".into());
        let ids_of = |cutoff: DateTime<Utc>| {
            vec![at(cutoff), start.clone(), first_id.clone(), at(cutoff), last_id.clone(), "500000".into()]
        };
        let id_list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let mut delete = vec![match env.engine {
            Engine::Sqlite => format!("'[{id_list}]'"),
            Engine::Postgres => format!("ARRAY[{id_list}]::bigint[]"),
            Engine::MariaDb => format!("'[{id_list}]'"),
        }];
        delete.extend(cutoffs.clone());
        let mut nth = cutoffs.clone();
        nth.extend(rules.map(|cutoff| (now - cutoff).num_microseconds().unwrap_or(0).to_string()));
        nth.push("1000".into());
        let mut ids_binds: Vec<String> = rules.iter().flat_map(|cutoff| ids_of(*cutoff)).collect();
        ids_binds.push(at(settled));
        let enabled = vec![env.sql_bool(true).to_owned(); rules.len()];
        // A sweep's first read: the flags, each rule's retention and the minimum in microseconds, the ids per rule.
        let micros = |cutoff: DateTime<Utc>| (now - cutoff).num_microseconds().unwrap_or(0).to_string();
        let mut first_read = enabled.clone();
        first_read.extend(rules.map(micros));
        first_read.extend([micros(settled), "2500".into()]);
        let mut list = vec![
            ("the dry run's batch", statement!(env, SELECT_ELIGIBLE), batch, Shape::PolicyIndexes),
            ("the cap's last job", statement!(env, SELECT_NTH_ELIGIBLE), nth, Shape::PolicyIndexes),
            ("the eligible ids", statement!(env, SELECT_ELIGIBLE_IDS), ids_binds, Shape::EachPolicyIndexInOrder),
            ("the eligible and backlog counts", statement!(env, COUNT_ELIGIBLE), cutoffs, Shape::PolicyIndexes),
        ];
        match env.engine {
            Engine::Sqlite => {
                let mut audit = delete.clone();
                audit.extend(["NULL".into(), at(now), "'test'".into()]);
                list.extend([
                    ("the batch's audit rows", lite::AUDIT_ELIGIBLE, audit, Shape::JobsByKey),
                    ("the deleting batch", lite::DELETE_ELIGIBLE, delete, Shape::JobsByKey),
                    ("the deleted job's drives", SQLITE_DRIVES_CASCADE, vec![ids[0].to_string()], Shape::DrivesByJob),
                    ("the idle check", lite::COUNT_FUTURE, [vec![at(now)], enabled].concat(), Shape::PolicyIndexes),
                    ("the runs left running", lite::SELECT_RUNNING_RUNS, vec![], Shape::RunRecords),
                    (
                        "the run's end",
                        lite::FINISH_RUN,
                        ["1", "'succeeded'", "0", "0", "0", "0", "'done'", "NULL", "0", "0", "0", "0", "1"]
                            .map(String::from)
                            .to_vec(),
                        Shape::RunRecords,
                    ),
                ]);
            }
            Engine::Postgres => {
                let run_start = ["1381254226", "'purge'", "'host'", "1", "NULL::bigint"].map(String::from).to_vec();
                let sweep_start = [first_read, run_start.clone()].concat();
                delete.extend(["NULL::bigint".into(), "'test'".into()]);
                list.extend([
                    ("the deleting batch", pg::DELETE_ELIGIBLE, delete, Shape::JobsByKey),
                    ("the deleted job's drives", POSTGRES_DRIVES_CASCADE, vec![ids[0].to_string()], Shape::DrivesByJob),
                    ("the dry run's idle check", pg::CLOCK_AND_SKEW, enabled.clone(), Shape::PolicyIndexes),
                    ("the sweep's start", pg::START_SWEEP, sweep_start.clone(), Shape::EachPolicyIndexInOrder),
                    ("the sweep's start's run records", pg::START_SWEEP, sweep_start, Shape::RunRecords),
                    (
                        "the run's start",
                        pg::BEGIN_RUN,
                        [enabled.clone(), run_start.clone()].concat(),
                        Shape::RunRecords,
                    ),
                    (
                        "the run's start's idle check",
                        pg::BEGIN_RUN,
                        [enabled, run_start].concat(),
                        Shape::PolicyIndexes,
                    ),
                    (
                        "the run's end",
                        pg::FINISH_RUN_AND_UNLOCK,
                        ["1", "'succeeded'", "1", "0", "0", "0", "'done'", "NULL", "0", "0", "0", "0", "1381254226"]
                            .map(String::from)
                            .to_vec(),
                        Shape::RunRecords,
                    ),
                ]);
            }
            Engine::MariaDb => {
                let mut audit = delete.clone();
                audit.extend(["1".into(), "'test'".into(), at(now)]);
                let idle_sweep = [first_read, ["'purge'", "'host'", "1", "NULL"].map(String::from).to_vec()].concat();
                list.extend([
                    ("the idle sweep", maria::RECORD_RUN_IF_IDLE, idle_sweep.clone(), Shape::PolicyIndexEnds),
                    ("the idle sweep's run records", maria::RECORD_RUN_IF_IDLE, idle_sweep, Shape::RunRecords),
                    ("the batch's claim", maria::CLAIM_ELIGIBLE, delete.clone(), Shape::JobsByKey),
                    ("the batch's audit rows", maria::AUDIT_CLAIMED, audit, Shape::JobsByKey),
                    ("the deleting batch", maria::DELETE_CLAIMED, delete, Shape::JobsByKey),
                    ("the deleted job's drives", MARIADB_DRIVES_CASCADE, vec![ids[0].to_string()], Shape::DrivesByJob),
                    ("the dry run's idle check", maria::CLOCK_AND_SKEW, enabled.clone(), Shape::PolicyIndexes),
                    ("the run's start", maria::RUN_START_READINGS, enabled.clone(), Shape::RunRecords),
                    ("the run's start's idle check", maria::RUN_START_READINGS, enabled, Shape::PolicyIndexes),
                    ("an abandoned run's mark", maria::MARK_RUN_ABANDONED, vec!["1".into()], Shape::RunRecords),
                    (
                        "the run's end",
                        maria::FINISH_RUN,
                        ["1", "'succeeded'", "1", "0", "0", "0", "'done'", "NULL", "0", "0", "0", "0"]
                            .map(String::from)
                            .to_vec(),
                        Shape::RunRecords,
                    ),
                ]);
            }
        }
        let index_order = pg::INDEX_ORDER_SETTINGS.map(|(name, value)| format!("SET {name} = {value}")).join("; ");
        Statements { list, index_order }
    }

    /// Checks each statement's plan; on PostgreSQL both as a custom and as a generic plan.
    fn check(&self, env: &TestEnv, condition: &str) {
        let (mut session, marker) = match env.engine {
            Engine::Sqlite => (None, '?'),
            Engine::Postgres => (Some(PgSession::new(env)), '$'),
            Engine::MariaDb => (None, '$'),
        };
        for (what, statement, values, shape) in &self.list {
            let what = format!("{what} ({condition})");
            match &mut session {
                None => assert_shape(env, &explain(env, &inline(statement, marker, values)), *shape, &what),
                Some(session) => {
                    // The store reads, counts, deletes and records runs under these settings.
                    session.execute(&self.index_order);
                    assert_shape(env, &session.plan(statement, values, false), *shape, &what);
                    assert_shape(env, &session.plan(statement, values, true), *shape, &format!("{what}, generic plan"));
                }
            }
        }
    }
}

/// One PostgreSQL session, as `PREPARE` and `EXPLAIN EXECUTE` need.
struct PgSession {
    runtime: tokio::runtime::Runtime,
    connection: sqlx::PgConnection,
}

impl PgSession {
    fn new(env: &TestEnv) -> PgSession {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let connection = runtime.block_on(sqlx::PgConnection::connect(&env.url)).expect("a session");
        PgSession { runtime, connection }
    }

    fn execute(&mut self, sql: &str) {
        self.runtime
            .block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut self.connection))
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    /// The plan of `statement` run with `values`: a custom plan (the values
    /// written into it), or the generic plan of it prepared.
    fn plan(&mut self, statement: &str, values: &[String], generic: bool) -> Plan {
        let explain = if generic {
            self.execute("DEALLOCATE ALL");
            self.execute("SET plan_cache_mode = force_generic_plan");
            self.execute(&format!("PREPARE checked AS {statement}"));
            format!("EXPLAIN (FORMAT JSON) EXECUTE checked({})", values.join(", "))
        } else {
            self.execute("SET plan_cache_mode = auto");
            format!("EXPLAIN (FORMAT JSON) {}", inline(statement, '$', values))
        };
        let explained = self
            .runtime
            .block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(explain.clone())).fetch_one(&mut self.connection))
            .unwrap_or_else(|e| panic!("{e}\n{explain}"));
        common::plan::read_postgres(&explained.get::<serde_json::Value, _>(0))
    }
}

/// Fresh statistics of every table.
fn analyze(env: &TestEnv) {
    env.execute(match env.engine {
        Engine::Sqlite | Engine::Postgres => "ANALYZE",
        Engine::MariaDb => "ANALYZE TABLE jobs, job_drives, retention_audit, retention_runs PERSISTENT FOR ALL",
    });
}

/// The ids a batch would delete: the first thousand eligible completed jobs.
fn some_eligible_ids(env: &TestEnv) -> Vec<i64> {
    let cutoff = env.sql_time(Utc::now() - Duration::days(90));
    env.rows(&format!(
        "SELECT id FROM jobs WHERE state = 'Completed' AND state_changed_at <= {cutoff} ORDER BY id LIMIT 1000"
    ))
    .into_iter()
    .filter_map(|row| row[0].as_i64())
    .collect()
}

every_engine! {
    fn sweep_statements_keep_their_plans_without_stale_or_any_statistics(env: &TestEnv) {
        env.migrate();
        match env.engine {
            Engine::Sqlite => {}
            Engine::Postgres => {
                // This test decides when statistics exist, not autovacuum.
                for table in ["jobs", "job_drives", "retention_audit", "retention_runs"] {
                    env.execute(&format!("ALTER TABLE {table} SET (autovacuum_enabled = false)"));
                }
            }
            Engine::MariaDb => {
                // This test decides when statistics are taken, not InnoDB's recount.
                for table in ["jobs", "job_drives", "retention_audit", "retention_runs"] {
                    env.execute(&format!("ALTER TABLE {table} STATS_AUTO_RECALC = 0"));
                }
            }
        }
        import_shuffled_jobs(env);
        let statistics = match env.engine {
            Engine::Sqlite => "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
            Engine::Postgres => "SELECT count(*) FROM pg_statistic WHERE starelid = 'jobs'::regclass",
            // InnoDB's statistics of the table as created (no rows), and no
            // engine-independent ones.
            Engine::MariaDb => "SELECT CAST((SELECT COALESCE(SUM(n_rows), 0) FROM mysql.innodb_table_stats \
                 WHERE database_name = DATABASE() AND table_name = 'jobs') \
               + (SELECT count(*) FROM mysql.column_stats WHERE db_name = DATABASE()) AS SIGNED)",
        };
        assert_eq!(env.scalar(statistics), 0, "a fresh import has no statistics");
        Statements::new(env, &some_eligible_ids(env)).check(env, "no statistics");

        analyze(env);
        let statements = Statements::new(env, &some_eligible_ids(env));
        statements.check(env, "fresh statistics");

        let before = env.count("jobs");
        let purged = env.json(&["purge"]);
        assert!(purged["total"].as_i64().unwrap() * 2 > before, "the purge took most jobs: {purged}");
        statements.check(env, "stale statistics: after a large purge");
    }
}

// --- The status pages and `forecast` (docs/design.md, "Status pages") ---

every_engine! {
    fn status_page_statements_read_index_ranges(env: &TestEnv) {
        env.run(&["jobs", "seed", "--count", "20000"]).expect_code(0);
        env.execute(
            "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
             created_at, state_changed_at, deleted_at, deleted_by) SELECT NULL, id + 1000000, name, job_type, \
             'manual', state, cancel_requested, created_at, state_changed_at, updated_at, 'test' FROM jobs",
        );
        match env.engine {
            Engine::Sqlite => {}
            Engine::Postgres => env.execute("ANALYZE"),
            Engine::MariaDb => analyze(env),
        }
        let cutoff = Utc::now() - Duration::days(90);
        let horizon = cutoff + Duration::days(30);
        let (window, held_after, names): (Vec<String>, Vec<String>, Vec<String>) = match env.engine {
            Engine::Sqlite => {
                let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros().to_string();
                let mut window = vec![micros(cutoff); 9];
                window.extend(vec![micros(horizon); 8]);
                window.push("30".into());
                (window, vec![i64::MIN.to_string(), i64::MIN.to_string(), "51".into()], vec![
                    "'seed.'".into(),
                    "'seed-'".into(),
                    i64::MIN.to_string(),
                    "51".into(),
                ])
            }
            Engine::Postgres => {
                let at = |t: chrono::DateTime<Utc>| format!("'{}'::timestamptz", t.to_rfc3339());
                let mut window = vec![at(cutoff); 9];
                window.extend(vec![at(horizon); 8]);
                window.push("30".into());
                let start = "'0001-01-01T00:00:00Z'::timestamptz".to_owned();
                (window, vec![start, "0".into(), "51".into()], vec![
                    "'seed.'".into(),
                    "'seed-'".into(),
                    "0".into(),
                    "51".into(),
                ])
            }
            Engine::MariaDb => {
                let at = |t: chrono::DateTime<Utc>| env.sql_time(t);
                let mut window = vec![at(cutoff); 9];
                window.extend(vec![at(horizon); 8]);
                window.push("30".into());
                let start = "'0001-01-01 00:00:00'".to_owned();
                (window, vec![start, "0".into(), "51".into()], vec![
                    "'seed.'".into(),
                    "'seed-'".into(),
                    "0".into(),
                    "51".into(),
                ])
            }
        };
        let marker = match env.engine {
            Engine::Sqlite => '?',
            Engine::Postgres | Engine::MariaDb => '$',
        };
        let forecast = explain(env, &inline(statement!(env, FORECAST), marker, &window));
        assert_each_policy_read(env, &forecast, &["jobs_held"], "the forecast");
        forecast.assert_uses("jobs_held", "the forecast");
        forecast.assert_no_full_scan("the forecast");

        let count_held = explain(env, statement!(env, COUNT_HELD));
        count_held.assert_uses("jobs_held", "the held jobs' count");
        count_held.assert_no_full_scan("the held jobs' count");

        let held = explain(env, &inline(statement!(env, SELECT_HELD), marker, &held_after));
        held.assert_uses("jobs_held", "the holds page");
        held.assert_in_index_order("the holds page");

        let by_prefix = explain(
            env,
            &inline(statement!(env, SELECT_AUDIT_OF_NAME_RANGE), marker, &names),
        );
        let name_index = match env.engine {
            Engine::Sqlite => "retention_audit_by_job_name",
            Engine::Postgres => "retention_audit_by_job_name_bytes",
            Engine::MariaDb => "retention_audit_by_job_name",
        };
        by_prefix.assert_uses(name_index, "the prefix search");
        by_prefix.assert_in_index_order("the prefix search");

        // `audit list --job` reads the name's index (on PostgreSQL in byte
        // order, as the index of migration 4 sorts the names).
        let by_name = explain(env, &inline(statement!(env, SELECT_AUDIT_OF_NAME), marker, &[
            "'seed-0000001'".into(),
            "NULL".into(),
            i64::MAX.to_string(),
            "100".into(),
        ]));
        by_name.assert_uses(name_index, "audit list --job");
        by_name.assert_in_index_order("audit list --job");
    }
}
