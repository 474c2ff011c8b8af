//! Model-based tests (docs/lifecycle.md and docs/design.md, "Retention policies"): random sequences of create, import,
//! set-state, cancel, hold, release, delete, purge and dry run, run against
//! each store and against a plain in-memory model of the job lifecycle and the
//! retention policies written here from the specification. After every step
//! the store must equal the model: every job with every field, every audit
//! row (one per deleted job, with the right policy) and the run records.
//!
//! Time: the store takes "now" from the database clock. Ages come from
//! imports with explicit timestamps in the past (or, for clock skew, the
//! future) and from `purge --dry-run --as-of TIME`, which evaluates the rules
//! at an exact moment (ties included: a job exactly as old as the retention
//! is eligible). Timestamps the store sets itself (a state change happens
//! "now") are not predicted: the model checks that they lie between the
//! database clock before and after the step, then adopts the stored value.
//!
//! Two drivers run the same sequences: the library in-process (fast: many
//! sequences) and the real binary through the CLI (`--output json` and exit
//! codes; fewer sequences).

#[macro_use]
mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use common::*;

// ---------------------------------------------------------------------------
// The specification, as a model
// ---------------------------------------------------------------------------

/// Job states (docs/lifecycle.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum St {
    Creating,
    Shipping,
    Received,
    Transferring,
    Packaging,
    Completed,
    Closed,
}

impl St {
    const ALL: [St; 7] =
        [St::Creating, St::Shipping, St::Received, St::Transferring, St::Packaging, St::Completed, St::Closed];

    fn name(self) -> &'static str {
        match self {
            St::Creating => "Creating",
            St::Shipping => "Shipping",
            St::Received => "Received",
            St::Transferring => "Transferring",
            St::Packaging => "Packaging",
            St::Completed => "Completed",
            St::Closed => "Closed",
        }
    }

    /// The transition table of docs/lifecycle.md (`Received → Packaging` additionally
    /// needs a cancellation, see [`St::may_move`]).
    fn listed_successors(self) -> &'static [St] {
        match self {
            St::Creating => &[St::Shipping],
            St::Shipping => &[St::Received, St::Closed],
            St::Received => &[St::Transferring, St::Packaging],
            St::Transferring => &[St::Packaging],
            St::Packaging => &[St::Completed, St::Closed],
            St::Completed | St::Closed => &[],
        }
    }

    fn may_move(self, to: St, cancel_requested: bool) -> bool {
        self.listed_successors().contains(&to) && ((self, to) != (St::Received, St::Packaging) || cancel_requested)
    }

    fn cancellable(self) -> bool {
        matches!(self, St::Creating | St::Shipping | St::Received | St::Transferring)
    }

    fn deletable(self) -> bool {
        matches!(self, St::Creating | St::Completed)
    }

    fn parse(text: &str) -> St {
        St::ALL.into_iter().find(|s| s.name() == text).unwrap_or_else(|| panic!("unknown state {text}"))
    }
}

/// Retention policies (docs/design.md, "Retention policies").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Pol {
    Completed,
    Closed,
    CreatingIdle,
}

impl Pol {
    const ALL: [Pol; 3] = [Pol::Completed, Pol::Closed, Pol::CreatingIdle];

    fn name(self) -> &'static str {
        match self {
            Pol::Completed => "completed",
            Pol::Closed => "closed",
            Pol::CreatingIdle => "creating_idle",
        }
    }

    fn covering(state: St) -> Option<Pol> {
        match state {
            St::Completed => Some(Pol::Completed),
            St::Closed => Some(Pol::Closed),
            St::Creating => Some(Pol::CreatingIdle),
            _ => None,
        }
    }

    /// Finished jobs age from when they entered their state, idle ones from their last change.
    fn age(self, job: &MJob) -> DateTime<Utc> {
        match self {
            Pol::Completed | Pol::Closed => job.state_changed_at,
            Pol::CreatingIdle => job.updated_at,
        }
    }
}

/// A retention setting of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ret {
    Off,
    Ms1,
    H1,
    D1,
    D30,
    D90,
}

impl Ret {
    fn text(self) -> &'static str {
        match self {
            Ret::Off => "off",
            Ret::Ms1 => "1ms",
            Ret::H1 => "1h",
            Ret::D1 => "1d",
            Ret::D30 => "30d",
            Ret::D90 => "90d",
        }
    }

    fn delta(self) -> Option<TimeDelta> {
        match self {
            Ret::Off => None,
            Ret::Ms1 => Some(TimeDelta::milliseconds(1)),
            Ret::H1 => Some(TimeDelta::hours(1)),
            Ret::D1 => Some(TimeDelta::days(1)),
            Ret::D30 => Some(TimeDelta::days(30)),
            Ret::D90 => Some(TimeDelta::days(90)),
        }
    }

    fn std(self) -> Option<Duration> {
        self.delta().map(|d| d.to_std().expect("positive"))
    }
}

#[derive(Debug, Clone, Copy)]
struct Rets {
    completed: Ret,
    closed: Ret,
    creating_idle: Ret,
}

impl Rets {
    fn of(&self, policy: Pol) -> Ret {
        match policy {
            Pol::Completed => self.completed,
            Pol::Closed => self.closed,
            Pol::CreatingIdle => self.creating_idle,
        }
    }
}

/// A job as the model holds it.
#[derive(Debug, Clone)]
struct MJob {
    /// Creation order: the store lists jobs in this order and breaks age ties by it.
    seq: u64,
    name: String,
    job_type: &'static str,
    state: St,
    cancel_requested: bool,
    cancel_requested_at: Option<DateTime<Utc>>,
    hold: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    state_changed_at: DateTime<Utc>,
    /// `{"drive_id","state","bytes"}`, sorted by drive id.
    drives: Vec<Value>,
}

impl MJob {
    /// The policy that would delete this job, its age timestamp, and when
    /// it became eligible (age plus retention: a cap takes the earliest), when
    /// eligible at `at` under `rets`.
    fn eligible_at(&self, rets: &Rets, at: DateTime<Utc>) -> Option<(Pol, DateTime<Utc>, DateTime<Utc>)> {
        let policy = self.policy(rets)?;
        let age = policy.age(self);
        let retention = rets.of(policy).delta()?;
        (age <= at - retention).then_some((policy, age, age + retention))
    }

    /// The enabled policy covering this job, unless it is held.
    fn policy(&self, rets: &Rets) -> Option<Pol> {
        if self.hold.is_some() {
            return None;
        }
        Pol::covering(self.state).filter(|policy| rets.of(*policy) != Ret::Off)
    }
}

/// A job a sweep takes, in the order a cap takes them: when it became
/// eligible, its sequence number, its policy, its age timestamp.
type Taken = (DateTime<Utc>, u64, Pol, DateTime<Utc>);

/// An audit row as the model expects it.
#[derive(Debug, Clone)]
struct MAudit {
    job_name: String,
    job_type: &'static str,
    policy: &'static str,
    state: St,
    cancel_requested: bool,
    created_at: DateTime<Utc>,
    state_changed_at: DateTime<Utc>,
    run_id: Option<i64>,
    /// `None` until the step that wrote it has been checked (the store sets it).
    deleted_at: Option<DateTime<Utc>>,
}

impl MAudit {
    fn of(job: &MJob, policy: &'static str, run_id: Option<i64>) -> MAudit {
        MAudit {
            job_name: job.name.clone(),
            job_type: job.job_type,
            policy,
            state: job.state,
            cancel_requested: job.cancel_requested,
            created_at: job.created_at,
            state_changed_at: job.state_changed_at,
            run_id,
            deleted_at: None,
        }
    }

    fn key(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {:?}",
            self.job_name,
            self.job_type,
            self.policy,
            self.state.name(),
            self.cancel_requested,
            ts(self.created_at),
            ts(self.state_changed_at),
            self.run_id
        )
    }
}

/// Which timestamps of a job the store sets to "now" in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Created,
    Updated,
    StateChanged,
    CancelRequested,
}

#[derive(Debug, Default)]
struct Model {
    jobs: Vec<MJob>,
    audit: Vec<MAudit>,
    runs: usize,
    next_seq: u64,
    /// Set by a step: this job's listed fields now hold the database's "now".
    touched: Option<(String, Vec<Field>)>,
}

