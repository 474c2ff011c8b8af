//! MariaDB connections as the binary makes them, against servers the tests
//! start themselves (tests/common/mariadb_server.rs, docs/security.md): a
//! TLS server with a test CA that takes TLS connections only, with a user
//! who logs in with a client certificate (`REQUIRE X509`) and one with a
//! password from a file; and a plain server, then made `read_only`, then
//! restarted `innodb_read_only`. One server per test, its scenarios run in
//! turn on it: each costs seconds to start.
//! `RETENTIOND_TEST_REQUIRE_TLS=1` (CI) makes them fail, not skip, when
//! `mariadbd` or openssl are missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::mariadb_server::{self, MariaDbServer, ServerOptions, ServerTls};
use common::pki::{Issued, TestCa};
use common::*;

/// pwuser's password: long enough to be scrubbed wherever it appears.
const PASSWORD: &str = "mariadb-tls-Pw-8Kq2xZ";

const NOT_TRUSTED: &str = "it is not signed by a certificate authority this client trusts";

/// A TLS server and the files a test gives the binary.
struct Fixture {
    dir: tempfile::TempDir,
    ca: TestCa,
    /// certuser's certificate, signed by `ca`.
    client: Issued,
    server: MariaDbServer,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "retentiond-test-ca");
        // For the name `localhost` only: connecting to 127.0.0.1 is a wrong host name.
        let server_cert = ca.issue("server", "localhost", &["DNS:localhost"]);
        let client = ca.issue("client", "certuser", &[]);
        let server = MariaDbServer::start(ServerOptions {
            tls: Some(ServerTls { server: &server_cert, client_ca: &ca }),
            require_tls: true,
            ..Default::default()
        });
        server.sql(&format!(
            "CREATE DATABASE jobs; CREATE DATABASE certjobs; CREATE DATABASE pwjobs; \
             CREATE USER certuser@'%' REQUIRE X509; GRANT ALL ON certjobs.* TO certuser@'%'; \
             CREATE USER pwuser@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON pwjobs.* TO pwuser@'%'"
        ));
        Fixture { dir, ca, client, server }
    }

    /// `mariadb://USER@HOST:PORT/DATABASE?QUERY`.
    fn url(&self, user: &str, host: &str, database: &str, query: &str) -> String {
        format!("mariadb://{user}@{host}:{}/{database}?{query}", self.server.port)
    }

    /// verify_identity against `localhost`, trusting the test CA.
    fn verified_url(&self, user: &str, database: &str) -> String {
        self.url(user, "localhost", database, &format!("ssl-mode=verify_identity&ssl-ca={}", path_str(&self.ca.cert)))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, url: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
        Invocation::new(args).env("RETENTIOND__DATABASE__URL", url).envs(env).cwd(self.dir.path()).run()
    }

    fn seed(&self, url: &str, env: &[(&str, &str)]) {
        seed(self.dir.path(), url, env);
    }

    fn count(&self, database: &str, table: &str) -> i64 {
        self.server.sql(&format!("SELECT COUNT(*) FROM {database}.{table}")).parse().unwrap()
    }
}

/// Two jobs past their retention and one recent, through `url`.
fn seed(dir: &Path, url: &str, env: &[(&str, &str)]) {
    let lines: Vec<String> = [
        job("old-1", "Completed", days_ago(120)),
        job("old-2", "Closed", days_ago(200)),
        job("recent", "Completed", days_ago(3)),
    ]
    .iter()
    .map(|job| job.to_string())
    .collect();
    Invocation::new(&["jobs", "import", "-"])
        .env("RETENTIOND__DATABASE__URL", url)
        .envs(env)
        .cwd(dir)
        .stdin((lines.join("\n") + "\n").as_bytes())
        .run()
        .expect_code(0);
}

/// The scenarios of one TLS server, in turn.
#[test]
fn against_a_tls_server() {
    if !mariadb_server::tools("against_a_tls_server") {
        return;
    }
    let fx = Fixture::start();
    verify_identity_connects_and_purges(&fx);
    tls_failures_exit_69_naming_the_cause(&fx);
    client_certificate_authentication(&fx);
    the_password_comes_from_a_file(&fx);
    a_reload_reads_a_rotated_password(&fx);
}

