//! How many jobs the next batch of a sweep takes (`retention.batch_size`).
//!
//! A number is used as it is. `auto`, the default, starts at 1,000 jobs and
//! steers the size so that one batch transaction takes about
//! `retention.batch_budget`: a short transaction holds SQLite's write lock
//! (and PostgreSQL's row locks) briefly, while a batch too small spends its
//! time on per-transaction costs (commit, WAL sync, round trips) instead of
//! deleting. The size follows the rate the last full batch achieved, at most
//! doubling or halving at a time, so one slow batch (a checkpoint, a busy
//! disk) does not swing it wildly; a statement timeout cuts it to a quarter.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The largest batch, whatever the budget allows: it bounds a sweep's memory.
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// The first batch of an `auto` sweep.
pub const FIRST_AUTO_BATCH: u32 = 1000;

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
}

impl BatchSizer {
    pub fn new(size: BatchSize, budget: Duration) -> BatchSizer {
        match size {
            BatchSize::Auto => BatchSizer { size: FIRST_AUTO_BATCH, budget: Some(budget) },
            BatchSize::Jobs(jobs) => BatchSizer { size: jobs, budget: None },
        }
    }

    /// Jobs the next batch takes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Learns from a batch that took `jobs` jobs in `elapsed`. Only a full
    /// batch tells the rate: a short one is the sweep's last.
    pub fn record(&mut self, jobs: usize, elapsed: Duration) {
        let Some(budget) = self.budget else { return };
        if jobs < self.size as usize || elapsed.is_zero() {
            return;
        }
        let fitting = jobs as f64 * budget.as_secs_f64() / elapsed.as_secs_f64();
        let current = f64::from(self.size);
        let next = fitting.clamp(current / 2.0, current * 2.0).round();
        self.size = (next as u32).clamp(1, MAX_BATCH_SIZE);
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
        sizer.record(7, Duration::from_millis(1));
        sizer.record(7, Duration::from_secs(3));
        assert_eq!(sizer.size(), 7);
    }

    #[test]
    fn auto_grows_under_the_budget_and_shrinks_over_it() {
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        assert_eq!(sizer.size(), 1000);
        sizer.record(1000, Duration::from_millis(10));
        assert_eq!(sizer.size(), 2000, "at most doubled");
        sizer.record(2000, Duration::from_millis(40));
        assert_eq!(sizer.size(), 2500, "steered to the budget");
        sizer.record(2500, Duration::from_millis(50));
        assert_eq!(sizer.size(), 2500, "on budget: kept");
        sizer.record(2500, Duration::from_millis(400));
        assert_eq!(sizer.size(), 1250, "at most halved");
        sizer.record(10, Duration::from_secs(9));
        assert_eq!(sizer.size(), 1250, "a short batch ends the sweep and says nothing of the rate");
    }

    #[test]
    fn auto_stays_within_bounds() {
        let mut sizer = BatchSizer::new(BatchSize::Auto, BUDGET);
        for _ in 0..40 {
            let size = sizer.size() as usize;
            sizer.record(size, Duration::from_micros(1));
        }
        assert_eq!(sizer.size(), MAX_BATCH_SIZE);
        for _ in 0..40 {
            let size = sizer.size() as usize;
            sizer.record(size, Duration::from_secs(60));
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
