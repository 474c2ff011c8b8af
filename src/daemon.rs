//! `retentiond run` (docs/design.md, "The daemon"): sweeps on a schedule until told to stop.
//!
//! Start: HTTP endpoints first (so `/healthz` answers while the database is
//! still out of reach), then the store, retried until it opens, then
//! `READY=1` and the schedule. A tick starts a sweep unless it falls outside
//! every `schedule.window` (skipped: `window`; a sweep started inside one
//! stops at its end), one is running (skipped: `overlap`), the database
//! refuses writes (skipped: `read_only`, and `/readyz` says why until it
//! takes them again) or, with `schedule.singleton`, another replica holds
//! the store's sweep lock (skipped: `not_leader`). A sweep runs in a task of
//! its own, so its errors and panics are logged and counted and the next
//! tick runs as usual. SIGHUP reloads the configuration file; SIGTERM/SIGINT
//! stop the ticks, let the batch in flight finish, and exit within
//! `shutdown.grace` even if the database does not answer.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, DatabaseSettings, Overrides, ScheduleSettings, Settings, format_duration};
use crate::error::Error;
use crate::http::{self, Limits, NotReady, Readiness};
use crate::identity::ProcessIdentity;
use crate::metrics::{self, Outcome, SkipReason};
use crate::notify;
use crate::scheduler::{self, CronSchedule, Timetable, WindowState, Windows};
use crate::signals;
use crate::store::{self, Store, StoreError};
use crate::sweep::{self, SweepPlan, SweepReport};
use crate::telemetry::LogLevel;
use crate::ui::{self, Access, DaemonView};

/// How often the database is asked whether it answers, for `/readyz`.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait between two attempts to open the store at start.
const MAX_OPEN_RETRY: Duration = Duration::from_secs(30);

/// Where the configuration came from, to read it again on SIGHUP.
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
}

