//! WAL replay at recovery: the chain of WALs from the manifest's log number, the continuity
//! of sequence numbers, the one place a torn tail is tolerated, and tables written as the
//! replayed data fills memtables.
//!
//! The rules (`docs/wal-format.md` has the reasoning):
//! - The WAL the manifest names as its log number exists (it is durable by name before any
//!   manifest names it).
//! - Sequence numbers run on without a gap or a repeat from the manifest's `last_sequence`.
//! - A WAL followed by a WAL that holds records was finished before its successor got any:
//!   it ends cleanly in a closing record that names that successor. Anything else (a damaged
//!   record, a missing closing record, another successor) means it was damaged, shortened,
//!   or a WAL between was lost.
//! - A closing record that names a successor which is not there means the successor was
//!   lost; nothing may follow a closing record.
//! - Only the newest WAL with records may end in a torn tail, and only past the last point a
//!   valid record proves durable (`synced_through`): that is where a crash leaves one.
//!
//! Anything else is *damage*: under [`WalRecovery::Strict`] an [`Error::Corruption`] naming
//! the file, under [`WalRecovery::PointInTime`] the end of the replay (the records before it
//! are kept, the WALs from the damaged one on are set aside in `lost/`).
//!
//! The replay never deletes: the caller removes files only after every check here passed.
//!
//! The same rules serve three callers, so that they cannot drift apart: recovery (which
//! replays into tables), `verify` (a dry run that writes nothing and reports the first
//! damage) and `repair` (a dry run under `Strict` decides whether the manifest and the WALs
//! agree; the real replay follows).

use super::background::write_table;
use crate::batch::{decode_payload, BatchOp, LogSuccessor, WriteBatch};
use crate::error::{Error, Result};
use crate::filenames::wal_path;
use crate::filenames::{self, FileKind};
use crate::manifest::ManifestState;
use crate::marks::{Mark, Marks};
use crate::memtable::Memtable;
use crate::options::{Options, WalRecovery};
use crate::retention::Retention;
use crate::wal::{self, LogEnd, WalReader};
use std::path::{Path, PathBuf};
use strata_vfs::Vfs;

/// What a recovery found and did beyond replaying whole logs: returned by
/// [`crate::Db::recovery_report`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Damage [`WalRecovery::PointInTime`] recovered past (the error `Strict` would have
    /// returned); the records from there on were dropped.
    pub wal_damage: Option<String>,
    /// Files moved into `lost/` rather than deleted, because recovery could not prove them
    /// obsolete: tables a damaged manifest does not list, WALs whose records were dropped.
    pub set_aside: Vec<PathBuf>,
    /// WAL records replayed.
    pub records_replayed: u64,
    /// Tables written from the replayed records (more than one when they exceed
    /// `memtable_size`).
    pub tables_written: usize,
    /// The notes in `lost/` (`RECOVERY-NNNNNN.txt`) of every point-in-time recovery that
    /// went past damage, this one's included, until an operator removes them: the report
    /// of a recovery that crashed after it committed is not lost with it.
    pub damage_notes: Vec<PathBuf>,
}

