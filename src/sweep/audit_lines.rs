//! The `retentiond::audit` log line of every job a batch deleted
//! (`docs/design.md`, "Observability"), written on a blocking thread while
//! the sweep goes on with its next batch: written in line, a batch's lines
//! kept the next batch waiting (`docs/operations.md`, "Audit log lines off
//! the hot path"). A batch's lines are written once it has committed (the
//! audit rows come first), one batch at a time, in batch order, and all of
//! them before the sweep reports its end.

use tokio::task::JoinHandle;

use crate::store::DeletedJob;

/// The lines of the batch being written, if any.
#[derive(Default)]
pub struct AuditLines {
    writing: Option<JoinHandle<()>>,
}

impl AuditLines {
    /// Writes the lines of a committed batch, after those of the batch before.
    pub async fn write(&mut self, run_id: i64, deleted: Vec<DeletedJob>) {
        self.finish().await;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            for job in &deleted {
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
        }));
    }

    /// Waits until every line handed over is written.
    pub async fn finish(&mut self) {
        if let Some(writing) = self.writing.take()
            && let Err(error) = writing.await
        {
            tracing::error!(%error, "the audit log lines of a batch were not all written");
        }
    }
}
