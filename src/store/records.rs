//! What goes in and out of the store's traits besides the records of
//! `crate::model`: which rows a read wants, and what a sweep, a dry run, the
//! audit trail's lifecycle, the forecast and the pages get back.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::identity::ProcessIdentity;
use crate::lifecycle::{JobState, JobType};
use crate::model::{Pauses, Removed, RunStatus};
use crate::policy::{Cursors, Cutoffs, PerPolicy, PerRule, Policy, RULES, Retentions, SortKey};
use crate::store::StoreError;

/// Which jobs `list_jobs` returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in these states; empty means every state.
    pub states: Vec<JobState>,
    pub limit: Option<u64>,
}

/// Which audit rows a read returns, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSearch {
    /// Every row, newest first, below id `before`.
    All { before: i64 },
    /// One run's rows, newest first, below id `before`.
    Run { run_id: i64, before: i64 },
    /// One job name's rows (of one run if given), newest first, below id `before`.
    Name { name: String, run_id: Option<i64>, before: i64 },
    /// Rows whose job name lies after (`after_name`, `after_id`) and below
    /// `until` (byte order), in name then id order. The first page of a
    /// prefix starts after (prefix, `i64::MIN`).
    NameRange { until: String, after_name: String, after_id: i64 },
}

impl AuditSearch {
    /// The newest rows of a job name, of a run, of both, or of neither (`audit list`).
    pub fn newest(job_name: Option<String>, run_id: Option<i64>) -> AuditSearch {
        match (job_name, run_id) {
            (Some(name), run_id) => AuditSearch::Name { name, run_id, before: i64::MAX },
            (None, Some(run_id)) => AuditSearch::Run { run_id, before: i64::MAX },
            (None, None) => AuditSearch::All { before: i64::MAX },
        }
    }
}

/// Which audit rows `audit export` writes: deleted at or after `since` and before `until`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditWindow {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A job that a rule would delete now, in deletion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub policy: Policy,
    pub job_type: JobType,
    /// Its place in its rule's order (age timestamp and job id).
    pub key: SortKey,
}

/// A job a sweep deleted, with what its audit row and audit log event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedJob {
    pub name: String,
    pub job_type: JobType,
    pub policy: Policy,
    pub state: JobState,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    pub deleted_at: DateTime<Utc>,
    /// Its place in the policy's deletion order (age timestamp and job id).
    pub key: SortKey,
}

/// What a batch deleted, and how long its commit took apart from its
/// statements: the batch sizer steers by the statements' time alone
/// (src/batch.rs), since a commit's wait for the disk does not grow with the
/// batch. Zero where the commit is part of the deleting statement.
#[derive(Debug)]
pub struct DeletedBatch {
    pub jobs: DeletedJobs,
    pub commit: Duration,
}

/// The jobs a batch deleted, as the rows its statement returned: how many
/// is known at once, while reading each row into a [`DeletedJob`] waits for
/// [`DeletedJobs::decode`], which a sweep calls off its hot path, on the
/// thread that writes the audit log lines (src/sweep/committed.rs): decoded
/// in line, a batch's rows kept the next batch waiting (`docs/operations.md`).
pub struct DeletedJobs {
    count: usize,
    decode: Box<dyn FnOnce() -> Result<Vec<DeletedJob>, StoreError> + Send>,
}

impl DeletedJobs {
    /// `rows`, each read by `decode` once [`DeletedJobs::decode`] is called.
    pub fn from_rows<R: Send + 'static>(
        rows: Vec<R>,
        decode: impl Fn(&R) -> Result<DeletedJob, StoreError> + Send + 'static,
    ) -> DeletedJobs {
        DeletedJobs { count: rows.len(), decode: Box::new(move || rows.iter().map(decode).collect()) }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The jobs, in id order.
    pub fn decode(self) -> Result<Vec<DeletedJob>, StoreError> {
        let mut jobs = (self.decode)()?;
        jobs.sort_by_key(|job| job.key.job_id);
        Ok(jobs)
    }
}

impl Default for DeletedJobs {
    /// None deleted.
    fn default() -> DeletedJobs {
        DeletedJobs { count: 0, decode: Box::new(|| Ok(Vec::new())) }
    }
}

impl std::fmt::Debug for DeletedJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeletedJobs").field("count", &self.count).finish_non_exhaustive()
    }
}

/// The jobs a policy finds eligible: how many, and the oldest age timestamp among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EligibleJobs {
    pub count: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// The database's clock at a sweep's start, and how many jobs in a state of
/// a policy the sweep enables have an age timestamp after it (clock skew;
/// they are never eligible). One reading, so a job written a moment later
/// is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    pub now: DateTime<Utc>,
    pub future_jobs: u64,
}

