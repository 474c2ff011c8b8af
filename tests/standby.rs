//! docs/design.md, "The daemon": a daemon pointed at a real hot standby. The test makes its own
//! primary (initdb, pg_ctl on a free port) and a streaming standby of it
//! (pg_basebackup -R), as the postgres user when it runs as root, since
//! PostgreSQL refuses to run as root. Against the standby, `purge` exits 69
//! and the daemon skips its ticks as `read_only`; once the standby is
//! promoted, the same daemon process sweeps it.

#[macro_use]
mod common;

use std::time::Duration;

use common::pg_standby::PrimaryAndStandby;
use common::*;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);

fn retentiond(url: &str, args: &[&str]) -> Invocation {
    Invocation::new(args).env("RETENTIOND__DATABASE__URL", url).env("RETENTIOND__LOG__FORMAT", "json")
}

#[track_caller]
fn json(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = retentiond(url, &all).run();
    out.expect_code(0);
    out.json()
}

/// Waits until `condition` holds; fails if the daemon exits first or after `PATIENCE`.
#[track_caller]
fn wait_for(daemon: &Daemon, servers: &PrimaryAndStandby, what: &str, mut condition: impl FnMut() -> bool) {
    let held = wait_until(PATIENCE, || !daemon.is_running() || condition());
    assert!(held && daemon.is_running(), "{what}\n{}\n{}", daemon.describe(), servers.describe_logs());
}

#[test]
fn a_hot_standby_is_not_swept_and_is_once_promoted() {
    let Some(bindir) = common::pg_server::bindir() else {
        common::require::Requirement::Postgres
            .skip("the standby test", "PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are not installed");
        return;
    };
    let servers = PrimaryAndStandby::new(bindir);
    let primary = PrimaryAndStandby::url(servers.primary_port);
    let standby = PrimaryAndStandby::url(servers.standby_port);
    retentiond(&primary, &["migrate"]).run().expect_code(0);
    let jobs = [job("sb-old-1", "Completed", days_ago(100)), job("sb-old-2", "Closed", days_ago(120))];
    let lines: Vec<String> = jobs.iter().map(Value::to_string).collect();
    retentiond(&primary, &["jobs", "import", "-"]).stdin(lines.join("\n").as_bytes()).run().expect_code(0);
    servers.start_standby();

    let out = retentiond(&standby, &["purge"]).run();
    out.expect_code(69);
    assert!(out.stderr.contains("purge deleted nothing: the database is read-only"), "{}", out.describe());
    assert!(out.stderr.contains("standby in recovery (pg_is_in_recovery())"), "{}", out.describe());
    let dry = json(&standby, &["purge", "--dry-run"]);
    assert_eq!(dry_run_names(&dry), ["sb-old-2", "sb-old-1"], "a dry run works on the standby, oldest first");

    let port = free_port();
    let daemon = retentiond(&standby, &["run"])
        .env("RETENTIOND__SCHEDULE__CRON", "* * * * * *")
        .env("RETENTIOND__SCHEDULE__RUN_ON_START", "false")
        .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
        .spawn_daemon();
    wait_for(&daemon, &servers, "two ticks skipped as read_only", || {
        http_get(port, "/metrics").is_ok_and(|r| r.status == 200)
            && scrape(port).value("retentiond_sweeps_skipped_total", &[("reason", "read_only")]) >= 2.0
    });
    let ready = http_get(port, "/readyz").expect("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("standby in recovery"), "{ready:?}");
    assert_eq!(json(&standby, &["runs", "list"]), serde_json::json!([]), "no run recorded on the standby");

    servers.promote_standby();
    wait_for(&daemon, &servers, "the promoted server swept", || {
        json(&standby, &["jobs", "list"]).as_array().is_some_and(Vec::is_empty)
    });
    wait_for(&daemon, &servers, "/readyz 200 after the promotion", || readyz_is(port, 200));
    let audit = json(&standby, &["audit", "list"]);
    assert_eq!(sorted(&audit_names(&audit)), ["sb-old-1", "sb-old-2"], "{audit}");
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10)).expect_code(0);
}
