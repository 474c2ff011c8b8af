//! The daemon's clock (SPEC §6): fires a callback on a six-field cron
//! expression (seconds first), in UTC, through tokio-cron-scheduler.
//!
//! The callback must be quick: it only decides whether to start a sweep and
//! spawns it elsewhere, so a slow or failing sweep never delays or stops the
//! scheduler. The crate's quirks that matter here: it fixes a time zone's
//! offset when a job is created (so only UTC is accepted, see `config/validate.rs`),
//! drops missed ticks rather than catching up, and guards against no overlap
//! (the daemon does that itself).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use tokio_cron_scheduler::{JobBuilder, JobScheduler, JobSchedulerError};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("scheduler: {0}")]
pub struct SchedulerError(String);

impl From<JobSchedulerError> for SchedulerError {
    fn from(error: JobSchedulerError) -> Self {
        SchedulerError(error.to_string())
    }
}

/// Checks a cron expression with the parser settings the scheduler uses:
/// six fields, seconds first; day-of-month and day-of-week match either, as in cron.
pub fn check_cron(expression: &str) -> Result<(), String> {
    CronParser::builder().seconds(Seconds::Required).build().parse(expression).map(|_| ()).map_err(|e| e.to_string())
}

/// A running schedule with one cron job.
pub struct Schedule {
    scheduler: JobScheduler,
    job: Uuid,
    on_tick: Arc<dyn Fn() + Send + Sync>,
}

impl Schedule {
    /// Starts calling `on_tick` on every tick of `cron`.
    pub async fn start(cron: &str, on_tick: impl Fn() + Send + Sync + 'static) -> Result<Schedule, SchedulerError> {
        let on_tick: Arc<dyn Fn() + Send + Sync> = Arc::new(on_tick);
        let scheduler = JobScheduler::new().await?;
        let job = scheduler.add(cron_job(cron, on_tick.clone())?).await?;
        scheduler.start().await?;
        Ok(Schedule { scheduler, job, on_tick })
    }

    /// Replaces the cron expression; the old one stays if the new one is refused.
    pub async fn replace(&mut self, cron: &str) -> Result<(), SchedulerError> {
        let job = self.scheduler.add(cron_job(cron, self.on_tick.clone())?).await?;
        if let Err(error) = self.scheduler.remove(&self.job).await {
            let _ = self.scheduler.remove(&job).await;
            return Err(error.into());
        }
        self.job = job;
        Ok(())
    }

    /// When the next tick fires, if the scheduler knows.
    pub async fn next_tick(&mut self) -> Option<DateTime<Utc>> {
        self.scheduler.next_tick_for_job(self.job).await.ok().flatten()
    }

    /// Stops ticking. A callback already running is not waited for.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.scheduler.shutdown().await {
            tracing::warn!(%error, "the scheduler did not shut down cleanly");
        }
    }
}

fn cron_job(cron: &str, on_tick: Arc<dyn Fn() + Send + Sync>) -> Result<tokio_cron_scheduler::Job, SchedulerError> {
    check_cron(cron).map_err(|error| SchedulerError(format!("schedule.cron = {cron:?}: {error}")))?;
    let job = JobBuilder::new()
        .with_timezone(Utc)
        .with_cron_job_type()
        .with_schedule(cron)?
        .with_run_async(Box::new(move |_, _| {
            on_tick();
            Box::pin(async {})
        }))
        .build()?;
    Ok(job)
}
