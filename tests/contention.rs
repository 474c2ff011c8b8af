//! SQLite under contention (docs/design.md, "A sweep", and docs/schema.md: WAL and a busy timeout): the daemon
//! sweeps a backlog in small batches while several CLI processes write at
//! once. Every command must succeed, or fail with the documented conflict
//! (exit 4) exactly where the lifecycle forbids the operation; none may fail
//! with "database is locked" within the busy timeout (database.statement_timeout,
//! 30 s by default). Nothing is lost: every job the writers made exists
//! afterwards unless it was deleted by hand (one `manual` audit row) or was
//! eligible (one policy audit row); no held job is deleted.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const WRITERS: usize = 4;
/// How long the writers keep writing while the daemon sweeps.
const WRITING: Duration = Duration::from_secs(6);
/// Eligible jobs the daemon has to work through, in batches of `BATCH` with
/// `PAUSE` between them: a sweep that outlasts the writers, since its pauses
/// alone (700 × 10 ms) take longer than `WRITING`.
const BACKLOG: usize = 7000;
const BATCH: &str = "10";
const PAUSE: &str = "10ms";
/// Old Completed jobs on hold in the backlog: never deleted.
const HELD_BACKLOG: usize = 50;

/// What must have become of a job a writer made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Still there, in this state, held or not.
    Kept { state: &'static str, held: bool },
    /// Deleted by `jobs delete`: gone, one `manual` audit row without a run.
    DeletedByHand,
    /// Eligible when imported: gone once a sweep has run, one `completed` audit row of a run.
    Eligible,
}

/// One command a writer ran, with the exit code the lifecycle dictates.
struct Step {
    writer: usize,
    out: Out,
    expected: i32,
}

