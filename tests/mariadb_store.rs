//! The MariaDB store (src/store/mariadb/) through the store's traits and
//! through the CLI, on a fresh database per test (created and dropped):
//! the job commands' outcomes (not found, name taken, conflict), a sweep's
//! batch deleting exactly the jobs still eligible with one audit row each
//! (a job held after it was read is kept), concurrent batches deleting each
//! job once, `purge` end to end, a replica refused with exit 69, and a batch
//! cancelled at `database.statement_timeout` retried smaller.

mod common;

use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use common::mariadb_db::TestDb;
use common::mariadb_server::{self, MariaDbServer, ServerOptions};
use retentiond::config::{DatabaseSettings, DatabaseUrl};
use retentiond::identity::ProcessIdentity;
use retentiond::lifecycle::{DriveState, JobState, JobType, Operation};
use retentiond::model::{Drive, Job, Pauses, Removed, RunStatus};
use retentiond::policy::{self, PerPolicy, PerRule, PerType, Policy, Retentions};
use retentiond::store::{self, AuditSearch, Batch, IdRange, NewRun, RunOutcome, Store, StoreError};
use sqlx::{ConnectOptions, Connection};

async fn open(db: &TestDb) -> Box<dyn Store> {
    let settings = DatabaseSettings { url: DatabaseUrl::new(db.url.clone()), ..DatabaseSettings::default() };
    store::open(&settings).await.unwrap_or_else(|e| panic!("open {}: {e}", db.url))
}

async fn count(db: &TestDb, query: &'static str) -> i64 {
    let mut conn = db.options().connect().await.unwrap();
    let n = sqlx::query_scalar(query).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    n
}

/// A job in `state` since `days` ago, with two drives.
fn job(name: &str, state: JobState, days: i64) -> Job {
    let at = Utc::now() - Duration::days(days);
    let drive = |id: &str| Drive { drive_id: id.to_owned(), state: DriveState::Specified, bytes: 7 };
    Job {
        name: name.to_owned(),
        job_type: JobType::Import,
        state,
        cancel_requested: false,
        cancel_requested_at: None,
        hold_reason: None,
        created_at: at,
        updated_at: at,
        state_changed_at: at,
        retain_until: None,
        drives: vec![drive("d1"), drive("d2")],
    }
}

/// 90 days for completed and closed jobs, creating_idle off.
fn retentions() -> Retentions {
    let completed = PerType::from_fn(|_| Some(std::time::Duration::from_secs(90 * 86_400)));
    Retentions { rules: PerRule { completed, ..PerRule::default() }, ..Retentions::default() }
}

