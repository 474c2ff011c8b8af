//! Process signals (docs/design.md, "The daemon"): SIGTERM and SIGINT stop the work after the
//! batch in flight, a second one exits at once; SIGHUP asks the daemon to
//! reload its configuration file. Repeated signals may merge into one.

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::exit;

/// Listens for SIGTERM and SIGINT (and SIGHUP when `reload` is given) until
/// the returned handle is closed. The first stop signal cancels `stop`; the
/// second exits the process with status 1. Each SIGHUP sends on `reload`;
/// one already waiting there absorbs the next.
pub fn listen(stop: CancellationToken, reload: Option<mpsc::Sender<()>>) -> std::io::Result<Handle> {
    let mut signals =
        if reload.is_some() { Signals::new([SIGTERM, SIGINT, SIGHUP])? } else { Signals::new([SIGTERM, SIGINT])? };
    let handle = signals.handle();
    tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            if signal == SIGHUP {
                if let Some(reload) = &reload {
                    let _ = reload.try_send(());
                }
            } else if stop.is_cancelled() {
                tracing::warn!("second stop signal: exiting at once");
                std::process::exit(exit::FAILURE.into());
            } else {
                tracing::warn!("stopping after the batch in flight; signal again to exit at once");
                stop.cancel();
            }
        }
    });
    Ok(handle)
}
