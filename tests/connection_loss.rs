//! A server session ended (PostgreSQL's `pg_terminate_backend`, MariaDB's
//! `KILL CONNECTION`) in the middle of a batch: the batch rolls back whole, what earlier batches committed stays
//! deleted and audited once, the purge fails cleanly (exit 1, an error that
//! names the cause, no panic, no password), the run is recorded `failed`,
//! and the next purge finishes the work. A session the server ends between
//! two batches, while the sweep keeps it for the next one, is replaced.
//!
//! The batch is caught in flight deterministically: a trigger on
//! `retention_audit` takes a named lock (advisory on PostgreSQL) for one
//! job's audit row while the test holds that lock on a connection of its
//! own, so the batch that deletes that job waits inside its statement until
//! the test has ended its session.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use sqlx::Connection;

/// The advisory lock the trigger waits for (any key nothing else uses).
const BLOCK_KEY: i64 = 0x0052_5444_5445_5354;
/// Jobs j00 (oldest) … j09, three per batch: j00–j02, j03–j05 commit, j06–j08 blocks.
const JOBS: usize = 10;
const BATCH: &str = "3";
const BLOCKED_JOB: &str = "j07";
const FIRST_BLOCKED: usize = 6;

const PASSWORD: &str = "s3cr3t-pw";

/// A connection of the test's own to its store, with its own runtime.
struct Session {
    rt: tokio::runtime::Runtime,
    conn: Option<Conn>,
}

enum Conn {
    Postgres(sqlx::PgConnection),
    MariaDb(sqlx::MySqlConnection),
}

impl Session {
    fn connect(env: &TestEnv) -> Session {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let url = env.url.replacen("mariadb:", "mysql:", 1);
        let conn = rt.block_on(async {
            match env.engine {
                Engine::Sqlite => panic!("an SQLite store has no sessions"),
                Engine::Postgres => sqlx::PgConnection::connect(&url).await.map(Conn::Postgres),
                Engine::MariaDb => sqlx::MySqlConnection::connect(&url).await.map(Conn::MariaDb),
            }
        });
        Session { rt, conn: Some(conn.unwrap_or_else(|e| panic!("connect: {e}"))) }
    }

    #[track_caller]
    fn exec(&mut self, sql: &str) {
        self.try_exec(sql).unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }

    fn try_exec(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let statements = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
        self.rt.block_on(async {
            match self.conn.as_mut().expect("open") {
                Conn::Postgres(conn) => statements.execute(conn).await.map(|_| ()),
                Conn::MariaDb(conn) => statements.execute(conn).await.map(|_| ()),
            }
        })
    }

    /// The first column of every row: session ids.
    #[track_caller]
    fn ids(&mut self, sql: &str) -> Vec<i64> {
        let query = sqlx::AssertSqlSafe(sql.to_string());
        let result = self.rt.block_on(async {
            match self.conn.as_mut().expect("open") {
                Conn::Postgres(conn) => sqlx::query_scalar::<_, i32>(query)
                    .fetch_all(conn)
                    .await
                    .map(|ids| ids.into_iter().map(i64::from).collect()),
                Conn::MariaDb(conn) => sqlx::query_scalar::<_, i64>(query).fetch_all(conn).await,
            }
        });
        result.unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(Conn::Postgres(conn)) => drop(self.rt.block_on(conn.close())),
            Some(Conn::MariaDb(conn)) => drop(self.rt.block_on(conn.close())),
            None => {}
        }
    }
}

fn name(i: usize) -> String {
    format!("j{i:02}")
}

fn names(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(name).collect()
}

/// Ten eligible jobs, oldest first, each with a drive; two that are kept.
fn import_jobs(env: &TestEnv) {
    let mut jobs: Vec<_> = (0..JOBS)
        .map(|i| {
            let state = if i % 3 == 2 { "Closed" } else { "Completed" };
            set(job(&name(i), state, days_ago(300 - i as i64)), "drives", drives(&name(i), 1, "ShippedBack"))
        })
        .collect();
    jobs.push(job("young", "Completed", days_ago(5)));
    jobs.push(set(job("held", "Completed", days_ago(400)), "hold_reason", json!("legal")));
    env.import_ok(&jobs);
}

/// The trigger that makes the batch deleting [`BLOCKED_JOB`] wait for [`BLOCK_KEY`].
fn install_trigger(env: &TestEnv) {
    env.execute(&env.sql_audit_waits_for_lock(BLOCKED_JOB, BLOCK_KEY));
}

fn drop_trigger(env: &TestEnv) {
    env.execute(env.sql_drop_audit_waits_for_lock());
}

