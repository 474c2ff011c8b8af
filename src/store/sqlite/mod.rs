//! The SQLite store, the embedded default: WAL journal, a busy timeout, and
//! every write in a `BEGIN IMMEDIATE` transaction, so a transaction that reads
//! then writes takes the write lock up front instead of failing with
//! SQLITE_BUSY halfway. The database file is created readable by its owner only.
//!
//! Checkpoints (copying the WAL back into the database file, with an fsync)
//! never run inside a commit, as SQLite's automatic checkpoint would, but
//! after it, with the write lock free: a sweep checkpoints between its
//! batches ([`Store::after_batch`]), other writes once the WAL has grown. New files use `auto_vacuum = INCREMENTAL`,
//! so the pages a sweep frees can be handed back to the file system
//! ([`Store::release_space`]).

/// Public so that tests can examine the query plans.
pub mod sql;

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{ConnectOptions, Row};

use super::{
    AuditFilter, AuditSearch, AuditWindow, BatchRequest, Candidate, ClockReading, DeletedJob, EligibleIds,
    EligibleJobs, ForecastCount, ForecastWindow, HeldJob, HeldKey, IdRange, IdRangeBinds, JobFilter, ReadOnly,
    RunOutcome, Store, StoreError, check_versions, conflict, eligible_from_row, first_connection, forecast_count,
    parse_column, policy_of, pool_options, rows,
};
use crate::config::DatabaseSettings;
use crate::identity::ProcessIdentity;
use crate::lifecycle::{Effect, Operation};
use crate::model::{AuditEntry, Drive, Job, MANUAL_POLICY, RunRecord, RunStatus, truncate};
use crate::policy::{Cursors, Cutoffs, PerPolicy, Policy, Retentions, SortKey, start_of_time};
use crate::trail::{AuditRemoval, Removed, RunRemoval, TrailKey};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A commit that leaves more than this in the WAL starts a checkpoint (about
/// SQLite's own default of 1,000 pages).
const CHECKPOINT_AFTER_BYTES: u64 = 4 << 20;

/// A writer that waits for SQLite's write lock sleeps in its busy handler
/// and retries at 1, 3, 8, 18, 33, 53, 78, 103 and 128 ms, then every 50 to
/// 100 ms; it never learns that the lock was freed in between. A sweep that
/// took the lock again at once after each commit would starve it. A free
/// window of 25 ms after each batch always contains one of its retries once
/// it has waited 53 ms, so it waits about one batch plus 25 ms at most.
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(25);

/// `PRAGMA auto_vacuum` of a file whose free pages `incremental_vacuum` returns.
const INCREMENTAL_AUTO_VACUUM: i64 = 2;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file; `None` in memory.
    file: Option<PathBuf>,
    /// The WAL file's size when the last checkpoint started.
    checkpointed_wal_bytes: AtomicU64,
    /// Reads [`Store::commit_counter`]: `PRAGMA data_version` compares what
    /// one connection saw, and a pooled one would take a slot of the pool.
    commit_watch: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl SqliteStore {
    pub async fn connect(settings: &DatabaseSettings) -> Result<SqliteStore, StoreError> {
        let unreachable = |reason: String| StoreError::Unreachable { url: settings.url.redacted(), reason };
        let options = SqliteConnectOptions::from_str(settings.url.expose())
            .map_err(|e| unreachable(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(settings.statement_timeout)
            .foreign_keys(true)
            // Takes effect on a new file only; docs/operations.md says how to convert an old one.
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            // This store checkpoints in the background instead (see the header).
            .pragma("wal_autocheckpoint", "0")
            .log_statements(tracing::log::LevelFilter::Trace);
        let file = Some(options.get_filename().to_path_buf()).filter(|path| path.as_os_str() != ":memory:");
        if let Some(path) = &file {
            create_private_file(path).map_err(|e| unreachable(e.to_string()))?;
            // SQLite would open it read-only, then fail on the first pragma that writes.
            if let Some(reason) = read_only_file(path)? {
                return Err(StoreError::ReadOnly(reason));
            }
        }
        probe_while_busy(&options, settings.connect_timeout).await.map_err(unreachable)?;
        let pool = pool_options::<sqlx::Sqlite>(settings).connect_lazy_with(options);
        Ok(SqliteStore {
            pool,
            file,
            checkpointed_wal_bytes: AtomicU64::new(0),
            commit_watch: tokio::sync::Mutex::new(None),
        })
    }

    async fn write_transaction(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Commits a write transaction, then checkpoints if the WAL has grown.
    async fn commit(&self, tx: sqlx::Transaction<'static, sqlx::Sqlite>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.checkpoint_if_grown().await
    }

    /// A passive checkpoint when the WAL file has grown past 4 MiB and past
    /// its size at the last checkpoint. It runs after the commit, with the
    /// write lock free, and completes before this connection writes again,
    /// so the next write starts the WAL over (a checkpoint left running
    /// while writes go on would never find it fully copied, and the WAL
    /// would grow with every write). The file only grows again once it holds
    /// that much unchecked work: about one checkpoint per 4 MiB, as SQLite's
    /// own automatic checkpoint would do inside the commit. A passive
    /// checkpoint neither takes the write lock nor waits for readers.
    async fn checkpoint_if_grown(&self) -> Result<(), StoreError> {
        let Some(file) = &self.file else { return Ok(()) };
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        let size = std::fs::metadata(&wal).map_or(0, |meta| meta.len());
        if size > CHECKPOINT_AFTER_BYTES.max(self.checkpointed_wal_bytes.load(Ordering::Acquire)) {
            self.checkpointed_wal_bytes.store(size, Ordering::Release);
            sqlx::query(sql::CHECKPOINT_PASSIVE).execute(&self.pool).await?;
        }
        Ok(())
    }
}

/// Opens and closes one connection, tried again for up to `timeout` while
/// SQLite answers "database is locked": processes opening a new file at once
/// race to switch it to WAL, and the losers get SQLITE_BUSY at once, without
/// the busy handler's wait.
async fn probe_while_busy(options: &SqliteConnectOptions, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match first_connection::<SqliteConnection>(options, left, None).await {
            Err(reason) if reason.contains("database is locked") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(reason) => return Err(reason),
            Ok(connection) => {
                let _ = sqlx::Connection::close(connection).await;
                return Ok(());
            }
        }
    }
}

/// Creates the database file with mode 0600 if it does not exist yet, so job
/// data is never world-readable, not even for the moment before a chmod.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            Err(std::io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Why this process cannot write the database file `file` (or create the
/// journal files beside it), if it cannot.
fn read_only_file(file: &Path) -> Result<Option<ReadOnly>, StoreError> {
    let directory = file.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(if !writable(file)? {
        Some(ReadOnly::File(file.display().to_string()))
    } else if !writable(directory)? {
        Some(ReadOnly::Directory(directory.display().to_string()))
    } else {
        None
    })
}

/// Whether this process may write `path`, asked with access(2): it sees
/// permissions, read-only mounts and immutable files, and opens nothing (a
/// descriptor of the database file closed by this process would drop the
/// POSIX locks SQLite holds on it).
fn writable(path: &Path) -> Result<bool, StoreError> {
    use rustix::io::Errno;
    match rustix::fs::access(path, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Ok(true),
        Err(Errno::ACCESS | Errno::ROFS | Errno::PERM | Errno::TXTBSY) => Ok(false),
        Err(errno) => Err(StoreError::Database(format!(
            "cannot tell whether {} is writable: {}",
            path.display(),
            std::io::Error::from(errno)
        ))),
    }
}

/// Waits for an exclusive advisory lock on `path`, released when the file is dropped.
async fn lock_exclusively(path: PathBuf) -> Result<File, StoreError> {
    let locked = tokio::task::spawn_blocking(move || {
        let file = File::open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Database(format!("migration lock: {e}")))?;
    locked.map_err(|e| StoreError::Database(format!("cannot lock the database file for migrating: {e}")))
}

fn micros(timestamp: DateTime<Utc>) -> i64 {
    timestamp.timestamp_micros()
}

fn from_micros(value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Database(format!("timestamp {value} is out of range")))
}

fn optional_micros(value: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    value.map(from_micros).transpose()
}

/// A `LIMIT` value: SQLite reads -1 as "no limit".
fn limit(limit: Option<u64>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Reads a `jobs` row (without drives) and its id.
fn job_from_row(row: &SqliteRow) -> Result<(i64, Job), StoreError> {
    let job = Job {
        name: row.try_get("name")?,
        job_type: parse_column(row.try_get("job_type")?)?,
        state: parse_column(row.try_get("state")?)?,
        cancel_requested: row.try_get("cancel_requested")?,
        cancel_requested_at: optional_micros(row.try_get("cancel_requested_at")?)?,
        hold_reason: row.try_get("hold_reason")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        state_changed_at: from_micros(row.try_get("state_changed_at")?)?,
        drives: Vec::new(),
    };
    Ok((row.try_get("id")?, job))
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        job_name: row.try_get("job_name")?,
        job_type: parse_column(row.try_get("job_type")?)?,
        policy: row.try_get("policy")?,
        state: parse_column(row.try_get("state")?)?,
        cancel_requested: row.try_get("cancel_requested")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        state_changed_at: from_micros(row.try_get("state_changed_at")?)?,
        deleted_at: from_micros(row.try_get("deleted_at")?)?,
        deleted_by: row.try_get("deleted_by")?,
    })
}

fn run_from_row(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let counts = PerPolicy {
        completed: row.try_get::<i64, _>("deleted_completed")? as u64,
        closed: row.try_get::<i64, _>("deleted_closed")? as u64,
        creating_idle: row.try_get::<i64, _>("deleted_creating_idle")? as u64,
    };
    Ok(RunRecord {
        run_id: row.try_get("id")?,
        trigger: row.try_get("trigger")?,
        started_at: from_micros(row.try_get("started_at")?)?,
        finished_at: optional_micros(row.try_get("finished_at")?)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("unknown run status {status:?}")))?,
        total: counts.total(),
        counts,
        stopped_by: row.try_get("stopped_by")?,
        error: row.try_get("error")?,
        host: row.try_get("host")?,
        pid: row.try_get("pid")?,
        removed: Removed {
            audit_rows: row.try_get::<i64, _>("audit_rows_removed")? as u64,
            runs: row.try_get::<i64, _>("runs_removed")? as u64,
        },
    })
}

