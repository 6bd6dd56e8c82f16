//! The memtable: a concurrent sorted set (an arena skip list, lock-free for readers) of versions, each
//! a user key, a sequence number and a value or a tombstone, ordered by key and then newest
//! first (LevelDB's internal-key order). Writers insert under the engine's write leader;
//! readers read without locks, at a sequence number: they see the newest version at or below
//! it, so a commit group's versions, inserted before the group's last sequence is published,
//! are invisible until all of them are there (batches are atomic for readers), and a snapshot
//! keeps reading what it saw.
//!
//! One node per version, never one per key: an insert only ever adds a node, so no reader
//! can find a key absent while its versions change, and no version needs a lock. The skip
//! list is `strata-skiplist`'s arena list: a version (its header, key and value) is one bump
//! of a pointer in the memtable's arena, not a heap allocation, and a flushed memtable is
//! freed as a few dozen blocks (the crate's documentation says why: `malloc` and `free` were
//! 43% of a sequential load's writer thread with crossbeam's `SkipMap` and a key-and-value
//! allocation per version).
//!
//! Every version stays until the memtable is flushed: the memtable's size already counts
//! every write, overwritten or not, so keeping them costs no more memory than the budget,
//! and the flush (which knows the live snapshots) keeps only the versions one needs. Nothing
//! is ever removed, so a flush can borrow the bytes it writes instead of copying them.
//!
//! A concurrent bloom filter (atomic words, one 64-bit word per key) sits in front of the
//! skip list, so that a read of a key the memtable does not hold — most reads, once the data
//! is mostly in tables — costs one cache line instead of a skip-list search.

use crate::key_prefix::{compare_prefixed, KeyPrefix};
use crate::sstable::KeyHash;
use std::cmp;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use strata_skiplist::{Comparator, Entry, Position, SkipList};

/// Bytes of memtable budget per bit of filter (one bit per 8 bytes).
const FILTER_BYTES_PER_BIT: usize = 8;
/// Bit probes per key, all inside one 64-bit word.
const FILTER_PROBES: u32 = 5;

/// A concurrent bloom filter blocked to one 64-bit word per key: one atomic `fetch_or` to
/// insert, one load to test. The memtable budget gives it about 20 bits per key for typical
/// entries, where a word-blocked filter stays near 1-2% false positives.
#[derive(Debug)]
struct MemFilter {
    words: Vec<AtomicU64>,
}

impl MemFilter {
    fn new(budget_bytes: usize) -> MemFilter {
        let words = (budget_bytes / FILTER_BYTES_PER_BIT / 64).max(16);
        MemFilter {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn word_and_mask(&self, hash: KeyHash) -> (usize, u64) {
        let hash = hash.value();
        let word = (((hash >> 32) * self.words.len() as u64) >> 32) as usize;
        let second = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31) ^ hash;
        let mask = (0..FILTER_PROBES).fold(0u64, |mask, probe| {
            mask | 1 << ((second >> (probe * 6)) & 63)
        });
        (word, mask)
    }

    fn insert(&self, hash: KeyHash) {
        let (word, mask) = self.word_and_mask(hash);
        self.words[word].fetch_or(mask, Ordering::Relaxed);
    }

    fn may_contain(&self, hash: KeyHash) -> bool {
        let (word, mask) = self.word_and_mask(hash);
        self.words[word].load(Ordering::Relaxed) & mask == mask
    }
}

/// A version's header, as the skip list holds it beside the key's bytes followed by the
/// value's: the key's 16-byte prefix, the sequence, the key's length, and whether it is a
/// tombstone. Ordered by key, then by sequence from newest to oldest, so a search for
/// (key, s) lands on the newest version at or below s. The skip list compares about 20
/// times per insert or lookup; comparing prefixes first makes most of those one integer
/// compare instead of a `memcmp` call (measured: the `memcmp`s were a fifth of a random
/// write's time).
#[derive(Debug, Clone, Copy)]
struct Version {
    prefix: KeyPrefix,
    sequence: u64,
    key_length: u32,
    tombstone: bool,
}

/// A search bound's sequence that sorts at or before every version of a key.
const NEWEST_POSSIBLE: u64 = u64::MAX;
/// A search bound's sequence that sorts at or after every version of a key.
const OLDEST_POSSIBLE: u64 = 0;

impl Version {
    fn new(key: &[u8], sequence: u64, tombstone: bool) -> Version {
        Version {
            prefix: KeyPrefix::of(key),
            sequence,
            key_length: u32::try_from(key.len()).expect("keys are shorter than 4 GiB"),
            tombstone,
        }
    }
}

/// A search bound: the position of version `sequence` of `key` (holds no value).
#[derive(Clone, Copy)]
struct Bounding<'a> {
    header: Version,
    key: &'a [u8],
}

