//! `jobs seed`: synthetic jobs for demos and benchmarks. Every state, ages
//! spread over the chosen number of days, some cancelled, some held, each
//! with one to ten drives in states that fit the job's. With the default
//! retention about 30 % of the jobs are eligible.
//!
//! Jobs come out in creation order, so ids and names follow `created_at` as
//! in a real store, where a job's row is written when it is created; the
//! order in which a sweep meets them (by age) is then close to the order of
//! the rows on disk, give or take the weeks a job takes to finish.
//!
//! The same seed, count and moment give the same jobs.

use chrono::{DateTime, Duration, Utc};

use crate::lifecycle::{DriveState, JobState, JobType};
use crate::model::{Drive, Job, truncate};

/// Share of jobs per state, in per mille.
const STATE_MIX: [(JobState, u32); 7] = [
    (JobState::Creating, 120),
    (JobState::Shipping, 120),
    (JobState::Received, 80),
    (JobState::Transferring, 180),
    (JobState::Packaging, 100),
    (JobState::Completed, 360),
    (JobState::Closed, 40),
];

const HOLD_REASONS: [&str; 3] = ["legal hold", "customer dispute", "security investigation"];

/// Makes `count` jobs in chunks, so a million of them never sit in memory at
/// once. Each job is drawn from its own random stream, so it can be drawn
/// twice: once to learn when it was created, once to make it in that order.
pub struct SeedGenerator {
    seed: u64,
    rng: fastrand::Rng,
    now: DateTime<Utc>,
    days: u32,
    prefix: String,
    /// Job streams in creation order (16 bytes a job).
    order: std::vec::IntoIter<(DateTime<Utc>, u64)>,
    next: u64,
}

impl SeedGenerator {
    pub fn new(seed: u64, now: DateTime<Utc>, days: u32, prefix: String, count: u64) -> SeedGenerator {
        let mut generator = SeedGenerator {
            seed,
            rng: fastrand::Rng::new(),
            now: truncate(now),
            days,
            prefix,
            order: Vec::new().into_iter(),
            next: 0,
        };
        let mut order: Vec<(DateTime<Utc>, u64)> =
            (0..count).map(|stream| (generator.job(stream).created_at, stream)).collect();
        order.sort_unstable();
        generator.order = order.into_iter();
        generator
    }

    /// The name of the job with this number.
    pub fn name(&self, number: u64) -> String {
        format!("{}-{number:07}", self.prefix)
    }

    /// The next `count` jobs (fewer when the generator runs out).
    pub fn chunk(&mut self, count: usize) -> Vec<Job> {
        let streams: Vec<u64> = self.order.by_ref().take(count).map(|(_, stream)| stream).collect();
        let mut jobs = Vec::with_capacity(streams.len());
        for stream in streams {
            let mut job = self.job(stream);
            job.name = self.name(self.next);
            self.next += 1;
            jobs.push(job);
        }
        jobs
    }

    fn random_age(&mut self, max_days: u32) -> Duration {
        Duration::seconds(self.rng.i64(0..i64::from(max_days.max(1)) * 86_400))
    }

    fn pick_state(&mut self) -> JobState {
        let mut roll = self.rng.u32(0..1000);
        for (state, share) in STATE_MIX {
            if roll < share {
                return state;
            }
            roll -= share;
        }
        JobState::Completed
    }

