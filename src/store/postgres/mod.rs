//! The PostgreSQL store (13 or newer). Concurrent sweeps are safe: a batch
//! claims its jobs with `FOR UPDATE SKIP LOCKED` and deletes them with their
//! audit rows in one statement. Each run holds a session advisory lock on its
//! own connection, so the next sweep can tell a run whose process died (lock
//! free) from one still working (lock held), whichever replica it runs on.

mod kept_session;
mod nodelay;
mod options;
/// Public so that tests can examine the query plans.
pub mod sql;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Row};

use self::kept_session::KeptSession;
use self::nodelay::TcpServer;
use super::{
    AuditFilter, AuditSearch, AuditWindow, BatchRequest, Candidate, ClockReading, DeletedJob, EligibleIds,
    EligibleJobs, ForecastCount, ForecastWindow, HeldJob, HeldKey, IdRange, IdRangeBinds, JobFilter, ReadOnly,
    RunOutcome, Store, StoreError, check_versions, conflict, eligible_from_row, first_connection, forecast_count,
    parse_column, policy_of, pool_options, rows,
};
use crate::config::{DatabaseSettings, format_duration};
use crate::identity::ProcessIdentity;
use crate::lifecycle::{Effect, Operation};
use crate::model::{AuditEntry, Drive, Job, RunRecord, RunStatus};
use crate::policy::{Cursors, Cutoffs, PerPolicy, Policy, Retentions, SortKey, start_of_time};
use crate::trail::{AuditRemoval, Removed, RunRemoval, TrailKey};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// First key of the advisory locks that mark live runs ("RTDR").
const RUN_LOCK_CLASS: i32 = 0x5254_4452;

/// First key of the advisory lock that `schedule.singleton` takes ("RTDS").
const SINGLETON_LOCK_CLASS: i32 = 0x5254_4453;

/// Sessions kept for reuse: one for a run's lease, one for the singleton lead.
const SPARE_SESSIONS: usize = 2;

/// A session opened this recently answers [`Store::read_only`] for a new
/// one: the settings it started with are those of now. Long enough for the
/// two questions of a purge, short of the daemon's 5 s between readiness checks.
const NEW_SESSION_FOR: Duration = Duration::from_secs(1);

/// A run that [`sql::BEGIN_RUN`] found left by a dead process.
#[derive(serde::Deserialize)]
struct AbandonedRun {
    id: i64,
    host: String,
    pid: i64,
}

pub struct PostgresStore {
    /// What the connect options are built from again on a reload.
    settings: DatabaseSettings,
    pool: PgPool,
    /// Sessions under [`sql::INDEX_ORDER_SETTINGS`], for the reads of a
    /// sweep, its run records and the trail's removals.
    index_order_pool: PgPool,
    /// The connection of each run in progress, holding its advisory lock.
    run_leases: Mutex<HashMap<i64, PgConnection>>,
    /// The sessions of a sweep's batches and of its reads of the next ids,
    /// kept from one statement to the next ([`KeptSession`]).
    deleting_session: KeptSession,
    reading_session: KeptSession,
    /// Sessions given back by finished runs and leads, for the next ones: a
    /// new connection per sweep would cost more than an idle sweep itself.
    spare_sessions: Mutex<Vec<PgConnection>>,
    /// The connection holding the singleton lock while this process sweeps.
    leader: tokio::sync::Mutex<Option<PgConnection>>,
    /// Whether the database refused writes at the last [`Store::read_only`].
    read_only_seen: Mutex<Option<bool>>,
    /// The session that last asked [`Store::read_only`] (first, the one that
    /// found the server reachable) and when it was opened, kept while no
    /// spare session is: it asks again while it is new, then holds the next
    /// run's lease. Every session costs a TLS handshake and authentication
    /// (90 ms on a local server), and a purge asks twice before its run begins.
    asking_session: Mutex<Option<(PgConnection, Instant)>>,
}

