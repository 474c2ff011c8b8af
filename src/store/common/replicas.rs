//! How far a server engine's replicas are behind its primary, for a sweep
//! that paces itself by them (`retention.max_replica_lag`, docs/operations.md
//! "Pacing by the replicas"). The engine gives only its reads
//! ([`ReplicaReads`]); what is done with them is the same for every engine.
//!
//! Replicas are found two ways: those the primary lists as streaming from it
//! (when the engine can ask), and those of `database.replicas`, read
//! directly, each on a pool of one session opened at the first read, with
//! the settings of `database.url` (TLS, password file) unless its URL says
//! otherwise. A replica that cannot be reached or read is listed with why.
//!
//! A replica that reports a replay position lags by the time since the
//! primary passed that position. The primary's position is sampled at each
//! read and kept with the moment it was read, so a replica whose replay
//! stopped while the primary goes on writing lags by the time since then,
//! however stale what the server measured is. The moment is interpolated
//! between the two samples around the position, as PostgreSQL's own
//! `replay_lag` is: a replica a few bytes behind a primary that never stops
//! writing lags by milliseconds, not by the time since the previous read
//! (about a second while a sweep pauses, more than half a limit of a second,
//! so such a pause could never end). A
//! streaming replica that leaves the primary's list keeps lagging from the
//! position it last replayed, until it is back or [`FORGET_AFTER`] has passed.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::{Pool, PoolOptions};
use sqlx::{Connection, Database};

use super::{Db, StoreOptions};
use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::store::{ReplicaLag, StoreError};

/// How many samples of the primary's position are kept: at one a second
/// while a sweep pauses, about an hour; older lags count from the oldest.
const SAMPLES: usize = 4096;

/// How long a replica that left the primary's list still counts.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The longest a replica of `database.replicas` may take to answer.
const DIRECT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the primary says: its position, and the replicas streaming from it.
pub(crate) struct Primary {
    pub position: i64,
    pub streaming: Vec<Streaming>,
}

/// A replica the primary lists.
pub(crate) struct Streaming {
    /// How the metrics and the logs name it.
    pub replica: String,
    /// The position it replayed, or why it is not known.
    pub replayed: Result<i64, String>,
    /// The lag the server measured, if any: serves only before the samples
    /// of the primary's position reach back far enough.
    pub reported: Option<Duration>,
}

/// What one of `database.replicas` says of itself.
pub(crate) enum Replayed {
    /// The position it replayed, to compare with the primary's.
    UpTo(i64),
    /// How far behind it says it is.
    Behind(Duration),
}

/// An engine's reads of its replicas; each error is worded for the log.
pub(crate) trait ReplicaReads: Send + Sync + 'static {
    type Db: Db;
    /// The port of a replica's URL that names none.
    const DEFAULT_PORT: u16;
    /// Where the primary lists its streaming replicas, for the log.
    const LISTED_IN: &'static str = "the primary's list of replicas";

    /// Read on the primary; `None` (the default): the engine knows its
    /// replicas only from `database.replicas`.
    fn primary(_pool: &Pool<Self::Db>) -> impl Future<Output = Result<Option<Primary>, String>> + Send {
        async { Ok(None) }
    }

    /// Read on one of `database.replicas`.
    fn replica(pool: &Pool<Self::Db>) -> impl Future<Output = Result<Replayed, String>> + Send;
}

/// What an engine's connect options are made of, for `R`.
type ConnectOptions<R> =
    Result<StoreOptions<<<<R as ReplicaReads>::Db as Database>::Connection as Connection>::Options>, StoreError>;

/// A replica last seen streaming: where its replay was, and when.
struct Seen {
    replay_position: i64,
    at: Instant,
}

/// One position of the primary: the first and the last read that found it there.
#[derive(Clone, Copy)]
struct Sample {
    first: Instant,
    last: Instant,
    position: i64,
}

/// The primary's write positions as read over time: when it passed the
/// position a replica has replayed, which is how far behind that replica is.
#[derive(Default)]
pub struct PrimaryPositions {
    /// Oldest first, rising.
    samples: VecDeque<Sample>,
}