fn held_from_row(row: &SqliteRow) -> Result<HeldJob, StoreError> {
    Ok(HeldJob {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        job_type: parse_column(row.try_get("job_type")?)?,
        state: parse_column(row.try_get("state")?)?,
        hold_reason: row.try_get("hold_reason")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        state_changed_at: from_micros(row.try_get("state_changed_at")?)?,
    })
}

/// Attaches each job's drives, read in one query.
async fn with_drives(conn: &mut SqliteConnection, jobs: Vec<(i64, Job)>) -> Result<Vec<Job>, StoreError> {
    let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
    let mut drives = Vec::new();
    for row in sqlx::query(sql::SELECT_DRIVES_OF_JOBS).bind(Json(&ids)).fetch_all(&mut *conn).await? {
        let drive = Drive {
            drive_id: row.try_get("drive_id")?,
            state: parse_column(row.try_get("state")?)?,
            bytes: row.try_get("bytes")?,
        };
        drives.push((row.try_get("job_id")?, drive));
    }
    Ok(rows::attach_drives(jobs, drives))
}

async fn job_by_name(conn: &mut SqliteConnection, name: &str) -> Result<(i64, Job), StoreError> {
    let row = sqlx::query(sql::SELECT_JOB_BY_NAME)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(crate::lifecycle::quoted(name)))?;
    job_from_row(&row)
}