    /// The job drawn from random stream `stream`, named after the stream for now.
    fn job(&mut self, stream: u64) -> Job {
        self.rng.seed(self.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let name = self.name(stream);
        let state = self.pick_state();
        // Finished jobs are spread over the whole period; jobs in flight are recent.
        let age_days = match state {
            JobState::Completed | JobState::Closed => self.days,
            JobState::Creating => 60.min(self.days),
            _ => 30.min(self.days),
        };
        let entered = self.now - self.random_age(age_days);
        let created_at =
            if state == JobState::Creating { entered } else { entered - Duration::hours(self.rng.i64(24..40 * 24)) };
        let cancel_requested = self.rng.u32(0..100) < 8;
        let cancel_requested_at = cancel_requested.then(|| {
            let span = (entered - created_at).num_seconds().max(1);
            created_at + Duration::seconds(self.rng.i64(0..span))
        });
        let hold_reason =
            (self.rng.u32(0..100) == 0).then(|| HOLD_REASONS[self.rng.usize(..HOLD_REASONS.len())].to_owned());
        let drives = self.drives(state);
        Job {
            name,
            job_type: if self.rng.bool() { JobType::Import } else { JobType::Export },
            state,
            cancel_requested,
            cancel_requested_at,
            hold_reason,
            created_at,
            updated_at: entered.max(cancel_requested_at.unwrap_or(entered)),
            state_changed_at: entered,
            retain_until: None,
            drives,
        }
    }

    fn drives(&mut self, state: JobState) -> Vec<Drive> {
        const COUNTS: [usize; 10] = [1, 1, 1, 2, 2, 3, 4, 5, 8, 10];
        let choices: &[DriveState] = match state {
            JobState::Creating | JobState::Shipping => &[DriveState::Specified],
            JobState::Received => &[DriveState::Received, DriveState::NeverReceived],
            JobState::Transferring => &[DriveState::Transferring, DriveState::Completed],
            JobState::Packaging => &[DriveState::Completed, DriveState::CompletedMoreInfo],
            JobState::Completed => &[DriveState::ShippedBack],
            JobState::Closed => &[DriveState::NeverReceived, DriveState::CompletedMoreInfo, DriveState::ShippedBack],
        };
        let count = COUNTS[self.rng.usize(..COUNTS.len())];
        (0..count)
            .map(|i| {
                let drive_state = choices[self.rng.usize(..choices.len())];
                let bytes = match drive_state {
                    DriveState::Specified | DriveState::NeverReceived => 0,
                    _ => self.rng.i64(0..16_000_000_000_000),
                };
                Drive { drive_id: format!("{:06X}{i:02}", self.rng.u32(..0x0100_0000)), state: drive_state, bytes }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle;

    #[test]
    fn seeded_jobs_are_valid_varied_and_reproducible() {
        let now = Utc::now();
        let mut generator = SeedGenerator::new(7, now, 365, "seed-t".into(), 5000);
        let jobs = generator.chunk(3000);
        let jobs = [jobs, generator.chunk(3000)].concat();
        assert_eq!(jobs.len(), 5000);
        assert_eq!(jobs, SeedGenerator::new(7, now, 365, "seed-t".into(), 5000).chunk(5000));
        assert!(jobs.windows(2).all(|pair| pair[0].created_at <= pair[1].created_at), "creation order");
        assert_eq!(jobs[4999].name, "seed-t-0004999");
        for state in JobState::ALL {
            assert!(jobs.iter().any(|job| job.state == state), "{state}");
        }
        assert!(jobs.iter().any(|job| job.cancel_requested));
        assert!(jobs.iter().any(|job| job.hold_reason.is_some()));
        for job in &jobs {
            lifecycle::validate_name(&job.name).unwrap();
            lifecycle::validate_drives(job.drives.iter().map(|d| (d.drive_id.as_str(), d.bytes))).unwrap();
            assert!(job.created_at <= job.state_changed_at && job.state_changed_at <= job.updated_at);
            assert!(job.updated_at <= now);
        }
        let cutoff = now - Duration::days(90);
        let eligible = jobs
            .iter()
            .filter(|job| matches!(job.state, JobState::Completed | JobState::Closed))
            .filter(|job| job.hold_reason.is_none() && job.state_changed_at <= cutoff)
            .count();
        let share = eligible as f64 / jobs.len() as f64;
        assert!((0.25..0.35).contains(&share), "eligible share {share}");
    }
}
