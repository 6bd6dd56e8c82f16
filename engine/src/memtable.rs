//! The memtable: a concurrent sorted set (crossbeam's lock-free skip list) of versions, each
//! a user key, a sequence number and a value or a tombstone, ordered by key and then newest
//! first (LevelDB's internal-key order). Writers insert under the engine's write leader;
//! readers read without locks, at a sequence number: they see the newest version at or below
//! it, so a commit group's versions, inserted before the group's last sequence is published,
//! are invisible until all of them are there (batches are atomic for readers), and a snapshot
//! keeps reading what it saw.
//!
//! One node per version, never one per key: an insert only ever adds a node, so no reader
//! can find a key absent while its versions change (crossbeam's `insert` over an existing
//! key unlinks the old node before linking the new one; a reader in between would fall
//! through to older data), and no version needs a lock. A version's key and value share one
//! heap allocation. Both choices are for memory: the earlier layout (a node per key, a
//! `Mutex` of versions, key and value allocated apart) took about 200 bytes a key beyond
//! the key and value, this one about 125 (see [`ENTRY_OVERHEAD`]).
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
use crossbeam_skiplist::map::Entry as MapEntry;
use crossbeam_skiplist::SkipMap;
use std::cmp;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

/// One version of a key, as the skip list holds it: the key's 16-byte prefix, the sequence,
/// and the key's bytes followed by the value's in one allocation. Ordered by key, then by
/// sequence from newest to oldest, so a search for (key, s) lands on the newest version at
/// or below s. The skip list compares about 20 times per insert or lookup; comparing
/// prefixes first makes most of those one integer compare instead of a `memcmp` call
/// (measured: the `memcmp`s were a fifth of a random write's time).
#[derive(Debug)]
struct Version {
    prefix: KeyPrefix,
    sequence: u64,
    key_length: u32,
    tombstone: bool,
    /// The key, then the value (empty for a tombstone).
    bytes: Box<[u8]>,
}

/// A search bound's sequence that sorts at or before every version of a key.
const NEWEST_POSSIBLE: u64 = u64::MAX;
/// A search bound's sequence that sorts at or after every version of a key.
const OLDEST_POSSIBLE: u64 = 0;