/// verify_identity connects over TLS (the server takes nothing else) and a
/// purge deletes and audits; verify_ca accepts the certificate whatever the
/// host name; required encrypts without verifying, and says so.
fn verify_identity_connects_and_purges(fx: &Fixture) {
    let url = fx.verified_url("root", "jobs");
    fx.seed(&url, &[]);
    let out = fx.run(&url, &["purge", "--output", "json"], &[]);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 2, "{}", out.describe());
    assert_eq!(fx.count("jobs", "jobs"), 1);
    assert_eq!(
        fx.server.sql("SELECT GROUP_CONCAT(job_name ORDER BY job_name) FROM jobs.retention_audit"),
        "old-1,old-2"
    );

    // The same settings as keys instead of URL parameters.
    let settings = [
        ("RETENTIOND__DATABASE__SSLMODE", "verify_identity"),
        ("RETENTIOND__DATABASE__SSLROOTCERT", path_str(&fx.ca.cert)),
    ];
    let out = fx.run(&fx.url("root", "localhost", "jobs", ""), &["runs", "list", "--output", "json"], &settings);
    out.expect_code(0);
    assert_eq!(out.json().as_array().map(Vec::len), Some(1), "{}", out.describe());

    // verify_ca checks the chain, not the name: 127.0.0.1 is not in the certificate.
    let by_address =
        fx.url("root", "127.0.0.1", "jobs", &format!("ssl-mode=verify_ca&ssl-ca={}", path_str(&fx.ca.cert)));
    fx.run(&by_address, &["runs", "list"], &[]).expect_code(0);

    // required: encrypted (the server takes nothing else), unverified, and a warning says so.
    let out = fx.run(&fx.url("root", "127.0.0.1", "jobs", "ssl-mode=required"), &["runs", "list"], &[]);
    out.expect_code(0);
    assert!(out.stderr.contains("the server is not verified"), "{}", out.describe());
    // preferred (the default) takes TLS when offered, unverified.
    fx.run(&fx.url("root", "127.0.0.1", "jobs", ""), &["runs", "list"], &[]).expect_code(0);
}

