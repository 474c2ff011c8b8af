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
//!
//! The next read runs while the batches of the ids read before it run, on
//! a session of its own: reading a few hundred thousand ids takes a few
//! hundred milliseconds the batches need not wait for (docs/operations.md,
//! "Reading ahead"). So an uncapped sweep's first batches take the ids of
//! its first statement (`SweepStore::start_sweep`) while the rest is read,
//! when those ids lie close together; spread over the table, their pages
//! would be rewritten twice, and the first batch waits for the whole
//! first read instead, as it does on a store that reads between batches
//! (`SweepStore::reads_alongside_batches`).

use std::future::Future;
use std::pin::{Pin, pin};

use crate::lifecycle::JobType;
use crate::policy::{Cursors, Cutoffs, PerRule, Policy, RULES, Retentions, SortKey, retention_micros};
use crate::store::{EligibleIds, IdRange, Store, StoreError};

/// Ids held in one read: 4 MiB of them, read in a few hundred
/// milliseconds; enough that a backlog of millions is crossed in a few
/// passes. A sweep holds two reads at most: the one its batches take, and
/// the next.
const IDS_PER_READ: usize = 500_000;

/// Ids one statement returns at most. The store reads whole results
/// (quicker than a stream for an idle sweep), so this bounds the rows held
/// at once, and a purge's peak memory (`docs/operations.md`).
const IDS_PER_STATEMENT: usize = 10_000;

/// The first statement's ids lie close together when they are at most this
/// many ids apart on average (a page of the jobs table holds dozens of
/// rows): in a store whose ages follow its ids, with a few tenths of its
/// jobs eligible, they are about 7 apart; where ages are in no order, about
/// 100 (docs/operations.md, "Reading ahead").
const SPREAD: f64 = 32.0;

/// The ids read and not yet deleted, and the next read.
pub struct PendingIds<'s> {
    cutoffs: Cutoffs,
    /// Sorted; those before `next` are done.
    ids: Vec<i64>,
    next: usize,
    /// The ids came from a first read of one statement, with more to read.
    partly_read: bool,
    ahead: Ahead<'s>,
}

/// The read after the ids held.
enum Ahead<'s> {
    /// Every rule is read to its end.
    Done,
    /// None under way: where it starts.
    Waiting(IdReader),
    /// Under way, polled while a batch runs ([`PendingIds::alongside`]).
    Reading(Pin<Box<dyn Future<Output = ReadIds> + Send + 's>>),
    /// Done before the ids held were.
    Read(IdReader, Vec<i64>),
    /// Failed: the error comes with the next ids asked for.
    Failed(StoreError),
}

