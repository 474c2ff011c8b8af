//! The benchmark's store before migration 0008: a fresh one (`Stores` of
//! the purge benchmark: a SQLite file in a temporary directory, or a
//! database of its own on the server) migrated up to 0007 by the product's
//! migrator (`Engine::migrator`), stopped there (how the product applies them on
//! SQLite and PostgreSQL; on MariaDB the product runs each statement
//! itself, which leaves the same schema and the same `_sqlx_migrations`
//! rows), then filled by set-based SQL in chunks: mostly `Completed` jobs,
//! some `Closed`, `Creating` and in flight, a few held, both types, ages
//! spread over a year, one or two drives each; then analysed.

use sqlx::{AssertSqlSafe, Connection};

use super::error::{Context, Result};
use super::stores::{BenchStore, Conn, Location, sqlite_options};

/// The last migration applied before the one measured.
const BEFORE_MEASURED: i64 = 7;

/// Jobs per INSERT statement (and transaction).
const CHUNK: u64 = 250_000;

/// Seconds in a year: jobs entered their state up to this long ago.
const AGE_SPREAD_S: i64 = 365 * 86_400;

/// A job's type, state and hold from its number `i`, the same on every
/// engine: of every 100 jobs 80 `Completed`, 10 `Closed`, 4 `Creating` and
/// 6 in flight; one in 1,000 held.
macro_rules! job_shape {
    () => {
        "CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, \
         CASE WHEN i % 100 < 80 THEN 'Completed' WHEN i % 100 < 90 THEN 'Closed' \
              WHEN i % 100 < 94 THEN 'Creating' WHEN i % 100 < 96 THEN 'Shipping' \
              WHEN i % 100 < 97 THEN 'Received' WHEN i % 100 < 99 THEN 'Transferring' ELSE 'Packaging' END, \
         CASE WHEN i % 1000 = 1 THEN 'benchmark hold' END"
    };
}

/// One drive for every job with an id above the bound, a second one for
/// every other job: the jobs of the chunk just written.
macro_rules! drives {
    ($bound:literal) => {
        concat!(
            "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
             SELECT jobs.id, drive.id, 'Completed', jobs.id * 1000 FROM jobs \
             CROSS JOIN (SELECT 'DRIVE001' AS id UNION ALL SELECT 'DRIVE002') AS drive \
             WHERE jobs.id > ",
            $bound,
            " AND (drive.id = 'DRIVE001' OR jobs.id % 2 = 0)"
        )
    };
}

