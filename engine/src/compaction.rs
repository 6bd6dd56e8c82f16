//! Leveled compaction: the picker and the merge. See `docs/compaction.md`.
//!
//! Level 0 holds flushed tables, which may overlap; levels 1 and below are sorted runs of
//! non-overlapping tables, each level `level_size_ratio` times larger than the one above.
//! A compaction merges some tables of level `n` with the tables of level `n + 1` they
//! overlap, keeps only the newest version of each key, drops a tombstone when no older data
//! can exist below the output level, and writes the result to level `n + 1`, cut into
//! tables of about `target_file_size`. The caller installs the result with one manifest
//! edit and deletes the inputs only after that edit is durable.
//!
//! An output table is also cut early once the tables of level `n + 2` (the *grandparents*)
//! that its key range has passed exceed [`GRANDPARENT_OVERLAP_FACTOR`] times the target
//! size, as LevelDB's `kMaxGrandParentOverlapBytes` does: a level-`n + 1` table is later
//! merged with every level-`n + 2` table it overlaps, so bounding that overlap bounds the
//! bytes a future compaction rewrites for it. The cut depends only on the keys and the
//! grandparents' recorded sizes, so it is deterministic.
//!
//! A *trivial move* skips the merge: inputs that overlap nothing in level `n + 1` nor each
//! other (one table, or the disjoint level-0 tables of a sequential load) are moved there by
//! the manifest edit alone. It is refused when the merge would do work
//! the move cannot:
//! - a table over [`TRIVIAL_MOVE_SIZE_FACTOR`] times `target_file_size` (and of more than
//!   one entry) is rewritten, which splits it into tables of about the target size;
//! - a table whose range overlaps more than the grandparent limit of level `n + 2` is
//!   rewritten, so that the grandparent cut applies to it (LevelDB's `IsTrivialMove`);
//! - a compaction the owner asked for ([`whole_level`], behind `Db::compact_all`) always
//!   merges, as LevelDB's manual compactions do, so that tombstones with nothing beneath
//!   them are dropped. Neither the manifest's `TableMeta` nor the table's footer counts a
//!   table's tombstones, so the picker cannot tell which tables hold any; an automatic
//!   trivial move may therefore carry tombstones down, and only a later merge of that key
//!   range drops them. `compact_all` merges every level above the deepest into it, but a
//!   table already in the deepest level is merged only if a table above overlaps it, so
//!   tombstones moved there automatically can outlive it. Counting them would need a
//!   format change.

use crate::error::Result;
use crate::iterator::{Bounds, Direction, Merger, Source, TableSource, Value};
use crate::manifest::TableMeta;
use crate::options::Options;
use crate::retention::Retention;
use crate::sstable::TableBuilder;
use crate::version::{Table, Version};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use strata_vfs::Vfs;

/// Levels, including level 0.
pub const NUM_LEVELS: usize = 7;

/// A table larger than this many times `target_file_size` is never moved whole. Compaction
/// cuts its outputs once they reach the target, so they exceed it only by their last entry,
/// filter and index; tables above twice the target come from flushes of memtables larger
/// than that, from a single huge entry, or from a database written with a larger target.
/// Splitting them bounds the bytes one table drags into each later compaction, while
/// tables between one and two targets stay cheap to move (rewriting one costs its whole
/// size in writes to save less than one target of overlap).
pub const TRIVIAL_MOVE_SIZE_FACTOR: u64 = 2;

/// An output table of a compaction into level `n + 1` is cut once the level-`n + 2` tables
/// its keys have passed hold more than this many times `target_file_size` (LevelDB's
/// factor). Each output then overlaps at most that much plus one grandparent table.
pub const GRANDPARENT_OVERLAP_FACTOR: u64 = 10;

/// A compaction: the picker's choice, or a manual one (`whole_level`).
#[derive(Debug)]
pub struct Compaction {
    /// The level the inputs come from.
    pub level: usize,
    /// Tables of `level` (level 0: newest first).
    pub inputs: Vec<Arc<Table>>,
    /// Tables of `level + 1` that overlap them.
    pub overlapping: Vec<Arc<Table>>,
    /// Tables of `level + 2` that the whole compaction's key range overlaps, in key order.
    pub grandparents: Vec<Arc<Table>>,
    /// Whether the owner asked for it (a full compaction) rather than the picker: such a
    /// compaction always merges.
    pub manual: bool,
}

impl Compaction {
    /// The level the outputs go to.
    pub fn output_level(&self) -> usize {
        self.level + 1
    }

    /// Whether the inputs move down without being rewritten: tables with nothing to merge
    /// with (no overlap in the output level, nor with each other: a level-0 compaction takes
    /// every level-0 table, and those of a sequential load are disjoint), in a compaction the
    /// picker chose, none too large to move whole, not overlapping too much of the level
    /// below the output level.
    pub fn is_trivial_move(&self, options: &Options) -> bool {
        if self.inputs.is_empty() {
            return false;
        }
        let too_large = self.inputs.iter().any(|table| {
            table.meta.entries > 1
                && table.meta.file_size
                    > options
                        .target_file_size
                        .saturating_mul(TRIVIAL_MOVE_SIZE_FACTOR)
        });
        let grandparent_bytes: u64 = self.grandparents.iter().map(|t| t.meta.file_size).sum();
        !self.manual
            && self.overlapping.is_empty()
            && !too_large
            && inputs_are_disjoint(&self.inputs)
            && grandparent_bytes <= grandparent_limit(options)
    }

