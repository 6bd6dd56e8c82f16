//! `SstReader`: opens a table, verifies its footer and index, and serves point reads and
//! block reads. Every block read is checksummed.

use super::block_index::{BlockHandle, BlockIndex};
use super::compression::{self, STORED_RAW};
use super::{
    block_trailer, table_checksum, Block, Filter, KeyHash, FOOTER_IDENTITY_OFFSET, FOOTER_SIZE,
    FORMAT_VERSION, MAGIC, OLDEST_FORMAT_VERSION,
};
use crate::block_cache::BlockCache;
use crate::coding::{get_u32, get_u64, Decoder};
use crate::error::{Error, Result};
use crate::memtable::Slot;
use crate::table_cache::{TableCaches, TableFiles};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_vfs::{Vfs, VfsFile};

/// Where a data block is and the last key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The largest key in the block.
    pub last_key: Vec<u8>,
    /// Block offset in the file.
    pub offset: u64,
    /// Block size, without the checksum.
    pub size: u64,
}

/// How a reader reaches its file.
#[derive(Debug)]
enum TableFile {
    /// Held open for the reader's life (a one-off reader: `verify`, `inspect`).
    Owned(Box<dyn VfsFile>),
    /// Through the database's table cache, which may close it and open it again.
    Cached(Arc<TableFiles>),
}

/// An open SSTable.
#[derive(Debug)]
pub struct SstReader {
    file: TableFile,
    path: PathBuf,
    index: BlockIndex,
    file_size: u64,
    number: u64,
    cache: Option<Arc<BlockCache>>,
    filter: Option<Filter>,
    format_version: u32,
}

/// What point lookups cost, counted by the caller across tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounters {
    /// Tables consulted (their filter, or their index when they have none).
    pub tables_probed: u64,
    /// Tables whose bloom filter ruled the key out.
    pub bloom_negatives: u64,
    /// Data blocks read (from the cache or the file).
    pub data_blocks: u64,
}

