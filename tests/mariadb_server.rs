//! The test harness's own MariaDB servers (tests/common/mariadb_server.rs):
//! a replica that follows its primary, and a TLS server that a client
//! verifying its certificate reaches while one trusting another CA does not.

mod common;

use std::process::Command;

use common::mariadb_server::{self, MariaDbServer, ServerOptions, ServerTls};
use common::pki::TestCa;

#[test]
fn a_replica_applies_what_its_primary_writes() {
    if !mariadb_server::tools("a_replica_applies_what_its_primary_writes") {
        return;
    }
    let primary = MariaDbServer::start(ServerOptions { binlog: true, ..Default::default() });
    let replica = MariaDbServer::start(ServerOptions { replica_of: Some(&primary), ..Default::default() });
    primary.sql("CREATE DATABASE shipped; CREATE TABLE shipped.jobs (id INT PRIMARY KEY, name TEXT); INSERT INTO shipped.jobs VALUES (7, 'seven')");
    replica.wait_for_replay_of(&primary);
    assert_eq!(replica.sql("SELECT name FROM shipped.jobs WHERE id = 7"), "seven");
    assert_eq!(replica.sql("SELECT @@global.read_only"), "1", "a replica runs read-only");
    assert_eq!(primary.sql("SELECT @@global.read_only"), "0");
}

#[test]
fn a_tls_server_is_reached_with_its_certificate_verified_and_refused_under_another_ca() {
    let test = "a_tls_server_is_reached_with_its_certificate_verified_and_refused_under_another_ca";
    if !mariadb_server::tools(test) {
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "test-ca");
    let other_ca = TestCa::new(pki.path(), "other-ca");
    let cert = ca.issue("server", "localhost", &["DNS:localhost", "IP:127.0.0.1"]);
    let server = MariaDbServer::start(ServerOptions {
        tls: Some(ServerTls { server: &cert, client_ca: &ca }),
        require_tls: true,
        ..Default::default()
    });
    let client = |ca_file: &std::path::Path| {
        Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root", "-N", "-B", "--ssl-verify-server-cert"])
            .arg(format!("--port={}", server.port))
            .arg(format!("--ssl-ca={}", ca_file.display()))
            .args([
                "-e",
                "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'",
            ])
            .output()
            .expect("run the mariadb client")
    };
    let verified = client(&ca.cert);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let version = String::from_utf8_lossy(&verified.stdout).trim().to_owned();
    assert!(version.starts_with("TLSv1."), "the session is not encrypted: {version:?}");

    let refused = client(&other_ca.cert);
    assert!(!refused.status.success(), "a certificate of another CA was accepted");
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("certificate"), "{error}");
}
