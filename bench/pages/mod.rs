//! The status pages benchmark: how long each page of `retentiond run`
//! takes to answer on a store of a million jobs and a million audit rows,
//! on SQLite and on PostgreSQL.
//!
//! Per backend, [`run`] makes a new store, seeds its jobs with `retentiond
//! jobs seed` (every state, ages over a year, 1 % held) and its run records
//! and audit rows with one SQL statement each (a thousand rows per run),
//! settles it as a live store would be (SQLite: WAL checkpointed;
//! PostgreSQL: `VACUUM ANALYZE`, as autovacuum does), starts the daemon on
//! it, and times every page from the client: the request sent to the last
//! byte of the answer, over loopback. `main.rs` runs it from the command
//! line; the smoke test (`tests/pages_bench_smoke.rs`) includes this module
//! and runs it small.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, SqliteConnection};

use retentiond::store::Engine;

/// The binary Cargo built alongside the benchmark (or the smoke test).
const BIN: &str = env!("CARGO_BIN_EXE_retentiond");

/// Audit rows per seeded run record.
const ROWS_PER_RUN: u64 = 1_000;

/// What a page must stay under (docs/design.md, "Status pages").
pub const BUDGET: Duration = Duration::from_millis(100);

type Result<T> = std::result::Result<T, String>;

/// The benchmark's command line (`cargo bench --bench pages -- OPTIONS`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "pages",
    bin_name = "cargo bench --bench pages --",
    about = "Times the status pages of retentiond run on SQLite and PostgreSQL"
)]
pub struct Options {
    /// Which store(s) to measure: sqlite, postgres or both.
    #[arg(long, default_value = "both", value_parser = Engine::choose)]
    pub backend: Engines,

    /// Jobs in the store (`retentiond jobs seed`).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,

    /// Audit rows in the store, a thousand per run record.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_rows: u64,

    /// Timed requests per page (after two untimed ones).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,

    /// PostgreSQL URL of a role that may create databases.
    #[arg(long, env = "RETENTIOND_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,

    /// Also write the results as Markdown to this file.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

/// The engines `--backend` names (an alias, so that clap takes the list as one value).
pub type Engines = Vec<Engine>;

/// One page's timings, in the order taken.
#[derive(Debug, Clone)]
pub struct PageTimes {
    pub path: String,
    pub bytes: usize,
    pub times: Vec<Duration>,
}

impl PageTimes {
    fn sorted(&self) -> Vec<Duration> {
        let mut times = self.times.clone();
        times.sort();
        times
    }

    pub fn median(&self) -> Duration {
        let sorted = self.sorted();
        sorted[sorted.len() / 2]
    }

    pub fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }
}

/// A backend's results.
#[derive(Debug, Clone)]
pub struct BackendResult {
    pub backend: Engine,
    pub seed_seconds: f64,
    pub pages: Vec<PageTimes>,
}

/// Runs the benchmark for the chosen backends; prints and returns the results.
pub fn run(options: &Options) -> Result<Vec<BackendResult>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for &backend in &options.backend {
        let store = Store::create(backend, options, &runtime)?;
        let result = measure(&store, options, &runtime);
        store.remove(&runtime);
        let result = result?;
        print!("{}", text_table(&result, options));
        results.push(result);
    }
    if let Some(path) = &options.report {
        std::fs::write(path, markdown(&results, options))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(results)
}

/// A store made for the benchmark, removed at the end.
struct Store {
    backend: Engine,
    url: String,
    /// SQLite: the directory holding the file.
    dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin URL and the database's name.
    postgres: Option<(String, String)>,
}

