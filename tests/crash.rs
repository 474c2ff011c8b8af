//! docs/design.md, "A sweep", crash safety: `purge` killed with SIGKILL at many moments of a
//! sweep — before its run row exists, while it deletes, between batches,
//! around its end — never leaves a job gone without its audit row, an audit
//! row for a job that still exists, or a job without its drives; the next
//! sweep marks the run the dead process left `running` as `abandoned` and
//! finishes the work.
//!
//! One store is imported once with a few thousand jobs whose fate is known
//! (eligible under one policy, or kept for a reason), each with its drives.
//! Every round starts `purge` with small batches, kills it after a delay that
//! varies from round to round, and checks the invariants job id by job id
//! (ids are never reused, and `retention_audit.job_id` names the job). When
//! the eligible jobs run low, more are imported, so every round kills a live
//! sweep. SQLite must roll a killed transaction back through the WAL; on
//! PostgreSQL the server rolls back when the connection drops, and the
//! advisory lock of the dead run's connection is freed with it.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{Value, json};

const IDLE_14D: (&str, &str) = ("RETENTIOND__RETENTION__CREATING_IDLE", "14d");

/// Processes that must have been killed while still running (the README's 40).
const MIN_KILLED: usize = 40;
/// Kills that must have landed inside a batch's write: PostgreSQL with a
/// DELETE of the batch executing, SQLite with the write lock held, just
/// before the signal.
const MIN_KILLED_WRITING: usize = 3;
/// Kills that must have landed after the run was recorded as finished,
/// before the process exited.
const MIN_KILLED_AFTER_FINISH: usize = 1;
/// The loop stops once all of the above happened, or after this many rounds.
const MAX_ROUNDS: usize = 120;

/// Jobs imported at the start, and the share (per cent) of them eligible.
const INITIAL_JOBS: usize = 3000;
const INITIAL_ELIGIBLE_PCT: u32 = 35;
/// Below this many eligible jobs left, another batch of jobs is imported.
const REFILL_BELOW: usize = 600;
const REFILL_JOBS: usize = 1000;
const REFILL_ELIGIBLE_PCT: u32 = 75;

/// How a round's `purge` runs: jobs per transaction, the pause between
/// batches, and an optional `--max-deletes` (a multiple of the batch size),
/// which makes a sweep short enough for a kill to land around its end.
#[derive(Debug, Clone, Copy)]
struct Plan {
    batch: u32,
    pause_ms: u32,
    cap: Option<u32>,
}

const PLANS: [Plan; 4] = [
    Plan { batch: 5, pause_ms: 0, cap: None },
    Plan { batch: 3, pause_ms: 2, cap: None },
    // Long transactions (40 jobs with their drives and audit rows): a kill
    // during the sweep almost always lands inside one.
    Plan { batch: 40, pause_ms: 0, cap: None },
    CAPPED,
];

/// A sweep of 6 batches that ends at `--max-deletes`; its kills are timed
/// around its end, from how long such a sweep takes here (calibrated).
const CAPPED: Plan = Plan { batch: 8, pause_ms: 1, cap: Some(48) };

/// Delays from the start of the process to SIGKILL for the uncapped plans:
/// a share (per mille) of the time the process needs to open the store and
/// record its run (calibrated), plus some milliseconds. The first few land
/// before the run row exists, the rest spread over the sweep.
const DELAYS: [(u64, u64); 16] = [
    (0, 0),
    (300, 0),
    (600, 0),
    (900, 0),
    (1000, 2),
    (1000, 5),
    (1000, 9),
    (1000, 14),
    (1000, 20),
    (1000, 28),
    (1000, 38),
    (1000, 50),
    (1000, 65),
    (1000, 85),
    (1000, 110),
    (1000, 140),
];

/// Delays for [`CAPPED`], as per mille of the time a whole capped purge takes:
/// from its last batches to just after its run is recorded as finished.
const AROUND_THE_END: [u64; 8] = [750, 850, 900, 950, 980, 1000, 1020, 1050];

