//! One sweep (docs/design.md, "A sweep"): delete every eligible job (under a cap, the N
//! that became eligible first), in batches of one transaction each, in id order (see
//! `pending`), with a pause for the application's writers between them
//! (`pause`), each committed batch's jobs counted, logged and measured alongside
//! (`committed`),
//! recorded in `retention_runs` from start to end.
//!
//! The sweep fixes "now" once, at its start, from the database's clock (or
//! `--as-of` in a dry run); every batch uses the same cut-offs. It stops when
//! nothing is left, at the deletion cap, or when `limits` says so before a
//! batch (the run timeout, the end of its window, `stop` cancelled); a batch
//! in flight always finishes (commits or rolls back) first.

mod committed;
mod deadlocks;
mod limits;
mod pause;
pub mod paused_now;
mod pending;
mod replica_pause;
pub mod trail;

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::batch::{BatchSize, BatchSizer};
use crate::config::RetentionSettings;
use crate::identity::ProcessIdentity;
use crate::metrics::{self, Outcome};
use crate::model::{Pauses, Removed, RunStatus};
use crate::policy::{self, Cursors, Cutoffs, PerPolicy, Retentions};
use crate::scheduler::WindowReport;
use crate::store::{Batch, BatchRequest, ClockReading, DeletedBatch, FirstIds, NewRun, RunOutcome, Store, StoreError};
use committed::{Committed, Tally};
use deadlocks::Deadlocks;
pub(crate) use limits::Limits;
use pause::settle;
use pending::PendingIds;
use trail::{TrailCutoffs, TrailRetentions};

/// What a sweep does, from the configuration and the command line.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    pub retentions: Retentions,
    pub batch_size: BatchSize,
    /// What one batch should take when `batch_size` is auto.
    pub batch_budget: Duration,
    pub batch_pause: Duration,
    /// 0 = no cap.
    pub max_deletes: u64,
    pub run_timeout: Duration,
    pub dry_run: bool,
    /// Evaluate the rules at this moment instead of now (dry run only).
    pub as_of: Option<DateTime<Utc>>,
    /// The end of the `schedule.window` the sweep runs in, on the host's
    /// clock: no batch starts at or after it. `None`: no window (or ignored).
    pub window_closes: Option<DateTime<Utc>>,
    /// No batch starts while a replica lags more (src/sweep/replica_pause.rs);
    /// `None`: the replicas are not read.
    pub max_replica_lag: Option<Duration>,
    /// Recorded in the run row: `purge` or `schedule`.
    pub trigger: &'static str,
    /// The audit rows and run records to remove after the jobs (src/trail.rs).
    pub trail: TrailRetentions,
}

impl SweepPlan {
    pub fn new(settings: &RetentionSettings, trigger: &'static str) -> SweepPlan {
        SweepPlan {
            retentions: settings.retentions(),
            batch_size: settings.batch_size,
            batch_budget: settings.batch_budget,
            batch_pause: settings.batch_pause,
            max_deletes: settings.max_deletes_per_run,
            run_timeout: settings.run_timeout,
            dry_run: false,
            as_of: None,
            window_closes: None,
            max_replica_lag: settings.max_replica_lag,
            trigger,
            trail: TrailRetentions { audit: settings.audit, runs: settings.runs },
        }
    }
}

/// Why a sweep stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoppedBy {
    /// Nothing eligible is left.
    Done,
    MaxDeletes,
    Timeout,
    Signal,
    /// The `schedule.window` it ran in closed.
    Window,
}

impl StoppedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StoppedBy::Done => "done",
            StoppedBy::MaxDeletes => "max_deletes",
            StoppedBy::Timeout => "timeout",
            StoppedBy::Signal => "signal",
            StoppedBy::Window => "window",
        }
    }
}

/// The summary of a sweep, printed by `purge` (docs/design.md, "The command line").
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub run_id: Option<i64>,
    pub dry_run: bool,
    /// The moment the rules were evaluated at.
    pub as_of: DateTime<Utc>,
    pub counts: PerPolicy<u64>,
    pub total: u64,
    pub stopped_by: StoppedBy,
    pub duration_ms: u64,
    /// Age timestamp of the oldest job deleted (or, in a dry run, that would be).
    pub oldest_eligible_at: Option<DateTime<Utc>>,
    /// Jobs kept because their timestamp lies in the future (clock skew).
    pub skipped_future: u64,
    /// Dry run only: the names of the jobs it would delete, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<String>>,
    /// What it removed of the audit trail after the jobs (`audit_rows_removed`, `runs_removed`).
    #[serde(flatten)]
    pub removed: Removed,
    /// Its pauses for the replicas (`pauses`, `paused_ms`).
    #[serde(flatten)]
    pub paused: Pauses,
    /// Where `purge` started against `schedule.window`; `None` without
    /// windows or with `--ignore-window`. Not the sweep's to fill in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowReport>,
}

