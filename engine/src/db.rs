//! `Db`: the engine's front door — open/recover, the write path with group commit, the read
//! path, memtable flushes and their crash-safe installation.
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
//!
//! Lock order: `writer` → `background` → `state`; `flush_lock` → `state`. The read view is an
//! `ArcSwap`, stored under `state` and loaded without a lock.

use crate::batch::{decode_payload, BatchOp, WriteBatch};
use crate::block_cache::BlockCache;
use crate::compaction::{self, NUM_LEVELS};
use crate::error::{Error, Result};
use crate::filenames::{self, table_path, wal_path, FileKind};
use crate::iterator::{DbIterator, MemtableSource, Source, TableSource};
use crate::manifest::{self, ManifestState, ManifestWriter, TableMeta, VersionEdit};
use crate::memtable::Memtable;
use crate::options::{Options, WriteOptions};
use crate::sstable::TableBuilder;
use crate::sstable::{KeyHash, ReadCounters};
use crate::stats::{Counters, Stats};
use crate::version::Version;
use crate::wal::{self, LogEnd, WalReader, WalWriter};
use arc_swap::ArcSwap;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata_sched::{Condvar, JoinHandle, Mutex, MutexGuard};
use strata_vfs::{Vfs, VfsError, VfsLock};

/// An open database.
pub struct Db {
    inner: Arc<DbInner>,
    background: Mutex<Vec<JoinHandle<()>>>,
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
    block_cache: Option<Arc<BlockCache>>,
    /// What readers read: swapped whole whenever a memtable or the table set changes.
    /// Lock-free: a point read loads it without touching a shared reference count.
    view: ArcSwap<ReadView>,
    state: Mutex<State>,
    writer: Mutex<WriterState>,
    commit: Mutex<CommitQueue>,
    commit_done: Condvar,
    /// Signalled when a batch is queued while a leader gathers its group.
    commit_arrival: Condvar,
    background: Mutex<BackgroundState>,
    background_signal: Condvar,
    flush_lock: Mutex<()>,
    compaction_lock: Mutex<()>,
    poison: Mutex<Option<String>>,
    closed: AtomicBool,
    counters: Counters,
    /// The held `LOCK`; released by `close` (or when the last reference goes).
    dir_lock: Mutex<Option<Box<dyn VfsLock>>>,
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

struct WriterState {
    wal: WalWriter,
    wal_number: u64,
    memtable: Arc<Memtable>,
    last_sequence: u64,
    payload: Vec<u8>,
}

#[derive(Default)]
struct CommitQueue {
    pending: Vec<Pending>,
    next_ticket: u64,
    /// Every ticket below this is finished.
    done_below: u64,
    failures: std::collections::BTreeMap<u64, Error>,
    /// The first sequence number of each finished ticket whose batch reached the WAL.
    sequences: std::collections::BTreeMap<u64, u64>,
    leader_active: bool,
    /// Size of the last committed group: how many writers are likely to be coming.
    last_group: usize,
}

struct Pending {
    ticket: u64,
    batch: WriteBatch,
    sync: bool,
}

#[derive(Default)]
struct BackgroundState {
    /// Bumped whenever background work may be due (a rotation, a flush, a compaction).
    requests: u64,
    shutdown: bool,
}

/// The two background threads: flushes never wait behind a long compaction.
#[derive(Clone, Copy)]
enum BackgroundRole {
    Flush,
    Compaction,
}

/// Poisons the database if the thread holding it panics (a broken invariant): without it a
/// panicking commit leader would leave its group, and every later writer, waiting forever.
struct PanicGuard<'a> {
    inner: &'a DbInner,
    /// The tickets of the commit group being led, if any.
    group: Option<std::ops::RangeInclusive<u64>>,
    armed: bool,
}

