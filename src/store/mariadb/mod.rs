//! The MariaDB store (10.6 or newer). Concurrent sweeps are safe: a batch
//! claims its jobs with `FOR UPDATE SKIP LOCKED`, writes their audit rows
//! and deletes them in one transaction, the eligibility checked again by
//! each statement. Sessions run at READ COMMITTED, so a batch locks only the
//! rows it deletes (docs/operations.md). Each run holds a named lock
//! (`GET_LOCK`) on a session of its own, so the next sweep can tell a run
//! whose process died (lock free) from one still working, whichever replica
//! it runs on. The connect options (URL, TLS, password file): `options`;
//! the server's checks (version, binary log, read-only): `server`; the
//! migration runner: `migrate`.

pub mod migrate;
mod options;
mod replicas;
mod server;
/// Public so that tests can examine the query plans.
pub mod sql;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::Connection;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool, MySqlSslMode};

use self::replicas::ReplicaStatus;
use self::server::ReadOnlyServer;
use super::common::{
    self, AbandonedRun, Codec, Db, Driver, LeaseEnd, NoConnection, OwnSessions, Purpose, Replicas, Statements,
    StoreOptions, SweepSessions, TcpServer, decode, enabled_rules, first_session, open_session, server_pool_options,
};
use super::records::{
    AuditRemoval, Batch, ClockReading, DeletedBatch, DeletedJobs, EligibleIds, FirstIds, IdRange, NewRun, ReplicaLag,
    RunOutcome, RunRemoval, TrailKey,
};
use super::{AdminStore, ReadOnly, Refusal, StoreError, SweepStore};
use crate::config::DatabaseSettings;
use crate::policy::{self, PerRule, Retentions};

/// MariaDB's error numbers the store tells apart.
mod code {
    /// A statement stopped at `max_statement_time`.
    pub const STATEMENT_TIMEOUT: u16 = 1969;
    /// A transaction rolled back whole to break a deadlock (`ER_LOCK_DEADLOCK`).
    pub const DEADLOCK: u16 = 1213;
    /// A write in a READ ONLY transaction (`tx_read_only`).
    pub const READ_ONLY_TRANSACTION: u16 = 1792;
    /// The server runs with `--read-only` (and the user lacks READ ONLY ADMIN).
    pub const READ_ONLY_OPTION: u16 = 1290;
    /// InnoDB runs with `innodb_read_only`.
    pub const INNODB_READ_ONLY: u16 = 1036;
    /// A login refused: wrong password, no such user, or plain text to a TLS-only server.
    pub const ACCESS_DENIED: u16 = 1045;
}

pub struct MariaDbStore {
    /// What the connect options are built from again on a reload.
    settings: DatabaseSettings,
    pool: MySqlPool,
    /// The sessions of a sweep's batches and of its reads of the next ids.
    kept: SweepSessions<MySql>,
    own: OwnSessions<MySql>,
    /// The server, when it is reached over TCP.
    server: Option<TcpServer>,
    replicas: Replicas<ReplicaStatus>,
}

impl MariaDbStore {
    pub async fn connect(settings: &DatabaseSettings) -> Result<MariaDbStore, StoreError> {
        let StoreOptions { options, trusted } = options::connect_options(settings)?;
        if options::is_unverified_tls(&options) {
            tracing::warn!(
                "ssl-mode is required: the connection is encrypted, but the server is not verified, so anyone on \
                 the path can pose as it; use ssl-mode verify_identity with ssl-ca"
            );
        }
        let server = tcp_server(&options);
        let hint = |failure: &NoConnection| plain_text_hint(failure, &options);
        let mut first =
            first_session::<MySqlConnection>(settings, &options, server.clone(), (&trusted, TLS_REFUSED), hint).await?;
        server::check(&mut first).await?;
        let timeout = settings.statement_timeout_ms();
        MySql::query(sql::SESSION_SETTINGS, &[timeout.into()]).execute(&mut first).await?;
        let setup = Some((sql::SESSION_SETTINGS, timeout));
        let pool = server_pool_options::<MySql>(settings, server.clone(), setup).connect_lazy_with(options);
        Ok(MariaDbStore {
            settings: settings.clone(),
            pool,
            kept: SweepSessions::new(server.clone()),
            server,
            own: OwnSessions::with_spare(first),
            replicas: Replicas::new(settings, options::connect_options),
        })
    }

