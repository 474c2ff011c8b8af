//! What every engine shares, written once: the job commands' flows, the
//! reads of the sweep's dry run, the audit trail, the pages and the
//! forecast, and the decoding of every row. It runs each engine's own
//! statements ([`Statements`]) on the sessions the engine chooses
//! ([`Driver`]), binding and reading values through the engine's
//! [`Codec`]. An engine keeps its connections, sessions, locks, batches,
//! upkeep and SQL in its own folder.

mod codec;
mod connect;
mod create;
mod credentials;
pub(crate) mod decode;
mod jobs;
mod kept_session;
pub(crate) mod migrate;
mod nodelay;
mod own_sessions;
pub(crate) mod positional;
mod reads;
mod replicas;
mod statements;

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::pool::Pool;
use sqlx::{Database, Transaction};

pub(crate) use codec::{Arg, Codec, Db, On, limit};
pub(crate) use connect::{
    NoConnection, PING_AFTER_IDLE, check_migrated, close_idle, first_connection, first_session,
    once_more_on_a_new_session, open_session, pool_options, server_pool_options,
};
pub(crate) use credentials::{ClientIdentity, StoreOptions, TlsOptions, reads_files, with_files};
pub(crate) use kept_session::{SweepSessions, lends_two_sessions};
pub(crate) use nodelay::{TcpServer, nodelay_while};
pub(crate) use own_sessions::{LeaseEnd, OwnSessions};
pub use replicas::PrimaryPositions;
pub(crate) use replicas::{Primary, Replayed, ReplicaReads, Replicas, Streaming};
pub(crate) use statements::{DeleteJob, StatementBytes, Statements};

use super::records::{AuditRemoval, IdRange, NewRun, RunOutcome, RunRemoval, TrailKey};
use super::{AdminStore, StoreError, SweepStore};
use crate::policy::{Cutoffs, PerRule, RULES, Retentions, retention_micros, start_of_time};

/// A run left `running` by a dead process, as a server engine's start of a
/// run finds them: the column `abandoned`, a JSON array of `id`, `host`, `pid`.
#[derive(serde::Deserialize)]
pub(crate) struct AbandonedRun {
    pub id: i64,
    host: String,
    pid: i64,
}

impl AbandonedRun {
    pub fn all<DB: Db>(row: &DB::Row) -> Result<Vec<AbandonedRun>, StoreError> {
        let Some(json) = DB::optional_text(row, "abandoned")? else { return Ok(Vec::new()) };
        serde_json::from_str(&json).map_err(|e| StoreError::Database(format!("the abandoned runs: {e}")))
    }

    pub fn log(&self) {
        let (run_id, host, pid) = (self.id, &self.host, self.pid);
        tracing::warn!(run_id, host, pid, "marked a run left running by a dead process as abandoned");
    }
}

/// What a statement of the common part is for, which tells the engine the sessions it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Point reads, the job commands' writes, the pages.
    General,
    /// The reads written for one plan (index ranges in the order of the
    /// index): what is eligible, the audit trail's pages.
    PlannedReads,
}

/// What an engine is: its own sweep and administration (the traits it
/// implements itself), and what it gives the common part: its database,
/// its statements, its sessions.
pub(crate) trait Driver: SweepStore + AdminStore + 'static {
    type Db: Db;

    const SQL: &'static Statements;
    const MIGRATOR: &'static Migrator;

    fn pool(&self, purpose: Purpose) -> &Pool<Self::Db>;

    /// The database server, when it is reached over TCP.
    fn tcp_server(&self) -> Option<&TcpServer> {
        None
    }

    /// A transaction of the job commands' writes: by default on the general pool.
    fn begin(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send {
        async move { Ok(self.pool(Purpose::General).begin().await?) }
    }

    /// Commits a transaction [`Driver::begin`] opened.
    fn commit(&self, tx: Transaction<'static, Self::Db>) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move { Ok(tx.commit().await?) }
    }

    /// The database's clock in a transaction, from the row of
    /// [`Statements::lock_job`]: by default its `now` column.
    fn transaction_clock(&self, row: &<Self::Db as Database>::Row) -> Result<DateTime<Utc>, StoreError> {
        Self::Db::time(row, "now")
    }
}

/// Commits a batch's transaction; returns how long the commit took (the
/// batch sizer leaves it out: `DeletedBatch`).
pub(crate) async fn timed_commit<DB: Database>(tx: Transaction<'_, DB>) -> Result<Duration, StoreError> {
    let started = Instant::now();
    tx.commit().await?;
    Ok(started.elapsed())
}

/// A removal of the audit trail's lifecycle as a claim and a delete of the
/// claimed ids in one transaction, for an engine that cannot delete what a
/// subquery claims (MariaDB's sql.rs says why); the keys of the rows removed.
pub(crate) async fn claim_and_remove_trail<DB: Db>(
    pool: &Pool<DB>,
    claim: &'static str,
    delete: &'static str,
    args: &[Arg<'_>],
) -> Result<Vec<TrailKey>, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = DB::fetch_all(On::Connection(&mut *tx), DB::query(claim, args)).await?;
    let keys = decode::all(&rows, decode::trail_key::<DB>)?;
    if !keys.is_empty() {
        let ids: Vec<i64> = keys.iter().map(|key| key.id).collect();
        DB::execute(On::Connection(&mut *tx), DB::query(delete, &[Arg::Ids(&ids)])).await?;
    }
    tx.commit().await?;
    Ok(keys)
}