/// The WALs of `names` (a directory listing) numbered at least `log_number`, ascending:
/// the ones recovery replays.
pub(crate) fn wals_from(names: &[String], log_number: u64) -> Vec<u64> {
    let mut wals: Vec<u64> = names
        .iter()
        .filter_map(|name| match filenames::parse(name) {
            Some(FileKind::Wal(number)) if number >= log_number => Some(number),
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    wals.dedup();
    wals
}

/// Replayed batches gathered in a memtable and written as level-0 tables, one whenever the
/// memtable reaches `memtable_size` (as writes do: a large WAL becomes several tables, not
/// one oversized one). Later batches win, so batches must come oldest first.
pub(crate) struct TableSink<'a> {
    fs: &'a dyn Vfs,
    dir: &'a Path,
    options: &'a Options,
    memtable: Memtable,
    /// The numbers of the tables written, in order (newest data last).
    pub(crate) written: Vec<u64>,
    /// Operations applied so far: each one's version number in the memtable.
    applied: u64,
    /// Whether full memtables become tables; a read-only open keeps everything in memory.
    write_tables: bool,
}

impl<'a> TableSink<'a> {
    pub(crate) fn new(fs: &'a dyn Vfs, dir: &'a Path, options: &'a Options) -> TableSink<'a> {
        TableSink {
            fs,
            dir,
            options,
            memtable: Memtable::new(options.memtable_size),
            written: Vec::new(),
            applied: 0,
            write_tables: true,
        }
    }

    /// Applies one batch; writes a table (numbered from `state`, added to it) when full.
    pub(crate) fn apply(&mut self, batch: &WriteBatch, state: &mut ManifestState) -> Result<()> {
        for op in batch.iter() {
            // The order of application, not the logged sequence: a replay has no snapshots,
            // so only recency matters, and a repair may apply records whose logged numbers
            // do not increase.
            self.applied += 1;
            match op {
                BatchOp::Put(key, value) => self.memtable.insert(key, self.applied, Some(value)),
                BatchOp::Delete(key) => self.memtable.insert(key, self.applied, None),
            }
        }
        if self.write_tables && self.memtable.approximate_size() >= self.options.memtable_size {
            self.write_table(state)?;
        }
        Ok(())
    }

    /// Writes what is left in the memtable as a last table.
    pub(crate) fn finish(&mut self, state: &mut ManifestState) -> Result<()> {
        if self.write_tables && !self.memtable.is_empty() {
            self.write_table(state)?;
        }
        Ok(())
    }

    fn write_table(&mut self, state: &mut ManifestState) -> Result<()> {
        let number = state.next_file_number;
        state.next_file_number += 1;
        let meta = write_table(
            self.fs,
            self.dir,
            number,
            &self.memtable,
            self.options,
            &Retention::default(),
        )?;
        state.tables.insert(number, meta);
        self.written.push(number);
        self.memtable = Memtable::new(self.options.memtable_size);
        Ok(())
    }
}

/// The replay of a database's WALs into tables (or, as a check, into nothing).
pub(crate) struct Replay<'a> {
    fs: &'a dyn Vfs,
    dir: &'a Path,
    recovery: WalRecovery,
    /// Where the records go; `None` for a check that writes nothing.
    sink: Option<TableSink<'a>>,
    /// The sequence number the next record must start at.
    pub(crate) next_sequence: u64,
    pub(crate) report: RecoveryReport,
    /// Index (in the WAL list) of the first WAL whose records were not all kept.
    pub(crate) first_dropped: Option<usize>,
    /// The damage that ended the replay (under `PointInTime`).
    pub(crate) damage: Option<Error>,
    /// The coverage marks a recovery reaches (disabled for checks and read-only opens).
    marks: Marks,
    /// WALs that yielded at least one record so far.
    wals_with_records: usize,
}

/// How one WAL's replay ended.
enum WalOutcome {
    /// Every record kept; the log ended as the rules allow.
    Whole,
    /// Damage at this WAL.
    Damaged(Error),
}

impl<'a> Replay<'a> {
    /// A replay into tables, treating damage as `options.wal_recovery` says.
    pub(crate) fn new(
        fs: &'a dyn Vfs,
        dir: &'a Path,
        options: &'a Options,
        state: &ManifestState,
    ) -> Replay<'a> {
        let mut replay = Replay::check(fs, dir, state, options.wal_recovery);
        replay.sink = Some(TableSink::new(fs, dir, options));
        replay.marks = options.marks.clone();
        replay
    }

    /// A replay into one memtable, writing nothing (a read-only open); take the memtable
    /// with [`Replay::into_memtable`].
    pub(crate) fn in_memory(
        fs: &'a dyn Vfs,
        dir: &'a Path,
        options: &'a Options,
        state: &ManifestState,
    ) -> Replay<'a> {
        let mut replay = Replay::new(fs, dir, options, state);
        if let Some(sink) = replay.sink.as_mut() {
            sink.write_tables = false;
        }
        // Nothing is committed: no recovery window opens.
        replay.marks = Marks::disabled();
        replay
    }

    /// The memtable an in-memory replay filled.
    pub(crate) fn into_memtable(self) -> Option<Memtable> {
        self.sink
            .filter(|sink| !sink.write_tables)
            .map(|sink| sink.memtable)
    }

    /// A check of the same rules that reads the WALs and writes nothing. Under `Strict` the
    /// first damage is the `Err` of [`Replay::run`]; under `PointInTime` it is kept in
    /// `damage`.
    pub(crate) fn check(
        fs: &'a dyn Vfs,
        dir: &'a Path,
        state: &ManifestState,
        recovery: WalRecovery,
    ) -> Replay<'a> {
        Replay {
            fs,
            dir,
            recovery,
            sink: None,
            next_sequence: state.last_sequence + 1,
            report: RecoveryReport::default(),
            first_dropped: None,
            damage: None,
            marks: Marks::disabled(),
            wals_with_records: 0,
        }
    }

    /// Replays `wals` (ascending, all at or above the manifest's log number) into tables
    /// added to `state`. `Err` for I/O failures and, under `Strict`, for damage.
    pub(crate) fn run(
        &mut self,
        wals: &[u64],
        state: &mut ManifestState,
        manifest_path: &Path,
    ) -> Result<()> {
        if state.log_number > 0 && wals.first() != Some(&state.log_number) {
            let error = Error::corruption(
                manifest_path,
                0,
                format!(
                    "the manifest's log number names WAL {}, which is missing: a WAL was lost, \
                     or a later manifest edit was cut off",
                    wal_path(self.dir, state.log_number).display()
                ),
            );
            self.damaged(0, error)?;
        } else if let Some((wal, _)) = state.closed_wal.filter(|(wal, _)| !wals.contains(wal)) {
            let error = Error::corruption(
                manifest_path,
                0,
                format!(
                    "the manifest records a clean close of WAL {}, which is missing",
                    wal_path(self.dir, wal).display()
                ),
            );
            self.damaged(0, error)?;
        } else {
            let mut holds_records = Vec::with_capacity(wals.len());
            for &number in wals {
                holds_records.push(self.holds_records(number)?);
            }
            for index in 0..wals.len() {
                let successor_holds_records = holds_records[index + 1..].iter().any(|&h| h);
                let expected_close = state
                    .closed_wal
                    .filter(|(wal, _)| *wal == wals[index])
                    .map(|(_, offset)| offset);
                if let WalOutcome::Damaged(error) =
                    self.replay_one(wals, index, successor_holds_records, expected_close, state)?
                {
                    self.damaged(index, error)?;
                    break;
                }
            }
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.finish(state)?;
            self.report.tables_written = sink.written.len();
        }
        state.last_sequence = self.next_sequence - 1;
        Ok(())
    }

    /// Damage at WAL `index`: an error under `Strict`, the end of the replay otherwise.
    fn damaged(&mut self, index: usize, error: Error) -> Result<()> {
        match self.recovery {
            WalRecovery::Strict => Err(error),
            WalRecovery::PointInTime => {
                self.marks.reach(Mark::RecoveryPointInTime);
                self.report.wal_damage = Some(error.to_string());
                self.first_dropped = Some(index);
                self.damage = Some(error);
                Ok(())
            }
        }
    }

    /// Whether a WAL holds any valid record (its first, or one after damage at its start).
    fn holds_records(&self, number: u64) -> Result<bool> {
        let file = self.fs.open_read(&wal_path(self.dir, number))?;
        wal::holds_records(file.as_ref())
    }

    fn replay_one(
        &mut self,
        wals: &[u64],
        index: usize,
        successor_holds_records: bool,
        expected_close: Option<u64>,
        state: &mut ManifestState,
    ) -> Result<WalOutcome> {
        let path = wal_path(self.dir, wals[index]);
        let file = self.fs.open_read(&path)?;
        let mut reader = WalReader::new(file.as_ref())?;
        let mut closing: Option<LogSuccessor> = None;
        let mut yielded_records = false;
        while let Some((offset, record)) = reader.next_record()? {
            let damage = |reason: String| {
                Ok(WalOutcome::Damaged(Error::corruption(
                    &path, offset, reason,
                )))
            };
            let decoded = match decode_payload(&record) {
                Ok(decoded) => decoded,
                Err(reason) => return damage(reason),
            };
            if closing.is_some() {
                return damage("a record follows the log's closing record".into());
            }
            if decoded.sequence != self.next_sequence {
                return damage(format!(
                    "record starts at sequence {} where {} was expected: {}",
                    decoded.sequence,
                    self.next_sequence,
                    if decoded.sequence > self.next_sequence {
                        "the writes between are missing (a lost or damaged WAL, or a manifest \
                         edit cut off)"
                    } else {
                        "it repeats writes already recovered"
                    }
                ));
            }
            if decoded.closing.is_some() {
                if expected_close.is_some_and(|expected| expected != offset) {
                    return damage(format!(
                        "the closing record is at offset {offset}, the manifest recorded the \
                         clean close at {}",
                        expected_close.unwrap_or_default()
                    ));
                }
                closing = decoded.closing;
                continue;
            }
            self.report.records_replayed += 1;
            if !yielded_records {
                yielded_records = true;
                self.wals_with_records += 1;
                if self.wals_with_records == 2 {
                    self.marks.reach(Mark::RecoverySeveralWals);
                }
            }
            self.next_sequence = decoded.sequence + decoded.batch.len() as u64;
            if let Some(sink) = self.sink.as_mut() {
                sink.apply(&decoded.batch, state)?;
            }
        }
        let end = reader.end().cloned().unwrap_or(LogEnd::Clean);
        drop(reader);
        if let (Some(expected), None) = (expected_close, closing) {
            // The manifest says this WAL was closed cleanly with its closing record there:
            // whatever ended it early (a cut, damage) came after the close was durable.
            let at = match &end {
                LogEnd::Broken { offset, .. } => *offset,
                LogEnd::Clean => file.len()?,
            };
            return Ok(WalOutcome::Damaged(Error::corruption(
                &path,
                at,
                format!(
                    "the log ends before its closing record, which the manifest recorded at \
                     offset {expected} when the database was closed: the WAL was shortened or \
                     damaged"
                ),
            )));
        }
        let successor = wals.get(index + 1).copied();
        let outcome = match &end {
            LogEnd::Broken { offset, .. } => {
                if successor_holds_records {
                    WalOutcome::Damaged(wal::corruption_at(&path, &end))
                } else if WalReader::scan_after(file.as_ref(), *offset)?
                    .iter()
                    .filter_map(|(_, payload)| decode_payload(payload).ok())
                    .any(|decoded| decoded.synced_through > *offset)
                {
                    // A valid record after the bad spot says the log was durable past it.
                    WalOutcome::Damaged(wal::corruption_at(&path, &end))
                } else {
                    self.marks.reach(Mark::RecoveryTornWalTail);
                    WalOutcome::Whole
                }
            }
            LogEnd::Clean => {
                let end_offset = file.len()?;
                let damage = |reason: String| {
                    WalOutcome::Damaged(Error::corruption(&path, end_offset, reason))
                };
                match (closing, successor) {
                    (Some(LogSuccessor::Wal(named)), Some(next)) if named == next => {
                        WalOutcome::Whole
                    }
                    (Some(LogSuccessor::Wal(named)), _) => damage(format!(
                        "the closing record names WAL {} as the log's continuation, which is \
                         missing (a lost WAL)",
                        wal_path(self.dir, named).display()
                    )),
                    (Some(LogSuccessor::Closed), Some(next)) if successor_holds_records => {
                        damage(format!(
                            "the log was closed, yet the later WAL {} holds records",
                            wal_path(self.dir, next).display()
                        ))
                    }
                    (None, Some(next)) if successor_holds_records => damage(format!(
                        "the log ends without its closing record, yet the later WAL {} holds \
                         records: it was shortened",
                        wal_path(self.dir, next).display()
                    )),
                    _ => WalOutcome::Whole,
                }
            }
        };
        Ok(outcome)
    }
}