impl Version {
    fn new(key: &[u8], sequence: u64, value: Option<&[u8]>) -> Version {
        let key_length = u32::try_from(key.len()).expect("keys are shorter than 4 GiB");
        let value_bytes = value.unwrap_or_default();
        let mut bytes = Vec::with_capacity(key.len() + value_bytes.len());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value_bytes);
        Version {
            prefix: KeyPrefix::of(key),
            sequence,
            key_length,
            tombstone: value.is_none(),
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// A search bound: the position of version `sequence` of `key` (holds no value).
    fn bound(key: &[u8], sequence: u64) -> Version {
        Version::new(key, sequence, Some(&[]))
    }

    fn key(&self) -> &[u8] {
        &self.bytes[..self.key_length as usize]
    }

    /// The value, or `None` for a tombstone.
    fn value(&self) -> Option<&[u8]> {
        (!self.tombstone).then(|| &self.bytes[self.key_length as usize..])
    }

    fn same_key(&self, other: &Version) -> bool {
        self.prefix == other.prefix && self.key() == other.key()
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> cmp::Ordering {
        compare_prefixed(self.key(), self.prefix, other.key(), other.prefix)
            .then_with(|| other.sequence.cmp(&self.sequence))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == cmp::Ordering::Equal
    }
}

impl Eq for Version {}

/// Per-version bookkeeping counted against the memtable size beyond the key and value: the
/// skip-list node (48 bytes of [`Version`], the reference count and height, a tower of two
/// pointers on average) and the allocator's rounding of it and of the bytes. Measured, not
/// estimated: an 80,000- and a 200,000-entry fill of one memtable (`strata bench
/// --workloads fillrandom`, 16-byte keys, mimalloc, peak RSS) grew the process by 142 bytes
/// per entry with 10-byte values and 243 with 100-byte ones: 116 and 127 beyond the key and
/// value. So `memtable_size` is the memory a memtable takes. (The layout with a node per key
/// and a `Mutex` of versions measured about 200.)
const ENTRY_OVERHEAD: usize = 128;

/// What a key maps to: a value, or `None` for a tombstone.
pub type Slot = Option<Vec<u8>>;

type VersionEntry<'a> = MapEntry<'a, Version, ()>;

/// The user-key bounds `lower`..`upper` as bounds on versions: every version of a key that
/// the user bounds include, none of one they exclude.
fn version_bounds(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> (Bound<Version>, Bound<Version>) {
    let lower = match lower {
        Bound::Included(key) => Bound::Included(Version::bound(key, NEWEST_POSSIBLE)),
        Bound::Excluded(key) => Bound::Excluded(Version::bound(key, OLDEST_POSSIBLE)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let upper = match upper {
        Bound::Included(key) => Bound::Included(Version::bound(key, OLDEST_POSSIBLE)),
        Bound::Excluded(key) => Bound::Excluded(Version::bound(key, NEWEST_POSSIBLE)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lower, upper)
}

/// A sorted in-memory table of recent writes.
#[derive(Debug)]
pub struct Memtable {
    map: SkipMap<Version, ()>,
    approximate_size: AtomicUsize,
    filter: MemFilter,
}

impl Memtable {
    /// An empty memtable expected to grow to about `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Memtable {
        Memtable {
            map: SkipMap::new(),
            approximate_size: AtomicUsize::new(0),
            filter: MemFilter::new(budget_bytes),
        }
    }

    /// Adds version `sequence` of `key`: `value`, or a tombstone. A key's sequences must
    /// differ from one insert to the next (they increase, in commit order).
    pub fn insert(&self, key: &[u8], sequence: u64, value: Option<&[u8]>) {
        let size = key.len() + value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
        self.approximate_size.fetch_add(size, Ordering::Relaxed);
        // Filter bits first, entry second: once the entry is visible its bits are set, so
        // the filter never hides an entry a reader could otherwise see.
        self.filter.insert(KeyHash::of(key));
        let version = Version::new(key, sequence, value);
        // Moving the box does not move its bytes: if the entry returned holds other bytes,
        // the version was there already.
        let inserted_bytes = version.bytes.as_ptr();
        let entry = self.map.get_or_insert(version, ());
        assert!(
            std::ptr::eq(entry.key().bytes.as_ptr(), inserted_bytes),
            "version {sequence} of a key was inserted twice"
        );
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
        let entry = self
            .map
            .lower_bound(Bound::Included(&Version::bound(key, sequence)))?;
        let version = entry.key();
        (version.key() == key).then(|| version.value().map(<[u8]>::to_vec))
    }

    /// Bytes written into this memtable (including overwritten versions).
    pub fn approximate_size(&self) -> usize {
        self.approximate_size.load(Ordering::Relaxed)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
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
        let range = self.map.range(version_bounds(lower, upper));
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
            for entry in range.rev() {
                if !collector.step(entry, |visible, entry, sequence| {
                    if entry.key().sequence <= sequence {
                        *visible = Some(entry);
                    }
                }) {
                    break;
                }
            }
        } else {
            // Newest first: the visible one is the first at or below `sequence`.
            for entry in range {
                if !collector.step(entry, |visible, entry, sequence| {
                    if visible.is_none() && entry.key().sequence <= sequence {
                        *visible = Some(entry);
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
        let mut group: Vec<VersionEntry<'_>> = Vec::new();
        let mut visit_group = |group: &[VersionEntry<'_>]| {
            let mut versions: Vec<(u64, Option<&[u8]>)> = group
                .iter()
                .map(|entry| (entry.key().sequence, entry.key().value()))
                .collect();
            visit(group[0].key().key(), &mut versions);
        };
        for entry in self.map.iter() {
            if group
                .first()
                .is_some_and(|first| !first.key().same_key(entry.key()))
            {
                visit_group(&group);
                group.clear();
            }
            group.push(entry);
        }
        if !group.is_empty() {
            visit_group(&group);
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
    current: Option<VersionEntry<'a>>,
    visible: Option<VersionEntry<'a>>,
    out: &'out mut Vec<(Vec<u8>, Slot)>,
}

impl<'a> RangeCollector<'a, '_> {
    /// Takes the next version; false once `limit` keys are done and this is a new one.
    fn step(
        &mut self,
        entry: VersionEntry<'a>,
        choose: impl FnOnce(&mut Option<VersionEntry<'a>>, VersionEntry<'a>, u64),
    ) -> bool {
        let same_key = self
            .current
            .as_ref()
            .is_some_and(|current| current.key().same_key(entry.key()));
        if !same_key {
            if self.examined == self.limit {
                return false;
            }
            self.emit();
            self.examined += 1;
            self.current = Some(entry.clone());
        }
        choose(&mut self.visible, entry, self.sequence);
        true
    }

    fn emit(&mut self) {
        if let Some(visible) = self.visible.take() {
            let version = visible.key();
            self.out
                .push((version.key().to_vec(), version.value().map(<[u8]>::to_vec)));
        }
    }

    fn finish(mut self) -> Option<Vec<u8>> {
        self.emit();
        self.current.map(|current| current.key().key().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that tie on their first 16 bytes, prefixes of each other, and bytes above 0x7f:
    /// the prefix comparison must order them exactly as their bytes.
    fn awkward_keys() -> Vec<Vec<u8>> {
        let mut keys = vec![
            vec![],
            vec![0],
            vec![0, 0],
            b"a".to_vec(),
            b"a\0".to_vec(),
            vec![255; 16],
            vec![255; 17],
            [vec![255; 16], vec![0]].concat(),
        ];
        for i in 0..40u32 {
            keys.push(format!("a-shared-prefix-of-16+/{i}").into_bytes());
            keys.push(format!("{i:016}").into_bytes());
            keys.push(format!("{i:015}").into_bytes());
        }
        keys
    }

    #[test]
    fn entries_come_out_in_byte_order_and_are_found() {
        let memtable = Memtable::new(1 << 20);
        let mut keys = awkward_keys();
        // Insert in a scrambled (deterministic) order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|i| (i * 7919) % keys.len());
        for &i in &order {
            memtable.insert(&keys[i], 1, Some(&keys[i]));
        }
        keys.sort();
        let mut seen = Vec::new();
        memtable.for_each(|key, versions| {
            assert_eq!(versions.as_slice(), &[(1, Some(key))]);
            seen.push(key.to_vec());
        });
        assert_eq!(seen, keys);
        for key in &keys {
            assert_eq!(
                memtable.get_hashed(key, KeyHash::of(key), 1),
                Some(Some(key.clone()))
            );
        }
        let absent = b"a-shared-prefix-of-16+/4x".to_vec();
        assert_eq!(memtable.get_hashed(&absent, KeyHash::of(&absent), 1), None);
        let lower = b"a-shared-prefix-of-16+/1".to_vec();
        let upper = b"a-shared-prefix-of-16+/2".to_vec();
        let mut out = Vec::new();
        memtable.collect_range(
            Bound::Excluded(&lower),
            Bound::Included(&upper),
            false,
            usize::MAX,
            1,
            &mut out,
        );
        let expected: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| **k > lower && **k <= upper)
            .cloned()
            .collect();
        assert_eq!(
            out.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn a_reader_sees_the_newest_version_at_or_below_its_sequence() {
        let memtable = Memtable::new(1 << 20);
        memtable.insert(b"k", 3, Some(b"three"));
        memtable.insert(b"k", 5, None);
        memtable.insert(b"k", 9, Some(b"nine"));
        let at = |sequence| memtable.get_unfiltered(b"k", sequence);
        assert_eq!(at(2), None, "nothing is visible below the first version");
        assert_eq!(at(3), Some(Some(b"three".to_vec())));
        assert_eq!(at(4), Some(Some(b"three".to_vec())));
        assert_eq!(at(5), Some(None), "the tombstone");
        assert_eq!(at(8), Some(None));
        assert_eq!(at(9), Some(Some(b"nine".to_vec())));
        let mut versions = Vec::new();
        memtable.for_each(|_, all| {
            versions = all
                .iter()
                .map(|(sequence, slot)| (*sequence, slot.map(<[u8]>::to_vec)))
                .collect()
        });
        assert_eq!(
            versions,
            vec![
                (9, Some(b"nine".to_vec())),
                (5, None),
                (3, Some(b"three".to_vec()))
            ]
        );
        let mut out = Vec::new();
        let last =
            memtable.collect_range(Bound::Unbounded, Bound::Unbounded, true, 10, 4, &mut out);
        assert_eq!(out, vec![(b"k".to_vec(), Some(b"three".to_vec()))]);
        assert_eq!(last, Some(b"k".to_vec()));
    }

    /// Every read path against a brute-force model: many versions per key (tombstones among
    /// them), read at every sequence, forward and reverse, in chunks of every size.
    #[test]
    fn every_read_agrees_with_a_brute_force_model_at_every_sequence() {
        let memtable = Memtable::new(1 << 20);
        let mut model: Vec<(Vec<u8>, u64, Slot)> = Vec::new();
        let keys: Vec<Vec<u8>> = awkward_keys().into_iter().take(30).collect();
        let mut state = 7u64;
        for sequence in 1..=120u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = keys[(state >> 33) as usize % keys.len()].clone();
            let value = !(state >> 20).is_multiple_of(4);
            let slot = value.then(|| format!("v{sequence}").into_bytes());
            memtable.insert(&key, sequence, slot.as_deref());
            model.push((key, sequence, slot));
        }
        let visible = |key: &[u8], at: u64| -> Option<Slot> {
            model
                .iter()
                .filter(|(k, sequence, _)| k == key && *sequence <= at)
                .max_by_key(|(_, sequence, _)| *sequence)
                .map(|(_, _, slot)| slot.clone())
        };
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        sorted_keys.dedup();
        for at in [0, 1, 2, 17, 60, 119, 120, u64::MAX] {
            let expected: Vec<(Vec<u8>, Slot)> = sorted_keys
                .iter()
                .filter_map(|key| visible(key, at).map(|slot| (key.clone(), slot)))
                .collect();
            for key in &sorted_keys {
                assert_eq!(
                    memtable.get_unfiltered(key, at),
                    visible(key, at),
                    "{key:?}@{at}"
                );
            }
            for chunk in [1, 2, 3, 7, usize::MAX] {
                for reverse in [false, true] {
                    let mut lower: Bound<Vec<u8>> = Bound::Unbounded;
                    let mut upper: Bound<Vec<u8>> = Bound::Unbounded;
                    let mut out = Vec::new();
                    loop {
                        let last = memtable.collect_range(
                            lower.as_ref().map(Vec::as_slice),
                            upper.as_ref().map(Vec::as_slice),
                            reverse,
                            chunk,
                            at,
                            &mut out,
                        );
                        match (last, reverse) {
                            (None, _) => break,
                            (Some(last), false) => lower = Bound::Excluded(last),
                            (Some(last), true) => upper = Bound::Excluded(last),
                        }
                    }
                    let mut wanted = expected.clone();
                    if reverse {
                        wanted.reverse();
                    }
                    assert_eq!(out, wanted, "at {at}, chunks of {chunk}, reverse {reverse}");
                }
            }
        }
        let mut flushed = Vec::new();
        memtable.for_each(|key, versions| {
            for (sequence, slot) in versions.iter() {
                flushed.push((key.to_vec(), *sequence, slot.map(<[u8]>::to_vec)));
            }
        });
        let mut expected = model.clone();
        expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        assert_eq!(
            flushed, expected,
            "a flush sees every version, newest first"
        );
    }

    #[test]
    #[should_panic(expected = "inserted twice")]
    fn a_version_inserted_twice_is_a_broken_invariant() {
        let memtable = Memtable::new(1 << 20);
        memtable.insert(b"k", 3, Some(b"a"));
        memtable.insert(b"k", 3, Some(b"b"));
    }
}
