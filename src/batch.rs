//! How many jobs the next batch of a sweep takes (`retention.batch_size`).
//!
//! A number is used as it is. `auto`, the default, starts at 1,000 jobs and
//! steers the size so that one batch's statements take about
//! `retention.batch_budget`: a short transaction holds SQLite's write lock
//! (and the server engines' row locks) briefly, while a batch too small
//! spends its time on per-transaction costs (commit, WAL sync, round trips)
//! instead of deleting. A batch's commit, where the store times it apart,
//! is left out: its wait for the disk does not grow with the batch, and a
//! store whose commits are noisy (MariaDB's wait for the redo log,
//! `docs/operations.md`) would otherwise shrink its batches until each was
//! mostly its commit. The size follows the median rate of the last three
//! full batches, growing by at most a quarter and shrinking by at most half
//! at a time: one slow batch (a checkpoint, a busy disk) moves nothing. A
//! statement timeout cuts the size to a quarter.
//!
//! The cost of a job is not the same at every size: past some size a batch
//! can cost more per job (it was so on PostgreSQL over TLS while the driver
//! left Nagle's algorithm on: `docs/operations.md`, "Batches sized by
//! time"). Steering by the rate alone would swing between a size below that
//! point and one above it. So when a larger batch went over the budget and
//! was markedly slower per job than the one before it, the sizer goes back
//! to the smaller size; when the next try at that size is so again, it
//! stays at or below the smaller size for a while, then tries again
//! (conditions change within a long sweep). One slow batch alone (a
//! checkpoint, a new pooled connection's TLS handshake) sets no such limit,
//! nor does a larger batch that stayed within the budget: slower per job,
//! it still holds its locks no longer than it should.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The largest batch, whatever the budget allows: it bounds a sweep's memory.
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// The first batch of an `auto` sweep.
pub const FIRST_AUTO_BATCH: u32 = 1000;

/// At most this factor larger than the batch before.
const MAX_GROWTH: f64 = 1.25;

/// A larger batch whose rate (jobs per second) fell below this share of the
/// previous batch's rate sets a cap: the batch's noise stays well above it,
/// the drop past a costlier size well below (half or less, measured).
const RATE_FALL: f64 = 0.7;

/// Full batches a cap holds before the sizer may grow past it again.
const CAP_BATCHES: u32 = 100;

/// The full batches whose median rate steers the size.
const STEERING_BATCHES: usize = 3;

/// `retention.batch_size`: `auto` or a fixed number of jobs per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Auto,
    Jobs(u32),
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Auto => f.write_str("auto"),
            BatchSize::Jobs(jobs) => write!(f, "{jobs}"),
        }
    }
}

impl BatchSize {
    /// Whether a fixed size lies within 1 to [`MAX_BATCH_SIZE`].
    pub fn in_range(self) -> bool {
        match self {
            BatchSize::Auto => true,
            BatchSize::Jobs(jobs) => (1..=MAX_BATCH_SIZE).contains(&jobs),
        }
    }
}

impl FromStr for BatchSize {
    type Err = String;

    fn from_str(text: &str) -> Result<BatchSize, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(BatchSize::Auto);
        }
        match text.parse::<u32>() {
            Ok(jobs) if (1..=MAX_BATCH_SIZE).contains(&jobs) => Ok(BatchSize::Jobs(jobs)),
            _ => Err(format!("{text:?} is not a batch size: use auto or a number from 1 to {MAX_BATCH_SIZE}")),
        }
    }
}