/// Starts `purge --batch-size 3` while `lock` holds [`BLOCK_KEY`], waits for
/// its third batch to block, hands that batch's backend pid (and the other
/// retentiond backends) to `terminate`, releases the lock, and returns the
/// purge's outcome.
fn purge_with_a_terminated_batch(env: &TestEnv, terminate: impl FnOnce(&mut Session, i64)) -> Out {
    let mut lock = Session::connect(env);
    lock.exec(&env.sql_lock(BLOCK_KEY));
    let waiting_batch =
        format!("SELECT {} FROM {}", env.sessions_of_the_binary().expect("a server").id, env.sql_waiting_for_a_lock());
    let purge = env
        .cmd(&["--log-level", "debug", "purge", "--batch-size", BATCH, "--output", "json"])
        .env("RETENTIOND__DATABASE__URL", &env.url_with_password(PASSWORD))
        .env("RETENTIOND__DATABASE__STATEMENT_TIMEOUT", "120s")
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    let batch = loop {
        let waiting = lock.ids(&waiting_batch);
        if waiting.len() == 1 {
            break Some(waiting[0]);
        }
        assert!(waiting.len() < 2, "more than one batch waits: {waiting:?}");
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(pid) = batch else {
        lock.exec(&env.sql_unlock(BLOCK_KEY));
        panic!("no batch of the purge waited for the lock within 30 s\n{}", purge.wait().describe());
    };
    // Earlier batches committed before this one started.
    assert_eq!(env.count("retention_audit"), FIRST_BLOCKED as i64, "two batches committed before the third");
    terminate(&mut lock, pid);
    lock.exec(&env.sql_unlock(BLOCK_KEY));
    purge.wait()
}

#[track_caller]
fn assert_clean_failure(env: &TestEnv, out: &Out) {
    out.expect_code(1);
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"), "a panic\n{}", out.describe());
    assert!(
        !out.stderr.contains(PASSWORD) && !out.stdout.contains(PASSWORD),
        "the password leaked\n{}",
        out.describe()
    );
    assert!(out.stdout.trim().is_empty(), "no summary for a failed purge\n{}", out.describe());
    let error = out
        .stderr
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line\n{}", out.describe()));
    assert!(
        error.contains("failed after deleting 6 jobs") && error.contains(env.ended_session_error()),
        "the error names what was done and the cause: {error}"
    );
}

/// After the failed purge: the blocked batch rolled back whole, the two
/// batches before it stay deleted and audited once, the run is `failed`.
#[track_caller]
fn assert_rolled_back_after_two_batches(env: &TestEnv, run_id: i64) {
    let left: BTreeSet<String> = env.strings("SELECT name FROM jobs").into_iter().collect();
    let mut expected = names(FIRST_BLOCKED..JOBS);
    expected.extend(["young".to_string(), "held".to_string()]);
    assert_eq!(left, expected, "the interrupted batch rolled back; the earlier ones stay committed");
    assert_eq!(env.count("job_drives"), (JOBS - FIRST_BLOCKED) as i64, "the drives of the rolled-back batch are back");
    let audited: Vec<String> = env.strings("SELECT job_name FROM retention_audit ORDER BY job_name");
    assert_eq!(audited, names(0..FIRST_BLOCKED).into_iter().collect::<Vec<_>>(), "audited exactly once each");
    assert_eq!(env.count(&format!("retention_audit WHERE run_id = {run_id}")), FIRST_BLOCKED as i64);
    assert_eq!(env.count("retention_audit a JOIN jobs j ON j.id = a.job_id OR j.name = a.job_name"), 0);
    let runs =
        env.records("SELECT id, status, deleted_completed, deleted_closed, error, finished_at FROM retention_runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["id"], json!(run_id), "{runs:?}");
    assert_eq!(runs[0]["status"], "failed", "the run is recorded failed: {runs:?}");
    // j00–j05: j02 and j05 are Closed.
    assert_eq!((&runs[0]["deleted_completed"], &runs[0]["deleted_closed"]), (&json!(4), &json!(2)), "{runs:?}");
    assert!(runs[0]["finished_at"].is_string(), "{runs:?}");
    let error = runs[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains(env.ended_session_error()), "{runs:?}");
    assert!(!error.contains(PASSWORD), "{runs:?}");
}

/// The next purge (no trigger any more) deletes the rest: every eligible job
/// audited exactly once, no audit row for a job that exists.
#[track_caller]
fn assert_next_purge_finishes(env: &TestEnv, failed_run: i64) {
    drop_trigger(env);
    let summary = env.json(&["purge", "--batch-size", BATCH]);
    assert_eq!(summary["total"], json!(JOBS - FIRST_BLOCKED), "{summary}");
    assert_eq!(summary["stopped_by"], "done", "{summary}");
    let run_id = summary["run_id"].as_i64().expect("run id");
    let left: BTreeSet<String> = env.strings("SELECT name FROM jobs").into_iter().collect();
    assert_eq!(left, ["held", "young"].map(String::from).into_iter().collect(), "only the kept jobs are left");
    assert_eq!(env.count("job_drives"), 0);
    assert_eq!(env.count("retention_audit"), JOBS as i64, "one audit row per deleted job");
    assert_eq!(env.scalar("SELECT count(DISTINCT job_name) FROM retention_audit"), JOBS as i64);
    assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), JOBS as i64);
    assert_eq!(env.count(&format!("retention_audit WHERE run_id = {run_id}")), (JOBS - FIRST_BLOCKED) as i64);
    assert_eq!(env.count("retention_audit a JOIN jobs j ON j.id = a.job_id OR j.name = a.job_name"), 0);
    let statuses = env.strings("SELECT id || ':' || status FROM retention_runs ORDER BY id");
    assert_eq!(
        statuses,
        vec![format!("{failed_run}:failed"), format!("{run_id}:succeeded")],
        "the failed run stays failed"
    );
}

