//! docs/security.md: least privilege on PostgreSQL and MariaDB, secrets, SQLite file modes.
//!
//! MariaDB: the users of the doc, named after the test's database, with the
//! grants of its blocks; the daemon's user sweeps under them, and each of
//! its grants is revoked in turn. The other least-privilege scenarios need
//! [`Capability::Roles`], which MariaDB does not have in this harness yet.
//!
//! The PostgreSQL tests create the roles of the doc inside the test's fresh
//! database (roles are cluster-wide, so their names are made from the
//! database's, and they are dropped again even when the test fails) and run
//! the SQL blocks of docs/security.md exactly as written there, read at
//! compile time between their `BEGIN`/`END` markers: a grant the code needs
//! and the doc lacks, or a grant the doc has and the code does not need,
//! fails here.
//!
//! The test server uses trust authentication, so a password in a URL is
//! accepted and ignored: that lets a working URL carry a password, to check
//! that it is never shown. A refused password cannot be provoked on such a
//! server; a fake server in this file asks for the password and refuses it.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use sqlx::Connection;

/// The document whose SQL blocks the tests run.
const SECURITY_DOC: &str = include_str!("../docs/security.md");

/// A password with every character that is special in a URL userinfo.
const PASSWORD: &str = "s3cr3t-p@ss:w/rd%21";
/// [`PASSWORD`] percent-encoded for a URL.
const PASSWORD_ENCODED: &str = "s3cr3t-p%40ss%3Aw%2Frd%2521";
/// A piece of the password that no output has any other reason to contain.
const PASSWORD_MARK: &str = "s3cr3t";

const IDLE_14D: (&str, &str) = ("RETENTIOND__RETENTION__CREATING_IDLE", "14d");
const NO_MIGRATE: (&str, &str) = ("RETENTIOND__DATABASE__AUTO_MIGRATE", "false");
const NO_HTTP: (&str, &str) = ("RETENTIOND__METRICS__LISTEN", "");

/// SQLSTATE insufficient_privilege (also "must be owner of …").
const PERMISSION_DENIED: &str = "42501";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Fails if any form of [`PASSWORD`] shows in stdout or stderr.
#[track_caller]
fn assert_no_password(out: &Out) {
    for secret in [PASSWORD, PASSWORD_ENCODED, PASSWORD_MARK] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "the password leaked (as {secret:?})\n{}",
            out.describe()
        );
    }
}

/// The SQL of the block `name` of docs/security.md: the fenced code between
/// `<!-- BEGIN name …-->` and `<!-- END name -->`.
fn doc_block(name: &str) -> String {
    let begin = format!("<!-- BEGIN {name} ");
    let end = format!("<!-- END {name} -->");
    let start = SECURITY_DOC.find(&begin).unwrap_or_else(|| panic!("docs/security.md has no block {begin}"));
    let rest = &SECURITY_DOC[start..];
    let stop = rest.find(&end).unwrap_or_else(|| panic!("docs/security.md: block {name} has no {end}"));
    let block = &rest[..stop];
    let sql: Vec<&str> = block
        .lines()
        .skip_while(|line| !line.starts_with("```sql"))
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .collect();
    assert!(!sql.is_empty(), "docs/security.md: block {name} holds no ```sql fence");
    sql.join("\n")
}

/// The statements of an SQL block, comments left out.
fn statements(sql: &str) -> Vec<String> {
    let text: String =
        sql.lines().filter(|line| !line.trim_start().starts_with("--")).map(|line| format!("{line}\n")).collect();
    text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// `GRANT privileges ON object TO role` → `REVOKE privileges ON object FROM role`.
fn revoke_of(grant: &str) -> String {
    let body = grant.strip_prefix("GRANT ").unwrap_or_else(|| panic!("not a GRANT: {grant}"));
    let (what, role) = body.rsplit_once(" TO ").unwrap_or_else(|| panic!("GRANT without TO: {grant}"));
    format!("REVOKE {what} FROM {role}")
}

/// A PostgreSQL connection of the test's own, under any role, with its own runtime.
struct Session {
    rt: tokio::runtime::Runtime,
    conn: Option<sqlx::PgConnection>,
}

impl Session {
    fn try_connect(url: &str) -> Result<Session, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let conn =
            rt.block_on(sqlx::PgConnection::connect(url)).map_err(|e| format!("connect {}: {e}", redact(url)))?;
        Ok(Session { rt, conn: Some(conn) })
    }

    #[track_caller]
    fn connect(url: &str) -> Session {
        Session::try_connect(url).unwrap_or_else(|e| panic!("{e}"))
    }

    fn exec(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let conn = self.conn.as_mut().expect("open");
        self.rt.block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(conn)).map(|_| ())
    }

    #[track_caller]
    fn exec_ok(&mut self, sql: &str) {
        self.exec(sql).unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }

    /// Runs `sql`, which must fail with SQLSTATE 42501 (not allowed).
    #[track_caller]
    fn exec_denied(&mut self, sql: &str) {
        match self.exec(sql) {
            Ok(()) => panic!("allowed, but the role must not be able to: {sql}"),
            Err(e) => {
                let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
                assert_eq!(code.as_deref(), Some(PERMISSION_DENIED), "expected a permission error from {sql}, got {e}");
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.rt.block_on(conn.close());
        }
    }
}

/// The three roles of docs/security.md, made for one test's database;
/// dropped again (with everything they own or were granted) on drop.
struct Roles {
    db: String,
    /// The test database as the harness's superuser.
    superuser_url: String,
    owner: String,
    daemon: String,
    admin: String,
}

const OWNER_PASSWORD: &str = "owner-pw";
const ADMIN_PASSWORD: &str = "admin-pw";

