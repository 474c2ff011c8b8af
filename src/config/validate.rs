//! The rules a value must follow beyond its type, one function per section.
//! Every problem is reported, each naming its key and where it was set.

use std::net::SocketAddr;
use std::time::Duration;

use super::layers::Sources;
use super::secrets::redact_url;
use super::settings::SSLMODE_PARAMETERS;
use super::values::format_duration;
use super::{
    ConfigError, DatabaseSettings, MetricsSettings, RetentionSettings, ScheduleSettings, Settings, SslMode, TlsFile,
    UiSettings,
};
use crate::batch::MAX_BATCH_SIZE;
use crate::lifecycle::JobType;
use crate::policy::Policy;
use crate::store::engine::Engine;

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
            ("database.password_file", self.database.password_file.as_str()),
            ("database.sslrootcert", self.database.sslrootcert.as_str()),
            ("database.sslcert", self.database.sslcert.as_str()),
            ("database.sslkey", self.database.sslkey.as_str()),
            ("schedule.cron", self.schedule.cron.as_str()),
            ("schedule.timezone", self.schedule.timezone.as_str()),
            ("metrics.listen", self.metrics.listen.as_str()),
            ("metrics.pushgateway", self.metrics.pushgateway.as_str()),
            ("metrics.pushgateway_ca_file", self.metrics.pushgateway_ca_file.as_str()),
            ("metrics.pushgateway_password_file", self.metrics.pushgateway_password_file.as_str()),
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
    match Engine::of_url(url) {
        Some(Engine::Postgres | Engine::MariaDb) if url::Url::parse(url).is_err() => problems.add(
            "database.url",
            "database.url is not a valid URL (the value is not shown: it may hold a password); \
             percent-encode reserved characters in the user and password (/ as %2F, @ as %40, # as %23)"
                .into(),
        ),
        Some(Engine::Postgres | Engine::MariaDb) => server_tls_and_password(db, problems),
        Some(Engine::Sqlite) => {
            let server_only = [
                ("database.password_file", db.password_file.is_empty()),
                ("database.sslmode", db.sslmode.is_none()),
                ("database.sslrootcert", db.sslrootcert.is_empty()),
                ("database.sslcert", db.sslcert.is_empty()),
                ("database.sslkey", db.sslkey.is_empty()),
            ];
            for (key, unset) in server_only {
                if !unset {
                    problems.add(
                        key,
                        format!("{key} applies to PostgreSQL and MariaDB only, and database.url is an sqlite: URL"),
                    );
                }
            }
        }
        None => problems.add(
            "database.url",
            format!(
                "database.url must start with {} (the value is not shown: it may hold a password)",
                Engine::scheme_prefixes()
            ),
        ),
    }
    replicas(db, problems);
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

/// The TLS parameters of a PostgreSQL or MariaDB URL and the
/// `database.ssl*` settings must agree; a password comes from the URL or
/// from a file, not both.
fn server_tls_and_password(db: &DatabaseSettings, problems: &mut Problems<'_>) {
    let known: Vec<&str> =
        SSLMODE_PARAMETERS.iter().chain(TlsFile::ALL.iter().flat_map(|file| file.parameters())).copied().collect();
    for name in db.url.parameter_names() {
        let lower = name.to_ascii_lowercase();
        if lower == "passfile" {
            problems.add(
                "database.url",
                "database.url: the parameter passfile is not supported; name the file in database.password_file".into(),
            );
        } else if lower.starts_with("ssl") && !known.contains(&name.as_str()) {
            problems.add(
                "database.url",
                format!(
                    "database.url: the parameter {name} is not supported (the driver would ignore it); \
                     the TLS parameters are sslmode, sslrootcert, sslcert and sslkey"
                ),
            );
        }
    }
    // Conflicts name the URL's parameters as it spells them (sslmode or ssl-mode).
    let url_mode = db.url.named_parameter(SSLMODE_PARAMETERS);
    if let Some((_, text)) = &url_mode
        && let Err(error) = SslMode::parse(text)
    {
        problems.add("database.url", format!("database.url: {error}"));
    }
    if let (Some(setting), Some((name, text))) = (db.sslmode, &url_mode)
        && SslMode::parse(text).is_ok_and(|in_url| in_url != setting)
    {
        problems.add(
            "database.sslmode",
            format!(
                "database.sslmode = {:?} conflicts with {name}={text} in database.url; set it in one place",
                setting.as_str()
            ),
        );
    }
    for file in TlsFile::ALL {
        let setting = file.setting(db);
        if let Some((name, in_url)) = db.url.named_parameter(file.parameters())
            && !setting.is_empty()
            && setting != in_url
        {
            problems.add(
                file.key(),
                format!(
                    "{} = {setting:?} conflicts with {name}={in_url} in database.url; set it in one place",
                    file.key()
                ),
            );
        }
    }
    if db.tls_file(TlsFile::ClientCert).is_some() != db.tls_file(TlsFile::ClientKey).is_some() {
        problems.add(
            "database.sslcert",
            "database.sslcert and database.sslkey (or sslcert and sslkey in database.url) go together: \
             set both or neither"
                .into(),
        );
    }
    if db.ssl_mode() == Some(SslMode::Disable)
        && let Some((key, _)) = TlsFile::ALL.into_iter().find_map(|file| db.tls_file(file))
    {
        problems.add("database.sslmode", format!("sslmode is disable, so {key} would not be used; remove one"));
    }
    if let Some((key, name)) = db.tls_file(TlsFile::RootCert)
        && name == crate::tls::SYSTEM_ROOTS
        && let Some(mode) = db.ssl_mode().filter(|mode| *mode != SslMode::VerifyFull)
    {
        problems.add(
            "database.sslmode",
            format!(
                "{key} is system, which trusts every public CA, so it needs sslmode verify-full (as libpq): with \
                 sslmode {} a certificate any public CA issued for any name would pass; set verify-full or leave \
                 sslmode unset",
                mode.as_str()
            ),
        );
    }
    if !db.password_file.is_empty() && db.url.password().is_some() {
        problems.add(
            "database.password_file",
            "database.url holds a password and database.password_file is set: keep one (the password is not shown)"
                .into(),
        );
    }
}

