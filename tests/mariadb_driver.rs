//! What sqlx 0.9's MySQL driver does against MariaDB 10.11, as the MariaDB
//! store will rely on it: the version it reports, DATETIME(6) with chrono,
//! the error numbers of the failures the store must tell apart, and what
//! each `ssl-mode` checks. Shared server for most; servers of the test's own
//! (tests/common/mariadb_server.rs) for TLS and read-only servers.

mod common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime, Utc};
use common::mariadb_db::TestDb;
use common::mariadb_server::{self, MariaDbServer, ServerOptions, ServerTls};
use common::pki::TestCa;
use retentiond::store::mariadb::sql;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlSslMode};
use sqlx::{ConnectOptions, Connection, Executor, Row};

/// The server's error number and SQLSTATE of a failed statement.
fn error_of<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> (u16, String) {
    let error = result.expect_err("the statement should have failed");
    let database = error.as_database_error().unwrap_or_else(|| panic!("not a database error: {error}"));
    let mysql = database.downcast_ref::<MySqlDatabaseError>();
    (mysql.number(), mysql.code().unwrap_or_default().to_owned())
}

/// `VERSION()` as the store reads it: MariaDB's carries "-MariaDB" after its
/// number (MySQL's is the number alone, "8.0.36"); returns (major, minor)
/// of a MariaDB server. The protocol's handshake puts "5.5.5-" before
/// MariaDB's version (for clients of old MySQL); `VERSION()` does not.
fn mariadb_version(version: &str) -> Option<(u32, u32)> {
    let version = version.strip_prefix("5.5.5-").unwrap_or(version);
    let (number, rest) = version.split_once('-')?;
    if !rest.contains("MariaDB") {
        return None;
    }
    let mut parts = number.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[tokio::test]
async fn the_version_string_tells_mariadb_and_its_release() {
    let Some(db) = TestDb::create("the_version_string").await else { return };
    let mut conn = db.session().await;
    let row = sqlx::query(sql::SERVER_CHECKS).fetch_one(&mut conn).await.unwrap();
    let version: String = row.get("version");
    eprintln!("VERSION() = {version:?}");
    let (major, minor) = mariadb_version(&version).unwrap_or_else(|| panic!("not MariaDB: {version}"));
    assert!((major, minor) >= (10, 6), "{version}");
    assert_eq!(mariadb_version("8.0.36"), None, "MySQL");
    assert_eq!(mariadb_version("5.5.5-10.5.9-MariaDB"), Some((10, 5)), "the handshake's form");
    assert_eq!(mariadb_version("10.5.27-MariaDB-log"), Some((10, 5)));
}

#[tokio::test]
async fn datetime6_keeps_microseconds_and_is_utc_whatever_the_server_zone() {
    let Some(db) = TestDb::create("datetime6_keeps_microseconds").await else { return };
    // sqlx sets time_zone = '+00:00' on every session unless told otherwise.
    let mut conn = db.options().connect().await.unwrap();
    let zone: String = sqlx::query_scalar("SELECT @@session.time_zone").fetch_one(&mut conn).await.unwrap();
    assert_eq!(zone, "+00:00");
    conn.execute("CREATE TABLE t (at DATETIME(6) NOT NULL)").await.unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap().and_hms_micro_opt(1, 30, 0, 123_456).unwrap();
    sqlx::query("INSERT INTO t VALUES (?)").bind(at).execute(&mut conn).await.unwrap();
    let back: NaiveDateTime = sqlx::query_scalar("SELECT at FROM t").fetch_one(&mut conn).await.unwrap();
    assert_eq!(back, at);
    let back: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT at FROM t").fetch_one(&mut conn).await.unwrap();
    assert_eq!(back, at.and_utc(), "DateTime<Utc> decodes a DATETIME as UTC");

    // UTC_TIMESTAMP(6) is UTC in any session zone; NOW(6) follows the zone.
    conn.execute("SET SESSION time_zone = '+05:00'").await.unwrap();
    let row = sqlx::query("SELECT UTC_TIMESTAMP(6) AS utc, NOW(6) AS local").fetch_one(&mut conn).await.unwrap();
    let (utc, local): (NaiveDateTime, NaiveDateTime) = (row.get("utc"), row.get("local"));
    assert!((Utc::now().naive_utc() - utc).num_seconds().abs() < 60, "{utc}");
    assert_eq!((local - utc).num_hours(), 5);

    // Years outside DATETIME's documented 1000-9999 are not all refused, but
    // sqlx cannot encode a year past 65535 (DateTime::<Utc>::MAX_UTC).
    let refused = sqlx::query("SELECT ?").bind(chrono::DateTime::<Utc>::MAX_UTC).fetch_one(&mut conn).await;
    assert!(matches!(refused, Err(sqlx::Error::Encode(_))), "{refused:?}");
}

#[tokio::test]
async fn the_failures_the_store_tells_apart_have_these_error_numbers() {
    let Some(db) = TestDb::create("the_failures_the_store_tells_apart").await else { return };
    let mut a = db.session().await;
    let mut b = db.session().await;
    a.execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(8) UNIQUE) ENGINE = InnoDB").await.unwrap();
    a.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')").await.unwrap();

    // Duplicate key: 1062, 23000, sqlx's UniqueViolation.
    let duplicate = a.execute("INSERT INTO t VALUES (3, 'one')").await;
    assert!(duplicate.as_ref().is_err_and(|e| e.as_database_error().unwrap().is_unique_violation()));
    assert_eq!(error_of(duplicate), (1062, "23000".into()));

    // Lock wait timeout: 1205, HY000 (the statement, not the transaction, is rolled back).
    b.execute("SET SESSION innodb_lock_wait_timeout = 1").await.unwrap();
    let mut held = a.begin().await.unwrap();
    held.execute("UPDATE t SET name = 'uno' WHERE id = 1").await.unwrap();
    let mut waiting = b.begin().await.unwrap();
    assert_eq!(error_of(waiting.execute("UPDATE t SET name = 'eins' WHERE id = 1").await), (1205, "HY000".into()));
    waiting.rollback().await.unwrap();

    // max_statement_time (database.statement_timeout), also over a lock wait:
    // 1969, 70100 "Query execution was interrupted (max_statement_time exceeded)".
    b.execute("SET SESSION innodb_lock_wait_timeout = 50, max_statement_time = 0.5").await.unwrap();
    let started = Instant::now();
    let timed_out = b.execute("UPDATE t SET name = 'eins' WHERE id = 1").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error_of(timed_out), (1969, "70100".into()));
    let timed_out = b.execute("SELECT SUM(x.seq * y.seq) FROM seq_1_to_100000 AS x, seq_1_to_100000 AS y").await;
    assert_eq!(error_of(timed_out), (1969, "70100".into()));
    held.rollback().await.unwrap();
    b.execute("SET SESSION max_statement_time = 0").await.unwrap();

    // Deadlock: 1213, 40001; the victim's whole transaction is rolled back.
    let mut first = a.begin().await.unwrap();
    let mut second = b.begin().await.unwrap();
    first.execute("UPDATE t SET name = 'a1' WHERE id = 1").await.unwrap();
    second.execute("UPDATE t SET name = 'b2' WHERE id = 2").await.unwrap();
    let (one, two) = tokio::join!(first.execute("UPDATE t SET name = 'a2' WHERE id = 2"), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        second.execute("UPDATE t SET name = 'b1' WHERE id = 1").await
    });
    let victim = if one.is_err() { one.map(|_| ()) } else { two.map(|_| ()) };
    assert_eq!(error_of(victim), (1213, "40001".into()));
    let _ = first.rollback().await;
    let _ = second.rollback().await;

    // A read-only transaction refusing a write: 1792, 25006.
    let mut read_only = a.begin_with("START TRANSACTION READ ONLY").await.unwrap();
    assert_eq!(error_of(read_only.execute("INSERT INTO t VALUES (9, 'nine')").await), (1792, "25006".into()));
}

