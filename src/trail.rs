//! The audit trail's own lifecycle (SPEC §11): after a sweep has deleted its
//! jobs, it removes the audit rows older than `retention.audit` and the run
//! records older than `retention.runs`, in short batches like the jobs.
//!
//! The rules (both off by default: kept forever):
//! - An audit row goes when its `deleted_at` lies at or before
//!   `now - retention.audit` and it was written by `jobs delete` (no run) or
//!   by a run that finished at or before that cut-off. The rows of a run
//!   still `running`, or of a run that finished after the cut-off, stay: a
//!   run's trail goes whole, once the whole run is old enough.
//! - A run record goes when it is not `running`, finished at or before
//!   `now - retention.runs`, and no audit row names it. A run that deleted
//!   jobs therefore stays as long as its audit rows do (with
//!   `retention.audit = off`, forever); a run that deleted nothing goes at
//!   `retention.runs`.
//!
//! "Now" is the database's clock at the sweep's start, as for the jobs.
//! Each batch is one transaction; the removal stops at the sweep's
//! `run_timeout`, at the end of its window and on shutdown like the job
//! deletions (src/sweep/limits.rs), pauses between batches as they do, and
//! resumes each index walk after the last key it removed, so no batch
//! rescans what an earlier one passed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::batch::BatchSizer;
use crate::metrics;
use crate::policy::{cutoff, start_of_time};
use crate::store::{Store, StoreError};
use crate::sweep::{Limits, StoppedBy, SweepPlan, settle};

/// `retention.audit` and `retention.runs`; `None` keeps them forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrailRetentions {
    pub audit: Option<Duration>,
    pub runs: Option<Duration>,
}

/// The newest audit rows and run records a sweep removes; `None`: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrailCutoffs {
    pub audit: Option<DateTime<Utc>>,
    pub runs: Option<DateTime<Utc>>,
}

/// The cut-offs at `now`, computed as the job policies' are.
pub fn cutoffs(retentions: &TrailRetentions, now: DateTime<Utc>) -> TrailCutoffs {
    TrailCutoffs {
        audit: retentions.audit.map(|retention| cutoff(retention, now)),
        runs: retentions.runs.map(|retention| cutoff(retention, now)),
    }
}

/// A position in a removal order: an audit row's `deleted_at` or a run's
/// `finished_at`, ties broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrailKey {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl TrailKey {
    /// Before every row at `at`.
    fn before(at: DateTime<Utc>) -> TrailKey {
        TrailKey { at, id: i64::MIN }
    }

    /// After every row at `at`.
    fn after(at: DateTime<Utc>) -> TrailKey {
        TrailKey { at, id: i64::MAX }
    }
}

/// One batch of audit rows to remove: those past `cutoff` (with the run
/// rule above), after `after` in (deleted_at, id) order.
#[derive(Debug, Clone, Copy)]
pub struct AuditRemoval {
    pub cutoff: DateTime<Utc>,
    pub after: TrailKey,
}

/// One batch of run records to remove, from two walks in (finished_at, id)
/// order: runs finished at or before `spent_cutoff` (both limits passed, so
/// their audit rows are gone too), after `after_spent`; and runs that deleted
/// nothing, finished after `spent_cutoff` and at or before `empty_cutoff`,
/// after `after_empty`. Either way only runs that no audit row names.
#[derive(Debug, Clone, Copy)]
pub struct RunRemoval {
    pub spent_cutoff: DateTime<Utc>,
    pub empty_cutoff: DateTime<Utc>,
    pub after_spent: TrailKey,
    pub after_empty: TrailKey,
}

impl RunRemoval {
    fn new(cutoffs: &TrailCutoffs, runs: DateTime<Utc>) -> RunRemoval {
        // With retention.audit off, no run that deleted jobs ever loses its
        // audit rows: the first walk is empty (nothing finished in year 1).
        let spent_cutoff = cutoffs.audit.map_or(start_of_time(), |audit| audit.min(runs));
        RunRemoval {
            spent_cutoff,
            empty_cutoff: runs,
            after_spent: TrailKey::before(start_of_time()),
            // The second walk starts where the first one ends.
            after_empty: TrailKey::after(spent_cutoff),
        }
    }

    /// Resumes each walk after the last run it removed.
    fn advance(&mut self, removed: &[TrailKey]) {
        for &key in removed {
            if key.at <= self.spent_cutoff {
                self.after_spent = self.after_spent.max(key);
            } else {
                self.after_empty = self.after_empty.max(key);
            }
        }
    }
}

/// What a sweep removed of the trail, recorded in its run record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    #[serde(rename = "audit_rows_removed")]
    pub audit_rows: u64,
    #[serde(rename = "runs_removed")]
    pub runs: u64,
}

impl Removed {
    pub fn any(&self) -> bool {
        self.audit_rows > 0 || self.runs > 0
    }
}

/// One of the two removals, with where its walk stands.
enum Phase {
    AuditRows(AuditRemoval),
    RunRecords(RunRemoval),
}