impl Serialize for BatchSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            BatchSize::Auto => serializer.serialize_str("auto"),
            BatchSize::Jobs(jobs) => serializer.serialize_u32(*jobs),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BatchSize, D::Error> {
        struct BatchSizeVisitor;

        impl de::Visitor<'_> for BatchSizeVisitor {
            type Value = BatchSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "auto or a number from 1 to {MAX_BATCH_SIZE}")
            }

            // Numbers out of range are kept for the configuration's
            // validation, which names the key.
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<BatchSize, E> {
                u32::try_from(value).map(BatchSize::Jobs).map_err(|_| E::custom(format!("{value} is too large")))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<BatchSize, E> {
                u64::try_from(value)
                    .map_err(|_| {
                        E::custom(format!(
                            "{value} is not a batch size: use auto or a number from 1 to {MAX_BATCH_SIZE}"
                        ))
                    })
                    .and_then(|value| self.visit_u64(value))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<BatchSize, E> {
                Err(E::custom(format!("{value} is not a batch size: use auto or a whole number")))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<BatchSize, E> {
                match value.trim().parse::<u64>() {
                    Ok(number) => self.visit_u64(number),
                    Err(_) => value.parse().map_err(E::custom),
                }
            }
        }

        deserializer.deserialize_any(BatchSizeVisitor)
    }
}

/// The size of each batch of one sweep.
#[derive(Debug, Clone)]
pub struct BatchSizer {
    size: u32,
    /// `None`: the size is fixed.
    budget: Option<Duration>,
    /// The last full batch: its size and rate in jobs per second.
    last: Option<(u32, f64)>,
    /// The rates of the last [`STEERING_BATCHES`] full batches, oldest first.
    rates: Vec<f64>,
    /// The largest size allowed while a cap holds, and for how many more batches.
    cap: Option<(u32, u32)>,
    /// A size whose batch was markedly slower per job than the smaller one
    /// before it, once: a batch this large that is slow again sets the cap.
    suspect: Option<u32>,
}

impl BatchSizer {
    pub fn new(size: BatchSize, budget: Duration) -> BatchSizer {
        let (size, budget) = match size {
            BatchSize::Auto => (FIRST_AUTO_BATCH, Some(budget)),
            BatchSize::Jobs(jobs) => (jobs, None),
        };
        BatchSizer { size, budget, last: None, rates: Vec::with_capacity(STEERING_BATCHES), cap: None, suspect: None }
    }

    /// Jobs the next batch takes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Learns from a batch that took `jobs` jobs in `elapsed`, of which its
    /// commit took `commit`; the rate is of the batch's statements alone.
    /// Only a full batch tells the rate: a short one is the sweep's last.
    pub fn record(&mut self, jobs: usize, elapsed: Duration, commit: Duration) {
        let Some(budget) = self.budget else { return };
        let elapsed = elapsed.saturating_sub(commit);
        if jobs < self.size as usize || elapsed.is_zero() {
            return;
        }
        let rate = jobs as f64 / elapsed.as_secs_f64();
        if self.rates.len() == STEERING_BATCHES {
            self.rates.remove(0);
        }
        self.rates.push(rate);
        let current = f64::from(self.size);
        let mut next =
            (self.steering_rate() * budget.as_secs_f64()).clamp(current / 2.0, current * MAX_GROWTH).round() as u32;
        if let Some((last_size, last_rate)) = self.last
            && self.size > last_size
        {
            if elapsed <= budget || rate >= last_rate * RATE_FALL {
                self.suspect = self.suspect.filter(|&suspect| self.size < suspect);
            } else {
                next = last_size;
                if self.suspect.is_some_and(|suspect| self.size >= suspect) {
                    self.cap = Some((last_size, CAP_BATCHES));
                    self.suspect = None;
                } else {
                    self.suspect = Some(self.size);
                }
            }
        }
        if let Some((cap, batches)) = self.cap {
            next = next.min(cap);
            self.cap = (batches > 1).then_some((cap, batches - 1));
        }
        self.last = Some((self.size, rate));
        self.size = next.clamp(1, MAX_BATCH_SIZE);
    }

    /// The median of the recent rates; of two, the faster: a slow batch
    /// moves the size only once another one confirms it.
    fn steering_rate(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }

    /// After a batch that hit the statement timeout (and rolled back): a
    /// quarter of the size, even when fixed. `false` when it was one job already.
    pub fn shrink_after_timeout(&mut self) -> bool {
        if self.size == 1 {
            return false;
        }
        self.size = (self.size / 4).max(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(50);

    #[test]
    fn a_fixed_size_stays_fixed() {
        let mut sizer = BatchSizer::new(BatchSize::Jobs(7), BUDGET);
        sizer.record(7, Duration::from_millis(1), Duration::ZERO);
        sizer.record(7, Duration::from_secs(3), Duration::ZERO);
        assert_eq!(sizer.size(), 7);
    }

    #[test]
    fn auto_grows_under_the_budget_and_shrinks_over_it() {
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        assert_eq!(sizer.size(), 1000);
        sizer.record(1000, Duration::from_millis(10), Duration::ZERO);
        assert_eq!(sizer.size(), 1250, "grown by a quarter at most");
        sizer.record(1250, Duration::from_millis(12), Duration::ZERO);
        assert_eq!(sizer.size(), 1563, "grown by a quarter at most");
        sizer.record(1563, Duration::from_millis(15), Duration::ZERO);
        sizer.record(1954, Duration::from_millis(25), Duration::ZERO);
        sizer.record(2443, Duration::from_millis(40), Duration::ZERO);
        assert_eq!(sizer.size(), 3054, "the rate fell, but by less than a third: no cap");
        sizer.record(3054, Duration::from_millis(60), Duration::ZERO);
        assert_eq!(sizer.size(), 3054, "one batch over the budget: kept");
        sizer.record(3054, Duration::from_millis(60), Duration::ZERO);
        assert_eq!(sizer.size(), 2545, "a second one: steered to the budget");
        sizer.record(2545, Duration::from_millis(50), Duration::ZERO);
        assert_eq!(sizer.size(), 2545, "on budget: kept");
        sizer.record(2545, Duration::from_millis(400), Duration::ZERO);
        assert_eq!(sizer.size(), 2545, "one slow batch moves nothing");
        sizer.record(2545, Duration::from_millis(400), Duration::ZERO);
        assert_eq!(sizer.size(), 1273, "a second one: at most halved");
        sizer.record(10, Duration::from_secs(9), Duration::ZERO);
        assert_eq!(sizer.size(), 1273, "a short batch ends the sweep and says nothing of the rate");
    }

    /// What a MariaDB purge showed: a commit waits for the redo log's flush,
    /// ~11 ms on a busy machine and now and then far longer, while a job
    /// costs ~0.1 ms. Timed with their commits, the batches stayed at a few
    /// hundred jobs, each largely its commit, or sank to tens of jobs where
    /// the flush took most of the budget. The statements alone steer the
    /// size: 500 jobs in 50 ms, whatever the commits took. Here every third
    /// commit waits 80 ms, and now and then two in a row do.
    #[test]
    fn noisy_commits_do_not_shrink_the_batches() {
        let commit =
            |batch: usize| Duration::from_millis(if batch % 3 == 2 || batch.is_multiple_of(17) { 80 } else { 11 });
        let statements = |jobs: u32| Duration::from_micros(u64::from(jobs) * 100);
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        let mut sizes = Vec::new();
        for batch in 0..300 {
            let size = sizer.size();
            sizes.push(size);
            sizer.record(size as usize, statements(size) + commit(batch), commit(batch));
        }
        assert!(sizes[1..].iter().all(|&size| size == 500), "the statements' 50 ms budget: {sizes:?}");
    }

    /// What the PostgreSQL purge benchmark showed: 1,200 jobs in 32 ms, 1,500
    /// in 81 ms. Steered by the rate alone, the size swings between the two.
    #[test]
    fn auto_stays_below_a_size_where_the_rate_fell_for_a_while() {
        let cost = |jobs: u32| Duration::from_micros(u64::from(jobs) * if jobs > 1300 { 54 } else { 27 });
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        let mut sizes = vec![sizer.size()];
        for _ in 0..5 {
            let size = sizer.size();
            sizer.record(size as usize, cost(size), Duration::ZERO);
            sizes.push(sizer.size());
        }
        assert_eq!(sizes, [1000, 1250, 1563, 1250, 1563, 1250], "back to the last fast size after each slow one");
        for batch in 1..CAP_BATCHES {
            sizer.record(1250, cost(1250), Duration::ZERO);
            assert_eq!(sizer.size(), 1250, "held at the fast size, batch {batch} after the slow one");
        }
        sizer.record(1250, cost(1250), Duration::ZERO);
        assert_eq!(sizer.size(), 1563, "the cap has run out: it tries a larger batch again");
    }

    /// What a PostgreSQL purge showed: the pool opened a second session
    /// (a TLS handshake) during the fourth batch, which took 124 ms where the
    /// batches around it took 22-29 ms.
    #[test]
    fn one_slow_batch_sets_no_cap() {
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        sizer.record(1000, Duration::from_millis(14), Duration::ZERO);
        sizer.record(1250, Duration::from_millis(18), Duration::ZERO);
        sizer.record(1563, Duration::from_millis(124), Duration::ZERO);
        assert_eq!(sizer.size(), 1250, "back to the last fast size");
        sizer.record(1250, Duration::from_millis(18), Duration::ZERO);
        assert_eq!(sizer.size(), 1563, "tried again at once");
        sizer.record(1563, Duration::from_millis(22), Duration::ZERO);
        assert_eq!(sizer.size(), 1954, "fast this time: growing");
        sizer.record(1954, Duration::from_millis(28), Duration::ZERO);
        sizer.record(2443, Duration::from_millis(35), Duration::ZERO);
        assert_eq!(sizer.size(), 3054, "the slow batch left no limit behind");
    }

    #[test]
    fn a_larger_batch_as_fast_per_job_sets_no_cap() {
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        sizer.record(1000, Duration::from_millis(20), Duration::ZERO);
        sizer.record(1250, Duration::from_millis(24), Duration::ZERO);
        sizer.record(1563, Duration::from_millis(31), Duration::ZERO);
        assert_eq!(sizer.size(), 1954, "still growing");
    }

    #[test]
    fn auto_stays_within_bounds() {
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        for _ in 0..40 {
            let size = sizer.size() as usize;
            sizer.record(size, Duration::from_micros(1), Duration::ZERO);
        }
        assert_eq!(sizer.size(), MAX_BATCH_SIZE);
        for _ in 0..40 {
            let size = sizer.size() as usize;
            sizer.record(size, Duration::from_secs(60), Duration::ZERO);
        }
        assert_eq!(sizer.size(), 1);
    }

    #[test]
    fn a_timeout_quarters_the_size_down_to_one_job() {
        let mut sizer = BatchSizer::new(BatchSize::Jobs(10), BUDGET);
        assert!(sizer.shrink_after_timeout());
        assert_eq!(sizer.size(), 2);
        assert!(sizer.shrink_after_timeout());
        assert_eq!(sizer.size(), 1);
        assert!(!sizer.shrink_after_timeout());
    }

    #[test]
    fn batch_sizes_parse_and_print() {
        assert_eq!("auto".parse(), Ok(BatchSize::Auto));
        assert_eq!(" AUTO ".parse(), Ok(BatchSize::Auto));
        assert_eq!("250".parse(), Ok(BatchSize::Jobs(250)));
        for bad in ["0", "100001", "-1", "lots", "2.5", ""] {
            let error = bad.parse::<BatchSize>().unwrap_err();
            assert!(error.contains("auto or a number from 1 to 100000"), "{bad}: {error}");
        }
        assert_eq!(BatchSize::Auto.to_string(), "auto");
        assert_eq!(BatchSize::Jobs(3).to_string(), "3");
    }
}
