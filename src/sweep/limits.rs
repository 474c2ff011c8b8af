//! What a sweep asks before each batch, of jobs or of the audit trail:
//! whether to go on. It stops when told to (a signal), at the end of the
//! `schedule.window` it started in, and at `retention.run_timeout`; the
//! batch in flight always finishes first, since the question is only asked
//! between batches. It waits while a replica lags (`replica_pause`), so
//! that both kinds of batches obey that too.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::replica_pause::ReplicaPause;
use super::{StoppedBy, SweepPlan};
use crate::model::Pauses;
use crate::store::Store;

/// The limits of one sweep, from its start.
pub(crate) struct Limits<'a> {
    started: Instant,
    run_timeout: Duration,
    /// The end of the window the sweep started in; `None` for a dry run,
    /// which writes nothing and so is bound by no window.
    window_closes: Option<DateTime<Utc>>,
    stop: &'a CancellationToken,
    /// `None` for a dry run, which writes nothing and so pushes no replica behind.
    replicas: Option<ReplicaPause<'a>>,
}

impl Limits<'_> {
    pub(crate) fn new<'a>(store: &'a dyn Store, plan: &SweepPlan, stop: &'a CancellationToken) -> Limits<'a> {
        Limits {
            started: Instant::now(),
            run_timeout: plan.run_timeout,
            window_closes: plan.window_closes.filter(|_| !plan.dry_run),
            stop,
            replicas: (!plan.dry_run).then(|| ReplicaPause::new(store, plan.max_replica_lag)),
        }
    }

    /// Before each batch: `Err` with why the sweep stops, `Ok` to go on;
    /// waits first while a replica lags.
    pub(crate) async fn before_batch(&self) -> Result<(), StoppedBy> {
        self.check()?;
        if let Some(replicas) = &self.replicas {
            replicas.wait(|| self.check(), self.stop).await?;
        }
        Ok(())
    }

    /// Whether the sweep may go on now.
    fn check(&self) -> Result<(), StoppedBy> {
        if let Some(stopped_by) = self.interrupted() {
            return Err(stopped_by);
        }
        if self.started.elapsed() >= self.run_timeout {
            return Err(StoppedBy::Timeout);
        }
        Ok(())
    }

    /// What the sweep's pauses for the replicas took so far.
    pub(crate) fn paused(&self) -> Pauses {
        self.replicas.as_ref().map(ReplicaPause::paused).unwrap_or_default()
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
