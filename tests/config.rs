//! docs/design.md, "Configuration": configuration sources, validation (exit 78 naming the key),
//! the retention minimum, and the password never shown.

#[macro_use]
mod common;

use common::pg_server::{self, PgServer};
use common::*;
use serde_json::json;

const SECRET_URL: &str = "postgres://u:s3cretpw@127.0.0.1:5432/db";
const SECRET: &str = "s3cretpw";

/// Runs `args` with `--config FILE` holding `toml`.
fn with_config_file(env: &TestEnv, toml: &str, args: &[&str]) -> Out {
    let path = env.write_file("retentiond.toml", toml);
    let mut all = vec!["--config", path_str(&path)];
    all.extend_from_slice(args);
    env.run(&all)
}

#[track_caller]
fn assert_config_error(out: &Out, key: &str) {
    out.expect_code(78);
    assert!(contains_ci(&out.stderr, key), "stderr must name the key {key:?}\n{}", out.describe());
}

every_engine! {
    /// Unknown keys, in the file or the environment, exit 78 naming the key,
    /// for every command, before anything touches the store.
    fn unknown_keys_exit_78_naming_the_key(env: &TestEnv) {
        env.import_ok(&[job("old-done", "Completed", days_ago(200))]);
        let before = env.dump_all();

        for args in [&["check-config"][..], &["purge"], &["jobs", "list"]] {
            assert_config_error(&with_config_file(env, "[retention]\nbatchsize = 5\n", args), "batchsize");
        }
        assert_config_error(&with_config_file(env, "[retension]\ncompleted = \"90d\"\n", &["check-config"]), "retension");
        assert_config_error(&with_config_file(env, "verbose = true\n", &["check-config"]), "verbose");
        assert_config_error(&with_config_file(env, "[database]\npasword = \"x\"\n", &["purge"]), "pasword");

        let out = env.run_env(&["purge"], &[("RETENTIOND__RETENTION__BATCHSIZE", "5")]);
        assert_config_error(&out, "batchsize");
        let out = env.run_env(&["check-config"], &[("RETENTIOND__RETENSION__COMPLETED", "90d")]);
        assert_config_error(&out, "retension");

        assert_eq!(env.dump_all(), before, "a refused configuration touched the store");
    }
}

