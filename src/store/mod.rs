//! The job store: one trait, two backends (SQLite, the embedded default, and
//! PostgreSQL), chosen by the scheme of `database.url`.
//!
//! Every method that changes data is one transaction. Lifecycle rules come
//! from [`crate::lifecycle`] and are checked with the job's row locked; every
//! deletion writes its audit row in the same transaction as the delete.

pub mod postgres;
mod rows;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{DatabaseSettings, format_duration};
use crate::identity::ProcessIdentity;
use crate::lifecycle::{JobState, JobType, LifecycleError, Operation};
use crate::model::{AuditEntry, Job, RunRecord, RunStatus};
use crate::policy::{self, Cursors, Cutoffs, PerPolicy, Policy, Retentions, SortKey};
use crate::trail::{AuditRemoval, Removed, RunRemoval, TrailKey};

/// Connects to the store that `settings.url` names, without touching its schema.
pub async fn connect(settings: &DatabaseSettings) -> Result<Box<dyn Store>, StoreError> {
    let url = settings.url.expose();
    if url.starts_with("sqlite:") {
        Ok(Box::new(sqlite::SqliteStore::connect(settings).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Box::new(postgres::PostgresStore::connect(settings).await?))
    } else {
        Err(StoreError::UnsupportedUrl(settings.url.redacted()))
    }
}

/// Connects, then applies the migrations when `auto_migrate` is set, or
/// checks that they have been applied. A read-only database (a standby
/// replicates its primary's schema) is only checked: it cannot be migrated.
pub async fn open(settings: &DatabaseSettings) -> Result<Box<dyn Store>, StoreError> {
    let store = connect(settings).await?;
    let read_only = if settings.auto_migrate { store.read_only().await? } else { None };
    match read_only {
        None if settings.auto_migrate => store.migrate().await?,
        None => store.check_migrated().await?,
        Some(reason) => {
            tracing::info!(%reason, "the database is read-only: migrations are checked, not applied");
            store.check_migrated().await?;
        }
    }
    Ok(store)
}

/// A pooled session idle this long is pinged before it is used again: the
/// server or a firewall may have closed it since. One used moments ago (the
/// statements of one sweep follow each other within milliseconds) is not:
/// a ping per statement is a round trip each, which made up a third of an
/// idle sweep.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// The options both stores' pools share.
fn pool_options<DB: sqlx::Database>(settings: &DatabaseSettings) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Opens one connection within `timeout`, outside any pool. A refused or
/// failed connection is reported at once with its cause, where a pool would
/// keep retrying until its acquire timeout and then say only that it timed out.
/// `trusted` says whom a TLS connection trusts (`None`: it uses no TLS).
async fn first_connection<C: sqlx::Connection>(
    options: &C::Options,
    timeout: std::time::Duration,
    trusted: Option<&str>,
) -> Result<C, String> {
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Err(_) => Err(format!("no connection within {} (database.connect_timeout)", format_duration(timeout))),
        Ok(Err(error)) => Err(describe_connect_error(&error, trusted)),
        Ok(Ok(connection)) => Ok(connection),
    }
}

/// A failed connection in plain words: a TLS failure says what was
/// refused (the certificate's issuer, its host name), not only that it failed.
fn describe_connect_error(error: &sqlx::Error, trusted: Option<&str>) -> String {
    if let Some(tls) = trusted.and_then(|trusted| crate::tls::explain(error, trusted)) {
        return tls;
    }
    match error {
        // sqlx's words when the server answers the TLS request with "no".
        sqlx::Error::Tls(inner) if inner.to_string() == "server does not support TLS" => {
            "the server does not accept TLS connections, and sslmode (require, verify-ca or verify-full) requires TLS"
                .into()
        }
        other => other.to_string(),
    }
}

/// What can go wrong in the store. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url {0} is not supported: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot reach the database at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A password, key or certificate file named by the settings is unusable.
    #[error(transparent)]
    File(#[from] crate::credentials::FileError),
    #[error(
        "the database schema is not up to date ({0}); run `retentiond migrate` or set database.auto_migrate = true"
    )]
    NotMigrated(String),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {name}: {source}")]
    Conflict {
        name: String,
        #[source]
        source: LifecycleError,
    },
    #[error("a job named {name} already exists")]
    NameTaken {
        name: String,
        /// Position of the offending job in the batch given to [`Store::create_jobs`].
        index: usize,
    },
    /// PostgreSQL cancelled a statement at `database.statement_timeout`; its transaction rolled back.
    #[error("database error: {0}")]
    StatementTimeout(String),
    #[error("database error: {0}")]
    Database(String),
    /// The database refuses writes; nothing was written.
    #[error("the database is read-only: {0}")]
    ReadOnly(#[from] ReadOnly),
}