impl<'a> Bounding<'a> {
    fn new(key: &'a [u8], sequence: u64) -> Bounding<'a> {
        Bounding {
            header: Version::new(key, sequence, false),
            key,
        }
    }

    fn entry(&self) -> Entry<'_, Version> {
        Entry {
            header: &self.header,
            bytes: self.key,
        }
    }
}

/// A user-key bound as a position among versions: every version of a key the bound
/// includes lies inside it, every version of one it excludes outside.
#[derive(Clone, Copy)]
struct Edge<'a> {
    bound: Bounding<'a>,
    /// Whether a version at `bound` itself is inside (never one: a bound holds no value).
    inclusive: bool,
    /// Whether the inside is above the bound (a lower bound) or below it.
    lower: bool,
}

impl<'a> Edge<'a> {
    /// `None` for an unbounded side.
    fn of(bound: Bound<&'a [u8]>, lower: bool) -> Option<Edge<'a>> {
        // A lower bound that includes its key starts before the key's newest version; one
        // that excludes it, after the oldest. An upper bound the other way round.
        let (key, inclusive) = match bound {
            Bound::Included(key) => (key, true),
            Bound::Excluded(key) => (key, false),
            Bound::Unbounded => return None,
        };
        let sequence = if lower == inclusive {
            NEWEST_POSSIBLE
        } else {
            OLDEST_POSSIBLE
        };
        Some(Edge {
            bound: Bounding::new(key, sequence),
            inclusive,
            lower,
        })
    }

    /// Whether `entry` lies inside the bound.
    fn admits(&self, entry: Entry<'_, Version>) -> bool {
        let order = VersionOrder.compare(entry, self.bound.entry());
        let beyond = if self.lower {
            order.is_gt()
        } else {
            order.is_lt()
        };
        beyond || (self.inclusive && order.is_eq())
    }
}

/// One stored version, borrowed from the memtable.
#[derive(Clone, Copy)]
struct Stored<'a>(Entry<'a, Version>);

impl<'a> Stored<'a> {
    fn key(&self) -> &'a [u8] {
        &self.0.bytes[..self.0.header.key_length as usize]
    }

    fn sequence(&self) -> u64 {
        self.0.header.sequence
    }

    /// The value, or `None` for a tombstone.
    fn value(&self) -> Option<&'a [u8]> {
        (!self.0.header.tombstone).then(|| &self.0.bytes[self.0.header.key_length as usize..])
    }

    fn same_key(&self, other: &Stored<'_>) -> bool {
        self.0.header.prefix == other.0.header.prefix && self.key() == other.key()
    }
}

/// The memtable's order: key (prefix first), then sequence descending. A search bound's
/// bytes are its key alone, a stored version's its key and value: both compare only
/// `key_length` bytes.
struct VersionOrder;

impl Comparator<Version> for VersionOrder {
    fn compare(&self, a: Entry<'_, Version>, b: Entry<'_, Version>) -> cmp::Ordering {
        let a_key = &a.bytes[..a.header.key_length as usize];
        let b_key = &b.bytes[..b.header.key_length as usize];
        compare_prefixed(a_key, a.header.prefix, b_key, b.header.prefix)
            .then_with(|| b.header.sequence.cmp(&a.header.sequence))
    }
}

