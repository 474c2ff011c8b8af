//! The baseline: the strongest hand-written way to do what a purge does —
//! delete every eligible job with its drives and write one audit row each —
//! in one statement, as one transaction. It holds every lock for the whole
//! purge, which retentiond's batches avoid; the benchmark shows what that
//! costs in throughput and what it saves concurrent writers.
//!
//! PostgreSQL: `WITH d AS (DELETE … RETURNING …) INSERT INTO retention_audit
//! … SELECT … FROM d`, autocommit; drives go by `ON DELETE CASCADE`.
//! SQLite has no DELETE inside an INSERT, so within one `BEGIN IMMEDIATE`
//! transaction: the DELETE returns each job as a JSON object to the client,
//! and one INSERT writes all audit rows from them through `json_each`.
//! MariaDB has no DELETE inside an INSERT either, but can read the jobs
//! twice in one transaction: `INSERT INTO retention_audit … SELECT … FROM
//! jobs WHERE <eligible>`, then `DELETE FROM jobs WHERE <eligible>`, at READ
//! COMMITTED as retentiond's sessions run; drives go by the cascade.
//!
//! Audit rows carry no run id, the policy by state, `deleted_by` `baseline`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::Connection;

use super::Purged;
use super::eligible::{self, eligible};
use super::error::{Context, Result};
use super::stores::{BenchStore, Conn};

const POSTGRES_PURGE: &str = concat!(
    "WITH d AS (DELETE FROM jobs WHERE ",
    eligible!("$1"),
    " RETURNING id, name, job_type, state, cancel_requested, created_at, state_changed_at) \
     INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, id, name, job_type, CASE state WHEN 'Completed' THEN 'completed' ELSE 'closed' END, \
       state, cancel_requested, created_at, state_changed_at, now(), 'baseline' FROM d"
);

/// ?1: cut-off in microseconds. Each deleted job comes back as one JSON object.
const SQLITE_DELETE: &str = concat!(
    "DELETE FROM jobs WHERE ",
    eligible!("?1"),
    " RETURNING json_object('id', id, 'name', name, 'job_type', job_type, 'state', state, \
       'cancel_requested', cancel_requested, 'created_at', created_at, 'state_changed_at', state_changed_at)"
);

/// ?1: JSON array of the deleted jobs; ?2: deleted_at in microseconds.
const SQLITE_AUDIT: &str = "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, \
       cancel_requested, created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, value ->> 'id', value ->> 'name', value ->> 'job_type', \
       CASE value ->> 'state' WHEN 'Completed' THEN 'completed' ELSE 'closed' END, value ->> 'state', \
       value ->> 'cancel_requested', value ->> 'created_at', value ->> 'state_changed_at', ?2, 'baseline' \
     FROM json_each(?1)";

/// ?: cut-off (UTC). The audit rows of the jobs [`MARIADB_DELETE`] deletes next.
const MARIADB_AUDIT: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, id, name, job_type, CASE state WHEN 'Completed' THEN 'completed' ELSE 'closed' END, \
       state, cancel_requested, created_at, state_changed_at, UTC_TIMESTAMP(6), 'baseline' FROM jobs WHERE ",
    eligible!("?")
);

/// ?: cut-off (UTC).
const MARIADB_DELETE: &str = concat!("DELETE FROM jobs WHERE ", eligible!("?"));

/// Deletes every eligible job of `store` the baseline's way.
pub async fn run(store: &BenchStore) -> Result<Purged> {
    let mut conn = store.connect().await?;
    let purged = match &mut conn {
        Conn::Postgres(conn) => postgres(conn).await,
        Conn::Sqlite(conn) => sqlite(conn).await,
        Conn::MariaDb(conn) => mariadb(conn).await,
    }
    .with_context(|| format!("baseline purge of the {} store", store.variant))?;
    conn.close().await?;
    Ok(purged)
}

async fn postgres(conn: &mut sqlx::PgConnection) -> Result<Purged> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *conn).await.context("SELECT now()")?;
    let cutoff = eligible::cutoff(now)?;
    let started = Instant::now();
    let audited = sqlx::query(POSTGRES_PURGE).bind(cutoff).execute(&mut *conn).await.context("the statement")?;
    let elapsed = started.elapsed();
    Ok(Purged { deleted: audited.rows_affected(), elapsed, cutoff, process: None, until_purged: None })
}

async fn sqlite(conn: &mut sqlx::SqliteConnection) -> Result<Purged> {
    // The embedded database's clock is this process's, as for retentiond.
    let cutoff = eligible::cutoff(Utc::now())?;
    let started = Instant::now();
    let mut transaction = conn.begin_with("BEGIN IMMEDIATE").await.context("BEGIN IMMEDIATE")?;
    let deleted: Vec<String> = sqlx::query_scalar(SQLITE_DELETE)
        .bind(cutoff.timestamp_micros())
        .fetch_all(&mut *transaction)
        .await
        .context("the DELETE")?;
    let jobs = format!("[{}]", deleted.join(","));
    let audited = sqlx::query(SQLITE_AUDIT)
        .bind(jobs)
        .bind(Utc::now().timestamp_micros())
        .execute(&mut *transaction)
        .await
        .context("the audit INSERT")?;
    transaction.commit().await.context("COMMIT")?;
    let elapsed = started.elapsed();
    if audited.rows_affected() != deleted.len() as u64 {
        return Err(format!("{} audit rows written for {} deleted jobs", audited.rows_affected(), deleted.len()).into());
    }
    Ok(Purged { deleted: deleted.len() as u64, elapsed, cutoff, process: None, until_purged: None })
}

async fn mariadb(conn: &mut sqlx::MySqlConnection) -> Result<Purged> {
    sqlx::raw_sql("SET SESSION tx_isolation = 'READ-COMMITTED'").execute(&mut *conn).await.context("READ COMMITTED")?;
    let now: chrono::NaiveDateTime =
        sqlx::query_scalar("SELECT UTC_TIMESTAMP(6)").fetch_one(&mut *conn).await.context("UTC_TIMESTAMP(6)")?;
    let cutoff = eligible::cutoff(now.and_utc())?;
    let started = Instant::now();
    let mut transaction = conn.begin().await.context("BEGIN")?;
    let audited = sqlx::query(MARIADB_AUDIT)
        .bind(cutoff.naive_utc())
        .execute(&mut *transaction)
        .await
        .context("the audit INSERT")?
        .rows_affected();
    let deleted = sqlx::query(MARIADB_DELETE)
        .bind(cutoff.naive_utc())
        .execute(&mut *transaction)
        .await
        .context("the DELETE")?
        .rows_affected();
    if audited != deleted {
        return Err(format!("{audited} audit rows written for {deleted} deleted jobs; rolled back").into());
    }
    transaction.commit().await.context("COMMIT")?;
    let elapsed = started.elapsed();
    Ok(Purged { deleted, elapsed, cutoff, process: None, until_purged: None })
}