/// Runs the CLI commands of one writer until `until`; returns the fates of
/// the jobs it made. Every command is recorded in `steps`.
fn writer(env: &TestEnv, w: usize, until: Instant, steps: &Mutex<Vec<Step>>) -> BTreeMap<String, Fate> {
    let mut fates = BTreeMap::new();
    let run = |args: &[&str], expected: i32| {
        let out = env.run(args);
        let ok = out.code == expected;
        steps.lock().unwrap_or_else(|e| e.into_inner()).push(Step { writer: w, out, expected });
        ok
    };
    let mut i = 0;
    while Instant::now() < until {
        let a = format!("w{w}-{i:04}-a");
        let b = format!("w{w}-{i:04}-b");
        let c = format!("w{w}-{i:04}-c");
        // A goes through its life, with the conflicts the lifecycle forbids along the way.
        run(&["jobs", "create", &a, "--type", "import", "--drive", "d1", "--drive", "d2"], 0);
        run(&["jobs", "set-state", &a, "Shipping"], 0);
        run(&["jobs", "cancel", &a], 0);
        run(&["jobs", "hold", &a, "--reason", "contention"], 0);
        run(&["jobs", "set-state", &a, "Received"], 0);
        run(&["jobs", "set-state", &a, "Completed"], 4); // Received → Completed is no transition
        run(&["jobs", "delete", &a], 4); // neither Received nor held jobs may be deleted
        run(&["jobs", "create", &a, "--type", "export"], 4); // the name is taken
        run(&["jobs", "set-state", &a, "Packaging"], 0); // allowed: cancellation was requested
        run(&["jobs", "set-state", &a, "Completed"], 0);
        run(&["jobs", "cancel", &a], 4); // too late in Completed
        run(&["jobs", "delete", &a], 4); // held
        run(&["jobs", "release", &a], 0);
        run(&["jobs", "show", &a], 0);
        if i % 2 == 1 {
            run(&["jobs", "delete", &a], 0);
            fates.insert(a, Fate::DeletedByHand);
        } else {
            fates.insert(a, Fate::Kept { state: "Completed", held: false });
        }
        // B is deleted by hand while still Creating.
        run(&["jobs", "create", &b, "--type", "export", "--drive", "x1"], 0);
        run(&["jobs", "delete", &b], 0);
        run(&["jobs", "show", &b], 3);
        fates.insert(b, Fate::DeletedByHand);
        // C is held in Creating: a delete is refused.
        run(&["jobs", "create", &c, "--type", "export"], 0);
        run(&["jobs", "hold", &c, "--reason", "keep"], 0);
        run(&["jobs", "delete", &c], 4);
        fates.insert(c, Fate::Kept { state: "Creating", held: true });
        // An import of three: one eligible, one eligible but held, one young.
        let (e, h, y) = (format!("w{w}-{i:04}-e"), format!("w{w}-{i:04}-h"), format!("w{w}-{i:04}-y"));
        let lines = [
            set(job(&e, "Completed", days_ago(200)), "drives", drives(&e, 2, "ShippedBack")),
            set(job(&h, "Completed", days_ago(200)), "hold_reason", json!("legal")),
            job(&y, "Closed", days_ago(5)),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let path = env.write_file(&format!("w{w}-{i}.jsonl"), &text);
        run(&["jobs", "import", path_str(&path)], 0);
        fates.insert(e, Fate::Eligible);
        fates.insert(h, Fate::Kept { state: "Completed", held: true });
        fates.insert(y, Fate::Kept { state: "Closed", held: false });
        run(&["audit", "list", "--limit", "3"], 0);
        i += 1;
    }
    fates
}

/// Whether a command's output speaks of a locked or busy database.
fn mentions_locking(out: &Out) -> bool {
    let text = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
    text.contains("locked") || text.contains("busy")
}

/// The number of policy (not manual) audit rows.
fn swept(env: &TestEnv) -> i64 {
    env.count("retention_audit WHERE policy <> 'manual'")
}

#[test]
fn sqlite_daemon_sweeping_while_cli_writers_write_nothing_locked_nothing_lost() {
    let env = TestEnv::new(Engine::Sqlite, "contention").expect("SQLite is always there");
    let started = Instant::now();
    let mut backlog: Vec<Value> = (0..BACKLOG)
        .map(|i| {
            let name = format!("backlog-{i:05}");
            set(job(&name, "Completed", days_ago(100 + (i % 250) as i64)), "drives", drives(&name, 2, "ShippedBack"))
        })
        .collect();
    backlog
        .extend((0..HELD_BACKLOG).map(|i| {
            set(job(&format!("held-{i:03}"), "Completed", days_ago(300)), "hold_reason", json!("legal hold"))
        }));
    env.import_ok(&backlog);

    let daemon = env
        .cmd(&["run"])
        .env("RETENTIOND__LOG__FORMAT", "json")
        .env("RETENTIOND__SCHEDULE__CRON", "* * * * * *")
        .env("RETENTIOND__SCHEDULE__RUN_ON_START", "true")
        .env("RETENTIOND__METRICS__LISTEN", "")
        .env("RETENTIOND__RETENTION__BATCH_SIZE", BATCH)
        .env("RETENTIOND__RETENTION__BATCH_PAUSE", PAUSE)
        .env("RETENTIOND__SHUTDOWN__GRACE", "10s")
        .spawn_daemon();
    let sweeping = wait_until(Duration::from_secs(30), || !daemon.is_running() || swept(&env) > 0);
    assert!(daemon.is_running() && sweeping, "the daemon did not start sweeping\n{}", daemon.describe());

    // The writers, all at once, while the daemon sweeps.
    let swept_before = swept(&env);
    let writing_started = Instant::now();
    let steps = Mutex::new(Vec::new());
    let fates: BTreeMap<String, Fate> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (env, steps) = (&env, &steps);
                scope.spawn(move || writer(env, w, writing_started + WRITING, steps))
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("writer thread")).collect()
    });
    let writing_took = writing_started.elapsed();
    let swept_after = swept(&env);
    let backlog_left = env.count("jobs WHERE name LIKE 'backlog-%'");
    let steps = steps.into_inner().unwrap_or_else(|e| e.into_inner());

    // Every command as the lifecycle dictates; nothing locked or busy.
    let wrong: Vec<String> = steps
        .iter()
        .filter(|s| s.out.code != s.expected || mentions_locking(&s.out))
        .map(|s| format!("writer {} expected exit {}:\n{}", s.writer, s.expected, s.out.describe()))
        .collect();
    let slowest = steps.iter().map(|s| s.out.elapsed).max().unwrap_or_default();
    let mut codes: BTreeMap<i32, usize> = BTreeMap::new();
    for s in &steps {
        *codes.entry(s.out.code).or_default() += 1;
    }
    eprintln!(
        "{} commands by {WRITERS} writers in {writing_took:?} (exit codes {codes:?}, slowest {slowest:?}); \
         the daemon swept {} jobs meanwhile, {backlog_left} of the backlog left when the writers stopped",
        steps.len(),
        swept_after - swept_before
    );
    assert!(
        wrong.is_empty(),
        "{} of {} commands did not end as expected:\n{}",
        wrong.len(),
        steps.len(),
        wrong.iter().take(10).cloned().collect::<Vec<_>>().join("\n\n")
    );
    assert!(steps.len() >= 100, "the writers ran only {} commands", steps.len());
    assert!(swept_after > swept_before, "the daemon deleted nothing while the writers wrote\n{}", daemon.describe());
    assert!(backlog_left > 0, "the sweep ended before the writers did: no contention to speak of; enlarge BACKLOG");

    // The daemon works through the backlog and, on later ticks, the eligible imports.
    let eligible: Vec<&String> = fates.iter().filter(|(_, f)| **f == Fate::Eligible).map(|(n, _)| n).collect();
    let done = wait_until(Duration::from_secs(60), || {
        !daemon.is_running()
            || (env.count("jobs WHERE name LIKE 'backlog-%'") == 0
                && eligible.iter().all(|n| !env.job_exists(n))
                && env.count("retention_runs WHERE status = 'running'") == 0)
    });
    assert!(daemon.is_running() && done, "the daemon did not finish the work\n{}", daemon.describe());
    daemon.signal("TERM");
    let out = daemon.wait_exit(Duration::from_secs(15));
    out.expect_code(0);
    assert!(!mentions_locking(&out), "the daemon met a locked database:\n{}", out.describe());
    assert!(!out.stderr.contains("sweep failed"), "a sweep failed:\n{}", out.describe());
    let failed =
        env.records("SELECT id, status, error FROM retention_runs WHERE status NOT IN ('succeeded', 'interrupted')");
    assert!(failed.is_empty(), "runs that did not succeed: {failed:?}");

    // Nothing lost, job by job.
    let mut violations = Vec::new();
    for (name, fate) in &fates {
        let rows = env.records(&format!(
            "SELECT job_id, run_id, policy FROM retention_audit WHERE job_name = {} ORDER BY id",
            quote(name)
        ));
        let job = env.records(&format!("SELECT state, hold_reason FROM jobs WHERE name = {}", quote(name)));
        match fate {
            Fate::Kept { state, held } => {
                if job.len() != 1 {
                    violations.push(format!("{name} must be there ({fate:?}) but is gone; audit: {rows:?}"));
                } else {
                    if job[0]["state"] != json!(state) {
                        violations.push(format!("{name}: state {} instead of {state}", job[0]["state"]));
                    }
                    if job[0]["hold_reason"].is_null() == *held {
                        violations.push(format!("{name}: hold_reason {} (held: {held})", job[0]["hold_reason"]));
                    }
                }
                if !rows.is_empty() {
                    violations.push(format!("{name} must not be audited ({fate:?}): {rows:?}"));
                }
            }
            Fate::DeletedByHand | Fate::Eligible => {
                let (policy, run) = if *fate == Fate::DeletedByHand { ("manual", false) } else { ("completed", true) };
                if !job.is_empty() {
                    violations.push(format!("{name} must be gone ({fate:?}) but is there: {job:?}"));
                }
                if rows.len() != 1 || rows[0]["policy"] != json!(policy) || rows[0]["run_id"].is_null() == run {
                    violations.push(format!("{name} ({fate:?}) needs one {policy} audit row, found {rows:?}"));
                }
            }
        }
    }
    let audited: BTreeSet<String> = env
        .strings("SELECT job_name FROM retention_audit WHERE job_name LIKE 'backlog-%' AND policy = 'completed'")
        .into_iter()
        .collect();
    if audited.len() != BACKLOG {
        violations.push(format!("{} of {BACKLOG} backlog jobs have a completed audit row", audited.len()));
    }
    if env.count("jobs WHERE name LIKE 'held-%' AND hold_reason IS NOT NULL") != HELD_BACKLOG as i64 {
        violations.push("held backlog jobs are missing".to_string());
    }
    let held_deleted =
        env.count("retention_audit WHERE job_name LIKE 'held-%' OR job_name LIKE '%-h' OR job_name LIKE '%-c'");
    if held_deleted != 0 {
        violations.push(format!("{held_deleted} held jobs were deleted"));
    }
    // By id: one audit row per deleted job, none for a job that exists, drives gone with their job.
    let audit = env.count("retention_audit");
    if env.scalar("SELECT count(DISTINCT job_id) FROM retention_audit") != audit {
        violations.push("a job id has more than one audit row".to_string());
    }
    let audited_alive = env.count("retention_audit WHERE job_id IN (SELECT id FROM jobs)");
    if audited_alive != 0 {
        violations.push(format!("{audited_alive} audit rows belong to jobs that exist"));
    }
    let orphans = env.count("job_drives WHERE job_id NOT IN (SELECT id FROM jobs)");
    if orphans != 0 {
        violations.push(format!("{orphans} drives outlived their job"));
    }
    let expected_audit = BACKLOG + fates.values().filter(|f| !matches!(f, Fate::Kept { .. })).count();
    if audit != expected_audit as i64 {
        violations.push(format!("{audit} audit rows, expected {expected_audit}"));
    }
    let integrity = env.strings("PRAGMA integrity_check");
    if integrity != ["ok"] {
        violations.push(format!("PRAGMA integrity_check: {integrity:?}"));
    }
    assert!(violations.is_empty(), "{} violation(s):\n{}", violations.len(), violations.join("\n"));
    eprintln!(
        "{} jobs made by the writers; {} runs; the whole test took {:?}",
        fates.len(),
        env.count("retention_runs"),
        started.elapsed()
    );
}