    /// Bytes the compaction reads.
    pub fn input_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .chain(&self.overlapping)
            .map(|t| t.meta.file_size)
            .sum()
    }
}

/// Bytes of grandparents one output table may pass before it is cut.
fn grandparent_limit(options: &Options) -> u64 {
    options
        .target_file_size
        .saturating_mul(GRANDPARENT_OVERLAP_FACTOR)
}

/// The byte budget of `level` (1+).
pub fn max_bytes_for_level(options: &Options, level: usize) -> u64 {
    assert!(level >= 1, "level 0 is bounded by table count, not bytes");
    let mut bytes = options.level_base_bytes;
    for _ in 1..level {
        bytes = bytes.saturating_mul(options.level_size_ratio);
    }
    bytes
}

/// How urgently each level needs compaction (>= 1.0: it does), and the most urgent level.
pub fn most_urgent(version: &Version, options: &Options) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for level in 0..NUM_LEVELS - 1 {
        let score = if level == 0 {
            version.level_len(0) as f64 / options.level0_compaction_trigger as f64
        } else {
            version.level_bytes(level) as f64 / max_bytes_for_level(options, level) as f64
        };
        if score >= 1.0 && best.is_none_or(|(_, b)| score > b) {
            best = Some((level, score));
        }
    }
    best
}

/// Picks the next compaction, if any level needs one. `pointers[level]` is the largest key
/// of the last table compacted out of that level, so a level's tables take turns.
pub fn pick(version: &Version, options: &Options, pointers: &[Vec<u8>]) -> Option<Compaction> {
    let (level, _) = most_urgent(version, options)?;
    let inputs: Vec<Arc<Table>> = if level == 0 {
        version.levels()[0].to_vec()
    } else {
        let tables = &version.levels()[level];
        let pointer = pointers.get(level).map(Vec::as_slice).unwrap_or(&[]);
        let chosen = tables
            .iter()
            .find(|table| pointer.is_empty() || table.meta.smallest.as_slice() > pointer)
            .or_else(|| tables.first())?;
        vec![Arc::clone(chosen)]
    };
    with_overlapping(version, level, inputs, false)
}

/// Whether no two of `tables` share a key: in key order, each ends before the next begins
/// (two versions of one key in two tables would share it).
fn inputs_are_disjoint(tables: &[Arc<Table>]) -> bool {
    let mut ranges: Vec<(&[u8], &[u8])> = tables
        .iter()
        .map(|table| {
            (
                table.meta.smallest.as_slice(),
                table.meta.largest.as_slice(),
            )
        })
        .collect();
    ranges.sort_unstable();
    ranges.windows(2).all(|pair| pair[0].1 < pair[1].0)
}

/// A compaction of `inputs` (tables of `level`) and the tables of `level + 1` they overlap.
fn with_overlapping(
    version: &Version,
    level: usize,
    inputs: Vec<Arc<Table>>,
    manual: bool,
) -> Option<Compaction> {
    let (smallest, largest) = key_range(&inputs)?;
    let overlapping = version.overlapping(level + 1, &smallest, &largest);
    // The outputs span the inputs and the tables they overlap, which may reach further.
    let spanned: Vec<Arc<Table>> = inputs.iter().chain(&overlapping).cloned().collect();
    let (smallest, largest) = key_range(&spanned)?;
    let grandparents = version.overlapping(level + 2, &smallest, &largest);
    Some(Compaction {
        level,
        inputs,
        overlapping,
        grandparents,
        manual,
    })
}

/// The smallest and largest keys of `tables` (`None` if there are none).
fn key_range(tables: &[Arc<Table>]) -> Option<(Vec<u8>, Vec<u8>)> {
    let smallest = tables.iter().map(|t| t.meta.smallest.as_slice()).min()?;
    let largest = tables.iter().map(|t| t.meta.largest.as_slice()).max()?;
    Some((smallest.to_vec(), largest.to_vec()))
}

/// A compaction of every table of `level` into `level + 1` (for full compactions): a manual
/// one, which always merges.
pub fn whole_level(version: &Version, level: usize) -> Option<Compaction> {
    let inputs: Vec<Arc<Table>> = version.levels().get(level)?.to_vec();
    with_overlapping(version, level, inputs, true)
}

/// What a compaction wrote.
#[derive(Debug, Default)]
pub struct CompactionOutput {
    /// The new tables (at the output level).
    pub tables: Vec<TableMeta>,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Entries dropped (shadowed versions and obsolete tombstones).
    pub entries_dropped: u64,
}

