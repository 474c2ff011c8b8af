//! The `retentiond` binary: parse the command line, run the command, turn
//! the outcome into an exit code (docs/design.md, "The command line"). Usage errors exit 2 through clap.

use std::process::ExitCode;

use clap::Parser;

use retentiond::cli::Cli;

fn main() -> ExitCode {
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
