//! The store's contract, on every engine: each method of the `Store` traits
//! (src/store/api.rs) called directly, in-process, on a fresh store, with
//! what it must answer, including a job not found, a change the lifecycle
//! refuses, a held job, a name taken, and a deleting batch that checks
//! again each job it was given and leaves those changed since they were
//! read. What the traits leave to each engine (a lease between processes,
//! a pause between batches, a commit counter) is stated per engine below.

mod common;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use common::*;
use retentiond::config::{DatabaseSettings, DatabaseUrl};
use retentiond::identity::ProcessIdentity;
use retentiond::lifecycle::{DriveState, JobState, JobType, LifecycleError, Operation};
use retentiond::model::{Drive, Job, Pauses, Removed, RunStatus};
use retentiond::policy::{
    self, Cursors, Cutoffs, PerPolicy, PerRule, PerType, Policy, Retentions, SortKey, start_of_time,
};
use retentiond::store::{
    AuditRemoval, AuditSearch, AuditWindow, Batch, BatchRequest, Candidate, ForecastCount, ForecastWindow, HeldKey,
    IdRange, JobFilter, NewRun, RunOutcome, RunRemoval, Store, StoreError, TrailKey,
};

const DAY: TimeDelta = TimeDelta::days(1);

/// What the traits leave to each engine, as each one does it (the lease
/// between processes is [`Capability::LeaseBetweenProcesses`]).
struct Particular {
    /// A sweep pauses between batches, so that the application's writers get a turn.
    pauses_between_batches: bool,
    /// Commits of other connections are counted.
    counts_commits: bool,
}

fn particular(engine: Engine) -> Particular {
    match engine {
        // One writer at a time: a sweep lets the application's writers through.
        Engine::Sqlite => Particular { pauses_between_batches: true, counts_commits: true },
        Engine::Postgres | Engine::MariaDb => Particular { pauses_between_batches: false, counts_commits: false },
    }
}

/// A store of the test's database, opened (and migrated) as the binary opens it.
async fn open(env: &TestEnv) -> Box<dyn Store> {
    let settings = DatabaseSettings { url: DatabaseUrl::new(env.url.clone()), ..DatabaseSettings::default() };
    retentiond::store::open(&settings).await.unwrap_or_else(|error| panic!("open {}: {error}", redact(&env.url)))
}

/// Runs `body` with a store of the test's database and the database's clock.
fn with_store<F: AsyncFnOnce(&dyn Store, DateTime<Utc>)>(env: &TestEnv, body: F) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = open(env).await;
        let now = store.now().await.expect("now").trunc_subsecs(6);
        body(store.as_ref(), now).await;
        store.close().await;
    });
}

/// A job of `state` that entered it `days` days before `now` (negative:
/// after), created ten days before that.
fn job(name: &str, state: JobState, days: i64, now: DateTime<Utc>) -> Job {
    let changed = now - DAY * days as i32;
    Job {
        name: name.to_owned(),
        job_type: JobType::Import,
        state,
        cancel_requested: false,
        cancel_requested_at: None,
        hold_reason: None,
        created_at: changed - DAY * 10,
        updated_at: changed,
        state_changed_at: changed,
        retain_until: None,
        drives: Vec::new(),
    }
}

/// The jobs every scenario starts with, in creation order. Under
/// [`cutoffs`] the eligible ones are done-200, by-hand, to-hold and done-100
/// (completed), closed-100 (closed), to-ship and idle-30 (creating_idle).
fn jobs(now: DateTime<Utc>) -> Vec<Job> {
    let mut done = job("done-200", JobState::Completed, 200, now);
    done.drives = vec![
        Drive { drive_id: "D-1".into(), state: DriveState::Completed, bytes: 10 },
        Drive { drive_id: "D-2".into(), state: DriveState::ShippedBack, bytes: 0 },
    ];
    let mut held = job("held-150", JobState::Completed, 150, now);
    held.hold_reason = Some("legal hold".into());
    vec![
        done,
        job("done-100", JobState::Completed, 100, now),
        job("closed-100", JobState::Closed, 100, now),
        job("idle-30", JobState::Creating, 30, now),
        held,
        job("young", JobState::Completed, 1, now),
        job("future", JobState::Completed, -2, now),
        job("shipping", JobState::Shipping, 100, now),
        job("to-hold", JobState::Completed, 120, now),
        job("to-ship", JobState::Creating, 40, now),
        job("by-hand", JobState::Completed, 130, now),
    ]
}

