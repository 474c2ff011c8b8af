//! The MariaDB store's migrations and statements (src/store/mariadb/),
//! against a real server, before the store is built on them:
//! - migrations: a `migrate` killed between any two statements finishes
//!   when run again; two at once take turns; a foreign `jobs` is refused;
//! - every statement prepares against the migrated schema;
//! - a sweep's statements do what they say: the ids in age order per
//!   policy, the cap's n-th job, a batch deleting exactly the listed jobs
//!   still eligible with their drives and one audit row each, runs left by a
//!   dead session marked abandoned;
//! - the trail's and the status pages' statements run, and the forecast
//!   counts what becomes eligible (their plans: tests/plans.rs and
//!   tests/audit_trail.rs, as on the other engines);
//! - a batch's open transaction makes no insert or update of other jobs
//!   wait, and a trail removal none of a batch's audit rows, at the READ
//!   COMMITTED the store's sessions run at (docs/operations.md);
//! - a purge replicates alike.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use common::mariadb_db::TestDb;
use retentiond::store::mariadb::{migrate, sql};
use serde_json::{Value, json};
use sqlx::mysql::{MySql, MySqlArguments, MySqlConnection};
use sqlx::query::Query;
use sqlx::{Connection, Executor, Row};

/// A value bound to a `?`. Timestamps go as DATETIME (`NaiveDateTime` in
/// UTC), never as sqlx's `DateTime<Utc>`, which it sends as a TIMESTAMP:
/// compared with an indexed DATETIME column, a TIMESTAMP parameter outside
/// 1970-2038 matches nothing (src/store/mariadb/sql.rs).
#[derive(Debug, Clone)]
enum Bind {
    Int(i64),
    Time(Option<DateTime<Utc>>),
    Text(Option<String>),
    Flag(bool),
}

/// A statement of src/store/mariadb/sql.rs with `?` for its `$n`, bound in
/// the order they appear.
fn q(statement: &'static str) -> &'static str {
    sql::with_question_marks(statement)
}

/// `statement` with `values`, given in the order of its numbered parameters
/// (`$1`, `$2`…, as the store binds them), each bound where its `?` is.
fn bind_numbered(statement: &'static str, values: &[Bind]) -> Query<'static, MySql, MySqlArguments> {
    let ordered: Vec<Bind> = sql::parameter_order(statement).iter().map(|&index| values[index].clone()).collect();
    bind_all(sqlx::query(q(statement)), &ordered)
}

fn bind_all<'q>(mut query: Query<'q, MySql, MySqlArguments>, binds: &[Bind]) -> Query<'q, MySql, MySqlArguments> {
    for bind in binds {
        query = match bind.clone() {
            Bind::Int(value) => query.bind(value),
            Bind::Time(value) => query.bind(value.map(|t| t.naive_utc())),
            Bind::Text(value) => query.bind(value),
            Bind::Flag(value) => query.bind(value),
        };
    }
    query
}

fn text(value: &str) -> Bind {
    Bind::Text(Some(value.to_owned()))
}

fn at(value: DateTime<Utc>) -> Bind {
    Bind::Time(Some(value))
}