/// Why a database refuses writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadOnly {
    #[error("the PostgreSQL server is a standby in recovery (pg_is_in_recovery()); point database.url at the primary")]
    Standby,
    #[error(
        "new PostgreSQL sessions are read-only (transaction_read_only: default_transaction_read_only is on for \
         this database, role or server)"
    )]
    Sessions,
    /// PostgreSQL refused a write (SQLSTATE 25006), with its message.
    #[error("PostgreSQL refused a write: {0}")]
    Refused(String),
    #[error("the SQLite file {0} is not writable by this process (permissions or a read-only mount)")]
    File(String),
    #[error(
        "the directory {0} of the SQLite file is not writable by this process (SQLite keeps its -wal and -shm \
         files there)"
    )]
    Directory(String),
}

/// PostgreSQL's SQLSTATE for a statement cancelled by `statement_timeout` (or by hand).
const QUERY_CANCELED: &str = "57014";
/// PostgreSQL's SQLSTATE for a write in a read-only transaction (a standby, `default_transaction_read_only`).
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error.as_database_error().and_then(|e| e.code()).as_deref() {
            Some(QUERY_CANCELED) => StoreError::StatementTimeout(error.to_string()),
            Some(READ_ONLY_SQL_TRANSACTION) => StoreError::ReadOnly(ReadOnly::Refused(error.to_string())),
            _ => StoreError::Database(error.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(format!("migration failed: {error}"))
    }
}

fn conflict(name: &str, source: LifecycleError) -> StoreError {
    StoreError::Conflict { name: crate::lifecycle::quoted(name), source }
}

/// Parses a state or type column; a value the code does not know means the
/// schema and the code disagree.
fn parse_column<T: std::str::FromStr<Err = String>>(value: String) -> Result<T, StoreError> {
    value.parse().map_err(StoreError::Database)
}

/// The policy that deletes jobs in a state column's value.
fn policy_of(state: &str) -> Result<Policy, StoreError> {
    Policy::for_state(parse_column(state.to_owned())?)
        .ok_or_else(|| StoreError::Database(format!("state {state} belongs to no retention policy")))
}

/// Reads the result of a backend's `COUNT_ELIGIBLE`: per policy, a count
/// column named after it and a `<policy>_oldest` column, each decoded by the
/// backend's own reader.
fn eligible_from_row(
    count: impl Fn(&str) -> Result<i64, StoreError>,
    oldest: impl Fn(&str) -> Result<Option<DateTime<Utc>>, StoreError>,
) -> Result<PerPolicy<EligibleJobs>, StoreError> {
    let mut eligible = PerPolicy::<EligibleJobs>::default();
    for policy in Policy::ALL {
        let name = policy.as_str();
        eligible[policy] = EligibleJobs { count: count(name)? as u64, oldest: oldest(&format!("{name}_oldest"))? };
    }
    Ok(eligible)
}

/// A row of a backend's `FORECAST`.
fn forecast_count(policy: &str, held: bool, day: i64, jobs: i64) -> Result<ForecastCount, StoreError> {
    let policy = Policy::ALL
        .into_iter()
        .find(|p| p.as_str() == policy)
        .ok_or_else(|| StoreError::Database(format!("the forecast names no policy {policy:?}")))?;
    Ok(ForecastCount { policy, held, day, jobs: jobs as u64 })
}

/// Checks that every migration the binary carries has been applied.
fn check_versions(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<(), StoreError> {
    let missing: Vec<String> = migrator
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(StoreError::NotMigrated(format!("missing {}", missing.join(", ")))) }
}

/// Which jobs `list_jobs` returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in these states; empty means every state.
    pub states: Vec<JobState>,
    pub limit: Option<u64>,
}

/// Which audit entries `audit_entries` returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub job_name: Option<String>,
    pub run_id: Option<i64>,
    pub limit: Option<u64>,
}

/// A job that a policy would delete now, in deletion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub policy: Policy,
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
}

/// One step of a dry run: which jobs qualify and how many to list.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest<'a> {
    pub cutoffs: &'a Cutoffs,
    /// Resume each policy's scan after these keys.
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