/// A sweep that failed; what it committed before the failure stays committed and audited.
#[derive(Debug, thiserror::Error)]
#[error("sweep{} failed after deleting {deleted} jobs: {source}", run_id.map(|id| format!(" (run {id})")).unwrap_or_default())]
pub struct SweepError {
    pub run_id: Option<i64>,
    pub deleted: u64,
    #[source]
    pub source: StoreError,
}

impl SweepError {
    /// A failure before the sweep deleted anything.
    fn at_start(source: StoreError) -> SweepError {
        SweepError { run_id: None, deleted: 0, source }
    }
}

/// Progress of a sweep, kept across batches.
struct Progress {
    /// The jobs deleted (or listed by a dry run) per policy, once counted.
    tally: Tally,
    /// How many jobs were deleted or listed, counted as each batch ends.
    taken: u64,
    sizer: BatchSizer,
    trail: Removed,
}

impl Progress {
    fn new(plan: &SweepPlan) -> Progress {
        Progress {
            tally: Tally::default(),
            taken: 0,
            sizer: BatchSizer::new(plan.batch_size, plan.batch_budget),
            trail: Removed::default(),
        }
    }

    /// Why to stop before the next batch, if at all; otherwise the batch's size.
    async fn next_batch(&self, plan: &SweepPlan, limits: &Limits<'_>) -> Result<u32, StoppedBy> {
        limits.before_batch().await?;
        let size = self.sizer.size();
        if plan.max_deletes == 0 {
            return Ok(size);
        }
        if self.cap_reached(plan) {
            return Err(StoppedBy::MaxDeletes);
        }
        let left = plan.max_deletes - self.taken;
        Ok(size.min(u32::try_from(left).unwrap_or(u32::MAX)))
    }

    fn cap_reached(&self, plan: &SweepPlan) -> bool {
        plan.max_deletes > 0 && self.taken >= plan.max_deletes
    }

    /// Records one job a dry run listed.
    fn take(&mut self, policy: policy::Policy, key: policy::SortKey) {
        self.tally.take(policy, key);
        self.taken += 1;
    }
}

/// Runs one sweep. `stop` asks it to end after the batch in flight. A sweep
/// that deletes (not a dry run) is counted in the metrics however it ends.
pub async fn sweep(
    store: &dyn Store,
    plan: &SweepPlan,
    identity: &ProcessIdentity,
    stop: &CancellationToken,
) -> Result<SweepReport, SweepError> {
    let started = Instant::now();
    let result = run_sweep(store, plan, identity, stop).await;
    if !plan.dry_run {
        let outcome = match &result {
            Ok(report) if report.stopped_by == StoppedBy::Signal => Outcome::Interrupted,
            Ok(_) => Outcome::Succeeded,
            Err(_) => Outcome::Failed,
        };
        metrics::sweep_ended(outcome, started.elapsed());
    }
    result
}

