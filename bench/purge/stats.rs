//! Percentiles of a set of durations, the one statistic every figure of the
//! report uses (batch durations, writer latencies, idle sweeps). Nearest
//! rank: a percentile is always one of the measured values.

/// Milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// `None` when there is nothing to summarise.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        let max = *sorted.last()?;
        Some(Summary { count: sorted.len(), p50: percentile(&sorted, 50.0), p99: percentile(&sorted, 99.0), max })
    }
}

/// The nearest-rank percentile of sorted, non-empty values.
fn percentile(sorted: &[f64], percent: f64) -> f64 {
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