    /// A session of its own, set up as the pool's ([`sql::SESSION_SETTINGS`]),
    /// within `database.connect_timeout`.
    async fn new_own(&self) -> Result<MySqlConnection, StoreError> {
        let options = (*self.pool.connect_options()).clone();
        let timeout = self.pool.options().get_acquire_timeout();
        let mut conn = open_session(&options, timeout, self.server.clone()).await?;
        MySql::query(sql::SESSION_SETTINGS, &[self.settings.statement_timeout_ms().into()]).execute(&mut conn).await?;
        Ok(conn)
    }
}

/// What it means when the server will not speak TLS.
const TLS_REFUSED: &str = "the server does not accept TLS connections, and ssl-mode (required, verify_ca or \
     verify_identity) requires TLS";

/// MariaDB refuses a plain-text login to a server that takes TLS only
/// (`require_secure_transport`) as it refuses a wrong password: "Access
/// denied" (1045). With `ssl-mode` disabled, the reason says it may be that.
fn plain_text_hint(failure: &NoConnection, options: &MySqlConnectOptions) -> &'static str {
    let NoConnection::Failed(error) = failure else { return "" };
    let denied = error
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|error| error.number() == code::ACCESS_DENIED);
    if denied && matches!(options.get_ssl_mode(), MySqlSslMode::Disabled) {
        "; ssl-mode is disabled, and a server that takes TLS connections only (require_secure_transport) refuses \
         plain-text logins with this same error"
    } else {
        ""
    }
}

/// The server `options` reach over TCP; `None` over a Unix socket.
fn tcp_server(options: &MySqlConnectOptions) -> Option<TcpServer> {
    options.get_socket().is_none().then(|| TcpServer::new(options.get_host(), options.get_port()))
}

/// MariaDB's refusals, by error number.
pub(super) fn classify(error: &sqlx::Error) -> Option<Refusal> {
    let refusal = error.as_database_error()?.try_downcast_ref::<MySqlDatabaseError>()?;
    let read_only = || Some(Refusal::ReadOnly(ReadOnly::new(ReadOnlyServer::Refused(error.to_string()))));
    match refusal.number() {
        code::STATEMENT_TIMEOUT => Some(Refusal::StatementTimeout),
        code::DEADLOCK => Some(Refusal::Deadlock),
        code::READ_ONLY_TRANSACTION | code::READ_ONLY_OPTION | code::INNODB_READ_ONLY => read_only(),
        _ => None,
    }
}

/// A batch's statements in its transaction (the claim, the audit rows, the delete); the jobs deleted.
async fn write_batch(tx: &mut MySqlConnection, ids: &[i64], batch: &Batch<'_>) -> Result<DeletedJobs, StoreError> {
    let claimed =
        MySql::query(sql::CLAIM_ELIGIBLE, &common::still_eligible_args(ids, batch.cutoffs)).fetch_all(&mut *tx).await?;
    let Some(first) = claimed.first() else { return Ok(DeletedJobs::default()) };
    let deleted_at = MySql::time(first, "deleted_at")?;
    let claimed_ids = claimed.iter().map(|row| MySql::int(row, "id")).collect::<Result<Vec<_>, _>>()?;
    let args = common::still_eligible_args(&claimed_ids, batch.cutoffs);
    let audited = {
        let mut audit_args = args.clone();
        audit_args.extend([batch.run_id.into(), batch.deleted_by.into(), deleted_at.into()]);
        MySql::query(sql::AUDIT_CLAIMED, &audit_args).execute(&mut *tx).await?.rows_affected()
    };
    let removed = MySql::query(sql::DELETE_CLAIMED, &args).execute(&mut *tx).await?.rows_affected();
    let expected = claimed_ids.len() as u64;
    if audited != expected || removed != expected {
        return Err(StoreError::Database(format!(
            "a batch claimed {expected} jobs but wrote {audited} audit rows and deleted {removed} jobs; rolled back"
        )));
    }
    Ok(DeletedJobs::from_rows(claimed, move |row| decode::deleted_job::<MySql>(row, deleted_at)))
}

/// Timestamps are DATETIME(6) in UTC, bound as `NaiveDateTime` (sql.rs
/// says why), within the type's years 1-9999; lists are JSON arrays.
impl Codec for MySql {
    type Time = NaiveDateTime;
    type Ids = String;
    type Names = String;

    const POSITIONAL: bool = true;