impl Roles {
    fn names(env: &TestEnv) -> Roles {
        let db = url::Url::parse(&env.url).expect("URL").path().trim_start_matches('/').to_string();
        assert!(db.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{db}");
        Roles {
            owner: format!("{db}_owner"),
            daemon: format!("{db}_daemon"),
            admin: format!("{db}_admin"),
            superuser_url: env.url.clone(),
            db,
        }
    }

    /// The doc's SQL for this test: its role and database names replaced.
    fn sql(&self, doc_sql: &str) -> String {
        doc_sql
            .replace("retentiond_owner", &self.owner)
            .replace("retentiond_daemon", &self.daemon)
            .replace("retentiond_admin", &self.admin)
            .replace("DATABASE jobs", &format!("DATABASE \"{}\"", self.db))
    }

    fn url(&self, role: &str, encoded_password: &str) -> String {
        let mut url = url::Url::parse(&self.superuser_url).expect("URL");
        url.set_username(role).expect("user");
        url.set_password(Some(encoded_password)).expect("password");
        let text = url.to_string();
        assert!(text.contains(encoded_password), "the URL keeps the password as encoded: {text}");
        text
    }

    fn owner_url(&self) -> String {
        self.url(&self.owner, OWNER_PASSWORD)
    }

    /// The daemon's URL, with [`PASSWORD`] in it.
    fn daemon_url(&self) -> String {
        self.url(&self.daemon, PASSWORD_ENCODED)
    }

    fn admin_url(&self) -> String {
        self.url(&self.admin, ADMIN_PASSWORD)
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let mut session = match Session::try_connect(&self.superuser_url) {
            Ok(session) => session,
            Err(e) => return eprintln!("warning: cannot drop the test roles: {e}"),
        };
        for role in [&self.owner, &self.daemon, &self.admin] {
            // REASSIGN OWNED also hands the database back; DROP OWNED drops
            // the role's privileges here and on the database.
            for sql in [
                format!("REASSIGN OWNED BY {role} TO CURRENT_USER"),
                format!("DROP OWNED BY {role}"),
                format!("DROP ROLE {role}"),
            ] {
                if let Err(e) = session.exec(&sql) {
                    let missing = e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42704");
                    if !missing {
                        eprintln!("warning: {sql}: {e}");
                    }
                }
            }
        }
    }
}

/// Roles and database as in docs/security.md: roles created, the database
/// given to the owner, the "database" block run as the superuser, the schema
/// migrated by the owner, then the daemon's and the admin's grants run by the owner.
fn setup(env: &TestEnv) -> Roles {
    let roles = Roles::names(env);
    // Section 1 of the doc, with this test's names and passwords; the
    // database exists already (the harness made it), so it changes owner.
    env.execute(&format!(
        "CREATE ROLE {} LOGIN PASSWORD '{OWNER_PASSWORD}'; \
         CREATE ROLE {} LOGIN PASSWORD '{PASSWORD}'; \
         CREATE ROLE {} LOGIN PASSWORD '{ADMIN_PASSWORD}'; \
         ALTER DATABASE \"{}\" OWNER TO {}",
        roles.owner, roles.daemon, roles.admin, roles.db, roles.owner
    ));
    env.execute(&roles.sql(&doc_block("database")));
    let out = env.cmd(&["migrate"]).env("RETENTIOND__DATABASE__URL", &roles.owner_url()).run();
    out.expect_code(0);
    assert_eq!(
        env.strings("SELECT tableowner::text FROM pg_tables WHERE tablename = 'jobs'"),
        vec![roles.owner.clone()],
        "the owner owns the tables it migrated"
    );
    let mut owner = Session::connect(&roles.owner_url());
    for block in ["daemon grants", "admin grants"] {
        for statement in statements(&roles.sql(&doc_block(block))) {
            owner.exec_ok(&statement);
        }
    }
    roles
}

/// `retentiond ARGS` as `url`'s role with `auto_migrate = false`.
fn as_role(env: &TestEnv, url: &str, args: &[&str]) -> Invocation {
    env.cmd(args).env("RETENTIOND__DATABASE__URL", url).envs(&[NO_MIGRATE])
}

/// `jobs import` of `jobs` as `url`'s role, asserting success.
#[track_caller]
fn import_as(env: &TestEnv, url: &str, jobs: &[Value]) {
    let text: String = jobs.iter().map(|j| format!("{j}\n")).collect();
    let path = env.write_file("jobs.jsonl", &text);
    let out = as_role(env, url, &["jobs", "import", path_str(&path), "--output", "json"]).run();
    out.expect_code(0);
    assert_eq!(out.json()["imported"], json!(jobs.len()), "{}", out.describe());
}

/// Polls `condition` every 50 ms for at most `timeout`.
fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// Starts `run` (the daemon) from `invocation`, waits until a scheduled run
/// of the store has succeeded, then stops it with SIGTERM.
#[track_caller]
fn run_daemon_until_a_sweep(env: &TestEnv, invocation: Invocation) -> Out {
    let before = env.count("retention_runs WHERE trigger = 'schedule'");
    let daemon = invocation.spawn();
    let swept = wait_for(Duration::from_secs(60), || {
        env.count("retention_runs WHERE trigger = 'schedule' AND status = 'succeeded'") > before
    });
    assert!(send_signal(daemon.pid(), "TERM"));
    let out = daemon.wait();
    assert!(swept, "the daemon did not finish a scheduled sweep\n{}", out.describe());
    out
}

fn names_of(env: &TestEnv) -> BTreeSet<String> {
    env.strings("SELECT name FROM jobs").into_iter().collect()
}

fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Least privilege (PostgreSQL)
// ---------------------------------------------------------------------------

every_engine_with! { Roles;
    /// With exactly the daemon grants of docs/security.md and
    /// auto_migrate = false, `purge` and `run` delete exactly the eligible
    /// jobs with their drives and one audit row each, record their runs
    /// `succeeded`, and show the role's password nowhere; `runs list` and a
    /// dry run work, `audit list` does not (no SELECT on the audit trail).
    fn daemon_role_sweeps_with_the_documented_grants(env: &TestEnv) {
        let roles = setup(env);
        let daemon = roles.daemon_url();
        let eligible = [
            set(job("old-completed", "Completed", days_ago(200)), "drives", drives("oc", 3, "ShippedBack")),
            job("old-closed", "Closed", days_ago(120)),
            set(creating_job("idle-creating", 40), "drives", drives("ic", 1, "Specified")),
            set(job("old-cancelled", "Completed", days_ago(95)), "cancel_requested", json!(true)),
            job("old-closed-2", "Closed", days_ago(91)),
        ];
        let keepers = [
            job("young", "Completed", days_ago(10)),
            set(set(job("held", "Completed", days_ago(400)), "hold_reason", json!("legal")), "drives", drives("h", 2, "ShippedBack")),
            set(job("transferring", "Transferring", days_ago(400)), "drives", drives("t", 1, "Transferring")),
            creating_job("fresh-creating", 2),
        ];
        let mut all = eligible.to_vec();
        all.extend(keepers.iter().cloned());
        import_as(env, &roles.admin_url(), &all);
        let keeper_names = set_of(&["young", "held", "transferring", "fresh-creating"]);

        // A dry run first: read only.
        let out = as_role(env, &daemon, &["purge", "--dry-run", "--output", "json"]).envs(&[IDLE_14D]).run();
        out.expect_code(0);
        assert_no_password(&out);
        assert_eq!(out.json()["total"], 5, "{}", out.describe());

        let out = as_role(env, &daemon, &["--log-level", "trace", "purge", "--batch-size", "2", "--output", "json"])
            .envs(&[IDLE_14D])
            .run();
        out.expect_code(0);
        assert_no_password(&out);
        assert!(out.stderr.contains("sweep finished"), "trace logging was on\n{}", out.describe());
        let summary = out.json();
        assert_eq!(summary["counts"], json!({"completed": 2, "closed": 2, "creating_idle": 1, "retain_until": 0}), "{summary}");
        assert_eq!(summary["stopped_by"], "done", "{summary}");
        let run_id = summary["run_id"].as_i64().expect("run id");

        assert_eq!(names_of(env), keeper_names, "exactly the eligible jobs are gone");
        assert_eq!(env.count("job_drives"), 3, "drives of deleted jobs went with them; the keepers' stay");
        assert_eq!(env.count("job_drives WHERE job_id NOT IN (SELECT id FROM jobs)"), 0);
        for job in &eligible {
            let name = job["name"].as_str().unwrap();
            let rows = env.audit_rows(name);
            assert_eq!(rows.len(), 1, "one audit row for {name}: {rows:?}");
            assert_eq!(rows[0]["run_id"], json!(run_id), "{rows:?}");
        }
        assert_eq!(env.count("retention_audit"), 5);
        let run = env.records(&format!("SELECT status, deleted_completed, deleted_closed, deleted_creating_idle FROM retention_runs WHERE id = {run_id}"));
        assert_eq!(run[0]["status"], "succeeded", "{run:?}");
        assert_eq!(
            (&run[0]["deleted_completed"], &run[0]["deleted_closed"], &run[0]["deleted_creating_idle"]),
            (&json!(2), &json!(2), &json!(1)),
            "{run:?}"
        );

        // runs list works for the daemon's role; audit list needs SELECT on the audit trail.
        let out = as_role(env, &daemon, &["runs", "list", "--output", "json"]).run();
        out.expect_code(0);
        assert_no_password(&out);
        assert_eq!(out.json()[0]["run_id"], json!(run_id), "{}", out.describe());
        assert_eq!(out.json()[0]["status"], "succeeded", "{}", out.describe());
        let out = as_role(env, &daemon, &["audit", "list"]).run();
        out.expect_code(1);
        assert_no_password(&out);
        assert!(out.stderr.contains("permission denied for table retention_audit"), "{}", out.describe());
        let out = as_role(env, &roles.admin_url(), &["audit", "list", "--run", &run_id.to_string(), "--output", "json"]).run();
        out.expect_code(0);
        assert_eq!(out.json().as_array().map(Vec::len), Some(5), "{}", out.describe());

        // The daemon under the same role: singleton lock, run record, sweep.
        import_as(env, &roles.admin_url(), &[job("later-closed", "Closed", days_ago(300))]);
        let invocation = as_role(env, &daemon, &["--log-level", "trace", "run"]).envs(&[NO_HTTP]);
        let out = run_daemon_until_a_sweep(env, invocation);
        out.expect_code(0);
        assert_no_password(&out);
        assert_eq!(names_of(env), keeper_names, "the daemon deleted the new eligible job\n{}", out.describe());
        assert_eq!(env.audit_rows("later-closed").len(), 1);
        assert_eq!(env.count("retention_runs WHERE status NOT IN ('succeeded', 'interrupted')"), 0, "{:?}", env.dump("retention_runs"));

        // A purge that finds nothing records its run finished in its first
        // statement; under the INSERT an earlier docs/security.md granted
        // (no finished_at, stopped_by) it still does, in steps, with a warning.
        let idle_purge = |warned: bool| {
            let out = as_role(env, &daemon, &["purge", "--output", "json"]).run();
            out.expect_code(0);
            let warning = out.stderr.contains("could not record the sweep's run finished at once");
            assert_eq!(warning, warned, "{}", out.describe());
            let run_id = out.json()["run_id"].as_i64().expect("a run id");
            assert_eq!(env.strings(&format!("SELECT status FROM retention_runs WHERE id = {run_id}")), ["succeeded"]);
        };
        idle_purge(false);
        env.execute(&roles.sql(
            "REVOKE INSERT ON retention_runs FROM retentiond_daemon; \
             GRANT INSERT (trigger, status, started_at, host, pid, process_started) ON retention_runs TO retentiond_daemon",
        ));
        idle_purge(true);
    }
}

every_engine_with! { Roles;
    /// The daemon's role can do nothing beyond the sweep: not change or read
    /// the audit trail, not change a job, not touch drives, not rewrite a
    /// run's identity, not change the schema, not create anything; and the
    /// commands that need more (migrate, the jobs commands, auto_migrate =
    /// true) fail without changing anything.
    fn daemon_role_can_do_nothing_else(env: &TestEnv) {
        let roles = setup(env);
        import_as(env, &roles.admin_url(), &[
            set(job("old", "Completed", days_ago(200)), "drives", drives("o", 1, "ShippedBack")),
            set(set(job("kept", "Completed", days_ago(400)), "hold_reason", json!("legal")), "drives", drives("k", 1, "ShippedBack")),
        ]);
        as_role(env, &roles.daemon_url(), &["purge"]).run().expect_code(0);
        assert_eq!(env.count("retention_audit"), 1);
        import_as(env, &roles.admin_url(), &[job("victim", "Completed", days_ago(200))]);
        let jobs_before = env.strings("SELECT name || '/' || state || '/' || coalesce(hold_reason, '-') || '/' || updated_at FROM jobs ORDER BY name");
        let migrations = env.count("_sqlx_migrations");
        let mut before = env.dump_all();
        before.remove("jobs");

        let mut daemon = Session::connect(&roles.daemon_url());
        for sql in [
            // The audit trail is append-only, and not even readable.
            "UPDATE retention_audit SET job_name = 'forged'",
            "DELETE FROM retention_audit",
            "TRUNCATE retention_audit",
            "SELECT * FROM retention_audit",
            "INSERT INTO retention_audit (id, job_id, job_name, job_type, policy, state, cancel_requested, created_at, \
             state_changed_at, deleted_at, deleted_by) OVERRIDING SYSTEM VALUE \
             VALUES (424242, 424242, 'forged', 'Import', 'manual', 'Completed', false, now(), now(), now(), 'x')",
            // Jobs: no lifecycle changes, no new jobs, no bulk wipe.
            "UPDATE jobs SET hold_reason = NULL",
            "UPDATE jobs SET state = 'Completed'",
            "UPDATE jobs SET state_changed_at = now() - interval '10 years'",
            "UPDATE jobs SET id = DEFAULT WHERE name = 'victim'",
            "INSERT INTO jobs (name, job_type, state, created_at, updated_at, state_changed_at) \
             VALUES ('new', 'Import', 'Creating', now(), now(), now())",
            "TRUNCATE jobs",
            // Drives: nothing at all.
            "SELECT * FROM job_drives",
            "DELETE FROM job_drives",
            // A run's identity stays as recorded.
            "UPDATE retention_runs SET host = 'elsewhere'",
            "UPDATE retention_runs SET started_at = now()",
            "DELETE FROM retention_runs",
            // No schema changes, no new objects.
            "DROP TABLE jobs",
            "ALTER TABLE jobs ADD COLUMN x int",
            "DROP TABLE _sqlx_migrations",
            "DELETE FROM _sqlx_migrations",
            "CREATE TABLE mine (a int)",
            "CREATE TEMP TABLE mine (a int)",
        ] {
            daemon.exec_denied(sql);
        }
        drop(daemon);
        let mut after = env.dump_all();
        after.remove("jobs");
        assert_eq!(after, before, "the refused statements changed nothing");
        assert_eq!(
            env.strings("SELECT name || '/' || state || '/' || coalesce(hold_reason, '-') || '/' || updated_at FROM jobs ORDER BY name"),
            jobs_before
        );

        // Commands that need more than the daemon's grants.
        let daemon = roles.daemon_url();
        for args in [
            &["migrate"][..],
            &["jobs", "list"],
            &["jobs", "show", "victim"],
            &["jobs", "delete", "victim"],
            &["jobs", "hold", "victim", "--reason", "x"],
            &["jobs", "create", "newjob", "--type", "import"],
            &["audit", "list"],
        ] {
            let out = as_role(env, &daemon, args).run();
            out.expect_code(1);
            assert_no_password(&out);
            assert!(out.stderr.contains("permission denied"), "{}", out.describe());
        }
        // auto_migrate = true (the default) needs the owner too.
        let out = env.cmd(&["purge"]).env("RETENTIOND__DATABASE__URL", &daemon).run();
        out.expect_code(1);
        assert!(out.stderr.contains("permission denied for schema public"), "{}", out.describe());
        assert_no_password(&out);
        assert!(env.job_exists("victim"), "nothing was deleted");
        assert_eq!(env.count("_sqlx_migrations"), migrations, "no migration was recorded or removed");
        assert_eq!(env.count("pg_tables WHERE schemaname = 'public'"), 5, "no table was created or dropped");
    }
}

every_engine_with! { Roles;
    /// Every statement of the daemon's grants is needed: with any one of
    /// them revoked, a purge fails and deletes nothing; granted again, it works.
    fn every_documented_daemon_grant_is_needed(env: &TestEnv) {
        let roles = setup(env);
        let daemon = roles.daemon_url();
        let grants = statements(&roles.sql(&doc_block("daemon grants")));
        assert!(grants.len() >= 8, "{grants:?}");
        let mut owner = Session::connect(&roles.owner_url());
        for (i, grant) in grants.iter().enumerate() {
            let name = format!("job-{i}");
            import_as(env, &roles.admin_url(), &[job(&name, "Closed", days_ago(200))]);
            owner.exec_ok(&revoke_of(grant));
            let out = as_role(env, &daemon, &["purge"]).env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "5s").run();
            owner.exec_ok(grant);
            assert_ne!(out.code, 0, "the purge worked without `{grant}`: the grant is not needed\n{}", out.describe());
            assert!(matches!(out.code, 1 | 69), "{}", out.describe());
            assert!(!out.stderr.contains("panicked"), "{}", out.describe());
            assert_no_password(&out);
            assert!(env.job_exists(&name), "{name} was deleted without `{grant}`");
            assert_eq!(env.audit_rows(&name).len(), 0);
            // Granted again, the same purge deletes it.
            let out = as_role(env, &daemon, &["purge", "--output", "json"]).run();
            out.expect_code(0);
            assert_eq!(out.json()["total"], 1, "{}", out.describe());
            assert!(!env.job_exists(&name));
        }
        assert_eq!(env.count("retention_runs WHERE status = 'running'"), 0, "{:?}", env.dump("retention_runs"));
    }
}

