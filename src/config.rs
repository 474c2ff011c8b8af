//! Configuration (SPEC §7): nested settings with built-in defaults, overlaid by
//! the TOML file, then `RETENTIOND__SECTION__KEY` environment variables, then
//! command-line flags. Unknown keys and bad values are errors naming the key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::batch::{BatchSize, MAX_BATCH_SIZE};
use crate::policy::Retentions;

/// One past the longest `database.statement_timeout`: 2^31 milliseconds.
const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_millis(1 << 31);

/// The environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "RETENTIOND_CONFIG";

/// Environment variables `RETENTIOND__SECTION__KEY` override file settings.
const ENV_PREFIX: &str = "RETENTIOND";
const ENV_SEPARATOR: &str = "__";

/// What replaces a password in anything shown.
const REDACTED: &str = "REDACTED";

/// The effective configuration.
///
/// `Serialize` writes the check-config form: durations human-readable,
/// policies `off` when off, and passwords in URLs redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub retention: RetentionSettings,
    pub schedule: ScheduleSettings,
    pub metrics: MetricsSettings,
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

/// `database.url`; it may hold a password, so it is kept secret and shown only redacted.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: String) -> Self {
        DatabaseUrl(SecretString::from(url))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with the password (in the userinfo, or a `password=` query
    /// parameter) replaced by `REDACTED`; a URL without one is shown as is.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }

    /// The raw (percent-decoded) password, from the userinfo or else from a
    /// `password=` query parameter; `None` when the URL holds none.
    pub fn password(&self) -> Option<String> {
        url_password(self.expose())
    }

    /// `text` (typically a foreign error message) with the URL and its
    /// password replaced by their redacted forms.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if !self.expose().is_empty() {
            out = out.replace(self.expose(), &self.redacted());
        }
        for secret in url_secrets(self.expose()) {
            out = replace_whole(&out, &secret, REDACTED);
        }
        out
    }
}

/// `text` with `secret` replaced. A short secret (under 8 characters) is
/// replaced only where it is not part of a longer word: a password such as
/// `on` must not turn "Connection" into "CREDACTEDnectiREDACTED", which would
/// also show where it occurs. A longer one is replaced wherever it appears.
fn replace_whole(text: &str, secret: &str, replacement: &str) -> String {
    if secret.chars().count() >= 8 {
        return text.replace(secret, replacement);
    }
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(secret) {
        let before = rest[..at].chars().next_back().or_else(|| out.chars().next_back());
        let after = rest[at + secret.len()..].chars().next();
        let glued_before = is_word(before) && secret.starts_with(char::is_alphanumeric);
        let glued_after = is_word(after) && secret.ends_with(char::is_alphanumeric);
        let whole = !glued_before && !glued_after;
        out.push_str(&rest[..at]);
        out.push_str(if whole { replacement } else { secret });
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for DatabaseUrl {}

/// Serializes the redacted form only.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Never echo the value in an error: it may hold a password.
        String::deserialize(deserializer).map(DatabaseUrl::new)
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
    #[serde(serialize_with = "ser_redacted_url")]
    pub pushgateway: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { listen: "127.0.0.1:9464".into(), pushgateway: String::new() }
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

/// Command-line flags that override the loaded settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Loads the settings: defaults, then `file` (or `RETENTIOND_CONFIG`), then
/// the environment, then `overrides`; validates the result.
pub fn load(file: Option<PathBuf>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    load_from(file, process_env()?, overrides)
}

impl Settings {
    /// The effective configuration as TOML, with the password redacted. It
    /// loads back as a configuration file giving the same settings (bar the
    /// redacted password).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).expect("settings always serialize to TOML")
    }

    /// Checks the rules that hold across keys; every problem is reported.
    fn validate(&self, sources: &Sources<'_>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push(format!("{message}{}", sources.suffix(key)));

        let db = &self.database;
        let url = db.url.expose();
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| url.starts_with(scheme)) {
            problem(
                "database.url",
                "database.url must start with sqlite:, postgres: or postgresql: (the value is not shown: it may hold a password)"
                    .into(),
            );
        }
        if db.max_connections < 1 {
            problem("database.max_connections", "database.max_connections = 0 must be at least 1".into());
        }
        for (key, value) in
            [("database.connect_timeout", db.connect_timeout), ("database.statement_timeout", db.statement_timeout)]
        {
            if value.is_zero() {
                problem(key, format!("{key} = 0s must be greater than 0"));
            }
        }
        // Both drivers keep it in a 32-bit count of milliseconds.
        if db.statement_timeout >= MAX_STATEMENT_TIMEOUT {
            problem(
                "database.statement_timeout",
                format!(
                    "database.statement_timeout = {} is too long (at most 24d)",
                    format_duration(db.statement_timeout)
                ),
            );
        }
        let text_settings = [
            ("database.url", db.url.expose()),
            ("schedule.cron", self.schedule.cron.as_str()),
            ("schedule.timezone", self.schedule.timezone.as_str()),
            ("metrics.listen", self.metrics.listen.as_str()),
            ("metrics.pushgateway", self.metrics.pushgateway.as_str()),
            ("log.level", self.log.level.as_str()),
        ];
        for (key, value) in text_settings {
            if value.chars().any(char::is_control) {
                problem(key, format!("{key} contains a control character (the value is not shown)"));
            }
        }

        let ret = &self.retention;
        for (key, value) in [
            ("retention.completed", ret.completed),
            ("retention.closed", ret.closed),
            ("retention.creating_idle", ret.creating_idle),
        ] {
            if let Some(value) = value
                && value < ret.minimum
            {
                problem(
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
            problem(
                "retention.batch_size",
                format!("retention.batch_size = {} is out of range (auto, or 1 to {MAX_BATCH_SIZE})", ret.batch_size),
            );
        }
        if ret.batch_budget.is_zero() || ret.batch_budget > ret.run_timeout {
            problem(
                "retention.batch_budget",
                format!(
                    "retention.batch_budget = {} must be more than 0 and at most retention.run_timeout ({})",
                    format_duration(ret.batch_budget),
                    format_duration(ret.run_timeout)
                ),
            );
        }

        let schedule = &self.schedule;
        let fields = schedule.cron.split_whitespace().count();
        if fields != 6 {
            problem(
                "schedule.cron",
                format!(
                    "schedule.cron = {:?} has {fields} fields; it needs exactly six, seconds first (e.g. \"0 0 * * * *\" = hourly)",
                    schedule.cron
                ),
            );
        } else if let Err(error) = crate::scheduler::check_cron(&schedule.cron) {
            problem(
                "schedule.cron",
                format!("schedule.cron = {:?} is not a valid cron expression: {error}", schedule.cron),
            );
        }
        if schedule.timezone != "UTC" {
            problem(
                "schedule.timezone",
                format!(
                    "schedule.timezone = {:?} is not supported; use UTC (the scheduler computes a time zone's \
                     offset once, when the job is created, so it would not follow daylight-saving changes)",
                    schedule.timezone
                ),
            );
        }

        let metrics = &self.metrics;
        if !metrics.listen.is_empty() && metrics.listen.parse::<SocketAddr>().is_err() {
            problem(
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
                problem(
                    "metrics.pushgateway",
                    format!(
                        "metrics.pushgateway = {:?} is not an http:// URL (e.g. http://pushgateway:9091; https is not supported; empty disables)",
                        redact_url(&metrics.pushgateway)
                    ),
                );
            }
        }

        if let Err(err) = crate::telemetry::parse_level(&self.log.level) {
            problem(
                "log.level",
                format!(
                    "log.level = {:?} is not a valid filter (e.g. info, or warn,retentiond=debug): {err}",
                    self.log.level
                ),
            );
        }

        if problems.is_empty() { Ok(()) } else { Err(ConfigError(problems.join("; "))) }
    }
}

/// Formats a duration in the largest unit that divides it exactly: `90d`,
/// `36h`, `90m`, `30s`, `500ms`, `0s`. The result parses back unchanged.
pub fn format_duration(value: Duration) -> String {
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let nanos = value.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let (size, unit) = UNITS.into_iter().find(|(size, _)| nanos.is_multiple_of(*size)).expect("1ns divides everything");
    if nanos / size > u128::from(u64::MAX) {
        // Too many of the small unit to read back: seconds plus the rest.
        return format!("{}s {}ns", value.as_secs(), value.subsec_nanos());
    }
    format!("{}{unit}", nanos / size)
}

/// Parses a human-readable duration (`90d`, `30s`, `1h 30m`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| format!("invalid duration {text:?}: {err}"))
}

// ---------------------------------------------------------------------------
// Loading

/// The process environment as strings. A `RETENTIOND…` variable that is not
/// valid UTF-8 is an error; unrelated ones are skipped.
fn process_env() -> Result<HashMap<String, String>, ConfigError> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(name, value);
            }
            Err(_) if name.to_ascii_uppercase().starts_with(ENV_PREFIX) => {
                return Err(ConfigError(format!("environment variable {name} is not valid UTF-8")));
            }
            Err(_) => {}
        }
    }
    Ok(env)
}

