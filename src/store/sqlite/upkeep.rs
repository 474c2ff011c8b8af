//! The file's upkeep around writes: WAL checkpoints outside commits, the
//! freed pages handed back after a sweep, and the counter of other
//! connections' commits that a sweep's pause watches. Nothing of it applies
//! to a store in memory.
//!
//! Checkpoints (copying the WAL back into the database file, with an fsync)
//! never run inside a commit, as SQLite's automatic checkpoint would, but
//! after it, with the write lock free: a sweep checkpoints between its
//! batches, other writes once the WAL has grown. New files use
//! `auto_vacuum = INCREMENTAL`, so the pages a sweep frees can be handed back.

use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use super::sql;
use crate::store::StoreError;

/// A commit that leaves more than this in the WAL starts a checkpoint (about
/// SQLite's own default of 1,000 pages).
const CHECKPOINT_AFTER_BYTES: u64 = 4 << 20;

/// `PRAGMA auto_vacuum` of a file whose free pages `incremental_vacuum` returns.
const INCREMENTAL_AUTO_VACUUM: i64 = 2;

pub struct Upkeep {
    /// The WAL file; `None` in memory.
    wal: Option<PathBuf>,
    /// The WAL file's size when the last checkpoint started.
    checkpointed_wal_bytes: AtomicU64,
    /// Reads [`Upkeep::commit_counter`]: `PRAGMA data_version` compares what
    /// one connection saw, and a pooled one would take a slot of the pool.
    commit_watch: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl Upkeep {
    /// For the database file `file`; `None` in memory.
    pub fn new(file: Option<&Path>) -> Upkeep {
        let wal = file.map(|file| {
            let mut wal = file.to_path_buf().into_os_string();
            wal.push("-wal");
            PathBuf::from(wal)
        });
        Upkeep { wal, checkpointed_wal_bytes: AtomicU64::new(0), commit_watch: tokio::sync::Mutex::new(None) }
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
    pub async fn checkpoint_if_grown(&self, pool: &SqlitePool) -> Result<(), StoreError> {
        let Some(wal) = &self.wal else { return Ok(()) };
        let size = std::fs::metadata(wal).map_or(0, |meta| meta.len());
        if size > CHECKPOINT_AFTER_BYTES.max(self.checkpointed_wal_bytes.load(Ordering::Acquire)) {
            self.checkpointed_wal_bytes.store(size, Ordering::Release);
            sqlx::query(sql::CHECKPOINT_PASSIVE).execute(pool).await?;
        }
        Ok(())
    }

    /// A passive checkpoint now: between a sweep's batches, so that the next
    /// batch starts the WAL over (see [`Upkeep::checkpoint_if_grown`]).
    pub async fn checkpoint(&self, pool: &SqlitePool) -> Result<(), StoreError> {
        if self.wal.is_some() {
            sqlx::query(sql::CHECKPOINT_PASSIVE).execute(pool).await?;
        }
        Ok(())
    }

    /// One step of handing freed pages back: a few hundred per step
    /// (`incremental_vacuum`, in a file created with `auto_vacuum =
    /// INCREMENTAL`), then a truncating WAL checkpoint; returns the free
    /// pages left (0: done).
    pub async fn release_space(&self, pool: &SqlitePool) -> Result<u64, StoreError> {
        if self.wal.is_none() {
            return Ok(0);
        }
        let mut conn = pool.acquire().await?;
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

    /// `PRAGMA data_version`, on a connection kept for it; `None` in memory.
    pub async fn commit_counter(&self, pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
        if self.wal.is_none() {
            return Ok(None);
        }
        let mut watch = self.commit_watch.lock().await;
        let conn = match &mut *watch {
            Some(conn) => conn,
            None => watch.insert(pool.connect_options().connect().await?),
        };
        Ok(Some(sqlx::query_scalar(sql::DATA_VERSION).fetch_one(conn).await?))
    }

    /// Ends the connection kept for [`Upkeep::commit_counter`].
    pub async fn close(&self) {
        if let Some(conn) = self.commit_watch.lock().await.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}
