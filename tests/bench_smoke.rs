//! Runs the purge benchmark (`bench/purge/`) end to end on tiny stores, so
//! it keeps working while the product changes: every store shape must have
//! been compared (seeded, shuffled, backlog, and on PostgreSQL the store
//! without statistics), every deleting variant must pass its correctness
//! checks with exact counts, the writer must have worked under every
//! condition, the purge's batch durations must have been read from its log,
//! and the report, the plot and the summary lines must come out. SQLite always; PostgreSQL and
//! MariaDB when they answer at `RETENTIOND_TEST_POSTGRES_URL` / `RETENTIOND_TEST_MARIADB_URL`
//! (required with `RETENTIOND_TEST_REQUIRE_POSTGRES=1` / `RETENTIOND_TEST_REQUIRE_MARIADB=1`).

#[path = "../bench/purge/mod.rs"]
mod purge_bench;
#[path = "common/reachable.rs"]
mod reachable;
#[allow(dead_code)]
#[path = "common/require.rs"]
mod require;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;

use reachable::SharedServers;
use retentiond::store::Engine;

const JOBS: u64 = 10_000;
const IDLE_JOBS: u64 = 20_000;
const BACKLOG_JOBS: u64 = 5_000;
const NO_STATS_JOBS: u64 = 5_000;

/// `key=number` with 1 to 3 decimals.
fn assert_number(line: &str, field: &str, key: &str, decimals: std::ops::RangeInclusive<usize>) {
    let value = field.strip_prefix(&format!("{key}=")).unwrap_or_else(|| panic!("{key}= expected in {line:?}"));
    let (whole, fraction) = value.split_once('.').unwrap_or_else(|| panic!("{key} has no decimals in {line:?}"));
    assert!(!whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()), "{key} in {line:?}");
    assert!(fraction.chars().all(|c| c.is_ascii_digit()), "{key} in {line:?}");
    assert!(decimals.contains(&fraction.len()), "{key} has {} decimals in {line:?}", fraction.len());
}

/// The purge benchmark's options: `args`, the servers reached, and its
/// report and work directories.
fn options(servers: &SharedServers, report_dir: &Path, work_dir: &Path, args: &[&str]) -> purge_bench::Options {
    let utf8 = |dir: &Path| dir.to_str().expect("UTF-8 path").to_owned();
    let mut all: Vec<String> = std::iter::once("purge").chain(args.iter().copied()).map(str::to_owned).collect();
    all.extend([
        "--postgres-url".into(),
        servers.postgres_url.clone(),
        "--mariadb-url".into(),
        servers.mariadb_url.clone(),
    ]);
    all.extend(["--report-dir".into(), utf8(report_dir), "--work-dir".into(), utf8(work_dir)]);
    purge_bench::Options::parse_from(all)
}

