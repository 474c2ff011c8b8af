//! The job commands' flows, for every engine: create (all or nothing, the
//! names checked first), show, list, change (lock the row, decide with
//! `crate::lifecycle`, write) and delete by hand (the same, and the audit
//! row in the same transaction).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Database;

use super::{Arg, Codec, Db, DeleteJob, Driver, On, Purpose, decode, limit};
use crate::lifecycle::{Effect, Operation};
use crate::model::{AuditEntry, Job};
use crate::store::records::JobFilter;
use crate::store::{JobStore, StoreError, conflict};

type Row<D> = <<D as Driver>::Db as Database>::Row;

/// A `jobs` row of an insert, in the JSON array the insert statement reads;
/// `T` is how the engine stores a timestamp.
#[derive(Serialize)]
struct JobRow<'a, T> {
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

/// A `job_drives` row of an insert, joined to its job by name.
#[derive(Serialize)]
struct DriveRow<'a> {
    job_name: &'a str,
    drive_id: &'a str,
    state: &'static str,
    bytes: i64,
}

fn json(rows: &impl Serialize) -> Result<Arg<'static>, StoreError> {
    let text = serde_json::to_string(rows).map_err(|error| StoreError::Database(error.to_string()))?;
    Ok(Arg::Json(text))
}

fn job_rows<DB: Codec>(jobs: &[Job]) -> Vec<JobRow<'_, DB::Time>> {
    jobs.iter()
        .map(|job| JobRow {
            name: &job.name,
            job_type: job.job_type.as_str(),
            state: job.state.as_str(),
            cancel_requested: job.cancel_requested,
            cancel_requested_at: job.cancel_requested_at.map(DB::store_time),
            hold_reason: job.hold_reason.as_deref(),
            created_at: DB::store_time(job.created_at),
            updated_at: DB::store_time(job.updated_at),
            state_changed_at: DB::store_time(job.state_changed_at),
        })
        .collect()
}

fn drive_rows(jobs: &[Job]) -> Vec<DriveRow<'_>> {
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

/// Attaches each job's drives, read in one statement.
async fn with_drives<D: Driver>(
    conn: &mut <D::Db as Database>::Connection,
    jobs: Vec<(i64, Job)>,
) -> Result<Vec<Job>, StoreError> {
    let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
    let query = D::Db::query(D::SQL.drives_of_jobs, &[Arg::Ids(&ids)]);
    let drives = D::Db::fetch_all(On::Connection(conn), query).await?;
    decode::with_drives::<D::Db>(jobs, &drives)
}

/// The job's row, locked until the transaction ends, with the transaction's
/// clock. Its id is read by name without a lock, then the row is locked by
/// id: a sweep's batch locks rows by id too, and a lock taken through the
/// name's index would come before the row's on MariaDB, the reverse of the
/// batch's order (`mariadb/sql.rs`, `LOCK_JOB`). A job deleted in between
/// (a command that waited for a batch deleting it) is looked up again: its
/// name is gone, or another job has it now.
async fn lock_job<D: Driver>(
    driver: &D,
    conn: &mut <D::Db as Database>::Connection,
    name: &str,
) -> Result<(i64, Job, DateTime<Utc>), StoreError> {
    loop {
        let found = D::Db::fetch_optional(On::Connection(&mut *conn), D::Db::query(D::SQL.job_by_name, &[name.into()]));
        let Some(row) = found.await? else { return Err(StoreError::NotFound(crate::lifecycle::quoted(name))) };
        let (id, _) = decode::job::<D::Db>(&row)?;
        let query = D::Db::query(D::SQL.lock_job, &[id.into(), name.into()]);
        let locked: Option<Row<D>> = D::Db::fetch_optional(On::Connection(&mut *conn), query).await?;
        if let Some(row) = locked {
            let (id, job) = decode::job::<D::Db>(&row)?;
            return Ok((id, job, driver.transaction_clock(&row)?));
        }
    }
}

