//! A batch the server rolled back to break a deadlock is tried again as it
//! was, after a short pause, a few times in a row (docs/operations.md, "The
//! live workload"). A batch waits for the rows an application's transaction
//! has locked; one that locks eligible jobs in another order than the
//! batch's id order can meet it in a deadlock, and the server then rolls
//! one of the two back whole: the batch deleted and counted nothing.

use std::time::Duration;

/// Retries in a row; the deadlock after them fails the sweep: one that
/// keeps coming back is no chance meeting, and the operator should hear of it.
const RETRIES_IN_A_ROW: u32 = 3;

/// The least pause before a retry: the transaction that won has its locks
/// and is left time to commit.
const PAUSE: Duration = Duration::from_millis(20);

/// The most added at random to [`PAUSE`], so that two sessions that keep
/// meeting do not come back in step.
const JITTER: Duration = Duration::from_millis(20);

/// The deadlocks of a sweep's batches since its last committed batch.
#[derive(Debug, Default)]
pub struct Deadlocks {
    in_a_row: u32,
}

impl Deadlocks {
    /// Whether a batch just rolled back in a deadlock may be tried again
    /// (counted as one more in a row).
    pub fn may_retry(&mut self) -> bool {
        self.in_a_row += 1;
        self.in_a_row <= RETRIES_IN_A_ROW
    }

    /// Waits before the retry.
    pub async fn pause(&self) {
        let jitter = Duration::from_micros(fastrand::u64(0..=JITTER.as_micros() as u64));
        tokio::time::sleep(PAUSE + jitter).await;
    }

    /// A batch committed: the next deadlock is the first in a row again.
    pub fn committed(&mut self) {
        self.in_a_row = 0;
    }
}
