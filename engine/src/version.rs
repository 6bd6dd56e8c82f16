//! Versions: an immutable view of the live SSTables, level by level. A new version is made
//! for every manifest edit and swapped in whole, so a reader that holds an `Arc<Version>`
//! sees one consistent set of tables however the set changes meanwhile.

use crate::error::{Error, Result};
use crate::filenames::table_path;
use crate::key_prefix::{compare_prefixed as compare, KeyPrefix};
use crate::manifest::{ManifestState, TableMeta};
use crate::memtable::Slot;
use crate::sstable::{KeyHash, ReadCounters, SstReader};
use crate::table_cache::TableCaches;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use strata_vfs::Vfs;

/// A live table: what the manifest says of it and an open reader.
#[derive(Debug)]
pub struct Table {
    smallest_prefix: KeyPrefix,
    largest_prefix: KeyPrefix,
    /// The manifest's record.
    pub meta: TableMeta,
    /// The open file.
    pub reader: Arc<SstReader>,
}

impl Table {
    fn new(meta: TableMeta, reader: Arc<SstReader>) -> Table {
        Table {
            smallest_prefix: KeyPrefix::of(&meta.smallest),
            largest_prefix: KeyPrefix::of(&meta.largest),
            meta,
            reader,
        }
    }

    /// Opens the table the manifest names; a missing file is corruption of the database.
    pub fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        meta: &TableMeta,
        caches: &TableCaches,
    ) -> Result<Table> {
        let path = table_path(dir, meta.number);
        let reader =
            SstReader::open_with(vfs, &path, meta.number, caches).map_err(|error| match error {
                Error::Io(io) if io.kind() == ErrorKind::NotFound => {
                    Error::corruption(&path, 0, "table named by the manifest is missing")
                }
                other => other,
            })?;
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
        Ok(Table::new(meta.clone(), Arc::new(reader)))
    }
}

impl Table {
    /// Whether `key` (whose prefix the caller computed once) is within the table's range.
    fn contains_prefixed(&self, key: &[u8], prefix: KeyPrefix) -> bool {
        compare(key, prefix, &self.meta.smallest, self.smallest_prefix) != Ordering::Less
            && compare(key, prefix, &self.meta.largest, self.largest_prefix) != Ordering::Greater
    }
}

/// Candidates whose filters a point read asks in one pass. More exist only with more than
/// about 30 level-0 tables (a `level0_stop_trigger` far above the default 12, or a database
/// written with such options); those spill into a vector and are asked one by one.
const MAX_CANDIDATES: usize = 32;

/// What [`Version::probe`] found: the candidate tables, newest data first, and whether each
/// one's filter lets the key through.
#[derive(Debug)]
pub struct Probe<'v> {
    tables: [Option<&'v Table>; MAX_CANDIDATES],
    may: [bool; MAX_CANDIDATES],
    count: usize,
    spill: Vec<&'v Table>,
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
        caches: &TableCaches,
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
                Some(table) => Arc::new(Table::new(meta.clone(), Arc::clone(&table.reader))),
                None => Arc::new(Table::open(vfs, dir, meta, caches)?),
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

    /// The first half of a point read: finds the tables a read of `key` must consult
    /// (level-0 tables whose range holds it, newest first, then at most one table per deeper
    /// level) and asks every one's bloom filter, in one tight loop with no branch on the
    /// answers. The filters' cache lines are independent loads the CPU fetches in parallel
    /// (and in parallel with whatever the caller asked before, such as the memtable's
    /// filter), where asking table by table waits for each miss in turn.
    pub fn probe<'v>(&'v self, key: &[u8], hash: KeyHash) -> Probe<'v> {
        let prefix = KeyPrefix::of(key);
        let mut probe = Probe {
            tables: [None; MAX_CANDIDATES],
            may: [false; MAX_CANDIDATES],
            count: 0,
            spill: Vec::new(),
        };
        let mut push = |table: &'v Table| {
            if probe.count < MAX_CANDIDATES {
                probe.tables[probe.count] = Some(table);
                probe.count += 1;
            } else {
                probe.spill.push(table);
            }
        };
        for (level, tables) in self.levels.iter().enumerate() {
            if level == 0 {
                for table in tables {
                    if table.contains_prefixed(key, prefix) {
                        push(table);
                    }
                }
            } else if let Some(table) = Self::find_prefixed(tables, key, prefix) {
                push(table);
            }
        }
        for (may, table) in probe.may.iter_mut().zip(probe.tables.iter().flatten()) {
            *may = table.reader.may_contain(hash);
        }
        probe
    }

    /// The second half of a point read: asks, newest first, each candidate whose filter
    /// did not rule the key out; the first table that knows the key answers.
    pub fn finish(
        &self,
        probe: Probe<'_>,
        key: &[u8],
        hash: KeyHash,
        sequence: u64,
        counters: &mut ReadCounters,
    ) -> Result<Option<Slot>> {
        let in_array = probe.tables.iter().flatten().zip(probe.may);
        let spilled = probe
            .spill
            .iter()
            .map(|table| (table, table.reader.may_contain(hash)));
        for (table, may) in in_array.chain(spilled) {
            counters.tables_probed += 1;
            if !may {
                counters.bloom_negatives += 1;
            } else if let Some(slot) = table.reader.get_unfiltered(key, sequence, counters)? {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// The table of a sorted level (1+) whose range holds `key`.
    fn find_in_level<'t>(tables: &'t [Arc<Table>], key: &[u8]) -> Option<&'t Arc<Table>> {
        Self::find_prefixed(tables, key, KeyPrefix::of(key))
    }

    fn find_prefixed<'t>(
        tables: &'t [Arc<Table>],
        key: &[u8],
        prefix: KeyPrefix,
    ) -> Option<&'t Arc<Table>> {
        let i = tables.partition_point(|table| {
            compare(&table.meta.largest, table.largest_prefix, key, prefix) == Ordering::Less
        });
        tables.get(i).filter(|table| {
            compare(key, prefix, &table.meta.smallest, table.smallest_prefix) != Ordering::Less
        })
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

    /// The deepest level holding a table (0 for an empty tree).
    pub fn deepest_level(&self) -> usize {
        self.levels
            .iter()
            .rposition(|tables| !tables.is_empty())
            .unwrap_or(0)
    }

    /// Tables in `level`.
    pub fn level_len(&self, level: usize) -> usize {
        self.levels.get(level).map_or(0, Vec::len)
    }
}
