//! Shaping shared by both stores: the rows a batch of new jobs becomes (sent
//! to the database as one JSON array per table, so an insert is one
//! statement), the check that their names are free, and reassembling jobs
//! with the drives read in a second query.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::model::{Drive, Job};

/// A `jobs` row to insert; `T` is how the backend stores a timestamp.
#[derive(Serialize)]
pub struct JobRow<'a, T> {
    name: &'a str,
    job_type: &'static str,
    state: &'static str,
    cancel_requested: bool,
    cancel_requested_at: Option<T>,
    hold_reason: Option<&'a str>,
    created_at: T,
    updated_at: T,
    state_changed_at: T,
}

/// A `job_drives` row to insert, joined to its job by name.
#[derive(Serialize)]
pub struct DriveRow<'a> {
    job_name: &'a str,
    drive_id: &'a str,
    state: &'static str,
    bytes: i64,
}

pub fn job_rows<T>(jobs: &[Job], timestamp: impl Fn(DateTime<Utc>) -> T) -> Vec<JobRow<'_, T>> {
    jobs.iter()
        .map(|job| JobRow {
            name: &job.name,
            job_type: job.job_type.as_str(),
            state: job.state.as_str(),
            cancel_requested: job.cancel_requested,
            cancel_requested_at: job.cancel_requested_at.map(&timestamp),
            hold_reason: job.hold_reason.as_deref(),
            created_at: timestamp(job.created_at),
            updated_at: timestamp(job.updated_at),
            state_changed_at: timestamp(job.state_changed_at),
        })
        .collect()
}

pub fn drive_rows(jobs: &[Job]) -> Vec<DriveRow<'_>> {
    jobs.iter()
        .flat_map(|job| {
            job.drives.iter().map(|drive| DriveRow {
                job_name: &job.name,
                drive_id: &drive.drive_id,
                state: drive.state.as_str(),
                bytes: drive.bytes,
            })
        })
        .collect()
}

pub fn names(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|job| job.name.as_str()).collect()
}

/// Fails on the first job, in input order, whose name is among `taken`.
pub fn ensure_names_free(jobs: &[Job], taken: &[String]) -> Result<(), StoreError> {
    match jobs.iter().position(|job| taken.contains(&job.name)) {
        Some(index) => Err(StoreError::NameTaken { name: jobs[index].name.clone(), index }),
        None => Ok(()),
    }
}

/// Gives each job (by id) its drives.
pub fn attach_drives(jobs: Vec<(i64, Job)>, drives: Vec<(i64, Drive)>) -> Vec<Job> {
    let mut by_job: HashMap<i64, Vec<Drive>> = HashMap::new();
    for (job_id, drive) in drives {
        by_job.entry(job_id).or_default().push(drive);
    }
    jobs.into_iter()
        .map(|(id, mut job)| {
            job.drives = by_job.remove(&id).unwrap_or_default();
            job
        })
        .collect()
}