/// `purge` with a plan's batch size and cap.
fn purge_args(plan: Plan) -> Vec<String> {
    let mut args: Vec<String> = ["purge", "--output", "json", "--batch-size"].map(String::from).into();
    args.push(plan.batch.to_string());
    if let Some(cap) = plan.cap {
        args.extend(["--max-deletes".to_string(), cap.to_string()]);
    }
    args
}

/// The environment of a plan's `purge`: JSON logs and its batch pause.
fn plan_env(plan: Plan) -> Vec<(String, String)> {
    let mut env = vec![("RETENTIOND__LOG__FORMAT".to_string(), "json".to_string())];
    if plan.pause_ms > 0 {
        env.push(("RETENTIOND__RETENTION__BATCH_PAUSE".to_string(), format!("{}ms", plan.pause_ms)));
    }
    env
}

/// What the test knows about every job it imported.
#[derive(Debug, Clone)]
struct Known {
    name: String,
    /// The policy that deletes it, or `None` when it must be kept.
    policy: Option<&'static str>,
    drives: i64,
    bytes: i64,
}

/// One job for `jobs import`, with what the test expects of it.
struct Generated {
    json: Value,
    policy: Option<&'static str>,
    drives: i64,
    bytes: i64,
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

const DAY: i64 = 86_400;

/// A job in `state` that entered it `age_secs` ago; Creating jobs age from
/// `updated_at`, which is the same moment here.
fn job_at(name: &str, job_type: &str, state: &str, base: DateTime<Utc>, age_secs: i64) -> Value {
    let changed = base - secs(age_secs);
    let created = changed - secs(3 * DAY);
    json!({
        "name": name,
        "job_type": job_type,
        "state": state,
        "created_at": ts(created),
        "updated_at": ts(changed),
        "state_changed_at": ts(if state == "Creating" { created } else { changed }),
    })
}

/// `count` jobs named `PREFIX-NNNNN`; about `eligible_pct` per cent are
/// eligible (Completed or Closed for 100–400 days, Creating idle for 20–60
/// days with creating_idle = 14d), the rest are kept (young, held, or in a
/// state no policy deletes), all well away from any cut-off.
fn generate(rng: &mut fastrand::Rng, prefix: &str, count: usize, eligible_pct: u32) -> Vec<Generated> {
    let base = now();
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i:05}");
            let job_type = if rng.bool() { "Import" } else { "Export" };
            let old = rng.i64(100 * DAY..400 * DAY);
            let (mut json, policy, held) = if rng.u32(0..100) < eligible_pct {
                match rng.u32(0..100) {
                    0..70 => (job_at(&name, job_type, "Completed", base, old), Some("completed"), false),
                    70..85 => (job_at(&name, job_type, "Closed", base, old), Some("closed"), false),
                    _ => {
                        let idle = rng.i64(20 * DAY..60 * DAY);
                        (job_at(&name, job_type, "Creating", base, idle), Some("creating_idle"), false)
                    }
                }
            } else {
                let young = rng.i64(DAY..80 * DAY);
                match rng.u32(0..9) {
                    0 => (job_at(&name, job_type, "Completed", base, young), None, false),
                    1 => (job_at(&name, job_type, "Closed", base, young), None, false),
                    2 => (job_at(&name, job_type, "Completed", base, old), None, true),
                    3 => (job_at(&name, job_type, "Closed", base, old), None, true),
                    4 => (job_at(&name, job_type, "Creating", base, rng.i64(3600..10 * DAY)), None, false),
                    5 => (job_at(&name, job_type, "Creating", base, old), None, true),
                    6 => (job_at(&name, job_type, "Transferring", base, old), None, false),
                    7 => (job_at(&name, job_type, "Shipping", base, old), None, false),
                    _ => (job_at(&name, job_type, "Packaging", base, old), None, false),
                }
            };
            if held {
                json["hold_reason"] = json!("legal hold");
            }
            let drive_state = match json["state"].as_str() {
                Some("Completed") => "ShippedBack",
                Some("Closed") => "NeverReceived",
                Some("Creating") => "Specified",
                _ => "Transferring",
            };
            let n = rng.usize(0..=6);
            let list: Vec<Value> = (0..n)
                .map(|d| {
                    let bytes = rng.i64(0..10_000_000);
                    json!({"drive_id": format!("{name}-d{d}"), "state": drive_state, "bytes": bytes})
                })
                .collect();
            let bytes = list.iter().map(|d| d["bytes"].as_i64().unwrap()).sum();
            json["drives"] = Value::Array(list);
            Generated { json, policy, drives: n as i64, bytes }
        })
        .collect()
}

