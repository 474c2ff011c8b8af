//! docs/lifecycle.md and docs/design.md, "A sweep" under contention, on the server engines: three `purge` processes
//! sweep at once (small batches, the idle-`Creating` policy on) while other
//! clients hold, ship, cancel and delete the same jobs, through the command
//! line (`jobs hold/set-state/cancel/delete`, the product's path) and through
//! SQL connections of the test (faster; they lock the row as the product
//! does, decide with the product's lifecycle rules, sometimes keep the lock
//! a few milliseconds, and delete with the product's audited delete
//! statement). A second scenario holds one batch still between its claim
//! and its delete while job commands wait for its job: each must find the
//! job gone when the batch commits, with no error on either side.
//!
//! Every client operation is recorded with its outcome (done, not found,
//! conflict) and its start and end; a test-only trigger logs every update and
//! delete of a `jobs` row with `clock_timestamp()` and the row as it was, so
//! each deletion can be placed relative to the client operations and checked
//! against the row it actually removed. After each round:
//!
//! * (a) no job is deleted while held: every hold that succeeded left a job
//!   that still exists and is held; no deleted row carried a hold;
//! * (b) no job is deleted in a state (or at an age) its policy does not
//!   cover: audit `state` matches `policy`, the deleted row was eligible under
//!   the run's cut-off, a job moved to `Shipping` still exists, a cancelled
//!   idle job is never taken by `creating_idle`;
//! * (c) each job deleted exactly once, with one audit row and one delete,
//!   whoever deleted it; run counts add up to their audit rows;
//! * (d) no error: every purge exits 0 with no ERROR/WARN log line, every
//!   client ends in done (0), not found (3) or conflict (4), and each outcome
//!   is explained by the store's final contents and the logged changes.
//!
//! At the end one sweep alone leaves nothing eligible, and no sweep may have
//! warned of clock skew: no job here has a timestamp in the future, so such
//! a warning (checked last, after every round's invariants) is a false alarm.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use retentiond::lifecycle::{self, Effect, JobState, JobStatus, Operation};
use retentiond::store::{mariadb, postgres};
use serde_json::{Value, json};
use sqlx::{Connection, MySqlConnection, PgConnection, Row};

/// Fixed seed: the same jobs and the same planned operations on every run
/// (the interleaving is up to the scheduler, which is the point).
const SEED: u64 = 0x5241_4345_5331;
const ROUNDS: usize = 22;
const JOBS_PER_ROUND: usize = 240;
const PURGES: usize = 3;
const BATCH_SIZE: &str = "7";
const CLI_CLIENTS: usize = 4;
const CLI_OPS_PER_CLIENT: usize = 8;
const SQL_CLIENTS: usize = 6;
/// Planned SQL operations per round; the SQL clients stop when the purges are done.
const SQL_PLAN: usize = 400;

const IDLE_14D: (&str, &str) = ("RETENTIOND__RETENTION__CREATING_IDLE", "14d");
const NO_MIGRATE: (&str, &str) = ("RETENTIOND__DATABASE__AUTO_MIGRATE", "false");
/// `deleted_by` of the deletes made by the SQL clients.
const SQL_DELETER: &str = "race-sql@test";

const DAY_SECS: i64 = 86_400;
const RETENTION_COMPLETED: i64 = 90 * DAY_SECS;
const RETENTION_CLOSED: i64 = 90 * DAY_SECS;
const RETENTION_CREATING: i64 = 14 * DAY_SECS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Hold,
    Ship,
    Delete,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    Cli,
    Sql,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Done,
    NotFound,
    Conflict,
    /// Anything else: an exit code other than 0, 3, 4, or an SQL error.
    Unexpected(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::NotFound => "not-found",
            Outcome::Conflict => "conflict",
            Outcome::Unexpected(_) => "UNEXPECTED",
        }
    }
}

/// One job of a round, as imported.
struct Generated {
    name: String,
    state: &'static str,
    eligible: bool,
}

/// A client operation to make.
#[derive(Clone)]
struct Planned {
    job: usize,
    kind: Kind,
    /// Unique per operation, so a hold can be traced to the client that placed it.
    reason: String,
    /// SQL clients: pause before starting, and while holding the row lock.
    pause_before: Duration,
    hold_lock: Duration,
}

/// A client operation as it happened.
#[derive(Clone)]
struct Done {
    round: usize,
    name: String,
    original_state: &'static str,
    kind: Kind,
    via: Via,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    outcome: Outcome,
}

/// Minutes as a chrono duration.
fn minutes(n: u64) -> chrono::Duration {
    chrono::Duration::minutes(n as i64)
}

/// The jobs of one round: most eligible (Completed, Closed, idle Creating),
/// some young or in a state no policy covers.
fn generate_round(rng: &mut fastrand::Rng, round: usize) -> (Vec<Generated>, Vec<Value>) {
    let base = now();
    let mut generated = Vec::new();
    let mut lines = Vec::new();
    for i in 0..JOBS_PER_ROUND {
        let name = format!("race-r{round:02}-{i:03}");
        let roll = rng.u32(0..100);
        let (state, eligible, mut line) = match roll {
            0..45 => (
                "Completed",
                true,
                job(&name, "Completed", base - chrono::Duration::days(91) - minutes(rng.u64(0..40_000))),
            ),
            45..65 => {
                ("Closed", true, job(&name, "Closed", base - chrono::Duration::days(91) - minutes(rng.u64(0..40_000))))
            }
            65..88 => {
                let idle = base - chrono::Duration::days(15) - minutes(rng.u64(0..14_000));
                let line = json!({
                    "name": name, "job_type": "Export", "state": "Creating",
                    "created_at": ts(idle - chrono::Duration::days(2)),
                    "updated_at": ts(idle),
                    "state_changed_at": ts(idle - chrono::Duration::days(2)),
                });
                ("Creating", true, line)
            }
            88..93 => ("Completed", false, job(&name, "Completed", base - chrono::Duration::days(5))),
            93..96 => ("Creating", false, creating_job(&name, 2)),
            _ => ("Shipping", false, job(&name, "Shipping", base - chrono::Duration::days(200))),
        };
        if state == "Completed" && rng.u32(0..4) == 0 {
            let at = line["state_changed_at"].clone();
            line = set(set(line, "cancel_requested", json!(true)), "cancel_requested_at", at);
        }
        let n_drives = rng.usize(0..3);
        if n_drives > 0 {
            line = set(line, "drives", drives(&name, n_drives, "ShippedBack"));
        }
        generated.push(Generated { name, state, eligible });
        lines.push(line);
    }
    (generated, lines)
}