async fn run_sweep(
    store: &dyn Store,
    plan: &SweepPlan,
    identity: &ProcessIdentity,
    stop: &CancellationToken,
) -> Result<SweepReport, SweepError> {
    let mut progress = Progress::new(plan);
    let limits = Limits::new(store, plan, stop);
    let (begun, clock) = if plan.dry_run {
        (None, store.clock_and_skew(&plan.retentions).await.map_err(SweepError::at_start)?)
    } else {
        let (begun, clock) = begin(store, plan, identity).await.map_err(SweepError::at_start)?;
        (Some(begun), clock)
    };
    let run_id = begun.as_ref().map(Begun::run_id);
    let ClockReading { now: database_now, future_jobs: skipped_future } = clock;
    // Skew is measured against the database's clock, not the --as-of moment.
    let now = plan.as_of.unwrap_or(database_now);
    let cutoffs = policy::cutoffs(&plan.retentions, now);
    let trail_cutoffs = trail::cutoffs(&plan.trail, database_now);
    if skipped_future > 0 {
        tracing::warn!(jobs = skipped_future, now = %database_now.to_rfc3339_opts(SecondsFormat::Micros, true), "jobs with a timestamp in the future are kept (clock skew?)");
    }
    let (stopped_by, jobs) = match begun {
        Some(Begun::Idle(_)) => {
            metrics::eligible_left(&PerPolicy::default(), now);
            (StoppedBy::Done, None)
        }
        Some(Begun::Running(id, first_ids)) => {
            let run = Run { id, deleted_by: identity.deleted_by() };
            let pending =
                first_ids.map_or_else(|| PendingIds::new(&cutoffs, &plan.retentions, plan.max_deletes), |ids| *ids);
            let stopped_by =
                delete_eligible(store, plan, &trail_cutoffs, pending, &mut progress, &run, &limits).await?;
            if stopped_by == StoppedBy::Window {
                tracing::info!(
                    run_id = id,
                    "schedule.window closed: the sweep stopped; the rest waits for the next window"
                );
            }
            if progress.taken > 0 || progress.trail.any() {
                release_space(store, &limits).await;
            }
            // What is left feeds the backlog gauges; not worth delaying a shutdown
            // for. A sweep that ran out of jobs left none under its cut-offs.
            match stopped_by {
                StoppedBy::Signal => {}
                StoppedBy::Done => metrics::eligible_left(&PerPolicy::default(), now),
                StoppedBy::MaxDeletes | StoppedBy::Timeout | StoppedBy::Window => {
                    match store.eligible_jobs(&cutoffs).await {
                        Ok(eligible) => metrics::eligible_left(&eligible, now),
                        Err(error) => tracing::warn!(%error, "could not count the jobs still eligible"),
                    }
                }
            }
            (stopped_by, None)
        }
        None => {
            let (stopped_by, names) =
                dry_run(store, plan, &cutoffs, &mut progress, &limits).await.map_err(SweepError::at_start)?;
            (stopped_by, Some(names))
        }
    };
    let report = SweepReport {
        run_id,
        dry_run: plan.dry_run,
        as_of: now,
        counts: progress.tally.counts,
        total: progress.tally.counts.total(),
        stopped_by,
        duration_ms: limits.elapsed().as_millis() as u64,
        oldest_eligible_at: progress.tally.oldest,
        skipped_future,
        jobs,
        removed: progress.trail,
        paused: limits.paused(),
        window: None,
    };
    tracing::info!(
        run_id = report.run_id,
        dry_run = report.dry_run,
        completed = report.counts.completed,
        closed = report.counts.closed,
        creating_idle = report.counts.creating_idle,
        total = report.total,
        stopped_by = report.stopped_by.as_str(),
        duration_ms = report.duration_ms,
        skipped_future,
        audit_rows_removed = report.removed.audit_rows,
        runs_removed = report.removed.runs,
        pauses = report.paused.pauses,
        paused_ms = report.paused.paused_ms,
        "sweep finished"
    );
    Ok(report)
}

