//! Loading and validating whole configurations: layers, sources named in
//! errors, unknown keys, the rules, and secrets kept out of what is shown.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::layers::{known_keys, load_from};
use super::*;
use crate::batch::BatchSize;
use crate::policy::{PerRule, PerType, Policy, Retentions};

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
    assert_eq!(settings.schedule.window, []);
    assert_eq!(settings.metrics.listen, "127.0.0.1:9464");
    assert_eq!(settings.metrics.pushgateway, "");
    assert_eq!(settings.metrics.pushgateway_ca_file, "");
    assert_eq!(settings.metrics.pushgateway_password_file, "");
    assert_eq!(settings.database.password_file, "");
    assert_eq!(settings.database.sslmode, None);
    assert_eq!((settings.database.sslrootcert.as_str(), settings.database.sslcert.as_str()), ("", ""));
    assert_eq!(settings.database.sslkey, "");
    assert!(settings.ui.enabled);
    assert_eq!(settings.ui.password_file, "");
    assert_eq!(settings.log.format, LogFormat::Auto);
    assert_eq!(settings.log.level, "info");
    assert_eq!(settings.shutdown.grace, Duration::from_secs(30));
    assert_eq!(
        settings.retention.retentions(),
        Retentions {
            rules: PerRule {
                completed: PerType::from_fn(|_| Some(Duration::from_secs(90 * DAY))),
                closed: PerType::from_fn(|_| Some(Duration::from_secs(90 * DAY))),
                creating_idle: PerType::default(),
                retain_until: PerType::from_fn(|_| Some(Duration::ZERO)),
            },
            minimum: Duration::from_secs(DAY),
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
        ("RETENTIOND__SCHEDULE__WINDOW", "22:00-6:00, 12:00-13:30:15"),
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
    assert_eq!(windows(&settings), ["22:00-06:00", "12:00-13:30:15"]);
    assert_eq!(settings.metrics.listen, "");
    assert_eq!(settings.log.format, LogFormat::Pretty);
    assert_eq!(settings.shutdown.grace, Duration::from_secs(60));
}

/// The windows of `schedule.window`, as written back.
fn windows(settings: &Settings) -> Vec<String> {
    settings.schedule.window.iter().map(ToString::to_string).collect()
}

#[test]
fn windows_are_a_list_or_one_text_and_an_empty_one_is_any_time() {
    let list = load_text("[schedule]\nwindow = [\"22:00-06:00\", \"9:00-9:30\"]\n").unwrap();
    assert_eq!(windows(&list), ["22:00-06:00", "09:00-09:30"]);
    let text = load_text("[schedule]\nwindow = \"22:00-06:00,09:00-09:30\"\n").unwrap();
    assert_eq!(text.schedule.window, list.schedule.window);
    for none in ["[schedule]\nwindow = []\n", "[schedule]\nwindow = \"\"\n"] {
        assert_eq!(load_text(none).unwrap(), Settings::default(), "{none}");
    }
    let cleared = load_from(
        Some(file("[schedule]\nwindow = [\"22:00-06:00\"]\n").path().to_owned()),
        env(&[("RETENTIOND__SCHEDULE__WINDOW", "")]),
        &no_overrides(),
    )
    .unwrap();
    assert_eq!(cleared.schedule.window, [], "an empty variable clears the file's windows");
}

#[test]
fn environment_wins_over_the_file() {
    let file = file("[retention]\nbatch_size = 10\nclosed = \"30d\"\n");
    let settings =
        load_from(Some(file.path().to_owned()), env(&[("RETENTIOND__RETENTION__BATCH_SIZE", "20")]), &no_overrides())
            .unwrap();
    assert_eq!(settings.retention.batch_size, BatchSize::Jobs(20));
    assert_eq!(settings.retention.closed, Some(Duration::from_secs(30 * DAY)));
}

#[test]
fn single_underscore_after_the_prefix_is_not_read() {
    let settings =
        load_env(&[("RETENTIOND_DATABASE__URL", "postgres://elsewhere/db"), ("RETENTIOND_RETENTION__BATCH_SIZE", "5")])
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
    let settings = load_text("[retention]\ncompleted = \"off\"\nclosed = \"OFF\"\ncreating_idle = \"off\"\n").unwrap();
    let retentions = settings.retention.retentions();
    for policy in Policy::CONFIGURED {
        assert_eq!(retentions[policy], PerType::default(), "{policy}");
    }
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
        (
            "[retention]\nmax_deletes_per_run = \"9223372036854775808\"\n",
            "retention.max_deletes_per_run = 9223372036854775808 is too large (at most 9223372036854775807)",
        ),
        ("[database]\nconnect_timeout = \"0s\"\n", "database.connect_timeout = 0s must be greater than 0"),
        ("[database]\nstatement_timeout = 0\n", "database.statement_timeout = 0s must be greater than 0"),
        (
            "[database]\nurl = \"oracle://db/jobs\"\n",
            "database.url must start with sqlite:, postgres:, postgresql:, mariadb: or mysql:",
        ),
        (
            "[database]\nurl = \"postgres://u:pa/ss@db/jobs\"\n",
            "database.url is not a valid URL (the value is not shown",
        ),
        ("[log]\nlevel = \"info,=[\"\n", "log.level = \"info,=[\" is not a valid filter"),
        ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen = \"localhost\" is not a socket address"),
        (
            "[metrics]\npushgateway = \"ftp://gw\"\n",
            "metrics.pushgateway = \"ftp://gw\" is not an http:// or https:// URL",
        ),
        (
            "[metrics]\npushgateway = \"gw:9091\"\n",
            "metrics.pushgateway = \"gw:9091\" is not an http:// or https:// URL",
        ),
        ("[schedule]\ncron = \"0 0 25 * * *\"\n", "schedule.cron = \"0 0 25 * * *\" is not a valid cron expression"),
        (
            "[schedule]\ncron = \"0 0 * * * * 2030\"\n",
            "schedule.cron = \"0 0 * * * * 2030\" has 7 fields; it needs five",
        ),
        ("[schedule]\ncron = \"@daily\"\n", "schedule.cron = \"@daily\" has 1 field; it needs five"),
        ("[schedule]\ncron = \"0 0 0 30 2 *\"\n", "schedule.cron = \"0 0 0 30 2 *\" never fires"),
        ("[schedule]\ntimezone = \"Europe/Berln\"\n", "schedule.timezone = \"Europe/Berln\" is not an IANA time zone"),
        ("[schedule]\ntimezone = \"CEST\"\n", "schedule.timezone = \"CEST\" is not an IANA time zone"),
        (
            "[schedule]\nwindow = [\"22:00-06:00\", \"25:00-06:00\"]\n",
            "schedule.window: \"25:00-06:00\": the start \"25:00\" is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)",
        ),
        ("[schedule]\nwindow = \"22:00\"\n", "schedule.window: \"22:00\" is not a window: expected START-END"),
        ("[schedule]\nwindow = \"22:00-06:00;01:00-02:00\"\n", "schedule.window: \"22:00-06:00;01:00-02:00\": the end"),
        (
            "[schedule]\nwindow = [\"06:00-06:00\"]\n",
            "schedule.window: \"06:00-06:00\" opens and closes at the same time",
        ),
        ("[schedule]\nwindow = 22\n", "schedule.window: invalid type: integer `22`, expected a list of windows"),
        ("[retention]\nmax_replica_lag = \"0s\"\n", "retention.max_replica_lag = 0s must be more than 0 (or off)"),
        (
            "[database]\nreplicas = [\"postgres://standby/jobs\"]\n",
            "database.replicas applies to server engines only, and database.url is an sqlite: URL",
        ),
        (
            "[database]\nurl = \"postgres://db/jobs\"\nreplicas = [\"postgres://a/jobs\", \"sqlite://b.db\"]\n",
            "database.replicas: replica 2 is a SQLite URL, and database.url a PostgreSQL one",
        ),
        (
            "[database]\nurl = \"postgres://db/jobs\"\nreplicas = \"standby:5432\"\n",
            "database.replicas: replica 1 must start with sqlite:, postgres:, postgresql:, mariadb: or mysql:",
        ),
    ];
    for (text, expected) in cases {
        let message = err(load_text(text));
        assert!(message.contains(expected), "{text}: {message}");
        assert!(message.contains("(set in "), "{text}: the file is named: {message}");
    }
    for text in [
        "[metrics]\npushgateway = \"https://gw.example:9091/\"\n",
        "[metrics]\nlisten = \"[::]:9464\"\npushgateway = \"http://gw.example:9091/\"\n[ui]\nenabled = false\n",
        "[database]\nurl = \"postgresql://db/jobs\"\n",
        "[database]\nurl = \"sqlite::memory:\"\n",
        "[retention]\nbatch_size = 100000\n",
        "[retention]\nbatch_size = \"auto\"\nbatch_budget = \"200ms\"\n",
        "[schedule]\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n",
        "[schedule]\ncron = \"0 0 3 * * SUN\"\ntimezone = \"America/Santiago\"\n",
        "[schedule]\ntimezone = \"Etc/UTC\"\n",
        "[schedule]\nwindow = [\"22:00-06:00\", \"12:00-13:00\"]\ntimezone = \"Europe/Berlin\"\n",
        "[retention]\nmax_replica_lag = \"30s\"\n[database]\nurl = \"postgres://db/jobs\"\nreplicas = [\"postgres://s1/jobs\"]\n",
    ] {
        load_text(text).unwrap_or_else(|err| panic!("{text}: {err}"));
    }
}

