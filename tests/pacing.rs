//! A purge paced by a real streaming standby (`retention.max_replica_lag`,
//! src/sweep/replica_pause.rs). The test makes its own primary and standby
//! (initdb, pg_basebackup -R, pg_ctl on free ports, as the postgres user
//! when it runs as root), starts a purge of a seeded backlog in small,
//! spaced batches, then holds the standby back: its replay paused
//! (`pg_wal_replay_pause()`), or its server stopped. The audit rows,
//! counted every 100 ms, must stop growing within 2 s of the lag passing
//! the 1 s limit and stay still while the standby is held; once it is let
//! go the purge finishes, and its summary and metrics count the pause, also
//! while an application on the primary commits every 20 ms throughout and
//! the standby applies each commit 200 ms late.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::pg_standby::PrimaryAndStandby;
use common::*;

/// The limit the purges run under.
const MAX_REPLICA_LAG: Duration = Duration::from_secs(1);

/// How long the standby is held back.
const HELD: Duration = Duration::from_secs(8);

/// The audit rows on the primary.
fn audit_rows(servers: &PrimaryAndStandby) -> i64 {
    servers.psql(servers.primary_port, "SELECT count(*) FROM retention_audit").parse().expect("a count")
}

/// How the test holds the standby back, and lets it go.
#[derive(Clone, Copy)]
enum Hold {
    /// `pg_wal_replay_pause()`, then `pg_wal_replay_resume()`; the standby
    /// is also one of `database.replicas`, read directly.
    ReplayPaused,
    /// `pg_ctl stop`, then start; known to the purge only as the primary
    /// saw it streaming.
    ServerStopped,
}

impl Hold {
    fn hold(self, servers: &PrimaryAndStandby) {
        match self {
            Hold::ReplayPaused => drop(servers.psql(servers.standby_port, "SELECT pg_wal_replay_pause()")),
            Hold::ServerStopped => servers.stop_standby(),
        }
    }

    fn release(self, servers: &PrimaryAndStandby) {
        match self {
            Hold::ReplayPaused => drop(servers.psql(servers.standby_port, "SELECT pg_wal_replay_resume()")),
            Hold::ServerStopped => servers.restart_standby(),
        }
    }
}

/// An application on the primary that never stops writing: a commit every 20 ms.
const APPLICATION: &str = "DO $$ BEGIN LOOP INSERT INTO application DEFAULT VALUES; COMMIT; \
                           PERFORM pg_sleep(0.02); END LOOP; END $$";

