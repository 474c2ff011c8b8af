//! A PostgreSQL batch that meets an application's transaction in a deadlock
//! (docs/operations.md, "The live workload"). The application locks job B;
//! the purge's batch locks A (ids in order) and waits for B; the application
//! then locks A. The server rolls the batch back to break the deadlock, the
//! purge tries it again, waits for the application to commit and deletes
//! both jobs, each with one audit row, and exits 0. The audit trail's
//! removal meets the same with two audit rows.
//!
//! A waiting session looks for a deadlock once, when its own
//! `deadlock_timeout` has passed, and the one that finds it is rolled back.
//! The purge's sessions get a short one from the database, the
//! application's session a long one: the purge looks while both wait, and
//! the application never does.

#[macro_use]
mod common;

use std::time::Duration;

use retentiond::store::StoreError;
use serde_json::json;
use sqlx::{Connection, MySqlConnection, PgConnection};

use common::*;

/// How long the purge waits for a lock before it looks for a deadlock, in
/// milliseconds: ample time for the test to see it wait and lock the job
/// it waits behind.
const PURGE_DEADLOCK_TIMEOUT_MS: u32 = 2_000;

/// The application's: past the end of the test.
const APPLICATION_DEADLOCK_TIMEOUT_MS: u32 = 60_000;

#[test]
fn a_batch_rolled_back_in_a_deadlock_with_the_application_is_retried() {
    let Some(env) = TestEnv::new(Engine::Postgres, "a_batch_rolled_back_in_a_deadlock_with_the_application_is_retried")
    else {
        return;
    };
    env.migrate();
    env.import_ok(&[job("job-a", "Completed", days_ago(200)), job("job-b", "Completed", days_ago(200))]);
    let ids = env.rows("SELECT id FROM jobs ORDER BY name");
    assert!(ids[0][0].as_i64() < ids[1][0].as_i64(), "A comes first in id order: {ids:?}");

    let out = meet_the_application(&env, "jobs", &[]);
    let summary = out.json();
    assert_eq!(summary["total"], json!(2), "{}", out.describe());
    let run_id = summary["run_id"].clone();
    assert_eq!(env.count("jobs"), 0);
    let audit = env.rows("SELECT run_id, job_name FROM retention_audit ORDER BY job_name");
    assert_eq!(audit, [vec![run_id.clone(), json!("job-a")], vec![run_id, json!("job-b")]], "one audit row each");
    let retried = out.stderr.lines().find(|line| line.contains("batch rolled back in a deadlock; retrying it"));
    let retried = retried.unwrap_or_else(|| panic!("no warning of the retry\n{}", out.describe()));
    assert!(retried.contains("deadlock detected") && retried.contains("\"jobs\":2"), "{retried}");
}

/// The same with the audit trail's removal (`retention.audit`): the rows
/// of A and B (200 days old, from `jobs delete`) both go, once.
#[test]
fn a_trail_batch_rolled_back_in_a_deadlock_with_the_application_is_retried() {
    let Some(env) =
        TestEnv::new(Engine::Postgres, "a_trail_batch_rolled_back_in_a_deadlock_with_the_application_is_retried")
    else {
        return;
    };
    env.migrate();
    let ids = env.rows(
        "INSERT INTO retention_audit (job_id, job_name, job_type, policy, state, cancel_requested, created_at, \
           state_changed_at, deleted_at, deleted_by) \
         SELECT n, name, 'Import', 'manual', 'Completed', false, at, at, at, 'ops@host' \
         FROM (VALUES (1, 'job-a'), (2, 'job-b')) AS jobs (n, name), LATERAL (SELECT now() - interval '200 days') AS t (at) \
         ORDER BY n RETURNING id",
    );
    assert!(ids[0][0].as_i64() < ids[1][0].as_i64(), "A comes first in id order: {ids:?}");

    let out = meet_the_application(&env, "retention_audit", &[("RETENTIOND__RETENTION__AUDIT", "30d")]);
    let summary = out.json();
    assert_eq!((summary["total"].clone(), summary["audit_rows_removed"].clone()), (json!(0), json!(2)));
    assert_eq!(env.count("retention_audit"), 0);
    let retried = out.stderr.lines().find(|line| line.contains("trail batch rolled back in a deadlock; retrying it"));
    let retried = retried.unwrap_or_else(|| panic!("no warning of the retry\n{}", out.describe()));
    assert!(retried.contains("deadlock detected"), "{retried}");
}

