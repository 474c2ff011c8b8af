//! The records the job store holds, in the JSON shapes of docs/design.md, "The command line": jobs with
//! their drives, audit entries and sweep runs.
//!
//! Timestamps are UTC with microsecond precision, the precision both stores
//! keep, so a value read back equals the value written.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{DriveState, Effect, JobState, JobStatus, JobType};
use crate::policy::PerPolicy;

/// A job and its drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub name: String,
    pub job_type: JobType,
    pub state: JobState,
    pub cancel_requested: bool,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub hold_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    /// Kept until this moment once finished, whatever its policy says
    /// (docs/configuration.md, "A job's own retention").
    pub retain_until: Option<DateTime<Utc>>,
    pub drives: Vec<Drive>,
}

impl Job {
    /// A new job in `Creating`, as `jobs create` makes it.
    pub fn new(name: String, job_type: JobType, drive_ids: Vec<String>, now: DateTime<Utc>) -> Job {
        let now = truncate(now);
        Job {
            name,
            job_type,
            state: JobState::Creating,
            cancel_requested: false,
            cancel_requested_at: None,
            hold_reason: None,
            created_at: now,
            updated_at: now,
            state_changed_at: now,
            retain_until: None,
            drives: drive_ids
                .into_iter()
                .map(|drive_id| Drive { drive_id, state: DriveState::Specified, bytes: 0 })
                .collect(),
        }
    }

    pub fn status(&self) -> JobStatus<'_> {
        JobStatus {
            state: self.state,
            cancel_requested: self.cancel_requested,
            hold_reason: self.hold_reason.as_deref(),
        }
    }

    /// Writes an allowed effect into the job's fields at `now`. Returns false
    /// when nothing changed (then nothing needs writing, not even `updated_at`).
    /// [`Effect::Delete`] is the store's to carry out and changes no field.
    pub fn apply(&mut self, effect: &Effect, now: DateTime<Utc>) -> bool {
        let now = truncate(now);
        match effect {
            Effect::EnterState(state) => {
                self.state = *state;
                self.state_changed_at = now;
            }
            Effect::RequestCancel => {
                self.cancel_requested = true;
                self.cancel_requested_at = Some(now);
            }
            Effect::PlaceHold(reason) => self.hold_reason = Some(reason.clone()),
            Effect::ReleaseHold => self.hold_reason = None,
            Effect::RetainUntil(until) => self.retain_until = until.map(truncate),
            Effect::Delete | Effect::Nothing => return false,
        }
        self.updated_at = now;
        true
    }
}

/// One disk of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drive {
    pub drive_id: String,
    pub state: DriveState,
    #[serde(default)]
    pub bytes: i64,
}

/// The trace a deleted job leaves: who deleted it, when, under which policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    /// The sweep that deleted the job; `None` for a manual delete.
    pub run_id: Option<i64>,
    pub job_name: String,
    pub job_type: JobType,
    /// `completed`, `closed`, `creating_idle`, `retain_until` or `manual`.
    pub policy: String,
    pub state: JobState,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    pub deleted_at: DateTime<Utc>,
    /// `user@host` of the process that deleted it.
    pub deleted_by: String,
}

/// The `policy` of an audit row written by `jobs delete`.
pub const MANUAL_POLICY: &str = "manual";

/// The record of one sweep in `retention_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub run_id: i64,
    /// What started it: `purge` (the command) or `schedule` (the daemon).
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub counts: PerPolicy<u64>,
    pub total: u64,
    /// `done`, `max_deletes`, `timeout` or `signal`; `None` while running or after a failure.
    pub stopped_by: Option<String>,
    pub error: Option<String>,
    pub host: String,
    pub pid: i64,
    /// What the run removed of the audit trail (`audit_rows_removed`, `runs_removed`).
    #[serde(flatten)]
    pub removed: Removed,
    /// Its pauses for the replicas (`pauses`, `paused_ms`).
    #[serde(flatten)]
    pub paused: Pauses,
}

/// The pauses of a sweep between batches while a replica lagged
/// (src/sweep/replica_pause.rs), recorded in its run record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pauses {
    pub pauses: u64,
    /// How long they took in all.
    pub paused_ms: u64,
}

/// What a sweep removed of the audit trail after the jobs (src/trail.rs),
/// recorded in its run record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    #[serde(rename = "audit_rows_removed")]
    pub audit_rows: u64,
    #[serde(rename = "runs_removed")]
    pub runs: u64,
}

impl Removed {
    pub fn any(&self) -> bool {
        self.audit_rows > 0 || self.runs > 0
    }
}

/// Where a sweep's run record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    /// Left `running` by a process that died; marked by the next sweep.
    Abandoned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] =
        [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed, RunStatus::Interrupted, RunStatus::Abandoned];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// Drops what the stores cannot keep (below a microsecond).
pub fn truncate(timestamp: DateTime<Utc>) -> DateTime<Utc> {
    timestamp.trunc_subsecs(6)
}
