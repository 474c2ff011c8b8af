//! The SQLite store, the embedded default: WAL journal, a busy timeout, and
//! every write in a `BEGIN IMMEDIATE` transaction, so a transaction that reads
//! then writes takes the write lock up front instead of failing with
//! SQLITE_BUSY halfway. The file is created readable by its owner only
//! (`file`); checkpoints, the space a sweep frees and the commit counter a
//! sweep's pause watches are its upkeep (`upkeep`). "Now" is this process's
//! clock: the database is embedded, and SQLite keeps no clock to the
//! microsecond.

mod file;
/// Public so that tests can examine the query plans.
pub mod sql;
mod upkeep;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteError, SqliteJournalMode, SqlitePool, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{ConnectOptions, Sqlite, Transaction};

use self::upkeep::Upkeep;
use super::common::{
    self, Codec, Db, Driver, NoConnection, Purpose, Statements, decode, enabled_rules, first_connection, pool_options,
};
use super::records::{
    AuditRemoval, Batch, ClockReading, DeletedBatch, DeletedJobs, EligibleIds, FirstIds, IdRange, NewRun, RunOutcome,
    RunRemoval, TrailKey,
};
use super::{AdminStore, ReadOnly, Refusal, StoreError, SweepStore};
use crate::config::DatabaseSettings;
use crate::identity::ProcessIdentity;
use crate::model::truncate;
use crate::policy::{PerRule, Retentions};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The write lock left free after each batch: a writer waiting for it sleeps
/// in SQLite's busy handler, retrying on a timetable of its own and never
/// told that the lock was freed, so a sweep that took it again at once would
/// starve it (`docs/operations.md`, "The live workload").
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(25);

/// SQLite's primary result code for "database is locked".
const SQLITE_BUSY: i32 = 5;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file; `None` in memory.
    file: Option<PathBuf>,
    upkeep: Upkeep,
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
            // The upkeep checkpoints outside commits instead (see `upkeep`).
            .pragma("wal_autocheckpoint", "0")
            .log_statements(tracing::log::LevelFilter::Trace);
        let file = Some(options.get_filename().to_path_buf()).filter(|path| path.as_os_str() != ":memory:");
        if let Some(path) = &file {
            file::create_private(path).map_err(|e| unreachable(e.to_string()))?;
            // SQLite would open it read-only, then fail on the first pragma that writes.
            if let Some(reason) = file::read_only(path)? {
                return Err(StoreError::ReadOnly(ReadOnly::new(reason)));
            }
        }
        probe_while_busy(&options, settings.connect_timeout).await.map_err(unreachable)?;
        let pool = pool_options::<Sqlite>(settings).connect_lazy_with(options);
        Ok(SqliteStore { pool, upkeep: Upkeep::new(file.as_deref()), file })
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
        match first_connection::<SqliteConnection>(options, left).await {
            Err(NoConnection::Failed(error)) if is_busy(&error) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(NoConnection::Failed(error)) => return Err(error.to_string()),
            Err(NoConnection::TimedOut(reason)) => return Err(reason),
            Ok(connection) => {
                let _ = sqlx::Connection::close(connection).await;
                return Ok(());
            }
        }
    }
}

