//! `Db`: the engine's front door, and the read path. The rest of the engine behind it is
//! split along its seams:
//!
//! - `open.rs`: opening, creating and recovering a database (WAL replay, first manifest);
//! - `commit.rs`: the commit pipeline (group commit, WAL appends, memtable rotation, write
//!   stalls);
//! - `background.rs`: flushes and compactions as jobs (outputs written and synced, manifest
//!   edit, install, inputs deleted) and the threads that run them;
//! - `poison.rs`: fail-stop after a write-path error, and the panic guard.
//!
//! Every thread, lock, wait and sleep comes from `Options::runtime` (`strata-sched`), so the
//! simulator runs this very code under its seeded scheduler.
//!
//! # Components and their locks
//!
//! | component | locks | guards |
//! |---|---|---|
//! | commit pipeline | `commit.queue` (+ conditions `done`, `arrival`), `commit.writer` | the writers' queue; the WAL, the active memtable, the last sequence |
//! | background jobs | `jobs.state` (+ condition `wake`), `jobs.flush`, `jobs.compaction` | wake-ups and shutdown; one flush and one compaction at a time |
//! | versions | `state` | the manifest, the live version, the immutable memtables |
//! | poison | `poison` (behind an atomic flag) | why writes are refused |
//! | facade | `dir_lock`, `threads` | the `LOCK` file; the background threads' handles |
//!
//! **Lock order** (a lock is only taken while holding locks to its left):
//!
//! - `commit.writer` → `jobs.state` → `state` → `poison`;
//! - `commit.writer` → `jobs.flush` → `state` (embedded mode: a writer flushes in
//!   `make_room`), and `commit.writer` → `jobs.compaction` → `state` (embedded mode: a
//!   stalled writer compacts in `throttle`);
//! - `jobs.flush` → `state`, `jobs.compaction` → `state` (the background threads).
//!
//! `commit.queue` is a leaf: nothing else is taken while it is held (the leader releases it
//! before it takes `commit.writer`; the panic guard releases `poison` before taking it).
//! Writers wait on `jobs.wake` while holding `commit.writer` (stalls, a full immutable
//! queue), so no background job may ever take `commit.writer`. The read view is an
//! `ArcSwap`, stored under `state` and loaded without a lock.
//!
//! Write path: a writer queues its batch; the first queued writer with no leader active
//! becomes the *leader*, takes every queued batch, appends one WAL record per batch, fsyncs
//! once if any of them asked for `sync`, inserts them into the memtable in order and wakes
//! the others. Any write-path I/O error poisons the database (fail-stop, like fjall): the
//! error's effect on disk is unknown, and retrying an fsync is the fsyncgate bug.
//!
//! Flush order (each step durable before the next):
//! 1. write the SSTable, fsync it, `sync_dir`;
//! 2. append the version edit (table added, older WALs obsolete) to the manifest, fsync;
//! 3. only then delete the obsolete WALs.

mod background;
mod close;
mod commit;
mod open;
mod poison;
mod read_only;
pub(crate) mod replay;
mod snapshot;

pub(crate) use self::open::set_aside_files;
pub use self::replay::RecoveryReport;
pub use self::snapshot::Snapshot;

use self::background::BackgroundJobs;
use self::commit::CommitPipeline;
use self::poison::Poison;
use crate::batch::WriteBatch;
use crate::compaction;
use crate::error::{Error, Result};
use crate::iterator::{
    Bounds, DbIterator, Direction, MemtableSource, Source, SourceSet, TableSource,
};
use crate::manifest::{ManifestState, ManifestWriter, TableMeta};
use crate::memtable::Memtable;
use crate::options::{Options, WriteOptions};
use crate::sstable::{KeyHash, ReadCounters, SstReader};
use crate::stats::{Counters, Stats};
use crate::table_cache::TableCaches;
use crate::version::Version;
use arc_swap::ArcSwap;
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use strata_sched::{JoinHandle, Mutex, MutexGuard};
use strata_vfs::{Vfs, VfsLock};