impl PostgresStore {
    pub async fn connect(settings: &DatabaseSettings) -> Result<PostgresStore, StoreError> {
        let unreachable = |reason: String| StoreError::Unreachable {
            url: settings.url.redacted(),
            reason: settings.url.scrub(&reason),
        };
        let options::StoreOptions { options, trusted } = options::connect_options(settings)?;
        if options::is_unverified_tls(&options) {
            tracing::warn!(
                "sslmode is require: the connection is encrypted, but the server is not verified, so anyone on the \
                 path can pose as it; use sslmode verify-full with sslrootcert"
            );
        }
        let first = first_connection::<PgConnection>(
            &options::run_record_options(options.clone()),
            settings.connect_timeout,
            Some(&trusted),
        )
        .await
        .map_err(unreachable)?;
        let server = TcpServer::of(&options);
        if let Some(server) = &server {
            server.set_nodelay_on_connections().await;
        }
        let pool_options = pool_options::<sqlx::Postgres>(settings).after_connect(move |_, _| {
            let server = server.clone();
            Box::pin(async move {
                if let Some(server) = server {
                    server.set_nodelay_on_connections().await;
                }
                Ok(())
            })
        });
        let index_order_pool = pool_options.clone().connect_lazy_with(options::index_order_options(options.clone()));
        let pool = pool_options.connect_lazy_with(options);
        Ok(PostgresStore {
            settings: settings.clone(),
            pool,
            index_order_pool,
            run_leases: Mutex::new(HashMap::new()),
            deleting_session: KeptSession::default(),
            reading_session: KeptSession::default(),
            spare_sessions: Mutex::new(Vec::new()),
            leader: tokio::sync::Mutex::new(None),
            read_only_seen: Mutex::new(None),
            asking_session: Mutex::new(Some((first, Instant::now()))),
        })
    }

    /// A session of its own, outside the pool, for a lock that lives as long
    /// as the session: one a previous run or lead gave back or one that asked
    /// [`Store::read_only`] (`true`), else a new one. A kept session may have
    /// been closed by a server or firewall while idle; a caller whose first
    /// statement fails on it tries once more on a new one ([`Self::new_session`]).
    async fn session(&self) -> Result<(PgConnection, bool), StoreError> {
        let spare = self.spare_sessions.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let kept = spare.or_else(|| self.take_asking_session().map(|(conn, _)| conn));
        match kept {
            Some(conn) => Ok((conn, true)),
            None => Ok((self.new_session().await?, false)),
        }
    }

    /// A new session under [`options::run_record_options`], within the
    /// pool's acquire timeout (`database.connect_timeout`).
    async fn new_session(&self) -> Result<PgConnection, StoreError> {
        let options = options::run_record_options((*self.pool.connect_options()).clone());
        let timeout = self.pool.options().get_acquire_timeout();
        match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
            Ok(conn) => {
                let conn = conn?;
                if let Some(server) = TcpServer::of(&options) {
                    server.set_nodelay_on_connections().await;
                }
                Ok(conn)
            }
            Err(_) => Err(StoreError::Database(format!(
                "no new session within {} (database.connect_timeout)",
                format_duration(timeout)
            ))),
        }
    }

    fn take_asking_session(&self) -> Option<(PgConnection, Instant)> {
        self.asking_session.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    async fn begin_run_on(
        conn: &mut PgConnection,
        trigger: &str,
        owner: &ProcessIdentity,
        retentions: &Retentions,
    ) -> Result<PgRow, sqlx::Error> {
        sqlx::query(sql::BEGIN_RUN)
            .bind(retentions.completed.is_some())
            .bind(retentions.closed.is_some())
            .bind(retentions.creating_idle.is_some())
            .bind(RUN_LOCK_CLASS)
            .bind(trigger)
            .bind(&owner.host)
            .bind(i64::from(owner.pid))
            .bind(owner.started.map(|ticks| ticks as i64))
            .fetch_one(conn)
            .await
    }

    async fn try_lead_on(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(sql::TRY_LEAD).bind(SINGLETON_LOCK_CLASS).fetch_one(conn).await
    }

    /// Keeps a session whose locks are all released for the next run or lead.
    fn give_back(&self, conn: PgConnection) {
        let mut spare = self.spare_sessions.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_SESSIONS {
            spare.push(conn);
        }
    }

    /// Closes the idle pooled sessions and the kept ones, so that the next
    /// statements run on new sessions, which read the database's and role's
    /// settings (`default_transaction_read_only`) as they are now. Sessions
    /// in use (none while sweeps are skipped) go back to the pool as they are.
    async fn renew_sessions(&self) {
        self.close_kept_sessions().await;
        for pool in [&self.pool, &self.index_order_pool] {
            while let Some(conn) = pool.try_acquire() {
                let _ = conn.close().await;
            }
        }
    }

    /// Ends the spare sessions, the one that asked [`Store::read_only`], and
    /// the pooled ones a sweep keeps between statements.
    async fn close_kept_sessions(&self) {
        self.deleting_session.end().await;
        self.reading_session.end().await;
        let mut kept: Vec<PgConnection> =
            std::mem::take(&mut *self.spare_sessions.lock().unwrap_or_else(|e| e.into_inner()));
        kept.extend(self.take_asking_session().map(|(conn, _)| conn));
        for conn in kept {
            let _ = conn.close().await;
        }
    }

    /// Binds a run's outcome to `FINISH_RUN` or `FINISH_RUN_AND_UNLOCK`.
    fn bind_outcome<'q>(
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        run_id: i64,
        outcome: &'q RunOutcome,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(run_id)
            .bind(outcome.status.as_str())
            .bind(outcome.counts.completed as i64)
            .bind(outcome.counts.closed as i64)
            .bind(outcome.counts.creating_idle as i64)
            .bind(outcome.stopped_by.as_deref())
            .bind(outcome.error.as_deref())
            .bind(outcome.removed.audit_rows as i64)
            .bind(outcome.removed.runs as i64)
    }
}

