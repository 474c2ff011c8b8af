//! Stores built with set-based SQL, for sizes `jobs seed` would take too long
//! to make (ten million idle jobs, or a backlog of millions all eligible) or
//! shapes it does not make (a store loaded and purged at once).
//! The schema comes from `retentiond migrate`; the rows from a recursive CTE
//! (SQLite), `generate_series` (PostgreSQL) or a table of the SEQUENCE
//! engine (MariaDB: `seq_<first>_to_<last>`), in chunks so no transaction
//! (and no WAL) grows with the whole store, and progress can be shown.
//!
//! * idle: jobs spread evenly over every state, every timestamp within the
//!   last 60 days, so none is eligible under the 90-day retention; names
//!   `idle-%08d`; no drives (an idle sweep never reads them).
//! * backlog: every job `Completed` 100–400 days ago, so all are eligible;
//!   names `backlog-%08d`; two drives each, for the cascade to delete.
//! * loaded (PostgreSQL only): 24 jobs in 25 `Completed` or `Closed` 100–400
//!   days ago (eligible), every 25th `Transferring` within the last 30 days;
//!   names `loaded-%08d`; two drives each. Not settled: no `VACUUM`, no
//!   `ANALYZE`, so the planner has no statistics on it (`no_statistics`).

use chrono::Utc;

use super::error::{Context, Result};
use super::seed::Seeded;
use super::stores::{BenchStore, Conn, Stores};

/// Jobs per INSERT statement (and transaction).
const CHUNK: u64 = 500_000;

/// Seconds in 60 days: idle jobs changed up to this long ago.
const IDLE_SPREAD_S: i64 = 60 * 86_400;

/// Backlog jobs finished 100 days ago plus up to this many seconds (300 days).
const BACKLOG_SPREAD_S: i64 = 300 * 86_400;
const BACKLOG_MIN_AGE_S: i64 = 100 * 86_400;

/// ?1, ?2: first and last number; ?3: now in microseconds; ?4: spread of the
/// ages in seconds. The multiplier (a prime) scatters the ages, so age order
/// is not number order. PostgreSQL's: $1, $2 the numbers, $3 the spread.
const SQLITE_IDLE: &str = "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
     INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, state_changed_at) \
     SELECT printf('idle-%08d', i), CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, \
       CASE i % 7 WHEN 0 THEN 'Creating' WHEN 1 THEN 'Shipping' WHEN 2 THEN 'Received' \
         WHEN 3 THEN 'Transferring' WHEN 4 THEN 'Packaging' WHEN 5 THEN 'Completed' ELSE 'Closed' END, \
       0, ts, ts, ts \
     FROM (SELECT i, ?3 - (i * 7919 % ?4) * 1000000 AS ts FROM n)";

const POSTGRES_IDLE: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT 'idle-' || lpad(i::text, 8, '0'), CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, \
       (ARRAY['Creating', 'Shipping', 'Received', 'Transferring', 'Packaging', 'Completed', 'Closed'])[(i % 7)::int + 1], \
       false, ts, ts, ts \
     FROM (SELECT i, now() - make_interval(secs => i * 7919 % $3) AS ts \
           FROM generate_series($1::bigint, $2::bigint) AS i) AS numbered";

/// ?1, ?2: first and last number; ?3: now in microseconds; ?4: spread and ?5:
/// minimum age, in seconds. PostgreSQL's: $1, $2 the numbers, $3 the spread, $4 the minimum age.
const SQLITE_BACKLOG: &str = "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
     INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, state_changed_at) \
     SELECT printf('backlog-%08d', i), CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, 'Completed', 0, \
       ts - 864000000000, ts, ts \
     FROM (SELECT i, ?3 - (?5 + i * 7919 % ?4) * 1000000 AS ts FROM n)";

const POSTGRES_BACKLOG: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT 'backlog-' || lpad(i::text, 8, '0'), CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, 'Completed', \
       false, ts - interval '10 days', ts, ts \
     FROM (SELECT i, now() - make_interval(secs => $4 + i * 7919 % $3) AS ts \
           FROM generate_series($1::bigint, $2::bigint) AS i) AS numbered";