/// Imports `count` new jobs under `prefix` and records them, by id, in `ledger`.
fn import_more(
    env: &TestEnv,
    ledger: &mut BTreeMap<i64, Known>,
    rng: &mut fastrand::Rng,
    prefix: &str,
    count: usize,
    pct: u32,
) {
    let jobs = generate(rng, prefix, count, pct);
    let values: Vec<Value> = jobs.iter().map(|g| g.json.clone()).collect();
    env.import_ok(&values);
    let by_name: BTreeMap<String, &Generated> =
        jobs.iter().map(|g| (g.json["name"].as_str().unwrap().to_string(), g)).collect();
    let rows = env.rows(&format!("SELECT id, name FROM jobs WHERE name LIKE '{prefix}-%'"));
    assert_eq!(rows.len(), count, "the import of {prefix} created every job");
    for row in rows {
        let id = row[0].as_i64().expect("job id");
        let name = row[1].as_str().expect("job name").to_string();
        let g = by_name[&name];
        let previous = ledger.insert(id, Known { name, policy: g.policy, drives: g.drives, bytes: g.bytes });
        assert!(previous.is_none(), "job id {id} was used before: ids must never be reused");
    }
}

/// What a check found.
struct State {
    /// Eligible jobs still in the store.
    eligible_left: usize,
    /// Audit rows per run id.
    audit_per_run: BTreeMap<i64, usize>,
}

