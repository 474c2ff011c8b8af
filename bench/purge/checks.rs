//! What every deleting variant must have done, checked on its store after
//! its purge: nothing eligible left at its cut-off, exactly the jobs that
//! were eligible on the seed at that cut-off deleted, one audit row per
//! deleted job, and no other job lost. A throughput figure from a purge that
//! deleted the wrong jobs would be worthless, so the report shows these and
//! the benchmark warns when one fails.

use super::Purged;
use super::eligible::eligible;
use super::error::{Context, Result};
use super::seed::Seeded;
use super::stores::{BenchStore, Conn};

const SQLITE_ELIGIBLE_LEFT: &str = concat!("SELECT count(*) FROM jobs WHERE ", eligible!("?1"));
const POSTGRES_ELIGIBLE_LEFT: &str = concat!("SELECT count(*) FROM jobs WHERE ", eligible!("$1"));
const MARIADB_ELIGIBLE_LEFT: &str = concat!("SELECT count(*) FROM jobs WHERE ", eligible!("?"));

/// The counts behind the checks of one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// Jobs in the store before the purge.
    pub seeded: u64,
    /// Jobs of the seed eligible at the variant's cut-off: what it had to delete.
    pub expected: u64,
    /// What the variant says it deleted.
    pub deleted: u64,
    pub audit_rows: u64,
    /// Jobs still eligible at the variant's cut-off.
    pub eligible_left: u64,
    pub jobs_left: u64,
    /// Jobs the concurrent writer added meanwhile (never eligible).
    pub inserted: u64,
}

impl Checks {
    /// Counts on `store` after a purge that did `purged`.
    pub async fn verify(store: &BenchStore, seeded: &Seeded, purged: &Purged, inserted: u64) -> Result<Checks> {
        let mut conn = store.connect().await?;
        let eligible_left: i64 = match &mut conn {
            Conn::Sqlite(conn) => {
                sqlx::query_scalar(SQLITE_ELIGIBLE_LEFT).bind(purged.cutoff.timestamp_micros()).fetch_one(conn).await
            }
            Conn::Postgres(conn) => {
                sqlx::query_scalar(POSTGRES_ELIGIBLE_LEFT).bind(purged.cutoff).fetch_one(conn).await
            }
            Conn::MariaDb(conn) => {
                sqlx::query_scalar(MARIADB_ELIGIBLE_LEFT).bind(purged.cutoff.naive_utc()).fetch_one(conn).await
            }
        }
        .with_context(|| format!("counting the eligible jobs left in the {} store", store.variant))?;
        let checks = Checks {
            seeded: seeded.jobs,
            expected: seeded.eligible_at(purged.cutoff),
            deleted: purged.deleted,
            audit_rows: conn.count("SELECT count(*) FROM retention_audit").await?,
            eligible_left: eligible_left.max(0) as u64,
            jobs_left: conn.count("SELECT count(*) FROM jobs").await?,
            inserted,
        };
        conn.close().await?;
        Ok(checks)
    }

    /// Each check that failed, in words; empty when all hold.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.eligible_left != 0 {
            problems.push(format!("{} eligible jobs were left", self.eligible_left));
        }
        if self.deleted != self.expected {
            problems.push(format!("deleted {} jobs where {} were eligible", self.deleted, self.expected));
        }
        if self.audit_rows != self.deleted {
            problems.push(format!("wrote {} audit rows for {} deleted jobs", self.audit_rows, self.deleted));
        }
        if self.jobs_left + self.deleted != self.seeded + self.inserted {
            problems.push(format!(
                "{} jobs left + {} deleted != {} seeded + {} written meanwhile",
                self.jobs_left, self.deleted, self.seeded, self.inserted
            ));
        }
        problems
    }

    pub fn hold(&self) -> bool {
        self.problems().is_empty()
    }
}
