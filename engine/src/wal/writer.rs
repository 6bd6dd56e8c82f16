//! The log's writer: records framed into fragments, buffered, handed to the file (through
//! the shared mapping between syncs), and synced with the sector padding that the module
//! documentation of `wal` explains.

use super::{BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE, PADDING, SECTOR_SIZE};
use crate::error::Result;
use std::path::Path;
use strata_vfs::VfsFile;

/// Zeros for preallocation: written from here, not from a buffer zeroed for each write.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

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