pub async fn run(settings: Settings, source: ConfigSource, log_level: LogLevel) -> Result<(), Error> {
    let stop = CancellationToken::new();
    let (reload_tx, mut reload_rx) = mpsc::channel(1);
    let signals = signals::listen(stop.clone(), Some(reload_tx))?;
    let metrics_handle = metrics::install()?;
    let readiness = Arc::new(Readiness::new());
    let timetable = Timetable::new(
        CronSchedule::new(&settings.schedule.cron, &settings.schedule.timezone)?,
        Windows::new(&settings.schedule.window, &settings.schedule.timezone)?,
        metrics::next_sweep_at,
    );
    let view = DaemonView::new(Arc::new(settings.clone()), readiness.clone(), timetable.clone());
    // Empty disables the server; any other value was validated with the configuration.
    let server = match settings.metrics.listen.parse() {
        Ok(address) => {
            let pages = ui::router(view.clone(), Access::from_settings(&settings.ui, address)?);
            let listener = http::bind(address).await?;
            let limits = Limits::for_this_process(database_descriptors(&settings.database));
            tracing::info!(
                %address,
                pages = settings.ui.enabled,
                max_connections = limits.max_connections,
                "serving /metrics, /healthz, /readyz and the status pages"
            );
            Some(http::serve(listener, metrics_handle, readiness.clone(), pages, limits, stop.clone()))
        }
        Err(_) => None,
    };

    let store = tokio::select! {
        store = open_store(&settings.database, &readiness) => store?,
        () = stop.cancelled() => {
            tracing::info!("stopped before the store was open");
            return Ok(());
        }
    };
    let store: Arc<dyn Store> = Arc::from(store);
    view.store_opened(store.clone());
    let daemon = Arc::new(Daemon {
        store,
        settings: RwLock::new(Arc::new(settings)),
        identity: ProcessIdentity::current(),
        readiness,
        recheck: Notify::new(),
        sweeping: Arc::new(Mutex::new(())),
        sweeps: TaskTracker::new(),
        stop: stop.clone(),
        timetable: timetable.clone(),
    });
    daemon.check_readiness().await;
    let watcher = tokio::spawn(daemon.clone().watch_readiness());
    let settings = daemon.settings();
    let ticker = daemon.clone();
    let clock = scheduler::spawn(timetable, stop.clone(), move || ticker.tick());
    daemon.log_next_tick(&settings.schedule, "daemon started");
    notify::ready(&format!("ready; schedule {} in {}", settings.schedule.cron, settings.schedule.timezone));
    let watchdog = notify::spawn_watchdog(stop.clone());
    if settings.schedule.run_on_start {
        daemon.tick();
    }

    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(()) = reload_rx.recv() => {
                daemon.reload_credentials().await;
                daemon.reload(&source, &log_level);
                view.settings_changed(daemon.settings());
            }
        }
    }

    let stopping = Instant::now();
    notify::stopping();
    let grace = daemon.settings().shutdown.grace;
    tracing::info!(grace = %format_duration(grace), "stopping: no new sweeps; waiting for the one in flight");
    daemon.sweeps.close();
    // The clock stops at once on `stop`; bounded all the same.
    let _ = tokio::time::timeout(grace, clock).await;
    let left = grace.saturating_sub(stopping.elapsed());
    let swept = tokio::time::timeout(left, daemon.sweeps.wait()).await.is_ok();
    if !swept {
        tracing::warn!(
            grace = %format_duration(grace),
            "shutdown.grace has passed with a sweep in flight: exiting; its open transaction rolls back, \
             and the next sweep marks its run abandoned"
        );
    }
    signals.close();
    watcher.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if let Some(server) = server {
        let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    }
    // A sweep still in flight keeps its sessions until the process exits.
    if swept {
        let _ = tokio::time::timeout(Duration::from_secs(1), daemon.store.close()).await;
    }
    tracing::info!(elapsed_ms = stopping.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// The most descriptors the store may hold open: PostgreSQL's two pools and
/// its kept sessions, or SQLite's database, `-wal` and `-shm` files per
/// connection, with room to spare.
fn database_descriptors(settings: &DatabaseSettings) -> u64 {
    4 * u64::from(settings.max_connections) + 16
}

/// Opens the store, retrying while the database cannot be reached or
/// migrated: the daemon waits for it rather than exiting. A URL the daemon
/// cannot use at all ends the start.
async fn open_store(settings: &DatabaseSettings, readiness: &Readiness) -> Result<Box<dyn Store>, StoreError> {
    let mut delay = Duration::from_secs(1);
    loop {
        match store::open(settings).await {
            Ok(store) => return Ok(store),
            Err(error @ (StoreError::UnsupportedUrl(_) | StoreError::File(_))) => return Err(error),
            Err(error) => {
                tracing::error!(%error, retry_in = %format_duration(delay), "cannot open the store; retrying");
                readiness.set(Err(NotReady::of(&error)));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_OPEN_RETRY);
            }
        }
    }
}

struct Daemon {
    store: Arc<dyn Store>,
    /// The configuration in force; a reload swaps it whole.
    settings: RwLock<Arc<Settings>>,
    identity: ProcessIdentity,
    readiness: Arc<Readiness>,
    /// Asks the readiness watcher to check now (after a failed sweep).
    recheck: Notify,
    /// Held while a sweep runs: a tick that cannot take it is an overlap.
    sweeping: Arc<Mutex<()>>,
    /// The sweeps in flight, waited for at shutdown.
    sweeps: TaskTracker,
    stop: CancellationToken,
    /// The schedule in force and its next tick.
    timetable: Timetable,
}

impl Daemon {
    fn settings(&self) -> Arc<Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A tick of the schedule (or the start): starts a sweep, unless the
    /// tick is outside every window or a sweep runs.
    fn tick(self: &Arc<Self>) {
        if self.stop.is_cancelled() {
            return;
        }
        let windows = self.timetable.windows();
        let window_closes = match windows.at(Utc::now()) {
            WindowState::Open { closes } => closes,
            WindowState::Closed { opens } => {
                let next_window_local = windows.log_skipped(opens, "sweep skipped: outside schedule.window");
                metrics::sweep_skipped(SkipReason::Window);
                notify::status(&format!("outside schedule.window; the next window opens at {next_window_local}"));
                return;
            }
        };
        let Ok(guard) = self.sweeping.clone().try_lock_owned() else {
            tracing::info!(reason = "overlap", "sweep skipped: the previous one is still running");
            metrics::sweep_skipped(SkipReason::Overlap);
            return;
        };
        let daemon = self.clone();
        self.sweeps.spawn(async move {
            let _guard = guard;
            notify::status(&survive_panic(daemon.sweep(window_closes)).await);
            daemon.log_next_tick(&daemon.settings().schedule, "next sweep");
        });
    }

