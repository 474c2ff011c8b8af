//! The pacing run (`--pacing`): what `retention.max_replica_lag` does for a
//! standby while the backlog store is purged, and what it costs the purge.
//!
//! A primary and a streaming standby of the benchmark's own are made with
//! the tests' harness (`tests/common/pg_standby.rs`, included here); the
//! backlog store is built on the primary as the comparisons build it
//! (`synthetic`), then the standby is cloned from the primary
//! (`pg_basebackup`). Each run purges a fresh copy of the backlog with the
//! standby's replay throttled (`lag::Throttle`), while `lag::Sampler`
//! reads the standby's lag ten times a second: once without the limit,
//! then with it as the primary sees the standby (`pg_stat_replication`),
//! then with the standby also in `database.replicas`, read directly. Every
//! run is checked like the comparisons' (exactly the eligible jobs deleted,
//! one audit row each). `pacing_report` writes the figures and the plot.

#[allow(dead_code)] // The tests use more of it than the benchmark.
#[path = "../../tests/common/pg_standby.rs"]
mod pg_standby;

use std::time::Duration;

use pg_standby::PrimaryAndStandby;
use retentiond::store::Engine;

use super::error::{Context, Result};
use super::lag::{self, Sample, Sampler, Throttle};
use super::seed::Seeded;
use super::stores::Stores;
use super::{DeletionRun, Options, check, progress, synthetic};

/// How the purge of one run learns the standby's lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No `retention.max_replica_lag`.
    Off,
    /// The limit, the standby known from `pg_stat_replication` only.
    Streaming,
    /// The limit, the standby also in `database.replicas`.
    Direct,
}

impl Limit {
    const ALL: [Limit; 3] = [Limit::Off, Limit::Streaming, Limit::Direct];

    fn variant(self) -> &'static str {
        match self {
            Limit::Off => "pacing_off",
            Limit::Streaming => "pacing_streaming",
            Limit::Direct => "pacing_direct",
        }
    }

    pub fn describe(self, limit: Duration) -> String {
        let limit = retentiond::config::format_duration(limit);
        match self {
            Limit::Off => "no limit".to_owned(),
            Limit::Streaming => format!("max_replica_lag = {limit}, the standby as the primary sees it"),
            Limit::Direct => format!("max_replica_lag = {limit}, the standby also in database.replicas"),
        }
    }
}

/// One purge of the backlog and the standby's lag meanwhile.
#[derive(Debug, Clone)]
pub struct PacedRun {
    pub limit: Limit,
    pub run: DeletionRun,
    /// The lag from before the purge started until the standby caught up.
    pub samples: Vec<Sample>,
    /// When the purge started and ended, on the samples' clock.
    pub purge_started_s: f64,
    pub purge_ended_s: f64,
}

impl PacedRun {
    pub fn largest_lag_s(&self) -> f64 {
        self.samples.iter().map(|sample| sample.lag_s).fold(0.0, f64::max)
    }

    /// From the end of the purge until the standby had replayed all the
    /// primary had written by then.
    pub fn catch_up_s(&self) -> f64 {
        self.samples.last().map_or(0.0, |last| last.at_s - self.purge_ended_s).max(0.0)
    }
}

/// Everything the pacing run measured.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub postgres: String,
    pub jobs: u64,
    pub runs: Vec<PacedRun>,
}

/// Runs the pacing measurements; the servers are stopped and their files
/// removed before it returns.
pub async fn measure(options: &Options) -> Result<Pacing> {
    let bindir = pg_standby::bindir()
        .ok_or("--pacing needs PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup): pg_config --bindir")?;
    progress("pacing: starting a primary of the benchmark's own");
    let servers = PrimaryAndStandby::new(bindir);
    let primary_url = PrimaryAndStandby::url(servers.primary_port);
    let standby_url = PrimaryAndStandby::url(servers.standby_port);
    let postgres = servers.psql(servers.primary_port, "SELECT version()");
    let mut stores = Stores::new(Engine::Postgres, servers.dir.path(), &primary_url);
    progress(format!("pacing: building a backlog store of {} eligible jobs", options.backlog_jobs));
    let backlog = synthetic::backlog_store(&mut stores, options.backlog_jobs).await?;
    progress("pacing: cloning the standby (pg_basebackup)");
    servers.start_standby();
    let mut runs = Vec::new();
    for limit in Limit::ALL {
        let run = paced_run(options, &mut stores, &backlog, limit, &primary_url, &standby_url).await;
        runs.push(run.with_context(|| format!("the pacing run with {}", limit.describe(options.max_replica_lag)))?);
    }
    stores.remove_all().await?;
    Ok(Pacing { postgres, jobs: backlog.jobs, runs })
}

async fn paced_run(
    options: &Options,
    stores: &mut Stores,
    backlog: &Seeded,
    limit: Limit,
    primary_url: &str,
    standby_url: &str,
) -> Result<PacedRun> {
    let store = stores.copy(&backlog.store, limit.variant()).await?;
    // The copy reached the standby as WAL: replayed in full before the purge.
    lag::caught_up(primary_url, standby_url).await?;
    progress(format!("pacing: purging with {}", limit.describe(options.max_replica_lag)));
    let mut settings = Vec::new();
    if limit != Limit::Off {
        let max = retentiond::config::format_duration(options.max_replica_lag);
        settings.push(("RETENTIOND__RETENTION__MAX_REPLICA_LAG", max));
    }
    if limit == Limit::Direct {
        settings.push(("RETENTIOND__DATABASE__REPLICAS", standby_url.to_owned()));
    }
    let throttle = Throttle::start(
        standby_url,
        Duration::from_millis(options.replay_run_ms),
        Duration::from_millis(options.replay_period_ms),
    )
    .await?;
    let sampler = Sampler::start(primary_url, standby_url).await?;
    tokio::time::sleep(lag::LEAD).await;
    let purge_started_s = sampler.now_s();
    let purged = super::sweep_process::run_with(&store, settings).await;
    let purge_ended_s = sampler.now_s();
    let samples = sampler.finish().await;
    throttle.stop().await?;
    let run = check(&store, backlog, limit.variant(), purged?, 0).await?;
    stores.remove(&store).await?;
    let run = PacedRun { limit, run, samples: samples?, purge_started_s, purge_ended_s };
    progress(format!(
        "pacing: largest lag {:.1} s, caught up {:.1} s after the purge",
        run.largest_lag_s(),
        run.catch_up_s()
    ));
    Ok(run)
}
