//! Range scans: a merge of every source (memtable, immutable memtables, tables) in key
//! order, forward or in reverse, read at a sequence number.
//!
//! Sources are ordered newest first, and for one key every version in a newer source is
//! newer than every version in an older one (the LSM invariant: a flush or compaction moves
//! a key's versions down together). Within a source a key's versions come newest first
//! (forward) or oldest first (reverse). So the merge never compares sequence numbers across
//! sources: the version a reader at sequence `s` sees is the first version at or below `s`
//! in the newest source that has one.
//!
//! Sources own what they read (`Arc`s), so an iterator stays valid while the database
//! changes: it reads the view that was current when it was made, at the sequence that was
//! visible then, so a batch is in it whole or not at all.
//!
//! A table's entries are handed out as indexes into the block they were decoded from
//! ([`DecodedBlock`], shared): a value is copied only where it leaves (a scan's answer, a
//! compaction's output table), not for every version the merge looks at.

mod entry;
mod merger;

pub use entry::{Entry, Value};
pub use merger::Merger;

use crate::error::Result;
use crate::memtable::{Memtable, Slot};
use crate::sstable::DecodedBlock;
use crate::version::Table;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

/// One sorted stream of entries within the bounds it was made with.
pub trait Source: Send {
    /// The next entry, in the source's direction.
    fn next_entry(&mut self) -> Result<Option<Entry>>;
}

/// Which way a scan goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Increasing keys.
    Forward,
    /// Decreasing keys.
    Reverse,
}

/// A key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// The lower bound.
    pub lower: Bound<Vec<u8>>,
    /// The upper bound.
    pub upper: Bound<Vec<u8>>,
}

impl Bounds {
    /// Whether `key` is above the lower bound.
    pub fn above_lower(&self, key: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(lower) => key >= lower.as_slice(),
            Bound::Excluded(lower) => key > lower.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// Whether `key` is below the upper bound.
    pub fn below_upper(&self, key: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(upper) => key <= upper.as_slice(),
            Bound::Excluded(upper) => key < upper.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// The bounds narrowed to keys at or above `key`.
    fn at_or_after(&self, key: &[u8]) -> Bounds {
        let lower = if self.above_lower(key) {
            Bound::Included(key.to_vec())
        } else {
            self.lower.clone()
        };
        Bounds {
            lower,
            upper: self.upper.clone(),
        }
    }

    /// The bounds narrowed to keys at or below `key`.
    fn at_or_before(&self, key: &[u8]) -> Bounds {
        let upper = if self.below_upper(key) {
            Bound::Included(key.to_vec())
        } else {
            self.upper.clone()
        };
        Bounds {
            lower: self.lower.clone(),
            upper,
        }
    }
}

fn as_ref_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// What a reader sees of a memtable at its sequence, fetched a chunk at a time. Entries
/// come out with sequence 0: each is the version visible to the reader.
pub struct MemtableSource {
    memtable: Arc<Memtable>,
    bounds: Bounds,
    direction: Direction,
    sequence: u64,
    buffer: VecDeque<(Vec<u8>, Slot)>,
    scratch: Vec<(Vec<u8>, Slot)>,
    done: bool,
}

const MEMTABLE_CHUNK: usize = 256;

impl MemtableSource {
    /// Entries of `memtable` within `bounds`, as a reader at `sequence` sees them.
    pub fn new(
        memtable: Arc<Memtable>,
        bounds: Bounds,
        direction: Direction,
        sequence: u64,
    ) -> Self {
        MemtableSource {
            memtable,
            bounds,
            direction,
            sequence,
            buffer: VecDeque::new(),
            scratch: Vec::new(),
            done: false,
        }
    }
}

impl Source for MemtableSource {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        while self.buffer.is_empty() && !self.done {
            self.scratch.clear();
            let last = self.memtable.collect_range(
                as_ref_bound(&self.bounds.lower),
                as_ref_bound(&self.bounds.upper),
                self.direction == Direction::Reverse,
                MEMTABLE_CHUNK,
                self.sequence,
                &mut self.scratch,
            );
            match last {
                // Resume past the last key examined (visible or not).
                Some(last) => match self.direction {
                    Direction::Forward => self.bounds.lower = Bound::Excluded(last),
                    Direction::Reverse => self.bounds.upper = Bound::Excluded(last),
                },
                None => self.done = true,
            }
            self.buffer.extend(self.scratch.drain(..));
        }
        Ok(self
            .buffer
            .pop_front()
            .map(|(key, slot)| Entry::new(key, 0, slot)))
    }
}

/// Entries of one table within bounds, a block at a time.
pub struct TableSource {
    table: Arc<Table>,
    bounds: Bounds,
    direction: Direction,
    /// The next block to read: counts up (forward) or down (reverse; `None`: none left).
    next_block: Option<usize>,
    /// The block being read, and its entries not yet looked at: `pending.0..pending.1`,
    /// taken from the front (forward) or the back (reverse).
    block: Option<Arc<DecodedBlock>>,
    pending: (usize, usize),
    done: bool,
    /// Whether blocks read from the file go into the block cache (not for a compaction).
    fill_cache: bool,
}

impl TableSource {
    /// A compaction's source: the blocks it reads from the file are not cached
    /// ([`SstReader::read_block_filling`]).
    ///
    /// [`SstReader::read_block_filling`]: crate::sstable::SstReader::read_block_filling
    pub fn for_compaction(table: Arc<Table>, bounds: Bounds, direction: Direction) -> Self {
        TableSource {
            fill_cache: false,
            ..TableSource::new(table, bounds, direction)
        }
    }