/// Purges a backlog under `max_replica_lag`, holds the standby back once
/// the purge is under way, and checks that no batch commits while held.
/// `application`: the primary also commits for an application throughout,
/// and the standby applies each commit 200 ms late
/// (`recovery_min_apply_delay`), so that, once let go, it is never at the
/// primary's position yet well under half the limit behind.
fn purge_with_standby_held(test: &str, hold: Hold, application: bool) {
    let Some(bindir) = common::pg_server::bindir() else {
        common::require::Requirement::Postgres
            .skip(test, "PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are not installed");
        return;
    };
    let servers = PrimaryAndStandby::new(bindir);
    let primary = PrimaryAndStandby::url(servers.primary_port);
    let retentiond = |args: &[&str]| {
        let mut invocation = Invocation::new(args)
            .env("RETENTIOND__DATABASE__URL", &primary)
            .env("RETENTIOND__LOG__FORMAT", "json")
            .env("RETENTIOND__RETENTION__COMPLETED", "1d")
            .env("RETENTIOND__RETENTION__CLOSED", "1d")
            .env("RETENTIOND__RETENTION__BATCH_SIZE", "100")
            .env("RETENTIOND__RETENTION__BATCH_PAUSE", "100ms")
            .env("RETENTIOND__RETENTION__RUN_TIMEOUT", "90s")
            .env("RETENTIOND__RETENTION__MAX_REPLICA_LAG", &format!("{}s", MAX_REPLICA_LAG.as_secs()));
        if matches!(hold, Hold::ReplayPaused) {
            invocation =
                invocation.env("RETENTIOND__DATABASE__REPLICAS", &PrimaryAndStandby::url(servers.standby_port));
        }
        invocation
    };
    retentiond(&["migrate"]).run().expect_code(0);
    retentiond(&["jobs", "seed", "--count", "20000", "--seed", "7"]).run().expect_code(0);
    let dry = retentiond(&["purge", "--dry-run", "--output", "json"]).run();
    dry.expect_code(0);
    let eligible = dry.json()["total"].as_i64().expect("total");
    assert!(eligible > 5000, "{eligible} eligible: too few for a purge that lasts");
    servers.start_standby();
    servers.psql(servers.primary_port, "CREATE TABLE application (id bigserial PRIMARY KEY)");
    if application {
        servers.psql(servers.standby_port, "ALTER SYSTEM SET recovery_min_apply_delay = '200ms'");
        servers.psql(servers.standby_port, "SELECT pg_reload_conf()");
    }
    let mut writes = application.then(|| servers.spawn_psql(servers.primary_port, APPLICATION));

    let textfile = servers.dir.path().join("purge.prom");
    let purge = retentiond(&["purge", "--output", "json", "--metrics-textfile", path_str(&textfile)]).spawn();
    let under_way = wait_until(Duration::from_secs(30), || audit_rows(&servers) >= 1000);
    assert!(under_way, "the purge did not get going\n{}", servers.describe_logs());
    hold.hold(&servers);
    let held = Instant::now();
    let mut samples = Vec::new();
    while held.elapsed() < HELD {
        samples.push((held.elapsed(), audit_rows(&servers)));
        std::thread::sleep(Duration::from_millis(100));
    }
    hold.release(&servers);
    let out = purge.wait();
    if let Some(writes) = &mut writes {
        let stop = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'DO %application%'";
        servers.psql(servers.primary_port, stop);
        writes.wait().expect("the application's psql");
    }
    out.expect_code(0);

    // From 2 s past the moment the lag passed the limit, nothing moves.
    let settled = MAX_REPLICA_LAG + Duration::from_secs(2);
    held::assert_still_while_held(&samples, settled, eligible, &out, "the standby was held");
    let described = || format!("audit rows (seconds since held, rows): {samples:?}\n{}", out.describe());

    let summary = out.json();
    assert_eq!(summary["stopped_by"], "done", "{}", described());
    assert_eq!(summary["total"].as_i64(), Some(eligible), "{}", described());
    assert!(summary["pauses"].as_u64() >= Some(1), "{summary}");
    let paused_ms = summary["paused_ms"].as_u64().expect("paused_ms");
    assert!(paused_ms >= (HELD - settled).as_millis() as u64, "paused {paused_ms} ms: {summary}");
    assert_eq!(audit_rows(&servers), eligible);

    let paused_lines = held::pauses(&out.stderr);
    assert!(!paused_lines.is_empty(), "no pause logged: {}", described());
    let replicas: Vec<&str> = paused_lines.iter().filter_map(|line| line["fields"]["replica"].as_str()).collect();
    assert!(replicas.iter().any(|name| name.starts_with("walreceiver@127.0.0.1")), "{replicas:?}");
    if matches!(hold, Hold::ReplayPaused) {
        let direct = format!("127.0.0.1:{}", servers.standby_port);
        assert!(replicas.contains(&direct.as_str()), "the direct read of {direct} did not count: {replicas:?}");
    }
    assert!(out.stderr.contains("sweep resumed"), "{}", described());

    let metrics = Metrics::parse(&std::fs::read_to_string(&textfile).expect("the textfile"));
    let paused_seconds = metrics.value("retentiond_sweep_paused_seconds_total", &[("reason", "replica_lag")]);
    assert!(paused_seconds >= (HELD - settled).as_secs_f64().floor(), "{}", metrics.text);
}

#[test]
fn a_standby_whose_replay_is_paused_holds_the_purge_back() {
    purge_with_standby_held("the replay-paused standby test", Hold::ReplayPaused, false);
}

#[test]
fn a_standby_whose_server_stopped_holds_the_purge_back() {
    purge_with_standby_held("the stopped standby test", Hold::ServerStopped, false);
}

/// The standby, once back, stays 200 ms behind a primary that never stops
/// writing: the purge goes on, since the standby is not as far behind as the
/// time since the pause's previous read.
#[test]
fn a_standby_back_200ms_behind_a_primary_that_keeps_writing_lets_the_purge_finish() {
    purge_with_standby_held("the busy primary test", Hold::ServerStopped, true);
}
