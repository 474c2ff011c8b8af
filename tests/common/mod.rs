//! Test harness: runs the real `retentiond` binary against a fresh store.
//!
//! * SQLite: a new database file in a [`tempfile::TempDir`] per test.
//! * PostgreSQL: a new database per test, created through the admin URL in
//!   `RETENTIOND_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`) and dropped again when the
//!   [`TestEnv`] is dropped. When PostgreSQL is unreachable the PostgreSQL
//!   variant of a test prints `skipping PostgreSQL test …` and passes, unless
//!   `RETENTIOND_TEST_REQUIRE_POSTGRES=1` (see [`require`]), in which case it fails.
//!
//! Scenarios are written once and instantiated for both backends with
//! [`both_backends!`]; a test `fn foo` becomes `foo::sqlite` and `foo::postgres`.

#![allow(dead_code)]

pub mod https_server;
pub mod pg_server;
pub mod pki;
pub mod plan;
pub mod require;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{Value, json};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, PgPool, Row, SqlitePool, TypeInfo, ValueRef};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_retentiond");

/// How long one invocation of the binary may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The four tables of the store, in a fixed order.
pub const TABLES: [&str; 4] = ["jobs", "job_drives", "retention_runs", "retention_audit"];

/// All job states, in lifecycle order.
pub const STATES: [&str; 7] = ["Creating", "Shipping", "Received", "Transferring", "Packaging", "Completed", "Closed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a generated test is named after: `sqlite` or `postgres`.
    pub fn from_test_name(name: &str) -> Backend {
        match name {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => panic!("no backend is called {other}"),
        }
    }
}

/// Defines one scenario for both backends: `fn name(env: &TestEnv) { ... }`
/// becomes the tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($scenario:tt)*) => { $crate::scenario!([sqlite, postgres] $($scenario)*); };
}

/// Defines a PostgreSQL-only scenario: `fn name(env: &TestEnv) { ... }`
/// becomes the test `name::postgres`.
#[macro_export]
macro_rules! postgres_only {
    ($($scenario:tt)*) => { $crate::scenario!([postgres] $($scenario)*); };
}