every_engine_with! { Roles;
    /// The admin role of docs/security.md runs every `jobs` command, `audit
    /// list` and `runs list`, but cannot sweep, migrate, or alter the audit trail.
    fn admin_role_runs_the_jobs_commands_but_no_sweep(env: &TestEnv) {
        let roles = setup(env);
        let admin = roles.admin_url();
        let ok = |args: &[&str]| {
            let out = as_role(env, &admin, args).run();
            out.expect_code(0);
            out
        };
        import_as(env, &admin, &[set(job("old", "Completed", days_ago(200)), "drives", drives("o", 2, "ShippedBack"))]);
        ok(&["jobs", "create", "walk", "--type", "export", "--drive", "d1", "--drive", "d2"]);
        ok(&["jobs", "set-state", "walk", "Shipping"]);
        ok(&["jobs", "cancel", "walk"]);
        ok(&["jobs", "hold", "walk", "--reason", "audit"]);
        ok(&["jobs", "release", "walk"]);
        ok(&["jobs", "create", "doomed", "--type", "import"]);
        ok(&["jobs", "delete", "doomed"]);
        ok(&["jobs", "seed", "--count", "20", "--prefix", "seeded"]);
        let shown = ok(&["jobs", "show", "walk", "--output", "json"]).json();
        assert_eq!(shown["state"], "Shipping", "{shown}");
        assert_eq!(shown["cancel_requested"], true, "{shown}");
        assert_eq!(shown["drives"].as_array().map(Vec::len), Some(2), "{shown}");
        let listed = ok(&["jobs", "list", "--limit", "0", "--output", "json"]).json();
        assert_eq!(listed.as_array().map(Vec::len), Some(22), "{listed}");
        let audit = ok(&["audit", "list", "--output", "json"]).json();
        assert_eq!(audit_names(&audit), vec!["doomed"], "{audit}");
        assert_eq!(audit[0]["policy"], "manual", "{audit}");
        ok(&["runs", "list"]);
        let dry = ok(&["purge", "--dry-run", "--output", "json"]).json();
        assert!(dry_run_names(&dry).contains(&"old".to_string()), "{dry}");

        // No sweep: it cannot write a run record.
        let out = as_role(env, &admin, &["purge"]).run();
        out.expect_code(1);
        assert!(out.stderr.contains("permission denied for table retention_runs"), "{}", out.describe());
        assert!(env.job_exists("old"));
        assert_eq!(env.count("retention_runs"), 0);
        as_role(env, &admin, &["migrate"]).run().expect_code(1);

        let mut session = Session::connect(&admin);
        for sql in [
            "UPDATE retention_audit SET job_name = 'forged'",
            "DELETE FROM retention_audit",
            "INSERT INTO retention_runs (trigger, status, started_at, host, pid) VALUES ('purge', 'succeeded', now(), 'h', 1)",
            "UPDATE retention_runs SET status = 'failed'",
            "UPDATE jobs SET created_at = now()",
            "UPDATE jobs SET name = 'renamed'",
            "DELETE FROM job_drives",
            "DROP TABLE jobs",
            "CREATE TABLE mine (a int)",
        ] {
            session.exec_denied(sql);
        }
    }
}

