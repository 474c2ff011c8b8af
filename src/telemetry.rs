//! Logging on stderr through `tracing`: pretty on a terminal, JSON otherwise
//! (or as `log.format` says). Results go to stdout and never through here.
//! The level can change while the daemon runs (SIGHUP reload); the format
//! is fixed at start.
//!
//! Lines are written to stderr by a thread of their own, through a buffer:
//! a sweep logs one audit line per deleted job, and a write system call for
//! each of them would cost more than deleting the job. Nothing is dropped
//! (the queue blocks when full), and [`LogGuard`] writes out what is queued.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::{LogFormat, LogSettings};

/// Noise at info, quietened unless `log.level` names these targets: sqlx
/// reports PostgreSQL notices (such as "relation already exists, skipping"
/// from every migration check), and the scheduler its own start-up steps.
const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn,tokio_cron_scheduler=warn";

/// Lines waiting for the writer thread at most; a logging thread waits beyond that.
const QUEUED_LINES: usize = 4096;

/// Changes the log level of the installed subscriber.
#[derive(Clone)]
pub struct LogLevel(Option<reload::Handle<EnvFilter, Registry>>);

impl LogLevel {
    /// Applies a level that the configuration has validated.
    pub fn set(&self, level: &str) -> Result<(), String> {
        let Some(handle) = &self.0 else { return Err("logging was set up elsewhere".into()) };
        handle.reload(filter(level)).map_err(|e| e.to_string())
    }
}

/// Parses `log.level` as a tracing filter. Spaces around the comma-separated
/// directives are dropped (tracing-subscriber would ignore a directive after
/// a space, and panics on some such input), and a panic in the parser is an
/// error here, never a crash.
pub fn parse_level(level: &str) -> Result<EnvFilter, String> {
    let directives: Vec<&str> = level.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    let directives = format!("{QUIET_NOTICES},{}", directives.join(","));
    std::panic::catch_unwind(|| EnvFilter::try_new(&directives))
        .map_err(|_| "the filter parser failed on it".to_owned())?
        .map_err(|e| e.to_string())
}

/// `level` was validated with the configuration, so it parses; a directive
/// in it for one of the quiet targets wins over the built-in one.
fn filter(level: &str) -> EnvFilter {
    parse_level(level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Keep it until the program ends: dropping it writes out the queued lines.
pub struct LogGuard {
    _flush_on_drop: Option<WorkerGuard>,
}

/// Installs the global subscriber.
pub fn init(settings: &LogSettings) -> (LogLevel, LogGuard) {
    let (filter, handle) = reload::Layer::new(filter(&settings.level));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        // A bound on the memory the queue takes (lines are a few hundred bytes).
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("retentiond-log")
        .finish(BufWriter::new(std::io::stderr()));
    let output = tracing_subscriber::fmt::layer().with_writer(writer);
    let output = if json { output.json().boxed() } else { output.boxed() };
    // A second init (tests that run several commands in one process) keeps the first.
    let installed = tracing_subscriber::registry().with(filter).with(output).try_init().is_ok();
    (LogLevel(installed.then_some(handle)), LogGuard { _flush_on_drop: installed.then_some(guard) })
}
