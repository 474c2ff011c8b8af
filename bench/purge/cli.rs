//! Running the retentiond binary the way an operator would: no configuration
//! file, none of the caller's `RETENTIOND_*` variables, the store's URL in
//! `RETENTIOND__DATABASE__URL`, JSON logs on stderr. Seeding and migrating
//! wait for the command here; the timed purge has its own module
//! (`sweep_process`), which starts its command from [`command`] too. A
//! child is killed when the thread that started it ends, so none outlives
//! a benchmark that is interrupted or fails.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::error::{Context, Result};

/// The binary Cargo built alongside the benchmark (or the smoke test).
pub const BIN: &str = env!("CARGO_BIN_EXE_retentiond");

/// `retentiond ARGS` against the store at `url`, with a clean environment.
pub fn command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RETENTIOND") {
            command.env_remove(key);
        }
    }
    command
        .env("RETENTIOND_CONFIG", "")
        .env("RETENTIOND__DATABASE__URL", url)
        .env("RETENTIOND__LOG__FORMAT", "json")
        .env("RETENTIOND__LOG__LEVEL", "warn");
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    command
}

/// Runs `retentiond ARGS` to the end; fails with its stderr unless it exits 0.
pub async fn run(url: &str, args: &[&str]) -> Result<()> {
    let mut command = command(url, args);
    let shown = format!("retentiond {}", args.join(" "));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .context("the thread waiting for retentiond failed")?
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        return Err(format!("{shown} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(())
}
