//! The migration benchmark (docs/benchmarks.md, "Migration 0008 on a large
//! store"): per engine, a fresh store migrated up to 0007, filled with
//! `--jobs` jobs shaped like a store in use (`store`), then the real
//! `retentiond migrate` applies 0008 while the purge benchmark's writer
//! (`writer`: every 5 ms a new job with two drives, or an update of a live
//! job, on a session of its own) writes. It prints one summary
//! line per engine and fails unless the store ends at the latest version
//! with every job still there. `main.rs` runs it from the command line;
//! the smoke test includes this module by path and calls [`run`].

#[path = "../purge/cli.rs"]
mod cli;
#[path = "../purge/error.rs"]
mod error;
#[path = "../purge/servers.rs"]
mod servers;
#[allow(dead_code)]
#[path = "../purge/stats.rs"]
mod stats;
mod store;
// The purge benchmark's stores and writer; this benchmark uses part of them.
#[allow(dead_code)]
#[path = "../purge/stores.rs"]
mod stores;
#[allow(dead_code)]
#[path = "../purge/writer.rs"]
mod writer;

use std::time::{Duration, Instant};

use error::{Context, Result};
use retentiond::store::Engine;
use servers::{Engines, Servers};
use stores::{BenchStore, Stores};

/// The writer's operations per second: one every 5 ms.
const WRITER_RATE: u32 = 200;

/// The benchmark's command line (`cargo bench --bench migrate -- OPTIONS`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "migrate",
    bin_name = "cargo bench --bench migrate --",
    about = "Times migration 0008 on a large store, and the writes it blocks"
)]
pub struct Options {
    /// A store to measure: sqlite, postgres, mariadb or all; may be repeated (default: all).
    #[arg(long, value_parser = Engine::choose)]
    pub backend: Vec<Engines>,

    /// Jobs in the store before the migration.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,

    #[command(flatten)]
    pub servers: Servers,
}

/// What one engine's migration did.
#[derive(Debug, Clone)]
pub struct Measured {
    pub backend: Engine,
    /// Jobs in the store before the migration.
    pub jobs: u64,
    /// `retentiond migrate`'s wall time, from spawn to exit.
    pub elapsed: Duration,
    /// The writer's operations due while the migration ran.
    pub writes: usize,
    /// The longest of them, in milliseconds: how long the migration blocked writes.
    pub longest_write_ms: f64,
    pub p99_write_ms: f64,
}

impl Measured {
    /// The line printed for this engine.
    pub fn line(&self) -> String {
        format!(
            "migration_0008 backend={} jobs={} seconds={:.3} longest_write_wait_ms={:.1} p99_write_ms={:.1} writes={}",
            self.backend.name(),
            self.jobs,
            self.elapsed.as_secs_f64(),
            self.longest_write_ms,
            self.p99_write_ms,
            self.writes
        )
    }
}

/// Measures every engine chosen, printing each one's line as it is done.
pub async fn run(options: Options) -> Result<Vec<Measured>> {
    let backends = servers::chosen_engines(&options.backend);
    let work_dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let mut results = Vec::new();
    for backend in backends {
        let mut stores = Stores::new(backend, work_dir.path(), options.servers.admin_url(backend));
        let measured = match stores.empty("migrate").await {
            Ok(store) => measure(&store, options.jobs).await,
            Err(error) => Err(error),
        };
        let removed = stores.remove_all().await;
        let measured = measured.with_context(|| format!("{} migration benchmark", backend.title()))?;
        removed?;
        println!("{}", measured.line());
        results.push(measured);
    }
    Ok(results)
}

async fn measure(store: &BenchStore, jobs: u64) -> Result<Measured> {
    let name = store.backend().name();
    progress(format!("{name}: migrating a fresh store up to 0007"));
    store::migrate_before_0008(store).await?;
    progress(format!("{name}: writing {jobs} jobs"));
    store::fill(store, jobs).await?;
    let writer = writer::Writer::start(store, WRITER_RATE).await?;
    progress(format!("{name}: retentiond migrate (0008), the writer writing"));
    let started = Instant::now();
    let migrated = cli::run(&store.url, &["migrate"]).await;
    let ended = Instant::now();
    let log = writer.stop().await?;
    migrated?;
    let inserted = log.inserted;
    let latency = writer::Condition::during("migration", log, started, ended)?.latency;
    store::check(store, jobs + inserted).await?;
    Ok(Measured {
        backend: store.backend(),
        jobs,
        elapsed: ended - started,
        writes: latency.count,
        longest_write_ms: latency.max,
        p99_write_ms: latency.p99,
    })
}

/// A line on stderr saying where the benchmark is.
pub fn progress(message: String) {
    eprintln!("migration benchmark: {message}");
}
