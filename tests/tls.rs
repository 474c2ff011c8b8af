//! TLS and secrets from files, against servers the tests start themselves
//! (docs/security.md): a PostgreSQL server with TLS from a test CA, reachable over
//! `hostssl` only, with client-certificate authentication for `certuser`
//! and a SCRAM password for `pwuser`; and an HTTPS Pushgateway stand-in.
//! `RETENTIOND_TEST_REQUIRE_TLS=1` (CI) makes them fail, not skip, when
//! PostgreSQL's server binaries or openssl are missing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::https_server::HttpsServer;
use common::pg_server::{self, PgServer, ServerTls};
use common::pki::{self, Issued, TestCa};
use common::*;

/// pwuser's password: long enough to be scrubbed wherever it appears.
const PASSWORD: &str = "tls-test-Pw-7Qx9zK";

/// A TLS server and the files a test gives the binary.
struct Fixture {
    dir: tempfile::TempDir,
    ca: TestCa,
    /// certuser's certificate, signed by `ca`.
    client: Issued,
    server: PgServer,
}

fn fixture(test: &str) -> Option<Fixture> {
    let bindir = pg_server::tools(test)?;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "retentiond-test-ca");
    // For the name `localhost` only: connecting to 127.0.0.1 is a wrong host name.
    let server_cert = ca.issue("server", "localhost", &["DNS:localhost"]);
    let client = ca.issue("client", "certuser", &[]);
    let server = PgServer::start(
        &bindir,
        Some(ServerTls { server: &server_cert, client_ca: &ca }),
        &[
            "hostssl all certuser 127.0.0.1/32 cert",
            "hostssl all pwuser 127.0.0.1/32 scram-sha-256",
            "hostssl all postgres 127.0.0.1/32 trust",
        ],
    );
    server.psql("postgres", "CREATE ROLE certuser LOGIN");
    server.psql("postgres", &format!("CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'"));
    for (database, owner) in [("jobs", "postgres"), ("certjobs", "certuser"), ("pwjobs", "pwuser")] {
        server.psql("postgres", &format!("CREATE DATABASE {database} OWNER {owner}"));
    }
    Some(Fixture { dir, ca, client, server })
}

impl Fixture {
    /// `postgres://USER@HOST:PORT/DATABASE?QUERY`.
    fn url(&self, user: &str, host: &str, database: &str, query: &str) -> String {
        format!("postgres://{user}@{host}:{}/{database}?{query}", self.server.port)
    }

    /// verify-full against `localhost`, trusting the test CA.
    fn verified_url(&self, user: &str, database: &str) -> String {
        self.url(user, "localhost", database, &format!("sslmode=verify-full&sslrootcert={}", path_str(&self.ca.cert)))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary in the fixture's directory against `url`.
    fn run(&self, url: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
        Invocation::new(args).env("RETENTIOND__DATABASE__URL", url).envs(env).cwd(self.dir.path()).run()
    }

    /// Two jobs past their retention and one recent, through `url`.
    fn seed(&self, url: &str, env: &[(&str, &str)]) {
        let lines: Vec<String> = [
            job("old-1", "Completed", days_ago(120)),
            job("old-2", "Closed", days_ago(200)),
            job("recent", "Completed", days_ago(3)),
        ]
        .iter()
        .map(|job| job.to_string())
        .collect();
        let out = Invocation::new(&["jobs", "import", "-"])
            .env("RETENTIOND__DATABASE__URL", url)
            .envs(env)
            .cwd(self.dir.path())
            .stdin((lines.join("\n") + "\n").as_bytes())
            .run();
        out.expect_code(0);
    }

    fn count(&self, database: &str, table: &str) -> i64 {
        self.server.psql(database, &format!("SELECT count(*) FROM {table}")).parse().unwrap()
    }
}

/// verify-full connects over TLS (the server takes nothing else) and a
/// purge deletes and audits; verify-ca accepts the certificate whatever the
/// host name; require encrypts without verifying, and says so.
#[test]
fn verify_full_connects_and_purges() {
    let Some(fx) = fixture("verify_full_connects_and_purges") else { return };
    let url = fx.verified_url("postgres", "jobs");
    fx.seed(&url, &[]);
    let out = fx.run(&url, &["purge", "--output", "json"], &[]);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 2, "{}", out.describe());
    assert_eq!(fx.count("jobs", "jobs"), 1);
    assert_eq!(fx.count("jobs", "retention_audit"), 2);
    let names = fx.server.psql("jobs", "SELECT string_agg(job_name, ',' ORDER BY job_name) FROM retention_audit");
    assert_eq!(names, "old-1,old-2");