/// The `now` and `future` columns of `CLOCK_AND_SKEW` and `BEGIN_RUN`.
fn clock_from_row(row: &PgRow) -> Result<ClockReading, StoreError> {
    Ok(ClockReading { now: row.try_get("now")?, future_jobs: row.try_get::<i64, _>("future")? as u64 })
}

fn job_from_row(row: &PgRow) -> Result<(i64, Job), StoreError> {
    let job = Job {
        name: row.try_get("name")?,
        job_type: parse_column(row.try_get("job_type")?)?,
        state: parse_column(row.try_get("state")?)?,
        cancel_requested: row.try_get("cancel_requested")?,
        cancel_requested_at: row.try_get("cancel_requested_at")?,
        hold_reason: row.try_get("hold_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        state_changed_at: row.try_get("state_changed_at")?,
        drives: Vec::new(),
    };
    Ok((row.try_get("id")?, job))
}

fn audit_from_row(row: &PgRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        job_name: row.try_get("job_name")?,
        job_type: parse_column(row.try_get("job_type")?)?,
        policy: row.try_get("policy")?,
        state: parse_column(row.try_get("state")?)?,
        cancel_requested: row.try_get("cancel_requested")?,
        created_at: row.try_get("created_at")?,
        state_changed_at: row.try_get("state_changed_at")?,
        deleted_at: row.try_get("deleted_at")?,
        deleted_by: row.try_get("deleted_by")?,
    })
}