impl<'s> PendingIds<'s> {
    /// Nothing read yet. `max_deletes`: the sweep's cap (0 = none), whose
    /// last job the first read looks up.
    pub fn new(cutoffs: &Cutoffs, retentions: &Retentions, max_deletes: u64) -> PendingIds<'s> {
        let reader = IdReader::new(cutoffs, (max_deletes > 0).then_some((max_deletes, *retentions)));
        PendingIds { cutoffs: *cutoffs, ids: Vec::new(), next: 0, partly_read: false, ahead: Ahead::after(reader) }
    }

    /// Ids per rule of a sweep's first read, as the first
    /// statement of [`IdReader::read`] would ask for them.
    pub fn first_read_limit(retentions: &Retentions) -> u32 {
        let enabled = RULES.into_iter().filter(|&(policy, job_type)| retentions[policy][job_type].is_some()).count();
        u32::try_from((IDS_PER_STATEMENT / enabled.max(1)).max(1)).unwrap_or(u32::MAX)
    }

    /// An uncapped sweep's ids, from its first read (`SweepStore::clock_and_first_ids`,
    /// [`PendingIds::first_read_limit`] per rule) under `cutoffs`.
    pub fn with_first_read(cutoffs: &Cutoffs, first: &PerRule<EligibleIds>, limit: u32) -> PendingIds<'s> {
        let mut reader = IdReader::new(cutoffs, None);
        let mut ids = Vec::new();
        reader.take(&reader.reading(), first, limit as usize, &mut ids);
        ids.sort_unstable();
        let partly_read = !reader.is_done();
        PendingIds { cutoffs: *cutoffs, ids, next: 0, partly_read, ahead: Ahead::after(reader) }
    }

    /// The cut-offs the ids are read under.
    pub fn cutoffs(&self) -> &Cutoffs {
        &self.cutoffs
    }

    /// The next at most `limit` ids in id order, from the next read when
    /// all those held are done; empty when nothing eligible is left to
    /// read. Starts the read after them if there is more to read and the
    /// store can read while a batch runs (else that read waits until they
    /// are done).
    pub async fn next_batch(&mut self, store: &'s dyn Store, limit: usize) -> Result<&[i64], StoreError> {
        // After an error the sweep ends: what is left here is not used again.
        if std::mem::take(&mut self.partly_read)
            && (!store.reads_alongside_batches() || self.spread())
            && let Some(mut reader) = self.ahead.take_waiting()
        {
            // The rest of the first read joins the first statement's ids,
            // sorted with them: one pass over the table.
            self.ids.extend(reader.read(store).await?);
            self.ids.sort_unstable();
            self.ahead = Ahead::after(reader);
        }
        if self.next == self.ids.len() {
            let (reader, ids) = match std::mem::replace(&mut self.ahead, Ahead::Done) {
                Ahead::Done => (None, Vec::new()),
                Ahead::Waiting(mut reader) => {
                    let ids = reader.read(store).await?;
                    (Some(reader), ids)
                }
                Ahead::Reading(reading) => reading.await.map(|(reader, ids)| (Some(reader), ids))?,
                Ahead::Read(reader, ids) => (Some(reader), ids),
                Ahead::Failed(error) => return Err(error),
            };
            (self.ids, self.next) = (ids, 0);
            self.ahead = reader.map_or(Ahead::Done, Ahead::after);
        }
        if store.reads_alongside_batches()
            && let Some(mut reader) = self.ahead.take_waiting()
        {
            self.ahead = Ahead::Reading(Box::pin(async move {
                let ids = reader.read(store).await?;
                Ok((reader, ids))
            }));
        }
        let end = self.ids.len().min(self.next + limit);
        Ok(&self.ids[self.next..end])
    }

    /// Whether the ids held lie spread over the table: more than
    /// [`SPREAD`] ids apart on average.
    fn spread(&self) -> bool {
        match (self.ids.first(), self.ids.last()) {
            (Some(first), Some(last)) => (last - first) as f64 > SPREAD * self.ids.len() as f64,
            _ => false,
        }
    }

    /// Runs `work` (a batch, the pause after it) while the next read, if
    /// one is under way, goes on: a read polled only now and then would hold
    /// its session mid-statement, or its opening mid-handshake.
    pub async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        let Ahead::Reading(reading) = &mut self.ahead else { return work.await };
        let mut work = pin!(work);
        let read = tokio::select! {
            biased;
            done = &mut work => return done,
            read = reading => read,
        };
        self.ahead = match read {
            Ok((reader, ids)) => Ahead::Read(reader, ids),
            Err(error) => Ahead::Failed(error),
        };
        work.await
    }

    /// Whether any id is left, read from the store when all read before are done.
    pub async fn any_left(&mut self, store: &'s dyn Store) -> Result<bool, StoreError> {
        Ok(!self.next_batch(store, 1).await?.is_empty())
    }

    /// Marks the first `count` pending ids done (deleted, or no longer eligible).
    pub fn done(&mut self, count: usize) {
        self.next = self.ids.len().min(self.next + count);
    }

    /// Whether every id is done and nothing is left to read.
    pub fn is_empty(&self) -> bool {
        self.next == self.ids.len() && matches!(self.ahead, Ahead::Done)
    }
}

