//! The pause for the replicas (`retention.max_replica_lag`): before a batch
//! the sweep reads how far each replica is behind (the store's engine says
//! which replicas there are and how to read them), and while any is over
//! the limit, or cannot be read, it starts no batch. It reads them again
//! about once a second and goes on once every one is back under half the
//! limit, so that a replica hovering at the limit does not let a batch
//! through at each re-read. The pause counts against the run's timeout,
//! and a stop signal ends it at once (docs/operations.md, "Pacing by the
//! replicas").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::StoppedBy;
use super::pause::sleep;
use super::paused_now::Shown;
use crate::config::format_duration;
use crate::metrics::{self, PauseReason};
use crate::model::Pauses;
use crate::store::{ReplicaLag, Store};

/// How often a pause reads the replicas again.
const REREAD: Duration = Duration::from_secs(1);

pub(crate) struct ReplicaPause<'a> {
    store: &'a dyn Store,
    /// `None`: the replicas are not read.
    limit: Option<Duration>,
    paused: Mutex<Pauses>,
}

impl<'a> ReplicaPause<'a> {
    pub(crate) fn new(store: &'a dyn Store, limit: Option<Duration>) -> ReplicaPause<'a> {
        ReplicaPause { store, limit, paused: Mutex::default() }
    }

    pub(crate) fn paused(&self) -> Pauses {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a batch: returns once every replica is under the limit, or
    /// with why the sweep stops (`check`, asked after each wait).
    pub(crate) async fn wait(
        &self,
        check: impl Fn() -> Result<(), StoppedBy>,
        stop: &CancellationToken,
    ) -> Result<(), StoppedBy> {
        let Some(limit) = self.limit else { return Ok(()) };
        let lags = read(self.store).await;
        let Some((replica, reason)) = holding(&lags, limit, limit) else { return Ok(()) };
        let started = Instant::now();
        let shown = Shown::start(replica, reason);
        let mut reasons = HashMap::new();
        for replica in lags.iter().filter(|replica| !under(replica, limit)) {
            log_over(replica, limit, "sweep paused: a replica lags more than retention.max_replica_lag");
            if let Err(reason) = &replica.lag {
                reasons.insert(replica.replica.clone(), reason.clone());
            }
        }
        let mut counted = started;
        let outcome = loop {
            sleep(REREAD, stop).await;
            metrics::sweep_paused(PauseReason::ReplicaLag, counted.elapsed());
            counted = Instant::now();
            if let Err(stopped_by) = check() {
                break Err(stopped_by);
            }
            let lags = tokio::select! {
                lags = read(self.store) => lags,
                () = stop.cancelled() => continue,
            };
            match holding(&lags, limit / 2, limit) {
                None => break Ok(lags),
                Some((replica, reason)) => shown.update(replica, reason),
            }
            // A replica that becomes unreadable, or unreadable for another reason, is said so.
            for replica in &lags {
                if let Err(reason) = &replica.lag
                    && reasons.get(&replica.replica) != Some(reason)
                {
                    log_over(replica, limit, "sweep still paused: a replica cannot be read");
                    reasons.insert(replica.replica.clone(), reason.clone());
                }
            }
        };
        drop(shown);
        metrics::sweep_paused(PauseReason::ReplicaLag, counted.elapsed());
        let took = started.elapsed();
        {
            let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
            paused.pauses += 1;
            paused.paused_ms += took.as_millis() as u64;
        }
        let paused_ms = took.as_millis() as u64;
        match &outcome {
            Ok(lags) => {
                let most = lags
                    .iter()
                    .filter_map(|replica| replica.lag.as_ref().ok().map(|lag| (replica, lag)))
                    .max_by_key(|(_, lag)| **lag);
                tracing::info!(
                    paused_ms,
                    replica = most.map(|(replica, _)| replica.replica.as_str()),
                    lag_ms = most.map(|(_, lag)| lag.as_millis() as u64),
                    "sweep resumed: every replica is back under half of retention.max_replica_lag"
                );
            }
            Err(stopped_by) => {
                tracing::info!(paused_ms, stopped_by = stopped_by.as_str(), "sweep paused for replica lag stops");
            }
        }
        outcome.map(|_| ())
    }
}

/// Every replica's lag, each also set in the metrics.
async fn read(store: &dyn Store) -> Vec<ReplicaLag> {
    let lags = store.replica_lags().await;
    for replica in &lags {
        if let Ok(lag) = replica.lag {
            metrics::replica_lag(&replica.replica, lag);
        }
    }
    lags
}

/// The replica that holds the sweep back, unless every one is at most
/// `threshold` behind: one that cannot be read first, else the one furthest
/// behind; with why, for the overview page.
fn holding(lags: &[ReplicaLag], threshold: Duration, limit: Duration) -> Option<(String, String)> {
    let over = lags.iter().filter(|replica| !under(replica, threshold));
    let unreadable = over.clone().find_map(|replica| replica.lag.as_ref().err().map(|reason| (replica, reason)));
    if let Some((replica, reason)) = unreadable {
        return Some((replica.replica.clone(), format!("cannot be read, so counts as over the limit: {reason}")));
    }
    let (replica, lag) =
        over.filter_map(|replica| Some((replica, *replica.lag.as_ref().ok()?))).max_by_key(|(_, lag)| *lag)?;
    let reason = format!(
        "{:.1} s behind (retention.max_replica_lag = {}; the sweep goes on once every replica is under half of it)",
        lag.as_secs_f64(),
        format_duration(limit)
    );
    Some((replica.replica.clone(), reason))
}

/// Read, and at most `limit` behind.
fn under(replica: &ReplicaLag, limit: Duration) -> bool {
    replica.lag.as_ref().is_ok_and(|&lag| lag <= limit)
}

fn log_over(replica: &ReplicaLag, limit: Duration, message: &str) {
    let max_replica_lag = format_duration(limit);
    match &replica.lag {
        Ok(lag) => {
            tracing::warn!(replica = replica.replica, lag_ms = lag.as_millis() as u64, max_replica_lag, "{message}")
        }
        Err(reason) => tracing::warn!(
            replica = replica.replica,
            reason,
            max_replica_lag,
            "{message} (one that cannot be read counts as over the limit)"
        ),
    }
}
