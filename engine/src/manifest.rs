//! The manifest: the crash-safe record of which SSTables are live, which WALs are still
//! needed and how far the file-number counter has gone.
//!
//! Grammar (see `docs/manifest.md`); the manifest is a record log in the WAL's format
//! (`wal.rs`) whose every record is one version edit:
//! ```text
//! edit   := field*
//! field  := 1 log_number:varint            -- WALs numbered below this are obsolete
//!         | 2 next_file_number:varint
//!         | 3 last_sequence:varint
//!         | 4 level:varint number:varint file_size:varint entries:varint
//!             smallest:bytes largest:bytes  -- a table becomes live
//!         | 5 level:varint number:varint   -- a table stops being live
//!         | 6 wal:varint offset:varint     -- clean close: WAL `wal`'s closing record
//!                                             starts at `offset`
//!         | 7 offset:varint                -- the file offset this edit's record starts at
//! bytes  := length:varint byte{length}
//! ```
//! Field 7 binds an edit to its place. Every sync pads the manifest to a sector boundary, so
//! every edit starts a sector, and a sector read from another place of the file (a
//! misdirected read) or written to another (a misdirected write) is a run of whole, valid
//! records: without it, a manifest read from its second sector on is a valid manifest that
//! lacks the snapshot's tables, and recovery deletes them (the medium-fault sweeps, seeds
//! 957 and 1107 of `--faults all,medium --mode sequential`). An edit whose field 7 names
//! another offset is corruption; an edit without one (written before field 7) is read as it
//! was.
//! Field 6 is appended by `Db::close` after the WAL's closing record is durable. A WAL cut
//! at a record boundary reads exactly like one a crash ended early; this field lets recovery
//! tell that a cleanly closed WAL lost its end. Snapshots never carry it: a recovery replaces
//! the WAL it names.
//! The first record of a manifest is a snapshot of the whole state, so a manifest stands
//! alone. `CURRENT` names the live manifest and is replaced by write-temp, sync, rename,
//! `sync_dir`. Every edit is synced before anything depends on it, so at most the last
//! record can be torn by a crash; a bad record followed by a valid one is corruption.

use crate::coding::{put_length_prefixed, put_varint, Decoder};
use crate::error::{Error, Result};
use crate::wal::{self, LogEnd, WalReader, WalWriter};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use strata_vfs::{Vfs, VfsFile};

/// What the manifest knows of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// The file number (`NNNNNN.sst`).
    pub number: u64,
    /// The level it lives in.
    pub level: u32,
    /// Its size in bytes.
    pub file_size: u64,
    /// Its number of entries.
    pub entries: u64,
    /// Its smallest key.
    pub smallest: Vec<u8>,
    /// Its largest key.
    pub largest: Vec<u8>,
}

/// A change to the set of live files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// New value of the oldest live WAL number.
    pub log_number: Option<u64>,
    /// New value of the file-number counter.
    pub next_file_number: Option<u64>,
    /// The last sequence number whose data the live tables hold.
    pub last_sequence: Option<u64>,
    /// Tables that become live.
    pub added: Vec<TableMeta>,
    /// Tables (level, number) that stop being live.
    pub deleted: Vec<(u32, u64)>,
    /// A clean close: (WAL number, offset of its closing record).
    pub closed_wal: Option<(u64, u64)>,
}

const LOG_NUMBER: u64 = 1;
const NEXT_FILE: u64 = 2;
const LAST_SEQUENCE: u64 = 3;
const ADD_TABLE: u64 = 4;
const DELETE_TABLE: u64 = 5;
const CLOSED_WAL: u64 = 6;
const RECORD_OFFSET: u64 = 7;