/// The timestamp form `JSON_TABLE` reads into a DATETIME(6).
fn stored(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

/// A job row as `INSERT_JOBS` reads it.
fn job(name: &str, state: &str, age: DateTime<Utc>, held: bool) -> Value {
    json!({
        "name": name, "job_type": if name.len().is_multiple_of(2) { "Import" } else { "Export" }, "state": state,
        "cancel_requested": false, "cancel_requested_at": null, "hold_reason": if held { json!("legal") } else { json!(null) },
        "created_at": stored(age), "updated_at": stored(age), "state_changed_at": stored(age),
    })
}

async fn insert_jobs(conn: &mut MySqlConnection, jobs: &[Value]) {
    for chunk in jobs.chunks(5_000) {
        sqlx::query(q(sql::INSERT_JOBS))
            .bind(Value::Array(chunk.to_vec()).to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

async fn migrated(test: &str) -> Option<(TestDb, MySqlConnection)> {
    let db = TestDb::create(test).await?;
    let mut conn = db.session().await;
    migrate::run(&mut conn, None).await.expect("migrate");
    Some((db, conn))
}

async fn count(conn: &mut MySqlConnection, query: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned())).fetch_one(conn).await.unwrap()
}

/// Every table's `SHOW CREATE TABLE`, and the migrations recorded.
async fn schema(conn: &mut MySqlConnection) -> Vec<String> {
    let mut schema = Vec::new();
    for table in ["jobs", "job_drives", "retention_runs", "retention_audit"] {
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SHOW CREATE TABLE {table}")))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        schema.push(row.get::<String, _>(1));
    }
    let versions: Vec<i64> = sqlx::query_scalar(q(sql::SELECT_MIGRATION_VERSIONS)).fetch_all(&mut *conn).await.unwrap();
    schema.push(format!("{versions:?}"));
    schema
}

// --- Migrations ---

#[tokio::test]
async fn migrate_killed_between_any_two_statements_finishes_when_run_again() {
    let Some((_clean_db, mut clean)) = migrated("migrate_killed_between_any_two_statements").await else { return };
    let expected = schema(&mut clean).await;
    let all: Vec<(i64, String)> = migrate::MIGRATOR
        .iter()
        .flat_map(|m| migrate::statements(m.sql.as_str()).into_iter().map(move |s| (m.version, s)))
        .collect();
    // A kill after the first k statements: those ran (DDL commits each),
    // the migrations they finished are recorded, the one they were in is not.
    for k in 0..=all.len() {
        let db = TestDb::create("migrate_killed_between_any_two_statements").await.unwrap();
        let mut conn = db.session().await;
        sqlx::query(q(sql::CREATE_MIGRATIONS_TABLE)).execute(&mut conn).await.unwrap();
        for (version, statement) in &all[..k] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone())).execute(&mut conn).await.unwrap();
            let migration = migrate::MIGRATOR.iter().find(|m| m.version == *version).unwrap();
            let last = migrate::statements(migration.sql.as_str()).last().cloned().unwrap();
            if *statement == last {
                sqlx::query(q(sql::RECORD_MIGRATION))
                    .bind(migration.version)
                    .bind(&*migration.description)
                    .bind(&*migration.checksum)
                    .bind(0_i64)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        migrate::run(&mut conn, None)
            .await
            .unwrap_or_else(|e| panic!("migrate after a kill after statement {k} of {}: {e}", all.len()));
        assert_eq!(schema(&mut conn).await, expected, "after a kill after statement {k}");
    }
}

#[tokio::test]
async fn two_migrate_at_once_take_turns_and_apply_each_migration_once() {
    let Some(db) = TestDb::create("two_migrate_at_once").await else { return };
    let (mut first, mut second) = (db.session().await, db.session().await);
    let (a, b) = tokio::join!(migrate::run(&mut first, None), migrate::run(&mut second, None));
    let (a, b) = (a.expect("first migrate"), b.expect("second migrate"));
    let all: Vec<i64> = migrate::MIGRATOR.iter().map(|m| m.version).collect();
    let mut applied = [a.clone(), b.clone()].concat();
    applied.sort();
    assert_eq!(applied, all, "each migration applied by exactly one of them: {a:?} {b:?}");
    assert_eq!(count(&mut first, "SELECT COUNT(*) FROM _sqlx_migrations").await, all.len() as i64);

    // The lock is held for a whole run: with it taken, a migrate waits and gives up.
    sqlx::query(q(sql::LOCK_MIGRATIONS)).bind(10_i64).execute(&mut first).await.unwrap();
    let started = Instant::now();
    let refused = migrate::run(&mut second, Some(Duration::from_secs(1))).await;
    assert!(matches!(refused, Err(migrate::MigrateError::LockTimeout(_))), "{refused:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    sqlx::query(q(sql::UNLOCK_MIGRATIONS)).execute(&mut first).await.unwrap();
    assert_eq!(migrate::run(&mut second, Some(Duration::from_secs(1))).await.unwrap(), Vec::<i64>::new());
}

#[tokio::test]
async fn migrate_refuses_a_database_with_tables_it_did_not_create_and_a_changed_migration() {
    let Some(db) = TestDb::create("migrate_refuses").await else { return };
    let mut conn = db.session().await;
    conn.execute("CREATE TABLE jobs (id INT)").await.unwrap();
    let refused = migrate::run(&mut conn, None).await;
    assert!(matches!(&refused, Err(migrate::MigrateError::ForeignTable(t)) if t == "jobs"), "{refused:?}");
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").await,
        1
    );

    conn.execute("DROP TABLE jobs").await.unwrap();
    migrate::run(&mut conn, None).await.unwrap();
    conn.execute("UPDATE _sqlx_migrations SET checksum = 'x' WHERE version = 3").await.unwrap();
    let refused = migrate::run(&mut conn, None).await;
    assert!(matches!(refused, Err(migrate::MigrateError::Changed(3))), "{refused:?}");
}

// --- Statements ---

/// Every constant of src/store/mariadb/sql.rs.
fn all_statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SESSION_SETTINGS", sql::SESSION_SETTINGS),
        ("SERVER_CHECKS", sql::SERVER_CHECKS),
        ("MIGRATIONS_TABLE", sql::MIGRATIONS_TABLE),
        ("LOCK_MIGRATIONS", sql::LOCK_MIGRATIONS),
        ("UNLOCK_MIGRATIONS", sql::UNLOCK_MIGRATIONS),
        ("TABLE_EXISTS", sql::TABLE_EXISTS),
        ("SELECT_APPLIED_MIGRATIONS", sql::SELECT_APPLIED_MIGRATIONS),
        ("SELECT_MIGRATION_VERSIONS", sql::SELECT_MIGRATION_VERSIONS),
        ("RECORD_MIGRATION", sql::RECORD_MIGRATION),
        ("SELECT_NOW", sql::SELECT_NOW),
        ("SELECT_JOB_BY_NAME", sql::SELECT_JOB_BY_NAME),
        ("LOCK_JOB", sql::LOCK_JOB),
        ("SELECT_JOBS", sql::SELECT_JOBS),
        ("SELECT_DRIVES_OF_JOBS", sql::SELECT_DRIVES_OF_JOBS),
        ("SELECT_MAX_PACKET", sql::SELECT_MAX_PACKET),
        ("SELECT_TAKEN_NAMES", sql::SELECT_TAKEN_NAMES),
        ("INSERT_JOBS", sql::INSERT_JOBS),
        ("INSERT_DRIVES", sql::INSERT_DRIVES),
        ("UPDATE_JOB", sql::UPDATE_JOB),
        ("AUDIT_MANUAL_DELETE", sql::AUDIT_MANUAL_DELETE),
        ("DELETE_JOB", sql::DELETE_JOB),
        ("CLOCK_AND_SKEW", sql::CLOCK_AND_SKEW),
        ("RUN_START_READINGS", sql::RUN_START_READINGS),
        ("MARK_RUN_ABANDONED", sql::MARK_RUN_ABANDONED),
        ("INSERT_RUN", sql::INSERT_RUN),
        ("FINISH_RUN", sql::FINISH_RUN),
        ("UNLOCK_RUN", sql::UNLOCK_RUN),
        ("TRY_LEAD", sql::TRY_LEAD),
        ("END_LEAD", sql::END_LEAD),
        ("COUNT_ELIGIBLE", sql::COUNT_ELIGIBLE),
        ("SELECT_ELIGIBLE", sql::SELECT_ELIGIBLE),
        ("SELECT_NTH_ELIGIBLE", sql::SELECT_NTH_ELIGIBLE),
        ("SELECT_ELIGIBLE_IDS", sql::SELECT_ELIGIBLE_IDS),
        ("CLAIM_ELIGIBLE", sql::CLAIM_ELIGIBLE),
        ("AUDIT_CLAIMED", sql::AUDIT_CLAIMED),
        ("DELETE_CLAIMED", sql::DELETE_CLAIMED),
        ("READ_ONLY", sql::READ_ONLY),
        ("CLAIM_EXPIRED_AUDIT_ROWS", sql::CLAIM_EXPIRED_AUDIT_ROWS),
        ("DELETE_AUDIT_ROWS", sql::DELETE_AUDIT_ROWS),
        ("CLAIM_EXPIRED_RUN_RECORDS", sql::CLAIM_EXPIRED_RUN_RECORDS),
        ("DELETE_RUN_RECORDS", sql::DELETE_RUN_RECORDS),
        ("SELECT_AUDIT_ID_RANGE", sql::SELECT_AUDIT_ID_RANGE),
        ("SELECT_AUDIT_ID_RANGE_BETWEEN", sql::SELECT_AUDIT_ID_RANGE_BETWEEN),
        ("SELECT_AUDIT_PAGE", sql::SELECT_AUDIT_PAGE),
        ("FORECAST", sql::FORECAST),
        ("COUNT_HELD", sql::COUNT_HELD),
        ("SELECT_HELD", sql::SELECT_HELD),
        ("SELECT_RUN", sql::SELECT_RUN),
        ("SELECT_RUNS_BEFORE", sql::SELECT_RUNS_BEFORE),
        ("SELECT_AUDIT_BEFORE", sql::SELECT_AUDIT_BEFORE),
        ("SELECT_AUDIT_OF_RUN", sql::SELECT_AUDIT_OF_RUN),
        ("SELECT_AUDIT_OF_NAME", sql::SELECT_AUDIT_OF_NAME),
        ("SELECT_AUDIT_OF_NAME_RANGE", sql::SELECT_AUDIT_OF_NAME_RANGE),
    ]
}