/// $1, $2: first and last number; $3: spread and $4: minimum age of the
/// eligible jobs, $5: spread of the live ones, in seconds.
const POSTGRES_LOADED: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT 'loaded-' || lpad(i::text, 8, '0'), CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, state, false, \
       ts - interval '10 days', ts, ts \
     FROM (SELECT i, \
             CASE WHEN i % 25 = 0 THEN 'Transferring' WHEN i % 10 = 1 THEN 'Closed' ELSE 'Completed' END AS state, \
             CASE WHEN i % 25 = 0 THEN now() - make_interval(secs => i * 7919 % $5) \
               ELSE now() - make_interval(secs => $4 + i * 7919 % $3) END AS ts \
           FROM generate_series($1::bigint, $2::bigint) AS i) AS numbered";

/// MariaDB's: `{numbers}`, the sequence table of the chunk; ? the spread.
const MARIADB_IDLE: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT CONCAT('idle-', LPAD(seq, 8, '0')), IF(seq % 2 = 0, 'Import', 'Export'), \
       ELT(seq % 7 + 1, 'Creating', 'Shipping', 'Received', 'Transferring', 'Packaging', 'Completed', 'Closed'), \
       FALSE, ts, ts, ts \
     FROM (SELECT seq, UTC_TIMESTAMP(6) - INTERVAL (seq * 7919 % ?) SECOND AS ts FROM {numbers}) AS numbered";

/// MariaDB's: `{numbers}`, the sequence table of the chunk; ? the minimum age, ? the spread.
const MARIADB_BACKLOG: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT CONCAT('backlog-', LPAD(seq, 8, '0')), IF(seq % 2 = 0, 'Import', 'Export'), 'Completed', FALSE, \
       ts - INTERVAL 10 DAY, ts, ts \
     FROM (SELECT seq, UTC_TIMESTAMP(6) - INTERVAL (? + seq * 7919 % ?) SECOND AS ts FROM {numbers}) AS numbered";

/// Seconds in 30 days: live jobs of the loaded store changed up to this long ago.
const LOADED_LIVE_SPREAD_S: i64 = 30 * 86_400;

/// Two drives for every job with an id above ?1 / $1 (the jobs of the chunk just written).
const SQLITE_TWO_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, drive.id, 'ShippedBack', 0 FROM jobs \
     CROSS JOIN (SELECT 'BACKLOG1' AS id UNION ALL SELECT 'BACKLOG2') AS drive WHERE jobs.id > ?1";
const POSTGRES_TWO_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, drive.id, 'ShippedBack', 0 FROM jobs \
     CROSS JOIN (SELECT 'BACKLOG1' AS id UNION ALL SELECT 'BACKLOG2') AS drive WHERE jobs.id > $1";
const MARIADB_TWO_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, drive.id, 'ShippedBack', 0 FROM jobs \
     CROSS JOIN (SELECT 'BACKLOG1' AS id UNION ALL SELECT 'BACKLOG2') AS drive WHERE jobs.id > ?";

/// A store of `jobs` jobs of which none is eligible.
pub async fn idle_store(stores: &mut Stores, jobs: u64) -> Result<BenchStore> {
    let store = stores.empty(&format!("idle_{jobs}")).await?;
    build(&store, jobs, Kind::Idle).await?;
    Ok(store)
}

/// A store of `jobs` jobs, all eligible, read like the seed for the checks.
pub async fn backlog_store(stores: &mut Stores, jobs: u64) -> Result<Seeded> {
    let store = stores.empty("backlog_seed").await?;
    build(&store, jobs, Kind::Backlog).await?;
    Seeded::read(store).await
}

/// PostgreSQL: a store of `jobs` jobs, 96 % eligible, left as the load
/// left it (neither vacuumed nor analysed).
pub async fn loaded_store(stores: &mut Stores, jobs: u64, variant: &str) -> Result<BenchStore> {
    let store = stores.empty(variant).await?;
    build(&store, jobs, Kind::Loaded).await?;
    Ok(store)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Idle,
    Backlog,
    Loaded,
}