    /// Logs `message` with the schedule, its windows, and its next tick in
    /// UTC and in the schedule's zone.
    fn log_next_tick(&self, schedule: &ScheduleSettings, message: &str) {
        let (next_tick, next_tick_local) = match self.timetable.next_tick() {
            Some(next) => (next.utc_text(), next.local_text()),
            None => ("none".into(), "none: the schedule never fires again".into()),
        };
        let window = self.timetable.windows().describe();
        tracing::info!(
            cron = schedule.cron,
            timezone = schedule.timezone,
            window,
            next_tick,
            next_tick_local,
            "{message}"
        );
    }

    /// A sweep that failed before it began: logged, counted, readiness rechecked.
    fn failed_at_start(&self, started: &str, clock: Instant, error: String) -> String {
        tracing::error!(error, "sweep failed; the next tick tries again");
        metrics::sweep_ended(Outcome::Failed, clock.elapsed());
        self.recheck.notify_one();
        format!("last sweep at {started} failed: {error}")
    }

    /// One scheduled sweep, which stops at `window_closes` (the end of the
    /// window its tick fell in); returns the status line for systemd.
    async fn sweep(&self, window_closes: Option<DateTime<Utc>>) -> String {
        let settings = self.settings();
        let clock = Instant::now();
        let started = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        match self.store.read_only().await {
            Ok(None) => {}
            Ok(Some(reason)) => {
                tracing::warn!(reason = "read_only", database = %reason, "sweep skipped: the database is read-only");
                metrics::sweep_skipped(SkipReason::ReadOnly);
                self.readiness.set(Err(NotReady::of(&StoreError::ReadOnly(reason))));
                return format!("sweep at {started} skipped: the database is read-only");
            }
            Err(error) => {
                let error = format!("cannot tell whether the database takes writes: {error}");
                return self.failed_at_start(&started.to_string(), clock, error);
            }
        }
        let singleton = settings.schedule.singleton;
        if singleton {
            match self.store.try_lead().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(reason = "not_leader", "sweep skipped: another replica is sweeping");
                    metrics::sweep_skipped(SkipReason::NotLeader);
                    return format!("sweep at {started} skipped: another replica is sweeping");
                }
                Err(error) => {
                    let error = format!("cannot take the singleton lock: {error}");
                    return self.failed_at_start(&started.to_string(), clock, error);
                }
            }
        }
        let mut plan = SweepPlan::new(&settings.retention, "schedule");
        plan.window_closes = window_closes;
        let result = sweep::sweep(self.store.as_ref(), &plan, &self.identity, &self.stop).await;
        if singleton {
            self.store.end_lead().await;
        }
        match result {
            Ok(report) => {
                self.readiness.set(Ok(()));
                status_line(&started.to_string(), &report)
            }
            Err(error) => {
                tracing::error!(%error, "sweep failed; the next tick tries again");
                self.recheck.notify_one();
                format!("last sweep at {started} failed: {error}")
            }
        }
    }

    /// Checks readiness every few seconds and after a failed sweep.
    async fn watch_readiness(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(READINESS_INTERVAL) => {}
                () = self.recheck.notified() => {}
                () = self.stop.cancelled() => return,
            }
            self.check_readiness().await;
        }
    }

    /// Asks the database whether it answers and takes writes, for `/readyz`.
    async fn check_readiness(&self) {
        let timeout = self.settings().database.connect_timeout;
        let check = async {
            self.store.now().await?;
            match self.store.read_only().await? {
                Some(reason) => Err(StoreError::ReadOnly(reason)),
                None => Ok(()),
            }
        };
        let finding = match tokio::time::timeout(timeout, check).await {
            Ok(result) => result.map_err(|error| NotReady::of(&error)),
            Err(_) => {
                Err(NotReady::no_answer(format!("the database did not answer within {}", format_duration(timeout))))
            }
        };
        self.readiness.set(finding);
    }

    /// Reads the configuration file again. An invalid one changes nothing.
    /// The schedule, retention and batch settings, the log level and the
    /// shutdown grace take effect; the database, the HTTP address, the
    /// status pages' settings and the log format need a restart and keep
    /// their old values meanwhile.
    fn reload(&self, source: &ConfigSource, log_level: &LogLevel) {
        let mut new = match config::load(source.file.clone(), &source.overrides) {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(%error, "configuration reload refused; the previous configuration stays in force");
                return;
            }
        };
        let old = self.settings();
        let schedule = &new.schedule;
        if (&schedule.cron, &schedule.timezone, &schedule.window)
            != (&old.schedule.cron, &old.schedule.timezone, &old.schedule.window)
        {
            let replacement = CronSchedule::new(&schedule.cron, &schedule.timezone)
                .and_then(|cron| Ok((cron, Windows::new(&schedule.window, &schedule.timezone)?)));
            match replacement {
                Ok((cron, windows)) => self.timetable.replace(cron, windows),
                Err(error) => {
                    tracing::error!(%error, "configuration reload refused; the previous configuration stays in force");
                    return;
                }
            }
        }
        if new.log.level != old.log.level
            && let Err(error) = log_level.set(&new.log.level)
        {
            tracing::warn!(%error, "log.level could not be changed");
        }
        let needs_restart = [
            ("database", new.database != old.database),
            ("metrics.listen", new.metrics.listen != old.metrics.listen),
            ("log.format", new.log.format != old.log.format),
            ("ui", new.ui != old.ui),
        ];
        for (key, changed) in needs_restart {
            if changed {
                tracing::warn!(key, "changed in the file; takes effect after a restart");
            }
        }
        new.database = old.database.clone();
        new.metrics.listen = old.metrics.listen.clone();
        new.log.format = old.log.format;
        new.ui = old.ui.clone();
        self.log_next_tick(&new.schedule, "configuration reloaded");
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
    }
}