impl<'a> PanicGuard<'a> {
    fn new(inner: &'a DbInner, group: Option<std::ops::RangeInclusive<u64>>) -> PanicGuard<'a> {
        PanicGuard {
            inner,
            group,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if !self.armed || !std::thread::panicking() {
            return;
        }
        let reason = "a thread panicked inside the engine (a broken invariant)".to_string();
        lock(&self.inner.poison).get_or_insert_with(|| reason.clone());
        if let Some(group) = self.group.clone() {
            let mut queue = lock(&self.inner.commit);
            queue.leader_active = false;
            queue.done_below = queue.done_below.max(group.end() + 1);
            for ticket in group {
                queue.failures.insert(
                    ticket,
                    Error::Poisoned {
                        reason: reason.clone(),
                    },
                );
            }
            self.inner.commit_done.notify_all();
        }
        let _background = lock(&self.inner.background);
        self.inner.background_signal.notify_all();
    }
}

/// How long a commit leader waits for the writers of the last group to join its group.
const LEADER_GATHER_TIME: Duration = Duration::from_micros(100);

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

/// Writes a memtable as table `number` (synced, and its name made durable).
fn write_table(
    vfs: &dyn Vfs,
    dir: &Path,
    number: u64,
    memtable: &Memtable,
    options: &Options,
) -> Result<TableMeta> {
    let path = table_path(dir, number);
    let mut builder = TableBuilder::new(
        vfs.create(&path)?,
        options.block_size,
        // Level-0 tables are compacted down into whatever level lies below them.
        options.bloom_bits_for_level(0, 0),
    );
    let mut result = Ok(());
    memtable.for_each(|key, value| {
        if result.is_ok() {
            result = builder.add(key, value);
        }
    });
    result?;
    let summary = builder.finish()?;
    vfs.sync_dir(dir)?;
    Ok(TableMeta {
        number,
        level: 0,
        file_size: summary.file_size,
        entries: summary.entries,
        smallest: summary.smallest,
        largest: summary.largest,
    })
}

fn parent_dir(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Db {
    /// Opens (recovering) or creates the database in `dir`.
    pub fn open(vfs: Arc<dyn Vfs>, dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if !vfs.exists(&dir)? {
            if !options.create_if_missing {
                return Err(Error::InvalidArgument(format!(
                    "database directory {} does not exist",
                    dir.display()
                )));
            }
            // Every directory created here needs its entry made durable in its parent,
            // from the top down, or a crash could lose the database with its path.
            let mut created = Vec::new();
            let mut missing = Some(dir.as_path());
            while let Some(path) = missing.filter(|p| !p.as_os_str().is_empty()) {
                if vfs.exists(path)? {
                    break;
                }
                created.push(path.to_path_buf());
                missing = path.parent();
            }
            vfs.create_dir_all(&dir)?;
            for path in created.iter().rev() {
                vfs.sync_dir(&parent_dir(path))?;
            }
        }
        // The directory's own entry must be durable before anything in it is acknowledged.
        // Done on every open, before anything is written: an earlier open may have created
        // the directory and failed before (or while) syncing its parent, and a retry cannot
        // tell (found by the simulator twice; corpus/0001 and 0002).
        vfs.sync_dir(&parent_dir(&dir))?;
        // Refuse a directory that holds no database of ours before the lock leaves a `LOCK`
        // file in it.
        let names = vfs.list(&dir)?;
        if !names.iter().any(|name| name == filenames::CURRENT) {
            Self::check_creatable(&dir, &names, &options)?;
        }
        // One process at a time: two engines appending to one WAL or manifest would
        // destroy each other's writes. Held until `close` or drop.
        let dir_lock =
            vfs.lock(&dir.join(filenames::LOCK))
                .map_err(|error| match error.kind() {
                    ErrorKind::WouldBlock => Error::Locked { dir: dir.clone() },
                    _ => Error::Io(error),
                })?;
        // Listed again: until the lock was ours, another process could change it.
        let names = vfs.list(&dir)?;
        if names.iter().any(|name| name == filenames::CURRENT) {
            if options.error_if_exists {
                return Err(Error::InvalidArgument(format!(
                    "a database already exists in {}",
                    dir.display()
                )));
            }
        } else {
            Self::create_new(vfs.as_ref(), &dir, &names, &options)?;
        }
        let inner = Arc::new(Self::recover(vfs, dir, options, dir_lock)?);
        let runtime = inner.options.runtime.clone();
        let mut background = Vec::new();
        if inner.options.background_work {
            let dir_for_errors = inner.dir.clone();
            for (name, role) in [
                ("strata-flush", BackgroundRole::Flush),
                ("strata-compact", BackgroundRole::Compaction),
            ] {
                let worker = Arc::clone(&inner);
                let spawned = runtime.spawn(name, move || worker.background_loop(role));
                match spawned {
                    Ok(handle) => background.push(handle),
                    Err(e) => {
                        let db = Db {
                            inner,
                            background: runtime.mutex(background),
                        };
                        drop(db);
                        return Err(Error::Io(VfsError::from_io(
                            "spawn background thread for",
                            &dir_for_errors,
                            e,
                        )));
                    }
                }
            }
        }
        Ok(Db {
            inner,
            background: runtime.mutex(background),
        })
    }

    /// Whether a new database may be created in `dir`, which holds `names` and no `CURRENT`.
    fn check_creatable(dir: &Path, names: &[String], options: &Options) -> Result<()> {
        for name in names {
            match filenames::parse(name) {
                Some(FileKind::Wal(_)) | Some(FileKind::Table(_)) => {
                    return Err(Error::corruption(
                        dir.join(filenames::CURRENT),
                        0,
                        format!("CURRENT is missing but the directory holds database files (e.g. {name})"),
                    ))
                }
                Some(_) => {}
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is not empty and holds no Strata database (found {name:?})",
                        dir.display()
                    )))
                }
            }
        }
        if !options.create_if_missing {
            return Err(Error::InvalidArgument(format!(
                "no database in {}",
                dir.display()
            )));
        }
        Ok(())
    }

    /// Writes the first manifest and `CURRENT` of a new database.
    fn create_new(vfs: &dyn Vfs, dir: &Path, names: &[String], options: &Options) -> Result<()> {
        Self::check_creatable(dir, names, options)?;
        // Leftovers of a creation that crashed before CURRENT was durable: no write was
        // ever acknowledged in such a database. (Not `LOCK`: this process holds it.)
        for name in names {
            if filenames::parse(name) != Some(FileKind::Lock) {
                vfs.remove(&dir.join(name))?;
            }
        }
        let state = ManifestState {
            log_number: 0,
            next_file_number: 2,
            last_sequence: 0,
            tables: Default::default(),
        };
        let name = filenames::manifest_name(1);
        ManifestWriter::create(vfs, &dir.join(&name), &state)?;
        manifest::set_current(vfs, dir, &name)
    }

    fn recover(
        vfs: Arc<dyn Vfs>,
        dir: PathBuf,
        options: Options,
        dir_lock: Box<dyn VfsLock>,
    ) -> Result<DbInner> {
        let fs = vfs.as_ref();
        let manifest_file_name = manifest::read_current(fs, &dir)?;
        let manifest_path = dir.join(&manifest_file_name);
        let manifest_file = fs.open_read(&manifest_path).map_err(|error| {
            if error.kind() == ErrorKind::NotFound {
                Error::corruption(
                    &manifest_path,
                    0,
                    "CURRENT names this manifest, which is missing",
                )
            } else {
                Error::Io(error)
            }
        })?;
        let mut state = manifest::read_manifest(manifest_file.as_ref())?;
        drop(manifest_file);

        let names = fs.list(&dir)?;
        let mut highest = 0;
        let mut wals = Vec::new();
        for name in &names {
            match filenames::parse(name) {
                Some(FileKind::Wal(number)) => {
                    highest = highest.max(number);
                    if number >= state.log_number {
                        wals.push(number);
                    }
                }
                Some(FileKind::Table(number)) | Some(FileKind::Manifest(number)) => {
                    highest = highest.max(number)
                }
                _ => {}
            }
        }
        wals.sort_unstable();
        state.next_file_number = state.next_file_number.max(highest + 1);
        let block_cache = BlockCache::new(options.block_cache_size);
        let version = Version::open(fs, &dir, &state, None, block_cache.as_ref())?;

        let memtable = Memtable::new(options.memtable_size);
        let mut last_sequence = state.last_sequence;
        for (i, &number) in wals.iter().enumerate() {
            last_sequence = last_sequence.max(Self::replay_wal(
                fs,
                &dir,
                number,
                &wals[i + 1..],
                &memtable,
            )?);
        }
        if !memtable.is_empty() {
            let number = state.next_file_number;
            state.next_file_number += 1;
            let meta = write_table(fs, &dir, number, &memtable, &options)?;
            state.tables.insert(number, meta);
        }
        state.last_sequence = last_sequence;

        let wal_number = state.next_file_number;
        let manifest_number = wal_number + 1;
        state.next_file_number += 2;
        state.log_number = wal_number;
        let wal = WalWriter::new(
            fs.create(&wal_path(&dir, wal_number))?,
            options.wal_preallocate,
        );
        let manifest_name = filenames::manifest_name(manifest_number);
        let manifest = ManifestWriter::create(fs, &dir.join(&manifest_name), &state)?;
        manifest::set_current(fs, &dir, &manifest_name)?;
        let version = Arc::new(Version::open(
            fs,
            &dir,
            &state,
            Some(&version),
            block_cache.as_ref(),
        )?);

        // Obsolete files: best effort (a crash may undo a removal; the next open retries).
        for name in &names {
            let obsolete = match filenames::parse(name) {
                Some(FileKind::Wal(number)) => number < wal_number,
                Some(FileKind::Manifest(number)) => number != manifest_number,
                Some(FileKind::Table(number)) => !state.tables.contains_key(&number),
                Some(FileKind::CurrentTemp) => true,
                _ => false,
            };
            if obsolete {
                let _ = fs.remove(&dir.join(name));
            }
        }

        let memtable = Arc::new(Memtable::new(options.memtable_size));
        let view = ReadView {
            memtable: Arc::clone(&memtable),
            immutables: Vec::new(),
            version: Arc::clone(&version),
        };
        let runtime = options.runtime.clone();
        Ok(DbInner {
            vfs,
            dir,
            block_cache,
            view: ArcSwap::from_pointee(view),
            state: runtime.mutex(State {
                manifest,
                manifest_state: state,
                version,
                immutables: VecDeque::new(),
                memtable: Arc::clone(&memtable),
                current_wal_number: wal_number,
                compact_pointers: vec![Vec::new(); NUM_LEVELS],
            }),
            writer: runtime.mutex(WriterState {
                wal,
                wal_number,
                memtable,
                last_sequence,
                payload: Vec::new(),
            }),
            commit: runtime.mutex(CommitQueue::default()),
            commit_done: runtime.condvar(),
            commit_arrival: runtime.condvar(),
            background: runtime.mutex(BackgroundState::default()),
            background_signal: runtime.condvar(),
            flush_lock: runtime.mutex(()),
            compaction_lock: runtime.mutex(()),
            poison: runtime.mutex(None),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            dir_lock: runtime.mutex(Some(dir_lock)),
            options,
        })
    }

    /// Replays one WAL into `memtable`; returns the last sequence number seen.
    ///
    /// A WAL ends cleanly, or in a torn tail (a crash's normal leftovers), where replay
    /// stops. The tail is *corruption* instead if a later WAL holds records (a WAL is synced
    /// before the next is started) or a valid record after the bad spot says the log had
    /// been synced past it.
    fn replay_wal(
        fs: &dyn Vfs,
        dir: &Path,
        number: u64,
        later: &[u64],
        memtable: &Memtable,
    ) -> Result<u64> {
        let path = wal_path(dir, number);
        let file = fs.open_read(&path)?;
        let mut reader = WalReader::new(file.as_ref())?;
        let mut last_sequence = 0;
        while let Some((offset, record)) = reader.next_record()? {
            let decoded = decode_payload(&record)
                .map_err(|reason| Error::corruption(&path, offset, reason))?;
            for op in decoded.batch.iter() {
                match op {
                    BatchOp::Put(key, value) => memtable.insert(key, Some(value)),
                    BatchOp::Delete(key) => memtable.insert(key, None),
                }
            }
            last_sequence = (decoded.sequence + decoded.batch.len() as u64).saturating_sub(1);
        }
        let end = reader.end().cloned().unwrap_or(LogEnd::Clean);
        drop(reader);
        if let LogEnd::Broken { offset, .. } = &end {
            for &later_number in later {
                let later_file = fs.open_read(&wal_path(dir, later_number))?;
                if WalReader::new(later_file.as_ref())?
                    .next_record()?
                    .is_some()
                {
                    return Err(wal::corruption_at(&path, &end));
                }
            }
            for (_, payload) in WalReader::scan_after(file.as_ref(), *offset)? {
                if let Ok(decoded) = decode_payload(&payload) {
                    if decoded.synced_through > *offset {
                        return Err(wal::corruption_at(&path, &end));
                    }
                }
            }
        }
        Ok(last_sequence)
    }

    /// Sets `key` to `value`.
    pub fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: WriteOptions,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write(batch, options)
    }

    /// Removes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>, options: WriteOptions) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch, options)
    }

    /// Applies a batch atomically with respect to crashes: after recovery all of it is there
    /// or none. A reader running concurrently with the write may see part of the batch
    /// (there are no snapshots yet).
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
        self.inner.check_open()?;
        let key = key.as_ref();
        // A guard, not a clone: concurrent readers share no cache line to write.
        let view = self.inner.view.load();
        // Every filter first, every answer second: the memtable's filter word and each
        // candidate table's filter line are independent cache misses the CPU overlaps
        // (a missing key then costs about one miss however many levels it passes).
        let hash = KeyHash::of(key);
        let in_memtable = view.memtable.may_contain(hash);
        let probe = view.version.probe(key, hash);
        let in_memory = if in_memtable {
            view.memtable.get_unfiltered(key)
        } else {
            None
        };
        let in_memory = in_memory.or_else(|| {
            view.immutables
                .iter()
                .find_map(|memtable| memtable.get_hashed(key, hash))
        });
        let mut read = ReadCounters::default();
        let found = match in_memory {
            Some(slot) => slot,
            None => view.version.finish(probe, key, hash, &mut read)?.flatten(),
        };
        self.inner.counters.add_read(&read, found.is_some());
        Ok(found)
    }

    /// A snapshot of the engine's statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::from_counters(&self.inner.counters);
        let view = self.inner.read_view();
        stats.tables_per_level = view.version.levels().iter().map(Vec::len).collect();
        stats.bytes_per_level = (0..view.version.levels().len())
            .map(|l| view.version.level_bytes(l))
            .collect();
        stats
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
    /// least level 1): afterwards each key has one version and reads probe one table.
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

    /// A forward scan over `range`, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<DbIterator> {
        self.inner.check_open()?;
        let lower = owned_bound(range.start_bound());
        let upper = owned_bound(range.end_bound());
        let view = self.inner.read_view();
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        sources.push(Box::new(MemtableSource::new(
            Arc::clone(&view.memtable),
            lower.clone(),
            upper.clone(),
        )));
        for memtable in &view.immutables {
            sources.push(Box::new(MemtableSource::new(
                Arc::clone(memtable),
                lower.clone(),
                upper.clone(),
            )));
        }
        for table in view.version.tables_in_read_order() {
            sources.push(Box::new(TableSource::new(Arc::clone(table), lower.clone())));
        }
        Ok(DbIterator::new(sources, upper))
    }

    /// A scan over every key.
    pub fn iter(&self) -> Result<DbIterator> {
        self.range::<&[u8], _>(..)
    }

    /// Makes every acknowledged write durable (flushes the WAL buffer and fsyncs).
    pub fn sync(&self) -> Result<()> {
        self.inner.check_writable()?;
        let mut writer = lock(&self.inner.writer);
        self.inner.check_writable()?;
        let result = writer.wal.sync();
        self.inner.poison_on_error(result)
    }

    /// Writes the memtable (and every immutable one) to SSTables now.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        {
            let mut writer = lock(&self.inner.writer);
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
        lock(&self.inner.poison).clone()
    }

    /// Stops background work and makes every acknowledged write durable.
    pub fn close(self) -> Result<()> {
        self.shutdown(true)
    }

    fn shutdown(&self, sync: bool) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.stop_and_sync(sync);
        // Last: nothing writes after this, so another process may open the database.
        drop(lock(&self.inner.dir_lock).take());
        result
    }

    fn stop_and_sync(&self, sync: bool) -> Result<()> {
        {
            let mut background = lock(&self.inner.background);
            background.shutdown = true;
            self.inner.background_signal.notify_all();
        }
        let handles = std::mem::take(&mut *lock(&self.background));
        // A panic there is a broken invariant; its guard poisoned the database. Report it
        // rather than panic here (this may run inside `Drop`, during an unwind).
        let panicked = handles
            .into_iter()
            .map(|handle| handle.join().is_err())
            .filter(|&failed| failed)
            .count();
        if panicked > 0 {
            return Err(Error::Poisoned {
                reason: "a background thread panicked".into(),
            });
        }
        let mut writer = lock(&self.inner.writer);
        // Poisoned (perhaps by background work that failed while this close waited for it):
        // the acknowledged writes still buffered cannot be made durable, so the close must
        // not report that they were (found by the concurrent sweep; corpus/0004).
        if let Some(reason) = lock(&self.inner.poison).clone() {
            return Err(Error::Poisoned { reason });
        }
        let result = if sync {
            writer.wal.sync()
        } else {
            writer.wal.flush()
        };
        self.inner.poison_on_error(result)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Best effort: hand buffered writes to the OS. Durability needs `close` or `sync`.
        let _ = self.shutdown(false);
    }
}