/// A module `name` holding the scenario and one `#[test]` per listed backend.
/// A PostgreSQL test without a reachable server is skipped (see [`TestEnv::new`]).
#[macro_export]
macro_rules! scenario {
    ([$($backend:ident),*] $(#[$meta:meta])* fn $name:ident($env:ident : &TestEnv) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            fn scenario($env: &$crate::common::TestEnv) $body

            $(
                #[test]
                fn $backend() {
                    if let Some(env) = $crate::common::TestEnv::new($crate::common::Backend::from_test_name(stringify!($backend)), stringify!($name)) {
                        scenario(&env);
                    }
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// The outcome of one invocation of the binary.
#[derive(Debug, Clone)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    /// Panics with the whole invocation unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "expected exit code {code}, got {}\n{}", self.code, self.describe());
        self
    }

    /// Parses stdout as JSON (the command must have been given `--output json`).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    /// Whether stderr names line `n` (`line 3`, not `line 30`).
    pub fn stderr_names_line(&self, n: usize) -> bool {
        mentions_line(&self.stderr, n)
    }

    pub fn describe(&self) -> String {
        format!(
            "command: retentiond {}\nexit code: {}\nelapsed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.elapsed,
            truncate_for_display(&self.stdout),
            truncate_for_display(&self.stderr)
        )
    }
}

fn truncate_for_display(s: &str) -> &str {
    const MAX: usize = 8000;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `text` contains `line N` with N not followed by another digit.
pub fn mentions_line(text: &str, n: usize) -> bool {
    let needle = format!("line {n}");
    let lower = text.to_lowercase();
    lower.match_indices(&needle).any(|(i, _)| {
        let after = lower[i + needle.len()..].chars().next();
        !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// A command ready to run: the binary with a clean `RETENTIOND*` environment.
pub struct Invocation {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    /// The process's open-file limit (`RLIMIT_NOFILE`, soft and hard), when set.
    open_files: Option<u64>,
}

impl Invocation {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Invocation {
        Invocation {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            open_files: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Invocation {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, env: &[(K, V)]) -> Invocation {
        for (k, v) in env {
            self.env.push((k.as_ref().to_string(), v.as_ref().to_string()));
        }
        self
    }

    pub fn stdin(mut self, input: &[u8]) -> Invocation {
        self.stdin = Some(input.to_vec());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Invocation {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Starts the process with at most `limit` open files (as `ulimit -n`),
    /// set in the child before it runs the binary.
    pub fn open_file_limit(mut self, limit: u64) -> Invocation {
        self.open_files = Some(limit);
        self
    }

    /// Starts the process; the caller waits with [`Running::wait`].
    /// The command to start: the binary with this invocation's arguments and
    /// environment. The child sees only the configuration a test gives it: no
    /// inherited `RETENTIOND*`, `PG*`, `RUST_LOG` or systemd variables.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let upper = key.to_string_lossy().to_ascii_uppercase();
            // PG* (PGSSLMODE, PGPASSWORD…) and CREDENTIALS_DIRECTORY change
            // how the binary connects: a test sets them when it means to.
            if upper.starts_with("RETENTIOND")
                || upper == "NOTIFY_SOCKET"
                || upper.starts_with("WATCHDOG_")
                || upper.starts_with("PG")
                || upper == "CREDENTIALS_DIRECTORY"
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        cmd
    }

    pub fn spawn(self) -> Running {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped());
        cmd.stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdin_writer = self.stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            std::thread::spawn(move || {
                // The child may exit without reading everything; that is its business.
                let _ = pipe.write_all(&input);
            })
        });
        let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
        let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
        Running { args: self.args, child, started, stdout, stderr, stdin_writer }
    }

    pub fn run(self) -> Out {
        self.spawn().wait()
    }
}

fn read_in_background<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A started process.
pub struct Running {
    args: Vec<String>,
    child: std::process::Child,
    started: Instant,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
    stdin_writer: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process (at most [`COMMAND_TIMEOUT`], then kills it and fails).
    pub fn wait(mut self) -> Out {
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                break status;
            }
            if self.started.elapsed() > COMMAND_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("retentiond {} did not finish within {COMMAND_TIMEOUT:?}", self.args.join(" "));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        if let Some(writer) = self.stdin_writer {
            let _ = writer.join();
        }
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            -(status.signal().unwrap_or(0))
        });
        Out { args: self.args, code, stdout, stderr, elapsed }
    }
}

// ---------------------------------------------------------------------------
// The test environment
// ---------------------------------------------------------------------------

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A fresh store of one backend, plus a scratch directory, for one test.
pub struct TestEnv {
    pub backend: Backend,
    /// The `database.url` the binary is given.
    pub url: String,
    name: String,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    pool: OnceLock<Pool>,
    /// PostgreSQL: the admin URL and the name of the database to drop.
    pg_admin: Option<(String, String)>,
    file_counter: AtomicU64,
}

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);
static PG_AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// The shared server's admin URL. Without an `sslmode` of its own it gets
/// `sslmode=disable`: the suite reaches the shared server in plain text, as
/// it did before TLS was built in, because with sqlx 0.9.0 a TLS connection
/// takes about 90 ms longer to open (no TCP_NODELAY: two delayed-ACK stalls
/// in the handshake, upstream issue 4335), which would shift the moments
/// the timing-calibrated tests aim at (tests/crash.rs). TLS itself is
/// tested by tests/tls.rs against servers of its own.
pub fn postgres_admin_url() -> String {
    let url = std::env::var("RETENTIOND_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let mut parsed = url::Url::parse(&url).expect("RETENTIOND_TEST_POSTGRES_URL is a URL");
    if !parsed.query_pairs().any(|(name, _)| name == "sslmode") {
        parsed.query_pairs_mut().append_pair("sslmode", "disable");
    }
    parsed.to_string()
}

async fn admin_pool(admin_url: &str) -> Result<PgPool, String> {
    admin_pool_within(admin_url, Duration::from_secs(10)).await
}

async fn admin_pool_within(admin_url: &str, timeout: Duration) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect(admin_url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", redact(admin_url)))
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl TestEnv {
    /// `retentiond run` on this store: JSON logs, sweeps on `cron` (not at
    /// start), HTTP on 127.0.0.1:`port`, a 5 s grace. Later `.env(…)` calls
    /// override these.
    pub fn daemon_cmd(&self, port: u16, cron: &str) -> Invocation {
        self.cmd(&["run"])
            .env("RETENTIOND__LOG__FORMAT", "json")
            .env("RETENTIOND__SCHEDULE__CRON", cron)
            .env("RETENTIOND__SCHEDULE__RUN_ON_START", "false")
            .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
            .env("RETENTIOND__SHUTDOWN__GRACE", "5s")
    }

    /// A fresh environment, or `None` when the PostgreSQL variant is skipped.
    pub fn new(backend: Backend, test_name: &str) -> Option<TestEnv> {
        let dir = tempfile::Builder::new().prefix("retentiond-test-").tempdir().expect("temp dir");
        let rt = runtime();
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("test.db");
                let url = format!("sqlite://{}", path.display());
                Some(TestEnv {
                    backend,
                    url,
                    name: test_name.to_string(),
                    dir,
                    rt,
                    pool: OnceLock::new(),
                    pg_admin: None,
                    file_counter: AtomicU64::new(0),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let available = PG_AVAILABLE
                    .get_or_init(|| {
                        runtime().block_on(async {
                            let pool = admin_pool_within(&admin_url, Duration::from_secs(3)).await?;
                            sqlx::query("SELECT 1").execute(&pool).await.map_err(|e| e.to_string())?;
                            pool.close().await;
                            Ok(())
                        })
                    })
                    .clone();
                if let Err(reason) = available {
                    if require::Requirement::Postgres.is_required() {
                        panic!(
                            "PostgreSQL test {test_name}: PostgreSQL is required (RETENTIOND_TEST_REQUIRE_POSTGRES=1) but unreachable: {reason}"
                        );
                    }
                    eprintln!("skipping PostgreSQL test {test_name}: {reason}");
                    return None;
                }
                let db_name = format!(
                    "rtd_test_{}_{}_{:08x}",
                    std::process::id(),
                    DB_COUNTER.fetch_add(1, Ordering::Relaxed),
                    fastrand::u32(..)
                );
                rt.block_on(async {
                    let pool = admin_pool(&admin_url).await.unwrap_or_else(|e| panic!("{e}"));
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db_name}\"")))
                        .execute(&pool)
                        .await
                        .unwrap_or_else(|e| panic!("CREATE DATABASE {db_name}: {e}"));
                    pool.close().await;
                });
                let mut url = url::Url::parse(&admin_url).expect("RETENTIOND_TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{db_name}"));
                Some(TestEnv {
                    backend,
                    url: url.to_string(),
                    name: test_name.to_string(),
                    dir,
                    rt,
                    pool: OnceLock::new(),
                    pg_admin: Some((admin_url, db_name)),
                    file_counter: AtomicU64::new(0),
                })
            }
        }
    }

    /// Another fresh, independent store of the same backend.
    pub fn sibling(&self) -> TestEnv {
        TestEnv::new(self.backend, &self.name).expect("the backend was available a moment ago")
    }

    /// `sqlite` on SQLite, `postgres` on PostgreSQL.
    pub fn pick<T>(&self, sqlite: T, postgres: T) -> T {
        match self.backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }

    /// The scratch directory of this test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to a new file in the scratch directory.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("{n:03}-{name}"));
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    // --- running the binary -------------------------------------------------

    /// The binary with this store's URL, run in the scratch directory.
    pub fn cmd<S: AsRef<str>>(&self, args: &[S]) -> Invocation {
        Invocation::new(args).env("RETENTIOND__DATABASE__URL", &self.url).cwd(self.dir.path())
    }

    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Out {
        self.cmd(args).run()
    }

    pub fn run_env<S: AsRef<str>>(&self, args: &[S], env: &[(&str, &str)]) -> Out {
        self.cmd(args).envs(env).run()
    }

    /// Runs with `--output json` appended (so `args` must not contain `--`),
    /// asserts exit 0 and parses stdout.
    #[track_caller]
    pub fn json<S: AsRef<str>>(&self, args: &[S]) -> Value {
        self.json_env(args, &[])
    }

    #[track_caller]
    pub fn json_env<S: AsRef<str>>(&self, args: &[S], env: &[(&str, &str)]) -> Value {
        let mut all: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        all.extend(["--output".to_string(), "json".to_string()]);
        let out = self.run_env(&all, env);
        out.expect_code(0);
        out.json()
    }

    /// `retentiond migrate`, asserting success.
    #[track_caller]
    pub fn migrate(&self) {
        self.run(&["migrate"]).expect_code(0);
    }

    /// Writes `jobs` as JSON Lines and runs `jobs import FILE --output json`.
    pub fn import(&self, jobs: &[Value]) -> Out {
        let lines: Vec<String> = jobs.iter().map(|j| serde_json::to_string(j).expect("serialize job")).collect();
        self.import_lines(&lines)
    }

    /// Imports raw lines (for malformed input).
    pub fn import_lines<S: AsRef<str>>(&self, lines: &[S]) -> Out {
        let mut text = String::new();
        for line in lines {
            text.push_str(line.as_ref());
            text.push('\n');
        }
        let path = self.write_file("jobs.jsonl", &text);
        self.run(&["jobs", "import", path.to_str().expect("utf-8 path"), "--output", "json"])
    }

    /// Imports `jobs`, asserting exit 0 and `{"imported": N}`.
    #[track_caller]
    pub fn import_ok(&self, jobs: &[Value]) {
        let out = self.import(jobs);
        out.expect_code(0);
        assert_eq!(out.json()["imported"], json!(jobs.len()), "{}", out.describe());
    }

    /// `jobs show NAME` as JSON.
    #[track_caller]
    pub fn show(&self, name: &str) -> Value {
        self.json(&["jobs", "show", name])
    }

    /// Names of all jobs in the store (`jobs list --limit 0`), in creation order.
    #[track_caller]
    pub fn job_names(&self) -> Vec<String> {
        names(&self.json(&["jobs", "list", "--limit", "0"]))
    }

    /// Whether the store has a job of this name (by SQL).
    pub fn job_exists(&self, name: &str) -> bool {
        self.count(&format!("jobs WHERE name = {}", quote(name))) == 1
    }

    // --- direct SQL ---------------------------------------------------------

    fn pool(&self) -> &Pool {
        self.pool.get_or_init(|| {
            self.rt.block_on(async {
                match self.backend {
                    Backend::Sqlite => {
                        let options = SqliteConnectOptions::from_str(&self.url)
                            .expect("sqlite URL")
                            .create_if_missing(false)
                            .busy_timeout(Duration::from_secs(30));
                        let pool = SqlitePoolOptions::new()
                            .max_connections(1)
                            .connect_with(options)
                            .await
                            .unwrap_or_else(|e| panic!("test connection to {}: {e}", self.url));
                        Pool::Sqlite(pool)
                    }
                    Backend::Postgres => {
                        let pool = PgPoolOptions::new()
                            .max_connections(1)
                            .connect(&self.url)
                            .await
                            .unwrap_or_else(|e| panic!("test connection to {}: {e}", self.url));
                        Pool::Postgres(pool)
                    }
                }
            })
        })
    }

    /// Runs one or more statements (no results), e.g. to install a trigger.
    #[track_caller]
    pub fn execute(&self, sql: &str) {
        self.try_execute(sql).unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }

    /// Runs one or more statements that may be refused; the error's text if so.
    pub fn try_execute(&self, sql: &str) -> Result<(), String> {
        let pool = self.pool();
        self.rt
            .block_on(async {
                match pool {
                    Pool::Sqlite(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map(|_| ()),
                    Pool::Postgres(p) => {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map(|_| ())
                    }
                }
            })
            .map_err(|error| error.to_string())
    }

    /// All rows of a query, each column as JSON (integers, floats, strings,
    /// booleans; PostgreSQL timestamps as RFC 3339 strings; NULL as null).
    #[track_caller]
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        let pool = self.pool();
        let result = self.rt.block_on(async {
            match pool {
                Pool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(sqlite_row_values).collect::<Vec<_>>()),
                Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(pg_row_values).collect::<Vec<_>>()),
            }
        });
        result.unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// Rows as maps column name → value.
    #[track_caller]
    pub fn records(&self, sql: &str) -> Vec<BTreeMap<String, Value>> {
        let pool = self.pool();
        let result = self.rt.block_on(async {
            match pool {
                Pool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(p).await.map(|rows| {
                    rows.iter()
                        .map(|r| {
                            let names = r.columns().iter().map(|c| c.name().to_string());
                            names.zip(sqlite_row_values(r)).collect()
                        })
                        .collect::<Vec<_>>()
                }),
                Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(p).await.map(|rows| {
                    rows.iter()
                        .map(|r| {
                            let names = r.columns().iter().map(|c| c.name().to_string());
                            names.zip(pg_row_values(r)).collect()
                        })
                        .collect::<Vec<_>>()
                }),
            }
        });
        result.unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// The first column of the first row as an integer.
    #[track_caller]
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.rows(sql);
        let value = rows.first().and_then(|r| r.first()).unwrap_or_else(|| panic!("no row from: {sql}"));
        value.as_i64().unwrap_or_else(|| panic!("not an integer: {value} from: {sql}"))
    }

    /// `SELECT count(*) FROM <from>`, e.g. `count("jobs WHERE state = 'Closed'")`.
    #[track_caller]
    pub fn count(&self, from: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {from}"))
    }

    /// The first column of every row, as strings.
    #[track_caller]
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .into_iter()
            .map(|r| match r.into_iter().next() {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect()
    }

    /// Every row of `table`, each as one string, in primary key order.
    #[track_caller]
    pub fn dump(&self, table: &str) -> Vec<String> {
        self.rows(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .into_iter()
            .map(|r| Value::Array(r).to_string())
            .collect()
    }

    /// [`dump`](Self::dump) of all four tables.
    #[track_caller]
    pub fn dump_all(&self) -> BTreeMap<&'static str, Vec<String>> {
        TABLES.iter().map(|t| (*t, self.dump(t))).collect()
    }

    /// The audit rows (as records) of one job name.
    #[track_caller]
    pub fn audit_rows(&self, job_name: &str) -> Vec<BTreeMap<String, Value>> {
        self.records(&format!("SELECT * FROM retention_audit WHERE job_name = {} ORDER BY id", quote(job_name)))
    }

    /// Whether a stored boolean column value is true (SQLite 0/1, PostgreSQL bool).
    pub fn truthy(value: &Value) -> bool {
        match value {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64() != Some(0),
            other => panic!("not a boolean: {other}"),
        }
    }

    /// An SQL expression for "now minus `secs` seconds" in this backend's timestamp format.
    pub fn sql_seconds_ago(&self, secs: i64) -> String {
        match self.backend {
            Backend::Sqlite => format!("((CAST(strftime('%s','now') AS INTEGER) - {secs}) * 1000000)"),
            Backend::Postgres => format!("(now() - interval '{secs} seconds')"),
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            self.rt.block_on(async {
                match pool {
                    Pool::Sqlite(p) => p.close().await,
                    Pool::Postgres(p) => p.close().await,
                }
            });
        }
        if let Some((admin_url, db_name)) = self.pg_admin.take() {
            let result = self.rt.block_on(async {
                let pool = admin_pool(&admin_url).await?;
                let r = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)")))
                    .execute(&pool)
                    .await
                    .map_err(|e| e.to_string());
                pool.close().await;
                r.map(|_| ())
            });
            if let Err(e) = result {
                eprintln!("warning: could not drop test database {db_name}: {e}");
            }
        }
    }
}