fn run_from_row(row: &PgRow) -> Result<RunRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let counts = PerPolicy {
        completed: row.try_get::<i64, _>("deleted_completed")? as u64,
        closed: row.try_get::<i64, _>("deleted_closed")? as u64,
        creating_idle: row.try_get::<i64, _>("deleted_creating_idle")? as u64,
    };
    Ok(RunRecord {
        run_id: row.try_get("id")?,
        trigger: row.try_get("trigger")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
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

fn held_from_row(row: &PgRow) -> Result<HeldJob, StoreError> {
    Ok(HeldJob {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        job_type: parse_column(row.try_get("job_type")?)?,
        state: parse_column(row.try_get("state")?)?,
        hold_reason: row.try_get("hold_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        state_changed_at: row.try_get("state_changed_at")?,
    })
}

/// A `LIMIT` value: PostgreSQL reads NULL as "no limit".
fn limit(limit: Option<u64>) -> Option<i64> {
    limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Attaches each job's drives, read in one query.
async fn with_drives(conn: &mut PgConnection, jobs: Vec<(i64, Job)>) -> Result<Vec<Job>, StoreError> {
    let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
    let mut drives = Vec::new();
    for row in sqlx::query(sql::SELECT_DRIVES_OF_JOBS).bind(&ids).fetch_all(&mut *conn).await? {
        let drive = Drive {
            drive_id: row.try_get("drive_id")?,
            state: parse_column(row.try_get("state")?)?,
            bytes: row.try_get("bytes")?,
        };
        drives.push((row.try_get("job_id")?, drive));
    }
    Ok(rows::attach_drives(jobs, drives))
}

/// Locks a job's row for the rest of the transaction; returns it with the transaction's clock.
async fn lock_job(conn: &mut PgConnection, name: &str) -> Result<(i64, Job, DateTime<Utc>), StoreError> {
    let row = sqlx::query(sql::LOCK_JOB_BY_NAME)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(crate::lifecycle::quoted(name)))?;
    let (id, job) = job_from_row(&row)?;
    Ok((id, job, row.try_get("now")?))
}

/// Binds the ten parameters of the eligibility statements.
fn bind_batch<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    cutoffs: &Cutoffs,
    after: &Cursors,
    limit: u32,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut query = query;
    for policy in Policy::ALL {
        query = query.bind(cutoffs[policy]);
    }
    for policy in Policy::ALL {
        let key = after[policy].unwrap_or(SortKey { timestamp: start_of_time(), job_id: i64::MIN });
        query = query.bind(key.timestamp).bind(key.job_id);
    }
    query.bind(i64::from(limit))
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn check_migrated(&self) -> Result<(), StoreError> {
        // No migrations table means nothing is applied; any other error (no
        // permission to read it, say) is reported as it is.
        let applied: Vec<i64> = match sqlx::query_scalar(sql::SELECT_MIGRATION_VERSIONS).fetch_all(&self.pool).await {
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P01") => Vec::new(),
            result => result?,
        };
        check_versions(&MIGRATOR, &applied)
    }

    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(sqlx::query_scalar(sql::SELECT_NOW).fetch_one(&self.pool).await?)
    }

    async fn create_jobs(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let taken: Vec<String> =
            sqlx::query_scalar(sql::SELECT_TAKEN_NAMES).bind(rows::names(jobs)).fetch_all(&mut *tx).await?;
        rows::ensure_names_free(jobs, &taken)?;
        sqlx::query(sql::INSERT_JOBS).bind(Json(rows::job_rows(jobs, |t| t))).execute(&mut *tx).await?;
        let drives = rows::drive_rows(jobs);
        if !drives.is_empty() {
            sqlx::query(sql::INSERT_DRIVES).bind(Json(drives)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, name: &str) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(row) = sqlx::query(sql::SELECT_JOB_BY_NAME).bind(name).fetch_optional(&mut *conn).await? else {
            return Ok(None);
        };
        Ok(with_drives(&mut conn, vec![job_from_row(&row)?]).await?.pop())
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let states: Option<Vec<&str>> =
            (!filter.states.is_empty()).then(|| filter.states.iter().map(|s| s.as_str()).collect());
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sql::SELECT_JOBS).bind(states).bind(limit(filter.limit)).fetch_all(&mut *conn).await?;
        let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
        with_drives(&mut conn, jobs).await
    }

    async fn change_job(&self, name: &str, operation: &Operation) -> Result<Job, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (id, mut job, now) = lock_job(&mut tx, name).await?;
        let effect = crate::lifecycle::decide(&job.status(), operation).map_err(|e| conflict(name, e))?;
        if job.apply(&effect, now) {
            sqlx::query(sql::UPDATE_JOB)
                .bind(id)
                .bind(job.state.as_str())
                .bind(job.cancel_requested)
                .bind(job.cancel_requested_at)
                .bind(job.hold_reason.as_deref())
                .bind(job.updated_at)
                .bind(job.state_changed_at)
                .execute(&mut *tx)
                .await?;
        }
        let job = with_drives(&mut tx, vec![(id, job)]).await?.remove(0);
        tx.commit().await?;
        Ok(job)
    }

    async fn delete_job(&self, name: &str, deleted_by: &str) -> Result<AuditEntry, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (id, job, _) = lock_job(&mut tx, name).await?;
        let effect = crate::lifecycle::decide(&job.status(), &Operation::Delete).map_err(|e| conflict(name, e))?;
        debug_assert_eq!(effect, Effect::Delete);
        let row = sqlx::query(sql::DELETE_JOB_AUDITED).bind(id).bind(deleted_by).fetch_one(&mut *tx).await?;
        tx.commit().await?;
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
        // The session holds the run's lock until finish_run releases it, or
        // until this process dies.
        let (mut conn, reused) = self.session().await?;
        let row = match Self::begin_run_on(&mut conn, trigger, owner, retentions).await {
            Err(_) if reused => {
                conn = self.new_session().await?;
                Self::begin_run_on(&mut conn, trigger, owner, retentions).await?
            }
            row => row?,
        };
        let run_id: i64 = row.try_get("id")?;
        let clock = clock_from_row(&row)?;
        let Json(abandoned): Json<Vec<AbandonedRun>> = row.try_get("abandoned")?;
        for run in abandoned {
            tracing::warn!(
                run_id = run.id,
                host = run.host,
                pid = run.pid,
                "marked a run left running by a dead process as abandoned"
            );
        }
        self.run_leases.lock().unwrap_or_else(|e| e.into_inner()).insert(run_id, conn);
        Ok((run_id, clock))
    }

    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StoreError> {
        self.deleting_session.release();
        self.reading_session.release();
        let lease = self.run_leases.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
        if let Some(mut conn) = lease {
            let finished = Self::bind_outcome(sqlx::query(sql::FINISH_RUN_AND_UNLOCK), run_id, outcome)
                .bind(RUN_LOCK_CLASS)
                .fetch_one(&mut conn)
                .await
                .and_then(|row| row.try_get::<bool, _>("unlocked"));
            match finished {
                Ok(true) => {
                    self.give_back(conn);
                    return Ok(());
                }
                // Recorded, but the lock is in doubt: closing the session ends it.
                Ok(false) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                // The backend was terminated, and those of the pooled
                // sessions likely with it (a restart, a failover): pooled
                // sessions used moments ago are not pinged before use.
                Err(_) => {
                    let _ = conn.close().await;
                    self.renew_sessions().await;
                }
            }
        }
        // No lease, or it broke: record the end through the pool.
        Self::bind_outcome(sqlx::query(sql::FINISH_RUN), run_id, outcome).execute(&self.index_order_pool).await?;
        Ok(())
    }

    async fn clock_and_skew(&self, retentions: &Retentions) -> Result<ClockReading, StoreError> {
        let row = sqlx::query(sql::CLOCK_AND_SKEW)
            .bind(retentions.completed.is_some())
            .bind(retentions.closed.is_some())
            .bind(retentions.creating_idle.is_some())
            .fetch_one(&self.index_order_pool)
            .await?;
        clock_from_row(&row)
    }

    async fn eligible_jobs(&self, cutoffs: &Cutoffs) -> Result<PerPolicy<EligibleJobs>, StoreError> {
        let row = sqlx::query(sql::COUNT_ELIGIBLE)
            .bind(cutoffs.completed)
            .bind(cutoffs.closed)
            .bind(cutoffs.creating_idle)
            .fetch_one(&self.index_order_pool)
            .await?;
        eligible_from_row(|column| Ok(row.try_get(column)?), |column| Ok(row.try_get(column)?))
    }

    async fn try_lead(&self) -> Result<bool, StoreError> {
        let mut leader = self.leader.lock().await;
        if leader.is_some() {
            return Ok(true);
        }
        // A session of its own: the lock lives as long as the session.
        let (mut conn, reused) = self.session().await?;
        let locked = match Self::try_lead_on(&mut conn).await {
            Err(_) if reused => {
                conn = self.new_session().await?;
                Self::try_lead_on(&mut conn).await?
            }
            locked => locked?,
        };
        if locked {
            *leader = Some(conn);
        } else {
            self.give_back(conn);
        }
        Ok(locked)
    }

    async fn end_lead(&self) {
        if let Some(mut conn) = self.leader.lock().await.take() {
            match sqlx::query_scalar(sql::END_LEAD).bind(SINGLETON_LOCK_CLASS).fetch_one(&mut conn).await {
                Ok(true) => self.give_back(conn),
                // Closing ends the session, which frees the lock even if the unlock failed.
                _ => {
                    let _ = conn.close().await;
                }
            }
        }
    }

    fn pause_between_batches(&self) -> Duration {
        Duration::ZERO
    }

    async fn read_only(&self) -> Result<Option<ReadOnly>, StoreError> {
        let (mut conn, opened) = match self.take_asking_session() {
            Some((conn, opened)) if opened.elapsed() < NEW_SESSION_FOR => (conn, opened),
            kept => {
                if let Some((old, _)) = kept {
                    let _ = old.close().await;
                }
                (self.new_session().await?, Instant::now())
            }
        };
        let timeout = self.pool.options().get_acquire_timeout();
        let row =
            tokio::time::timeout(timeout, sqlx::query(sql::READ_ONLY).fetch_one(&mut conn)).await.map_err(|_| {
                StoreError::Database(format!(
                    "no answer within {} (database.connect_timeout)",
                    format_duration(timeout)
                ))
            })??;
        let (in_recovery, read_only) = (row.try_get::<bool, _>("in_recovery")?, row.try_get::<bool, _>("read_only")?);
        let finding = if in_recovery {
            Some(ReadOnly::Standby)
        } else if read_only {
            Some(ReadOnly::Sessions)
        } else {
            None
        };
        let seen = self.read_only_seen.lock().unwrap_or_else(|e| e.into_inner()).replace(finding.is_some());
        if seen.is_some_and(|was| was != finding.is_some()) {
            self.renew_sessions().await;
        }
        // Kept for the next run only when no spare session would serve it.
        if self.spare_sessions.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            *self.asking_session.lock().unwrap_or_else(|e| e.into_inner()) = Some((conn, opened));
        } else {
            let _ = conn.close().await;
        }
        Ok(finding)
    }

    async fn commit_counter(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }

    async fn after_batch(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn release_space(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn find_eligible(&self, batch: BatchRequest<'_>) -> Result<Vec<Candidate>, StoreError> {
        let rows = bind_batch(sqlx::query(sql::SELECT_ELIGIBLE), batch.cutoffs, batch.after, batch.limit)
            .fetch_all(&self.index_order_pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Candidate {
                    name: row.try_get("name")?,
                    policy: policy_of(row.try_get("state")?)?,
                    key: SortKey { timestamp: row.try_get("ts")?, job_id: row.try_get("id")? },
                })
            })
            .collect()
    }

    async fn nth_eligible(&self, cutoffs: &Cutoffs, n: u64) -> Result<Option<SortKey>, StoreError> {
        let row = sqlx::query(sql::SELECT_NTH_ELIGIBLE)
            .bind(cutoffs.completed)
            .bind(cutoffs.closed)
            .bind(cutoffs.creating_idle)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_optional(&self.index_order_pool)
            .await?;
        row.map(|row| Ok(SortKey { timestamp: row.try_get("ts")?, job_id: row.try_get("id")? })).transpose()
    }

    async fn eligible_ids(&self, ranges: &PerPolicy<Option<IdRange>>) -> Result<PerPolicy<EligibleIds>, StoreError> {
        let mut query = sqlx::query(sql::SELECT_ELIGIBLE_IDS);
        for policy in Policy::ALL {
            let binds = IdRangeBinds::of(ranges[policy].as_ref());
            query = query
                .bind(binds.cutoff)
                .bind(binds.after.0)
                .bind(binds.after.1)
                .bind(binds.through.0)
                .bind(binds.through.1)
                .bind(binds.limit);
        }
        let mut read = PerPolicy::<EligibleIds>::default();
        let mut conn = self.reading_session.take(&self.index_order_pool).await?;
        let rows = query.fetch_all(&mut *conn).await?;
        self.reading_session.keep(conn);
        for row in &rows {
            read[policy_of(row.try_get("state")?)?]
                .push(SortKey { timestamp: row.try_get("ts")?, job_id: row.try_get("id")? });
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
        let mut conn = self.deleting_session.take(&self.pool).await?;
        let rows = sqlx::query(sql::DELETE_ELIGIBLE)
            .bind(ids)
            .bind(cutoffs.completed)
            .bind(cutoffs.closed)
            .bind(cutoffs.creating_idle)
            .bind(run_id)
            .bind(deleted_by)
            .fetch_all(&mut *conn)
            .await?;
        self.deleting_session.keep(conn);
        rows.iter()
            .map(|row| {
                Ok(DeletedJob {
                    name: row.try_get("name")?,
                    job_type: parse_column(row.try_get("job_type")?)?,
                    policy: policy_of(row.try_get("state")?)?,
                    state: parse_column(row.try_get("state")?)?,
                    cancel_requested: row.try_get("cancel_requested")?,
                    created_at: row.try_get("created_at")?,
                    state_changed_at: row.try_get("state_changed_at")?,
                    deleted_at: row.try_get("deleted_at")?,
                    key: SortKey { timestamp: row.try_get("ts")?, job_id: row.try_get("id")? },
                })
            })
            .collect()
    }

    async fn close(&self) {
        self.end_lead().await;
        self.close_kept_sessions().await;
        self.pool.close().await;
        self.index_order_pool.close().await;
    }

    async fn reload_credentials(&self) -> Result<bool, StoreError> {
        let options = options::connect_options(&self.settings)?.options;
        self.index_order_pool.set_connect_options(options::index_order_options(options.clone()));
        self.pool.set_connect_options(options);
        Ok(options::reads_files(&self.settings))
    }

    // --- The audit trail's own lifecycle and its export ---

    async fn remove_audit_rows(&self, removal: &AuditRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        let query = sqlx::query(sql::REMOVE_AUDIT_ROWS)
            .bind(removal.cutoff)
            .bind(removal.after.at)
            .bind(removal.after.id)
            .bind(i64::from(limit));
        let rows = query.fetch_all(&self.index_order_pool).await?;
        rows.iter().map(|row| Ok(TrailKey { at: row.try_get("at")?, id: row.try_get("id")? })).collect()
    }

    async fn remove_run_records(&self, removal: &RunRemoval, limit: u32) -> Result<Vec<TrailKey>, StoreError> {
        let query = sqlx::query(sql::REMOVE_RUN_RECORDS)
            .bind(removal.spent_cutoff)
            .bind(removal.empty_cutoff)
            .bind(removal.after_spent.at)
            .bind(removal.after_spent.id)
            .bind(removal.after_empty.at)
            .bind(removal.after_empty.id)
            .bind(i64::from(limit));
        let rows = query.fetch_all(&self.index_order_pool).await?;
        rows.iter().map(|row| Ok(TrailKey { at: row.try_get("at")?, id: row.try_get("id")? })).collect()
    }

    async fn audit_id_range(&self, window: &AuditWindow) -> Result<Option<(i64, i64)>, StoreError> {
        let query = if *window == AuditWindow::default() {
            sqlx::query(sql::SELECT_AUDIT_ID_RANGE)
        } else {
            sqlx::query(sql::SELECT_AUDIT_ID_RANGE_BETWEEN)
                .bind(window.since.unwrap_or_else(start_of_time))
                .bind(window.until.unwrap_or(DateTime::<Utc>::MAX_UTC))
        };
        let rows = query.fetch_all(&self.index_order_pool).await?;
        let row = rows.first().ok_or_else(|| StoreError::Database("no row from an aggregate".into()))?;
        Ok(row.try_get::<Option<i64>, _>("first")?.zip(row.try_get::<Option<i64>, _>("last")?))
    }

    async fn audit_page(&self, after: i64, last: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let query = sqlx::query(sql::SELECT_AUDIT_PAGE).bind(after).bind(last).bind(i64::from(limit));
        let rows = query.fetch_all(&self.index_order_pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    // --- The status pages and `forecast` (issue 13) ---

    async fn forecast(&self, window: ForecastWindow<'_>) -> Result<Vec<ForecastCount>, StoreError> {
        let mut query = sqlx::query(sql::FORECAST);
        for bounds in [window.cutoffs, window.horizons] {
            for policy in Policy::ALL {
                query = query.bind(bounds[policy]);
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
        let after = after.unwrap_or(HeldKey { created_at: start_of_time(), id: i64::MIN });
        let rows = sqlx::query(sql::SELECT_HELD)
            .bind(after.created_at)
            .bind(after.id)
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