impl Model {
    fn find(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|job| job.name == name)
    }

    fn add(&mut self, mut job: MJob) {
        job.seq = self.next_seq;
        self.next_seq += 1;
        self.jobs.push(job);
    }

    fn touch(&mut self, name: &str, fields: &[Field]) {
        self.touched = Some((name.to_string(), fields.to_vec()));
    }
}

/// Job names of docs/lifecycle.md, checked independently of the code under test.
fn valid_name(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Hold reasons: not blank, at most 500 characters, no control characters nor bidirectional controls.
fn valid_reason(reason: &str) -> bool {
    let bidi_control =
        |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    !reason.trim().is_empty()
        && reason.chars().count() <= 500
        && !reason.chars().any(|c| c.is_control() || bidi_control(c))
}

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

/// Names the steps use: a few valid ones (so names collide and are reused
/// after a delete) and one hostile invalid one.
const NAMES: [&str; 7] = ["job-a", "job-b", "job-c", "job-d", "job-e", "7_up-job", "'; DROP TABLE jobs; --"];
const VALID_NAMES: [&str; 10] =
    ["job-a", "job-b", "job-c", "job-d", "job-e", "7_up-job", "job-g", "job-h", "job-i", "Job-A"];

/// The job a step works on.
#[derive(Clone)]
enum Who {
    /// The `i`-th job the model holds (a name from the pool when there is none).
    Existing(usize),
    /// A name, which may or may not exist (or be valid).
    Named(&'static str),
}

impl fmt::Debug for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Existing(i) => write!(f, "Existing({i})"),
            Who::Named(name) => write!(f, "{name:?}"),
        }
    }
}
const REASONS: [&str; 5] = ["legal hold", "x'; DELETE FROM jobs; --", "ünïcødé ✓ reason", "", "tab\tinside"];

#[derive(Clone)]
enum Target {
    /// The `i`-th successor in the transition table (a random state if there is none).
    Next(usize),
    /// A state, allowed or not.
    To(St),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Next(i) => write!(f, "Next({i})"),
            Target::To(state) => write!(f, "{}", state.name()),
        }
    }
}

/// One line of an import.
#[derive(Debug, Clone)]
struct Line {
    name: &'static str,
    export: bool,
    state: St,
    cancel: bool,
    hold: bool,
    /// created_at = start of the sequence − this (negative: in the future).
    created_ago: TimeDelta,
    /// state_changed_at = created_at + this.
    changed_after: TimeDelta,
    /// updated_at = created_at + this.
    updated_after: TimeDelta,
    drives: u8,
    blank_before: bool,
}

/// A line every import must refuse (exit 65, naming it).
#[derive(Debug, Clone, Copy)]
enum Bad {
    NotJson,
    UnknownState,
    InjectionName,
    NulName,
    CancelAtWithoutCancel,
    Before1970,
    UpdatedBeforeCreated,
    UnknownField,
}

impl Bad {
    fn text(self) -> String {
        let base = json!({"name": "bad-line", "job_type": "Import", "state": "Completed", "created_at": "2020-01-01T00:00:00Z"});
        let with = |key: &str, value: Value| {
            let mut v = base.clone();
            v[key] = value;
            v.to_string()
        };
        match self {
            Bad::NotJson => "{\"name\": \"bad-line\", ".to_string(),
            Bad::UnknownState => with("state", json!("Finished")),
            Bad::InjectionName => with("name", json!("x'); DROP TABLE jobs; --")),
            Bad::NulName => with("name", json!("ab\u{0}cd")),
            Bad::CancelAtWithoutCancel => with("cancel_requested_at", json!("2020-01-02T00:00:00Z")),
            Bad::Before1970 => with("created_at", json!("1969-12-31T23:59:59.999999Z")),
            Bad::UpdatedBeforeCreated => with("updated_at", json!("2019-12-31T23:59:59Z")),
            Bad::UnknownField => with("colour", json!("red")),
        }
    }
}

/// Where a dry run evaluates the rules.
#[derive(Debug, Clone)]
enum AsOf {
    /// The moment a job becomes eligible under its policy, plus `delta_ns`
    /// (so 0 is the exact tie, ±1 ns / ±500 ns / ±1 µs the neighbours).
    Job { pick: usize, delta_ns: i64 },
    /// The start of the sequence plus some days.
    Start { days: i64 },
}

