//! What a sweep asks before each batch, of jobs or of the audit trail:
//! whether to go on. It stops when told to (a signal), at the end of the
//! `schedule.window` it started in, and at `retention.run_timeout`; the
//! batch in flight always finishes first, since the question is only asked
//! between batches. Anything else that should hold the next batch back
//! belongs here too, so that both kinds of batches obey it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{StoppedBy, SweepPlan};

/// The limits of one sweep, from its start.
pub(crate) struct Limits<'a> {
    started: Instant,
    run_timeout: Duration,
    /// The end of the window the sweep started in; `None` for a dry run,
    /// which writes nothing and so is bound by no window.
    window_closes: Option<DateTime<Utc>>,
    stop: &'a CancellationToken,
}

impl Limits<'_> {
    pub(crate) fn new<'a>(plan: &SweepPlan, stop: &'a CancellationToken) -> Limits<'a> {
        Limits {
            started: Instant::now(),
            run_timeout: plan.run_timeout,
            window_closes: plan.window_closes.filter(|_| !plan.dry_run),
            stop,
        }
    }

    /// Before each batch: `Err` with why the sweep stops, `Ok` to go on.
    /// Async so that a wait between batches can be added here.
    pub(crate) async fn before_batch(&self) -> Result<(), StoppedBy> {
        if let Some(stopped_by) = self.interrupted() {
            return Err(stopped_by);
        }
        if self.started.elapsed() >= self.run_timeout {
            return Err(StoppedBy::Timeout);
        }
        Ok(())
    }

    /// The stops that also end the work after the batches (handing space
    /// back): a signal, and the window's end. A timeout leaves that work to do.
    pub(crate) fn interrupted(&self) -> Option<StoppedBy> {
        if self.stop.is_cancelled() {
            return Some(StoppedBy::Signal);
        }
        match self.window_closes {
            Some(closes) if Utc::now() >= closes => Some(StoppedBy::Window),
            _ => None,
        }
    }

    /// Cuts the pauses between batches short.
    pub(crate) fn stop(&self) -> &CancellationToken {
        self.stop
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