/// Checks the invariants job id by job id; panics listing every violation.
/// With `finished`, also: no eligible job left, every kept job present.
#[track_caller]
fn check(env: &TestEnv, ledger: &BTreeMap<i64, Known>, context: &str, finished: bool) -> State {
    let present: BTreeSet<i64> = env.rows("SELECT id FROM jobs").iter().map(|r| r[0].as_i64().unwrap()).collect();
    let mut audit: BTreeMap<i64, Vec<(Value, String, String)>> = BTreeMap::new();
    for r in env.rows("SELECT job_id, run_id, job_name, policy FROM retention_audit ORDER BY id") {
        let job_id = r[0].as_i64().unwrap();
        let entry = (
            r[1].clone(),
            r[2].as_str().unwrap_or_default().to_string(),
            r[3].as_str().unwrap_or_default().to_string(),
        );
        audit.entry(job_id).or_default().push(entry);
    }
    let drives: BTreeMap<i64, (i64, i64)> = env
        .rows(&format!("SELECT job_id, count(*), {} FROM job_drives GROUP BY job_id", env.sql_integer("sum(bytes)")))
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), (r[1].as_i64().unwrap(), r[2].as_i64().unwrap_or(0))))
        .collect();
    let run_ids: BTreeSet<i64> =
        env.rows("SELECT id FROM retention_runs").iter().map(|r| r[0].as_i64().unwrap()).collect();

    let mut violations = Vec::new();
    for id in present.iter().chain(audit.keys()).chain(drives.keys()) {
        if !ledger.contains_key(id) {
            violations.push(format!("job id {id} is not one the test created (present, audited or with drives)"));
        }
    }
    let mut eligible_left = 0;
    let mut audit_per_run: BTreeMap<i64, usize> = BTreeMap::new();
    for (id, known) in ledger {
        let rows = audit.get(id).map(Vec::as_slice).unwrap_or_default();
        let name = &known.name;
        if present.contains(id) {
            if !rows.is_empty() {
                violations
                    .push(format!("job {id} ({name}) still exists but has {} audit row(s): {rows:?}", rows.len()));
            }
            let found = drives.get(id).copied().unwrap_or((0, 0));
            if found != (known.drives, known.bytes) {
                violations.push(format!(
                    "job {id} ({name}) exists but its drives are not intact: (count, bytes) {found:?}, expected {:?}",
                    (known.drives, known.bytes)
                ));
            }
            if known.policy.is_some() {
                eligible_left += 1;
            }
            if finished && known.policy.is_some() {
                violations
                    .push(format!("job {id} ({name}) is eligible ({:?}) but survived the final sweep", known.policy));
            }
        } else {
            match rows {
                [] => violations.push(format!("job {id} ({name}) is gone without an audit row")),
                [(run_id, job_name, policy)] => {
                    if job_name != name {
                        violations.push(format!("job {id} ({name}): its audit row names {job_name}"));
                    }
                    if Some(policy.as_str()) != known.policy {
                        violations.push(format!(
                            "job {id} ({name}) was deleted under policy {policy}, expected {:?}",
                            known.policy
                        ));
                    }
                    match run_id.as_i64() {
                        Some(run) if run_ids.contains(&run) => *audit_per_run.entry(run).or_default() += 1,
                        _ => violations.push(format!("job {id} ({name}): audit row with run_id {run_id}, not a run")),
                    }
                }
                many => violations.push(format!("job {id} ({name}) is gone with {} audit rows: {many:?}", many.len())),
            }
            if known.policy.is_none() {
                violations.push(format!("job {id} ({name}) was not eligible but is gone"));
            }
            if let Some(found) = drives.get(id) {
                violations.push(format!("job {id} ({name}) is gone but {} of its drives are left", found.0));
            }
        }
    }
    match env.engine {
        Engine::Sqlite => {
            let integrity = env.strings("PRAGMA integrity_check");
            if integrity != ["ok"] {
                violations.push(format!("PRAGMA integrity_check: {integrity:?}"));
            }
        }
        Engine::Postgres | Engine::MariaDb => {}
    }
    assert!(
        violations.is_empty(),
        "{context}: {} invariant violation(s):\n{}",
        violations.len(),
        violations.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    State { eligible_left, audit_per_run }
}

/// Waits until the server has ended every session of retentiond on this
/// database, that is, rolled back what a killed process left open and freed
/// its advisory locks. SQLite: the kernel did that with the process.
#[track_caller]
fn wait_for_sessions_to_end(env: &TestEnv, context: &str) {
    let Some(Sessions { from: sessions, id, query }) = env.sessions_of_the_binary() else { return };
    let gone = wait_until(Duration::from_secs(15), || env.count(sessions) == 0);
    assert!(
        gone,
        "{context}: sessions of the killed process are still open after 15 s: {:?}",
        env.rows(&format!("SELECT {id}, {query} FROM {sessions}"))
    );
}

/// Whether the purge is writing now: on PostgreSQL a deleting statement of
/// retentiond is executing; on MariaDB a batch's transaction holds row locks; on SQLite a write transaction holds the lock (a
/// batch's, but for the short ones recording the run), seen as another
/// connection failing to begin one without waiting.
fn writing(env: &TestEnv) -> bool {
    match env.engine {
        Engine::Postgres => {
            env.count(
                "pg_stat_activity WHERE datname = current_database() AND application_name = 'retentiond' \
                 AND state = 'active' AND query LIKE '%DELETE FROM jobs%'",
            ) > 0
        }
        // A batch is three statements (claim, audit rows, delete) in one
        // transaction: an open transaction of this database holding row locks.
        Engine::MariaDb => {
            env.count(
                "information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p \
                 ON p.ID = t.trx_mysql_thread_id WHERE p.DB = DATABASE() AND t.trx_rows_locked > 0",
            ) > 0
        }
        Engine::Sqlite => {
            let locked = env.try_execute("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; ROLLBACK").is_err();
            env.execute("PRAGMA busy_timeout = 30000");
            locked
        }
    }
}

