//! The PostgreSQL store (13 or newer). Concurrent sweeps are safe: a batch
//! deletes the listed jobs still eligible with their audit rows in one
//! statement, and a job another sweep is deleting is waited for, then found
//! gone. Each run holds a session advisory lock on its
//! own session, so the next sweep can tell a run whose process died (lock
//! free) from one still working (lock held), whichever replica it runs on.
//! Which session runs what: `sessions`; the connect options (URL, TLS,
//! password file): `options`.

mod options;
mod replicas;
mod sessions;
/// Public so that tests can examine the query plans.
pub mod sql;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPool, PgRow, Postgres};

use self::replicas::Standbys;
use self::sessions::Sessions;
use super::common::{
    self, AbandonedRun, Arg, Codec, Db, Driver, LeaseEnd, Purpose, Replicas, Statements, StoreOptions, TcpServer,
    decode, enabled_rules, first_session, server_pool_options,
};
use super::records::{
    AuditRemoval, Batch, ClockReading, DeletedBatch, DeletedJobs, EligibleIds, FirstIds, IdRange, NewRun, ReplicaLag,
    RunOutcome, RunRemoval, TrailKey,
};
use super::{AdminStore, ReadOnly, Refusal, StoreError, SweepStore};
use crate::config::{DatabaseSettings, format_duration};
use crate::policy::{PerRule, Retentions, SortKey};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// First key of the advisory locks that mark live runs ("RTDR").
const RUN_LOCK_CLASS: i64 = 0x5254_4452;

/// First key of the advisory lock that `schedule.singleton` takes ("RTDS").
const SINGLETON_LOCK_CLASS: i64 = 0x5254_4453;

/// A session opened this recently answers [`AdminStore::read_only`] for a
/// new one: the settings it started with are those of now. Long enough for
/// the two questions of a purge, short of the daemon's 5 s between
/// readiness checks.
const NEW_SESSION_FOR: Duration = Duration::from_secs(1);

/// SQLSTATE of a statement cancelled by `statement_timeout` (or by hand).
const QUERY_CANCELED: &str = "57014";
/// SQLSTATE of a transaction rolled back to break a deadlock.
const DEADLOCK_DETECTED: &str = "40P01";
/// SQLSTATE of a transaction rolled back because it could not be serialized:
/// like a deadlock, run again it may succeed.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE of a write in a read-only transaction (a standby, `default_transaction_read_only`).
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// Why a PostgreSQL server refuses writes.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyServer {
    #[error("the PostgreSQL server is a standby in recovery (pg_is_in_recovery()); point database.url at the primary")]
    Standby,
    #[error(
        "new PostgreSQL sessions are read-only (transaction_read_only: default_transaction_read_only is on for \
         this database, role or server)"
    )]
    Sessions,
    /// The server refused a write (SQLSTATE 25006), with its message.
    #[error("PostgreSQL refused a write: {0}")]
    Refused(String),
}

pub struct PostgresStore {
    /// What the connect options are built from again on a reload.
    settings: DatabaseSettings,
    sessions: Sessions,
    replicas: Replicas<Standbys>,
    /// Whether the database refused writes at the last [`AdminStore::read_only`].
    read_only_seen: Mutex<Option<bool>>,
}

impl PostgresStore {
    pub async fn connect(settings: &DatabaseSettings) -> Result<PostgresStore, StoreError> {
        let StoreOptions { options, trusted } = options::connect_options(settings)?;
        if options::is_unverified_tls(&options) {
            tracing::warn!(
                "sslmode is require: the connection is encrypted, but the server is not verified, so anyone on the \
                 path can pose as it; use sslmode verify-full with sslrootcert"
            );
        }
        let own_options = options::run_record_options(options.clone());
        let server = tcp_server(&options);
        // The pools' sessions open only once the first is in: opened
        // alongside it, they would send a refused password a second time
        // ("Few new sessions" in docs/operations.md).
        let first = first_session(settings, &own_options, server.clone(), (&trusted, TLS_REFUSED), |_| "").await?;
        let pool_options = server_pool_options::<Postgres>(settings, server.clone(), None);
        let index_order_pool = pool_options.clone().connect_lazy_with(options::index_order_options(options.clone()));
        let pool = pool_options.connect_lazy_with(options);
        Ok(PostgresStore {
            settings: settings.clone(),
            sessions: Sessions::new(pool, index_order_pool, first, server),
            replicas: Replicas::new(settings, options::connect_options),
            read_only_seen: Mutex::new(None),
        })
    }
}

