//! `verify`: a read-only check of a whole database directory, after RocksDB's
//! `ldb checkconsistency` and `sst_dump --command=verify`. It reports every problem it
//! finds with the file, the offset where there is one, and what is wrong, and changes
//! nothing.
//!
//! What it checks:
//! - `CURRENT` parses and names a manifest that exists;
//! - the manifest reads completely: a torn last edit (what a crash leaves) is a warning,
//!   damage followed by valid edits is corruption;
//! - every table the manifest lists exists, has the size it recorded, and every block
//!   (footer, filter, index, data) passes its checksum and decodes, with keys in order and
//!   within the recorded range ([`table`]);
//! - the WALs from the manifest's log number on follow the chain rules recovery applies —
//!   the very code of `db/replay.rs`, run as a dry run — and WALs past the first damage are
//!   checked on their own for damage in their middle;
//! - files no manifest needs (unlisted tables, WALs below the log number, other manifests,
//!   a leftover `CURRENT.tmp`) are reported as orphans, which are not errors.
//!
//! When no manifest can be read (`CURRENT` or the manifest damaged or gone), every table and
//! WAL in the directory is checked on its own, which is what `repair` would have to work
//! with.
//!
//! Assumptions: nothing else changes the directory while verify reads it. Verify never
//! creates the `LOCK` file (the real filesystem's lock creates it): it locks `LOCK` only if
//! the file is already there, and if another process holds it, it says so in a warning and
//! reads anyway. Files in `lost/` are not checked: nothing reads them.

mod table;

pub(crate) use table::{push_error, scan_table};

use crate::db::replay::{wals_from, Replay};
use crate::decode_payload;
use crate::error::{Error, Result};
use crate::filenames::{self, table_path, wal_path, FileKind};
use crate::manifest::{self, ManifestState};
use crate::options::WalRecovery;
use crate::wal::{self, LogEnd, WalReader};
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use strata_vfs::{Vfs, VfsLock};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Bytes the engine made durable are damaged or missing: recovery fails, or data is
    /// lost. `strata db verify` exits 1.
    Corruption,
    /// Something a crash or a concurrent user can leave, which recovery handles (a torn
    /// last manifest edit; the database open in another process).
    Warning,
    /// A file no manifest needs: recovery removes it or sets it aside. Not an error.
    Orphan,
}

impl Severity {
    /// The lower-case name (`corruption`, `warning`, `orphan`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Corruption => "corruption",
            Severity::Warning => "warning",
            Severity::Orphan => "orphan",
        }
    }
}

/// One thing verify found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// The file it is in.
    pub file: PathBuf,
    /// Where in the file, when a place can be named.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity.name(), self.file.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
    /// The manifest `CURRENT` names, if it could be read.
    pub manifest: Option<PathBuf>,
    /// Tables read block by block.
    pub tables_checked: usize,
    /// Data blocks read.
    pub blocks_checked: usize,
    /// WALs read.
    pub wals_checked: usize,
}

impl VerifyReport {
    /// How many problems of `severity` were found.
    pub fn count(&self, severity: Severity) -> usize {
        self.problems
            .iter()
            .filter(|problem| problem.severity == severity)
            .count()
    }

    /// Whether no corruption was found (warnings and orphans allowed).
    pub fn is_sound(&self) -> bool {
        self.count(Severity::Corruption) == 0
    }

    fn push(&mut self, severity: Severity, file: PathBuf, offset: Option<u64>, reason: String) {
        self.problems.push(Problem {
            severity,
            file,
            offset,
            reason,
        });
    }
}