/// What each version counts against `memtable_size` beyond its key and value: for small
/// versions more than it takes. Its node in the arena is a 40-byte header ([`Version`]'s 32,
/// the byte count and the height), 8 bytes of tower a level (4/3 levels on average) and the
/// key and value, rounded up to 16 bytes: measured, 61 bytes beyond a 16-byte key and a
/// 100-byte value (200,000 inserts, the sum of what `SkipList::insert` reported). A version
/// of tens of kilobytes can also leave the end of an arena chunk unused (up to a quarter of
/// a chunk, 256 KiB at most), which the count does not cover. 128 is what the heap layout
/// before the arena took (crossbeam's node and a key-and-value allocation, measured), and
/// it stays: counting the arena's bytes exactly was tried (with the 48-byte header of the
/// first arena layout), and in shared/peerbench (1M 116-byte writes, two interleaved pairs,
/// `strata` only) it raised the overwrite's peak RSS from 169 to 190 MiB and slowed
/// fillrandom and overwrite by 6% and 15% (fewer, larger flushes), for a fillseq 5% faster.
/// So a memtable of such writes takes about three quarters of `memtable_size`, and every
/// simulated trace stayed what it was.
const ENTRY_OVERHEAD: usize = 128;

/// What a key maps to: a value, or `None` for a tombstone.
pub type Slot = Option<Vec<u8>>;

type VersionList = SkipList<Version, VersionOrder>;
type VersionPosition<'a> = Position<'a, Version, VersionOrder>;

/// A sorted in-memory table of recent writes.
#[derive(Debug)]
pub struct Memtable {
    list: VersionList,
    approximate_size: AtomicUsize,
    filter: MemFilter,
}

impl Memtable {
    /// An empty memtable expected to grow to about `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Memtable {
        Memtable {
            list: SkipList::new(VersionOrder),
            approximate_size: AtomicUsize::new(0),
            filter: MemFilter::new(budget_bytes),
        }
    }

    /// Adds version `sequence` of `key`: `value`, or a tombstone. A key's sequences must
    /// differ from one insert to the next (they increase, in commit order). Inserts must
    /// not overlap in time (the engine makes them under its write lock); reads may.
    pub fn insert(&self, key: &[u8], sequence: u64, value: Option<&[u8]>) {
        // Filter bits first, entry second: once the entry is visible its bits are set, so
        // the filter never hides an entry a reader could otherwise see.
        self.filter.insert(KeyHash::of(key));
        let version = Version::new(key, sequence, value.is_none());
        let inserted = self.list.insert(version, &[key, value.unwrap_or_default()]);
        assert!(
            inserted.is_some(),
            "version {sequence} of a key was inserted twice"
        );
        let size = key.len() + value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
        self.approximate_size.fetch_add(size, Ordering::Relaxed);
    }

    /// The newest version of `key` (whose hash the caller computed) at or below `sequence`.
    /// `None`: the memtable has no such version; `Some(None)`: a tombstone; `Some(Some(v))`:
    /// the value.
    pub fn get_hashed(&self, key: &[u8], hash: KeyHash, sequence: u64) -> Option<Slot> {
        if !self.may_contain(hash) {
            return None;
        }
        self.get_unfiltered(key, sequence)
    }

    /// False if the memtable certainly does not hold the key `hash` was computed from.
    pub fn may_contain(&self, hash: KeyHash) -> bool {
        self.filter.may_contain(hash)
    }

    /// [`Memtable::get_hashed`] without asking the filter (the caller did).
    pub fn get_unfiltered(&self, key: &[u8], sequence: u64) -> Option<Slot> {
        let bound = Bounding::new(key, sequence);
        let version = Stored(self.list.after(bound.entry(), true)?.entry());
        (version.key() == key).then(|| version.value().map(<[u8]>::to_vec))
    }

    /// Bytes written into this memtable, each version counted as its key and value and
    /// [`ENTRY_OVERHEAD`] (overwritten versions included).
    pub fn approximate_size(&self) -> usize {
        self.approximate_size.load(Ordering::Relaxed)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The versions within the user-key bounds, every version of a key the bounds include
    /// and none of one they exclude, in order (reversed if `reverse`).
    fn versions<'a>(
        &'a self,
        lower: Bound<&'a [u8]>,
        upper: Bound<&'a [u8]>,
        reverse: bool,
    ) -> impl Iterator<Item = Stored<'a>> + 'a {
        // Start at the bound the walk leaves from; stop at the other one.
        let (from, to) = if reverse {
            (Edge::of(upper, false), Edge::of(lower, true))
        } else {
            (Edge::of(lower, true), Edge::of(upper, false))
        };
        let list = &self.list;
        let start: Option<VersionPosition<'a>> = match from {
            None if reverse => list.last(),
            None => list.first(),
            Some(edge) if reverse => list.before(edge.bound.entry(), edge.inclusive),
            Some(edge) => list.after(edge.bound.entry(), edge.inclusive),
        };
        std::iter::successors(start, move |position| {
            if reverse {
                position.prev()
            } else {
                position.next()
            }
        })
        .map(|position| position.entry())
        .take_while(move |entry| to.is_none_or(|edge| edge.admits(*entry)))
        .map(Stored)
    }

    /// Examines up to `limit` keys within the bounds, in key order (descending if
    /// `reverse`), and appends to `out` each one's newest version at or below `sequence`
    /// (keys with none are skipped). Returns the last key examined, `None` if there were no
    /// more. Iteration is done in chunks like this so an iterator can own its memtable (an
    /// `Arc`) without borrowing into it.
    pub fn collect_range(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        sequence: u64,
        out: &mut Vec<(Vec<u8>, Slot)>,
    ) -> Option<Vec<u8>> {
        let mut collector = RangeCollector {
            sequence,
            limit,
            examined: 0,
            current: None,
            visible: None,
            out,
        };
        if reverse {
            // A key's versions come oldest first: the visible one is the last at or below
            // `sequence` before the key changes.
            for version in self.versions(lower, upper, true) {
                if !collector.step(version, |visible, version, sequence| {
                    if version.sequence() <= sequence {
                        *visible = Some(version);
                    }
                }) {
                    break;
                }
            }
        } else {
            // Newest first: the visible one is the first at or below `sequence`.
            for version in self.versions(lower, upper, false) {
                if !collector.step(version, |visible, version, sequence| {
                    if visible.is_none() && version.sequence() <= sequence {
                        *visible = Some(version);
                    }
                }) {
                    break;
                }
            }
        }
        collector.finish()
    }

    /// Visits every key in key order with its versions, newest first, borrowed from the
    /// memtable (nothing is copied). No lock is held while `visit` runs (a flush's `visit`
    /// writes to the table file). `visit` may change the list it is handed (a flush drops
    /// the versions it does not keep).
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &mut Vec<(u64, Option<&[u8]>)>)) {
        let mut first: Option<Stored<'_>> = None;
        let mut versions: Vec<(u64, Option<&[u8]>)> = Vec::new();
        for version in self.versions(Bound::Unbounded, Bound::Unbounded, false) {
            if let Some(first) = first.filter(|first| !first.same_key(&version)) {
                visit(first.key(), &mut versions);
                versions.clear();
            }
            if versions.is_empty() {
                first = Some(version);
            }
            versions.push((version.sequence(), version.value()));
        }
        if let Some(first) = first {
            if !versions.is_empty() {
                visit(first.key(), &mut versions);
            }
        }
    }
}

