//! The PostgreSQL store purged without planner statistics: jobs loaded and
//! purged straight away, before anything analysed the table. With no
//! statistics a prepared statement's generic plan can look cheaper than it
//! is, and PostgreSQL switches to it after five executions; a purge whose
//! statements depend on the planner's guesses falls off a cliff there
//! (docs/design.md, "A sweep": no statement's speed may depend on them).
//!
//! The statistics must be truly absent. A copy made with `CREATE DATABASE …
//! TEMPLATE` carries the template's `pg_statistic`, and the benchmark's
//! copies are analysed on purpose, so each deletion gets a store built fresh
//! by the same deterministic load (`synthetic::loaded_store`), never
//! vacuumed nor analysed. Right before it deletes, [`ensure_absent`] fails
//! the run if `pg_statistic` holds a row for `jobs` (autovacuum's analyse
//! would put them there).

use sqlx::Connection;

use super::error::{Context, Result};
use super::seed::Seeded;
use super::stores::{BenchStore, Conn, Stores};
use super::synthetic;

const STATISTICS_OF_JOBS: &str =
    "SELECT count(*) FROM pg_statistic AS s JOIN pg_class AS c ON c.oid = s.starelid WHERE c.relname = 'jobs'";

/// A freshly loaded store of `jobs` jobs for `variant`, read for the checks, without statistics.
pub async fn store(stores: &mut Stores, jobs: u64, variant: &str) -> Result<Seeded> {
    let store = synthetic::loaded_store(stores, jobs, variant).await?;
    checkpoint(&store).await?;
    Seeded::read(store).await
}

/// Fails unless `pg_statistic` is empty for the store's `jobs` table.
pub async fn ensure_absent(store: &BenchStore) -> Result<()> {
    let mut conn = store.connect().await?;
    let rows = conn.count(STATISTICS_OF_JOBS).await?;
    conn.close().await?;
    if rows != 0 {
        return Err(format!(
            "the {} store was to have no planner statistics, but pg_statistic holds {rows} rows for jobs \
             (is autovacuum on?)",
            store.variant
        )
        .into());
    }
    Ok(())
}

/// Writes the load out now, so its write-out does not land in the
/// measurement (as after a copy). Only a superuser (or `pg_checkpoint`) may;
/// without it the measurement is merely noisier.
async fn checkpoint(store: &BenchStore) -> Result<()> {
    let Conn::Postgres(mut conn) = store.connect().await? else {
        return Err("the store without statistics is PostgreSQL only".into());
    };
    if let Err(error) = sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await {
        super::progress(format!("postgres: CHECKPOINT after loading refused ({error}); continuing"));
    }
    conn.close().await.context("closing a connection")
}