fn the_run_id(env: &TestEnv) -> i64 {
    env.scalar("SELECT max(id) FROM retention_runs")
}

every_engine_with! { NetworkServer;
    /// Only the batch's backend is terminated; the run's own connection
    /// (which holds the run's advisory lock) survives and records `failed`.
    fn terminated_batch_rolls_back_and_the_next_purge_finishes(env: &TestEnv) {
        env.migrate();
        import_jobs(env);
        install_trigger(env);
        let out = purge_with_a_terminated_batch(env, |session, id| session.exec(&env.sql_end_session(id)));
        assert_clean_failure(env, &out);
        let run_id = the_run_id(env);
        assert!(out.stderr.contains(&format!("(run {run_id})")), "the error names the run\n{}", out.describe());
        assert_rolled_back_after_two_batches(env, run_id);
        assert_next_purge_finishes(env, run_id);
    }
}

every_engine_with! { NetworkServer;
    /// Every backend of the purge is terminated at once (a server restart, a
    /// failover): the batch's and the run record's. The run is still
    /// recorded `failed`, through a new connection.
    fn all_connections_terminated_mid_batch(env: &TestEnv) {
        env.migrate();
        import_jobs(env);
        install_trigger(env);
        let out = purge_with_a_terminated_batch(env, |session, _| {
            let sessions = env.sessions_of_the_binary().expect("a server");
            let all = session.ids(&format!("SELECT {} FROM {}", sessions.id, sessions.from));
            assert!(all.len() >= 2, "the batch and the run's connection at least: {all:?}");
            for id in all {
                // A session may have ended since it was listed (MariaDB then
                // refuses the KILL; pg_terminate_backend says false).
                let _ = session.try_exec(&env.sql_end_session(id));
            }
        });
        assert_clean_failure(env, &out);
        let run_id = the_run_id(env);
        assert_rolled_back_after_two_batches(env, run_id);
        assert_next_purge_finishes(env, run_id);
    }
}

every_engine_with! { NetworkServer;
    /// The session that deleted a batch is kept for the next one; the server
    /// ends it during a 6 s pause between batches (an idle timeout, a
    /// firewall). The next batch finds it idle for more than 5 s, pings it,
    /// and goes on over a new session: the purge succeeds.
    fn a_kept_session_closed_while_idle_is_replaced(env: &TestEnv) {
        env.migrate();
        import_jobs(env);
        let mut admin = Session::connect(env);
        let purge = env
            .cmd(&["purge", "--batch-size", "5", "--output", "json"])
            .env("RETENTIOND__RETENTION__BATCH_PAUSE", "6s")
            .spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        while env.count("retention_audit") < 5 {
            assert!(Instant::now() < deadline, "no batch committed within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        // PostgreSQL shows an idle session's last statement; MariaDB does
        // not: there, every idle session but the run's (which holds its lock).
        let kept = match env.engine {
            Engine::Sqlite => unreachable!("a NetworkServer scenario"),
            Engine::Postgres => "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'retentiond' AND query LIKE 'WITH deleted%'",
            Engine::MariaDb => "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
                 AND ID <> CONNECTION_ID() AND COMMAND = 'Sleep' AND ID <> \
                 IS_USED_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', (SELECT MAX(id) FROM retention_runs)))",
        };
        let deleting = admin.ids(kept);
        match env.engine {
            Engine::Sqlite | Engine::Postgres => assert_eq!(deleting.len(), 1, "the session of the first batch: {deleting:?}"),
            Engine::MariaDb => assert!(!deleting.is_empty(), "the session of the first batch among them: {deleting:?}"),
        }
        for id in deleting {
            admin.exec(&env.sql_end_session(id));
        }
        let out = purge.wait();
        out.expect_code(0);
        assert_eq!(out.json()["total"], JOBS, "{}", out.describe());
        assert_eq!(env.count("retention_audit"), JOBS as i64);
    }
}
