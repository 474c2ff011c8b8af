//! A pooled session kept out of its pool between statements that follow
//! each other closely: a sweep's reads of the next ids, its batches.
//!
//! Why: a session given back to a sqlx pool goes back only after a round
//! trip (sqlx pings it, in a task of its own), so a statement that follows
//! at once finds none free and the pool opens another session: a TLS
//! handshake and an authentication (~100 ms here), during the first sweep's
//! reads and again during an early batch, where its neighbours took 22-29
//! ms. A session kept here is used again at once; one idle for
//! [`PING_AFTER_IDLE`] is pinged first, as the pool does (the server or a
//! firewall may have closed it), and replaced from the pool if that fails.

use std::sync::Mutex;
use std::time::Instant;

use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};

use crate::store::PING_AFTER_IDLE;

#[derive(Default)]
pub struct KeptSession {
    slot: Mutex<Option<(PoolConnection<Postgres>, Instant)>>,
}

impl KeptSession {
    /// The kept session if it still answers, else one from `pool`.
    pub async fn take(&self, pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        let kept = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut conn, used)) = kept
            && (used.elapsed() < PING_AFTER_IDLE || conn.ping().await.is_ok())
        {
            return Ok(conn);
        }
        pool.acquire().await
    }

    /// Keeps a session whose statement succeeded (one that failed goes back
    /// to the pool, which tests it). With one kept already (concurrent
    /// sweeps), this one goes back to the pool.
    pub fn keep(&self, conn: PoolConnection<Postgres>) {
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
