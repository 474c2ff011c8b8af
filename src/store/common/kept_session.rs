//! A pooled session kept out of its pool between statements that follow
//! each other closely, for a server engine: a sweep's reads of the next
//! ids, its batches.
//!
//! Why: a session given back to a sqlx pool goes back only after a round
//! trip (sqlx pings it, in a task of its own), so a statement that follows
//! at once finds none free and the pool opens another session: a TLS
//! handshake and an authentication, in the middle of a sweep
//! (docs/operations.md). A session kept here is used again at once; one idle
//! for [`PING_AFTER_IDLE`] is pinged first, as the pool does (the server or
//! a firewall may have closed it), and replaced from the pool if that fails.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::pool::{Pool, PoolConnection};
use sqlx::{Connection, Database};

use super::{Db, PING_AFTER_IDLE, TcpServer, id_range_args};
use crate::policy::PerRule;
use crate::store::StoreError;
use crate::store::records::{EligibleIds, IdRange};

pub(crate) struct KeptSession<DB: Database> {
    slot: Mutex<Option<(PoolConnection<DB>, Instant)>>,
    /// The database server, when it is reached over TCP.
    server: Option<TcpServer>,
}

impl<DB: Database> KeptSession<DB> {
    fn new(server: Option<TcpServer>) -> Self {
        KeptSession { slot: Mutex::new(None), server }
    }

    /// The kept session if it still answers, else one from `pool`, whose
    /// opening, if it has none idle and room for one more, is watched for
    /// TCP_NODELAY (a sweep's first statements often open it).
    pub async fn take(&self, pool: &Pool<DB>) -> Result<PoolConnection<DB>, sqlx::Error> {
        let kept = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut conn, used)) = kept
            && (used.elapsed() < PING_AFTER_IDLE || conn.ping().await.is_ok())
        {
            return Ok(conn);
        }
        match &self.server {
            Some(server) if pool.num_idle() == 0 && pool.size() < pool.options().get_max_connections() => {
                server.while_connecting(pool.acquire()).await
            }
            _ => pool.acquire().await,
        }
    }

    /// Keeps a session whose statement succeeded (one that failed goes back
    /// to the pool, which tests it). With one kept already (concurrent
    /// sweeps), this one goes back to the pool.
    pub fn keep(&self, conn: PoolConnection<DB>) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some((conn, Instant::now()));
        }
    }

    /// Gives the kept session back to its pool.
    pub fn release(&self) {
        drop(self.slot.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Ends the kept session (a pool waits for every session taken from it
    /// before it closes).
    pub async fn end(&self) {
        let kept = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((conn, _)) = kept {
            let _ = conn.close().await;
        }
    }
}

/// Whether `pool` lends two sessions at once, so that a sweep may read its
/// next ids while a batch runs.
pub(crate) fn lends_two_sessions<DB: Database>(pool: &Pool<DB>) -> bool {
    pool.options().get_max_connections() >= 2
}

/// How an engine reads the rows of its statement of the next ids.
pub(crate) type DecodeIds<DB> = fn(&[<DB as Database>::Row]) -> Result<PerRule<EligibleIds>, StoreError>;

/// The two sessions a sweep keeps: its batches', and its reads' of the next
/// ids, which run alongside the batches (src/sweep/pending.rs). A pool of
/// one session cannot lend two: there the reads take the batches' session,
/// and run between the batches.
pub(crate) struct SweepSessions<DB: Database> {
    pub deleting: KeptSession<DB>,
    reading: KeptSession<DB>,
}

impl<DB: Db> SweepSessions<DB> {
    /// `server`: the database server, when it is reached over TCP.
    pub fn new(server: Option<TcpServer>) -> Self {
        SweepSessions { deleting: KeptSession::new(server.clone()), reading: KeptSession::new(server) }
    }

    /// The session that reads the ids, of `pool`.
    pub fn reading(&self, pool: &Pool<DB>) -> &KeptSession<DB> {
        if lends_two_sessions(pool) { &self.reading } else { &self.deleting }
    }

    /// The next ids of each policy, read with `statement` on the reading
    /// session (taken from `pool`), its rows read by `decode`.
    pub async fn eligible_ids(
        &self,
        pool: &Pool<DB>,
        statement: &'static str,
        decode: DecodeIds<DB>,
        ranges: &PerRule<Option<IdRange>>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<PerRule<EligibleIds>, StoreError> {
        let reading = self.reading(pool);
        let mut conn = reading.take(pool).await?;
        let args = id_range_args(ranges, settled);
        let rows = DB::fetch_all(super::On::Connection(&mut *conn), DB::query(statement, &args)).await?;
        reading.keep(conn);
        decode(&rows)
    }

    /// Gives both back to their pool (a run's end).
    pub fn release(&self) {
        self.deleting.release();
        self.reading.release();
    }

    /// Ends both.
    pub async fn end(&self) {
        self.deleting.end().await;
        self.reading.end().await;
    }
}