/// Each TLS failure exits 69, says what was refused, and writes nothing.
fn tls_failures_exit_69_naming_the_cause(fx: &Fixture) {
    fx.server.sql("CREATE DATABASE untouched");
    let other_ca = TestCa::new(fx.dir.path(), "another-ca");
    let with_ca = |host: &str, mode: &str, ca: &Path| {
        fx.url("root", host, "untouched", &format!("ssl-mode={mode}&ssl-ca={}", path_str(ca)))
    };
    // Unknown CA: the server's certificate is signed by a CA not given.
    expect_unreachable(&fx.run(&with_ca("localhost", "verify_identity", &other_ca.cert), &["purge"], &[]), NOT_TRUSTED);
    // No ssl-ca: the system's CAs do not know the test CA either.
    let out = fx.run(&fx.url("root", "localhost", "untouched", "ssl-mode=verify_identity"), &["purge"], &[]);
    expect_unreachable(&out, NOT_TRUSTED);
    // required with a CA file verifies the chain.
    expect_unreachable(&fx.run(&with_ca("localhost", "required", &other_ca.cert), &["purge"], &[]), NOT_TRUSTED);

    // Wrong host name: the certificate names localhost, not 127.0.0.1.
    let out = fx.run(&with_ca("127.0.0.1", "verify_identity", &fx.ca.cert), &["purge"], &[]);
    expect_unreachable(&out, "it is not valid for the host name 127.0.0.1: it names localhost");
    // The same as settings.
    let settings = [
        ("RETENTIOND__DATABASE__SSLMODE", "verify_identity"),
        ("RETENTIOND__DATABASE__SSLROOTCERT", path_str(&fx.ca.cert)),
    ];
    let out = fx.run(&fx.url("root", "127.0.0.1", "untouched", ""), &["purge"], &settings);
    expect_unreachable(&out, "it is not valid for the host name 127.0.0.1");

    // Plain text: the server takes TLS connections only (require_secure_transport).
    let out = fx.run(&fx.url("root", "localhost", "untouched", "ssl-mode=disabled"), &["purge"], &[]);
    expect_unreachable(&out, "Access denied for user 'root'");
    assert!(
        out.stderr.contains("a server that takes TLS connections only (require_secure_transport)"),
        "{}",
        out.describe()
    );

    assert_eq!(fx.server.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'untouched'"), "0");
}

/// certuser logs in with its certificate (`REQUIRE X509`): as settings, and
/// as URL parameters; without one it cannot, nor with one of another CA.
fn client_certificate_authentication(fx: &Fixture) {
    let url = fx.verified_url("certuser", "certjobs");
    write_secret(&fx.client.key, &std::fs::read_to_string(&fx.client.key).unwrap(), 0o600);
    let cert_settings = [
        ("RETENTIOND__DATABASE__SSLCERT", path_str(&fx.client.cert)),
        ("RETENTIOND__DATABASE__SSLKEY", path_str(&fx.client.key)),
    ];
    fx.seed(&url, &cert_settings);
    let out = fx.run(&url, &["purge", "--output", "json"], &cert_settings);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 2, "{}", out.describe());
    assert_eq!(fx.count("certjobs", "retention_audit"), 2);

    let in_url = format!("{url}&ssl-cert={}&ssl-key={}", path_str(&fx.client.cert), path_str(&fx.client.key));
    fx.run(&in_url, &["runs", "list"], &[]).expect_code(0);

    // Without a certificate the server refuses the user.
    expect_unreachable(&fx.run(&url, &["purge"], &[]), "Access denied for user 'certuser'");
    // A certificate from a CA the server does not trust: refused in the handshake.
    let other = TestCa::new(fx.dir.path(), "stranger-ca").issue("stranger", "certuser", &[]);
    let stranger = [
        ("RETENTIOND__DATABASE__SSLCERT", path_str(&other.cert)),
        ("RETENTIOND__DATABASE__SSLKEY", path_str(&other.key)),
    ];
    expect_unreachable(&fx.run(&url, &["purge"], &stranger), "the server refused the TLS handshake");
    // A missing key is a configuration error naming the file.
    let missing = fx.path("missing.key");
    let out = fx.run(
        &url,
        &["purge"],
        &[
            ("RETENTIOND__DATABASE__SSLCERT", path_str(&fx.client.cert)),
            ("RETENTIOND__DATABASE__SSLKEY", path_str(&missing)),
        ],
    );
    out.expect_code(78);
    assert!(out.stderr.contains(&format!("database.sslkey {}: no such file", missing.display())), "{}", out.describe());
}