impl PrimaryPositions {
    /// The primary was at `position` at `now`.
    pub fn record(&mut self, now: Instant, position: i64) {
        match self.samples.back_mut() {
            Some(sample) if sample.position == position => sample.last = now,
            Some(sample) if sample.position > position => {}
            _ => {
                if self.samples.len() == SAMPLES {
                    self.samples.pop_front();
                }
                self.samples.push_back(Sample { first: now, last: now, position });
            }
        }
    }

    /// The lag of a replica that replayed up to `replayed`, with the
    /// primary at `current`; `reported`: what the server measured, if anything.
    pub fn lag(&self, now: Instant, current: i64, replayed: i64, reported: Option<Duration>) -> Duration {
        if replayed >= current {
            return Duration::ZERO;
        }
        // The primary passed `replayed` after it was last seen at the newest
        // position at or before it, and before it was first seen at the next.
        let mut next = (now, current);
        for sample in self.samples.iter().rev() {
            if sample.position <= replayed {
                let (next_at, next_position) = next;
                let share = (replayed - sample.position) as f64 / (next_position - sample.position) as f64;
                let span = next_at.saturating_duration_since(sample.last);
                return now.saturating_duration_since(sample.last + span.mul_f64(share));
            }
            next = (sample.first, sample.position);
        }
        // Behind every sample: at least as old as the oldest.
        let oldest = self.samples.front().map_or(Duration::ZERO, |sample| now - sample.first);
        oldest.max(reported.unwrap_or_default())
    }
}

#[derive(Default)]
struct History {
    positions: PrimaryPositions,
    /// The replicas the primary listed, by name.
    streaming: HashMap<String, Seen>,
}

/// One of `database.replicas`: its name and a pool of one session.
struct Direct<DB: Database> {
    name: String,
    url: DatabaseUrl,
    pool: Result<Pool<DB>, String>,
}

pub(crate) struct Replicas<R: ReplicaReads> {
    direct: Vec<Direct<R::Db>>,
    history: Mutex<History>,
}

impl<R: ReplicaReads> Replicas<R> {
    /// `connect`: the engine's connect options, for a replica's settings
    /// (those of `database.url` with the replica's URL).
    pub fn new(settings: &DatabaseSettings, connect: impl Fn(&DatabaseSettings) -> ConnectOptions<R>) -> Self {
        let direct = settings
            .replicas
            .iter()
            .map(|url| {
                let replica = DatabaseSettings { url: url.clone(), replicas: Vec::new(), ..settings.clone() };
                let pool = connect(&replica).map_err(|error| error.to_string()).map(|store| {
                    PoolOptions::<R::Db>::new()
                        .max_connections(1)
                        .min_connections(0)
                        .acquire_timeout(settings.connect_timeout.min(DIRECT_READ_TIMEOUT))
                        .connect_lazy_with(store.options)
                });
                Direct { name: replica_name(url, R::DEFAULT_PORT), url: url.clone(), pool }
            })
            .collect();
        Replicas { direct, history: Mutex::default() }
    }

    /// Every replica's lag, read now; `primary`: the store's pool.
    pub async fn lags(&self, primary: &Pool<R::Db>) -> Vec<ReplicaLag> {
        let read = R::primary(primary).await;
        let now = Instant::now();
        let mut lags = Vec::new();
        let current = match read {
            Ok(Some(primary)) => {
                lags.extend(self.streaming(primary.streaming, now, primary.position));
                Some(primary.position)
            }
            Ok(None) => None,
            Err(reason) => {
                lags.push(ReplicaLag { replica: "primary".into(), lag: Err(reason) });
                None
            }
        };
        for direct in &self.direct {
            let lag = match &direct.pool {
                Err(error) => Err(error.clone()),
                Ok(pool) => self.direct_lag(pool, current).await,
            };
            lags.push(ReplicaLag { replica: direct.name.clone(), lag: lag.map_err(|e| direct.url.scrub(&e)) });
        }
        lags
    }