impl DbInner {
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
        match lock(&self.poison).as_ref() {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            let mut poison = lock(&self.poison);
            if poison.is_none() {
                *poison = Some(error.to_string());
            }
        }
        result
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> (Option<u64>, Result<()>) {
        let mut queue = lock(&self.commit);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push(Pending {
            ticket,
            batch,
            sync,
        });
        if queue.leader_active {
            self.commit_arrival.notify_one();
        }
        loop {
            if queue.done_below > ticket {
                let sequence = queue.sequences.remove(&ticket);
                return match queue.failures.remove(&ticket) {
                    Some(error) => (sequence, Err(error)),
                    None => (sequence, Ok(())),
                };
            }
            if !queue.leader_active {
                queue.leader_active = true;
                // The writers of the last group were just woken and are coming back with
                // their next batch: wait a moment (at most 100 µs, only when a sync is wanted
                // and fewer writers than last time are queued, so never on a single-writer
                // or unsynced path) for them to join this group rather than wait a whole
                // fsync for the next one.
                if queue.pending.len() < queue.last_group
                    && queue.pending.iter().any(|pending| pending.sync)
                {
                    let deadline = self.options.runtime.now() + LEADER_GATHER_TIME;
                    while queue.pending.len() < queue.last_group {
                        let now = self.options.runtime.now();
                        if now >= deadline {
                            break;
                        }
                        queue = self.commit_arrival.wait_timeout(queue, deadline - now).0;
                    }
                }
                let group = std::mem::take(&mut queue.pending);
                queue.last_group = group.len();
                drop(queue);
                let first = group.first().map_or(ticket, |pending| pending.ticket);
                let last = group.last().map_or(ticket, |pending| pending.ticket);
                let guard = PanicGuard::new(self, Some(first..=last));
                let (first_sequence, result) = self.commit_group(&group);
                guard.disarm();
                queue = lock(&self.commit);
                if let Some(mut sequence) = first_sequence {
                    for pending in &group {
                        queue.sequences.insert(pending.ticket, sequence);
                        sequence += pending.batch.len() as u64;
                    }
                }
                queue.leader_active = false;
                let last = group.last().map_or(ticket, |pending| pending.ticket);
                assert!(last >= ticket, "a leader's group includes its own batch");
                queue.done_below = last + 1;
                if let Err(error) = result {
                    for pending in &group {
                        queue.failures.insert(pending.ticket, error.clone());
                    }
                }
                self.commit_done.notify_all();
                continue;
            }
            queue = self.commit_done.wait(queue);
        }
    }

