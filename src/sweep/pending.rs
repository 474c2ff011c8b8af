//! The ids a sweep deletes next, in id order (docs/design.md, "A sweep": the set a sweep
//! deletes is defined by age, the order inside it is the store's choice).
//!
//! Each rule's index range is read in age order, up to [`IDS_PER_READ`]
//! ids in all, and the ids are sorted: the batches then visit the table in
//! the order its rows lie (rows are written in id order), so a page is
//! rewritten once per read instead of once per batch that touches it, in a
//! store whose ages are in any order relative to its ids. A capped sweep
//! reads only up to the key of its N-th job, fixed once at its
//! start, so the set it deletes is still exactly the N that became eligible
//! first (that key is in the order of eligibility, and moved back by each
//! rule's retention into the rule's age order); a sweep
//! stopped early leaves part of its set, whichever part, to the next one.

use crate::lifecycle::JobType;
use crate::policy::{Cursors, Cutoffs, PerRule, Policy, RULES, Retentions, SortKey, retention_micros};
use crate::store::{EligibleIds, IdRange, Store, StoreError};

/// Ids held at a time: 4 MiB of them, read in a few hundred milliseconds;
/// enough that a backlog of millions is crossed in a few passes.
const IDS_PER_READ: usize = 500_000;

/// Ids one statement returns at most. The store reads whole results
/// (quicker than a stream for an idle sweep), so this bounds the rows held
/// at once, and a purge's peak memory (`docs/operations.md`).
const IDS_PER_STATEMENT: usize = 10_000;

/// The ids read and not yet deleted, and where each policy's next read starts.
pub struct PendingIds {
    cutoffs: Cutoffs,
    /// A capped sweep's cap and retentions, until its first read fixes `through`.
    cap: Option<(u64, Retentions)>,
    /// Each rule's last job of a capped sweep's set, in the rule's age
    /// order; `None` without a cap.
    through: PerRule<Option<SortKey>>,
    cursors: Cursors,
    /// Whether a rule's last read came back short: nothing more to read.
    exhausted: PerRule<bool>,
    /// Sorted; those before `next` are done.
    ids: Vec<i64>,
    next: usize,
    /// The ids came from a first read of one statement, with more to read:
    /// the first batch waits for a full read, as every other read is.
    partly_read: bool,
}

impl PendingIds {
    /// Nothing read yet. `max_deletes`: the sweep's cap (0 = none), whose
    /// last job the first read looks up.
    pub fn new(cutoffs: &Cutoffs, retentions: &Retentions, max_deletes: u64) -> PendingIds {
        PendingIds {
            cutoffs: *cutoffs,
            cap: (max_deletes > 0).then_some((max_deletes, *retentions)),
            through: PerRule::default(),
            cursors: Cursors::default(),
            exhausted: cutoffs.map(|_, by_type| by_type.map(|_, cutoff| cutoff.is_none())),
            ids: Vec::new(),
            next: 0,
            partly_read: false,
        }
    }

    /// Ids per rule of a sweep's first read, as the first
    /// statement of [`PendingIds::read`] would ask for them.
    pub fn first_read_limit(retentions: &Retentions) -> u32 {
        let enabled = RULES.into_iter().filter(|&(policy, job_type)| retentions[policy][job_type].is_some()).count();
        u32::try_from((IDS_PER_STATEMENT / enabled.max(1)).max(1)).unwrap_or(u32::MAX)
    }

    /// An uncapped sweep's ids, from its first read (`SweepStore::clock_and_first_ids`,
    /// [`PendingIds::first_read_limit`] per rule) under `cutoffs`.
    pub fn with_first_read(cutoffs: &Cutoffs, first: &PerRule<EligibleIds>, limit: u32) -> PendingIds {
        let mut pending = PendingIds::new(cutoffs, &Retentions::default(), 0);
        pending.take(&pending.reading(), first, limit as usize);
        pending.ids.sort_unstable();
        pending.partly_read = !pending.reading().is_empty();
        pending
    }

    /// The cut-offs the ids are read under.
    pub fn cutoffs(&self) -> &Cutoffs {
        &self.cutoffs
    }

    /// The next at most `limit` ids in id order, read from the store when
    /// all read before are done; empty when nothing eligible is left to read.
    pub async fn next_batch(&mut self, store: &dyn Store, limit: usize) -> Result<&[i64], StoreError> {
        if self.next == self.ids.len() || std::mem::take(&mut self.partly_read) {
            self.read(store).await?;
        }
        let end = self.ids.len().min(self.next + limit);
        Ok(&self.ids[self.next..end])
    }

    /// Whether any id is left, read from the store when all read before are done.
    pub async fn any_left(&mut self, store: &dyn Store) -> Result<bool, StoreError> {
        Ok(!self.next_batch(store, 1).await?.is_empty())
    }

    /// Marks the first `count` pending ids done (deleted, or no longer eligible).
    pub fn done(&mut self, count: usize) {
        self.next = self.ids.len().min(self.next + count);
    }

    /// Whether every id is done and nothing is left to read.
    pub fn is_empty(&self) -> bool {
        self.next == self.ids.len() && RULES.into_iter().all(|(policy, job_type)| self.exhausted[policy][job_type])
    }

    /// Reads up to [`IDS_PER_READ`] ids with those not done yet, each
    /// statement reading every rule not exhausted yet.
    async fn read(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        if let Some((max_deletes, retentions)) = self.cap.take() {
            let last = store.nth_eligible(&self.cutoffs, &retentions, max_deletes).await?;
            for (policy, job_type) in RULES {
                self.through[policy][job_type] =
                    last.map(|key| key.due(-retention_micros(&retentions, policy, job_type)));
            }
        }
        self.ids.drain(..self.next);
        self.next = 0;
        loop {
            let reading = self.reading();
            let room = IDS_PER_READ.saturating_sub(self.ids.len());
            if reading.is_empty() || room == 0 {
                break;
            }
            let wanted = (room.min(IDS_PER_STATEMENT) / reading.len()).max(1);
            let limit = u32::try_from(wanted).unwrap_or(u32::MAX);
            let mut ranges = PerRule::<Option<IdRange>>::default();
            for &(policy, job_type) in &reading {
                ranges[policy][job_type] = self.cutoffs[policy][job_type].map(|cutoff| IdRange {
                    cutoff,
                    after: self.cursors[policy][job_type],
                    through: self.through[policy][job_type],
                    limit,
                });
            }
            let read = store.eligible_ids(&ranges, self.cutoffs.settled).await?;
            self.take(&reading, &read, wanted);
        }
        self.ids.sort_unstable();
        Ok(())
    }

    /// The rules not exhausted yet.
    fn reading(&self) -> Vec<(Policy, JobType)> {
        RULES.into_iter().filter(|&(policy, job_type)| !self.exhausted[policy][job_type]).collect()
    }

    /// Adds what one statement read of the rules `reading`, `wanted` ids each at most.
    fn take(&mut self, reading: &[(Policy, JobType)], read: &PerRule<EligibleIds>, wanted: usize) {
        for &(policy, job_type) in reading {
            let read = &read[policy][job_type];
            self.exhausted[policy][job_type] = read.ids.len() < wanted;
            self.cursors[policy][job_type] = read.last.or(self.cursors[policy][job_type]);
            self.ids.extend(&read.ids);
        }
    }
}
