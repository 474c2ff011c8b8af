//! What the binary does on a MariaDB server of the test's own
//! (tests/common/mariadb_server.rs) that the shared server cannot show: a
//! `max_allowed_packet` smaller than a seed's statements would be, and a
//! server reporting a version the store does not support (`--version` sets
//! what `VERSION()` and the handshake report). One server, restarted for
//! each version.
//! `RETENTIOND_TEST_REQUIRE_TLS=1` (CI) makes it fail, not skip, when
//! `mariadbd` is missing.

mod common;

use common::mariadb_server::{self, MariaDbServer, ServerOptions};
use common::*;

#[test]
fn a_small_packet_limit_and_unsupported_versions() {
    if !mariadb_server::tools("a_small_packet_limit_and_unsupported_versions") {
        return;
    }
    let mut server =
        MariaDbServer::start(ServerOptions { extra: vec!["--max-allowed-packet=1M".into()], ..Default::default() });
    server.sql("CREATE DATABASE store");
    let url = server.url("store", "");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Invocation::new(args).env("RETENTIOND__DATABASE__URL", &url).cwd(dir.path()).run();

    // A seed writes its jobs in chunks of 10,000, about 6 MB of JSON each:
    // the store cuts them to what the server takes.
    run(&["migrate"]).expect_code(0);
    run(&["jobs", "seed", "--count", "20000", "--output", "json"]).expect_code(0);
    assert_eq!(count(&server, "jobs"), 20_000);
    assert!(count(&server, "job_drives") > 20_000);
    let before = server.sql("SELECT COUNT(*), SUM(id) FROM store.jobs");

    for (version, expected) in [
        ("10.5.99-MariaDB", "MariaDB 10.5.99-MariaDB is too old: the store needs MariaDB 10.6 or newer"),
        ("8.0.36", "the server reports version \"8.0.36\", which is not MariaDB; MySQL is not supported yet"),
    ] {
        server.restart_with(&[&format!("--version={version}")]);
        assert_eq!(server.sql("SELECT VERSION()"), version);
        let out = run(&["purge"]);
        assert_eq!(out.code, 69, "{version}\n{}", out.describe());
        assert!(out.stderr.contains(expected), "{version}: stderr must say {expected:?}\n{}", out.describe());
        assert_eq!(server.sql("SELECT COUNT(*), SUM(id) FROM store.jobs"), before, "{version}: jobs changed");
        assert_eq!(
            (count(&server, "retention_audit"), count(&server, "retention_runs")),
            (0, 0),
            "{version}: a sweep was recorded"
        );
    }
}

fn count(server: &MariaDbServer, table: &str) -> i64 {
    server.sql(&format!("SELECT COUNT(*) FROM store.{table}")).parse().unwrap()
}
