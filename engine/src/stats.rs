//! Engine statistics: cheap relaxed counters, and the snapshot `Db::stats` returns.

use crate::sstable::ReadCounters;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes of the point-read counters. Every read bumps them; one shared set would make
/// concurrent readers fight over its cache line (measured: 2 threads of missing-key reads
/// 1.3x one thread, before the stripes).
const READ_STRIPES: usize = 16;

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

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, dealt round-robin on first use.
    static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
}

fn my_stripe() -> usize {
    STRIPE.with(|stripe| match stripe.get() {
        Some(index) => index,
        None => {
            let index = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % READ_STRIPES;
            stripe.set(Some(index));
            index
        }
    })
}

fn bump(counter: &AtomicU64, value: u64) {
    if value > 0 {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

/// Live counters (relaxed atomics: statistics, not synchronisation).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: [ReadStripe; READ_STRIPES],
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
}

impl Counters {
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one point read and what it cost.
    pub fn add_read(&self, cost: &ReadCounters, found: bool) {
        let stripe = &self.reads[my_stripe()];
        bump(&stripe.gets, 1);
        bump(&stripe.tables_probed, cost.tables_probed);
        bump(&stripe.bloom_negatives, cost.bloom_negatives);
        bump(&stripe.data_blocks, cost.data_blocks);
        if !found {
            bump(&stripe.missing_gets, 1);
            bump(&stripe.missing_data_blocks, cost.data_blocks);
        }
    }

    fn sum_reads(&self, field: impl Fn(&ReadStripe) -> &AtomicU64) -> u64 {
        self.reads
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