fn sqlite_row_values(row: &SqliteRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i).expect("column");
            if raw.is_null() {
                return Value::Null;
            }
            let type_name = raw.type_info().name().to_ascii_uppercase();
            match type_name.as_str() {
                "INTEGER" | "BOOLEAN" | "INT" | "BIGINT" => json!(row.try_get_unchecked::<i64, _>(i).expect("integer")),
                "REAL" => json!(row.try_get_unchecked::<f64, _>(i).expect("real")),
                "BLOB" => {
                    let bytes: Vec<u8> = row.try_get_unchecked(i).expect("blob");
                    json!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
                }
                _ => json!(row.try_get_unchecked::<String, _>(i).expect("text")),
            }
        })
        .collect()
}

fn pg_row_values(row: &PgRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i).expect("column");
            if raw.is_null() {
                return Value::Null;
            }
            let type_name = raw.type_info().name().to_ascii_uppercase();
            match type_name.as_str() {
                "INT8" => json!(row.try_get::<i64, _>(i).expect("int8")),
                "INT4" => json!(row.try_get::<i32, _>(i).expect("int4")),
                "INT2" => json!(row.try_get::<i16, _>(i).expect("int2")),
                "BOOL" => json!(row.try_get::<bool, _>(i).expect("bool")),
                "FLOAT8" => json!(row.try_get::<f64, _>(i).expect("float8")),
                "FLOAT4" => json!(row.try_get::<f32, _>(i).expect("float4")),
                "TIMESTAMPTZ" => json!(ts(row.try_get::<DateTime<Utc>, _>(i).expect("timestamptz"))),
                "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => json!(row.try_get::<String, _>(i).expect("text")),
                "JSON" | "JSONB" => row.try_get::<Value, _>(i).expect("json"),
                other => panic!("harness cannot decode PostgreSQL type {other} (cast it to text in the query)"),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------

/// SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// RFC 3339 UTC with microseconds, the precision both stores keep.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 timestamp from JSON output.
#[track_caller]
pub fn parse_ts(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp string: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("not RFC 3339: {s}: {e}")).to_utc()
}