impl Store {
    fn create(backend: Engine, options: &Options, runtime: &tokio::runtime::Runtime) -> Result<Store> {
        match backend {
            Engine::MariaDb => Err("the pages benchmark does not measure MariaDB yet".to_owned()),
            Engine::Sqlite => {
                let dir =
                    tempfile::Builder::new().prefix("retentiond-pages-bench-").tempdir().map_err(|e| e.to_string())?;
                let url = format!("sqlite://{}", dir.path().join("pages.db").display());
                Ok(Store { backend, url, dir: Some(dir), postgres: None })
            }
            Engine::Postgres => {
                let name = format!("retentiond_pages_bench_{}", std::process::id());
                runtime.block_on(async {
                    let mut admin = PgConnection::connect(&options.postgres_url).await.map_err(|e| e.to_string())?;
                    let create = format!("CREATE DATABASE {name}");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.map_err(|e| e.to_string())?;
                    admin.close().await.map_err(|e| e.to_string())
                })?;
                let mut url = url::Url::parse(&options.postgres_url).map_err(|e| e.to_string())?;
                url.set_path(&format!("/{name}"));
                Ok(Store {
                    backend,
                    url: url.to_string(),
                    dir: None,
                    postgres: Some((options.postgres_url.clone(), name)),
                })
            }
        }
    }

    fn remove(self, runtime: &tokio::runtime::Runtime) {
        if let Some((admin_url, name)) = &self.postgres {
            let dropped: Result<()> = runtime.block_on(async {
                let mut admin = PgConnection::connect(admin_url).await.map_err(|e| e.to_string())?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            });
            if let Err(error) = dropped {
                eprintln!("pages benchmark: could not drop database {name}: {error}");
            }
        }
        drop(self.dir);
    }

    /// `retentiond ARGS` on this store with a clean environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RETENTIOND") {
                command.env_remove(key);
            }
        }
        command
            .env("RETENTIOND_CONFIG", "")
            .env("RETENTIOND__DATABASE__URL", &self.url)
            .env("RETENTIOND__LOG__FORMAT", "json")
            .env("RETENTIOND__LOG__LEVEL", "warn");
        command
    }
}

