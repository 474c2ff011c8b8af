//! The store as its callers see it: one trait per kind of caller, and
//! [`Store`], all of them at once, which every engine is.
//!
//! [`JobStore`], [`EligibleStore`], [`TrailStore`] and [`PageStore`] are
//! written once for every engine (`common`); [`SweepStore`] and
//! [`AdminStore`] are each engine's own: its sessions, locks, batches and
//! upkeep. Every method that changes data is one transaction; lifecycle
//! rules come from `crate::lifecycle` and are checked with the job's row
//! locked; every deletion writes its audit row in the same transaction.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::records::{
    AuditRemoval, AuditSearch, AuditWindow, Batch, BatchRequest, Candidate, ClockReading, DeletedBatch, EligibleIds,
    EligibleJobs, FirstIds, ForecastCount, ForecastWindow, HeldJob, HeldKey, IdRange, JobFilter, NewRun, ReplicaLag,
    RunOutcome, RunRemoval, TrailKey,
};
use super::{ReadOnly, StoreError};
use crate::lifecycle::Operation;
use crate::model::{AuditEntry, Job, RunRecord};
use crate::policy::{self, Cutoffs, PerPolicy, PerRule, Retentions, SortKey};

/// Every trait of the store: what `store::open` returns.
pub trait Store: JobStore + EligibleStore + SweepStore + TrailStore + PageStore + AdminStore {}

impl<T: JobStore + EligibleStore + SweepStore + TrailStore + PageStore + AdminStore> Store for T {}

/// The job commands (`jobs create|show|list|set-state|cancel|hold|release|delete|import|seed`).
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts jobs with their drives, all or nothing. A name that exists
    /// already fails with [`StoreError::NameTaken`] naming its index.
    async fn create_jobs(&self, jobs: &[Job]) -> Result<(), StoreError>;

    async fn job(&self, name: &str) -> Result<Option<Job>, StoreError>;

    /// Jobs in creation order.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;

    /// Applies a lifecycle operation other than delete; returns the job as it is now.
    async fn change_job(&self, name: &str, operation: &Operation) -> Result<Job, StoreError>;

    /// Deletes a job by hand (`jobs delete`) with its audit row (policy `manual`).
    async fn delete_job(&self, name: &str, deleted_by: &str) -> Result<AuditEntry, StoreError>;
}

/// What is eligible, read without deleting anything: a capped sweep's last
/// job, the dry run, the backlog of the metrics and the pages, the forecast.
#[async_trait]
pub trait EligibleStore: Send + Sync {
    /// How many jobs each policy finds eligible under `cutoffs`, and the oldest of them.
    async fn eligible_jobs(&self, cutoffs: &Cutoffs) -> Result<PerPolicy<EligibleJobs>, StoreError>;