#[derive(Debug, Clone)]
enum Step {
    Create { name: &'static str, export: bool, drives: u8 },
    Import { lines: Vec<Line>, bad: Option<(usize, Bad)> },
    SetState { who: Who, to: Target },
    Cancel { who: Who },
    Hold { who: Who, reason: &'static str },
    Release { who: Who },
    Delete { who: Who },
    Purge { rets: Rets, batch_size: u32, max_deletes: u64 },
    DryRun { rets: Rets, as_of: AsOf, max_deletes: u64 },
}

fn state() -> impl Strategy<Value = St> {
    prop::sample::select(St::ALL.to_vec())
}

/// Imported states: mostly those a policy covers.
fn imported_state() -> impl Strategy<Value = St> {
    prop_oneof![
        3 => Just(St::Completed),
        2 => Just(St::Closed),
        2 => Just(St::Creating),
        2 => state(),
    ]
}

fn ret() -> impl Strategy<Value = Ret> {
    prop_oneof![
        1 => Just(Ret::Off),
        1 => Just(Ret::Ms1),
        1 => Just(Ret::H1),
        2 => Just(Ret::D1),
        2 => Just(Ret::D30),
        2 => Just(Ret::D90),
    ]
}

fn rets() -> impl Strategy<Value = Rets> {
    (ret(), ret(), ret()).prop_map(|(completed, closed, creating_idle)| Rets { completed, closed, creating_idle })
}

/// Offsets on whole minutes (plus a few microseconds), so that a real purge
/// never has to decide a job within the few seconds a sequence runs.
fn ago() -> impl Strategy<Value = TimeDelta> {
    let coarse = prop::sample::select(vec![
        TimeDelta::days(-2),
        TimeDelta::days(2),
        TimeDelta::days(35),
        TimeDelta::days(95),
        TimeDelta::days(200),
        TimeDelta::hours(-1),
        TimeDelta::zero(),
        TimeDelta::minutes(30),
        TimeDelta::hours(1),
        TimeDelta::days(1),
        TimeDelta::days(2),
        TimeDelta::days(30),
        TimeDelta::days(31),
        TimeDelta::days(90),
        TimeDelta::days(91),
        TimeDelta::days(400),
        // Before 2000 (1971 or so): timestamps on the other side of PostgreSQL's epoch.
        TimeDelta::days(20_000),
    ]);
    let fine = prop::sample::select(vec![0i64, 0, 1, 123_456, 999_999]);
    (coarse, fine).prop_map(|(coarse, fine)| coarse + TimeDelta::microseconds(fine))
}

fn gap() -> impl Strategy<Value = TimeDelta> {
    prop::sample::select(vec![
        TimeDelta::zero(),
        TimeDelta::zero(),
        TimeDelta::microseconds(1),
        TimeDelta::hours(1),
        TimeDelta::days(1),
        TimeDelta::days(29),
        TimeDelta::days(30),
        TimeDelta::days(60),
    ])
}

fn line() -> impl Strategy<Value = Line> {
    (
        prop::sample::select(VALID_NAMES.to_vec()),
        any::<bool>(),
        imported_state(),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.2),
        ago(),
        gap(),
        gap(),
        0u8..3,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(name, export, state, cancel, hold, created_ago, changed_after, updated_after, drives, blank_before)| {
                Line {
                    name,
                    export,
                    state,
                    cancel,
                    hold,
                    created_ago,
                    changed_after,
                    updated_after,
                    drives,
                    blank_before,
                }
            },
        )
}

fn bad() -> impl Strategy<Value = Bad> {
    prop::sample::select(vec![
        Bad::NotJson,
        Bad::UnknownState,
        Bad::InjectionName,
        Bad::NulName,
        Bad::CancelAtWithoutCancel,
        Bad::Before1970,
        Bad::UpdatedBeforeCreated,
        Bad::UnknownField,
    ])
}

fn step() -> impl Strategy<Value = Step> {
    let name = || prop::sample::select(NAMES.to_vec());
    let who = || prop_oneof![4 => (0usize..16).prop_map(Who::Existing), 1 => name().prop_map(Who::Named)];
    let target = prop_oneof![4 => (0usize..4).prop_map(Target::Next), 1 => state().prop_map(Target::To)];
    let as_of = prop_oneof![
        3 => (any::<usize>(), prop::sample::select(vec![-1_000i64, -500, -1, 0, 0, 1, 500, 1_000]))
            .prop_map(|(pick, delta_ns)| AsOf::Job { pick, delta_ns }),
        1 => (-40i64..400).prop_map(|days| AsOf::Start { days }),
    ];
    let max_deletes = prop_oneof![1 => Just(0u64), 2 => 1u64..3];
    prop_oneof![
        3 => (name(), any::<bool>(), 0u8..3).prop_map(|(name, export, drives)| Step::Create { name, export, drives }),
        4 => (
            prop::sample::subsequence(VALID_NAMES.to_vec(), 0..5).prop_shuffle(),
            prop::collection::vec(line(), 5),
            prop::option::weighted(0.1, (any::<usize>(), any::<usize>())),
            prop::option::weighted(0.15, (any::<usize>(), bad())),
        )
            .prop_map(|(names, lines, duplicate, bad)| {
                // Distinct names, but now and then one line repeats an earlier one.
                let mut lines: Vec<Line> =
                    names.iter().zip(lines).map(|(name, line)| Line { name, ..line }).collect();
                if let Some((from, to)) = duplicate
                    && lines.len() > 1
                {
                    let (from, to) = (from % lines.len(), to % lines.len());
                    lines[to].name = lines[from].name;
                }
                let bad = bad.map(|(at, kind)| (at % (lines.len() + 1), kind));
                Step::Import { lines, bad }
            }),
        8 => (who(), target).prop_map(|(who, to)| Step::SetState { who, to }),
        2 => who().prop_map(|who| Step::Cancel { who }),
        2 => (who(), prop::sample::select(REASONS.to_vec())).prop_map(|(who, reason)| Step::Hold { who, reason }),
        2 => who().prop_map(|who| Step::Release { who }),
        3 => who().prop_map(|who| Step::Delete { who }),
        3 => (rets(), prop::sample::select(vec![1u32, 2, 3, 1000]), max_deletes.clone())
            .prop_map(|(rets, batch_size, max_deletes)| Step::Purge { rets, batch_size, max_deletes }),
        3 => (rets(), as_of, max_deletes).prop_map(|(rets, as_of, max_deletes)| Step::DryRun { rets, as_of, max_deletes }),
    ]
}

// ---------------------------------------------------------------------------
// Drivers: the library in-process, or the binary
// ---------------------------------------------------------------------------

/// What a command ended with: its exit code, its JSON result (on success)
/// and its error message (on failure).
#[derive(Debug)]
struct Outcome {
    code: i32,
    json: Value,
    message: String,
}

struct PurgeRequest {
    rets: Rets,
    batch_size: u32,
    max_deletes: u64,
    as_of: Option<DateTime<Utc>>,
}

trait Driver {
    /// The database's clock (the CLI driver: this machine's clock, which the
    /// local database shares).
    fn now(&mut self) -> DateTime<Utc>;
    /// How far the driver's [`now`](Driver::now) may be off the store's clock.
    fn slack(&self) -> TimeDelta;
    /// Whether audit rows and runs are compared after every step (else after
    /// the steps that change them, and at the end).
    fn check_everything_every_step(&self) -> bool;
    fn create(&mut self, name: &str, job_type: &str, drives: &[String]) -> Outcome;
    fn import(&mut self, text: &str) -> Outcome;
    fn set_state(&mut self, name: &str, state: St) -> Outcome;
    fn cancel(&mut self, name: &str) -> Outcome;
    fn hold(&mut self, name: &str, reason: &str) -> Outcome;
    fn release(&mut self, name: &str) -> Outcome;
    fn delete(&mut self, name: &str) -> Outcome;
    fn purge(&mut self, request: &PurgeRequest) -> Outcome;
    fn jobs(&mut self) -> Value;
    fn audit(&mut self) -> Value;
    fn runs(&mut self) -> Value;
}

mod lib_driver {
    use super::*;
    use retentiond::config::{DatabaseSettings, DatabaseUrl};
    use retentiond::error::Error;
    use retentiond::identity::ProcessIdentity;
    use retentiond::lifecycle::{self, JobState, Operation};
    use retentiond::model::Job;
    use retentiond::policy::{PerRule, PerType, Retentions};
    use retentiond::store::{self, AuditSearch, JobFilter, Store, StoreError};
    use retentiond::sweep::{self, SweepPlan};
    use tokio_util::sync::CancellationToken;

    /// The library, in-process, doing what each command of `app.rs` does.
    pub struct Lib {
        rt: tokio::runtime::Runtime,
        store: Option<Box<dyn Store>>,
        identity: ProcessIdentity,
    }

    impl Lib {
        pub fn open(url: &str) -> Lib {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let settings = DatabaseSettings { url: DatabaseUrl::new(url.to_string()), ..DatabaseSettings::default() };
            let store = rt.block_on(store::open(&settings)).unwrap_or_else(|e| panic!("open {url}: {e}"));
            Lib { rt, store: Some(store), identity: ProcessIdentity::current() }
        }

        fn store(&self) -> &dyn Store {
            self.store.as_deref().expect("open")
        }

        fn outcome(result: Result<Value, Error>) -> Outcome {
            match result {
                Ok(json) => Outcome { code: 0, json, message: String::new() },
                Err(error) => {
                    Outcome { code: i32::from(error.exit_code()), json: Value::Null, message: error.to_string() }
                }
            }
        }

        fn change(&mut self, name: &str, operation: Operation) -> Outcome {
            let result = self.rt.block_on(self.store().change_job(name, &operation));
            Self::outcome(result.map(|job| serde_json::to_value(job).expect("job")).map_err(Error::from))
        }
    }

    impl Drop for Lib {
        fn drop(&mut self) {
            let store = self.store.take();
            self.rt.block_on(async move { drop(store) });
        }
    }

    impl Driver for Lib {
        fn now(&mut self) -> DateTime<Utc> {
            self.rt.block_on(self.store().now()).expect("now")
        }

        fn slack(&self) -> TimeDelta {
            TimeDelta::zero()
        }

        fn check_everything_every_step(&self) -> bool {
            true
        }

        fn create(&mut self, name: &str, job_type: &str, drives: &[String]) -> Outcome {
            let store = self.store();
            let result = self.rt.block_on(async {
                lifecycle::validate_name(name)?;
                lifecycle::validate_drives(drives.iter().map(|d| (d.as_str(), 0)))?;
                let job =
                    Job::new(name.to_string(), job_type.parse().expect("type"), drives.to_vec(), store.now().await?);
                store.create_jobs(std::slice::from_ref(&job)).await?;
                Ok::<_, Error>(serde_json::to_value(&job).expect("job"))
            });
            Self::outcome(result)
        }

        fn import(&mut self, text: &str) -> Outcome {
            let store = self.store();
            let result = self.rt.block_on(async {
                let imported = retentiond::import::parse(text)?;
                let jobs: Vec<Job> = imported.iter().map(|line| line.job.clone()).collect();
                match store.create_jobs(&jobs).await {
                    Err(error @ StoreError::NameTaken { index, .. }) => {
                        Err(Error::ImportConflict { line: imported[index].line, source: error })
                    }
                    Err(error) => Err(error.into()),
                    Ok(()) => Ok(json!({ "imported": jobs.len() })),
                }
            });
            Self::outcome(result)
        }

        fn set_state(&mut self, name: &str, state: St) -> Outcome {
            let state: JobState = state.name().parse().expect("state");
            self.change(name, Operation::SetState(state))
        }

        fn cancel(&mut self, name: &str) -> Outcome {
            self.change(name, Operation::Cancel)
        }

        fn hold(&mut self, name: &str, reason: &str) -> Outcome {
            if let Err(error) = lifecycle::validate_hold_reason("--reason", reason) {
                return Self::outcome(Err(error.into()));
            }
            self.change(name, Operation::Hold(reason.to_string()))
        }

        fn release(&mut self, name: &str) -> Outcome {
            self.change(name, Operation::Release)
        }

        fn delete(&mut self, name: &str) -> Outcome {
            let result = self.rt.block_on(self.store().delete_job(name, &self.identity.deleted_by()));
            Self::outcome(result.map(|entry| serde_json::to_value(entry).expect("entry")).map_err(Error::from))
        }

