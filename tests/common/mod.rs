//! Test harness: runs the real `retentiond` binary against a fresh store.
//!
//! * SQLite: a new database file in a [`tempfile::TempDir`] per test.
//! * PostgreSQL: a new database per test, created through the admin URL in
//!   `RETENTIOND_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`) and dropped again when the
//!   [`TestEnv`] is dropped. When PostgreSQL is unreachable the PostgreSQL
//!   variant of a test prints `skipping PostgreSQL test …` and passes, unless
//!   `RETENTIOND_TEST_REQUIRE_POSTGRES=1`, in which case it fails.
//!
//! Scenarios are written once and instantiated for both backends with
//! [`both_backends!`]; a test `fn foo` becomes `foo::sqlite` and `foo::postgres`.

#![allow(dead_code)]

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
}

impl Invocation {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Invocation {
        Invocation {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
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

    /// Starts the process; the caller waits with [`Running::wait`].
    pub fn spawn(self) -> Running {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args);
        // The child sees only the configuration a test gives it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().to_ascii_uppercase().starts_with("RETENTIOND") {
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

pub fn postgres_admin_url() -> String {
    std::env::var("RETENTIOND_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn postgres_required() -> bool {
    std::env::var("RETENTIOND_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
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
                    if postgres_required() {
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
        let pool = self.pool();
        let result = self.rt.block_on(async {
            match pool {
                Pool::Sqlite(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map(|_| ()),
                Pool::Postgres(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map(|_| ()),
            }
        });
        result.unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
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