impl Phase {
    async fn remove(&self, store: &dyn Store, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        match self {
            Phase::AuditRows(removal) => store.remove_audit_rows(removal, limit).await,
            Phase::RunRecords(removal) => store.remove_run_records(removal, limit).await,
        }
    }

    /// Moves the walk past what a batch removed, and counts it.
    fn take(&mut self, removed_keys: &[TrailKey], removed: &mut Removed, run_id: i64) {
        let count = removed_keys.len() as u64;
        match self {
            Phase::AuditRows(removal) => {
                if let Some(&last) = removed_keys.iter().max() {
                    removal.after = removal.after.max(last);
                }
                removed.audit_rows += count;
                metrics::audit_rows_removed(count);
                tracing::info!(run_id, audit_rows = count, total = removed.audit_rows, "audit rows removed");
            }
            Phase::RunRecords(removal) => {
                removal.advance(removed_keys);
                removed.runs += count;
                metrics::run_records_removed(count);
                tracing::info!(run_id, run_records = count, total = removed.runs, "run records removed");
            }
        }
    }
}

/// Removes what the trail's retentions let go, audit rows first (so that
/// the runs they named can go in the same sweep), counting into `removed`
/// as each batch commits. `Some` when the sweep's `limits` ended it early;
/// what was removed until then stays removed.
pub(crate) async fn remove_expired(
    store: &dyn Store,
    plan: &SweepPlan,
    cutoffs: &TrailCutoffs,
    run_id: i64,
    limits: &Limits<'_>,
    removed: &mut Removed,
) -> Result<Option<StoppedBy>, StoreError> {
    let mut phases = Vec::with_capacity(2);
    if let Some(cutoff) = cutoffs.audit {
        phases.push(Phase::AuditRows(AuditRemoval { cutoff, after: TrailKey::before(start_of_time()) }));
    }
    if let Some(runs) = cutoffs.runs {
        phases.push(Phase::RunRecords(RunRemoval::new(cutoffs, runs)));
    }
    for mut phase in phases {
        let mut sizer = BatchSizer::new(plan.batch_size, plan.batch_budget);
        loop {
            if let Err(stopped_by) = limits.before_batch().await {
                return Ok(Some(stopped_by));
            }
            let limit = sizer.size();
            let batch_started = Instant::now();
            let removed_keys = match phase.remove(store, limit).await {
                Ok(keys) => keys,
                Err(StoreError::StatementTimeout(error)) if sizer.shrink_after_timeout() => {
                    // The batch rolled back whole; a smaller one may fit.
                    tracing::warn!(run_id, rows = limit, %error, next = sizer.size(), "trail batch timed out; retrying smaller");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let committed = Instant::now();
            sizer.record(removed_keys.len(), committed - batch_started);
            let exhausted = removed_keys.len() < limit as usize;
            if !removed_keys.is_empty() {
                phase.take(&removed_keys, removed, run_id);
            }
            if exhausted {
                break;
            }
            settle(store, plan, committed, limits.stop()).await?;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn cutoffs_follow_now_and_off_stays_off() {
        let now = at("2026-11-21T12:00:00Z");
        let retentions = TrailRetentions { audit: Some(Duration::from_secs(30 * 86_400)), runs: None };
        let cutoffs = cutoffs(&retentions, now);
        assert_eq!(cutoffs.audit, Some(at("2026-10-22T12:00:00Z")));
        assert_eq!(cutoffs.runs, None);
    }

    #[test]
    fn run_walks_split_at_the_older_cutoff() {
        let (audit, runs) = (at("2026-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"));
        let removal = RunRemoval::new(&TrailCutoffs { audit: Some(audit), runs: Some(runs) }, runs);
        assert_eq!(removal.spent_cutoff, audit, "runs younger than the audit limit keep their audit rows");
        assert_eq!(removal.after_empty, TrailKey::after(audit));

        let removal = RunRemoval::new(&TrailCutoffs { audit: Some(runs), runs: Some(audit) }, audit);
        assert_eq!(removal.spent_cutoff, audit, "audit rows kept shorter than runs: one walk");
        assert!(removal.after_empty.at >= removal.empty_cutoff, "the second walk is empty");

        let removal = RunRemoval::new(&TrailCutoffs { audit: None, runs: Some(runs) }, runs);
        assert_eq!(removal.spent_cutoff, start_of_time(), "audit off: only runs that deleted nothing go");
    }

    #[test]
    fn each_run_walk_resumes_after_its_own_last_key() {
        let (audit, runs) = (at("2026-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"));
        let mut removal = RunRemoval::new(&TrailCutoffs { audit: Some(audit), runs: Some(runs) }, runs);
        let spent = TrailKey { at: at("2025-12-01T00:00:00Z"), id: 7 };
        let empty = TrailKey { at: at("2026-02-01T00:00:00Z"), id: 3 };
        removal.advance(&[empty, spent]);
        assert_eq!((removal.after_spent, removal.after_empty), (spent, empty));
        removal.advance(&[TrailKey { at: at("2025-11-01T00:00:00Z"), id: 9 }]);
        assert_eq!(removal.after_spent, spent, "a walk never goes back");
    }
}
