//! docs/design.md, "The daemon" and "Observability": the daemon (`retentiond run`) as a real process against a
//! real store — scheduled sweeps and their metrics, SIGTERM during a sweep
//! and during an outage, SIGHUP reloads, systemd notifications, a database
//! outage and its recovery (through a TCP proxy), two replicas with
//! `schedule.singleton`, the start-up errors, the next tick in a named time
//! zone, read-only databases, and `schedule.window`.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const EVERY_SECOND: &str = "* * * * * *";
const IDLE_14D: (&str, &str) = ("RETENTIOND__RETENTION__CREATING_IDLE", "14d");

const JOBS_DELETED: &str = "retentiond_jobs_deleted_total";
const SWEEPS: &str = "retentiond_sweeps_total";
const SKIPPED: &str = "retentiond_sweeps_skipped_total";
const POLICIES: [&str; 3] = ["completed", "closed", "creating_idle"];

/// How long anything that should happen "within a few seconds" may take.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `retentiond run` on this store: JSON logs, a sweep every second (not at
/// start), HTTP on `port`, a 5 s grace. Later `.env(…)` calls override these.
fn daemon_cmd(env: &TestEnv, port: u16) -> Invocation {
    env.daemon_cmd(port, EVERY_SECOND)
}

/// Waits until `condition` holds; fails at once if the daemon exits, or after `timeout`.
#[track_caller]
fn wait_for(daemon: &Daemon, timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let mut exited = false;
    let held = wait_until(timeout, || {
        if !daemon.is_running() {
            exited = true;
            return true;
        }
        condition()
    });
    assert!(!exited, "the daemon exited while waiting for: {what}\n{}", daemon.describe());
    assert!(held, "not within {timeout:?}: {what}\n{}", daemon.describe());
}

/// Waits for "daemon started" and `/readyz` 200.
#[track_caller]
fn wait_ready(daemon: &Daemon, port: u16) {
    wait_for(daemon, PATIENCE, "daemon started and /readyz 200", || {
        daemon.logged("daemon started") > 0 && readyz_is(port, 200)
    });
}

/// SIGTERM, then the outcome and the time from the signal to the exit.
#[track_caller]
fn terminate(daemon: Daemon, timeout: Duration) -> (Out, Duration) {
    daemon.signal("TERM");
    let signalled = Instant::now();
    let out = daemon.wait_exit(timeout);
    (out, signalled.elapsed())
}

fn aged_days(name: &str, state: &str, days: i64) -> Value {
    job(name, state, days_ago(days))
}

/// The runs in id order: id, pid, trigger, status, stopped_by, started_us,
/// finished_us (microseconds since the epoch) and deleted (all policies).
fn runs(env: &TestEnv) -> Vec<BTreeMap<String, Value>> {
    env.records(&format!(
        "SELECT id, pid, {}, status, stopped_by, {} AS started_us, {} AS finished_us, \
         deleted_completed + deleted_closed + deleted_creating_idle AS deleted FROM retention_runs ORDER BY id",
        env.sql_column("trigger"),
        env.sql_micros("started_at"),
        env.sql_micros("finished_at")
    ))
}

fn audit_count(env: &TestEnv, policy: &str) -> i64 {
    env.count(&format!("retention_audit WHERE policy = {}", quote(policy)))
}

/// Every deleted job has exactly one audit row, and no audit row belongs to a job that still exists.
#[track_caller]
fn assert_audit_consistent(env: &TestEnv, initial_jobs: i64) {
    let jobs = env.count("jobs");
    let audit = env.count("retention_audit");
    assert_eq!(jobs + audit, initial_jobs, "every job is either still there or audited (jobs {jobs}, audit {audit})");
    assert_eq!(env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit"), audit, "one audit row per job id");
    assert_eq!(env.scalar("SELECT count(DISTINCT job_name) FROM retention_audit"), audit, "one audit row per job name");
    assert_eq!(
        env.count("retention_audit WHERE job_name IN (SELECT name FROM jobs)"),
        0,
        "an audited job must be gone"
    );
}

/// `promtool check metrics` on `text` if promtool is on PATH (required with
/// `RETENTIOND_TEST_REQUIRE_PROMTOOL=1`); a notice otherwise.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let required = common::require::Requirement::Promtool.is_required();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                !required,
                "{} requires promtool, which cannot be run: {e}",
                common::require::Requirement::Promtool.var()
            );
            eprintln!("notice: promtool is not on PATH ({e}); skipping `promtool check metrics`");
            return;
        }
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- metrics ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("promtool check metrics: ok");
}

/// Checks a histogram's shape: cumulative buckets ending in +Inf == `_count`.
#[track_caller]
fn assert_histogram(metrics: &Metrics, name: &str) -> (f64, f64) {
    let buckets = metrics.histogram(name).unwrap_or_else(|| panic!("histogram {name} missing:\n{}", metrics.text));
    assert_eq!(metrics.type_of(name).as_deref(), Some("histogram"), "{name}");
    assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than), "{name}: buckets out of order {buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "{name}: buckets not cumulative {buckets:?}");
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite(), "{name}: no +Inf bucket {buckets:?}");
    let count = metrics.value(&format!("{name}_count"), &[]);
    let sum = metrics.value(&format!("{name}_sum"), &[]);
    assert_eq!(last.count, count, "{name}: +Inf bucket vs _count");
    (count, sum)
}

// ---------------------------------------------------------------------------
// 1. Scheduled sweeps and their metrics
// ---------------------------------------------------------------------------

