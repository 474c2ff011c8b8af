//! New jobs (`jobs create`, `import`, `seed`), written in chunks: each
//! statement carries about [`CHUNK_BYTES`] of JSON, less where the engine
//! takes less in one statement (MariaDB's `max_allowed_packet`), and every
//! chunk goes in one transaction, so an import of any size stays all or
//! nothing (docs/lifecycle.md, "`jobs import`").

use serde::Serialize;
use sqlx::Database;

use super::{Arg, Codec, Db, Driver, On, StatementBytes, decode};
use crate::model::Job;
use crate::store::StoreError;

/// What one statement carries at most: small against every engine's limit,
/// large enough that a statement's own cost is spread over thousands of jobs.
const CHUNK_BYTES: usize = 1 << 20;

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
    retain_until: Option<T>,
}

/// A `job_drives` row of an insert, joined to its job by name.
#[derive(Serialize)]
struct DriveRow<'a> {
    job_name: &'a str,
    drive_id: &'a str,
    state: &'static str,
    bytes: i64,
}

/// A JSON array written one element at a time, so that its size is known
/// before an element is added.
#[derive(Default)]
struct JsonArray(String);

impl JsonArray {
    fn push(&mut self, element: &str) {
        self.0.push(if self.0.is_empty() { '[' } else { ',' });
        self.0.push_str(element);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self) -> Arg<'static> {
        let mut text = std::mem::take(&mut self.0);
        if text.is_empty() {
            text.push('[');
        }
        text.push(']');
        Arg::Json(text)
    }
}

fn to_json(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Database(error.to_string()))
}

fn job_row<DB: Codec>(job: &Job) -> JobRow<'_, DB::Time> {
    JobRow {
        name: &job.name,
        job_type: job.job_type.as_str(),
        state: job.state.as_str(),
        cancel_requested: job.cancel_requested,
        cancel_requested_at: job.cancel_requested_at.map(DB::store_time),
        hold_reason: job.hold_reason.as_deref(),
        created_at: DB::store_time(job.created_at),
        updated_at: DB::store_time(job.updated_at),
        state_changed_at: DB::store_time(job.state_changed_at),
        retain_until: job.retain_until.map(DB::store_time),
    }
}

/// The job's rows: its own, and its drives' (each an element of the drives' array).
fn rows<DB: Codec>(job: &Job) -> Result<(String, Vec<String>), StoreError> {
    let drives = job.drives.iter().map(|drive| {
        to_json(&DriveRow {
            job_name: &job.name,
            drive_id: &drive.drive_id,
            state: drive.state.as_str(),
            bytes: drive.bytes,
        })
    });
    Ok((to_json(&job_row::<DB>(job))?, drives.collect::<Result<_, _>>()?))
}

/// The most JSON a statement may carry on this session's server: half its
/// limit (the statement's text and framing take their share), at most [`CHUNK_BYTES`].
async fn chunk_bytes<D: Driver>(conn: &mut <D::Db as Database>::Connection) -> Result<usize, StoreError> {
    let limit = match D::SQL.statement_bytes {
        StatementBytes::Fixed(bytes) => bytes,
        StatementBytes::Query(statement) => {
            let row = D::Db::fetch_one(On::Connection(conn), D::Db::query(statement, &[])).await?;
            D::Db::int(&row, "bytes")?
        }
    };
    Ok(CHUNK_BYTES.min(usize::try_from(limit / 2).unwrap_or(0)))
}

/// Writes `jobs` in one transaction, in chunks; refuses them all when a
/// name is taken, naming the first such job (its index in `jobs`).
pub(super) async fn create_jobs<D: Driver>(driver: &D, jobs: &[Job]) -> Result<(), StoreError> {
    let mut tx = driver.begin().await?;
    let budget = chunk_bytes::<D>(&mut *tx).await?;
    let (mut job_rows, mut drive_rows, mut first) = (JsonArray::default(), JsonArray::default(), 0);
    for (index, job) in jobs.iter().enumerate() {
        let (row, drives) = rows::<D::Db>(job)?;
        let adds = row.len() + drives.iter().map(|drive| drive.len() + 1).sum::<usize>() + 1;
        if !job_rows.is_empty() && job_rows.len() + drive_rows.len() + adds > budget {
            write_chunk::<D>(&mut *tx, first, &jobs[first..index], &mut job_rows, &mut drive_rows).await?;
            first = index;
        }
        job_rows.push(&row);
        drives.iter().for_each(|drive| drive_rows.push(drive));
    }
    if !job_rows.is_empty() {
        write_chunk::<D>(&mut *tx, first, &jobs[first..], &mut job_rows, &mut drive_rows).await?;
    }
    driver.commit(tx).await
}

/// One chunk's statements: its names checked, its jobs, its drives. `first`
/// is the index of the chunk's first job among all the jobs written.
async fn write_chunk<D: Driver>(
    conn: &mut <D::Db as Database>::Connection,
    first: usize,
    jobs: &[Job],
    job_rows: &mut JsonArray,
    drive_rows: &mut JsonArray,
) -> Result<(), StoreError> {
    let names = jobs.iter().map(|job| job.name.clone()).collect();
    let query = D::Db::query(D::SQL.taken_names, &[Arg::Names(Some(names))]);
    let taken = D::Db::fetch_all(On::Connection(&mut *conn), query).await?;
    let taken = decode::all(&taken, |row| D::Db::text(row, "name"))?;
    if let Some(index) = jobs.iter().position(|job| taken.contains(&job.name)) {
        return Err(StoreError::NameTaken { name: jobs[index].name.clone(), index: first + index });
    }
    D::Db::execute(On::Connection(&mut *conn), D::Db::query(D::SQL.insert_jobs, &[job_rows.take()])).await?;
    if !drive_rows.is_empty() {
        D::Db::execute(On::Connection(conn), D::Db::query(D::SQL.insert_drives, &[drive_rows.take()])).await?;
    }
    Ok(())
}
