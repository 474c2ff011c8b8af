//! A purge on MariaDB paced by a real replica (`retention.max_replica_lag`,
//! src/sweep/replica_pause.rs). The test starts its own primary and a
//! replica of it (tests/common/mariadb_server.rs), seeds a backlog, starts
//! a purge in small, spaced batches, then stops the replica's SQL thread
//! (`STOP REPLICA SQL_THREAD`: `Seconds_Behind_Master` is NULL, which
//! counts as over the limit). The audit rows, counted every 100 ms, must
//! stop growing and stay still while the thread is stopped; once it runs
//! again the purge finishes. A replica that cannot be reached holds a purge
//! back from its first batch.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::mariadb_server::{self, MariaDbServer, ServerOptions};
use common::*;

/// The limit the purges run under: above the second or so a replica
/// applying the purge may show on a busy machine.
const MAX_REPLICA_LAG: &str = "2s";

/// How long the replica's SQL thread stays stopped.
const HELD: Duration = Duration::from_secs(8);

/// From this long after the SQL thread stopped, no batch may commit: the
/// batch in flight and one read of the replica are done by then.
const SETTLED: Duration = Duration::from_secs(2);

/// `retentiond` on the `jobs` database of `primary`, with `replica` (a URL)
/// in `database.replicas`, batches of 100 jobs 100 ms apart.
fn retentiond<'a>(primary: &'a MariaDbServer, replica: &'a str) -> impl Fn(&[&str]) -> Invocation + 'a {
    move |args| {
        Invocation::new(args)
            .env("RETENTIOND__DATABASE__URL", &primary.url("jobs", ""))
            .env("RETENTIOND__DATABASE__REPLICAS", replica)
            .env("RETENTIOND__LOG__FORMAT", "json")
            .env("RETENTIOND__RETENTION__COMPLETED", "1d")
            .env("RETENTIOND__RETENTION__CLOSED", "1d")
            .env("RETENTIOND__RETENTION__BATCH_SIZE", "100")
            .env("RETENTIOND__RETENTION__BATCH_PAUSE", "100ms")
            .env("RETENTIOND__RETENTION__MAX_REPLICA_LAG", MAX_REPLICA_LAG)
    }
}

fn audit_rows(primary: &MariaDbServer) -> i64 {
    primary.sql("SELECT COUNT(*) FROM jobs.retention_audit").parse().expect("a count")
}

#[test]
fn a_replica_whose_sql_thread_is_stopped_holds_the_purge_back() {
    if !mariadb_server::tools("a_replica_whose_sql_thread_is_stopped_holds_the_purge_back") {
        return;
    }
    let primary = MariaDbServer::start(ServerOptions { binlog: true, ..Default::default() });
    let replica = MariaDbServer::start(ServerOptions { replica_of: Some(&primary), ..Default::default() });
    primary.sql("CREATE DATABASE jobs");
    let replica_url = replica.url("jobs", "");
    let retentiond = retentiond(&primary, &replica_url);
    retentiond(&["migrate"]).run().expect_code(0);
    retentiond(&["jobs", "seed", "--count", "20000", "--seed", "7"]).run().expect_code(0);
    let dry = retentiond(&["purge", "--dry-run", "--output", "json"]).run();
    dry.expect_code(0);
    let eligible = dry.json()["total"].as_i64().expect("total");
    assert!(eligible > 5000, "{eligible} eligible: too few for a purge that lasts");
    replica.wait_for_replay_of(&primary);

    let purge = retentiond(&["purge", "--output", "json"]).spawn();
    let under_way = wait_until(Duration::from_secs(60), || audit_rows(&primary) >= 1000);
    assert!(under_way, "the purge did not get going\n{}", replica.log());
    replica.sql("STOP REPLICA SQL_THREAD");
    let held = Instant::now();
    let mut samples = Vec::new();
    while held.elapsed() < HELD {
        samples.push((held.elapsed(), audit_rows(&primary)));
        std::thread::sleep(Duration::from_millis(100));
    }
    replica.sql("START REPLICA SQL_THREAD");
    let out = purge.wait();
    out.expect_code(0);

    held::assert_still_while_held(&samples, SETTLED, eligible, &out, "the replica's SQL thread was stopped");
    let described = || format!("audit rows (seconds since stopped, rows): {samples:?}\n{}", out.describe());

    let summary = out.json();
    assert_eq!(summary["stopped_by"], "done", "{}", described());
    assert_eq!(summary["total"].as_i64(), Some(eligible), "{}", described());
    assert!(summary["pauses"].as_u64() >= Some(1), "{summary}");
    assert_eq!(audit_rows(&primary), eligible);
    let name = format!("127.0.0.1:{}", replica.port);
    let paused = held::pauses(&out.stderr);
    assert!(
        paused.iter().any(|line| line["fields"]["replica"] == name.as_str()
            && line["fields"]["reason"].as_str().is_some_and(|why| why.contains("Slave_SQL_Running: No"))),
        "no pause names {name} and its stopped SQL thread: {}",
        described()
    );
    assert!(out.stderr.contains("sweep resumed"), "{}", described());
}

#[test]
fn a_replica_that_cannot_be_reached_holds_the_purge_back() {
    if !mariadb_server::tools("a_replica_that_cannot_be_reached_holds_the_purge_back") {
        return;
    }
    let primary = MariaDbServer::start(ServerOptions::default());
    primary.sql("CREATE DATABASE jobs");
    let port = free_port();
    let replica_url = format!("mysql://root@127.0.0.1:{port}/jobs");
    let retentiond = retentiond(&primary, &replica_url);
    retentiond(&["migrate"]).run().expect_code(0);
    retentiond(&["jobs", "seed", "--count", "2000", "--seed", "7"]).run().expect_code(0);

    let out = retentiond(&["purge", "--output", "json"]).env("RETENTIOND__RETENTION__RUN_TIMEOUT", "3s").run();
    out.expect_code(0);
    let summary = out.json();
    assert_eq!(summary["stopped_by"], "timeout", "{}", out.describe());
    assert_eq!(summary["total"].as_i64(), Some(0), "{}", out.describe());
    assert_eq!(audit_rows(&primary), 0);
    let name = format!("127.0.0.1:{port}");
    let paused = held::pauses(&out.stderr);
    assert!(
        paused.iter().any(|line| line["fields"]["replica"] == name.as_str() && line["fields"]["reason"].is_string()),
        "no pause names the unreachable {name} and why: {}",
        out.describe()
    );
}