/// [`Memtable::collect_range`]'s walk: groups the versions it is handed by key, keeps the
/// one visible at `sequence` (chosen by the direction's rule), and stops at `limit` keys.
struct RangeCollector<'a, 'out> {
    sequence: u64,
    limit: usize,
    examined: usize,
    /// The key being examined (any of its versions).
    current: Option<Stored<'a>>,
    visible: Option<Stored<'a>>,
    out: &'out mut Vec<(Vec<u8>, Slot)>,
}

impl<'a> RangeCollector<'a, '_> {
    /// Takes the next version; false once `limit` keys are done and this is a new one.
    fn step(
        &mut self,
        version: Stored<'a>,
        choose: impl FnOnce(&mut Option<Stored<'a>>, Stored<'a>, u64),
    ) -> bool {
        let same_key = self
            .current
            .as_ref()
            .is_some_and(|current| current.same_key(&version));
        if !same_key {
            if self.examined == self.limit {
                return false;
            }
            self.emit();
            self.examined += 1;
            self.current = Some(version);
        }
        choose(&mut self.visible, version, self.sequence);
        true
    }

    fn emit(&mut self) {
        if let Some(visible) = self.visible.take() {
            self.out
                .push((visible.key().to_vec(), visible.value().map(<[u8]>::to_vec)));
        }
    }

    fn finish(mut self) -> Option<Vec<u8>> {
        self.emit();
        self.current.map(|current| current.key().to_vec())
    }
}

#[cfg(test)]
mod tests;
