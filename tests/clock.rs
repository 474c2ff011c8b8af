//! Other clocks than the host's, set with libfaketime (`common::faketime`):
//! the daemon's ticks across Berlin's daylight-saving changes (docs/daemon.md,
//! "The schedule"), and "now" read from a PostgreSQL server whose clock is
//! days away from the host's (README, "now is the database's clock").
//! `RETENTIOND_TEST_REQUIRE_FAKETIME=1` (CI) makes them fail, not skip,
//! without libfaketime.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use common::faketime::FakeClock;
use common::pg_server::{self, PgServer};
use common::require::Requirement;
use common::*;

const HOURLY: &str = "0 0 * * * *";
const DAILY_0230: &str = "0 30 2 * * *";

/// A daemon started on a faked clock: its start, its schedule, and the next
/// ticks (UTC, then local) it must log at the start and after its first sweep.
struct Case {
    start: &'static str,
    cron: &'static str,
    first: (&'static str, &'static str),
    second: (&'static str, &'static str),
}

/// Berlin 2026: the clocks skip 02:00-03:00 CET on 29 March and show
/// 02:00-03:00 twice on 25 October (docs/daemon.md, "The schedule").
const CASES: [Case; 4] = [
    // 01:59 CET: 02:00 does not exist, the next hour is 03:00 CEST.
    Case {
        start: "@2026-03-29 00:59:00",
        cron: HOURLY,
        first: ("2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00 Europe/Berlin"),
        second: ("2026-03-29T02:00:00Z", "2026-03-29T04:00:00+02:00 Europe/Berlin"),
    },
    // 02:30 falls in the gap: once, at 03:00 CEST, then 02:30 again the next day.
    Case {
        start: "@2026-03-29 00:59:00",
        cron: DAILY_0230,
        first: ("2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00 Europe/Berlin"),
        second: ("2026-03-30T00:30:00Z", "2026-03-30T02:30:00+02:00 Europe/Berlin"),
    },
    // 02:59 CEST: the next hour is 02:00 CET, the second pass, one real hour on.
    Case {
        start: "@2026-10-25 00:59:00",
        cron: HOURLY,
        first: ("2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00 Europe/Berlin"),
        second: ("2026-10-25T02:00:00Z", "2026-10-25T03:00:00+01:00 Europe/Berlin"),
    },
    // 02:30 runs in the first pass only: the next is 02:30 CET the next day.
    Case {
        start: "@2026-10-25 00:29:00",
        cron: DAILY_0230,
        first: ("2026-10-25T00:30:00Z", "2026-10-25T02:30:00+02:00 Europe/Berlin"),
        second: ("2026-10-26T01:30:00Z", "2026-10-26T02:30:00+01:00 Europe/Berlin"),
    },
];

/// The (next_tick, next_tick_local) of every log line `message`.
fn next_ticks(daemon: &Daemon, message: &str) -> Vec<(String, String)> {
    daemon
        .log_lines()
        .iter()
        .filter(|l| l["fields"]["message"] == message)
        .map(|l| {
            let field = |name: &str| l["fields"][name].as_str().unwrap_or_default().to_owned();
            (field("next_tick"), field("next_tick_local"))
        })
        .collect()
}

fn owned(pair: (&str, &str)) -> (String, String) {
    (pair.0.to_owned(), pair.1.to_owned())
}