    // The same settings as keys instead of URL parameters.
    let plain = fx.url("postgres", "localhost", "jobs", "");
    let settings = [
        ("RETENTIOND__DATABASE__SSLMODE", "verify-full"),
        ("RETENTIOND__DATABASE__SSLROOTCERT", path_str(&fx.ca.cert)),
    ];
    let out = fx.run(&plain, &["runs", "list", "--output", "json"], &settings);
    out.expect_code(0);
    assert_eq!(out.json().as_array().map(Vec::len), Some(1), "{}", out.describe());

    // verify-ca checks the chain, not the name: 127.0.0.1 is not in the certificate.
    let by_address =
        fx.url("postgres", "127.0.0.1", "jobs", &format!("sslmode=verify-ca&sslrootcert={}", path_str(&fx.ca.cert)));
    fx.run(&by_address, &["runs", "list"], &[]).expect_code(0);

    // require: encrypted (the server takes nothing else), unverified, and a warning says so.
    let out = fx.run(&fx.url("postgres", "127.0.0.1", "jobs", "sslmode=require"), &["runs", "list"], &[]);
    out.expect_code(0);
    assert!(out.stderr.contains("the server is not verified"), "{}", out.describe());
    // prefer (the default) takes TLS when offered, unverified.
    fx.run(&fx.url("postgres", "127.0.0.1", "jobs", ""), &["runs", "list"], &[]).expect_code(0);
}

/// Each TLS failure exits 69 and says what was refused.
#[test]
fn tls_failures_exit_69_naming_the_cause() {
    let Some(fx) = fixture("tls_failures_exit_69_naming_the_cause") else { return };
    let other_ca = TestCa::new(fx.dir.path(), "another-ca");
    let with_root = |host: &str, mode: &str, root: &Path| {
        fx.url("postgres", host, "jobs", &format!("sslmode={mode}&sslrootcert={}", path_str(root)))
    };
    let not_trusted = "it is not signed by a certificate authority this client trusts";

    // Unknown CA: the server's certificate is signed by a CA not given.
    let out = fx.run(&with_root("localhost", "verify-full", &other_ca.cert), &["purge"], &[]);
    expect_unreachable(&out, not_trusted);
    // No sslrootcert: the system's CAs do not know the test CA either.
    expect_unreachable(
        &fx.run(&fx.url("postgres", "localhost", "jobs", "sslmode=verify-full"), &["purge"], &[]),
        not_trusted,
    );
    // require with a CA file verifies the chain, as libpq does.
    expect_unreachable(&fx.run(&with_root("localhost", "require", &other_ca.cert), &["purge"], &[]), not_trusted);

    // Wrong host name: the certificate names localhost, not 127.0.0.1.
    let out = fx.run(&with_root("127.0.0.1", "verify-full", &fx.ca.cert), &["purge"], &[]);
    expect_unreachable(&out, "it is not valid for the host name 127.0.0.1: it names localhost");

    // The same as settings: the mode and CA file keys are used, not only the URL's.
    let settings = [
        ("RETENTIOND__DATABASE__SSLMODE", "verify-full"),
        ("RETENTIOND__DATABASE__SSLROOTCERT", path_str(&fx.ca.cert)),
    ];
    let out = fx.run(&fx.url("postgres", "127.0.0.1", "jobs", ""), &["purge"], &settings);
    expect_unreachable(&out, "it is not valid for the host name 127.0.0.1");
    let settings = [
        ("RETENTIOND__DATABASE__SSLMODE", "verify-full"),
        ("RETENTIOND__DATABASE__SSLROOTCERT", path_str(&other_ca.cert)),
    ];
    let out = fx.run(&fx.url("postgres", "localhost", "jobs", ""), &["purge"], &settings);
    expect_unreachable(&out, not_trusted);

    // Plain text: the server takes TLS connections only (hostssl).
    let out = fx.run(&fx.url("postgres", "localhost", "jobs", "sslmode=disable"), &["purge"], &[]);
    expect_unreachable(&out, "no encryption");

    // Nothing was written by any of them.
    assert_eq!(fx.server.psql("jobs", "SELECT count(*) FROM pg_tables WHERE tablename = 'jobs'"), "0");
}

