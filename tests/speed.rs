//! The sweep's sizing mechanisms, as behaviour: batches sized to the time
//! budget, a batch that hits the statement timeout retried smaller, and SQLite's freed
//! pages handed back after a purge. How fast and how gentle a sweep is comes
//! from the benchmark (`cargo bench --bench purge`), not from these tests.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use retentiond::batch::{BatchSize, BatchSizer};
use serde_json::Value;

/// Debug logging of the sweep only, as JSON lines.
const SWEEP_DEBUG: [&str; 4] = ["--log-format", "json", "--log-level", "warn,retentiond::sweep=debug"];

/// The `jobs` field of every "batch committed" line, in order.
fn committed_batches(stderr: &str) -> Vec<u64> {
    timed_batches(stderr).into_iter().map(|(jobs, ..)| jobs).collect()
}

/// Every "batch committed" line, in order: its jobs and milliseconds.
fn timed_batches(stderr: &str) -> Vec<(u64, f64, f64)> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "batch committed")
        .map(|event| {
            let fields = &event["fields"];
            (
                fields["jobs"].as_u64().expect("jobs is a count"),
                fields["elapsed_ms"].as_f64().expect("elapsed_ms"),
                fields["commit_ms"].as_f64().expect("commit_ms"),
            )
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "the median of nothing");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// On MariaDB, waits (20 s at most) until InnoDB's history list is empty:
/// its purge threads removing the rows a purge before deleted would slow the
/// next purge's batches by as much as the budget under test.
fn wait_for_undo_purged(env: &TestEnv) {
    if env.engine == Engine::MariaDb {
        let history =
            "SELECT CAST(COUNT AS SIGNED) FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'";
        wait_until(Duration::from_secs(20), || env.scalar(history) == 0);
    }
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

every_engine! {
    /// `batch_size = auto` (the default): the first batch takes 1,000 jobs,
    /// the next ones are sized so that a batch takes about
    /// `retention.batch_budget`, 50 ms by default. Three purges of one seeded
    /// store, each with a backlog of its own (the jobs of 365 to 230, 230 to
    /// 160 and 160 to 90 days ago), under budgets of 100 ms, the default and
    /// 25 ms. Each backlog holds more jobs than five batches can (the size
    /// grows by a quarter at most: 8,207 jobs), so there are six batches at
    /// least however quick the machine. Each size follows from the batch
    /// before under that purge's budget, exactly as the sizer of
    /// src/batch.rs decides (its rules are tested there): the batches
    /// logged, replayed through it, give the sizes logged, but for the last
    /// batch and one that ends the ids of the sweep's first statement, each
    /// shorter than its size. After the ramp
    /// from 1,000 the median batch's statements (its commit left out) take
    /// between a quarter of its budget and twice it (a cap the sizer sets
    /// when a larger batch was slower per job, noise on a busy machine
    /// included, holds the size below the budget for a while). Every job is
    /// deleted once.
    fn auto_batches_start_at_1000_and_follow_the_budget(env: &TestEnv) {
        env.run(&["jobs", "seed", "--count", "150000", "--seed", "4", "--days", "365", "--prefix", "speed"]).expect_code(0);
        for (budget_ms, retention) in [(100, "230d"), (50, "160d"), (25, "90d")] {
            let mut vars = vec![("RETENTIOND__RETENTION__COMPLETED", retention), ("RETENTIOND__RETENTION__CLOSED", retention)];
            let budget = format!("{budget_ms}ms");
            if budget_ms != 50 {
                vars.push(("RETENTIOND__RETENTION__BATCH_BUDGET", &budget));
            }
            let audited = env.count("retention_audit");
            wait_for_undo_purged(env);
            let mut args = SWEEP_DEBUG.to_vec();
            args.extend(["purge", "--output", "json"]);
            let out = env.run_env(&args, &vars);
            out.expect_code(0);
            let batches = timed_batches(&out.stderr);
            let total = out.json()["total"].as_i64().expect("total");
            let what = format!("budget {budget}: {batches:?}");
            assert!(batches.len() >= 6, "{what}: a backlog of a few batches at least");
            assert_eq!(batches.iter().map(|(jobs, ..)| jobs).sum::<u64>() as i64, total, "{what}");
            assert_eq!(env.count("retention_audit") - audited, total, "{what}");

            let mut sizer = BatchSizer::new(BatchSize::Auto, Duration::from_millis(budget_ms));
            let (last, full) = batches.split_last().expect("batches");
            let mut short = 0;
            for (number, (jobs, ms, commit_ms)) in full.iter().enumerate() {
                if *jobs < u64::from(sizer.size()) {
                    // The last of the ids the sweep's first statement read,
                    // while the rest was being read (src/sweep/pending.rs):
                    // the sizer learns nothing from a batch short of its size.
                    short += 1;
                } else {
                    assert_eq!(*jobs, u64::from(sizer.size()), "{what}: batch {number} is not the size the budget gives");
                }
                let (elapsed, commit) = (Duration::from_secs_f64(ms / 1e3), Duration::from_secs_f64(commit_ms / 1e3));
                sizer.record(*jobs as usize, elapsed, commit);
            }
            assert!(short <= 1, "{what}: {short} batches short of their size before the last");
            assert!(last.0 <= u64::from(sizer.size()), "{what}: the last batch is larger than its size");

            // The last batch takes what is left: it says nothing of the sizer.
            let steered = &full[3..];
            let median_ms = median(steered.iter().map(|(_, ms, commit_ms)| ms - commit_ms).collect());
            let budget_ms = budget_ms as f64;
            assert!(
                (budget_ms / 4.0..=budget_ms * 2.0).contains(&median_ms),
                "{what}: the median batch took {median_ms:.1} ms"
            );
            let median_size = median(steered.iter().map(|(jobs, ..)| *jobs as f64).collect());
            eprintln!("budget {budget}: {} batches, the median one {median_size} jobs in {median_ms:.1} ms", batches.len());
        }
        assert_eq!(eligible(env), 0);
    }
}

every_engine! {
    /// A fixed `--batch-size` stays fixed: every batch but the last takes
    /// exactly that many jobs, though each takes far less than the budget
    /// (which would grow an `auto` batch), and the last takes the rest.
    fn a_fixed_batch_size_is_kept(env: &TestEnv) {
        seed(env, 3000);
        let to_delete = eligible(env) as u64;
        assert!(to_delete > 500, "a backlog of several batches: {to_delete}");
        let mut args = SWEEP_DEBUG.to_vec();
        args.extend(["purge", "--batch-size", "100", "--output", "json"]);
        let out = env.run(&args);
        out.expect_code(0);
        let batches = committed_batches(&out.stderr);
        assert_eq!(batches.len() as u64, to_delete.div_ceil(100), "{batches:?}");
        let (last, full) = batches.split_last().expect("batches");
        assert!(full.iter().all(|&jobs| jobs == 100), "{batches:?}");
        assert_eq!(*last, to_delete - 100 * full.len() as u64, "{batches:?}");
        assert_eq!(batches.iter().sum::<u64>(), to_delete);
    }
}

every_engine_with! { StatementTimeout;
    /// A batch cancelled at `database.statement_timeout` rolls back whole and
    /// is retried with a quarter of the jobs; the sweep then succeeds. A
    /// trigger makes the audit insert sleep past the timeout twice (a
    /// sequence counts the attempts, as it is not rolled back).
    fn a_statement_timeout_retries_the_batch_smaller(env: &TestEnv) {
        seed(env, 6000);
        let to_delete = eligible(env);
        env.execute(&env.sql_slow_audit(2, 3));
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
    let env = TestEnv::new(Engine::Sqlite, "sqlite_hands_the_freed_pages_back_after_a_purge").expect("SQLite");
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