/// Seeds the store, starts the daemon, times the pages, stops it.
fn measure(store: &Store, options: &Options, runtime: &tokio::runtime::Runtime) -> Result<BackendResult> {
    let seeding = Instant::now();
    let output = store
        .command(&["jobs", "seed", "--count", &options.jobs.to_string(), "--seed", "1", "--prefix", "seed"])
        .output()
        .map_err(|e| format!("cannot run retentiond jobs seed: {e}"))?;
    if !output.status.success() {
        return Err(format!("retentiond jobs seed failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    runtime.block_on(seed_audit_trail(store, options.audit_rows))?;
    let seed_seconds = seeding.elapsed().as_secs_f64();

    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let mut daemon = Daemon(
        store
            .command(&["run"])
            .env("RETENTIOND__METRICS__LISTEN", format!("127.0.0.1:{port}"))
            .env("RETENTIOND__SCHEDULE__RUN_ON_START", "false")
            // Never during the benchmark: at midnight on the 1st of January.
            .env("RETENTIOND__SCHEDULE__CRON", "0 0 0 1 1 *")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start retentiond run: {e}"))?,
    );
    wait_ready(&mut daemon, port)?;

    let runs = options.audit_rows.div_ceil(ROWS_PER_RUN);
    let middle_run = runs / 2 + 1;
    let middle_row = options.audit_rows / 2;
    let name = |n: u64| format!("gone-{n:07}");
    let mut paths = vec![
        "/".to_owned(),
        "/forecast".to_owned(),
        "/forecast?days=365".to_owned(),
        "/runs".to_owned(),
        format!("/runs?before={middle_run}"),
        format!("/runs/{middle_run}"),
        format!("/runs/{middle_run}?before={}", (middle_run - 1) * ROWS_PER_RUN + ROWS_PER_RUN / 2),
        "/audit".to_owned(),
        format!("/audit?before={middle_row}"),
        format!("/audit?job={}", name(middle_row)),
        format!("/audit?job={}&match=prefix", &name(middle_row)[..9]),
        "/audit?job=gone-&match=prefix".to_owned(),
        format!("/audit?job=gone-&match=prefix&after_job={}&after_id={middle_row}", name(middle_row)),
        format!("/audit?run={middle_run}"),
        "/holds".to_owned(),
    ];
    // The second page of the held jobs, as its link gives it.
    let holds = get(port, "/holds")?;
    if let Some(next) = next_link(&holds.1) {
        paths.push(next);
    }

    let mut pages = Vec::new();
    for path in paths {
        let mut times = Vec::new();
        let mut bytes = 0;
        for attempt in 0..options.requests + 2 {
            let started = Instant::now();
            let (status, body) = get(port, &path)?;
            let elapsed = started.elapsed();
            if status != 200 {
                return Err(format!("GET {path} answered {status}: {}", body.chars().take(500).collect::<String>()));
            }
            bytes = body.len();
            if attempt >= 2 {
                times.push(elapsed);
            }
        }
        pages.push(PageTimes { path, bytes, times });
    }
    daemon.stop();
    Ok(BackendResult { backend: store.backend, seed_seconds, pages })
}

/// Run records and their audit rows, as a million deletions would have left
/// them: job names `gone-NNNNNNN`, job ids far above the seeded jobs'.
async fn seed_audit_trail(store: &Store, rows: u64) -> Result<()> {
    let runs = rows.div_ceil(ROWS_PER_RUN);
    let error = |e: sqlx::Error| format!("seeding the audit trail: {e}");
    match store.backend {
        Engine::MariaDb => Err("the pages benchmark does not measure MariaDB yet".to_owned()),
        Engine::Sqlite => {
            let mut conn = SqliteConnection::connect(&store.url).await.map_err(error)?;
            let statements = format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {runs}) \
                 INSERT INTO retention_runs (trigger, status, started_at, finished_at, deleted_completed, \
                   deleted_closed, deleted_creating_idle, stopped_by, host, pid) \
                 SELECT 'schedule', 'succeeded', 1700000000000000 + i * 3600000000, \
                   1700000000000000 + i * 3600000000 + 2500000, {ROWS_PER_RUN} * 9 / 10, {ROWS_PER_RUN} / 10, 0, \
                   'done', 'bench', 1 FROM n; \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
                 INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
                   created_at, state_changed_at, deleted_at, deleted_by) \
                 SELECT (i - 1) / {ROWS_PER_RUN} + 1, 1000000000000 + i, printf('gone-%07d', i), \
                   CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, \
                   CASE i % 10 WHEN 0 THEN 'closed' ELSE 'completed' END, \
                   CASE i % 10 WHEN 0 THEN 'Closed' ELSE 'Completed' END, i % 13 = 0, \
                   1690000000000000 + i * 1000000, 1692000000000000 + i * 1000000, \
                   1700000000000000 + ((i - 1) / {ROWS_PER_RUN} + 1) * 3600000000 + 1000000, 'retentiond@bench' FROM n; \
                 PRAGMA wal_checkpoint(TRUNCATE);"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(statements)).execute(&mut conn).await.map_err(error)?;
            conn.close().await.map_err(error)
        }
        Engine::Postgres => {
            let mut conn = PgConnection::connect(&store.url).await.map_err(error)?;
            let statements = format!(
                "INSERT INTO retention_runs (trigger, status, started_at, finished_at, deleted_completed, \
                   deleted_closed, deleted_creating_idle, stopped_by, host, pid) \
                 SELECT 'schedule', 'succeeded', timestamptz '2023-11-14 22:13:20Z' + i * interval '1 hour', \
                   timestamptz '2023-11-14 22:13:22.5Z' + i * interval '1 hour', {ROWS_PER_RUN} * 9 / 10, \
                   {ROWS_PER_RUN} / 10, 0, 'done', 'bench', 1 FROM generate_series(1, {runs}) AS i; \
                 INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
                   created_at, state_changed_at, deleted_at, deleted_by) \
                 SELECT (i - 1) / {ROWS_PER_RUN} + 1, 1000000000000 + i, 'gone-' || lpad(i::text, 7, '0'), \
                   CASE i % 2 WHEN 0 THEN 'Import' ELSE 'Export' END, \
                   CASE i % 10 WHEN 0 THEN 'closed' ELSE 'completed' END, \
                   CASE i % 10 WHEN 0 THEN 'Closed' ELSE 'Completed' END, i % 13 = 0, \
                   timestamptz '2023-07-22 04:26:40Z' + i * interval '1 second', \
                   timestamptz '2023-08-14 07:33:20Z' + i * interval '1 second', \
                   timestamptz '2023-11-14 22:13:21Z' + ((i - 1) / {ROWS_PER_RUN} + 1) * interval '1 hour', \
                   'retentiond@bench' FROM generate_series(1, {rows}) AS i"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(statements)).execute(&mut conn).await.map_err(error)?;
            // Outside the statements' transaction, as autovacuum would.
            sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await.map_err(error)?;
            conn.close().await.map_err(error)
        }
    }
}

/// The daemon, killed if still running when dropped.
struct Daemon(Child);

impl Daemon {
    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-s", "TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_ready(daemon: &mut Daemon, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            return Err(format!("retentiond run exited at start: {status}"));
        }
        if get(port, "/readyz").is_ok_and(|(status, _)| status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("retentiond run was not ready within 60 s".into())
}

/// `GET path` on 127.0.0.1:`port`: the status and the body.
fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let failed = |e: std::io::Error| format!("GET {path}: {e}");
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))
        .map_err(failed)?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(failed)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").map_err(failed)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(failed)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("GET {path}: no end of headers"))?;
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok());
    Ok((status.ok_or_else(|| format!("GET {path}: bad status line"))?, body.to_owned()))
}

