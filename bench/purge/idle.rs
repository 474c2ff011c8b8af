//! The idle sweep: what a sweep costs when nothing is eligible, which is
//! what the daemon does almost every hour. The store's partial indexes are
//! meant to make that independent of the store's size, so it is measured at
//! two sizes. It runs in-process through the library (`store::open`,
//! `sweep::sweep`) rather than as a process, so the timing is the sweep
//! itself — its run record, the eligibility and clock-skew counts — and not
//! process start-up and connecting. It is timed twice: with the default
//! retention (four rules: `completed` and `closed` per job type) and with
//! every per-type key set (`creating_idle` too), so that each rule the
//! configuration can enable is read from its index.

use std::time::{Duration, Instant};

use retentiond::config::{DatabaseSettings, DatabaseUrl, RetentionSettings};
use retentiond::identity::ProcessIdentity;
use retentiond::store::Store;
use retentiond::sweep::{SweepPlan, sweep};
use tokio_util::sync::CancellationToken;

use super::error::{Context, Result};
use super::stats::Summary;
use super::stores::BenchStore;

/// Past the sixth execution, where PostgreSQL's prepared statements switch
/// to their generic plans.
pub const WARM_UP_SWEEPS: usize = 10;
pub const TIMED_SWEEPS: usize = 200;
/// A pause between sweeps: back to back, one moment of a noisy machine
/// showed in all of them at once.
pub const GAP_BETWEEN_SWEEPS: Duration = Duration::from_millis(10);

/// The idle sweep at one store size, in milliseconds.
#[derive(Debug, Clone)]
pub struct IdleTiming {
    pub jobs: u64,
    /// With the default retention.
    pub sweeps: Summary,
    /// With [`per_type_overrides`].
    pub by_type: Summary,
}

/// Every per-type key set, each to its own age, all longer than the idle
/// store's 60 days: six rules enabled and nothing eligible.
pub fn per_type_overrides() -> RetentionSettings {
    let days = |days: u64| Some(Some(std::time::Duration::from_secs(days * 86_400)));
    let mut retention = RetentionSettings::default();
    let (import, export) = (&mut retention.by_type.import, &mut retention.by_type.export);
    (import.completed, import.closed, import.creating_idle) = (days(70), days(75), days(80));
    (export.completed, export.closed, export.creating_idle) = (days(65), days(85), days(61));
    retention
}

/// Times [`TIMED_SWEEPS`] sweeps of `store` (of `jobs` jobs) after
/// [`WARM_UP_SWEEPS`], with the default retention, then with [`per_type_overrides`].
pub async fn measure(store: &BenchStore, jobs: u64) -> Result<IdleTiming> {
    let settings = DatabaseSettings { url: DatabaseUrl::new(store.url.clone()), ..DatabaseSettings::default() };
    let opened = retentiond::store::open(&settings)
        .await
        .with_context(|| format!("retentiond cannot open the {} store", store.variant))?;
    let sweeps = time_sweeps(opened.as_ref(), store, &RetentionSettings::default()).await?;
    let by_type = time_sweeps(opened.as_ref(), store, &per_type_overrides()).await?;
    super::progress(format!(
        "{}: idle sweep of {jobs} jobs: median {:.3} ms, p99 {:.3} ms; with per-type retention: median {:.3} ms, p99 {:.3} ms",
        store.backend().name(),
        sweeps.p50,
        sweeps.p99,
        by_type.p50,
        by_type.p99
    ));
    Ok(IdleTiming { jobs, sweeps, by_type })
}

async fn time_sweeps(opened: &dyn Store, store: &BenchStore, retention: &RetentionSettings) -> Result<Summary> {
    let plan = SweepPlan::new(retention, "purge");
    let identity = ProcessIdentity::current();
    let stop = CancellationToken::new();
    let mut durations = Vec::with_capacity(TIMED_SWEEPS);
    for round in 0..WARM_UP_SWEEPS + TIMED_SWEEPS {
        let started = Instant::now();
        let report = sweep(opened, &plan, &identity, &stop)
            .await
            .with_context(|| format!("idle sweep of the {} store", store.variant))?;
        let elapsed = started.elapsed();
        if report.total != 0 {
            return Err(format!("the idle store {} had {} eligible jobs", store.variant, report.total).into());
        }
        if round >= WARM_UP_SWEEPS {
            durations.push(elapsed.as_secs_f64() * 1e3);
        }
        tokio::time::sleep(GAP_BETWEEN_SWEEPS).await;
    }
    Ok(Summary::of(durations).ok_or("no idle sweep was timed")?)
}