// The parameters of the statements that every engine writes its own way
// but binds alike, in the order its `sql.rs` documents.

/// Whether each rule is enabled (in the order of `policy::RULES`), for
/// the count of the jobs in the future of the clock.
pub(crate) fn enabled_rules(retentions: &Retentions) -> [Arg<'static>; 8] {
    RULES.map(|(policy, job_type)| Arg::Flag(retentions[policy][job_type].is_some()))
}

/// A sweep's first read in one statement: the `future_jobs!` flags, each
/// rule's retention in microseconds (in the order of `policy::RULES`; NULL:
/// off), `retention.minimum`'s, and the ids per rule. Rounded up to the
/// microsecond, so that the statement's `now - retention` is the cut-off
/// `policy::cutoff` rounds down to.
pub(crate) fn first_ids_args(retentions: &Retentions, limit: u32) -> Vec<Arg<'static>> {
    let micros = |retention: Duration| i64::try_from(retention.as_nanos().div_ceil(1000)).unwrap_or(i64::MAX);
    let mut args = enabled_rules(retentions).to_vec();
    args.extend(RULES.map(|(policy, job_type)| retentions[policy][job_type].map(micros).into()));
    args.extend([micros(retentions.minimum).into(), i64::from(limit).into()]);
    args
}

/// Each rule's cut-off (in the order of `policy::RULES`; NULL: off), then
/// the newest `state_changed_at` of a job the `retain_until` rules delete.
pub(crate) fn cutoff_args<'a>(cutoffs: &Cutoffs) -> Vec<Arg<'a>> {
    let mut args: Vec<Arg<'a>> = RULES.map(|(policy, job_type)| cutoffs[policy][job_type].into()).into();
    args.push(cutoffs.settled.into());
    args
}

/// Each rule's retention in microseconds (in the order of `policy::RULES`):
/// what moves an age timestamp to the moment the job became eligible.
pub(crate) fn shift_args<'a>(retentions: &Retentions) -> [Arg<'a>; 8] {
    RULES.map(|(policy, job_type)| retention_micros(retentions, policy, job_type).into())
}

/// The ids of a batch, then the cut-offs they are checked against again.
pub(crate) fn still_eligible_args<'a>(ids: &'a [i64], cutoffs: &Cutoffs) -> Vec<Arg<'a>> {
    let mut args = vec![Arg::Ids(ids)];
    args.extend(cutoff_args(cutoffs));
    args
}

/// Per rule (in the order of `policy::RULES`): its cut-off, the (age, id)
/// its range starts after, the (age, id) it ends at, and its limit; a
/// rule not read binds no cut-off and limit 0.
pub(crate) fn id_range_args(ranges: &PerRule<Option<IdRange>>, settled: Option<DateTime<Utc>>) -> Vec<Arg<'static>> {
    let start = (start_of_time(), i64::MIN);
    let mut args = Vec::with_capacity(6 * RULES.len());
    for (policy, job_type) in RULES {
        let (cutoff, after, through, limit) = match &ranges[policy][job_type] {
            None => (None, start, start, 0),
            Some(range) => (
                Some(range.cutoff),
                range.after.map_or(start, |key| (key.timestamp, key.job_id)),
                range.through.map_or((range.cutoff, i64::MAX), |key| (key.timestamp, key.job_id)),
                i64::from(range.limit),
            ),
        };
        args.extend([cutoff.into(), after.0.into(), after.1.into(), through.0.into(), through.1.into(), limit.into()]);
    }
    args.push(settled.into());
    args
}

/// Who records a run: its trigger, then the process running it (host, pid,
/// process_started).
pub(crate) fn run_owner_args<'a>(run: &NewRun<'a>) -> [Arg<'a>; 4] {
    let owner = run.owner;
    [
        run.trigger.into(),
        owner.host.as_str().into(),
        i64::from(owner.pid).into(),
        owner.started.map(|ticks| ticks as i64).into(),
    ]
}

/// A run's id and how it ended: status, the counts per policy, what
/// stopped it, its error, what it removed of the trail, its pauses.
pub(crate) fn outcome_args(run_id: i64, outcome: &RunOutcome) -> Vec<Arg<'_>> {
    vec![
        run_id.into(),
        outcome.status.as_str().into(),
        (outcome.counts.completed as i64).into(),
        (outcome.counts.closed as i64).into(),
        (outcome.counts.creating_idle as i64).into(),
        (outcome.counts.retain_until as i64).into(),
        outcome.stopped_by.as_deref().into(),
        outcome.error.as_deref().into(),
        (outcome.removed.audit_rows as i64).into(),
        (outcome.removed.runs as i64).into(),
        (outcome.paused.pauses as i64).into(),
        (outcome.paused.paused_ms as i64).into(),
    ]
}

/// The cut-off, the (deleted_at, id) the walk resumes after, the limit.
pub(crate) fn audit_removal_args(removal: &AuditRemoval, limit: u32) -> [Arg<'static>; 4] {
    [removal.cutoff.into(), removal.after.at.into(), removal.after.id.into(), i64::from(limit).into()]
}

/// Both cut-offs, the (finished_at, id) each walk resumes after, the limit.
pub(crate) fn run_removal_args(removal: &RunRemoval, limit: u32) -> [Arg<'static>; 7] {
    [
        removal.spent_cutoff.into(),
        removal.empty_cutoff.into(),
        removal.after_spent.at.into(),
        removal.after_spent.id.into(),
        removal.after_empty.at.into(),
        removal.after_empty.id.into(),
        i64::from(limit).into(),
    ]
}
