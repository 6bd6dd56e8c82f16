//! The record log: the write-ahead log's format, also used for the manifest.
//!
//! Grammar (see `docs/wal-format.md`):
//! ```text
//! file      := block*                      -- every block is BLOCK_SIZE bytes but the last
//! block     := fragment* trailer?
//! fragment  := crc32:u32le length:u16le type:u8 payload[length]
//! trailer   := 0x00{1..6}                  -- a block never starts a header it cannot finish
//! type      := 1 FULL | 2 FIRST | 3 MIDDLE | 4 LAST   (0 is never written: zeros end the log)
//!            | 5 PADDING                   -- payload all zeros, between records, skipped
//! crc32     := CRC-32 (IEEE, crc32fast) of type byte ++ payload
//! record    := FULL | FIRST MIDDLE* LAST
//! ```
//! A fragment never crosses a block boundary, so a reader can resynchronise at any block.
//! A crash leaves a torn, zeroed or garbage tail; the reader stops cleanly at the last
//! whole record and reports where and why it stopped. Whether the bytes after that point
//! hold valid records (which would make the stop *corruption*, not a torn tail) is the
//! caller's question: [`WalReader::scan_after`] finds them.
//!
//! **No reliance on powersafe overwrite.** A `sync` ends the synced bytes at a sector
//! boundary ([`SECTOR_SIZE`]): a `PADDING` fragment fills the rest of the sector (the block
//! trailer does, at a block's end), so the next record starts in a sector no synced byte
//! shares. A drive may tear the sector a write is in, old bytes and all (no "powersafe
//! overwrite", SQLite's name; `strata explore --fs-profile posix-strict` found the synced
//! records of a log's last sector destroyed by a torn later append). The price is up to a
//! sector of log per sync, and nothing without syncs. SQLite pads its WAL frames the same
//! way when it cannot assume powersafe overwrite.
//!
//! The writer buffers records in memory and hands them to the file on `flush` or `sync`;
//! with `preallocate` it extends the file with zeros ahead of the data, so that an
//! `fdatasync` of an overwrite does not also have to persist a new file size, and stores the
//! records into that allocated space with `VfsFile::write_mapped` (on the real disk a copy
//! into a shared memory mapping: the records reach the page cache, and so survive a process
//! kill, without a `write(2)` per commit group).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use strata_vfs::VfsFile;

/// The block size of the format.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// Bytes in a fragment header.
pub const HEADER_SIZE: usize = 7;

/// Zeros for preallocation: written from here, not from a buffer zeroed for each write.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;
const PADDING: u8 = 5;

/// The unit a drive may tear, which a sync ends the log on. 4 KiB: the physical sector of
/// current drives (512-byte drives are covered too) and a divisor of [`BLOCK_SIZE`].
pub const SECTOR_SIZE: u64 = 4096;
const _: () = assert!((BLOCK_SIZE as u64).is_multiple_of(SECTOR_SIZE));

/// Whether every byte is zero: a log's end is found by such scans of up to a block at a
/// time, so they are done 64 bytes at a time (an OR the compiler vectorises), not byte by
/// byte with an exit test each.
fn all_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .all(|chunk| chunk.iter().fold(0u8, |acc, &byte| acc | byte) == 0)
}

/// The index of the first non-zero byte, found 64 bytes at a time.
fn first_non_zero(bytes: &[u8]) -> Option<usize> {
    let mut offset = 0;
    for chunk in bytes.chunks(64) {
        if chunk.iter().fold(0u8, |acc, &byte| acc | byte) != 0 {
            return chunk
                .iter()
                .position(|&byte| byte != 0)
                .map(|index| offset + index);
        }
        offset += chunk.len();
    }
    None
}

