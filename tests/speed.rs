//! Issue 4's mechanisms, as behaviour: batches sized to the time budget, a
//! batch that hits the statement timeout retried smaller, and SQLite's freed
//! pages handed back after a purge. How fast and how gentle a sweep is comes
//! from the benchmark (`cargo bench --bench purge`), not from these tests.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

/// Debug logging of the sweep only, as JSON lines.
const SWEEP_DEBUG: [&str; 4] = ["--log-format", "json", "--log-level", "warn,retentiond::sweep=debug"];

/// The `jobs` field of every "batch committed" line, in order.
fn committed_batches(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "batch committed")
        .map(|event| event["fields"]["jobs"].as_u64().expect("jobs is a count"))
        .collect()
}

fn seed(env: &TestEnv, count: u32) {
    env.run(&["jobs", "seed", "--count", &count.to_string(), "--seed", "4", "--prefix", "speed"]).expect_code(0);
}

fn eligible(env: &TestEnv) -> i64 {
    env.scalar(&format!(
        "SELECT count(*) FROM jobs WHERE hold_reason IS NULL AND state IN ('Completed', 'Closed') AND state_changed_at <= {}",
        env.sql_seconds_ago(90 * 86_400)
    ))
}

both_backends! {
    /// `batch_size = auto` (the default): the first batch takes 1,000 jobs,
    /// the next ones are sized from its rate; every job is deleted once.
    fn auto_batches_start_at_1000_and_follow_the_budget(env: &TestEnv) {
        seed(env, 20_000);
        let to_delete = eligible(env);
        assert!(to_delete > 4000, "the seed has a backlog: {to_delete}");
        let mut args = SWEEP_DEBUG.to_vec();
        args.extend(["purge", "--output", "json"]);
        let out = env.run(&args);
        out.expect_code(0);
        let batches = committed_batches(&out.stderr);
        assert_eq!(batches.first(), Some(&1000), "{batches:?}");
        assert!(batches.iter().any(|&jobs| jobs != 1000), "the size adapts: {batches:?}");
        assert_eq!(batches.iter().sum::<u64>() as i64, to_delete);
        assert_eq!(env.count("retention_audit") , to_delete);
        assert_eq!(eligible(env), 0);
    }
}

both_backends! {
    /// A fixed `--batch-size` stays fixed.
    fn a_fixed_batch_size_is_kept(env: &TestEnv) {
        seed(env, 3000);
        let to_delete = eligible(env) as u64;
        let mut args = SWEEP_DEBUG.to_vec();
        args.extend(["purge", "--batch-size", "100", "--output", "json"]);
        let out = env.run(&args);
        out.expect_code(0);
        let batches = committed_batches(&out.stderr);
        assert!(batches.iter().rev().skip(1).all(|&jobs| jobs == 100), "{batches:?}");
        assert_eq!(batches.iter().sum::<u64>(), to_delete);
    }
}

postgres_only! {
    /// A batch cancelled at `database.statement_timeout` rolls back whole and
    /// is retried with a quarter of the jobs; the sweep then succeeds. A
    /// trigger makes the audit insert sleep past the timeout twice (a
    /// sequence counts the attempts, as it is not rolled back).
    fn a_statement_timeout_retries_the_batch_smaller(env: &TestEnv) {
        seed(env, 6000);
        let to_delete = eligible(env);
        env.execute(
            "CREATE SEQUENCE slow_attempts; \
             CREATE FUNCTION slow_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF nextval('slow_attempts') <= 2 THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$; \
             CREATE TRIGGER slow_audit BEFORE INSERT ON retention_audit FOR EACH STATEMENT EXECUTE FUNCTION slow_audit();",
        );
        let mut args = SWEEP_DEBUG.to_vec();
        args.extend(["purge", "--output", "json"]);
        let out = env.run_env(&args, &[("RETENTIOND__DATABASE__STATEMENT_TIMEOUT", "1s")]);
        out.expect_code(0);
        let retries = out.stderr.lines().filter(|line| line.contains("batch timed out; retrying smaller")).count();
        assert_eq!(retries, 2, "{}", out.stderr);
        let batches = committed_batches(&out.stderr);
        assert_eq!(batches.first(), Some(&62), "1000, then 250, then 62 jobs: {batches:?}");
        assert_eq!(batches.iter().sum::<u64>() as i64, to_delete);
        assert_eq!(env.count("retention_audit"), to_delete);
        assert_eq!(eligible(env), 0);
    }
}

/// A new SQLite file uses `auto_vacuum = INCREMENTAL`; after a purge its free
/// pages are handed back (the file shrinks) and the WAL is truncated.
#[test]
fn sqlite_hands_the_freed_pages_back_after_a_purge() {
    let env = TestEnv::new(Backend::Sqlite, "sqlite_hands_the_freed_pages_back_after_a_purge").expect("SQLite");
    seed(&env, 20_000);
    assert_eq!(env.scalar("SELECT auto_vacuum FROM pragma_auto_vacuum"), 2, "INCREMENTAL");
    let pages_before = env.scalar("SELECT page_count FROM pragma_page_count");
    let to_delete = eligible(&env);
    let summary = env.json(&["purge"]);
    assert_eq!(summary["total"].as_i64(), Some(to_delete));
    assert_eq!(env.scalar("SELECT freelist_count FROM pragma_freelist_count"), 0);
    let pages_after = env.scalar("SELECT page_count FROM pragma_page_count");
    assert!(pages_after < pages_before * 9 / 10, "the file shrank: {pages_before} -> {pages_after} pages");
    let wal = env.dir().join("test.db-wal");
    let wal_bytes = std::fs::metadata(&wal).map(|meta| meta.len()).unwrap_or(0);
    assert_eq!(wal_bytes, 0, "{} is truncated", wal.display());
}
