//! Retention policies (docs/design.md, "Retention policies"): which jobs each policy covers, which
//! timestamp measures their age, and the cut-off a policy derives from "now".
//!
//! A job is eligible under a policy when it is in the policy's state, carries
//! no hold, and its age timestamp is at or before the cut-off
//! (`now - retention`: a job exactly as old as the retention is eligible).
//! Each policy's retention may differ by job type (`retention.by_type`), so a
//! rule is a (policy, type) pair, with its own cut-off and index range.

use std::fmt;
use std::ops::{Deref, Index, IndexMut};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;

use crate::lifecycle::{JobState, JobType};

/// One of the three retention policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `Completed` jobs (cancelled ones included), aged from `state_changed_at`.
    Completed,
    /// `Closed` jobs, aged from `state_changed_at`.
    Closed,
    /// `Creating` jobs that never shipped, aged from `updated_at`.
    CreatingIdle,
    /// Finished jobs (`Completed` or `Closed`) with a `retain_until` of
    /// their own, due at that moment and never before `retention.minimum`
    /// has passed since they entered their final state; the other policies
    /// leave them alone.
    RetainUntil,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Completed, Policy::Closed, Policy::CreatingIdle, Policy::RetainUntil];

    /// The policies whose retention the configuration sets (`retention.completed`, ...).
    pub const CONFIGURED: [Policy; 3] = [Policy::Completed, Policy::Closed, Policy::CreatingIdle];

    /// The name used in configuration keys, audit rows, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Completed => "completed",
            Policy::Closed => "closed",
            Policy::CreatingIdle => "creating_idle",
            Policy::RetainUntil => "retain_until",
        }
    }

    /// The states a policy covers.
    pub fn states(self) -> &'static [JobState] {
        match self {
            Policy::Completed => &[JobState::Completed],
            Policy::Closed => &[JobState::Closed],
            Policy::CreatingIdle => &[JobState::Creating],
            Policy::RetainUntil => &[JobState::Completed, JobState::Closed],
        }
    }

    /// The `jobs` column a job's due moment is measured from under this policy.
    pub fn age_column(self) -> &'static str {
        match self {
            Policy::Completed | Policy::Closed => "state_changed_at",
            Policy::CreatingIdle => "updated_at",
            Policy::RetainUntil => "retain_until",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Policy, String> {
        Policy::ALL.into_iter().find(|policy| policy.as_str() == text).ok_or_else(|| format!("no policy {text:?}"))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per policy: retentions, cut-offs, cursors, counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerPolicy<T> {
    pub completed: T,
    pub closed: T,
    pub creating_idle: T,
    pub retain_until: T,
}

impl<T> PerPolicy<T> {
    pub fn from_fn(mut f: impl FnMut(Policy) -> T) -> Self {
        PerPolicy {
            completed: f(Policy::Completed),
            closed: f(Policy::Closed),
            creating_idle: f(Policy::CreatingIdle),
            retain_until: f(Policy::RetainUntil),
        }
    }

    pub fn map<U>(&self, mut f: impl FnMut(Policy, &T) -> U) -> PerPolicy<U> {
        PerPolicy::from_fn(|policy| f(policy, &self[policy]))
    }
}

impl PerPolicy<u64> {
    pub fn total(&self) -> u64 {
        self.completed + self.closed + self.creating_idle + self.retain_until
    }
}

impl<T> Index<Policy> for PerPolicy<T> {
    type Output = T;

    fn index(&self, policy: Policy) -> &T {
        match policy {
            Policy::Completed => &self.completed,
            Policy::Closed => &self.closed,
            Policy::CreatingIdle => &self.creating_idle,
            Policy::RetainUntil => &self.retain_until,
        }
    }
}

impl<T> IndexMut<Policy> for PerPolicy<T> {
    fn index_mut(&mut self, policy: Policy) -> &mut T {
        match policy {
            Policy::Completed => &mut self.completed,
            Policy::Closed => &mut self.closed,
            Policy::CreatingIdle => &mut self.creating_idle,
            Policy::RetainUntil => &mut self.retain_until,
        }
    }
}

/// One value per job type: a policy's retention or cut-off for each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerType<T> {
    pub import: T,
    pub export: T,
}

impl<T> PerType<T> {
    pub fn from_fn(mut f: impl FnMut(JobType) -> T) -> Self {
        PerType { import: f(JobType::Import), export: f(JobType::Export) }
    }

    pub fn map<U>(&self, mut f: impl FnMut(JobType, &T) -> U) -> PerType<U> {
        PerType::from_fn(|job_type| f(job_type, &self[job_type]))
    }
}

impl<T> Index<JobType> for PerType<T> {
    type Output = T;

    fn index(&self, job_type: JobType) -> &T {
        match job_type {
            JobType::Import => &self.import,
            JobType::Export => &self.export,
        }
    }
}

impl<T> IndexMut<JobType> for PerType<T> {
    fn index_mut(&mut self, job_type: JobType) -> &mut T {
        match job_type {
            JobType::Import => &mut self.import,
            JobType::Export => &mut self.export,
        }
    }
}

/// One value per rule, a (policy, job type) pair: `values[policy][job_type]`.
pub type PerRule<T> = PerPolicy<PerType<T>>;

/// Every rule, in the order the stores bind their parameters: each policy
/// (completed, closed, creating_idle, retain_until) for `Import`, then for `Export`.
pub const RULES: [(Policy, JobType); 8] = [
    (Policy::Completed, JobType::Import),
    (Policy::Completed, JobType::Export),
    (Policy::Closed, JobType::Import),
    (Policy::Closed, JobType::Export),
    (Policy::CreatingIdle, JobType::Import),
    (Policy::CreatingIdle, JobType::Export),
    (Policy::RetainUntil, JobType::Import),
    (Policy::RetainUntil, JobType::Export),
];

/// How long each rule keeps a job (`None`: the rule is off; the
/// `retain_until` rules' is zero: a job is due at its own moment), and
/// `retention.minimum`, the least time a job with `retain_until` is kept
/// after entering its final state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retentions {
    pub rules: PerRule<Option<Duration>>,
    pub minimum: Duration,
}

