//! The shuffled store: the seeded store's jobs and drives, identical in
//! every column but the id, rewritten in a scrambled order so a job's id
//! (and its place in the table) says nothing about its age. The seeded store
//! is written in creation order, so its eligible jobs lie together at the
//! start of the table; here they are spread over every page, as in a store
//! filled by an import or a merge. Same jobs, so the same eligible share.
//!
//! The order is `id × 2654435761 mod 4294967291` (a multiplier coprime with
//! a prime modulus: a permutation of the ids, the same on every run). The
//! rewrite happens in a copy of the seed, in one transaction: jobs and
//! drives into temporary tables, the tables emptied, the jobs inserted back
//! in the scrambled order (new ids follow it) and the drives after them,
//! found by job name. The store is then settled like any other; on SQLite a
//! `VACUUM` first gives the file the compact layout of a freshly written one.

use super::error::{Context, Result};
use super::seed::Seeded;
use super::stores::{BenchStore, Conn, Stores};

macro_rules! rewrite {
    ($key:literal, $empty:literal) => {
        concat!(
            "CREATE TEMPORARY TABLE original_jobs ",
            $key,
            " AS SELECT * FROM jobs; \
             CREATE TEMPORARY TABLE original_drives AS SELECT * FROM job_drives; ",
            $empty,
            " INSERT INTO jobs (name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, \
               created_at, updated_at, state_changed_at) \
             SELECT name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, created_at, \
               updated_at, state_changed_at \
             FROM original_jobs ORDER BY (id * 2654435761) % 4294967291; \
             INSERT INTO job_drives (job_id, drive_id, state, bytes) \
             SELECT jobs.id, drive.drive_id, drive.state, drive.bytes FROM original_drives AS drive \
             JOIN original_jobs AS original ON original.id = drive.job_id JOIN jobs ON jobs.name = original.name \
             ORDER BY jobs.id, drive.drive_id; \
             DROP TABLE original_jobs; DROP TABLE original_drives;"
        )
    };
}

/// SQLite: foreign keys off for the rewrite (the connection's own setting), so emptying `jobs` checks no drives.
const SQLITE_REWRITE: &str =
    concat!("BEGIN IMMEDIATE; ", rewrite!("", "DELETE FROM job_drives; DELETE FROM jobs;"), " COMMIT;");
const POSTGRES_REWRITE: &str = concat!("BEGIN; ", rewrite!("", "TRUNCATE job_drives, jobs;"), " COMMIT;");
/// MariaDB: the copied jobs keyed by id (its joins neither hash nor index on
/// the fly), foreign keys unchecked so `jobs` can be emptied, by `TRUNCATE`
/// (it commits on its own: the rewrite is not one transaction here).
const MARIADB_REWRITE: &str = concat!(
    "SET SESSION foreign_key_checks = 0; ",
    rewrite!("(PRIMARY KEY (id))", "TRUNCATE job_drives; TRUNCATE jobs; BEGIN;"),
    " COMMIT; SET SESSION foreign_key_checks = 1;"
);

/// A copy of the seeded store with its jobs rewritten in scrambled order, settled and read for the checks.
pub async fn shuffled_store(stores: &mut Stores, seeded: &Seeded) -> Result<Seeded> {
    let store = stores.copy(&seeded.store, "shuffled_seed").await?;
    rewrite(&store).await.with_context(|| format!("shuffling the jobs of the {} store", store.variant))?;
    Seeded::read(store).await
}

async fn rewrite(store: &BenchStore) -> Result<()> {
    let mut conn = store.connect().await?;
    match &mut conn {
        Conn::Sqlite(conn) => {
            sqlx::raw_sql("PRAGMA foreign_keys = OFF").execute(&mut *conn).await.context("foreign keys off")?;
            sqlx::raw_sql(SQLITE_REWRITE).execute(&mut *conn).await.context("the rewrite")?;
            sqlx::raw_sql("VACUUM").execute(&mut *conn).await.context("VACUUM")?;
        }
        Conn::Postgres(conn) => {
            sqlx::raw_sql(POSTGRES_REWRITE).execute(conn).await.context("the rewrite")?;
        }
        Conn::MariaDb(conn) => {
            sqlx::raw_sql(MARIADB_REWRITE).execute(conn).await.context("the rewrite")?;
        }
    }
    conn.settle().await?;
    conn.close().await
}