/// Picks a target for `kind`: mostly jobs where the race is interesting
/// (eligible for holds, Creating for a move to Shipping, deletable for a
/// delete), sometimes any job, so conflicts show up too.
fn plan_op(rng: &mut fastrand::Rng, jobs: &[Generated], id: String) -> Planned {
    let kind = match rng.u32(0..100) {
        0..35 => Kind::Hold,
        35..55 => Kind::Ship,
        55..80 => Kind::Delete,
        _ => Kind::Cancel,
    };
    let wanted = |g: &Generated| match kind {
        Kind::Hold => g.eligible,
        Kind::Ship => g.state == "Creating" && g.eligible,
        Kind::Delete => matches!(g.state, "Creating" | "Completed"),
        Kind::Cancel => true,
    };
    let candidates: Vec<usize> = (0..jobs.len()).filter(|&i| wanted(&jobs[i])).collect();
    let job = if rng.u32(0..100) < 85 && !candidates.is_empty() {
        candidates[rng.usize(0..candidates.len())]
    } else {
        rng.usize(0..jobs.len())
    };
    let pause_before = Duration::from_micros(rng.u64(0..3_000));
    let hold_lock = if rng.bool() { Duration::from_micros(rng.u64(0..4_000)) } else { Duration::ZERO };
    Planned { job, kind, reason: format!("race hold {id}"), pause_before, hold_lock }
}

/// One operation through the command line.
fn cli_op(env: &TestEnv, name: &str, op: &Planned) -> Outcome {
    let args: Vec<&str> = match op.kind {
        Kind::Hold => vec!["jobs", "hold", name, "--reason", &op.reason],
        Kind::Ship => vec!["jobs", "set-state", name, "Shipping"],
        Kind::Delete => vec!["jobs", "delete", name],
        Kind::Cancel => vec!["jobs", "cancel", name],
    };
    let out = env.cmd(&args).env(NO_MIGRATE.0, NO_MIGRATE.1).run();
    match out.code {
        0 => Outcome::Done,
        3 => Outcome::NotFound,
        4 => Outcome::Conflict,
        _ => Outcome::Unexpected(out.describe()),
    }
}

/// A connection of an SQL client, of the store's engine.
enum Conn {
    Postgres(PgConnection),
    MariaDb(MySqlConnection),
}

/// `$body` with `$c` bound to the client's connection, whichever it is.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Postgres($c) => $body,
            Conn::MariaDb($c) => $body,
        }
    };
}

impl Conn {
    /// A new connection; on MariaDB at READ COMMITTED, as the store's sessions.
    async fn open(env: &TestEnv) -> Result<Conn, sqlx::Error> {
        match env.engine {
            Engine::Sqlite => unreachable!("a ConcurrentSweeps scenario"),
            Engine::Postgres => Ok(Conn::Postgres(PgConnection::connect(&env.url).await?)),
            Engine::MariaDb => {
                let mut conn = MySqlConnection::connect(&env.url.replacen("mariadb:", "mysql:", 1)).await?;
                sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").execute(&mut conn).await?;
                Ok(Conn::MariaDb(conn))
            }
        }
    }

    async fn close(self) {
        on_conn!(self, c => drop(c.close().await));
    }
}

/// The SQL clients' statements, in the engine's dialect; the parameters
/// bound in the order they appear. The job is found as the product's job
/// commands find it (src/store/common/jobs.rs): its id read by name without
/// a lock, then its row locked by id, with the product's statements.
struct Statements {
    find: &'static str,
    lock: &'static str,
    hold: String,
    enter_state: String,
    cancel: String,
}

impl Statements {
    fn of(env: &TestEnv) -> Statements {
        let (now, p1, p2) = (env.sql_now(), env.sql_param(1), env.sql_param(2));
        let (find, lock) = match env.engine {
            Engine::Sqlite => unreachable!("a ConcurrentSweeps scenario"),
            Engine::Postgres => (postgres::sql::SELECT_JOB_BY_NAME, postgres::sql::LOCK_JOB),
            Engine::MariaDb => (
                mariadb::sql::with_question_marks(mariadb::sql::SELECT_JOB_BY_NAME),
                mariadb::sql::with_question_marks(mariadb::sql::LOCK_JOB),
            ),
        };
        Statements {
            find,
            lock,
            hold: format!("UPDATE jobs SET hold_reason = {p1}, updated_at = {now} WHERE id = {p2}"),
            enter_state: format!(
                "UPDATE jobs SET state = {p1}, state_changed_at = {now}, updated_at = {now} WHERE id = {p2}"
            ),
            cancel: format!(
                "UPDATE jobs SET cancel_requested = {}, cancel_requested_at = {now}, updated_at = {now} WHERE id = {p1}",
                env.sql_bool(true)
            ),
        }
    }
}