    /// The next eligible jobs in the order they became eligible (age
    /// timestamp plus the rule's retention, ties by id), without deleting
    /// anything: the dry run.
    async fn find_eligible(&self, batch: BatchRequest<'_>) -> Result<Vec<Candidate>, StoreError>;

    /// The `n`-th eligible job over all rules in the order they became
    /// eligible, as its key moved by its rule's retention (`SortKey::due`),
    /// or `None` when fewer are eligible: the last job of a sweep capped at
    /// `n` deletions.
    async fn nth_eligible(
        &self,
        cutoffs: &Cutoffs,
        retentions: &Retentions,
        n: u64,
    ) -> Result<Option<SortKey>, StoreError>;

    /// The jobs that become eligible in each day of `window`, per policy,
    /// with held jobs counted apart; counts of zero may be left out.
    async fn forecast(&self, window: ForecastWindow<'_>) -> Result<Vec<ForecastCount>, StoreError>;
}

/// A sweep (src/sweep.rs, src/trail.rs): its run record and lease, the ids
/// it reads, its batches of jobs and of the audit trail, the singleton
/// lead, and the engine's work between batches. Each engine's own.
#[async_trait]
pub trait SweepStore: Send + Sync {
    /// Marks runs left `running` by dead processes as `abandoned`, then
    /// records a new run as `running`; returns its id and the clock's
    /// reading as [`SweepStore::clock_and_skew`] takes it.
    async fn begin_run(&self, run: &NewRun<'_>) -> Result<(i64, ClockReading), StoreError>;

    /// The database's clock, and the jobs in the future of it (a dry run's
    /// start; a deleting sweep's comes with [`SweepStore::begin_run`]).
    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError>;

    /// The clock's reading, as [`SweepStore::clock_and_skew`] takes it, and
    /// the first `limit` ids of every enabled rule under the cut-offs at that
    /// moment (`policy::cutoffs`): a sweep's start, which an engine may read
    /// in one statement (docs/operations.md, "The idle sweep").
    async fn clock_and_first_ids(&self, retentions: &Retentions, limit: u32) -> Result<FirstIds, StoreError> {
        let clock = self.clock_and_skew(retentions).await?;
        let cutoffs = policy::cutoffs(retentions, clock.now);
        let ids = self.eligible_ids(&IdRange::first_of(&cutoffs, limit), cutoffs.settled).await?;
        Ok(FirstIds { clock, ids })
    }

    /// A sweep's start: [`SweepStore::clock_and_first_ids`] and, when it
    /// found no id, the run recorded begun at its clock and finished at once
    /// with nothing deleted (`succeeded`, stopped by `done`), after marking
    /// the runs left `running` by dead processes as `abandoned`, as
    /// [`SweepStore::begin_run`] does: that run's id.
    async fn start_sweep(&self, run: &NewRun<'_>, limit: u32) -> Result<(FirstIds, Option<i64>), StoreError>;

    /// Makes the record of a run begun visible to other sessions; called
    /// before the sweep's first write or pause. An engine whose commits wait
    /// for a flush may hold it uncommitted until then (or until
    /// [`SweepStore::finish_run`]), so that an idle sweep commits once.
    async fn commit_run_start(&self, _run_id: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Records how a run ended.
    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError>;

    /// The ids of the next eligible jobs of each rule given a range, read
    /// from the rules' index ranges alone, in one statement; `settled`:
    /// `Cutoffs::settled`.
    async fn eligible_ids(
        &self,
        ranges: &PerRule<Option<IdRange>>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<PerRule<EligibleIds>, StoreError>;

    /// Deletes the jobs of `batch` that are still eligible, with their
    /// drives and one audit row each, in one transaction; returns them in id
    /// order, with the commit's time. The eligibility condition is checked again by the deleting
    /// statement; a job another sweep is deleting is skipped.
    async fn delete_eligible(&self, batch: &Batch<'_>) -> Result<DeletedBatch, StoreError>;

    /// Removes, in one transaction, at most `limit` audit rows that
    /// `removal` lets go, next in (deleted_at, id) order; returns their keys.
    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError>;

    /// Removes, in one transaction, at most `limit` run records that
    /// `removal` lets go, next in (finished_at, id) order; returns their keys.
    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError>;

    /// Takes the store-wide sweep lock (`schedule.singleton`) unless another
    /// process holds it; `false` means another replica is sweeping. Freed by
    /// [`SweepStore::end_lead`] or when this process dies. By default always
    /// `true`: an engine whose store has one host needs no lock.
    async fn try_lead(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Releases the lock [`SweepStore::try_lead`] took.
    async fn end_lead(&self) {}

    /// The least pause between two batches of a sweep, so that the
    /// application's own writers get a turn; by default none (a batch locks
    /// only the rows it deletes).
    fn pause_between_batches(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether a sweep may read its next ids while a batch runs: its
    /// sessions allow both at once (src/sweep/pending.rs).
    fn reads_alongside_batches(&self) -> bool;

    /// A number that changes whenever another connection commits to the
    /// store, read between batches: a sweep lets its pause go on while the
    /// application's writers are still getting through (src/sweep/pause.rs).
    /// By default `None`: a batch holds no writer back.
    async fn commit_counter(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }

    /// Work between two batches of a sweep, outside any transaction; by default none.
    async fn after_batch(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How far each replica of the store is behind, read between a sweep's
    /// batches while `retention.max_replica_lag` is set; one that cannot be
    /// read is listed with why. By default none: the engine has no replicas
    /// (src/sweep/replica_pause.rs decides what to do with them).
    async fn replica_lags(&self) -> Vec<ReplicaLag> {
        Vec::new()
    }

    /// One short step of handing the space deleted rows left back to the
    /// file system; returns what is left to do (0: done). By default
    /// nothing: the server does it.
    async fn release_space(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// The audit trail and the run records as `audit list`, `audit export`,
/// `runs list` and the pages read them.
#[async_trait]
pub trait TrailStore: Send + Sync {
    /// At most `limit` audit rows of `search` (`None`: all of them).
    async fn audit(&self, search: &AuditSearch, limit: Option<u64>) -> Result<Vec<AuditEntry>, StoreError>;

    /// The first and last id of the audit rows deleted at or after `since`
    /// and before `until` (`None`: unbounded); `None` when there is none.
    async fn audit_id_range(&self, window: &AuditWindow) -> Result<Option<(i64, i64)>, StoreError>;

    /// At most `limit` audit entries with an id above `after` and at most
    /// `last`, in id order.
    async fn audit_page(&self, after: i64, last: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// At most `limit` run records (`None`: all) with an id below `before`, newest first.
    async fn runs(&self, before: i64, limit: Option<u64>) -> Result<Vec<RunRecord>, StoreError>;

    async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError>;
}

/// What only the status pages read.
#[async_trait]
pub trait PageStore: Send + Sync {
    /// How many jobs carry a hold.
    async fn count_held(&self) -> Result<u64, StoreError>;

    /// At most `limit` held jobs after `after`, oldest (by `created_at`) first.
    async fn held_jobs(&self, after: Option<HeldKey>, limit: u32) -> Result<Vec<HeldJob>, StoreError>;
}

/// The store's schema, clock, state and sessions. Each engine's own.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Applies the pending migrations of this engine.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The database's clock, so every replica agrees on "now".
    async fn now(&self) -> Result<DateTime<Utc>, StoreError>;

    /// Why the database refuses writes now, or `None` when it takes them: a
    /// sweep is skipped while it does.
    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError>;

    /// Reads the password and TLS files of the settings again and uses them
    /// for every new connection, so a rotated password or client key takes
    /// effect without a restart (on a reload, SIGHUP); on an error the
    /// previous ones stay in use. `false`: no such file is configured
    /// (always, by default).
    async fn reload_credentials(&self) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Ends every session the store holds, each with a goodbye to the
    /// server, once no sweep is in flight (a pooled session still in use is
    /// ended when it is given back).
    async fn close(&self);
}