fn retentions() -> Retentions {
    let days = |days: u64| Some(Duration::from_secs(days * 86_400));
    let both = |days| PerType { import: days, export: days };
    let rules = PerPolicy {
        completed: both(days(90)),
        closed: both(days(90)),
        creating_idle: both(days(14)),
        retain_until: both(Some(Duration::ZERO)),
    };
    Retentions { rules, minimum: Duration::from_secs(86_400) }
}

fn cutoffs(now: DateTime<Utc>) -> Cutoffs {
    policy::cutoffs(&retentions(), now)
}

async fn seed(store: &dyn Store, now: DateTime<Utc>) {
    store.create_jobs(&jobs(now)).await.expect("create the jobs");
}

fn names<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    names.into_iter().map(String::as_str).collect()
}

fn sorted_names<'a>(list: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    let mut names = names(list);
    names.sort_unstable();
    names
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, name: &str) {
    match result {
        Err(StoreError::NotFound(found)) => assert!(found.contains(name), "{found}"),
        other => panic!("{name}: expected not found, got {other:?}"),
    }
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, StoreError>, expected: &LifecycleError) {
    match result {
        Err(StoreError::Conflict { source, .. }) => assert_eq!(&source, expected),
        other => panic!("expected the conflict {expected:?}, got {other:?}"),
    }
}

every_engine! {
    /// `JobStore`: create all or nothing, read, list, change and delete by
    /// hand, and what each refuses.
    fn job_commands(env: &TestEnv) {
        with_store(env, async |store: &dyn Store, now| {
            let created = jobs(now);
            seed(store, now).await;
            assert_eq!(store.job("done-200").await.unwrap().as_ref(), Some(&created[0]), "read back as written");
            assert_eq!(store.job("nope").await.unwrap(), None);

            let taken = store.create_jobs(&[job("fresh", JobState::Creating, 0, now), job("young", JobState::Creating, 0, now)]).await;
            match taken {
                Err(StoreError::NameTaken { name, index }) => assert_eq!((name.as_str(), index), ("young", 1)),
                other => panic!("expected the name taken, got {other:?}"),
            }
            assert_eq!(store.job("fresh").await.unwrap(), None, "all or nothing");

            let all = store.list_jobs(&JobFilter::default()).await.unwrap();
            assert_eq!(all, created, "every job, in creation order");
            let first = store.list_jobs(&JobFilter { states: vec![], limit: Some(3) }).await.unwrap();
            assert_eq!(names(first.iter().map(|job| &job.name)), ["done-200", "done-100", "closed-100"]);
            let states = JobFilter { states: vec![JobState::Shipping, JobState::Closed], limit: None };
            let filtered = store.list_jobs(&states).await.unwrap();
            assert_eq!(names(filtered.iter().map(|job| &job.name)), ["closed-100", "shipping"]);

            assert_not_found(store.change_job("nope", &Operation::Cancel).await, "nope");
            let refused = store.change_job("done-100", &Operation::SetState(JobState::Shipping)).await;
            assert_refused(refused, &LifecycleError::Transition { from: JobState::Completed, to: JobState::Shipping });
            assert_eq!(store.job("done-100").await.unwrap().as_ref(), Some(&created[1]), "a refused change writes nothing");

            let shipped = store.change_job("to-ship", &Operation::SetState(JobState::Shipping)).await.unwrap();
            assert_eq!(shipped.state, JobState::Shipping);
            assert!(shipped.state_changed_at >= now && shipped.updated_at == shipped.state_changed_at, "{shipped:?}");
            assert_eq!(store.job("to-ship").await.unwrap(), Some(shipped));

            let cancelled = store.change_job("idle-30", &Operation::Cancel).await.unwrap();
            assert!(cancelled.cancel_requested && cancelled.cancel_requested_at.is_some_and(|at| at >= now), "{cancelled:?}");
            let again = store.change_job("idle-30", &Operation::Cancel).await.unwrap();
            assert_eq!(again, cancelled, "a repeated cancel changes nothing, not even updated_at");

            let held = store.change_job("young", &Operation::Hold("audit".into())).await.unwrap();
            assert_eq!(held.hold_reason.as_deref(), Some("audit"));
            assert_refused(store.delete_job("young", "ops@host").await, &LifecycleError::Held { reason: "audit".into() });
            let released = store.change_job("young", &Operation::Release).await.unwrap();
            assert_eq!(released.hold_reason, None);
            assert_eq!(store.job("young").await.unwrap(), Some(released));

            assert_refused(store.delete_job("held-150", "ops@host").await, &LifecycleError::Held { reason: "legal hold".into() });
            assert_refused(store.delete_job("shipping", "ops@host").await, &LifecycleError::Delete { state: JobState::Shipping });
            assert_not_found(store.delete_job("nope", "ops@host").await, "nope");
            assert!(store.job("held-150").await.unwrap().is_some() && store.job("shipping").await.unwrap().is_some());

            let entry = store.delete_job("done-200", "ops@host").await.unwrap();
            let done = &created[0];
            assert_eq!(
                (entry.run_id, entry.job_name.as_str(), entry.policy.as_str(), entry.state, entry.deleted_by.as_str()),
                (None, "done-200", "manual", JobState::Completed, "ops@host")
            );
            assert_eq!((entry.created_at, entry.state_changed_at), (done.created_at, done.state_changed_at));
            assert!(entry.deleted_at >= now, "{entry:?}");
            assert_eq!(store.job("done-200").await.unwrap(), None);
            assert_not_found(store.delete_job("done-200", "ops@host").await, "done-200");
            let trail = store.audit(&AuditSearch::newest(Some("done-200".into()), None), None).await.unwrap();
            assert_eq!(trail, vec![entry], "one audit row, the one returned");
        });
    }
}

