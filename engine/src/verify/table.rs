//! Reading a whole table to check it, block by block: the footer, the filter and the index
//! (through [`SstReader::open`], which checksums and decodes them), then every data block
//! (checksum, decoding, keys strictly increasing within and across blocks, each block's
//! last key equal to its index entry), the filter against every key it should hold, and,
//! when the manifest's record of the table is known, the size, entry count and key range it
//! recorded.
//!
//! A damaged data block does not end the scan: the blocks after it are still read, so that
//! every problem is reported and `repair` can salvage the entries of the readable blocks.
//! Damage to the footer or the index ends it (nothing says where the blocks are).

use super::{Problem, Severity};
use crate::error::{Error, Result};
use crate::manifest::TableMeta;
use crate::sstable::{BlockEntry, IndexEntry, KeyHash, SstReader};
use std::io::ErrorKind;
use std::path::Path;
use strata_vfs::Vfs;

/// What a scan of one table found.
#[derive(Debug, Default)]
pub(crate) struct TableScan {
    /// Every problem, in file order.
    pub(crate) problems: Vec<Problem>,
    /// The file's size (0 if it could not be opened).
    pub(crate) file_size: u64,
    /// Data blocks the index lists (0 if the index could not be read).
    pub(crate) blocks: usize,
    /// Data blocks that failed their checksum, did not decode or held keys out of order.
    pub(crate) bad_blocks: usize,
    /// Entries in the readable blocks.
    pub(crate) entries: u64,
    /// The smallest and largest key of the readable blocks.
    pub(crate) smallest: Option<Vec<u8>>,
    pub(crate) largest: Option<Vec<u8>>,
    /// The entries of the readable blocks, in order, when the caller asked for them.
    pub(crate) readable: Vec<BlockEntry>,
    /// The largest sequence number an entry of a readable block carries.
    pub(crate) largest_sequence: u64,
}

impl TableScan {
    /// Whether the table read completely and matched what the manifest recorded.
    pub(crate) fn is_intact(&self) -> bool {
        !self
            .problems
            .iter()
            .any(|problem| problem.severity == Severity::Corruption)
    }

    /// The manifest's record of the table as it actually is (`None` if no block read).
    pub(crate) fn meta(&self, number: u64, level: u32) -> Option<TableMeta> {
        Some(TableMeta {
            number,
            level,
            file_size: self.file_size,
            entries: self.entries,
            smallest: self.smallest.clone()?,
            largest: self.largest.clone()?,
        })
    }

    fn corruption(&mut self, path: &Path, offset: Option<u64>, reason: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Corruption,
            file: path.to_path_buf(),
            offset,
            reason: reason.into(),
        });
    }
}

