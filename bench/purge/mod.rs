//! The purge benchmark: how retentiond's sweep compares with the strongest
//! hand-written single-statement delete, what it costs concurrent writers,
//! what an idle sweep costs, how much memory a backlog takes, and what space
//! a purge leaves behind — on SQLite, PostgreSQL and MariaDB.
//!
//! Per backend, [`run`] seeds one store and gives every deleting variant an
//! identical copy of it (so each starts from the same rows), checks after
//! each variant that exactly the eligible jobs went with one audit row each,
//! then compares the purge with the single statement on the other store
//! shapes (`shapes`: shuffled, backlog, and on PostgreSQL a store without
//! statistics) and builds the idle stores. It writes `benchmarks.md` and a
//! latency plot to the report directory and prints one summary line per
//! backend. `main.rs` runs it from the command line; the smoke test
//! (`tests/bench_smoke.rs`) includes this module tree and runs it small.
//!
//! With `--pacing` it measures only `retention.max_replica_lag` instead: the
//! backlog store purged on a primary with a slow streaming standby of its
//! own, without and with the limit (`pacing`), written into the last
//! section of `benchmarks.md` with a plot of the standby's lag.

mod baseline;
mod checks;
mod cli;
mod eligible;
mod error;
pub mod idle;
mod lag;
mod machine;
mod no_statistics;
mod pacing;
pub mod pacing_report;
mod plot;
mod report;
mod seed;
mod servers;
mod shapes;
mod shuffle;
mod space;
mod stats;
mod stores;
mod sweep_process;
mod synthetic;
mod writer;

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use checks::Checks;
use error::{Context, Result};
use seed::Seeded;
use servers::{Engines, Servers};
use shapes::{Comparison, Shape};
use stores::{BenchStore, Stores};

use retentiond::store::Engine;

/// How long the writer runs alone before a purge starts and after it ends.
const WRITER_MARGIN: Duration = Duration::from_secs(1);

/// The plot's file name in the report directory.
const PLOT_FILE: &str = "benchmarks-writer-latency.png";

/// The benchmark's command line (`cargo bench --bench purge -- OPTIONS`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "purge",
    bin_name = "cargo bench --bench purge --",
    about = "Benchmarks retentiond's purge on SQLite, PostgreSQL and MariaDB"
)]
pub struct Options {
    /// Which store(s) to measure: sqlite, postgres, mariadb, both (SQLite and PostgreSQL) or all;
    /// may be repeated.
    #[arg(long, default_value = "both", value_parser = Engine::choose)]
    pub backend: Vec<Engines>,

    /// Jobs in the seeded store every deleting variant copies (about 30 % eligible).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,

    /// Jobs in the large idle store (nothing eligible); the idle sweep is also measured at --jobs.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_jobs: u64,

    /// Jobs in the all-eligible backlog store (purge against single statement, peak RSS); 0 skips it.
    #[arg(long, default_value_t = 3_000_000)]
    pub backlog_jobs: u64,

    /// PostgreSQL: jobs in the store purged without planner statistics (96 % eligible); 0 skips it.
    #[arg(long, default_value_t = 125_000)]
    pub no_stats_jobs: u64,

    /// Operations per second of the concurrent writer.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub writer_rate: u32,

    /// How long the writer runs in the condition without a purge, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub writer_idle_seconds: u64,

    /// PostgreSQL: how long to wait after the purge for autovacuum to clean up, in seconds.
    #[arg(long, default_value_t = 90)]
    pub autovacuum_wait_seconds: u64,

    /// Where benchmarks.md and the plot are written (overwritten).
    #[arg(long, default_value = "docs")]
    pub report_dir: PathBuf,

    #[command(flatten)]
    pub servers: Servers,

    /// Where the SQLite files go (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,

    /// Measure only the pacing by a standby's lag: the backlog store (--backlog-jobs) purged on a
    /// primary and a slow standby of the benchmark's own, without and with --max-replica-lag.
    #[arg(long)]
    pub pacing: bool,

