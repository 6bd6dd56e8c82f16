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

mod reader;
mod writer;

pub use reader::{corruption_at, holds_records, read_log, LogEnd, Records, WalReader};
pub use writer::WalWriter;

/// The block size of the format.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// Bytes in a fragment header.
pub const HEADER_SIZE: usize = 7;

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

#[cfg(test)]
mod tests;