    /// The leader's work: one WAL append (and at most one fsync) for the whole group.
    /// Returns the group's first sequence number if it reached the WAL.
    fn commit_group(&self, group: &[Pending]) -> (Option<u64>, Result<()>) {
        let mut writer = lock(&self.writer);
        if let Err(error) = self.prepare_group(&mut writer) {
            return (None, Err(error));
        }
        let writer = &mut *writer;
        let first_sequence = writer.last_sequence + 1;
        let wal_start = writer.wal.end();
        let user_bytes: usize = group.iter().map(|pending| pending.batch.user_bytes()).sum();
        let mut sequence = writer.last_sequence + 1;
        for pending in group {
            writer.payload.clear();
            pending.batch.encode_payload(
                &mut writer.payload,
                sequence,
                writer.wal.synced_through(),
            );
            writer.wal.add_record(&writer.payload);
            sequence += pending.batch.len() as u64;
        }
        let sync = group.iter().any(|pending| pending.sync);
        let result = if sync {
            writer.wal.sync()
        } else if writer.wal.buffered() >= self.options.wal_buffer_size {
            writer.wal.flush()
        } else {
            Ok(())
        };
        if let Err(error) = self.poison_on_error(result) {
            return (Some(first_sequence), Err(error));
        }
        Counters::add(&self.counters.commit_groups, 1);
        Counters::add(
            &self.counters.multi_writer_groups,
            u64::from(group.len() > 1),
        );
        Counters::add(&self.counters.user_bytes, user_bytes as u64);
        Counters::add(&self.counters.wal_bytes, writer.wal.end() - wal_start);
        for pending in group {
            for op in pending.batch.iter() {
                match op {
                    BatchOp::Put(key, value) => writer.memtable.insert(key, Some(value)),
                    BatchOp::Delete(key) => writer.memtable.insert(key, None),
                }
            }
        }
        writer.last_sequence = sequence - 1;
        (Some(first_sequence), Ok(()))
    }