    /// --pacing: retention.max_replica_lag of the paced runs.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_replica_lag: Duration,

    /// --pacing: the standby's replay runs this many milliseconds of every --replay-period-ms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub replay_run_ms: u64,

    /// --pacing: the period of the standby's replay throttle, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub replay_period_ms: u64,
}

impl Options {
    /// The engines to measure, each once, in `Engine::ALL`'s order.
    pub fn engines(&self) -> Vec<Engine> {
        servers::chosen_engines(&self.backend)
    }
}

/// What one deleting run (the baseline or retentiond's purge) did.
#[derive(Debug, Clone)]
pub struct Purged {
    pub deleted: u64,
    /// The baseline: from before its statement to after its commit. The
    /// purge: the process's wall time, from spawn to exit.
    pub elapsed: Duration,
    /// The newest `state_changed_at` it deleted ("now" at its start minus 90 days).
    pub cutoff: DateTime<Utc>,
    /// Only retentiond's purge has these.
    pub process: Option<sweep_process::ProcessFigures>,
    /// MariaDB, with nothing else running: `elapsed`, then until InnoDB had
    /// removed the deleted rows in the background ([`stores::history_purged`]).
    pub until_purged: Option<Duration>,
}

/// A deleting variant: what it did and whether it did it right.
#[derive(Debug, Clone)]
pub struct DeletionRun {
    pub variant: &'static str,
    pub purged: Purged,
    pub checks: Checks,
}

impl DeletionRun {
    pub fn rows_per_second(&self) -> f64 {
        per_second(self.purged.deleted, self.purged.elapsed)
    }

    /// Rows/s over [`Purged::until_purged`], where it was measured.
    pub fn rows_per_second_until_purged(&self) -> Option<f64> {
        Some(per_second(self.purged.deleted, self.purged.until_purged?))
    }
}

