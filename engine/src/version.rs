//! Versions: an immutable view of the live SSTables, level by level. A new version is made
//! for every manifest edit and swapped in whole, so a reader that holds an `Arc<Version>`
//! sees one consistent set of tables however the set changes meanwhile.

use crate::block_cache::BlockCache;
use crate::error::{Error, Result};
use crate::filenames::table_path;
use crate::manifest::{ManifestState, TableMeta};
use crate::memtable::Slot;
use crate::sstable::{KeyHash, ReadCounters, SstReader};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use strata_vfs::Vfs;

/// A live table: what the manifest says of it and an open reader.
#[derive(Debug)]
pub struct Table {
    /// The manifest's record.
    pub meta: TableMeta,
    /// The open file.
    pub reader: Arc<SstReader>,
}

impl Table {
    /// Opens the table the manifest names; a missing file is corruption of the database.
    pub fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        meta: &TableMeta,
        cache: Option<&Arc<BlockCache>>,
    ) -> Result<Table> {
        let path = table_path(dir, meta.number);
        let reader =
            SstReader::open(vfs, &path, meta.number, cache.cloned()).map_err(
                |error| match error {
                    Error::Io(io) if io.kind() == ErrorKind::NotFound => {
                        Error::corruption(&path, 0, "table named by the manifest is missing")
                    }
                    other => other,
                },
            )?;
        if reader.file_size() != meta.file_size {
            return Err(Error::corruption(
                &path,
                0,
                format!(
                    "table is {} bytes; the manifest recorded {}",
                    reader.file_size(),
                    meta.file_size
                ),
            ));
        }
        Ok(Table {
            meta: meta.clone(),
            reader: Arc::new(reader),
        })
    }
}

impl Table {
    /// Whether `key` is within the table's key range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.meta.smallest.as_slice() && key <= self.meta.largest.as_slice()
    }
}

/// The live tables. Level 0 is ordered newest first and its tables may overlap.
#[derive(Debug, Default)]
pub struct Version {
    levels: Vec<Vec<Arc<Table>>>,
}

impl Version {
    /// Opens every table `state` names, reusing already-open ones from `previous`.
    pub fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        state: &ManifestState,
        previous: Option<&Version>,
        cache: Option<&Arc<BlockCache>>,
    ) -> Result<Version> {
        let mut open: BTreeMap<u64, Arc<Table>> = BTreeMap::new();
        if let Some(previous) = previous {
            for table in previous.levels.iter().flatten() {
                open.insert(table.meta.number, Arc::clone(table));
            }
        }
        let mut levels: Vec<Vec<Arc<Table>>> = Vec::new();
        for meta in state.tables.values() {
            let table = match open.get(&meta.number) {
                Some(table) if table.meta == *meta => Arc::clone(table),
                // Moved to another level: same file, new record.
                Some(table) => Arc::new(Table {
                    meta: meta.clone(),
                    reader: Arc::clone(&table.reader),
                }),
                None => Arc::new(Table::open(vfs, dir, meta, cache)?),
            };
            let level = meta.level as usize;
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(table);
        }
        if let Some(level0) = levels.first_mut() {
            level0.sort_by_key(|table| std::cmp::Reverse(table.meta.number));
        }
        levels.resize_with(levels.len().max(1), Vec::new);
        for level in levels.iter_mut().skip(1) {
            level.sort_by(|a, b| a.meta.smallest.cmp(&b.meta.smallest));
        }
        Ok(Version { levels })
    }

    /// The levels, level 0 first.
    pub fn levels(&self) -> &[Vec<Arc<Table>>] {
        &self.levels
    }

    /// Every table, in the order a read must consult them (newest data first).
    pub fn tables_in_read_order(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.levels.iter().flatten()
    }

    /// Number of live tables.
    pub fn table_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Point lookup through the levels; the first table that knows the key answers. Level-0
    /// tables whose range holds the key are asked newest first, then at most one table per
    /// deeper level; each asks its bloom filter (the key's hash is computed once) before its
    /// index.
    pub fn get(&self, key: &[u8], counters: &mut ReadCounters) -> Result<Option<Slot>> {
        let hash = KeyHash::of(key);
        for (level, tables) in self.levels.iter().enumerate() {
            let candidates: &mut dyn Iterator<Item = &Arc<Table>> = if level == 0 {
                &mut tables.iter().filter(|table| table.contains(key))
            } else {
                &mut Self::find_in_level(tables, key).into_iter()
            };
            for table in candidates {
                counters.tables_probed += 1;
                if !table.reader.may_contain(hash) {
                    counters.bloom_negatives += 1;
                    continue;
                }
                if let Some(slot) = table.reader.get_unfiltered(key, counters)? {
                    return Ok(Some(slot));
                }
            }
        }
        Ok(None)
    }

    /// The table of a sorted level (1+) whose range holds `key`.
    fn find_in_level<'t>(tables: &'t [Arc<Table>], key: &[u8]) -> Option<&'t Arc<Table>> {
        let i = tables.partition_point(|table| table.meta.largest.as_slice() < key);
        tables.get(i).filter(|table| table.contains(key))
    }

    /// Whether any table in a level below `level` may hold `key` (compaction keeps a
    /// tombstone only while older data may exist beneath it).
    pub fn may_exist_below(&self, level: usize, key: &[u8]) -> bool {
        self.levels
            .iter()
            .skip(level + 1)
            .any(|tables| Self::find_in_level(tables, key).is_some())
    }

    /// Tables of `level` whose ranges overlap `[smallest, largest]`.
    pub fn overlapping(&self, level: usize, smallest: &[u8], largest: &[u8]) -> Vec<Arc<Table>> {
        self.levels
            .get(level)
            .map(|tables| {
                tables
                    .iter()
                    .filter(|t| {
                        t.meta.largest.as_slice() >= smallest
                            && t.meta.smallest.as_slice() <= largest
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes of the tables in `level`.
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map_or(0, |tables| tables.iter().map(|t| t.meta.file_size).sum())
    }

    /// Tables in `level`.
    pub fn level_len(&self, level: usize) -> usize {
        self.levels.get(level).map_or(0, Vec::len)
    }
}