/// `load` with the environment given explicitly.
fn load_from(
    file: Option<PathBuf>,
    env: HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let file = file.or_else(|| env.get(CONFIG_FILE_ENV).filter(|path| !path.is_empty()).map(PathBuf::from));

    let mut builder = ::config::Config::builder();
    if let Some(path) = &file {
        let text = read_file(path)?;
        builder = builder.add_source(::config::File::from_str(&text, ::config::FileFormat::Toml));
    }
    let sources = Sources { file: file.as_deref(), env_names: env_names(&env), overrides, table: Default::default() };
    builder = builder.add_source(
        ::config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(env.into_iter().collect())),
    );
    let merged = builder.build().map_err(|err| match err {
        // Only the file can fail to parse here, and it has been parsed once already.
        ::config::ConfigError::FileParse { cause, .. } => ConfigError(format!(
            "cannot parse {}: {}",
            sources.file_name(),
            cause.to_string().lines().next().unwrap_or_default()
        )),
        other => ConfigError(other.to_string()),
    })?;

    let table = ::config::Source::collect(&merged).map_err(|err| ConfigError(err.to_string()))?;
    let sources = Sources { table, ..sources };
    sources.check_unknown_keys()?;

    let mut settings: Settings = merged.try_deserialize().map_err(|err| sources.deserialize_error(err))?;
    if let Some(format) = overrides.log_format {
        settings.log.format = format;
    }
    if let Some(level) = &overrides.log_level {
        settings.log.level = level.clone();
    }
    settings.validate(&sources)?;
    Ok(settings)
}

/// Reads the configuration file and checks that it is TOML. The parser's
/// message is given without its excerpt of the file, which could show a
/// password.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError(format!("cannot read configuration file {}: {err}", path.display())))?;
    if let Err(err) = text.parse::<toml::Table>() {
        let at = match err.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
                format!(" at line {line}, column {column}")
            }
            None => String::new(),
        };
        return Err(ConfigError(format!("cannot parse {} as TOML{at}: {}", path.display(), err.message().trim_end())));
    }
    Ok(text)
}

/// Maps each configuration key set in the environment to the variable's name.
fn env_names(env: &HashMap<String, String>) -> HashMap<String, String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    env.keys()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let key = lower.strip_prefix(&prefix)?.replace(ENV_SEPARATOR, ".");
            Some((key, name.clone()))
        })
        .collect()
}

/// Where each setting came from, to say so in errors.
struct Sources<'a> {
    file: Option<&'a Path>,
    env_names: HashMap<String, String>,
    overrides: &'a Overrides,
    /// File and environment merged, as the `config` crate holds them.
    table: ::config::Map<String, ::config::Value>,
}