#[tokio::test]
async fn every_statement_prepares_against_the_migrated_schema() {
    let Some((_db, mut conn)) = migrated("every_statement_prepares").await else { return };
    for (name, statement) in all_statements() {
        conn.prepare(sqlx::SqlSafeStr::into_sql_str(q(statement)))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{statement}"));
    }
}

/// The retentions in days of each rule (`policy::RULES`: each policy for
/// imports, then exports): the defaults (90 days for completed and closed)
/// and creating_idle at 14 days.
const RULE_DAYS: [i64; 8] = [90, 90, 90, 90, 14, 14, 0, 0];

/// The cut-offs of [`RULE_DAYS`].
fn cutoffs() -> [DateTime<Utc>; 8] {
    RULE_DAYS.map(days_ago)
}

/// The cut-offs, then `Cutoffs::settled` (a day ago: `retention.minimum`).
fn cutoff_binds() -> Vec<Bind> {
    let mut binds: Vec<Bind> = cutoffs().map(at).into();
    binds.push(at(days_ago(1)));
    binds
}

/// Whether each rule is enabled: all are.
fn every_rule() -> Vec<Bind> {
    RULE_DAYS.iter().map(|_| Bind::Flag(true)).collect()
}

/// The values of `SELECT_ELIGIBLE_IDS` reading every rule from the start, `limit` each.
fn eligible_ids_binds(limit: i64) -> Vec<Bind> {
    let start = retentiond::policy::start_of_time();
    let mut binds = Vec::new();
    for cutoff in cutoffs() {
        binds.extend([at(cutoff), at(start), Bind::Int(i64::MIN), at(cutoff), Bind::Int(i64::MAX), Bind::Int(limit)]);
    }
    binds.push(at(days_ago(1)));
    binds
}

/// The values of the batch statements: the ids as JSON, then the cut-offs.
fn batch_binds(ids: &[i64]) -> Vec<Bind> {
    let mut binds = vec![text(&serde_json::to_string(ids).unwrap())];
    binds.extend(cutoff_binds());
    binds
}

/// The values of `AUDIT_CLAIMED`: [`batch_binds`], the run, who, when.
fn audit_binds(ids: &[i64], run_id: i64, deleted_at: DateTime<Utc>) -> Vec<Bind> {
    let mut binds = batch_binds(ids);
    binds.extend([Bind::Int(run_id), text("test@host"), at(deleted_at)]);
    binds
}

/// One batch, as the store will run it: claim, audit, delete, commit.
/// Returns the names deleted.
async fn delete_batch(conn: &mut MySqlConnection, run_id: i64, ids: &[i64]) -> Vec<String> {
    let mut tx = conn.begin().await.unwrap();
    let claimed = bind_numbered(sql::CLAIM_ELIGIBLE, &batch_binds(ids)).fetch_all(&mut *tx).await.unwrap();
    let claimed_ids: Vec<i64> = claimed.iter().map(|row| row.get("id")).collect();
    let names: Vec<String> = claimed.iter().map(|row| row.get("name")).collect();
    if claimed.is_empty() {
        tx.rollback().await.unwrap();
        return names;
    }
    let deleted_at: DateTime<Utc> = claimed[0].get("deleted_at");
    let audit = audit_binds(&claimed_ids, run_id, deleted_at);
    let audited = bind_numbered(sql::AUDIT_CLAIMED, &audit).execute(&mut *tx).await.unwrap();
    let deleted = bind_numbered(sql::DELETE_CLAIMED, &batch_binds(&claimed_ids)).execute(&mut *tx).await.unwrap();
    assert_eq!(audited.rows_affected(), claimed_ids.len() as u64, "one audit row per claimed job");
    assert_eq!(deleted.rows_affected(), claimed_ids.len() as u64, "the claimed jobs deleted (drives not counted)");
    tx.commit().await.unwrap();
    names
}

async fn new_run(conn: &mut MySqlConnection) -> i64 {
    let row = sqlx::query(q(sql::INSERT_RUN))
        .bind("purge")
        .bind("test-host")
        .bind(1_i64)
        .bind(None::<i64>)
        .fetch_one(conn)
        .await
        .unwrap();
    assert_eq!(row.get::<Option<i64>, _>("locked"), Some(1), "the new run's lock");
    row.get("id")
}