/// Runs `retentiond purge` (with `settings`) into a deadlock on `table`:
/// the application locks B's row, the purge's batch locks A's and waits
/// for B's, the application then asks for A's. Once the server has rolled
/// the batch back, the application commits. The purge must exit 0.
fn meet_the_application(env: &TestEnv, table: &str, settings: &[(&str, &str)]) -> Out {
    env.execute(&format!(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout = {PURGE_DEADLOCK_TIMEOUT_MS}', \
         current_database()); END $$"
    ));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut application = rt.block_on(PgConnection::connect(&env.url)).expect("the application connects");
    let mut exec = |sql: String| {
        let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        rt.block_on(statement.execute(&mut application)).unwrap_or_else(|e| panic!("the application: {e}"));
    };
    exec(format!("SET deadlock_timeout = {APPLICATION_DEADLOCK_TIMEOUT_MS}"));
    let name = if table == "jobs" { "name" } else { "job_name" };
    exec(format!("BEGIN; SELECT id FROM {table} WHERE {name} = 'job-b' FOR UPDATE"));
    let purge = env.cmd(&["purge", "--output", "json"]).envs(settings).spawn();
    let waiting = wait_until(Duration::from_secs(30), || env.count(env.sql_waiting_for_a_row()) == 1);
    if waiting {
        // Waits until the server has rolled the batch back.
        exec(format!("SELECT id FROM {table} WHERE {name} = 'job-a' FOR UPDATE"));
    }
    exec("COMMIT".into());
    let out = purge.wait();
    assert!(waiting, "the purge's batch did not wait for the application's lock\n{}", out.describe());
    out.expect_code(0);
    out
}

/// The refusal `sql` raises on `engine`'s server, as the store sees it.
fn refusal(engine: Engine, sql: &'static str) -> Option<StoreError> {
    let env = TestEnv::new(engine, "deadlocks_are_classified_by_their_codes")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let error = rt.block_on(async {
        match engine {
            Engine::Postgres => {
                let mut conn = PgConnection::connect(&env.url).await.expect("connects");
                sqlx::raw_sql(sql).execute(&mut conn).await.map(drop)
            }
            Engine::MariaDb => {
                let mut conn =
                    MySqlConnection::connect(&env.url.replacen("mariadb:", "mysql:", 1)).await.expect("connects");
                sqlx::raw_sql(sql).execute(&mut conn).await.map(drop)
            }
            Engine::Sqlite => unreachable!("SQLite has no deadlocks"),
        }
    });
    Some(StoreError::from(error.expect_err("the statement is refused")))
}

/// Deadlocks and serialization failures are known by their codes, whatever
/// the message says: PostgreSQL's SQLSTATEs 40P01 and 40001, MariaDB's
/// error 1213.
#[test]
fn deadlocks_are_classified_by_their_codes() {
    let raised = [
        (Engine::Postgres, "DO $$ BEGIN RAISE EXCEPTION 'anything' USING ERRCODE = '40P01'; END $$"),
        (Engine::Postgres, "DO $$ BEGIN RAISE EXCEPTION 'anything' USING ERRCODE = '40001'; END $$"),
        (Engine::MariaDb, "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'anything'"),
    ];
    for (engine, sql) in raised {
        if let Some(error) = refusal(engine, sql) {
            assert!(matches!(error, StoreError::Deadlock(_)), "{engine}: {sql}: {error:?}");
            assert!(error.to_string().starts_with("database error: "), "{error}");
        }
    }
}