/// The "Next page" link of a page, unescaped.
fn next_link(body: &str) -> Option<String> {
    let end = body.find("\">Next page")?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&amp;", "&"))
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

fn verdict(page: &PageTimes) -> &'static str {
    if page.max() < BUDGET { "ok" } else { "OVER 100 ms" }
}

fn text_table(result: &BackendResult, options: &Options) -> String {
    let mut text = format!(
        "pages benchmark, {}: {} jobs, {} audit rows (seeded in {:.0} s); {} requests per page, ms\n",
        result.backend.title(),
        options.jobs,
        options.audit_rows,
        result.seed_seconds,
        options.requests
    );
    let _ = writeln!(text, "{:>8} {:>8} {:>9}  {:<10} page", "median", "max", "bytes", "verdict");
    for page in &result.pages {
        let _ = writeln!(
            text,
            "{:>8} {:>8} {:>9}  {:<10} {}",
            millis(page.median()),
            millis(page.max()),
            page.bytes,
            verdict(page),
            page.path
        );
    }
    text
}

fn markdown(results: &[BackendResult], options: &Options) -> String {
    let mut text = String::from(
        "# Status pages benchmark\n\n\
         Written by `cargo bench --bench pages -- --report docs/pages-benchmarks.md`. Each page of \
         `retentiond run` is timed from the client over loopback, from the request to the last byte of the \
         answer, after two untimed requests; the budget is 100 ms per page (`docs/design.md`, \"Status pages\").\n\n",
    );
    let _ = writeln!(
        text,
        "Store: {} jobs from `retentiond jobs seed --seed 1` (every state, ages over a year, 1 % held, about \
         30 % eligible at the default 90-day retentions, so the backlog counts are large), {} audit rows in \
         runs of 1,000 (names `gone-NNNNNNN`), settled as a live store is (SQLite: WAL checkpointed; \
         PostgreSQL: `VACUUM ANALYZE`). {} timed requests per page. Machine: {} cores.\n",
        options.jobs,
        options.audit_rows,
        options.requests,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for result in results {
        let _ = writeln!(text, "## {}\n", result.backend.title());
        let _ = writeln!(text, "| page | median ms | max ms | bytes | under 100 ms |\n|---|---:|---:|---:|---|");
        for page in &result.pages {
            let _ = writeln!(
                text,
                "| `{}` | {} | {} | {} | {} |",
                page.path,
                millis(page.median()),
                millis(page.max()),
                page.bytes,
                if page.max() < BUDGET { "yes" } else { "**no**" }
            );
        }
        text.push('\n');
    }
    text
}