every_engine! {
    /// Four daemons at once, each on its own store and faked clock a
    /// minute before a tick near a change: the tick they announce at the start, a
    /// sweep at that tick, and the tick they announce after it.
    fn daylight_saving_changes_move_the_daemons_next_ticks(env: &TestEnv) {
        let Some(clock) = FakeClock::find("daylight_saving_changes_move_the_daemons_next_ticks") else {
            return;
        };
        let stores: Vec<TestEnv> = CASES.iter().map(|_| env.sibling()).collect();
        let daemons: Vec<Daemon> = CASES
            .iter()
            .zip(&stores)
            .map(|(case, store)| {
                store.migrate();
                store
                    .daemon_cmd(free_port(), case.cron)
                    .env("RETENTIOND__SCHEDULE__TIMEZONE", "Europe/Berlin")
                    .envs(&clock.env(case.start))
                    .spawn_daemon()
            })
            .collect();
        for (case, daemon) in CASES.iter().zip(&daemons) {
            let started = wait_until(Duration::from_secs(60), || {
                !daemon.is_running() || daemon.logged("daemon started") > 0
            });
            assert!(started && daemon.is_running(), "the daemon did not start\n{}", daemon.describe());
            assert_eq!(
                next_ticks(daemon, "daemon started"),
                vec![owned(case.first)],
                "{} {}\n{}",
                case.start,
                case.cron,
                daemon.describe()
            );
        }
        for ((case, store), daemon) in CASES.iter().zip(&stores).zip(&daemons) {
            let swept = wait_until(Duration::from_secs(240), || {
                !daemon.is_running() || !next_ticks(daemon, "next sweep").is_empty()
            });
            assert!(swept && daemon.is_running(), "no sweep logged for {}\n{}", case.start, daemon.describe());
            assert_eq!(
                next_ticks(daemon, "next sweep"),
                vec![owned(case.second)],
                "{} {}\n{}",
                case.start,
                case.cron,
                daemon.describe()
            );
            assert_eq!(daemon.logged("a tick is late"), 0, "{}", daemon.describe());
            let runs = store.json(&["runs", "list"]);
            assert_eq!(runs.as_array().map(Vec::len), Some(1), "one sweep at the tick: {runs}");
            assert_eq!(runs[0]["trigger"], "schedule", "{runs}");
        }
        for daemon in daemons {
            daemon.signal("TERM");
            daemon.wait_exit(Duration::from_secs(60)).expect_code(0);
        }
    }
}

/// A PostgreSQL server ten days ahead of the host: with the 90 d retention
/// of completed jobs, `purge` deletes the one completed 85 days ago by the
/// host's clock (95 by the server's), keeps the one of 75 days, and the run
/// and audit records carry the server's times.
#[test]
fn now_is_the_database_servers_clock() {
    let test = "now_is_the_database_servers_clock";
    let Some(clock) = FakeClock::find(test) else {
        return;
    };
    let Some(bindir) = pg_server::bindir() else {
        Requirement::Postgres.skip(test, "PostgreSQL's initdb (pg_config --bindir) is not installed");
        return;
    };
    let server = PgServer::start_with_env(&bindir, None, &["host all all 127.0.0.1/32 trust"], &clock.env("+10d"));
    let ahead = server.psql("postgres", "SELECT extract(epoch FROM now())::bigint").parse::<i64>().unwrap()
        - Utc::now().timestamp();
    let ten_days = 10 * 86_400;
    assert!((ten_days - 600..ten_days + 600).contains(&ahead), "the server is {ahead} s ahead\n{}", server.log());
    server.psql("postgres", "CREATE DATABASE clock");
    let url = format!("postgres://postgres@127.0.0.1:{}/clock", server.port);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Invocation::new(args).env("RETENTIOND__DATABASE__URL", &url).cwd(dir.path()).run();

    run(&["migrate"]).expect_code(0);
    let jobs = dir.path().join("jobs.jsonl");
    let lines: Vec<String> =
        [job("eligible-by-server", "Completed", days_ago(85)), job("young-on-both", "Completed", days_ago(75))]
            .iter()
            .map(Value::to_string)
            .collect();
    std::fs::write(&jobs, lines.join("\n") + "\n").unwrap();
    run(&["jobs", "import", jobs.to_str().unwrap()]).expect_code(0);

    let before = Utc::now();
    let purge = run(&["purge", "--output", "json"]);
    purge.expect_code(0);
    assert_eq!(purge.json()["total"], 1, "{}", purge.describe());
    let listed = run(&["jobs", "list", "--output", "json"]);
    assert_eq!(names(&listed.expect_code(0).json()), vec!["young-on-both".to_owned()], "{}", listed.describe());

    let server_now = |host: DateTime<Utc>| host + chrono::Duration::seconds(ahead);
    let after = Utc::now();
    let within = |t: DateTime<Utc>| {
        server_now(before) - chrono::Duration::seconds(60) <= t
            && t <= server_now(after) + chrono::Duration::seconds(60)
    };
    let runs = run(&["runs", "list", "--output", "json"]).json();
    for field in ["started_at", "finished_at"] {
        assert!(within(parse_ts(&runs[0][field])), "{field} is not the server's time ({ahead} s ahead): {runs}");
    }
    let audit = run(&["audit", "list", "--output", "json"]).json();
    assert_eq!(audit[0]["job_name"], "eligible-by-server", "{audit}");
    assert!(within(parse_ts(&audit[0]["deleted_at"])), "deleted_at is not the server's time: {audit}");
}