impl Sources<'_> {
    fn file_name(&self) -> String {
        self.file.map(|path| path.display().to_string()).unwrap_or_else(|| "the configuration file".into())
    }

    /// ` (set in FILE)`, ` (set by environment variable NAME)`, ` (set by
    /// --flag)` or ` (KEY is at its default)` for the value of `key` (dotted).
    fn suffix(&self, key: &str) -> String {
        let flag = match key {
            "log.format" if self.overrides.log_format.is_some() => Some("--log-format"),
            "log.level" if self.overrides.log_level.is_some() => Some("--log-level"),
            _ => None,
        };
        if let Some(flag) = flag {
            return format!(" (set by {flag})");
        }
        let mut parts = key.split('.');
        let mut value = parts.next().and_then(|first| self.table.get(first));
        for part in parts {
            value = match value.map(|v| &v.kind) {
                Some(::config::ValueKind::Table(table)) => table.get(part),
                _ => None,
            };
        }
        match value {
            Some(value) => self.origin_suffix(key, leaf_origin(value)),
            None => format!(" ({key} is at its default)"),
        }
    }

    /// The config crate marks values from the environment with the origin
    /// "the environment"; values from the file (read from a string) have none.
    fn origin_suffix(&self, key: &str, origin: Option<&str>) -> String {
        match origin {
            Some(_) => {
                let name = self.env_names.get(key).cloned().unwrap_or_else(|| {
                    format!("{ENV_PREFIX}{ENV_SEPARATOR}{}", key.replace('.', ENV_SEPARATOR).to_uppercase())
                });
                format!(" (set by environment variable {name})")
            }
            None => format!(" (set in {})", self.file_name()),
        }
    }

    /// Every key set in the file or the environment must be one that exists.
    fn check_unknown_keys(&self) -> Result<(), ConfigError> {
        let known = known_keys();
        let sections = known.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut problems = Vec::new();
        for (section, value) in &self.table {
            let Some(keys) = known.get(section) else {
                let what = if matches!(value.kind, ::config::ValueKind::Table(_)) { "section" } else { "key" };
                problems.push(format!(
                    "unknown {what} `{section}`{}; the sections are {sections}",
                    self.origin_suffix(&first_leaf_key(section, value), leaf_origin(value))
                ));
                continue;
            };
            // Not shown: it could be a URL with a password (`RETENTIOND__DATABASE=…`).
            let ::config::ValueKind::Table(entries) = &value.kind else {
                problems.push(format!(
                    "`{section}` must be a section of keys, not a single value{}",
                    self.origin_suffix(section, leaf_origin(value))
                ));
                continue;
            };
            for (key, value) in entries {
                if !keys.contains(key) {
                    let dotted = format!("{section}.{key}");
                    problems.push(format!(
                        "unknown key `{dotted}`{}; the keys of [{section}] are {}",
                        self.origin_suffix(&first_leaf_key(&dotted, value), leaf_origin(value)),
                        keys.join(", ")
                    ));
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.sort();
        Err(ConfigError(problems.join("; ")))
    }

    /// Rewrites a deserialization error as "KEY: what is wrong (set in …)".
    fn deserialize_error(&self, err: ::config::ConfigError) -> ConfigError {
        let (key, message) = match err {
            ::config::ConfigError::Type { unexpected, expected, key, .. } => {
                // Never show what was given for the URL, or for the whole
                // section (say `RETENTIOND__DATABASE=postgres://…`).
                let found = if matches!(key.as_deref(), Some("database" | "database.url")) {
                    String::new()
                } else {
                    format!(", found {unexpected}")
                };
                (key, format!("invalid value: expected {expected}{found}"))
            }
            // Never shown: it may hold a password.
            ::config::ConfigError::At { key, .. } if key.as_deref() == Some("database.url") => {
                (key, "invalid value: expected a string".into())
            }
            ::config::ConfigError::At { error, key, .. } => (key, error.to_string()),
            ::config::ConfigError::NotFound(key) => (Some(key), "missing".into()),
            other => (None, other.to_string()),
        };
        match key {
            Some(key) => ConfigError(format!("{key}: {message}{}", self.suffix(&key))),
            None => ConfigError(message),
        }
    }
}

/// The sections and their keys, as the settings serialize.
fn known_keys() -> BTreeMap<String, Vec<String>> {
    let toml::Value::Table(sections) = toml::Value::try_from(Settings::default()).expect("settings serialize") else {
        unreachable!("settings serialize as a table")
    };
    sections
        .into_iter()
        .map(|(section, keys)| {
            let keys = match keys {
                toml::Value::Table(keys) => keys.into_iter().map(|(key, _)| key).collect(),
                _ => Vec::new(),
            };
            (section, keys)
        })
        .collect()
}

/// The origin of a value; for a table, that of a value inside it (tables
/// built from environment keys carry no origin themselves).
fn leaf_origin(value: &::config::Value) -> Option<&str> {
    match &value.kind {
        ::config::ValueKind::Table(table) => {
            let mut keys: Vec<_> = table.keys().collect();
            keys.sort();
            keys.first().and_then(|key| leaf_origin(&table[*key]))
        }
        _ => value.origin(),
    }
}

/// The dotted key of the leaf `leaf_origin` looks at.
fn first_leaf_key(key: &str, value: &::config::Value) -> String {
    match &value.kind {
        ::config::ValueKind::Table(table) => {
            let mut keys: Vec<_> = table.keys().collect();
            keys.sort();
            match keys.first() {
                Some(first) => first_leaf_key(&format!("{key}.{first}"), &table[*first]),
                None => key.to_owned(),
            }
        }
        _ => key.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Value formats. The config crate hands file values over typed and environment
// values as strings; both are accepted, but nothing is coerced silently
// (no floats as integers, no numbers as booleans).

/// A non-negative integer, as a number or a string of digits.
fn de_uint<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct UintVisitor<T>(PhantomData<T>);

    impl<T: TryFrom<u64>> UintVisitor<T> {
        fn convert<E: de::Error>(value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::custom(format!("invalid value {value}: too large")))
        }
    }

    impl<T: TryFrom<u64>> Visitor<'_> for UintVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            Self::convert(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            let value = u64::try_from(value)
                .map_err(|_| E::custom(format!("invalid value {value}: expected a non-negative integer")))?;
            Self::convert(value)
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
            Err(E::custom(format!("invalid value {value}: expected a non-negative integer")))
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<T, E> {
            Err(E::custom(format!("invalid value {value}: expected a non-negative integer")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            let value = text
                .trim()
                .parse::<u64>()
                .map_err(|_| E::custom(format!("invalid value {text:?}: expected a non-negative integer")))?;
            Self::convert(value)
        }
    }

    deserializer.deserialize_any(UintVisitor(PhantomData))
}

/// `true` or `false`, as a boolean or a string (any case).
fn de_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct BoolVisitor;

    impl Visitor<'_> for BoolVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false")
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
            Err(E::custom(format!("invalid value {value}: expected true or false")))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
            Err(E::custom(format!("invalid value {value}: expected true or false")))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<bool, E> {
            Err(E::custom(format!("invalid value {value}: expected true or false")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
            match text.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::custom(format!("invalid value {text:?}: expected true or false"))),
            }
        }
    }

    deserializer.deserialize_any(BoolVisitor)
}

/// A duration as text (`90d`, `1h 30m`); a bare `0` means zero.
struct DurationVisitor {
    off_allowed: bool,
}

impl DurationVisitor {
    fn examples(&self) -> &'static str {
        if self.off_allowed { "e.g. 90d, 12h, 30s or 1h 30m, or off" } else { "e.g. 90d, 12h, 30s or 1h 30m" }
    }

    fn refuse<E: de::Error>(&self, what: impl fmt::Display) -> E {
        E::custom(format!("{what}; expected {}", self.examples()))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration, {}", self.examples())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match value {
            0 => Ok(Some(Duration::ZERO)),
            _ => Err(self.refuse(format_args!("invalid duration {value}: a unit is needed"))),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        match value {
            0 => Ok(Some(Duration::ZERO)),
            _ => Err(self.refuse(format_args!("invalid duration {value}: a unit is needed"))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Err(self.refuse(format_args!("invalid duration {value}")))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Err(self.refuse(format_args!("invalid duration {value}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.off_allowed && text.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        parse_duration(text).map(Some).map_err(|message| self.refuse(message))
    }
}

/// `Duration` fields: human-readable text.
mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let value = deserializer.deserialize_any(DurationVisitor { off_allowed: false })?;
        Ok(value.expect("off is refused"))
    }
}

/// Policy fields: a duration, or `off` (`None`).
mod policy_duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_str(&format_duration(*value)),
            None => serializer.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_any(DurationVisitor { off_allowed: true })
    }
}

fn ser_redacted_url<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(value))
}