fn per_second(rows: u64, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Everything measured on one backend.
#[derive(Debug, Clone)]
pub struct BackendResult {
    pub backend: Engine,
    /// The seeded store, without the writer: the headline rows/s.
    pub seeded: Comparison,
    /// The other shapes: shuffled, then backlog and no statistics when measured.
    pub other_shapes: Vec<Comparison>,
    pub baseline_with_writer: DeletionRun,
    pub sweep_with_writer: DeletionRun,
    pub writer_alone: writer::Condition,
    pub writer_during_baseline: writer::Condition,
    pub writer_during_sweep: writer::Condition,
    /// At --jobs, then at --idle-jobs (once when they are equal).
    pub idle: Vec<idle::IdleTiming>,
    /// Right after the sweep without the writer.
    pub space: space::Space,
}

impl BackendResult {
    /// Every shape compared, the seeded store first.
    pub fn comparisons(&self) -> impl Iterator<Item = &Comparison> {
        std::iter::once(&self.seeded).chain(&self.other_shapes)
    }

    /// The comparison on `shape`, if it was measured.
    pub fn comparison(&self, shape: Shape) -> Option<&Comparison> {
        self.comparisons().find(|comparison| comparison.shape == shape)
    }

    /// Every variant that deleted, for the correctness checks.
    pub fn deletion_runs(&self) -> Vec<&DeletionRun> {
        let mut runs =
            vec![&self.seeded.baseline, &self.seeded.sweep, &self.baseline_with_writer, &self.sweep_with_writer];
        for comparison in &self.other_shapes {
            runs.extend([&comparison.baseline, &comparison.sweep]);
        }
        runs
    }

    /// The writer's three conditions, in the order they ran.
    pub fn writer_conditions(&self) -> [&writer::Condition; 3] {
        [&self.writer_alone, &self.writer_during_baseline, &self.writer_during_sweep]
    }

    /// On the seeded store: retentiond's purge rows/s over the baseline's, both without the writer.
    pub fn purge_vs_single_statement(&self) -> f64 {
        self.seeded.purge_vs_single_statement()
    }

    /// The lowest purge/single ratio over every shape compared.
    pub fn worst_case_vs_single_statement(&self) -> f64 {
        self.comparisons().map(Comparison::purge_vs_single_statement).fold(f64::INFINITY, f64::min)
    }

    /// The largest peak RSS of the purges without the writer (every shape; the backlog is the largest store).
    pub fn peak_rss_mib(&self) -> f64 {
        self.comparisons()
            .filter_map(|comparison| comparison.sweep.purged.process.as_ref())
            .map(|process| process.peak_rss_mib())
            .fold(0.0, f64::max)
    }

    /// The idle sweep on the largest idle store.
    pub fn largest_idle(&self) -> &idle::IdleTiming {
        self.idle.iter().max_by_key(|timing| timing.jobs).expect("the idle sweep is measured at one size at least")
    }

    /// The line printed at the end of the benchmark for this backend; on
    /// MariaDB with the seeded store's [`Comparison::until_purged_vs_single_statement`].
    pub fn summary_line(&self) -> String {
        let until_purged = self
            .seeded
            .until_purged_vs_single_statement()
            .map(|ratio| format!(" until_purged_vs_single_statement={ratio:.2}"))
            .unwrap_or_default();
        format!(
            "{} purge_vs_single_statement={:.2} batch_p99_ms={:.3} writer_p99_ms={:.3} idle_sweep_ms_10m={:.3} \
             peak_rss_mib={:.1} worst_case_vs_single_statement={:.2}{until_purged}",
            self.backend.name(),
            self.purge_vs_single_statement(),
            self.seeded.batch_p99_ms(),
            self.writer_during_sweep.latency.p99,
            self.largest_idle().sweeps.p50,
            self.peak_rss_mib(),
            self.worst_case_vs_single_statement()
        )
    }
}

/// Runs the whole benchmark: every backend chosen, then the report, the plot
/// and the summary lines. Every store it creates (SQLite file, PostgreSQL or
/// MariaDB database) is removed before it returns, on success, on failure,
/// and when `interrupted` resolves (with the signal's name): then it stops
/// measuring and fails, writing nothing.
pub async fn run(options: Options, interrupted: impl Future<Output = &'static str>) -> Result<Vec<BackendResult>> {
    let mut interrupted = std::pin::pin!(interrupted);
    let started_at = Utc::now();
    // Before the long measurements: a missing font fails now, not after an hour.
    plot::register_font()?;
    if options.pacing {
        // Its stores live on servers of its own, stopped and removed when dropped.
        tokio::select! {
            paced = run_pacing(&options, started_at) => paced?,
            signal = &mut interrupted => return Err(format!("interrupted by {signal}").into()),
        }
        return Ok(Vec::new());
    }
    progress(format!("purge benchmark, {} jobs", options.jobs));
    let temporary;
    let work_dir = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?
        }
        None => {
            temporary = tempfile::tempdir().context("cannot create a temporary work directory")?;
            temporary.path().to_path_buf()
        }
    };
    let backends = options.engines();
    let machine = machine::describe(&backends, &options.servers.postgres_url, &options.servers.mariadb_url).await?;
    let mut results = Vec::new();
    for backend in backends {
        let mut stores = Stores::new(backend, &work_dir, options.servers.admin_url(backend));
        let measured = tokio::select! {
            measured = measure_backend(&options, &mut stores) => measured,
            signal = &mut interrupted => Err(format!("interrupted by {signal}").into()),
        };
        let removed = stores.remove_all().await;
        results.push(measured.with_context(|| format!("{} benchmark", backend.title()))?);
        removed?;
    }
    std::fs::create_dir_all(&options.report_dir)
        .with_context(|| format!("cannot create the report directory {}", options.report_dir.display()))?;
    report::write(&options.report_dir.join("benchmarks.md"), &options, &machine, started_at, &results, PLOT_FILE)?;
    plot::draw(&options.report_dir.join(PLOT_FILE), &results)?;
    progress(format!("report written to {}", options.report_dir.join("benchmarks.md").display()));
    for result in &results {
        for run in result.deletion_runs() {
            for problem in run.checks.problems() {
                eprintln!("WARNING: {} {}: {problem}", result.backend.name(), run.variant);
            }
        }
        println!("{}", result.summary_line());
    }
    Ok(results)
}

