//! The memtable: a concurrent sorted map (crossbeam's lock-free skip list) from user key to
//! its newest value or a tombstone. Writers insert under the engine's write leader; readers
//! read without locks. There is one version per key: Strata has no snapshots, so an
//! overwrite replaces the old value in place.

use crossbeam_skiplist::SkipMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Per-entry bookkeeping counted against the memtable size (skip-list node, two vectors).
const ENTRY_OVERHEAD: usize = 64;

/// What a key maps to.
pub type Slot = Option<Vec<u8>>;

/// A sorted in-memory table of recent writes.
#[derive(Debug, Default)]
pub struct Memtable {
    map: SkipMap<Vec<u8>, Slot>,
    approximate_size: AtomicUsize,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Memtable {
        Memtable::default()
    }

    /// Sets `key` to `value` (`None`: a tombstone).
    pub fn insert(&self, key: &[u8], value: Option<&[u8]>) {
        let size = key.len() + value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
        self.approximate_size.fetch_add(size, Ordering::Relaxed);
        self.map.insert(key.to_vec(), value.map(|v| v.to_vec()));
    }

    /// `None`: the memtable knows nothing of `key`; `Some(None)`: a tombstone;
    /// `Some(Some(v))`: the value.
    pub fn get(&self, key: &[u8]) -> Option<Slot> {
        self.map.get(key).map(|entry| entry.value().clone())
    }

    /// Bytes written into this memtable (including overwritten versions).
    pub fn approximate_size(&self) -> usize {
        self.approximate_size.load(Ordering::Relaxed)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Appends up to `limit` entries with keys after `after` (or from `start`) and up to
    /// `end`, in order, to `out`. Iteration is done in chunks like this so an iterator can own
    /// its memtable (an `Arc`) without borrowing into it.
    pub fn collect_range(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        limit: usize,
        out: &mut Vec<(Vec<u8>, Slot)>,
    ) {
        for entry in self.map.range::<[u8], _>((lower, upper)).take(limit) {
            out.push((entry.key().clone(), entry.value().clone()));
        }
    }

    /// Visits every entry in key order.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], Option<&[u8]>)) {
        for entry in self.map.iter() {
            visit(entry.key(), entry.value().as_deref());
        }
    }
}