every_engine! {
    /// An every-second schedule (not at start) deletes every eligible job
    /// and nothing else; the metrics agree with the audit trail and the run
    /// records; every series is there from the first scrape; the histograms
    /// are well formed; promtool accepts the exposition.
    fn scheduled_sweeps_delete_the_eligible_jobs_and_the_metrics_agree(env: &TestEnv) {
        let mut jobs = Vec::new();
        let mut expected_lag_days = 0;
        for i in 0..15 {
            jobs.push(aged_days(&format!("done-{i:02}"), "Completed", 100 + i));
            expected_lag_days += 100 + i - 90;
        }
        for i in 0..10 {
            let name = format!("closed-{i:02}");
            jobs.push(set(aged_days(&name, "Closed", 120 + i), "drives", drives(&name, 2, "NeverReceived")));
            expected_lag_days += 120 + i - 90;
        }
        for i in 0..5 {
            jobs.push(creating_job(&format!("idle-{i}"), 30 + i));
            expected_lag_days += 30 + i - 14;
        }
        let eligible: BTreeSet<String> = jobs.iter().map(|j| j["name"].as_str().unwrap().to_string()).collect();
        for i in 0..4 {
            jobs.push(aged_days(&format!("recent-{i}"), "Completed", 10 + i));
        }
        for i in 0..3 {
            jobs.push(set(aged_days(&format!("held-{i}"), "Completed", 200 + i), "hold_reason", json!("legal")));
        }
        for i in 0..3 {
            jobs.push(aged_days(&format!("shipping-{i}"), "Shipping", 300 + i));
        }
        let built = chrono::Utc::now();
        env.import_ok(&jobs);
        let keepers: BTreeSet<String> =
            jobs.iter().map(|j| j["name"].as_str().unwrap().to_string()).filter(|n| !eligible.contains(n)).collect();

        let port = free_port();
        let daemon = daemon_cmd(env, port).env(IDLE_14D.0, IDLE_14D.1).env("RETENTIOND__RETENTION__BATCH_SIZE", "7").spawn_daemon();
        wait_for(&daemon, PATIENCE, "/metrics answers", || http_get(port, "/metrics").is_ok_and(|r| r.status == 200));

        // Every series but the histograms is registered from the start.
        let first = scrape(port);
        for policy in POLICIES {
            assert!(first.get(JOBS_DELETED, &[("policy", policy)]).is_some(), "{JOBS_DELETED}{{policy={policy}}} missing:\n{}", first.text);
            assert!(first.get("retentiond_eligible_jobs", &[("policy", policy)]).is_some(), "eligible_jobs {policy} missing:\n{}", first.text);
        }
        for outcome in ["succeeded", "failed", "interrupted"] {
            assert!(first.get(SWEEPS, &[("outcome", outcome)]).is_some(), "{SWEEPS}{{outcome={outcome}}} missing:\n{}", first.text);
        }
        for reason in ["overlap", "not_leader", "read_only"] {
            assert!(first.get(SKIPPED, &[("reason", reason)]).is_some(), "{SKIPPED}{{reason={reason}}} missing:\n{}", first.text);
        }
        assert!(first.get("retentiond_oldest_eligible_age_seconds", &[]).is_some(), "{}", first.text);
        assert!(first.get("retentiond_last_success_timestamp_seconds", &[]).is_some(), "{}", first.text);
        assert_eq!(first.get("retentiond_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0), "{}", first.text);
        for (name, kind) in [(JOBS_DELETED, "counter"), (SWEEPS, "counter"), (SKIPPED, "counter"), ("retentiond_eligible_jobs", "gauge")] {
            assert_eq!(first.type_of(name).as_deref(), Some(kind), "# TYPE of {name}:\n{}", first.text);
        }

        wait_ready(&daemon, port);
        wait_for(&daemon, PATIENCE, "every eligible job deleted", || env.count("jobs") == keepers.len() as i64);
        let deleted_by = chrono::Utc::now();
        let left: BTreeSet<String> = env.job_names().into_iter().collect();
        assert_eq!(left, keepers, "exactly the non-eligible jobs remain");
        assert_eq!(env.count("job_drives"), 0, "the drives of the deleted jobs are gone");
        assert_audit_consistent(env, jobs.len() as i64);
        for name in &eligible {
            assert_eq!(env.audit_rows(name).len(), 1, "{name}: one audit row");
        }
        let audited = [audit_count(env, "completed"), audit_count(env, "closed"), audit_count(env, "creating_idle")];
        assert_eq!(audited, [15, 10, 5], "audit rows per policy");

        // The counter is incremented just after its batch commits: wait for it.
        let deleted_metric = |m: &Metrics| POLICIES.map(|p| m.value(JOBS_DELETED, &[("policy", p)]) as i64);
        let mut last = [0; 3];
        let agreed = wait_until(Duration::from_secs(10), || {
            last = deleted_metric(&scrape(port));
            last == audited
        });
        assert!(agreed, "{JOBS_DELETED} per policy {last:?} != audit rows per policy {audited:?}\n{}", daemon.describe());

        // sweeps_total{succeeded} vs the succeeded runs. A run row is finished
        // before its sweep is counted, and one sweep at most is in between:
        // before - 1 <= metric <= after; equal once no sweep is in between.
        let succeeded_runs = || env.count("retention_runs WHERE status = 'succeeded'");
        let mut observed = Vec::new();
        let mut settled = None;
        for _ in 0..40 {
            let before = succeeded_runs();
            let metrics = scrape(port);
            let after = succeeded_runs();
            let counted = metrics.value(SWEEPS, &[("outcome", "succeeded")]) as i64;
            observed.push((before, counted, after));
            assert!(before - 1 <= counted && counted <= after, "succeeded runs vs {SWEEPS} (before, metric, after): {observed:?}");
            if before == counted && counted == after {
                settled = Some(metrics);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let metrics = settled.unwrap_or_else(|| panic!("{SWEEPS}{{succeeded}} never equalled the succeeded runs: {observed:?}"));
        let succeeded = metrics.value(SWEEPS, &[("outcome", "succeeded")]);
        assert!(succeeded >= 1.0, "{}", metrics.text);
        assert_eq!(metrics.value(SWEEPS, &[("outcome", "failed")]), 0.0, "{}", metrics.text);
        assert_eq!(metrics.value(SWEEPS, &[("outcome", "interrupted")]), 0.0, "{}", metrics.text);
        assert_eq!(deleted_metric(&metrics), audited, "{}", metrics.text);
        for policy in POLICIES {
            assert_eq!(metrics.value("retentiond_eligible_jobs", &[("policy", policy)]), 0.0, "{}", metrics.text);
        }
        assert_eq!(metrics.value("retentiond_oldest_eligible_age_seconds", &[]), 0.0, "{}", metrics.text);
        let last_success = metrics.value("retentiond_last_success_timestamp_seconds", &[]);
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(last_success >= built.timestamp() as f64 && last_success <= now + 1.0, "last success {last_success}, now {now}");

        // Histograms: present, well formed, and consistent with the counters.
        let (sweeps_observed, _) = assert_histogram(&metrics, "retentiond_sweep_duration_seconds");
        assert!(sweeps_observed == succeeded || sweeps_observed == succeeded - 1.0, "sweep durations {sweeps_observed} vs sweeps {succeeded}");
        let (batches, _) = assert_histogram(&metrics, "retentiond_batch_duration_seconds");
        assert!(batches >= 5.0, "30 jobs in batches of 7 take at least 5 batches, got {batches}");
        let (lags, lag_sum) = assert_histogram(&metrics, "retentiond_deletion_lag_seconds");
        assert_eq!(lags, 30.0, "one deletion lag per deleted job");
        // Each job became eligible (age - retention) days before it was built, and was deleted after that.
        let low = (expected_lag_days * 86_400) as f64 - 30.0;
        let high = low + 30.0 * ((deleted_by - built).num_seconds() as f64 + 5.0);
        assert!((low..=high).contains(&lag_sum), "deletion lag sum {lag_sum} not in [{low}, {high}]");

        // The run records: all scheduled, all by this process, their counts add up.
        let rows = runs(env);
        assert!(rows.iter().all(|r| r["trigger"] == "schedule" && r["pid"] == json!(daemon.pid())), "{rows:?}");
        assert!(rows.iter().all(|r| r["status"] == "succeeded" || r["status"] == "running"), "{rows:?}");
        assert_eq!(rows.iter().map(|r| r["deleted"].as_i64().unwrap()).sum::<i64>(), 30, "{rows:?}");
        let hosts = env.strings("SELECT DISTINCT host FROM retention_runs");
        assert_eq!(hosts, vec![hostname()]);

        let response = http_get(port, "/metrics").expect("GET /metrics");
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"), "content-type {content_type:?}");
        promtool_check(&response.body);

        let (out, _) = terminate(daemon, Duration::from_secs(10));
        out.expect_code(0);
        assert_eq!(env.count("retention_runs WHERE status = 'running'"), 0, "{:?}", runs(env));
    }
}

// ---------------------------------------------------------------------------
// 2. SIGTERM in the middle of a sweep
// ---------------------------------------------------------------------------

/// `signal` while a long sweep pauses between batches: exit 0 at once
/// (not after the 3 s pause), the run `interrupted` by `signal`, whole
/// batches only, every job gone has exactly one audit row; the ticks
/// during the sweep were skipped as `overlap`.
fn a_stop_signal_mid_sweep_interrupts_the_run_and_exits_at_once(env: &TestEnv, signal: &str) {
    let total = 20;
    let jobs: Vec<Value> = (0..total).map(|i| aged_days(&format!("term-{i:02}"), "Completed", 200 - i)).collect();
    env.import_ok(&jobs);
    let port = free_port();
    let daemon = daemon_cmd(env, port)
        .env("RETENTIOND__RETENTION__BATCH_SIZE", "2")
        .env("RETENTIOND__RETENTION__BATCH_PAUSE", "3s")
        .spawn_daemon();
    wait_ready(&daemon, port);
    wait_for(&daemon, PATIENCE, "two batches committed", || env.count("retention_audit") >= 4);
    let metrics = scrape(port);
    let overlap = metrics.value(SKIPPED, &[("reason", "overlap")]);
    assert!(overlap >= 1.0, "ticks during a 3 s pause must be skipped as overlap:\n{}", metrics.text);
    assert_eq!(metrics.value(SKIPPED, &[("reason", "not_leader")]), 0.0, "{}", metrics.text);

    let pid = daemon.pid();
    daemon.signal(signal);
    let signalled = Instant::now();
    let out = daemon.wait_exit(Duration::from_secs(15));
    let since_signal = signalled.elapsed();
    out.expect_code(0);
    assert!(
        since_signal < Duration::from_millis(1500),
        "exit took {since_signal:?}: it slept out its 3 s pause\n{}",
        out.describe()
    );
    assert!(out.stderr.contains("\"stopped\""), "logs \"stopped\"\n{}", out.describe());

    let deleted = env.count("retention_audit");
    assert!((4..total).contains(&deleted), "deleted {deleted} of {total}");
    assert_eq!(deleted % 2, 0, "batches of 2 commit whole: {deleted} audit rows");
    assert_audit_consistent(env, total);
    let gone: BTreeSet<String> = env.strings("SELECT job_name FROM retention_audit").into_iter().collect();
    let oldest: BTreeSet<String> = (0..deleted).map(|i| format!("term-{i:02}")).collect();
    assert_eq!(gone, oldest, "the oldest go first");

    let rows = runs(env);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let run = &rows[0];
    assert_eq!(run["status"], "interrupted", "{rows:?}\n{}", out.describe());
    assert_eq!(run["stopped_by"], "signal", "{rows:?}");
    assert_eq!(run["trigger"], "schedule", "{rows:?}");
    assert_eq!(run["pid"], json!(pid), "{rows:?}");
    assert_eq!(run["deleted"], json!(deleted), "{rows:?}");
    assert!(run["finished_us"].is_i64(), "{rows:?}");
}

every_engine! {
    fn sigterm_mid_sweep_interrupts_the_run_and_exits_at_once(env: &TestEnv) {
        a_stop_signal_mid_sweep_interrupts_the_run_and_exits_at_once(env, "TERM");
    }
}

every_engine! {
    /// SIGINT (Ctrl-C) stops the daemon as SIGTERM does.
    fn sigint_mid_sweep_interrupts_the_run_and_exits_at_once(env: &TestEnv) {
        a_stop_signal_mid_sweep_interrupts_the_run_and_exits_at_once(env, "INT");
    }
}

/// `schedule.run_on_start`: off, a daemon whose schedule fires once a year
/// sweeps nothing after its start; on, it sweeps once at start (trigger
/// `schedule`), deleting what is eligible, and not again.
#[test]
fn run_on_start_sweeps_once_at_start_only_when_on() {
    let env = TestEnv::new(Engine::Sqlite, "run_on_start_sweeps_once_at_start_only_when_on").expect("sqlite");
    let mut jobs: Vec<Value> = (0..3).map(|i| aged_days(&format!("old-{i}"), "Completed", 100 + i)).collect();
    jobs.push(aged_days("young", "Completed", 5));
    env.import_ok(&jobs);
    let yearly = "0 0 0 1 1 *";

    let port = free_port();
    let daemon = daemon_cmd(&env, port).env("RETENTIOND__SCHEDULE__CRON", yearly).spawn_daemon();
    wait_ready(&daemon, port);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!((env.count("retention_runs"), env.count("jobs")), (0, 4), "off: no sweep\n{}", daemon.describe());
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);

    let port = free_port();
    let daemon = daemon_cmd(&env, port)
        .env("RETENTIOND__SCHEDULE__CRON", yearly)
        .env("RETENTIOND__SCHEDULE__RUN_ON_START", "true")
        .spawn_daemon();
    wait_ready(&daemon, port);
    wait_for(&daemon, PATIENCE, "the sweep at start", || env.count("retention_runs WHERE status = 'succeeded'") == 1);
    std::thread::sleep(Duration::from_secs(2));
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
    let rows = runs(&env);
    assert_eq!(rows.len(), 1, "on: one sweep, at start only: {rows:?}");
    assert_eq!((&rows[0]["trigger"], &rows[0]["deleted"]), (&json!("schedule"), &json!(3)), "{rows:?}");
    assert_eq!(env.job_names(), ["young"]);
    assert_audit_consistent(&env, 4);
}

// ---------------------------------------------------------------------------
// 3. SIGTERM while the database is out of reach
// ---------------------------------------------------------------------------

every_engine_with! { NetworkServer;
    /// The database goes away (the proxy closes every connection and refuses
    /// new ones); SIGTERM then: exit 0 within shutdown.grace.
    fn sigterm_during_a_database_outage_exits_within_the_grace(env: &TestEnv) {
        env.import_ok(&[aged_days("gone-1", "Completed", 100), aged_days("gone-2", "Closed", 100)]);
        let mut proxy = TcpProxy::new(env.server_address());
        let port = free_port();
        let daemon = daemon_cmd(env, port)
            .env("RETENTIOND__DATABASE__URL", &env.url_with_port(proxy.port()))
            .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")
            .env("RETENTIOND__SHUTDOWN__GRACE", "3s")
            .spawn_daemon();
        wait_ready(&daemon, port);
        wait_for(&daemon, PATIENCE, "the eligible jobs deleted", || env.count("jobs") == 0);

        proxy.stop();
        wait_for(&daemon, PATIENCE, "/readyz 503 during the outage", || readyz_is(port, 503));
        let (out, since_signal) = terminate(daemon, Duration::from_secs(20));
        out.expect_code(0);
        assert!(since_signal <= Duration::from_millis(4500), "exit took {since_signal:?} (grace 3s)\n{}", out.describe());
    }
}

/// A daemon deleting `total` jobs one per batch through a proxy, frozen
/// (the database stops answering) after a few batches.
fn daemon_in_a_hang(env: &TestEnv, total: i64, grace: &str) -> (Daemon, TcpProxy) {
    let jobs: Vec<Value> = (0..total).map(|i| aged_days(&format!("hang-{i:03}"), "Completed", 300 - i)).collect();
    env.import_ok(&jobs);
    let proxy = TcpProxy::new(env.server_address());
    let port = free_port();
    let daemon = daemon_cmd(env, port)
        .env("RETENTIOND__DATABASE__URL", &env.url_with_port(proxy.port()))
        .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")
        .env("RETENTIOND__RETENTION__BATCH_SIZE", "1")
        .env("RETENTIOND__RETENTION__BATCH_PAUSE", "100ms")
        .env("RETENTIOND__SHUTDOWN__GRACE", grace)
        .spawn_daemon();
    wait_ready(&daemon, port);
    wait_for(&daemon, PATIENCE, "a few batches committed", || env.count("retention_audit") >= 3);
    proxy.freeze();
    std::thread::sleep(Duration::from_millis(300));
    (daemon, proxy)
}

every_engine_with! { NetworkServer;
    /// The database stops answering in the middle of a sweep (the proxy keeps
    /// the connections open but forwards nothing); SIGTERM then: exit 0
    /// within shutdown.grace although the batch in flight never returns.
    /// Afterwards every job is either still there or deleted with its audit
    /// row, and the next purge marks the run left `running` abandoned.
    fn sigterm_while_the_database_hangs_exits_within_the_grace(env: &TestEnv) {
        let total = 100;
        let (daemon, mut proxy) = daemon_in_a_hang(env, total, "3s");
        let (out, since_signal) = terminate(daemon, Duration::from_secs(20));
        out.expect_code(0);
        assert!(since_signal <= Duration::from_secs(5), "exit took {since_signal:?} (grace 3s)\n{}", out.describe());
        if !out.stderr.contains("shutdown.grace") {
            eprintln!("note: no log line mentions shutdown.grace\n{}", out.describe());
        }

        // Cut the held connections: the server rolls back what was in flight.
        proxy.stop();
        assert!(wait_until(PATIENCE, || env.count(env.sql_held_locks()) == 0), "the daemon's sessions still hold locks");
        assert_audit_consistent(env, total);
        let rows = runs(env);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let stale = rows[0]["id"].clone();
        assert_eq!(rows[0]["status"], "running", "the run could not be finished without a database: {rows:?}");

        let remaining = env.count("jobs");
        let summary = env.json(&["purge"]);
        assert_eq!(summary["total"], json!(remaining), "{summary}");
        assert_eq!(env.count("jobs"), 0, "{summary}");
        assert_audit_consistent(env, total);
        let status = env.strings(&format!("SELECT status FROM retention_runs WHERE id = {stale}"));
        assert_eq!(status, vec!["abandoned"], "the next sweep marks the dead daemon's run abandoned");
    }
}

every_engine_with! { NetworkServer;
    /// A second stop signal while the first waits for a hung batch (grace
    /// 30 s): exit 1 at once.
    fn a_second_signal_exits_1_at_once(env: &TestEnv) {
        let (daemon, _proxy) = daemon_in_a_hang(env, 100, "30s");
        daemon.signal("TERM");
        std::thread::sleep(Duration::from_millis(700));
        assert!(daemon.is_running(), "the first signal waits for the batch in flight (grace 30s)\n{}", daemon.describe());
        daemon.signal("INT");
        let signalled = Instant::now();
        let out = daemon.wait_exit(Duration::from_secs(10));
        out.expect_code(1);
        assert!(signalled.elapsed() < Duration::from_millis(1500), "exit took {:?}\n{}", signalled.elapsed(), out.describe());
    }
}

/// SIGTERM while the daemon still waits for its database at start: exit 0
/// at once; `/healthz` answered and `/readyz` said 503 meanwhile.
#[test]
fn sigterm_while_waiting_for_the_database_at_start_exits_0() {
    let env = TestEnv::new(Engine::Sqlite, "sigterm_while_waiting_for_the_database_at_start_exits_0").expect("sqlite");
    let nobody = free_port();
    let port = free_port();
    let daemon = daemon_cmd(&env, port)
        .env("RETENTIOND__DATABASE__URL", &format!("postgres://postgres@127.0.0.1:{nobody}/nothing"))
        .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")
        .spawn_daemon();
    wait_for(&daemon, PATIENCE, "/healthz 200", || http_get(port, "/healthz").is_ok_and(|r| r.status == 200));
    let health = http_get(port, "/healthz").expect("/healthz");
    assert_eq!(health.body.trim(), "ok", "{health:?}");
    // Into the retries (1 s, then 2 s).
    std::thread::sleep(Duration::from_millis(1800));
    let ready = http_get(port, "/readyz").expect("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}\n{}", daemon.describe());
    assert!(ready.body.starts_with("not ready: "), "{ready:?}");
    assert!(daemon.is_running(), "{}", daemon.describe());
    assert_eq!(daemon.logged("daemon started"), 0, "{}", daemon.describe());

    let (out, since_signal) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
    assert!(since_signal < Duration::from_millis(1500), "exit took {since_signal:?}\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// 4. SIGHUP
// ---------------------------------------------------------------------------

/// A configuration file for the SIGHUP test.
fn config_text(cron: &str, completed: &str, batch_size: u32, port: u16) -> String {
    format!(
        "[schedule]\ncron = \"{cron}\"\nrun_on_start = false\n\n\
         [retention]\ncompleted = \"{completed}\"\nbatch_size = {batch_size}\n\n\
         [metrics]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [log]\nformat = \"json\"\n\n\
         [shutdown]\ngrace = \"5s\"\n"
    )
}

/// Replaces the file's contents at once (write aside, then rename).
fn rewrite(path: &std::path::Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).expect("write config");
    std::fs::rename(&aside, path).expect("rename config");
}

/// SIGHUP re-reads `--config`: a valid file changes the schedule and the
/// retention at once; a file that is not TOML, or has an invalid value, is
/// refused, and the daemon keeps sweeping on the configuration in force.
#[test]
fn sighup_reloads_a_valid_file_and_refuses_an_invalid_one() {
    let env = TestEnv::new(Engine::Sqlite, "sighup_reloads_a_valid_file_and_refuses_an_invalid_one").expect("sqlite");
    let mut jobs: Vec<Value> = (0..5).map(|i| aged_days(&format!("old-{i}"), "Completed", 100 + i)).collect();
    jobs.push(aged_days("mid-30d", "Completed", 30));
    jobs.push(aged_days("young-5d", "Completed", 5));
    env.import_ok(&jobs);

    let port = free_port();
    let config = env.dir().join("retentiond.toml");
    rewrite(&config, &config_text("0 0 0 1 1 *", "90d", 1000, port));
    let daemon = env.cmd(&["--config", path_str(&config), "run"]).spawn_daemon();
    wait_ready(&daemon, port);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(env.count("retention_runs"), 0, "no tick on the yearly schedule\n{}", daemon.describe());
    assert_eq!(env.count("jobs"), 7);

    // Valid: every second from now on.
    rewrite(&config, &config_text(EVERY_SECOND, "90d", 1000, port));
    daemon.signal("HUP");
    wait_for(&daemon, PATIENCE, "configuration reloaded", || daemon.logged("configuration reloaded") == 1);
    wait_for(&daemon, PATIENCE, "the five old jobs deleted", || env.count("retention_audit") == 5);
    let succeeded = || env.count("retention_runs WHERE status = 'succeeded'");
    let after_first = succeeded();
    wait_for(&daemon, PATIENCE, "two more sweeps", || succeeded() >= after_first + 2);
    assert!(env.job_exists("mid-30d") && env.job_exists("young-5d"), "{}", daemon.describe());

    // Invalid TOML: refused, the every-second schedule stays.
    rewrite(&config, "[schedule\ncron = \"* * * * * *\"\n");
    daemon.signal("HUP");
    let refused = "configuration reload refused; the previous configuration stays in force";
    wait_for(&daemon, PATIENCE, "bad TOML refused", || daemon.logged(refused) == 1);
    env.import_ok(&[aged_days("later-1", "Closed", 200), aged_days("later-2", "Completed", 200)]);
    wait_for(&daemon, PATIENCE, "jobs imported after the refusal deleted", || {
        !env.job_exists("later-1") && !env.job_exists("later-2")
    });

    // Invalid value: refused too.
    rewrite(&config, &config_text(EVERY_SECOND, "90d", 0, port));
    daemon.signal("HUP");
    wait_for(&daemon, PATIENCE, "batch_size = 0 refused", || daemon.logged(refused) == 2);
    env.import_ok(&[aged_days("later-3", "Completed", 300)]);
    wait_for(&daemon, PATIENCE, "a job imported after the second refusal deleted", || !env.job_exists("later-3"));
    assert_eq!(daemon.logged("configuration reloaded"), 1, "{}", daemon.describe());
    assert!(env.job_exists("mid-30d"), "still 90d: mid-30d stays\n{}", daemon.describe());

    // Valid again, with a shorter retention: mid-30d is eligible at the next tick.
    rewrite(&config, &config_text(EVERY_SECOND, "10d", 1000, port));
    daemon.signal("HUP");
    wait_for(&daemon, PATIENCE, "second reload", || daemon.logged("configuration reloaded") == 2);
    wait_for(&daemon, PATIENCE, "mid-30d deleted under the 10d retention", || !env.job_exists("mid-30d"));
    let rows = env.audit_rows("mid-30d");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["policy"], "completed", "{rows:?}");
    assert!(env.job_exists("young-5d"));
    assert_audit_consistent(&env, 7 + 3);

    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
    let runs = runs(&env);
    assert!(runs.iter().all(|r| r["status"] == "succeeded" || r["status"] == "interrupted"), "{runs:?}");
}

/// SIGHUP applies a new `log.level` at once: at `warn` no sweep is logged,
/// back at `info` every sweep is.
#[test]
fn sighup_changes_the_log_level() {
    let env = TestEnv::new(Engine::Sqlite, "sighup_changes_the_log_level").expect("sqlite");
    let port = free_port();
    let config = env.dir().join("retentiond.toml");
    let text = |level: &str| {
        let logging = format!("[log]\nformat = \"json\"\nlevel = \"{level}\"\n");
        config_text(EVERY_SECOND, "90d", 1000, port).replace("[log]\nformat = \"json\"\n", &logging)
    };
    rewrite(&config, &text("warn"));
    let daemon = env.cmd(&["--config", path_str(&config), "run"]).spawn_daemon();
    wait_for(&daemon, PATIENCE, "/readyz 200", || readyz_is(port, 200));
    let succeeded = || env.count("retention_runs WHERE status = 'succeeded'");
    wait_for(&daemon, PATIENCE, "three quiet sweeps", || succeeded() >= 3);
    assert_eq!(daemon.logged("sweep finished"), 0, "warn hides the sweeps\n{}", daemon.describe());

    rewrite(&config, &text("info"));
    daemon.signal("HUP");
    wait_for(&daemon, PATIENCE, "configuration reloaded", || daemon.logged("configuration reloaded") == 1);
    wait_for(&daemon, PATIENCE, "sweeps logged at info", || daemon.logged("sweep finished") >= 2);
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
}

// ---------------------------------------------------------------------------
// 5. systemd notifications
// ---------------------------------------------------------------------------

/// With NOTIFY_SOCKET and WATCHDOG_USEC: READY=1 (with the schedule) once,
/// before any sweep's STATUS=; a STATUS= after each sweep; WATCHDOG=1 at
/// half the interval; STOPPING=1 on SIGTERM.
#[test]
fn systemd_hears_ready_status_watchdog_and_stopping() {
    let env = TestEnv::new(Engine::Sqlite, "systemd_hears_ready_status_watchdog_and_stopping").expect("sqlite");
    env.import_ok(&[
        aged_days("n-1", "Completed", 100),
        aged_days("n-2", "Completed", 120),
        aged_days("n-3", "Closed", 150),
        aged_days("n-young", "Completed", 3),
    ]);
    let socket = NotifySocket::bind(env.dir());
    let port = free_port();
    let daemon =
        daemon_cmd(&env, port).env("NOTIFY_SOCKET", socket.path()).env("WATCHDOG_USEC", "500000").spawn_daemon();
    let count = |line: &str| socket.lines().iter().filter(|l| l.as_str() == line).count();
    let last_sweep = || socket.lines().iter().any(|l| l.starts_with("STATUS=last sweep"));
    wait_for(&daemon, PATIENCE, "READY=1", || count("READY=1") > 0);
    wait_for(&daemon, PATIENCE, "STATUS=last sweep …", last_sweep);

    // WATCHDOG=1 every 250 ms: about 8 in 2 s.
    let before = count("WATCHDOG=1");
    std::thread::sleep(Duration::from_secs(2));
    let pings = count("WATCHDOG=1") - before;
    assert!((4..=12).contains(&pings), "{pings} WATCHDOG=1 in 2 s with WATCHDOG_USEC=500000: {:?}", socket.messages());

    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
    assert!(wait_until(Duration::from_secs(5), || count("STOPPING=1") == 1), "STOPPING=1: {:?}", socket.messages());

    let messages = socket.messages();
    let index = |pred: &dyn Fn(&str) -> bool| messages.iter().position(|m| m.lines().any(pred));
    let ready = index(&|l| l == "READY=1").expect("READY=1");
    assert_eq!(count("READY=1"), 1, "READY=1 once: {messages:?}");
    assert!(messages[ready].contains(&format!("STATUS=ready; schedule {EVERY_SECOND}")), "{messages:?}");
    let first_sweep = index(&|l| l.starts_with("STATUS=last sweep")).expect("a last sweep status");
    assert!(ready < first_sweep, "READY=1 must come before any sweep status: {messages:?}");
    assert!(
        messages[first_sweep]
            .contains("stopped by done, deleted 3 (completed 2, closed 1, creating_idle 0, retain_until 0)"),
        "the first sweep deletes the three eligible jobs: {messages:?}"
    );
    let stopping = index(&|l| l == "STOPPING=1").expect("STOPPING=1");
    assert!(messages[stopping].contains("STATUS=stopping"), "{messages:?}");
    assert!(stopping > ready, "{messages:?}");
}

// ---------------------------------------------------------------------------
// 6. A database outage and the recovery
// ---------------------------------------------------------------------------

every_engine_with! { NetworkServer;
    /// The database goes away and comes back (a TCP proxy stopped and
    /// started on the same port): `/readyz` 503 and failed sweeps counted
    /// meanwhile, `/healthz` 200 throughout; then ready again, and jobs that
    /// became eligible during the outage are deleted with their audit rows —
    /// by the same process.
    fn outage_and_recovery_through_a_proxy(env: &TestEnv) {
        env.import_ok(&[aged_days("before-1", "Completed", 100), aged_days("before-2", "Closed", 100)]);
        let mut proxy = TcpProxy::new(env.server_address());
        let port = free_port();
        let daemon = daemon_cmd(env, port)
            .env("RETENTIOND__DATABASE__URL", &env.url_with_port(proxy.port()))
            .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")
            .spawn_daemon();
        wait_ready(&daemon, port);
        wait_for(&daemon, PATIENCE, "the first jobs deleted", || env.count("jobs") == 0);
        let failed = |m: &Metrics| m.value(SWEEPS, &[("outcome", "failed")]);
        assert_eq!(failed(&scrape(port)), 0.0);

        proxy.stop();
        let outage = Instant::now();
        wait_for(&daemon, Duration::from_secs(15), "/readyz 503 and a failed sweep counted", || {
            readyz_is(port, 503) && failed(&scrape(port)) > 0.0
        });
        eprintln!("outage noticed after {:?}", outage.elapsed());
        let ready = http_get(port, "/readyz").expect("/readyz");
        assert!(ready.body.starts_with("not ready: "), "{ready:?}");
        assert_eq!(http_get(port, "/healthz").expect("/healthz").status, 200, "/healthz answers during the outage");
        let errors: Vec<Value> = daemon
            .log_lines()
            .into_iter()
            .filter(|l| l["level"] == "ERROR" && l["fields"]["message"].as_str().is_some_and(|m| m.contains("sweep failed")))
            .collect();
        assert!(!errors.is_empty(), "a failed sweep is logged\n{}", daemon.describe());
        env.import_ok(&[aged_days("during-1", "Completed", 200), aged_days("during-2", "Closed", 200), aged_days("during-young", "Closed", 2)]);
        std::thread::sleep(Duration::from_secs(2));
        assert!(env.job_exists("during-1"), "nothing can be deleted during the outage");

        proxy.start();
        let recovery = Instant::now();
        wait_for(&daemon, Duration::from_secs(20), "/readyz 200 again", || readyz_is(port, 200));
        wait_for(&daemon, Duration::from_secs(20), "the jobs from the outage deleted", || {
            !env.job_exists("during-1") && !env.job_exists("during-2")
        });
        eprintln!("recovered after {:?}", recovery.elapsed());
        assert!(env.job_exists("during-young"));
        for name in ["before-1", "before-2", "during-1", "during-2"] {
            assert_eq!(env.audit_rows(name).len(), 1, "{name}");
        }
        assert_audit_consistent(env, 5);
        // The run is counted when it ends, after its last batch has committed.
        wait_for(&daemon, Duration::from_secs(10), "the recovering sweep counted as succeeded", || {
            scrape(port).value(SWEEPS, &[("outcome", "succeeded")]) >= 2.0
        });
        let metrics = scrape(port);
        assert_eq!(metrics.value(JOBS_DELETED, &[("policy", "completed")]), 2.0, "{}", metrics.text);
        assert_eq!(metrics.value(JOBS_DELETED, &[("policy", "closed")]), 2.0, "{}", metrics.text);

        assert!(daemon.is_running(), "never restarted\n{}", daemon.describe());
        let pids: BTreeSet<i64> = runs(env).iter().map(|r| r["pid"].as_i64().unwrap()).collect();
        assert_eq!(pids, BTreeSet::from([i64::from(daemon.pid())]), "every run by the one process");
        let (out, _) = terminate(daemon, Duration::from_secs(10));
        out.expect_code(0);
    }
}

// ---------------------------------------------------------------------------
// 7. Two replicas, one store
// ---------------------------------------------------------------------------

every_engine_with! { LeaseBetweenProcesses;
    /// Two daemons on one PostgreSQL store with schedule.singleton: their
    /// runs never overlap in time, the one not sweeping skips as
    /// `not_leader`, the sweeping one skips its own ticks as `overlap`, and
    /// every job is deleted once with one audit row.
    fn two_replicas_take_turns_with_the_singleton_lock(env: &TestEnv) {
        let total = 200;
        let jobs: Vec<Value> = (0..total).map(|i| aged_days(&format!("rep-{i:03}"), if i % 3 == 0 { "Closed" } else { "Completed" }, 100 + i)).collect();
        env.import_ok(&jobs);
        env.migrate();
        let ports = [free_port(), free_port()];
        let daemons: Vec<Daemon> = ports
            .iter()
            .map(|&port| {
                daemon_cmd(env, port)
                    .env("RETENTIOND__SCHEDULE__SINGLETON", "true")
                    .env("RETENTIOND__RETENTION__BATCH_SIZE", "5")
                    .env("RETENTIOND__RETENTION__BATCH_PAUSE", "100ms")
                    .spawn_daemon()
            })
            .collect();
        for (daemon, &port) in daemons.iter().zip(&ports) {
            wait_ready(daemon, port);
        }
        wait_for(&daemons[0], PATIENCE, "the backlog deleted", || env.count("jobs") == 0);
        std::thread::sleep(Duration::from_secs(3));
        let metrics: Vec<Metrics> = ports.iter().map(|&p| scrape(p)).collect();
        let pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
        let mut outs = Vec::new();
        for daemon in daemons {
            let (out, _) = terminate(daemon, Duration::from_secs(15));
            outs.push(out);
        }
        for out in &outs {
            out.expect_code(0);
        }

        assert_audit_consistent(env, total);
        assert_eq!(env.count("retention_audit"), total);
        let rows = runs(env);
        assert!(rows.iter().all(|r| r["finished_us"].is_i64()), "every run finished: {rows:?}");
        assert_eq!(rows.iter().map(|r| r["deleted"].as_i64().unwrap()).sum::<i64>(), total, "{rows:?}");
        for r in &rows {
            let audited = env.count(&format!("retention_audit WHERE run_id = {}", r["id"]));
            assert_eq!(audited, r["deleted"].as_i64().unwrap(), "run {r:?}");
        }
        let span = |r: &BTreeMap<String, Value>| (r["started_us"].as_i64().unwrap(), r["finished_us"].as_i64().unwrap());
        for a in rows.iter().filter(|r| r["pid"] == json!(pids[0])) {
            for b in rows.iter().filter(|r| r["pid"] == json!(pids[1])) {
                let ((a0, a1), (b0, b1)) = (span(a), span(b));
                assert!(a1 <= b0 || b1 <= a0, "runs of both replicas overlap:\n{a:?}\n{b:?}");
            }
        }
        let per_pid: Vec<usize> = pids.iter().map(|p| rows.iter().filter(|r| r["pid"] == json!(p)).count()).collect();
        eprintln!("runs per replica: {per_pid:?}");

        let skipped = |i: usize, reason: &str| metrics[i].value(SKIPPED, &[("reason", reason)]);
        let not_leader = [skipped(0, "not_leader"), skipped(1, "not_leader")];
        let overlap = [skipped(0, "overlap"), skipped(1, "overlap")];
        eprintln!("not_leader skips {not_leader:?}, overlap skips {overlap:?}");
        assert!(not_leader.iter().any(|&n| n > 0.0), "a replica must have skipped as not_leader: {not_leader:?}");
        let biggest = rows.iter().max_by_key(|r| r["deleted"].as_i64().unwrap()).expect("a run");
        let sweeper = pids.iter().position(|p| biggest["pid"] == json!(p)).expect("the sweeper is one of ours");
        assert!(overlap[sweeper] > 0.0, "the replica sweeping the backlog skips its own ticks as overlap: {overlap:?}");
        assert!(not_leader[1 - sweeper] > 0.0, "the other replica skips as not_leader meanwhile: {not_leader:?}");
        for i in 0..2 {
            let deleted: f64 = POLICIES.iter().map(|p| metrics[i].value(JOBS_DELETED, &[("policy", p)])).sum();
            let in_runs: i64 = rows.iter().filter(|r| r["pid"] == json!(pids[i])).map(|r| r["deleted"].as_i64().unwrap()).sum();
            assert_eq!(deleted as i64, in_runs, "replica {i}: {JOBS_DELETED} vs its runs");
        }
    }
}

// ---------------------------------------------------------------------------
// 8. Start-up errors and the HTTP endpoints
// ---------------------------------------------------------------------------

/// A bad `schedule.cron` (four fields; hour 25) exits 78 naming the key; a
/// `metrics.listen` port in use exits 1 naming the key; unknown paths are 404.
#[test]
fn bad_schedule_and_busy_port_fail_the_start_and_unknown_paths_are_404() {
    let env = TestEnv::new(Engine::Sqlite, "bad_schedule_and_busy_port_fail_the_start").expect("sqlite");
    for cron in ["* * * *", "0 0 25 * * *"] {
        let daemon = daemon_cmd(&env, free_port()).env("RETENTIOND__SCHEDULE__CRON", cron).spawn_daemon();
        let out = daemon.wait_exit(PATIENCE);
        out.expect_code(78);
        assert!(out.stderr.contains("schedule.cron"), "the error names schedule.cron ({cron})\n{}", out.describe());
    }

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().unwrap().port();
    let out = daemon_cmd(&env, busy_port).spawn_daemon().wait_exit(PATIENCE);
    out.expect_code(1);
    assert!(out.stderr.contains("metrics.listen"), "the error names metrics.listen\n{}", out.describe());
    drop(busy);

    let port = free_port();
    let daemon = daemon_cmd(&env, port).spawn_daemon();
    wait_ready(&daemon, port);
    let get = |path: &str| http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(get("/nope").status, 404);
    assert_eq!(get("/metrics/nope").status, 404);
    let health = get("/healthz");
    assert_eq!((health.status, health.body.trim()), (200, "ok"), "{health:?}");
    let ready = get("/readyz");
    assert_eq!((ready.status, ready.body.trim()), (200, "ready"), "{ready:?}");
    assert_eq!(get("/metrics").status, 200);
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
}

// ---------------------------------------------------------------------------
// 9. The schedule's time zone
// ---------------------------------------------------------------------------

/// Checks the next tick a log line of the daemon gives, in UTC and in the
/// zone: the same instant, at `local` o'clock in `zone` with one of
/// `offsets` (hours east of UTC), within the next day; the gauge agrees.
#[track_caller]
fn assert_next_tick(line: &Value, port: u16, cron: &str, zone: &str, local: &str, offsets: [i32; 2]) {
    let fields = &line["fields"];
    assert_eq!((fields["cron"].as_str(), fields["timezone"].as_str()), (Some(cron), Some(zone)), "{line}");
    let utc = parse_ts(&fields["next_tick"]);
    let shown = fields["next_tick_local"].as_str().expect("next_tick_local");
    let (local_time, shown_zone) = shown.split_once(' ').expect("time and zone");
    assert_eq!(shown_zone, zone, "{shown}");
    let local_time = chrono::DateTime::parse_from_rfc3339(local_time).expect("RFC 3339");
    assert_eq!(local_time, utc, "the same instant: {shown} and {utc}");
    assert_eq!(local_time.format("%H:%M:%S").to_string(), local, "{shown}");
    assert!(offsets.map(|h| h * 3600).contains(&local_time.offset().local_minus_utc()), "{shown}");
    assert!(utc > chrono::Utc::now() && utc <= chrono::Utc::now() + chrono::Duration::days(1), "{utc}");
    let gauge = scrape(port).value("retentiond_next_sweep_timestamp_seconds", &[]);
    assert_eq!(gauge, utc.timestamp() as f64, "the gauge shows the same tick");
}

/// A five-field daily schedule in Australia/Sydney: the start logs the next
/// tick in UTC and in the zone, at 02:30 local time; a reload to another
/// schedule in America/New_York logs its next tick, at 04:15 there.
#[test]
fn the_next_tick_is_logged_in_utc_and_in_the_zone() {
    let env = TestEnv::new(Engine::Sqlite, "the_next_tick_is_logged_in_utc_and_in_the_zone").expect("sqlite");
    let port = free_port();
    let config = env.dir().join("retentiond.toml");
    let zoned = |cron: &str, zone: &str| {
        config_text(cron, "90d", 1000, port)
            .replace("run_on_start = false", &format!("run_on_start = false\ntimezone = \"{zone}\""))
    };
    rewrite(&config, &zoned("30 2 * * *", "Australia/Sydney"));
    let daemon = env.cmd(&["--config", path_str(&config), "run"]).spawn_daemon();
    wait_ready(&daemon, port);
    let logged = |message: &str| daemon.log_lines().into_iter().find(|l| l["fields"]["message"] == message);
    let started = logged("daemon started").expect("logged");
    assert_next_tick(&started, port, "30 2 * * *", "Australia/Sydney", "02:30:00", [10, 11]);

    rewrite(&config, &zoned("15 4 * * *", "America/New_York"));
    daemon.signal("HUP");
    wait_for(&daemon, PATIENCE, "configuration reloaded", || daemon.logged("configuration reloaded") == 1);
    let reloaded = logged("configuration reloaded").expect("logged");
    assert_next_tick(&reloaded, port, "15 4 * * *", "America/New_York", "04:15:00", [-5, -4]);
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
}

// ---------------------------------------------------------------------------
// 10. Read-only databases
// ---------------------------------------------------------------------------

/// Sets `default_transaction_read_only` on the test database itself: read
/// by every session that starts afterwards.
fn set_database_read_only(env: &TestEnv, on: bool) {
    let value = if on { "on" } else { "off" };
    // The harness's own session may have started read-only: make it writable first.
    env.execute(&format!(
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; \
         DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = {value}', \
         current_database()); END $$;"
    ));
}

every_engine_with! { ReadOnlySwitch;
    /// A database set to `default_transaction_read_only = on`: `purge` exits
    /// 69 with the reason and deletes nothing (a dry run still lists the
    /// jobs); the daemon skips each tick (counted as `read_only`), `/readyz`
    /// answers 503 with the reason; once the setting is off again, the next
    /// tick of the same process deletes the eligible jobs with their audit rows.
    fn a_read_only_database_is_not_swept_until_it_takes_writes_again(env: &TestEnv) {
        let eligible = ["ro-old-1", "ro-old-2", "ro-old-3"];
        let mut jobs: Vec<Value> = eligible.iter().map(|name| aged_days(name, "Completed", 100)).collect();
        jobs.push(aged_days("ro-young", "Completed", 10));
        env.import_ok(&jobs);
        set_database_read_only(env, true);

        let out = env.run(&["purge"]);
        out.expect_code(69);
        assert!(out.stderr.contains("purge deleted nothing: the database is read-only"), "{}", out.describe());
        assert!(out.stderr.contains("default_transaction_read_only"), "names the setting\n{}", out.describe());
        let dry = env.json(&["purge", "--dry-run"]);
        assert_eq!(dry_run_names(&dry), eligible, "a dry run works on a read-only database");
        assert_eq!((env.count("jobs"), env.count("retention_audit"), env.count("retention_runs")), (4, 0, 0));

        let port = free_port();
        // Without the singleton lock a sweep's first statement runs on a
        // pooled session: one left over from the read-only time would fail it.
        let daemon = daemon_cmd(env, port).env("RETENTIOND__SCHEDULE__SINGLETON", "false").spawn_daemon();
        wait_for(&daemon, PATIENCE, "two ticks skipped as read_only", || {
            http_get(port, "/metrics").is_ok_and(|r| r.status == 200)
                && scrape(port).value(SKIPPED, &[("reason", "read_only")]) >= 2.0
        });
        let ready = http_get(port, "/readyz").expect("/readyz");
        assert_eq!(ready.status, 503, "{ready:?}");
        assert!(
            ready.body.contains("not ready: the database is read-only") && ready.body.contains("default_transaction_read_only"),
            "{ready:?}"
        );
        assert!(daemon.logged("sweep skipped: the database is read-only") >= 2, "{}", daemon.describe());
        assert_eq!(scrape(port).value(SWEEPS, &[("outcome", "failed")]), 0.0, "a skip is not a failure\n{}", daemon.describe());
        assert_eq!((env.count("jobs"), env.count("retention_audit"), env.count("retention_runs")), (4, 0, 0));

        let pid = daemon.pid();
        set_database_read_only(env, false);
        wait_for(&daemon, PATIENCE, "the eligible jobs deleted once the database takes writes", || env.count("jobs") == 1);
        wait_for(&daemon, PATIENCE, "/readyz 200", || readyz_is(port, 200));
        assert_eq!(daemon.pid(), pid);
        for name in eligible {
            let rows = env.audit_rows(name);
            assert_eq!(rows.len(), 1, "{name}: {rows:?}");
            assert_eq!(rows[0]["policy"], "completed");
        }
        assert!(env.job_exists("ro-young"));
        let runs = runs(env);
        assert!(runs.iter().all(|r| r["pid"] == json!(i64::from(pid))), "{runs:?}");
        assert!(runs.iter().any(|r| r["status"] == "succeeded" && r["deleted"] == json!(3)), "{runs:?}");
        assert!(runs.iter().all(|r| r["status"] == "succeeded"), "no sweep failed on a stale session: {runs:?}");
        assert_eq!(scrape(port).value(SWEEPS, &[("outcome", "failed")]), 0.0, "{}", daemon.describe());
        let (out, _) = terminate(daemon, Duration::from_secs(10));
        out.expect_code(0);
    }
}

every_engine_with! { NetworkServer;
    /// A server that turns read-only after `purge` checked it (a failover
    /// between the check and the run's first write): the refused write is
    /// still "read-only", exit 69 and not a failure, and nothing is deleted.
    /// A trigger refuses the run's record as the server's read-only mode does.
    fn a_purge_refused_its_first_write_exits_as_read_only(env: &TestEnv) {
        env.import_ok(&[aged_days("refused-old", "Completed", 100)]);
        env.execute(match env.engine {
            Engine::MariaDb => {
                "CREATE TRIGGER refuse_runs BEFORE INSERT ON retention_runs FOR EACH ROW \
                 SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1290, \
                 MESSAGE_TEXT = 'The MariaDB server is running with the --read-only option'"
            }
            _ => {
                "CREATE FUNCTION refuse_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction' USING ERRCODE = '25006'; END $$; \
                 CREATE TRIGGER refuse_runs BEFORE INSERT ON retention_runs FOR EACH ROW EXECUTE FUNCTION refuse_runs();"
            }
        });
        let out = env.run(&["purge"]);
        out.expect_code(69);
        assert!(out.stderr.contains("read-only"), "{}", out.describe());
        assert_eq!((env.count("jobs"), env.count("retention_audit"), env.count("retention_runs")), (1, 0, 0));
    }
}

/// Makes the SQLite file of `env` unwritable even for root (immutable), or
/// writable again.
fn set_file_read_only(env: &TestEnv, on: bool) {
    let file = env.dir().join("test.db");
    let status = if is_root() {
        std::process::Command::new("chattr").arg(if on { "+i" } else { "-i" }).arg(&file).status().expect("chattr")
    } else {
        std::process::Command::new("chmod").arg(if on { "a-w" } else { "u+w" }).arg(&file).status().expect("chmod")
    };
    assert!(status.success(), "cannot change {}", file.display());
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// A SQLite file this process cannot write: `purge` exits 69 naming the
/// file; the daemon waits with `/readyz` 503 and the reason, and sweeps
/// once the file is writable, without a restart.
#[test]
fn a_read_only_sqlite_file_is_not_swept_until_it_is_writable() {
    let env = TestEnv::new(Engine::Sqlite, "a_read_only_sqlite_file_is_not_swept").expect("sqlite");
    env.import_ok(&[aged_days("file-old", "Closed", 100), aged_days("file-young", "Closed", 10)]);
    set_file_read_only(&env, true);
    let restore = Restore(&env);

    let out = env.run(&["purge"]);
    out.expect_code(69);
    assert!(out.stderr.contains("the database is read-only: the SQLite file"), "{}", out.describe());
    assert!(out.stderr.contains("test.db is not writable by this process"), "{}", out.describe());

    let port = free_port();
    let daemon = daemon_cmd(&env, port).spawn_daemon();
    wait_for(&daemon, PATIENCE, "/readyz 503 with the reason", || {
        http_get(port, "/readyz").is_ok_and(|r| r.status == 503 && r.body.contains("is not writable by this process"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.count("jobs"), 2, "{}", daemon.describe());

    drop(restore);
    wait_for(&daemon, PATIENCE, "the eligible job deleted", || !env.job_exists("file-old"));
    wait_for(&daemon, PATIENCE, "/readyz 200", || readyz_is(port, 200));
    assert_eq!(env.audit_rows("file-old").len(), 1);
    assert!(env.job_exists("file-young"));
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
}

/// Makes the file writable again when dropped, even if the test fails first
/// (an immutable file could not be removed with its temporary directory).
struct Restore<'a>(&'a TestEnv);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        set_file_read_only(self.0, false);
    }
}

// ---------------------------------------------------------------------------
// 11. Windows
// ---------------------------------------------------------------------------

/// `schedule.window` in the daemon. Outside the window `run_on_start` and
/// each tick are skipped, logged with the next window and counted
/// (`reason="window"`); nothing is deleted and no run recorded. Once the
/// window opens, the next tick sweeps; the sweep that reaches the window's
/// end stops after the batch in flight (`succeeded`, `stopped_by = window`),
/// and the ticks after it are skipped again.
#[test]
fn ticks_outside_the_window_are_skipped_and_a_sweep_stops_at_its_end() {
    let env = TestEnv::new(Engine::Sqlite, "ticks_outside_the_window_are_skipped").expect("sqlite");
    let jobs: Vec<Value> = (0..60).map(|i| aged_days(&format!("night-{i}"), "Completed", 200 - i)).collect();
    env.import_ok(&jobs);
    let windowed = |daemon: Invocation, window: &str| {
        daemon
            .env("RETENTIOND__SCHEDULE__TIMEZONE", WINDOW_ZONE)
            .env("RETENTIOND__SCHEDULE__WINDOW", window)
            .env("RETENTIOND__RETENTION__BATCH_SIZE", "1")
            .env("RETENTIOND__RETENTION__BATCH_PAUSE", "300ms")
    };

    // run_on_start alone (no tick for a year): skipped, once.
    let port = free_port();
    let later = now() + chrono::Duration::hours(2);
    let daemon = windowed(daemon_cmd(&env, port), &window_between(later, later + chrono::Duration::hours(1)))
        .env("RETENTIOND__SCHEDULE__CRON", "0 0 0 1 1 *")
        .env("RETENTIOND__SCHEDULE__RUN_ON_START", "true")
        .spawn_daemon();
    wait_ready(&daemon, port);
    wait_for(&daemon, PATIENCE, "run_on_start skipped", || {
        daemon.logged("sweep skipped: outside schedule.window") == 1
    });
    assert_eq!(scrape(port).value(SKIPPED, &[("reason", "window")]), 1.0, "{}", daemon.describe());
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
    assert_eq!((env.count("jobs"), env.count("retention_runs")), (60, 0));

    // Every second, in a window that opens in a few seconds (time for a slow
    // start on a busy machine) and lasts 5.
    let port = free_port();
    let opens = now() + chrono::Duration::seconds(8);
    let closes = opens + chrono::Duration::seconds(5);
    let daemon = windowed(daemon_cmd(&env, port), &window_between(opens, closes)).spawn_daemon();
    wait_ready(&daemon, port);
    wait_for(&daemon, PATIENCE, "ticks skipped before the window opens", || {
        scrape(port).value(SKIPPED, &[("reason", "window")]) >= 2.0
    });
    let skip = daemon
        .log_lines()
        .into_iter()
        .find(|line| line["fields"]["message"] == "sweep skipped: outside schedule.window")
        .expect("logged");
    assert_eq!(skip["fields"]["reason"], "window", "{skip}");
    assert_eq!(parse_ts(&skip["fields"]["next_window"]), opens, "{skip}");
    let local = skip["fields"]["next_window_local"].as_str().expect("next_window_local");
    assert_eq!(
        local,
        format!("{} {WINDOW_ZONE}", opens.with_timezone(&WINDOW_ZONE.parse::<chrono_tz::Tz>().unwrap()).to_rfc3339())
    );
    if now() < opens {
        assert_eq!(env.count("retention_runs"), 0, "no sweep before the window opens");
    }
    wait_for(&daemon, PATIENCE, "a sweep stopped by the window", || {
        runs(&env).iter().any(|run| run["stopped_by"] == "window")
    });
    let runs = runs(&env);
    assert_eq!(runs.len(), 1, "one sweep in the window, its ticks overlapping it: {runs:?}");
    let run = &runs[0];
    assert_eq!((&run["status"], &run["trigger"]), (&json!("succeeded"), &json!("schedule")), "{run:?}");
    let deleted = run["deleted"].as_i64().unwrap();
    assert!((1..60).contains(&deleted), "{run:?}");
    let micros = |at: chrono::DateTime<chrono::Utc>| json!(at.timestamp_micros());
    assert!(run["started_us"].as_i64() >= micros(opens).as_i64(), "started in the window: {run:?}");
    assert!(run["finished_us"].as_i64() >= micros(closes).as_i64(), "went on to its end: {run:?}");
    let last_deleted = env.scalar(&format!("SELECT max({}) FROM retention_audit", env.sql_micros("deleted_at")));
    assert!(last_deleted < (closes + chrono::Duration::seconds(1)).timestamp_micros(), "no batch after the end");
    assert_eq!((env.count("jobs"), env.count("retention_audit")), (60 - deleted, deleted));

    let skipped = scrape(port).value(SKIPPED, &[("reason", "window")]);
    wait_for(&daemon, PATIENCE, "ticks skipped again after the window", || {
        scrape(port).value(SKIPPED, &[("reason", "window")]) > skipped
    });
    let metrics = scrape(port);
    assert_eq!(metrics.value(SWEEPS, &[("outcome", "succeeded")]), 1.0, "{}", daemon.describe());
    assert_eq!(metrics.value(SWEEPS, &[("outcome", "interrupted")]), 0.0, "{}", daemon.describe());
    assert_eq!(env.count("retention_runs"), 1, "{}", daemon.describe());
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
}

/// SIGHUP applies a new `schedule.window` from the next tick: ticks outside
/// the old window are skipped, the next tick inside the new one sweeps; a
/// malformed window is refused and the one in force stays.
#[test]
fn sighup_changes_the_window() {
    let env = TestEnv::new(Engine::Sqlite, "sighup_changes_the_window").expect("sqlite");
    env.import_ok(&[aged_days("hup-old-1", "Completed", 100), aged_days("hup-old-2", "Closed", 100)]);
    let port = free_port();
    let config = env.dir().join("retentiond.toml");
    let with_window = |window: &str| {
        config_text(EVERY_SECOND, "90d", 1000, port).replacen(
            "[schedule]\n",
            &format!("[schedule]\ntimezone = \"{WINDOW_ZONE}\"\nwindow = \"{window}\"\n"),
            1,
        )
    };
    let later = now() + chrono::Duration::hours(1);
    rewrite(&config, &with_window(&window_between(later, later + chrono::Duration::hours(1))));
    let daemon = env.cmd(&["--config", path_str(&config), "run"]).spawn_daemon();
    wait_ready(&daemon, port);
    wait_for(&daemon, PATIENCE, "two ticks skipped", || scrape(port).value(SKIPPED, &[("reason", "window")]) >= 2.0);
    assert_eq!(env.count("retention_runs"), 0, "{}", daemon.describe());

    // Malformed: refused, still outside the window.
    rewrite(&config, &with_window("22:00-25:00"));
    daemon.signal("HUP");
    let refused = "configuration reload refused; the previous configuration stays in force";
    wait_for(&daemon, PATIENCE, "the malformed window refused", || daemon.logged(refused) == 1);
    let skipped = scrape(port).value(SKIPPED, &[("reason", "window")]);
    wait_for(&daemon, PATIENCE, "ticks still skipped", || {
        scrape(port).value(SKIPPED, &[("reason", "window")]) > skipped
    });
    assert_eq!(env.count("retention_runs"), 0, "{}", daemon.describe());

    // Open now: the next tick sweeps.
    let open = window_between(now() - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    rewrite(&config, &with_window(&open));
    daemon.signal("HUP");
    wait_for(&daemon, PATIENCE, "configuration reloaded", || daemon.logged("configuration reloaded") == 1);
    let reloaded =
        daemon.log_lines().into_iter().find(|l| l["fields"]["message"] == "configuration reloaded").expect("logged");
    assert_eq!(reloaded["fields"]["window"], json!(open), "{reloaded}");
    wait_for(&daemon, PATIENCE, "the old jobs deleted", || env.count("jobs") == 0);
    assert_eq!(env.count("retention_audit"), 2);
    let (out, _) = terminate(daemon, Duration::from_secs(10));
    out.expect_code(0);
}