// ---------------------------------------------------------------------------
// Passwords in URLs

/// `raw` with the userinfo password and any `…password=` query parameter
/// replaced by `REDACTED`; unchanged when it holds no password.
pub fn redact_url(raw: &str) -> String {
    let without_userinfo = match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some(REDACTED)).is_ok() {
                parsed.to_string()
            } else {
                redact_userinfo_by_hand(raw)
            }
        }
        Ok(_) => raw.to_owned(),
        Err(_) => redact_userinfo_by_hand(raw),
    };
    redact_query(&without_userinfo)
}

/// For a URL the `url` crate cannot parse (say, a password with a `/`):
/// everything between `scheme://user:` and the last `@` goes.
fn redact_userinfo_by_hand(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let Some(at) = rest.rfind('@') else {
        return raw.to_owned();
    };
    let (userinfo, host) = rest.split_at(at);
    let user = match userinfo.split_once(':') {
        Some((user, _)) => user,
        None => userinfo,
    };
    format!("{scheme}://{user}:{REDACTED}{host}")
}

/// Replaces the value of every query parameter whose name ends in `password`.
fn redact_query(raw: &str) -> String {
    let Some((base, rest)) = raw.split_once('?') else {
        return raw.to_owned();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (rest, None),
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_password_param(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    match fragment {
        Some(fragment) => format!("{base}?{query}#{fragment}"),
        None => format!("{base}?{query}"),
    }
}

fn is_password_param(name: &str) -> bool {
    percent_decode(name).to_ascii_lowercase().ends_with("password")
}

/// The password of a URL: userinfo first, then a `password=` parameter.
fn url_password(raw: &str) -> Option<String> {
    match url::Url::parse(raw) {
        Ok(parsed) => parsed.password().map(percent_decode).or_else(|| {
            parsed
                .query_pairs()
                .find(|(name, _)| name.eq_ignore_ascii_case("password"))
                .map(|(_, value)| value.into_owned())
        }),
        Err(_) => {
            let (_, rest) = raw.split_once("://")?;
            let (userinfo, _) = rest.rsplit_once('@')?;
            let (_, password) = userinfo.split_once(':')?;
            Some(percent_decode(password))
        }
    }
}

/// Every form in which a secret of `raw` could show up in a message: the
/// passwords as written and decoded, and `…password=` parameter values.
fn url_secrets(raw: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some(password) = url_password(raw) {
        secrets.push(password);
    }
    if let Ok(parsed) = url::Url::parse(raw) {
        if let Some(password) = parsed.password() {
            secrets.push(password.to_owned());
        }
        for (name, value) in parsed.query_pairs() {
            if is_password_param(&name) {
                secrets.push(value.into_owned());
            }
        }
    }
    if let Some((_, query)) = raw.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((name, value)) = pair.split_once('=')
                && is_password_param(name)
            {
                secrets.push(value.to_owned());
            }
        }
    }
    secrets.retain(|secret| !secret.is_empty() && secret != REDACTED);
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    fn no_overrides() -> Overrides {
        Overrides::default()
    }

    /// A temporary TOML file holding `text`.
    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        load_from(None, env(vars), &no_overrides())
    }

    fn load_text(text: &str) -> Result<Settings, ConfigError> {
        let file = file(text);
        load_from(Some(file.path().to_owned()), HashMap::new(), &no_overrides())
    }

    fn err(result: Result<Settings, ConfigError>) -> String {
        result.expect_err("an error").to_string()
    }

    #[test]
    fn defaults() {
        let settings = load_env(&[]).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.database.url.expose(), "sqlite://retentiond.db");
        assert_eq!(settings.database.max_connections, 4);
        assert_eq!(settings.database.connect_timeout, Duration::from_secs(10));
        assert_eq!(settings.database.statement_timeout, Duration::from_secs(30));
        assert!(settings.database.auto_migrate);
        assert_eq!(settings.retention.completed, Some(Duration::from_secs(90 * DAY)));
        assert_eq!(settings.retention.closed, Some(Duration::from_secs(90 * DAY)));
        assert_eq!(settings.retention.creating_idle, None);
        assert_eq!(settings.retention.minimum, Duration::from_secs(DAY));
        assert_eq!(settings.retention.batch_size, BatchSize::Auto);
        assert_eq!(settings.retention.batch_budget, Duration::from_millis(50));
        assert_eq!(settings.retention.batch_pause, Duration::ZERO);
        assert_eq!(settings.retention.max_deletes_per_run, 0);
        assert_eq!(settings.retention.run_timeout, Duration::from_secs(3600));
        assert_eq!(settings.schedule.cron, "0 0 * * * *");
        assert_eq!(settings.schedule.timezone, "UTC");
        assert!(settings.schedule.run_on_start);
        assert!(settings.schedule.singleton);
        assert_eq!(settings.metrics.listen, "127.0.0.1:9464");
        assert_eq!(settings.metrics.pushgateway, "");
        assert_eq!(settings.log.format, LogFormat::Auto);
        assert_eq!(settings.log.level, "info");
        assert_eq!(settings.shutdown.grace, Duration::from_secs(30));
        assert_eq!(
            settings.retention.retentions(),
            Retentions {
                completed: Some(Duration::from_secs(90 * DAY)),
                closed: Some(Duration::from_secs(90 * DAY)),
                creating_idle: None
            }
        );
    }

    #[test]
    fn sample_file_loads_and_holds_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/retentiond.toml");
        let settings = load_from(Some(path.clone()), HashMap::new(), &no_overrides()).unwrap();
        assert_eq!(settings, Settings::default());
        // Every key is in the sample.
        let sample: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        for (section, keys) in known_keys() {
            for key in keys {
                assert!(sample[&section].get(&key).is_some(), "{section}.{key} missing from the sample");
            }
        }
    }

    #[test]
    fn file_overrides_defaults() {
        let settings = load_text(
            r#"
            [database]
            url = "postgres://retention@db.example:5432/jobs"
            max_connections = 8
            auto_migrate = false
            [retention]
            completed = "30d"
            closed = "off"
            creating_idle = "14d"
            batch_size = 250
            batch_pause = "1h 30m"
            max_deletes_per_run = 100000
            run_timeout = "500ms"
            [schedule]
            cron = "0 */5 * * * *"
            singleton = false
            [metrics]
            listen = ""
            pushgateway = "http://pushgateway:9091"
            [log]
            format = "json"
            level = "warn,retentiond=debug"
            [shutdown]
            grace = "0s"
            "#,
        )
        .unwrap();
        assert_eq!(settings.database.url.expose(), "postgres://retention@db.example:5432/jobs");
        assert_eq!(settings.database.max_connections, 8);
        assert_eq!(settings.database.connect_timeout, Duration::from_secs(10), "unset keys keep their default");
        assert!(!settings.database.auto_migrate);
        assert_eq!(settings.retention.completed, Some(Duration::from_secs(30 * DAY)));
        assert_eq!(settings.retention.closed, None);
        assert_eq!(settings.retention.creating_idle, Some(Duration::from_secs(14 * DAY)));
        assert_eq!(settings.retention.batch_size, BatchSize::Jobs(250));
        assert_eq!(settings.retention.batch_pause, Duration::from_secs(90 * 60));
        assert_eq!(settings.retention.max_deletes_per_run, 100_000);
        assert_eq!(settings.retention.run_timeout, Duration::from_millis(500));
        assert_eq!(settings.schedule.cron, "0 */5 * * * *");
        assert!(!settings.schedule.singleton);
        assert!(settings.schedule.run_on_start);
        assert_eq!(settings.metrics.listen, "");
        assert_eq!(settings.metrics.pushgateway, "http://pushgateway:9091");
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(settings.log.level, "warn,retentiond=debug");
        assert_eq!(settings.shutdown.grace, Duration::ZERO);
    }

    #[test]
    fn environment_overrides_with_the_spec_names() {
        let settings = load_env(&[
            ("RETENTIOND__DATABASE__URL", "postgres://u:pw@db/jobs"),
            ("RETENTIOND__DATABASE__MAX_CONNECTIONS", "16"),
            ("RETENTIOND__DATABASE__AUTO_MIGRATE", "false"),
            ("RETENTIOND__RETENTION__CREATING_IDLE", "14d"),
            ("RETENTIOND__RETENTION__CLOSED", "off"),
            ("RETENTIOND__RETENTION__BATCH_SIZE", "50"),
            ("RETENTIOND__RETENTION__MAX_DELETES_PER_RUN", "7"),
            ("RETENTIOND__SCHEDULE__RUN_ON_START", "FALSE"),
            ("RETENTIOND__METRICS__LISTEN", ""),
            ("RETENTIOND__LOG__FORMAT", "pretty"),
            ("RETENTIOND__SHUTDOWN__GRACE", "1m"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(settings.database.url.expose(), "postgres://u:pw@db/jobs");
        assert_eq!(settings.database.max_connections, 16);
        assert!(!settings.database.auto_migrate);
        assert_eq!(settings.retention.creating_idle, Some(Duration::from_secs(14 * DAY)));
        assert_eq!(settings.retention.closed, None);
        assert_eq!(settings.retention.batch_size, BatchSize::Jobs(50));
        assert_eq!(settings.retention.max_deletes_per_run, 7);
        assert!(!settings.schedule.run_on_start);
        assert_eq!(settings.metrics.listen, "");
        assert_eq!(settings.log.format, LogFormat::Pretty);
        assert_eq!(settings.shutdown.grace, Duration::from_secs(60));
    }

    #[test]
    fn environment_wins_over_the_file() {
        let file = file("[retention]\nbatch_size = 10\nclosed = \"30d\"\n");
        let settings = load_from(
            Some(file.path().to_owned()),
            env(&[("RETENTIOND__RETENTION__BATCH_SIZE", "20")]),
            &no_overrides(),
        )
        .unwrap();
        assert_eq!(settings.retention.batch_size, BatchSize::Jobs(20));
        assert_eq!(settings.retention.closed, Some(Duration::from_secs(30 * DAY)));
    }

    #[test]
    fn single_underscore_after_the_prefix_is_not_read() {
        let settings = load_env(&[
            ("RETENTIOND_DATABASE__URL", "postgres://elsewhere/db"),
            ("RETENTIOND_RETENTION__BATCH_SIZE", "5"),
        ])
        .unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn config_file_from_the_environment() {
        let file = file("[retention]\nbatch_size = 10\n");
        let path = file.path().to_str().unwrap();
        // RETENTIOND_CONFIG names the file, and is not itself taken as a key.
        let settings = load_env(&[("RETENTIOND_CONFIG", path)]).unwrap();
        assert_eq!(settings.retention.batch_size, BatchSize::Jobs(10));
        // Empty means unset.
        assert_eq!(load_env(&[("RETENTIOND_CONFIG", "")]).unwrap(), Settings::default());
        // An explicit file wins over it.
        let other = self::file("[retention]\nbatch_size = 20\n");
        let settings =
            load_from(Some(other.path().to_owned()), env(&[("RETENTIOND_CONFIG", path)]), &no_overrides()).unwrap();
        assert_eq!(settings.retention.batch_size, BatchSize::Jobs(20));
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let message = err(load_from(Some("/nonexistent/retentiond.toml".into()), HashMap::new(), &no_overrides()));
        assert!(message.starts_with("invalid configuration: "), "{message}");
        assert!(message.contains("/nonexistent/retentiond.toml"), "{message}");
        let message = err(load_env(&[("RETENTIOND_CONFIG", "/nonexistent/other.toml")]));
        assert!(message.contains("/nonexistent/other.toml"), "{message}");
    }

    #[test]
    fn a_toml_syntax_error_names_the_file_and_line_but_shows_no_password() {
        let file = file("[database]\nurl = \"postgres://u:hunter2@db/jobs\nmax_connections = 4\n");
        let message = err(load_from(Some(file.path().to_owned()), HashMap::new(), &no_overrides()));
        assert!(message.contains(file.path().to_str().unwrap()), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn overrides_win() {
        let overrides = Overrides { log_format: Some(LogFormat::Json), log_level: Some("debug".into()) };
        let file = file("[log]\nformat = \"pretty\"\nlevel = \"warn\"\n");
        let settings = load_from(
            Some(file.path().to_owned()),
            env(&[("RETENTIOND__LOG__LEVEL", "error"), ("RETENTIOND__LOG__FORMAT", "pretty")]),
            &overrides,
        )
        .unwrap();
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(settings.log.level, "debug");
        // A bad override is refused, naming the flag.
        let overrides = Overrides { log_format: None, log_level: Some("info,=[".into()) };
        let message = err(load_from(None, HashMap::new(), &overrides));
        assert!(message.contains("log.level") && message.contains("--log-level"), "{message}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_naming_them() {
        let file = file("[database]\nurl = \"sqlite://x.db\"\nmax_conections = 4\n");
        let message = err(load_from(Some(file.path().to_owned()), HashMap::new(), &no_overrides()));
        assert!(message.contains("unknown key `database.max_conections`"), "{message}");
        assert!(message.contains(file.path().to_str().unwrap()), "{message}");
        assert!(message.contains("max_connections"), "the known keys are listed: {message}");

        let message = err(load_text("[retension]\ncompleted = \"30d\"\n"));
        assert!(message.contains("unknown section `retension`"), "{message}");

        let message = err(load_text("batch_size = 5\n"));
        assert!(message.contains("unknown key `batch_size`"), "{message}");

        let message = err(load_text("[database.pool]\nsize = 5\n"));
        assert!(message.contains("unknown key `database.pool`"), "{message}");
    }

    #[test]
    fn unknown_keys_in_the_environment_are_errors_naming_them() {
        let message = err(load_env(&[("RETENTIOND__RETENTION__BATCHSIZE", "5")]));
        assert!(message.contains("unknown key `retention.batchsize`"), "{message}");
        assert!(message.contains("RETENTIOND__RETENTION__BATCHSIZE"), "{message}");

        let message = err(load_env(&[("RETENTIOND__RETENTON__BATCH_SIZE", "5")]));
        assert!(message.contains("unknown section `retenton`"), "{message}");
        assert!(message.contains("RETENTIOND__RETENTON__BATCH_SIZE"), "{message}");

        let message = err(load_env(&[("RETENTIOND__CONFIG", "/etc/retentiond.toml")]));
        assert!(message.contains("unknown key `config`"), "{message}");
    }

    #[test]
    fn bad_values_name_the_key_the_value_and_the_source() {
        let file = file("[retention]\ncompleted = \"90 days and a bit\"\n");
        let message = err(load_from(Some(file.path().to_owned()), HashMap::new(), &no_overrides()));
        assert!(message.contains("retention.completed"), "{message}");
        assert!(message.contains("90 days and a bit"), "{message}");
        assert!(message.contains(file.path().to_str().unwrap()), "{message}");

        let message = err(load_text("[shutdown]\ngrace = 30\n"));
        assert!(message.contains("shutdown.grace") && message.contains("unit"), "{message}");

        let message = err(load_text("[shutdown]\ngrace = \"off\"\n"));
        assert!(message.contains("shutdown.grace") && message.contains("\"off\""), "{message}");

        let message = err(load_env(&[("RETENTIOND__RETENTION__BATCH_SIZE", "lots")]));
        assert!(message.contains("retention.batch_size"), "{message}");
        assert!(message.contains("\"lots\""), "{message}");
        assert!(message.contains("RETENTIOND__RETENTION__BATCH_SIZE"), "{message}");

        let message = err(load_text("[retention]\nbatch_size = 2.5\n"));
        assert!(message.contains("retention.batch_size") && message.contains("2.5"), "{message}");

        let message = err(load_text("[database]\nmax_connections = 5000000000\n"));
        assert!(message.contains("database.max_connections") && message.contains("5000000000"), "{message}");

        let message = err(load_env(&[("RETENTIOND__SCHEDULE__SINGLETON", "maybe")]));
        assert!(message.contains("schedule.singleton") && message.contains("\"maybe\""), "{message}");

        let message = err(load_text("[log]\nformat = \"xml\"\n"));
        assert!(message.contains("log.format") && message.contains("\"xml\""), "{message}");

        let message = err(load_text("[schedule]\ncron = [1, 2]\n"));
        assert!(message.contains("schedule.cron"), "{message}");

        let message = err(load_env(&[("RETENTIOND__DATABASE", "postgres://u:hunter2@db/jobs")]));
        assert!(message.contains("`database` must be a section"), "{message}");
        assert!(message.contains("RETENTIOND__DATABASE"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn off_disables_a_policy_and_serializes_as_off() {
        let settings =
            load_text("[retention]\ncompleted = \"off\"\nclosed = \"OFF\"\ncreating_idle = \"off\"\n").unwrap();
        assert_eq!(settings.retention.retentions(), Retentions { completed: None, closed: None, creating_idle: None });
        let text = settings.to_redacted_toml();
        assert!(text.contains("completed = \"off\""), "{text}");
    }

    #[test]
    fn a_policy_below_the_minimum_is_refused() {
        let message = err(load_text("[retention]\nclosed = \"1h\"\n"));
        assert!(message.contains("retention.closed = 1h is below retention.minimum (1d)"), "{message}");

        let message = err(load_env(&[("RETENTIOND__RETENTION__MINIMUM", "100d")]));
        assert!(message.contains("retention.completed = 90d is below retention.minimum (100d)"), "{message}");
        assert!(message.contains("retention.closed = 90d is below"), "every problem is reported: {message}");

        // Off is never below the minimum; equal to it is fine.
        load_text("[retention]\ncreating_idle = \"1d\"\ncompleted = \"off\"\n").unwrap();
        // A lower minimum allows a shorter policy.
        let settings = load_text("[retention]\nminimum = \"1h\"\nclosed = \"1h\"\n").unwrap();
        assert_eq!(settings.retention.closed, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn validation_rules() {
        let cases = [
            ("[retention]\nbatch_size = 0\n", "retention.batch_size = 0 is out of range (auto, or 1 to 100000)"),
            ("[retention]\nbatch_size = 100001\n", "retention.batch_size = 100001 is out of range"),
            ("[retention]\nbatch_size = \"most\"\n", "\"most\" is not a batch size: use auto or a number"),
            ("[retention]\nbatch_budget = \"0s\"\n", "retention.batch_budget = 0s must be more than 0"),
            (
                "[retention]\nbatch_budget = \"2h\"\n",
                "retention.batch_budget = 2h must be more than 0 and at most retention.run_timeout (1h)",
            ),
            ("[database]\nmax_connections = 0\n", "database.max_connections = 0 must be at least 1"),
            ("[database]\nconnect_timeout = \"0s\"\n", "database.connect_timeout = 0s must be greater than 0"),
            ("[database]\nstatement_timeout = 0\n", "database.statement_timeout = 0s must be greater than 0"),
            (
                "[database]\nurl = \"mysql://db/jobs\"\n",
                "database.url must start with sqlite:, postgres: or postgresql:",
            ),
            ("[log]\nlevel = \"info,=[\"\n", "log.level = \"info,=[\" is not a valid filter"),
            ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen = \"localhost\" is not a socket address"),
            ("[metrics]\npushgateway = \"ftp://gw\"\n", "metrics.pushgateway = \"ftp://gw\" is not an http:// URL"),
            ("[metrics]\npushgateway = \"gw:9091\"\n", "metrics.pushgateway = \"gw:9091\" is not an http:// URL"),
            ("[metrics]\npushgateway = \"https://gw:9091\"\n", "https is not supported"),
            (
                "[schedule]\ncron = \"0 0 25 * * *\"\n",
                "schedule.cron = \"0 0 25 * * *\" is not a valid cron expression",
            ),
            ("[schedule]\ncron = \"0 * * * *\"\n", "schedule.cron = \"0 * * * *\" has 5 fields"),
            ("[schedule]\ntimezone = \"Europe/Berlin\"\n", "use UTC (the scheduler computes a time zone's offset once"),
        ];
        for (text, expected) in cases {
            let message = err(load_text(text));
            assert!(message.contains(expected), "{text}: {message}");
            assert!(message.contains("(set in "), "{text}: the file is named: {message}");
        }
        for text in [
            "[metrics]\nlisten = \"[::]:9464\"\npushgateway = \"http://gw.example:9091/\"\n",
            "[database]\nurl = \"postgresql://db/jobs\"\n",
            "[database]\nurl = \"sqlite::memory:\"\n",
            "[retention]\nbatch_size = 100000\n",
            "[retention]\nbatch_size = \"auto\"\nbatch_budget = \"200ms\"\n",
        ] {
            load_text(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        }
    }

    #[test]
    fn scrubbing_a_short_password_leaves_words_alone() {
        let url = DatabaseUrl::new("postgres://u:on@127.0.0.1:1/db".into());
        assert_eq!(url.scrub("Connection refused for u:on@host"), "Connection refused for u:REDACTED@host");
        let url = DatabaseUrl::new("postgres://u:s3cr3tpassw0rd@db/jobs".into());
        assert_eq!(url.scrub("xs3cr3tpassw0rdx"), "xREDACTEDx");
    }

    #[test]
    fn the_database_password_never_appears_in_errors() {
        let message = err(load_env(&[
            ("RETENTIOND__DATABASE__URL", "mysql://admin:hunter2@db/jobs"),
            ("RETENTIOND__DATABASE__MAX_CONNECTIONS", "0"),
        ]));
        assert!(message.contains("database.url") && message.contains("RETENTIOND__DATABASE__URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let message = err(load_text("[database]\nurl = { password = \"hunter2\" }\n"));
        assert!(message.contains("database.url"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn redaction() {
        let url = DatabaseUrl::new("postgres://retention:s3cr%40t@db.example:5432/jobs?sslmode=require".into());
        assert_eq!(url.redacted(), "postgres://retention:REDACTED@db.example:5432/jobs?sslmode=require");
        assert_eq!(url.password().as_deref(), Some("s3cr@t"));
        assert_eq!(
            format!("{url:?}"),
            "DatabaseUrl(\"postgres://retention:REDACTED@db.example:5432/jobs?sslmode=require\")"
        );

        let url = DatabaseUrl::new("postgres://db/jobs?user=retention&password=s3cret&sslmode=require".into());
        assert_eq!(url.redacted(), "postgres://db/jobs?user=retention&password=REDACTED&sslmode=require");
        assert_eq!(url.password().as_deref(), Some("s3cret"));

        let url = DatabaseUrl::new("postgresql://u:pw1@db/jobs?sslpassword=pw2".into());
        assert_eq!(url.redacted(), "postgresql://u:REDACTED@db/jobs?sslpassword=REDACTED");

        for plain in
            ["sqlite://retentiond.db", "sqlite::memory:", "postgres://retention@db:5432/jobs", "postgres://db/jobs"]
        {
            let url = DatabaseUrl::new(plain.into());
            assert_eq!(url.redacted(), plain);
            assert_eq!(url.password(), None);
        }

        // Not parseable by the url crate (a `/` in the password): redacted by hand.
        let url = DatabaseUrl::new("postgres://u:pa/ss@db/jobs".into());
        assert!(!url.redacted().contains("pa/ss"), "{}", url.redacted());
        assert_eq!(url.password().as_deref(), Some("pa/ss"));

        let url = DatabaseUrl::new("postgres://u:s3cr%40t@db/jobs".into());
        let scrubbed = url.scrub("connecting to postgres://u:s3cr%40t@db/jobs: password s3cr@t rejected");
        assert_eq!(scrubbed, "connecting to postgres://u:REDACTED@db/jobs: password REDACTED rejected");

        // Debug of the whole settings shows only the redacted URL.
        let mut settings = Settings::default();
        settings.database.url = DatabaseUrl::new("postgres://u:hunter2@db/jobs".into());
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn redacted_toml_round_trips() {
        let mut settings = Settings::default();
        settings.database.url =
            DatabaseUrl::new("postgres://retention:hunter2@db.example:5432/jobs?password=x9".into());
        settings.database.max_connections = 12;
        settings.database.statement_timeout = Duration::from_millis(2500);
        settings.retention.completed = Some(Duration::from_secs(36 * 3600));
        settings.retention.closed = None;
        settings.retention.creating_idle = Some(Duration::from_secs(14 * DAY));
        settings.retention.batch_pause = Duration::from_secs(90 * 60);
        settings.retention.max_deletes_per_run = 5000;
        settings.schedule.run_on_start = false;
        settings.metrics.pushgateway = "http://gw:9091".into();
        settings.log.format = LogFormat::Json;
        settings.log.level = "warn,retentiond=debug".into();
        settings.shutdown.grace = Duration::from_secs(45);

        let text = settings.to_redacted_toml();
        assert!(!text.contains("hunter2") && !text.contains("x9"), "{text}");
        for section in ["[database]", "[retention]", "[schedule]", "[metrics]", "[log]", "[shutdown]"] {
            assert!(text.contains(section), "{text}");
        }
        for line in [
            "url = \"postgres://retention:REDACTED@db.example:5432/jobs?password=REDACTED\"",
            "statement_timeout = \"2500ms\"",
            "completed = \"36h\"",
            "closed = \"off\"",
            "creating_idle = \"14d\"",
            "batch_pause = \"90m\"",
            "grace = \"45s\"",
            "format = \"json\"",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }

        let file = file(&text);
        let loaded = load_from(Some(file.path().to_owned()), HashMap::new(), &no_overrides()).unwrap();
        assert_eq!(loaded.database.url.redacted(), settings.database.url.redacted());
        let mut expected = settings.clone();
        expected.database.url = loaded.database.url.clone();
        assert_eq!(loaded, expected);

        // And the defaults print every key.
        let defaults = Settings::default().to_redacted_toml();
        let count: usize = known_keys().values().map(Vec::len).sum();
        assert_eq!(defaults.lines().filter(|line| line.contains(" = ")).count(), count, "{defaults}");
        assert!(defaults.contains("creating_idle = \"off\""), "{defaults}");
    }

    #[test]
    fn durations_format_in_the_largest_exact_unit() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(90 * DAY), "90d"),
            (Duration::from_secs(36 * 3600), "36h"),
            (Duration::from_secs(90 * 60), "90m"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1500us"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(DAY + 1), "86401s"),
        ];
        for (value, text) in cases {
            assert_eq!(format_duration(value), text);
            assert_eq!(parse_duration(text), Ok(value), "{text} parses back");
        }
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        // humantime's months and years come back in exact seconds.
        let month = parse_duration("1M").unwrap();
        assert_eq!(parse_duration(&format_duration(month)), Ok(month));
    }
}