/// ?1, ?2: first and last number; ?3: now in microseconds; ?4: spread of
/// the ages in seconds. The multiplier (a prime) scatters the ages, so age
/// order is not id order.
const SQLITE_JOBS: &str = concat!(
    "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
     INSERT INTO jobs (name, job_type, state, hold_reason, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT printf('job-%08d', i), ",
    job_shape!(),
    ", 0, ts - 864000000000, ts, ts FROM (SELECT i, ?3 - (i * 7919 % ?4) * 1000000 AS ts FROM n)"
);

/// $1, $2: first and last number; $3: spread of the ages in seconds.
const POSTGRES_JOBS: &str = concat!(
    "INSERT INTO jobs (name, job_type, state, hold_reason, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT 'job-' || lpad(i::text, 8, '0'), ",
    job_shape!(),
    ", false, ts - interval '10 days', ts, ts \
     FROM (SELECT i, now() - make_interval(secs => i * 7919 % $3) AS ts \
           FROM generate_series($1::bigint, $2::bigint) AS i) AS numbered"
);

/// `{numbers}`: the sequence table of the chunk; ?: spread of the ages in seconds.
const MARIADB_JOBS: &str = concat!(
    "INSERT INTO jobs (name, job_type, state, hold_reason, cancel_requested, created_at, updated_at, \
       state_changed_at) \
     SELECT CONCAT('job-', LPAD(i, 8, '0')), ",
    job_shape!(),
    ", FALSE, ts - INTERVAL 10 DAY, ts, ts \
     FROM (SELECT seq AS i, UTC_TIMESTAMP(6) - INTERVAL (seq * 7919 % ?) SECOND AS ts FROM {numbers}) AS numbered"
);

const SQLITE_DRIVES: &str = drives!("?1");
const POSTGRES_DRIVES: &str = drives!("$1");
const MARIADB_DRIVES: &str = drives!("?");

const MAX_ID: &str = "SELECT coalesce(max(id), 0) FROM jobs";
const COUNT_JOBS: &str = "SELECT count(*) FROM jobs";
const LATEST_VERSION: &str = "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success";

/// Applies the migrations up to and including 0007 to the empty `store`,
/// and checks that 0008 is still to come.
pub async fn migrate_before_0008(store: &BenchStore) -> Result<()> {
    let context = "migrating up to 0007";
    let conn = match &store.location {
        // The file does not exist yet: this makes it.
        Location::Sqlite(path) => Conn::Sqlite(
            sqlx::SqliteConnection::connect_with(&sqlite_options(path).create_if_missing(true))
                .await
                .context("cannot create the SQLite store")?,
        ),
        _ => store.connect().await?,
    };
    let migrator = store.backend().migrator();
    let mut conn = match conn {
        Conn::Sqlite(mut conn) => {
            migrator.run_to(BEFORE_MEASURED, &mut conn).await.context(context)?;
            Conn::Sqlite(conn)
        }
        Conn::Postgres(mut conn) => {
            migrator.run_to(BEFORE_MEASURED, &mut conn).await.context(context)?;
            Conn::Postgres(conn)
        }
        Conn::MariaDb(mut conn) => {
            migrator.run_to(BEFORE_MEASURED, &mut conn).await.context(context)?;
            Conn::MariaDb(conn)
        }
    };
    let version = conn.count(LATEST_VERSION).await?;
    conn.close().await?;
    if version != BEFORE_MEASURED as u64 {
        return Err(format!("the store is at version {version} after migrating up to {BEFORE_MEASURED}").into());
    }
    Ok(())
}

/// Writes `jobs` jobs with their drives, then leaves the store as one in
/// use would be: statistics fresh, the write-ahead log written back.
pub async fn fill(store: &BenchStore, jobs: u64) -> Result<()> {
    let mut conn = store.connect().await?;
    let mut first = 1;
    while first <= jobs {
        let last = (first + CHUNK - 1).min(jobs);
        insert_chunk(&mut conn, first as i64, last as i64)
            .await
            .with_context(|| format!("inserting jobs {first} to {last}"))?;
        first = last + 1;
    }
    if let Conn::Sqlite(conn) = &mut conn {
        sqlx::raw_sql("ANALYZE").execute(conn).await.context("ANALYZE")?;
    }
    conn.settle().await?;
    conn.close().await
}

/// Fails unless the store is at the latest migration and holds exactly `jobs` jobs.
pub async fn check(store: &BenchStore, jobs: u64) -> Result<()> {
    let latest = store.backend().migrator().iter().map(|migration| migration.version).max();
    let mut conn = store.connect().await?;
    let version = conn.count(LATEST_VERSION).await?;
    let counted = conn.count(COUNT_JOBS).await?;
    conn.close().await?;
    if Some(version as i64) != latest {
        return Err(format!("after the migration the store is at version {version}, not {latest:?}").into());
    }
    if counted != jobs {
        return Err(format!("after the migration the store holds {counted} jobs, not {jobs}").into());
    }
    Ok(())
}

/// Jobs `first` to `last` and their drives, in one transaction.
async fn insert_chunk(conn: &mut Conn, first: i64, last: i64) -> std::result::Result<(), sqlx::Error> {
    match conn {
        Conn::Sqlite(conn) => {
            let mut transaction = conn.begin_with("BEGIN IMMEDIATE").await?;
            let before: i64 = sqlx::query_scalar(MAX_ID).fetch_one(&mut *transaction).await?;
            let now = chrono::Utc::now().timestamp_micros();
            sqlx::query(SQLITE_JOBS)
                .bind(first)
                .bind(last)
                .bind(now)
                .bind(AGE_SPREAD_S)
                .execute(&mut *transaction)
                .await?;
            sqlx::query(SQLITE_DRIVES).bind(before).execute(&mut *transaction).await?;
            transaction.commit().await
        }
        Conn::Postgres(conn) => {
            let mut transaction = conn.begin().await?;
            let before: i64 = sqlx::query_scalar(MAX_ID).fetch_one(&mut *transaction).await?;
            sqlx::query(POSTGRES_JOBS).bind(first).bind(last).bind(AGE_SPREAD_S).execute(&mut *transaction).await?;
            sqlx::query(POSTGRES_DRIVES).bind(before).execute(&mut *transaction).await?;
            transaction.commit().await
        }
        Conn::MariaDb(conn) => {
            let mut transaction = conn.begin().await?;
            let before: i64 = sqlx::query_scalar(MAX_ID).fetch_one(&mut *transaction).await?;
            let jobs = MARIADB_JOBS.replace("{numbers}", &format!("seq_{first}_to_{last}"));
            sqlx::query(AssertSqlSafe(jobs)).bind(AGE_SPREAD_S).execute(&mut *transaction).await?;
            sqlx::query(MARIADB_DRIVES).bind(before).execute(&mut *transaction).await?;
            transaction.commit().await
        }
    }
}
