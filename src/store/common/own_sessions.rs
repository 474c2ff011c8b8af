//! Sessions of their own, outside the pools, for a server engine's locks
//! that live as long as a session: the lease of each run in progress, and
//! the singleton lead of `schedule.singleton`. A session whose locks are all
//! released is kept for the next run or lead: opening one costs a TLS
//! handshake and an authentication, more than an idle sweep's statements.
//! An engine whose every commit waits for a flush (MariaDB) may leave a
//! run's record uncommitted in its lease's transaction while the sweep only
//! reads, so that an idle sweep commits once (docs/operations.md).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use sqlx::{Connection, Database};

use super::{Arg, Db, On};
use crate::store::StoreError;

/// Sessions kept for reuse: one for a run's lease, one for the singleton lead.
const SPARE_SESSIONS: usize = 2;

/// How [`OwnSessions::end_lease`] went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LeaseEnd {
    /// Recorded and unlocked; the session is kept.
    Released,
    /// Recorded, but the lock is in doubt: the session was closed, which ends it.
    Closed,
    /// The statement failed (the session is gone: a restart, a failover,
    /// the backend terminated); nothing is recorded.
    Broken,
    /// No session holds this run's lease.
    Missing,
}

pub(crate) struct OwnSessions<DB: Database> {
    spare: Mutex<Vec<DB::Connection>>,
    /// The session of each run in progress, holding its lease.
    leases: Mutex<HashMap<i64, DB::Connection>>,
    /// The runs whose record their lease's open transaction holds uncommitted.
    uncommitted: Mutex<HashSet<i64>>,
    /// The session holding the singleton lock while this process sweeps.
    leader: tokio::sync::Mutex<Option<DB::Connection>>,
}

impl<DB: Database> Default for OwnSessions<DB> {
    fn default() -> Self {
        OwnSessions {
            spare: Mutex::new(Vec::new()),
            leases: Mutex::new(HashMap::new()),
            uncommitted: Mutex::new(HashSet::new()),
            leader: tokio::sync::Mutex::new(None),
        }
    }
}

impl<DB: Db> OwnSessions<DB> {
    /// Starts with `conn` as a spare session.
    pub fn with_spare(conn: DB::Connection) -> Self {
        let own = OwnSessions::default();
        own.give_back(conn);
        own
    }

    /// Runs `statement` on a session of its own and returns the session
    /// with its row: a spare one, else one the engine kept (`kept`), else a
    /// new one (`open`). A kept session may have been closed by the server
    /// or a firewall while idle: if it fails, a new one tries once more.
    pub async fn run<F>(
        &self,
        statement: &'static str,
        args: &[Arg<'_>],
        kept: impl FnOnce() -> Option<DB::Connection>,
        open: impl FnOnce() -> F,
    ) -> Result<(DB::Connection, DB::Row), StoreError>
    where
        F: Future<Output = Result<DB::Connection, StoreError>>,
    {
        let (conn, rows) = self.run_all(statement, args, kept, open).await?;
        let row = rows.into_iter().next();
        Ok((conn, row.ok_or_else(|| StoreError::Database("a run's statement returned no row".into()))?))
    }

    /// As [`OwnSessions::run`], with every row.
    pub async fn run_all<F>(
        &self,
        statement: &'static str,
        args: &[Arg<'_>],
        kept: impl FnOnce() -> Option<DB::Connection>,
        open: impl FnOnce() -> F,
    ) -> Result<(DB::Connection, Vec<DB::Row>), StoreError>
    where
        F: Future<Output = Result<DB::Connection, StoreError>>,
    {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(mut conn) = spare.or_else(kept)
            && let Ok(rows) = DB::fetch_all(On::Connection(&mut conn), DB::query(statement, args)).await
        {
            return Ok((conn, rows));
        }
        let mut conn = open().await?;
        let rows = DB::fetch_all(On::Connection(&mut conn), DB::query(statement, args)).await?;
        Ok((conn, rows))
    }

    pub fn has_spare(&self) -> bool {
        !self.spare.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Keeps a session whose locks are all released for the next run or lead.
    pub fn give_back(&self, conn: DB::Connection) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_SESSIONS {
            spare.push(conn);
        }
    }

    /// Holds the session of a run that took its lease on it.
    pub fn hold_lease(&self, run_id: i64, conn: DB::Connection) {
        self.leases.lock().unwrap_or_else(|e| e.into_inner()).insert(run_id, conn);
    }

    /// Holds the session of a run whose record its open transaction wrote:
    /// [`OwnSessions::commit_lease`] or [`OwnSessions::finish_uncommitted`] commits it.
    pub fn hold_uncommitted_lease(&self, run_id: i64, conn: DB::Connection) {
        self.uncommitted.lock().unwrap_or_else(|e| e.into_inner()).insert(run_id);
        self.hold_lease(run_id, conn);
    }

    /// Commits a run's record left uncommitted, before the sweep's first
    /// write or pause; nothing to do for a record committed already. A
    /// session that fails is closed: its transaction rolls back, which
    /// frees its lock, and the run never was.
    pub async fn commit_lease(&self, run_id: i64, commit: &'static str) -> Result<(), StoreError> {
        if !self.uncommitted.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id) {
            return Ok(());
        }
        self.on_lease(run_id, &[(commit, &[])]).await
    }

    /// Records the end of a run whose record is still uncommitted with
    /// `finish` and commits both at once: an idle sweep's one commit. `None`
    /// when the record was committed before (the caller records the end
    /// its own way); a session that fails is closed, as in [`OwnSessions::commit_lease`].
    pub async fn finish_uncommitted(
        &self,
        run_id: i64,
        finish: &'static str,
        args: &[Arg<'_>],
        commit: &'static str,
    ) -> Option<Result<(), StoreError>> {
        if !self.uncommitted.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id) {
            return None;
        }
        Some(self.on_lease(run_id, &[(finish, args), (commit, &[])]).await)
    }

    /// Runs `statements` in order on the session holding a run's lease.
    async fn on_lease(&self, run_id: i64, statements: &[(&'static str, &[Arg<'_>])]) -> Result<(), StoreError> {
        let lease = self.leases.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
        let Some(mut conn) = lease else {
            return Err(StoreError::Database(format!("run {run_id}: the session holding its lease is gone")));
        };
        for (statement, args) in statements {
            if let Err(error) = DB::execute(On::Connection(&mut conn), DB::query(statement, args)).await {
                let _ = conn.close().await;
                return Err(error);
            }
        }
        self.hold_lease(run_id, conn);
        Ok(())
    }