#[async_trait]
impl<D: Driver> JobStore for D {
    async fn create_jobs(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let names = jobs.iter().map(|job| job.name.clone()).collect();
        let taken =
            D::Db::fetch_all(On::Connection(&mut *tx), D::Db::query(D::SQL.taken_names, &[Arg::Names(Some(names))]))
                .await?;
        let taken = decode::all(&taken, |row| D::Db::text(row, "name"))?;
        if let Some(index) = jobs.iter().position(|job| taken.contains(&job.name)) {
            return Err(StoreError::NameTaken { name: jobs[index].name.clone(), index });
        }
        let insert = D::Db::query(D::SQL.insert_jobs, &[json(&job_rows::<D::Db>(jobs))?]);
        D::Db::execute(On::Connection(&mut *tx), insert).await?;
        let drives = drive_rows(jobs);
        if !drives.is_empty() {
            D::Db::execute(On::Connection(&mut *tx), D::Db::query(D::SQL.insert_drives, &[json(&drives)?])).await?;
        }
        self.commit(tx).await
    }

    async fn job(&self, name: &str) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool(Purpose::General).acquire().await?;
        let row = D::Db::fetch_optional(On::Connection(&mut *conn), D::Db::query(D::SQL.job_by_name, &[name.into()]));
        let Some(row) = row.await? else { return Ok(None) };
        Ok(with_drives::<D>(&mut *conn, vec![decode::job::<D::Db>(&row)?]).await?.pop())
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let states = (!filter.states.is_empty()).then(|| filter.states.iter().map(|s| s.as_str().to_owned()).collect());
        let mut conn = self.pool(Purpose::General).acquire().await?;
        let query = D::Db::query(D::SQL.jobs, &[Arg::Names(states), limit(filter.limit)]);
        let rows = D::Db::fetch_all(On::Connection(&mut *conn), query).await?;
        let jobs = decode::all(&rows, decode::job::<D::Db>)?;
        with_drives::<D>(&mut *conn, jobs).await
    }

    async fn change_job(&self, name: &str, operation: &Operation) -> Result<Job, StoreError> {
        let mut tx = self.begin().await?;
        let (id, mut job, now) = lock_job(self, &mut *tx, name).await?;
        let effect = crate::lifecycle::decide(&job.status(), operation).map_err(|e| conflict(name, e))?;
        if job.apply(&effect, now) {
            let update = D::Db::query(
                D::SQL.update_job,
                &[
                    id.into(),
                    job.state.as_str().into(),
                    job.cancel_requested.into(),
                    job.cancel_requested_at.into(),
                    job.hold_reason.as_deref().into(),
                    job.updated_at.into(),
                    job.state_changed_at.into(),
                ],
            );
            D::Db::execute(On::Connection(&mut *tx), update).await?;
        }
        let job = with_drives::<D>(&mut *tx, vec![(id, job)]).await?.remove(0);
        self.commit(tx).await?;
        Ok(job)
    }

    async fn delete_job(&self, name: &str, deleted_by: &str) -> Result<AuditEntry, StoreError> {
        let mut tx = self.begin().await?;
        let (id, job, now) = lock_job(self, &mut *tx, name).await?;
        let effect = crate::lifecycle::decide(&job.status(), &Operation::Delete).map_err(|e| conflict(name, e))?;
        debug_assert_eq!(effect, Effect::Delete);
        let args = [id.into(), deleted_by.into(), now.into()];
        let audit = match D::SQL.delete_job {
            DeleteJob::AuditedDelete(statement) => {
                D::Db::fetch_one(On::Connection(&mut *tx), D::Db::query(statement, &args)).await?
            }
            DeleteJob::AuditThenDelete { audit, delete } => {
                let row = D::Db::fetch_one(On::Connection(&mut *tx), D::Db::query(audit, &args)).await?;
                D::Db::execute(On::Connection(&mut *tx), D::Db::query(delete, &args[..1])).await?;
                row
            }
        };
        let entry = decode::audit_entry::<D::Db>(&audit)?;
        self.commit(tx).await?;
        Ok(entry)
    }
}