/// Now, truncated to whole seconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// `days` days before now (whole seconds).
pub fn days_ago(days: i64) -> DateTime<Utc> {
    now() - chrono::Duration::days(days)
}

/// A time zone without daylight saving and half an hour off UTC, so that a
/// window read in UTC instead would lie 5 h 30 min off.
pub const WINDOW_ZONE: &str = "Asia/Kolkata";

/// A `schedule.window` from `start` to `end` (whole seconds) on the wall
/// clock of [`WINDOW_ZONE`]: tests place windows around the current time
/// instead of waiting for one.
pub fn window_between(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let zone: chrono_tz::Tz = WINDOW_ZONE.parse().expect("a zone");
    let wall = |at: DateTime<Utc>| at.with_timezone(&zone).format("%H:%M:%S").to_string();
    format!("{}-{}", wall(start), wall(end))
}

/// A job left in `Creating` (an Export) whose last update was `idle_days` ago.
pub fn creating_job(name: &str, idle_days: i64) -> Value {
    let updated = days_ago(idle_days);
    json!({
        "name": name,
        "job_type": "Export",
        "state": "Creating",
        "created_at": ts(updated - chrono::Duration::days(3)),
        "updated_at": ts(updated),
        "state_changed_at": ts(updated - chrono::Duration::days(3)),
    })
}

