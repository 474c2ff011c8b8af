//! Runs the status pages benchmark (`bench/pages/`) end to end on a small
//! store, so it keeps working while the product changes: every page it
//! times must answer 200 on both backends, each timed the asked number of
//! times, and the report must come out. The figures at a million jobs are
//! in `docs/pages-benchmarks.md` (`cargo bench --bench pages`).

#[path = "../bench/pages/mod.rs"]
mod pages_bench;
#[allow(dead_code)]
#[path = "common/require.rs"]
mod require;

use clap::Parser;

#[test]
fn the_pages_benchmark_runs_on_both_backends() {
    let report = tempfile::NamedTempFile::new().unwrap();
    let postgres_required = require::Requirement::Postgres.is_required();
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    let backend = if reachable || postgres_required { "both" } else { "sqlite" };
    if backend == "sqlite" {
        eprintln!("skipping the PostgreSQL part of the pages benchmark smoke test: nothing answers on 127.0.0.1:5432");
    }
    let options = pages_bench::Options::parse_from([
        "pages",
        "--backend",
        backend,
        "--jobs",
        // 1 % held: two pages of held jobs.
        "8000",
        "--audit-rows",
        "2500",
        "--requests",
        "2",
        "--report",
        report.path().to_str().unwrap(),
    ]);
    let results = pages_bench::run(&options).unwrap_or_else(|error| panic!("the benchmark failed: {error}"));
    assert_eq!(results.len(), if backend == "both" { 2 } else { 1 });
    for result in &results {
        // Every page of the list, plus the second page of the held jobs found by its link.
        assert_eq!(result.pages.len(), 16, "{result:?}");
        for page in &result.pages {
            assert_eq!(page.times.len(), 2, "{page:?}");
            assert!(page.bytes > 1000, "{page:?}");
        }
        assert!(result.pages.iter().any(|page| page.path.starts_with("/holds?after_created=")), "{result:?}");
    }
    let markdown = std::fs::read_to_string(report.path()).unwrap();
    assert!(markdown.contains("| `/forecast?days=365` |") && markdown.contains("## SQLite"), "{markdown}");
}