/// The product's audited delete of `jobs delete`: one statement on
/// PostgreSQL, the audit row then the job on MariaDB (whose `$n` are bound
/// in the order they appear: `$3, $2 … $1`).
async fn delete_audited(conn: &mut Conn, id: i64) -> Result<u64, sqlx::Error> {
    let at = Utc::now();
    match conn {
        Conn::Postgres(c) => Ok(sqlx::query(postgres::sql::DELETE_JOB_AUDITED)
            .bind(id)
            .bind(SQL_DELETER)
            .bind(at)
            .fetch_all(c)
            .await?
            .len() as u64),
        Conn::MariaDb(c) => {
            let audit = mariadb::sql::with_question_marks(mariadb::sql::AUDIT_MANUAL_DELETE);
            let audited = sqlx::query(sqlx::AssertSqlSafe(audit))
                .bind(at.naive_utc())
                .bind(SQL_DELETER)
                .bind(id)
                .fetch_all(&mut *c)
                .await?
                .len();
            let delete = mariadb::sql::with_question_marks(mariadb::sql::DELETE_JOB);
            let deleted = sqlx::query(sqlx::AssertSqlSafe(delete)).bind(id).execute(c).await?.rows_affected();
            Ok(if audited == 1 { deleted } else { 0 })
        }
    }
}

/// One operation through SQL: the row locked, the product's rules decide,
/// the change written (a delete with the product's audited statement).
async fn sql_op(conn: &mut Conn, sql: &Statements, name: &str, op: &Planned) -> Result<Outcome, sqlx::Error> {
    on_conn!(conn, c => sqlx::raw_sql("BEGIN").execute(&mut *c).await.map(|_| ())?);
    let outcome = decide_and_write(conn, sql, name, op).await;
    let end = if matches!(outcome, Ok(Outcome::Done)) { "COMMIT" } else { "ROLLBACK" };
    on_conn!(conn, c => sqlx::raw_sql(end).execute(&mut *c).await.map(|_| ())?);
    outcome
}

/// The inside of [`sql_op`]'s transaction.
async fn decide_and_write(conn: &mut Conn, sql: &Statements, name: &str, op: &Planned) -> Result<Outcome, sqlx::Error> {
    let (id, state, cancel_requested, hold) = loop {
        let found = on_conn!(conn, c => match sqlx::query(sql.find).bind(name).fetch_optional(&mut *c).await? {
            None => None,
            Some(row) => Some(row.try_get::<i64, _>("id")?),
        });
        let Some(id) = found else { return Ok(Outcome::NotFound) };
        // None: deleted since it was found; look again, as the product does.
        let row = on_conn!(conn, c => match sqlx::query(sql.lock).bind(id).bind(name).fetch_optional(&mut *c).await? {
            None => None,
            Some(row) => Some((
                row.try_get::<String, _>("state")?,
                row.try_get::<bool, _>("cancel_requested")?,
                row.try_get::<Option<String>, _>("hold_reason")?,
            )),
        });
        if let Some((state, cancel_requested, hold)) = row {
            break (id, state, cancel_requested, hold);
        }
    };
    let status = JobStatus {
        state: state.parse::<JobState>().map_err(|e| sqlx::Error::Protocol(e.to_string()))?,
        cancel_requested,
        hold_reason: hold.as_deref(),
    };
    let operation = match op.kind {
        Kind::Hold => Operation::Hold(op.reason.clone()),
        Kind::Ship => Operation::SetState(JobState::Shipping),
        Kind::Delete => Operation::Delete,
        Kind::Cancel => Operation::Cancel,
    };
    let Ok(effect) = lifecycle::decide(&status, &operation) else {
        return Ok(Outcome::Conflict);
    };
    if !op.hold_lock.is_zero() {
        tokio::time::sleep(op.hold_lock).await;
    }
    let changed = match effect {
        Effect::PlaceHold(reason) => {
            let query = sqlx::AssertSqlSafe(sql.hold.as_str());
            on_conn!(conn, c => sqlx::query(query).bind(reason).bind(id).execute(&mut *c).await?.rows_affected())
        }
        Effect::EnterState(to) => {
            let query = sqlx::AssertSqlSafe(sql.enter_state.as_str());
            on_conn!(conn, c => sqlx::query(query).bind(to.as_str()).bind(id).execute(&mut *c).await?.rows_affected())
        }
        Effect::RequestCancel => {
            let query = sqlx::AssertSqlSafe(sql.cancel.as_str());
            on_conn!(conn, c => sqlx::query(query).bind(id).execute(&mut *c).await?.rows_affected())
        }
        Effect::Delete => delete_audited(conn, id).await?,
        Effect::Nothing => 1,
        Effect::ReleaseHold | Effect::RetainUntil(_) => unreachable!("no client releases or retains"),
    };
    if changed != 1 {
        return Ok(Outcome::Unexpected(format!("{:?} on a locked row changed {changed} rows", op.kind)));
    }
    Ok(Outcome::Done)
}

/// Runs the SQL client `index`: takes planned operations in turn until the
/// purges are done (or the plan runs out).
fn sql_client(
    env: &TestEnv,
    round: usize,
    jobs: &[Generated],
    plan: &[Planned],
    next: &AtomicUsize,
    sweeps_done: &AtomicBool,
) -> Vec<Done> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let sql = Statements::of(env);
        let mut conn = Conn::open(env).await.expect("SQL client connects");
        let mut done = Vec::new();
        while !sweeps_done.load(Ordering::SeqCst) {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(op) = plan.get(i) else { break };
            tokio::time::sleep(op.pause_before).await;
            let g = &jobs[op.job];
            let started = Utc::now();
            let outcome = match sql_op(&mut conn, &sql, &g.name, op).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    // The connection may be in a failed transaction; start afresh.
                    conn = Conn::open(env).await.expect("SQL client reconnects");
                    Outcome::Unexpected(format!("SQL error: {error}"))
                }
            };
            let finished = Utc::now();
            done.push(Done {
                round,
                name: g.name.clone(),
                original_state: g.state,
                kind: op.kind,
                via: Via::Sql,
                started,
                finished,
                outcome,
            });
        }
        conn.close().await;
        done
    })
}