impl SstReader {
    /// Opens and verifies the table at `path`. `number` is its file number: it names the
    /// table in the block cache, and format 3 checksums cover it, so the wrong number reads
    /// as corruption ([`SstReader::number_of`] reads it off a table's name).
    pub fn open(
        vfs: &dyn Vfs,
        path: &Path,
        number: u64,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<SstReader> {
        SstReader::open_with(
            vfs,
            path,
            number,
            &TableCaches {
                blocks: cache,
                files: None,
            },
        )
    }

    /// [`SstReader::open`] with a database's caches: its handle goes into the table cache
    /// once the table is verified.
    pub(crate) fn open_with(
        vfs: &dyn Vfs,
        path: &Path,
        number: u64,
        caches: &TableCaches,
    ) -> Result<SstReader> {
        let mut reader = SstReader::open_owned(vfs, path, number, caches.blocks.clone())?;
        if let Some(files) = &caches.files {
            let owned = std::mem::replace(&mut reader.file, TableFile::Cached(Arc::clone(files)));
            if let TableFile::Owned(file) = owned {
                files.insert(number, Arc::from(file));
            }
        }
        Ok(reader)
    }

    fn open_owned(
        vfs: &dyn Vfs,
        path: &Path,
        number: u64,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<SstReader> {
        let file = vfs.open_read(path)?;
        let file_size = file.len()?;
        if file_size < FOOTER_SIZE as u64 {
            return Err(Error::corruption(
                path,
                0,
                format!("file of {file_size} bytes is too short to be an SSTable"),
            ));
        }
        let footer_offset = file_size - FOOTER_SIZE as u64;
        let mut footer = [0u8; FOOTER_SIZE];
        file.read_exact_at(footer_offset, &mut footer)?;
        let bad = |reason: String| Error::corruption(path, footer_offset, reason);
        let magic = get_u64(&footer, 40).unwrap_or(0);
        if magic != MAGIC {
            return Err(bad(format!(
                "bad magic number {magic:#018x}: not an SSTable"
            )));
        }
        let stored_crc = get_u32(&footer, 36).unwrap_or(0);
        // Which checksum to expect depends on the version, which the checksum covers.
        let version = get_u32(&footer, 32).unwrap_or(0);
        if version > FORMAT_VERSION {
            // A later format, whose checksum rule this build cannot know (or a damaged one).
            return Err(bad(format!(
                "unsupported format version {version} (this build reads \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}), or a damaged footer"
            )));
        }
        if table_checksum(version, number, FOOTER_IDENTITY_OFFSET, &footer[..36]) != stored_crc {
            return Err(bad(if version >= 3 {
                format!("footer checksum mismatch (for table number {number})")
            } else {
                "footer checksum mismatch".into()
            }));
        }
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(bad(format!(
                "unsupported format version {version} (this build reads \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})"
            )));
        }
        let index_offset = get_u64(&footer, 0).unwrap_or(0);
        let index_size = get_u64(&footer, 8).unwrap_or(0);
        let filter_offset = get_u64(&footer, 16).unwrap_or(0);
        let filter_size = get_u64(&footer, 24).unwrap_or(0);
        let trailer = block_trailer(version) as u64;
        let mut reader = SstReader {
            file: TableFile::Owned(file),
            path: path.to_path_buf(),
            index: BlockIndex::default(),
            file_size,
            number,
            cache,
            filter: None,
            format_version: version,
        };
        if index_offset
            .saturating_add(index_size)
            .saturating_add(trailer)
            > footer_offset
        {
            return Err(bad(format!(
                "index block {index_offset}+{index_size} runs past the footer"
            )));
        }
        if filter_size > 0 {
            let (raw, stored) = reader.read_raw_at(filter_offset, filter_size, index_offset)?;
            if stored != STORED_RAW {
                return Err(Error::corruption(
                    path,
                    filter_offset,
                    format!("filter block stored with compression type {stored}"),
                ));
            }
            let filter = Filter::parse(raw).map_err(|reason| {
                Error::corruption(path, filter_offset, format!("filter block: {reason}"))
            })?;
            reader.filter = Some(filter);
        }
        let index_block = reader.read_block_at(index_offset, index_size, footer_offset)?;
        let entries = index_block.entries().map_err(|reason| {
            Error::corruption(path, index_offset, format!("index block: {reason}"))
        })?;
        let key_bytes = entries.iter().map(|entry| entry.key.len()).sum();
        reader.index = BlockIndex::with_capacity(entries.len(), key_bytes);
        for entry in entries {
            let Some(handle) = entry.value else {
                return Err(Error::corruption(
                    path,
                    index_offset,
                    "index entry without a block handle",
                ));
            };
            let mut decoder = Decoder::new(&handle);
            let (Some(offset), Some(size)) = (decoder.varint(), decoder.varint()) else {
                return Err(Error::corruption(
                    path,
                    index_offset,
                    "malformed block handle",
                ));
            };
            if offset.saturating_add(size).saturating_add(trailer) > index_offset {
                return Err(Error::corruption(
                    path,
                    index_offset,
                    format!("block handle {offset}+{size} overlaps the index"),
                ));
            }
            reader
                .index
                .push(&entry.key, BlockHandle { offset, size })
                .map_err(|reason| Error::corruption(path, index_offset, reason))?;
        }
        if reader.index.is_empty() {
            return Err(Error::corruption(
                path,
                index_offset,
                "table has no data blocks",
            ));
        }
        Ok(reader)
    }

    /// Reads, verifies and parses the block at `offset`. Its stored bytes go through a
    /// per-thread buffer that the next read reuses, so a block read from the file allocates
    /// only the block it returns (no buffer per read, zeroed, decompressed from and freed).
    fn read_block_at(&self, offset: u64, size: u64, limit: u64) -> Result<Block> {
        let total = self.checked_extent(offset, size, limit)?;
        self.with_file(|file| self.read_block_through_buffer(file, offset, size, total))
    }

    /// [`SstReader::read_block_at`]'s read, verification and parse, `total` bytes at `offset`.
    fn read_block_through_buffer(
        &self,
        file: &dyn VfsFile,
        offset: u64,
        size: u64,
        total: usize,
    ) -> Result<Block> {
        /// Above this a buffer is not kept for the next read: a block of one huge value
        /// must not pin its size in every reading thread.
        const KEPT_BUFFER_BYTES: usize = 256 << 10;
        thread_local! {
            static STORED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // Taken out for the read and put back after, not borrowed across it: under the
        // simulator's scheduler the read is a switch point, and other tasks on this thread
        // read too (they find the slot empty and use a buffer of their own).
        let mut stored = STORED.take();
        if stored.len() < total {
            stored.resize(total, 0);
        }
        let result = file
            .read_exact_at(offset, &mut stored[..total])
            .map_err(Error::from)
            .and_then(|()| self.verify(offset, &stored[..total]))
            .and_then(|kind| {
                compression::load(&stored[..size as usize], kind)
                    .and_then(|data| Block::parse(data, self.format_version))
                    .map_err(|reason| Error::corruption(&self.path, offset, reason))
            });
        if stored.capacity() <= KEPT_BUFFER_BYTES {
            STORED.set(stored);
        }
        result
    }

    /// Calls `use_file` with the table's file: the one it holds, or the table cache's handle
    /// (opened again, footer read and all, if the cache had closed it).
    fn with_file<T>(&self, use_file: impl FnOnce(&dyn VfsFile) -> Result<T>) -> Result<T> {
        match &self.file {
            TableFile::Owned(file) => use_file(file.as_ref()),
            TableFile::Cached(files) => use_file(files.file(self.number, &self.path)?.as_ref()),
        }
    }

    /// The bytes a block of `size` at `offset` takes with its trailer, refused if they run
    /// past `limit` or the file: never past the file, whatever limit an (untrusted) handle
    /// implies, so nothing is allocated by a length the file cannot hold (found by fuzzing
    /// the footer).
    fn checked_extent(&self, offset: u64, size: u64, limit: u64) -> Result<usize> {
        let trailer = block_trailer(self.format_version);
        let limit = limit.min(self.file_size);
        if offset.saturating_add(size).saturating_add(trailer as u64) > limit {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!("block {offset}+{size} runs past {limit}"),
            ));
        }
        Ok(size as usize + trailer)
    }

