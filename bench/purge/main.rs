//! `cargo bench --bench purge`: measures retentiond's purge against a
//! hand-written single-statement delete on SQLite, PostgreSQL and MariaDB, and writes
//! `docs/benchmarks.md` with a latency plot. Everything lives in `mod.rs` and
//! its modules, which the smoke test (`tests/bench_smoke.rs`) includes too;
//! this file only reads the command line, starts a runtime and listens for
//! the signals that interrupt a run.

use tokio::signal::unix::{SignalKind, signal};

#[path = "../entry.rs"]
mod entry;
#[path = "mod.rs"]
mod purge_bench;

fn main() -> std::process::ExitCode {
    entry::run("purge benchmark", purge_bench::run(entry::options(), interrupted()))
}

/// Resolves with the signal's name on SIGINT (Ctrl-C) or SIGTERM (`timeout`,
/// a CI job cancelled), so that the benchmark removes its stores before it
/// exits; never, if the signals cannot be listened for.
async fn interrupted() -> &'static str {
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        eprintln!("purge benchmark: cannot listen for SIGINT and SIGTERM; an interrupted run leaves its stores");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