/// Whom TLS trusts, as libpq: with sslrootcert only that file, even when the
/// server's CA is in the system store (here `SSL_CERT_FILE`); the system
/// store for `sslrootcert=system` and when no file is named.
#[test]
fn sslrootcert_alone_is_trusted() {
    let Some(fx) = fixture("sslrootcert_alone_is_trusted") else { return };
    let other_ca = TestCa::new(fx.dir.path(), "another-ca");
    let system = [("SSL_CERT_FILE", path_str(&fx.ca.cert))];
    let url = fx.url("postgres", "localhost", "jobs", "");
    fx.seed(&format!("{url}sslmode=verify-full&sslrootcert=system"), &system);

    for mode in ["verify-ca", "verify-full"] {
        let out = fx.run(&format!("{url}sslmode={mode}&sslrootcert={}", path_str(&other_ca.cert)), &["purge"], &system);
        expect_unreachable(
            &out,
            &format!(
                "it is not signed by a certificate authority this client trusts (only the CA file {}, named by \
                 sslrootcert in database.url)",
                other_ca.cert.display()
            ),
        );
        // The same file as a setting, named by its key.
        let out = fx.run(
            &format!("{url}sslmode={mode}"),
            &["purge"],
            &[system[0], ("RETENTIOND__DATABASE__SSLROOTCERT", path_str(&other_ca.cert))],
        );
        expect_unreachable(
            &out,
            &format!("only the CA file {}, named by database.sslrootcert", other_ca.cert.display()),
        );
    }
    assert_eq!(fx.count("jobs", "jobs"), 3, "nothing was deleted over a refused connection");

    // system: the system store, and verify-full whatever the URL leaves unset.
    let out = fx.run(&format!("{url}sslrootcert=system"), &["purge", "--output", "json"], &system);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 2, "{}", out.describe());
    assert_eq!(fx.count("jobs", "retention_audit"), 2);
    let by_address = fx.url("postgres", "127.0.0.1", "jobs", "sslrootcert=system");
    expect_unreachable(&fx.run(&by_address, &["runs", "list"], &system), "it is not valid for the host name 127.0.0.1");
    // Without the test CA in the system store, system trusts it no more.
    expect_unreachable(
        &fx.run(&format!("{url}sslrootcert=system"), &["runs", "list"], &[("SSL_CERT_FILE", path_str(&other_ca.cert))]),
        &format!("this client trusts (the system's CA certificates, SSL_CERT_FILE={}", other_ca.cert.display()),
    );
    // No sslrootcert: verify-ca and verify-full use the system store.
    for mode in ["verify-ca", "verify-full"] {
        fx.run(&format!("{url}sslmode={mode}"), &["runs", "list"], &system).expect_code(0);
    }
    // A weaker sslmode beside system is refused before connecting.
    let out = fx.run(&format!("{url}sslmode=verify-ca&sslrootcert=system"), &["runs", "list"], &system);
    out.expect_code(78);
    assert!(out.stderr.contains("it needs sslmode verify-full (as libpq)"), "{}", out.describe());
}