    /// Ends a run's lease with `statement` (which records the run's end and
    /// answers `unlocked`) on the session holding it.
    pub async fn end_lease(&self, run_id: i64, statement: &'static str, args: &[Arg<'_>]) -> LeaseEnd {
        let lease = self.leases.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
        match lease {
            Some(conn) => self.release(conn, statement, args).await,
            None => LeaseEnd::Missing,
        }
    }

    /// Takes the singleton lead unless this process holds it already:
    /// `lock` tries the lock on a session of its own and says whether it
    /// got it. A session that did not is given back.
    pub async fn try_lead<F>(&self, lock: impl FnOnce() -> F) -> Result<bool, StoreError>
    where
        F: Future<Output = Result<(DB::Connection, bool), StoreError>>,
    {
        let mut leader = self.leader.lock().await;
        if leader.is_some() {
            return Ok(true);
        }
        let (conn, locked) = lock().await?;
        if locked {
            *leader = Some(conn);
        } else {
            self.give_back(conn);
        }
        Ok(locked)
    }

    /// Releases the lead with `unlock` (which answers `unlocked`); a session
    /// whose unlock failed is closed, which frees the lock.
    pub async fn end_lead(&self, unlock: &'static str, args: &[Arg<'_>]) {
        if let Some(conn) = self.leader.lock().await.take() {
            self.release(conn, unlock, args).await;
        }
    }

    /// Runs `unlock` on a session holding a lock: the session is kept for
    /// the next run or lead when it answers `unlocked`, else closed, which
    /// frees whatever it held.
    async fn release(&self, mut conn: DB::Connection, unlock: &'static str, args: &[Arg<'_>]) -> LeaseEnd {
        let unlocked = DB::fetch_one(On::Connection(&mut conn), DB::query(unlock, args)).await;
        let end = match unlocked.map(|row| DB::flag(&row, "unlocked")) {
            Ok(Ok(true)) => {
                self.give_back(conn);
                return LeaseEnd::Released;
            }
            Ok(_) => LeaseEnd::Closed,
            Err(_) => LeaseEnd::Broken,
        };
        let _ = conn.close().await;
        end
    }

    /// Ends the spare sessions, each with a goodbye to the server.
    pub async fn close(&self) {
        let spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in spare {
            let _ = conn.close().await;
        }
    }
}