impl Deref for Retentions {
    type Target = PerRule<Option<Duration>>;

    fn deref(&self) -> &Self::Target {
        &self.rules
    }
}

/// The newest timestamp each rule deletes (`None`: the rule is off), and
/// the newest `state_changed_at` a job with `retain_until` may have to be
/// deleted (now minus `retention.minimum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cutoffs {
    pub rules: PerRule<Option<DateTime<Utc>>>,
    pub settled: Option<DateTime<Utc>>,
}

impl Deref for Cutoffs {
    type Target = PerRule<Option<DateTime<Utc>>>;

    fn deref(&self) -> &Self::Target {
        &self.rules
    }
}

/// A rule's retention in microseconds, the stores' precision: what an age
/// timestamp is moved by to give the moment the job became eligible. 0 for
/// a rule that is off (it finds nothing).
pub fn retention_micros(retentions: &Retentions, policy: Policy, job_type: JobType) -> i64 {
    retentions[policy][job_type].map_or(0, |retention| i64::try_from(retention.as_micros()).unwrap_or(i64::MAX))
}

/// The start of year 1: the earliest cut-off or cursor, within what both
/// stores can take. No job is that old (imports start in 1970).
pub fn start_of_time() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// The cut-offs at `now`: `now - retention` for every enabled policy, to
/// the microsecond the stores keep (rounded down), and never before
/// [`start_of_time`].
pub fn cutoffs(retentions: &Retentions, now: DateTime<Utc>) -> Cutoffs {
    Cutoffs {
        rules: retentions
            .map(|_, by_type| by_type.map(|_, retention| retention.map(|retention| cutoff(retention, now)))),
        settled: Some(cutoff(retentions.minimum, now)),
    }
}

/// `now - retention`, to the microsecond the stores keep (rounded down),
/// and never before [`start_of_time`].
pub fn cutoff(retention: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = start_of_time();
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = now.checked_sub_signed(retention).unwrap_or(earliest).max(earliest);
    cutoff.duration_trunc(chrono::Duration::microseconds(1)).unwrap_or(cutoff)
}

/// When a job of `policy` and `job_type` became eligible: its age timestamp
/// plus its rule's retention; one with `retain_until` (its age timestamp)
/// also waits `retention.minimum` after entering its final state
/// (`finished`). `None` for a rule that is off, or past the calendar's end.
pub fn eligible_at(
    retentions: &Retentions,
    policy: Policy,
    job_type: JobType,
    age: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let after = |moment: DateTime<Utc>, retention: Duration| {
        chrono::Duration::from_std(retention).ok().and_then(|retention| moment.checked_add_signed(retention))
    };
    let due = after(age, retentions[policy][job_type]?)?;
    match policy {
        Policy::RetainUntil => Some(due.max(after(finished, retentions.minimum)?)),
        Policy::Completed | Policy::Closed | Policy::CreatingIdle => Some(due),
    }
}

