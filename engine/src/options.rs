//! Engine options and their documented limits.

use crate::error::{Error, Result};
use crate::marks::Marks;
use crate::sstable::Compression;
use strata_sched::Runtime;

/// How a database is opened and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Create the database if the directory holds none (default true).
    pub create_if_missing: bool,
    /// Fail if a database already exists (default false).
    pub error_if_exists: bool,
    /// A memtable becomes immutable and is flushed once it holds this many bytes
    /// (default 64 MiB), each version counted as its key and value plus 128 bytes: for
    /// small versions more than the memory it takes (61 bytes beyond a 16-byte key and a
    /// 100-byte value, measured, in the memtable's arena).
    pub memtable_size: usize,
    /// Writers wait (background mode) or flush inline (manual mode) while this many
    /// immutable memtables await flushing (default 2). Bounds memory to about
    /// `(max_immutable_memtables + 1) * memtable_size`.
    pub max_immutable_memtables: usize,
    /// Target size of an SSTable data block (default 4 KiB).
    pub block_size: usize,
    /// The WAL file is extended with zeros this many bytes at a time, so that synced writes
    /// overwrite allocated space (default 256 KiB; 0 disables). The next `fdatasync` writes
    /// the zeros back with the record it syncs: 4 KiB overwrite+fdatasync loops with 64 and
    /// 256 KiB extensions ran at 0.97-0.98 of a preallocated file's rate on this project's VM
    /// (medians of 4 runs), 1 MiB at 0.95, 4 MiB at 0.87, 16 KiB (a metadata commit every 4
    /// writes) at 0.87 with a spread of 0.73-0.95.
    pub wal_preallocate: u64,
    /// How many bytes of acknowledged, unsynced WAL records may wait inside the process
    /// before they are handed to the OS (default 0).
    ///
    /// With 0, every commit group is written to the OS before its writes are acknowledged:
    /// an acknowledged write survives a process kill (`kill -9`, a panic, an abort), synced
    /// or not, as in LevelDB, RocksDB and fjall; an unsynced one may still be lost in a
    /// power cut. A larger value saves a `write(2)` per commit group but weakens that
    /// promise: a process kill loses up to this many bytes of acknowledged unsynced writes.
    /// Writes with `sync = true`, `Db::sync`, `flush` and `close` hand everything over at
    /// once in both modes.
    pub wal_buffer_size: usize,
    /// Whether the disk has *powersafe overwrite* (default false): a write it tears damages
    /// only the bytes it was writing, never other bytes of the sector (SQLite's
    /// `SQLITE_IOCAP_POWERSAFE_OVERWRITE`). With false, every WAL sync ends the log on a
    /// 4 KiB sector boundary (`docs/wal-format.md`), so no later write shares a sector with
    /// synced records: a synced write survives a torn append after it on any disk. That costs
    /// up to 4 KiB of WAL per synced commit group (small synced writes: a sector each; a WAL
    /// 4x `memtable_size` rotates its memtable) and nothing for unsynced writes. With true,
    /// no padding: on a disk without powersafe overwrite, a power cut during a write may
    /// destroy synced writes that shared its sector. (The manifest is padded either way.)
    pub powersafe_overwrite: bool,
    /// Run flushes and compactions on two background threads (default true). With false, nothing runs in the
    /// background: the owner calls [`crate::Db::maintenance`] (the simulator does, at
    /// seed-chosen points), and a writer that finds the immutable memtables full flushes one
    /// itself.
    pub background_work: bool,
    /// Bits per key of the bloom filters of tables in the deepest level, which holds most
    /// of the data (default 10, about 1% false positives; 0: no filters). Tables above it get
    /// [`UPPER_LEVEL_EXTRA_BLOOM_BITS`] more: see [`Options::bloom_bits_for_level`].
    pub bloom_bits_per_key: usize,
    /// Level 0 is compacted into level 1 once it holds this many tables (default 4).
    pub level0_compaction_trigger: usize,
    /// Writers are slowed (1 ms per write group, background mode) once level 0 holds this
    /// many tables (default 8).
    pub level0_slowdown_trigger: usize,
    /// Writers wait for compaction (or, without background work, compact themselves) once
    /// level 0 holds this many tables (default 12). Bounds read amplification.
    pub level0_stop_trigger: usize,
    /// The byte budget of level 1 (default 256 MiB).
    pub level_base_bytes: u64,
    /// Each level below 1 may hold this many times the bytes of the one above (default 10).
    pub level_size_ratio: u64,
    /// Compaction cuts its output into tables of about this size (default 64 MiB).
    pub target_file_size: u64,
    /// Bytes of parsed SSTable blocks kept in memory (default 64 MiB; 0 disables).
    pub block_cache_size: u64,
    /// Table files kept open at once, by the table cache (default 1,000, as LevelDB's;
    /// at least 1). A read of a block of a table whose handle was closed opens it again.
    pub max_open_files: usize,
    /// Largest accepted key, in bytes (default and maximum 64 KiB).
    pub max_key_size: usize,
    /// Largest accepted value, in bytes (default 16 MiB, maximum 1 GiB).
    pub max_value_size: usize,
    /// Where the database's threads, locks and clock come from (default: the OS). The
    /// simulator passes a simulated runtime, so that the same code runs under its seeded
    /// scheduler; see `strata-sched`.
    pub runtime: Runtime,
    /// What recovery does with damage to a WAL's durable records (default:
    /// [`WalRecovery::Strict`]).
    pub wal_recovery: WalRecovery,
    /// How the data blocks of tables written to each level are compressed: entry `i` for
    /// level `i`, the last entry for every level past the end, none if empty (default:
    /// LZ4 everywhere, as RocksDB and fjall do). Each block records its own type, so a
    /// change applies to tables written from then on and old ones stay readable. A common
    /// choice for a tree that must be small on disk: LZ4 for levels 0 and 1, which are
    /// rewritten most often, and [`Compression::Zstd`] below them, which hold most of the
    /// data (`vec![Lz4, Lz4, Zstd { level: 3 }]`).
    pub compression_per_level: Vec<Compression>,
    /// Coverage marks: the engine counts the named points of its crash-relevant paths it
    /// reaches (default: disabled, which costs a branch per point). The simulator passes an
    /// enabled handle per run; see [`crate::Marks`].
    pub marks: Marks,
}

