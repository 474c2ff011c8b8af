//! systemd notifications (docs/design.md, "The daemon"): `READY=1` once the store is open,
//! `STATUS=` after each sweep, `WATCHDOG=1` at half the watchdog interval,
//! `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` (not under systemd)
//! every call does nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Warn once about a broken socket rather than on every message.
static WARNED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(%error, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// With `WATCHDOG_USEC` set (and `WATCHDOG_PID`, if set, naming this
/// process), sends `WATCHDOG=1` at half the interval until `stop` is
/// cancelled. The pings come from the async runtime that runs the sweeps, so
/// they stop if it stalls; a database outage does not stop them, because a
/// restart would not cure it (`/readyz` reports it instead).
pub fn spawn_watchdog(stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()? / 2;
    tracing::info!(interval_ms = interval.as_millis() as u64, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => send(&[NotifyState::Watchdog]),
                () = stop.cancelled() => return,
            }
        }
    }))
}