#[tokio::test]
async fn the_job_commands_keep_their_contract() {
    let Some(db) = TestDb::create("the_job_commands_keep_their_contract").await else { return };
    let store = open(&db).await;
    let created = job("a", JobState::Completed, 100);
    store.create_jobs(&[created.clone(), job("b", JobState::Creating, 1)]).await.unwrap();
    let a = store.job("a").await.unwrap().expect("a");
    assert_eq!((a.state, a.drives.len()), (JobState::Completed, 2));
    let micros = DateTime::from_timestamp_micros(created.state_changed_at.timestamp_micros()).unwrap();
    assert_eq!(a.state_changed_at, micros, "to the microsecond");
    assert!(store.job("A").await.unwrap().is_none(), "names compare byte for byte");

    match store.create_jobs(&[job("c", JobState::Creating, 0), job("b", JobState::Creating, 0)]).await {
        Err(StoreError::NameTaken { name, index }) => assert_eq!((name.as_str(), index), ("b", 1)),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert!(store.job("c").await.unwrap().is_none(), "all or nothing");
    assert!(matches!(store.change_job("nope", &Operation::Cancel).await, Err(StoreError::NotFound(_))));
    let held = store.change_job("b", &Operation::Hold("legal".into())).await.unwrap();
    assert_eq!(held.hold_reason.as_deref(), Some("legal"));
    assert!(matches!(store.delete_job("b", "alice@host").await, Err(StoreError::Conflict { .. })), "b is held");
    let shipping = Operation::SetState(JobState::Received);
    assert!(matches!(store.change_job("b", &shipping).await, Err(StoreError::Conflict { .. })), "not from Creating");
    let listed = store.list_jobs(&store::JobFilter { states: vec![JobState::Creating], limit: None }).await.unwrap();
    assert_eq!(listed.iter().map(|job| job.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(store.count_held().await.unwrap(), 1);

    let audit = store.delete_job("a", "alice@host").await.unwrap();
    assert_eq!((audit.policy.as_str(), audit.deleted_by.as_str(), audit.run_id), ("manual", "alice@host", None));
    assert!(store.job("a").await.unwrap().is_none());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM job_drives WHERE job_id NOT IN (SELECT id FROM jobs)").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM job_drives").await, 2, "b's drives stay");
    let found =
        store.audit(&AuditSearch::Name { name: "a".into(), run_id: None, before: i64::MAX }, None).await.unwrap();
    assert_eq!(found.iter().map(|entry| entry.id).collect::<Vec<_>>(), [audit.id]);
    store.close().await;
}

#[tokio::test]
async fn a_batch_deletes_the_jobs_still_eligible_with_one_audit_row_each_and_keeps_one_held_since_it_was_read() {
    let Some(db) = TestDb::create("a_batch_deletes_the_jobs_still_eligible").await else { return };
    let store = open(&db).await;
    let jobs: Vec<Job> = (0..5).map(|i| job(&format!("old-{i}"), JobState::Completed, 200 - i)).collect();
    store.create_jobs(&jobs).await.unwrap();
    store.create_jobs(&[job("young", JobState::Completed, 10), job("live", JobState::Creating, 300)]).await.unwrap();
    let retentions = retentions();
    let identity = ProcessIdentity::current();
    let (run_id, clock) =
        store.begin_run(&NewRun { trigger: "purge", owner: &identity, retentions: &retentions }).await.unwrap();
    let cutoffs = policy::cutoffs(&retentions, clock.now);
    let completed = (Policy::Completed, JobType::Import);
    let mut ranges = PerRule::<Option<IdRange>>::default();
    ranges[completed.0][completed.1] =
        Some(IdRange { cutoff: cutoffs[completed.0][completed.1].unwrap(), after: None, through: None, limit: 100 });
    let read = store.eligible_ids(&ranges, cutoffs.settled).await.unwrap();
    let ids: Vec<i64> = read[completed.0][completed.1].ids.clone();
    assert_eq!(ids.len(), 5, "the five old completed jobs, oldest first: {read:?}");

    store.change_job("old-2", &Operation::Hold("legal".into())).await.unwrap();
    let batch = Batch { run_id, cutoffs: &cutoffs, ids: &ids, deleted_by: "test@host" };
    let deleted = store.delete_eligible(&batch).await.unwrap().jobs.decode().unwrap();
    let names: Vec<&str> = deleted.iter().map(|job| job.name.as_str()).collect();
    assert_eq!(names, ["old-0", "old-1", "old-3", "old-4"], "in id order, the held one kept");
    assert!(store.job("old-2").await.unwrap().is_some());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM retention_audit WHERE run_id IS NOT NULL").await, 4);
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT job_id) FROM retention_audit").await, 4);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM job_drives").await, 2 * 3, "the deleted jobs' drives are gone");
    assert!(store.delete_eligible(&batch).await.unwrap().jobs.is_empty(), "a batch again deletes nothing");

    let outcome = RunOutcome {
        status: RunStatus::Succeeded,
        counts: PerPolicy { completed: 4, closed: 0, creating_idle: 0, retain_until: 0 },
        stopped_by: Some("done".into()),
        error: None,
        removed: Removed::default(),
        paused: Pauses::default(),
    };
    store.finish_run(run_id, &outcome).await.unwrap();
    let run = store.run(run_id).await.unwrap().expect("the run");
    assert_eq!((run.status, run.total), (RunStatus::Succeeded, 4));
    let trail = store.audit(&AuditSearch::Run { run_id, before: i64::MAX }, None).await.unwrap();
    assert_eq!(trail.len(), 4);
    store.close().await;
}

#[tokio::test]
async fn concurrent_batches_over_the_same_jobs_delete_each_once_without_an_error() {
    let Some(db) = TestDb::create("concurrent_batches_delete_each_once").await else { return };
    let (first, second) = (open(&db).await, open(&db).await);
    let jobs: Vec<Job> = (0..400).map(|i| job(&format!("old-{i:03}"), JobState::Closed, 100 + i % 50)).collect();
    first.create_jobs(&jobs).await.unwrap();
    let retentions =
        Retentions { rules: PerRule { closed: retentions().completed, ..PerRule::default() }, ..Retentions::default() };
    let identity = ProcessIdentity::current();
    let new_run = NewRun { trigger: "purge", owner: &identity, retentions: &retentions };
    let (run_a, clock) = first.begin_run(&new_run).await.unwrap();
    let (run_b, _) = second.begin_run(&new_run).await.unwrap();
    let cutoffs = policy::cutoffs(&retentions, clock.now);
    let all: Vec<i64> = (1..=400).collect();
    let mut total = 0;
    for chunk in all.chunks(50) {
        let batch_a = Batch { run_id: run_a, cutoffs: &cutoffs, ids: chunk, deleted_by: "a" };
        let batch_b = Batch { run_id: run_b, cutoffs: &cutoffs, ids: chunk, deleted_by: "b" };
        let (a, b) = tokio::join!(first.delete_eligible(&batch_a), second.delete_eligible(&batch_b));
        total += a.unwrap().jobs.len() + b.unwrap().jobs.len();
    }
    assert_eq!(total, 400);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT job_id) FROM retention_audit").await, 400);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM retention_audit").await, 400);
    first.close().await;
    second.close().await;
}

