//! The audit trail's own lifecycle (docs/design.md, "The audit trail"): after a sweep has deleted its
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
//! rescans what an earlier one passed. A batch rolled back in a deadlock is
//! tried again as a job batch is (src/sweep/deadlocks.rs).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::deadlocks::Deadlocks;
use super::{Limits, StoppedBy, SweepPlan, settle};
use crate::batch::BatchSizer;
use crate::metrics;
use crate::model::Removed;
use crate::policy::{cutoff, start_of_time};
use crate::store::{AuditRemoval, RunRemoval, Store, StoreError, TrailKey};

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

/// Before every row at `at`.
fn key_before(at: DateTime<Utc>) -> TrailKey {
    TrailKey { at, id: i64::MIN }
}

/// After every row at `at`.
fn key_after(at: DateTime<Utc>) -> TrailKey {
    TrailKey { at, id: i64::MAX }
}

/// The first batch of run records to remove, with `runs` the cut-off of `retention.runs`.
fn run_removal(cutoffs: &TrailCutoffs, runs: DateTime<Utc>) -> RunRemoval {
    // With retention.audit off, no run that deleted jobs ever loses its
    // audit rows: the first walk is empty (nothing finished in year 1).
    let spent_cutoff = cutoffs.audit.map_or(start_of_time(), |audit| audit.min(runs));
    RunRemoval {
        spent_cutoff,
        empty_cutoff: runs,
        after_spent: key_before(start_of_time()),
        // The second walk starts where the first one ends.
        after_empty: key_after(spent_cutoff),
    }
}

/// Resumes each walk of `removal` after the last run it removed.
fn advance(removal: &mut RunRemoval, removed: &[TrailKey]) {
    for &key in removed {
        if key.at <= removal.spent_cutoff {
            removal.after_spent = removal.after_spent.max(key);
        } else {
            removal.after_empty = removal.after_empty.max(key);
        }
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
                advance(removal, removed_keys);
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
        phases.push(Phase::AuditRows(AuditRemoval { cutoff, after: key_before(start_of_time()) }));
    }
    if let Some(runs) = cutoffs.runs {
        phases.push(Phase::RunRecords(run_removal(cutoffs, runs)));
    }
    if !phases.is_empty() {
        store.commit_run_start(run_id).await?;
    }
    for mut phase in phases {
        let mut sizer = BatchSizer::new(plan.batch_size, plan.batch_budget);
        let mut deadlocks = Deadlocks::default();
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
                Err(StoreError::Deadlock(error)) if deadlocks.may_retry() => {
                    // The batch rolled back whole; its cursor did not move.
                    tracing::warn!(run_id, rows = limit, %error, "trail batch rolled back in a deadlock; retrying it");
                    deadlocks.pause().await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            deadlocks.committed();
            let committed = Instant::now();
            // Timed with its commit: the trail's removals do not report it apart.
            sizer.record(removed_keys.len(), committed - batch_started, Duration::ZERO);
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
        let removal = run_removal(&TrailCutoffs { audit: Some(audit), runs: Some(runs) }, runs);
        assert_eq!(removal.spent_cutoff, audit, "runs younger than the audit limit keep their audit rows");
        assert_eq!(removal.after_empty, key_after(audit));

        let removal = run_removal(&TrailCutoffs { audit: Some(runs), runs: Some(audit) }, audit);
        assert_eq!(removal.spent_cutoff, audit, "audit rows kept shorter than runs: one walk");
        assert!(removal.after_empty.at >= removal.empty_cutoff, "the second walk is empty");

        let removal = run_removal(&TrailCutoffs { audit: None, runs: Some(runs) }, runs);
        assert_eq!(removal.spent_cutoff, start_of_time(), "audit off: only runs that deleted nothing go");
    }

    #[test]
    fn each_run_walk_resumes_after_its_own_last_key() {
        let (audit, runs) = (at("2026-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"));
        let mut removal = run_removal(&TrailCutoffs { audit: Some(audit), runs: Some(runs) }, runs);
        let spent = TrailKey { at: at("2025-12-01T00:00:00Z"), id: 7 };
        let empty = TrailKey { at: at("2026-02-01T00:00:00Z"), id: 3 };
        advance(&mut removal, &[empty, spent]);
        assert_eq!((removal.after_spent, removal.after_empty), (spent, empty));
        advance(&mut removal, &[TrailKey { at: at("2025-11-01T00:00:00Z"), id: 9 }]);
        assert_eq!(removal.after_spent, spent, "a walk never goes back");
    }
}
