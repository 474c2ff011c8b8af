//! `cargo bench --bench purge`: measures retentiond's purge against a
//! hand-written single-statement delete on SQLite, PostgreSQL and MariaDB, and writes
//! `docs/benchmarks.md` with a latency plot. Everything lives in `mod.rs` and
//! its modules, which the smoke test (`tests/bench_smoke.rs`) includes too;
//! this file only reads the command line and starts a runtime.

#[path = "mod.rs"]
mod purge_bench;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `cargo bench` appends `--bench` to the program's arguments; it means nothing here.
    let options = purge_bench::Options::parse_from(std::env::args().filter(|arg| arg != "--bench"));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("purge benchmark: cannot start the tokio runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(purge_bench::run(options)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("purge benchmark failed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