/// A job for `jobs import`: type Import, created 10 days before it entered
/// `state` at `changed_at`, last updated then. Adjust fields with [`set`].
pub fn job(name: &str, state: &str, changed_at: DateTime<Utc>) -> Value {
    json!({
        "name": name,
        "job_type": "Import",
        "state": state,
        "created_at": ts(changed_at - chrono::Duration::days(10)),
        "updated_at": ts(changed_at),
        "state_changed_at": ts(changed_at),
    })
}

/// `value` with `key` set.
pub fn set(mut value: Value, key: &str, v: Value) -> Value {
    value[key] = v;
    value
}

/// `n` drives `<prefix>-d<i>` in state `state` with some bytes.
pub fn drives(prefix: &str, n: usize, state: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"drive_id": format!("{prefix}-d{i}"), "state": state, "bytes": 1000 * (i as i64 + 1)}))
            .collect(),
    )
}

/// The `name`s of a JSON array of jobs.
#[track_caller]
pub fn names(jobs: &Value) -> Vec<String> {
    jobs.as_array()
        .unwrap_or_else(|| panic!("not an array: {jobs}"))
        .iter()
        .map(|j| j["name"].as_str().unwrap_or_else(|| panic!("job without name: {j}")).to_string())
        .collect()
}

/// The `job_name`s of a JSON array of audit entries.
#[track_caller]
pub fn audit_names(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {entries}"))
        .iter()
        .map(|e| e["job_name"].as_str().unwrap_or_else(|| panic!("entry without job_name: {e}")).to_string())
        .collect()
}

