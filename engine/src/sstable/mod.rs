//! SSTables: immutable sorted files, written by flushes (one per memtable) and by compactions
//! (outputs cut at the target file size).
//!
//! Grammar (see `docs/sstable-format.md`):
//! ```text
//! table     := data_block* filter_block? index_block footer
//! *_block   := contents compression:u8 crc32:u32le  -- CRC-32 (IEEE) of identity ++
//!                                                 -- contents + type; contents: the block,
//!                                                 -- or compressed (data blocks,
//!                                                 -- `compression.rs`)
//! identity  := table_number:u64le block_offset:u64le   -- format 3; format 2: empty;
//!                                                     -- the footer's offset: u64::MAX
//! index     := block whose entries map the last key of each data block to its handle
//! handle    := offset:varint size:varint   -- size excludes the 4-byte checksum
//! footer    := index_offset:u64le index_size:u64le filter_offset:u64le filter_size:u64le
//!              format_version:u32le footer_crc:u32le magic:u64le        -- 48 bytes
//! ```
//! `footer_crc` covers the table's number (format 3) and the 36 bytes before it. The number
//! in every checksum binds the bytes to their file and place: a block or footer that a
//! misdirected write put in another table, or at another offset, fails its checksum
//! (RocksDB's "context checksums" do the same; before format 3 such bytes were read as
//! data). `filter_*` locates the table's bloom filter
//! block (`filter.rs`), or is (0, 0) for a table written without one. Every block read is checksummed; a
//! mismatch is a corruption error naming the file and offset, never data.

mod block;
mod block_index;
mod builder;
mod compression;
mod decoded;
mod filter;
mod lz4;
mod reader;

pub use block::{Block, BlockBuilder, BlockEntry};
pub use block_index::{BlockHandle, BlockIndex};
pub use builder::{TableBuilder, TableSummary};
pub use compression::{
    zstd_levels, Compression, MAX_EXPANSION, STORED_LZ4, STORED_RAW, STORED_ZSTD,
};
pub use decoded::DecodedBlock;
pub use filter::{Filter, FilterBuilder, KeyHash};
pub use reader::{IndexEntry, ReadCounters, SstReader};

/// The table magic number ("STRATA.T" little-endian-ish).
pub const MAGIC: u64 = 0x5441_5254_5341_5453;
/// The format version this code writes: 3, whose checksums cover the table's number and
/// each block's offset; format 2 added sequence numbers to entries (`block.rs`). Formats 1
/// and 2 are still read.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this code reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Bytes in the footer.
pub const FOOTER_SIZE: usize = 48;
/// Bytes after every block in the format this code writes: the compression type and the
/// checksum (format 1: the checksum only).
pub const BLOCK_TRAILER: usize = 5;

/// Where a footer's checksum says it is: no block starts there, so a footer is never a
/// valid block, nor a block a valid footer.
pub const FOOTER_IDENTITY_OFFSET: u64 = u64::MAX;

/// The checksum of a block at `offset` (or, at [`FOOTER_IDENTITY_OFFSET`] with `bytes` the
/// footer's first 36 bytes, of a footer) of table `number`, in `format_version`.
pub fn table_checksum(format_version: u32, number: u64, offset: u64, bytes: &[u8]) -> u32 {
    if format_version < 3 {
        return crc32fast::hash(bytes);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&number.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.update(bytes);
    hasher.finalize()
}

/// Bytes after every block of a table of `format_version`.
pub fn block_trailer(format_version: u32) -> usize {
    if format_version >= 2 {
        BLOCK_TRAILER
    } else {
        4
    }
}