#[tokio::test]
async fn a_batch_deletes_exactly_the_listed_jobs_still_eligible_with_their_drives_and_one_audit_row_each() {
    let Some((db, mut conn)) = migrated("a_batch_deletes_exactly").await else { return };
    insert_jobs(
        &mut conn,
        &[
            job("old-completed", "Completed", days_ago(100), false),
            job("old-closed", "Closed", days_ago(95), false),
            job("idle-creating", "Creating", days_ago(20), false),
            job("old-but-held", "Completed", days_ago(300), true),
            job("young-completed", "Completed", days_ago(10), false),
            job("old-shipping", "Shipping", days_ago(200), false),
            job("changed-meanwhile", "Completed", days_ago(120), false),
            job("held-by-another-sweep", "Completed", days_ago(130), false),
            job("from-the-future", "Completed", days_ago(-2), false),
        ],
    )
    .await;
    let drives = json!([
        {"job_name": "old-completed", "drive_id": "d1", "state": "ShippedBack", "bytes": 5},
        {"job_name": "old-completed", "drive_id": "d2", "state": "ShippedBack", "bytes": 6},
        {"job_name": "old-but-held", "drive_id": "d1", "state": "ShippedBack", "bytes": 7},
    ]);
    sqlx::query(q(sql::INSERT_DRIVES)).bind(drives.to_string()).execute(&mut conn).await.unwrap();
    let taken: Vec<String> = sqlx::query_scalar(q(sql::SELECT_TAKEN_NAMES))
        .bind(json!(["old-completed", "OLD-COMPLETED", "old-completed ", "free"]).to_string())
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(taken, vec!["old-completed"], "names compare byte for byte, trailing spaces included");

    let future: i64 =
        bind_numbered(sql::CLOCK_AND_SKEW, &every_rule()).fetch_one(&mut conn).await.unwrap().get("future");
    assert_eq!(future, 1, "the job in the future is counted");

    let counts = bind_numbered(sql::COUNT_ELIGIBLE, &cutoff_binds()).fetch_one(&mut conn).await.unwrap();
    let policy = |name: &str| {
        counts.get::<i64, _>(format!("{name}_import").as_str())
            + counts.get::<i64, _>(format!("{name}_export").as_str())
    };
    assert_eq!((policy("completed"), policy("closed"), policy("creating_idle")), (3, 1, 1));

    // The cap's 3rd eligible job over all rules, in the order they became
    // eligible (age plus retention).
    let mut nth = cutoff_binds();
    nth.extend(RULE_DAYS.map(|days| Bind::Int(days * 86_400_000_000)));
    nth.push(Bind::Int(3));
    let third = bind_numbered(sql::SELECT_NTH_ELIGIBLE, &nth).fetch_one(&mut conn).await.unwrap();
    let third_id: i64 = third.get("id");
    let third_name: String =
        sqlx::query_scalar("SELECT name FROM jobs WHERE id = ?").bind(third_id).fetch_one(&mut conn).await.unwrap();
    assert_eq!(
        third_name, "old-completed",
        "most overdue first: held-by-another-sweep (40 days), changed-meanwhile (30), old-completed (10), \
         idle-creating (6), old-closed (5)"
    );

    let mut dry = cutoff_binds();
    for _ in cutoffs() {
        dry.extend([at(retentiond::policy::start_of_time()), Bind::Int(i64::MIN)]);
    }
    dry.push(Bind::Int(10));
    let listed: Vec<String> = bind_numbered(sql::SELECT_ELIGIBLE, &dry)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("name"))
        .collect();
    assert_eq!(listed, ["held-by-another-sweep", "changed-meanwhile", "old-completed", "old-closed", "idle-creating"]);

    let rows = bind_numbered(sql::SELECT_ELIGIBLE_IDS, &eligible_ids_binds(100)).fetch_all(&mut conn).await.unwrap();
    let mut ids: Vec<i64> = rows.iter().map(|row| row.get("id")).collect();
    assert_eq!(ids.len(), 5);
    ids.sort();

    // After the ids were read: one job is held, another is claimed by a
    // second sweep whose transaction is still open.
    conn.execute("UPDATE jobs SET hold_reason = 'audit' WHERE name = 'changed-meanwhile'").await.unwrap();
    let mut other = db.session().await;
    let mut other_tx = other.begin().await.unwrap();
    let other_id: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE name = 'held-by-another-sweep'")
        .fetch_one(&mut *other_tx)
        .await
        .unwrap();
    let claimed =
        bind_numbered(sql::CLAIM_ELIGIBLE, &batch_binds(&[other_id])).fetch_all(&mut *other_tx).await.unwrap();
    assert_eq!(claimed.len(), 1);

    let run_id = new_run(&mut conn).await;
    let mut deleted = delete_batch(&mut conn, run_id, &ids).await;
    deleted.sort();
    assert_eq!(deleted, ["idle-creating", "old-closed", "old-completed"]);
    other_tx.rollback().await.unwrap();

    let left: Vec<String> =
        sqlx::query_scalar("SELECT name FROM jobs ORDER BY name").fetch_all(&mut conn).await.unwrap();
    assert_eq!(
        left,
        [
            "changed-meanwhile",
            "from-the-future",
            "held-by-another-sweep",
            "old-but-held",
            "old-shipping",
            "young-completed"
        ]
    );
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT job_name, policy FROM retention_audit WHERE run_id = ? ORDER BY job_id")
            .bind(run_id)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        audit,
        [
            ("old-completed".into(), "completed".into()),
            ("old-closed".into(), "closed".into()),
            ("idle-creating".into(), "creating_idle".into())
        ]
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM job_drives").await, 1, "the deleted job's drives went with it");

    // The same ids again: the job the other sweep let go is deleted now, then nothing is left.
    assert_eq!(delete_batch(&mut conn, run_id, &ids).await, ["held-by-another-sweep"]);
    assert!(delete_batch(&mut conn, run_id, &ids).await.is_empty());
}