/// How recovery treats damaged WAL records, after RocksDB's `WALRecoveryMode`.
///
/// A crash leaves a torn tail past the last point the log was made durable; both modes keep
/// every record before it and drop the tail. They differ on damage to bytes that *were*
/// durable (proven by a later record, a closing record or a later WAL), on a lost WAL and on
/// a gap in the sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WalRecovery {
    /// Such damage is [`crate::Error::Corruption`] naming the file and offset: the database
    /// does not open until an operator decides (`strata db verify`, `repair`). No
    /// acknowledged synced write is ever silently lost.
    #[default]
    Strict,
    /// Recover to the last consistent point before the first damage, without error: every
    /// record after it, in that WAL and in later ones, is dropped, so acknowledged writes
    /// may be lost, but the result is always a prefix of the history (never a hole, never a
    /// write without the ones before it). `Db::recovery_report` says what was dropped.
    /// For users who prefer availability.
    PointInTime,
}

/// Extra bloom bits per key for tables above the deepest level (about a tenth of the false
/// positives: 0.1% instead of 1% at the default 10 + 6).
pub const UPPER_LEVEL_EXTRA_BLOOM_BITS: usize = 6;

/// The hard ceiling on bits per key of a filter.
pub const BLOOM_BITS_LIMIT: usize = 64;

/// The hard ceiling on `max_key_size`.
pub const KEY_SIZE_LIMIT: usize = 64 * 1024;
/// The hard ceiling on `max_value_size`.
pub const VALUE_SIZE_LIMIT: usize = 1 << 30;

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            error_if_exists: false,
            memtable_size: 64 << 20,
            max_immutable_memtables: 2,
            block_size: 4096,
            wal_preallocate: 256 << 10,
            wal_buffer_size: 0,
            powersafe_overwrite: false,
            background_work: true,
            block_cache_size: 64 << 20,
            bloom_bits_per_key: 10,
            level0_compaction_trigger: 4,
            level0_slowdown_trigger: 8,
            level0_stop_trigger: 12,
            level_base_bytes: 256 << 20,
            level_size_ratio: 10,
            target_file_size: 64 << 20,
            max_open_files: 1000,
            max_key_size: KEY_SIZE_LIMIT,
            max_value_size: 16 << 20,
            runtime: Runtime::os(),
            wal_recovery: WalRecovery::Strict,
            compression_per_level: vec![Compression::Lz4],
            marks: Marks::disabled(),
        }
    }
}

impl Options {
    /// How tables written to `level` compress their data blocks.
    pub fn compression_for_level(&self, level: usize) -> Compression {
        self.compression_per_level
            .get(level)
            .or(self.compression_per_level.last())
            .copied()
            .unwrap_or(Compression::None)
    }