#[test]
fn the_database_password_never_appears_in_errors() {
    let message = err(load_env(&[
        ("RETENTIOND__DATABASE__URL", "oracle://admin:hunter2@db/jobs"),
        ("RETENTIOND__DATABASE__MAX_CONNECTIONS", "0"),
    ]));
    assert!(message.contains("database.url") && message.contains("RETENTIOND__DATABASE__URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let message = err(load_env(&[("RETENTIOND__DATABASE__URL", "postgres://admin:hun/ter2@db/jobs")]));
    assert!(message.contains("database.url is not a valid URL"), "{message}");
    assert!(!message.contains("hun/ter2") && !message.contains("ter2"), "{message}");

    let message = err(load_env(&[
        ("RETENTIOND__DATABASE__URL", "postgres://db/jobs"),
        ("RETENTIOND__DATABASE__REPLICAS", "postgres://a/jobs, mysql://admin:hunter2@b/jobs"),
    ]));
    assert!(
        message.contains("database.replicas: replica 2") && message.contains("RETENTIOND__DATABASE__REPLICAS"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let message = err(load_text("[database]\nurl = { password = \"hunter2\" }\n"));
    assert!(message.contains("database.url"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn redacted_toml_round_trips() {
    let mut settings = Settings::default();
    settings.database.url = DatabaseUrl::new("postgres://retention:hunter2@db.example:5432/jobs?password=x9".into());
    settings.database.max_connections = 12;
    settings.database.statement_timeout = Duration::from_millis(2500);
    settings.database.replicas = vec![DatabaseUrl::new("postgres://watch:secret7@standby.example:5433/jobs".into())];
    settings.retention.max_replica_lag = Some(Duration::from_secs(30));
    settings.retention.completed = Some(Duration::from_secs(36 * 3600));
    settings.retention.closed = None;
    settings.retention.creating_idle = Some(Duration::from_secs(14 * DAY));
    settings.retention.batch_pause = Duration::from_secs(90 * 60);
    settings.retention.max_deletes_per_run = 5000;
    settings.schedule.run_on_start = false;
    settings.schedule.window = crate::scheduler::parse_windows("22:00-6:00, 23:59:30-24:00").unwrap();
    settings.metrics.pushgateway = "http://gw:9091".into();
    settings.log.format = LogFormat::Json;
    settings.log.level = "warn,retentiond=debug".into();
    settings.shutdown.grace = Duration::from_secs(45);

    let text = settings.to_redacted_toml();
    assert!(!text.contains("hunter2") && !text.contains("x9") && !text.contains("secret7"), "{text}");
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
        "window = [\"22:00-06:00\", \"23:59:30-24:00\"]",
        "replicas = [\"postgres://watch:REDACTED@standby.example:5433/jobs\"]",
        "max_replica_lag = \"30s\"",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }

    let file = file(&text);
    let loaded = load_from(Some(file.path().to_owned()), HashMap::new(), &no_overrides()).unwrap();
    assert_eq!(loaded.database.url.redacted(), settings.database.url.redacted());
    let mut expected = settings.clone();
    expected.database.url = loaded.database.url.clone();
    expected.database.replicas = loaded.database.replicas.clone();
    // Every type's retentions are shown, so they load back set.
    expected.retention.by_type = settings.retention.effective_by_type();
    assert_eq!(loaded, expected);

    // And the defaults print every key.
    let defaults = Settings::default().to_redacted_toml();
    // retention.by_type is a table of a table per type, each with every policy.
    let count: usize = known_keys().values().map(Vec::len).sum::<usize>() - 1 + 2 * 3;
    assert_eq!(defaults.lines().filter(|line| line.contains(" = ")).count(), count, "{defaults}");
    assert!(defaults.contains("creating_idle = \"off\""), "{defaults}");
    assert!(defaults.contains("[retention.by_type.export]\ncompleted = \"90d\""), "{defaults}");
}

#[test]
fn debug_of_the_settings_shows_no_password() {
    let mut settings = Settings::default();
    settings.database.url = DatabaseUrl::new("postgres://u:hunter2@db/jobs".into());
    assert!(!format!("{settings:?}").contains("hunter2"));
}

#[test]
fn tls_settings_and_url_parameters() {
    let settings = load_env(&[
        ("RETENTIOND__DATABASE__URL", "postgres://u@db.example/jobs"),
        ("RETENTIOND__DATABASE__SSLMODE", "Verify-Full"),
        ("RETENTIOND__DATABASE__SSLROOTCERT", "/etc/retentiond/ca.crt"),
        ("RETENTIOND__DATABASE__PASSWORD_FILE", "db-password"),
    ])
    .unwrap();
    assert_eq!(settings.database.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(settings.database.ssl_mode(), Some(SslMode::VerifyFull));
    assert_eq!(
        settings.database.tls_file(TlsFile::RootCert),
        Some(("database.sslrootcert".to_owned(), "/etc/retentiond/ca.crt".to_owned()))
    );
    let text = settings.to_redacted_toml();
    assert!(text.contains("sslmode = \"verify-full\"") && text.contains("password_file = \"db-password\""), "{text}");

    // From the URL, with sqlx's other spellings.
    let settings = load_env(&[(
        "RETENTIOND__DATABASE__URL",
        "postgres://u@db/jobs?ssl-mode=verify-ca&ssl-ca=/ca.pem&sslcert=/c.pem&ssl-key=/k.pem",
    )])
    .unwrap();
    assert_eq!(settings.database.sslmode, None, "the setting stays unset");
    assert_eq!(settings.database.ssl_mode(), Some(SslMode::VerifyCa));
    assert_eq!(
        settings.database.tls_file(TlsFile::ClientKey),
        Some(("ssl-key in database.url".to_owned(), "/k.pem".to_owned())),
        "named as the URL spells it"
    );
    assert_eq!(
        settings.database.tls_file(TlsFile::RootCert),
        Some(("ssl-ca in database.url".to_owned(), "/ca.pem".to_owned()))
    );
    // The same value in both places agrees.
    load_env(&[
        ("RETENTIOND__DATABASE__URL", "postgres://u@db/jobs?sslmode=require"),
        ("RETENTIOND__DATABASE__SSLMODE", "require"),
    ])
    .unwrap();
    // Empty leaves it to the URL (and the driver's default, prefer).
    let settings = load_text("[database]\nurl = \"postgres://db/jobs\"\nsslmode = \"\"\n").unwrap();
    assert_eq!(settings.database.ssl_mode(), None);
}

#[test]
fn tls_and_password_file_rules() {
    const PG: (&str, &str) = ("RETENTIOND__DATABASE__URL", "postgres://db/j");
    let url = |value| ("RETENTIOND__DATABASE__URL", value);
    let cases: [(&[(&str, &str)], &str); 15] = [
        (&[PG, ("RETENTIOND__DATABASE__SSLMODE", "allow")], "sslmode allow is not supported"),
        (&[PG, ("RETENTIOND__DATABASE__SSLMODE", "verify_full")], "invalid sslmode \"verify_full\""),
        (&[url("postgres://db/j?sslmode=strict")], "database.url: invalid sslmode \"strict\""),
        (
            &[url("postgres://db/j?sslmode=require"), ("RETENTIOND__DATABASE__SSLMODE", "verify-full")],
            "database.sslmode = \"verify-full\" conflicts with sslmode=require in database.url; set it in one place",
        ),
        (
            &[url("mariadb://db/j?ssl-mode=verify_ca"), ("RETENTIOND__DATABASE__SSLMODE", "verify_identity")],
            "database.sslmode = \"verify-full\" conflicts with ssl-mode=verify_ca in database.url; set it in one place",
        ),
        (
            &[url("postgres://db/j?sslrootcert=/a.pem"), ("RETENTIOND__DATABASE__SSLROOTCERT", "/b.pem")],
            "database.sslrootcert = \"/b.pem\" conflicts with sslrootcert=/a.pem in database.url",
        ),
        (&[PG, ("RETENTIOND__DATABASE__SSLCERT", "/c.pem")], "database.sslcert and database.sslkey"),
        (
            &[url("postgres://db/j?sslmode=disable"), ("RETENTIOND__DATABASE__SSLROOTCERT", "/a.pem")],
            "sslmode is disable, so database.sslrootcert would not be used",
        ),
        (
            &[url("postgres://db/j?sslmode=verify-ca&sslrootcert=system")],
            "sslrootcert in database.url is system, which trusts every public CA, so it needs sslmode verify-full",
        ),
        (
            &[url("postgres://db/j?sslmode=require"), ("RETENTIOND__DATABASE__SSLROOTCERT", "system")],
            "database.sslrootcert is system, which trusts every public CA, so it needs sslmode verify-full",
        ),
        (&[url("postgres://db/j?passfile=/p")], "passfile is not supported; name the file in database.password_file"),
        (&[url("postgres://db/j?sslcrl=/crl.pem")], "the parameter sslcrl is not supported"),
        (
            &[url("postgres://u:hunter2@db/j"), ("RETENTIOND__DATABASE__PASSWORD_FILE", "/p")],
            "database.url holds a password and database.password_file is set",
        ),
        (
            &[url("sqlite://x.db"), ("RETENTIOND__DATABASE__SSLMODE", "require")],
            "database.sslmode applies to PostgreSQL and MariaDB only",
        ),
        (
            &[("RETENTIOND__DATABASE__PASSWORD_FILE", "/p")],
            "database.password_file applies to PostgreSQL and MariaDB only",
        ),
    ];
    for (vars, expected) in cases {
        let message = err(load_env(vars));
        assert!(message.contains(expected), "{vars:?}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn pushgateway_tls_and_password_file_rules() {
    let cases = [
        (
            "pushgateway = \"http://u@gw:9091\"\npushgateway_ca_file = \"/ca.pem\"",
            "metrics.pushgateway_ca_file is set, but metrics.pushgateway is not an https:// URL",
        ),
        (
            "pushgateway_password_file = \"/p\"",
            "metrics.pushgateway_password_file is set, but metrics.pushgateway is not",
        ),
        (
            "pushgateway = \"https://gw:9091\"\npushgateway_password_file = \"/p\"",
            "needs the user name in metrics.pushgateway",
        ),
        (
            "pushgateway = \"https://u:hunter2@gw:9091\"\npushgateway_password_file = \"/p\"",
            "metrics.pushgateway holds a password and metrics.pushgateway_password_file is set",
        ),
    ];
    for (keys, expected) in cases {
        let message = err(load_text(&format!("[metrics]\n{keys}\n")));
        assert!(message.contains(expected), "{keys}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
    let settings = load_text(
        "[metrics]\npushgateway = \"https://pusher@gw:9091\"\npushgateway_ca_file = \"ca.pem\"\npushgateway_password_file = \"push\"\n",
    )
    .unwrap();
    assert_eq!(settings.metrics.pushgateway_password_file, "push");
}

// --- The status pages (`ui`) ---

#[test]
fn pages_on_a_network_address_need_a_password_file() {
    let message = err(load_env(&[("RETENTIOND__METRICS__LISTEN", "0.0.0.0:9464")]));
    assert!(message.contains("ui.password_file is empty but metrics.listen = \"0.0.0.0:9464\""), "{message}");
    assert!(message.contains("(set by environment variable RETENTIOND__METRICS__LISTEN)"), "{message}");
    let message = err(load_text("[metrics]\nlisten = \"[::]:9464\"\n"));
    assert!(message.contains("ui.password_file is empty"), "{message}");

    for allowed in [
        vec![("RETENTIOND__METRICS__LISTEN", "127.0.0.2:9464")],
        vec![("RETENTIOND__METRICS__LISTEN", "[::1]:9464")],
        vec![("RETENTIOND__METRICS__LISTEN", "")],
        vec![("RETENTIOND__METRICS__LISTEN", "0.0.0.0:9464"), ("RETENTIOND__UI__ENABLED", "false")],
        vec![("RETENTIOND__METRICS__LISTEN", "0.0.0.0:9464"), ("RETENTIOND__UI__PASSWORD_FILE", "ui-password")],
    ] {
        let settings = load_env(&allowed).unwrap_or_else(|e| panic!("{allowed:?}: {e}"));
        assert_eq!(settings.ui.requires_password(), allowed.iter().any(|(key, _)| key.ends_with("PASSWORD_FILE")));
    }
    let message = err(load_env(&[("RETENTIOND__UI__PASSWORD_FILE", "a\nb")]));
    assert!(message.contains("ui.password_file contains a control character"), "{message}");
}

#[test]
fn by_type_overrides_a_policy_for_one_type_and_the_rest_falls_back() {
    let text = "[retention]\nclosed = \"60d\"\n[retention.by_type.export]\ncompleted = \"30d\"\n\
                [retention.by_type.import]\ncreating_idle = \"14d\"\nclosed = \"off\"\n";
    let retentions = load_text(text).unwrap().retention.retentions();
    let days = |n: u64| Some(Duration::from_secs(n * DAY));
    assert_eq!(retentions.completed, PerType { import: days(90), export: days(30) });
    assert_eq!(retentions.closed, PerType { import: None, export: days(60) });
    assert_eq!(retentions.creating_idle, PerType { import: days(14), export: None });
    let from_env = load_env(&[("RETENTIOND__RETENTION__BY_TYPE__EXPORT__COMPLETED", "30d")]).unwrap();
    assert_eq!(from_env.retention.retentions().completed, PerType { import: days(90), export: days(30) });
}

#[test]
fn check_config_shows_the_effective_table_of_each_type() {
    let settings =
        load_text("[retention]\nclosed = \"60d\"\n[retention.by_type.export]\ncompleted = \"30d\"\n").unwrap();
    let shown: toml::Table = settings.to_redacted_toml().parse().unwrap();
    let by_type = &shown["retention"]["by_type"];
    for (job_type, completed) in [("import", "90d"), ("export", "30d")] {
        assert_eq!(by_type[job_type]["completed"].as_str(), Some(completed), "{shown}");
        assert_eq!(by_type[job_type]["closed"].as_str(), Some("60d"), "{shown}");
        assert_eq!(by_type[job_type]["creating_idle"].as_str(), Some("off"), "{shown}");
    }
    // What check-config prints loads back to the same rules.
    assert_eq!(
        load_text(&settings.to_redacted_toml()).unwrap().retention.retentions(),
        settings.retention.retentions()
    );
}

#[test]
fn by_type_refuses_an_unknown_type_or_policy_naming_the_key() {
    let message = err(load_text("[retention.by_type.archive]\ncompleted = \"30d\"\n"));
    assert!(message.contains("retention.by_type.archive"), "{message}");
    let message = err(load_text("[retention.by_type.export]\ncomplete = \"30d\"\n"));
    assert!(message.contains("retention.by_type.export.complete"), "{message}");
    let message = err(load_env(&[("RETENTIOND__RETENTION__BY_TYPE__EXPORT__HELD", "30d")]));
    assert!(message.contains("retention.by_type.export.held"), "{message}");
}

#[test]
fn by_type_values_are_checked_against_the_minimum() {
    let message = err(load_text("[retention.by_type.export]\ncompleted = \"1h\"\n"));
    assert!(message.contains("retention.by_type.export.completed = 1h is below retention.minimum (1d)"), "{message}");
    let message = err(load_text("[retention.by_type.import]\nclosed = \"soon\"\n"));
    assert!(message.contains("closed"), "{message}");
    assert!(load_text("[retention.by_type.import]\nclosed = \"off\"\n").is_ok());
}
