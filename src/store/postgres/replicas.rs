//! How far PostgreSQL's standbys are behind the primary, for a sweep that
//! paces itself by them (`retention.max_replica_lag`, docs/operations.md
//! "Pacing by the replicas").
//!
//! The lag of a standby is the time since it last kept up: the time since
//! the primary's WAL position was at or before the standby's replay
//! position. The primary's position is sampled at each read and kept with
//! the moment it was read, so a standby whose replay stopped while the
//! primary goes on writing lags by the time since then, however stale
//! `pg_stat_replication.replay_lag` is (it keeps its last measure when
//! replay stops). `replay_lag` serves only before the samples reach back
//! far enough.
//!
//! The standbys are those the primary streams to (`pg_stat_replication`,
//! which needs `pg_monitor`), and those of `database.replicas`, read
//! directly (`pg_last_wal_replay_lsn()`). A standby that was streaming and
//! disconnects keeps lagging from the position it last replayed, until it
//! is back or [`FORGET_AFTER`] has passed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use super::options;
use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::store::ReplicaLag;

/// The primary's position and every walsender but those of base backups.
const STANDBYS: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8 AS primary_position, \
       s.application_name, host(s.client_addr) AS address, s.state, \
       (s.replay_lsn - '0/0'::pg_lsn)::int8 AS replay_position, \
       extract(epoch FROM s.replay_lag)::float8 AS replay_lag \
     FROM (SELECT 1) AS one LEFT JOIN pg_stat_replication AS s ON s.state IS DISTINCT FROM 'backup'";

/// A standby of `database.replicas`: whether it is one, and what it replayed.
const REPLAYED: &str =
    "SELECT pg_is_in_recovery() AS standby, (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8 AS replay_position";

/// How many samples of the primary's position are kept: at one a second
/// while a sweep pauses, about an hour; older lags count from the oldest.
const SAMPLES: usize = 4096;

/// How long a standby that left `pg_stat_replication` still counts.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The longest a replica of `database.replicas` may take to answer.
const DIRECT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A standby last seen streaming: where its replay was, and when.
struct Seen {
    replay_position: i64,
    at: Instant,
}

#[derive(Default)]
struct History {
    /// The primary's position at each read, oldest first, rising.
    positions: VecDeque<(Instant, i64)>,
    /// The standbys `pg_stat_replication` showed, by name.
    streaming: HashMap<String, Seen>,
}

impl History {
    fn record(&mut self, now: Instant, position: i64) {
        if self.positions.back().is_none_or(|&(_, last)| position > last) {
            if self.positions.len() == SAMPLES {
                self.positions.pop_front();
            }
            self.positions.push_back((now, position));
        }
    }

    /// The lag of a standby that replayed up to `replayed`, with the
    /// primary at `current`; `reported`: what the server measured, if anything.
    fn lag(&self, now: Instant, current: i64, replayed: i64, reported: Option<Duration>) -> Duration {
        if replayed >= current {
            return Duration::ZERO;
        }
        match self.positions.iter().rev().find(|&&(_, position)| position <= replayed) {
            Some(&(at, _)) => now - at,
            // Behind every sample: at least as old as the oldest.
            None => {
                let oldest = self.positions.front().map_or(Duration::ZERO, |&(at, _)| now - at);
                oldest.max(reported.unwrap_or_default())
            }
        }
    }
}

/// One of `database.replicas`: its name and a pool of one session.
struct Direct {
    name: String,
    url: DatabaseUrl,
    pool: Result<PgPool, String>,
}

pub(super) struct Replicas {
    direct: Vec<Direct>,
    history: Mutex<History>,
}

impl Replicas {
    /// Sessions to `database.replicas` are opened at the first read, with
    /// the settings of `database.url` (TLS, password file) unless a URL
    /// says otherwise.
    pub fn new(settings: &DatabaseSettings) -> Replicas {
        let direct = settings
            .replicas
            .iter()
            .map(|url| {
                let replica = DatabaseSettings { url: url.clone(), replicas: Vec::new(), ..settings.clone() };
                let pool = options::connect_options(&replica).map_err(|error| error.to_string()).map(|store| {
                    PgPoolOptions::new()
                        .max_connections(1)
                        .min_connections(0)
                        .acquire_timeout(settings.connect_timeout.min(DIRECT_READ_TIMEOUT))
                        .connect_lazy_with(store.options)
                });
                Direct { name: replica_name(url), url: url.clone(), pool }
            })
            .collect();
        Replicas { direct, history: Mutex::default() }
    }