fn cli_client(env: &TestEnv, round: usize, jobs: &[Generated], plan: &[Planned]) -> Vec<Done> {
    plan.iter()
        .map(|op| {
            let g = &jobs[op.job];
            let started = Utc::now();
            let outcome = cli_op(env, &g.name, op);
            Done {
                round,
                name: g.name.clone(),
                original_state: g.state,
                kind: op.kind,
                via: Via::Cli,
                started,
                finished: Utc::now(),
                outcome,
            }
        })
        .collect()
}

/// Logs every update and delete of a job row, in the writing transaction
/// (so only committed changes are logged), with the row as it was and the
/// moment the change was made.
fn event_log(env: &TestEnv) -> &'static str {
    match env.engine {
        Engine::Sqlite => unreachable!("a ConcurrentSweeps scenario"),
        Engine::Postgres => PG_EVENT_LOG,
        Engine::MariaDb => MARIADB_EVENT_LOG,
    }
}

const PG_EVENT_LOG: &str = r#"
CREATE TABLE race_events (
    seq bigserial PRIMARY KEY,
    job_id bigint NOT NULL,
    job_name text NOT NULL,
    op text NOT NULL,
    old_state text NOT NULL,
    new_state text,
    old_hold text,
    new_hold text,
    old_updated_at timestamptz NOT NULL,
    old_state_changed_at timestamptz NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION race_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO race_events (job_id, job_name, op, old_state, old_hold, old_updated_at, old_state_changed_at)
        VALUES (OLD.id, OLD.name, 'delete', OLD.state, OLD.hold_reason, OLD.updated_at, OLD.state_changed_at);
    ELSE
        INSERT INTO race_events (job_id, job_name, op, old_state, new_state, old_hold, new_hold, old_updated_at,
                                 old_state_changed_at)
        VALUES (NEW.id, NEW.name, 'update', OLD.state, NEW.state, OLD.hold_reason, NEW.hold_reason, OLD.updated_at,
                OLD.state_changed_at);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER race_log AFTER UPDATE OR DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION race_log();
"#;

/// As [`PG_EVENT_LOG`]; the moment is the wall clock (`SYSDATE(6)`, not the
/// statement's start), in UTC whatever the session's time zone.
const MARIADB_EVENT_LOG: &str = r#"
CREATE TABLE race_events (
    seq BIGINT AUTO_INCREMENT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    job_name VARCHAR(255) NOT NULL,
    op VARCHAR(10) NOT NULL,
    old_state VARCHAR(20) NOT NULL,
    new_state VARCHAR(20),
    old_hold VARCHAR(1000),
    new_hold VARCHAR(1000),
    old_updated_at DATETIME(6) NOT NULL,
    old_state_changed_at DATETIME(6) NOT NULL,
    at DATETIME(6) NOT NULL
);
CREATE TRIGGER race_log_delete AFTER DELETE ON jobs FOR EACH ROW
    INSERT INTO race_events (job_id, job_name, op, old_state, old_hold, old_updated_at, old_state_changed_at, at)
    VALUES (OLD.id, OLD.name, 'delete', OLD.state, OLD.hold_reason, OLD.updated_at, OLD.state_changed_at,
            TIMESTAMPADD(MICROSECOND, FLOOR(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000), '1970-01-01'));
CREATE TRIGGER race_log_update AFTER UPDATE ON jobs FOR EACH ROW
    INSERT INTO race_events (job_id, job_name, op, old_state, new_state, old_hold, new_hold, old_updated_at,
                             old_state_changed_at, at)
    VALUES (NEW.id, NEW.name, 'update', OLD.state, NEW.state, OLD.hold_reason, NEW.hold_reason, OLD.updated_at,
            OLD.state_changed_at, TIMESTAMPADD(MICROSECOND, FLOOR(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000), '1970-01-01'));
"#;

/// The warning of a sweep that counted jobs "in the future".
const SKEW_WARNING: &str = "jobs with a timestamp in the future are kept (clock skew?)";

/// What a purge left: its run id, or a complaint. Its clock-skew warnings
/// go to `skew` (as the sweep's `now`): no job of this test has a timestamp
/// in the future, so each one is a false alarm, examined after the round.
fn check_purge(out: &Out, violations: &mut Vec<String>, skew: &mut Vec<String>) -> Option<i64> {
    if out.code != 0 {
        violations.push(format!("(d) a purge failed\n{}", out.describe()));
        return None;
    }
    for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(log) = serde_json::from_str::<Value>(line) else {
            violations.push(format!("(d) a purge wrote a non-log line on stderr: {line}"));
            continue;
        };
        match log["level"].as_str() {
            Some("WARN") if log["fields"]["message"] == SKEW_WARNING => {
                skew.push(log["fields"]["now"].as_str().unwrap_or_default().to_string());
            }
            Some("ERROR") | Some("WARN") => violations.push(format!("(d) a purge logged: {line}")),
            _ => {}
        }
    }
    let summary = out.json();
    if summary["stopped_by"] != "done" {
        violations.push(format!("(d) a purge stopped by {}\n{}", summary["stopped_by"], out.describe()));
    }
    summary["run_id"].as_i64()
}

/// One audit row, as the checks need it.
struct Audit {
    run_id: Option<i64>,
    job_id: i64,
    policy: String,
    state: String,
    cancel_requested: bool,
    deleted_by: String,
}

/// One logged delete.
struct Deletion {
    job_name: String,
    old_state: String,
    old_hold: Option<String>,
    old_updated_at: DateTime<Utc>,
    old_state_changed_at: DateTime<Utc>,
    at: DateTime<Utc>,
}