    /// Bits per key of the filter of a table written to `level` while `deepest_level` is
    /// the deepest level holding data (Monkey, Dayan et al., SIGMOD 2017): a read of a
    /// missing key consults one table in every level, and levels above the deepest hold
    /// about a tenth of the data, so their filters get [`UPPER_LEVEL_EXTRA_BLOOM_BITS`]
    /// more bits per key. That costs little memory (in a settled tree, about 6 bits for
    /// about 11% of the keys) and takes most of their false positives, each a data-block
    /// read, off every missing-key read that passes them. Level-0 tables always sit above
    /// the level they will be compacted into.
    pub fn bloom_bits_for_level(&self, level: usize, deepest_level: usize) -> usize {
        if self.bloom_bits_per_key == 0 {
            0
        } else if level == 0 || level < deepest_level {
            (self.bloom_bits_per_key + UPPER_LEVEL_EXTRA_BLOOM_BITS).min(BLOOM_BITS_LIMIT)
        } else {
            self.bloom_bits_per_key
        }
    }

    /// Checks the options against their limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidArgument(reason));
        if self.memtable_size < 1024 {
            return bad(format!(
                "memtable_size {} is below 1 KiB",
                self.memtable_size
            ));
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables must be at least 1".into());
        }
        if !(256..=1 << 20).contains(&self.block_size) {
            return bad(format!(
                "block_size {} is outside 256 B ..= 1 MiB",
                self.block_size
            ));
        }
        if self.bloom_bits_per_key > BLOOM_BITS_LIMIT {
            return bad(format!(
                "bloom_bits_per_key {} is above {BLOOM_BITS_LIMIT}",
                self.bloom_bits_per_key
            ));
        }
        if self.level0_compaction_trigger == 0
            || self.level0_slowdown_trigger < self.level0_compaction_trigger
            || self.level0_stop_trigger < self.level0_slowdown_trigger
        {
            return bad(format!(
                "level-0 triggers must satisfy 1 <= compaction ({}) <= slowdown ({}) <= stop ({})",
                self.level0_compaction_trigger,
                self.level0_slowdown_trigger,
                self.level0_stop_trigger
            ));
        }
        if self.level_size_ratio < 2 || self.level_base_bytes < 1024 || self.target_file_size < 1024
        {
            return bad(
                "level_size_ratio must be >= 2, level_base_bytes and target_file_size >= 1 KiB"
                    .into(),
            );
        }
        for (level, compression) in self.compression_per_level.iter().enumerate() {
            if let Compression::Zstd { level: zstd_level } = compression {
                let levels = crate::sstable::zstd_levels();
                if !levels.contains(zstd_level) {
                    return bad(format!(
                        "compression_per_level[{level}]: zstd level {zstd_level} is outside \
                         {} ..= {}",
                        levels.start(),
                        levels.end()
                    ));
                }
            }
        }
        if self.max_open_files == 0 {
            return bad("max_open_files must be at least 1".into());
        }
        if self.max_key_size == 0 || self.max_key_size > KEY_SIZE_LIMIT {
            return bad(format!(
                "max_key_size {} is outside 1 ..= {KEY_SIZE_LIMIT}",
                self.max_key_size
            ));
        }
        if self.max_value_size > VALUE_SIZE_LIMIT {
            return bad(format!(
                "max_value_size {} is above {VALUE_SIZE_LIMIT}",
                self.max_value_size
            ));
        }
        Ok(())
    }
}

/// How one write is acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Wait for the WAL fsync before acknowledging: the write then survives any crash.
    /// Without it a crash may lose the write, but only with every write after it.
    pub sync: bool,
}

impl WriteOptions {
    /// `sync = true`.
    pub const SYNC: WriteOptions = WriteOptions { sync: true };
    /// `sync = false`.
    pub const NO_SYNC: WriteOptions = WriteOptions { sync: false };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_deepest_level_gets_the_base_filter_bits() {
        let options = Options::default();
        let base = options.bloom_bits_per_key;
        let upper = base + UPPER_LEVEL_EXTRA_BLOOM_BITS;
        assert_eq!(options.bloom_bits_for_level(0, 0), upper);
        assert_eq!(options.bloom_bits_for_level(0, 3), upper);
        assert_eq!(options.bloom_bits_for_level(1, 3), upper);
        assert_eq!(options.bloom_bits_for_level(3, 3), base);
        // Compacting below the deepest level makes a new deepest level.
        assert_eq!(options.bloom_bits_for_level(4, 3), base);
        let none = Options {
            bloom_bits_per_key: 0,
            ..Options::default()
        };
        assert_eq!(none.bloom_bits_for_level(0, 2), 0);
        let most = Options {
            bloom_bits_per_key: BLOOM_BITS_LIMIT,
            ..Options::default()
        };
        assert_eq!(most.bloom_bits_for_level(0, 2), BLOOM_BITS_LIMIT);
    }
}