every_engine_with! { Roles;
    /// A role that may not read `_sqlx_migrations` should be told about the
    /// permission, not that the schema is out of date.
    fn a_role_that_cannot_read_the_migrations_is_told_so(env: &TestEnv) {
        let roles = setup(env);
        env.execute(&format!("REVOKE SELECT ON _sqlx_migrations FROM {}", roles.daemon));
        let out = as_role(env, &roles.daemon_url(), &["purge"]).run();
        out.expect_code(1);
        assert!(out.stderr.contains("denied") && out.stderr.contains("_sqlx_migrations"), "{}", out.describe());
    }
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// A PostgreSQL URL with [`PASSWORD`] to a port where nothing listens.
fn unreachable_url() -> String {
    format!("postgres://u:{PASSWORD_ENCODED}@127.0.0.1:1/db")
}

#[test]
fn password_never_shown_when_the_database_is_unreachable_or_the_configuration_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let invocation = |url: &str, args: &[&str]| {
        Invocation::new(args)
            .env("RETENTIOND__DATABASE__URL", url)
            .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "2s")
            .cwd(dir.path())
    };
    let encoded = unreachable_url();
    let raw = format!("postgres://u:{PASSWORD}@127.0.0.1:1/db");
    let query = format!("postgres://u@127.0.0.1:1/db?password={PASSWORD_ENCODED}");
    let mut running = Vec::new();
    for url in [&encoded, &raw, &query] {
        for format in ["json", "pretty"] {
            for command in [&["purge"][..], &["purge", "--dry-run"], &["migrate"], &["jobs", "list"], &["runs", "list"]]
            {
                let mut args = vec!["--log-level", "trace", "--log-format", format];
                args.extend_from_slice(command);
                running.push(invocation(url, &args).spawn());
            }
        }
    }
    for process in running {
        let out = process.wait();
        assert_no_password(&out);
        if out.code == 78 {
            // The raw password holds a `/`: not a URL, refused at load, never shown.
            assert!(out.stderr.contains("database.url is not a valid URL"), "{}", out.describe());
            continue;
        }
        out.expect_code(69);
        assert!(out.stderr.contains("REDACTED"), "the URL is shown, redacted\n{}", out.describe());
    }

    // check-config: the URL with REDACTED for the password, the rest intact.
    for url in [&encoded, &query] {
        let out = invocation(url, &["--log-level", "trace", "check-config"]).run();
        out.expect_code(0);
        assert_no_password(&out);
        let printed: toml::Table = toml::from_str(&out.stdout).expect("TOML");
        let shown = printed["database"]["url"].as_str().expect("database.url");
        assert!(shown.contains("REDACTED") && shown.contains("127.0.0.1:1/db"), "{shown}");
    }
    // A configuration error next to the URL.
    for (key, value) in [
        ("RETENTIOND__DATABASE__MAX_CONNECTIONS", "lots"),
        ("RETENTIOND__DATABASE__MAX_CONNECTIONS", "0"),
        ("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "soon"),
        ("RETENTIOND__DATABASE__PASSWORD", PASSWORD),
    ] {
        for args in [&["check-config"][..], &["purge"]] {
            let out = invocation(&encoded, args).env(key, value).run();
            out.expect_code(78);
            assert_no_password(&out);
        }
    }
    // A URL the parser refuses, with the password unencoded in it.
    let out =
        invocation(&format!("postgres://u:{PASSWORD}@127.0.0.1:notaport/db"), &["--log-level", "trace", "purge"]).run();
    assert_ne!(out.code, 0, "{}", out.describe());
    assert_no_password(&out);
}

