//! What every benchmark's `main` does: read its command line, then run the
//! benchmark on a tokio runtime and turn its result into the exit code.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// The command line, without the `--bench` that `cargo bench` appends to
/// the program's arguments (it means nothing here).
pub fn options<O: clap::Parser>() -> O {
    O::parse_from(std::env::args().filter(|arg| arg != "--bench"))
}

/// Runs `benchmark` (called `name` in its messages) to its end.
pub fn run<T, E: Display>(name: &str, benchmark: impl Future<Output = Result<T, E>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(benchmark);
    // An interrupted benchmark returns while a thread may still wait for a
    // retentiond it started: no waiting for it, the child ends with this
    // process (bench/purge/cli.rs).
    runtime.shutdown_background();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name} failed: {error}");
            ExitCode::FAILURE
        }
    }
}