    /// Verifies the checksum that ends `data` (a block and its trailer, as read at
    /// `offset`) and returns the block's compression type (format 1: always raw).
    fn verify(&self, offset: u64, data: &[u8]) -> Result<u8> {
        let trailer = block_trailer(self.format_version);
        let checked = data.len() - 4;
        let stored_crc = get_u32(data, checked).unwrap_or(0);
        if table_checksum(self.format_version, self.number, offset, &data[..checked]) != stored_crc
        {
            return Err(Error::corruption(
                &self.path,
                offset,
                "block checksum mismatch",
            ));
        }
        Ok(if trailer > 4 {
            data[data.len() - trailer]
        } else {
            STORED_RAW
        })
    }

    /// Reads `size` bytes at `offset` and verifies the checksum that follows them; returns
    /// them with their compression type (format 1: always raw).
    fn read_raw_at(&self, offset: u64, size: u64, limit: u64) -> Result<(Vec<u8>, u8)> {
        let total = self.checked_extent(offset, size, limit)?;
        let mut data = Vec::new();
        self.with_file(|file| Ok(file.read_exact_at_vec(offset, total, &mut data)?))?;
        let stored = self.verify(offset, &data)?;
        data.truncate(size as usize);
        Ok((data, stored))
    }

    /// How data block `i` is stored: its compression type and its bytes on disk (for
    /// `strata inspect`).
    pub fn block_storage(&self, i: usize) -> Result<(u8, u64)> {
        let entry = self.index.handle(i);
        let (_, stored) = self.read_raw_at(entry.offset, entry.size, self.file_size)?;
        Ok((stored, entry.size))
    }

    /// The table's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file size.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The data blocks' index.
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    /// Reads and verifies data block `i` (through the block cache, if any).
    pub fn read_block(&self, i: usize) -> Result<Arc<Block>> {
        self.read_block_filling(i, true)
    }

    /// [`SstReader::read_block`] that takes a cached block but, on a miss, does not cache
    /// the one it read (`fill_cache` false): a compaction reads each of its inputs once,
    /// and those become garbage when it ends, so caching them would only evict the blocks
    /// readers use, and grow the process by the whole cache during a load (RocksDB's
    /// compactions do not fill the cache either).
    pub fn read_block_filling(&self, i: usize, fill_cache: bool) -> Result<Arc<Block>> {
        let entry = self.index.handle(i);
        if let Some(cache) = &self.cache {
            if let Some(block) = cache.get(self.number, entry.offset) {
                return Ok(block);
            }
        }
        let block = Arc::new(self.read_block_at(entry.offset, entry.size, self.file_size)?);
        if let Some(cache) = self.cache.as_ref().filter(|_| fill_cache) {
            cache.insert(self.number, entry.offset, Arc::clone(&block));
        }
        Ok(block)
    }

    /// The first block that may hold keys `>= key` (`index().len()` if none).
    pub fn seek_block(&self, key: &[u8]) -> usize {
        self.index.seek(key)
    }

    /// Bytes of the table's bloom filter bits (0 without a filter).
    pub fn filter_bytes(&self) -> usize {
        self.filter.as_ref().map_or(0, Filter::byte_len)
    }

    /// False if the table's bloom filter rules the key out (true without a filter).
    pub fn may_contain(&self, hash: KeyHash) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.may_contain(hash))
    }

    /// The file number a table's name gives (`NNNNNN.sst`), which its checksums cover.
    pub fn number_of(path: &Path) -> Option<u64> {
        match crate::filenames::parse(path.file_name()?.to_str()?)? {
            crate::filenames::FileKind::Table(number) => Some(number),
            _ => None,
        }
    }

    /// The table's format version.
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// Point lookup of the newest version of `key` at or below `sequence`: `None` if the
    /// table has none.
    pub fn get(
        &self,
        key: &[u8],
        sequence: u64,
        counters: &mut ReadCounters,
    ) -> Result<Option<Slot>> {
        counters.tables_probed += 1;
        if !self.may_contain(KeyHash::of(key)) {
            counters.bloom_negatives += 1;
            return Ok(None);
        }
        self.get_unfiltered(key, sequence, counters)
    }

    /// Point lookup that skips the filter (the caller consulted it).
    pub fn get_unfiltered(
        &self,
        key: &[u8],
        sequence: u64,
        counters: &mut ReadCounters,
    ) -> Result<Option<Slot>> {
        let i = self.seek_block(key);
        if i == self.index.len() {
            return Ok(None);
        }
        counters.data_blocks += 1;
        let block = self.read_block(i)?;
        let offset = self.index.handle(i).offset;
        block
            .get(key, sequence)
            .map_err(|reason| Error::corruption(&self.path, offset, reason))
    }
}