/// A fake PostgreSQL server on 127.0.0.1 that asks each client for its
/// password in clear text, records it, and refuses the login with
/// SQLSTATE 28P01; with `echo`, its error message repeats the password.
struct RefusingServer {
    port: u16,
    passwords: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RefusingServer {
    fn start(echo: bool) -> RefusingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (passwords, stop) = (passwords.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let passwords = passwords.clone();
                            std::thread::spawn(move || refuse_login(stream, echo, &passwords));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        RefusingServer { port, passwords, stop, thread: Some(thread) }
    }

    fn passwords(&self) -> Vec<String> {
        self.passwords.lock().unwrap().clone()
    }
}

impl Drop for RefusingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_u32(stream: &mut TcpStream) -> Option<u32> {
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).ok()?;
    Some(u32::from_be_bytes(buf))
}

/// One client of [`RefusingServer`]: the startup message (after declining
/// TLS or GSS encryption if asked), a cleartext password request, the
/// password, a FATAL 28P01. The password is recorded before the refusal is
/// sent: once refused, the client exits and the test counts the logins.
fn refuse_login(mut stream: TcpStream, echo: bool, passwords: &Mutex<Vec<String>>) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    loop {
        let len = read_u32(&mut stream)? as usize;
        let mut body = vec![0u8; len.checked_sub(4)?];
        stream.read_exact(&mut body).ok()?;
        let code = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
        match code {
            80_877_103 | 80_877_104 => stream.write_all(b"N").ok()?, // SSLRequest, GSSENCRequest: no
            196_608 => break,                                        // protocol 3.0 startup
            _ => return None,
        }
    }
    // AuthenticationCleartextPassword.
    stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).ok()?;
    let mut tag = [0u8; 1];
    stream.read_exact(&mut tag).ok()?;
    let len = read_u32(&mut stream)? as usize;
    let mut body = vec![0u8; len.checked_sub(4)?];
    stream.read_exact(&mut body).ok()?;
    let password = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
    passwords.lock().unwrap().push(password.clone());
    let message = if echo {
        format!("password authentication failed for user \"u\" (got \"{password}\")")
    } else {
        "password authentication failed for user \"u\"".to_string()
    };
    let mut fields = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "28P01"), (b'M', message.as_str())] {
        fields.push(field);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut response = vec![b'E'];
    response.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    response.extend_from_slice(&fields);
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    Some(())
}

#[test]
fn password_never_shown_when_the_server_refuses_it() {
    // The test PostgreSQL trusts every login, so a server of our own refuses it.
    let dir = tempfile::tempdir().unwrap();
    for echo in [false, true] {
        let server = RefusingServer::start(echo);
        let url = format!("postgres://u:{PASSWORD_ENCODED}@127.0.0.1:{}/db", server.port);
        let mut outs = Vec::new();
        for format in ["json", "pretty"] {
            for command in [&["purge"][..], &["migrate"], &["jobs", "list"], &["audit", "list"]] {
                let mut args = vec!["--log-level", "trace", "--log-format", format];
                args.extend_from_slice(command);
                let out = Invocation::new(&args)
                    .env("RETENTIOND__DATABASE__URL", &url)
                    .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "5s")
                    .cwd(dir.path())
                    .run();
                outs.push(out);
            }
        }
        for out in &outs {
            out.expect_code(69);
            assert_no_password(out);
            assert!(out.stderr.contains("password authentication failed"), "the cause is shown\n{}", out.describe());
        }
        // The secret really went out, decoded once: the test is not vacuous.
        let received = server.passwords();
        assert_eq!(received.len(), outs.len(), "one login per command: {received:?}");
        assert!(received.iter().all(|p| p == PASSWORD), "the server received {received:?}, not {PASSWORD:?}");
    }
}

every_engine_with! { Roles;
    /// Against a working database whose URL carries a password (trust
    /// authentication ignores it), nothing shows it at trace level: purge,
    /// dry run, the listings, and the daemon until SIGTERM.
    fn password_never_shown_at_trace_level_against_a_working_database(env: &TestEnv) {
        let mut url = url::Url::parse(&env.url).unwrap();
        url.set_password(Some(PASSWORD_ENCODED)).unwrap();
        let url = url.to_string();
        assert!(url.contains(PASSWORD_ENCODED), "{url}");
        env.migrate();
        env.import_ok(&[
            set(job("old-1", "Completed", days_ago(200)), "drives", drives("o1", 2, "ShippedBack")),
            job("old-2", "Closed", days_ago(150)),
            job("young", "Completed", days_ago(1)),
        ]);
        let with_password = |args: &[&str]| env.cmd(args).env("RETENTIOND__DATABASE__URL", &url);
        for (format, jobs) in [("json", ["old-3", "old-4"]), ("pretty", ["old-5", "old-6"])] {
            env.import_ok(&jobs.map(|name| job(name, "Completed", days_ago(100))));
            for args in [
                &["purge", "--dry-run"][..],
                &["purge", "--batch-size", "1"],
                &["runs", "list"],
                &["audit", "list"],
                &["jobs", "list"],
                &["jobs", "show", "young"],
            ] {
                let mut all = vec!["--log-level", "trace", "--log-format", format];
                all.extend_from_slice(args);
                let out = with_password(&all).run();
                out.expect_code(0);
                assert_no_password(&out);
            }
            for name in jobs {
                assert!(!env.job_exists(name), "{name} was purged");
            }
        }
        env.import_ok(&[job("old-7", "Closed", days_ago(100))]);
        let out = run_daemon_until_a_sweep(env, with_password(&["--log-level", "trace", "run"]).envs(&[NO_HTTP]));
        out.expect_code(0);
        assert_no_password(&out);
        assert!(!env.job_exists("old-7"), "the daemon swept\n{}", out.describe());
        assert!(out.stderr.len() > 1000, "trace logging was on\n{}", out.describe());
    }
}

