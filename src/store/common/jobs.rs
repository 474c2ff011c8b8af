//! The job commands' flows, for every engine: create (in chunks: `create`),
//! show, list, change (lock the row, decide with `crate::lifecycle`, write)
//! and delete by hand (the same, and the audit row in the same transaction).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Database;

use super::{Arg, Db, DeleteJob, Driver, On, Purpose, decode, limit};
use crate::lifecycle::{Effect, Operation};
use crate::model::{AuditEntry, Job};
use crate::store::records::JobFilter;
use crate::store::{JobStore, StoreError, conflict};

type Row<D> = <<D as Driver>::Db as Database>::Row;

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
        super::create::create_jobs(self, jobs).await
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
                    job.retain_until.into(),
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