    /// Entries of `table` within `bounds`.
    pub fn new(table: Arc<Table>, bounds: Bounds, direction: Direction) -> Self {
        let blocks = table.reader.index().len();
        let next_block = match direction {
            Direction::Forward => match &bounds.lower {
                Bound::Included(key) | Bound::Excluded(key) => table.reader.seek_block(key),
                Bound::Unbounded => 0,
            },
            // The block that may hold the upper bound's key, or the last block.
            Direction::Reverse => match &bounds.upper {
                Bound::Included(key) | Bound::Excluded(key) => {
                    table.reader.seek_block(key).min(blocks.saturating_sub(1))
                }
                Bound::Unbounded => blocks.saturating_sub(1),
            },
        };
        TableSource {
            done: blocks == 0,
            table,
            bounds,
            direction,
            next_block: Some(next_block),
            block: None,
            pending: (0, 0),
            fill_cache: true,
        }
    }

    /// The next entry of the current block in the scan's direction, if any is left.
    fn next_pending(&mut self) -> Option<usize> {
        let (front, back) = &mut self.pending;
        if *front == *back {
            return None;
        }
        Some(match self.direction {
            Direction::Forward => {
                *front += 1;
                *front - 1
            }
            Direction::Reverse => {
                *back -= 1;
                *back
            }
        })
    }
}

impl Source for TableSource {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        while !self.done {
            while let Some(index) = self.next_pending() {
                let block = self.block.as_ref().expect("entries pending in a block");
                let key = block.key(index);
                let (before_start, past_end) = match self.direction {
                    Direction::Forward => {
                        (!self.bounds.above_lower(key), !self.bounds.below_upper(key))
                    }
                    Direction::Reverse => {
                        (!self.bounds.below_upper(key), !self.bounds.above_lower(key))
                    }
                };
                if past_end {
                    self.done = true;
                    return Ok(None);
                }
                if !before_start {
                    return Ok(Some(Entry::in_block(Arc::clone(block), index)));
                }
            }
            let reader = &self.table.reader;
            let Some(block_index) = self.next_block.filter(|&i| i < reader.index().len()) else {
                self.done = true;
                return Ok(None);
            };
            let block = reader.read_block_filling(block_index, self.fill_cache)?;
            let offset = reader.index().handle(block_index).offset;
            let decoded = DecodedBlock::decode(block)
                .map_err(|reason| crate::error::Error::corruption(reader.path(), offset, reason))?;
            self.next_block = match self.direction {
                Direction::Forward => Some(block_index + 1),
                Direction::Reverse => block_index.checked_sub(1),
            };
            self.pending = (0, decoded.len());
            self.block = Some(Arc::new(decoded));
        }
        Ok(None)
    }
}