/// The rows of [`sql::SELECT_ELIGIBLE_IDS`]: a rule's ids and their age
/// timestamps as two arrays in one order, which need not be the age order:
/// the cursor is the largest (age, id) of them.
fn eligible_id_arrays(rows: &[PgRow]) -> Result<PerRule<EligibleIds>, StoreError> {
    let mut read = PerRule::<EligibleIds>::default();
    for row in rows {
        let (policy, job_type) = decode::rule::<Postgres>(row)?;
        let timestamps: Vec<DateTime<Utc>> = row.try_get::<Option<_>, _>("ts")?.unwrap_or_default();
        let ids: Vec<i64> = row.try_get::<Option<_>, _>("id")?.unwrap_or_default();
        let rule = &mut read[policy][job_type];
        rule.last = timestamps.into_iter().zip(&ids).map(|(timestamp, &job_id)| SortKey { timestamp, job_id }).max();
        rule.ids = ids;
    }
    Ok(read)
}

/// What it means when the server will not speak TLS.
const TLS_REFUSED: &str =
    "the server does not accept TLS connections, and sslmode (require, verify-ca or verify-full) requires TLS";

/// The server `options` reach over TCP; `None` over a Unix socket.
fn tcp_server(options: &PgConnectOptions) -> Option<TcpServer> {
    options.get_socket().is_none().then(|| TcpServer::new(options.get_host(), options.get_port()))
}

/// PostgreSQL's refusals, by SQLSTATE.
pub(super) fn classify(error: &sqlx::Error) -> Option<Refusal> {
    let refusal = error.as_database_error()?.try_downcast_ref::<PgDatabaseError>()?;
    match refusal.code() {
        QUERY_CANCELED => Some(Refusal::StatementTimeout),
        DEADLOCK_DETECTED | SERIALIZATION_FAILURE => Some(Refusal::Deadlock),
        READ_ONLY_SQL_TRANSACTION => Some(Refusal::ReadOnly(ReadOnly::new(ReadOnlyServer::Refused(error.to_string())))),
        _ => None,
    }
}

/// Timestamps are `timestamptz`; lists are arrays.
impl Codec for Postgres {
    type Time = DateTime<Utc>;
    type Ids = Vec<i64>;
    type Names = Vec<String>;

    fn store_time(time: DateTime<Utc>) -> DateTime<Utc> {
        time
    }

    fn load_time(stored: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        Ok(stored)
    }

    fn ids(ids: &[i64]) -> Vec<i64> {
        ids.to_vec()
    }

    fn names(names: Vec<String>) -> Vec<String> {
        names
    }
}

impl Driver for PostgresStore {
    type Db = Postgres;

    const SQL: &'static Statements = &sql::STATEMENTS;
    const MIGRATOR: &'static Migrator = &MIGRATOR;

    fn pool(&self, purpose: Purpose) -> &PgPool {
        match purpose {
            Purpose::General => &self.sessions.pool,
            Purpose::PlannedReads => &self.sessions.index_order_pool,
        }
    }

    fn tcp_server(&self) -> Option<&TcpServer> {
        self.sessions.server.as_ref()
    }
}

#[async_trait]
impl SweepStore for PostgresStore {
    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError> {
        let query = Postgres::query(sql::CLOCK_AND_SKEW, &enabled_rules(retentions));
        decode::clock::<Postgres>(&query.fetch_one(&self.sessions.index_order_pool).await?)
    }