    /// Before a group's WAL append: refuse if poisoned, apply write stalls, and rotate a full
    /// memtable.
    fn prepare_group(&self, writer: &mut WriterState) -> Result<()> {
        self.check_writable()?;
        self.throttle()?;
        if writer.memtable.approximate_size() >= self.options.memtable_size {
            self.make_room(writer)?;
        }
        Ok(())
    }

    /// Write stalls: a level 0 at its slowdown trigger costs a write group 1 ms (background
    /// mode); at its stop trigger, writers wait for compaction (or, without background work,
    /// compact themselves). This bounds read amplification under any write rate.
    fn throttle(&self) -> Result<()> {
        let mut slowed = false;
        loop {
            self.check_writable()?;
            let level0 = self.read_view().version.level_len(0);
            if level0 < self.options.level0_slowdown_trigger {
                return Ok(());
            }
            if level0 < self.options.level0_stop_trigger {
                if self.options.background_work && !slowed {
                    Counters::add(&self.counters.slowdowns, 1);
                    self.options.runtime.sleep(Duration::from_millis(1));
                }
                return Ok(());
            }
            slowed = true;
            Counters::add(&self.counters.stops, 1);
            if self.options.background_work {
                let background = lock(&self.background);
                self.background_signal.notify_all();
                let _unused = self
                    .background_signal
                    .wait_timeout(background, Duration::from_millis(50));
            } else if !self.compact_once()? {
                return Ok(());
            }
        }
    }