/// Checks the database in `dir` without changing anything. `Err` for I/O errors and for a
/// directory that does not exist or holds no Strata database; everything wrong with the
/// database itself is a [`Problem`] in the report.
pub fn verify(vfs: &dyn Vfs, dir: &Path) -> Result<VerifyReport> {
    if !vfs.exists(dir)? {
        return Err(Error::InvalidArgument(format!(
            "database directory {} does not exist",
            dir.display()
        )));
    }
    let names = vfs.list(dir)?;
    let ours = |name: &String| {
        matches!(
            filenames::parse(name),
            Some(FileKind::Current | FileKind::Manifest(_) | FileKind::Wal(_) | FileKind::Table(_))
        )
    };
    if !names.iter().any(ours) {
        return Err(Error::InvalidArgument(format!(
            "{} holds no Strata database (no CURRENT, manifest, WAL or table)",
            dir.display()
        )));
    }
    let mut report = VerifyReport::default();
    let _lock = lock_if_present(vfs, dir, &names, &mut report)?;
    match read_live_manifest(vfs, dir, &names, &mut report)? {
        Some((state, manifest_path)) => {
            check_against_manifest(vfs, dir, &names, &state, &manifest_path, &mut report)?;
        }
        None => {
            for name in &names {
                match filenames::parse(name) {
                    Some(FileKind::Table(_)) => {
                        check_table(vfs, &dir.join(name), None, &mut report)?
                    }
                    Some(FileKind::Wal(_)) => check_wal_alone(vfs, &dir.join(name), &mut report)?,
                    _ => {}
                }
            }
        }
    }
    Ok(report)
}

/// Locks `LOCK` if it exists (so that nothing is created); a held lock is a warning.
fn lock_if_present(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    report: &mut VerifyReport,
) -> Result<Option<Box<dyn VfsLock>>> {
    let path = dir.join(filenames::LOCK);
    if !names.iter().any(|name| name == filenames::LOCK) {
        return Ok(None);
    }
    match vfs.lock(&path) {
        Ok(lock) => Ok(Some(lock)),
        Err(error) => {
            let why = if error.kind() == ErrorKind::WouldBlock {
                "the database is open in another process: its files may change while verify \
                 reads them, so problems may be spurious"
                    .to_string()
            } else {
                format!("could not lock it ({error}); verifying without the lock")
            };
            report.push(Severity::Warning, path, None, why);
            Ok(None)
        }
    }
}

/// Reads `CURRENT` and the manifest it names; `None` (with the problem reported) if there is
/// no state to check the rest against.
fn read_live_manifest(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    report: &mut VerifyReport,
) -> Result<Option<(ManifestState, PathBuf)>> {
    let current = dir.join(filenames::CURRENT);
    if !names.iter().any(|name| name == filenames::CURRENT) {
        let reason = "CURRENT is missing, so no manifest is live (`repair` rebuilds one)";
        report.push(Severity::Corruption, current, None, reason.into());
        return Ok(None);
    }
    let manifest_name = match manifest::read_current(vfs, dir) {
        Ok(name) => name,
        Err(error) => {
            push_error(&mut report.problems, error)?;
            return Ok(None);
        }
    };
    for name in names {
        match filenames::parse(name) {
            Some(FileKind::Manifest(_)) if *name != manifest_name => report.push(
                Severity::Orphan,
                dir.join(name),
                None,
                "a manifest CURRENT does not name (recovery removes it)".into(),
            ),
            Some(FileKind::CurrentTemp) => report.push(
                Severity::Orphan,
                dir.join(name),
                None,
                "left by an interrupted switch of manifests (recovery removes it)".into(),
            ),
            _ => {}
        }
    }
    let path = dir.join(&manifest_name);
    let file = match vfs.open_read(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            let reason = format!("CURRENT names {manifest_name}, which is missing");
            report.push(Severity::Corruption, current, Some(0), reason);
            return Ok(None);
        }
        Err(error) => return Err(Error::Io(error)),
    };
    report.manifest = Some(path.clone());
    let prefix = manifest::read_manifest_prefix(file.as_ref())?;
    match prefix.damage {
        Some(Error::Corruption { offset, reason, .. }) if prefix.torn && prefix.edits > 0 => {
            let reason = format!(
                "torn last edit ({reason}): what a crash leaves; recovery ignores it and sets \
                 aside the tables it does not list"
            );
            report.push(Severity::Warning, path.clone(), Some(offset), reason);
        }
        Some(damage) => {
            push_error(&mut report.problems, damage)?;
            return Ok(None);
        }
        None if prefix.edits == 0 => {
            let reason = "manifest holds no edit".to_string();
            report.push(Severity::Corruption, path, Some(0), reason);
            return Ok(None);
        }
        None => {}
    }
    Ok(Some((prefix.state, path)))
}