/// One policy's range as [`Store::eligible_ids`] binds it: the cut-off, the
/// (timestamp, id) after which it starts, the (timestamp, id) at which it
/// ends, and the limit; a policy not read binds no cut-off and limit 0.
struct IdRangeBinds {
    cutoff: Option<DateTime<Utc>>,
    after: (DateTime<Utc>, i64),
    through: (DateTime<Utc>, i64),
    limit: i64,
}

impl IdRangeBinds {
    fn of(range: Option<&IdRange>) -> IdRangeBinds {
        let start = (policy::start_of_time(), i64::MIN);
        match range {
            None => IdRangeBinds { cutoff: None, after: start, through: start, limit: 0 },
            Some(range) => IdRangeBinds {
                cutoff: Some(range.cutoff),
                after: range.after.map_or(start, |key| (key.timestamp, key.job_id)),
                through: range.through.map_or((range.cutoff, i64::MAX), |key| (key.timestamp, key.job_id)),
                limit: i64::from(range.limit),
            },
        }
    }
}

/// What [`Store::eligible_ids`] read of one policy: the ids in the
/// policy's age order, and the key of the last, where the next read starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EligibleIds {
    pub ids: Vec<i64>,
    pub last: Option<SortKey>,
}

impl EligibleIds {
    fn push(&mut self, key: SortKey) {
        self.ids.push(key.job_id);
        self.last = Some(key);
    }
}

// ---------------------------------------------------------------------------
// What the status pages and `forecast` read (issue 13)
// ---------------------------------------------------------------------------

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