    /// The replicas the primary listed, and those that left the list lately.
    fn streaming(&self, listed: Vec<Streaming>, now: Instant, current: i64) -> Vec<ReplicaLag> {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.positions.record(now, current);
        let mut lags = Vec::new();
        let mut present = Vec::new();
        for Streaming { replica, replayed, reported } in listed {
            present.push(replica.clone());
            let lag = replayed.map(|replayed| {
                history.streaming.insert(replica.clone(), Seen { replay_position: replayed, at: now });
                history.positions.lag(now, current, replayed, reported)
            });
            lags.push(ReplicaLag { replica, lag });
        }
        history.streaming.retain(|_, seen| now - seen.at < FORGET_AFTER);
        let gone: Vec<(String, i64, Duration)> = history
            .streaming
            .iter()
            .filter(|(name, _)| !present.contains(name))
            .map(|(name, seen)| (name.clone(), seen.replay_position, now - seen.at))
            .collect();
        for (replica, replayed, ago) in gone {
            let lag = history.positions.lag(now, current, replayed, None);
            if lag.is_zero() {
                continue;
            }
            let reason = format!(
                "no longer streaming from the primary (left {} {:.0} s ago, {:.1} s behind then)",
                R::LISTED_IN,
                ago.as_secs_f64(),
                lag.as_secs_f64()
            );
            lags.push(ReplicaLag { replica, lag: Err(reason) });
        }
        lags
    }

    /// The lag of one of `database.replicas`; `current`: the primary's
    /// position, if it was read.
    async fn direct_lag(&self, pool: &Pool<R::Db>, current: Option<i64>) -> Result<Duration, String> {
        let Ok(read) = tokio::time::timeout(DIRECT_READ_TIMEOUT, R::replica(pool)).await else {
            return Err(format!("no answer within {} s", DIRECT_READ_TIMEOUT.as_secs()));
        };
        match (read?, current) {
            (Replayed::Behind(lag), _) => Ok(lag),
            (Replayed::UpTo(_), None) => Err("the primary's position could not be read".into()),
            (Replayed::UpTo(replayed), Some(current)) => {
                let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
                Ok(history.positions.lag(Instant::now(), current, replayed, None))
            }
        }
    }

    pub async fn close(&self) {
        for direct in &self.direct {
            if let Ok(pool) = &direct.pool {
                pool.close().await;
            }
        }
    }
}

/// `host:port` of a replica's URL: no user, no password.
fn replica_name(url: &DatabaseUrl, default_port: u16) -> String {
    match url::Url::parse(url.expose()) {
        Ok(parsed) => {
            format!("{}:{}", parsed.host_str().unwrap_or("localhost"), parsed.port().unwrap_or(default_port))
        }
        Err(_) => "replica (URL not shown)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica whose replay stopped at a position lags by the time since
    /// the primary passed it, interpolated between the samples around it,
    /// however long ago the server measured.
    #[test]
    fn the_lag_counts_from_when_the_primary_passed_the_replay_position() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut history = PrimaryPositions::default();
        history.record(at(0), 100);
        history.record(at(1), 200);
        history.record(at(2), 200);
        history.record(at(5), 300);
        assert_eq!(history.lag(at(6), 300, 300, None), Duration::ZERO, "caught up");
        // 250: halfway from 200 (last read at 2) to 300 (read at 5), passed at 3.5.
        assert_eq!(history.lag(at(6), 300, 250, Some(Duration::from_millis(10))), Duration::from_millis(2500));
        assert_eq!(history.lag(at(9), 300, 100, None), Duration::from_secs(9));
        // A few bytes behind a primary read again only now: milliseconds, not the 4 s since the read before.
        history.record(at(9), 1_000_000);
        assert!(history.lag(at(9), 1_000_000, 999_996, None) < Duration::from_millis(1));
        // Behind every sample: the oldest sample's age, or what the server said if more.
        assert_eq!(history.lag(at(9), 300, 50, None), Duration::from_secs(9));
        assert_eq!(history.lag(at(9), 300, 50, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(history.samples.len(), 4, "a position not past the last is not a new sample");
        // A primary found idle at 1,000,000 until 20 passed 999,000 before
        // it first got there (at 9), not on the way to its last read.
        history.record(at(20), 1_000_000);
        assert!(history.lag(at(20), 1_000_000, 999_000, None) > Duration::from_secs(11));
    }
}