/// Checks the tables and WALs against the manifest's state.
fn check_against_manifest(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    state: &ManifestState,
    manifest_path: &Path,
    report: &mut VerifyReport,
) -> Result<()> {
    for meta in state.tables.values() {
        check_table(vfs, &table_path(dir, meta.number), Some(meta), report)?;
    }
    for name in names {
        match filenames::parse(name) {
            Some(FileKind::Table(number)) if !state.tables.contains_key(&number) => report.push(
                Severity::Orphan,
                dir.join(name),
                None,
                "a table the manifest does not list".into(),
            ),
            Some(FileKind::Wal(number)) if number < state.log_number => report.push(
                Severity::Orphan,
                dir.join(name),
                None,
                format!(
                    "a WAL below the manifest's log number {}: its records are in tables",
                    state.log_number
                ),
            ),
            _ => {}
        }
    }
    // The chain rules, exactly as recovery applies them, as a dry run that writes nothing.
    let wals = wals_from(names, state.log_number);
    let mut replay = Replay::check(vfs, dir, state, WalRecovery::PointInTime);
    replay.run(&wals, &mut state.clone(), manifest_path)?;
    report.wals_checked += wals.len();
    if let Some(damage) = replay.damage.take() {
        push_error(&mut report.problems, damage)?;
        // Recovery stops at the first damage; what lies past it is checked on its own.
        let first = replay.first_dropped.unwrap_or(0);
        for &number in wals.iter().skip(first + 1) {
            check_wal_alone(vfs, &wal_path(dir, number), report)?;
        }
    }
    Ok(())
}

fn check_table(
    vfs: &dyn Vfs,
    path: &Path,
    meta: Option<&crate::manifest::TableMeta>,
    report: &mut VerifyReport,
) -> Result<()> {
    let scan = scan_table(vfs, path, meta, false)?;
    report.tables_checked += 1;
    report.blocks_checked += scan.blocks;
    report.problems.extend(scan.problems);
    Ok(())
}

/// Checks one WAL without its chain: damage is corruption when a valid record after it
/// proves the damaged bytes were durable (see `docs/wal-format.md`), and a record that
/// passes its checksum but does not decode is corruption too.
fn check_wal_alone(vfs: &dyn Vfs, path: &Path, report: &mut VerifyReport) -> Result<()> {
    report.wals_checked += 1;
    let file = vfs.open_read(path)?;
    let (records, end) = wal::read_log(file.as_ref())?;
    for (offset, record) in &records {
        if let Err(reason) = decode_payload(record) {
            let reason = format!("record passes its checksum but {reason}");
            report.push(
                Severity::Corruption,
                path.to_path_buf(),
                Some(*offset),
                reason,
            );
            return Ok(());
        }
    }
    if let LogEnd::Broken { offset, reason } = &end {
        let proof = WalReader::scan_after(file.as_ref(), *offset)?
            .iter()
            .filter_map(|(_, payload)| decode_payload(payload).ok())
            .any(|decoded| decoded.synced_through > *offset);
        if proof {
            let reason = format!("{reason}; a later record proves these bytes were durable");
            report.push(
                Severity::Corruption,
                path.to_path_buf(),
                Some(*offset),
                reason,
            );
        }
    }
    Ok(())
}