/// Where in a sweep a kill landed, judged by what the store shows afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Moment {
    /// The process was killed before it recorded its run.
    BeforeRunRow,
    /// The run row is there, no batch had committed.
    BeforeFirstBatch,
    /// Some batches had committed, the run was still running: between
    /// batches or inside one.
    MidSweep,
    /// The run was recorded as finished; the process had not exited yet.
    AfterFinish,
    /// The process had ended by itself before the signal.
    ExitedFirst,
}

every_engine! {
    /// SIGKILL at ≥ 40 moments of a sweep, among them inside a batch's write
    /// and after the run's end was recorded; after each kill the invariants
    /// hold job id by job id, the next sweep marks the dead run `abandoned`;
    /// a final purge leaves no eligible job, every kept job, one audit row
    /// per deleted id and no `running` run.
    fn sigkill_at_any_moment_of_a_sweep_loses_no_audit_row_and_the_next_sweep_finishes(env: &TestEnv) {
        let started = Instant::now();
        let mut rng = fastrand::Rng::with_seed(0x5eed_c0de);
        let mut ledger: BTreeMap<i64, Known> = BTreeMap::new();
        import_more(env, &mut ledger, &mut rng, "g00", INITIAL_JOBS, INITIAL_ELIGIBLE_PCT);
        check(env, &ledger, "after the import", false);
        let mut refills = 0;

        // How long a whole capped purge takes from spawn to exit, and how
        // much of that before its sweep starts: the medians of three.
        let (mut whole, mut startup): (Vec<Duration>, Vec<Duration>) = (0..3)
            .map(|_| {
                let out = env.cmd(&purge_args(CAPPED)).env(IDLE_14D.0, IDLE_14D.1).envs(&plan_env(CAPPED)).run();
                out.expect_code(0);
                let summary = out.json();
                assert_eq!(summary["total"], 48, "{}", out.describe());
                let sweep = Duration::from_millis(summary["duration_ms"].as_u64().expect("duration_ms"));
                (out.elapsed, out.elapsed.saturating_sub(sweep))
            })
            .unzip();
        whole.sort();
        startup.sort();
        let (capped_takes, startup) = (whole[1], startup[1]);
        let mut state = check(env, &ledger, "after the calibration", false);
        let mut last_run_id = env.scalar("SELECT max(id) FROM retention_runs");

        let mut moments: BTreeMap<Moment, usize> = BTreeMap::new();
        let mut killed = 0;
        let mut killed_writing = 0;
        // Runs a killed process left `running`: the next sweep must mark them abandoned.
        let mut left_running: BTreeSet<i64> = BTreeSet::new();
        let mut all_left_running: BTreeSet<i64> = BTreeSet::new();
        let mut round = 0;
        let enough = |killed: usize, killed_writing: usize, moments: &BTreeMap<Moment, usize>| {
            let at = |moment: Moment| moments.get(&moment).copied().unwrap_or(0);
            killed >= MIN_KILLED
                && killed_writing >= MIN_KILLED_WRITING
                && at(Moment::AfterFinish) >= MIN_KILLED_AFTER_FINISH
                && at(Moment::BeforeRunRow) >= 1
                && at(Moment::MidSweep) >= 10
        };
        while !enough(killed, killed_writing, &moments) && round < MAX_ROUNDS {
            if state.eligible_left < REFILL_BELOW {
                refills += 1;
                import_more(env, &mut ledger, &mut rng, &format!("g{refills:02}"), REFILL_JOBS, REFILL_ELIGIBLE_PCT);
                state = check(env, &ledger, &format!("after refill {refills}"), false);
            }
            // Once nothing but a kill after the run's end is missing, every
            // round aims at it.
            let only_the_end_missing = enough(killed, killed_writing, &{
                let mut with_end = moments.clone();
                with_end.insert(Moment::AfterFinish, MIN_KILLED_AFTER_FINISH);
                with_end
            });
            let plan = if only_the_end_missing { CAPPED } else { PLANS[round % PLANS.len()] };
            // Every other capped round watches for its run's end instead of
            // sleeping. The moment between the run's end and the exit lasts a
            // few milliseconds, so these rounds hold the process there: its
            // stdout is stuck, and it prints its summary only after recording
            // the end.
            let watched = plan.cap.is_some() && (only_the_end_missing || (round / PLANS.len()) % 2 == 1);
            let delay = if watched {
                Duration::ZERO
            } else if plan.cap.is_some() {
                capped_takes * AROUND_THE_END[(round / PLANS.len() / 2) % AROUND_THE_END.len()] as u32 / 1000
            } else {
                // Every delay in turn, in a scrambled order (7 is prime to 16).
                let uncapped = round - round / PLANS.len();
                let (share, extra) = DELAYS[(uncapped * 7) % DELAYS.len()];
                startup * share as u32 / 1000 + Duration::from_millis(extra)
            };
            let context = if watched {
                format!("round {round} ({plan:?}, SIGKILL once its run has ended)")
            } else {
                format!("round {round} ({plan:?}, SIGKILL after {delay:?})")
            };
            let purge = env.cmd(&purge_args(plan)).env(IDLE_14D.0, IDLE_14D.1).envs(&plan_env(plan));
            let running = if watched { purge.stdout_stuck() } else { purge }.spawn();
            let pid = running.pid();
            if watched {
                let ended = format!("retention_runs WHERE id > {last_run_id} AND pid = {pid} AND status <> 'running'");
                wait_until(Duration::from_secs(20), || env.count(&ended) > 0);
            } else {
                std::thread::sleep(delay);
            }
            let was_writing = writing(env);
            assert!(send_signal(pid, "KILL"), "{context}: kill -KILL {pid} failed");
            let out = running.wait();
            let was_killed = out.code == -9;
            if was_killed && was_writing {
                killed_writing += 1;
            }
            assert!(
                was_killed || out.code == 0,
                "{context}: purge ended with {} instead of SIGKILL or 0\n{}",
                out.code,
                out.describe()
            );
            wait_for_sessions_to_end(env, &context);
            let before = state.eligible_left;
            state = check(env, &ledger, &context, false);

            // This round's run row, if the process got that far.
            let runs = env.records(&format!(
                "SELECT id, status, pid FROM retention_runs WHERE id > {last_run_id} ORDER BY id"
            ));
            assert!(runs.len() <= 1, "{context}: one process records one run: {runs:?}");
            let moment = match runs.first() {
                None => {
                    assert!(was_killed, "{context}: purge exited 0 without recording a run\n{}", out.describe());
                    Moment::BeforeRunRow
                }
                Some(run) => {
                    let id = run["id"].as_i64().unwrap();
                    last_run_id = id;
                    assert_eq!(run["pid"], json!(pid), "{context}: {run:?}");
                    // Starting, it marked every run the earlier killed processes left.
                    assert_eq!(
                        env.count(&format!("retention_runs WHERE status = 'running' AND id < {id}")),
                        0,
                        "{context}: run {id} started without marking the runs of dead processes abandoned: {:?}",
                        env.records("SELECT id, status, pid FROM retention_runs ORDER BY id")
                    );
                    for old in std::mem::take(&mut left_running) {
                        let status = env.strings(&format!("SELECT status FROM retention_runs WHERE id = {old}"));
                        assert_eq!(status, ["abandoned"], "{context}: run {old} of a killed process");
                    }
                    // Whole batches only: a partial one means the store ran out.
                    let deleted = state.audit_per_run.get(&id).copied().unwrap_or(0);
                    assert!(
                        deleted % plan.batch as usize == 0 || state.eligible_left == 0,
                        "{context}: run {id} committed {deleted} deletions, not whole batches of {}",
                        plan.batch
                    );
                    assert!(deleted <= before, "{context}: run {id} deleted {deleted} of {before} eligible jobs");
                    if let Some(cap) = plan.cap {
                        assert!(deleted <= cap as usize, "{context}: run {id} deleted {deleted} > --max-deletes {cap}");
                    }
                    let status = run["status"].as_str().unwrap();
                    if !was_killed {
                        let summary = out.json();
                        assert_eq!(summary["total"], json!(deleted), "{context}: {summary}");
                        assert_eq!(status, "succeeded", "{context}: {summary}");
                        Moment::ExitedFirst
                    } else if status == "running" {
                        left_running.insert(id);
                        all_left_running.insert(id);
                        if deleted == 0 { Moment::BeforeFirstBatch } else { Moment::MidSweep }
                    } else {
                        assert_eq!(status, "succeeded", "{context}: a killed run that finished");
                        Moment::AfterFinish
                    }
                }
            };
            *moments.entry(moment).or_default() += 1;
            if was_killed {
                killed += 1;
            }
            round += 1;
        }
        let loop_time = started.elapsed();
        eprintln!(
            "{:?}: start-up {startup:?}, a capped purge {capped_takes:?}; {round} rounds, {killed} processes \
             killed mid-work, {killed_writing} of them while writing, moments {moments:?}, {refills} refills, \
             {} jobs in all, {loop_time:?}",
            env.engine,
            ledger.len(),
        );
        assert!(killed >= MIN_KILLED, "only {killed} of {round} rounds killed a running purge: {moments:?}");
        assert!(
            killed_writing >= MIN_KILLED_WRITING,
            "only {killed_writing} kills landed while the purge was writing (at least {MIN_KILLED_WRITING})"
        );
        let at = |moment: Moment| moments.get(&moment).copied().unwrap_or(0);
        assert!(at(Moment::BeforeRunRow) >= 1, "no kill before the run row: {moments:?}");
        assert!(at(Moment::MidSweep) >= 10, "fewer than 10 kills in the middle of a sweep: {moments:?}");
        assert!(
            at(Moment::AfterFinish) >= MIN_KILLED_AFTER_FINISH,
            "no kill after the run was recorded as finished: {moments:?}"
        );

        // A clean purge finishes the work and marks the last dead run.
        let summary = env.json_env(&["purge", "--batch-size", "100"], &[IDLE_14D]);
        assert_eq!(summary["stopped_by"], "done", "{summary}");
        let state = check(env, &ledger, "after the final purge", true);
        assert_eq!(state.eligible_left, 0);
        let dry = env.json_env(&["purge", "--dry-run"], &[IDLE_14D]);
        assert_eq!(dry["total"], 0, "nothing eligible is left: {dry}");
        let deleted = ledger.values().filter(|k| k.policy.is_some()).count() as i64;
        assert_eq!(env.count("retention_audit"), deleted, "one audit row per deleted job");
        assert_eq!(env.count("jobs"), ledger.len() as i64 - deleted, "every kept job is there");
        let runs = env.records("SELECT id, status FROM retention_runs ORDER BY id");
        assert_eq!(env.count("retention_runs WHERE status = 'running'"), 0, "no run is left running: {runs:?}");
        let abandoned: BTreeSet<i64> = env
            .rows("SELECT id FROM retention_runs WHERE status = 'abandoned'")
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect();
        assert!(!abandoned.is_empty(), "killed runs must end up abandoned");
        assert_eq!(abandoned, all_left_running, "exactly the runs that killed processes left running are abandoned");
        eprintln!("{:?}: {} runs abandoned; the test took {:?}", env.engine, abandoned.len(), started.elapsed());
    }
}
