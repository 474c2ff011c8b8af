//! Logging on stderr through `tracing`: pretty on a terminal, JSON otherwise
//! (or as `log.format` says). Results go to stdout and never through here.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// sqlx reports PostgreSQL notices (such as "relation already exists,
/// skipping" from every migration check) at info; they are noise here.
const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn";

/// Installs the global subscriber. `settings.level` was validated with the
/// configuration, so it parses here; a directive for the notices in it wins.
pub fn init(settings: &LogSettings) {
    let directives = format!("{QUIET_NOTICES},{}", settings.level);
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests that run several commands in one process) keeps the first.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