every_engine! {
    /// `EligibleStore` and `PageStore`: what is eligible, how many, the n-th
    /// of them, the forecast, and the held jobs.
    fn eligible_reads_and_holds(env: &TestEnv) {
        with_store(env, async |store: &dyn Store, now| {
            seed(store, now).await;
            let cutoffs = cutoffs(now);
            let at = |days: i64| Some(now - DAY * days as i32);

            let eligible = store.eligible_jobs(&cutoffs).await.unwrap();
            let counted = eligible.map(|_, jobs| (jobs.count, jobs.oldest));
            assert_eq!(counted, PerPolicy { completed: (4, at(200)), closed: (1, at(100)), creating_idle: (2, at(40)), retain_until: (0, None) });
            let closed_off = Cutoffs { rules: PerRule { closed: PerType::default(), ..cutoffs.rules }, ..cutoffs };
            let eligible = store.eligible_jobs(&closed_off).await.unwrap();
            assert_eq!((eligible.closed.count, eligible.closed.oldest, eligible.completed.count), (0, None, 4));

            let retentions = retentions();
            let request = |after, limit| BatchRequest { cutoffs: &cutoffs, retentions: &retentions, after, limit };
            let start = Cursors::default();
            let all = store.find_eligible(request(&start, 100)).await.unwrap();
            let listed: Vec<(&str, Policy)> = all.iter().map(|candidate| (candidate.name.as_str(), candidate.policy)).collect();
            assert_eq!(listed, [
                ("done-200", Policy::Completed),
                ("by-hand", Policy::Completed),
                ("to-hold", Policy::Completed),
                ("to-ship", Policy::CreatingIdle),
                ("idle-30", Policy::CreatingIdle),
                ("done-100", Policy::Completed),
                ("closed-100", Policy::Closed),
            ], "most overdue first (age timestamp plus retention), ties by id");
            let first = store.find_eligible(request(&start, 2)).await.unwrap();
            assert_eq!(first, all[..2]);
            let after = Cursors { completed: PerType { import: Some(all[1].key), export: None }, ..Cursors::default() };
            let next = store.find_eligible(request(&after, 2)).await.unwrap();
            assert_eq!(next, all[2..4], "each rule resumes after its cursor");

            let due = |candidate: &Candidate| {
                candidate.key.due(policy::retention_micros(&retentions, candidate.policy, candidate.job_type))
            };
            assert_eq!(store.nth_eligible(&cutoffs, &retentions, 1).await.unwrap(), Some(due(&all[0])));
            assert_eq!(store.nth_eligible(&cutoffs, &retentions, 4).await.unwrap(), Some(due(&all[3])));
            assert_eq!(store.nth_eligible(&cutoffs, &retentions, 7).await.unwrap(), Some(due(&all[6])));
            assert_eq!(store.nth_eligible(&cutoffs, &retentions, 8).await.unwrap(), None, "fewer than 8 are eligible");

            let horizons = Cutoffs { rules: cutoffs.map(|_, by_type| by_type.map(|_, cutoff| cutoff.map(|cutoff| cutoff + DAY * 100))), settled: None };
            let mut forecast: Vec<ForecastCount> = store
                .forecast(ForecastWindow { cutoffs: &cutoffs, horizons: &horizons, days: 100 })
                .await
                .unwrap()
                .into_iter()
                .filter(|count| count.jobs > 0)
                .collect();
            forecast.sort_by_key(|count| (count.policy.as_str(), count.held, count.day));
            let count = |policy, held, day| ForecastCount { policy, held, day, jobs: 1 };
            assert_eq!(forecast, [
                count(Policy::Completed, false, 88),
                count(Policy::Completed, false, 91),
                count(Policy::Completed, true, -1),
            ], "young and future by the day they become eligible, held-150 apart");

            assert_eq!(store.count_held().await.unwrap(), 1);
            store.change_job("to-hold", &Operation::Hold("review".into())).await.unwrap();
            assert_eq!(store.count_held().await.unwrap(), 2);
            let held = store.held_jobs(None, 1).await.unwrap();
            assert_eq!(held.len(), 1);
            assert_eq!((held[0].name.as_str(), held[0].hold_reason.as_str(), held[0].state), ("held-150", "legal hold", JobState::Completed));
            let after = HeldKey { created_at: held[0].created_at, id: held[0].id };
            let rest = store.held_jobs(Some(after), 10).await.unwrap();
            assert_eq!(names(rest.iter().map(|job| &job.name)), ["to-hold"], "oldest created first, after the key");
            let eligible = store.eligible_jobs(&cutoffs).await.unwrap();
            assert_eq!(eligible.completed.count, 3, "a held job is not eligible");
        });
    }
}

