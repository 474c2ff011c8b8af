//! What a sweep does with the jobs of a committed batch, on a blocking
//! thread while it goes on with its next batch: reads the rows the batch's
//! statement returned into jobs, counts them per policy, records their
//! metrics and writes the `retentiond::audit` log line of each
//! (`docs/design.md`, "Observability"). Done in line, that work kept the
//! next batch waiting (`docs/operations.md`, "Committed batches off the hot
//! path"). A batch is handed over once it has committed (its audit rows
//! come first), one batch at a time, in batch order, and all are done
//! before the sweep reports its end.

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use crate::metrics;
use crate::policy::{PerPolicy, Policy, Retentions, SortKey};
use crate::store::{DeletedJobs, StoreError};

/// Jobs per policy, and the oldest age timestamp among them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub counts: PerPolicy<u64>,
    pub oldest: Option<DateTime<Utc>>,
}

impl Tally {
    /// Counts one job.
    pub fn take(&mut self, policy: Policy, key: SortKey) {
        self.counts[policy] += 1;
        self.oldest = Some(self.oldest.map_or(key.timestamp, |oldest| oldest.min(key.timestamp)));
    }

    pub fn add(&mut self, other: Tally) {
        for policy in Policy::ALL {
            self.counts[policy] += other.counts[policy];
        }
        self.oldest = self.oldest.into_iter().chain(other.oldest).min();
    }
}

/// The committed batches of one sweep: the one being worked on, if any, and
/// what those done so far deleted.
pub struct Committed {
    retentions: Retentions,
    working: Option<JoinHandle<Result<Tally, StoreError>>>,
    done: Tally,
}

impl Committed {
    pub fn new(retentions: Retentions) -> Committed {
        Committed { retentions, working: None, done: Tally::default() }
    }

    /// Hands over the jobs of a committed batch once those of the batch
    /// before are done; fails if those could not be read.
    pub async fn hand_over(&mut self, run_id: i64, deleted: DeletedJobs) -> Result<(), StoreError> {
        self.finish().await?;
        let retentions = self.retentions;
        self.working = Some(tokio::task::spawn_blocking(move || {
            let jobs = deleted.decode()?;
            let mut tally = Tally::default();
            for job in &jobs {
                tally.take(job.policy, job.key);
                tracing::info!(
                    target: "retentiond::audit",
                    run_id,
                    job = job.name,
                    job_type = job.job_type.as_str(),
                    policy = job.policy.as_str(),
                    state = job.state.as_str(),
                    cancel_requested = job.cancel_requested,
                    state_changed_at = %job.state_changed_at.to_rfc3339(),
                    "job deleted"
                );
            }
            metrics::jobs_deleted(&tally.counts, &jobs, &retentions);
            Ok(tally)
        }));
        Ok(())
    }

    /// Waits until every batch handed over is done.
    pub async fn finish(&mut self) -> Result<(), StoreError> {
        let Some(working) = self.working.take() else { return Ok(()) };
        match working.await {
            Ok(read) => read.map(|tally| self.done.add(tally)),
            Err(error) => {
                tracing::error!(%error, "the jobs of a committed batch were not all counted and logged");
                Ok(())
            }
        }
    }

    /// What the batches done so far deleted.
    pub fn done(&self) -> Tally {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{JobState, JobType};
    use crate::store::DeletedJob;

    fn job(job_id: i64, policy: Policy, age: &str) -> DeletedJob {
        let at = DateTime::parse_from_rfc3339(age).unwrap().to_utc();
        DeletedJob {
            name: format!("job-{job_id}"),
            job_type: JobType::Import,
            policy,
            state: JobState::Completed,
            cancel_requested: false,
            created_at: at,
            state_changed_at: at,
            deleted_at: Utc::now(),
            key: SortKey { timestamp: at, job_id },
        }
    }

    /// Rows that read as `jobs`, or fail to read when `jobs` is `None`.
    fn batch(jobs: Option<Vec<DeletedJob>>) -> DeletedJobs {
        let rows = jobs.map_or_else(|| vec![None], |jobs| jobs.into_iter().map(Some).collect());
        DeletedJobs::from_rows(rows, |row| {
            row.clone().ok_or_else(|| StoreError::Database("a row the code does not know".to_owned()))
        })
    }

    #[tokio::test]
    async fn batches_are_tallied_in_order_and_a_row_that_cannot_be_read_fails_the_next_hand_over() {
        let mut committed = Committed::new(Retentions::default());
        let first =
            vec![job(2, Policy::Completed, "2026-01-02T00:00:00Z"), job(1, Policy::Closed, "2026-03-01T00:00:00Z")];
        committed.hand_over(7, batch(Some(first))).await.unwrap();
        committed.hand_over(7, batch(Some(vec![job(3, Policy::Completed, "2025-12-31T00:00:00Z")]))).await.unwrap();
        committed.finish().await.unwrap();
        let done = committed.done();
        assert_eq!((done.counts[Policy::Completed], done.counts[Policy::Closed]), (2, 1));
        assert_eq!(done.oldest.unwrap().to_rfc3339(), "2025-12-31T00:00:00+00:00");

        committed.hand_over(7, batch(None)).await.unwrap();
        let failed = committed.hand_over(7, batch(Some(vec![job(4, Policy::Completed, "2026-01-01T00:00:00Z")]))).await;
        assert!(failed.unwrap_err().to_string().contains("a row the code does not know"));
        // The failed batch counts for nothing; the sweep stops there.
        assert_eq!(committed.done().counts[Policy::Completed], 2);
    }

    #[tokio::test]
    async fn the_last_batch_failing_to_read_fails_the_finish() {
        let mut committed = Committed::new(Retentions::default());
        committed.hand_over(7, batch(None)).await.unwrap();
        assert!(committed.finish().await.is_err());
        assert_eq!(committed.done().counts[Policy::Completed], 0);
    }
}