    /// Compacts all of `level` into the next level; returns whether there was anything.
    fn compact_level(&self, level: usize) -> Result<bool> {
        let _compacting = lock(&self.compaction_lock);
        let version = Arc::clone(&lock(&self.state).version);
        let Some(picked) = compaction::whole_level(&version, level) else {
            return Ok(false);
        };
        let result = self.install_compaction(&picked, &version);
        self.poison_on_error(result)?;
        Ok(true)
    }

    /// Runs one compaction if a level needs one; returns whether it did.
    fn compact_once(&self) -> Result<bool> {
        let _compacting = lock(&self.compaction_lock);
        let (picked, version) = {
            let state = lock(&self.state);
            let version = Arc::clone(&state.version);
            match compaction::pick(&version, &self.options, &state.compact_pointers) {
                Some(picked) => (picked, version),
                None => return Ok(false),
            }
        };
        let result = self.install_compaction(&picked, &version);
        self.poison_on_error(result)?;
        // Wake stalled writers, and the other background thread: a flush may make a
        // compaction due.
        lock(&self.background).requests += 1;
        self.background_signal.notify_all();
        Ok(true)
    }

    fn install_compaction(&self, picked: &compaction::Compaction, version: &Version) -> Result<()> {
        let output_level = picked.output_level();
        let trivial = picked.is_trivial_move();
        let output = if trivial {
            let mut meta = picked.inputs[0].meta.clone();
            meta.level = output_level as u32;
            compaction::CompactionOutput {
                tables: vec![meta],
                ..Default::default()
            }
        } else {
            compaction::run(
                picked,
                version,
                self.vfs.as_ref(),
                &self.dir,
                &self.options,
                || lock(&self.state).allocate_file_number(),
            )?
        };
        let deleted: Vec<(u32, u64)> = picked
            .inputs
            .iter()
            .map(|t| (picked.level as u32, t.meta.number))
            .chain(
                picked
                    .overlapping
                    .iter()
                    .map(|t| (output_level as u32, t.meta.number)),
            )
            .collect();
        {
            let mut state = lock(&self.state);
            let edit = VersionEdit {
                log_number: None,
                next_file_number: Some(state.manifest_state.next_file_number),
                last_sequence: None,
                added: output.tables.clone(),
                deleted: deleted.clone(),
            };
            self.log_and_install(&mut state, &edit)?;
            if let Some(largest) = picked.inputs.iter().map(|t| t.meta.largest.clone()).max() {
                state.compact_pointers[picked.level] = largest;
            }
            self.publish_view(&state);
        }
        if trivial {
            Counters::add(&self.counters.trivial_moves, 1);
        } else {
            Counters::add(&self.counters.compactions, 1);
            Counters::add(&self.counters.compaction_read_bytes, output.bytes_read);
            Counters::add(
                &self.counters.compaction_written_bytes,
                output.bytes_written,
            );
            // The edit is durable: the inputs are garbage now. Readers holding an older
            // version keep their open handles; removal is best effort.
            for (_, number) in deleted {
                let _ = self.vfs.remove(&table_path(&self.dir, number));
            }
        }
        Ok(())
    }

