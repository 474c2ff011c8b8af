//! The sessions of a PostgreSQL store, and which statement runs on which.
//!
//! - `pool`: the job commands, the pages;
//! - `index_order_pool`: sessions under `sql::INDEX_ORDER_SETTINGS`, for
//!   the statements written for one plan (what is eligible, the ids a sweep
//!   reads and its batches, the audit trail's pages and removals);
//! - two pooled sessions kept between a sweep's statements
//!   (`common::SweepSessions`: one runs its batches, the other reads the
//!   next ids meanwhile);
//! - sessions of their own, outside the pools, for the locks that live as
//!   long as a session ([`OwnSessions`]), and first of all the session that
//!   found the server reachable, which also answers whether it takes writes.
//!
//! Every session costs a TLS handshake and an authentication, more than an
//! idle sweep's statements (docs/operations.md), so they are reused.

use std::sync::Mutex;
use std::time::Instant;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgRow, Postgres};

use super::options;
use crate::store::StoreError;
use crate::store::common::{self, Arg, OwnSessions, SweepSessions, TcpServer};

pub struct Sessions {
    pub pool: PgPool,
    pub index_order_pool: PgPool,
    /// The sessions of a sweep's batches and of its reads of the next ids.
    pub kept: SweepSessions<Postgres>,
    pub own: OwnSessions<Postgres>,
    /// The server, when it is reached over TCP.
    pub server: Option<TcpServer>,
    /// The session that last asked whether the server takes writes, and when it was opened.
    asking: Mutex<Option<(PgConnection, Instant)>>,
}

impl Sessions {
    /// `first`: the session that found the server reachable; `server`:
    /// the server, when it is reached over TCP.
    pub fn new(pool: PgPool, index_order_pool: PgPool, first: PgConnection, server: Option<TcpServer>) -> Sessions {
        Sessions {
            pool,
            index_order_pool,
            kept: SweepSessions::new(server.clone()),
            server,
            own: OwnSessions::default(),
            asking: Mutex::new(Some((first, Instant::now()))),
        }
    }

    /// Runs `statement` on a session of its own ([`OwnSessions::run`]):
    /// after the spare ones, the one that asked whether the server takes writes.
    pub async fn on_own(&self, statement: &'static str, args: &[Arg<'_>]) -> Result<(PgConnection, PgRow), StoreError> {
        let asking = || self.take_asking().map(|(conn, _)| conn);
        self.own.run(statement, args, asking, || self.new_own()).await
    }

    /// As [`Sessions::on_own`], with every row.
    pub async fn on_own_all(
        &self,
        statement: &'static str,
        args: &[Arg<'_>],
    ) -> Result<(PgConnection, Vec<PgRow>), StoreError> {
        let asking = || self.take_asking().map(|(conn, _)| conn);
        self.own.run_all(statement, args, asking, || self.new_own()).await
    }

    /// A new session under [`options::run_record_options`], within the
    /// pool's acquire timeout (`database.connect_timeout`).
    pub async fn new_own(&self) -> Result<PgConnection, StoreError> {
        let options = options::run_record_options((*self.pool.connect_options()).clone());
        common::open_session(&options, self.pool.options().get_acquire_timeout(), super::tcp_server(&options)).await
    }

    pub fn take_asking(&self) -> Option<(PgConnection, Instant)> {
        self.asking.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Keeps the session that asked whether the server takes writes for the
    /// next run's lease, unless a spare session would serve it.
    pub async fn keep_asking(&self, conn: PgConnection, opened: Instant) {
        if !self.own.has_spare() {
            *self.asking.lock().unwrap_or_else(|e| e.into_inner()) = Some((conn, opened));
        } else {
            let _ = conn.close().await;
        }
    }

    /// Closes the idle pooled sessions and the kept ones, so that the next
    /// statements run on new sessions, which read the database's and role's
    /// settings (`default_transaction_read_only`) as they are now. Sessions
    /// in use (none while sweeps are skipped) go back to the pool as they are.
    pub async fn renew(&self) {
        self.close_kept().await;
        common::close_idle(&self.pool).await;
        common::close_idle(&self.index_order_pool).await;
    }

    /// Ends every session, each with a goodbye to the server.
    pub async fn close(&self) {
        self.close_kept().await;
        self.pool.close().await;
        self.index_order_pool.close().await;
    }

    /// Ends the spare sessions, the one that asked whether the server takes
    /// writes, and the pooled ones a sweep keeps between statements.
    async fn close_kept(&self) {
        self.kept.end().await;
        self.own.close().await;
        if let Some((conn, _)) = self.take_asking() {
            let _ = conn.close().await;
        }
    }
}
