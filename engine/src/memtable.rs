//! The memtable: a concurrent sorted map (crossbeam's lock-free skip list) from user key to
//! its versions, each a sequence number and a value or a tombstone. Writers insert under the
//! engine's write leader; readers read without locks, at a sequence number: they see the
//! newest version at or below it, so a commit group's versions, inserted before the group's
//! last sequence is published, are invisible until all of them are there (batches are atomic
//! for readers), and a snapshot keeps reading what it saw.
//!
//! Every version stays until the memtable is flushed: the memtable's size already counts
//! every write, overwritten or not, so keeping them costs no more memory than the budget,
//! and the flush (which knows the live snapshots) keeps only the versions one needs.
//!
//! Values are held as `Arc<[u8]>`: one copy in on insert, and a flush takes its versions
//! out of a key's lock as reference counts, not copies (a read still copies its answer out,
//! as it returns an owned [`Slot`]).
//!
//! A concurrent bloom filter (atomic words, one 64-bit word per key) sits in front of the
//! skip list, so that a read of a key the memtable does not hold — most reads, once the data
//! is mostly in tables — costs one cache line instead of a skip-list search.

use crate::key_prefix::{compare_prefixed, KeyPrefix};
use crate::sstable::KeyHash;
use crossbeam_skiplist::SkipMap;
use std::cmp;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// A memtable key: the bytes and their 16-byte prefix. The skip list compares keys about
/// 20 times per insert or lookup; comparing prefixes first makes most of those one integer
/// compare instead of a `memcmp` call (measured: the `memcmp`s were a fifth of a random
/// write's time). Orders exactly as the bytes do.
#[derive(Debug, Clone)]
struct MemKey {
    prefix: KeyPrefix,
    bytes: Vec<u8>,
}

impl MemKey {
    fn new(bytes: &[u8]) -> MemKey {
        MemKey {
            prefix: KeyPrefix::of(bytes),
            bytes: bytes.to_vec(),
        }
    }
}

impl Ord for MemKey {
    fn cmp(&self, other: &MemKey) -> cmp::Ordering {
        compare_prefixed(&self.bytes, self.prefix, &other.bytes, other.prefix)
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &MemKey) -> Option<cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &MemKey) -> bool {
        self.cmp(other) == cmp::Ordering::Equal
    }
}

impl Eq for MemKey {}

/// Per-entry bookkeeping counted against the memtable size: the skip-list node (its tower,
/// the key's prefix and vector, the versions' cell), the key's and the value's heap
/// allocations, and the allocator's rounding of all three. Measured, not estimated: a
/// 100,000- and a 300,000-entry fill of one memtable (`strata bench --workloads fillrandom`,
/// 16-byte keys, mimalloc) grew the process by 220 bytes per entry with 10-byte values and
/// 322 with 100-byte ones, about 200 more than the key and value. So `memtable_size` is the
/// memory a memtable takes. (It was 80: a 64 MiB memtable took about 105 MiB.)
const ENTRY_OVERHEAD: usize = 200;

fn lock(cell: &Mutex<Versions>) -> MutexGuard<'_, Versions> {
    // A cell holds plain data; a panic elsewhere cannot leave it half-written.
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a key maps to: a value, or `None` for a tombstone.
pub type Slot = Option<Vec<u8>>;

/// A version's value as the memtable holds it (shared, see the module doc), or `None` for a
/// tombstone.
pub type SharedSlot = Option<Arc<[u8]>>;

/// The owned [`Slot`] of a held value.
fn owned(slot: &SharedSlot) -> Slot {
    slot.as_deref().map(<[u8]>::to_vec)
}

/// One key's versions. Versions are inserted in increasing sequence order (the commit order),
/// so the newest is the last inserted.
#[derive(Debug)]
struct Versions {
    newest: (u64, SharedSlot),
    /// Oldest first; empty (no allocation) for a key written once.
    older: Vec<(u64, SharedSlot)>,
}

