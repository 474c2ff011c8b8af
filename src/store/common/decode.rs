//! Rows into records, for every engine: each record is read from the
//! columns of the same names whatever the engine, and each timestamp
//! through the engine's [`Codec`](super::Codec).

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::Database;

use super::Db;
use crate::lifecycle::JobType;
use crate::model::{AuditEntry, Drive, Job, Pauses, Removed, RunRecord, RunStatus};
use crate::policy::{PerPolicy, PerRule, Policy, RULES, Retentions, SortKey};
use crate::store::StoreError;
use crate::store::records::{
    Candidate, ClockReading, DeletedJob, EligibleIds, EligibleJobs, ForecastCount, HeldJob, TrailKey,
};

type Row<DB> = <DB as Database>::Row;

/// Parses a state or type column; a value the code does not know means the
/// schema and the code disagree.
fn parse<T: FromStr<Err = String>, DB: Db>(row: &Row<DB>, column: &str) -> Result<T, StoreError> {
    DB::text(row, column)?.parse().map_err(StoreError::Database)
}

/// The policy of the row's `policy` column.
pub(crate) fn policy<DB: Db>(row: &Row<DB>) -> Result<Policy, StoreError> {
    parse::<_, DB>(row, "policy")
}

/// The (`ts`, `id`) columns: a job's place in its policy's deletion order.
pub(crate) fn sort_key<DB: Db>(row: &Row<DB>) -> Result<SortKey, StoreError> {
    Ok(SortKey { timestamp: DB::time(row, "ts")?, job_id: DB::int(row, "id")? })
}

/// A `jobs` row (without drives) and its id.
pub(crate) fn job<DB: Db>(row: &Row<DB>) -> Result<(i64, Job), StoreError> {
    let job = Job {
        name: DB::text(row, "name")?,
        job_type: parse::<_, DB>(row, "job_type")?,
        state: parse::<_, DB>(row, "state")?,
        cancel_requested: DB::flag(row, "cancel_requested")?,
        cancel_requested_at: DB::optional_time(row, "cancel_requested_at")?,
        hold_reason: DB::optional_text(row, "hold_reason")?,
        created_at: DB::time(row, "created_at")?,
        updated_at: DB::time(row, "updated_at")?,
        state_changed_at: DB::time(row, "state_changed_at")?,
        retain_until: DB::optional_time(row, "retain_until")?,
        drives: Vec::new(),
    };
    Ok((DB::int(row, "id")?, job))
}

/// Gives each job (by id) its drives, from rows of `job_id` and the drive's columns.
pub(crate) fn with_drives<DB: Db>(jobs: Vec<(i64, Job)>, drives: &[Row<DB>]) -> Result<Vec<Job>, StoreError> {
    let mut by_job: HashMap<i64, Vec<Drive>> = HashMap::new();
    for row in drives {
        let drive = Drive {
            drive_id: DB::text(row, "drive_id")?,
            state: parse::<_, DB>(row, "state")?,
            bytes: DB::int(row, "bytes")?,
        };
        by_job.entry(DB::int(row, "job_id")?).or_default().push(drive);
    }
    Ok(jobs
        .into_iter()
        .map(|(id, mut job)| {
            job.drives = by_job.remove(&id).unwrap_or_default();
            job
        })
        .collect())
}

pub(crate) fn audit_entry<DB: Db>(row: &Row<DB>) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: DB::int(row, "id")?,
        run_id: DB::optional_int(row, "run_id")?,
        job_name: DB::text(row, "job_name")?,
        job_type: parse::<_, DB>(row, "job_type")?,
        policy: DB::text(row, "policy")?,
        state: parse::<_, DB>(row, "state")?,
        cancel_requested: DB::flag(row, "cancel_requested")?,
        created_at: DB::time(row, "created_at")?,
        state_changed_at: DB::time(row, "state_changed_at")?,
        deleted_at: DB::time(row, "deleted_at")?,
        deleted_by: DB::text(row, "deleted_by")?,
    })
}

pub(crate) fn run<DB: Db>(row: &Row<DB>) -> Result<RunRecord, StoreError> {
    let status = DB::text(row, "status")?;
    let count = |column| Ok::<_, StoreError>(DB::int(row, column)? as u64);
    let counts = PerPolicy {
        completed: count("deleted_completed")?,
        closed: count("deleted_closed")?,
        creating_idle: count("deleted_creating_idle")?,
        retain_until: count("deleted_retain_until")?,
    };
    Ok(RunRecord {
        run_id: DB::int(row, "id")?,
        trigger: DB::text(row, "trigger")?,
        started_at: DB::time(row, "started_at")?,
        finished_at: DB::optional_time(row, "finished_at")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("unknown run status {status:?}")))?,
        total: counts.total(),
        counts,
        stopped_by: DB::optional_text(row, "stopped_by")?,
        error: DB::optional_text(row, "error")?,
        host: DB::text(row, "host")?,
        pid: DB::int(row, "pid")?,
        removed: Removed { audit_rows: count("audit_rows_removed")?, runs: count("runs_removed")? },
        paused: Pauses { pauses: count("pauses")?, paused_ms: count("paused_ms")? },
    })
}

pub(crate) fn held_job<DB: Db>(row: &Row<DB>) -> Result<HeldJob, StoreError> {
    Ok(HeldJob {
        id: DB::int(row, "id")?,
        name: DB::text(row, "name")?,
        job_type: parse::<_, DB>(row, "job_type")?,
        state: parse::<_, DB>(row, "state")?,
        hold_reason: DB::text(row, "hold_reason")?,
        created_at: DB::time(row, "created_at")?,
        updated_at: DB::time(row, "updated_at")?,
        state_changed_at: DB::time(row, "state_changed_at")?,
    })
}