/// An open database: one per directory and process at a time (its `LOCK`), shared between
/// threads by reference (`Db` is `Sync`; wrap it in an `Arc` to share ownership).
///
/// ```
/// use std::sync::Arc;
/// use strata_engine::{Db, Options, WriteBatch, WriteOptions};
/// use strata_vfs::RealFs;
///
/// let dir = tempfile::tempdir()?;
/// let db = Db::open(Arc::new(RealFs::new()), dir.path(), Options::default())?;
/// db.put("user:1", "Ada", WriteOptions::SYNC)?; // durable when it returns
/// let mut batch = WriteBatch::new();
/// batch.put("user:2", "Grace").delete("user:1");
/// db.write(batch, WriteOptions::NO_SYNC)?; // all or nothing, for crashes and readers
/// assert_eq!(db.get("user:1")?, None);
/// let users: Vec<_> = db.range("user:".."user;")?.collect::<Result<_, _>>()?;
/// assert_eq!(users, [(b"user:2".to_vec(), b"Grace".to_vec())]);
/// db.close()?; // every acknowledged write durable
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Db {
    inner: Arc<DbInner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.inner.dir.display())
    }
}

struct DbInner {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    options: Options,
    /// The block cache and the table cache (open files), shared by every table.
    caches: TableCaches,
    /// Tables a durable edit deleted, whose files wait until no reader holds them
    /// (table number, the reader old versions share): see `remove_unreferenced_tables`.
    obsolete_tables: Mutex<Vec<(u64, Weak<SstReader>)>>,
    /// What readers read: swapped whole whenever a memtable or the table set changes.
    /// Lock-free: a point read loads it without touching a shared reference count.
    view: ArcSwap<ReadView>,
    /// The version component: the manifest, the live tables, the memtable queue.
    state: Mutex<State>,
    /// The commit pipeline: the queue of writers and the WAL + memtable they append to.
    commit: CommitPipeline,
    /// Background jobs: their wake-up signal and one lock per kind of job.
    jobs: BackgroundJobs,
    /// Why the database refuses writes, if it does.
    poison: Poison,
    closed: AtomicBool,
    counters: Counters,
    /// The held `LOCK`; released by `close` (or when the last reference goes).
    dir_lock: Mutex<Option<Box<dyn VfsLock>>>,
    /// What the recovery that opened the database found.
    recovery: RecoveryReport,
    /// The last sequence number whose write readers may see: stored by the commit leader
    /// after its whole group is in the memtable.
    visible_sequence: AtomicU64,
    /// The live snapshots.
    snapshots: snapshot::Snapshots,
    /// Opened with `Db::open_read_only`: every write path refuses.
    read_only: bool,
}

struct ReadView {
    memtable: Arc<Memtable>,
    /// Newest first.
    immutables: Vec<Arc<Memtable>>,
    version: Arc<Version>,
}

struct Immutable {
    memtable: Arc<Memtable>,
    wal_number: u64,
    last_sequence: u64,
}

struct State {
    manifest: ManifestWriter,
    manifest_state: ManifestState,
    version: Arc<Version>,
    /// Oldest first.
    immutables: VecDeque<Immutable>,
    memtable: Arc<Memtable>,
    current_wal_number: u64,
    /// Per level, the largest key of the last table compacted out of it.
    compact_pointers: Vec<Vec<u8>>,
}

impl State {
    fn allocate_file_number(&mut self) -> u64 {
        let number = self.manifest_state.next_file_number;
        self.manifest_state.next_file_number += 1;
        number
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another thread is a broken invariant there; the data is still the best
    // we have, and poisoning the whole database for it would hide the first failure
    // (the runtime's mutexes do not poison).
    mutex.lock()
}

fn owned_bound<K: AsRef<[u8]>>(bound: Bound<&K>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_ref().to_vec()),
        Bound::Excluded(key) => Bound::Excluded(key.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Db {
    /// Sets `key` to `value`.
    pub fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: WriteOptions,
    ) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let mut batch = WriteBatch::with_capacity(1, key.len(), value.len());
        batch.put(key, value);
        self.write(batch, options)
    }