/// Makes the sources of a scan: the read view an iterator was created on.
pub(crate) trait SourceSet: Send + Sync {
    /// Every source of the view within `bounds`, newest first, going in `direction`, as a
    /// reader at `sequence` sees them.
    fn sources(&self, bounds: &Bounds, direction: Direction, sequence: u64)
        -> Vec<Box<dyn Source>>;
}

/// A scan over the database: `(key, value)` pairs in key order from the front
/// ([`Iterator`]) or from the back ([`DoubleEndedIterator`], e.g. `.rev()`), at one
/// sequence number: it sees every batch committed before it was made, whole, and nothing
/// committed after. The two ends meet in the middle and never pass each other.
///
/// ```
/// # use std::sync::Arc;
/// # use strata_engine::{Db, Options, WriteOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = Db::open(Arc::new(strata_vfs::RealFs::new()), dir.path(), Options::default()).unwrap();
/// for key in ["a", "b", "c", "d"] {
///     db.put(key, "v", WriteOptions::default()).unwrap();
/// }
/// let keys = |iter: strata_engine::DbIterator| -> Vec<Vec<u8>> {
///     iter.map(|entry| entry.unwrap().0).collect()
/// };
/// assert_eq!(keys(db.range("b".."d").unwrap()), [b"b".to_vec(), b"c".to_vec()]);
/// let mut iter = db.iter().unwrap();
/// iter.seek_for_prev("c");
/// assert_eq!(iter.next_back().unwrap().unwrap().0, b"c");
/// assert_eq!(iter.next_back().unwrap().unwrap().0, b"b");
/// ```
pub struct DbIterator {
    view: Arc<dyn SourceSet>,
    sequence: u64,
    bounds: Bounds,
    front: End,
    back: End,
    failed: bool,
}

/// One end of a [`DbIterator`].
struct End {
    /// Where this end scans; narrowed by a seek.
    bounds: Bounds,
    merger: Option<Merger>,
    /// The last key this end returned.
    last: Option<Vec<u8>>,
    /// The value of `last`, until a step hands it out.
    value: Option<Value>,
    /// The key the merge is on (swapped into `last` when it has a value to return), so that
    /// a step allocates nothing for the key.
    scratch: Vec<u8>,
    done: bool,
}

impl End {
    fn new(bounds: Bounds) -> End {
        End {
            bounds,
            merger: None,
            last: None,
            value: None,
            scratch: Vec::new(),
            done: false,
        }
    }
}

impl DbIterator {
    /// A scan of `view` within `bounds` at `sequence`.
    pub(crate) fn new(view: Arc<dyn SourceSet>, bounds: Bounds, sequence: u64) -> DbIterator {
        DbIterator {
            view,
            sequence,
            front: End::new(bounds.clone()),
            back: End::new(bounds.clone()),
            bounds,
            failed: false,
        }
    }

    /// The sequence number the scan reads at: it sees exactly the writes numbered up to it.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Moves the front to the first key at or after `key` (within the scan's bounds): the
    /// next [`Iterator::next`] returns it. The back is not moved.
    pub fn seek(&mut self, key: impl AsRef<[u8]>) {
        self.front = End::new(self.bounds.at_or_after(key.as_ref()));
    }

    /// Moves the back to the last key at or before `key` (within the scan's bounds): the
    /// next [`DoubleEndedIterator::next_back`] returns it. The front is not moved.
    pub fn seek_for_prev(&mut self, key: impl AsRef<[u8]>) {
        self.back = End::new(self.bounds.at_or_before(key.as_ref()));
    }