/// A position in a rule's deletion order: oldest age timestamp first, ties
/// broken by job id. A sweep resumes after the last key it handled, so a batch
/// never rescans what an earlier batch already took. Across rules, jobs are
/// ordered by the moment they became eligible instead: the same key with
/// the rule's retention added ([`SortKey::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub timestamp: DateTime<Utc>,
    pub job_id: i64,
}

impl SortKey {
    /// The key moved by `micros` (a rule's retention, [`retention_micros`]):
    /// from a rule's age order to the order in which jobs became eligible,
    /// or back with a negative amount.
    pub fn due(self, micros: i64) -> SortKey {
        let moved = self.timestamp.checked_add_signed(chrono::Duration::microseconds(micros));
        SortKey {
            timestamp: moved.unwrap_or(if micros < 0 { start_of_time() } else { DateTime::<Utc>::MAX_UTC }),
            job_id: self.job_id,
        }
    }
}

/// Where each rule's scan resumes; `None` starts at the oldest job.
pub type Cursors = PerRule<Option<SortKey>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_at_most_one_configured_policy() {
        for state in JobState::ALL {
            let covering = Policy::CONFIGURED.into_iter().filter(|p| p.states().contains(&state)).count();
            assert!(covering <= 1, "{state}");
        }
    }

    fn at(moment: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(moment).unwrap().to_utc()
    }

    /// Completed: 90d for imports, 1d for exports; Closed: 1h for imports,
    /// off for exports; Creating idle off; minimum 1d.
    fn retentions() -> Retentions {
        Retentions {
            rules: PerRule {
                completed: PerType {
                    import: Some(Duration::from_secs(90 * 86_400)),
                    export: Some(Duration::from_secs(86_400)),
                },
                closed: PerType { import: Some(Duration::from_secs(3_600)), export: None },
                creating_idle: PerType::default(),
                retain_until: PerType { import: Some(Duration::ZERO), export: Some(Duration::ZERO) },
            },
            minimum: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn cutoff_is_now_minus_retention_and_off_stays_off() {
        let now = at("2026-11-21T12:00:00Z");
        let cutoffs = cutoffs(&retentions(), now);
        assert_eq!(cutoffs.completed.import.unwrap().to_rfc3339(), "2026-08-23T12:00:00+00:00");
        assert_eq!(cutoffs.completed.export.unwrap().to_rfc3339(), "2026-11-20T12:00:00+00:00");
        assert_eq!(cutoffs.closed.import.unwrap().to_rfc3339(), "2026-11-21T11:00:00+00:00");
        assert_eq!(cutoffs.closed.export, None);
        assert_eq!(cutoffs.creating_idle, PerType::default());
        assert_eq!(cutoffs.retain_until.export.unwrap().to_rfc3339(), "2026-11-21T12:00:00+00:00");
        assert_eq!(cutoffs.settled.unwrap().to_rfc3339(), "2026-11-20T12:00:00+00:00");
    }

    #[test]
    fn a_job_becomes_eligible_after_its_retention_and_retain_until_after_the_minimum() {
        let (retentions, age, finished) = (retentions(), at("2026-11-01T00:00:00Z"), at("2026-11-10T00:00:00Z"));
        let eligible = |policy, job_type| eligible_at(&retentions, policy, job_type, age, finished);
        assert_eq!(eligible(Policy::Completed, JobType::Export), Some(at("2026-11-02T00:00:00Z")));
        assert_eq!(eligible(Policy::Closed, JobType::Import), Some(at("2026-11-01T01:00:00Z")));
        assert_eq!(eligible(Policy::Closed, JobType::Export), None, "off");
        // Its moment had passed when it finished: the minimum decides.
        assert_eq!(eligible(Policy::RetainUntil, JobType::Import), Some(at("2026-11-11T00:00:00Z")));
        let later = at("2026-12-01T00:00:00Z");
        assert_eq!(eligible_at(&retentions, Policy::RetainUntil, JobType::Export, later, finished), Some(later));
    }
}
