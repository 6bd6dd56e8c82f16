//! Opening a database: refusing what is not one, creating a new one, and recovery (the
//! manifest named by `CURRENT`, WAL replay into a table, a fresh WAL and manifest, and the
//! obsolete files removed last).

use super::background::BackgroundRole;
use super::commit::{CommitPipeline, WriterState};
use super::read_only::ReadOnlyFile;
use super::replay::{self, Replay};
use super::{BackgroundJobs, Db, DbInner, Poison, ReadView, State};
use crate::compaction::NUM_LEVELS;
use crate::error::{Error, Result};
use crate::filenames::{self, wal_path, FileKind};
use crate::manifest::{self, ManifestState, ManifestWriter};
use crate::marks::Mark;
use crate::memtable::Memtable;
use crate::options::Options;
use crate::stats::Counters;
use crate::table_cache::TableCaches;
use crate::version::Version;
use crate::wal::WalWriter;
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
    /// Opens the database in `dir` for reading only: no `LOCK` is taken (any number of
    /// read-only opens may share a database, beside one writer), and nothing is written,
    /// created, renamed or deleted; the WALs are replayed into memory. It reads the
    /// database as it was when opened: a writer's later writes are not seen, and a writer's
    /// compaction may delete tables under it (reopen to catch up). Writes, flushes,
    /// compactions and syncs return [`Error::ReadOnly`]. `options.background_work` is
    /// ignored; damage is handled as `options.wal_recovery` says, but a point-in-time
    /// open sets nothing aside and writes no note.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strata_engine::{Db, Error, Options, WriteOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let fs: Arc<dyn strata_vfs::Vfs> = Arc::new(strata_vfs::RealFs::new());
    /// let writer = Db::open(Arc::clone(&fs), dir.path(), Options::default()).unwrap();
    /// writer.put("k", "v", WriteOptions::default()).unwrap();
    /// let reader = Db::open_read_only(fs, dir.path(), Options::default()).unwrap();
    /// assert_eq!(reader.get("k").unwrap(), Some(b"v".to_vec()));
    /// assert!(matches!(reader.put("k", "w", WriteOptions::default()), Err(Error::ReadOnly { .. })));
    /// ```
    pub fn open_read_only(
        vfs: Arc<dyn Vfs>,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Db> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if !vfs.exists(&dir)? {
            return Err(Error::NoDatabase { dir });
        }
        let names = vfs.list(&dir)?;
        if !names.iter().any(|name| name == filenames::CURRENT) {
            let never_create = Options {
                create_if_missing: false,
                ..options.clone()
            };
            Self::check_creatable(&dir, &names, &never_create)?;
        }
        let runtime = options.runtime.clone();
        let inner = Arc::new(Self::recover_read_only(vfs, dir, options)?);
        Ok(Db {
            inner,
            threads: runtime.mutex(Vec::new()),
        })
    }

    /// Opens (recovering) or creates the database in `dir`.
    pub fn open(vfs: Arc<dyn Vfs>, dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if !vfs.exists(&dir)? {
            if !options.create_if_missing {
                return Err(Error::NoDatabase { dir });
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
                return Err(Error::AlreadyExists { dir });
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
                    return Err(Error::NotADatabase {
                        dir: dir.to_path_buf(),
                        found: name.clone(),
                    })
                }
            }
        }
        if !options.create_if_missing {
            return Err(Error::NoDatabase {
                dir: dir.to_path_buf(),
            });
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
            closed_wal: None,
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
        let (manifest_path, mut state, manifest_complete) = read_live_manifest(fs, &dir)?;
        let marks = options.marks.clone();
        if state.closed_wal.is_some() {
            marks.reach(Mark::RecoveryAfterCleanClose);
        }
        if !manifest_complete {
            marks.reach(Mark::RecoveryTornManifestTail);
        }
        let names = fs.list(&dir)?;
        // Files set aside earlier keep their numbers: never reuse one.
        let lost_names = list_lost(fs, &dir)?;
        let highest = names
            .iter()
            .chain(&lost_names)
            .filter_map(|name| match filenames::parse(name) {
                Some(FileKind::Wal(number))
                | Some(FileKind::Table(number))
                | Some(FileKind::Manifest(number)) => Some(number),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let wals = replay::wals_from(&names, state.log_number);
        state.next_file_number = state.next_file_number.max(highest + 1);
        let caches = TableCaches::for_database(&vfs, &options);
        let version = Version::open(fs, &dir, &state, None, &caches)?;

        // Every check of the WALs happens here, before anything is deleted.
        let mut replay = Replay::new(fs, &dir, &options, &state);
        replay.run(&wals, &mut state, &manifest_path)?;
        let dropped_wals: Vec<u64> = match replay.first_dropped {
            Some(index) => wals[index..].to_vec(),
            None => Vec::new(),
        };
        let mut report = replay.report;

        let wal_number = state.next_file_number;
        let manifest_number = wal_number + 1;
        state.next_file_number += 2;
        state.log_number = wal_number;
        let wal = WalWriter::new(
            fs.create(&wal_path(&dir, wal_number))?,
            options.wal_preallocate,
        )
        .pad_syncs(!options.powersafe_overwrite);
        let manifest_name = filenames::manifest_name(manifest_number);
        let manifest = ManifestWriter::create(fs, &dir.join(&manifest_name), &state)?;
        // What a point-in-time recovery dropped is written down durably before the shorter
        // state is committed, so that no crash or failure after it can hide it.
        let mut damage_notes = damage_notes_in(&dir, &lost_names);
        if let Some(damage) = &report.wal_damage {
            damage_notes.push(write_damage_note(fs, &dir, manifest_number, damage)?);
        }
        damage_notes.sort();
        damage_notes.dedup();
        report.damage_notes = damage_notes;
        marks.reach(Mark::RecoveryManifestWritten);
        manifest::set_current(fs, &dir, &manifest_name)?;
        marks.leave_each(&[
            Mark::RecoveryManifestWritten,
            Mark::RecoveryAfterCleanClose,
            Mark::RecoveryTornManifestTail,
            Mark::RecoverySeveralWals,
            Mark::RecoveryTornWalTail,
            Mark::RecoveryPointInTime,
        ]);
        let version = Arc::new(Version::open(fs, &dir, &state, Some(&version), &caches)?);

        // Obsolete files: best effort (a crash may undo a removal; the next open retries).
        // What this recovery could not prove obsolete is set aside in `lost/` instead: the
        // tables a manifest with a torn or damaged last edit does not list (that edit may
        // have been durable), and WALs whose records a point-in-time recovery dropped.
        let mut set_aside = Vec::new();
        let mut obsolete_files = Vec::new();
        for name in &names {
            let (obsolete, doubtful) = match filenames::parse(name) {
                Some(FileKind::Wal(number)) => {
                    (number < wal_number, dropped_wals.contains(&number))
                }
                Some(FileKind::Manifest(number)) => (number != manifest_number, false),
                Some(FileKind::Table(number)) => {
                    let unlisted = !state.tables.contains_key(&number);
                    (unlisted, unlisted && !manifest_complete)
                }
                Some(FileKind::CurrentTemp) => (true, false),
                _ => (false, false),
            };
            if doubtful {
                set_aside.push(name);
            } else if obsolete {
                obsolete_files.push(name);
            }
        }
        if !obsolete_files.is_empty() {
            marks.reach(Mark::RecoveryObsoleteRemoved);
            for name in obsolete_files {
                let _ = fs.remove(&dir.join(name));
            }
            marks.leave(Mark::RecoveryObsoleteRemoved);
        }
        if !set_aside.is_empty() {
            marks.reach(Mark::RecoverySetAside);
            let set_aside: Vec<String> = set_aside.into_iter().cloned().collect();
            report.set_aside = set_aside_files(fs, &dir, &set_aside)?;
            marks.leave(Mark::RecoverySetAside);
        }

        let memtable = Memtable::new(options.memtable_size);
        Ok(DbInner::assemble(
            vfs,
            dir,
            options,
            Parts {
                caches,
                version,
                memtable,
                manifest_state: state,
                manifest,
                wal,
                wal_number,
                dir_lock: Some(dir_lock),
                recovery: report,
                read_only: false,
            },
        ))
    }

    /// A database opened for reading only (`Db::open_read_only`): its WALs replayed into
    /// memory, nothing written, deleted or locked.
    pub(super) fn recover_read_only(
        vfs: Arc<dyn Vfs>,
        dir: PathBuf,
        options: Options,
    ) -> Result<DbInner> {
        let fs = vfs.as_ref();
        let (manifest_path, mut state, _) = read_live_manifest(fs, &dir)?;
        let names = fs.list(&dir)?;
        let wals = replay::wals_from(&names, state.log_number);
        let caches = TableCaches::for_database(&vfs, &options);
        let version = Arc::new(Version::open(fs, &dir, &state, None, &caches)?);
        let mut replay = Replay::in_memory(fs, &dir, &options, &state);
        replay.run(&wals, &mut state, &manifest_path)?;
        let mut report = std::mem::take(&mut replay.report);
        report.damage_notes = damage_notes_in(&dir, &list_lost(fs, &dir)?);
        let memtable = replay
            .into_memtable()
            .expect("an in-memory replay fills a memtable");
        let wal_number = state.log_number;
        // Never written: every write path refuses a read-only database first.
        let wal = WalWriter::new(Box::new(ReadOnlyFile::new(wal_path(&dir, wal_number))), 0);
        let manifest = ManifestWriter::read_only(Box::new(ReadOnlyFile::new(manifest_path)));
        Ok(DbInner::assemble(
            vfs,
            dir,
            options,
            Parts {
                caches,
                version,
                memtable,
                manifest_state: state,
                manifest,
                wal,
                wal_number,
                dir_lock: None,
                recovery: report,
                read_only: true,
            },
        ))
    }
}

/// What [`DbInner::assemble`] puts together.
struct Parts {
    caches: TableCaches,
    version: Arc<Version>,
    memtable: Memtable,
    manifest_state: ManifestState,
    manifest: ManifestWriter,
    wal: WalWriter,
    wal_number: u64,
    dir_lock: Option<Box<dyn VfsLock>>,
    recovery: replay::RecoveryReport,
    read_only: bool,
}

impl DbInner {
    fn assemble(vfs: Arc<dyn Vfs>, dir: PathBuf, options: Options, parts: Parts) -> DbInner {
        let memtable = Arc::new(parts.memtable);
        let view = ReadView {
            memtable: Arc::clone(&memtable),
            immutables: Vec::new(),
            version: Arc::clone(&parts.version),
        };
        let last_sequence = parts.manifest_state.last_sequence;
        let runtime = options.runtime.clone();
        DbInner {
            vfs,
            dir,
            caches: parts.caches,
            obsolete_tables: runtime.mutex(Vec::new()),
            view: ArcSwap::from_pointee(view),
            state: runtime.mutex(State {
                manifest: parts.manifest,
                manifest_state: parts.manifest_state,
                version: parts.version,
                immutables: VecDeque::new(),
                memtable: Arc::clone(&memtable),
                current_wal_number: parts.wal_number,
                compact_pointers: vec![Vec::new(); NUM_LEVELS],
            }),
            commit: CommitPipeline::new(
                &runtime,
                WriterState {
                    wal: parts.wal,
                    wal_number: parts.wal_number,
                    memtable,
                    last_sequence,
                },
            ),
            jobs: BackgroundJobs::new(&runtime),
            poison: Poison::new(&runtime),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            dir_lock: runtime.mutex(parts.dir_lock),
            options,
            recovery: parts.recovery,
            visible_sequence: std::sync::atomic::AtomicU64::new(last_sequence),
            snapshots: Default::default(),
            read_only: parts.read_only,
        }
    }
}

/// The manifest `CURRENT` names, read: its path, the state, and whether its last edit is
/// whole.
fn read_live_manifest(fs: &dyn Vfs, dir: &Path) -> Result<(PathBuf, ManifestState, bool)> {
    let manifest_file_name = manifest::read_current(fs, dir)?;
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
    let (state, complete) = manifest::read_manifest_with_end(manifest_file.as_ref())?;
    Ok((manifest_path, state, complete))
}

/// The names in `lost/` (none if it does not exist).
fn list_lost(fs: &dyn Vfs, dir: &Path) -> Result<Vec<String>> {
    match fs.list(&dir.join(filenames::LOST)) {
        Ok(lost) => Ok(lost),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(Error::Io(error)),
    }
}

/// The point-in-time recoveries' notes among the names in `lost/`.
fn damage_notes_in(dir: &Path, lost_names: &[String]) -> Vec<PathBuf> {
    lost_names
        .iter()
        .filter(|name| name.starts_with(DAMAGE_NOTE_PREFIX))
        .map(|name| dir.join(filenames::LOST).join(name))
        .collect()
}

/// The name prefix of a point-in-time recovery's note in `lost/`.
const DAMAGE_NOTE_PREFIX: &str = "RECOVERY-";

/// Writes `lost/RECOVERY-NNNNNN.txt` (NNNNNN: the manifest the recovery commits), durably.
fn write_damage_note(
    fs: &dyn Vfs,
    dir: &Path,
    manifest_number: u64,
    damage: &str,
) -> Result<PathBuf> {
    let lost = dir.join(filenames::LOST);
    if !fs.exists(&lost)? {
        fs.create_dir_all(&lost)?;
        fs.sync_dir(dir)?;
    }
    let path = lost.join(format!("{DAMAGE_NOTE_PREFIX}{manifest_number:06}.txt"));
    let file = fs.create(&path)?;
    file.append(
        format!(
            "A point-in-time recovery (Options::wal_recovery = PointInTime) went past damage \
             and dropped every WAL record after it; the WALs it dropped are in this directory.\n\
             The damage: {damage}\n"
        )
        .as_bytes(),
    )?;
    file.sync()?;
    fs.sync_dir(&lost)?;
    Ok(path)
}

/// Moves `names` (files in `dir`) into `dir/lost/`, durably; returns their new paths.
pub(crate) fn set_aside_files(fs: &dyn Vfs, dir: &Path, names: &[String]) -> Result<Vec<PathBuf>> {
    let lost = dir.join(filenames::LOST);
    if !fs.exists(&lost)? {
        fs.create_dir_all(&lost)?;
        fs.sync_dir(dir)?;
    }
    let mut moved = Vec::with_capacity(names.len());
    for name in names {
        let target = lost.join(name);
        fs.rename(&dir.join(name), &target)?;
        moved.push(target);
    }
    // The new names first: a crash between the two syncs may leave a file in both places
    // (harmless), never in neither.
    fs.sync_dir(&lost)?;
    fs.sync_dir(dir)?;
    Ok(moved)
}