impl Daemon {
    /// Reads the password file and TLS files again (a rotated password takes
    /// effect for new connections), whatever becomes of the rest of the reload.
    async fn reload_credentials(&self) {
        match self.store.reload_credentials().await {
            Ok(false) => {}
            Ok(true) => tracing::info!("database password and TLS files read again, for new connections"),
            Err(error) => tracing::error!(%error, "cannot read a database file again; the previous ones stay in use"),
        }
    }
}

fn status_line(started: &str, report: &SweepReport) -> String {
    let counts = &report.counts;
    format!(
        "last sweep at {started}: run {} stopped by {}, deleted {} (completed {}, closed {}, creating_idle {}, retain_until {}) \
         in {} ms",
        report.run_id.unwrap_or_default(),
        report.stopped_by.as_str(),
        report.total,
        counts.completed,
        counts.closed,
        counts.creating_idle,
        counts.retain_until,
        report.duration_ms
    )
}

/// Runs a sweep; a panic in it is logged and counted as a failed sweep
/// instead of unwinding further, and the status line says so.
async fn survive_panic(sweep: impl Future<Output = String>) -> String {
    let started = Instant::now();
    match AssertUnwindSafe(sweep).catch_unwind().await {
        Ok(status) => status,
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!(panic = message, "sweep panicked; the next tick runs as usual");
            metrics::sweep_ended(Outcome::Failed, started.elapsed());
            format!("last sweep panicked: {message}")
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_sweep_is_reported_and_the_next_one_runs() {
        let status = survive_panic(async { panic!("injected failure") }).await;
        assert_eq!(status, "last sweep panicked: injected failure");
        let status = survive_panic(async { format!("last sweep: {}", 1 + 1) }).await;
        assert_eq!(status, "last sweep: 2");
    }
}