/// Several processes opening a new SQLite store at the same moment (a
/// daemon and a timer's purge on a fresh host, or a few CLI commands) must
/// all succeed: each applies the migrations, and SQLite, unlike PostgreSQL,
/// gives sqlx's migrator no lock to serialise them with.
#[test]
fn sqlite_processes_opening_a_new_store_at_once_all_succeed() {
    let first = TestEnv::new(Engine::Sqlite, "contention-new-store").expect("SQLite is always there");
    let mut failures = Vec::new();
    for trial in 0..5 {
        let env = if trial == 0 { None } else { Some(first.sibling()) };
        let env = env.as_ref().unwrap_or(&first);
        let names: Vec<String> = (0..6).map(|i| format!("new-{trial}-{i}")).collect();
        let running: Vec<_> =
            names.iter().map(|n| env.cmd(&["jobs", "create", n, "--type", "import"]).spawn()).collect();
        for (name, out) in names.iter().zip(running.into_iter().map(|r| r.wait())) {
            if out.code == 0 {
                assert!(env.job_exists(name), "{name} was created\n{}", out.describe());
            } else {
                failures.push(out.describe());
            }
        }
    }
    assert!(failures.is_empty(), "{} of 30 commands failed:\n{}", failures.len(), failures.join("\n\n"));
}
