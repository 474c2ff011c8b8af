//! [`TestEnv`]: a fresh store of one engine and a scratch directory for one
//! test, and the binary run against them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::db::Pool;
use super::engines::{Capability, Engine};
use super::run::{Invocation, Out};
use super::{mariadb_db, pg_db};
use super::{names, quote};

/// A fresh store of one engine, plus a scratch directory, for one test.
pub struct TestEnv {
    pub engine: Engine,
    /// The `database.url` the binary is given.
    pub url: String,
    name: String,
    dir: tempfile::TempDir,
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) pool: OnceLock<Pool>,
    /// A server engine's database, dropped after the pool is closed.
    database: Option<Database>,
    file_counter: AtomicU64,
}

/// A server engine's database of the test's own.
enum Database {
    Postgres(pg_db::TestDb),
    MariaDb(mariadb_db::TestDb),
}

/// Runs `scenario` on a fresh store of `engine`. On an engine without every
/// capability in `needs` it says so and runs nothing; a server engine that
/// cannot be reached is skipped ([`TestEnv::new`]).
pub fn run_scenario(engine: Engine, module: &str, name: &str, needs: &[Capability], scenario: fn(&TestEnv)) {
    let file = module.split("::").next().unwrap_or(module);
    if engine == Engine::MariaDb && !super::engines::MARIADB_SCENARIO_FILES.contains(&file) {
        eprintln!("{name} does not run on {engine} yet: tests/{file}.rs is not ported to it (tests/common/engines.rs)");
        return;
    }
    if let Some(missing) = needs.iter().find(|need| !need.on(engine)) {
        eprintln!("{name} does not run on {engine}: it needs {missing:?}");
        return;
    }
    if let Some(env) = TestEnv::new(engine, name) {
        scenario(&env);
    }
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
    /// A fresh environment, or `None` when the engine's server cannot be
    /// reached (and is not required).
    pub fn new(engine: Engine, test_name: &str) -> Option<TestEnv> {
        let dir = tempfile::Builder::new().prefix("retentiond-test-").tempdir().expect("temp dir");
        let (url, database) = match engine {
            Engine::Sqlite => (format!("sqlite://{}", dir.path().join("test.db").display()), None),
            Engine::Postgres => {
                let database = pg_db::TestDb::create(test_name)?;
                (database.url.clone(), Some(Database::Postgres(database)))
            }
            Engine::MariaDb => {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let database = runtime.block_on(mariadb_db::TestDb::create(test_name))?;
                (database.url.replacen("mysql:", "mariadb:", 1), Some(Database::MariaDb(database)))
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let name = test_name.to_owned();
        Some(TestEnv { engine, url, name, dir, rt, pool: OnceLock::new(), database, file_counter: AtomicU64::new(0) })
    }

    /// Another fresh, independent store of the same engine.
    pub fn sibling(&self) -> TestEnv {
        TestEnv::new(self.engine, &self.name).expect("the engine was available a moment ago")
    }

    /// Whether this test's engine has `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        capability.on(self.engine)
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
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            self.rt.block_on(pool.close());
        }
        drop(self.database.take());
    }
}
