//! The merge of sorted sources into one stream grouped by key: a binary heap of the
//! sources' heads, so that a step costs O(log n) key comparisons instead of two passes over
//! every source. The passes showed in profiles of a 10M-key scan made while the fill's
//! compactions were still running, when level 0 adds a source per table. (How much the heap
//! saves there was lost in that benchmark's noise. With the few sources of a settled tree, the
//! two are about even.)
//!
//! The heap orders heads by key in the merge's direction and, on equal keys, by source
//! index, newest first. So the sources are read in exactly the order a pass over all of them
//! reads them: every source once at the start (in index order), then, after each version
//! handed out, the source it came from. That order is what the simulator's traces record (a
//! source's read may be a VFS read), and the tests below pin it against a brute-force merge.

use super::{Direction, Entry, Source, Value};
use crate::error::Result;
use std::cmp::Ordering;

/// Merges sorted sources, newest first, into one stream grouped by key.
pub struct Merger {
    sources: Vec<Box<dyn Source>>,
    heads: Vec<Option<Entry>>,
    /// Indexes of the sources that have a head, as a binary min-heap under `precedes`.
    heap: Vec<usize>,
    direction: Direction,
    started: bool,
}

impl Merger {
    /// Merges `sources` (newest first), all going in `direction`.
    pub fn new(sources: Vec<Box<dyn Source>>, direction: Direction) -> Merger {
        let heads = sources.iter().map(|_| None).collect();
        Merger {
            heap: Vec::with_capacity(sources.len()),
            sources,
            heads,
            direction,
            started: false,
        }
    }

    /// The next key in the merge's direction, written into `key`: visits every version of
    /// it, source by source from the newest (in each source's own order). `false` at the end.
    pub fn next_key(
        &mut self,
        key: &mut Vec<u8>,
        mut visit: impl FnMut(usize, u64, Option<Value>),
    ) -> Result<bool> {
        if !self.started {
            for source in 0..self.sources.len() {
                self.heads[source] = self.sources[source].next_entry()?;
                if self.heads[source].is_some() {
                    self.push(source);
                }
            }
            self.started = true;
        }
        let Some(&winner) = self.heap.first() else {
            return Ok(false);
        };
        let first = self.heads[winner]
            .take()
            .expect("a source in the heap has a head");
        key.clear();
        key.extend_from_slice(first.key());
        let (sequence, value) = first.into_version();
        visit(winner, sequence, value);
        self.advance_top()?;
        // Every other version of the key: the lowest source index first (no source before the
        // winner holds the key, or it would have won), each source's versions in its order.
        while let Some(&source) = self.heap.first() {
            let head = self.heads[source]
                .as_ref()
                .expect("a source in the heap has a head");
            if head.key() != key.as_slice() {
                break;
            }
            let entry = self.heads[source].take().expect("checked");
            let (sequence, value) = entry.into_version();
            visit(source, sequence, value);
            self.advance_top()?;
        }
        Ok(true)
    }

    /// The next key that has a version visible at `sequence`, written into `key`, with that
    /// version's value (`Some(None)`: a tombstone; `None`: the end).
    pub fn next_visible(
        &mut self,
        sequence: u64,
        key: &mut Vec<u8>,
    ) -> Result<Option<Option<Value>>> {
        let direction = self.direction;
        loop {
            let mut chosen: Option<(usize, Option<Value>)> = None;
            let more = self.next_key(key, |source, version, value| {
                if version > sequence {
                    return;
                }
                match direction {
                    // Newest first within a source: the first visible version wins.
                    Direction::Forward => {
                        if chosen.is_none() {
                            chosen = Some((source, value));
                        }
                    }
                    // Oldest first within a source: the last visible one of the newest
                    // source that has any wins.
                    Direction::Reverse => {
                        if chosen.as_ref().is_none_or(|(first, _)| *first == source) {
                            chosen = Some((source, value));
                        }
                    }
                }
            })?;
            if !more {
                return Ok(None);
            }
            if let Some((_, value)) = chosen {
                return Ok(Some(value));
            }
        }
    }

    /// Reads the next head of the source at the top of the heap (whose head was just taken)
    /// and restores the heap: the source sinks to its place, or leaves if it has ended.
    fn advance_top(&mut self) -> Result<()> {
        let source = self.heap[0];
        debug_assert!(self.heads[source].is_none());
        self.heads[source] = self.sources[source].next_entry()?;
        if self.heads[source].is_none() {
            let last = self.heap.pop().expect("the top is in the heap");
            if self.heap.is_empty() {
                return Ok(());
            }
            self.heap[0] = last;
        }
        self.sift_down(0);
        Ok(())
    }

