//! Engine statistics: cheap relaxed counters, and the snapshot `Db::stats` returns.

use crate::sstable::ReadCounters;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Stripes of the point-read counters, one per reading thread. Every read bumps its
/// counters; one shared set would make concurrent readers fight over its cache line, and
/// even an uncontended atomic add is a fence that costs a missing-key read about 10%
/// (measured). A thread that holds a stripe is its only writer, so it adds with a plain
/// load and store; threads past the first `READ_STRIPES` alive at once share one more
/// stripe with atomic adds.
const READ_STRIPES: usize = 32;

/// The point-read counters of one stripe, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ReadStripe {
    gets: AtomicU64,
    tables_probed: AtomicU64,
    bloom_negatives: AtomicU64,
    data_blocks: AtomicU64,
    missing_gets: AtomicU64,
    missing_data_blocks: AtomicU64,
}

impl ReadStripe {
    fn add(&self, cost: &ReadCounters, found: bool, add: fn(&AtomicU64, u64)) {
        add(&self.gets, 1);
        add(&self.tables_probed, cost.tables_probed);
        add(&self.bloom_negatives, cost.bloom_negatives);
        add(&self.data_blocks, cost.data_blocks);
        if !found {
            add(&self.missing_gets, 1);
            add(&self.missing_data_blocks, cost.data_blocks);
        }
    }
}

/// Which stripes are free: indexes below `next` that threads gave back, and every index
/// from `next` on. Shared by all databases (a stripe index is owned in every `Counters`).
struct StripePool {
    next: usize,
    free: Vec<usize>,
}

static STRIPES: Mutex<StripePool> = Mutex::new(StripePool {
    next: 0,
    free: Vec::new(),
});

fn pool() -> std::sync::MutexGuard<'static, StripePool> {
    // The pool is two plain fields updated together; a panic cannot leave it torn.
    STRIPES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A thread's exclusive stripe (`None`: it shares the overflow stripe), returned to the
/// pool when the thread exits. The pool's mutex orders the old owner's last writes before
/// the new owner's first.
struct StripeLease(Option<usize>);

impl StripeLease {
    fn take() -> StripeLease {
        let mut pool = pool();
        if let Some(index) = pool.free.pop() {
            return StripeLease(Some(index));
        }
        if pool.next < READ_STRIPES {
            pool.next += 1;
            return StripeLease(Some(pool.next - 1));
        }
        StripeLease(None)
    }
}

impl Drop for StripeLease {
    fn drop(&mut self) {
        if let Some(index) = self.0 {
            pool().free.push(index);
        }
    }
}

/// `READ_STRIPES` owned stripes, then the shared one.
#[derive(Debug)]
struct ReadStripes([ReadStripe; READ_STRIPES + 1]);

impl Default for ReadStripes {
    fn default() -> Self {
        ReadStripes(std::array::from_fn(|_| ReadStripe::default()))
    }
}

thread_local! {
    static LEASE: StripeLease = StripeLease::take();
}

/// Adds as the stripe's only writer: no atomic read-modify-write, no fence.
fn add_owned(counter: &AtomicU64, value: u64) {
    if value > 0 {
        counter.store(counter.load(Ordering::Relaxed) + value, Ordering::Relaxed);
    }
}