fn retention(ret: &RetentionSettings, problems: &mut Problems<'_>) {
    let mut values = vec![
        ("retention.completed".to_owned(), ret.completed),
        ("retention.closed".to_owned(), ret.closed),
        ("retention.creating_idle".to_owned(), ret.creating_idle),
        ("retention.audit".to_owned(), ret.audit),
        ("retention.runs".to_owned(), ret.runs),
    ];
    for job_type in JobType::ALL {
        for policy in Policy::CONFIGURED {
            if let Some(value) = ret.by_type[job_type].get(policy) {
                let name = job_type.as_str().to_lowercase();
                values.push((format!("retention.by_type.{name}.{policy}"), value));
            }
        }
    }
    for (key, value) in values {
        if let Some(value) = value
            && value < ret.minimum
        {
            problems.add(
                &key,
                format!(
                    "{key} = {} is below retention.minimum ({})",
                    format_duration(value),
                    format_duration(ret.minimum)
                ),
            );
        }
    }
    // The stores count deletions in 64-bit signed integers, as TOML does.
    if i64::try_from(ret.max_deletes_per_run).is_err() {
        problems.add(
            "retention.max_deletes_per_run",
            format!("retention.max_deletes_per_run = {} is too large (at most {})", ret.max_deletes_per_run, i64::MAX),
        );
    }
    if !ret.batch_size.in_range() {
        problems.add(
            "retention.batch_size",
            format!("retention.batch_size = {} is out of range (auto, or 1 to {MAX_BATCH_SIZE})", ret.batch_size),
        );
    }
    if ret.max_replica_lag.is_some_and(|lag| lag.is_zero()) {
        problems.add("retention.max_replica_lag", "retention.max_replica_lag = 0s must be more than 0 (or off)".into());
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

/// Each of `database.replicas` is a URL of the engine `database.url` names,
/// one with replicas (the values are not shown: they may hold a password).
fn replicas(db: &DatabaseSettings, problems: &mut Problems<'_>) {
    let key = "database.replicas";
    let engine = Engine::of_url(db.url.expose());
    for (index, replica) in db.replicas.iter().enumerate() {
        let position = index + 1;
        let problem = match (engine, Engine::of_url(replica.expose())) {
            (Some(Engine::Sqlite), _) => {
                Some(format!("{key} applies to server engines only, and database.url is an sqlite: URL"))
            }
            (Some(engine), Some(other)) if other != engine => Some(format!(
                "{key}: replica {position} is a {other} URL, and database.url a {engine} one (the value is not shown)"
            )),
            (_, None) => Some(format!(
                "{key}: replica {position} must start with {} (the value is not shown: it may hold a password)",
                Engine::scheme_prefixes()
            )),
            _ if url::Url::parse(replica.expose()).is_err() => Some(format!(
                "{key}: replica {position} is not a valid URL (the value is not shown: it may hold a password)"
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            problems.add(key, problem);
            if engine == Some(Engine::Sqlite) {
                return;
            }
        }
    }
}

fn schedule(schedule: &ScheduleSettings, problems: &mut Problems<'_>) {
    if let Err(reason) = crate::scheduler::parse_cron(&schedule.cron) {
        problems.add("schedule.cron", format!("schedule.cron = {:?} {reason}", schedule.cron));
    }
    if let Err(reason) = crate::scheduler::parse_zone(&schedule.timezone) {
        problems.add("schedule.timezone", format!("schedule.timezone = {:?} {reason}", schedule.timezone));
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
    let gateway = url::Url::parse(&metrics.pushgateway).ok().filter(|u| u.host().is_some());
    let https = gateway.as_ref().is_some_and(|u| u.scheme() == "https");
    if !metrics.pushgateway.is_empty() && !gateway.as_ref().is_some_and(|u| ["http", "https"].contains(&u.scheme())) {
        problems.add(
            "metrics.pushgateway",
            format!(
                "metrics.pushgateway = {:?} is not an http:// or https:// URL (e.g. https://pushgateway:9091; empty disables)",
                redact_url(&metrics.pushgateway)
            ),
        );
    }
    if !metrics.pushgateway_ca_file.is_empty() && !https {
        problems.add(
            "metrics.pushgateway_ca_file",
            "metrics.pushgateway_ca_file is set, but metrics.pushgateway is not an https:// URL".into(),
        );
    }
    if !metrics.pushgateway_password_file.is_empty() {
        let user = gateway.as_ref().map(|u| (u.username().is_empty(), u.password().is_some()));
        let problem = match user {
            None => Some("metrics.pushgateway_password_file is set, but metrics.pushgateway is not".to_owned()),
            Some((true, _)) => Some(
                "metrics.pushgateway_password_file needs the user name in metrics.pushgateway (https://USER@host:9091)"
                    .to_owned(),
            ),
            Some((false, true)) => Some(
                "metrics.pushgateway holds a password and metrics.pushgateway_password_file is set: keep one \
                 (the password is not shown)"
                    .to_owned(),
            ),
            Some((false, false)) => None,
        };
        if let Some(problem) = problem {
            problems.add("metrics.pushgateway_password_file", problem);
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
