//! Runs the migration benchmark (`bench/migrate/`) end to end on small
//! stores, so it keeps working while the product and its migrations change:
//! on every engine reached, migration 0008 must have been applied by
//! `retentiond migrate` while the writer wrote, the store must end at the
//! latest version with every job (the benchmark's own checks), the summary
//! line must come out whole, and the database must be gone afterwards.
//! SQLite always; PostgreSQL and MariaDB when they answer at
//! `RETENTIOND_TEST_POSTGRES_URL` / `RETENTIOND_TEST_MARIADB_URL` (required
//! with `RETENTIOND_TEST_REQUIRE_POSTGRES=1` / `RETENTIOND_TEST_REQUIRE_MARIADB=1`).

#[path = "../bench/migrate/mod.rs"]
mod migrate_bench;
#[path = "common/reachable.rs"]
mod reachable;
#[allow(dead_code)]
#[path = "common/require.rs"]
mod require;

use clap::Parser;

use reachable::SharedServers;

const JOBS: u64 = 2_000;

#[test]
fn the_migration_benchmark_times_0008_on_every_engine_reached() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let servers = runtime.block_on(SharedServers::reach("that engine in the migration benchmark smoke test"));
    let expected = servers.engines();
    let jobs = JOBS.to_string();
    let (postgres_url, mariadb_url) = (&servers.postgres_url, &servers.mariadb_url);
    let mut args = vec!["migrate", "--jobs", &jobs, "--postgres-url", postgres_url, "--mariadb-url", mariadb_url];
    for backend in &expected {
        args.extend(["--backend", backend]);
    }

    let results = runtime
        .block_on(migrate_bench::run(migrate_bench::Options::parse_from(args)))
        .unwrap_or_else(|error| panic!("the benchmark failed: {error}"));

    let backends: Vec<&str> = results.iter().map(|result| result.backend.name()).collect();
    assert_eq!(backends, expected);
    for result in &results {
        let line = result.line();
        let fields: Vec<(&str, &str)> =
            line.split(' ').skip(1).map(|field| field.split_once('=').expect("key=value")).collect();
        let keys: Vec<&str> = fields.iter().map(|(key, _)| *key).collect();
        assert!(line.starts_with("migration_0008 "), "{line}");
        assert_eq!(keys, ["backend", "jobs", "seconds", "longest_write_wait_ms", "p99_write_ms", "writes"], "{line}");
        assert_eq!(fields[0].1, result.backend.name(), "{line}");
        assert_eq!(fields[1].1, JOBS.to_string(), "{line}");
        for (_, value) in &fields[2..] {
            assert!(value.parse::<f64>().is_ok_and(|number| number > 0.0), "{line}");
        }
        assert!(result.longest_write_ms >= result.p99_write_ms, "{line}");
    }
    let left = runtime.block_on(servers.leftover_bench_databases());
    assert!(left.is_empty(), "the benchmark left its database behind: {left:?}");
}