/// The statements of the job and audit commands: list with a state filter,
/// drives, a lifecycle change with the row locked, `jobs delete` with its
/// audit row, and the reads of the audit trail and the runs.
#[tokio::test]
async fn the_command_statements_read_and_change_what_they_say() {
    let Some((_db, mut conn)) = migrated("the_command_statements").await else { return };
    insert_jobs(
        &mut conn,
        &[
            job("cmd-a", "Completed", days_ago(5), false),
            job("cmd-b", "Shipping", days_ago(5), false),
            job("cmd-c", "Completed", days_ago(5), true),
        ],
    )
    .await;
    let drives = json!([{"job_name": "cmd-b", "drive_id": "d2", "state": "Specified", "bytes": 0},
                        {"job_name": "cmd-b", "drive_id": "d1", "state": "Received", "bytes": 9}]);
    sqlx::query(q(sql::INSERT_DRIVES)).bind(drives.to_string()).execute(&mut conn).await.unwrap();

    let names = |rows: Vec<sqlx::mysql::MySqlRow>| rows.iter().map(|r| r.get::<String, _>("name")).collect::<Vec<_>>();
    let completed = json!(["Completed"]).to_string();
    let rows = sqlx::query(q(sql::SELECT_JOBS))
        .bind(&completed)
        .bind(&completed)
        .bind(u64::MAX)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(names(rows), ["cmd-a", "cmd-c"]);
    let rows = sqlx::query(q(sql::SELECT_JOBS))
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(2_u64)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(names(rows), ["cmd-a", "cmd-b"]);
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id").fetch_all(&mut conn).await.unwrap();
    let drives: Vec<(i64, String, String, i64)> = sqlx::query_as(q(sql::SELECT_DRIVES_OF_JOBS))
        .bind(serde_json::to_string(&ids).unwrap())
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(drives, [(ids[1], "d1".into(), "Received".into(), 9), (ids[1], "d2".into(), "Specified".into(), 0)]);

    // A lifecycle change: the row locked, the clock read with it, then updated.
    let mut tx = conn.begin().await.unwrap();
    let locked = sqlx::query(q(sql::LOCK_JOB)).bind(ids[1]).bind("cmd-b").fetch_one(&mut *tx).await.unwrap();
    let now: NaiveDateTime = locked.get("now");
    assert!((Utc::now().naive_utc() - now).num_seconds().abs() < 60);
    let changed = sqlx::query(q(sql::UPDATE_JOB))
        .bind("Received")
        .bind(true)
        .bind(Some(now))
        .bind(None::<String>)
        .bind(now)
        .bind(now)
        .bind(None::<NaiveDateTime>)
        .bind(locked.get::<i64, _>("id"))
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    tx.commit().await.unwrap();
    let row = sqlx::query(q(sql::SELECT_JOB_BY_NAME)).bind("cmd-b").fetch_one(&mut conn).await.unwrap();
    assert_eq!((row.get::<String, _>("state"), row.get::<bool, _>("cancel_requested")), ("Received".into(), true));
    assert!(sqlx::query(q(sql::SELECT_JOB_BY_NAME)).bind("CMD-B").fetch_optional(&mut conn).await.unwrap().is_none());

    // `jobs delete`: the audit row returned as written, the job and its drives gone.
    let mut tx = conn.begin().await.unwrap();
    let locked = sqlx::query(q(sql::LOCK_JOB)).bind(ids[1]).bind("cmd-b").fetch_one(&mut *tx).await.unwrap();
    let audit = sqlx::query(q(sql::AUDIT_MANUAL_DELETE))
        .bind(locked.get::<NaiveDateTime, _>("now"))
        .bind("alice@host")
        .bind(locked.get::<i64, _>("id"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query(q(sql::DELETE_JOB)).bind(locked.get::<i64, _>("id")).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (
            audit.get::<Option<i64>, _>("run_id"),
            audit.get::<String, _>("job_name"),
            audit.get::<String, _>("policy"),
            audit.get::<String, _>("deleted_by")
        ),
        (None, "cmd-b".into(), "manual".into(), "alice@host".into())
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM job_drives").await, 0);
    let audit_id: i64 = audit.get("id");

    let rows = sqlx::query(q(sql::SELECT_AUDIT_OF_NAME))
        .bind("CMD-B")
        .bind(i64::MAX)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(10_i64)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(rows.is_empty(), "names compare byte for byte");
    let range: (Option<i64>, Option<i64>) =
        sqlx::query_as(q(sql::SELECT_AUDIT_ID_RANGE)).fetch_one(&mut conn).await.unwrap();
    assert_eq!(range, (Some(audit_id), Some(audit_id)));
    let page = sqlx::query(q(sql::SELECT_AUDIT_BEFORE)).bind(i64::MAX).bind(10_i64).fetch_all(&mut conn).await.unwrap();
    assert_eq!(page.len(), 1);
    let page = sqlx::query(q(sql::SELECT_AUDIT_OF_NAME))
        .bind("cmd-b")
        .bind(i64::MAX)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(10_i64)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);

    let run_id = new_run(&mut conn).await;
    let runs = sqlx::query(q(sql::SELECT_RUNS_BEFORE)).bind(i64::MAX).bind(10_i64).fetch_all(&mut conn).await.unwrap();
    assert_eq!((runs.len(), runs[0].get::<String, _>("status")), (1, "running".to_owned()));
    assert!(sqlx::query(q(sql::SELECT_RUN)).bind(run_id).fetch_optional(&mut conn).await.unwrap().is_some());
    assert_eq!(
        sqlx::query(q(sql::SELECT_RUNS_BEFORE)).bind(run_id).bind(10_i64).fetch_all(&mut conn).await.unwrap().len(),
        0
    );
    assert_eq!(
        sqlx::query(q(sql::SELECT_AUDIT_OF_RUN))
            .bind(run_id)
            .bind(i64::MAX)
            .bind(10_i64)
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .len(),
        0
    );
    let held: i64 = sqlx::query_scalar(q(sql::COUNT_HELD)).fetch_one(&mut conn).await.unwrap();
    assert_eq!(held, 1);
}

#[tokio::test]
async fn a_run_whose_session_died_is_marked_abandoned_and_a_live_one_is_not() {
    let Some((db, mut conn)) = migrated("a_run_whose_session_died").await else { return };
    let mut dead = db.session().await;
    let dead_run = new_run(&mut dead).await;
    dead.close().await.unwrap();
    let mut live = db.session().await;
    let live_run = new_run(&mut live).await;

    let readings = bind_numbered(sql::RUN_START_READINGS, &every_rule()).fetch_one(&mut conn).await.unwrap();
    let abandoned: Value = serde_json::from_str(&readings.get::<String, _>("abandoned")).unwrap();
    assert_eq!(
        abandoned,
        json!([{"id": dead_run, "host": "test-host", "pid": 1}]),
        "live run {live_run} is not abandoned"
    );
    let marked = sqlx::query(q(sql::MARK_RUN_ABANDONED)).bind(dead_run).execute(&mut conn).await.unwrap();
    assert_eq!(marked.rows_affected(), 1);

    // The live run ends: recorded, then its lock released on its own session.
    let finished = sqlx::query(q(sql::FINISH_RUN))
        .bind("succeeded")
        .bind(0_i64)
        .bind(0_i64)
        .bind(0_i64)
        .bind(0_i64)
        .bind("done")
        .bind(None::<String>)
        .bind(0_i64)
        .bind(0_i64)
        .bind(0_i64)
        .bind(0_i64)
        .bind(live_run)
        .execute(&mut live)
        .await
        .unwrap();
    assert_eq!(finished.rows_affected(), 1);
    let unlocked: Option<i64> =
        sqlx::query_scalar(q(sql::UNLOCK_RUN)).bind(live_run).fetch_one(&mut live).await.unwrap();
    assert_eq!(unlocked, Some(1));
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM retention_runs ORDER BY id").fetch_all(&mut conn).await.unwrap();
    assert_eq!(statuses, ["abandoned", "succeeded"]);

    // The singleton lead: one session at a time.
    assert_eq!(lead(&mut conn).await, Some(1));
    assert_eq!(lead(&mut live).await, Some(0), "another session leads");
    sqlx::query(q(sql::END_LEAD)).execute(&mut conn).await.unwrap();
    assert_eq!(lead(&mut live).await, Some(1));
}

async fn lead(conn: &mut MySqlConnection) -> Option<i64> {
    sqlx::query_scalar(q(sql::TRY_LEAD)).fetch_one(conn).await.unwrap()
}

// --- The trail's and the status pages' statements ---

/// Jobs of the store the trail's statements run on.
const JOBS: usize = 30_000;

/// A store as a bulk load leaves it: `JOBS` jobs imported at once, their
/// ages in no relation to their ids, most of them eligible, a few held.
async fn import_shuffled_jobs(conn: &mut MySqlConnection) {
    let mut jobs = Vec::with_capacity(JOBS);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..JOBS {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let days = ((state >> 33) % 400) as i64;
        let name = format!("plan-{i:06}");
        let held = i % 97 == 0;
        jobs.push(match i % 10 {
            0 => job(&name, "Creating", days_ago(days % 30), held),
            1 => job(&name, "Closed", days_ago(days), held),
            2 => job(&name, "Shipping", days_ago(days % 20), held),
            _ => job(&name, "Completed", days_ago(days), held),
        });
    }
    insert_jobs(conn, &jobs).await;
}

/// Deletes every eligible job in batches of 2,000, as a sweep does; returns how many.
async fn purge(conn: &mut MySqlConnection) -> usize {
    let run_id = new_run(conn).await;
    let mut total = 0;
    loop {
        let rows =
            bind_numbered(sql::SELECT_ELIGIBLE_IDS, &eligible_ids_binds(10_000)).fetch_all(&mut *conn).await.unwrap();
        let mut ids: Vec<i64> = rows.iter().map(|row| row.get("id")).collect();
        if ids.is_empty() {
            return total;
        }
        ids.sort();
        for batch in ids.chunks(2_000) {
            total += delete_batch(conn, run_id, batch).await.len();
        }
    }
}

#[tokio::test]
async fn trail_and_page_statements_run_and_the_forecast_counts_what_becomes_eligible() {
    let Some((_db, mut conn)) = migrated("trail_and_page_statements").await else { return };
    import_shuffled_jobs(&mut conn).await;
    purge(&mut conn).await;
    age_the_trail(&mut conn).await;
    let start = retentiond::policy::start_of_time();
    let cutoff = days_ago(90);
    let horizon = days_ago(60);
    let mut forecast = cutoff_binds();
    forecast.extend(cutoffs().map(|c| at(c + chrono::Duration::days(30))));
    forecast.push(Bind::Int(30));
    let forecast: Vec<Bind> =
        sql::parameter_order(sql::FORECAST).iter().map(|&index| forecast[index].clone()).collect();
    let mut runs = vec![at(cutoff), at(start), at(start), Bind::Int(i64::MIN), Bind::Int(100)];
    runs.extend([at(horizon), at(start), at(start), Bind::Int(i64::MIN), Bind::Int(100), Bind::Int(100)]);
    let checks: Vec<(&str, &str, Vec<Bind>)> = vec![
        ("the audit rows' removal", sql::CLAIM_EXPIRED_AUDIT_ROWS, expired_audit_binds(1000)),
        ("the run records' removal", sql::CLAIM_EXPIRED_RUN_RECORDS, runs),
        ("the forecast", sql::FORECAST, forecast),
        ("the held jobs' count", sql::COUNT_HELD, vec![]),
        ("the holds page", sql::SELECT_HELD, vec![at(start), at(start), Bind::Int(i64::MIN), Bind::Int(51)]),
        (
            "the audit search by prefix",
            sql::SELECT_AUDIT_OF_NAME_RANGE,
            vec![text("plan-0"), text("plan-0"), Bind::Int(i64::MIN), text("plan-1"), Bind::Int(51)],
        ),
        (
            "audit list --job",
            sql::SELECT_AUDIT_OF_NAME,
            vec![text("plan-000003"), Bind::Int(i64::MAX), Bind::Text(None), Bind::Text(None), Bind::Int(100)],
        ),
        ("the audit export's window", sql::SELECT_AUDIT_ID_RANGE_BETWEEN, vec![at(days_ago(500)), at(days_ago(450))]),
        ("an audit export page", sql::SELECT_AUDIT_PAGE, vec![Bind::Int(0), Bind::Int(i64::MAX), Bind::Int(1000)]),
    ];
    for (what, statement, binds) in &checks {
        bind_all(sqlx::query(q(statement)), binds).fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // The forecast counts what COUNT_ELIGIBLE would count 30 days on, per day.
    let rows = bind_all(sqlx::query(q(sql::FORECAST)), &checks[2].2).fetch_all(&mut conn).await.unwrap();
    let in_window: i64 = rows.iter().filter(|r| !r.get::<bool, _>("held")).map(|r| r.get::<i64, _>("jobs")).sum();
    let expected = count(
        &mut conn,
        "SELECT COUNT(*) FROM jobs WHERE hold_reason IS NULL AND ((state IN ('Completed', 'Closed') AND state_changed_at > UTC_TIMESTAMP(6) - INTERVAL 90 DAY AND state_changed_at <= UTC_TIMESTAMP(6) - INTERVAL 60 DAY) OR (state = 'Creating' AND updated_at > UTC_TIMESTAMP(6) - INTERVAL 14 DAY AND updated_at <= UTC_TIMESTAMP(6) + INTERVAL 16 DAY))",
    )
    .await;
    assert!(
        (in_window - expected).abs() <= 2,
        "forecast {in_window} against {expected} (a job may cross a boundary between the two reads)"
    );
    assert!(rows.iter().all(|r| (-1..30).contains(&r.get::<i64, _>("day"))));

    // The trail's removal, as a sweep runs it: claim, delete, commit.
    let mut tx = conn.begin().await.unwrap();
    let claimed =
        bind_all(sqlx::query(q(sql::CLAIM_EXPIRED_AUDIT_ROWS)), &checks[0].2).fetch_all(&mut *tx).await.unwrap();
    assert_eq!(claimed.len(), 1000);
    let ids: Vec<i64> = claimed.iter().map(|r| r.get("id")).collect();
    let removed = sqlx::query(q(sql::DELETE_AUDIT_ROWS))
        .bind(serde_json::to_string(&ids).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(removed.rows_affected(), 1000);
    tx.commit().await.unwrap();
}

/// Makes every run finished and every audit row 400 days old: the whole
/// trail is past a `retention.audit` of 90 days.
async fn age_the_trail(conn: &mut MySqlConnection) {
    conn.execute("UPDATE retention_runs SET status = 'succeeded', finished_at = UTC_TIMESTAMP(6) - INTERVAL 400 DAY")
        .await
        .unwrap();
    conn.execute("UPDATE retention_audit SET deleted_at = deleted_at - INTERVAL 400 DAY").await.unwrap();
}

/// The binds of `CLAIM_EXPIRED_AUDIT_ROWS` from the start of the trail,
/// for a `retention.audit` of 90 days.
fn expired_audit_binds(limit: i64) -> Vec<Bind> {
    let (start, cutoff) = (retentiond::policy::start_of_time(), days_ago(90));
    vec![at(cutoff), at(start), at(start), Bind::Int(i64::MIN), at(cutoff), Bind::Int(limit)]
}

// --- Locks ---

/// Sets the session's isolation level; `None` keeps the store's
/// ([`sql::SESSION_SETTINGS`]).
async fn set_isolation(conn: &mut MySqlConnection, isolation: Option<&str>) {
    if let Some(isolation) = isolation {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET SESSION tx_isolation = '{isolation}'")))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// What a second session could do while a batch's transaction was open,
/// each within the lock wait timeout (1 s) or not.
#[derive(Debug, PartialEq, Eq)]
struct Writes {
    new_job: bool,
    new_drive_of_a_live_job: bool,
    live_job_updated: bool,
}

/// Opens a batch (claim, audit rows, delete) under `isolation` over 20
/// eligible jobs with live ones between them, and one more listed job, the
/// newest, deleted by someone else after the ids were read (a concurrent
/// sweep, `jobs delete`). Meanwhile another session, at the server's
/// defaults, inserts a new job, adds a drive to a live job whose id lies
/// between deleted ones, and updates another such job; then the batch
/// rolls back.
async fn writes_during_a_batch(db: &TestDb, isolation: Option<&str>) -> Writes {
    let mut conn = db.session().await;
    let mut jobs = Vec::new();
    for i in 0..40 {
        let name = format!("lock-{i:03}");
        // Even: eligible completed jobs; odd: live jobs in between.
        jobs.push(if i % 2 == 0 {
            job(&name, "Completed", days_ago(200), false)
        } else {
            job(&name, "Shipping", days_ago(1), false)
        });
    }
    jobs.push(job("lock-newest", "Completed", days_ago(200), false));
    insert_jobs(&mut conn, &jobs).await;
    let drives: Vec<Value> = (0..40)
        .map(|i| json!({"job_name": format!("lock-{i:03}"), "drive_id": "d1", "state": "Specified", "bytes": 0}))
        .collect();
    sqlx::query(q(sql::INSERT_DRIVES)).bind(Value::Array(drives).to_string()).execute(&mut conn).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'Completed' ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let live: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'Shipping' ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.execute("DELETE FROM jobs WHERE name = 'lock-newest'").await.unwrap();
    let run_id = new_run(&mut conn).await;

    set_isolation(&mut conn, isolation).await;
    let mut batch = conn.begin().await.unwrap();
    let claimed: Vec<i64> = bind_numbered(sql::CLAIM_ELIGIBLE, &batch_binds(&ids))
        .fetch_all(&mut *batch)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("id"))
        .collect();
    assert_eq!(claimed.len(), ids.len() - 1, "every listed job but the one gone");
    let audit = audit_binds(&claimed, run_id, Utc::now());
    bind_numbered(sql::AUDIT_CLAIMED, &audit).execute(&mut *batch).await.unwrap();
    let deleted = bind_numbered(sql::DELETE_CLAIMED, &batch_binds(&claimed)).execute(&mut *batch).await.unwrap();
    assert_eq!(deleted.rows_affected(), claimed.len() as u64);

    // The application: the server's defaults (REPEATABLE READ here), waits of at most 1 s.
    let mut app = sqlx::ConnectOptions::connect(&db.options()).await.unwrap();
    app.execute("SET SESSION innodb_lock_wait_timeout = 1").await.unwrap();
    let mut attempt = async |statement: String| -> bool {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone())).execute(&mut app).await {
            Ok(_) => true,
            Err(error) => {
                let number =
                    error.as_database_error().map(|e| e.downcast_ref::<sqlx::mysql::MySqlDatabaseError>().number());
                assert_eq!(number, Some(1205), "{statement}: {error}");
                false
            }
        }
    };
    let now = stored(Utc::now());
    let new_job = attempt(format!(
        "INSERT INTO jobs (name, job_type, state, created_at, updated_at, state_changed_at) \
         VALUES ('lock-010a', 'Import', 'Creating', '{now}', '{now}', '{now}')"
    ))
    .await;
    let new_drive_of_a_live_job = attempt(format!(
        "INSERT INTO job_drives (job_id, drive_id, state, bytes) VALUES ({}, 'd2', 'Specified', 0)",
        live[5]
    ))
    .await;
    let live_job_updated = attempt(format!(
        "UPDATE jobs SET state = 'Received', state_changed_at = '{now}', updated_at = '{now}' WHERE id = {}",
        live[6]
    ))
    .await;
    batch.rollback().await.unwrap();
    Writes { new_job, new_drive_of_a_live_job, live_job_updated }
}

#[tokio::test]
async fn a_batch_in_flight_makes_no_insert_or_update_of_other_jobs_wait_at_read_committed() {
    let Some((db, _conn)) = migrated("a_batch_in_flight").await else { return };
    let writes = writes_during_a_batch(&db, None).await;
    assert_eq!(writes, Writes { new_job: true, new_drive_of_a_live_job: true, live_job_updated: true });
}

/// Whether a new audit row (a batch's, or `jobs delete`'s) can be written
/// within 1 s while the trail's removal has claimed the expired rows under
/// `isolation`; every row is expired, so the claim's walk reaches the end of
/// `retention_audit_by_deleted_at`, where new rows go.
async fn audit_row_written_during_a_trail_removal(db: &TestDb, isolation: Option<&str>) -> bool {
    let mut conn = db.session().await;
    insert_jobs(
        &mut conn,
        &(0..20).map(|i| job(&format!("trail-{i:03}"), "Completed", days_ago(200), false)).collect::<Vec<_>>(),
    )
    .await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id").fetch_all(&mut conn).await.unwrap();
    let run_id = new_run(&mut conn).await;
    assert_eq!(delete_batch(&mut conn, run_id, &ids[..10]).await.len(), 10);
    age_the_trail(&mut conn).await;

    set_isolation(&mut conn, isolation).await;
    let mut removal = conn.begin().await.unwrap();
    let claimed = bind_all(sqlx::query(q(sql::CLAIM_EXPIRED_AUDIT_ROWS)), &expired_audit_binds(1000))
        .fetch_all(&mut *removal)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 10);

    let mut sweep = db.session().await;
    sweep.execute("SET SESSION innodb_lock_wait_timeout = 1").await.unwrap();
    let next_run = new_run(&mut sweep).await;
    let written = match tokio::time::timeout(
        Duration::from_secs(10),
        delete_batch_result(&mut sweep, next_run, &ids[10..]),
    )
    .await
    {
        Ok(Ok(())) => true,
        Ok(Err(number)) => {
            assert_eq!(number, 1205, "lock wait timeout");
            false
        }
        Err(_) => panic!("no answer within 10 s"),
    };
    removal.rollback().await.unwrap();
    written
}

/// [`delete_batch`], reporting a refusal's error number instead of failing.
async fn delete_batch_result(conn: &mut MySqlConnection, run_id: i64, ids: &[i64]) -> Result<(), u16> {
    let mut tx = conn.begin().await.unwrap();
    let claimed: Vec<i64> = bind_numbered(sql::CLAIM_ELIGIBLE, &batch_binds(ids))
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("id"))
        .collect();
    let audit = audit_binds(&claimed, run_id, Utc::now());
    let number = |e: sqlx::Error| {
        e.as_database_error().map_or(0, |e| e.downcast_ref::<sqlx::mysql::MySqlDatabaseError>().number())
    };
    bind_numbered(sql::AUDIT_CLAIMED, &audit).execute(&mut *tx).await.map_err(number)?;
    bind_numbered(sql::DELETE_CLAIMED, &batch_binds(&claimed)).execute(&mut *tx).await.map_err(number)?;
    tx.commit().await.map_err(number)
}