every_engine! {
    /// Bad values exit 78 and name the key.
    fn bad_values_exit_78_naming_the_key(env: &TestEnv) {
        env.import_ok(&[job("old-done", "Completed", days_ago(200))]);
        let before = env.dump_all();

        assert_config_error(&with_config_file(env, "[retention]\ncompleted = \"ninety days\"\n", &["purge"]), "completed");
        assert_config_error(&with_config_file(env, "[retention]\nbatch_size = \"lots\"\n", &["check-config"]), "batch_size");
        assert_config_error(&with_config_file(env, "[schedule]\nrun_on_start = \"maybe\"\n", &["check-config"]), "run_on_start");
        for (key, value, name) in [
            ("RETENTIOND__RETENTION__CLOSED", "banana", "closed"),
            ("RETENTIOND__RETENTION__CREATING_IDLE", "-5d", "creating_idle"),
            ("RETENTIOND__RETENTION__BATCH_SIZE", "many", "batch_size"),
            ("RETENTIOND__RETENTION__BATCH_SIZE", "0", "batch_size"),
            ("RETENTIOND__RETENTION__MAX_DELETES_PER_RUN", "-1", "max_deletes_per_run"),
            ("RETENTIOND__RETENTION__RUN_TIMEOUT", "forever", "run_timeout"),
            ("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "soon", "connect_timeout"),
            ("RETENTIOND__DATABASE__MAX_CONNECTIONS", "lots", "max_connections"),
            ("RETENTIOND__LOG__FORMAT", "fancy", "format"),
            ("RETENTIOND__DATABASE__URL", "oracle://root@127.0.0.1/db", "url"),
        ] {
            let out = env.run_env(&["purge"], &[(key, value)]);
            assert_config_error(&out, name);
        }
        // Not TOML at all.
        with_config_file(env, "[retention\ncompleted = 90d\n", &["check-config"]).expect_code(78);
        // A configuration file that does not exist.
        let missing = env.dir().join("no-such-dir").join("retentiond.toml");
        env.run(&["--config", path_str(&missing), "check-config"]).expect_code(78);

        assert_eq!(env.dump_all(), before, "a refused configuration touched the store");
    }
}

every_engine! {
    /// An enabled policy below `retention.minimum` is refused (78) and the
    /// purge deletes nothing; at or above the minimum, or off, it is accepted.
    fn policy_below_minimum_is_refused(env: &TestEnv) {
        env.import_ok(&[
            job("two-hours-done", "Completed", now() - chrono::Duration::hours(2)),
            job("two-hours-closed", "Closed", now() - chrono::Duration::hours(2)),
        ]);
        let before = env.dump_all();
        for (key, value, name) in [
            ("RETENTIOND__RETENTION__COMPLETED", "1h", "completed"),
            ("RETENTIOND__RETENTION__CLOSED", "23h", "closed"),
            ("RETENTIOND__RETENTION__CREATING_IDLE", "12h", "creating_idle"),
            ("RETENTIOND__RETENTION__COMPLETED", "0s", "completed"),
        ] {
            assert_config_error(&env.run_env(&["purge"], &[(key, value)]), name);
            assert_config_error(&env.run_env(&["check-config"], &[(key, value)]), name);
        }
        assert_config_error(&with_config_file(env, "[retention]\ncompleted = \"1h\"\n", &["purge"]), "completed");
        assert_eq!(env.dump_all(), before, "a refused configuration deleted something");

        env.run_env(&["check-config"], &[("RETENTIOND__RETENTION__COMPLETED", "1d")]).expect_code(0);
        env.run_env(&["check-config"], &[("RETENTIOND__RETENTION__COMPLETED", "off")]).expect_code(0);
        env.run_env(&["check-config"], &[("RETENTIOND__RETENTION__CREATING_IDLE", "14d")]).expect_code(0);

        // A lower minimum allows a shorter policy, which then applies.
        let s = env.json_env(
            &["purge"],
            &[("RETENTIOND__RETENTION__MINIMUM", "1h"), ("RETENTIOND__RETENTION__COMPLETED", "1h")],
        );
        assert_eq!(s["counts"], json!({"completed": 1, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{s}");
        assert_eq!(env.job_names(), vec!["two-hours-closed"]);
    }
}

every_engine! {
    /// `check-config` prints the effective configuration as TOML with the
    /// password redacted, reflecting file and environment.
    fn check_config_prints_toml_with_password_redacted(env: &TestEnv) {
        let path = env.write_file("retentiond.toml", "[retention]\nbatch_size = 500\nclosed = \"45d\"\n");
        let out = env.run_env(
            &["--config", path_str(&path), "check-config", "--log-level", "trace"],
            &[("RETENTIOND__DATABASE__URL", SECRET_URL), ("RETENTIOND__RETENTION__CLOSED", "30d")],
        );
        out.expect_code(0);
        assert!(out.stdout.contains("REDACTED"), "{}", out.describe());
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET), "the password leaked\n{}", out.describe());
        let printed: toml::Table = toml::from_str(&out.stdout).unwrap_or_else(|e| panic!("not TOML: {e}\n{}", out.describe()));
        let url = printed["database"]["url"].as_str().expect("database.url is printed");
        assert!(url.contains("REDACTED") && url.contains("127.0.0.1:5432"), "{url}");
        assert_eq!(printed["retention"]["batch_size"].as_integer(), Some(500), "the file's value: {}", out.stdout);
        let closed = printed["retention"]["closed"].as_str().expect("retention.closed");
        assert_eq!(humantime::parse_duration(closed).ok(), Some(std::time::Duration::from_secs(30 * 86400)), "the environment wins: {closed}");
        let completed = printed["retention"]["completed"].as_str().expect("retention.completed");
        assert_eq!(humantime::parse_duration(completed).ok(), Some(std::time::Duration::from_secs(90 * 86400)), "default: {completed}");
        assert_eq!(printed["retention"]["creating_idle"].as_str(), Some("off"), "default: {}", out.stdout);
        for section in ["database", "retention", "schedule", "metrics", "log", "shutdown"] {
            assert!(printed.contains_key(section), "section [{section}] missing from\n{}", out.stdout);
        }

        // The same with the configuration given only by RETENTIOND_CONFIG.
        let out = env.cmd(&["check-config"]).env("RETENTIOND_CONFIG", path_str(&path)).env("RETENTIOND__DATABASE__URL", SECRET_URL).run();
        out.expect_code(0);
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET), "{}", out.describe());
        let printed: toml::Table = toml::from_str(&out.stdout).expect("TOML");
        assert_eq!(printed["retention"]["batch_size"].as_integer(), Some(500), "RETENTIOND_CONFIG is read: {}", out.stdout);
    }
}

