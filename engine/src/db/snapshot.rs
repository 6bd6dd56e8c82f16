//! Snapshots: a reader's fixed point in the commit order.
//!
//! A snapshot is a sequence number, registered while it lives. Reads at it see exactly the
//! writes numbered up to it: the memtables keep every version until they are flushed, and a
//! flush or compaction keeps each version some registered snapshot still sees
//! (`retention.rs`). A snapshot pins no files and no memtable: it reads whatever the current
//! view is, at its sequence.
//!
//! The registry is a plain `std` mutex, held for a map update and never across anything
//! that blocks, so it is no scheduling point under simulation. A snapshot's sequence is read
//! from the published sequence under that mutex, and a flush or compaction copies the
//! registry before it merges: a snapshot registered after the copy reads at or above every
//! version the merge holds, so it needs only each key's newest.

use super::{owned_bound, DbInner};
use crate::error::Result;
use crate::iterator::{Bounds, DbIterator};
use crate::retention::Retention;
use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// The live snapshots: how many are registered at each sequence.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    live: Mutex<BTreeMap<u64, usize>>,
}

impl Snapshots {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, usize>> {
        // Plain counts, updated in one step: a panic elsewhere cannot leave them torn.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live snapshots' sequences, ascending.
    pub(super) fn sequences(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }
}

/// A consistent, read-only view of the database at one point of its commit order: every
/// batch committed before [`Db::snapshot`](crate::Db::snapshot) returned is in it whole,
/// and nothing committed later is. Reads through it see that view however the database
/// changes meanwhile (writes, flushes, compactions). Dropping it lets compaction discard the
/// versions only it needed; a snapshot is not kept across a reopen.
///
/// ```
/// # use std::sync::Arc;
/// # use strata_engine::{Db, Options, WriteOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = Db::open(Arc::new(strata_vfs::RealFs::new()), dir.path(), Options::default()).unwrap();
/// db.put("k", "old", WriteOptions::default()).unwrap();
/// let snapshot = db.snapshot();
/// db.put("k", "new", WriteOptions::default()).unwrap();
/// db.compact_all().unwrap();
/// assert_eq!(snapshot.get("k").unwrap(), Some(b"old".to_vec()));
/// assert_eq!(db.get("k").unwrap(), Some(b"new".to_vec()));
/// ```
pub struct Snapshot {
    inner: Arc<DbInner>,
    sequence: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Snapshot({} at {})",
            self.inner.dir.display(),
            self.sequence
        )
    }
}

impl Snapshot {
    pub(super) fn new(inner: &Arc<DbInner>) -> Snapshot {
        let mut live = inner.snapshots.lock();
        let sequence = inner.visible_sequence.load(Ordering::Acquire);
        *live.entry(sequence).or_insert(0) += 1;
        drop(live);
        Snapshot {
            inner: Arc::clone(inner),
            sequence,
        }
    }

    /// The snapshot's sequence number: it sees exactly the writes numbered up to it (see
    /// [`Db::write_sequenced`](crate::Db::write_sequenced)).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The value of `key` in the snapshot, if any. `Err(Error::Closed)` once the database
    /// is closed.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.inner.get_at(key.as_ref(), self.sequence)
    }

    /// A scan of `range` in the snapshot (forward, or in reverse with `.rev()`).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<DbIterator> {
        let bounds = Bounds {
            lower: owned_bound(range.start_bound()),
            upper: owned_bound(range.end_bound()),
        };
        self.inner.scan_at(bounds, self.sequence)
    }

    /// A scan of every key in the snapshot.
    pub fn iter(&self) -> Result<DbIterator> {
        self.range::<&[u8], _>(..)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut live = self.inner.snapshots.lock();
        match live.get_mut(&self.sequence) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                live.remove(&self.sequence);
            }
            None => unreachable!("a live snapshot is registered"),
        }
    }
}

impl DbInner {
    /// The versions a flush or compaction starting now must keep.
    pub(super) fn retention(&self) -> Retention {
        Retention::new(self.snapshots.sequences())
    }
}