    /// Whether source `a`'s head comes before source `b`'s: the key first in the
    /// direction, and on equal keys the newer source.
    fn precedes(&self, a: usize, b: usize) -> bool {
        let key = |source: usize| {
            self.heads[source]
                .as_ref()
                .expect("a source in the heap has a head")
                .key()
        };
        let order = key(a).cmp(key(b));
        let order = match self.direction {
            Direction::Forward => order,
            Direction::Reverse => order.reverse(),
        };
        match order {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    fn push(&mut self, source: usize) {
        self.heap.push(source);
        let mut at = self.heap.len() - 1;
        while at > 0 {
            let parent = (at - 1) / 2;
            if !self.precedes(self.heap[at], self.heap[parent]) {
                break;
            }
            self.heap.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let left = 2 * at + 1;
            if left >= self.heap.len() {
                return;
            }
            let right = left + 1;
            let child =
                if right < self.heap.len() && self.precedes(self.heap[right], self.heap[left]) {
                    right
                } else {
                    left
                };
            if !self.precedes(self.heap[child], self.heap[at]) {
                return;
            }
            self.heap.swap(at, child);
            at = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::Slot;
    use std::sync::{Arc, Mutex};

    /// A source of fixed versions that logs each read (its index) to a shared list.
    struct Scripted {
        index: usize,
        versions: std::vec::IntoIter<(Vec<u8>, u64, Slot)>,
        reads: Arc<Mutex<Vec<usize>>>,
    }

    impl Source for Scripted {
        fn next_entry(&mut self) -> Result<Option<Entry>> {
            self.reads.lock().expect("not poisoned").push(self.index);
            Ok(self
                .versions
                .next()
                .map(|(key, sequence, slot)| Entry::new(key, sequence, slot)))
        }
    }

    /// A tiny deterministic generator (SplitMix64), so the test needs no RNG crate.
    struct Draws(u64);

    impl Draws {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % bound
        }
    }

    type Visit = (usize, Vec<u8>, u64, Option<Vec<u8>>);

    /// One source's versions, in the order it yields them.
    type Script = Vec<(Vec<u8>, u64, Slot)>;

    /// Random sorted sources (keys ascending or descending with `direction`, a key's
    /// versions in the order its source yields them), and the visits a merge must make:
    /// by key in the direction, then by source index, then in the source's own order.
    fn draw(draws: &mut Draws, direction: Direction) -> (Vec<Script>, Vec<Visit>) {
        let source_count = draws.below(7) as usize;
        let mut sources = Vec::new();
        let mut visits = Vec::new();
        for index in 0..source_count {
            let mut keys: Vec<u64> = (0..draws.below(12)).map(|_| draws.below(10)).collect();
            keys.sort_unstable();
            keys.dedup();
            if direction == Direction::Reverse {
                keys.reverse();
            }
            let mut versions = Vec::new();
            for key in keys {
                let key = format!("k{key}").into_bytes();
                for version in 0..1 + draws.below(3) {
                    let sequence = 100 - 10 * index as u64 - version;
                    let slot = if draws.below(4) == 0 {
                        None
                    } else {
                        Some(format!("v{index}.{version}").into_bytes())
                    };
                    versions.push((key.clone(), sequence, slot.clone()));
                    visits.push((index, key.clone(), sequence, slot));
                }
            }
            sources.push(versions);
        }
        // A stable sort keeps each source's own order of a key's versions.
        visits.sort_by(|a, b| {
            let keys = match direction {
                Direction::Forward => a.1.cmp(&b.1),
                Direction::Reverse => b.1.cmp(&a.1),
            };
            keys.then(a.0.cmp(&b.0))
        });
        (sources, visits)
    }

    #[test]
    fn the_merge_visits_and_reads_sources_in_the_order_of_a_brute_force_merge() {
        let mut draws = Draws(7);
        for case in 0..2000 {
            let direction = if case % 2 == 0 {
                Direction::Forward
            } else {
                Direction::Reverse
            };
            let (versions, expected_visits) = draw(&mut draws, direction);
            let reads = Arc::new(Mutex::new(Vec::new()));
            // Every source is read once at the start, then once after each version it gave.
            let mut expected_reads: Vec<usize> = (0..versions.len()).collect();
            expected_reads.extend(expected_visits.iter().map(|visit| visit.0));
            let sources: Vec<Box<dyn Source>> = versions
                .into_iter()
                .enumerate()
                .map(|(index, versions)| {
                    Box::new(Scripted {
                        index,
                        versions: versions.into_iter(),
                        reads: Arc::clone(&reads),
                    }) as Box<dyn Source>
                })
                .collect();
            let mut merger = Merger::new(sources, direction);
            let mut visits = Vec::new();
            let mut key = Vec::new();
            let mut keys = Vec::new();
            while merger
                .next_key(&mut key, |source, sequence, value| {
                    visits.push((source, Vec::new(), sequence, value.map(Value::into_vec)));
                })
                .expect("scripted sources do not fail")
            {
                keys.push(key.clone());
                let unnamed = visits.iter_mut().filter(|visit| visit.1.is_empty());
                unnamed.for_each(|visit| visit.1 = key.clone());
            }
            assert_eq!(visits, expected_visits, "case {case}: visits");
            assert_eq!(
                *reads.lock().expect("not poisoned"),
                expected_reads,
                "case {case}: the order the sources were read in"
            );
            let mut distinct = expected_visits
                .iter()
                .map(|visit| visit.1.clone())
                .collect::<Vec<_>>();
            distinct.dedup();
            assert_eq!(keys, distinct, "case {case}: one call per key");
        }
    }
}