/// Why the store's sessions run at READ COMMITTED: at the server's default
/// REPEATABLE READ, the trail removal's walk locks the gaps it passes,
/// through to the end of the index, where every new audit row goes: a
/// concurrent sweep's batch waits for it (and fails after
/// `innodb_lock_wait_timeout`).
#[tokio::test]
async fn a_trail_removal_makes_new_audit_rows_wait_at_repeatable_read_and_not_at_read_committed() {
    let Some((db, _conn)) = migrated("a_trail_removal_makes_new_audit_rows_wait").await else { return };
    assert!(audit_row_written_during_a_trail_removal(&db, None).await, "READ COMMITTED");
    let (db, _conn) = migrated("a_trail_removal_makes_new_audit_rows_wait").await.unwrap();
    assert!(!audit_row_written_during_a_trail_removal(&db, Some("REPEATABLE-READ")).await, "REPEATABLE READ");
}

// --- Replication ---

/// A purge replicates alike: after a migration, an import, a run, a purge in
/// batches, a trail removal and a `jobs delete` on a primary logging in
/// MIXED format (the default), its replica holds the same rows. READ
/// COMMITTED has InnoDB log every change as rows; under `binlog_format =
/// STATEMENT` it refuses to write at all (1665), which the store must
/// report as a configuration the sweep cannot run under.
#[test]
fn a_purge_replicates_alike_and_statement_based_logging_refuses_read_committed_writes() {
    let test = "a_purge_replicates_alike";
    if !common::mariadb_server::tools(test) {
        return;
    }
    use common::mariadb_server::{MariaDbServer, ServerOptions};
    let primary = MariaDbServer::start(ServerOptions {
        binlog: true,
        extra: vec!["--binlog-format=MIXED".into()],
        ..Default::default()
    });
    let replica = MariaDbServer::start(ServerOptions { replica_of: Some(&primary), ..Default::default() });
    primary.sql("CREATE DATABASE store");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let session = || async {
        let mut conn = MySqlConnection::connect(&primary.url("store", "")).await.unwrap();
        sqlx::query(q(sql::SESSION_SETTINGS)).bind(0_i64).execute(&mut conn).await.unwrap();
        conn
    };
    runtime.block_on(async {
        let mut conn = session().await;
        migrate::run(&mut conn, None).await.unwrap();
        let jobs: Vec<Value> = (0..3_000)
            .map(|i| {
                job(
                    &format!("sbr-{i:05}"),
                    if i % 3 == 0 { "Shipping" } else { "Completed" },
                    days_ago(i % 200),
                    i % 50 == 0,
                )
            })
            .collect();
        insert_jobs(&mut conn, &jobs).await;
        let drives: Vec<Value> = (0..3_000)
            .step_by(7)
            .map(|i| json!({"job_name": format!("sbr-{i:05}"), "drive_id": "d1", "state": "Completed", "bytes": i}))
            .collect();
        sqlx::query(q(sql::INSERT_DRIVES)).bind(Value::Array(drives).to_string()).execute(&mut conn).await.unwrap();
        let purged = purge(&mut conn).await;
        assert!(purged > 500, "{purged}");
        age_the_trail(&mut conn).await;
        let mut tx = conn.begin().await.unwrap();
        let claimed = bind_all(sqlx::query(q(sql::CLAIM_EXPIRED_AUDIT_ROWS)), &expired_audit_binds(300))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        let ids: Vec<i64> = claimed.iter().map(|row| row.get("id")).collect();
        sqlx::query(q(sql::DELETE_AUDIT_ROWS))
            .bind(serde_json::to_string(&ids).unwrap())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM jobs WHERE name = 'sbr-00003'").fetch_one(&mut *tx).await.unwrap();
        let now = Utc::now().naive_utc();
        sqlx::query(q(sql::AUDIT_MANUAL_DELETE))
            .bind(now)
            .bind("test@host")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query(q(sql::DELETE_JOB)).bind(id).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    });
    replica.wait_for_replay_of(&primary);
    for table in ["jobs", "job_drives", "retention_runs", "retention_audit"] {
        let rows = format!("SELECT * FROM store.{table} ORDER BY 1, 2");
        let on_primary = primary.sql(&rows);
        assert!(!on_primary.is_empty(), "{table} is empty");
        assert_eq!(replica.sql(&rows), on_primary, "{table} differs on the replica");
    }

    primary.sql("SET GLOBAL binlog_format = 'STATEMENT'");
    runtime.block_on(async {
        let mut conn = session().await;
        let refused = conn.execute("UPDATE jobs SET updated_at = updated_at WHERE name = 'sbr-00001'").await;
        let number = refused
            .expect_err("a write at READ COMMITTED under STATEMENT")
            .as_database_error()
            .map(|e| e.downcast_ref::<sqlx::mysql::MySqlDatabaseError>().number());
        assert_eq!(number, Some(1665));
    });
}