/// Which audit rows a page of the audit search shows, and from where.
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

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies the pending migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Fails with [`StoreError::NotMigrated`] unless every migration is applied.
    async fn check_migrated(&self) -> Result<(), StoreError>;

    /// The database's clock, so every replica agrees on "now".
    async fn now(&self) -> Result<DateTime<Utc>, StoreError>;

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

    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    /// Run records, newest first.
    async fn runs(&self, limit: Option<u64>) -> Result<Vec<RunRecord>, StoreError>;

    /// Marks runs left `running` by dead processes as `abandoned`, then
    /// records a new run as `running`; returns its id and the clock's
    /// reading as [`Store::clock_and_skew`] takes it. PostgreSQL does both
    /// in one statement: an idle sweep's time is mostly round trips.
    async fn begin_run(
        &self,
        trigger: &str,
        owner: &ProcessIdentity,
        retentions: &Retentions,
    ) -> Result<(i64, ClockReading), StoreError>;

    /// Records how a run ended.
    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError>;

    /// The database's clock, and the jobs in the future of it (a dry run's
    /// start; a deleting sweep's comes with [`Store::begin_run`]).
    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError>;

    /// How many jobs each policy finds eligible under `cutoffs`, and the oldest of them.
    async fn eligible_jobs(&self, cutoffs: &Cutoffs) -> Result<PerPolicy<EligibleJobs>, StoreError>;

    /// Takes the store-wide sweep lock (`schedule.singleton`) unless another
    /// process holds it; `false` means another replica is sweeping. On
    /// PostgreSQL it is a session advisory lock, freed by [`Store::end_lead`]
    /// or when this process dies. SQLite always answers `true`: a file has
    /// one host, and its write lock already serialises the batches.
    async fn try_lead(&self) -> Result<bool, StoreError>;

    /// Releases the lock [`Store::try_lead`] took.
    async fn end_lead(&self);

    /// The least pause between two batches of a sweep, so that the
    /// application's own writers get a turn. SQLite: 25 ms (see its store);
    /// PostgreSQL: none, a batch locks only the rows it deletes.
    fn pause_between_batches(&self) -> Duration;

    /// A number that changes whenever another connection commits to the
    /// store, read between batches: a sweep lets its pause go on while the
    /// application's writers are still getting through (src/sweep/pause.rs).
    /// SQLite: `PRAGMA data_version`, on a connection kept for it. `None`
    /// where a batch holds no writer back: PostgreSQL, SQLite in memory.
    async fn commit_counter(&self) -> Result<Option<i64>, StoreError>;

    /// Work between two batches of a sweep, outside any transaction. SQLite
    /// checkpoints the WAL the batch wrote, so that the next batch writes it
    /// from its start again instead of growing it; PostgreSQL: nothing.
    async fn after_batch(&self) -> Result<(), StoreError>;

    /// One short step of handing the space deleted rows left back to the
    /// file system; returns what is left to do (0: done). SQLite: a few
    /// hundred free pages per step (`incremental_vacuum`, in a file created
    /// with `auto_vacuum = INCREMENTAL`), then a truncating WAL checkpoint.
    /// PostgreSQL: nothing; autovacuum does it.
    async fn release_space(&self) -> Result<u64, StoreError>;

    /// The next eligible jobs oldest first, without deleting anything: the dry run.
    async fn find_eligible(&self, batch: BatchRequest<'_>) -> Result<Vec<Candidate>, StoreError>;

    /// The key of the `n`-th oldest eligible job over all policies (each
    /// policy's age timestamp, ties by id), or `None` when fewer are
    /// eligible: the last job of a sweep capped at `n` deletions.
    async fn nth_eligible(&self, cutoffs: &Cutoffs, n: u64) -> Result<Option<SortKey>, StoreError>;

    /// The ids of the next eligible jobs of each policy given a range, read
    /// from the policies' partial indexes alone, in one statement.
    async fn eligible_ids(&self, ranges: &PerPolicy<Option<IdRange>>) -> Result<PerPolicy<EligibleIds>, StoreError>;

    /// Deletes those of `ids` that are still eligible under `cutoffs`, with
    /// their drives and one audit row each, in one transaction; returns them
    /// in id order. The eligibility condition is checked again by the
    /// deleting statement; a job another sweep is deleting is skipped.
    async fn delete_eligible(
        &self,
        run_id: i64,
        cutoffs: &Cutoffs,
        ids: &[i64],
        deleted_by: &str,
    ) -> Result<Vec<DeletedJob>, StoreError>;

    // Read-only databases (SPEC §6): a sweep is skipped while one refuses writes.

    /// Why the database refuses writes now, or `None` when it takes them.
    /// PostgreSQL asks a session opened for the question: a pooled session
    /// keeps the `default_transaction_read_only` it started with. When the
    /// answer changes, the pooled and spare sessions are closed, so the next
    /// sweep runs on sessions that see the change. SQLite: the file or its
    /// directory is not writable by this process.
    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError>;

    // Credentials and TLS files read again on a reload (SIGHUP).

    /// Reads `database.password_file` and the TLS files again and uses them
    /// for every new connection, so a rotated password or client key takes
    /// effect without a restart; on an error the previous ones stay in use.
    /// `false`: no such file is configured (always, on SQLite).
    async fn reload_credentials(&self) -> Result<bool, StoreError>;

    /// Ends every session the store holds, each with a goodbye to the
    /// server, once no sweep is in flight (a pooled session still in use is
    /// ended when it is given back). A PostgreSQL server logs every session
    /// whose client went away without one ("could not receive data from
    /// client") and counts it in `pg_stat_database.sessions_abandoned`.
    async fn close(&self);

    // --- The audit trail's own lifecycle and its export (src/trail.rs, src/export.rs) ---

    /// Removes, in one transaction, at most `limit` audit rows that
    /// `removal` lets go, next in (deleted_at, id) order; returns their keys.
    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError>;

    /// Removes, in one transaction, at most `limit` run records that
    /// `removal` lets go, next in (finished_at, id) order; returns their keys.
    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError>;

    /// The first and last id of the audit rows deleted at or after `since`
    /// and before `until` (`None`: unbounded); `None` when there is none.
    async fn audit_id_range(&self, window: &AuditWindow) -> Result<Option<(i64, i64)>, StoreError>;

    /// At most `limit` audit entries with an id above `after` and at most
    /// `last`, in id order.
    async fn audit_page(&self, after: i64, last: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    // --- The status pages and `forecast` (issue 13) ---

    /// The jobs that become eligible in each day of `window`, per policy,
    /// with held jobs counted apart; counts of zero may be left out.
    async fn forecast(&self, window: ForecastWindow<'_>) -> Result<Vec<ForecastCount>, StoreError>;

    /// How many jobs carry a hold.
    async fn count_held(&self) -> Result<u64, StoreError>;

    /// At most `limit` held jobs after `after`, oldest (by `created_at`) first.
    async fn held_jobs(&self, after: Option<HeldKey>, limit: u32) -> Result<Vec<HeldJob>, StoreError>;

    async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError>;

    /// At most `limit` run records with an id below `before`, newest first.
    async fn runs_before(&self, before: i64, limit: u32) -> Result<Vec<RunRecord>, StoreError>;

    /// At most `limit` audit rows of `search`.
    async fn search_audit(&self, search: &AuditSearch, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Which audit rows `audit export` writes: deleted at or after `since` and before `until`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditWindow {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}