        fn purge(&mut self, request: &PurgeRequest) -> Outcome {
            let plan = SweepPlan {
                retentions: Retentions {
                    rules: PerRule {
                        completed: PerType::from_fn(|_| request.rets.completed.std()),
                        closed: PerType::from_fn(|_| request.rets.closed.std()),
                        creating_idle: PerType::from_fn(|_| request.rets.creating_idle.std()),
                        retain_until: PerType::from_fn(|_| Some(Duration::ZERO)),
                    },
                    minimum: Duration::from_secs(86_400),
                },
                batch_size: retentiond::batch::BatchSize::Jobs(request.batch_size),
                batch_budget: Duration::from_millis(50),
                batch_pause: Duration::ZERO,
                max_deletes: request.max_deletes,
                run_timeout: Duration::from_secs(3600),
                dry_run: request.as_of.is_some(),
                as_of: request.as_of,
                window_closes: None,
                max_replica_lag: None,
                trigger: "purge",
                trail: Default::default(),
            };
            let stop = CancellationToken::new();
            let result = self.rt.block_on(sweep::sweep(self.store(), &plan, &self.identity, &stop));
            Self::outcome(result.map(|report| serde_json::to_value(report).expect("report")).map_err(Error::from))
        }

        fn jobs(&mut self) -> Value {
            let jobs = self.rt.block_on(self.store().list_jobs(&JobFilter::default())).expect("list jobs");
            serde_json::to_value(jobs).expect("jobs")
        }

        fn audit(&mut self) -> Value {
            let entries = self.rt.block_on(self.store().audit(&AuditSearch::newest(None, None), None)).expect("audit");
            serde_json::to_value(entries).expect("audit")
        }

        fn runs(&mut self) -> Value {
            let runs = self.rt.block_on(self.store().runs(i64::MAX, None)).expect("runs");
            serde_json::to_value(runs).expect("runs")
        }
    }
}

/// The real binary, one process per command.
struct Cli<'a> {
    env: &'a TestEnv,
}

impl Cli<'_> {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.env.run_env(&all, env);
        let json = if out.code == 0 { out.json() } else { Value::Null };
        Outcome { code: out.code, json, message: out.stderr }
    }

    fn read(&self, args: &[&str]) -> Value {
        let out = self.run(args, &[]);
        assert_eq!(out.code, 0, "{args:?}: {}", out.message);
        out.json
    }
}

impl Driver for Cli<'_> {
    fn now(&mut self) -> DateTime<Utc> {
        retentiond::model::truncate(Utc::now())
    }

    fn slack(&self) -> TimeDelta {
        TimeDelta::milliseconds(50)
    }

    fn check_everything_every_step(&self) -> bool {
        false
    }

    fn create(&mut self, name: &str, job_type: &str, drives: &[String]) -> Outcome {
        let mut args = vec!["jobs", "create", name, "--type", job_type];
        for drive in drives {
            args.extend(["--drive", drive.as_str()]);
        }
        self.run(&args, &[])
    }

    fn import(&mut self, text: &str) -> Outcome {
        let path = self.env.write_file("import.jsonl", text);
        self.run(&["jobs", "import", path_str(&path)], &[])
    }

    fn set_state(&mut self, name: &str, state: St) -> Outcome {
        self.run(&["jobs", "set-state", name, state.name()], &[])
    }

    fn cancel(&mut self, name: &str) -> Outcome {
        self.run(&["jobs", "cancel", name], &[])
    }

    fn hold(&mut self, name: &str, reason: &str) -> Outcome {
        self.run(&["jobs", "hold", name, "--reason", reason], &[])
    }

    fn release(&mut self, name: &str) -> Outcome {
        self.run(&["jobs", "release", name], &[])
    }

    fn delete(&mut self, name: &str) -> Outcome {
        self.run(&["jobs", "delete", name], &[])
    }

    fn purge(&mut self, request: &PurgeRequest) -> Outcome {
        let batch_size = request.batch_size.to_string();
        let max_deletes = request.max_deletes.to_string();
        let as_of = request.as_of.map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true));
        let mut args = vec!["purge", "--batch-size", &batch_size, "--max-deletes", &max_deletes];
        if let Some(as_of) = &as_of {
            args.extend(["--dry-run", "--as-of", as_of.as_str()]);
        }
        let env = [
            ("RETENTIOND__RETENTION__MINIMUM", "1ms"),
            ("RETENTIOND__RETENTION__COMPLETED", request.rets.completed.text()),
            ("RETENTIOND__RETENTION__CLOSED", request.rets.closed.text()),
            ("RETENTIOND__RETENTION__CREATING_IDLE", request.rets.creating_idle.text()),
        ];
        self.run(&args, &env)
    }

    fn jobs(&mut self) -> Value {
        self.read(&["jobs", "list", "--limit", "0"])
    }

    fn audit(&mut self) -> Value {
        self.read(&["audit", "list", "--limit", "0"])
    }

    fn runs(&mut self) -> Value {
        self.read(&["runs", "list", "--limit", "0"])
    }
}

// ---------------------------------------------------------------------------
// Running a sequence
// ---------------------------------------------------------------------------

/// What the model expects of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    /// Fails with this exit code.
    Fail(i32),
    /// Fails with this exit code, naming this line of the input.
    FailLine(i32, usize),
}

const NOT_FOUND: i32 = 3;
const CONFLICT: i32 = 4;
const INVALID: i32 = 65;

/// The trace of a sequence, for failure messages.
struct Run<'d> {
    driver: &'d mut dyn Driver,
    model: Model,
    start: DateTime<Utc>,
    trace: Vec<String>,
    /// What the sequences exercised: outcomes per command, jobs deleted.
    stats: &'d RefCell<BTreeMap<String, u64>>,
}

macro_rules! ensure {
    ($run:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($run.fail(format!($($arg)*)));
        }
    };
}

fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().map(|s| DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_utc())
}

fn time_field(object: &Value, key: &str) -> DateTime<Utc> {
    parse_time(&object[key]).unwrap_or_else(|| panic!("{key} missing in {object}"))
}

fn sorted_drives(drives: &Value) -> Vec<Value> {
    let mut drives = drives.as_array().cloned().unwrap_or_default();
    drives.sort_by(|a, b| a["drive_id"].as_str().cmp(&b["drive_id"].as_str()));
    drives
}