/// The `jobs` list of a dry-run summary.
#[track_caller]
pub fn dry_run_names(summary: &Value) -> Vec<String> {
    summary["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("dry-run summary without a jobs array: {summary}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_else(|| panic!("job name not a string: {n}")).to_string())
        .collect()
}

/// Sorted copy, for comparisons where order does not matter.
pub fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The host name as the binary records it.
pub fn hostname() -> String {
    whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".into())
}

/// Whether `s` contains `needle`, ignoring ASCII case.
pub fn contains_ci(s: &str, needle: &str) -> bool {
    s.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

/// Helper for `OsStr` → `&str` in paths.
pub fn path_str(p: &Path) -> &str {
    p.as_os_str().to_str().unwrap_or_else(|| panic!("non UTF-8 path {:?}", OsStr::new(p)))
}

// ---------------------------------------------------------------------------
// The daemon (`retentiond run`): a guarded process with live logs, HTTP,
// free ports, a TCP proxy, a NOTIFY_SOCKET reader, signals, polling
// ---------------------------------------------------------------------------

use std::io::BufRead;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Polls `condition` every 50 ms until it holds (`true`) or `timeout` passes (`false`).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends signal `name` (`TERM`, `HUP`, `KILL`, …) to `pid` with kill(1);
/// whether kill succeeded.
pub fn send_signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"))
        .success()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// An HTTP response: status code, headers (names lowercased) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET path HTTP/1.1` with `Connection: close` to 127.0.0.1:`port`;
/// an error if nothing answers (within a few seconds) or the answer is not HTTP.
pub fn http_get(port: u16, path: &str) -> std::io::Result<HttpResponse> {
    http_request(port, "GET", path, &[], "")
}

/// `METHOD path HTTP/1.1` with `headers`, `Connection: close` and `body`
/// (with its length, unless empty) to 127.0.0.1:`port`.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpResponse> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    if !body.is_empty() {
        request += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    }
    write!(stream, "{request}\r\n{body}")?;
    let raw = read_response(&mut stream)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| invalid("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
    }
    Ok(HttpResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// The bytes of one response: up to its `Content-Length` when it gives one
/// (a server may keep the connection open despite `Connection: close`),
/// else up to the end of the stream.
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length: Option<usize> =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok());
            if let Some(length) = length {
                while raw.len() < split + 4 + length {
                    let n = stream.read(&mut buffer)?;
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&buffer[..n]);
                }
                return Ok(raw);
            }
            stream.read_to_end(&mut raw)?;
            return Ok(raw);
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buffer[..n]);
    }
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A parsed Prometheus text exposition.
pub struct Metrics {
    pub text: String,
    pub scrape: prometheus_parse::Scrape,
}

