//! The concurrent writer: what an application writing to the job store feels
//! while a purge runs. A tokio task on a connection of its own performs, at
//! a fixed rate, alternately (a) a new job in `Creating` with two drives,
//! one transaction, and (b) an update of a live job (`Shipping`, `Received`
//! or `Transferring`, chosen at random from those there at the start).
//!
//! The schedule is open-loop: operation i is due at start + i / rate,
//! whether or not the previous one has finished, and its latency is its end
//! minus its due time. An operation stuck behind a lock therefore also
//! delays the ones due after it, and their waiting counts: that is what a
//! client with a steady arrival rate sees. (Closed-loop, timing each call
//! only from its own start, would hide all but one stalled call.) The
//! latency also includes the writer's own wake-up, which tokio's timer
//! rounds up to the next millisecond.

use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::{Context, Result};
use super::stats::Summary;
use super::stores::{BenchStore, Conn};

const LIVE_JOB_IDS: &str = "SELECT id FROM jobs WHERE state IN ('Shipping', 'Received', 'Transferring')";

/// ?1: name; ?2: now in microseconds.
const SQLITE_INSERT_JOB: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, updated_at, \
     state_changed_at) VALUES (?1, 'Import', 'Creating', 0, ?2, ?2, ?2) RETURNING id";
const SQLITE_INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     VALUES (?1, 'WRITER01', 'Specified', 0), (?1, 'WRITER02', 'Specified', 0)";
/// ?1: job id; ?2: now in microseconds.
const SQLITE_TOUCH: &str = "UPDATE jobs SET updated_at = ?2 WHERE id = ?1";

const POSTGRES_INSERT_JOB: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, \
     updated_at, state_changed_at) VALUES ($1, 'Import', 'Creating', false, now(), now(), now()) RETURNING id";
const POSTGRES_INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     VALUES ($1, 'WRITER01', 'Specified', 0), ($1, 'WRITER02', 'Specified', 0)";
const POSTGRES_TOUCH: &str = "UPDATE jobs SET updated_at = now() WHERE id = $1";

const MARIADB_INSERT_JOB: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, created_at, \
     updated_at, state_changed_at) VALUES (?, 'Import', 'Creating', FALSE, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), \
     UTC_TIMESTAMP(6)) RETURNING id";
const MARIADB_INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     VALUES (?, 'WRITER01', 'Specified', 0), (?, 'WRITER02', 'Specified', 0)";
const MARIADB_TOUCH: &str = "UPDATE jobs SET updated_at = UTC_TIMESTAMP(6) WHERE id = ?";

/// One operation of the writer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Op {
    /// When it was due, in seconds since the writer started.
    pub due_s: f64,
    /// From its due time to its end, in milliseconds.
    pub latency_ms: f64,
}

/// Everything a writer did.
#[derive(Debug)]
pub struct WriterLog {
    started: Instant,
    ops: Vec<Op>,
    /// Jobs it created (the checks account for them).
    pub inserted: u64,
}

/// A running writer; it stops when [`Writer::stop`] is called or it is dropped.
pub struct Writer {
    stop: DropGuard,
    task: JoinHandle<Result<WriterLog>>,
}

impl Writer {
    /// Connects to `store` and starts writing `rate` operations per second.
    pub async fn start(store: &BenchStore, rate: u32) -> Result<Writer> {
        let mut conn = store.connect().await?;
        let live_ids: Vec<i64> = match &mut conn {
            Conn::Sqlite(conn) => sqlx::query_scalar(LIVE_JOB_IDS).fetch_all(conn).await,
            Conn::Postgres(conn) => sqlx::query_scalar(LIVE_JOB_IDS).fetch_all(conn).await,
            Conn::MariaDb(conn) => sqlx::query_scalar(LIVE_JOB_IDS).fetch_all(conn).await,
        }
        .context("the writer cannot read the live jobs")?;
        if live_ids.is_empty() {
            return Err(format!("the {} store has no live job for the writer to update", store.variant).into());
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(write(conn, live_ids, rate, stop.clone()));
        Ok(Writer { stop: stop.drop_guard(), task })
    }

    /// Stops once it has performed every operation due so far; returns what it did.
    pub async fn stop(self) -> Result<WriterLog> {
        drop(self.stop);
        self.task.await.context("the writer task failed")?
    }
}

async fn write(mut conn: Conn, live_ids: Vec<i64>, rate: u32, stop: CancellationToken) -> Result<WriterLog> {
    let mut rng = fastrand::Rng::with_seed(1);
    let started = Instant::now();
    let mut log = WriterLog { started, ops: Vec::new(), inserted: 0 };
    let mut stopped_at: Option<Instant> = None;
    for i in 0u64.. {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
        // A stop cancels only what was not yet due when the writer saw it:
        // operations a lock held back are still performed, so the window they
        // fell due in counts their wait (a window shorter than the stall would
        // otherwise have none).
        if stop.is_cancelled() {
            if due > *stopped_at.get_or_insert_with(Instant::now) {
                break;
            }
        } else if due > Instant::now() {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(due.into()) => {}
            }
        }
        if i % 2 == 0 {
            insert_job(&mut conn, &format!("writer-{i:08}")).await.with_context(|| format!("writer: insert {i}"))?;
            log.inserted += 1;
        } else {
            let id = live_ids[rng.usize(..live_ids.len())];
            touch_job(&mut conn, id).await.with_context(|| format!("writer: update of job {id}"))?;
        }
        log.ops.push(Op { due_s: (due - started).as_secs_f64(), latency_ms: due.elapsed().as_secs_f64() * 1e3 });
    }
    conn.close().await?;
    Ok(log)
}