/// `schedule.window`: `check-config` prints the windows in one form, as a
/// list, from the file or from one text in the environment; a malformed
/// window exits 78 naming the key and what is wrong, for `check-config`,
/// `purge` and `run` alike, before anything touches the store.
#[test]
fn check_config_prints_the_windows_and_refuses_a_malformed_one() {
    let env = TestEnv::new(Engine::Sqlite, "check_config_prints_the_windows").expect("sqlite");
    env.import_ok(&[job("old-done", "Completed", days_ago(200))]);
    let before = env.dump_all();
    let windows = |out: &Out| -> Vec<String> {
        out.expect_code(0);
        let printed: toml::Table = toml::from_str(&out.stdout).expect("TOML");
        let list = printed["schedule"]["window"].as_array().unwrap_or_else(|| panic!("a list: {}", out.stdout));
        list.iter().map(|window| window.as_str().expect("text").to_owned()).collect()
    };
    let file = "[schedule]\ntimezone = \"Europe/Berlin\"\nwindow = [\"22:00-6:00\", \"12:00-13:30:15\"]\n";
    assert_eq!(windows(&with_config_file(&env, file, &["check-config"])), ["22:00-06:00", "12:00-13:30:15"]);
    let out = env.run_env(&["check-config"], &[("RETENTIOND__SCHEDULE__WINDOW", "1:00-2:00, 23:00-24:00")]);
    assert_eq!(windows(&out), ["01:00-02:00", "23:00-24:00"]);
    assert_eq!(windows(&env.run(&["check-config"])), Vec::<String>::new(), "none by default: any time");

    for (value, what) in [
        ("25:00-06:00", "\"25:00-06:00\": the start \"25:00\" is not a time of day"),
        ("22:00", "\"22:00\" is not a window: expected START-END"),
        ("22:00-06:00;01:00-02:00", "the end \"06:00;01:00-02:00\" is not a time of day"),
        ("06:00-06:00", "opens and closes at the same time"),
        ("22:00-06:00,", "\"\" is not a window"),
    ] {
        for args in [&["check-config"][..], &["purge"], &["run"]] {
            let out = env.run_env(args, &[("RETENTIOND__SCHEDULE__WINDOW", value)]);
            assert_config_error(&out, "schedule.window");
            assert!(out.stderr.contains(what), "{value:?}: {what}\n{}", out.describe());
            assert!(out.stderr.contains("RETENTIOND__SCHEDULE__WINDOW"), "names the variable\n{}", out.describe());
        }
    }
    let out = with_config_file(&env, "[schedule]\nwindow = [\"22:00-06:00\", \"7\"]\n", &["purge"]);
    assert_config_error(&out, "schedule.window");
    assert!(
        out.stderr.contains("\"7\" is not a window") && out.stderr.contains("retentiond.toml"),
        "{}",
        out.describe()
    );
    assert_eq!(env.dump_all(), before, "a refused configuration touched the store");
}

