//! Range scans: a merge of every source (memtable, immutable memtables, tables) in key
//! order, where for equal keys the newest source wins and a tombstone hides the key.
//!
//! Sources own what they read (`Arc`s), so an iterator stays valid while the database
//! changes: it reads the view that was current when it was made.

use crate::error::Result;
use crate::memtable::{Memtable, Slot};
use crate::version::Table;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

/// One sorted stream of entries.
pub trait Source: Send {
    /// The next entry at or after the lower bound, in key order.
    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Slot)>>;
}

/// Memtable entries, fetched a chunk at a time.
pub struct MemtableSource {
    memtable: Arc<Memtable>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    buffer: VecDeque<(Vec<u8>, Slot)>,
    scratch: Vec<(Vec<u8>, Slot)>,
    done: bool,
}

const MEMTABLE_CHUNK: usize = 256;

impl MemtableSource {
    /// Entries of `memtable` within the bounds.
    pub fn new(memtable: Arc<Memtable>, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Self {
        MemtableSource {
            memtable,
            lower,
            upper,
            buffer: VecDeque::new(),
            scratch: Vec::new(),
            done: false,
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

impl Source for MemtableSource {
    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Slot)>> {
        if self.buffer.is_empty() && !self.done {
            self.scratch.clear();
            self.memtable.collect_range(
                as_ref_bound(&self.lower),
                as_ref_bound(&self.upper),
                MEMTABLE_CHUNK,
                &mut self.scratch,
            );
            if self.scratch.len() < MEMTABLE_CHUNK {
                self.done = true;
            }
            if let Some((last, _)) = self.scratch.last() {
                self.lower = Bound::Excluded(last.clone());
            }
            self.buffer.extend(self.scratch.drain(..));
        }
        Ok(self.buffer.pop_front())
    }
}

/// Entries of one table, a block at a time.
pub struct TableSource {
    table: Arc<Table>,
    lower: Bound<Vec<u8>>,
    next_block: usize,
    buffer: std::vec::IntoIter<crate::sstable::BlockEntry>,
}

impl TableSource {
    /// Entries of `table` from the lower bound on (the merge applies the upper bound).
    pub fn new(table: Arc<Table>, lower: Bound<Vec<u8>>) -> Self {
        let next_block = match &lower {
            Bound::Included(key) | Bound::Excluded(key) => table.reader.seek_block(key),
            Bound::Unbounded => 0,
        };
        TableSource {
            table,
            lower,
            next_block,
            buffer: Vec::new().into_iter(),
        }
    }
}

impl Source for TableSource {
    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Slot)>> {
        loop {
            for entry in self.buffer.by_ref() {
                let wanted = match &self.lower {
                    Bound::Included(key) => entry.key >= *key,
                    Bound::Excluded(key) => entry.key > *key,
                    Bound::Unbounded => true,
                };
                if wanted {
                    return Ok(Some((entry.key, entry.value)));
                }
            }
            if self.next_block >= self.table.reader.index().len() {
                return Ok(None);
            }
            let block = self.table.reader.read_block(self.next_block)?;
            let offset = self.table.reader.index()[self.next_block].offset;
            let entries = block.entries().map_err(|reason| {
                crate::error::Error::corruption(self.table.reader.path(), offset, reason)
            })?;
            self.next_block += 1;
            self.buffer = entries.into_iter();
        }
    }
}

/// Merges sorted sources into one sorted stream: for equal keys the newest source (the
/// lowest index) wins and the others' entries are skipped. Tombstones are passed through
/// (compaction needs them); [`DbIterator`] hides them.
pub struct Merger {
    sources: Vec<Box<dyn Source>>,
    heads: Vec<Option<(Vec<u8>, Slot)>>,
    started: bool,
}

impl Merger {
    /// Merges `sources`, newest first.
    pub fn new(sources: Vec<Box<dyn Source>>) -> Merger {
        let heads = sources.iter().map(|_| None).collect();
        Merger {
            sources,
            heads,
            started: false,
        }
    }
}

impl Source for Merger {
    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Slot)>> {
        if !self.started {
            for i in 0..self.sources.len() {
                self.heads[i] = self.sources[i].next_entry()?;
            }
            self.started = true;
        }
        // The smallest key among the heads; on a tie the newest source (lowest index).
        let mut winner: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some((key, _)) = head {
                match winner {
                    Some(w) if self.heads[w].as_ref().is_some_and(|(best, _)| best <= key) => {}
                    _ => winner = Some(i),
                }
            }
        }
        let Some(winner) = winner else {
            return Ok(None);
        };
        let (key, slot) = self.heads[winner].take().expect("winner has a head");
        self.heads[winner] = self.sources[winner].next_entry()?;
        for i in winner + 1..self.sources.len() {
            if self.heads[i]
                .as_ref()
                .is_some_and(|(other, _)| *other == key)
            {
                self.heads[i] = self.sources[i].next_entry()?;
            }
        }
        Ok(Some((key, slot)))
    }
}

/// A forward scan over the database: `(key, value)` pairs in key order.
pub struct DbIterator {
    merger: Merger,
    upper: Bound<Vec<u8>>,
    done: bool,
}

impl DbIterator {
    /// Merges `sources`, newest first, up to `upper`.
    pub(crate) fn new(sources: Vec<Box<dyn Source>>, upper: Bound<Vec<u8>>) -> DbIterator {
        DbIterator {
            merger: Merger::new(sources),
            upper,
            done: false,
        }
    }

    fn within_upper(&self, key: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(upper) => key <= upper.as_slice(),
            Bound::Excluded(upper) => key < upper.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        while let Some((key, slot)) = self.merger.next_entry()? {
            if !self.within_upper(&key) {
                return Ok(None);
            }
            if let Some(value) = slot {
                return Ok(Some((key, value)));
            }
        }
        Ok(None)
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}