impl Run<'_> {
    fn fail(&self, message: String) -> TestCaseError {
        let last: Vec<&String> = self.trace.iter().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        let trace = last.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n");
        TestCaseError::fail(format!("{message}\n--- steps so far (sequence start {}) ---\n{trace}", ts(self.start)))
    }

    fn note(&mut self, text: String) {
        self.trace.push(text);
    }

    fn count(&self, key: &str, n: u64) {
        *self.stats.borrow_mut().entry(key.to_string()).or_default() += n;
    }

    fn expect(&mut self, what: &str, outcome: &Outcome, expected: Expect) -> Result<(), TestCaseError> {
        let summary = match outcome.code {
            0 => "ok".to_string(),
            code => format!("exit {code}: {}", outcome.message.lines().last().unwrap_or_default()),
        };
        self.note(format!("{what} -> {summary} (model: {expected:?})"));
        let command = what.split_whitespace().take(if what.starts_with("dry") { 2 } else { 1 }).collect::<Vec<_>>();
        self.count(&format!("{} exit {}", command.join(" "), outcome.code), 1);
        match expected {
            Expect::Ok => ensure!(self, outcome.code == 0, "{what}: expected success, got {outcome:?}"),
            Expect::Fail(code) => {
                ensure!(self, outcome.code == code, "{what}: expected exit {code}, got {outcome:?}")
            }
            Expect::FailLine(code, line) => {
                ensure!(self, outcome.code == code, "{what}: expected exit {code}, got {outcome:?}");
                ensure!(
                    self,
                    mentions_line(&outcome.message, line),
                    "{what}: the error should name line {line}: {outcome:?}"
                );
            }
        }
        Ok(())
    }

    fn resolve(&self, who: &Who) -> String {
        match who {
            Who::Existing(i) if !self.model.jobs.is_empty() => self.model.jobs[i % self.model.jobs.len()].name.clone(),
            Who::Existing(i) => NAMES[i % NAMES.len()].to_string(),
            Who::Named(name) => name.to_string(),
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let before = self.driver.now() - self.driver.slack();
        let mut audit_may_change = false;
        match step {
            Step::Create { name, export, drives } => {
                let job_type = if *export { "Export" } else { "Import" };
                let drive_ids: Vec<String> = (0..*drives).map(|i| format!("d{i}")).collect();
                let expected = if !valid_name(name) {
                    Expect::Fail(INVALID)
                } else if self.model.find(name).is_some() {
                    Expect::Fail(CONFLICT)
                } else {
                    Expect::Ok
                };
                let outcome = self.driver.create(name, job_type, &drive_ids);
                self.expect(&format!("create {name:?} {job_type} drives={drives}"), &outcome, expected)?;
                if expected == Expect::Ok {
                    ensure!(self, outcome.json["state"] == "Creating", "create printed {}", outcome.json);
                    self.model.add(MJob {
                        seq: 0,
                        name: name.to_string(),
                        job_type,
                        state: St::Creating,
                        cancel_requested: false,
                        cancel_requested_at: None,
                        hold: None,
                        created_at: before,
                        updated_at: before,
                        state_changed_at: before,
                        drives: drive_ids
                            .iter()
                            .map(|d| json!({"drive_id": d, "state": "Specified", "bytes": 0}))
                            .collect(),
                    });
                    self.model.touch(name, &[Field::Created, Field::Updated, Field::StateChanged]);
                }
            }
            Step::Import { lines, bad } => {
                let (text, expected, jobs) = self.render_import(lines, *bad);
                let outcome = self.driver.import(&text);
                let what = format!(
                    "import {} lines{}",
                    lines.len(),
                    bad.map(|(at, b)| format!(" + bad {b:?} at {at}")).unwrap_or_default()
                );
                self.note(format!("  {}", text.trim_end().replace('\n', "\n    ")));
                self.expect(&what, &outcome, expected)?;
                if expected == Expect::Ok {
                    ensure!(self, outcome.json["imported"] == json!(jobs.len()), "import printed {}", outcome.json);
                    for job in jobs {
                        self.model.add(job);
                    }
                }
            }
            Step::SetState { who, to } => {
                let name = &self.resolve(who);
                let index = self.model.find(name);
                let to = match (to, index) {
                    (Target::To(state), _) => *state,
                    (Target::Next(i), Some(index)) => {
                        let successors = self.model.jobs[index].state.listed_successors();
                        if successors.is_empty() {
                            St::ALL[i % St::ALL.len()]
                        } else {
                            successors[i % successors.len()]
                        }
                    }
                    (Target::Next(i), None) => St::ALL[i % St::ALL.len()],
                };
                let expected = match index {
                    None => Expect::Fail(NOT_FOUND),
                    Some(index) => {
                        let job = &self.model.jobs[index];
                        if job.state.may_move(to, job.cancel_requested) { Expect::Ok } else { Expect::Fail(CONFLICT) }
                    }
                };
                let outcome = self.driver.set_state(name, to);
                self.expect(&format!("set-state {name:?} {}", to.name()), &outcome, expected)?;
                if let (Expect::Ok, Some(index)) = (expected, index) {
                    ensure!(self, outcome.json["state"] == to.name(), "set-state printed {}", outcome.json);
                    self.model.jobs[index].state = to;
                    self.model.touch(name, &[Field::Updated, Field::StateChanged]);
                }
            }
            Step::Cancel { who } => {
                let name = &self.resolve(who);
                let index = self.model.find(name);
                let expected = match index {
                    None => Expect::Fail(NOT_FOUND),
                    Some(index) if !self.model.jobs[index].state.cancellable() => Expect::Fail(CONFLICT),
                    Some(_) => Expect::Ok,
                };
                let outcome = self.driver.cancel(name);
                self.expect(&format!("cancel {name:?}"), &outcome, expected)?;
                if let (Expect::Ok, Some(index)) = (expected, index) {
                    ensure!(self, outcome.json["cancel_requested"] == true, "cancel printed {}", outcome.json);
                    // A repeated cancel changes nothing, not even updated_at.
                    if !self.model.jobs[index].cancel_requested {
                        self.model.jobs[index].cancel_requested = true;
                        self.model.touch(name, &[Field::Updated, Field::CancelRequested]);
                    }
                }
            }
            Step::Hold { who, reason } => {
                let name = &self.resolve(who);
                let index = self.model.find(name);
                let expected = if !valid_reason(reason) {
                    Expect::Fail(INVALID)
                } else if index.is_none() {
                    Expect::Fail(NOT_FOUND)
                } else {
                    Expect::Ok
                };
                let outcome = self.driver.hold(name, reason);
                self.expect(&format!("hold {name:?} {reason:?}"), &outcome, expected)?;
                if let (Expect::Ok, Some(index)) = (expected, index) {
                    self.model.jobs[index].hold = Some(reason.to_string());
                    self.model.touch(name, &[Field::Updated]);
                }
            }
            Step::Release { who } => {
                let name = &self.resolve(who);
                let index = self.model.find(name);
                let expected = if index.is_none() { Expect::Fail(NOT_FOUND) } else { Expect::Ok };
                let outcome = self.driver.release(name);
                self.expect(&format!("release {name:?}"), &outcome, expected)?;
                if let (Expect::Ok, Some(index)) = (expected, index)
                    && self.model.jobs[index].hold.take().is_some()
                {
                    self.model.touch(name, &[Field::Updated]);
                }
            }
            Step::Delete { who } => {
                let name = &self.resolve(who);
                audit_may_change = true;
                let index = self.model.find(name);
                let expected = match index {
                    None => Expect::Fail(NOT_FOUND),
                    Some(index) => {
                        let job = &self.model.jobs[index];
                        if job.hold.is_some() || !job.state.deletable() { Expect::Fail(CONFLICT) } else { Expect::Ok }
                    }
                };
                let outcome = self.driver.delete(name);
                self.expect(&format!("delete {name:?}"), &outcome, expected)?;
                if let (Expect::Ok, Some(index)) = (expected, index) {
                    let job = self.model.jobs.remove(index);
                    ensure!(
                        self,
                        outcome.json["job_name"] == job.name.as_str() && outcome.json["policy"] == "manual",
                        "delete printed {}",
                        outcome.json
                    );
                    self.model.audit.push(MAudit::of(&job, "manual", None));
                }
            }
            Step::Purge { rets, batch_size, max_deletes } => {
                audit_may_change = true;
                self.purge(*rets, *batch_size, *max_deletes, before)?;
            }
            Step::DryRun { rets, as_of, max_deletes } => {
                audit_may_change = true;
                self.dry_run(*rets, as_of, *max_deletes, before)?;
            }
        }
        let after = self.driver.now() + self.driver.slack();
        let everything = audit_may_change || self.driver.check_everything_every_step();
        self.check(before, after, everything)
    }

    /// The text of an import, what the model expects of it, and the jobs it adds.
    fn render_import(&self, lines: &[Line], bad: Option<(usize, Bad)>) -> (String, Expect, Vec<MJob>) {
        let mut text = String::new();
        let mut line_no = 0;
        let mut first_error: Option<Expect> = None;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut jobs = Vec::new();
        let mut conflict: Option<usize> = None;
        for i in 0..=lines.len() {
            if let Some((at, kind)) = bad
                && at == i
            {
                line_no += 1;
                text += &kind.text();
                text.push('\n');
                first_error.get_or_insert(Expect::FailLine(INVALID, line_no));
            }
            let Some(line) = lines.get(i) else { break };
            if line.blank_before {
                line_no += 1;
                text.push('\n');
            }
            line_no += 1;
            let created_at = self.start - line.created_ago;
            let state_changed_at = created_at + line.changed_after;
            let updated_at = created_at + line.updated_after;
            let cancel_requested_at = line.cancel.then_some(created_at);
            let hold = line.hold.then(|| "imported hold".to_string());
            let drives: Vec<Value> = (0..line.drives)
                .map(|d| json!({"drive_id": format!("d{d}"), "state": "Specified", "bytes": 100 * i64::from(d)}))
                .collect();
            let job_type = if line.export { "Export" } else { "Import" };
            let object = json!({
                "name": line.name,
                "job_type": job_type,
                "state": line.state.name(),
                "cancel_requested": line.cancel,
                "cancel_requested_at": cancel_requested_at.map(ts),
                "hold_reason": hold,
                "created_at": ts(created_at),
                "updated_at": ts(updated_at),
                "state_changed_at": ts(state_changed_at),
                "drives": drives,
            });
            text += &object.to_string();
            text.push('\n');
            if seen.insert(line.name, line_no).is_some() {
                first_error.get_or_insert(Expect::FailLine(INVALID, line_no));
            }
            if conflict.is_none() && self.model.find(line.name).is_some() {
                conflict = Some(line_no);
            }
            jobs.push(MJob {
                seq: 0,
                name: line.name.to_string(),
                job_type,
                state: line.state,
                cancel_requested: line.cancel,
                cancel_requested_at,
                hold,
                created_at,
                updated_at,
                state_changed_at,
                drives,
            });
        }
        let expected = first_error.or(conflict.map(|line| Expect::FailLine(CONFLICT, line))).unwrap_or(Expect::Ok);
        (text, expected, jobs)
    }

    fn purge(
        &mut self,
        rets: Rets,
        batch_size: u32,
        max_deletes: u64,
        before: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let what = format!("purge {rets:?} batch={batch_size} max={max_deletes}");
        let outcome = self.driver.purge(&PurgeRequest { rets, batch_size, max_deletes, as_of: None });
        let after = self.driver.now() + self.driver.slack();
        self.expect(&what, &outcome, Expect::Ok)?;
        let report = outcome.json;
        // Eligible for sure at the earliest possible "now", and perhaps at the latest.
        let mut certain = Vec::new();
        let mut possible = Vec::new();
        for job in &self.model.jobs {
            if let Some((policy, age, due)) = job.eligible_at(&rets, before) {
                certain.push((due, job.seq, policy, age));
            } else if let Some((policy, age, due)) = job.eligible_at(&rets, after) {
                possible.push((due, job.seq, policy, age));
            }
        }
        let mut candidates: Vec<_> = certain.iter().chain(&possible).copied().collect();
        candidates.sort();
        let stored = self.driver.jobs();
        let remaining: Vec<&str> = stored.as_array().expect("jobs").iter().filter_map(|j| j["name"].as_str()).collect();
        let deleted: Vec<Taken> = candidates
            .iter()
            .copied()
            .filter(|(_, seq, _, _)| {
                let job = self.model.jobs.iter().find(|j| j.seq == *seq).expect("candidate");
                !remaining.contains(&job.name.as_str())
            })
            .collect();
        let kept_ineligible: Vec<&str> = self
            .model
            .jobs
            .iter()
            .filter(|job| !candidates.iter().any(|(_, seq, _, _)| *seq == job.seq))
            .filter(|job| !remaining.contains(&job.name.as_str()))
            .map(|job| job.name.as_str())
            .collect();
        ensure!(
            self,
            kept_ineligible.is_empty(),
            "{what} deleted jobs that are not eligible: {kept_ineligible:?}\nreport: {report}"
        );
        self.count("purges with eligible jobs", u64::from(!candidates.is_empty()));
        if possible.is_empty() {
            let take = if max_deletes == 0 { candidates.len() } else { candidates.len().min(max_deletes as usize) };
            ensure!(
                self,
                deleted == candidates[..take],
                "{what} should delete the first {take} to become eligible of {candidates:?}, deleted {deleted:?}\nreport: {report}"
            );
        } else {
            let all_certain = certain.iter().all(|c| deleted.contains(c));
            ensure!(
                self,
                max_deletes > 0 || all_certain,
                "{what} left certainly eligible jobs: {certain:?} vs {deleted:?}"
            );
            ensure!(
                self,
                max_deletes == 0 || deleted.len() as u64 <= max_deletes,
                "{what} exceeded the cap: {deleted:?}"
            );
        }
        let stopped_by = report["stopped_by"].as_str().unwrap_or_default();
        self.count("purges stopped by their cap", u64::from(stopped_by == "max_deletes"));
        let stop_ok = match stopped_by {
            "done" => certain.iter().all(|c| deleted.contains(c)),
            "max_deletes" => max_deletes > 0 && deleted.len() as u64 == max_deletes,
            _ => false,
        };
        ensure!(
            self,
            stop_ok,
            "{what}: stopped_by {stopped_by} after deleting {} of {}\nreport: {report}",
            deleted.len(),
            candidates.len()
        );
        self.check_counts(&what, &report, &deleted)?;
        ensure!(self, report["dry_run"] == false, "{what}: {report}");
        let run_id = report["run_id"].as_i64();
        ensure!(self, run_id.is_some(), "{what}: no run id in {report}");
        self.check_future_count(&what, &report, &rets, before, after)?;
        self.count("jobs deleted by purge", deleted.len() as u64);
        self.note(format!(
            "  deleted {:?}",
            deleted.iter().map(|(_, seq, p, _)| (self.name_of(*seq), p.name())).collect::<Vec<_>>()
        ));
        for (_, seq, policy, _) in &deleted {
            let index = self.model.jobs.iter().position(|j| j.seq == *seq).expect("deleted job");
            let job = self.model.jobs.remove(index);
            self.model.audit.push(MAudit::of(&job, policy.name(), run_id));
        }
        self.model.runs += 1;
        let runs = self.driver.runs();
        let newest = &runs[0];
        ensure!(
            self,
            newest["run_id"].as_i64() == run_id
                && newest["status"] == "succeeded"
                && newest["trigger"] == "purge"
                && newest["counts"] == report["counts"]
                && newest["total"] == report["total"]
                && !newest["finished_at"].is_null(),
            "{what}: run record {newest} for report {report}"
        );
        Ok(())
    }

    fn name_of(&self, seq: u64) -> String {
        self.model.jobs.iter().find(|j| j.seq == seq).map(|j| j.name.clone()).unwrap_or_default()
    }

    fn dry_run(
        &mut self,
        rets: Rets,
        as_of: &AsOf,
        max_deletes: u64,
        before: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let at = match as_of {
            AsOf::Job { pick, delta_ns } if !self.model.jobs.is_empty() => {
                let job = &self.model.jobs[pick % self.model.jobs.len()];
                let base = match Pol::covering(job.state).and_then(|p| Some((p, rets.of(p).delta()?))) {
                    Some((policy, retention)) => policy.age(job) + retention,
                    None => job.updated_at,
                };
                base + TimeDelta::nanoseconds(*delta_ns)
            }
            AsOf::Job { delta_ns, .. } => self.start + TimeDelta::nanoseconds(*delta_ns),
            AsOf::Start { days } => self.start + TimeDelta::days(*days),
        };
        let what =
            format!("dry run {rets:?} as of {} max={max_deletes}", at.to_rfc3339_opts(SecondsFormat::Nanos, true));
        let outcome = self.driver.purge(&PurgeRequest { rets, batch_size: 1000, max_deletes, as_of: Some(at) });
        let after = self.driver.now() + self.driver.slack();
        self.expect(&what, &outcome, Expect::Ok)?;
        let report = outcome.json;
        let mut eligible: Vec<Taken> = self
            .model
            .jobs
            .iter()
            .filter_map(|job| job.eligible_at(&rets, at).map(|(policy, age, due)| (due, job.seq, policy, age)))
            .collect();
        eligible.sort();
        let take = if max_deletes == 0 { eligible.len() } else { eligible.len().min(max_deletes as usize) };
        let listed = &eligible[..take];
        let names: Vec<String> = listed.iter().map(|(_, seq, _, _)| self.name_of(*seq)).collect();
        let detail: Vec<String> = eligible
            .iter()
            .map(|(_, seq, p, age)| {
                format!("{}:{}@{}", self.name_of(*seq), p.name(), age.to_rfc3339_opts(SecondsFormat::Micros, true))
            })
            .collect();
        self.note(format!("  eligible {detail:?}"));
        self.count("jobs listed by dry runs", take as u64);
        ensure!(
            self,
            report["jobs"] == json!(names),
            "{what}: expected jobs {names:?} (eligible: {detail:?}), got {report}"
        );
        ensure!(self, report["dry_run"] == true && report["run_id"].is_null(), "{what}: {report}");
        ensure!(self, parse_time(&report["as_of"]) == Some(at), "{what}: as_of in {report}");
        let stopped_by = report["stopped_by"].as_str().unwrap_or_default();
        let stop_ok = match stopped_by {
            "done" => take == eligible.len(),
            "max_deletes" => max_deletes > 0 && take as u64 == max_deletes,
            _ => false,
        };
        ensure!(
            self,
            stop_ok,
            "{what}: stopped_by {stopped_by} listing {take} of {}\nreport: {report}",
            eligible.len()
        );
        self.check_counts(&what, &report, listed)?;
        self.check_future_count(&what, &report, &rets, before, after)?;
        Ok(())
    }

    /// Counts per policy, total and the oldest age timestamp of a purge summary.
    fn check_counts(&self, what: &str, report: &Value, taken: &[Taken]) -> Result<(), TestCaseError> {
        for policy in Pol::ALL {
            let expected = taken.iter().filter(|(_, _, p, _)| *p == policy).count();
            ensure!(
                self,
                report["counts"][policy.name()] == json!(expected),
                "{what}: {} count, expected {expected}: {report}",
                policy.name()
            );
        }
        ensure!(self, report["total"] == json!(taken.len()), "{what}: total, expected {}: {report}", taken.len());
        let oldest = taken.iter().map(|(_, _, _, age)| *age).min();
        ensure!(
            self,
            parse_time(&report["oldest_eligible_at"]) == oldest,
            "{what}: oldest, expected {oldest:?}: {report}"
        );
        Ok(())
    }

    /// Jobs kept for a timestamp in the future (clock skew) are counted.
    fn check_future_count(
        &self,
        what: &str,
        report: &Value,
        rets: &Rets,
        before: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let ahead = |now: DateTime<Utc>| {
            self.model.jobs.iter().filter(|job| job.policy(rets).is_some_and(|policy| policy.age(job) > now)).count()
        };
        let (most, least) = (ahead(before), ahead(after));
        let counted = report["skipped_future"].as_u64().unwrap_or(u64::MAX) as usize;
        ensure!(
            self,
            (least..=most).contains(&counted),
            "{what}: skipped_future {counted}, expected {least}..={most}: {report}"
        );
        Ok(())
    }

    /// The store equals the model: every job, and (when `everything`) every audit row and the run count.
    fn check(&mut self, before: DateTime<Utc>, after: DateTime<Utc>, everything: bool) -> Result<(), TestCaseError> {
        let stored = self.driver.jobs();
        let stored = stored.as_array().expect("jobs array").clone();
        let names =
            |jobs: &[Value]| jobs.iter().map(|j| j["name"].as_str().unwrap_or("?").to_string()).collect::<Vec<_>>();
        let expected_names: Vec<String> = self.model.jobs.iter().map(|j| j.name.clone()).collect();
        ensure!(
            self,
            names(&stored) == expected_names,
            "jobs differ: store {:?}, model {expected_names:?}",
            names(&stored)
        );
        let touched = self.model.touched.take();
        for (index, store) in stored.iter().enumerate() {
            let job = &mut self.model.jobs[index];
            let fields = match &touched {
                Some((name, fields)) if *name == job.name => fields.clone(),
                _ => Vec::new(),
            };
            // Timestamps the store set in this step: all the same moment, within the step.
            if !fields.is_empty() {
                let values: Vec<DateTime<Utc>> = fields
                    .iter()
                    .map(|f| match f {
                        Field::Created => time_field(store, "created_at"),
                        Field::Updated => time_field(store, "updated_at"),
                        Field::StateChanged => time_field(store, "state_changed_at"),
                        Field::CancelRequested => time_field(store, "cancel_requested_at"),
                    })
                    .collect();
                let now = values[0];
                if values.iter().any(|v| *v != now) || now < before || now > after {
                    let message = format!(
                        "job {}: {fields:?} should all be the database's now within [{}, {}], got {values:?}\nstored: {store}",
                        job.name,
                        ts(before),
                        ts(after)
                    );
                    return Err(self.fail(message));
                }
                for field in &fields {
                    match field {
                        Field::Created => job.created_at = now,
                        Field::Updated => job.updated_at = now,
                        Field::StateChanged => job.state_changed_at = now,
                        Field::CancelRequested => job.cancel_requested_at = Some(now),
                    }
                }
            }
            let expected = json!({
                "name": job.name,
                "job_type": job.job_type,
                "state": job.state.name(),
                "cancel_requested": job.cancel_requested,
                "cancel_requested_at": job.cancel_requested_at.map(ts),
                "hold_reason": job.hold,
                "created_at": ts(job.created_at),
                "updated_at": ts(job.updated_at),
                "state_changed_at": ts(job.state_changed_at),
                "drives": job.drives,
            });
            let actual = json!({
                "name": store["name"],
                "job_type": store["job_type"],
                "state": store["state"],
                "cancel_requested": store["cancel_requested"],
                "cancel_requested_at": parse_time(&store["cancel_requested_at"]).map(ts),
                "hold_reason": store["hold_reason"],
                "created_at": ts(time_field(store, "created_at")),
                "updated_at": ts(time_field(store, "updated_at")),
                "state_changed_at": ts(time_field(store, "state_changed_at")),
                "drives": sorted_drives(&store["drives"]),
            });
            if expected != actual {
                let message = format!("job {} differs\n model: {expected}\n store: {actual}", job.name);
                return Err(self.fail(message));
            }
        }
        if everything {
            self.check_audit(before, after)?;
            let runs = self.driver.runs();
            let count = runs.as_array().map_or(0, Vec::len);
            ensure!(self, count == self.model.runs, "{count} run records, expected {}: {runs}", self.model.runs);
        }
        Ok(())
    }

    fn check_audit(&mut self, before: DateTime<Utc>, after: DateTime<Utc>) -> Result<(), TestCaseError> {
        let stored = self.driver.audit();
        let stored = stored.as_array().expect("audit array").clone();
        let mut actual: Vec<(String, DateTime<Utc>, &Value)> = stored
            .iter()
            .map(|entry| {
                let key = MAudit {
                    job_name: entry["job_name"].as_str().unwrap_or("?").to_string(),
                    job_type: if entry["job_type"] == "Export" { "Export" } else { "Import" },
                    policy: match entry["policy"].as_str() {
                        Some("manual") => "manual",
                        Some("completed") => "completed",
                        Some("closed") => "closed",
                        Some("creating_idle") => "creating_idle",
                        _ => "?",
                    },
                    state: St::parse(entry["state"].as_str().unwrap_or("?")),
                    cancel_requested: entry["cancel_requested"] == true,
                    created_at: time_field(entry, "created_at"),
                    state_changed_at: time_field(entry, "state_changed_at"),
                    run_id: entry["run_id"].as_i64(),
                    deleted_at: None,
                }
                .key();
                (key, time_field(entry, "deleted_at"), entry)
            })
            .collect();
        actual.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut expected: Vec<(String, usize)> =
            self.model.audit.iter().enumerate().map(|(i, entry)| (entry.key(), i)).collect();
        // Pending entries (deleted_at not known yet) are the newest of their key.
        expected.sort_by_key(|(key, i)| {
            (key.clone(), self.model.audit[*i].deleted_at.map_or(i64::MAX, |t| t.timestamp_micros()))
        });
        let actual_keys: Vec<&String> = actual.iter().map(|(k, _, _)| k).collect();
        let expected_keys: Vec<&String> = expected.iter().map(|(k, _)| k).collect();
        ensure!(
            self,
            actual_keys == expected_keys,
            "audit rows differ\n store: {actual_keys:#?}\n model: {expected_keys:#?}"
        );
        for ((_, deleted_at, entry), (_, i)) in actual.iter().zip(&expected) {
            let by = entry["deleted_by"].as_str().unwrap_or_default();
            ensure!(self, by.contains('@'), "audit row without deleted_by: {entry}");
            match self.model.audit[*i].deleted_at {
                Some(known) => {
                    ensure!(self, known == *deleted_at, "audit row changed: {entry}, deleted_at was {}", ts(known))
                }
                None => {
                    ensure!(
                        self,
                        *deleted_at >= before && *deleted_at <= after,
                        "deleted_at {} not within [{}, {}]: {entry}",
                        ts(*deleted_at),
                        ts(before),
                        ts(after)
                    );
                    self.model.audit[*i].deleted_at = Some(*deleted_at);
                }
            }
        }
        let ids: BTreeSet<i64> = stored.iter().filter_map(|e| e["id"].as_i64()).collect();
        ensure!(self, ids.len() == stored.len(), "audit ids are not unique: {stored:?}");
        Ok(())
    }
}

