//! The store shapes on which retentiond's purge is compared with the single
//! statement. A purge that keeps up on the seeded store can still fall off a
//! cliff on a store laid out differently (eligible rows scattered over every
//! page, a backlog that is all eligible, a table the planner knows nothing
//! about), so every shape gets both deletions on identical stores and its own
//! purge/single ratio; the summary line's worst case is the lowest of them.

use super::DeletionRun;

/// How a store compared here was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `retentiond jobs seed`, rows written in creation order.
    Seeded,
    /// The seeded store's jobs rewritten in a scrambled id order.
    Shuffled,
    /// Every job eligible, millions of them.
    Backlog,
    /// PostgreSQL: loaded and purged at once, never analysed.
    NoStatistics,
}

impl Shape {
    /// The name in the report and the start of its stores' names.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Seeded => "seeded",
            Shape::Shuffled => "shuffled",
            Shape::Backlog => "backlog",
            Shape::NoStatistics => "no_stats",
        }
    }

    /// One sentence on what the shape is and why it is measured.
    pub fn description(self) -> &'static str {
        match self {
            Shape::Seeded => {
                "`retentiond jobs seed` writes jobs in creation order, so ids follow age and the eligible jobs \
                 (about 30 %) sit together at the start of the table, as in a store that has run for years."
            }
            Shape::Shuffled => {
                "the seeded store's jobs, identical in every column but rewritten in a scrambled order (ids by \
                 `id × 2654435761 mod 4294967291`), so the eligible jobs are spread over every page of the table: \
                 a store whose rows were not written in age order (an import, a merge of stores)."
            }
            Shape::Backlog => {
                "every job `Completed` 100–400 days ago, so all are eligible at once: a store whose retention was \
                 off for a long time, purged in one run."
            }
            Shape::NoStatistics => {
                "PostgreSQL only: 96 % of the jobs eligible, loaded and purged straight away with no `ANALYZE` or \
                 `VACUUM` in between (built fresh for each deletion, never copied from an analysed template; the \
                 run fails if `pg_statistic` holds a row for `jobs`), so the planner has no statistics and \
                 prepared statements may switch to a generic plan after their fifth execution."
            }
        }
    }
}

/// One shape, deleted by the single statement and by retentiond's purge,
/// each on its own store, both stores identical.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub shape: Shape,
    pub baseline: DeletionRun,
    pub sweep: DeletionRun,
}

impl Comparison {
    /// Jobs in the store the purge deleted from.
    pub fn jobs(&self) -> u64 {
        self.sweep.checks.seeded
    }

    /// Jobs eligible at the purge's cut-off: what it deleted, when its checks hold.
    pub fn eligible(&self) -> u64 {
        self.sweep.checks.expected
    }

    /// retentiond's purge rows/s over the single statement's.
    pub fn purge_vs_single_statement(&self) -> f64 {
        self.sweep.rows_per_second() / self.baseline.rows_per_second()
    }

    /// MariaDB: the same ratio, each side timed until InnoDB had removed
    /// the rows it deleted ([`super::Purged::until_purged`]).
    pub fn until_purged_vs_single_statement(&self) -> Option<f64> {
        Some(self.sweep.rows_per_second_until_purged()? / self.baseline.rows_per_second_until_purged()?)
    }

    /// The purge's batch p99 in milliseconds.
    pub fn batch_p99_ms(&self) -> f64 {
        self.sweep.purged.process.as_ref().map_or(f64::NAN, |process| process.batches.p99)
    }
}