impl VersionEdit {
    /// Encodes the edit.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, value) in [
            (LOG_NUMBER, self.log_number),
            (NEXT_FILE, self.next_file_number),
            (LAST_SEQUENCE, self.last_sequence),
        ] {
            if let Some(value) = value {
                put_varint(&mut out, tag);
                put_varint(&mut out, value);
            }
        }
        for table in &self.added {
            put_varint(&mut out, ADD_TABLE);
            put_varint(&mut out, table.level as u64);
            put_varint(&mut out, table.number);
            put_varint(&mut out, table.file_size);
            put_varint(&mut out, table.entries);
            put_length_prefixed(&mut out, &table.smallest);
            put_length_prefixed(&mut out, &table.largest);
        }
        for &(level, number) in &self.deleted {
            put_varint(&mut out, DELETE_TABLE);
            put_varint(&mut out, level as u64);
            put_varint(&mut out, number);
        }
        if let Some((wal, offset)) = self.closed_wal {
            put_varint(&mut out, CLOSED_WAL);
            put_varint(&mut out, wal);
            put_varint(&mut out, offset);
        }
        out
    }

    /// Encodes the edit as the record that starts at file offset `offset` (field 7).
    pub fn encode_at(&self, offset: u64) -> Vec<u8> {
        let mut out = self.encode();
        put_varint(&mut out, RECORD_OFFSET);
        put_varint(&mut out, offset);
        out
    }

    /// Decodes an edit; `Err` says what is malformed.
    pub fn decode(input: &[u8]) -> std::result::Result<VersionEdit, String> {
        Self::decode_record(input).map(|(edit, _)| edit)
    }

    /// Decodes an edit and the offset its record says it starts at (field 7; `None` in an
    /// edit written before field 7).
    pub fn decode_record(input: &[u8]) -> std::result::Result<(VersionEdit, Option<u64>), String> {
        let mut decoder = Decoder::new(input);
        let mut edit = VersionEdit::default();
        let mut record_offset = None;
        while !decoder.is_empty() {
            let at = decoder.position();
            let malformed = || format!("malformed field at byte {at} of the edit");
            let tag = decoder.varint().ok_or_else(malformed)?;
            match tag {
                LOG_NUMBER => edit.log_number = Some(decoder.varint().ok_or_else(malformed)?),
                NEXT_FILE => edit.next_file_number = Some(decoder.varint().ok_or_else(malformed)?),
                LAST_SEQUENCE => edit.last_sequence = Some(decoder.varint().ok_or_else(malformed)?),
                ADD_TABLE => {
                    let level = decoder.varint().ok_or_else(malformed)?;
                    let number = decoder.varint().ok_or_else(malformed)?;
                    let file_size = decoder.varint().ok_or_else(malformed)?;
                    let entries = decoder.varint().ok_or_else(malformed)?;
                    let smallest = decoder.length_prefixed().ok_or_else(malformed)?.to_vec();
                    let largest = decoder.length_prefixed().ok_or_else(malformed)?.to_vec();
                    edit.added.push(TableMeta {
                        number,
                        level: u32::try_from(level).map_err(|_| malformed())?,
                        file_size,
                        entries,
                        smallest,
                        largest,
                    });
                }
                DELETE_TABLE => {
                    let level = decoder.varint().ok_or_else(malformed)?;
                    let number = decoder.varint().ok_or_else(malformed)?;
                    edit.deleted
                        .push((u32::try_from(level).map_err(|_| malformed())?, number));
                }
                CLOSED_WAL => {
                    let wal = decoder.varint().ok_or_else(malformed)?;
                    let offset = decoder.varint().ok_or_else(malformed)?;
                    edit.closed_wal = Some((wal, offset));
                }
                RECORD_OFFSET => record_offset = Some(decoder.varint().ok_or_else(malformed)?),
                other => {
                    return Err(format!(
                        "unknown field tag {other} at byte {at} of the edit"
                    ))
                }
            }
        }
        Ok((edit, record_offset))
    }
}

/// The state a manifest describes: the result of applying its edits in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestState {
    /// WALs numbered below this are obsolete.
    pub log_number: u64,
    /// The next unused file number.
    pub next_file_number: u64,
    /// The last sequence number the live tables hold.
    pub last_sequence: u64,
    /// Live tables by number.
    pub tables: BTreeMap<u64, TableMeta>,
    /// Set by the last edit if it recorded a clean close: (WAL number, offset of its
    /// closing record). Any later edit clears it.
    pub closed_wal: Option<(u64, u64)>,
}