every_engine! {
    /// Later sources win: defaults < file < environment; RETENTIOND_CONFIG
    /// names the file when --config is absent.
    fn file_and_environment_layering_changes_what_is_eligible(env: &TestEnv) {
        env.import_ok(&[
            job("closed-100d", "Closed", days_ago(100)),
            job("completed-40d", "Completed", days_ago(40)),
        ]);
        let path = env.write_file("retentiond.toml", "[retention]\nclosed = \"off\"\ncompleted = \"30d\"\n");
        let file = path_str(&path);

        let s = env.json(&["purge", "--dry-run"]);
        assert_eq!(dry_run_names(&s), vec!["closed-100d"], "defaults: {s}");
        let s = env.json(&["--config", file, "purge", "--dry-run"]);
        assert_eq!(dry_run_names(&s), vec!["completed-40d"], "file: {s}");
        let s = env.json_env(&["--config", file, "purge", "--dry-run"], &[("RETENTIOND__RETENTION__CLOSED", "90d")]);
        assert_eq!(dry_run_names(&s), vec!["closed-100d", "completed-40d"], "environment over file: {s}");
        let s = env.json_env(&["purge", "--dry-run"], &[("RETENTIOND_CONFIG", file)]);
        assert_eq!(dry_run_names(&s), vec!["completed-40d"], "RETENTIOND_CONFIG: {s}");
    }
}

/// Commands that must fail with 69 against an unreachable PostgreSQL URL
/// holding a password, without showing it.
const FAILING_COMMANDS: [&[&str]; 7] = [
    &["purge"],
    &["purge", "--dry-run"],
    &["migrate"],
    &["jobs", "list"],
    &["jobs", "show", "some-job"],
    &["audit", "list"],
    &["runs", "list"],
];

#[test]
fn password_never_in_output_of_failing_commands() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://u:s3cretpw@127.0.0.1:1/db";
    // All at once: each waits for its connect timeout.
    let mut running = Vec::new();
    for format in ["json", "pretty"] {
        for args in FAILING_COMMANDS {
            let mut all = vec!["--log-level", "trace", "--log-format", format];
            all.extend_from_slice(args);
            running.push(
                Invocation::new(&all)
                    .env("RETENTIOND__DATABASE__URL", url)
                    .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "2s")
                    .cwd(dir.path())
                    .spawn(),
            );
        }
    }
    for process in running {
        let out = process.wait();
        out.expect_code(69);
        assert!(
            !out.stderr.contains(SECRET) && !out.stdout.contains(SECRET),
            "the password leaked\n{}",
            out.describe()
        );
    }
    // A bad configuration with the password in it: the error does not show it either.
    let out = Invocation::new(&["check-config"])
        .env("RETENTIOND__DATABASE__URL", url)
        .env("RETENTIOND__RETENTION__COMPLETED", "1h")
        .cwd(dir.path())
        .run();
    out.expect_code(78);
    assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET), "the password leaked\n{}", out.describe());
}

/// A server of the test's own that asks `pwuser` for its SCRAM password
/// (the shared one trusts every login, so it never looks at a password):
/// the secret as a wrong password is refused by the server, the right one
/// gets past the login to a database that does not exist; every command
/// fails either way without showing either password. The right password
/// to the right database works, so the refusals are the password's.
#[test]
fn password_never_in_output_when_login_fails() {
    let Some(bindir) = pg_server::tools("password_never_in_output_when_login_fails") else { return };
    let server = PgServer::start(&bindir, None, &["host all pwuser 127.0.0.1/32 scram-sha-256"]);
    const RIGHT: &str = "r1ght-pw-7c4e";
    server.psql("postgres", &format!("CREATE ROLE pwuser LOGIN PASSWORD '{RIGHT}'"));
    server.psql("postgres", "CREATE DATABASE pwjobs OWNER pwuser");
    let dir = tempfile::tempdir().unwrap();
    let run = |password: &str, database: &str, args: &[&str]| {
        let url = format!("postgres://pwuser:{password}@127.0.0.1:{}/{database}", server.port);
        let mut all = vec!["--log-level", "trace"];
        all.extend_from_slice(args);
        Invocation::new(&all)
            .env("RETENTIOND__DATABASE__URL", &url)
            .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "5s")
            .cwd(dir.path())
            .run()
    };
    let refusals = |log: &str| log.matches("password authentication failed for user \"pwuser\"").count();
    for (password, database) in [(SECRET, "pwjobs"), (RIGHT, "no_such_db")] {
        for args in FAILING_COMMANDS {
            let before = refusals(&server.log());
            let out = run(password, database, args);
            assert_ne!(out.code, 0, "{}", out.describe());
            for shown in [SECRET, RIGHT] {
                assert!(
                    !out.stderr.contains(shown) && !out.stdout.contains(shown),
                    "a password leaked\n{}",
                    out.describe()
                );
            }
            let refused = refusals(&server.log()) > before;
            assert_eq!(
                refused,
                password == SECRET,
                "{args:?} with the password {password}: refused {refused}\n{}",
                server.log()
            );
        }
    }
    run(RIGHT, "pwjobs", &["migrate"]).expect_code(0);
    run(RIGHT, "pwjobs", &["runs", "list"]).expect_code(0);
}