/// The benchmarks of this binary share its databases' prefix
/// (`retentiond_bench_<pid>`): one at a time, so that each sees only its own.
static ONE_BENCHMARK_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn the_purge_benchmark_runs_end_to_end_on_small_stores() {
    let _alone = ONE_BENCHMARK_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let servers = runtime.block_on(SharedServers::reach("that engine in the purge benchmark smoke test"));
    let expected_backends = servers.engines();
    let dir = tempfile::tempdir().expect("temporary directory");
    let report_dir = dir.path().join("report");
    let work_dir = dir.path().join("work");
    let (jobs, idle_jobs, backlog_jobs, no_stats_jobs) =
        (JOBS.to_string(), IDLE_JOBS.to_string(), BACKLOG_JOBS.to_string(), NO_STATS_JOBS.to_string());
    let mut args = vec![
        "--jobs",
        &jobs,
        "--idle-jobs",
        &idle_jobs,
        "--backlog-jobs",
        &backlog_jobs,
        "--no-stats-jobs",
        &no_stats_jobs,
        "--writer-rate",
        "200",
        "--writer-idle-seconds",
        "1",
        "--autovacuum-wait-seconds",
        "0",
    ];
    for backend in &expected_backends {
        args.extend(["--backend", backend]);
    }

    let results = runtime
        .block_on(purge_bench::run(options(&servers, &report_dir, &work_dir, &args), std::future::pending()))
        .unwrap_or_else(|error| panic!("benchmark failed: {error}"));

    let backends: Vec<&str> = results.iter().map(|result| result.backend.name()).collect();
    assert_eq!(backends, expected_backends);
    for result in &results {
        let backend = result.backend.name();
        assert_eq!(result.seeded.jobs(), JOBS, "{backend}");
        assert!((2_000..4_000).contains(&result.seeded.eligible()), "{backend}: {} eligible", result.seeded.eligible());
        let shapes: Vec<&str> = result.comparisons().map(|comparison| comparison.shape.name()).collect();
        let expected_shapes: &[&str] = if backend == "postgres" {
            &["seeded", "shuffled", "backlog", "no_stats"]
        } else {
            &["seeded", "shuffled", "backlog"]
        };
        assert_eq!(shapes, expected_shapes, "{backend}");
        for run in result.deletion_runs() {
            let checks = &run.checks;
            let what = format!("{backend} {}: {checks:?}", run.variant);
            assert!(checks.problems().is_empty(), "{what}: {:?}", checks.problems());
            assert_eq!(checks.eligible_left, 0, "{what}");
            assert_eq!(checks.deleted, checks.expected, "{what}");
            assert_eq!(checks.audit_rows, checks.deleted, "{what}");
            assert_eq!(checks.jobs_left + checks.deleted, checks.seeded + checks.inserted, "{what}");
            assert!(checks.deleted > 0, "{what}");
        }
        let shuffled = &result.other_shapes[0];
        assert_eq!(shuffled.jobs(), JOBS, "{backend} shuffled");
        assert!(
            shuffled.eligible().abs_diff(result.seeded.eligible()) < 10,
            "{backend}: the shuffled store has the seeded store's eligible jobs"
        );
        let backlog = &result.other_shapes[1];
        for run in [&backlog.sweep, &backlog.baseline] {
            assert_eq!((run.checks.seeded, run.checks.deleted), (BACKLOG_JOBS, BACKLOG_JOBS), "{backend} backlog");
        }
        if let Some(no_stats) = result.other_shapes.get(2) {
            for run in [&no_stats.sweep, &no_stats.baseline] {
                assert_eq!(run.checks.seeded, NO_STATS_JOBS, "{backend} {}", run.variant);
                assert_eq!(run.checks.deleted, NO_STATS_JOBS / 25 * 24, "{backend} {}", run.variant);
            }
        }
        for comparison in result.comparisons() {
            let ratio = comparison.purge_vs_single_statement();
            assert!(ratio.is_finite() && ratio > 0.0, "{backend} {}: {ratio}", comparison.shape.name());
            assert!(comparison.batch_p99_ms() > 0.0, "{backend} {}", comparison.shape.name());
            for run in [&comparison.baseline, &comparison.sweep] {
                let purged = &run.purged;
                let timed = purged.until_purged.is_some();
                assert_eq!(timed, backend == "mariadb", "{backend} {}: timed until InnoDB's purge", run.variant);
                assert!(purged.until_purged.is_none_or(|until| until >= purged.elapsed), "{backend} {}", run.variant);
            }
        }
        let worst =
            result.comparisons().map(|comparison| comparison.purge_vs_single_statement()).fold(f64::MAX, f64::min);
        assert_eq!(result.worst_case_vs_single_statement(), worst, "{backend}");
        assert!(result.baseline_with_writer.checks.inserted > 0, "{backend}: the writer inserted during the baseline");
        assert!(result.sweep_with_writer.checks.inserted > 0, "{backend}: the writer inserted during the purge");
        for condition in result.writer_conditions() {
            assert!(condition.latency.count > 0, "{backend} writer {}: no operation measured", condition.label);
            assert!(condition.ops.len() >= condition.latency.count, "{backend} writer {}", condition.label);
        }
        let purges = result.comparisons().map(|comparison| &comparison.sweep).chain([&result.sweep_with_writer]);
        for run in purges {
            let process = run.purged.process.as_ref().expect("a retentiond purge has process figures");
            assert!(process.batches.count > 0, "{backend} {}: no batch durations", run.variant);
            assert_eq!(process.batch_sizes.iter().sum::<u64>(), run.purged.deleted, "{backend} {}", run.variant);
            assert!(process.peak_rss_kib > 0, "{backend} {}: no peak RSS", run.variant);
        }
        assert_eq!(result.idle.iter().map(|idle| idle.jobs).collect::<Vec<_>>(), [JOBS, IDLE_JOBS], "{backend}");
        assert!(
            result.idle.iter().all(|idle| [&idle.sweeps, &idle.by_type]
                .iter()
                .all(|sweeps| sweeps.count == purge_bench::idle::TIMED_SWEEPS && sweeps.p50 > 0.0)),
            "{backend}"
        );

        let line = result.summary_line();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), if backend == "mariadb" { 8 } else { 7 }, "{line:?}");
        assert_eq!(fields[0], backend, "{line:?}");
        assert_number(&line, fields[1], "purge_vs_single_statement", 2..=2);
        assert_number(&line, fields[2], "batch_p99_ms", 1..=3);
        assert_number(&line, fields[3], "writer_p99_ms", 1..=3);
        assert_number(&line, fields[4], "idle_sweep_ms_10m", 1..=3);
        assert_number(&line, fields[5], "peak_rss_mib", 0..=3);
        assert_number(&line, fields[6], "worst_case_vs_single_statement", 2..=2);
        if let Some(until_purged) = fields.get(7) {
            assert_number(&line, until_purged, "until_purged_vs_single_statement", 2..=2);
        }
    }

    let markdown = std::fs::read_to_string(report_dir.join("benchmarks.md")).expect("benchmarks.md is written");
    assert!(markdown.contains("| measure | value |"), "{markdown}");
    assert!(markdown.contains("| **purge / baseline** |"), "{markdown}");
    assert!(markdown.contains("| store | jobs | eligible | single statement, rows/s |"), "{markdown}");
    for shape in ["seeded", "shuffled", "backlog"] {
        assert!(markdown.contains(&format!("- **{shape}**: ")), "{markdown}");
        assert!(markdown.contains(&format!("| {shape} | ")), "{markdown}");
    }
    assert_eq!(markdown.contains("| no_stats | "), servers.postgres, "{markdown}");
    for engine in Engine::ALL {
        let heading = format!("## {}", engine.title());
        assert_eq!(markdown.contains(&heading), backends.contains(&engine.name()), "{heading} in {markdown}");
    }
    assert!(!markdown.contains("FAILED"), "{markdown}");
    for result in &results {
        assert!(markdown.contains(&result.summary_line()), "{markdown}");
    }
    let png = std::fs::read(report_dir.join("benchmarks-writer-latency.png")).expect("the plot is written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    let left = runtime.block_on(servers.leftover_bench_databases());
    assert!(left.is_empty(), "benchmark databases left behind: {left:?}");
}