/// pwuser's password comes from a file; it never shows in any output; a
/// wrong one is refused by the server, as is none.
fn the_password_comes_from_a_file(fx: &Fixture) {
    let url = fx.verified_url("pwuser", "pwjobs");
    let file = fx.path("db-password");
    write_secret(&file, &format!("{PASSWORD}\n"), 0o600);
    let by_path = [("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&file))];
    fx.seed(&url, &by_path);
    let out = fx.run(&url, &["purge", "--output", "json"], &by_path);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 2, "{}", out.describe());
    assert_eq!(fx.count("pwjobs", "retention_audit"), 2);
    assert_no_password(&out, PASSWORD);
    let out = fx.run(&url, &["check-config"], &by_path);
    out.expect_code(0);
    assert_no_password(&out, PASSWORD);

    let wrong = "wrong-Password-5523";
    write_secret(&file, wrong, 0o600);
    let out = fx.run(&url, &["purge"], &by_path);
    expect_unreachable(&out, "Access denied for user 'pwuser'");
    assert_no_password(&out, wrong);
    expect_unreachable(&fx.run(&url, &["purge"], &[]), "Access denied for user 'pwuser'");
}

/// SIGHUP reads the password file again: after the password is rotated in
/// the server and the file, new connections log in with the new one.
fn a_reload_reads_a_rotated_password(fx: &Fixture) {
    let url = fx.verified_url("pwuser", "pwjobs");
    let file = fx.path("db-password");
    write_secret(&file, PASSWORD, 0o600);
    let port = free_port();
    let daemon = Invocation::new(&["--log-format", "json", "run"])
        .env("RETENTIOND__DATABASE__URL", &url)
        .env("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&file))
        .env("RETENTIOND__SCHEDULE__CRON", "0 0 0 1 1 *")
        .env("RETENTIOND__SCHEDULE__RUN_ON_START", "false")
        .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
        .cwd(fx.dir.path())
        .spawn_daemon();
    assert!(wait_until(Duration::from_secs(30), || readyz_is(port, 200)), "{}", daemon.describe());

    let rotated = "rotated-Pw-31yQmV";
    fx.server.sql(&format!("ALTER USER pwuser@'%' IDENTIFIED BY '{rotated}'"));
    let sessions = fx.server.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'pwuser'");
    for id in sessions.lines() {
        fx.server.sql(&format!("KILL {id}"));
    }
    // New connections with the old password fail: the daemon is not ready.
    assert!(wait_until(Duration::from_secs(20), || readyz_is(port, 503)), "{}", daemon.describe());

    write_secret(&file, &format!("{rotated}\n"), 0o600);
    daemon.signal("HUP");
    assert!(wait_until(Duration::from_secs(20), || readyz_is(port, 200)), "{}", daemon.describe());
    assert_eq!(
        daemon.logged("database password and TLS files read again, for new connections"),
        1,
        "{}",
        daemon.describe()
    );
    daemon.signal("TERM");
    let out = daemon.wait_exit(Duration::from_secs(30));
    out.expect_code(0);
    assert_no_password(&out, PASSWORD);
    assert_no_password(&out, rotated);
}

/// Password-file misconfigurations exit 78 before connecting (nothing
/// listens on port 1), naming the file and never the password.
#[test]
fn password_file_errors_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-password");
    write_secret(&file, PASSWORD, 0o600);
    let run = |url: &str, file: &Path| {
        Invocation::new(&["purge"])
            .env("RETENTIOND__DATABASE__URL", url)
            .env("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(file))
            .cwd(dir.path())
            .run()
    };
    let both = run(&format!("mariadb://pwuser:{PASSWORD}@127.0.0.1:1/db"), &file);
    both.expect_code(78);
    assert!(
        both.stderr.contains("database.url holds a password and database.password_file is set"),
        "{}",
        both.describe()
    );
    assert_no_password(&both, PASSWORD);

    let missing = dir.path().join("nowhere").join("password");
    let out = run("mysql://pwuser@127.0.0.1:1/db", &missing);
    out.expect_code(78);
    assert!(
        out.stderr.contains(&format!("database.password_file {}: no such file", missing.display())),
        "{}",
        out.describe()
    );
    let empty = dir.path().join("empty");
    write_secret(&empty, "\n", 0o600);
    let out = run("mariadb://pwuser@127.0.0.1:1/db", &empty);
    out.expect_code(78);
    assert!(out.stderr.contains("is empty"), "{}", out.describe());

    // A good file: the connection is tried, and fails without the password in the message.
    let out = run("mariadb://pwuser@127.0.0.1:1/db", &file);
    out.expect_code(69);
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.describe());
    assert_no_password(&out, PASSWORD);
}

/// A server without TLS: `required` and `verify_identity` refuse to go on
/// in plain text (exit 69), `disabled` works. Then the server refuses
/// writes, `read_only` for a user without READ ONLY ADMIN, then
/// `innodb_read_only`: `purge` exits 69 naming the setting and deletes
/// nothing, the daemon skips its ticks as `read_only` and `/readyz` answers
/// 503 with the reason; once `read_only` is off again the same daemon deletes.
#[test]
fn against_a_plain_server_then_read_only() {
    if !mariadb_server::tools("against_a_plain_server_then_read_only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = MariaDbServer::start(ServerOptions::default());
    let sweeper_password = "sweeper-Pw-66tRz";
    server.sql(&format!(
        "CREATE DATABASE store; CREATE USER sweeper@'%' IDENTIFIED BY '{sweeper_password}'; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON store.* TO sweeper@'%'"
    ));
    let run =
        |url: &str, args: &[&str]| Invocation::new(args).env("RETENTIOND__DATABASE__URL", url).cwd(dir.path()).run();
    let refused = "the server does not accept TLS connections";
    expect_unreachable(&run(&server.url("store", "ssl-mode=required"), &["migrate"]), refused);
    let ca = TestCa::new(dir.path(), "unused-ca");
    let verified = format!("ssl-mode=verify_identity&ssl-ca={}", path_str(&ca.cert));
    expect_unreachable(&run(&server.url("store", &verified), &["migrate"]), refused);
    let plain = server.url("store", "ssl-mode=disabled");
    run(&plain, &["migrate"]).expect_code(0);
    seed(dir.path(), &plain, &[]);

    let sweeper = format!("mariadb://sweeper:{sweeper_password}@127.0.0.1:{}/store", server.port);
    server.sql("SET GLOBAL read_only = ON");
    let out = run(&sweeper, &["purge"]);
    out.expect_code(69);
    assert!(out.stderr.contains("purge deleted nothing: the database is read-only"), "{}", out.describe());
    assert!(out.stderr.contains("runs with read_only on"), "names the setting\n{}", out.describe());
    let dry = run(&sweeper, &["purge", "--dry-run", "--output", "json"]);
    dry.expect_code(0);
    assert_eq!(sorted(&dry_run_names(&dry.json())), ["old-1", "old-2"], "a dry run works on a read-only server");
    let counts = || {
        server.sql("SELECT (SELECT COUNT(*) FROM store.jobs), (SELECT COUNT(*) FROM store.retention_audit), (SELECT COUNT(*) FROM store.retention_runs)")
    };
    assert_eq!(counts(), "3\t0\t0");

    let port = free_port();
    let daemon = start_daemon(&sweeper, port, dir.path());
    skipped_as_read_only(&daemon, port, "runs with read_only on");
    assert_eq!(counts(), "3\t0\t0");
    server.sql("SET GLOBAL read_only = OFF");
    assert!(wait_until(Duration::from_secs(30), || counts() == "1\t2\t1"), "{}\n{}", counts(), daemon.describe());
    assert!(wait_until(Duration::from_secs(30), || readyz_is(port, 200)), "{}", daemon.describe());
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30)).expect_code(0);

    run(&plain, &["jobs", "seed", "--count", "50"]).expect_code(0);
    let seeded = server.sql("SELECT COUNT(*) FROM store.jobs");
    server.restart_with(&["--innodb-read-only=ON"]);
    let out = run(&plain, &["purge"]);
    out.expect_code(69);
    assert!(out.stderr.contains("runs with innodb_read_only on"), "{}", out.describe());
    let daemon = start_daemon(&plain, port, dir.path());
    skipped_as_read_only(&daemon, port, "innodb_read_only");
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30)).expect_code(0);
    assert_eq!(server.sql("SELECT COUNT(*) FROM store.jobs"), seeded, "nothing deleted");
}