    /// Makes the memtable immutable and starts a new one with a new WAL, first waiting for
    /// (or, without background work, doing) a flush if too many immutables are queued.
    fn make_room(&self, writer: &mut WriterState) -> Result<()> {
        loop {
            self.check_writable()?;
            if lock(&self.state).immutables.len() < self.options.max_immutable_memtables {
                break;
            }
            if self.options.background_work {
                let background = lock(&self.background);
                if lock(&self.state).immutables.len() >= self.options.max_immutable_memtables {
                    let _unused = self
                        .background_signal
                        .wait_timeout(background, Duration::from_millis(50));
                }
            } else {
                self.flush_oldest()?;
            }
        }
        let result = self.rotate(writer);
        self.poison_on_error(result)
    }

    fn rotate(&self, writer: &mut WriterState) -> Result<()> {
        // The old WAL must be durable before the new one can hold synced writes, or a crash
        // could keep a later write and lose an earlier one.
        writer.wal.sync()?;
        let number = lock(&self.state).allocate_file_number();
        let file = self.vfs.create(&wal_path(&self.dir, number))?;
        self.vfs.sync_dir(&self.dir)?;
        let memtable = Arc::new(Memtable::new(self.options.memtable_size));
        {
            let mut state = lock(&self.state);
            let old = std::mem::replace(&mut writer.memtable, Arc::clone(&memtable));
            state.immutables.push_back(Immutable {
                memtable: old,
                wal_number: writer.wal_number,
                last_sequence: writer.last_sequence,
            });
            state.memtable = memtable;
            state.current_wal_number = number;
            self.publish_view(&state);
        }
        writer.wal = WalWriter::new(file, self.options.wal_preallocate);
        writer.wal_number = number;
        let mut background = lock(&self.background);
        background.requests += 1;
        self.background_signal.notify_all();
        Ok(())
    }

