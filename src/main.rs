//! The `retentiond` binary: parse the command line, run the command, turn
//! the outcome into an exit code (docs/design.md, "The command line"). Usage errors exit 2 through clap.

use std::process::ExitCode;

use clap::Parser;

use retentiond::cli::Cli;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    one_malloc_arena();
    // Before anything can build a TLS configuration: one provider for the binary.
    retentiond::tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(retentiond::app::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// One malloc arena for the whole process: glibc gives threads arenas of
/// their own, each keeping what its thread freed, and a batch's rows are
/// allocated on one thread and freed on another, which raised a large
/// purge's peak memory past what it is held to (docs/operations.md,
/// "Memory"). The daemon's threads allocate little at once, so they do
/// not queue for the one arena's lock.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: before any other thread exists; mallopt only sets a tunable.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