    /// The session holds the run's lock until `finish_run` releases it, or
    /// until this process dies.
    async fn begin_run(&self, run: &NewRun<'_>) -> Result<(i64, ClockReading), StoreError> {
        let mut args = enabled_rules(run.retentions).to_vec();
        args.push(RUN_LOCK_CLASS.into());
        args.extend(common::run_owner_args(run));
        let (conn, row) = self.sessions.on_own(sql::BEGIN_RUN, &args).await?;
        let run_id = Postgres::int(&row, "id")?;
        AbandonedRun::all::<Postgres>(&row)?.iter().for_each(AbandonedRun::log);
        self.sessions.own.hold_lease(run_id, conn);
        Ok((run_id, decode::clock::<Postgres>(&row)?))
    }

    /// In one statement, on a session of its own, whose commits do not wait
    /// for a flush (`sql::RUN_RECORDS_WITHOUT_SYNC`), as a run's lease does.
    /// Should its cut-offs not be `policy::cutoffs` at its clock, the ids
    /// are read again, unless it recorded the run as idle: that stays so,
    /// and what it missed goes at the next sweep.
    async fn start_sweep(&self, run: &NewRun<'_>, limit: u32) -> Result<(FirstIds, Option<i64>), StoreError> {
        let mut args = common::first_ids_args(run.retentions, limit);
        args.push(RUN_LOCK_CLASS.into());
        args.extend(common::run_owner_args(run));
        let (conn, rows) = self.sessions.on_own_all(sql::START_SWEEP, &args).await?;
        self.sessions.own.give_back(conn);
        let row = rows.first().ok_or_else(|| StoreError::Database("the sweep's start returned no row".into()))?;
        let idle_run = Postgres::optional_int(row, "idle_run")?;
        AbandonedRun::all::<Postgres>(row)?.iter().for_each(AbandonedRun::log);
        let first = match decode::first_ids::<Postgres>(&rows, run.retentions)? {
            (clock, Some(ids)) => FirstIds { clock, ids },
            (clock, None) if idle_run.is_some() => FirstIds { clock, ids: PerRule::default() },
            (_, None) => self.clock_and_first_ids(run.retentions, limit).await?,
        };
        Ok((first, idle_run))
    }

    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError> {
        self.sessions.kept.release();
        let args = common::outcome_args(run_id, outcome);
        let unlocking = [args.as_slice(), &[RUN_LOCK_CLASS.into()]].concat();
        match self.sessions.own.end_lease(run_id, sql::FINISH_RUN_AND_UNLOCK, &unlocking).await {
            LeaseEnd::Released | LeaseEnd::Closed => return Ok(()),
            // The pooled sessions likely went with the lease's: pooled
            // sessions used moments ago are not pinged before use.
            LeaseEnd::Broken => self.sessions.renew().await,
            LeaseEnd::Missing => {}
        }
        // No lease, or it broke: record the end through the pool.
        Postgres::query(sql::FINISH_RUN, &args).execute(&self.sessions.index_order_pool).await?;
        Ok(())
    }