async fn build(store: &BenchStore, jobs: u64, kind: Kind) -> Result<()> {
    super::cli::run(&store.url, &["migrate"]).await?;
    let mut conn = store.connect().await?;
    let mut first = 1;
    while first <= jobs {
        let last = (first + CHUNK - 1).min(jobs);
        insert_chunk(&mut conn, kind, first, last)
            .await
            .with_context(|| format!("inserting jobs {first} to {last} into the {} store", store.variant))?;
        if last < jobs {
            super::progress(format!("{}: {} jobs of {jobs} written", store.backend().name(), last));
        }
        first = last + 1;
    }
    if kind != Kind::Loaded {
        conn.settle().await?;
    }
    conn.close().await
}

/// Jobs `first` to `last` in one transaction, with their drives unless idle.
async fn insert_chunk(conn: &mut Conn, kind: Kind, first: u64, last: u64) -> Result<()> {
    let (first, last) = (first as i64, last as i64);
    match conn {
        Conn::Sqlite(conn) => {
            let mut transaction = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await?;
            let before: i64 =
                sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM jobs").fetch_one(&mut *transaction).await?;
            let now = Utc::now().timestamp_micros();
            let jobs = match kind {
                Kind::Idle => sqlx::query(SQLITE_IDLE).bind(first).bind(last).bind(now).bind(IDLE_SPREAD_S),
                Kind::Backlog => sqlx::query(SQLITE_BACKLOG)
                    .bind(first)
                    .bind(last)
                    .bind(now)
                    .bind(BACKLOG_SPREAD_S)
                    .bind(BACKLOG_MIN_AGE_S),
                Kind::Loaded => return Err("the loaded store is PostgreSQL only".into()),
            };
            jobs.execute(&mut *transaction).await?;
            if kind == Kind::Backlog {
                sqlx::query(SQLITE_TWO_DRIVES).bind(before).execute(&mut *transaction).await?;
            }
            Ok(transaction.commit().await?)
        }
        Conn::Postgres(conn) => {
            let mut transaction = sqlx::Connection::begin(conn).await?;
            let before: i64 =
                sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM jobs").fetch_one(&mut *transaction).await?;
            let jobs = match kind {
                Kind::Idle => sqlx::query(POSTGRES_IDLE).bind(first).bind(last).bind(IDLE_SPREAD_S),
                Kind::Backlog => {
                    sqlx::query(POSTGRES_BACKLOG).bind(first).bind(last).bind(BACKLOG_SPREAD_S).bind(BACKLOG_MIN_AGE_S)
                }
                Kind::Loaded => sqlx::query(POSTGRES_LOADED)
                    .bind(first)
                    .bind(last)
                    .bind(BACKLOG_SPREAD_S)
                    .bind(BACKLOG_MIN_AGE_S)
                    .bind(LOADED_LIVE_SPREAD_S),
            };
            jobs.execute(&mut *transaction).await?;
            if kind != Kind::Idle {
                sqlx::query(POSTGRES_TWO_DRIVES).bind(before).execute(&mut *transaction).await?;
            }
            Ok(transaction.commit().await?)
        }
        Conn::MariaDb(conn) => {
            let mut transaction = sqlx::Connection::begin(conn).await?;
            let before: i64 =
                sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM jobs").fetch_one(&mut *transaction).await?;
            let numbers = format!("seq_{first}_to_{last}");
            let jobs = match kind {
                Kind::Idle => MARIADB_IDLE.replace("{numbers}", &numbers),
                Kind::Backlog => MARIADB_BACKLOG.replace("{numbers}", &numbers),
                Kind::Loaded => return Err("the loaded store is PostgreSQL only".into()),
            };
            let jobs = sqlx::query(sqlx::AssertSqlSafe(jobs));
            let jobs = match kind {
                Kind::Idle => jobs.bind(IDLE_SPREAD_S),
                _ => jobs.bind(BACKLOG_MIN_AGE_S).bind(BACKLOG_SPREAD_S),
            };
            jobs.execute(&mut *transaction).await?;
            if kind == Kind::Backlog {
                sqlx::query(MARIADB_TWO_DRIVES).bind(before).execute(&mut *transaction).await?;
            }
            Ok(transaction.commit().await?)
        }
    }
}