impl Versions {
    /// The newest version at or below `sequence`.
    fn visible(&self, sequence: u64) -> Option<&SharedSlot> {
        if self.newest.0 <= sequence {
            return Some(&self.newest.1);
        }
        self.older
            .iter()
            .rev()
            .find(|(version, _)| *version <= sequence)
            .map(|(_, slot)| slot)
    }
}

/// A sorted in-memory table of recent writes.
#[derive(Debug)]
pub struct Memtable {
    /// Values sit in a cell updated in place: crossbeam's `insert` over an existing key
    /// unlinks the old node before linking the new one, and a reader in between would find
    /// the key absent and fall through to older data (a deleted value could reappear).
    map: SkipMap<MemKey, Mutex<Versions>>,
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

    /// Adds version `sequence` of `key`: `value`, or a tombstone. Sequences must increase
    /// from one insert of a key to the next.
    pub fn insert(&self, key: &[u8], sequence: u64, value: Option<&[u8]>) {
        let size = key.len() + value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
        self.approximate_size.fetch_add(size, Ordering::Relaxed);
        // Filter bits first, entry second: once the entry is visible its bits are set, so
        // the filter never hides an entry a reader could otherwise see.
        self.filter.insert(KeyHash::of(key));
        let mut fresh = Some((sequence, value.map(Arc::<[u8]>::from)));
        let entry = self.map.get_or_insert_with(MemKey::new(key), || {
            Mutex::new(Versions {
                newest: fresh.take().expect("called once"),
                older: Vec::new(),
            })
        });
        if let Some(version) = fresh {
            // The key was there already: its newest version becomes an older one.
            let mut versions = lock(entry.value());
            assert!(
                versions.newest.0 < version.0,
                "memtable versions are inserted in sequence order"
            );
            let previous = std::mem::replace(&mut versions.newest, version);
            versions.older.push(previous);
        }
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
        let entry = self.map.get(&MemKey::new(key))?;
        let versions = lock(entry.value());
        versions.visible(sequence).map(owned)
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
    pub fn collect_range<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        sequence: u64,
        out: &mut Vec<(Vec<u8>, Slot)>,
    ) -> Option<Vec<u8>> {
        let lower = lower.map(MemKey::new);
        let upper = upper.map(MemKey::new);
        let range = self.map.range((lower, upper));
        let mut last = None;
        let mut visit = |entry: crossbeam_skiplist::map::Entry<'a, MemKey, Mutex<Versions>>| {
            let key = &entry.key().bytes;
            if let Some(slot) = lock(entry.value()).visible(sequence) {
                out.push((key.clone(), owned(slot)));
            }
            // The entry, not a copy of its key: only the last one's key is needed.
            last = Some(entry);
        };
        if reverse {
            range.rev().take(limit).for_each(&mut visit);
        } else {
            range.take(limit).for_each(&mut visit);
        }
        last.map(|entry| entry.key().bytes.clone())
    }

    /// Visits every key in key order with its versions, newest first. The key's lock is not
    /// held while `visit` runs: a flush's `visit` writes to the table file, and a lock held
    /// across that would block every reader of the key for the write (and hang a simulation,
    /// where the write is a scheduling point and the lock is not the scheduler's).
    /// `visit` may change the list it is handed (a flush drops the versions it does not keep).
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &mut Vec<(u64, SharedSlot)>)) {
        let mut versions = Vec::new();
        for entry in self.map.iter() {
            versions.clear();
            {
                let held = lock(entry.value());
                versions.push(held.newest.clone());
                versions.extend(held.older.iter().rev().cloned());
            }
            visit(&entry.key().bytes, &mut versions);
        }
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
            assert_eq!(versions.as_slice(), &[(1, Some(Arc::from(key)))]);
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
                .map(|(sequence, slot)| (*sequence, owned(slot)))
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
}
