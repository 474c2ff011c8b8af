//! The store every deleting variant starts from. `retentiond jobs seed` fills
//! it once (about 30 % of the jobs eligible, 1–10 drives each); it is then
//! settled ([`Conn::settle`]) for copying, and read once for what the checks need: how many
//! jobs it holds and the age of every job that can become eligible. The ages
//! let the checks count the jobs eligible at any variant's cut-off without
//! touching the seed again: a variant that runs later sees a later "now",
//! and jobs that cross the 90-day line in between are eligible for it.

use chrono::{DateTime, Utc};

use super::eligible;
use super::error::{Context, Result};
use super::stores::{BenchStore, Conn, Stores};

/// Finished jobs without a hold: eligible once their `state_changed_at` is old enough.
/// The same text on every backend; SQLite returns microseconds, PostgreSQL
/// timestamptz, MariaDB a DATETIME in UTC.
const FINISHED_AGES: &str =
    "SELECT state_changed_at FROM jobs WHERE state IN ('Completed', 'Closed') AND hold_reason IS NULL";

/// A store and what the checks know about its jobs before any deletion.
pub struct Seeded {
    pub store: BenchStore,
    pub jobs: u64,
    /// Jobs eligible when it was read.
    pub eligible_then: u64,
    /// `state_changed_at` of every finished job without a hold, in
    /// microseconds since the epoch, sorted.
    finished_ages: Vec<i64>,
}

/// Seeds a new store with `jobs` jobs through `retentiond jobs seed`.
pub async fn seed(stores: &mut Stores, jobs: u64) -> Result<Seeded> {
    let store = stores.empty("seed").await?;
    let count = jobs.to_string();
    super::cli::run(&store.url, &["jobs", "seed", "--count", &count, "--seed", "1", "--prefix", "seed"]).await?;
    let mut conn = store.connect().await?;
    conn.settle().await.context("settling the seeded store")?;
    conn.close().await?;
    Seeded::read(store).await
}

impl Seeded {
    /// Counts the jobs of `store` and reads the ages of its finished jobs.
    /// Leaves no connection open, so the store can be copied.
    pub async fn read(store: BenchStore) -> Result<Seeded> {
        let mut conn = store.connect().await?;
        let jobs = conn.count("SELECT count(*) FROM jobs").await?;
        let mut finished_ages: Vec<i64> = match &mut conn {
            Conn::Sqlite(conn) => sqlx::query_scalar(FINISHED_AGES).fetch_all(conn).await,
            Conn::Postgres(conn) => sqlx::query_scalar(FINISHED_AGES)
                .fetch_all(conn)
                .await
                .map(|ages: Vec<DateTime<Utc>>| ages.iter().map(DateTime::timestamp_micros).collect()),
            Conn::MariaDb(conn) => {
                sqlx::query_scalar(FINISHED_AGES).fetch_all(conn).await.map(|ages: Vec<chrono::NaiveDateTime>| {
                    ages.iter().map(|age| age.and_utc().timestamp_micros()).collect()
                })
            }
        }
        .with_context(|| format!("reading the ages of the finished jobs of the {} store", store.variant))?;
        conn.close().await?;
        finished_ages.sort_unstable();
        let mut seeded = Seeded { store, jobs, eligible_then: 0, finished_ages };
        seeded.eligible_then = seeded.eligible_at(eligible::cutoff(Utc::now())?);
        Ok(seeded)
    }

    /// How many of its jobs are eligible at `cutoff`.
    pub fn eligible_at(&self, cutoff: DateTime<Utc>) -> u64 {
        let cutoff = cutoff.timestamp_micros();
        self.finished_ages.partition_point(|&age| age <= cutoff) as u64
    }
}
