//! The settings themselves (docs/design.md, "Configuration"): one nested `serde` struct per section
//! of the file, with the built-in defaults. `Serialize` writes the
//! check-config form: durations human-readable, policies `off` when off,
//! secrets redacted.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::secrets::{self, DatabaseUrl};
use super::values::{
    de_bool, de_uint, duration, optional_ssl_mode, override_duration, policy_duration, replica_urls, windows,
};
use crate::batch::BatchSize;
use crate::lifecycle::JobType;
use crate::policy::{PerPolicy, PerType, Policy, Retentions};
use crate::scheduler::Window;

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
    /// A file holding the password (see `crate::credentials`); empty: none.
    /// Shown as its name only: the content is read when connecting.
    pub password_file: String,
    /// `None` (empty in the file): the URL's `sslmode`, else `prefer`.
    #[serde(with = "optional_ssl_mode")]
    pub sslmode: Option<SslMode>,
    /// CA certificates (PEM) that verify the server; empty: the URL's, if any.
    pub sslrootcert: String,
    /// Client certificate (PEM) and its key; empty: the URL's, if any.
    pub sslcert: String,
    pub sslkey: String,
    #[serde(deserialize_with = "de_uint")]
    pub max_connections: u32,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    #[serde(with = "duration")]
    pub statement_timeout: Duration,
    #[serde(deserialize_with = "de_bool")]
    pub auto_migrate: bool,
    /// Replicas whose lag a sweep reads directly (`retention.max_replica_lag`),
    /// each a URL of the same engine; shown redacted, like `url`.
    #[serde(with = "replica_urls")]
    pub replicas: Vec<DatabaseUrl>,
}

/// The URL parameters sqlx reads as `sslmode`.
pub(super) const SSLMODE_PARAMETERS: &[&str] = &["sslmode", "ssl-mode"];

/// A file of the PostgreSQL TLS settings, set as a setting or in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `sslrootcert`: CA certificates that verify the server.
    RootCert,
    /// `sslcert`: the client certificate.
    ClientCert,
    /// `sslkey`: the client certificate's private key.
    ClientKey,
}

impl TlsFile {
    pub const ALL: [TlsFile; 3] = [TlsFile::RootCert, TlsFile::ClientCert, TlsFile::ClientKey];

    /// The setting's key.
    pub fn key(self) -> &'static str {
        match self {
            TlsFile::RootCert => "database.sslrootcert",
            TlsFile::ClientCert => "database.sslcert",
            TlsFile::ClientKey => "database.sslkey",
        }
    }

    /// The URL parameters sqlx reads for it; the first is libpq's name.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            TlsFile::RootCert => &["sslrootcert", "ssl-root-cert", "ssl-ca"],
            TlsFile::ClientCert => &["sslcert", "ssl-cert"],
            TlsFile::ClientKey => &["sslkey", "ssl-key"],
        }
    }

    /// The setting's value; empty when not set.
    pub(super) fn setting(self, db: &DatabaseSettings) -> &str {
        match self {
            TlsFile::RootCert => &db.sslrootcert,
            TlsFile::ClientCert => &db.sslcert,
            TlsFile::ClientKey => &db.sslkey,
        }
    }
}

impl DatabaseSettings {
    /// `statement_timeout` in milliseconds (validation keeps it within an `i64`).
    pub fn statement_timeout_ms(&self) -> i64 {
        self.statement_timeout.as_millis() as i64
    }

    /// The TLS mode set by `database.sslmode`, else by the URL's `sslmode`;
    /// `None`: neither (the driver's default, `prefer`, or `PGSSLMODE`).
    /// A value that does not parse counts as unset: validation refused it.
    pub fn ssl_mode(&self) -> Option<SslMode> {
        self.sslmode.or_else(|| self.url.parameter(SSLMODE_PARAMETERS).and_then(|mode| SslMode::parse(&mode).ok()))
    }

    /// The name of a TLS file and where it was set (the setting's key, or
    /// the URL parameter): the setting when not empty, else the URL's.
    pub fn tls_file(&self, file: TlsFile) -> Option<(String, String)> {
        let setting = file.setting(self);
        if !setting.is_empty() {
            return Some((file.key().to_owned(), setting.to_owned()));
        }
        self.url.named_parameter(file.parameters()).map(|(name, value)| (format!("{name} in database.url"), value))
    }
}