/// The pacing measurements alone, written into the report's pacing section.
async fn run_pacing(options: &Options, started_at: DateTime<Utc>) -> Result<()> {
    if options.replay_run_ms > options.replay_period_ms {
        return Err("--replay-run-ms cannot be longer than --replay-period-ms".into());
    }
    progress(format!("pacing benchmark, a backlog of {} jobs", options.backlog_jobs));
    let machine = machine::describe(&[], &options.servers.postgres_url, &options.servers.mariadb_url).await?;
    let pacing = pacing::measure(options).await?;
    std::fs::create_dir_all(&options.report_dir)
        .with_context(|| format!("cannot create the report directory {}", options.report_dir.display()))?;
    let path = options.report_dir.join("benchmarks.md");
    pacing_report::write(&path, options, &machine, started_at, &pacing)?;
    progress(format!("pacing section written to {}", path.display()));
    for run in &pacing.runs {
        for problem in run.run.checks.problems() {
            eprintln!("WARNING: pacing {}: {problem}", run.run.variant);
        }
        println!(
            "pacing {} rows_per_s={:.0} largest_lag_s={:.1}",
            run.run.variant,
            run.run.rows_per_second(),
            run.largest_lag_s()
        );
    }
    Ok(())
}

/// The two ways of deleting that are compared.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// The hand-written single statement (`baseline`).
    Baseline,
    /// `retentiond purge` as a process (`sweep_process`).
    Sweep,
}

impl Method {
    async fn purge(self, store: &BenchStore) -> Result<Purged> {
        match self {
            Method::Baseline => baseline::run(store).await,
            Method::Sweep => sweep_process::run(store).await,
        }
    }

    /// [`Method::purge`] with nothing else running, so that on MariaDB it
    /// is also timed until InnoDB has removed the deleted rows: the single
    /// statement leaves all of that work for after its commit, the purge's
    /// batches have most of it done while they run.
    async fn purge_alone(self, store: &BenchStore) -> Result<Purged> {
        let mut purged = self.purge(store).await?;
        if store.backend() != Engine::MariaDb {
            return Ok(purged);
        }
        let stores::Conn::MariaDb(mut conn) = store.connect().await? else {
            return Err("a MariaDB store without a MariaDB connection".into());
        };
        let purging = stores::history_purged(&mut conn).await?;
        sqlx::Connection::close(conn).await.context("closing a connection")?;
        if purging.is_none() {
            progress(format!("mariadb: {}: InnoDB's history list did not empty", store.variant));
        }
        purged.until_purged = purging.map(|purging| purged.elapsed + purging);
        Ok(purged)
    }

    fn name(self) -> &'static str {
        match self {
            Method::Baseline => "baseline",
            Method::Sweep => "retentiond purge",
        }
    }
}

