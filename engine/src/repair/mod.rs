//! `repair`: rebuilds a database whose manifest is lost or damaged (or whose tables or WALs
//! are), after LevelDB's `RepairDB`. It keeps every table that reads completely, salvages
//! the readable blocks of damaged ones where precedence allows, replays the WAL records
//! that are newer than the tables into new level-0 tables, writes a new manifest, and points
//! `CURRENT` at it. It never deletes a file: everything it does not keep — damaged and
//! redundant tables, old manifests, every WAL, the old `CURRENT` — goes into `lost/`.
//!
//! The hard part is precedence. Tables hold no sequence numbers: which of two tables holds
//! the newer value of a key is said only by where they sit (level 0, newest number first,
//! then the deeper levels). A repaired database must never return an older value where a
//! newer one survived, so the repair keeps what the newest readable manifest recorded
//! wherever it can, and says where it had to guess:
//!
//! - The *base* is the highest-numbered manifest with a readable edit (the one `CURRENT`
//!   names, unless a newer one exists), read up to its first damage.
//! - If the base reads completely (or with only a torn last edit) and, together with the
//!   WALs, passes recovery's checks (`db/replay.rs`, as a dry run under `Strict`), repair
//!   does what recovery would: the tables it lists at their levels, the WALs from its log
//!   number replayed, and tables it does not list set aside as unfinished work.
//! - Otherwise the repair salvages: see [`tables`] for where tables go and [`wals`] for
//!   which WAL records are replayed. Every guess is reported as a warning.
//!
//! The order of the writes makes an interrupted repair safe to run again: new tables, an
//! empty WAL and the new manifest are written and synced first; then the old files are
//! moved into `lost/`; `CURRENT` is switched last. Before the switch, the new manifest is
//! the highest-numbered one, so a second repair takes it as its base.
//!
//! Assumptions: the repair holds `LOCK` (no process has the database open); the files in
//! `lost/` are only read for their numbers (never reused).

mod tables;
mod wals;

use crate::db::replay::{wals_from, Replay};
use crate::db::set_aside_files;
use crate::error::{Error, Result};
use crate::filenames::{self, manifest_name, wal_path, FileKind};
use crate::manifest::{self, ManifestPrefix, ManifestState, ManifestWriter};
use crate::options::{Options, WalRecovery};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use strata_vfs::Vfs;

/// How a kept table's place in the read order was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// At the level a manifest recorded for it.
    Recorded,
    /// At level 0 by its file number: no readable manifest lists it.
    Guessed,
}

/// A table the repaired manifest lists as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptTable {
    /// Its file number.
    pub number: u64,
    /// Its level in the repaired manifest.
    pub level: u32,
    /// Its entries.
    pub entries: u64,
    /// How its level was decided.
    pub placement: Placement,
}

/// A new table holding the readable blocks of a damaged one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvagedTable {
    /// The damaged table (now in `lost/`).
    pub from: u64,
    /// The new table.
    pub into: u64,
    /// The level of both.
    pub level: u32,
    /// Entries salvaged.
    pub entries: u64,
    /// Data blocks that could not be read.
    pub blocks_lost: usize,
}

/// A file moved into `lost/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Where it is now.
    pub path: PathBuf,
    /// Why it was not kept.
    pub reason: String,
}

/// What [`repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The manifest whose records were used (the base), if one was readable.
    pub base_manifest: Option<PathBuf>,
    /// Whether the base and the WALs passed recovery's checks (nothing was guessed).
    pub consistent: bool,
    /// Tables kept as they were.
    pub kept: Vec<KeptTable>,
    /// Tables salvaged from damaged ones.
    pub salvaged: Vec<SalvagedTable>,
    /// WAL records (batches) replayed.
    pub records_replayed: u64,
    /// Level-0 tables written from the replayed records.
    pub tables_written: Vec<u64>,
    /// Files moved into `lost/`, and why.
    pub set_aside: Vec<SetAside>,
    /// WAL records that were not replayed, one line per place.
    pub dropped: Vec<String>,
    /// Everything else worth knowing: damage found, guesses made, data known lost.
    pub warnings: Vec<String>,
    /// The new manifest `CURRENT` names.
    pub manifest: PathBuf,
}

