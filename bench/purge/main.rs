//! `cargo bench --bench purge`: measures retentiond's purge against a
//! hand-written single-statement delete on SQLite, PostgreSQL and MariaDB, and writes
//! `docs/benchmarks.md` with a latency plot. Everything lives in `mod.rs` and
//! its modules, which the smoke test (`tests/bench_smoke.rs`) includes too;
//! this file only reads the command line and starts a runtime.

#[path = "../entry.rs"]
mod entry;
#[path = "mod.rs"]
mod purge_bench;

fn main() -> std::process::ExitCode {
    entry::run("purge benchmark", purge_bench::run(entry::options()))
}