impl Metrics {
    #[track_caller]
    pub fn parse(text: &str) -> Metrics {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape =
            prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("unparsable metrics ({e}):\n{text}"));
        Metrics { text: text.to_string(), scrape }
    }

    /// The samples named `name` whose labels are exactly `labels`.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&prometheus_parse::Sample> {
        self.scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .collect()
    }

    /// The value of the one counter, gauge or untyped sample `name{labels}`, if present.
    #[track_caller]
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.samples(name, labels);
        assert!(found.len() <= 1, "{name}{labels:?} appears {} times:\n{}", found.len(), self.text);
        found.first().map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}{labels:?} is not a single value: {other:?}"),
        })
    }

    /// Like [`get`](Self::get), failing when the sample is missing.
    #[track_caller]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{}", self.text))
    }

    /// The buckets of histogram `name` (without labels), if present.
    pub fn histogram(&self, name: &str) -> Option<Vec<prometheus_parse::HistogramCount>> {
        self.samples(name, &[]).into_iter().find_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets) => Some(buckets.clone()),
            _ => None,
        })
    }

    /// The `# TYPE` of `name` as written in the text, if any.
    pub fn type_of(&self, name: &str) -> Option<String> {
        let prefix = format!("# TYPE {name} ");
        self.text.lines().find_map(|l| l.strip_prefix(&prefix).map(|t| t.trim().to_string()))
    }
}

/// `GET /metrics` on `port`, parsed.
#[track_caller]
pub fn scrape(port: u16) -> Metrics {
    let response = http_get(port, "/metrics").unwrap_or_else(|e| panic!("GET /metrics on port {port}: {e}"));
    assert_eq!(response.status, 200, "GET /metrics: {response:?}");
    Metrics::parse(&response.body)
}

/// Whether `/readyz` on `port` answers `status`.
pub fn readyz_is(port: u16, status: u16) -> bool {
    http_get(port, "/readyz").is_ok_and(|r| r.status == status)
}

/// Waits until `/readyz` on `port` answers 200; fails at once if the daemon
/// exits, or after 30 s.
#[track_caller]
pub fn wait_ready(daemon: &Daemon, port: u16) {
    let ready = wait_until(Duration::from_secs(30), || !daemon.is_running() || readyz_is(port, 200));
    assert!(ready && daemon.is_running(), "the daemon did not become ready\n{}", daemon.describe());
}

/// The text of the last `max` bytes of `s` (at a character boundary).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A long-running `retentiond` (the daemon) whose stdout and stderr are
/// collected while it runs. Dropping it kills the process (SIGKILL) if it is
/// still running, so a failing test leaves no daemon behind.
pub struct Daemon {
    args: Vec<String>,
    child: Mutex<(std::process::Child, Option<std::process::ExitStatus>)>,
    pid: u32,
    started: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect_lines<R: Read + Send + 'static>(pipe: R, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            into.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

impl Invocation {
    /// Starts the process as a [`Daemon`]: a clean `RETENTIOND*` environment
    /// as with [`spawn`](Self::spawn), output readable while it runs.
    pub fn spawn_daemon(self) -> Daemon {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("stdout is piped"), stdout.clone()),
            collect_lines(child.stderr.take().expect("stderr is piped"), stderr.clone()),
        ];
        let pid = child.id();
        Daemon { args: self.args, child: Mutex::new((child, None)), pid, started, stdout, stderr, readers }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The JSON log lines on stderr so far (other lines are left out).
    pub fn log_lines(&self) -> Vec<Value> {
        self.stderr().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
    }

    /// How many JSON log lines so far have `fields.message == message`.
    pub fn logged(&self, message: &str) -> usize {
        self.log_lines().iter().filter(|l| l["fields"]["message"] == message).count()
    }

    /// The exit code if the process has ended (a signal `s` gives `-s`).
    pub fn exit_code(&self) -> Option<i32> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1.is_none() {
            guard.1 = guard.0.try_wait().expect("try_wait");
        }
        guard.1.map(exit_code_of)
    }

    pub fn is_running(&self) -> bool {
        self.exit_code().is_none()
    }

    /// Sends signal `name` (`TERM`, `HUP`, …), asserting that kill succeeded.
    #[track_caller]
    pub fn signal(&self, name: &str) {
        assert!(send_signal(self.pid, name), "kill -s {name} {} failed\n{}", self.pid, self.describe());
    }

    /// Waits at most `timeout` for the process to end and returns its
    /// outcome (elapsed counts from the start); fails (and kills it) if it
    /// is still running then.
    #[track_caller]
    pub fn wait_exit(mut self, timeout: Duration) -> Out {
        if !wait_until(timeout, || !self.is_running()) {
            panic!("the daemon did not exit within {timeout:?}\n{}", self.describe());
        }
        let code = self.exit_code().expect("exited");
        let elapsed = self.started.elapsed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Out {
            args: self.args.clone(),
            code,
            stdout: self.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            stderr: self.stderr(),
            elapsed,
        }
    }

    /// The command, its state and the tail of its stderr, for failure messages.
    pub fn describe(&self) -> String {
        let state = match self.exit_code() {
            None => "running".to_string(),
            Some(code) => format!("exited with {code}"),
        };
        let stderr = self.stderr();
        format!(
            "daemon: retentiond {} (pid {}, {state}, {:?} since start)\n--- stderr (tail) ---\n{}",
            self.args.join(" "),
            self.pid,
            self.started.elapsed(),
            tail(&stderr, 12_000)
        )
    }
}

fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -(status.signal().unwrap_or(0))
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1.is_none() && guard.0.try_wait().ok().flatten().is_none() {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
        }
    }
}

impl TestEnv {
    /// This store's URL with its port replaced (PostgreSQL through a [`TcpProxy`]).
    pub fn url_with_port(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).expect("database URL");
        url.set_port(Some(port)).expect("URL takes a port");
        url.to_string()
    }

    /// The address of the PostgreSQL server of this store.
    pub fn postgres_address(&self) -> SocketAddr {
        let url = url::Url::parse(&self.url).expect("database URL");
        let host = url.host_str().expect("URL with a host");
        (host, url.port().unwrap_or(5432)).to_socket_addrs().expect("resolve host").next().expect("an address")
    }

    /// SQL for a timestamp column as integer microseconds since the epoch.
    pub fn sql_micros(&self, column: &str) -> String {
        match self.backend {
            Backend::Sqlite => column.to_string(),
            Backend::Postgres => format!("CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"),
        }
    }
}

/// A TCP proxy on 127.0.0.1 to `target`, to cut the database off and bring
/// it back. [`stop`](Self::stop) closes the listener and every forwarded
/// connection (refused from then on); [`start`](Self::start) listens on the
/// same port again; [`freeze`](Self::freeze) keeps every connection open but
/// forwards nothing (a network that drops packets) until [`thaw`](Self::thaw).
pub struct TcpProxy {
    port: u16,
    target: SocketAddr,
    frozen: Arc<AtomicBool>,
    running: Option<ProxyRun>,
}

struct ProxyRun {
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: std::thread::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port and forwards to `target`.
    pub fn new(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy address").port();
        let mut proxy = TcpProxy { port, target, frozen: Arc::new(AtomicBool::new(false)), running: None };
        proxy.serve(listener);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Listens again on the same port (retrying for a few seconds while it is busy).
    #[track_caller]
    pub fn start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("proxy: port {} not free yet ({e}); retrying", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("proxy: cannot listen on port {} again: {e}", self.port),
            }
        };
        self.serve(listener);
    }

    /// Closes the listener and shuts down every forwarded connection, both ways.
    pub fn stop(&mut self) {
        if let Some(run) = self.running.take() {
            run.stop.store(true, Ordering::SeqCst);
            let _ = run.acceptor.join();
            for socket in run.sockets.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Stops forwarding: connections stay open (new ones are accepted) but no byte passes.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again what [`freeze`](Self::freeze) held back.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (target, frozen) = (self.target, self.frozen.clone());
        let acceptor = {
            let (stop, sockets) = (stop.clone(), sockets.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            if let Ok(clone) = client.try_clone() {
                                sockets.lock().unwrap_or_else(|e| e.into_inner()).push(clone);
                            }
                            let (stop, sockets, frozen) = (stop.clone(), sockets.clone(), frozen.clone());
                            std::thread::spawn(move || proxy_connection(client, target, &stop, &sockets, &frozen));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                // The listener is dropped here: new connections are refused.
            })
        };
        self.running = Some(ProxyRun { stop, sockets, acceptor });
    }
}

/// Holds `client` while frozen, then connects it to `target` and copies both ways.
fn proxy_connection(
    client: TcpStream,
    target: SocketAddr,
    stop: &Arc<AtomicBool>,
    sockets: &Arc<Mutex<Vec<TcpStream>>>,
    frozen: &Arc<AtomicBool>,
) {
    while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if stop.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut all = sockets.lock().unwrap_or_else(|e| e.into_inner());
        if stop.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        if let Ok(clone) = upstream.try_clone() {
            all.push(clone);
        }
    }
    let pairs = [
        (client.try_clone().expect("clone client"), upstream.try_clone().expect("clone upstream")),
        (upstream, client),
    ];
    for (from, to) in pairs {
        let (stop, frozen) = (stop.clone(), frozen.clone());
        std::thread::spawn(move || copy_until_closed(from, to, &stop, &frozen));
    }
}

fn copy_until_closed(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool, frozen: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.thaw();
        self.stop();
    }
}

/// A `NOTIFY_SOCKET` (a Unix datagram socket in `dir`) that collects what
/// the daemon tells systemd, in order of arrival.
pub struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (messages, stop) = (messages.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        messages.lock().unwrap_or_else(|e| e.into_inner()).push(text);
                    }
                }
            })
        };
        NotifySocket { path, messages, stop, reader: Some(reader) }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &str {
        path_str(&self.path)
    }

    /// Every datagram received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every `KEY=value` line received so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.messages().iter().flat_map(|m| m.lines().map(str::to_string).collect::<Vec<_>>()).collect()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