/// (a): a new job with two drives, one transaction.
async fn insert_job(conn: &mut Conn, name: &str) -> std::result::Result<(), sqlx::Error> {
    match conn {
        Conn::Sqlite(conn) => {
            let mut transaction = conn.begin_with("BEGIN IMMEDIATE").await?;
            let now = chrono::Utc::now().timestamp_micros();
            let id: i64 =
                sqlx::query_scalar(SQLITE_INSERT_JOB).bind(name).bind(now).fetch_one(&mut *transaction).await?;
            sqlx::query(SQLITE_INSERT_DRIVES).bind(id).execute(&mut *transaction).await?;
            transaction.commit().await
        }
        Conn::Postgres(conn) => {
            let mut transaction = conn.begin().await?;
            let id: i64 = sqlx::query_scalar(POSTGRES_INSERT_JOB).bind(name).fetch_one(&mut *transaction).await?;
            sqlx::query(POSTGRES_INSERT_DRIVES).bind(id).execute(&mut *transaction).await?;
            transaction.commit().await
        }
        Conn::MariaDb(conn) => {
            let mut transaction = conn.begin().await?;
            let id: i64 = sqlx::query_scalar(MARIADB_INSERT_JOB).bind(name).fetch_one(&mut *transaction).await?;
            sqlx::query(MARIADB_INSERT_DRIVES).bind(id).bind(id).execute(&mut *transaction).await?;
            transaction.commit().await
        }
    }
}

/// (b): one statement, autocommit.
async fn touch_job(conn: &mut Conn, id: i64) -> std::result::Result<(), sqlx::Error> {
    match conn {
        Conn::Sqlite(conn) => {
            let now = chrono::Utc::now().timestamp_micros();
            sqlx::query(SQLITE_TOUCH).bind(id).bind(now).execute(conn).await?;
        }
        Conn::Postgres(conn) => {
            sqlx::query(POSTGRES_TOUCH).bind(id).execute(conn).await?;
        }
        Conn::MariaDb(conn) => {
            sqlx::query(MARIADB_TOUCH).bind(id).execute(conn).await?;
        }
    }
    Ok(())
}

/// The writer under one condition: every operation (for the plot) and the
/// latencies of those due in the window that matters.
#[derive(Debug, Clone)]
pub struct Condition {
    pub label: String,
    pub ops: Vec<Op>,
    /// The window the statistics cover, in seconds since the writer started.
    pub window: (f64, f64),
    pub latency: Summary,
}

impl Condition {
    /// Every operation counts (the writer alone).
    pub fn whole(label: &str, log: WriterLog) -> Result<Condition> {
        let end = log.ops.last().map_or(0.0, |op| op.due_s);
        Condition::new(label, log.ops, (0.0, end))
    }

    /// Only the operations due while the purge ran, from `from` to `to`.
    pub fn during(label: &str, log: WriterLog, from: Instant, to: Instant) -> Result<Condition> {
        let offset = |at: Instant| at.saturating_duration_since(log.started).as_secs_f64();
        let window = (offset(from), offset(to));
        Condition::new(label, log.ops, window)
    }

    fn new(label: &str, ops: Vec<Op>, window: (f64, f64)) -> Result<Condition> {
        let in_window = ops.iter().filter(|op| (window.0..=window.1).contains(&op.due_s));
        let latency = Summary::of(in_window.map(|op| op.latency_ms)).ok_or_else(|| {
            format!(
                "writer {label}: no operation fell due in the {:.3} s measured; raise --writer-rate",
                window.1 - window.0
            )
        })?;
        Ok(Condition { label: label.to_owned(), ops, window, latency })
    }
}