fn fragment_crc(kind: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends records to a log file.
#[derive(Debug)]
pub struct WalWriter {
    file: Box<dyn VfsFile>,
    /// Encoded bytes not yet handed to the file.
    buffer: Vec<u8>,
    /// File offset at which `buffer` starts.
    buffer_offset: u64,
    /// The logical end of the log (file offset after the last record).
    end: u64,
    /// Everything before this offset has been made durable by a successful sync.
    synced_through: u64,
    /// The file is known to be this long (zeros past `end`).
    file_len: u64,
    /// Extend the file by this many bytes of zeros at a time (0: never preallocate).
    preallocate: u64,
    /// Pad the log to a sector boundary at each sync (see the module documentation).
    pad_syncs: bool,
}

impl WalWriter {
    /// A writer for a new, empty file.
    pub fn new(file: Box<dyn VfsFile>, preallocate: u64) -> WalWriter {
        WalWriter {
            file,
            // Grown as records come: a log that is rotated after a few KiB (as the
            // simulator's are) never allocates more.
            buffer: Vec::new(),
            buffer_offset: 0,
            end: 0,
            synced_through: 0,
            file_len: 0,
            preallocate,
            pad_syncs: true,
        }
    }

    /// With `false`, a sync does not pad the log to a sector boundary: for disks with
    /// powersafe overwrite (`Options::powersafe_overwrite`).
    pub fn pad_syncs(mut self, pad: bool) -> WalWriter {
        self.pad_syncs = pad;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The logical end of the log: where the next record starts.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Everything before this offset is durable.
    pub fn synced_through(&self) -> u64 {
        self.synced_through
    }

    /// Where the next record will start: `end()`, or the next block if this one has no room
    /// left for a header (what [`WalWriter::add_record`] will return).
    pub fn next_record_start(&self) -> u64 {
        let left = BLOCK_SIZE as u64 - self.end % BLOCK_SIZE as u64;
        if left < HEADER_SIZE as u64 {
            self.end + left
        } else {
            self.end
        }
    }

    /// Bytes encoded but not yet handed to the file.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Encodes one record into the buffer (no I/O); returns the offset it starts at, which
    /// is past `end()` when the block had no room left for a header (its trailer is padded).
    pub fn add_record(&mut self, payload: &[u8]) -> u64 {
        self.add_record_parts(&[payload])
    }

    /// [`WalWriter::add_record`] of the concatenation of `parts` (a batch's header and its
    /// operations), copied once, straight into the buffer.
    pub fn add_record_parts(&mut self, parts: &[&[u8]]) -> u64 {
        let mut rest: usize = parts.iter().map(|part| part.len()).sum();
        // The next byte to copy: `parts[part][within]`.
        let (mut part, mut within) = (0, 0);
        let mut first = true;
        let mut start = self.end;
        loop {
            let in_block = (self.end % BLOCK_SIZE as u64) as usize;
            let left = BLOCK_SIZE - in_block;
            if left < HEADER_SIZE {
                self.buffer.extend(std::iter::repeat_n(0u8, left));
                self.end += left as u64;
                if first {
                    start = self.end;
                }
                continue;
            }
            let room = left - HEADER_SIZE;
            let take = rest.min(room);
            let last = take == rest;
            let kind = match (first, last) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, false) => MIDDLE,
                (false, true) => LAST,
            };
            let header_at = self.buffer.len();
            self.buffer.extend_from_slice(&[0; 4]);
            self.buffer.extend_from_slice(&(take as u16).to_le_bytes());
            self.buffer.push(kind);
            let mut needed = take;
            while needed > 0 {
                let piece = &parts[part][within..];
                let n = piece.len().min(needed);
                self.buffer.extend_from_slice(&piece[..n]);
                needed -= n;
                within += n;
                if within == parts[part].len() {
                    part += 1;
                    within = 0;
                }
            }
            // The checksum covers the type byte and the payload, which follow each other.
            let crc = crc32fast::hash(&self.buffer[header_at + 6..]);
            self.buffer[header_at..header_at + 4].copy_from_slice(&crc.to_le_bytes());
            self.end += (HEADER_SIZE + take) as u64;
            rest -= take;
            first = false;
            if last {
                break;
            }
        }
        start
    }

    /// Moves the end of the log to the next sector boundary: a block trailer if the block
    /// ends first, otherwise a `PADDING` fragment (through the sector after, if fewer than a
    /// header's bytes are left in this one).
    fn pad_to_sector(&mut self) {
        let in_sector = self.end % SECTOR_SIZE;
        if in_sector == 0 {
            return;
        }
        let left_in_block = BLOCK_SIZE - (self.end % BLOCK_SIZE as u64) as usize;
        if left_in_block < HEADER_SIZE {
            self.buffer.extend(std::iter::repeat_n(0u8, left_in_block));
            self.end += left_in_block as u64;
            return;
        }
        let mut padding = (SECTOR_SIZE - in_sector) as usize;
        if padding < HEADER_SIZE {
            padding += SECTOR_SIZE as usize;
        }
        assert!(
            padding <= left_in_block,
            "a sector boundary lies within the block"
        );
        let zeros = padding - HEADER_SIZE;
        let header_at = self.buffer.len();
        self.buffer.extend_from_slice(&[0; 4]);
        self.buffer.extend_from_slice(&(zeros as u16).to_le_bytes());
        self.buffer.push(PADDING);
        self.buffer.extend(std::iter::repeat_n(0u8, zeros));
        let crc = crc32fast::hash(&self.buffer[header_at + 6..]);
        self.buffer[header_at..header_at + 4].copy_from_slice(&crc.to_le_bytes());
        self.end += padding as u64;
        debug_assert_eq!(self.end % SECTOR_SIZE, 0);
    }

    /// Hands the buffered bytes to the file (no fsync).
    pub fn flush(&mut self) -> Result<()> {
        self.hand_over(true)
    }

    /// Hands the buffered bytes to the file: into preallocated space with `mapped` a store
    /// through `write_mapped` (no syscall on the real disk), otherwise a `write_at`.
    ///
    /// A flush that a sync follows uses `write_at`: the fsync is a syscall anyway, and on
    /// ext4 a store into a mapped page that the last fsync cleaned faults into the
    /// filesystem, which made every synced write cost about three times as much (measured
    /// with `strata bench --sync`: 3.7k against 10.8k fillrandom/s).
    fn hand_over(&mut self, mapped: bool) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.preallocate > 0 {
            if self.end > self.file_len {
                // Zeros over all of the new space, the part the records are about to fill
                // included: a mapped store must land in allocated blocks.
                let target = self.end.div_ceil(self.preallocate) * self.preallocate;
                let len = (target - self.file_len) as usize;
                match ZEROS.get(..len) {
                    Some(zeros) => self.file.write_at(self.file_len, zeros)?,
                    None => self.file.write_at(self.file_len, &vec![0u8; len])?,
                }
                self.file_len = target;
            }
            if mapped {
                // Into preallocated space: a copy into a shared mapping, no syscall (`RealFs`).
                self.file.write_mapped(self.buffer_offset, &self.buffer)?;
            } else {
                self.file.write_at(self.buffer_offset, &self.buffer)?;
            }
        } else {
            self.file.write_at(self.buffer_offset, &self.buffer)?;
        }
        self.file_len = self.file_len.max(self.end);
        self.buffer_offset = self.end;
        self.buffer.clear();
        Ok(())
    }

    /// Flushes and fsyncs: every record added so far is durable when this returns Ok. The
    /// log is padded to a sector boundary first (see the module documentation).
    pub fn sync(&mut self) -> Result<()> {
        if self.pad_syncs && self.end > self.synced_through {
            self.pad_to_sector();
        }
        self.hand_over(false)?;
        self.file.sync()?;
        self.synced_through = self.end;
        Ok(())
    }
}

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

#[cfg(test)]
mod tests;