#[test]
fn a_read_only_server_refuses_writes_with_1290_except_for_read_only_admins_and_innodb_read_only_with_1036() {
    let test = "a_read_only_server_refuses_writes";
    if !mariadb_server::tools(test) {
        return;
    }
    let mut server = MariaDbServer::start(ServerOptions { extra: vec!["--read-only=ON".into()], ..Default::default() });
    server.sql(
        "CREATE DATABASE store; CREATE TABLE store.t (id INT PRIMARY KEY) ENGINE = InnoDB; \
         CREATE USER sweeper@'%'; GRANT SELECT, INSERT, UPDATE, DELETE ON store.* TO sweeper@'%'",
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let port = server.port;
    let attempt = |user: &str| {
        let url = format!("mysql://{user}@127.0.0.1:{port}/store");
        runtime.block_on(async move {
            let mut conn = MySqlConnection::connect(&url).await.unwrap();
            let readings = sqlx::query(sql::READ_ONLY).fetch_one(&mut conn).await.unwrap();
            let read_only: i64 = readings.get("read_only");
            (read_only, conn.execute("INSERT INTO t VALUES (1)").await.map(|_| ()))
        })
    };
    let (read_only, sweeper) = attempt("sweeper");
    assert_eq!(read_only, 1);
    assert_eq!(error_of(sweeper), (1290, "HY000".into()), "--read-only refuses a user's write");
    let (_, root) = attempt("root");
    assert!(root.is_ok(), "root has READ ONLY ADMIN and writes to a read_only server: {root:?}");

    server.restart_with(&["--innodb-read-only=ON"]);
    let (_, root) = attempt("root");
    let (number, state) = error_of(root);
    eprintln!("innodb_read_only refuses root's write with {number} ({state})");
    assert!([1036, 1836].contains(&number), "{number} {state}");
}

#[test]
fn each_ssl_mode_checks_what_it_says() {
    let test = "each_ssl_mode_checks_what_it_says";
    if !mariadb_server::tools(test) {
        return;
    }
    retentiond::tls::install_crypto_provider();
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "test-ca");
    let other_ca = TestCa::new(pki.path(), "other-ca");
    // A certificate for the name "localhost" only: 127.0.0.1 does not match it.
    let cert = ca.issue("server", "localhost", &["DNS:localhost"]);
    let server = MariaDbServer::start(ServerOptions {
        tls: Some(ServerTls { server: &cert, client_ca: &ca }),
        require_tls: true,
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let connect = |host: &str, mode: MySqlSslMode, ca_file: Option<&std::path::Path>| {
        let mut options = MySqlConnectOptions::from_str(&format!("mysql://root@{host}:{}/mysql", server.port))
            .unwrap()
            .ssl_mode(mode);
        if let Some(ca_file) = ca_file {
            options = options.ssl_ca(ca_file);
        }
        runtime.block_on(async move {
            let mut conn = options.connect().await.map_err(|e| e.to_string())?;
            let version: String = sqlx::query_scalar(
                "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'",
            )
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
            Ok::<String, String>(version)
        })
    };
    let encrypted = |result: &Result<String, String>| result.as_ref().is_ok_and(|v| v.starts_with("TLSv1."));

    let disabled = connect("127.0.0.1", MySqlSslMode::Disabled, None);
    eprintln!("disabled against a server requiring TLS: {disabled:?}");
    assert!(disabled.is_err());
    assert!(encrypted(&connect("127.0.0.1", MySqlSslMode::Preferred, None)));
    // Required encrypts and checks nothing: a certificate of any CA passes.
    assert!(encrypted(&connect("127.0.0.1", MySqlSslMode::Required, Some(&other_ca.cert))));
    // VerifyCa checks the issuer, not the name.
    assert!(encrypted(&connect("127.0.0.1", MySqlSslMode::VerifyCa, Some(&ca.cert))));
    let unknown_ca = connect("127.0.0.1", MySqlSslMode::VerifyCa, Some(&other_ca.cert));
    eprintln!("verify_ca under another CA: {unknown_ca:?}");
    assert!(unknown_ca.as_ref().is_err_and(|e| e.contains("UnknownIssuer")), "{unknown_ca:?}");
    // VerifyIdentity checks the name too.
    assert!(encrypted(&connect("localhost", MySqlSslMode::VerifyIdentity, Some(&ca.cert))));
    let wrong_host = connect("127.0.0.1", MySqlSslMode::VerifyIdentity, Some(&ca.cert));
    eprintln!("verify_identity on a name the certificate lacks: {wrong_host:?}");
    assert!(wrong_host.as_ref().is_err_and(|e| e.contains("not valid for name")), "{wrong_host:?}");
}

#[tokio::test]
async fn preferred_falls_back_to_plain_text_and_required_fails_on_a_server_without_tls() {
    let Some(db) = TestDb::create("preferred_falls_back").await else { return };
    let mut conn = db.options().ssl_mode(MySqlSslMode::Preferred).connect().await.unwrap();
    let version: String = sqlx::query_scalar(
        "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(version, "", "Preferred, the default, connected in plain text");
    let required = db.options().ssl_mode(MySqlSslMode::Required).connect().await;
    let error = required.expect_err("Required against a server without TLS").to_string();
    assert!(error.contains("server does not support TLS"), "{error}");
}