every_engine! {
    /// A password in `metrics.pushgateway` is not shown by check-config nor
    /// when the push fails, at trace level.
    fn pushgateway_password_never_shown(env: &TestEnv) {
        env.migrate();
        let gateway = format!("http://pusher:{PASSWORD_ENCODED}@127.0.0.1:1/");
        let out = env.cmd(&["check-config"]).env("RETENTIOND__METRICS__PUSHGATEWAY", &gateway).run();
        out.expect_code(0);
        assert_no_password(&out);
        assert!(out.stdout.contains("http://pusher:REDACTED@127.0.0.1:1/"), "{}", out.describe());
        for format in ["json", "pretty"] {
            env.import_ok(&[job(&format!("old-{format}"), "Completed", days_ago(200))]);
            let out = env
                .cmd(&["--log-level", "trace", "--log-format", format, "purge"])
                .env("RETENTIOND__METRICS__PUSHGATEWAY", &gateway)
                .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "2s")
                .run();
            out.expect_code(1);
            assert!(out.stderr.contains("pushgateway"), "{}", out.describe());
            assert_no_password(&out);
            assert!(!env.job_exists(&format!("old-{format}")), "deletions stay committed");
        }
    }
}

/// A one-request HTTP server: answers 200 and hands back the request's head.
fn capture_one_request() -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break raw.len();
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while raw.len() < head_end + 4 + length {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        head
    });
    (port, thread)
}

#[test]
fn pushgateway_basic_auth_carries_the_decoded_password() {
    let env = TestEnv::new(Engine::Sqlite, "pushgateway_basic_auth").expect("SQLite is always there");
    env.migrate();
    let (port, request) = capture_one_request();
    let out = env
        .cmd(&["purge"])
        .env("RETENTIOND__METRICS__PUSHGATEWAY", &format!("http://pusher:{PASSWORD_ENCODED}@127.0.0.1:{port}/"))
        .run();
    out.expect_code(0);
    let head = request.join().expect("the push arrived");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("pusher:{PASSWORD}"));
    let sent = head
        .lines()
        .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
        .unwrap_or_else(|| panic!("no Authorization header in\n{head}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(sent.trim_start_matches("Basic "))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert_eq!(sent, format!("Basic {expected}"), "the gateway received the credentials {decoded:?}");
}

#[test]
fn a_short_password_does_not_garble_error_messages() {
    let dir = tempfile::tempdir().unwrap();
    // "on" is in "Connection refused".
    let out = Invocation::new(&["purge"])
        .env("RETENTIOND__DATABASE__URL", "postgres://u:on@127.0.0.1:1/db")
        .cwd(dir.path())
        .run();
    out.expect_code(69);
    assert!(out.stderr.contains("Connection refused"), "{}", out.describe());
}

// ---------------------------------------------------------------------------
// SQLite files
// ---------------------------------------------------------------------------

/// `retentiond ARGS` under `umask`, with a clean RETENTIOND* environment plus `env`.
fn with_umask(umask: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("umask {umask} && exec \"$0\" \"$@\"")).arg(BIN).args(args);
    for (key, _) in std::env::vars_os() {
        let upper = key.to_string_lossy().to_ascii_uppercase();
        if upper.starts_with("RETENTIOND")
            || upper == "RUST_LOG"
            || upper == "NOTIFY_SOCKET"
            || upper.starts_with("WATCHDOG_")
        {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().copied()).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("start retentiond under sh")
}

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// The database file and whichever of its `-wal`/`-shm` files exist, with their modes.
fn sqlite_modes(db: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        if let Some(m) = mode(Path::new(&path)) {
            found.push((path, m));
        }
    }
    found
}

#[track_caller]
fn assert_owner_only(db: &Path, context: &str) {
    let modes = sqlite_modes(db);
    assert!(modes.first().is_some_and(|(p, _)| p.ends_with(".db")), "{context}: no database file {}", db.display());
    for (path, m) in &modes {
        assert_eq!(*m, 0o600, "{context}: {path} has mode {m:o}, not 600");
    }
}

#[test]
fn sqlite_files_are_created_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    for umask in ["0000", "0022"] {
        // migrate, and an ordinary command, on a file that does not exist yet.
        for (name, args) in [("migrated", &["migrate"][..]), ("listed", &["jobs", "list"])] {
            let db = dir.path().join(format!("{name}-{umask}.db"));
            let url = format!("sqlite://{}", db.display());
            let out =
                with_umask(umask, dir.path(), args, &[("RETENTIOND__DATABASE__URL", &url)]).wait_with_output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            assert_owner_only(&db, &format!("{args:?} under umask {umask}"));
        }
        // The daemon holds its connections open: -wal and -shm exist while it runs.
        let db = dir.path().join(format!("daemon-{umask}.db"));
        let url = format!("sqlite://{}", db.display());
        let mut daemon = with_umask(umask, dir.path(), &["run"], &[("RETENTIOND__DATABASE__URL", &url), NO_HTTP]);
        let both = wait_for(Duration::from_secs(30), || sqlite_modes(&db).len() == 3);
        let modes = sqlite_modes(&db);
        assert!(send_signal(daemon.id(), "TERM"));
        let status = daemon.wait().unwrap();
        assert!(both, "the running daemon has a -wal and a -shm file: {modes:?}");
        assert_owner_only(&db, &format!("the daemon under umask {umask}"));
        assert!(status.success(), "daemon exit: {status:?}");
    }

    // An existing file keeps its mode (documented: retentiond changes no permissions).
    let db = dir.path().join("existing.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let url = format!("sqlite://{}", db.display());
    let out = with_umask("0022", dir.path(), &["migrate"], &[("RETENTIOND__DATABASE__URL", &url)])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&db), Some(0o640));
}

