//! `strata-engine`: an LSM-tree key-value store whose every byte goes through `strata-vfs`.
//!
//! The seed's design (`shared/seed/lsm-tree-internals.txt`): a write is appended to the
//! write-ahead log, inserted into the memtable, then acknowledged; a full memtable becomes
//! immutable and is flushed as a sorted SSTable; the manifest records atomically which
//! tables are live and which WALs are still needed; reads go memtable → immutable
//! memtables → tables, newest to oldest, and the first answer (a value or a tombstone) wins.
//!
//! Production code only: there are no simulation-only branches. Under simulation the owner
//! turns off `background_work` and calls [`Db::maintenance`] at the points it chooses.

#![warn(missing_docs)]

mod batch;
mod block_cache;
mod coding;
mod compaction;
mod db;
mod error;
pub mod filenames;
mod iterator;
mod key_prefix;
pub mod manifest;
mod marks;
mod memtable;
mod options;
mod repair;
mod retention;
pub mod sstable;
mod stats;
mod table_cache;
mod verify;
mod version;
pub mod wal;

pub use batch::{decode_payload, BatchOp, DecodedPayload, LogSuccessor, WriteBatch};
pub use compaction::{GRANDPARENT_OVERLAP_FACTOR, TRIVIAL_MOVE_SIZE_FACTOR};
pub use db::{Db, RecoveryReport, Snapshot};
pub use error::{Error, Result};
pub use iterator::DbIterator;
pub use marks::{Mark, MarkCount, Marks};
pub use options::{
    Options, WalRecovery, WriteOptions, BLOOM_BITS_LIMIT, KEY_SIZE_LIMIT,
    UPPER_LEVEL_EXTRA_BLOOM_BITS, VALUE_SIZE_LIMIT,
};
pub use repair::{repair, KeptTable, Placement, RepairReport, SalvagedTable, SetAside};
pub use sstable::Compression;
pub use stats::Stats;
pub use verify::{verify, Problem, Severity, VerifyReport};

/// The README's example, compiled and run as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
