//! `cargo bench --bench migrate`: times migration 0008 on a large store of
//! each engine and what it does to the application's writes meanwhile.
//! Everything lives in `mod.rs` and its modules, which the smoke test
//! (`tests/migrate_bench_smoke.rs`) includes too; this file only reads the
//! command line and starts a runtime.

#[path = "../entry.rs"]
mod entry;
#[path = "mod.rs"]
mod migrate_bench;

fn main() -> std::process::ExitCode {
    entry::run("migration benchmark", migrate_bench::run(entry::options()))
}