/// How a server's connection uses TLS, by libpq's names, or MariaDB's
/// (`disabled`, `preferred`, `required`, `verify_ca`, `verify_identity`),
/// which mean the same. `allow` is not offered: the driver treats it as `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, else plain TCP; nothing is verified.
    Prefer,
    /// TLS or no connection; the server is not verified (but see the store:
    /// with a CA file it verifies as `verify-ca` does, as libpq does).
    Require,
    /// TLS; the server's certificate must chain to a trusted CA.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Parses a mode by its libpq or MariaDB name (any case).
    pub fn parse(text: &str) -> Result<SslMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "disable" | "disabled" => Ok(SslMode::Disable),
            "prefer" | "preferred" => Ok(SslMode::Prefer),
            "require" | "required" => Ok(SslMode::Require),
            "verify-ca" | "verify_ca" => Ok(SslMode::VerifyCa),
            "verify-full" | "verify_identity" => Ok(SslMode::VerifyFull),
            "allow" => Err("sslmode allow is not supported (the driver would not use TLS at all); \
                 use disable, prefer, require, verify-ca or verify-full"
                .into()),
            _ => Err(format!("invalid sslmode {text:?}: expected disable, prefer, require, verify-ca or verify-full")),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: DatabaseUrl::new("sqlite://retentiond.db".into()),
            password_file: String::new(),
            sslmode: None,
            sslrootcert: String::new(),
            sslcert: String::new(),
            sslkey: String::new(),
            max_connections: 4,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            auto_migrate: true,
            replicas: Vec::new(),
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
    /// `[retention.by_type.import]`, `[retention.by_type.export]`: a job
    /// type's own retentions (docs/configuration.md).
    pub by_type: ByTypeSettings,
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
    /// Audit rows older than this are removed after the jobs (docs/design.md, "The audit trail"); `None` keeps them.
    #[serde(with = "policy_duration")]
    pub audit: Option<Duration>,
    /// Finished run records older than this are removed after the jobs; `None` keeps them.
    #[serde(with = "policy_duration")]
    pub runs: Option<Duration>,
    /// A sweep pauses between batches while a replica lags more than this
    /// (src/sweep/replica_pause.rs); `None`: replicas are not read.
    #[serde(with = "policy_duration")]
    pub max_replica_lag: Option<Duration>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            completed: Some(Duration::from_secs(90 * 86400)),
            closed: Some(Duration::from_secs(90 * 86400)),
            creating_idle: None,
            by_type: ByTypeSettings::default(),
            minimum: Duration::from_secs(86400),
            batch_size: BatchSize::Auto,
            batch_budget: Duration::from_millis(50),
            batch_pause: Duration::ZERO,
            max_deletes_per_run: 0,
            run_timeout: Duration::from_secs(3600),
            audit: None,
            runs: None,
            max_replica_lag: None,
        }
    }
}

impl RetentionSettings {
    /// The general retention of `policy` (`retention.completed`, ...).
    pub fn general(&self, policy: Policy) -> Option<Duration> {
        match policy {
            Policy::Completed => self.completed,
            Policy::Closed => self.closed,
            Policy::CreatingIdle => self.creating_idle,
            Policy::RetainUntil => Some(Duration::ZERO),
        }
    }

    /// Each rule's retention: the type's own where `by_type` sets it, else
    /// the general one; a job's own `retain_until` is due at that moment.
    pub fn retentions(&self) -> Retentions {
        let rules = PerPolicy::from_fn(|policy| {
            PerType::from_fn(|job_type| self.by_type[job_type].get(policy).unwrap_or(self.general(policy)))
        });
        Retentions { rules, minimum: self.minimum }
    }

    /// `by_type` with every key set to what applies: what `check-config` shows.
    pub fn effective_by_type(&self) -> ByTypeSettings {
        let retentions = self.retentions();
        let of = |job_type: JobType| TypeRetentions {
            completed: Some(retentions.completed[job_type]),
            closed: Some(retentions.closed[job_type]),
            creating_idle: Some(retentions.creating_idle[job_type]),
        };
        ByTypeSettings { import: of(JobType::Import), export: of(JobType::Export) }
    }
}

/// `[retention.by_type]`: one table per job type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ByTypeSettings {
    pub import: TypeRetentions,
    pub export: TypeRetentions,
}

impl std::ops::Index<JobType> for ByTypeSettings {
    type Output = TypeRetentions;

    fn index(&self, job_type: JobType) -> &TypeRetentions {
        match job_type {
            JobType::Import => &self.import,
            JobType::Export => &self.export,
        }
    }
}

/// A job type's retentions: `None` where not set (the general one applies),
/// `Some(None)` where set to `off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypeRetentions {
    #[serde(with = "override_duration", skip_serializing_if = "Option::is_none")]
    pub completed: Option<Option<Duration>>,
    #[serde(with = "override_duration", skip_serializing_if = "Option::is_none")]
    pub closed: Option<Option<Duration>>,
    #[serde(with = "override_duration", skip_serializing_if = "Option::is_none")]
    pub creating_idle: Option<Option<Duration>>,
}

impl TypeRetentions {
    pub fn get(&self, policy: Policy) -> Option<Option<Duration>> {
        match policy {
            Policy::Completed => self.completed,
            Policy::Closed => self.closed,
            Policy::CreatingIdle => self.creating_idle,
            Policy::RetainUntil => None,
        }
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
    /// The hours sweeps may delete in, on the zone's wall clock; empty: any time.
    #[serde(with = "windows")]
    pub window: Vec<Window>,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            cron: "0 0 * * * *".into(),
            timezone: "UTC".into(),
            run_on_start: true,
            singleton: true,
            window: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: String,
    /// Serialized with any password redacted, like `database.url`.
    #[serde(serialize_with = "secrets::ser_redacted_url")]
    pub pushgateway: String,
    /// CA certificates (PEM) that verify an `https://` gateway instead of
    /// the system's; empty: the system's.
    pub pushgateway_ca_file: String,
    /// A file holding the basic-authentication password for the user named
    /// in `pushgateway`; empty: none (or the URL's).
    pub pushgateway_password_file: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: "127.0.0.1:9464".into(),
            pushgateway: String::new(),
            pushgateway_ca_file: String::new(),
            pushgateway_password_file: String::new(),
        }
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
    /// The shortest password `ui.password_file` may hold.
    pub const MIN_PASSWORD_CHARS: usize = 16;

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