/// What a read leaves: where the next one starts, and the ids, sorted.
type ReadIds = Result<(IdReader, Vec<i64>), StoreError>;

impl Ahead<'_> {
    /// What follows a read that left `reader`.
    fn after(reader: IdReader) -> Self {
        if reader.is_done() { Ahead::Done } else { Ahead::Waiting(reader) }
    }

    /// The reader of a read not under way yet, leaving `Done` in its place.
    fn take_waiting(&mut self) -> Option<IdReader> {
        match std::mem::replace(self, Ahead::Done) {
            Ahead::Waiting(reader) => Some(reader),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// Where the next read of each rule starts.
struct IdReader {
    cutoffs: Cutoffs,
    /// A capped sweep's cap and retentions, until its first read fixes `through`.
    cap: Option<(u64, Retentions)>,
    /// Each rule's last job of a capped sweep's set, in the rule's age
    /// order; `None` without a cap.
    through: PerRule<Option<SortKey>>,
    cursors: Cursors,
    /// Whether a rule's last read came back short: nothing more to read.
    exhausted: PerRule<bool>,
}

impl IdReader {
    fn new(cutoffs: &Cutoffs, cap: Option<(u64, Retentions)>) -> IdReader {
        IdReader {
            cutoffs: *cutoffs,
            cap,
            through: PerRule::default(),
            cursors: Cursors::default(),
            exhausted: cutoffs.map(|_, by_type| by_type.map(|_, cutoff| cutoff.is_none())),
        }
    }

    /// Whether every rule is read to its end.
    fn is_done(&self) -> bool {
        RULES.into_iter().all(|(policy, job_type)| self.exhausted[policy][job_type])
    }

    /// Reads up to [`IDS_PER_READ`] ids, sorted, each statement reading
    /// every rule not exhausted yet.
    async fn read(&mut self, store: &dyn Store) -> Result<Vec<i64>, StoreError> {
        if let Some((max_deletes, retentions)) = self.cap.take() {
            let last = store.nth_eligible(&self.cutoffs, &retentions, max_deletes).await?;
            for (policy, job_type) in RULES {
                self.through[policy][job_type] =
                    last.map(|key| key.due(-retention_micros(&retentions, policy, job_type)));
            }
        }
        // Whole at once: grown by doubling, the last step would hold the
        // old buffer and the new one, twice its size, next to the ids the
        // batches take.
        let mut ids = Vec::with_capacity(IDS_PER_READ);
        loop {
            let reading = self.reading();
            let room = IDS_PER_READ.saturating_sub(ids.len());
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
            self.take(&reading, &read, wanted, &mut ids);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The rules not exhausted yet.
    fn reading(&self) -> Vec<(Policy, JobType)> {
        RULES.into_iter().filter(|&(policy, job_type)| !self.exhausted[policy][job_type]).collect()
    }

    /// Adds to `ids` what one statement read of the rules `reading`, `wanted` ids each at most.
    fn take(&mut self, reading: &[(Policy, JobType)], read: &PerRule<EligibleIds>, wanted: usize, ids: &mut Vec<i64>) {
        for &(policy, job_type) in reading {
            let read = &read[policy][job_type];
            self.exhausted[policy][job_type] = read.ids.len() < wanted;
            self.cursors[policy][job_type] = read.last.or(self.cursors[policy][job_type]);
            ids.extend(&read.ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ids: Vec<i64>) -> PendingIds<'static> {
        let cutoffs = Cutoffs::default();
        PendingIds { cutoffs, ids, next: 0, partly_read: true, ahead: Ahead::Done }
    }

    #[test]
    fn ids_a_few_apart_lie_close_together() {
        assert!(!held((0..10_000).map(|n| 1_000 + 7 * n).collect()).spread());
        assert!(!held(vec![42]).spread());
        assert!(!held(Vec::new()).spread());
    }

    #[test]
    fn ids_a_hundred_apart_are_spread() {
        assert!(held((0..10_000).map(|n| 1_000 + 100 * n).collect()).spread());
    }
}