    async fn eligible_ids(
        &self,
        ranges: &PerRule<Option<IdRange>>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<PerRule<EligibleIds>, StoreError> {
        let pool = &self.sessions.index_order_pool;
        self.sessions.kept.eligible_ids(pool, sql::SELECT_ELIGIBLE_IDS, eligible_id_arrays, ranges, settled).await
    }

    /// One statement deletes the jobs and writes their audit rows, and
    /// commits with them: its commit's time is not told apart. Its session's
    /// settings keep the statement on its one plan; the next ids are read
    /// meanwhile on another.
    async fn delete_eligible(&self, batch: &Batch<'_>) -> Result<DeletedBatch, StoreError> {
        let mut args = common::still_eligible_args(batch.ids, batch.cutoffs);
        args.extend([batch.run_id.into(), batch.deleted_by.into()]);
        let mut conn = self.sessions.kept.deleting.take(&self.sessions.index_order_pool).await?;
        let rows = Postgres::query(sql::DELETE_ELIGIBLE, &args).fetch_all(&mut *conn).await?;
        self.sessions.kept.deleting.keep(conn);
        let deleted = DeletedJobs::from_rows(rows, |row| {
            decode::deleted_job::<Postgres>(row, Postgres::time(row, "deleted_at")?)
        });
        Ok(DeletedBatch { jobs: deleted, commit: Duration::ZERO })
    }

    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        self.remove_trail(sql::REMOVE_AUDIT_ROWS, &common::audit_removal_args(removal, limit)).await
    }

    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        self.remove_trail(sql::REMOVE_RUN_RECORDS, &common::run_removal_args(removal, limit)).await
    }

    /// A session advisory lock, on a session of its own: the lock lives as long as the session.
    async fn try_lead(&self) -> Result<bool, StoreError> {
        let lock = async || {
            let (conn, row) = self.sessions.on_own(sql::TRY_LEAD, &[SINGLETON_LOCK_CLASS.into()]).await?;
            Ok((conn, Postgres::flag(&row, "locked")?))
        };
        self.sessions.own.try_lead(lock).await
    }

    async fn end_lead(&self) {
        self.sessions.own.end_lead(sql::END_LEAD, &[SINGLETON_LOCK_CLASS.into()]).await;
    }

    async fn replica_lags(&self) -> Vec<ReplicaLag> {
        self.replicas.lags(&self.sessions.pool).await
    }

    fn reads_alongside_batches(&self) -> bool {
        common::lends_two_sessions(&self.sessions.index_order_pool)
    }
}

impl PostgresStore {
    /// Runs one removal of the audit trail's lifecycle (one statement,
    /// committed on its own); returns the keys of the rows it removed.
    async fn remove_trail(&self, statement: &'static str, args: &[Arg<'_>]) -> Result<Vec<TrailKey>, StoreError> {
        let rows = Postgres::query(statement, args).fetch_all(&self.sessions.index_order_pool).await?;
        decode::all(&rows, decode::trail_key::<Postgres>)
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.sessions.pool).await?)
    }

    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Postgres::time(&Postgres::query(sql::SELECT_NOW, &[]).fetch_one(&self.sessions.pool).await?, "now")
    }

    /// Asked on a session opened for the question: a pooled session keeps
    /// the `default_transaction_read_only` it started with. When the answer
    /// changes, the pooled and spare sessions are closed, so the next sweep
    /// runs on sessions that see the change.
    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError> {
        let (mut conn, opened) = match self.sessions.take_asking() {
            Some((conn, opened)) if opened.elapsed() < NEW_SESSION_FOR => (conn, opened),
            kept => {
                if let Some((old, _)) = kept {
                    let _ = old.close().await;
                }
                (self.sessions.new_own().await?, Instant::now())
            }
        };
        let timeout = self.sessions.pool.options().get_acquire_timeout();
        let asked = tokio::time::timeout(timeout, Postgres::query(sql::READ_ONLY, &[]).fetch_one(&mut conn));
        let Ok(row) = asked.await else {
            let waited = format_duration(timeout);
            return Err(StoreError::Database(format!("no answer within {waited} (database.connect_timeout)")));
        };
        let row = row?;
        let finding = if Postgres::flag(&row, "in_recovery")? {
            Some(ReadOnlyServer::Standby)
        } else if Postgres::flag(&row, "read_only")? {
            Some(ReadOnlyServer::Sessions)
        } else {
            None
        };
        let seen = self.read_only_seen.lock().unwrap_or_else(|e| e.into_inner()).replace(finding.is_some());
        if seen.is_some_and(|was| was != finding.is_some()) {
            self.sessions.renew().await;
        }
        self.sessions.keep_asking(conn, opened).await;
        Ok(finding.map(ReadOnly::new))
    }

    async fn reload_credentials(&self) -> Result<bool, StoreError> {
        let options = options::connect_options(&self.settings)?.options;
        self.sessions.index_order_pool.set_connect_options(options::index_order_options(options.clone()));
        self.sessions.pool.set_connect_options(options);
        Ok(common::reads_files(&self.settings))
    }

    async fn close(&self) {
        self.end_lead().await;
        self.sessions.close().await;
        self.replicas.close().await;
    }
}