    /// Like [`Iterator::next`], but the key and value are borrowed from the iterator (until
    /// its next call) instead of copied into new vectors: a scan allocates nothing per entry.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strata_engine::{Db, Options, WriteOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = Db::open(Arc::new(strata_vfs::RealFs::new()), dir.path(), Options::default()).unwrap();
    /// db.put("a", "1", WriteOptions::default()).unwrap();
    /// db.put("b", "22", WriteOptions::default()).unwrap();
    /// let mut iter = db.iter().unwrap();
    /// let mut bytes = 0;
    /// while let Some(entry) = iter.next_borrowed() {
    ///     let (key, value) = entry.unwrap();
    ///     bytes += key.len() + value.len();
    /// }
    /// assert_eq!(bytes, 5);
    /// ```
    pub fn next_borrowed(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        self.borrowed(Direction::Forward)
    }

    /// [`DoubleEndedIterator::next_back`] with the key and value borrowed, as
    /// [`DbIterator::next_borrowed`].
    pub fn next_back_borrowed(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        self.borrowed(Direction::Reverse)
    }

    fn borrowed(&mut self, direction: Direction) -> Option<Result<(&[u8], &[u8])>> {
        if let Err(error) = self.advance(direction)? {
            return Some(Err(error));
        }
        let end = self.end_mut(direction);
        let key = end
            .last
            .as_deref()
            .expect("a step that returned sets the key");
        let value = end
            .value
            .as_ref()
            .expect("a step that returned sets the value");
        Some(Ok((key, value.as_bytes())))
    }

    fn step(&mut self, direction: Direction) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        if let Err(error) = self.advance(direction)? {
            return Some(Err(error));
        }
        let end = self.end_mut(direction);
        let key = end.last.clone().expect("a step that returned sets the key");
        let value = end
            .value
            .take()
            .expect("a step that returned sets the value");
        Some(Ok((key, value.into_vec())))
    }

    fn end_mut(&mut self, direction: Direction) -> &mut End {
        match direction {
            Direction::Forward => &mut self.front,
            Direction::Reverse => &mut self.back,
        }
    }

    /// Moves the `direction` end to its next key that has a visible value, and leaves that
    /// key in the end's `last` and its value in `value`. `None` at the end (or where the ends
    /// met, or after an error).
    fn advance(&mut self, direction: Direction) -> Option<Result<()>> {
        if self.failed {
            return None;
        }
        let (end, other) = match direction {
            Direction::Forward => (&mut self.front, &self.back),
            Direction::Reverse => (&mut self.back, &self.front),
        };
        if end.done {
            return None;
        }
        end.value = None;
        let merger = end.merger.get_or_insert_with(|| {
            Merger::new(
                self.view.sources(&end.bounds, direction, self.sequence),
                direction,
            )
        });
        loop {
            match merger.next_visible(self.sequence, &mut end.scratch) {
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
                Ok(None) => {
                    end.done = true;
                    return None;
                }
                Ok(Some(value)) => {
                    let key = &end.scratch;
                    let crossed = other.last.as_ref().is_some_and(|met| match direction {
                        Direction::Forward => key >= met,
                        Direction::Reverse => key <= met,
                    });
                    if crossed {
                        end.done = true;
                        return None;
                    }
                    if let Some(value) = value {
                        // The key moves into `last` and the old `last` becomes the scratch
                        // buffer: no copy, no allocation once both have grown.
                        match &mut end.last {
                            Some(last) => std::mem::swap(last, &mut end.scratch),
                            None => end.last = Some(std::mem::take(&mut end.scratch)),
                        }
                        end.value = Some(value);
                        return Some(Ok(()));
                    }
                }
            }
        }
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(Direction::Forward)
    }
}

impl DoubleEndedIterator for DbIterator {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(Direction::Reverse)
    }
}