/// How a sweep ended, for its run record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub counts: PerPolicy<u64>,
    pub stopped_by: Option<String>,
    pub error: Option<String>,
    /// What it removed of the audit trail after the jobs.
    pub removed: Removed,
    pub paused: Pauses,
}

/// A run a sweep starts: what started it, the process running it, and the
/// retentions whose jobs in the future of the clock it counts.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    /// `purge` or `schedule`.
    pub trigger: &'a str,
    pub owner: &'a ProcessIdentity,
    pub retentions: &'a Retentions,
}

/// A batch of a sweep: the listed jobs still eligible under the cut-offs
/// are deleted, under the run, by whom the audit rows name.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub run_id: i64,
    pub cutoffs: &'a Cutoffs,
    pub ids: &'a [i64],
    pub deleted_by: &'a str,
}

/// One step of a dry run: which jobs qualify and how many to list.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest<'a> {
    pub cutoffs: &'a Cutoffs,
    /// The retentions the cut-offs come from: the rules' jobs are listed in
    /// the order they became eligible.
    pub retentions: &'a Retentions,
    /// Resume each rule's scan after these keys.
    pub after: &'a Cursors,
    pub limit: u32,
}

/// One policy's part of a read of eligible ids for a sweep
/// (src/sweep/pending.rs): the jobs whose key lies after `after` and at or
/// before `through`, in the policy's age order, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct IdRange {
    pub cutoff: DateTime<Utc>,
    /// `None`: from the oldest.
    pub after: Option<SortKey>,
    /// The last job of a capped sweep's set; `None`: up to the cut-off.
    pub through: Option<SortKey>,
    pub limit: u32,
}

impl IdRange {
    /// Every enabled rule's range from its oldest job to its cut-off, at most `limit` ids each: a sweep's first read.
    pub fn first_of(cutoffs: &Cutoffs, limit: u32) -> PerRule<Option<IdRange>> {
        cutoffs.map(|_, by_type| {
            by_type.map(|_, cutoff| cutoff.map(|cutoff| IdRange { cutoff, after: None, through: None, limit }))
        })
    }
}

/// A sweep's start ([`crate::store::SweepStore::clock_and_first_ids`]): the
/// clock's reading, and the first ids of each rule under the cut-offs at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstIds {
    pub clock: ClockReading,
    pub ids: PerRule<EligibleIds>,
}

impl FirstIds {
    /// Whether no rule found an id.
    pub fn found_none(&self) -> bool {
        RULES.into_iter().all(|(policy, job_type)| self.ids[policy][job_type].ids.is_empty())
    }
}

/// What [`crate::store::SweepStore::eligible_ids`] read of one policy: the
/// ids, in any order (a sweep sorts them by id), and the largest key of
/// them in the policy's age order, where the next read starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EligibleIds {
    pub ids: Vec<i64>,
    pub last: Option<SortKey>,
}

impl EligibleIds {
    /// Adds an id of rows read in the policy's age order: its key is the largest yet.
    pub(crate) fn push(&mut self, key: SortKey) {
        self.ids.push(key.job_id);
        self.last = Some(key);
    }
}

/// A position in a removal order of the audit trail's own lifecycle
/// (src/trail.rs): an audit row's `deleted_at` or a run's `finished_at`,
/// ties broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrailKey {
    pub at: DateTime<Utc>,
    pub id: i64,
}

/// One batch of audit rows to remove: those past `cutoff` (with the run
/// rule of src/trail.rs), after `after` in (deleted_at, id) order.
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

/// The forecast's window, per policy (`None`: the policy is off): jobs whose
/// age timestamp lies after the cut-off and at or before the horizon (the
/// cut-off plus the window) become eligible within the window.
#[derive(Debug, Clone, Copy)]
pub struct ForecastWindow<'a> {
    pub cutoffs: &'a Cutoffs,
    pub horizons: &'a Cutoffs,
    pub days: u32,
}

/// How many jobs of a policy become eligible on one day of the forecast's
/// window (day 0: the next 24 hours); held jobs are counted apart, and those
/// already past their retention on day -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastCount {
    pub policy: Policy,
    pub held: bool,
    pub day: i64,
    pub jobs: u64,
}

/// A job with a hold, as the holds page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldJob {
    pub id: i64,
    pub name: String,
    pub job_type: JobType,
    pub state: JobState,
    pub hold_reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
}

/// A place in the list of held jobs (oldest first): the last job of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldKey {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

/// How far one replica is behind the store's primary, as read between a
/// sweep's batches (`retention.max_replica_lag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLag {
    /// How the metrics and the logs name it: a standby's `application_name@address`,
    /// or the host and port of one of `database.replicas` (never its password).
    pub replica: String,
    /// How far its replay is behind, or why it could not be read.
    pub lag: Result<Duration, String>,
}
