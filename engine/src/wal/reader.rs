//! The log's reader: records in order, and how the log ended (clean, or broken at an offset
//! and why), with the scan for valid records after a break that tells a torn tail from
//! corruption.

use super::{
    all_zero, first_non_zero, fragment_crc, BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE,
    PADDING,
};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use strata_vfs::VfsFile;

/// How a read of a log ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// The file ended after a whole record (or in zeros, the preallocated space).
    Clean,
    /// The bytes at `offset` are not a whole, valid record: a torn tail, or corruption.
    Broken {
        /// Where the first bad fragment starts.
        offset: u64,
        /// Why it is bad.
        reason: String,
    },
}

/// Reads the records of a log file in order.
#[derive(Debug)]
pub struct WalReader<'a> {
    file: &'a dyn VfsFile,
    path: PathBuf,
    file_len: u64,
    block: Vec<u8>,
    block_start: u64,
    position: usize,
    end: Option<LogEnd>,
}

impl<'a> WalReader<'a> {
    /// A reader at the start of `file`.
    pub fn new(file: &'a dyn VfsFile) -> Result<WalReader<'a>> {
        let file_len = file.len()?;
        let mut reader = WalReader {
            file,
            path: file.path().to_path_buf(),
            file_len,
            block: Vec::new(),
            block_start: 0,
            position: 0,
            end: None,
        };
        reader.load_block(0)?;
        Ok(reader)
    }

    fn load_block(&mut self, start: u64) -> Result<()> {
        let len = (self.file_len.saturating_sub(start)).min(BLOCK_SIZE as u64) as usize;
        self.block.clear();
        self.file.read_exact_at_vec(start, len, &mut self.block)?;
        self.block_start = start;
        self.position = 0;
        Ok(())
    }

    /// How the read ended, once `next` has returned `None`.
    pub fn end(&self) -> Option<&LogEnd> {
        self.end.as_ref()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next fragment: `Ok(Some((offset, kind, range)))`, `Ok(None)` at a stop.
    fn next_fragment(&mut self) -> Result<Option<(u64, u8, std::ops::Range<usize>)>> {
        loop {
            let left = self.block.len() - self.position;
            if left < HEADER_SIZE {
                let next = self.block_start + BLOCK_SIZE as u64;
                if self.block.len() < BLOCK_SIZE || next >= self.file_len {
                    if left > 0 && !all_zero(&self.block[self.position..]) {
                        self.stop(
                            self.block_start + self.position as u64,
                            "partial header at end of file",
                        );
                    } else {
                        self.end = Some(LogEnd::Clean);
                    }
                    return Ok(None);
                }
                self.load_block(next)?;
                continue;
            }
            let offset = self.block_start + self.position as u64;
            let header = &self.block[self.position..self.position + HEADER_SIZE];
            let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let length = u16::from_le_bytes([header[4], header[5]]) as usize;
            let kind = header[6];
            if kind == 0 && length == 0 && crc == 0 {
                // Zeros: the preallocated or never-written rest of the log, or a lost sector.
                if all_zero(&self.block[self.position..])
                    && self.rest_is_zero_from(self.block_start + self.block.len() as u64)?
                {
                    self.end = Some(LogEnd::Clean);
                } else {
                    self.stop(offset, "zeroed header followed by non-zero bytes");
                }
                return Ok(None);
            }
            if !(FULL..=PADDING).contains(&kind) {
                self.stop(offset, format!("invalid fragment type {kind}"));
                return Ok(None);
            }
            let start = self.position + HEADER_SIZE;
            if start + length > self.block.len() {
                self.stop(
                    offset,
                    format!("fragment length {length} runs past the end of its block or file"),
                );
                return Ok(None);
            }
            let payload = &self.block[start..start + length];
            if fragment_crc(kind, payload) != crc {
                self.stop(offset, "checksum mismatch");
                return Ok(None);
            }
            self.position = start + length;
            return Ok(Some((offset, kind, start..start + length)));
        }
    }

    fn rest_is_zero_from(&self, from: u64) -> Result<bool> {
        let mut buf = Vec::new();
        let mut at = from;
        while at < self.file_len {
            let n = ((self.file_len - at) as usize).min(64 * 1024);
            buf.clear();
            self.file.read_exact_at_vec(at, n, &mut buf)?;
            if !all_zero(&buf) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    fn stop(&mut self, offset: u64, reason: impl Into<String>) {
        self.end = Some(LogEnd::Broken {
            offset,
            reason: reason.into(),
        });
    }

    /// The next whole record and the offset it starts at; `None` at the end or at the
    /// first bad fragment (see [`WalReader::end`]). `Err` only for I/O errors.
    pub fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        if self.end.is_some() {
            return Ok(None);
        }
        let mut record: Vec<u8> = Vec::new();
        let mut record_start: Option<u64> = None;
        loop {
            let Some((offset, kind, range)) = self.next_fragment()? else {
                if let (Some(start), Some(LogEnd::Clean)) = (record_start, &self.end) {
                    self.stop(start, "record is missing its last fragment");
                }
                return Ok(None);
            };
            match (kind, record_start) {
                (PADDING, None) if all_zero(&self.block[range.clone()]) => continue,
                (FULL, None) => return Ok(Some((offset, self.block[range].to_vec()))),
                (FIRST, None) => {
                    record_start = Some(offset);
                    record.extend_from_slice(&self.block[range]);
                }
                (MIDDLE, Some(_)) => record.extend_from_slice(&self.block[range]),
                (LAST, Some(start)) => {
                    record.extend_from_slice(&self.block[range]);
                    return Ok(Some((start, record)));
                }
                (_, start) => {
                    self.stop(
                        start.unwrap_or(offset),
                        format!("fragment of type {kind} out of sequence"),
                    );
                    return Ok(None);
                }
            }
        }
    }

    /// Every valid, whole record that starts after `offset`, found by trying every byte
    /// position (a torn or corrupt region hides where the next record starts). Used to tell
    /// a torn tail (nothing valid after it) from corruption in the middle of a log.
    pub fn scan_after(file: &dyn VfsFile, offset: u64) -> Result<Records> {
        let file_len = file.len()?;
        let mut found = Vec::new();
        if offset + 1 >= file_len {
            return Ok(found);
        }
        let mut data = Vec::new();
        file.read_exact_at_vec(offset + 1, (file_len - offset - 1) as usize, &mut data)?;
        let base = offset + 1;
        let mut at = 0usize;
        let mut pending: Option<(u64, Vec<u8>)> = None;
        while at + HEADER_SIZE <= data.len() {
            if data[at + HEADER_SIZE - 1] == 0 {
                // No fragment has type 0: skip to the next non-zero byte, as a candidate
                // type byte (the preallocated zeros after a torn tail are most of a scan).
                match first_non_zero(&data[at + HEADER_SIZE - 1..]) {
                    Some(skip) if skip > 0 => {
                        at += skip;
                        continue;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            let absolute = base + at as u64;
            let in_block = (absolute % BLOCK_SIZE as u64) as usize;
            let block_left = BLOCK_SIZE - in_block;
            let header = &data[at..at + HEADER_SIZE];
            let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let length = u16::from_le_bytes([header[4], header[5]]) as usize;
            let kind = header[6];
            let fits =
                HEADER_SIZE + length <= block_left && at + HEADER_SIZE + length <= data.len();
            if (FULL..=PADDING).contains(&kind) && fits {
                let payload = &data[at + HEADER_SIZE..at + HEADER_SIZE + length];
                if fragment_crc(kind, payload) == crc {
                    match kind {
                        PADDING => {}
                        FULL => found.push((absolute, payload.to_vec())),
                        FIRST => pending = Some((absolute, payload.to_vec())),
                        MIDDLE => {
                            if let Some((_, record)) = pending.as_mut() {
                                record.extend_from_slice(payload);
                            }
                        }
                        _ => {
                            if let Some((start, mut record)) = pending.take() {
                                record.extend_from_slice(payload);
                                found.push((start, record));
                            }
                        }
                    }
                    at += HEADER_SIZE + length;
                    continue;
                }
            }
            at += 1;
        }
        Ok(found)
    }
}

/// Records with the file offset each starts at.
pub type Records = Vec<(u64, Vec<u8>)>;

/// Whether a log holds any valid record: its first, or one after damage at its start. The
/// WAL chain's rules (`db/replay.rs`) turn on it, and the simulator's damage model asks it
/// the same question.
pub fn holds_records(file: &dyn VfsFile) -> Result<bool> {
    let mut reader = WalReader::new(file)?;
    if reader.next_record()?.is_some() {
        return Ok(true);
    }
    Ok(match reader.end() {
        Some(LogEnd::Broken { offset, .. }) => {
            let offset = *offset;
            drop(reader);
            !WalReader::scan_after(file, offset)?.is_empty()
        }
        _ => false,
    })
}

/// Reads a whole log: its records in order and how it ended. Errors only for I/O.
pub fn read_log(file: &dyn VfsFile) -> Result<(Records, LogEnd)> {
    let mut reader = WalReader::new(file)?;
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    let end = reader.end().cloned().unwrap_or(LogEnd::Clean);
    Ok((records, end))
}

/// Turns a broken end into a corruption error naming the file.
pub fn corruption_at(path: &Path, end: &LogEnd) -> Error {
    match end {
        LogEnd::Clean => Error::corruption(path, 0, "unexpected clean end"),
        LogEnd::Broken { offset, reason } => Error::corruption(path, *offset, reason.clone()),
    }
}