/// One logged update: the row's state and hold after it.
struct Change {
    new_state: String,
    new_hold: Option<String>,
    at: DateTime<Utc>,
}

fn string(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Checks the whole store against every job generated and every client
/// operation so far; returns the violations.
fn check_store(env: &TestEnv, generated: &[Generated], ops: &[Done], violations: &mut Vec<String>) {
    let jobs: BTreeMap<String, BTreeMap<String, Value>> = env
        .records("SELECT name, state, hold_reason, cancel_requested FROM jobs")
        .into_iter()
        .map(|r| (string(&r["name"]), r))
        .collect();
    let mut audits: BTreeMap<String, Vec<Audit>> = BTreeMap::new();
    for r in env.records(
        "SELECT run_id, job_id, job_name, policy, state, cancel_requested, deleted_by FROM retention_audit ORDER BY id",
    ) {
        audits.entry(string(&r["job_name"])).or_default().push(Audit {
            run_id: r["run_id"].as_i64(),
            job_id: r["job_id"].as_i64().expect("job_id"),
            policy: string(&r["policy"]),
            state: string(&r["state"]),
            cancel_requested: TestEnv::truthy(&r["cancel_requested"]),
            deleted_by: string(&r["deleted_by"]),
        });
    }
    let mut deletions: BTreeMap<i64, Vec<Deletion>> = BTreeMap::new();
    for r in env.records(
        "SELECT job_id, job_name, old_state, old_hold, old_updated_at, old_state_changed_at, at \
         FROM race_events WHERE op = 'delete' ORDER BY seq",
    ) {
        deletions.entry(r["job_id"].as_i64().expect("job_id")).or_default().push(Deletion {
            job_name: string(&r["job_name"]),
            old_state: string(&r["old_state"]),
            old_hold: r["old_hold"].as_str().map(str::to_string),
            old_updated_at: parse_ts(&r["old_updated_at"]),
            old_state_changed_at: parse_ts(&r["old_state_changed_at"]),
            at: parse_ts(&r["at"]),
        });
    }
    let mut changes: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for r in env.records("SELECT job_name, new_state, new_hold, at FROM race_events WHERE op = 'update' ORDER BY seq") {
        changes.entry(string(&r["job_name"])).or_default().push(Change {
            new_state: string(&r["new_state"]),
            new_hold: r["new_hold"].as_str().map(str::to_string),
            at: parse_ts(&r["at"]),
        });
    }
    let runs: BTreeMap<i64, BTreeMap<String, Value>> = env
        .records(
            "SELECT id, status, started_at, deleted_completed + deleted_closed + deleted_creating_idle AS n \
             FROM retention_runs",
        )
        .into_iter()
        .map(|r| (r["id"].as_i64().expect("id"), r))
        .collect();

    // (c) Each generated job is either still there or deleted exactly once.
    for g in generated {
        let n = audits.get(&g.name).map_or(0, Vec::len);
        let exists = jobs.contains_key(&g.name);
        if (exists && n > 0) || (!exists && n != 1) {
            violations.push(format!("(c) job {}: exists={exists}, {n} audit rows", g.name));
        }
    }
    let audit_ids: Vec<i64> = audits.values().flatten().map(|a| a.job_id).collect();
    let distinct: BTreeSet<i64> = audit_ids.iter().copied().collect();
    if distinct.len() != audit_ids.len() {
        violations.push(format!("(c) {} audit rows for {} jobs", audit_ids.len(), distinct.len()));
    }
    let deleted_ids: BTreeSet<i64> = deletions.keys().copied().collect();
    if deleted_ids != distinct {
        let missing: Vec<_> = deleted_ids.symmetric_difference(&distinct).take(10).collect();
        violations.push(format!("(c) deleted rows and audit rows differ, e.g. job ids {missing:?}"));
    }
    for (id, list) in &deletions {
        if list.len() != 1 {
            violations.push(format!("(c) job id {id} deleted {} times", list.len()));
        }
    }

    // (a), (b) Every deletion: the row it removed was not held and was
    // eligible under the policy recorded in its audit row.
    let mut per_run: BTreeMap<i64, i64> = BTreeMap::new();
    for (name, list) in &audits {
        for a in list {
            let expected_states: &[&str] = match a.policy.as_str() {
                "completed" => &["Completed"],
                "closed" => &["Closed"],
                "creating_idle" => &["Creating"],
                "manual" => &["Creating", "Completed"],
                other => {
                    violations.push(format!("(b) job {name}: unknown policy {other}"));
                    continue;
                }
            };
            if !expected_states.contains(&a.state.as_str()) {
                violations.push(format!("(b) job {name}: deleted in {} under policy {}", a.state, a.policy));
            }
            if (a.policy == "manual") != a.run_id.is_none() {
                violations.push(format!("(b) job {name}: policy {} with run id {:?}", a.policy, a.run_id));
            }
            if let Some(run) = a.run_id {
                *per_run.entry(run).or_default() += 1;
            }
            let Some(row) = deletions.get(&a.job_id).and_then(|l| l.first()) else { continue };
            if row.job_name != *name || row.old_state != a.state {
                violations.push(format!(
                    "(b) job {name}: audit says {} but the row deleted was {} in {}",
                    a.state, row.job_name, row.old_state
                ));
            }
            if let Some(hold) = &row.old_hold {
                violations.push(format!("(a) job {name} deleted ({}) while held: {hold}", a.policy));
            }
            // The run's cut-off is at most its started_at minus the retention.
            let run_start = a.run_id.and_then(|r| runs.get(&r)).map(|r| parse_ts(&r["started_at"]));
            let too_young = match (a.policy.as_str(), run_start) {
                ("completed", Some(start)) => {
                    row.old_state_changed_at > start - chrono::Duration::seconds(RETENTION_COMPLETED)
                }
                ("closed", Some(start)) => {
                    row.old_state_changed_at > start - chrono::Duration::seconds(RETENTION_CLOSED)
                }
                ("creating_idle", Some(start)) => {
                    row.old_updated_at > start - chrono::Duration::seconds(RETENTION_CREATING)
                }
                _ => false,
            };
            if too_young {
                violations.push(format!(
                    "(b) job {name}: deleted by {} at {} but not eligible (state_changed_at {}, updated_at {})",
                    a.policy,
                    ts(row.at),
                    ts(row.old_state_changed_at),
                    ts(row.old_updated_at)
                ));
            }
        }
    }
    for (id, run) in &runs {
        if run["status"] != "succeeded" {
            violations.push(format!("(d) run {id} ended {}", run["status"]));
        }
        let recorded = run["n"].as_i64().expect("n");
        let audited = per_run.get(id).copied().unwrap_or(0);
        if recorded != audited {
            violations.push(format!("(c) run {id} recorded {recorded} deletions, audited {audited}"));
        }
    }

    // Every client outcome is explained by what the store holds now.
    let mut manual_done: BTreeMap<&str, Vec<&Done>> = BTreeMap::new();
    for op in ops {
        let name = op.name.as_str();
        let job = jobs.get(name);
        let audit = audits.get(name).and_then(|l| l.first());
        let deleted_at = audit.and_then(|a| deletions.get(&a.job_id)).and_then(|l| l.first()).map(|d| d.at);
        let what = format!("{:?} {name} via {:?} (round {}, was {})", op.kind, op.via, op.round, op.original_state);
        match (&op.outcome, op.kind) {
            (Outcome::Unexpected(detail), _) => violations.push(format!("(d) {what}: {detail}")),
            (Outcome::NotFound, _) => match deleted_at {
                Some(at) if at < op.finished => {}
                Some(at) => violations.push(format!(
                    "{what}: not found at {} although deleted only at {}",
                    ts(op.finished),
                    ts(at)
                )),
                None => violations.push(format!("{what}: not found, but never deleted")),
            },
            (Outcome::Done, Kind::Hold) => {
                if job.is_none_or(|j| j["hold_reason"].is_null()) {
                    violations.push(format!(
                        "(a) {what}: the hold succeeded (ended {}) but the job is {}",
                        ts(op.finished),
                        match audit {
                            Some(a) => format!("deleted ({}, run {:?}, by {})", a.policy, a.run_id, a.deleted_by),
                            None => "not held".to_string(),
                        }
                    ));
                }
            }
            (Outcome::Conflict, Kind::Hold) => violations.push(format!("{what}: a hold is allowed in every state")),
            (Outcome::Done, Kind::Ship) => {
                if !job.is_some_and(|j| j["state"] == "Shipping") {
                    violations.push(format!(
                        "(b) {what}: moved to Shipping, but the job is now {job:?} {:?}",
                        audit.map(|a| &a.policy)
                    ));
                }
            }
            (Outcome::Conflict, Kind::Ship) => {
                let explained = op.original_state != "Creating" || job.is_some_and(|j| j["state"] == "Shipping");
                if !explained {
                    violations.push(format!("{what}: set-state refused, now {job:?}"));
                }
            }
            (Outcome::Done, Kind::Cancel) => {
                let cancellable = matches!(op.original_state, "Creating" | "Shipping");
                let kept = job.is_some_and(|j| TestEnv::truthy(&j["cancel_requested"]));
                let deleted_by_hand = audit.is_some_and(|a| a.policy == "manual" && a.cancel_requested);
                if !cancellable || !(kept || deleted_by_hand) {
                    violations.push(format!(
                        "(b) {what}: cancelled, but now {job:?} / {:?}",
                        audit.map(|a| (&a.policy, a.cancel_requested))
                    ));
                }
            }
            (Outcome::Conflict, Kind::Cancel) => {
                if !matches!(op.original_state, "Completed" | "Closed") {
                    violations.push(format!("{what}: cancel refused in a cancellable state"));
                }
            }
            (Outcome::Done, Kind::Delete) => {
                manual_done.entry(name).or_default().push(op);
                let expected_by = |by: &str| (op.via == Via::Sql) == (by == SQL_DELETER);
                if !audit.is_some_and(|a| a.policy == "manual" && expected_by(&a.deleted_by)) {
                    violations.push(format!(
                        "(c) {what}: deleted by hand, but the audit row is {:?}",
                        audit.map(|a| (&a.policy, a.run_id, &a.deleted_by))
                    ));
                }
            }
            (Outcome::Conflict, Kind::Delete) => {
                // The job as it was when the refusal ended: its imported state,
                // unheld, with every change made before then.
                let mut state = op.original_state.to_string();
                let mut hold = None;
                for change in changes.get(name).map(Vec::as_slice).unwrap_or_default() {
                    if change.at <= op.finished {
                        state.clone_from(&change.new_state);
                        hold.clone_from(&change.new_hold);
                    }
                }
                // The rule written out, not asked of the product: a job may be
                // deleted by hand in Creating or Completed, when not held.
                if matches!(state.as_str(), "Creating" | "Completed") && hold.is_none() {
                    violations.push(format!(
                        "{what}: delete refused although the job was {state} and not held when it ended ({}); now \
                         {job:?} / {:?}",
                        ts(op.finished),
                        audit.map(|a| (&a.policy, &a.state))
                    ));
                }
            }
        }
    }
    for (name, list) in &manual_done {
        if list.len() > 1 {
            violations.push(format!("(c) job {name}: {} manual deletes succeeded", list.len()));
        }
    }
    let manual_rows = audits.values().flatten().filter(|a| a.policy == "manual").count();
    if manual_rows != manual_done.len() {
        violations.push(format!("(c) {manual_rows} manual audit rows for {} successful deletes", manual_done.len()));
    }
}

/// Jobs still eligible (all policies, cut-offs of now).
fn eligible_now(env: &TestEnv) -> i64 {
    env.count(&format!(
        "jobs WHERE hold_reason IS NULL \
         AND ((state IN ('Completed', 'Closed') AND state_changed_at <= {}) \
           OR (state = 'Creating' AND updated_at <= {}))",
        env.sql_seconds_ago(RETENTION_COMPLETED),
        env.sql_seconds_ago(RETENTION_CREATING)
    ))
}

every_engine_with! { ConcurrentSweeps;
    /// Three purges race with holds, moves to Shipping, manual deletes and
    /// cancels from other clients, over many rounds: nothing held, moved or
    /// young is deleted, everything deleted is deleted once with one audit
    /// row, no sweep and no client sees an error it should not.
    fn sweeps_race_with_holds_moves_deletes_and_cancels(env: &TestEnv) {
        race_rounds(env);
    }
}

/// The lock of the test for which the batch deleting [`CLAIMED`] waits.
const CLAIM_KEY: i64 = 7_221;
const CLAIMED: &str = "claimed";

every_engine_with! { ConcurrentSweeps;
    /// docs/operations.md, "The live workload": job commands that wait for a job a
    /// sweep's batch has claimed end when the batch commits, each finding the
    /// job gone (exit 3), and the purge deletes it once with its audit row,
    /// without an error. A trigger that waits for a lock of the test holds
    /// the batch between its claim and its delete. A command that locked the
    /// job through the name's index on MariaDB would deadlock with the
    /// batch's delete (error 1213).
    fn job_commands_waiting_for_a_claimed_job_find_it_deleted(env: &TestEnv) {
        commands_wait_for_a_claimed_job(env);
    }
}

/// The scenario, outside the macro so that rustfmt formats it.
fn commands_wait_for_a_claimed_job(env: &TestEnv) {
    env.migrate();
    env.import_ok(&[job(CLAIMED, "Completed", days_ago(200))]);
    env.execute(&env.sql_audit_waits_for_lock(CLAIMED, CLAIM_KEY));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut lock = rt.block_on(Conn::open(env)).expect("the test's session connects");
    let mut exec = |sql: String| {
        let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        let done = rt.block_on(async { on_conn!(&mut lock, c => statement.execute(c).await.map(|_| ())) });
        done.unwrap_or_else(|e| panic!("the test's lock: {e}"));
    };
    exec(env.sql_lock(CLAIM_KEY));
    let purge = env.cmd(&["purge", "--output", "json"]).env(NO_MIGRATE.0, NO_MIGRATE.1).spawn();
    let claimed = wait_until(Duration::from_secs(30), || env.count(env.sql_waiting_for_a_lock()) == 1);
    let commands: Vec<Running> = [
        &["jobs", "hold", CLAIMED, "--reason", "legal"][..],
        &["jobs", "cancel", CLAIMED],
        &["jobs", "delete", CLAIMED],
    ]
    .into_iter()
    .map(|args| env.cmd(args).env(NO_MIGRATE.0, NO_MIGRATE.1).spawn())
    .collect();
    let waiting = claimed && wait_until(Duration::from_secs(30), || env.count(env.sql_waiting_for_a_row()) == 3);
    exec(env.sql_unlock(CLAIM_KEY));
    let outs: Vec<Out> = commands.into_iter().map(Running::wait).collect();
    let purge = purge.wait();
    assert!(claimed, "the batch did not wait in its audit insert\n{}", purge.describe());
    assert!(waiting, "the three commands did not all wait for the job's row");
    for out in &outs {
        out.expect_code(3);
        assert!(out.stderr.contains("not found"), "{}", out.describe());
    }
    let (mut violations, mut skew) = (Vec::new(), Vec::new());
    let run_id = check_purge(&purge, &mut violations, &mut skew);
    assert!(violations.is_empty() && skew.is_empty(), "{violations:#?} {skew:?}");
    assert_eq!(env.count("jobs"), 0);
    let audit = env.rows("SELECT run_id, policy, job_name FROM retention_audit");
    assert_eq!(audit, [vec![json!(run_id.expect("a run")), json!("completed"), json!(CLAIMED)]], "one audit row");
    rt.block_on(lock.close());
}

/// The scenario, outside the macro so that rustfmt formats it.
fn race_rounds(env: &TestEnv) {
    let started = Instant::now();
    env.migrate();
    env.execute(event_log(env));
    let mut rng = fastrand::Rng::with_seed(SEED);
    let mut generated: Vec<Generated> = Vec::new();
    let mut ops: Vec<Done> = Vec::new();
    let mut round_windows = Vec::new();
    let mut left_eligible = Vec::new();
    let mut false_skew = Vec::new();
    for round in 0..ROUNDS {
        let (jobs, lines) = generate_round(&mut rng, round);
        env.import_ok(&lines);
        let cli_plans: Vec<Vec<Planned>> = (0..CLI_CLIENTS)
            .map(|c| {
                (0..CLI_OPS_PER_CLIENT).map(|k| plan_op(&mut rng, &jobs, format!("cli-{round}-{c}-{k}"))).collect()
            })
            .collect();
        let sql_plan: Vec<Planned> =
            (0..SQL_PLAN).map(|k| plan_op(&mut rng, &jobs, format!("sql-{round}-{k}"))).collect();
        let next = AtomicUsize::new(0);
        let sweeps_done = AtomicBool::new(false);
        let round_ops = Mutex::new(Vec::new());
        let mut violations = Vec::new();
        let mut run_ids = Vec::new();
        let mut skew = Vec::new();
        std::thread::scope(|s| {
            let purges: Vec<Running> = (0..PURGES)
                .map(|_| {
                    env.cmd(&["purge", "--batch-size", BATCH_SIZE, "--output", "json"])
                        .env(IDLE_14D.0, IDLE_14D.1)
                        .env(NO_MIGRATE.0, NO_MIGRATE.1)
                        .spawn()
                })
                .collect();
            let (jobs, next, sweeps_done, round_ops) = (&jobs, &next, &sweeps_done, &round_ops);
            let mut clients = Vec::new();
            for plan in &cli_plans {
                clients.push(s.spawn(move || {
                    let done = cli_client(env, round, jobs, plan);
                    round_ops.lock().unwrap().extend(done);
                }));
            }
            for _ in 0..SQL_CLIENTS {
                let sql_plan = &sql_plan;
                clients.push(s.spawn(move || {
                    let done = sql_client(env, round, jobs, sql_plan, next, sweeps_done);
                    round_ops.lock().unwrap().extend(done);
                }));
            }
            let outs: Vec<Out> = purges.into_iter().map(Running::wait).collect();
            sweeps_done.store(true, Ordering::SeqCst);
            for client in clients {
                client.join().expect("client thread");
            }
            for out in &outs {
                run_ids.extend(check_purge(out, &mut violations, &mut skew));
            }
        });
        let mut round_ops = round_ops.into_inner().unwrap();
        round_ops.sort_by_key(|d| d.started);
        let ids = run_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let window = if ids.is_empty() {
            Vec::new()
        } else {
            env.rows(&format!(
                "SELECT min(e.at), max(e.at) FROM race_events e JOIN retention_audit a ON a.job_id = e.job_id \
                 WHERE e.op = 'delete' AND a.run_id IN ({ids})"
            ))
        };
        let window = window.first().and_then(|r| match (&r[0], &r[1]) {
            (Value::Null, _) | (_, Value::Null) => None,
            (first, last) => Some((parse_ts(first), parse_ts(last))),
        });
        round_windows.push(window);
        left_eligible.push(eligible_now(env));
        for sweep_now in skew {
            // What the sweep counted: jobs written by a client after it read the clock.
            let written_later = env.rows(&format!(
                "SELECT name, state, updated_at FROM jobs WHERE hold_reason IS NULL \
                 AND ((state IN ('Completed', 'Closed') AND state_changed_at > {t}) \
                   OR (state = 'Creating' AND updated_at > {t})) ORDER BY updated_at",
                t = env.sql_time(parse_ts(&json!(sweep_now)))
            ));
            false_skew.push(format!("round {round}: sweep now {sweep_now}; jobs written since: {written_later:?}"));
        }
        generated.extend(jobs);
        ops.extend(round_ops);
        check_store(env, &generated, &ops, &mut violations);
        if !violations.is_empty() {
            let shown: Vec<&String> = violations.iter().take(40).collect();
            panic!(
                "round {round}: {} violations ({} client operations so far):\n{}",
                violations.len(),
                ops.len(),
                shown.iter().map(|v| v.as_str()).collect::<Vec<_>>().join("\n")
            );
        }
    }

    // When each operation ended relative to the round's sweep deletions.
    let mut table: BTreeMap<(Kind, Via, &'static str, &'static str), usize> = BTreeMap::new();
    for op in &ops {
        let when = match round_windows[op.round] {
            None => "no-deletes",
            Some((first, _)) if op.finished < first => "before",
            Some((_, last)) if op.started > last => "after",
            Some(_) => "during",
        };
        *table.entry((op.kind, op.via, op.outcome.label(), when)).or_default() += 1;
    }
    let deleted = env.count("retention_audit");
    let manual = env.count("retention_audit WHERE policy = 'manual'");
    eprintln!(
        "races: {ROUNDS} rounds, {} jobs, {} client operations, {deleted} deletions ({manual} by hand), {:?}",
        generated.len(),
        ops.len(),
        started.elapsed()
    );
    eprintln!("races: still eligible after each round's concurrent sweeps: {left_eligible:?}");
    for ((kind, via, outcome, when), n) in &table {
        eprintln!("races: {kind:?}\t{via:?}\t{outcome}\t{when}\t{n}");
    }
    let count = |kind: Kind, outcome: &str, when: &str| {
        table
            .iter()
            .filter(|((k, _, o, w), _)| *k == kind && *o == outcome && *w == when)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    // The races happened: holds won and lost while the sweeps deleted,
    // and the command-line clients took part in them.
    assert!(count(Kind::Hold, "done", "during") >= 20, "too few holds won during the sweeps: {table:?}");
    assert!(count(Kind::Hold, "not-found", "during") >= 10, "too few holds lost during the sweeps: {table:?}");
    assert!(count(Kind::Delete, "done", "during") >= 10, "too few manual deletes during the sweeps: {table:?}");
    let cli_during =
        table.iter().filter(|((_, v, _, w), _)| *v == Via::Cli && *w == "during").map(|(_, n)| n).sum::<usize>();
    assert!(cli_during >= 50, "too few command-line operations during the sweeps: {table:?}");

    // What the concurrent sweeps left (rows they skipped while a client
    // had them locked) goes with one more sweep alone.
    env.cmd(&["purge", "--output", "json"]).env(IDLE_14D.0, IDLE_14D.1).run().expect_code(0);
    assert_eq!(eligible_now(env), 0, "a sweep alone leaves nothing eligible");
    let mut violations = Vec::new();
    check_store(env, &generated, &ops, &mut violations);
    assert!(violations.is_empty(), "after the last sweep: {violations:#?}");

    // docs/design.md, "Retention policies": a job whose timestamp lies in the future is kept with a
    // warning. No job here has one; a job a client wrote after the sweep
    // read the database's clock is not in the future, and must not be
    // reported (and counted) as clock skew.
    assert!(
        false_skew.is_empty(),
        "{} sweeps warned of clock skew where there is none (jobs changed after the sweep read the clock):\n{}",
        false_skew.len(),
        false_skew.join("\n")
    );
}