    /// Removes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>, options: WriteOptions) -> Result<()> {
        let key = key.as_ref();
        let mut batch = WriteBatch::with_capacity(1, key.len(), 0);
        batch.delete(key);
        self.write(batch, options)
    }

    /// Applies a batch atomically, with respect to crashes (after recovery all of it is
    /// there or none) and to readers (a read, scan or snapshot sees all of it or none).
    pub fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<()> {
        self.write_sequenced(batch, options).1
    }

    /// [`Db::write`], also saying which sequence number the engine gave the batch's first
    /// operation (the others follow it consecutively), if the batch got that far: every
    /// batch that reached the WAL has one, whether or not the write then succeeded; one
    /// refused before has `None`. Sequence numbers are the engine's commit order, the order
    /// recovery replays: a write acknowledged before another is submitted has a lower number.
    /// They start again after the last recovered write when the database is reopened.
    pub fn write_sequenced(
        &self,
        batch: WriteBatch,
        options: WriteOptions,
    ) -> (Option<u64>, Result<()>) {
        if let Err(error) = self.validate_write(&batch) {
            return (None, Err(error));
        }
        if batch.is_empty() {
            return (None, Ok(()));
        }
        self.inner.commit(batch, options.sync)
    }

    fn validate_write(&self, batch: &WriteBatch) -> Result<()> {
        self.inner.check_writable()?;
        let (max_key, max_value) = batch.max_sizes();
        if max_key > self.inner.options.max_key_size {
            return Err(Error::InvalidArgument(format!(
                "key of {max_key} bytes exceeds max_key_size {}",
                self.inner.options.max_key_size
            )));
        }
        if max_value > self.inner.options.max_value_size {
            return Err(Error::InvalidArgument(format!(
                "value of {max_value} bytes exceeds max_value_size {}",
                self.inner.options.max_value_size
            )));
        }
        Ok(())
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let sequence = self.inner.visible_sequence.load(Ordering::Acquire);
        self.inner.get_at(key.as_ref(), sequence)
    }

    /// A snapshot: a consistent view of the database as of now, for reads that must not
    /// see later writes.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(&self.inner)
    }

    /// What the recovery that opened this database found beyond whole logs: damage a
    /// point-in-time recovery went past, files set aside in `lost/`, tables written.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// A snapshot of the engine's statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::from_counters(&self.inner.counters);
        let view = self.inner.read_view();
        stats.tables_per_level = view.version.levels().iter().map(Vec::len).collect();
        stats.bytes_per_level = (0..view.version.levels().len())
            .map(|l| view.version.level_bytes(l))
            .collect();
        if let Some(blocks) = &self.inner.caches.blocks {
            stats.block_cache_bytes = blocks.bytes();
        }
        if let Some(files) = &self.inner.caches.files {
            stats.open_table_files = files.open_count();
            stats.table_files_reopened = files.reopened();
        }
        stats
    }

    /// How many flushes and compactions (rewrites and trivial moves) have finished: a cheap
    /// progress counter for monitors, unlike [`Db::stats`].
    pub fn jobs_finished(&self) -> u64 {
        let counters = &self.inner.counters;
        [
            &counters.flushes,
            &counters.compactions,
            &counters.trivial_moves,
        ]
        .iter()
        .map(|counter| counter.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
    }

    /// The live tables, level by level (level 0 newest first, deeper levels in key order).
    pub fn levels(&self) -> Vec<Vec<TableMeta>> {
        let view = self.inner.read_view();
        view.version
            .levels()
            .iter()
            .map(|tables| tables.iter().map(|table| table.meta.clone()).collect())
            .collect()
    }

    /// Flushes the memtable and pushes every table down to the deepest level in use (at
    /// least level 1): afterwards reads probe one table, and each key the compaction merged
    /// has one version, plus the older ones snapshots live meanwhile still read (tables
    /// already at the deepest level are not rewritten).
    pub fn compact_all(&self) -> Result<()> {
        self.flush()?;
        loop {
            self.inner.check_writable()?;
            let levels = self.levels();
            let deepest = levels
                .iter()
                .rposition(|tables| !tables.is_empty())
                .unwrap_or(0)
                .max(1);
            let Some(level) =
                (0..deepest).find(|&level| levels.get(level).is_some_and(|t| !t.is_empty()))
            else {
                return Ok(());
            };
            if !self.inner.compact_level(level)? {
                return Ok(());
            }
        }
    }

    /// Compacts until no level needs it (or runs nothing if none does).
    pub fn compact(&self) -> Result<()> {
        self.inner.check_writable()?;
        while self.inner.compact_once()? {}
        Ok(())
    }

    /// A scan over `range`, in key order (or in reverse, with `.rev()`), of the database as
    /// of now: every batch committed before the call is in it whole, and nothing later.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<DbIterator> {
        let bounds = Bounds {
            lower: owned_bound(range.start_bound()),
            upper: owned_bound(range.end_bound()),
        };
        // The sequence is registered as a snapshot until the view is loaded: a flush or
        // compaction installed in between would otherwise drop (or write without their
        // sequence) versions this scan reads at it, and it would see later writes than its
        // `sequence()` says (found by reading, helper review of the snapshot checker).
        let pinned = self.snapshot();
        self.inner.scan_at(bounds, pinned.sequence())
    }

    /// A scan over every key.
    pub fn iter(&self) -> Result<DbIterator> {
        self.range::<&[u8], _>(..)
    }

    /// Makes every acknowledged write durable (flushes the WAL buffer and fsyncs).
    pub fn sync(&self) -> Result<()> {
        self.inner.check_writable()?;
        let mut writer = lock(&self.inner.commit.writer);
        self.inner.check_writable()?;
        let result = writer.wal.sync();
        self.inner.poison_on_error(result)
    }

    /// Writes the memtable (and every immutable one) to SSTables now.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        {
            let mut writer = lock(&self.inner.commit.writer);
            self.inner.check_writable()?;
            if !writer.memtable.is_empty() {
                self.inner.make_room(&mut writer)?;
            }
        }
        while self.inner.flush_oldest()? {}
        Ok(())
    }

    /// Runs one step of background work — a memtable flush, or else one compaction — if
    /// any is due; returns whether it did anything. With `background_work = false` the
    /// owner decides when this runs.
    pub fn maintenance(&self) -> Result<bool> {
        self.inner.check_writable()?;
        if self.inner.flush_oldest()? {
            return Ok(true);
        }
        self.inner.compact_once()
    }

    /// Whether background work is waiting.
    pub fn has_pending_work(&self) -> bool {
        let state = lock(&self.inner.state);
        !state.immutables.is_empty()
            || compaction::most_urgent(&state.version, &self.inner.options).is_some()
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Why the database refuses writes, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poison.reason()
    }
}