/// A server without TLS: require and verify-full refuse to go on in plain
/// text (exit 69); prefer, the default, does.
#[test]
fn a_server_without_tls_is_refused_unless_prefer() {
    let Some(bindir) = pg_server::tools("a_server_without_tls_is_refused_unless_prefer") else { return };
    let server = PgServer::start(&bindir, None, &["host all postgres 127.0.0.1/32 trust"]);
    let dir = tempfile::tempdir().unwrap();
    let run = |query: &str| {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres?{query}", server.port);
        Invocation::new(&["runs", "list"]).env("RETENTIOND__DATABASE__URL", &url).cwd(dir.path()).run()
    };
    let refused = "the server does not accept TLS connections";
    expect_unreachable(&run("sslmode=require"), refused);
    expect_unreachable(&run("sslmode=verify-full"), refused);
    run("sslmode=prefer").expect_code(0);
    run("").expect_code(0);
}

/// certuser logs in with its certificate (`cert` in pg_hba.conf): as
/// settings, and as URL parameters; without one, or with one from another
/// CA, it cannot.
#[test]
fn client_certificate_authentication() {
    let Some(fx) = fixture("client_certificate_authentication") else { return };
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
    assert!(!out.stderr.contains("readable by every user"), "a 0600 key is fine\n{}", out.describe());

    let in_url = format!("{url}&sslcert={}&sslkey={}", path_str(&fx.client.cert), path_str(&fx.client.key));
    fx.run(&in_url, &["runs", "list"], &[]).expect_code(0);

    // A key other users can read works, with a warning naming it.
    std::fs::set_permissions(&fx.client.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = fx.run(&url, &["runs", "list"], &cert_settings);
    out.expect_code(0);
    assert!(
        out.stderr.contains("readable by every user") && out.stderr.contains(path_str(&fx.client.key)),
        "{}",
        out.describe()
    );

    // Without a certificate the server refuses the role.
    let out = fx.run(&url, &["purge"], &[]);
    expect_unreachable(&out, "certificate");
    // A certificate from a CA the server does not trust: refused in the handshake.
    let other = TestCa::new(fx.dir.path(), "another-ca").issue("stranger", "certuser", &[]);
    let out = fx.run(
        &url,
        &["purge"],
        &[
            ("RETENTIOND__DATABASE__SSLCERT", path_str(&other.cert)),
            ("RETENTIOND__DATABASE__SSLKEY", path_str(&other.key)),
        ],
    );
    expect_unreachable(&out, "the server refused the TLS handshake");
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

/// pwuser's password comes from a file: by absolute name, and by a name
/// relative to $CREDENTIALS_DIRECTORY; it never shows in any output.
#[test]
fn the_password_comes_from_a_file() {
    let Some(fx) = fixture("the_password_comes_from_a_file") else { return };
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

    // systemd's LoadCredential=: a relative name in $CREDENTIALS_DIRECTORY.
    let credentials = fx.path("credentials");
    std::fs::create_dir(&credentials).unwrap();
    write_secret(&credentials.join("retentiond-db"), PASSWORD, 0o400);
    let systemd =
        [("CREDENTIALS_DIRECTORY", path_str(&credentials)), ("RETENTIOND__DATABASE__PASSWORD_FILE", "retentiond-db")];
    let out = fx.run(&url, &["runs", "list", "--output", "json"], &systemd);
    out.expect_code(0);
    assert_no_password(&out, PASSWORD);
    // check-config shows the name, never the content.
    let out = fx.run(&url, &["check-config"], &systemd);
    out.expect_code(0);
    assert!(out.stdout.contains("password_file = \"retentiond-db\""), "{}", out.describe());
    assert_no_password(&out, PASSWORD);

    // A file every user can read works, with a warning naming it (not its content).
    write_secret(&file, PASSWORD, 0o644);
    let out = fx.run(&url, &["runs", "list"], &by_path);
    out.expect_code(0);
    assert!(
        out.stderr.contains("readable by every user") && out.stderr.contains(path_str(&file)),
        "{}",
        out.describe()
    );
    assert_no_password(&out, PASSWORD);
    // Group-readable (systemd credentials, Kubernetes fsGroup) is fine.
    write_secret(&file, PASSWORD, 0o640);
    let out = fx.run(&url, &["runs", "list"], &by_path);
    out.expect_code(0);
    assert!(!out.stderr.contains("readable by every user"), "{}", out.describe());

    // A wrong password in the file: refused by the server, not shown.
    let wrong = "wrong-Password-4412";
    write_secret(&file, wrong, 0o600);
    let out = fx.run(&url, &["purge"], &by_path);
    expect_unreachable(&out, "password authentication failed");
    assert_no_password(&out, wrong);
    // No password at all.
    expect_unreachable(&fx.run(&url, &["purge"], &[]), "password");
}

/// Password-file misconfigurations exit 78, naming the file and never the password.
#[test]
fn password_file_errors_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-password");
    write_secret(&file, PASSWORD, 0o600);
    let run = |url: &str, env: &[(&str, &str)]| {
        Invocation::new(&["purge"]).env("RETENTIOND__DATABASE__URL", url).envs(env).cwd(dir.path()).run()
    };
    let both = run(
        &format!("postgres://pwuser:{PASSWORD}@127.0.0.1:1/db"),
        &[("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&file))],
    );
    both.expect_code(78);
    assert!(
        both.stderr.contains("database.url holds a password and database.password_file is set"),
        "{}",
        both.describe()
    );
    assert_no_password(&both, PASSWORD);

    // Checked before connecting: nothing listens on port 1.
    let missing = dir.path().join("nowhere").join("password");
    let out = run("postgres://pwuser@127.0.0.1:1/db", &[("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&missing))]);
    out.expect_code(78);
    assert!(
        out.stderr.contains(&format!("database.password_file {}: no such file", missing.display())),
        "{}",
        out.describe()
    );

    // The daemon does not wait for such a file: it exits 78 at once.
    let out = Invocation::new(&["run"])
        .env("RETENTIOND__DATABASE__URL", "postgres://pwuser@127.0.0.1:1/db")
        .env("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&missing))
        .env("RETENTIOND__METRICS__LISTEN", "")
        .cwd(dir.path())
        .run();
    out.expect_code(78);
    assert!(out.stderr.contains("no such file"), "{}", out.describe());

    let empty = dir.path().join("empty");
    write_secret(&empty, "\n", 0o600);
    let out = run("postgres://pwuser@127.0.0.1:1/db", &[("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&empty))]);
    out.expect_code(78);
    assert!(out.stderr.contains("is empty"), "{}", out.describe());

    // A relative name without $CREDENTIALS_DIRECTORY: the working directory.
    let out = run("postgres://pwuser@127.0.0.1:1/db", &[("RETENTIOND__DATABASE__PASSWORD_FILE", "db-password")]);
    out.expect_code(69);
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.describe());
    assert_no_password(&out, PASSWORD);

    let out = run("sqlite://x.db", &[("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&file))]);
    out.expect_code(78);
    assert!(out.stderr.contains("database.password_file applies to PostgreSQL and MariaDB only"), "{}", out.describe());
}

/// SIGHUP reads the password file again: after the password is rotated in
/// the database and the file, new connections log in with the new one.
#[test]
fn a_reload_reads_a_rotated_password() {
    let Some(fx) = fixture("a_reload_reads_a_rotated_password") else { return };
    let url = fx.verified_url("pwuser", "pwjobs");
    let file = fx.path("db-password");
    write_secret(&file, PASSWORD, 0o600);
    let port = free_port();
    let config = fx.path("retentiond.toml");
    std::fs::write(&config, "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n").unwrap();
    let daemon = Invocation::new(&["--config", path_str(&config), "--log-format", "json", "run"])
        .env("RETENTIOND__DATABASE__URL", &url)
        .env("RETENTIOND__DATABASE__PASSWORD_FILE", path_str(&file))
        .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
        .cwd(fx.dir.path())
        .spawn_daemon();
    assert!(wait_until(Duration::from_secs(30), || readyz_is(port, 200)), "{}", daemon.describe());

    let rotated = "rotated-Pw-99x1LmQ";
    fx.server.psql("postgres", &format!("ALTER ROLE pwuser PASSWORD '{rotated}'"));
    fx.server.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pwuser'");
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

/// An HTTPS pushgateway: verified against the CA file, with basic
/// authentication from a password file; an untrusted certificate or a
/// wrong host name fails the run (after the deletions, which stay).
#[test]
fn purge_pushes_to_an_https_pushgateway() {
    if !pki::openssl_or_skip("purge_pushes_to_an_https_pushgateway") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "gateway-ca");
    let gateway = HttpsServer::start(&ca.issue("gateway", "localhost", &["DNS:localhost"]));
    let password_file = dir.path().join("push-password");
    write_secret(&password_file, "push-Secret-81\n", 0o600);
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let seed = |names: &[&str]| {
        let lines: Vec<String> = names.iter().map(|name| job(name, "Completed", days_ago(100)).to_string()).collect();
        Invocation::new(&["jobs", "import", "-"])
            .env("RETENTIOND__DATABASE__URL", &url)
            .stdin((lines.join("\n") + "\n").as_bytes())
            .run()
            .expect_code(0);
    };
    let purge = |gateway_url: &str, env: &[(&str, &str)]| {
        Invocation::new(&["purge", "--output", "json"])
            .env("RETENTIOND__DATABASE__URL", &url)
            .env("RETENTIOND__METRICS__PUSHGATEWAY", gateway_url)
            .env("RETENTIOND__METRICS__PUSHGATEWAY_PASSWORD_FILE", path_str(&password_file))
            .envs(env)
            .run()
    };
    let trusted = [("RETENTIOND__METRICS__PUSHGATEWAY_CA_FILE", path_str(&ca.cert))];

    seed(&["pushed-1", "pushed-2"]);
    let out = purge(&format!("https://pusher@localhost:{}/", gateway.port), &trusted);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 2, "{}", out.describe());
    let received = gateway.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].request_line, "PUT /metrics/job/retentiond HTTP/1.1");
    // base64("pusher:push-Secret-81")
    assert_eq!(received[0].header("authorization").as_deref(), Some("Basic cHVzaGVyOnB1c2gtU2VjcmV0LTgx"));
    assert!(received[0].body.contains("retentiond_jobs_deleted_total{policy=\"completed\"} 2"), "{}", received[0].body);
    assert_no_password(&out, "push-Secret-81");

    // Not trusted: without the CA file only the system's CAs count.
    seed(&["untrusted"]);
    let out = purge(&format!("https://pusher@localhost:{}/", gateway.port), &[]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("it is not signed by a certificate authority this client trusts"),
        "{}",
        out.describe()
    );
    eprintln!("untrusted pushgateway: {}", out.stderr.trim());
    // The wrong host name.
    let out = purge(&format!("https://pusher@127.0.0.1:{}/", gateway.port), &trusted);
    out.expect_code(1);
    assert!(out.stderr.contains("it is not valid for the host name 127.0.0.1"), "{}", out.describe());
    eprintln!("pushgateway by address: {}", out.stderr.trim());
    assert_eq!(gateway.received().len(), 1, "nothing was pushed over a refused connection");
    assert_no_password(&out, "push-Secret-81");

    // A missing CA file stops the run before it deletes anything.
    seed(&["kept"]);
    let missing = dir.path().join("missing-ca.crt");
    let out = purge(
        &format!("https://pusher@localhost:{}/", gateway.port),
        &[("RETENTIOND__METRICS__PUSHGATEWAY_CA_FILE", path_str(&missing))],
    );
    out.expect_code(78);
    assert!(
        out.stderr.contains(&format!("metrics.pushgateway_ca_file {}: no such file", missing.display())),
        "{}",
        out.describe()
    );
    let left = Invocation::new(&["jobs", "list", "--output", "json"]).env("RETENTIOND__DATABASE__URL", &url).run();
    assert_eq!(names(&left.json()), vec!["kept".to_owned()], "{}", left.describe());
}
