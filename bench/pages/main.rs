//! `cargo bench --bench pages`: times every status page of `retentiond run`
//! at a million jobs and a million audit rows, on SQLite and PostgreSQL.
//! Everything lives in `mod.rs`, which the smoke test
//! (`tests/pages_bench_smoke.rs`) includes too; this file reads the command
//! line and says whether every page stayed under 100 ms.

// Only its command line: this benchmark runs without a runtime.
#[allow(dead_code)]
#[path = "../entry.rs"]
mod entry;
#[path = "mod.rs"]
mod pages_bench;

fn main() -> std::process::ExitCode {
    let options: pages_bench::Options = entry::options();
    match pages_bench::run(&options) {
        Ok(results) => {
            let over = results.iter().flat_map(|r| &r.pages).filter(|page| page.max() >= pages_bench::BUDGET).count();
            if over == 0 {
                println!("every page answered within 100 ms");
                std::process::ExitCode::SUCCESS
            } else {
                println!("{over} pages took 100 ms or more at least once");
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("pages benchmark failed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