/// How a deleting sweep began.
enum Begun {
    /// It found nothing eligible and recorded its run as begun and finished.
    Idle(i64),
    /// Its run is recorded as running; with the ids it read first, if it did.
    Running(i64, Option<Box<PendingIds<'static>>>),
}

impl Begun {
    fn run_id(&self) -> i64 {
        match self {
            Begun::Idle(id) | Begun::Running(id, _) => *id,
        }
    }
}

/// Begins a deleting sweep. It reads the clock and its first ids before it
/// records its run, and one that finds nothing records its run begun and
/// finished at once, in one statement where the engine can: what the daemon
/// does almost every hour is one round trip on PostgreSQL and on MariaDB
/// instead of three (docs/operations.md, "The idle sweep"). The
/// audit trail's lifecycle runs under a run in progress, so a sweep that
/// removes audit rows or run records records its run first; a capped sweep
/// with work reads again, up to its N-th job.
async fn begin(
    store: &dyn Store,
    plan: &SweepPlan,
    identity: &ProcessIdentity,
) -> Result<(Begun, ClockReading), StoreError> {
    let run = NewRun { trigger: plan.trigger, owner: identity, retentions: &plan.retentions };
    if plan.trail != TrailRetentions::default() {
        let (run_id, clock) = store.begin_run(&run).await?;
        return Ok((Begun::Running(run_id, None), clock));
    }
    let limit = PendingIds::first_read_limit(&plan.retentions);
    let (FirstIds { clock, ids }, idle_run) = match store.start_sweep(&run, limit).await {
        Ok(started) => started,
        // A role granted what an earlier version needed may begin a run
        // and finish it, not write it finished: the sweep does the former.
        Err(StoreError::Database(error)) => {
            tracing::warn!(
                %error,
                "could not record the sweep's run finished at once; recording its start, then its end \
                 (docs/security.md: the daemon's INSERT on retention_runs)"
            );
            (store.clock_and_first_ids(&plan.retentions, limit).await?, None)
        }
        Err(error) => return Err(error),
    };
    if let Some(run_id) = idle_run {
        return Ok((Begun::Idle(run_id), clock));
    }
    let pending = PendingIds::with_first_read(&policy::cutoffs(&plan.retentions, clock.now), &ids, limit);
    let (run_id, _) = store.begin_run(&run).await?;
    let first_ids = (plan.max_deletes == 0).then(|| Box::new(pending));
    Ok((Begun::Running(run_id, first_ids), clock))
}

/// Hands the space of the deleted rows back to the file system, one short
/// step at a time with the pause between batches in between, so that other
/// writers get the lock; stops early on a signal or at the window's end. A
/// failure is only logged: the deletions stand.
async fn release_space(store: &dyn Store, limits: &Limits<'_>) {
    while limits.interrupted().is_none() {
        match store.release_space().await {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "could not hand the freed space back to the file system");
                return;
            }
        }
        pause::sleep(store.pause_between_batches(), limits.stop()).await;
    }
}

/// Lists what a sweep would delete, in order; writes nothing.
async fn dry_run(
    store: &dyn Store,
    plan: &SweepPlan,
    cutoffs: &Cutoffs,
    progress: &mut Progress,
    limits: &Limits<'_>,
) -> Result<(StoppedBy, Vec<String>), StoreError> {
    let mut names = Vec::new();
    let mut cursors = Cursors::default();
    loop {
        let limit = match progress.next_batch(plan, limits).await {
            Ok(limit) => limit,
            Err(stopped_by) => return Ok((stopped_by, names)),
        };
        let request = BatchRequest { cutoffs, retentions: &plan.retentions, after: &cursors, limit };
        let candidates = store.find_eligible(request).await?;
        for candidate in &candidates {
            progress.take(candidate.policy, candidate.key);
            let cursor = &mut cursors[candidate.policy][candidate.job_type];
            *cursor = (*cursor).max(Some(candidate.key));
        }
        let exhausted = candidates.len() < limit as usize;
        names.extend(candidates.into_iter().map(|candidate| candidate.name));
        if exhausted {
            return Ok((StoppedBy::Done, names));
        }
    }
}

/// The run record a deleting sweep writes under, and who its audit rows say deleted the jobs.
struct Run {
    id: i64,
    deleted_by: String,
}

/// Deletes in batches under the run record `run` (begun), then records its end.
async fn delete_eligible<'s>(
    store: &'s dyn Store,
    plan: &SweepPlan,
    trail_cutoffs: &TrailCutoffs,
    pending: PendingIds<'s>,
    progress: &mut Progress,
    run: &Run,
    limits: &Limits<'_>,
) -> Result<StoppedBy, SweepError> {
    let run_id = run.id;
    let result = delete_in_batches(store, plan, pending, run, progress, limits).await;
    // The audit trail's own lifecycle, once the jobs are done (src/trail.rs).
    let result = match result {
        Ok(stopped_by @ (StoppedBy::Done | StoppedBy::MaxDeletes)) => {
            trail::remove_expired(store, plan, trail_cutoffs, run_id, limits, &mut progress.trail)
                .await
                .map(|stopped| stopped.unwrap_or(stopped_by))
        }
        other => other,
    };
    let (outcome, result) = match result {
        Ok(stopped_by) => {
            let status = if stopped_by == StoppedBy::Signal { RunStatus::Interrupted } else { RunStatus::Succeeded };
            let outcome = RunOutcome {
                status,
                counts: progress.tally.counts,
                stopped_by: Some(stopped_by.as_str().into()),
                error: None,
                removed: progress.trail,
                paused: limits.paused(),
            };
            (outcome, Ok(stopped_by))
        }
        Err(source) => {
            let outcome = RunOutcome {
                status: RunStatus::Failed,
                counts: progress.tally.counts,
                stopped_by: None,
                error: Some(source.to_string()),
                removed: progress.trail,
                paused: limits.paused(),
            };
            (outcome, Err(SweepError { run_id: Some(run_id), deleted: progress.taken, source }))
        }
    };
    if let Err(error) = store.finish_run(run_id, &outcome).await {
        // The deletions are committed and audited; only the run record is
        // stale, and the next sweep marks it abandoned.
        tracing::error!(run_id, %error, "could not record the end of the run");
        if result.is_ok() {
            return Err(SweepError { run_id: Some(run_id), deleted: progress.taken, source: error });
        }
    }
    result
}