    /// Flushes the oldest immutable memtable, if any; returns whether it did.
    fn flush_oldest(&self) -> Result<bool> {
        let _flushing = lock(&self.flush_lock);
        let (memtable, wal_number, last_sequence, number) = {
            let mut state = lock(&self.state);
            let Some(oldest) = state.immutables.front() else {
                return Ok(false);
            };
            let job = (
                Arc::clone(&oldest.memtable),
                oldest.wal_number,
                oldest.last_sequence,
            );
            let number = state.allocate_file_number();
            (job.0, job.1, job.2, number)
        };
        let result = self.install_flush(&memtable, wal_number, last_sequence, number);
        self.poison_on_error(result)?;
        let _ = self.vfs.remove(&wal_path(&self.dir, wal_number));
        // Wake stalled writers, and the other background thread: a flush may make a
        // compaction due.
        lock(&self.background).requests += 1;
        self.background_signal.notify_all();
        Ok(true)
    }

    fn install_flush(
        &self,
        memtable: &Memtable,
        wal_number: u64,
        last_sequence: u64,
        number: u64,
    ) -> Result<()> {
        let meta = if memtable.is_empty() {
            None
        } else {
            Some(write_table(
                self.vfs.as_ref(),
                &self.dir,
                number,
                memtable,
                &self.options,
            )?)
        };
        Counters::add(&self.counters.flushes, 1);
        Counters::add(
            &self.counters.flushed_bytes,
            meta.as_ref().map_or(0, |m| m.file_size),
        );
        let mut state = lock(&self.state);
        let log_number = state
            .immutables
            .get(1)
            .map_or(state.current_wal_number, |next| next.wal_number);
        assert!(
            log_number > wal_number,
            "WALs are numbered in the order they are written"
        );
        let edit = VersionEdit {
            log_number: Some(log_number),
            next_file_number: Some(state.manifest_state.next_file_number),
            last_sequence: Some(last_sequence),
            added: meta.into_iter().collect(),
            deleted: Vec::new(),
        };
        self.log_and_install(&mut state, &edit)?;
        state.immutables.pop_front();
        self.publish_view(&state);
        Ok(())
    }

    /// Makes `edit` durable in the manifest, then installs the version it describes (the
    /// caller publishes the new read view). Called with the state lock held.
    fn log_and_install(&self, state: &mut State, edit: &VersionEdit) -> Result<()> {
        // Checked and set under the state lock: once one edit's fsync has failed, no other
        // thread may append an edit after it (a durable record after a lost one would make
        // the manifest unreadable). Not `check_writable`: background work finishing while
        // the database closes must still install its edit.
        if let Some(reason) = lock(&self.poison).as_ref() {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let appended = state.manifest.append(edit);
        self.poison_on_error(appended)?;
        if let Err(reason) = state.manifest_state.apply(edit) {
            panic!("a version edit contradicts the manifest state: {reason}");
        }
        let version = Version::open(
            self.vfs.as_ref(),
            &self.dir,
            &state.manifest_state,
            Some(&state.version),
            self.block_cache.as_ref(),
        )?;
        state.version = Arc::new(version);
        Ok(())
    }

    fn background_loop(self: Arc<Self>, role: BackgroundRole) {
        let _guard = PanicGuard::new(&self, None);
        let mut seen = 0;
        loop {
            loop {
                let work = match role {
                    BackgroundRole::Flush => self.flush_oldest(),
                    BackgroundRole::Compaction => self.compact_once(),
                };
                match work {
                    Ok(true) => continue,
                    Ok(false) => break,
                    // The database is poisoned; writers see why.
                    Err(_) => return,
                }
            }
            let mut background = lock(&self.background);
            loop {
                if background.shutdown {
                    return;
                }
                if background.requests != seen {
                    seen = background.requests;
                    break;
                }
                background = self.background_signal.wait(background);
            }
        }
    }
}