/// The manifest a repair starts from.
struct Base {
    path: PathBuf,
    prefix: ManifestPrefix,
}

/// Repairs the database in `dir` (see the module docs). `options` shapes the tables it
/// writes. `Err` for I/O errors, a database in use ([`Error::Locked`]) and a directory that
/// holds no Strata database; damage is handled and reported, never an error.
pub fn repair(vfs: &dyn Vfs, dir: &Path, options: &Options) -> Result<RepairReport> {
    options.validate()?;
    if !vfs.exists(dir)? {
        return Err(Error::InvalidArgument(format!(
            "database directory {} does not exist",
            dir.display()
        )));
    }
    let ours = |name: &String| {
        matches!(
            filenames::parse(name),
            Some(FileKind::Current | FileKind::Manifest(_) | FileKind::Wal(_) | FileKind::Table(_))
        )
    };
    if !vfs.list(dir)?.iter().any(ours) {
        return Err(Error::InvalidArgument(format!(
            "{} holds no Strata database to repair (no CURRENT, manifest, WAL or table)",
            dir.display()
        )));
    }
    let _lock = vfs
        .lock(&dir.join(filenames::LOCK))
        .map_err(|error| match error.kind() {
            ErrorKind::WouldBlock => Error::Locked {
                dir: dir.to_path_buf(),
            },
            _ => Error::Io(error),
        })?;
    // Listed again: until the lock was ours, another process could change it.
    let names = vfs.list(dir)?;
    let lost_names = match vfs.list(&dir.join(filenames::LOST)) {
        Ok(lost) => lost,
        Err(error) if error.kind() == ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(Error::Io(error)),
    };
    let numbers = |wanted: fn(FileKind) -> Option<u64>| -> Vec<u64> {
        let mut found: Vec<u64> = names
            .iter()
            .filter_map(|name| filenames::parse(name).and_then(wanted))
            .collect();
        found.sort_unstable();
        found
    };
    let table_numbers = numbers(|kind| match kind {
        FileKind::Table(number) => Some(number),
        _ => None,
    });
    let wal_numbers = numbers(|kind| match kind {
        FileKind::Wal(number) => Some(number),
        _ => None,
    });
    let manifest_numbers = numbers(|kind| match kind {
        FileKind::Manifest(number) => Some(number),
        _ => None,
    });
    let highest = names
        .iter()
        .chain(&lost_names)
        .filter_map(|name| match filenames::parse(name) {
            Some(FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n)) => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0);

    let mut report = RepairReport::default();
    let base = find_base(vfs, dir, &manifest_numbers, &mut report)?;
    let mut next_number =
        (highest + 1).max(base.as_ref().map_or(0, |b| b.prefix.state.next_file_number));
    report.consistent = match &base {
        Some(base) => is_consistent(vfs, dir, &names, base, &mut report)?,
        None => false,
    };
    if let Some(base) = &base {
        for number in base.prefix.state.tables.keys() {
            if !table_numbers.contains(number) {
                report.warnings.push(format!(
                    "table {number}, which the manifest lists, is missing: its data is lost"
                ));
            }
        }
    }
    let prefix = base.as_ref().map(|base| &base.prefix);
    let mut plan = tables::plan_tables(
        vfs,
        dir,
        options,
        &table_numbers,
        prefix,
        report.consistent,
        &mut next_number,
        &mut report,
    )?;
    tables::demote_overlaps(&mut plan, &mut report.warnings);
    if !report.consistent {
        tables::warn_guesses(&plan, &mut report.warnings);
    }
    let salvaged: BTreeSet<u64> = report.salvaged.iter().map(|s| s.into).collect();
    for planned in plan
        .keep
        .values()
        .filter(|p| !salvaged.contains(&p.meta.number))
    {
        report.kept.push(KeptTable {
            number: planned.meta.number,
            level: planned.meta.level,
            entries: planned.meta.entries,
            placement: planned.placement,
        });
    }

    // Above every sequence a kept table's entries carry, or reads would not see them.
    let floor = prefix
        .map_or(0, |prefix| prefix.state.last_sequence)
        .max(plan.largest_sequence);
    let mut state = ManifestState {
        log_number: prefix.map_or(0, |prefix| prefix.state.log_number),
        next_file_number: next_number,
        last_sequence: floor,
        tables: plan
            .keep
            .iter()
            .map(|(&number, planned)| (number, planned.meta.clone()))
            .collect(),
        closed_wal: prefix.and_then(|prefix| prefix.state.closed_wal),
    };
    let before: BTreeSet<u64> = state.tables.keys().copied().collect();
    let wal_reasons = match base.as_ref().filter(|_| report.consistent) {
        Some(base) => replay_as_recovery(vfs, dir, options, &names, base, &mut state, &mut report)?,
        None => replay_chain(
            vfs,
            dir,
            options,
            &wal_numbers,
            floor,
            &mut state,
            &mut report,
        )?,
    };
    report.tables_written = state
        .tables
        .keys()
        .filter(|number| !before.contains(number))
        .copied()
        .collect();

    // The new files, durable before anything old moves.
    let wal_number = state.next_file_number;
    let manifest_number = wal_number + 1;
    state.next_file_number += 2;
    state.log_number = wal_number;
    vfs.create(&wal_path(dir, wal_number))?.sync()?;
    let new_manifest = manifest_name(manifest_number);
    ManifestWriter::create(vfs, &dir.join(&new_manifest), &state)?;
    vfs.sync_dir(dir)?;

    // Everything not kept, into `lost/`.
    let mut moving: Vec<(String, String)> = Vec::new();
    for number in &manifest_numbers {
        let why = "an old manifest, replaced by the repair";
        moving.push((manifest_name(*number), why.into()));
    }
    for (number, why) in wal_reasons {
        moving.push((file_name(&wal_path(dir, number)), why));
    }
    for (number, why) in plan.set_aside {
        moving.push((file_name(&filenames::table_path(dir, number)), why));
    }
    preserve_current(vfs, dir, &names, manifest_number, &mut report)?;
    let (moved_names, reasons): (Vec<String>, Vec<String>) = moving.into_iter().unzip();
    if !moved_names.is_empty() {
        let moved = set_aside_files(vfs, dir, &moved_names)?;
        for (path, reason) in moved.into_iter().zip(reasons) {
            report.set_aside.push(SetAside { path, reason });
        }
    }
    manifest::set_current(vfs, dir, &new_manifest)?;
    report.manifest = dir.join(new_manifest);
    Ok(report)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The highest-numbered manifest with at least one readable edit.
fn find_base(
    vfs: &dyn Vfs,
    dir: &Path,
    manifests: &[u64],
    report: &mut RepairReport,
) -> Result<Option<Base>> {
    for &number in manifests.iter().rev() {
        let path = dir.join(manifest_name(number));
        let file = vfs.open_read(&path)?;
        let prefix = manifest::read_manifest_prefix(file.as_ref())?;
        if prefix.edits == 0 {
            let why = prefix
                .damage
                .as_ref()
                .map_or_else(|| "it is empty".to_string(), |damage| damage.to_string());
            report
                .warnings
                .push(format!("{}: no readable edit ({why})", path.display()));
            continue;
        }
        if let (Some(damage), false) = (&prefix.damage, prefix.torn) {
            report.warnings.push(format!(
                "{damage}: only the {} edits before it were used",
                prefix.edits
            ));
        }
        report.base_manifest = Some(path.clone());
        return Ok(Some(Base { path, prefix }));
    }
    Ok(None)
}

/// Whether the base, read whole (a torn last edit allowed), and the WALs pass recovery's
/// checks: then the repair can do what recovery does, and guess nothing.
fn is_consistent(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    base: &Base,
    report: &mut RepairReport,
) -> Result<bool> {
    if base.prefix.damage.is_some() && !base.prefix.torn {
        return Ok(false);
    }
    let state = &base.prefix.state;
    let wals = wals_from(names, state.log_number);
    let mut check = Replay::check(vfs, dir, state, WalRecovery::Strict);
    match check.run(&wals, &mut state.clone(), &base.path) {
        Ok(()) => Ok(true),
        Err(error) if error.is_corruption() => {
            report.warnings.push(format!(
                "the manifest and the WALs do not pass recovery's checks ({error}): tables no \
                 manifest lists are placed by guess, and only the live chain of WALs is \
                 replayed"
            ));
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// The consistent case: replays as recovery does. Returns every WAL with why it is set aside.
fn replay_as_recovery(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    names: &[String],
    base: &Base,
    state: &mut ManifestState,
    report: &mut RepairReport,
) -> Result<Vec<(u64, String)>> {
    let log_number = base.prefix.state.log_number;
    let wals = wals_from(names, log_number);
    let strict = Options {
        wal_recovery: WalRecovery::Strict,
        // A repair is no recovery: it reaches none of recovery's marks.
        marks: crate::marks::Marks::disabled(),
        ..options.clone()
    };
    let mut replay = Replay::new(vfs, dir, &strict, state);
    replay.run(&wals, state, &base.path)?;
    report.records_replayed = replay.report.records_replayed;
    Ok(wals_from(names, 0)
        .into_iter()
        .map(|number| {
            let why = if number < log_number {
                "below the manifest's log number: its records are in tables"
            } else {
                "replayed into tables"
            };
            (number, why.to_string())
        })
        .collect())
}

/// The salvage case: replays the live chain (see [`wals`]). Returns every WAL with why it is
/// set aside.
fn replay_chain(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    wal_numbers: &[u64],
    floor: u64,
    state: &mut ManifestState,
    report: &mut RepairReport,
) -> Result<Vec<(u64, String)>> {
    let mut summaries = Vec::with_capacity(wal_numbers.len());
    for &number in wal_numbers {
        summaries.push((number, wals::summarize(vfs, dir, number)?));
    }
    let (chain, disconnected) = wals::live_chain(&summaries);
    let outcome = wals::replay_chain(vfs, dir, options, &chain, floor, state)?;
    report.records_replayed = outcome.records;
    report.dropped = outcome.dropped;
    let seen = summaries
        .iter()
        .map(|(_, s)| s.last_sequence)
        .max()
        .unwrap_or(0);
    state.last_sequence = floor.max(outcome.next_sequence - 1).max(seen);
    let mut reasons = Vec::new();
    for (number, summary) in &summaries {
        let why = if chain.contains(number) {
            "replayed into tables (the live chain of WALs)".to_string()
        } else if disconnected.contains(number) {
            report.dropped.push(format!(
                "{}: not replayed: its closing record does not name the WAL after it, so its \
                 records were flushed long ago or the WAL after it was lost",
                wal_path(dir, *number).display()
            ));
            "not part of the live chain of WALs: not replayed".to_string()
        } else {
            debug_assert!(!summary.holds_records);
            "holds no record".to_string()
        };
        reasons.push((*number, why));
    }
    Ok(reasons)
}

/// Keeps a copy of the old `CURRENT` (which `set_current` will replace) and moves a leftover
/// `CURRENT.tmp` (which it would overwrite) into `lost/`, under names no other repair uses.
fn preserve_current(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    manifest_number: u64,
    report: &mut RepairReport,
) -> Result<()> {
    let has = |name: &str| names.iter().any(|n| n == name);
    if !has(filenames::CURRENT) && !has(filenames::CURRENT_TEMP) {
        return Ok(());
    }
    let lost = dir.join(filenames::LOST);
    if !vfs.exists(&lost)? {
        vfs.create_dir_all(&lost)?;
        vfs.sync_dir(dir)?;
    }
    if has(filenames::CURRENT) {
        let source = vfs.open_read(&dir.join(filenames::CURRENT))?;
        let target = lost.join(format!("{}.{manifest_number:06}", filenames::CURRENT));
        let copy = vfs.create(&target)?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut at = 0;
        loop {
            let read = source.read_at(at, &mut buffer)?;
            if read == 0 {
                break;
            }
            copy.append(&buffer[..read])?;
            at += read as u64;
        }
        copy.sync()?;
        report.set_aside.push(SetAside {
            path: target,
            reason: "a copy of the old CURRENT (the repair replaces it)".into(),
        });
    }
    if has(filenames::CURRENT_TEMP) {
        let target = lost.join(format!("{}.{manifest_number:06}", filenames::CURRENT_TEMP));
        vfs.rename(&dir.join(filenames::CURRENT_TEMP), &target)?;
        report.set_aside.push(SetAside {
            path: target,
            reason: "left by an interrupted switch of manifests".into(),
        });
    }
    vfs.sync_dir(&lost)?;
    vfs.sync_dir(dir)?;
    Ok(())
}