every_engine! {
    /// `SweepStore` and `TrailStore`: a run from its start to its end, the
    /// ids read, a batch that checks each job again (held, moved on or
    /// deleted since the read: left alone), the audit trail in every order,
    /// and its own lifecycle.
    fn a_sweep_and_its_trail(env: &TestEnv) {
        with_store(env, async |store: &dyn Store, now| {
            seed(store, now).await;
            let retentions = retentions();
            let reading = store.clock_and_skew(&retentions).await.unwrap();
            assert_eq!(reading.future_jobs, 1, "the job in the future of the clock");
            assert!((reading.now - now).abs() < TimeDelta::minutes(1), "{} against {now}", reading.now);

            let owner = ProcessIdentity::current();
            let (run_id, reading) = store.begin_run(&NewRun { trigger: "purge", owner: &owner, retentions: &retentions }).await.unwrap();
            assert_eq!(reading.future_jobs, 1);
            // An engine may hold the record uncommitted until the sweep has work.
            store.commit_run_start(run_id).await.unwrap();
            let running = store.run(run_id).await.unwrap().expect("the run's record");
            assert_eq!((running.status, running.trigger.as_str(), running.pid, running.finished_at), (RunStatus::Running, "purge", i64::from(owner.pid), None));
            assert_eq!(store.run(run_id + 1000).await.unwrap(), None);

            let cutoffs = policy::cutoffs(&retentions, reading.now);
            let ranges = |limit: u32, after: Option<SortKey>, through: Option<SortKey>| -> PerRule<Option<IdRange>> {
                cutoffs.map(|_, by_type| by_type.map(|_, cutoff| cutoff.map(|cutoff| IdRange { cutoff, after, through, limit })))
            };
            // Every job of the seed is an import.
            let read = store.eligible_ids(&ranges(100, None, None), cutoffs.settled).await.unwrap().map(|_, by_type| by_type.import.clone());
            assert_eq!(read.map(|_, ids| ids.ids.len()), PerPolicy { completed: 4, closed: 1, creating_idle: 2, retain_until: 0 });
            assert_eq!(read.completed.last.map(|key| key.timestamp), Some(now - DAY * 100), "the key of the last");
            let one = store.eligible_ids(&ranges(1, None, None), cutoffs.settled).await.unwrap().completed.import;
            assert_eq!(one.ids, read.completed.ids[..1]);
            let next = store.eligible_ids(&ranges(1, one.last, None), cutoffs.settled).await.unwrap().completed.import;
            assert_eq!(next.ids, read.completed.ids[1..2], "resumes after the key");
            let capped = store.eligible_ids(&ranges(100, None, next.last), cutoffs.settled).await.unwrap().completed.import;
            assert_eq!(capped.ids, read.completed.ids[..2], "up to the capped set's last job");

            // Changed since the read: held, moved on, deleted by hand.
            store.change_job("to-hold", &Operation::Hold("legal".into())).await.unwrap();
            store.change_job("to-ship", &Operation::SetState(JobState::Shipping)).await.unwrap();
            let by_hand = store.delete_job("by-hand", "ops@host").await.unwrap();
            let ids: Vec<i64> = [&read.completed.ids, &read.closed.ids, &read.creating_idle.ids].into_iter().flatten().copied().collect();
            let batch = Batch { run_id, cutoffs: &cutoffs, ids: &ids, deleted_by: "contract@host" };
            let deleted = store.delete_eligible(&batch).await.unwrap().jobs.decode().unwrap();
            assert_eq!(sorted_names(deleted.iter().map(|job| &job.name)), ["closed-100", "done-100", "done-200", "idle-30"]);
            assert!(deleted.windows(2).all(|pair| pair[0].key.job_id < pair[1].key.job_id), "in id order: {deleted:?}");
            for job in &deleted {
                let expected = match job.name.as_str() {
                    "closed-100" => Policy::Closed,
                    "idle-30" => Policy::CreatingIdle,
                    _ => Policy::Completed,
                };
                assert_eq!(job.policy, expected, "{job:?}");
                assert!((job.deleted_at - reading.now).abs() < TimeDelta::minutes(1), "{job:?}");
            }
            assert!(store.job("done-200").await.unwrap().is_none());
            assert_eq!(store.job("to-hold").await.unwrap().and_then(|job| job.hold_reason).as_deref(), Some("legal"));
            assert_eq!(store.job("to-ship").await.unwrap().map(|job| job.state), Some(JobState::Shipping));
            assert!(store.delete_eligible(&batch).await.unwrap().jobs.is_empty(), "each job is deleted once");

            let trail = store.audit(&AuditSearch::All { before: i64::MAX }, None).await.unwrap();
            assert_eq!(trail.len(), 5, "four by the run, one by hand");
            assert!(trail.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
            let of_run = store.audit(&AuditSearch::Run { run_id, before: i64::MAX }, None).await.unwrap();
            assert_eq!(sorted_names(of_run.iter().map(|entry| &entry.job_name)), ["closed-100", "done-100", "done-200", "idle-30"]);
            assert!(of_run.iter().all(|entry| entry.run_id == Some(run_id) && entry.deleted_by == "contract@host"));
            let of_name = store.audit(&AuditSearch::Name { name: "by-hand".into(), run_id: None, before: i64::MAX }, None).await.unwrap();
            assert_eq!(of_name, vec![by_hand]);
            let of_both = store.audit(&AuditSearch::Name { name: "by-hand".into(), run_id: Some(run_id), before: i64::MAX }, None).await.unwrap();
            assert!(of_both.is_empty(), "by-hand was not deleted by the run");
            assert_eq!(store.audit(&AuditSearch::All { before: i64::MAX }, Some(2)).await.unwrap(), trail[..2]);
            assert_eq!(store.audit(&AuditSearch::All { before: trail[1].id }, None).await.unwrap(), trail[2..]);
            let prefix = AuditSearch::NameRange { until: "done.".into(), after_name: "done-".into(), after_id: i64::MIN };
            let by_prefix = store.audit(&prefix, None).await.unwrap();
            assert_eq!(names(by_prefix.iter().map(|entry| &entry.job_name)), ["done-100", "done-200"], "in name order");

            let (first, last) = (trail[4].id, trail[0].id);
            assert_eq!(store.audit_id_range(&AuditWindow::default()).await.unwrap(), Some((first, last)));
            let later = AuditWindow { since: Some(now + DAY), until: None };
            assert_eq!(store.audit_id_range(&later).await.unwrap(), None);
            let oldest_first: Vec<_> = trail.iter().rev().cloned().collect();
            assert_eq!(store.audit_page(first - 1, last, 2).await.unwrap(), oldest_first[..2]);
            assert_eq!(store.audit_page(oldest_first[1].id, last, 100).await.unwrap(), oldest_first[2..]);

            let counts = PerPolicy { completed: 2, closed: 1, creating_idle: 1, retain_until: 0 };
            let paused = Pauses { pauses: 2, paused_ms: 3400 };
            let outcome = RunOutcome { status: RunStatus::Succeeded, counts, stopped_by: Some("done".into()), error: None, removed: Removed::default(), paused };
            store.finish_run(run_id, &outcome).await.unwrap();
            let finished = store.run(run_id).await.unwrap().expect("the run's record");
            assert_eq!(finished.paused, paused, "the run's pauses for its replicas");
            // The test's database server streams to no standby.
            assert_eq!(store.replica_lags().await, vec![], "no replicas");
            assert_eq!((finished.status, finished.counts, finished.total, finished.stopped_by.as_deref()), (RunStatus::Succeeded, counts, 4, Some("done")));
            assert!(finished.finished_at.is_some_and(|at| at >= finished.started_at), "{finished:?}");
            assert_eq!(store.runs(i64::MAX, None).await.unwrap(), vec![finished.clone()]);
            assert!(store.runs(run_id, None).await.unwrap().is_empty(), "only runs below the id");

            let start = TrailKey { at: start_of_time(), id: i64::MIN };
            let past = now + DAY;
            let runs = RunRemoval { spent_cutoff: past, empty_cutoff: past, after_spent: start, after_empty: TrailKey { at: past, id: i64::MAX } };
            assert!(store.remove_run_records(&runs, 10).await.unwrap().is_empty(), "audit rows name the run");
            let removed = store.remove_audit_rows(&AuditRemoval { cutoff: past, after: start }, 2).await.unwrap();
            assert_eq!(removed.len(), 2);
            let after = removed.iter().max().copied().expect("a key");
            let rest = store.remove_audit_rows(&AuditRemoval { cutoff: past, after }, 100).await.unwrap();
            assert_eq!(rest.len(), 3, "the rest, after the last key");
            assert!(store.audit(&AuditSearch::All { before: i64::MAX }, None).await.unwrap().is_empty());
            let removed = store.remove_run_records(&runs, 10).await.unwrap();
            assert_eq!(removed.iter().map(|key| key.id).collect::<Vec<_>>(), [run_id]);
            assert_eq!(store.run(run_id).await.unwrap(), None);
        });
    }
}

every_engine! {
    /// A sweep's start: its first read finds what `eligible_ids` finds under
    /// `policy::cutoffs` at the clock it read, whatever the retentions (whole
    /// days, a fraction of a microsecond, centuries, more than the years
    /// since year 1; PostgreSQL computes those cut-offs in its statement),
    /// and a sweep's start records a run only when it found nothing, begun
    /// and finished at once.
    fn a_sweeps_first_read_and_an_idle_run(env: &TestEnv) {
        with_store(env, async |store: &dyn Store, now| {
            seed(store, now).await;
            let mut odd = retentions();
            odd.rules.completed.import = Some(Duration::from_secs(99 * 86_400) + Duration::from_nanos(1_500));
            odd.rules.closed.import = Some(Duration::from_secs(300 * 365 * 86_400));
            odd.rules.creating_idle.export = Some(Duration::from_secs(3_000 * 365 * 86_400));
            odd.rules.retain_until.export = None;
            odd.minimum = Duration::from_nanos(1);
            for (retentions, found) in [(retentions(), 7), (odd, 6)] {
                let first = store.clock_and_first_ids(&retentions, 100).await.unwrap();
                assert!((first.clock.now - now).abs() < TimeDelta::minutes(1), "{} against {now}", first.clock.now);
                assert_eq!(first.clock.future_jobs, 1, "the job in the future of the clock");
                let cutoffs = policy::cutoffs(&retentions, first.clock.now);
                let again = store.eligible_ids(&IdRange::first_of(&cutoffs, 100), cutoffs.settled).await.unwrap();
                assert_eq!(first.ids, again, "{retentions:?}");
                let ids = first.ids.map(|_, by_type| (by_type.import.ids.len() + by_type.export.ids.len()) as u64);
                assert_eq!(ids.total(), found, "{ids:?}");
            }

            // A start with ids records no run; one without records its run, finished.
            let owner = ProcessIdentity::current();
            let run = NewRun { trigger: "schedule", owner: &owner, retentions: &retentions() };
            let (first, idle_run) = store.start_sweep(&run, 100).await.unwrap();
            assert_eq!((first.found_none(), idle_run), (false, None));
            assert_eq!(store.runs(i64::MAX, None).await.unwrap(), vec![], "no run recorded");
            let mut later = retentions();
            later.rules = later.rules.map(|_, by_type| by_type.map(|_, _| Some(Duration::from_secs(1_000 * 86_400))));
            let run = NewRun { trigger: "schedule", owner: &owner, retentions: &later };
            let (first, idle_run) = store.start_sweep(&run, 100).await.unwrap();
            assert!(first.found_none(), "{first:?}");
            let started = first.clock.now;
            let idle = store.run(idle_run.expect("an idle run")).await.unwrap().expect("the idle run's record");
            let outcome = (idle.status, idle.trigger.as_str(), idle.total, idle.stopped_by.as_deref(), idle.started_at);
            assert_eq!(outcome, (RunStatus::Succeeded, "schedule", 0, Some("done"), started));
            assert!(idle.finished_at.is_some_and(|at| at >= started), "{idle:?}");
        });
    }
}

every_engine! {
    /// A start records an idle run only when no rule has a job due at its
    /// clock, a cut-off at year 1 and one a fraction of a microsecond past
    /// a job's included; a job in the future or a run in progress does not
    /// keep the run from being recorded.
    fn an_idle_start_is_recorded_only_when_nothing_is_due(env: &TestEnv) {
        with_store(env, async |store: &dyn Store, now| {
            let mut ancient = job("ancient", JobState::Completed, 0, now);
            (ancient.job_type, ancient.state_changed_at) = (JobType::Export, start_of_time());
            let mut until = job("until", JobState::Completed, 0, now);
            (until.retain_until, until.state_changed_at) = (Some(now - DAY * 5), now - TimeDelta::hours(3));
            let jobs = [job("done-100", JobState::Completed, 100, now), job("closed-50", JobState::Closed, 50, now)];
            store.create_jobs(&[jobs.as_slice(), &[ancient, until]].concat()).await.unwrap();

            let mut quiet = retentions();
            quiet.rules = quiet.rules.map(|_, by_type| by_type.map(|_, _| Some(Duration::from_secs(1_000 * 86_400))));
            (quiet.rules.completed.export, quiet.rules.creating_idle.import) = (None, None);
            quiet.rules.retain_until = PerType { import: Some(Duration::ZERO), export: Some(Duration::ZERO) };
            let mut year_one = quiet;
            year_one.rules.completed.export = Some(Duration::from_secs(3_000 * 365 * 86_400));
            let mut settled = quiet;
            settled.minimum = Duration::from_secs(3_600);
            let mut fraction = quiet;
            fraction.rules.completed.import = Some(Duration::from_secs(100 * 86_400) + Duration::from_nanos(1_500));

            let owner = ProcessIdentity::current();
            let due = [
                (&year_one, (Policy::Completed, JobType::Export)),
                (&settled, (Policy::RetainUntil, JobType::Import)),
                (&fraction, (Policy::Completed, JobType::Import)),
            ];
            for (retentions, rule) in due {
                let run = NewRun { trigger: "schedule", owner: &owner, retentions };
                let (first, idle_run) = store.start_sweep(&run, 100).await.unwrap();
                let found: Vec<_> = policy::RULES
                    .into_iter()
                    .flat_map(|(policy, job_type)| first.ids[policy][job_type].ids.iter().map(move |_| (policy, job_type)))
                    .collect();
                assert_eq!((found, idle_run), (vec![rule], None), "{retentions:?}");
            }
            assert_eq!(store.runs(i64::MAX, None).await.unwrap(), vec![], "no run recorded");

            let run = NewRun { trigger: "schedule", owner: &owner, retentions: &quiet };
            let (in_progress, _) = store.begin_run(&run).await.unwrap();
            store.commit_run_start(in_progress).await.unwrap();
            store.create_jobs(&[job("future", JobState::Completed, -2, now)]).await.unwrap();
            let (first, idle_run) = store.start_sweep(&run, 100).await.unwrap();
            assert!(first.found_none(), "{first:?}");
            assert_eq!(first.clock.future_jobs, 1, "the job in the future of the clock");
            let idle = store.run(idle_run.expect("an idle run")).await.unwrap().expect("the idle run's record");
            assert_eq!((idle.status, idle.started_at), (RunStatus::Succeeded, first.clock.now));
            // SQLite's runs are live while the process that recorded them
            // is, unless it is this one: it sweeps once at a time.
            let status = if env.engine == Engine::Sqlite { RunStatus::Abandoned } else { RunStatus::Running };
            let running = store.run(in_progress).await.unwrap().expect("the run in progress");
            assert_eq!(running.status, status, "the run begun before");
            let outcome = RunOutcome {
                status: RunStatus::Succeeded,
                counts: PerPolicy::default(),
                stopped_by: Some("done".into()),
                error: None,
                removed: Removed::default(),
                paused: Pauses::default(),
            };
            store.finish_run(in_progress, &outcome).await.unwrap();
            store.delete_job("future", "test").await.unwrap();
            let (first, idle_run) = store.start_sweep(&run, 100).await.unwrap();
            assert_eq!((first.found_none(), first.clock.future_jobs), (true, 0), "{first:?}");
            let idle = store.run(idle_run.expect("an idle run")).await.unwrap().expect("the idle run's record");
            let outcome = (idle.status, idle.total, idle.stopped_by.as_deref(), idle.started_at);
            assert_eq!(outcome, (RunStatus::Succeeded, 0, Some("done"), first.clock.now));
            assert!(idle.finished_at.is_some_and(|at| at >= first.clock.now), "{idle:?}");
        });
    }
}

every_engine! {
    /// `AdminStore` and what the traits leave to each engine: the lead of
    /// `schedule.singleton` between two stores, the pause between batches,
    /// the commit counter, the upkeep between batches.
    fn administration_and_what_each_engine_does(env: &TestEnv) {
        let particular = particular(env.engine);
        let exclusive_lead = env.has(Capability::LeaseBetweenProcesses);
        with_store(env, async |store: &dyn Store, now| {
            store.migrate().await.expect("migrating again changes nothing");
            assert!((store.now().await.unwrap() - Utc::now()).abs() < TimeDelta::minutes(1));
            assert!(store.read_only().await.unwrap().is_none(), "the test's database takes writes");
            assert!(!store.reload_credentials().await.unwrap(), "no credential file is configured");

            let other = open(env).await;
            assert!(store.try_lead().await.unwrap());
            assert_eq!(other.try_lead().await.unwrap(), !exclusive_lead, "the other store while one leads");
            store.end_lead().await;
            assert!(other.try_lead().await.unwrap(), "the lead, once released");
            other.end_lead().await;

            assert_eq!(store.pause_between_batches() > Duration::ZERO, particular.pauses_between_batches);
            let before = store.commit_counter().await.unwrap();
            other.create_jobs(&[job("other", JobState::Creating, 0, now)]).await.unwrap();
            let after = store.commit_counter().await.unwrap();
            match (before, after) {
                (Some(before), Some(after)) => assert!(particular.counts_commits && after != before, "{before} then {after}"),
                (None, None) => assert!(!particular.counts_commits),
                other => panic!("the counter came and went: {other:?}"),
            }
            other.close().await;

            seed(store, now).await;
            store.after_batch().await.unwrap();
            let mut steps = 0;
            while store.release_space().await.unwrap() > 0 {
                steps += 1;
                assert!(steps < 10_000, "release_space never finishes");
            }
            assert_eq!(store.job("other").await.unwrap().map(|job| job.name).as_deref(), Some("other"));
        });
    }
}

every_engine! {
    /// docs/lifecycle.md: the `retain_until` rule is checked again by the
    /// deleting statement: of two finished jobs whose `retain_until` had
    /// passed when their ids were read, the one whose `retain_until` moved
    /// into the future since is kept, the other is deleted under the policy
    /// `retain_until`.
    fn a_retain_until_moved_into_the_future_after_the_read_is_kept(env: &TestEnv) {
        with_store(env, async |store: &dyn Store, now| {
            let retained = |name: &str| Job { retain_until: Some(now - DAY), ..job(name, JobState::Completed, 2, now) };
            store.create_jobs(&[retained("moved"), retained("due")]).await.unwrap();
            let retentions = retentions();
            let owner = ProcessIdentity::current();
            let (run_id, reading) = store.begin_run(&NewRun { trigger: "purge", owner: &owner, retentions: &retentions }).await.unwrap();
            let cutoffs = policy::cutoffs(&retentions, reading.now);
            let mut ranges = PerRule::<Option<IdRange>>::default();
            let cutoff = cutoffs.retain_until.import.expect("the retain_until rule is on");
            ranges.retain_until.import = Some(IdRange { cutoff, after: None, through: None, limit: 10 });
            let read = store.eligible_ids(&ranges, cutoffs.settled).await.unwrap().retain_until.import;
            assert_eq!(read.ids.len(), 2, "both due: {read:?}");

            store.change_job("moved", &Operation::Retain(Some(now + DAY * 365))).await.unwrap();
            let batch = Batch { run_id, cutoffs: &cutoffs, ids: &read.ids, deleted_by: "contract@host" };
            let deleted = store.delete_eligible(&batch).await.unwrap().jobs.decode().unwrap();
            assert_eq!(deleted.iter().map(|job| (job.name.as_str(), job.policy)).collect::<Vec<_>>(), [("due", Policy::RetainUntil)]);
            assert!(store.job("moved").await.unwrap().is_some(), "moved into the future: kept");
            let audit = store.audit(&AuditSearch::newest(Some("due".into()), None), None).await.unwrap();
            assert_eq!(audit.iter().map(|row| row.policy.as_str()).collect::<Vec<_>>(), ["retain_until"]);
        });
    }
}
