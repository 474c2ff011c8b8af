//! The rule every deleting variant applies: retentiond's default retention
//! (`completed` and `closed` after 90 days, `creating_idle` off, held jobs
//! kept). The baseline and the checks spell it in SQL with [`eligible!`];
//! the cut-off for a given "now" comes from retentiond's own policy code, so
//! both sides round it the same way.

use chrono::{DateTime, Utc};
use retentiond::config::RetentionSettings;

use super::error::Result;

/// The `WHERE` condition of an eligible job, with `$cutoff` the placeholder
/// of the cut-off (`?1` on SQLite, `$1` on PostgreSQL).
macro_rules! eligible {
    ($cutoff:literal) => {
        concat!("state IN ('Completed', 'Closed') AND hold_reason IS NULL AND state_changed_at <= ", $cutoff)
    };
}

pub(crate) use eligible;

/// The newest `state_changed_at` that is eligible at `now`.
pub fn cutoff(now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let cutoffs = retentiond::policy::cutoffs(&RetentionSettings::default().retentions(), now);
    let same_for_both =
        |by_type: retentiond::policy::PerType<_>| (by_type.import == by_type.export).then_some(by_type.import);
    match (same_for_both(cutoffs.completed), same_for_both(cutoffs.closed), same_for_both(cutoffs.creating_idle)) {
        (Some(Some(completed)), Some(Some(closed)), Some(None)) if completed == closed => Ok(completed),
        _ => Err("the default retention is no longer 90 days for completed and closed jobs with creating_idle \
                  off, for both job types; the baseline's SQL (bench/purge/eligible.rs) must follow it"
            .into()),
    }
}