/// Interrupted while `retentiond jobs seed` fills its first store, the
/// benchmark fails naming the signal, and leaves no store (no SQLite file,
/// no database: the seed's session is ended first) and no report.
#[test]
fn an_interrupted_benchmark_removes_its_stores_and_writes_no_report() {
    let _alone = ONE_BENCHMARK_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let servers = tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(SharedServers::reach("that engine in the interrupted benchmark test"));
    for backend in servers.engines() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (report_dir, work_dir) = (dir.path().join("report"), dir.path().join("work"));
        let options = options(&servers, &report_dir, &work_dir, &["--backend", backend, "--jobs", "100000"]);
        let stores_made = async {
            loop {
                let files = std::fs::read_dir(&work_dir).map(Iterator::count).unwrap_or(0);
                if files > 0 || !servers.leftover_bench_databases().await.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let interrupt = async {
            stores_made.await;
            // Inside the seeding of 100,000 jobs.
            tokio::time::sleep(Duration::from_millis(100)).await;
            "a test's signal"
        };
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let result = runtime.block_on(purge_bench::run(options, interrupt));
        // Waits for the thread that waited for the seed, so for the seed.
        drop(runtime);

        let error = result.err().unwrap_or_else(|| panic!("{backend}: the interrupted benchmark succeeded"));
        assert!(error.to_string().contains("interrupted by a test's signal"), "{backend}: {error}");
        let files: Vec<_> = std::fs::read_dir(&work_dir).expect("the work directory").flatten().collect();
        assert!(files.is_empty(), "{backend}: files left behind: {files:?}");
        let left = tokio::runtime::Runtime::new().expect("tokio runtime").block_on(servers.leftover_bench_databases());
        assert!(left.is_empty(), "{backend}: databases left behind: {left:?}");
        assert!(!report_dir.exists(), "{backend}: a report was written");
    }
}

/// A `--pacing` run rewrites its own section of the report and keeps the
/// sections before and after it (the migration benchmark's comes after).
#[test]
fn the_pacing_section_is_replaced_and_the_sections_after_it_kept() {
    use purge_bench::pacing_report::{HEADING, replace_section};

    let report = format!("# Purge\n\n## Summary lines\n\nx\n\n{HEADING}\n\nold\n\n## Migration 0008\n\nkept\n");
    let new = format!("{HEADING}\n\nnew\n");
    let expected = format!("# Purge\n\n## Summary lines\n\nx\n\n{HEADING}\n\nnew\n\n## Migration 0008\n\nkept\n");
    assert_eq!(replace_section(&report, &new), expected);
    let without = "# Purge\n\n## Summary lines\n\nx\n";
    assert_eq!(replace_section(without, &new), format!("{without}\n{HEADING}\n\nnew\n"));
}