pub(crate) fn candidate<DB: Db>(row: &Row<DB>) -> Result<Candidate, StoreError> {
    Ok(Candidate {
        name: DB::text(row, "name")?,
        policy: policy::<DB>(row)?,
        job_type: parse::<_, DB>(row, "job_type")?,
        key: sort_key::<DB>(row)?,
    })
}

/// The ids a read of the next eligible jobs found, per rule, from rows
/// of `state`, `job_type`, `ts` and `id` in each rule's age order.
pub(crate) fn eligible_ids<DB: Db>(rows: &[Row<DB>]) -> Result<PerRule<EligibleIds>, StoreError> {
    let mut read = PerRule::<EligibleIds>::default();
    for row in rows {
        add_eligible_id::<DB>(&mut read, row)?;
    }
    Ok(read)
}

/// Adds the id of one row of [`eligible_ids`] to `read`.
pub(crate) fn add_eligible_id<DB: Db>(read: &mut PerRule<EligibleIds>, row: &Row<DB>) -> Result<(), StoreError> {
    let (policy, job_type) = rule::<DB>(row)?;
    read[policy][job_type].push(sort_key::<DB>(row)?);
    Ok(())
}

/// The rule of the row's `policy` and `job_type` columns.
pub(crate) fn rule<DB: Db>(row: &Row<DB>) -> Result<(Policy, JobType), StoreError> {
    Ok((policy::<DB>(row)?, parse::<_, DB>(row, "job_type")?))
}

/// A sweep's start read in one statement: the clock (`now`, `future`),
/// each rule's cut-off at it (a column named for the rule, and `settled`),
/// and the rows of [`eligible_ids`], one with a NULL `id` when there are
/// none. The ids are `None` when the statement's cut-offs are not
/// `policy::cutoffs` at its clock (the caller reads them again).
pub(crate) fn first_ids<DB: Db>(
    rows: &[Row<DB>],
    retentions: &Retentions,
) -> Result<(ClockReading, Option<PerRule<EligibleIds>>), StoreError> {
    let first = rows.first().ok_or_else(|| StoreError::Database("the sweep's first read returned no row".into()))?;
    let clock = clock::<DB>(first)?;
    let cutoffs = crate::policy::cutoffs(retentions, clock.now);
    for (policy, job_type) in RULES {
        let name = format!("{policy}_{}", job_type.as_str().to_lowercase());
        if DB::optional_time(first, &name)? != cutoffs[policy][job_type] {
            return Ok((clock, None));
        }
    }
    if DB::optional_time(first, "settled")? != cutoffs.settled {
        return Ok((clock, None));
    }
    let mut read = PerRule::<EligibleIds>::default();
    for row in rows {
        if DB::optional_int(row, "id")?.is_some() {
            add_eligible_id::<DB>(&mut read, row)?;
        }
    }
    Ok((clock, Some(read)))
}

/// A job a batch deleted, from the deleting statement's row: its columns,
/// its age timestamp as `ts`; deleted at `deleted_at`.
pub(crate) fn deleted_job<DB: Db>(row: &Row<DB>, deleted_at: DateTime<Utc>) -> Result<DeletedJob, StoreError> {
    Ok(DeletedJob {
        name: DB::text(row, "name")?,
        job_type: parse::<_, DB>(row, "job_type")?,
        policy: policy::<DB>(row)?,
        state: parse::<_, DB>(row, "state")?,
        cancel_requested: DB::flag(row, "cancel_requested")?,
        created_at: DB::time(row, "created_at")?,
        state_changed_at: DB::time(row, "state_changed_at")?,
        deleted_at,
        key: sort_key::<DB>(row)?,
    })
}

/// Per rule, a count column `<policy>_<type>` and a `<policy>_<type>_oldest`
/// column (`completed_import`, ...), summed per policy.
pub(crate) fn eligible<DB: Db>(row: &Row<DB>) -> Result<PerPolicy<EligibleJobs>, StoreError> {
    let mut eligible = PerPolicy::<EligibleJobs>::default();
    for (policy, job_type) in RULES {
        let name = format!("{policy}_{}", job_type.as_str().to_lowercase());
        let jobs = &mut eligible[policy];
        jobs.count += DB::int(row, &name)? as u64;
        let oldest = DB::optional_time(row, &format!("{name}_oldest"))?;
        jobs.oldest = match (jobs.oldest, oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(eligible)
}

pub(crate) fn forecast_count<DB: Db>(row: &Row<DB>) -> Result<ForecastCount, StoreError> {
    Ok(ForecastCount {
        policy: policy::<DB>(row)?,
        held: DB::flag(row, "held")?,
        day: DB::int(row, "day")?,
        jobs: DB::int(row, "jobs")? as u64,
    })
}

/// The database's clock and the jobs in its future: the `now` and `future`
/// columns of a server engine's reading of the clock (`CLOCK_AND_SKEW`, a run's start).
pub(crate) fn clock<DB: Db>(row: &Row<DB>) -> Result<ClockReading, StoreError> {
    Ok(ClockReading { now: DB::time(row, "now")?, future_jobs: DB::int(row, "future")? as u64 })
}

/// The (`at`, `id`) of a row the audit trail's lifecycle removed.
pub(crate) fn trail_key<DB: Db>(row: &Row<DB>) -> Result<TrailKey, StoreError> {
    Ok(TrailKey { at: DB::time(row, "at")?, id: DB::int(row, "id")? })
}

/// Every row of `rows` through `decode`.
pub(crate) fn all<R, T>(rows: &[R], decode: impl Fn(&R) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}