/// The batches of one run, in id order; returns why they stopped once
/// the jobs of every committed batch are counted and logged.
async fn delete_in_batches<'s>(
    store: &'s dyn Store,
    plan: &SweepPlan,
    pending: PendingIds<'s>,
    run: &Run,
    progress: &mut Progress,
    limits: &Limits<'_>,
) -> Result<StoppedBy, StoreError> {
    let mut committed = Committed::new(plan.retentions);
    let stopped = delete_batches(store, plan, pending, run, progress, &mut committed, limits).await;
    let finished = committed.finish().await;
    progress.tally.add(committed.done());
    let stopped = stopped?;
    finished.map(|()| stopped)
}

async fn delete_batches<'s>(
    store: &'s dyn Store,
    plan: &SweepPlan,
    mut pending: PendingIds<'s>,
    run: &Run,
    progress: &mut Progress,
    committed_jobs: &mut Committed,
    limits: &Limits<'_>,
) -> Result<StoppedBy, StoreError> {
    let (run_id, cutoffs) = (run.id, *pending.cutoffs());
    // A sweep that finds nothing after all (removing audit rows, or another
    // sweep took its first ids) ends here, before any pause, its
    // run record left uncommitted where the engine holds it so; one with
    // work makes its run visible before the first batch names it.
    if !pending.any_left(store).await? {
        return Ok(StoppedBy::Done);
    }
    store.commit_run_start(run_id).await?;
    let mut deadlocks = Deadlocks::default();
    loop {
        let limit = match progress.next_batch(plan, limits).await {
            Ok(limit) => limit,
            Err(stopped_by) => return Ok(stopped_by),
        };
        let ids = pending.next_batch(store, limit as usize).await?.to_vec();
        if ids.is_empty() {
            return Ok(StoppedBy::Done);
        }
        let tried = ids.len();
        let batch_started = Instant::now();
        let batch = Batch { run_id, cutoffs: &cutoffs, ids: &ids, deleted_by: &run.deleted_by };
        let deleted = match pending.alongside(store.delete_eligible(&batch)).await {
            Ok(deleted) => deleted,
            Err(StoreError::StatementTimeout(error)) if progress.sizer.shrink_after_timeout() => {
                // The batch rolled back whole; a smaller one may fit.
                tracing::warn!(run_id, jobs = tried, %error, next = progress.sizer.size(), "batch timed out; retrying smaller");
                continue;
            }
            Err(StoreError::Deadlock(error)) if deadlocks.may_retry() => {
                // The batch rolled back whole, deleting and counting
                // nothing: the same ids come next.
                tracing::warn!(run_id, jobs = tried, %error, "batch rolled back in a deadlock; retrying it");
                pending.alongside(deadlocks.pause()).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        deadlocks.committed();
        let committed = Instant::now();
        pending.done(tried);
        let batch_elapsed = committed - batch_started;
        let DeletedBatch { jobs: deleted, commit } = deleted;
        progress.sizer.record(deleted.len(), batch_elapsed, commit);
        metrics::batch_committed(batch_elapsed);
        progress.taken += deleted.len() as u64;
        // Read by the purge benchmark (bench/purge) for its batch durations.
        tracing::debug!(
            run_id,
            jobs = deleted.len(),
            elapsed_ms = batch_elapsed.as_secs_f64() * 1e3,
            commit_ms = commit.as_secs_f64() * 1e3,
            "batch committed"
        );
        pending.alongside(committed_jobs.hand_over(run_id, deleted)).await?;
        if progress.cap_reached(plan) {
            return Ok(StoppedBy::MaxDeletes);
        }
        if pending.is_empty() {
            return Ok(StoppedBy::Done);
        }
        pending.alongside(settle(store, plan, committed, limits.stop())).await?;
    }
}