impl ManifestState {
    /// Applies an edit; `Err` if it contradicts the state (a corrupt manifest), in which case
    /// the state is left as it was.
    pub fn apply(&mut self, edit: &VersionEdit) -> std::result::Result<(), String> {
        // Checked whole first, so that a bad edit changes nothing (repair keeps the state
        // before a damaged edit).
        let mut deleted = BTreeSet::new();
        for &(level, number) in &edit.deleted {
            match self.tables.get(&number) {
                Some(table) if table.level == level && deleted.insert(number) => {}
                _ => {
                    return Err(format!(
                        "edit deletes table {number} at level {level}, which is not live there"
                    ))
                }
            }
        }
        let mut added = BTreeSet::new();
        for table in &edit.added {
            if table.level as usize >= crate::compaction::NUM_LEVELS {
                return Err(format!(
                    "edit adds table {} at level {}, beyond the last level",
                    table.number, table.level
                ));
            }
            let live = self.tables.contains_key(&table.number) && !deleted.contains(&table.number);
            if live || !added.insert(table.number) {
                return Err(format!("edit adds table {} twice", table.number));
            }
        }
        self.closed_wal = edit.closed_wal;
        if let Some(value) = edit.log_number {
            self.log_number = value;
        }
        if let Some(value) = edit.next_file_number {
            self.next_file_number = value;
        }
        if let Some(value) = edit.last_sequence {
            self.last_sequence = value;
        }
        for number in deleted {
            self.tables.remove(&number);
        }
        for table in &edit.added {
            self.tables.insert(table.number, table.clone());
        }
        Ok(())
    }

    /// An edit that recreates this state from nothing.
    pub fn snapshot(&self) -> VersionEdit {
        VersionEdit {
            log_number: Some(self.log_number),
            next_file_number: Some(self.next_file_number),
            last_sequence: Some(self.last_sequence),
            added: self.tables.values().cloned().collect(),
            deleted: Vec::new(),
            closed_wal: None,
        }
    }
}

/// Reads a manifest file into the state it describes.
pub fn read_manifest(file: &dyn VfsFile) -> Result<ManifestState> {
    read_manifest_with_end(file).map(|(state, _)| state)
}

/// Reads a manifest file into the state it describes, and whether the log ended cleanly
/// (`false`: its last edit was torn, or damaged past all proof; the state may then be older
/// than the database, and recovery must not delete what it does not list).
pub fn read_manifest_with_end(file: &dyn VfsFile) -> Result<(ManifestState, bool)> {
    let prefix = read_manifest_prefix(file)?;
    match prefix.damage {
        Some(damage) if !prefix.torn => Err(damage),
        _ if prefix.edits == 0 => Err(Error::corruption(file.path(), 0, "manifest holds no edit")),
        damage => Ok((prefix.state, damage.is_none())),
    }
}

/// What can be read of a manifest, however damaged: the state its readable edits describe.
#[derive(Debug, Clone, Default)]
pub struct ManifestPrefix {
    /// The state after the edits read (every edit before the first damage).
    pub state: ManifestState,
    /// How many edits were read and applied.
    pub edits: usize,
    /// The tables some edit read deleted: obsolete for good, whatever came later.
    pub deleted: BTreeSet<u64>,
    /// Where and why the read stopped early, if it did.
    pub damage: Option<Error>,
    /// The damage is a torn last edit (nothing valid follows it): what a crash leaves, not
    /// corruption.
    pub torn: bool,
}

/// Reads a manifest as far as it is readable. `Err` only for I/O errors.
pub fn read_manifest_prefix(file: &dyn VfsFile) -> Result<ManifestPrefix> {
    let path = file.path().to_path_buf();
    let (records, end) = wal::read_log(file)?;
    let mut prefix = ManifestPrefix::default();
    for (offset, record) in records {
        let applied = VersionEdit::decode_record(&record).and_then(|(edit, at)| {
            if let Some(at) = at.filter(|&at| at != offset) {
                return Err(format!(
                    "the edit was written at offset {at}: a sector read from, or written to, \
                     the wrong place"
                ));
            }
            prefix.state.apply(&edit)?;
            Ok(edit)
        });
        match applied {
            Ok(edit) => {
                prefix.edits += 1;
                prefix
                    .deleted
                    .extend(edit.deleted.iter().map(|&(_, number)| number));
            }
            Err(reason) => {
                prefix.damage = Some(Error::corruption(&path, offset, reason));
                return Ok(prefix);
            }
        }
    }
    if let LogEnd::Broken { offset, .. } = &end {
        // Every edit is synced before the next is written, so only the last can be torn.
        prefix.torn = WalReader::scan_after(file, *offset)?.is_empty();
        prefix.damage = Some(wal::corruption_at(&path, &end));
    }
    Ok(prefix)
}

