//! SSTables: immutable sorted files, written by flushes (one per memtable) and by compactions
//! (outputs cut at the target file size).
//!
//! Grammar (see `docs/sstable-format.md`):
//! ```text
//! table     := data_block* filter_block? index_block footer
//! *_block   := contents compression:u8 crc32:u32le  -- CRC-32 (IEEE) of contents + type;
//!                                                 -- contents: the block, or compressed
//!                                                 -- (data blocks, `compression.rs`)
//! index     := block whose entries map the last key of each data block to its handle
//! handle    := offset:varint size:varint   -- size excludes the 4-byte checksum
//! footer    := index_offset:u64le index_size:u64le filter_offset:u64le filter_size:u64le
//!              format_version:u32le footer_crc:u32le magic:u64le        -- 48 bytes
//! ```
//! `footer_crc` covers the 36 bytes before it. `filter_*` locates the table's bloom filter
//! block (`filter.rs`), or is (0, 0) for a table written without one. Every block read is checksummed; a
//! mismatch is a corruption error naming the file and offset, never data.

mod block;
mod builder;
mod compression;
mod decoded;
mod filter;
mod lz4;
mod reader;

pub use block::{Block, BlockBuilder, BlockEntry};
pub use builder::{TableBuilder, TableSummary};
pub use compression::{Compression, STORED_LZ4, STORED_RAW};
pub use decoded::DecodedBlock;
pub use filter::{Filter, FilterBuilder, KeyHash};
pub use reader::{IndexEntry, ReadCounters, SstReader};

/// The table magic number ("STRATA.T" little-endian-ish).
pub const MAGIC: u64 = 0x5441_5254_5341_5453;
/// The format version this code writes: 2, whose entries may carry sequence numbers
/// (`block.rs`). Format 1 tables (no sequence numbers) are still read.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this code reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Bytes in the footer.
pub const FOOTER_SIZE: usize = 48;
/// Bytes after every block in the format this code writes: the compression type and the
/// checksum (format 1: the checksum only).
pub const BLOCK_TRAILER: usize = 5;

/// Bytes after every block of a table of `format_version`.
pub fn block_trailer(format_version: u32) -> usize {
    if format_version >= 2 {
        BLOCK_TRAILER
    } else {
        4
    }
}