async fn measure_backend(options: &Options, stores: &mut Stores) -> Result<BackendResult> {
    let backend = stores.backend();
    let name = backend.name();
    progress(format!("{name}: seeding {} jobs (retentiond jobs seed)", options.jobs));
    let seeded = seed::seed(stores, options.jobs).await?;
    progress(format!("{name}: seeded {} jobs, {} eligible", seeded.jobs, seeded.eligible_then));

    let baseline = alone(stores, &seeded, variant(Shape::Seeded, Method::Baseline), Method::Baseline).await?;

    let store = stores.copy(&seeded.store, variant(Shape::Seeded, Method::Sweep)).await?;
    let purged = Method::Sweep.purge_alone(&store).await?;
    let wait = Duration::from_secs(options.autovacuum_wait_seconds);
    let space = space::measure(&store, purged.deleted, wait).await.context("measuring the space after the purge")?;
    let sweep = check(&store, &seeded, variant(Shape::Seeded, Method::Sweep), purged, 0).await?;
    stores.remove(&store).await?;
    let seeded_comparison = Comparison { shape: Shape::Seeded, baseline, sweep };

    let store = stores.copy(&seeded.store, "writer_alone").await?;
    progress(format!("{name}: writer alone for {} s", options.writer_idle_seconds));
    let writer = writer::Writer::start(&store, options.writer_rate).await?;
    tokio::time::sleep(Duration::from_secs(options.writer_idle_seconds)).await;
    let log = writer.stop().await?;
    let writer_alone = writer::Condition::whole("no purge", log)?;
    stores.remove(&store).await?;

    let (baseline_with_writer, writer_during_baseline) =
        with_writer(options, stores, &seeded, "baseline_writer", Method::Baseline).await?;
    let (sweep_with_writer, writer_during_sweep) =
        with_writer(options, stores, &seeded, "sweep_writer", Method::Sweep).await?;

    progress(format!("{name}: rewriting the seeded store's jobs in a scrambled order"));
    let shuffled = shuffle::shuffled_store(stores, &seeded).await?;
    stores.remove(&seeded.store).await?;
    let mut other_shapes = vec![compare_on_copies(stores, &shuffled, Shape::Shuffled).await?];
    stores.remove(&shuffled.store).await?;

    let mut sizes = vec![options.jobs, options.idle_jobs];
    sizes.dedup();
    let mut idle = Vec::new();
    for jobs in sizes {
        progress(format!("{name}: building an idle store of {jobs} jobs"));
        let store = synthetic::idle_store(stores, jobs).await?;
        idle.push(idle::measure(&store, jobs).await?);
        stores.remove(&store).await?;
    }

    if options.backlog_jobs > 0 {
        progress(format!("{name}: building a backlog store of {} eligible jobs", options.backlog_jobs));
        let backlog = synthetic::backlog_store(stores, options.backlog_jobs).await?;
        other_shapes.push(compare_on_copies(stores, &backlog, Shape::Backlog).await?);
        stores.remove(&backlog.store).await?;
    }

    if backend == Engine::Postgres && options.no_stats_jobs > 0 {
        other_shapes.push(compare_without_statistics(stores, options.no_stats_jobs).await?);
    }

    Ok(BackendResult {
        backend,
        seeded: seeded_comparison,
        other_shapes,
        baseline_with_writer,
        sweep_with_writer,
        writer_alone,
        writer_during_baseline,
        writer_during_sweep,
        idle,
        space,
    })
}

/// `shape` deleted both ways, each on its own copy of `source`, nothing else
/// running. The purge goes first, so the memory the single statement leaves
/// in this process (on SQLite every deleted job passes through it) is not in
/// the purge's `ru_maxrss`, which starts from this process's.
async fn compare_on_copies(stores: &mut Stores, source: &Seeded, shape: Shape) -> Result<Comparison> {
    progress(format!(
        "{}: {} store of {} jobs, {} eligible",
        stores.backend().name(),
        shape.name(),
        source.jobs,
        source.eligible_then
    ));
    let sweep = alone(stores, source, variant(shape, Method::Sweep), Method::Sweep).await?;
    let baseline = alone(stores, source, variant(shape, Method::Baseline), Method::Baseline).await?;
    Ok(Comparison { shape, baseline, sweep })
}

/// PostgreSQL: both ways on stores without planner statistics, each built
/// fresh by the same load right before it is deleted (`no_statistics`).
async fn compare_without_statistics(stores: &mut Stores, jobs: u64) -> Result<Comparison> {
    let sweep = without_statistics(stores, jobs, Method::Sweep).await?;
    let baseline = without_statistics(stores, jobs, Method::Baseline).await?;
    Ok(Comparison { shape: Shape::NoStatistics, baseline, sweep })
}