/// One row of an audit insert, as JSON for `json_each`.
#[derive(Serialize)]
struct AuditInsert<'a> {
    job_id: i64,
    job_name: &'a str,
    job_type: &'static str,
    policy: &'a str,
    state: &'static str,
    cancel_requested: bool,
    created_at: i64,
    state_changed_at: i64,
}

/// Binds the ten parameters of the eligibility statements.
fn bind_batch<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    cutoffs: &Cutoffs,
    after: &Cursors,
    limit: u32,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut query = query;
    for policy in Policy::ALL {
        query = query.bind(cutoffs[policy].map(micros));
    }
    for policy in Policy::ALL {
        let (timestamp, id) = after[policy].map_or((i64::MIN, i64::MIN), |key| (micros(key.timestamp), key.job_id));
        query = query.bind(timestamp).bind(id);
    }
    query.bind(i64::from(limit))
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx's SQLite migrator takes no lock: processes opening a new file
        // at once would all apply migration 1, and all but one fail. An
        // exclusive flock on the file serialises them (SQLite's own locks are
        // fcntl locks, which flock does not touch); the later ones find the
        // migrations applied.
        let _lock = match &self.file {
            Some(path) => Some(lock_exclusively(path.clone()).await?),
            None => None,
        };
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn check_migrated(&self) -> Result<(), StoreError> {
        // No migrations table means nothing is applied; any other error (no
        // permission to read it, say) is reported as it is.
        let applied: Vec<i64> = match sqlx::query_scalar(sql::SELECT_MIGRATION_VERSIONS).fetch_all(&self.pool).await {
            Err(sqlx::Error::Database(error)) if error.message().contains("no such table") => Vec::new(),
            result => result?,
        };
        check_versions(&MIGRATOR, &applied)
    }

    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        // The database is embedded: its clock is this process's clock.
        Ok(truncate(Utc::now()))
    }

    async fn create_jobs(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut tx = self.write_transaction().await?;
        let taken: Vec<String> =
            sqlx::query_scalar(sql::SELECT_TAKEN_NAMES).bind(Json(rows::names(jobs))).fetch_all(&mut *tx).await?;
        rows::ensure_names_free(jobs, &taken)?;
        sqlx::query(sql::INSERT_JOBS).bind(Json(rows::job_rows(jobs, micros))).execute(&mut *tx).await?;
        let drives = rows::drive_rows(jobs);
        if !drives.is_empty() {
            sqlx::query(sql::INSERT_DRIVES).bind(Json(drives)).execute(&mut *tx).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    async fn job(&self, name: &str) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match job_by_name(&mut conn, name).await {
            Ok(job) => Ok(with_drives(&mut conn, vec![job]).await?.pop()),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let states: Option<Vec<&str>> =
            (!filter.states.is_empty()).then(|| filter.states.iter().map(|s| s.as_str()).collect());
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql::SELECT_JOBS)
            .bind(states.map(Json))
            .bind(limit(filter.limit))
            .fetch_all(&mut *conn)
            .await?;
        let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
        with_drives(&mut conn, jobs).await
    }

    async fn change_job(&self, name: &str, operation: &Operation) -> Result<Job, StoreError> {
        let mut tx = self.write_transaction().await?;
        let (id, mut job) = job_by_name(&mut tx, name).await?;
        let effect = crate::lifecycle::decide(&job.status(), operation).map_err(|e| conflict(name, e))?;
        if job.apply(&effect, self.now().await?) {
            sqlx::query(sql::UPDATE_JOB)
                .bind(id)
                .bind(job.state.as_str())
                .bind(job.cancel_requested)
                .bind(job.cancel_requested_at.map(micros))
                .bind(job.hold_reason.as_deref())
                .bind(micros(job.updated_at))
                .bind(micros(job.state_changed_at))
                .execute(&mut *tx)
                .await?;
        }
        let job = with_drives(&mut tx, vec![(id, job)]).await?.remove(0);
        self.commit(tx).await?;
        Ok(job)
    }

    async fn delete_job(&self, name: &str, deleted_by: &str) -> Result<AuditEntry, StoreError> {
        let mut tx = self.write_transaction().await?;
        let (id, job) = job_by_name(&mut tx, name).await?;
        let effect = crate::lifecycle::decide(&job.status(), &Operation::Delete).map_err(|e| conflict(name, e))?;
        debug_assert_eq!(effect, Effect::Delete);
        sqlx::query(sql::DELETE_JOB).bind(id).execute(&mut *tx).await?;
        let audit = [AuditInsert {
            job_id: id,
            job_name: &job.name,
            job_type: job.job_type.as_str(),
            policy: MANUAL_POLICY,
            state: job.state.as_str(),
            cancel_requested: job.cancel_requested,
            created_at: micros(job.created_at),
            state_changed_at: micros(job.state_changed_at),
        }];
        let audit_id: i64 = sqlx::query_scalar(sql::INSERT_AUDIT)
            .bind(None::<i64>)
            .bind(micros(self.now().await?))
            .bind(deleted_by)
            .bind(Json(&audit))
            .fetch_one(&mut *tx)
            .await?;
        let row = sqlx::query(sql::SELECT_AUDIT_BY_ID).bind(audit_id).fetch_one(&mut *tx).await?;
        self.commit(tx).await?;
        audit_from_row(&row)
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(sql::SELECT_AUDIT)
            .bind(filter.job_name.as_deref())
            .bind(filter.run_id)
            .bind(limit(filter.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn runs(&self, limit_to: Option<u64>) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(sql::SELECT_RUNS).bind(limit(limit_to)).fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn begin_run(
        &self,
        trigger: &str,
        owner: &ProcessIdentity,
        retentions: &Retentions,
    ) -> Result<(i64, ClockReading), StoreError> {
        let clock = self.clock_and_skew(retentions).await?;
        let now = micros(clock.now);
        let mut tx = self.write_transaction().await?;
        // SQLite runs on one host, so a run is live only while the process
        // that recorded it is; anything else was left by a process that died.
        let running = sqlx::query(sql::SELECT_RUNNING_RUNS).fetch_all(&mut *tx).await?;
        for row in running {
            let (id, host, pid): (i64, String, i64) = (row.try_get("id")?, row.try_get("host")?, row.try_get("pid")?);
            if !owner.is_other_live_process(&host, pid, row.try_get("process_started")?) {
                sqlx::query(sql::MARK_RUN_ABANDONED).bind(id).bind(now).execute(&mut *tx).await?;
                tracing::warn!(run_id = id, host, pid, "marked a run left running by a dead process as abandoned");
            }
        }
        let run_id: i64 = sqlx::query_scalar(sql::INSERT_RUN)
            .bind(trigger)
            .bind(now)
            .bind(&owner.host)
            .bind(i64::from(owner.pid))
            .bind(owner.started.map(|ticks| ticks as i64))
            .fetch_one(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok((run_id, clock))
    }

    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError> {
        // One statement commits on its own.
        sqlx::query(sql::FINISH_RUN)
            .bind(run_id)
            .bind(outcome.status.as_str())
            .bind(micros(self.now().await?))
            .bind(outcome.counts.completed as i64)
            .bind(outcome.counts.closed as i64)
            .bind(outcome.counts.creating_idle as i64)
            .bind(outcome.stopped_by.as_deref())
            .bind(outcome.error.as_deref())
            .bind(outcome.removed.audit_rows as i64)
            .bind(outcome.removed.runs as i64)
            .execute(&self.pool)
            .await?;
        self.checkpoint_if_grown().await
    }

    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError> {
        let now = self.now().await?;
        let count: i64 = sqlx::query_scalar(sql::COUNT_FUTURE)
            .bind(micros(now))
            .bind(retentions.completed.is_some())
            .bind(retentions.closed.is_some())
            .bind(retentions.creating_idle.is_some())
            .fetch_one(&self.pool)
            .await?;
        Ok(ClockReading { now, future_jobs: count as u64 })
    }

    async fn eligible_jobs(&self, cutoffs: &Cutoffs) -> Result<PerPolicy<EligibleJobs>, StoreError> {
        let row = sqlx::query(sql::COUNT_ELIGIBLE)
            .bind(cutoffs.completed.map(micros))
            .bind(cutoffs.closed.map(micros))
            .bind(cutoffs.creating_idle.map(micros))
            .fetch_one(&self.pool)
            .await?;
        eligible_from_row(|column| Ok(row.try_get(column)?), |column| optional_micros(row.try_get(column)?))
    }

    async fn try_lead(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn pause_between_batches(&self) -> Duration {
        PAUSE_BETWEEN_BATCHES
    }

    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError> {
        // No connection of the pool is read-only: one opened on a file that
        // SQLite cannot write fails on its first pragma and never joins it.
        match &self.file {
            Some(file) => read_only_file(file),
            None => Ok(None),
        }
    }

    async fn commit_counter(&self) -> Result<Option<i64>, StoreError> {
        if self.file.is_none() {
            return Ok(None);
        }
        let mut watch = self.commit_watch.lock().await;
        let conn = match &mut *watch {
            Some(conn) => conn,
            None => watch.insert(self.pool.connect_options().connect().await?),
        };
        Ok(Some(sqlx::query_scalar(sql::DATA_VERSION).fetch_one(conn).await?))
    }

    async fn after_batch(&self) -> Result<(), StoreError> {
        // Every batch: it completes before the next batch begins, so the
        // next batch starts the WAL over (see checkpoint_if_grown).
        if self.file.is_some() {
            sqlx::query(sql::CHECKPOINT_PASSIVE).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn release_space(&self) -> Result<u64, StoreError> {
        if self.file.is_none() {
            return Ok(0);
        }
        let mut conn = self.pool.acquire().await?;
        let auto_vacuum: i64 = sqlx::query_scalar(sql::AUTO_VACUUM).fetch_one(&mut *conn).await?;
        if auto_vacuum == INCREMENTAL_AUTO_VACUUM {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
            sqlx::query(sql::INCREMENTAL_VACUUM_STEP).execute(&mut *tx).await?;
            let free: i64 = sqlx::query_scalar(sql::FREELIST_COUNT).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            if free > 0 {
                return Ok(free as u64);
            }
        }
        // The file shrinks when the checkpoint copies the vacuumed pages;
        // truncating the WAL returns its space too.
        let busy: i64 = sqlx::query_scalar(sql::CHECKPOINT_TRUNCATE).fetch_one(&mut *conn).await?;
        if busy == 0 {
            self.checkpointed_wal_bytes.store(0, Ordering::Release);
        } else {
            tracing::debug!("the WAL is in use; the next sweep truncates it");
        }
        Ok(0)
    }

    async fn end_lead(&self) {}

    async fn find_eligible(&self, batch: BatchRequest<'_>) -> Result<Vec<Candidate>, StoreError> {
        let rows = bind_batch(sqlx::query(sql::SELECT_ELIGIBLE), batch.cutoffs, batch.after, batch.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Candidate {
                    name: row.try_get("name")?,
                    policy: policy_of(row.try_get("state")?)?,
                    key: SortKey { timestamp: from_micros(row.try_get("ts")?)?, job_id: row.try_get("id")? },
                })
            })
            .collect()
    }

    async fn nth_eligible(&self, cutoffs: &Cutoffs, n: u64) -> Result<Option<SortKey>, StoreError> {
        let mut query = sqlx::query(sql::SELECT_NTH_ELIGIBLE);
        for policy in Policy::ALL {
            query = query.bind(cutoffs[policy].map(micros));
        }
        let row = query.bind(i64::try_from(n).unwrap_or(i64::MAX)).fetch_optional(&self.pool).await?;
        row.map(|row| Ok(SortKey { timestamp: from_micros(row.try_get("ts")?)?, job_id: row.try_get("id")? }))
            .transpose()
    }

    async fn eligible_ids(&self, ranges: &PerPolicy<Option<IdRange>>) -> Result<PerPolicy<EligibleIds>, StoreError> {
        let mut query = sqlx::query(sql::SELECT_ELIGIBLE_IDS);
        for policy in Policy::ALL {
            let binds = IdRangeBinds::of(ranges[policy].as_ref());
            query = query
                .bind(binds.cutoff.map(micros))
                .bind(micros(binds.after.0))
                .bind(binds.after.1)
                .bind(micros(binds.through.0))
                .bind(binds.through.1)
                .bind(binds.limit);
        }
        let mut read = PerPolicy::<EligibleIds>::default();
        for row in &query.fetch_all(&self.pool).await? {
            let key = SortKey { timestamp: from_micros(row.try_get("ts")?)?, job_id: row.try_get("id")? };
            read[policy_of(row.try_get("state")?)?].push(key);
        }
        Ok(read)
    }

    async fn delete_eligible(
        &self,
        run_id: i64,
        cutoffs: &Cutoffs,
        ids: &[i64],
        deleted_by: &str,
    ) -> Result<Vec<DeletedJob>, StoreError> {
        let mut tx = self.write_transaction().await?;
        let deleted_at = self.now().await?;
        let bind_ids = |statement| {
            let mut query = sqlx::query(statement).bind(Json(ids));
            for policy in Policy::ALL {
                query = query.bind(cutoffs[policy].map(micros));
            }
            query
        };
        let audited = bind_ids(sql::AUDIT_ELIGIBLE)
            .bind(run_id)
            .bind(micros(deleted_at))
            .bind(deleted_by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let rows = bind_ids(sql::DELETE_ELIGIBLE).fetch_all(&mut *tx).await?;
        if rows.len() as u64 != audited {
            // Cannot happen inside one write transaction; if it did, the
            // batch rolls back rather than delete a job without its trace.
            return Err(StoreError::Database(format!(
                "a batch would delete {} jobs but wrote {audited} audit rows; rolled back",
                rows.len()
            )));
        }
        let mut deleted = Vec::with_capacity(rows.len());
        for row in &rows {
            let state = parse_column(row.try_get("state")?)?;
            let policy = policy_of(row.try_get("state")?)?;
            deleted.push(DeletedJob {
                name: row.try_get("name")?,
                job_type: parse_column(row.try_get("job_type")?)?,
                policy,
                state,
                cancel_requested: row.try_get("cancel_requested")?,
                created_at: from_micros(row.try_get("created_at")?)?,
                state_changed_at: from_micros(row.try_get("state_changed_at")?)?,
                deleted_at,
                key: SortKey { timestamp: from_micros(row.try_get(policy.age_column())?)?, job_id: row.try_get("id")? },
            });
        }
        // Checkpointed by after_batch, between batches.
        tx.commit().await?;
        deleted.sort_by_key(|job| job.key.job_id);
        Ok(deleted)
    }

    async fn reload_credentials(&self) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn close(&self) {
        if let Some(conn) = self.commit_watch.lock().await.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
        self.pool.close().await;
    }

    // --- The audit trail's own lifecycle and its export ---

    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        let query = sqlx::query(sql::REMOVE_AUDIT_ROWS)
            .bind(micros(removal.cutoff))
            .bind(micros(removal.after.at))
            .bind(removal.after.id)
            .bind(i64::from(limit));
        self.remove_trail(query).await
    }

    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        let query = sqlx::query(sql::REMOVE_RUN_RECORDS)
            .bind(micros(removal.spent_cutoff))
            .bind(micros(removal.empty_cutoff))
            .bind(micros(removal.after_spent.at))
            .bind(removal.after_spent.id)
            .bind(micros(removal.after_empty.at))
            .bind(removal.after_empty.id)
            .bind(i64::from(limit));
        self.remove_trail(query).await
    }

    async fn audit_id_range(&self, window: &AuditWindow) -> Result<Option<(i64, i64)>, StoreError> {
        let query = if *window == AuditWindow::default() {
            sqlx::query(sql::SELECT_AUDIT_ID_RANGE)
        } else {
            sqlx::query(sql::SELECT_AUDIT_ID_RANGE_BETWEEN)
                .bind(micros(window.since.unwrap_or_else(start_of_time)))
                .bind(window.until.map_or(i64::MAX, micros))
        };
        let row = query.fetch_one(&self.pool).await?;
        Ok(row.try_get::<Option<i64>, _>("first")?.zip(row.try_get::<Option<i64>, _>("last")?))
    }

    async fn audit_page(&self, after: i64, last: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(sql::SELECT_AUDIT_PAGE)
            .bind(after)
            .bind(last)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    // --- The status pages and `forecast` (issue 13) ---

    async fn forecast(&self, window: ForecastWindow<'_>) -> Result<Vec<ForecastCount>, StoreError> {
        let mut query = sqlx::query(sql::FORECAST);
        for bounds in [window.cutoffs, window.horizons] {
            for policy in Policy::ALL {
                query = query.bind(bounds[policy].map(micros));
            }
        }
        let rows = query.bind(i64::from(window.days)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                forecast_count(row.try_get("policy")?, row.try_get("held")?, row.try_get("day")?, row.try_get("jobs")?)
            })
            .collect()
    }

    async fn count_held(&self) -> Result<u64, StoreError> {
        let held: i64 = sqlx::query_scalar(sql::COUNT_HELD).fetch_one(&self.pool).await?;
        Ok(held as u64)
    }

    async fn held_jobs(&self, after: Option<HeldKey>, limit: u32) -> Result<Vec<HeldJob>, StoreError> {
        let (created_at, id) = after.map_or((i64::MIN, i64::MIN), |key| (micros(key.created_at), key.id));
        let rows = sqlx::query(sql::SELECT_HELD)
            .bind(created_at)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(held_from_row).collect()
    }

    async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query(sql::SELECT_RUN).bind(run_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn runs_before(&self, before: i64, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let rows =
            sqlx::query(sql::SELECT_RUNS_BEFORE).bind(before).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn search_audit(&self, search: &AuditSearch, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(limit);
        let query = match search {
            AuditSearch::All { before } => sqlx::query(sql::SELECT_AUDIT_BEFORE).bind(*before).bind(limit),
            AuditSearch::Run { run_id, before } => {
                sqlx::query(sql::SELECT_AUDIT_OF_RUN).bind(*run_id).bind(*before).bind(limit)
            }
            AuditSearch::Name { name, run_id, before } => {
                sqlx::query(sql::SELECT_AUDIT_OF_NAME).bind(name.as_str()).bind(*run_id).bind(*before).bind(limit)
            }
            AuditSearch::NameRange { until, after_name, after_id } => sqlx::query(sql::SELECT_AUDIT_OF_NAME_RANGE)
                .bind(until.as_str())
                .bind(after_name.as_str())
                .bind(*after_id)
                .bind(limit),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }
}

impl SqliteStore {
    /// Runs a removal of the trail in a write transaction of its own;
    /// returns the keys (`at`, `id`) of the rows it removed.
    async fn remove_trail(
        &self,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<TrailKey>, StoreError> {
        let mut tx = self.write_transaction().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        // Checkpointed by after_batch, between batches.
        tx.commit().await?;
        rows.iter().map(|row| Ok(TrailKey { at: from_micros(row.try_get("at")?)?, id: row.try_get("id")? })).collect()
    }
}
