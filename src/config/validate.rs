//! The rules a value must follow beyond its type, one function per section.
//! Every problem is reported, each naming its key and where it was set.

use std::net::SocketAddr;
use std::time::Duration;

use super::layers::Sources;
use super::secrets::redact_url;
use super::values::format_duration;
use super::{
    ConfigError, DatabaseSettings, MetricsSettings, RetentionSettings, ScheduleSettings, Settings, UiSettings,
};
use crate::batch::MAX_BATCH_SIZE;

/// One past the longest `database.statement_timeout`: 2^31 milliseconds.
const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_millis(1 << 31);

/// Problems found so far, each as "KEY …message… (set in …)".
struct Problems<'a> {
    sources: &'a Sources<'a>,
    found: Vec<String>,
}

impl Problems<'_> {
    fn add(&mut self, key: &str, message: String) {
        self.found.push(format!("{message}{}", self.sources.suffix(key)));
    }
}

impl Settings {
    /// Checks the rules that hold across keys; every problem is reported.
    pub(super) fn validate(&self, sources: &Sources<'_>) -> Result<(), ConfigError> {
        let mut problems = Problems { sources, found: Vec::new() };
        database(&self.database, &mut problems);
        retention(&self.retention, &mut problems);
        schedule(&self.schedule, &mut problems);
        metrics(&self.metrics, &mut problems);
        ui(&self.ui, &self.metrics, &mut problems);
        if let Err(err) = crate::telemetry::parse_level(&self.log.level) {
            problems.add(
                "log.level",
                format!(
                    "log.level = {:?} is not a valid filter (e.g. info, or warn,retentiond=debug): {err}",
                    self.log.level
                ),
            );
        }
        let text_settings = [
            ("database.url", self.database.url.expose()),
            ("schedule.cron", self.schedule.cron.as_str()),
            ("schedule.timezone", self.schedule.timezone.as_str()),
            ("metrics.listen", self.metrics.listen.as_str()),
            ("metrics.pushgateway", self.metrics.pushgateway.as_str()),
            ("ui.password_file", self.ui.password_file.as_str()),
            ("log.level", self.log.level.as_str()),
        ];
        for (key, value) in text_settings {
            if value.chars().any(char::is_control) {
                problems.add(key, format!("{key} contains a control character (the value is not shown)"));
            }
        }
        if problems.found.is_empty() { Ok(()) } else { Err(ConfigError(problems.found.join("; "))) }
    }
}

fn database(db: &DatabaseSettings, problems: &mut Problems<'_>) {
    let url = db.url.expose();
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        if url::Url::parse(url).is_err() {
            problems.add(
                "database.url",
                "database.url is not a valid URL (the value is not shown: it may hold a password); \
                 percent-encode reserved characters in the user and password (/ as %2F, @ as %40, # as %23)"
                    .into(),
            );
        }
    } else if !url.starts_with("sqlite:") {
        problems.add(
            "database.url",
            "database.url must start with sqlite:, postgres: or postgresql: (the value is not shown: it may hold a password)"
                .into(),
        );
    }
    if db.max_connections < 1 {
        problems.add("database.max_connections", "database.max_connections = 0 must be at least 1".into());
    }
    for (key, value) in
        [("database.connect_timeout", db.connect_timeout), ("database.statement_timeout", db.statement_timeout)]
    {
        if value.is_zero() {
            problems.add(key, format!("{key} = 0s must be greater than 0"));
        }
    }
    // Both drivers keep it in a 32-bit count of milliseconds.
    if db.statement_timeout >= MAX_STATEMENT_TIMEOUT {
        problems.add(
            "database.statement_timeout",
            format!("database.statement_timeout = {} is too long (at most 24d)", format_duration(db.statement_timeout)),
        );
    }
}

fn retention(ret: &RetentionSettings, problems: &mut Problems<'_>) {
    for (key, value) in [
        ("retention.completed", ret.completed),
        ("retention.closed", ret.closed),
        ("retention.creating_idle", ret.creating_idle),
    ] {
        if let Some(value) = value
            && value < ret.minimum
        {
            problems.add(
                key,
                format!(
                    "{key} = {} is below retention.minimum ({})",
                    format_duration(value),
                    format_duration(ret.minimum)
                ),
            );
        }
    }
    if !ret.batch_size.in_range() {
        problems.add(
            "retention.batch_size",
            format!("retention.batch_size = {} is out of range (auto, or 1 to {MAX_BATCH_SIZE})", ret.batch_size),
        );
    }
    if ret.batch_budget.is_zero() || ret.batch_budget > ret.run_timeout {
        problems.add(
            "retention.batch_budget",
            format!(
                "retention.batch_budget = {} must be more than 0 and at most retention.run_timeout ({})",
                format_duration(ret.batch_budget),
                format_duration(ret.run_timeout)
            ),
        );
    }
}

fn schedule(schedule: &ScheduleSettings, problems: &mut Problems<'_>) {
    let fields = schedule.cron.split_whitespace().count();
    if fields != 6 {
        problems.add(
            "schedule.cron",
            format!(
                "schedule.cron = {:?} has {fields} fields; it needs exactly six, seconds first (e.g. \"0 0 * * * *\" = hourly)",
                schedule.cron
            ),
        );
    } else if let Err(error) = crate::scheduler::check_cron(&schedule.cron) {
        problems.add(
            "schedule.cron",
            format!("schedule.cron = {:?} is not a valid cron expression: {error}", schedule.cron),
        );
    }
    if schedule.timezone != "UTC" {
        problems.add(
            "schedule.timezone",
            format!(
                "schedule.timezone = {:?} is not supported; use UTC (the scheduler computes a time zone's \
                 offset once, when the job is created, so it would not follow daylight-saving changes)",
                schedule.timezone
            ),
        );
    }
}

fn metrics(metrics: &MetricsSettings, problems: &mut Problems<'_>) {
    if !metrics.listen.is_empty() && metrics.listen.parse::<SocketAddr>().is_err() {
        problems.add(
            "metrics.listen",
            format!(
                "metrics.listen = {:?} is not a socket address (e.g. 127.0.0.1:9464 or [::]:9464; empty disables)",
                metrics.listen
            ),
        );
    }
    if !metrics.pushgateway.is_empty() {
        let ok = url::Url::parse(&metrics.pushgateway).is_ok_and(|u| u.scheme() == "http" && u.host().is_some());
        if !ok {
            problems.add(
                "metrics.pushgateway",
                format!(
                    "metrics.pushgateway = {:?} is not an http:// URL (e.g. http://pushgateway:9091; https is not supported; empty disables)",
                    redact_url(&metrics.pushgateway)
                ),
            );
        }
    }
}

/// Pages reachable from other hosts must ask for a password.
fn ui(ui: &UiSettings, metrics: &MetricsSettings, problems: &mut Problems<'_>) {
    let Ok(address) = metrics.listen.parse::<SocketAddr>() else { return };
    if ui.enabled && ui.password_file.is_empty() && !address.ip().is_loopback() {
        problems.add(
            "metrics.listen",
            format!(
                "ui.password_file is empty but metrics.listen = {:?} is not a loopback address: the status pages \
                 would be open to the network; set ui.password_file, bind metrics.listen to 127.0.0.1, or set \
                 ui.enabled = false",
                metrics.listen
            ),
        );
    }
}