/// Scans the table at `path`; `expected` is the manifest's record of it, if any. With
/// `collect`, the entries of the readable blocks are kept (for salvage). `Err` only for
/// I/O errors other than a missing file.
pub(crate) fn scan_table(
    vfs: &dyn Vfs,
    path: &Path,
    expected: Option<&TableMeta>,
    collect: bool,
) -> Result<TableScan> {
    let mut scan = TableScan::default();
    let size = match vfs.open_read(path).and_then(|file| file.len()) {
        Ok(size) => size,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            scan.corruption(path, None, "table named by the manifest is missing");
            return Ok(scan);
        }
        Err(error) => return Err(Error::Io(error)),
    };
    scan.file_size = size;
    if let Some(meta) = expected {
        if meta.file_size != size {
            scan.corruption(
                path,
                Some(size.min(meta.file_size)),
                format!(
                    "table is {size} bytes; the manifest recorded {}",
                    meta.file_size
                ),
            );
        }
    }
    // Format 3 checksums cover the table's number: the manifest's, or its name's.
    let Some(number) = expected
        .map(|meta| meta.number)
        .or_else(|| SstReader::number_of(path))
    else {
        scan.corruption(
            path,
            None,
            "the file's name (not NNNNNN.sst) gives no table number, which its checksums cover",
        );
        return Ok(scan);
    };
    let reader = match SstReader::open(vfs, path, number, None) {
        Ok(reader) => reader,
        Err(error) => {
            push_error(&mut scan.problems, error)?;
            return Ok(scan);
        }
    };
    scan.blocks = reader.index().len();
    let mut previous: Option<Vec<u8>> = None;
    let mut filter_reported = false;
    for i in 0..reader.index().len() {
        let handle = &reader.index().entry(i);
        let at = Some(handle.offset);
        let entries = match reader.read_block(i) {
            Ok(block) => block
                .entries()
                .map_err(|reason| format!("data block: {reason}")),
            Err(Error::Corruption { reason, .. }) => Err(format!("data block: {reason}")),
            Err(other) => return Err(other),
        };
        let checked = entries.and_then(|entries| {
            check_order(&entries, previous.as_deref(), handle)?;
            Ok(entries)
        });
        let entries = match checked {
            Ok(entries) => entries,
            Err(reason) => {
                scan.bad_blocks += 1;
                scan.corruption(path, at, reason);
                previous = Some(handle.last_key.clone());
                continue;
            }
        };
        for entry in &entries {
            if !filter_reported && !reader.may_contain(KeyHash::of(&entry.key)) {
                filter_reported = true;
                scan.corruption(
                    path,
                    at,
                    format!(
                        "the bloom filter rules out key {:?}, which this block holds: the \
                         filter is damaged and reads of such keys would miss them",
                        String::from_utf8_lossy(&entry.key)
                    ),
                );
            }
            if let Some(meta) = expected {
                if entry.key < meta.smallest || entry.key > meta.largest {
                    scan.corruption(
                        path,
                        at,
                        format!(
                            "key {:?} lies outside the range the manifest recorded",
                            String::from_utf8_lossy(&entry.key)
                        ),
                    );
                    break;
                }
            }
        }
        scan.entries += entries.len() as u64;
        scan.largest_sequence = entries
            .iter()
            .map(|entry| entry.sequence)
            .fold(scan.largest_sequence, u64::max);
        if scan.smallest.is_none() {
            scan.smallest = entries.first().map(|entry| entry.key.clone());
        }
        scan.largest = entries.last().map(|entry| entry.key.clone());
        previous = Some(handle.last_key.clone());
        if collect {
            scan.readable.extend(entries);
        }
    }
    if let (Some(meta), 0) = (expected, scan.bad_blocks) {
        let recorded = (meta.entries, Some(&meta.smallest), Some(&meta.largest));
        if recorded != (scan.entries, scan.smallest.as_ref(), scan.largest.as_ref()) {
            scan.corruption(
                path,
                None,
                format!(
                    "the table holds {} entries; the manifest recorded {} (or its key range \
                     differs from the recorded one)",
                    scan.entries, meta.entries
                ),
            );
        }
    }
    Ok(scan)
}

/// The block's entries if their keys increase, after `previous` (the last key of the block
/// before), with a key's versions newest first (decreasing sequences, 0 last) and all in this
/// block, and end in the key the index names.
fn check_order(
    entries: &[BlockEntry],
    previous: Option<&[u8]>,
    handle: &IndexEntry,
) -> std::result::Result<(), String> {
    if let (Some(previous), Some(first)) = (previous, entries.first()) {
        if first.key.as_slice() <= previous {
            return Err(format!(
                "key {:?} is not after the last key of the block before: keys out of order",
                String::from_utf8_lossy(&first.key)
            ));
        }
    }
    for pair in entries.windows(2) {
        let (before, entry) = (&pair[0], &pair[1]);
        let in_order =
            entry.key > before.key || (entry.key == before.key && entry.sequence < before.sequence);
        if !in_order {
            return Err(format!(
                "key {:?} (sequence {}) is not after the entry before it: keys or versions \
                 out of order",
                String::from_utf8_lossy(&entry.key),
                entry.sequence
            ));
        }
    }
    match entries.last() {
        None => Err("data block holds no entry".into()),
        Some(entry) if entry.key != handle.last_key => Err(format!(
            "the block's last key {:?} is not the {:?} its index entry names",
            String::from_utf8_lossy(&entry.key),
            String::from_utf8_lossy(&handle.last_key)
        )),
        Some(_) => Ok(()),
    }
}

/// Records a corruption error as a problem; any other error is returned.
pub(crate) fn push_error(problems: &mut Vec<Problem>, error: Error) -> Result<()> {
    match error {
        Error::Corruption {
            file,
            offset,
            reason,
        } => {
            problems.push(Problem {
                severity: Severity::Corruption,
                file,
                offset: Some(offset),
                reason,
            });
            Ok(())
        }
        Error::Io(io) if io.kind() == ErrorKind::NotFound => {
            problems.push(Problem {
                severity: Severity::Corruption,
                file: io.path.clone(),
                offset: None,
                reason: "file is missing".into(),
            });
            Ok(())
        }
        other => Err(other),
    }
}