fn add_shared(counter: &AtomicU64, value: u64) {
    if value > 0 {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

/// Live counters (relaxed atomics: statistics, not synchronisation).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: ReadStripes,
    pub user_bytes: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub flushes: AtomicU64,
    pub flushed_bytes: AtomicU64,
    pub compactions: AtomicU64,
    pub trivial_moves: AtomicU64,
    pub compaction_read_bytes: AtomicU64,
    pub compaction_written_bytes: AtomicU64,
    pub slowdowns: AtomicU64,
    pub stops: AtomicU64,
    pub commit_groups: AtomicU64,
    pub multi_writer_groups: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one point read and what it cost.
    pub fn add_read(&self, cost: &ReadCounters, found: bool) {
        // `try_with`: a read from another thread-local's destructor, after ours is gone,
        // counts on the shared stripe. (Where thread-locals are OS keys, such a read may
        // instead lease a fresh stripe that is never returned: never a second writer, only
        // one stripe fewer for later threads.)
        let owned = LEASE.try_with(|lease| lease.0).ok().flatten();
        match owned {
            Some(index) => self.reads.0[index].add(cost, found, add_owned),
            None => self.reads.0[READ_STRIPES].add(cost, found, add_shared),
        }
    }

    fn sum_reads(&self, field: impl Fn(&ReadStripe) -> &AtomicU64) -> u64 {
        self.reads
            .0
            .iter()
            .map(|stripe| field(stripe).load(Ordering::Relaxed))
            .sum()
    }
}

/// A snapshot of the engine's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Point reads served.
    pub gets: u64,
    /// Tables consulted by point reads (filter or index).
    pub tables_probed: u64,
    /// Tables a bloom filter ruled out.
    pub bloom_negatives: u64,
    /// Data blocks read by point reads.
    pub data_blocks_read: u64,
    /// Point reads that found nothing.
    pub missing_gets: u64,
    /// Data blocks read by point reads that found nothing.
    pub missing_data_blocks_read: u64,
    /// Key and value bytes written by users.
    pub user_bytes_written: u64,
    /// Bytes appended to WALs.
    pub wal_bytes_written: u64,
    /// Memtable flushes.
    pub flushes: u64,
    /// Bytes of tables written by flushes.
    pub bytes_flushed: u64,
    /// Compactions that rewrote data.
    pub compactions: u64,
    /// Compactions that only moved a table down a level.
    pub trivial_moves: u64,
    /// Bytes read by compactions.
    pub bytes_compacted_read: u64,
    /// Bytes written by compactions.
    pub bytes_compacted_written: u64,
    /// Write groups slowed down by a full level 0.
    pub write_slowdowns: u64,
    /// Times a writer waited for compaction (level 0 at its stop trigger).
    pub write_stops: u64,
    /// Commit groups (one WAL append, at most one fsync, each).
    pub commit_groups: u64,
    /// Commit groups that carried the batches of more than one writer.
    pub multi_writer_groups: u64,
    /// Bytes the block cache holds now (blocks plus 64 bytes of bookkeeping each).
    pub block_cache_bytes: u64,
    /// Table files the table cache holds open now (at most `Options::max_open_files`).
    pub open_table_files: usize,
    /// Times a table file was opened again after the table cache closed its handle.
    pub table_files_reopened: u64,
    /// Tables per level, level 0 first.
    pub tables_per_level: Vec<usize>,
    /// Bytes per level, level 0 first.
    pub bytes_per_level: Vec<u64>,
}

impl Stats {
    pub(crate) fn from_counters(counters: &Counters) -> Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            gets: counters.sum_reads(|s| &s.gets),
            tables_probed: counters.sum_reads(|s| &s.tables_probed),
            bloom_negatives: counters.sum_reads(|s| &s.bloom_negatives),
            data_blocks_read: counters.sum_reads(|s| &s.data_blocks),
            missing_gets: counters.sum_reads(|s| &s.missing_gets),
            missing_data_blocks_read: counters.sum_reads(|s| &s.missing_data_blocks),
            user_bytes_written: get(&counters.user_bytes),
            wal_bytes_written: get(&counters.wal_bytes),
            flushes: get(&counters.flushes),
            bytes_flushed: get(&counters.flushed_bytes),
            compactions: get(&counters.compactions),
            trivial_moves: get(&counters.trivial_moves),
            bytes_compacted_read: get(&counters.compaction_read_bytes),
            bytes_compacted_written: get(&counters.compaction_written_bytes),
            write_slowdowns: get(&counters.slowdowns),
            write_stops: get(&counters.stops),
            commit_groups: get(&counters.commit_groups),
            multi_writer_groups: get(&counters.multi_writer_groups),
            block_cache_bytes: 0,
            open_table_files: 0,
            table_files_reopened: 0,
            tables_per_level: Vec::new(),
            bytes_per_level: Vec::new(),
        }
    }

    /// Bytes written to storage (WAL + flushes + compactions) per byte the user wrote.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.wal_bytes_written + self.bytes_flushed + self.bytes_compacted_written) as f64
            / self.user_bytes_written as f64
    }

    /// Tables consulted per point read.
    pub fn tables_probed_per_get(&self) -> f64 {
        if self.gets == 0 {
            return 0.0;
        }
        self.tables_probed as f64 / self.gets as f64
    }

    /// Data blocks read per point read that found nothing.
    pub fn data_blocks_per_missing_get(&self) -> f64 {
        if self.missing_gets == 0 {
            return 0.0;
        }
        self.missing_data_blocks_read as f64 / self.missing_gets as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn threads_alive_together_never_share_an_owned_stripe() {
        const THREADS: usize = READ_STRIPES + 8;
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let lease = LEASE.with(|lease| lease.0);
                    // Hold the lease until every thread has one.
                    barrier.wait();
                    lease
                })
            })
            .collect();
        let leases: Vec<Option<usize>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut owned: Vec<usize> = leases.iter().flatten().copied().collect();
        let count = owned.len();
        owned.sort_unstable();
        owned.dedup();
        assert_eq!(
            owned.len(),
            count,
            "two live threads own one stripe: {leases:?}"
        );
        assert!(owned.iter().all(|&index| index < READ_STRIPES));
        assert!(
            leases.iter().filter(|lease| lease.is_none()).count() >= THREADS - READ_STRIPES,
            "more owned stripes than exist: {leases:?}"
        );
    }
}
