//! The standby's lag during a pacing run, measured by the benchmark itself
//! rather than read from retentiond: ten times a second the primary's WAL
//! position (`pg_current_wal_lsn()`) and the standby's replay position
//! (`pg_last_wal_replay_lsn()`, read on the standby). The lag is the time
//! since the primary passed the replayed position, by retentiond's own rule
//! (`PrimaryPositions`, src/store/common/replicas.rs), so a standby whose replay stands still
//! lags more with every sample while the primary writes, and zero once it
//! has replayed all the primary wrote. After a purge the standby has caught
//! up once it has replayed what the primary had written when the purge
//! ended: the primary goes on writing a little (autovacuum of the purged
//! tables, checkpoints), so the standby is rarely at its very position.
//!
//! And the slow standby: its replay runs for `run` of every `period`
//! (`pg_wal_replay_resume()`, then `pg_wal_replay_pause()`), so it replays
//! at a fraction of the speed it could, as a standby on a smaller machine
//! or a busier disk would (docs/benchmarks.md, "Pacing by replica lag").

use std::time::{Duration, Instant};

use retentiond::store::PrimaryPositions;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::{Context, Result};

/// How often the positions are read.
const INTERVAL: Duration = Duration::from_millis(100);

/// How long the lag is read before the purge starts.
pub const LEAD: Duration = Duration::from_secs(1);

/// The longest the standby may take to replay everything after a purge.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8";
const REPLAYED: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8";

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub at_s: f64,
    pub lag_s: f64,
}

/// Reads the lag until stopped, then until the standby has replayed what
/// the primary had written by then.
pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<Result<Vec<Sample>>>,
    pub started: Instant,
}

impl Sampler {
    pub async fn start(primary_url: &str, standby_url: &str) -> Result<Sampler> {
        let mut primary = PgConnection::connect(primary_url).await.context("the lag sampler's primary session")?;
        let mut standby = PgConnection::connect(standby_url).await.context("the lag sampler's standby session")?;
        let stop = CancellationToken::new();
        let started = Instant::now();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let samples = sample(&mut primary, &mut standby, started, &stop).await;
                primary.close().await.context("closing the sampler's primary session")?;
                standby.close().await.context("closing the sampler's standby session")?;
                samples
            }
        });
        Ok(Sampler { stop, task, started })
    }

    /// Seconds since the sampler started.
    pub fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Samples on until the standby has replayed all the primary had written
    /// by now; every sample.
    pub async fn finish(self) -> Result<Vec<Sample>> {
        self.stop.cancel();
        self.task.await.context("the lag sampler failed")?
    }
}

async fn sample(
    primary: &mut PgConnection,
    standby: &mut PgConnection,
    started: Instant,
    stop: &CancellationToken,
) -> Result<Vec<Sample>> {
    // retentiond's own rule for when the primary passed the standby's position.
    let mut positions = PrimaryPositions::default();
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the sampler was stopped, and the primary's position then.
    let mut stopped: Option<(f64, i64)> = None;
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let at_s = now.duration_since(started).as_secs_f64();
        let current: i64 = sqlx::query_scalar(PRIMARY_POSITION).fetch_one(&mut *primary).await.context("primary")?;
        let replayed: i64 = sqlx::query_scalar(REPLAYED).fetch_one(&mut *standby).await.context("standby")?;
        positions.record(now, current);
        samples.push(Sample { at_s, lag_s: positions.lag(now, current, replayed, None).as_secs_f64() });
        if stop.is_cancelled() {
            let (since, target) = *stopped.get_or_insert((at_s, current));
            if replayed >= target {
                return Ok(samples);
            }
            if at_s - since > CATCH_UP_TIMEOUT.as_secs_f64() {
                return Err(format!("the standby did not catch up within {} s", CATCH_UP_TIMEOUT.as_secs()).into());
            }
        }
    }
}

/// The standby's replay, let run for `run` of every `period` until stopped.
pub struct Throttle {
    stop: CancellationToken,
    task: JoinHandle<Result<()>>,
}

impl Throttle {
    pub async fn start(standby_url: &str, run: Duration, period: Duration) -> Result<Throttle> {
        let mut standby = PgConnection::connect(standby_url).await.context("the replay throttle's session")?;
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                while !stop.is_cancelled() {
                    sqlx::query("SELECT pg_wal_replay_resume()").execute(&mut standby).await?;
                    tokio::time::sleep(run).await;
                    sqlx::query("SELECT pg_wal_replay_pause()").execute(&mut standby).await?;
                    tokio::select! {
                        () = tokio::time::sleep(period.saturating_sub(run)) => {}
                        () = stop.cancelled() => {}
                    }
                }
                sqlx::query("SELECT pg_wal_replay_resume()").execute(&mut standby).await?;
                standby.close().await.context("closing the replay throttle's session")
            }
        });
        Ok(Throttle { stop, task })
    }

    /// Stops throttling; the standby replays at its full speed again.
    pub async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.task.await.context("the replay throttle failed")?.context("pausing and resuming the standby's replay")
    }
}

/// Waits until the standby has replayed all the primary has written by now.
pub async fn caught_up(primary_url: &str, standby_url: &str) -> Result<()> {
    let sampler = Sampler::start(primary_url, standby_url).await?;
    sampler.finish().await.map(drop)
}