every_engine_with! { Roles;
    /// With `retention.audit` and `retention.runs` set, the daemon grants
    /// alone refuse the trail's removal (the purge fails and removes
    /// nothing of the trail); with the trail grants of docs/security.md the
    /// daemon removes the old audit row and both old run records.
    fn the_trail_grants_let_the_daemon_remove_the_old_trail(env: &TestEnv) {
        let roles = setup(env);
        let daemon = roles.daemon_url();
        env.execute(
            "INSERT INTO retention_runs (trigger, status, started_at, finished_at, deleted_completed, host, pid) \
             VALUES ('purge', 'succeeded', now() - interval '100 days', now() - interval '100 days', 1, 'h', 1), \
                    ('purge', 'succeeded', now() - interval '100 days', now() - interval '100 days', 0, 'h', 1); \
             INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
               created_at, state_changed_at, deleted_at, deleted_by) \
             SELECT min(id), 777, 'old', 'Import', 'completed', 'Completed', false, now() - interval '200 days', \
               now() - interval '110 days', now() - interval '100 days', 'ops@host' FROM retention_runs",
        );
        let trail = [("RETENTIOND__RETENTION__AUDIT", "30d"), ("RETENTIOND__RETENTION__RUNS", "30d")];

        let refused = as_role(env, &daemon, &["purge"]).envs(&trail).run();
        refused.expect_code(1);
        assert!(refused.stderr.contains("permission denied"), "{}", refused.describe());
        assert_eq!(env.count("retention_audit"), 1);
        assert_eq!(env.count("retention_runs WHERE finished_at < now() - interval '90 days'"), 2);

        let mut owner = Session::connect(&roles.owner_url());
        for statement in statements(&roles.sql(&doc_block("trail grants"))) {
            owner.exec_ok(&statement);
        }
        let out = as_role(env, &daemon, &["purge", "--output", "json"]).envs(&trail).run();
        out.expect_code(0);
        let summary = out.json();
        assert_eq!((summary["audit_rows_removed"].as_u64(), summary["runs_removed"].as_u64()), (Some(1), Some(2)), "{summary}");
        assert_eq!(env.count("retention_audit"), 0);
        assert_eq!(env.count("retention_runs WHERE finished_at < now() - interval '90 days'"), 0);
    }
}

// ---------------------------------------------------------------------------
// Least privilege (MariaDB)
// ---------------------------------------------------------------------------

/// The three users of docs/security.md ("MariaDB users") for one test's
/// database, named after it; dropped again on drop.
struct MariaDbUsers<'a> {
    env: &'a TestEnv,
    db: String,
}

impl MariaDbUsers<'_> {
    /// The users created with their passwords, the owner's grants given,
    /// the schema migrated by the owner, the daemon's and the admin's
    /// grants given: each block of the doc as written, with this test's names.
    fn set_up(env: &TestEnv) -> MariaDbUsers<'_> {
        let db = url::Url::parse(&env.url).expect("URL").path().trim_start_matches('/').to_string();
        let users = MariaDbUsers { env, db };
        for (user, password) in [("owner", OWNER_PASSWORD), ("daemon", PASSWORD), ("admin", ADMIN_PASSWORD)] {
            env.execute(&format!("CREATE USER '{}_{user}'@'%' IDENTIFIED BY {}", users.db, quote(password)));
        }
        for statement in statements(&users.sql(&doc_block("mariadb owner grants"))) {
            env.execute(&statement);
        }
        let out = env.cmd(&["migrate"]).env("RETENTIOND__DATABASE__URL", &users.url("owner", OWNER_PASSWORD)).run();
        out.expect_code(0);
        for block in ["mariadb daemon grants", "mariadb admin grants"] {
            for statement in statements(&users.sql(&doc_block(block))) {
                env.execute(&statement);
            }
        }
        users
    }

    /// The doc's SQL for this test: its user and database names replaced.
    fn sql(&self, doc_sql: &str) -> String {
        ["owner", "daemon", "admin"]
            .iter()
            .fold(doc_sql.replace("ON jobs.*", &format!("ON `{}`.*", self.db)), |sql, user| {
                sql.replace(&format!("retentiond_{user}@'%'"), &format!("'{}_{user}'@'%'", self.db))
            })
    }

    fn url(&self, user: &str, password: &str) -> String {
        let mut url = url::Url::parse(&self.env.url).expect("URL");
        url.set_username(&format!("{}_{user}", self.db)).expect("user");
        url.set_password(Some(password)).expect("password");
        url.to_string()
    }
}

impl Drop for MariaDbUsers<'_> {
    fn drop(&mut self) {
        for user in ["owner", "daemon", "admin"] {
            if let Err(e) = self.env.try_execute(&format!("DROP USER IF EXISTS '{}_{user}'@'%'", self.db)) {
                eprintln!("warning: cannot drop the test user {user}: {e}");
            }
        }
    }
}

/// With exactly the MariaDB grants of docs/security.md and auto_migrate =
/// false, the daemon's user purges exactly the eligible jobs, with their
/// drives and one audit row each, records its run `succeeded` and shows its
/// password nowhere; with any one statement of its grants revoked, a purge
/// fails, having deleted nothing (but without UPDATE on retention_runs,
/// which it needs only at the end); granted again, a purge deletes the job.
#[test]
fn mariadb_daemon_user_sweeps_with_the_documented_grants() {
    let Some(env) = TestEnv::new(Engine::MariaDb, "mariadb_daemon_user_sweeps_with_the_documented_grants") else {
        return;
    };
    let users = MariaDbUsers::set_up(&env);
    let (daemon, admin) = (users.url("daemon", PASSWORD_ENCODED), users.url("admin", ADMIN_PASSWORD));
    import_as(
        &env,
        &admin,
        &[
            set(job("old-completed", "Completed", days_ago(200)), "drives", drives("oc", 3, "ShippedBack")),
            job("old-closed", "Closed", days_ago(120)),
            set(creating_job("idle-creating", 40), "drives", drives("ic", 1, "Specified")),
            job("young", "Completed", days_ago(10)),
            set(
                set(job("held", "Completed", days_ago(400)), "hold_reason", json!("legal")),
                "drives",
                drives("h", 2, "ShippedBack"),
            ),
        ],
    );
    let out = as_role(&env, &daemon, &["--log-level", "trace", "purge", "--batch-size", "2", "--output", "json"])
        .envs(&[IDLE_14D])
        .run();
    out.expect_code(0);
    assert_no_password(&out);
    let summary = out.json();
    assert_eq!(
        summary["counts"],
        json!({"completed": 1, "closed": 1, "creating_idle": 1, "retain_until": 0}),
        "{summary}"
    );
    assert_eq!(names_of(&env), set_of(&["young", "held"]), "exactly the eligible jobs are gone");
    assert_eq!(env.count("job_drives"), 2, "the drives of the deleted jobs went with them");
    for name in ["old-completed", "old-closed", "idle-creating"] {
        assert_eq!(env.audit_rows(name).len(), 1, "one audit row for {name}");
    }
    assert_eq!(env.strings("SELECT status FROM retention_runs"), ["succeeded"]);

    let grants = statements(&users.sql(&doc_block("mariadb daemon grants")));
    assert!(grants.len() >= 6, "{grants:?}");
    for (i, grant) in grants.iter().enumerate() {
        let name = format!("job-{i}");
        import_as(&env, &admin, &[job(&name, "Closed", days_ago(200))]);
        env.execute(&revoke_of(grant));
        let out = as_role(&env, &daemon, &["purge"]).env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "5s").run();
        env.execute(grant);
        assert_ne!(out.code, 0, "the purge worked without `{grant}`: the grant is not needed\n{}", out.describe());
        assert!(matches!(out.code, 1 | 69), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
        assert_no_password(&out);
        // UPDATE on retention_runs is checked only when the run is recorded
        // as finished: the batches before it committed, each job with its
        // audit row.
        let left = env.job_exists(&name);
        if grant.starts_with("GRANT UPDATE") {
            assert_eq!(env.audit_rows(&name).len(), usize::from(!left), "{name}: deleted once with its audit row");
        } else {
            assert!(left, "{name} was deleted without `{grant}`");
            assert_eq!(env.audit_rows(&name).len(), 0);
        }
        let out = as_role(&env, &daemon, &["purge", "--output", "json"]).run();
        out.expect_code(0);
        assert_eq!(out.json()["total"], i64::from(left), "{}", out.describe());
        assert!(!env.job_exists(&name));
    }

    // A user granted the columns of retention_runs an earlier docs/security.md
    // listed (no finished_at, stopped_by) still sweeps: a sweep that finds
    // nothing records its start, then its end, and says why.
    let insert_runs =
        grants.iter().find(|grant| grant.starts_with("GRANT INSERT") && grant.contains("ON retention_runs"));
    env.execute(&revoke_of(insert_runs.expect("an INSERT grant on retention_runs")));
    env.execute(&users.sql(
        "GRANT INSERT (id, `trigger`, status, started_at, host, pid, process_started) ON retention_runs \
         TO retentiond_daemon@'%'",
    ));
    let out = as_role(&env, &daemon, &["purge", "--output", "json"]).run();
    out.expect_code(0);
    assert!(out.stderr.contains("could not record the sweep's run finished at once"), "{}", out.describe());
    let run_id = out.json()["run_id"].as_i64().expect("a run id");
    assert_eq!(env.strings(&format!("SELECT status FROM retention_runs WHERE id = {run_id}")), ["succeeded"]);
    assert_eq!(env.count("retention_runs WHERE status = 'running'"), 0, "{:?}", env.dump("retention_runs"));
}

