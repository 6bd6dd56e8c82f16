//! Engine statistics: cheap relaxed counters, and the snapshot `Db::stats` returns.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (relaxed atomics: statistics, not synchronisation).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub gets: AtomicU64,
    pub tables_probed: AtomicU64,
    pub bloom_negatives: AtomicU64,
    pub data_blocks: AtomicU64,
    pub missing_gets: AtomicU64,
    pub missing_data_blocks: AtomicU64,
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
            gets: get(&counters.gets),
            tables_probed: get(&counters.tables_probed),
            bloom_negatives: get(&counters.bloom_negatives),
            data_blocks_read: get(&counters.data_blocks),
            missing_gets: get(&counters.missing_gets),
            missing_data_blocks_read: get(&counters.missing_data_blocks),
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