/// Runs `steps` against `driver` and the model, checking after every step;
/// returns the model as it ends.
fn run_sequence(
    driver: &mut dyn Driver,
    steps: &[Step],
    stats: &RefCell<BTreeMap<String, u64>>,
) -> Result<Model, TestCaseError> {
    let start = retentiond::model::truncate(driver.now());
    let mut run = Run { driver, model: Model::default(), start, trace: Vec::new(), stats };
    run.check(start, start, true)?;
    for step in steps {
        run.step(step)?;
    }
    let end = run.driver.now();
    run.check(end, end, true)?;
    Ok(run.model)
}

/// A deleted job's drives go with it: the drive table holds exactly the model's drives.
fn check_drive_rows(env: &TestEnv, model: &Model) -> Result<(), TestCaseError> {
    let expected: usize = model.jobs.iter().map(|job| job.drives.len()).sum();
    let stored = env.count("job_drives") as usize;
    prop_assert_eq!(stored, expected, "drive rows: {} stored, the model's jobs have {}", stored, expected);
    Ok(())
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

struct Budget {
    sequences: u32,
    steps: std::ops::Range<usize>,
}

impl Budget {
    /// A round on `engine`, through the CLI or the library: a server engine
    /// and the CLI take longer per sequence.
    fn of(engine: Engine, cli: bool) -> Budget {
        match (engine, cli) {
            (Engine::Sqlite, false) => Budget { sequences: 64, steps: 20..40 },
            (Engine::Postgres, false) => Budget { sequences: 16, steps: 20..40 },
            (Engine::Sqlite, true) => Budget { sequences: 6, steps: 10..25 },
            (Engine::Postgres, true) => Budget { sequences: 4, steps: 10..25 },
            (Engine::MariaDb, false) => Budget { sequences: 16, steps: 20..40 },
            (Engine::MariaDb, true) => Budget { sequences: 4, steps: 10..25 },
        }
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Failures are kept as explicit tests below, not in a regressions file.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        max_shrink_time: 60_000,
        ..Config::default()
    }
}

/// Rounds of a budget's sequences a property runs at most to reach its coverage.
const MAX_ROUNDS: u32 = 6;

/// A case the random sequences must reach, lest the property check nothing
/// there: a sequence reaches it when the per-step count `shown_by`
/// (`Run::count`) grows during it.
struct Case {
    name: &'static str,
    shown_by: &'static str,
    /// At least one sequence in this many must reach it (and one at least).
    one_in: u32,
    /// The same for the CLI runs, if they must reach it too: their
    /// sequences are shorter, so fewer reach it.
    cli_one_in: Option<u32>,
}

/// Rates measured per library sequence: purges that delete about 0.45,
/// dry runs that list about 0.6, deletes by hand about 0.5, releases about
/// 0.7, capped purges that stop at their cap about 0.25. Per CLI sequence:
/// purges that delete about 0.25, dry runs that list about 0.4, so that one
/// in 16 leaves a run of [`MAX_ROUNDS`] a chance of about 1 in 1,000 to
/// miss it by ill luck.
const CASES: [Case; 5] = [
    Case {
        name: "sequences in which a purge deleted jobs",
        shown_by: "jobs deleted by purge",
        one_in: 8,
        cli_one_in: Some(16),
    },
    Case {
        name: "sequences in which a capped purge stopped at its cap",
        shown_by: "purges stopped by their cap",
        one_in: 16,
        cli_one_in: None,
    },
    Case {
        name: "sequences in which a dry run listed jobs",
        shown_by: "jobs listed by dry runs",
        one_in: 8,
        cli_one_in: Some(16),
    },
    Case {
        name: "sequences in which a job was deleted by hand",
        shown_by: "delete exit 0",
        one_in: 8,
        cli_one_in: None,
    },
    Case { name: "sequences in which a hold was released", shown_by: "release exit 0", one_in: 8, cli_one_in: None },
];

/// Runs the property with fresh stores of `engine`, through the library or
/// the CLI, in rounds of random sequences ([`Budget`]) until each of
/// [`CASES`] is reached often enough; after [`MAX_ROUNDS`] rounds it fails.
fn property(engine: Engine, cli: bool) {
    let budget = Budget::of(engine, cli);
    let started = Instant::now();
    let steps = Cell::new(0usize);
    let stats = RefCell::new(BTreeMap::new());
    let mut sequences = 0;
    for round in 1..=MAX_ROUNDS {
        let mut runner = TestRunner::new(config(budget.sequences));
        let result = runner.run(&prop::collection::vec(step(), budget.steps.clone()), |sequence| {
            let env = TestEnv::new(engine, "model").expect("the engine was available a moment ago");
            steps.set(steps.get() + sequence.len());
            let before = stats.borrow().clone();
            let model = if cli {
                env.migrate();
                run_sequence(&mut Cli { env: &env }, &sequence, &stats)?
            } else {
                run_sequence(&mut lib_driver::Lib::open(&env.url), &sequence, &stats)?
            };
            count_cases(&before, &mut stats.borrow_mut());
            check_drive_rows(&env, &model)
        });
        if let Err(error) = result {
            panic!("{error}");
        }
        sequences += budget.sequences;
        eprintln!(
            "model ({engine}, {}): {sequences} sequences, {} steps in {:?}",
            if cli { "CLI" } else { "library" },
            steps.get(),
            started.elapsed()
        );
        eprintln!("  {:?}", stats.borrow());
        let rare = rare_cases(&stats.borrow(), sequences, cli);
        if rare.is_empty() {
            return;
        }
        eprintln!("  round {round}: too few {rare:?}");
    }
    panic!("after {sequences} sequences, too few {:?}", rare_cases(&stats.borrow(), sequences, cli));
}

/// Adds one to the count of each of [`CASES`] whose step count grew since `before`.
fn count_cases(before: &BTreeMap<String, u64>, stats: &mut BTreeMap<String, u64>) {
    for case in &CASES {
        let count = |stats: &BTreeMap<String, u64>| stats.get(case.shown_by).copied().unwrap_or(0);
        if count(stats) > count(before) {
            *stats.entry(case.name.to_owned()).or_default() += 1;
        }
    }
}

/// The cases of [`CASES`] (those of the CLI runs when `cli`) reached in
/// fewer of `sequences` than they must be.
fn rare_cases(stats: &BTreeMap<String, u64>, sequences: u32, cli: bool) -> Vec<&'static str> {
    CASES
        .iter()
        .filter_map(|case| Some((case, if cli { case.cli_one_in? } else { case.one_in })))
        .filter(|(case, one_in)| stats.get(case.name).copied().unwrap_or(0) < u64::from(sequences / one_in).max(1))
        .map(|(case, _)| case.name)
        .collect()
}