// ---------------------------------------------------------------------------
// Pacing by a standby under the least-privilege role (PostgreSQL)
// ---------------------------------------------------------------------------

/// docs/security.md, "replica grants": on a primary with a streaming
/// standby of the test's own, a purge as the daemon role (exactly the
/// doc's grants) with `retention.max_replica_lag` cannot read the
/// standby's lag without `pg_monitor`: its log says so, names the standby
/// and counts it as over the limit, so the sweep pauses, deletes nothing
/// and stops at its run timeout. With the doc's replica block run, the same
/// purge reads the standby's lag (its metric) and deletes every eligible job
/// without a pause.
#[test]
fn the_daemon_role_reads_a_standbys_lag_once_granted_pg_monitor() {
    let test = "the replica grants test";
    let Some(bindir) = common::pg_server::bindir() else {
        common::require::Requirement::Postgres
            .skip(test, "PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are not installed");
        return;
    };
    let servers = common::pg_standby::PrimaryAndStandby::new(bindir);
    let port = servers.primary_port;
    let url = |role: &str| format!("postgres://{role}@127.0.0.1:{port}/jobs");
    // Section 1 of the doc, on a cluster of the test's own: the doc's names as they are.
    for role in ["retentiond_owner", "retentiond_daemon", "retentiond_admin"] {
        servers.psql(port, &format!("CREATE ROLE {role} LOGIN"));
    }
    servers.psql(port, "CREATE DATABASE jobs OWNER retentiond_owner");
    let mut superuser = Session::connect(&url("postgres"));
    superuser.exec_ok(&doc_block("database"));
    Invocation::new(&["migrate"]).env("RETENTIOND__DATABASE__URL", &url("retentiond_owner")).run().expect_code(0);
    let mut owner = Session::connect(&url("retentiond_owner"));
    for statement in statements(&doc_block("daemon grants")) {
        owner.exec_ok(&statement);
    }
    let seeded = Invocation::new(&["jobs", "seed", "--count", "300", "--seed", "7"])
        .env("RETENTIOND__DATABASE__URL", &url("postgres"))
        .run();
    seeded.expect_code(0);
    servers.start_standby();
    let streaming = wait_for(Duration::from_secs(30), || {
        servers.psql(port, "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn IS NOT NULL") == "1"
    });
    assert!(streaming, "the standby did not stream\n{}", servers.describe_logs());

    let textfile = servers.dir.path().join("purge.prom");
    let purge = |timeout: &str| {
        Invocation::new(&["purge", "--output", "json", "--metrics-textfile", path_str(&textfile)])
            .env("RETENTIOND__DATABASE__URL", &url("retentiond_daemon"))
            .env("RETENTIOND__LOG__FORMAT", "json")
            .env("RETENTIOND__RETENTION__COMPLETED", "1d")
            .env("RETENTIOND__RETENTION__CLOSED", "1d")
            .env("RETENTIOND__RETENTION__MAX_REPLICA_LAG", "1s")
            .env("RETENTIOND__RETENTION__RUN_TIMEOUT", timeout)
            .envs(&[NO_MIGRATE])
            .run()
    };
    let dry = Invocation::new(&["purge", "--dry-run", "--output", "json"])
        .env("RETENTIOND__DATABASE__URL", &url("retentiond_daemon"))
        .env("RETENTIOND__RETENTION__COMPLETED", "1d")
        .env("RETENTIOND__RETENTION__CLOSED", "1d")
        .envs(&[NO_MIGRATE])
        .run();
    dry.expect_code(0);
    let eligible = dry.json()["total"].as_u64().expect("total");
    assert!(eligible > 50, "{eligible} eligible");

    let blind = purge("4s");
    let summary = blind.json();
    assert_eq!(
        (summary["stopped_by"].as_str(), summary["total"].as_u64()),
        (Some("timeout"), Some(0)),
        "{}",
        blind.describe()
    );
    assert!(summary["pauses"].as_u64() >= Some(1), "{summary}");
    let unreadable: Vec<Value> = blind
        .stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("sweep paused")))
        .collect();
    // Without pg_monitor the view hides the standby's address too: it is `walreceiver@local`.
    let standby = unreadable
        .iter()
        .find(|line| line["fields"]["replica"].as_str().is_some_and(|name| name.starts_with("walreceiver@")));
    let standby = standby.unwrap_or_else(|| panic!("no pause names the standby\n{}", blind.describe()));
    let reason = standby["fields"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("grant it pg_monitor"), "{standby}");
    assert!(
        standby["fields"]["message"].as_str().unwrap_or_default().contains("counts as over the limit"),
        "{standby}"
    );

    for statement in statements(&doc_block("replica grants")) {
        superuser.exec_ok(&statement);
    }
    let out = purge("5m");
    out.expect_code(0);
    let summary = out.json();
    assert_eq!(summary["stopped_by"], "done", "{}", out.describe());
    assert_eq!(summary["total"].as_u64(), Some(eligible), "{}", out.describe());
    assert_eq!(summary["pauses"].as_u64(), Some(0), "{}", out.describe());
    let conn = superuser.conn.as_mut().expect("open");
    let audit_rows: i64 =
        superuser.rt.block_on(sqlx::query_scalar("SELECT count(*) FROM retention_audit").fetch_one(conn)).unwrap();
    assert_eq!(audit_rows, eligible as i64);
    let metrics = Metrics::parse(&std::fs::read_to_string(&textfile).expect("the textfile"));
    let lags: Vec<String> = metrics
        .scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == "retentiond_replica_lag_seconds")
        .filter_map(|sample| sample.labels.get("replica").map(str::to_owned))
        .collect();
    assert!(lags.iter().any(|name| name.starts_with("walreceiver@127.0.0.1")), "{}", metrics.text);
    drop((superuser, owner));
}
