//! `TableBuilder`: writes an SSTable in one sequential pass.

use super::compression::{self, Compression, STORED_RAW};
use super::{
    table_checksum, BlockBuilder, FilterBuilder, BLOCK_TRAILER, FOOTER_IDENTITY_OFFSET,
    FORMAT_VERSION, MAGIC,
};
use crate::coding::{put_u32, put_u64, put_varint};
use crate::error::Result;
use strata_vfs::VfsFile;

/// Buffered output is handed to the file in chunks of this size.
const WRITE_CHUNK: usize = 256 * 1024;

/// What a finished table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// File size in bytes.
    pub file_size: u64,
    /// Number of entries (values and tombstones).
    pub entries: u64,
    /// Smallest key.
    pub smallest: Vec<u8>,
    /// Largest key.
    pub largest: Vec<u8>,
    /// The largest sequence number an entry carries (0: none carries one).
    pub largest_sequence: u64,
}

/// Writes sorted entries into a new table file.
#[derive(Debug)]
pub struct TableBuilder {
    file: Box<dyn VfsFile>,
    /// The table's file number, which every checksum covers (format 3).
    number: u64,
    block_size: usize,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    out: Vec<u8>,
    offset: u64,
    entries: u64,
    smallest: Vec<u8>,
    handle_scratch: Vec<u8>,
    filter: FilterBuilder,
    bits_per_key: usize,
    largest_sequence: u64,
    compression: Compression,
}

impl TableBuilder {
    /// A builder writing to `file` (new and empty) with data blocks of about `block_size`,
    /// stored as `compression` says, and a bloom filter of `bits_per_key` (0: no filter).
    pub fn new(
        file: Box<dyn VfsFile>,
        number: u64,
        block_size: usize,
        bits_per_key: usize,
        compression: Compression,
    ) -> TableBuilder {
        TableBuilder {
            file,
            number,
            block_size,
            data_block: BlockBuilder::new(),
            index_block: BlockBuilder::new(),
            // Grown as blocks come, not sized for a whole chunk up front: most tables
            // (all of the simulator's) are a few KiB, and a fresh 320 KiB buffer per table
            // cost page faults on memory the allocator had returned to the OS.
            out: Vec::new(),
            offset: 0,
            entries: 0,
            smallest: Vec::new(),
            handle_scratch: Vec::new(),
            filter: FilterBuilder::new(),
            bits_per_key,
            largest_sequence: 0,
            compression,
        }
    }

    /// Adds an entry: version `sequence` of `key` (0: visible to every reader). Keys must
    /// increase across the whole table, and a key's versions go newest first.
    pub fn add(&mut self, key: &[u8], sequence: u64, value: Option<&[u8]>) -> Result<()> {
        // The block builder keeps its last key across blocks.
        let same_key = self.entries > 0 && self.data_block.last_key() == key;
        if self.entries == 0 {
            self.smallest = key.to_vec();
        }
        // A full block is cut before the next key, never between two versions of one key:
        // a point read then finds every version of its key in one block.
        if !same_key && self.data_block.estimated_size() >= self.block_size {
            self.finish_data_block()?;
        }
        self.data_block.add(key, sequence, value);
        if self.bits_per_key > 0 && !same_key {
            self.filter.add(key);
        }
        self.largest_sequence = self.largest_sequence.max(sequence);
        self.entries += 1;
        Ok(())
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes the table would take if finished now (approximately).
    pub fn estimated_size(&self) -> u64 {
        self.offset + self.out.len() as u64 + self.data_block.estimated_size() as u64
    }

    fn write_block(&mut self, block: BlockKind) -> (u64, u64) {
        let start = self.out.len();
        let stored = match block {
            BlockKind::Data => compression::store(
                self.data_block.finish_in_place(),
                self.compression,
                &mut self.out,
            ),
            BlockKind::Index => {
                self.index_block.finish_into(&mut self.out);
                STORED_RAW
            }
            BlockKind::Filter => {
                self.filter.finish_into(self.bits_per_key, &mut self.out);
                STORED_RAW
            }
        };
        self.out.push(stored);
        let offset = self.offset + start as u64;
        let crc = table_checksum(FORMAT_VERSION, self.number, offset, &self.out[start..]);
        put_u32(&mut self.out, crc);
        let size = (self.out.len() - start - BLOCK_TRAILER) as u64;
        (offset, size)
    }

    fn finish_data_block(&mut self) -> Result<()> {
        if self.data_block.is_empty() {
            return Ok(());
        }
        let last_key = self.data_block.last_key().to_vec();
        let (offset, size) = self.write_block(BlockKind::Data);
        self.handle_scratch.clear();
        put_varint(&mut self.handle_scratch, offset);
        put_varint(&mut self.handle_scratch, size);
        self.index_block
            .add(&last_key, 0, Some(&self.handle_scratch));
        if self.out.len() >= WRITE_CHUNK {
            self.file.append(&self.out)?;
            self.offset += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes the index and footer and syncs the file. The caller makes the file's name
    /// durable (`sync_dir`) before any manifest names it.
    pub fn finish(mut self) -> Result<TableSummary> {
        assert!(self.entries > 0, "an SSTable holds at least one entry");
        let largest = self.data_block.last_key().to_vec();
        let largest = if self.data_block.is_empty() {
            self.last_index_key()
        } else {
            largest
        };
        self.finish_data_block()?;
        let (filter_offset, filter_size) = if self.bits_per_key > 0 {
            self.write_block(BlockKind::Filter)
        } else {
            (0, 0)
        };
        let (index_offset, index_size) = self.write_block(BlockKind::Index);
        let footer_start = self.out.len();
        put_u64(&mut self.out, index_offset);
        put_u64(&mut self.out, index_size);
        put_u64(&mut self.out, filter_offset);
        put_u64(&mut self.out, filter_size);
        put_u32(&mut self.out, FORMAT_VERSION);
        let crc = table_checksum(
            FORMAT_VERSION,
            self.number,
            FOOTER_IDENTITY_OFFSET,
            &self.out[footer_start..],
        );
        put_u32(&mut self.out, crc);
        put_u64(&mut self.out, MAGIC);
        self.file.append(&self.out)?;
        self.offset += self.out.len() as u64;
        self.file.sync()?;
        Ok(TableSummary {
            file_size: self.offset,
            entries: self.entries,
            smallest: self.smallest,
            largest,
            largest_sequence: self.largest_sequence,
        })
    }

    fn last_index_key(&self) -> Vec<u8> {
        self.index_block.last_key().to_vec()
    }
}

enum BlockKind {
    Data,
    Index,
    Filter,
}