/// Merges the compaction's inputs into new tables at the output level. Every table is
/// synced and the directory too; nothing is installed or deleted here.
pub fn run(
    compaction: &Compaction,
    version: &Version,
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    retention: &Retention,
    mut allocate_number: impl FnMut() -> u64,
) -> Result<CompactionOutput> {
    let everything = Bounds {
        lower: Bound::Unbounded,
        upper: Bound::Unbounded,
    };
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for table in compaction.inputs.iter().chain(&compaction.overlapping) {
        sources.push(Box::new(TableSource::for_compaction(
            Arc::clone(table),
            everything.clone(),
            Direction::Forward,
        )));
    }
    let mut merger = Merger::new(sources, Direction::Forward);
    let output_level = compaction.output_level();
    let bits_per_key = options.bloom_bits_for_level(output_level, version.deepest_level());
    let mut output = CompactionOutput {
        bytes_read: compaction.input_bytes(),
        ..CompactionOutput::default()
    };
    let input_entries: u64 = compaction
        .inputs
        .iter()
        .chain(&compaction.overlapping)
        .map(|t| t.meta.entries)
        .sum();
    let mut current: Option<(u64, TableBuilder)> = None;
    let mut grandparents =
        GrandparentCut::new(&compaction.grandparents, grandparent_limit(options));
    let mut written_entries = 0u64;
    let mut versions = Vec::new();
    let mut key = Vec::new();
    // Key by key, all of a key's versions at once: an output table is never cut between
    // two versions of one key (tables of a level must not share a key).
    while merger.next_key(&mut key, |_, sequence, value| {
        versions.push((sequence, value))
    })? {
        retention.retain(&mut versions, || {
            !version.may_exist_below(output_level, &key)
        });
        if versions.is_empty() {
            continue;
        }
        if grandparents.cut_before(&key, current.is_some()) {
            let (number, builder) = current.take().expect("a table is open");
            output.tables.push(finish(number, builder, output_level)?);
        }
        if current.is_none() {
            if output.tables.len() == 1 {
                options
                    .marks
                    .reach(crate::marks::Mark::CompactionSplitOutput);
            }
            let number = allocate_number();
            let file = vfs.create(&crate::filenames::table_path(dir, number))?;
            current = Some((
                number,
                TableBuilder::new(
                    file,
                    number,
                    options.block_size,
                    bits_per_key,
                    options.compression_for_level(output_level),
                ),
            ));
        }
        let (_, builder) = current.as_mut().expect("a table is open");
        for (sequence, value) in versions.drain(..) {
            builder.add(&key, sequence, value.as_ref().map(Value::as_bytes))?;
            written_entries += 1;
        }
        if builder.estimated_size() >= options.target_file_size {
            let (number, builder) = current.take().expect("a table is open");
            output.tables.push(finish(number, builder, output_level)?);
        }
    }
    if let Some((number, builder)) = current.take() {
        output.tables.push(finish(number, builder, output_level)?);
    }
    if !output.tables.is_empty() {
        vfs.sync_dir(dir)?;
    }
    output.bytes_written = output.tables.iter().map(|t| t.file_size).sum();
    output.entries_dropped = input_entries.saturating_sub(written_entries);
    Ok(output)
}

/// Tracks, key by key, the grandparent tables the open output table has passed.
struct GrandparentCut<'c> {
    /// Level `n + 2` tables in key order.
    tables: &'c [Arc<Table>],
    /// The first of `tables` whose largest key is not below the last key seen.
    next: usize,
    /// Bytes of the tables passed since the open output table began.
    passed_bytes: u64,
    limit: u64,
}

impl<'c> GrandparentCut<'c> {
    fn new(tables: &'c [Arc<Table>], limit: u64) -> GrandparentCut<'c> {
        GrandparentCut {
            tables,
            next: 0,
            passed_bytes: 0,
            limit,
        }
    }

    /// Called with every key written, in increasing order, before it is added; `table_open`
    /// says whether an output table holds keys already. Returns whether that table must end
    /// before `key`. A grandparent counts once every one of its keys lies behind the table's
    /// newest key, so a table [first, last] overlaps at most the passed bytes (never over
    /// the limit when `last` was added) plus the one grandparent whose range holds `last`.
    fn cut_before(&mut self, key: &[u8], table_open: bool) -> bool {
        if !table_open {
            self.passed_bytes = 0;
        }
        while let Some(table) = self.tables.get(self.next) {
            if table.meta.largest.as_slice() >= key {
                break;
            }
            if table_open {
                self.passed_bytes += table.meta.file_size;
            }
            self.next += 1;
        }
        if table_open && self.passed_bytes > self.limit {
            self.passed_bytes = 0;
            return true;
        }
        false
    }
}

fn finish(number: u64, builder: TableBuilder, level: usize) -> Result<TableMeta> {
    let summary = builder.finish()?;
    Ok(TableMeta {
        number,
        level: level as u32,
        file_size: summary.file_size,
        entries: summary.entries,
        smallest: summary.smallest,
        largest: summary.largest,
    })
}
