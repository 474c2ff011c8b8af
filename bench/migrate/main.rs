//! `cargo bench --bench migrate`: times migration 0008 on a large store of
//! each engine and what it does to the application's writes meanwhile.
//! Everything lives in `mod.rs` and its modules, which the smoke test
//! (`tests/migrate_bench_smoke.rs`) includes too; this file only reads the
//! command line and starts a runtime.

#[path = "mod.rs"]
mod migrate_bench;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `cargo bench` appends `--bench` to the program's arguments; it means nothing here.
    let options = migrate_bench::Options::parse_from(std::env::args().filter(|arg| arg != "--bench"));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("migration benchmark: cannot start the tokio runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(migrate_bench::run(options)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("migration benchmark failed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