/// `retentiond run` against `url`: a sweep every second, HTTP on `port`.
fn start_daemon(url: &str, port: u16, dir: &Path) -> Daemon {
    Invocation::new(&["--log-format", "json", "run"])
        .env("RETENTIOND__DATABASE__URL", url)
        .env("RETENTIOND__SCHEDULE__CRON", "* * * * * *")
        .env("RETENTIOND__SCHEDULE__SINGLETON", "false")
        .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
        .cwd(dir)
        .spawn_daemon()
}

/// Two ticks skipped as `read_only`, none failed, `/readyz` 503 saying `why`.
#[track_caller]
fn skipped_as_read_only(daemon: &Daemon, port: u16, why: &str) {
    let skipped = wait_until(Duration::from_secs(30), || {
        http_get(port, "/metrics").is_ok_and(|r| r.status == 200)
            && scrape(port).value("retentiond_sweeps_skipped_total", &[("reason", "read_only")]) >= 2.0
    });
    assert!(skipped, "two ticks skipped as read_only\n{}", daemon.describe());
    let ready = http_get(port, "/readyz").expect("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("not ready: the database is read-only") && ready.body.contains(why), "{ready:?}");
    assert_eq!(scrape(port).value("retentiond_sweeps_total", &[("outcome", "failed")]), 0.0, "{}", daemon.describe());
}