impl SourceSet for ReadView {
    fn sources(
        &self,
        bounds: &Bounds,
        direction: Direction,
        sequence: u64,
    ) -> Vec<Box<dyn Source>> {
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for memtable in std::iter::once(&self.memtable).chain(&self.immutables) {
            sources.push(Box::new(MemtableSource::new(
                Arc::clone(memtable),
                bounds.clone(),
                direction,
                sequence,
            )));
        }
        for table in self.version.tables_in_read_order() {
            sources.push(Box::new(TableSource::new(
                Arc::clone(table),
                bounds.clone(),
                direction,
            )));
        }
        sources
    }
}

impl DbInner {
    /// A point read at `sequence`.
    fn get_at(&self, key: &[u8], sequence: u64) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        // A guard, not a clone: concurrent readers share no cache line to write.
        let view = self.view.load();
        // Every filter first, every answer second: the memtable's filter word and each
        // candidate table's filter line are independent cache misses the CPU overlaps
        // (a missing key then costs about one miss however many levels it passes).
        let hash = KeyHash::of(key);
        let in_memtable = view.memtable.may_contain(hash);
        let probe = view.version.probe(key, hash);
        let in_memory = if in_memtable {
            view.memtable.get_unfiltered(key, sequence)
        } else {
            None
        };
        let in_memory = in_memory.or_else(|| {
            view.immutables
                .iter()
                .find_map(|memtable| memtable.get_hashed(key, hash, sequence))
        });
        let mut read = ReadCounters::default();
        let found = match in_memory {
            Some(slot) => slot,
            None => view
                .version
                .finish(probe, key, hash, sequence, &mut read)?
                .flatten(),
        };
        self.counters.add_read(&read, found.is_some());
        Ok(found)
    }

    /// A scan of `bounds` at `sequence`, over the current view.
    fn scan_at(&self, bounds: Bounds, sequence: u64) -> Result<DbIterator> {
        self.check_open()?;
        let view: Arc<dyn SourceSet> = self.read_view();
        Ok(DbIterator::new(view, bounds, sequence))
    }

    fn read_view(&self) -> Arc<ReadView> {
        self.view.load_full()
    }

    fn publish_view(&self, state: &State) {
        let view = ReadView {
            memtable: Arc::clone(&state.memtable),
            immutables: state
                .immutables
                .iter()
                .rev()
                .map(|i| Arc::clone(&i.memtable))
                .collect(),
            version: Arc::clone(&state.version),
        };
        self.view.store(Arc::new(view));
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        self.poison.check()
    }

    fn poison_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.poison.set(error.to_string());
        }
        result
    }
}