fn retentiond(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retentiond"))
        .args(args)
        .env("RETENTIOND__DATABASE__URL", url)
        .env("RETENTIOND__LOG__LEVEL", "warn")
        .env_remove("RETENTIOND_CONFIG")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn purge_through_the_cli_deletes_every_eligible_job_with_its_audit_row() {
    let Some(db) = TestDb::create("purge_through_the_cli").await else { return };
    let url = db.url.replace("mysql://", "mariadb://");
    let seeded = retentiond(&url, &["jobs", "seed", "--count", "3000", "--seed", "7"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let dry = retentiond(&url, &["purge", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let eligible = String::from_utf8_lossy(&dry.stdout).lines().filter(|line| line.starts_with("  ")).count();
    assert!(eligible > 500, "the seed makes old jobs: {eligible}");

    let purged = retentiond(&url, &["purge", "--batch-size", "200"]);
    assert!(purged.status.success(), "{}", stderr(&purged));
    let audited = count(&db, "SELECT COUNT(*) FROM retention_audit").await;
    assert_eq!(audited as usize, eligible, "one audit row per job the dry run listed");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs").await + audited, 3000);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM retention_audit a JOIN jobs j ON j.id = a.job_id").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM job_drives WHERE job_id NOT IN (SELECT id FROM jobs)").await, 0);
    assert_eq!(
        count(&db, "SELECT deleted_completed + deleted_closed + deleted_creating_idle FROM retention_runs").await,
        audited
    );
    let again = retentiond(&url, &["purge", "--dry-run"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).lines().filter(|line| line.starts_with("  ")).count(), 0);
}

#[test]
fn a_replica_is_refused_with_exit_69_and_says_why() {
    let test = "a_replica_is_refused_with_exit_69_and_says_why";
    if !mariadb_server::tools(test) {
        return;
    }
    let primary = MariaDbServer::start(ServerOptions { binlog: true, ..Default::default() });
    let replica = MariaDbServer::start(ServerOptions { replica_of: Some(&primary), ..Default::default() });
    primary.sql("CREATE DATABASE store");
    let migrated = retentiond(&primary.url("store", ""), &["migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let seeded = retentiond(&primary.url("store", ""), &["jobs", "seed", "--count", "50"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    replica.wait_for_replay_of(&primary);

    let refused = retentiond(&replica.url("store", ""), &["purge"]);
    assert_eq!(refused.status.code(), Some(69), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("replica"), "{}", stderr(&refused));
    assert_eq!(replica.sql("SELECT COUNT(*) FROM store.retention_runs"), "0", "nothing written");
    let listed = retentiond(&replica.url("store", ""), &["jobs", "list", "--limit", "1"]);
    assert!(listed.status.success(), "reads still work: {}", stderr(&listed));
}

/// `database.statement_timeout` is MariaDB's `max_statement_time`: a batch
/// cancelled at it rolls back whole and is retried with a quarter of the
/// jobs, and the sweep succeeds. A trigger makes the audit insert sleep past
/// the timeout twice (a sequence counts the attempts: it is not rolled back).
#[tokio::test]
async fn a_batch_cancelled_at_the_statement_timeout_is_retried_smaller() {
    let Some(db) = TestDb::create("a_batch_cancelled_at_the_statement_timeout").await else { return };
    let seeded = retentiond(&db.url, &["jobs", "seed", "--count", "3000", "--seed", "11"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let mut conn = db.options().connect().await.unwrap();
    sqlx::raw_sql(
        "CREATE SEQUENCE slow_attempts; \
         CREATE TRIGGER slow_audit BEFORE INSERT ON retention_audit FOR EACH ROW \
         SET @slept = IF(NEXTVAL(slow_attempts) <= 2, SLEEP(3), 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_retentiond"))
        .args(["--log-format", "json", "--log-level", "warn,retentiond::sweep=debug", "purge", "--output", "json"])
        .env("RETENTIOND__DATABASE__URL", &db.url)
        .env("RETENTIOND__DATABASE__STATEMENT_TIMEOUT", "1s")
        .env_remove("RETENTIOND_CONFIG")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let retries = log.lines().filter(|line| line.contains("batch timed out; retrying smaller")).count();
    assert_eq!(retries, 2, "{log}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = summary["total"].as_i64().expect("total");
    assert!(total > 500, "the seed makes old jobs: {summary}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM retention_audit").await, total);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs").await + total, 3000);
}