/// `check-config` reads every file the configuration names, as the commands
/// that use them would: each one missing, unreadable, empty or malformed is
/// reported by key and path, all in one run, exit 78; with good files it
/// prints the configuration. Nothing is connected to (port 1).
#[test]
fn check_config_checks_the_files_the_configuration_names() {
    if !common::pki::openssl_or_skip("check_config_checks_the_files_the_configuration_names") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = common::pki::TestCa::new(dir.path(), "files-ca");
    let client = ca.issue("client", "retentiond", &[]);
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let good_password = write("password", "a-long-enough-password\n");
    let short_password = write("short", "fifteen-chars15\n");
    let empty = write("empty", "");
    let not_pem = write("not-pem", "hello\n");
    let unreadable = dir.path().join("a-directory");
    std::fs::create_dir(&unreadable).unwrap();
    let missing = dir.path().join("missing");
    let run = |files: &[(&str, &std::path::Path)]| {
        let mut env: Vec<(String, String)> = vec![
            ("RETENTIOND__DATABASE__URL".into(), "postgres://retentiond@127.0.0.1:1/jobs?sslmode=verify-full".into()),
            ("RETENTIOND__METRICS__PUSHGATEWAY".into(), "https://pusher@127.0.0.1:1/".into()),
        ];
        env.extend(files.iter().map(|(key, path)| (key.to_string(), path_str(path).to_owned())));
        Invocation::new(&["check-config"]).envs(&env).cwd(dir.path()).run()
    };
    let keys = [
        "RETENTIOND__DATABASE__PASSWORD_FILE",
        "RETENTIOND__DATABASE__SSLROOTCERT",
        "RETENTIOND__DATABASE__SSLCERT",
        "RETENTIOND__DATABASE__SSLKEY",
        "RETENTIOND__METRICS__PUSHGATEWAY_CA_FILE",
        "RETENTIOND__METRICS__PUSHGATEWAY_PASSWORD_FILE",
        "RETENTIOND__UI__PASSWORD_FILE",
    ];

    let good = [&good_password, &ca.cert, &client.cert, &client.key, &ca.cert, &good_password, &good_password];
    let out = run(&keys.iter().copied().zip(good.iter().map(|path| path.as_path())).collect::<Vec<_>>());
    out.expect_code(0);
    assert!(out.stdout.contains(&format!("sslrootcert = \"{}\"", ca.cert.display())), "{}", out.describe());

    let bad = [&missing, &empty, &unreadable, &client.cert, &not_pem, &empty, &short_password];
    let out = run(&keys.iter().copied().zip(bad.iter().map(|path| path.as_path())).collect::<Vec<_>>());
    out.expect_code(78);
    assert!(out.stdout.is_empty(), "nothing is printed: {}", out.describe());
    for expected in [
        format!("database.password_file {}: no such file", missing.display()),
        format!("database.sslrootcert {}: is empty", empty.display()),
        format!("database.sslcert {}: cannot read it", unreadable.display()),
        format!("database.sslkey {}: holds no private key", client.cert.display()),
        format!("metrics.pushgateway_ca_file {}: holds no PEM certificate", not_pem.display()),
        format!("metrics.pushgateway_password_file {}: is empty", empty.display()),
        format!("ui.password_file {}: holds a password of fewer than 16 characters", short_password.display()),
    ] {
        assert!(out.stderr.contains(&expected), "expected {expected:?}\n{}", out.describe());
    }

    // `system` names the system's store, not a file.
    let out = run(&[("RETENTIOND__DATABASE__SSLROOTCERT", std::path::Path::new("system"))]);
    out.expect_code(0);
}