/// One deletion on a fresh store without statistics.
async fn without_statistics(stores: &mut Stores, jobs: u64, method: Method) -> Result<DeletionRun> {
    let name = variant(Shape::NoStatistics, method);
    progress(format!("{}: loading {jobs} jobs without statistics for {}", stores.backend().name(), method.name()));
    let loaded = no_statistics::store(stores, jobs, name).await?;
    no_statistics::ensure_absent(&loaded.store).await?;
    let purged = method.purge(&loaded.store).await?;
    let run = check(&loaded.store, &loaded, name, purged, 0).await?;
    stores.remove(&loaded.store).await?;
    Ok(run)
}

/// The store name of a shape's deleting variant, e.g. `shuffled_sweep`.
fn variant(shape: Shape, method: Method) -> &'static str {
    match (shape, method) {
        (Shape::Seeded, Method::Baseline) => "baseline",
        (Shape::Seeded, Method::Sweep) => "sweep",
        (Shape::Shuffled, Method::Baseline) => "shuffled_baseline",
        (Shape::Shuffled, Method::Sweep) => "shuffled_sweep",
        (Shape::Backlog, Method::Baseline) => "backlog_baseline",
        (Shape::Backlog, Method::Sweep) => "backlog_sweep",
        (Shape::NoStatistics, Method::Baseline) => "no_stats_baseline",
        (Shape::NoStatistics, Method::Sweep) => "no_stats_sweep",
    }
}

/// A deleting variant on a copy of the seed, with nothing else running.
async fn alone(stores: &mut Stores, seeded: &Seeded, variant: &'static str, method: Method) -> Result<DeletionRun> {
    let store = stores.copy(&seeded.store, variant).await?;
    let purged = method.purge_alone(&store).await?;
    let run = check(&store, seeded, variant, purged, 0).await?;
    stores.remove(&store).await?;
    Ok(run)
}

/// A deleting variant on a copy of the seed while the writer runs: the writer
/// starts [`WRITER_MARGIN`] before the purge and stops as long after it.
async fn with_writer(
    options: &Options,
    stores: &mut Stores,
    seeded: &Seeded,
    variant: &'static str,
    method: Method,
) -> Result<(DeletionRun, writer::Condition)> {
    let store = stores.copy(&seeded.store, variant).await?;
    progress(format!("{}: {} with the writer", stores.backend().name(), method.name()));
    let writer = writer::Writer::start(&store, options.writer_rate).await?;
    tokio::time::sleep(WRITER_MARGIN).await;
    let purge_started = Instant::now();
    let purged = method.purge(&store).await?;
    let purge_ended = Instant::now();
    tokio::time::sleep(WRITER_MARGIN).await;
    let log = writer.stop().await?;
    let inserted = log.inserted;
    let condition = writer::Condition::during(&format!("during {}", method.name()), log, purge_started, purge_ended)?;
    let run = check(&store, seeded, variant, purged, inserted).await?;
    stores.remove(&store).await?;
    Ok((run, condition))
}

/// Checks a variant's store after its purge, and reports it.
async fn check(
    store: &BenchStore,
    seeded: &Seeded,
    variant: &'static str,
    purged: Purged,
    inserted: u64,
) -> Result<DeletionRun> {
    let checks = Checks::verify(store, seeded, &purged, inserted).await?;
    let run = DeletionRun { variant, purged, checks };
    progress(format!(
        "{}: {variant}: deleted {} jobs in {:.2} s ({:.0} rows/s)",
        store.backend().name(),
        run.purged.deleted,
        run.purged.elapsed.as_secs_f64(),
        run.rows_per_second()
    ));
    for problem in run.checks.problems() {
        progress(format!("WARNING: {} {variant}: {problem}", store.backend().name()));
    }
    Ok(run)
}

/// A progress message on stderr, with the time since the benchmark started.
fn progress(message: impl fmt::Display) {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[purge bench {:>8.1} s] {message}", start.elapsed().as_secs_f64());
}