/// Appends edits to the live manifest.
#[derive(Debug)]
pub struct ManifestWriter {
    log: WalWriter,
    /// An append failed: what follows it on disk is unknown, so no more appends.
    failed: bool,
}

impl ManifestWriter {
    /// Creates a new manifest file holding `state` as its first record, synced. The caller
    /// then points `CURRENT` at it with [`set_current`].
    pub fn create(vfs: &dyn Vfs, path: &Path, state: &ManifestState) -> Result<ManifestWriter> {
        let file = vfs.create(path)?;
        let mut writer = ManifestWriter {
            log: WalWriter::new(file, 0),
            failed: false,
        };
        writer.append(&state.snapshot())?;
        Ok(writer)
    }

    /// A writer over `file` that writes nothing: the manifest of a read-only database, whose
    /// engine refuses every write before it could reach this.
    pub(crate) fn read_only(file: Box<dyn VfsFile>) -> ManifestWriter {
        ManifestWriter {
            log: WalWriter::new(file, 0),
            failed: false,
        }
    }

    /// Appends one edit and syncs it: when this returns Ok the edit is durable.
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned {
                reason: format!("an earlier append to {} failed", self.log.path().display()),
            });
        }
        let offset = self.log.next_record_start();
        let start = self.log.add_record(&edit.encode_at(offset));
        debug_assert_eq!(start, offset);
        let result = self.log.sync();
        self.failed = result.is_err();
        result
    }
}

/// Points `CURRENT` at `manifest_name`: sync the directory (the manifest's name), write a
/// temp file, sync it, rename it over `CURRENT`, sync the directory.
pub fn set_current(vfs: &dyn Vfs, dir: &Path, manifest_name: &str) -> Result<()> {
    // The manifest's own name must be durable before CURRENT names it.
    vfs.sync_dir(dir)?;
    let temp = dir.join(crate::filenames::CURRENT_TEMP);
    let file = vfs.create(&temp)?;
    file.append(format!("{manifest_name}\n").as_bytes())?;
    file.sync()?;
    drop(file);
    vfs.rename(&temp, &dir.join(crate::filenames::CURRENT))?;
    vfs.sync_dir(dir)?;
    Ok(())
}

/// Reads `CURRENT`: the name of the live manifest.
pub fn read_current(vfs: &dyn Vfs, dir: &Path) -> Result<String> {
    read_current_file(vfs, &dir.join(crate::filenames::CURRENT))
}

/// Reads a file in `CURRENT`'s format (`CURRENT` itself, or a `CURRENT.tmp` being written).
pub fn read_current_file(vfs: &dyn Vfs, path: &Path) -> Result<String> {
    let path = path.to_path_buf();
    let file = vfs.open_read(&path)?;
    let len = file.len()?;
    if len > 256 {
        return Err(Error::corruption(
            &path,
            0,
            format!("CURRENT is {len} bytes; expected a manifest name"),
        ));
    }
    let mut data = vec![0u8; len as usize];
    file.read_exact_at(0, &mut data)?;
    let text = std::str::from_utf8(&data)
        .map_err(|_| Error::corruption(&path, 0, "CURRENT is not UTF-8"))?;
    let Some(name) = text.strip_suffix('\n') else {
        return Err(Error::corruption(
            &path,
            0,
            "CURRENT does not end in a newline (torn write?)",
        ));
    };
    match crate::filenames::parse(name) {
        Some(crate::filenames::FileKind::Manifest(_)) => Ok(name.to_string()),
        _ => Err(Error::corruption(
            &path,
            0,
            format!("CURRENT names {name:?}, which is not a manifest"),
        )),
    }
}

#[cfg(test)]
mod tests;