    /// Every standby's lag, read now on `primary`.
    pub async fn lags(&self, primary: &PgPool) -> Vec<ReplicaLag> {
        let rows = sqlx::query(STANDBYS).fetch_all(primary).await;
        let now = Instant::now();
        let mut lags = Vec::new();
        let current = match rows {
            Ok(rows) => {
                let current = rows.first().map_or(0, |row| row.get::<i64, _>("primary_position"));
                lags.extend(self.streaming(&rows, now, current));
                Some(current)
            }
            Err(error) => {
                let reason = format!("cannot read pg_stat_replication on the primary: {error}");
                lags.push(ReplicaLag { replica: "primary".into(), lag: Err(reason) });
                None
            }
        };
        for direct in &self.direct {
            let lag = match (&direct.pool, current) {
                (Err(error), _) => Err(error.clone()),
                (Ok(_), None) => Err("the primary's position could not be read".into()),
                (Ok(pool), Some(current)) => self.direct_lag(pool, current).await,
            };
            lags.push(ReplicaLag { replica: direct.name.clone(), lag: lag.map_err(|e| direct.url.scrub(&e)) });
        }
        lags
    }

    /// The standbys in `rows` of [`STANDBYS`], and those that left it lately.
    fn streaming(&self, rows: &[PgRow], now: Instant, current: i64) -> Vec<ReplicaLag> {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.record(now, current);
        let mut lags = Vec::new();
        let mut present = Vec::new();
        for row in rows {
            let Some(mut application) = row.get::<Option<String>, _>("application_name") else { continue };
            if application.is_empty() {
                application = "standby".into();
            }
            let address = row.get::<Option<String>, _>("address").unwrap_or_else(|| "local".into());
            let replica = format!("{application}@{address}");
            present.push(replica.clone());
            let lag = match row.get::<Option<i64>, _>("replay_position") {
                None => Err(
                    "pg_stat_replication hides its positions from this role: grant it pg_monitor (docs/security.md)"
                        .to_owned(),
                ),
                Some(replayed) => {
                    let reported = row.get::<Option<f64>, _>("replay_lag").map(Duration::from_secs_f64);
                    history.streaming.insert(replica.clone(), Seen { replay_position: replayed, at: now });
                    Ok(history.lag(now, current, replayed, reported))
                }
            };
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
            let lag = history.lag(now, current, replayed, None);
            if lag.is_zero() {
                continue;
            }
            let reason = format!(
                "no longer streaming from the primary (left pg_stat_replication {:.0} s ago, {:.1} s behind then)",
                ago.as_secs_f64(),
                lag.as_secs_f64()
            );
            lags.push(ReplicaLag { replica, lag: Err(reason) });
        }
        lags
    }

    async fn direct_lag(&self, pool: &PgPool, current: i64) -> Result<Duration, String> {
        let read = tokio::time::timeout(DIRECT_READ_TIMEOUT, sqlx::query(REPLAYED).fetch_one(pool)).await;
        let row = match read {
            Err(_) => return Err(format!("no answer within {} s", DIRECT_READ_TIMEOUT.as_secs())),
            Ok(Err(error)) => return Err(error.to_string()),
            Ok(Ok(row)) => row,
        };
        if !row.get::<bool, _>("standby") {
            return Err("not a standby (pg_is_in_recovery() is false)".into());
        }
        let Some(replayed) = row.get::<Option<i64>, _>("replay_position") else {
            return Err("pg_last_wal_replay_lsn() is NULL: the standby has replayed nothing".into());
        };
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        Ok(history.lag(Instant::now(), current, replayed, None))
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
fn replica_name(url: &DatabaseUrl) -> String {
    match url::Url::parse(url.expose()) {
        Ok(parsed) => {
            format!("{}:{}", parsed.host_str().unwrap_or("localhost"), parsed.port().unwrap_or(5432))
        }
        Err(_) => "replica (URL not shown)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A standby whose replay stopped at a position lags by the time since
    /// the primary passed it, however long ago the server measured.
    #[test]
    fn the_lag_counts_from_when_the_primary_passed_the_replay_position() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut history = History::default();
        history.record(at(0), 100);
        history.record(at(1), 200);
        history.record(at(2), 200);
        history.record(at(5), 300);
        assert_eq!(history.lag(at(6), 300, 300, None), Duration::ZERO, "caught up");
        assert_eq!(history.lag(at(6), 300, 250, Some(Duration::from_millis(10))), Duration::from_secs(5));
        assert_eq!(history.lag(at(9), 300, 100, None), Duration::from_secs(9));
        // Behind every sample: the oldest sample's age, or what the server said if more.
        assert_eq!(history.lag(at(9), 300, 50, None), Duration::from_secs(9));
        assert_eq!(history.lag(at(9), 300, 50, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(history.positions.len(), 3, "a position not past the last is not a new sample");
    }
}