    fn store_time(time: DateTime<Utc>) -> NaiveDateTime {
        let first = NaiveDate::from_ymd_opt(1, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0));
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).and_then(|day| day.and_hms_micro_opt(23, 59, 59, 999_999));
        time.naive_utc().clamp(first.unwrap_or(NaiveDateTime::MIN), last.unwrap_or(NaiveDateTime::MAX))
    }

    fn load_time(stored: NaiveDateTime) -> Result<DateTime<Utc>, StoreError> {
        Ok(stored.and_utc())
    }

    fn ids(ids: &[i64]) -> String {
        serde_json::Value::from(ids).to_string()
    }

    fn names(names: Vec<String>) -> String {
        serde_json::Value::from(names).to_string()
    }
}

impl Driver for MariaDbStore {
    type Db = MySql;

    const SQL: &'static Statements = &sql::STATEMENTS;
    const MIGRATOR: &'static sqlx::migrate::Migrator = &migrate::MIGRATOR;

    fn pool(&self, _purpose: Purpose) -> &MySqlPool {
        &self.pool
    }

    fn tcp_server(&self) -> Option<&TcpServer> {
        self.server.as_ref()
    }
}

#[async_trait]
impl SweepStore for MariaDbStore {
    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError> {
        decode::clock::<MySql>(
            &MySql::query(sql::CLOCK_AND_SKEW, &enabled_rules(retentions)).fetch_one(&self.pool).await?,
        )
    }

    /// The run's session holds its lock until `finish_run` or this process's end.
    async fn begin_run(&self, run: &NewRun<'_>) -> Result<(i64, ClockReading), StoreError> {
        let (mut conn, readings) =
            self.own.run(sql::RUN_START_READINGS, &enabled_rules(run.retentions), || None, || self.new_own()).await?;
        for run in AbandonedRun::all::<MySql>(&readings)? {
            MySql::query(sql::MARK_RUN_ABANDONED, &[run.id.into()]).execute(&mut conn).await?;
            run.log();
        }
        let args = common::run_owner_args(run);
        MySql::query(sql::START_TRANSACTION, &[]).execute(&mut conn).await?;
        let row = MySql::query(sql::INSERT_RUN, &args).fetch_one(&mut conn).await?;
        let run_id = MySql::int(&row, "id")?;
        if !MySql::flag(&row, "locked")? {
            return Err(StoreError::Database(format!("run {run_id}: its lock is held by another session")));
        }
        self.own.hold_uncommitted_lease(run_id, conn);
        Ok((run_id, decode::clock::<MySql>(&readings)?))
    }

    /// An idle sweep is one statement (`sql::RECORD_RUN_IF_IDLE`) on the
    /// session that reads the ids (a pool pings a session on its way back).
    /// Otherwise, on the same session: the run's start readings
    /// (`sql::RUN_START_READINGS`: the clock, the skew count and the
    /// abandoned runs), then the ids; with no id, the abandoned runs marked
    /// and the run recorded, each committed on its own.
    async fn start_sweep(&self, run: &NewRun<'_>, limit: u32) -> Result<(FirstIds, Option<i64>), StoreError> {
        let mut args = common::first_ids_args(run.retentions, limit);
        args.extend(common::run_owner_args(run));
        let reading = self.kept.reading(&self.pool);
        let mut conn = reading.take(&self.pool).await?;
        let idle = MySql::query(sql::RECORD_RUN_IF_IDLE, &args).fetch_optional(&mut *conn).await?;
        if let Some(row) = idle {
            reading.keep(conn);
            self.kept.release();
            let first = FirstIds { clock: decode::clock::<MySql>(&row)?, ids: PerRule::default() };
            return Ok((first, Some(MySql::int(&row, "id")?)));
        }
        let readings =
            MySql::query(sql::RUN_START_READINGS, &enabled_rules(run.retentions)).fetch_one(&mut *conn).await?;
        reading.keep(conn);
        let clock = decode::clock::<MySql>(&readings)?;
        let cutoffs = policy::cutoffs(run.retentions, clock.now);
        let ids = self.eligible_ids(&IdRange::first_of(&cutoffs, limit), cutoffs.settled).await?;
        let first = FirstIds { clock, ids };
        if !first.found_none() {
            return Ok((first, None));
        }
        let mut conn = reading.take(&self.pool).await?;
        for abandoned in AbandonedRun::all::<MySql>(&readings)? {
            MySql::query(sql::MARK_RUN_ABANDONED, &[abandoned.id.into()]).execute(&mut *conn).await?;
            abandoned.log();
        }
        let mut args = common::run_owner_args(run).to_vec();
        args.push(clock.now.into());
        let row = MySql::query(sql::INSERT_IDLE_RUN, &args).fetch_one(&mut *conn).await?;
        reading.keep(conn);
        self.kept.release();
        Ok((first, Some(MySql::int(&row, "id")?)))
    }

