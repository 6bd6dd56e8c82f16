//! Opening a database: refusing what is not one, creating a new one, and recovery (the
//! manifest named by `CURRENT`, WAL replay into a table, a fresh WAL and manifest, and the
//! obsolete files removed last).

use super::background::{write_table, BackgroundRole};
use super::commit::{CommitPipeline, WriterState};
use super::{BackgroundJobs, Db, DbInner, Poison, ReadView, State};
use crate::batch::{decode_payload, BatchOp};
use crate::block_cache::BlockCache;
use crate::compaction::NUM_LEVELS;
use crate::error::{Error, Result};
use crate::filenames::{self, wal_path, FileKind};
use crate::manifest::{self, ManifestState, ManifestWriter};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::stats::Counters;
use crate::version::Version;
use crate::wal::{self, LogEnd, WalReader, WalWriter};
use arc_swap::ArcSwap;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use strata_vfs::{Vfs, VfsError, VfsLock};

pub(super) fn parent_dir(dir: &Path) -> PathBuf {
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
                            threads: runtime.mutex(background),
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
            threads: runtime.mutex(background),
        })
    }

    /// Whether a new database may be created in `dir`, which holds `names` and no `CURRENT`.
    pub(super) fn check_creatable(dir: &Path, names: &[String], options: &Options) -> Result<()> {
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
    pub(super) fn create_new(
        vfs: &dyn Vfs,
        dir: &Path,
        names: &[String],
        options: &Options,
    ) -> Result<()> {
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

    pub(super) fn recover(
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
        // The WAL the manifest names as its log number holds the writes after its last
        // flush; it exists by name before any manifest names it, and is deleted only after
        // an edit names a later one. Missing, it was lost, or a durable edit after this
        // manifest's end was cut off. (Log number 0: a new database, no WAL yet.)
        if state.log_number > 0 && wals.first() != Some(&state.log_number) {
            return Err(Error::corruption(
                &manifest_path,
                0,
                format!(
                    "the manifest's log number names WAL {}, which is missing: a WAL was lost, \
                     or a later manifest edit was cut off",
                    wal_path(&dir, state.log_number).display()
                ),
            ));
        }
        state.next_file_number = state.next_file_number.max(highest + 1);
        let block_cache = BlockCache::new(options.block_cache_size);
        let version = Version::open(fs, &dir, &state, None, block_cache.as_ref())?;

        let memtable = Memtable::new(options.memtable_size);
        // Continuity: the first write after the manifest's last flushed one is the next
        // sequence number, and each WAL record starts where the one before it ended. A gap
        // means writes went missing (a lost or damaged WAL, or a durable manifest edit cut
        // off), and is corruption, checked before anything is deleted.
        let mut next_sequence = state.last_sequence + 1;
        for (i, &number) in wals.iter().enumerate() {
            Self::replay_wal(
                fs,
                &dir,
                number,
                &wals[i + 1..],
                &memtable,
                &mut next_sequence,
            )?;
        }
        let last_sequence = next_sequence - 1;
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
            commit: CommitPipeline::new(
                &runtime,
                WriterState {
                    wal,
                    wal_number,
                    memtable,
                    last_sequence,
                    payload: Vec::new(),
                },
            ),
            jobs: BackgroundJobs::new(&runtime),
            poison: Poison::new(&runtime),
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
    pub(super) fn replay_wal(
        fs: &dyn Vfs,
        dir: &Path,
        number: u64,
        later: &[u64],
        memtable: &Memtable,
        next_sequence: &mut u64,
    ) -> Result<()> {
        let path = wal_path(dir, number);
        let file = fs.open_read(&path)?;
        let mut reader = WalReader::new(file.as_ref())?;
        while let Some((offset, record)) = reader.next_record()? {
            let decoded = decode_payload(&record)
                .map_err(|reason| Error::corruption(&path, offset, reason))?;
            if decoded.sequence != *next_sequence {
                return Err(Error::corruption(
                    &path,
                    offset,
                    format!(
                        "record starts at sequence {} where {} was expected: {}",
                        decoded.sequence,
                        *next_sequence,
                        if decoded.sequence > *next_sequence {
                            "the writes between are missing (a lost or damaged WAL, or a \
                             manifest edit cut off)"
                        } else {
                            "it repeats writes already recovered"
                        }
                    ),
                ));
            }
            *next_sequence = decoded.sequence + decoded.batch.len() as u64;
            for op in decoded.batch.iter() {
                match op {
                    BatchOp::Put(key, value) => memtable.insert(key, Some(value)),
                    BatchOp::Delete(key) => memtable.insert(key, None),
                }
            }
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
        Ok(())
    }
}
