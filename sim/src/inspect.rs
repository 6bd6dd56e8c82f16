//! `strata inspect PATH`: dumps a WAL, an SSTable, a manifest or `CURRENT` in readable form,
//! verifying every checksum and reporting corruption precisely (file, offset, reason).
//! Exit status: 0 when the file is sound (a torn WAL tail is sound: it is what a crash
//! leaves), 1 when it is corrupt.

use crate::cli::CliError;
use std::path::Path;
use std::process::ExitCode;
use strata_engine::filenames::{self, FileKind};
use strata_engine::manifest::{self, VersionEdit};
use strata_engine::sstable::SstReader;
use strata_engine::wal::{LogEnd, WalReader};
use strata_engine::{decode_payload, BatchOp};
use strata_vfs::{RealFs, Vfs};

fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 48;
    let text = match std::str::from_utf8(bytes) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("{text:?}"),
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    };
    if text.len() > LIMIT {
        format!(
            "{}… ({} bytes)",
            &text[..text.char_indices().take(LIMIT).last().map_or(0, |(i, _)| i)],
            bytes.len()
        )
    } else {
        text
    }
}

/// Inspects the file at `path`.
pub fn run(path: &Path, limit: usize) -> Result<ExitCode, crate::cli::CliError> {
    let fs = RealFs::new();
    if !path.exists() {
        return Err(CliError::Usage(format!("{}: no such file", path.display())));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let corrupt = match filenames::parse(name) {
        Some(FileKind::Wal(_)) => inspect_wal(&fs, path, limit)?,
        Some(FileKind::Manifest(_)) => inspect_manifest(&fs, path)?,
        Some(FileKind::Table(_)) => inspect_table(&fs, path, limit)?,
        Some(FileKind::Lock) => {
            crate::outln!("LOCK: empty; locked (flock) while a process has the database open");
            false
        }
        Some(FileKind::Lost) => {
            crate::outln!("lost/: files recovery or repair set aside instead of deleting them");
            false
        }
        Some(FileKind::Current) | Some(FileKind::CurrentTemp) => {
            match manifest::read_current_file(&fs, path) {
                Ok(name) => {
                    crate::outln!("{} -> {name}", path.display());
                    false
                }
                Err(error) => {
                    crate::outln!("CORRUPT: {error}");
                    true
                }
            }
        }
        None => {
            return Err(CliError::Usage(format!(
            "{}: not a Strata file name (NNNNNN.log, NNNNNN.sst, MANIFEST-NNNNNN, CURRENT, LOCK)",
            path.display()
        )))
        }
    };
    Ok(if corrupt {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn inspect_wal(fs: &RealFs, path: &Path, limit: usize) -> Result<bool, String> {
    let file = fs.open_read(path).map_err(|e| e.to_string())?;
    let mut reader = WalReader::new(file.as_ref()).map_err(|e| e.to_string())?;
    let mut records = 0usize;
    while let Some((offset, payload)) = reader.next_record().map_err(|e| e.to_string())? {
        records += 1;
        match decode_payload(&payload) {
            Ok(decoded) if decoded.closing.is_some() => {
                if records <= limit {
                    let successor = match decoded.closing {
                        Some(strata_engine::LogSuccessor::Wal(number)) => {
                            format!("continues in WAL {number:06}.log")
                        }
                        _ => "the database was closed".to_string(),
                    };
                    crate::outln!(
                        "@{offset}: closing record, next seq {} ({successor}; log synced through {})",
                        decoded.sequence, decoded.synced_through
                    );
                }
            }
            Ok(decoded) => {
                if records <= limit {
                    crate::outln!(
                        "@{offset}: batch seq {} ({} ops, log synced through {})",
                        decoded.sequence,
                        decoded.batch.len(),
                        decoded.synced_through
                    );
                    for op in decoded.batch.iter() {
                        match op {
                            BatchOp::Put(key, value) => {
                                crate::outln!("    put {} = {}", show(key), show(value))
                            }
                            BatchOp::Delete(key) => crate::outln!("    delete {}", show(key)),
                        }
                    }
                }
            }
            Err(reason) => {
                crate::outln!(
                    "CORRUPT: {} at offset {offset}: record passes its checksum but {reason}",
                    path.display()
                );
                return Ok(true);
            }
        }
    }
    if records > limit {
        crate::outln!("… {} more records", records - limit);
    }
    let end = reader.end().cloned().unwrap_or(LogEnd::Clean);
    drop(reader);
    match end {
        LogEnd::Clean => {
            crate::outln!("{records} records; ends cleanly");
            Ok(false)
        }
        LogEnd::Broken { offset, reason } => {
            let later = WalReader::scan_after(file.as_ref(), offset).map_err(|e| e.to_string())?;
            let proof = later
                .iter()
                .filter_map(|(at, payload)| {
                    decode_payload(payload)
                        .ok()
                        .map(|d| (*at, d.synced_through))
                })
                .find(|&(_, synced)| synced > offset);
            match proof {
                Some((at, synced)) => {
                    crate::outln!(
                        "CORRUPT: {} at offset {offset}: {reason}; the record at {at} says the log was synced through {synced}",
                        path.display()
                    );
                    Ok(true)
                }
                None => {
                    crate::outln!("{records} records; torn tail at offset {offset} ({reason}): what a crash leaves, recovery stops there");
                    Ok(false)
                }
            }
        }
    }
}

fn inspect_manifest(fs: &RealFs, path: &Path) -> Result<bool, String> {
    let file = fs.open_read(path).map_err(|e| e.to_string())?;
    let (records, end) = strata_engine::wal::read_log(file.as_ref()).map_err(|e| e.to_string())?;
    for (offset, record) in &records {
        match VersionEdit::decode(record) {
            Ok(edit) => {
                crate::outln!(
                    "@{offset}: edit log_number={:?} next_file={:?} last_sequence={:?}",
                    edit.log_number,
                    edit.next_file_number,
                    edit.last_sequence
                );
                for table in &edit.added {
                    crate::outln!(
                        "    + L{} table {} ({} bytes, {} entries, {} .. {})",
                        table.level,
                        table.number,
                        table.file_size,
                        table.entries,
                        show(&table.smallest),
                        show(&table.largest)
                    );
                }
                for (level, number) in &edit.deleted {
                    crate::outln!("    - L{level} table {number}");
                }
            }
            Err(reason) => {
                crate::outln!("CORRUPT: {} at offset {offset}: {reason}", path.display());
                return Ok(true);
            }
        }
    }
    match manifest::read_manifest(file.as_ref()) {
        Ok(state) => {
            if let LogEnd::Broken { offset, reason } = end {
                crate::outln!("torn last edit at offset {offset} ({reason}): ignored by recovery");
            }
            crate::outln!(
                "state: {} live tables, log_number {}, next_file_number {}",
                state.tables.len(),
                state.log_number,
                state.next_file_number
            );
            Ok(false)
        }
        Err(error) => corrupt_or_failure(error),
    }
}

fn inspect_table(fs: &RealFs, path: &Path, limit: usize) -> Result<bool, String> {
    let Some(number) = SstReader::number_of(path) else {
        return Err(format!(
            "{}: an SSTable's checksums cover its file number, which its name gives \
             (NNNNNN.sst); rename it to the number it was written as",
            path.display()
        ));
    };
    let reader = match SstReader::open(fs, path, number, None) {
        Ok(reader) => reader,
        Err(error) => return corrupt_or_failure(error),
    };
    crate::outln!(
        "{}: {} bytes, {} data blocks",
        path.display(),
        reader.file_size(),
        reader.index().len()
    );
    let mut entries = 0usize;
    for i in 0..reader.index().len() {
        let handle = &reader.index().entry(i);
        let block = match reader.read_block(i) {
            Ok(block) => block,
            Err(error) => return corrupt_or_failure(error),
        };
        match block.entries() {
            Ok(list) => {
                if entries < limit {
                    let stored = match reader.block_storage(i) {
                        Ok((strata_engine::sstable::STORED_LZ4, _)) => {
                            format!(", lz4 to {} of {} bytes", handle.size, block.size())
                        }
                        Ok((strata_engine::sstable::STORED_ZSTD, _)) => {
                            format!(", zstd to {} of {} bytes", handle.size, block.size())
                        }
                        Ok(_) => String::new(),
                        Err(error) => return corrupt_or_failure(error),
                    };
                    crate::outln!(
                        "block {i} @{}+{}: {} entries, last {}{stored}",
                        handle.offset,
                        handle.size,
                        list.len(),
                        show(&handle.last_key)
                    );
                }
                for entry in list {
                    entries += 1;
                    if entries <= limit {
                        // A version kept for a snapshot carries its sequence number.
                        let version = match entry.sequence {
                            0 => String::new(),
                            sequence => format!(" @{sequence}"),
                        };
                        match &entry.value {
                            Some(value) => {
                                crate::outln!("    {}{version} = {}", show(&entry.key), show(value))
                            }
                            None => {
                                crate::outln!("    {}{version} = <tombstone>", show(&entry.key))
                            }
                        }
                    }
                }
            }
            Err(reason) => {
                crate::outln!(
                    "CORRUPT: {} at offset {}: {reason}",
                    path.display(),
                    handle.offset
                );
                return Ok(true);
            }
        }
    }
    if entries > limit {
        crate::outln!("… {} more entries", entries - limit);
    }
    crate::outln!("{entries} entries; every checksum verified");
    match reader.filter_bytes() {
        0 => crate::outln!("no bloom filter"),
        bytes => crate::outln!(
            "bloom filter: {bytes} bytes, {:.1} bits per key",
            (bytes * 8) as f64 / entries.max(1) as f64
        ),
    }
    Ok(false)
}

/// An error reading a file: corruption is the verdict (printed, exit 1); anything else (an
/// I/O error) is a failure to inspect, not a property of the file.
fn corrupt_or_failure(error: strata_engine::Error) -> Result<bool, String> {
    if error.is_corruption() {
        crate::outln!("CORRUPT: {error}");
        Ok(true)
    } else {
        Err(format!("cannot inspect: {error}"))
    }
}
