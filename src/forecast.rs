//! What retention will delete, day by day (`retentiond forecast`, the
//! forecast page): per policy, the jobs whose age crosses the policy's
//! retention in each of the next days, counted from the policy indexes
//! (a range of each, so the cost follows the jobs in the window, not the
//! table), with held jobs apart: they stay while held.
//!
//! Day 1 is the next 24 hours from "now" (the database's clock), day 2 the
//! 24 hours after, and so on; a job becomes eligible at its age timestamp
//! plus the retention, and is counted on the day that moment falls in.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::format_policy_retention;
use crate::policy::{self, Cutoffs, PerPolicy, PerType, Policy, Retentions};
use crate::store::{ForecastWindow, Store, StoreError};

/// The window when none is asked for.
pub const DEFAULT_DAYS: u32 = 30;
/// The longest window.
pub const MAX_DAYS: u32 = 365;

const DAY: chrono::Duration = chrono::Duration::days(1);

/// The forecast over the next `days` days, in the JSON shape of `forecast --output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forecast {
    /// "Now": where day 1 starts.
    pub as_of: DateTime<Utc>,
    pub days: u32,
    pub policies: PerPolicy<PolicyForecast>,
    /// One entry per day, day 1 first.
    pub per_day: Vec<ForecastDay>,
    /// Jobs without a hold that become eligible within the window.
    pub total: u64,
    /// Held jobs whose retention ends within the window or has ended: kept while held.
    pub held_total: u64,
}

/// One policy's part of the forecast.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyForecast {
    /// The retention, human-readable (each type's where they differ,
    /// `config::format_retentions`); `None` when the policy is off for both.
    pub retention: Option<String>,
    /// Become eligible within the window.
    pub within_window: u64,
    /// Held jobs already past their retention.
    pub held_past_retention: u64,
    /// Held jobs whose retention ends within the window.
    pub held_within_window: u64,
}

/// One day of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForecastDay {
    /// 1 for the next 24 hours.
    pub day: u32,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Jobs without a hold that become eligible that day, per policy.
    pub counts: PerPolicy<u64>,
    pub total: u64,
    /// Held jobs whose retention ends that day (all policies).
    pub held: u64,
}

/// The forecast under `retentions` over `days` days (1..=[`MAX_DAYS`]) from
/// `as_of`, by default the database's "now".
pub async fn forecast(
    store: &dyn Store,
    retentions: &Retentions,
    days: u32,
    as_of: Option<DateTime<Utc>>,
) -> Result<Forecast, StoreError> {
    let as_of = match as_of {
        Some(as_of) => crate::model::truncate(as_of),
        None => store.now().await?,
    };
    let cutoffs = policy::cutoffs(retentions, as_of);
    let window = DAY * days as i32;
    let horizons = Cutoffs {
        rules: cutoffs.map(|_, by_type| by_type.map(|_, cutoff| cutoff.map(|cutoff| cutoff + window))),
        settled: None,
    };
    let counts = store.forecast(ForecastWindow { cutoffs: &cutoffs, horizons: &horizons, days }).await?;

    let mut per_day: Vec<ForecastDay> = (0..days)
        .map(|index| ForecastDay {
            day: index + 1,
            from: as_of + DAY * index as i32,
            until: as_of + DAY * (index + 1) as i32,
            counts: PerPolicy::default(),
            total: 0,
            held: 0,
        })
        .collect();
    let mut policies = PerPolicy::from_fn(|policy| PolicyForecast {
        retention: (retentions[policy] != PerType::default()).then(|| format_policy_retention(policy, retentions)),
        ..PolicyForecast::default()
    });
    for count in counts {
        let summary = &mut policies[count.policy];
        let day = usize::try_from(count.day).ok().and_then(|index| per_day.get_mut(index));
        match (count.held, day) {
            (false, Some(day)) => {
                day.counts[count.policy] += count.jobs;
                day.total += count.jobs;
                summary.within_window += count.jobs;
            }
            (true, Some(day)) => {
                day.held += count.jobs;
                summary.held_within_window += count.jobs;
            }
            (true, None) => summary.held_past_retention += count.jobs,
            // The store counts only inside the window; nothing else arrives.
            (false, None) => {}
        }
    }
    let total = Policy::ALL.iter().map(|&policy| policies[policy].within_window).sum();
    let held_total = Policy::ALL
        .iter()
        .map(|&policy| policies[policy].held_within_window + policies[policy].held_past_retention)
        .sum();
    Ok(Forecast { as_of, days, policies, per_day, total, held_total })
}
