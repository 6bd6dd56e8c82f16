//! Engine options and their documented limits.

use crate::error::{Error, Result};

/// How a database is opened and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Create the database if the directory holds none (default true).
    pub create_if_missing: bool,
    /// Fail if a database already exists (default false).
    pub error_if_exists: bool,
    /// A memtable becomes immutable and is flushed once it holds this many bytes
    /// (default 64 MiB).
    pub memtable_size: usize,
    /// Writers wait (background mode) or flush inline (manual mode) while this many
    /// immutable memtables await flushing (default 2). Bounds memory to about
    /// `(max_immutable_memtables + 1) * memtable_size`.
    pub max_immutable_memtables: usize,
    /// Target size of an SSTable data block (default 4 KiB).
    pub block_size: usize,
    /// The WAL file is extended with zeros this many bytes at a time, so that synced writes
    /// overwrite allocated space (default 1 MiB; 0 disables).
    pub wal_preallocate: u64,
    /// Unsynced writes are handed to the OS once this many WAL bytes are buffered
    /// (default 64 KiB). Writes with `sync = true`, `Db::sync`, `flush` and `close` hand
    /// everything over at once.
    pub wal_buffer_size: usize,
    /// Run flushes on a background thread (default true). With false, nothing runs in the
    /// background: the owner calls [`crate::Db::maintenance`] (the simulator does, at
    /// seed-chosen points), and a writer that finds the immutable memtables full flushes one
    /// itself.
    pub background_work: bool,
    /// Bytes of parsed SSTable blocks kept in memory (default 64 MiB; 0 disables).
    pub block_cache_size: u64,
    /// Largest accepted key, in bytes (default and maximum 64 KiB).
    pub max_key_size: usize,
    /// Largest accepted value, in bytes (default 16 MiB, maximum 1 GiB).
    pub max_value_size: usize,
}

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
            wal_preallocate: 1 << 20,
            wal_buffer_size: 64 << 10,
            background_work: true,
            block_cache_size: 64 << 20,
            max_key_size: KEY_SIZE_LIMIT,
            max_value_size: 16 << 20,
        }
    }
}

impl Options {
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
