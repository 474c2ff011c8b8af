//! The settings themselves (SPEC §7): one nested `serde` struct per section
//! of the file, with the built-in defaults. `Serialize` writes the
//! check-config form: durations human-readable, policies `off` when off,
//! secrets redacted.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::secrets::{self, DatabaseUrl};
use super::values::{de_bool, de_uint, duration, policy_duration};
use crate::batch::BatchSize;
use crate::policy::Retentions;

/// The effective configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub retention: RetentionSettings,
    pub schedule: ScheduleSettings,
    pub metrics: MetricsSettings,
    pub ui: UiSettings,
    pub log: LogSettings,
    pub shutdown: ShutdownSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    #[serde(deserialize_with = "de_uint")]
    pub max_connections: u32,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    #[serde(with = "duration")]
    pub statement_timeout: Duration,
    #[serde(deserialize_with = "de_bool")]
    pub auto_migrate: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: DatabaseUrl::new("sqlite://retentiond.db".into()),
            max_connections: 4,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            auto_migrate: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    #[serde(with = "policy_duration")]
    pub completed: Option<Duration>,
    #[serde(with = "policy_duration")]
    pub closed: Option<Duration>,
    #[serde(with = "policy_duration")]
    pub creating_idle: Option<Duration>,
    #[serde(with = "duration")]
    pub minimum: Duration,
    pub batch_size: BatchSize,
    /// What one batch transaction should take when `batch_size` is `auto`.
    #[serde(with = "duration")]
    pub batch_budget: Duration,
    #[serde(with = "duration")]
    pub batch_pause: Duration,
    #[serde(deserialize_with = "de_uint")]
    pub max_deletes_per_run: u64,
    #[serde(with = "duration")]
    pub run_timeout: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            completed: Some(Duration::from_secs(90 * 86400)),
            closed: Some(Duration::from_secs(90 * 86400)),
            creating_idle: None,
            minimum: Duration::from_secs(86400),
            batch_size: BatchSize::Auto,
            batch_budget: Duration::from_millis(50),
            batch_pause: Duration::ZERO,
            max_deletes_per_run: 0,
            run_timeout: Duration::from_secs(3600),
        }
    }
}

impl RetentionSettings {
    pub fn retentions(&self) -> Retentions {
        Retentions { completed: self.completed, closed: self.closed, creating_idle: self.creating_idle }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    pub cron: String,
    pub timezone: String,
    #[serde(deserialize_with = "de_bool")]
    pub run_on_start: bool,
    #[serde(deserialize_with = "de_bool")]
    pub singleton: bool,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings { cron: "0 0 * * * *".into(), timezone: "UTC".into(), run_on_start: true, singleton: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: String,
    /// Serialized with any password redacted, like `database.url`.
    #[serde(serialize_with = "secrets::ser_redacted_url")]
    pub pushgateway: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { listen: "127.0.0.1:9464".into(), pushgateway: String::new() }
    }
}

/// The status pages the daemon serves beside `/metrics` (`crate::ui`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    #[serde(deserialize_with = "de_bool")]
    pub enabled: bool,
    /// A file holding the pages' password (relative: in `$CREDENTIALS_DIRECTORY`);
    /// empty for none. Required when `metrics.listen` is not a loopback address.
    pub password_file: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings { enabled: true, password_file: String::new() }
    }
}

impl UiSettings {
    /// Whether the pages ask for the password: always when a password file is
    /// set, and it must be set unless the pages are reachable from this host only.
    pub fn requires_password(&self) -> bool {
        self.enabled && !self.password_file.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

impl LogFormat {
    fn name(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        <LogFormat as clap::ValueEnum>::from_str(text.trim(), true)
            .map_err(|_| de::Error::custom(format!("invalid value {text:?}: expected auto, pretty or json")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: LogFormat::Auto, level: "info".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    #[serde(with = "duration")]
    pub grace: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings { grace: Duration::from_secs(30) }
    }
}