/// Whether SQLite answered SQLITE_BUSY (or one of its extended codes).
fn is_busy(error: &sqlx::Error) -> bool {
    let Some(refusal) = error.as_database_error().and_then(|error| error.try_downcast_ref::<SqliteError>()) else {
        return false;
    };
    refusal.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

/// SQLite's refusals mean no more than they say: a write waits for the lock
/// up to the busy timeout and then fails like any other error, and a file
/// this process cannot write is found before any write (`file::read_only`).
pub(super) fn classify(_error: &sqlx::Error) -> Option<Refusal> {
    None
}

/// The database's clock: this process's, to the microsecond.
fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// Timestamps are INTEGER microseconds since the epoch; lists are JSON arrays (`json_each`).
impl Codec for Sqlite {
    type Time = i64;
    type Ids = Json<Vec<i64>>;
    type Names = Json<Vec<String>>;

    fn store_time(time: DateTime<Utc>) -> i64 {
        time.timestamp_micros()
    }

    fn load_time(stored: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(stored)
            .ok_or_else(|| StoreError::Database(format!("timestamp {stored} is out of range")))
    }

    fn ids(ids: &[i64]) -> Self::Ids {
        Json(ids.to_vec())
    }

    fn names(names: Vec<String>) -> Self::Names {
        Json(names)
    }
}

impl Driver for SqliteStore {
    type Db = Sqlite;

    const SQL: &'static Statements = &sql::STATEMENTS;
    const MIGRATOR: &'static Migrator = &MIGRATOR;

    fn pool(&self, _purpose: Purpose) -> &SqlitePool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Commits, then checkpoints if the WAL has grown.
    async fn commit(&self, tx: Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.upkeep.checkpoint_if_grown(&self.pool).await
    }

    fn transaction_clock(&self, _row: &SqliteRow) -> Result<DateTime<Utc>, StoreError> {
        Ok(now())
    }
}

impl SqliteStore {
    /// Runs one removal of the audit trail's lifecycle in a write
    /// transaction of its own; returns the keys of the rows it removed.
    async fn remove_trail(
        &self,
        statement: &'static str,
        args: &[common::Arg<'_>],
    ) -> Result<Vec<TrailKey>, StoreError> {
        let mut tx = self.begin().await?;
        let rows = Sqlite::query(statement, args).fetch_all(&mut *tx).await?;
        // Checkpointed by after_batch, between batches.
        tx.commit().await?;
        decode::all(&rows, decode::trail_key::<Sqlite>)
    }

    /// Records a run that found nothing, begun at `started`: one statement,
    /// or a transaction when a dead process left a run running.
    async fn record_idle_run(&self, run: &NewRun<'_>, started: DateTime<Utc>) -> Result<i64, StoreError> {
        let (owner, finished) = (run.owner, now());
        let running = Sqlite::query(sql::SELECT_RUNNING_RUNS, &[]).fetch_all(&self.pool).await?;
        let dead = dead_runs(owner, &running)?;
        let mut args = common::run_owner_args(run).to_vec();
        args.extend([started.into(), finished.max(started).into()]);
        let insert = Sqlite::query(sql::INSERT_IDLE_RUN, &args);
        let row = if dead.is_empty() {
            insert.fetch_one(&self.pool).await?
        } else {
            let mut tx = self.begin().await?;
            mark_abandoned(&mut tx, &dead, finished).await?;
            let row = insert.fetch_one(&mut *tx).await?;
            self.commit(tx).await?;
            row
        };
        self.upkeep.checkpoint_if_grown(&self.pool).await?;
        Sqlite::int(&row, "id")
    }
}

/// The runs of `running` (rows of `sql::SELECT_RUNNING_RUNS`) whose process
/// died: SQLite runs on one host, so a run is live only while the process
/// that recorded it is; anything else was left by a process that died.
fn dead_runs(owner: &ProcessIdentity, running: &[SqliteRow]) -> Result<Vec<(i64, String, i64)>, StoreError> {
    let mut dead = Vec::new();
    for row in running {
        let (id, host, pid) = (Sqlite::int(row, "id")?, Sqlite::text(row, "host")?, Sqlite::int(row, "pid")?);
        if !owner.is_other_live_process(&host, pid, Sqlite::optional_int(row, "process_started")?) {
            dead.push((id, host, pid));
        }
    }
    Ok(dead)
}

/// Marks the runs `dead_runs` found as abandoned at `now`, in `tx`.
async fn mark_abandoned(
    tx: &mut Transaction<'_, Sqlite>,
    dead: &[(i64, String, i64)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for (id, host, pid) in dead {
        Sqlite::query(sql::MARK_RUN_ABANDONED, &[(*id).into(), now.into()]).execute(&mut **tx).await?;
        tracing::warn!(run_id = id, host, pid, "marked a run left running by a dead process as abandoned");
    }
    Ok(())
}

#[async_trait]
impl SweepStore for SqliteStore {
    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError> {
        let now = now();
        let args: Vec<common::Arg> = std::iter::once(now.into()).chain(enabled_rules(retentions)).collect();
        let row = Sqlite::query(sql::COUNT_FUTURE, &args).fetch_one(&self.pool).await?;
        Ok(ClockReading { now, future_jobs: Sqlite::int(&row, "future")? as u64 })
    }

    async fn begin_run(&self, run: &NewRun<'_>) -> Result<(i64, ClockReading), StoreError> {
        let (owner, clock) = (run.owner, self.clock_and_skew(run.retentions).await?);
        let mut tx = self.begin().await?;
        let running = Sqlite::query(sql::SELECT_RUNNING_RUNS, &[]).fetch_all(&mut *tx).await?;
        mark_abandoned(&mut tx, &dead_runs(owner, &running)?, clock.now).await?;
        let mut args = common::run_owner_args(run).to_vec();
        args.push(clock.now.into());
        let run_id = Sqlite::int(&Sqlite::query(sql::INSERT_RUN, &args).fetch_one(&mut *tx).await?, "id")?;
        self.commit(tx).await?;
        Ok((run_id, clock))
    }

    async fn start_sweep(&self, run: &NewRun<'_>, limit: u32) -> Result<(FirstIds, Option<i64>), StoreError> {
        let first = self.clock_and_first_ids(run.retentions, limit).await?;
        let idle_run = if first.found_none() { Some(self.record_idle_run(run, first.clock.now).await?) } else { None };
        Ok((first, idle_run))
    }

    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError> {
        let mut args = common::outcome_args(run_id, outcome);
        args.push(now().into());
        // One statement commits on its own.
        Sqlite::query(sql::FINISH_RUN, &args).execute(&self.pool).await?;
        self.upkeep.checkpoint_if_grown(&self.pool).await
    }

    async fn eligible_ids(
        &self,
        ranges: &PerRule<Option<IdRange>>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<PerRule<EligibleIds>, StoreError> {
        let query = Sqlite::query(sql::SELECT_ELIGIBLE_IDS, &common::id_range_args(ranges, settled));
        // Decoded as they come: a statement's rows held whole weigh megabytes,
        // next to the rows of the batch before, still being logged
        // (docs/operations.md, "Memory").
        let mut rows = query.fetch(&self.pool);
        let mut read = PerRule::default();
        while let Some(row) = rows.try_next().await? {
            decode::add_eligible_id::<Sqlite>(&mut read, &row)?;
        }
        Ok(read)
    }

    /// The audit rows first, then the jobs, in one write transaction: both
    /// statements see the same rows, so they find the same jobs eligible.
    async fn delete_eligible(&self, batch: &Batch<'_>) -> Result<DeletedBatch, StoreError> {
        let mut tx = self.begin().await?;
        let deleted_at = now();
        let still_eligible = common::still_eligible_args(batch.ids, batch.cutoffs);
        let mut audit = still_eligible.clone();
        audit.extend([batch.run_id.into(), deleted_at.into(), batch.deleted_by.into()]);
        let audited = Sqlite::query(sql::AUDIT_ELIGIBLE, &audit).execute(&mut *tx).await?.rows_affected();
        let rows = Sqlite::query(sql::DELETE_ELIGIBLE, &still_eligible).fetch_all(&mut *tx).await?;
        if rows.len() as u64 != audited {
            // Cannot happen inside one write transaction; if it did, the
            // batch rolls back rather than delete a job without its trace.
            return Err(StoreError::Database(format!(
                "a batch would delete {} jobs but wrote {audited} audit rows; rolled back",
                rows.len()
            )));
        }
        // Checkpointed by after_batch, between batches.
        let commit = common::timed_commit(tx).await?;
        let deleted = DeletedJobs::from_rows(rows, move |row| decode::deleted_job::<Sqlite>(row, deleted_at));
        Ok(DeletedBatch { jobs: deleted, commit })
    }

    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        self.remove_trail(sql::REMOVE_AUDIT_ROWS, &common::audit_removal_args(removal, limit)).await
    }

    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        self.remove_trail(sql::REMOVE_RUN_RECORDS, &common::run_removal_args(removal, limit)).await
    }

    fn pause_between_batches(&self) -> Duration {
        PAUSE_BETWEEN_BATCHES
    }

    /// Never: the read would run in this process, on the cores the batch
    /// needs, and hold a second connection's cache and rows at the batch's
    /// peak; between the batches a purge is quicker and leaner
    /// (docs/operations.md, "Reading ahead").
    fn reads_alongside_batches(&self) -> bool {
        false
    }

    async fn commit_counter(&self) -> Result<Option<i64>, StoreError> {
        self.upkeep.commit_counter(&self.pool).await
    }

    async fn after_batch(&self) -> Result<(), StoreError> {
        // Every batch: it completes before the next batch begins, so the
        // next batch starts the WAL over.
        self.upkeep.checkpoint(&self.pool).await
    }

    async fn release_space(&self) -> Result<u64, StoreError> {
        self.upkeep.release_space(&self.pool).await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx's SQLite migrator takes no lock: processes opening a new file
        // at once would all apply migration 1, and all but one fail. An
        // exclusive flock on the file serialises them (SQLite's own locks are
        // fcntl locks, which flock does not touch); the later ones find the
        // migrations applied.
        let _lock = match &self.file {
            Some(path) => Some(file::lock_exclusively(path.clone()).await?),
            None => None,
        };
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(now())
    }

    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError> {
        // No connection of the pool is read-only: one opened on a file that
        // SQLite cannot write fails on its first pragma and never joins it.
        match &self.file {
            Some(path) => Ok(file::read_only(path)?.map(ReadOnly::new)),
            None => Ok(None),
        }
    }

    async fn close(&self) {
        self.upkeep.close().await;
        self.pool.close().await;
    }
}