    async fn commit_run_start(&self, run_id: i64) -> Result<(), StoreError> {
        self.own.commit_lease(run_id, sql::COMMIT).await
    }

    /// Records the end with the start where it is still uncommitted, else
    /// through the pool (on a new session if the server ended the pooled
    /// ones), then releases the lock on the run's session: a sweep that
    /// finds the lock free sees the run finished.
    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError> {
        self.kept.release();
        let args = common::outcome_args(run_id, outcome);
        let finish = || MySql::query(sql::FINISH_RUN, &args).execute(&self.pool);
        let recorded = match self.own.finish_uncommitted(run_id, sql::FINISH_RUN, &args, sql::COMMIT).await {
            Some(recorded) => recorded,
            None => common::once_more_on_a_new_session(&self.pool, finish).await.map(drop).map_err(StoreError::from),
        };
        if self.own.end_lease(run_id, sql::UNLOCK_RUN, &[run_id.into()]).await == LeaseEnd::Broken {
            self.kept.end().await;
        }
        recorded
    }

    async fn eligible_ids(
        &self,
        ranges: &PerRule<Option<IdRange>>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<PerRule<EligibleIds>, StoreError> {
        self.kept
            .eligible_ids(&self.pool, sql::SELECT_ELIGIBLE_IDS, decode::eligible_ids::<MySql>, ranges, settled)
            .await
    }

    /// Claims, audits and deletes the jobs still eligible: one transaction, each statement rechecking.
    async fn delete_eligible(&self, batch: &Batch<'_>) -> Result<DeletedBatch, StoreError> {
        self.own.commit_lease(batch.run_id, sql::COMMIT).await?;
        let mut ids = batch.ids.to_vec();
        ids.sort_unstable();
        let mut conn = self.kept.deleting.take(&self.pool).await?;
        let mut tx = conn.begin().await?;
        let deleted = match write_batch(&mut tx, &ids, batch).await {
            Ok(deleted) => deleted,
            Err(error) => {
                // A statement MariaDB cancels (max_statement_time) rolls back alone: the rows the claim
                // locked stay locked until the transaction ends, and the smaller retry would skip them.
                let _ = tx.rollback().await;
                return Err(error);
            }
        };
        let commit = common::timed_commit(tx).await?;
        self.kept.deleting.keep(conn);
        Ok(DeletedBatch { jobs: deleted, commit })
    }

    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        let args = common::audit_removal_args(removal, limit);
        common::claim_and_remove_trail(&self.pool, sql::CLAIM_EXPIRED_AUDIT_ROWS, sql::DELETE_AUDIT_ROWS, &args).await
    }

    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        let args = common::run_removal_args(removal, limit);
        common::claim_and_remove_trail(&self.pool, sql::CLAIM_EXPIRED_RUN_RECORDS, sql::DELETE_RUN_RECORDS, &args).await
    }

    /// A named lock, on a session of its own: the lock lives as long as the session.
    async fn try_lead(&self) -> Result<bool, StoreError> {
        let lock = async || {
            let (conn, row) = self.own.run(sql::TRY_LEAD, &[], || None, || self.new_own()).await?;
            Ok((conn, MySql::flag(&row, "locked")?))
        };
        self.own.try_lead(lock).await
    }

    async fn end_lead(&self) {
        self.own.end_lead(sql::END_LEAD, &[]).await;
    }

    async fn replica_lags(&self) -> Vec<ReplicaLag> {
        self.replicas.lags(&self.pool).await
    }

    fn reads_alongside_batches(&self) -> bool {
        common::lends_two_sessions(&self.pool)
    }
}

#[async_trait]
impl AdminStore for MariaDbStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&mut *self.pool.acquire().await?, None).await?;
        Ok(())
    }

    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        MySql::time(&MySql::query(sql::SELECT_NOW, &[]).fetch_one(&self.pool).await?, "now")
    }

    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError> {
        let row = MySql::query(sql::READ_ONLY, &[]).fetch_one(&self.pool).await?;
        Ok(server::read_only(&row)?.map(ReadOnly::new))
    }

    async fn reload_credentials(&self) -> Result<bool, StoreError> {
        self.pool.set_connect_options(options::connect_options(&self.settings)?.options);
        Ok(common::reads_files(&self.settings))
    }

    async fn close(&self) {
        self.end_lead().await;
        self.kept.end().await;
        self.own.close().await;
        self.pool.close().await;
        self.replicas.close().await;
    }
}