every_engine! {
    fn library(env: &TestEnv) {
        property(env.engine, false);
    }
}

every_engine! {
    fn cli(env: &TestEnv) {
        property(env.engine, true);
    }
}

// ---------------------------------------------------------------------------
// Sequences the property found failing, kept as explicit cases
// ---------------------------------------------------------------------------

/// Replays `steps` through the library and through the CLI, each against a fresh store.
fn replay(engine: Engine, steps: &[Step]) {
    for cli in [false, true] {
        let Some(env) = TestEnv::new(engine, "model-replay") else { return };
        let stats = RefCell::default();
        let result = if cli {
            env.migrate();
            run_sequence(&mut Cli { env: &env }, steps, &stats)
        } else {
            run_sequence(&mut lib_driver::Lib::open(&env.url), steps, &stats)
        }
        .and_then(|model| check_drive_rows(&env, &model));
        if let Err(error) = result {
            panic!("{} driver: {error}", if cli { "CLI" } else { "library" });
        }
    }
}

/// A dry run `--as-of` a moment with a fraction of a microsecond, whose
/// cut-off lies before 2000: a job 500 ns younger than the retention is not
/// eligible. Found on PostgreSQL, which listed it: the cut-off went to the
/// database rounded *up* to the next microsecond (sqlx encodes a timestamp as
/// microseconds since 2000-01-01, truncating toward zero, which rounds
/// moments before 2000 up), while SQLite rounds it down.
fn dry_run_cutoff_below_a_microsecond_before_2000() -> Vec<Step> {
    let line = Line {
        name: "job-a",
        export: false,
        state: St::Completed,
        cancel: false,
        hold: false,
        created_ago: TimeDelta::days(20_000),
        changed_after: TimeDelta::zero(),
        updated_after: TimeDelta::zero(),
        drives: 0,
        blank_before: false,
    };
    vec![
        Step::Import { lines: vec![line], bad: None },
        Step::DryRun {
            rets: Rets { completed: Ret::D1, closed: Ret::Off, creating_idle: Ret::Off },
            as_of: AsOf::Job { pick: 0, delta_ns: -500 },
            max_deletes: 0,
        },
    ]
}

every_engine! {
    fn regression_dry_run_cutoff_below_a_microsecond_before_2000(env: &TestEnv) {
        replay(env.engine, &dry_run_cutoff_below_a_microsecond_before_2000());
    }
}
