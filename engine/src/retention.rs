//! Which versions of a key a flush or a compaction keeps, given the live snapshots.
//!
//! A reader at sequence `s` sees a key's newest version at or below `s`. Of a key's versions
//! `v1, v2, …` (newest first), `v1` is what every reader from now on sees, and an older `vi`
//! is what a snapshot `s` sees exactly when `seq(vi) <= s < seq(v(i-1))`. So `vi` is kept
//! only if some live snapshot falls in that interval. Snapshots made later are no help to
//! older versions: they read at the visible sequence, at or above every version a flush or
//! compaction holds.
//!
//! A kept version that no live snapshot is older than is written without its sequence number
//! (as 0): every reader there will ever be sees it, so nothing needs to tell it from older
//! versions. Only a key's oldest kept version can be so: a kept version below it would need a
//! snapshot older than it.

/// The live snapshots a flush or compaction must serve, taken when it starts.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Ascending.
    snapshots: Vec<u64>,
}

impl Retention {
    /// For these live snapshots (any order, repeats allowed).
    pub fn new(mut snapshots: Vec<u64>) -> Retention {
        snapshots.sort_unstable();
        snapshots.dedup();
        Retention { snapshots }
    }

    /// Whether some snapshot reads at a sequence in `[from, to)`.
    fn snapshot_in(&self, from: u64, to: u64) -> bool {
        let first_at_or_above = self.snapshots.partition_point(|&s| s < from);
        self.snapshots
            .get(first_at_or_above)
            .is_some_and(|&s| s < to)
    }

    /// Keeps, of one key's `versions` (newest first, as `(sequence, slot)`; sequence 0 is
    /// visible to all), those a reader may still see, zeroing the sequence where no snapshot
    /// needs it. With `nothing_older_below` (a compaction that knows no deeper level holds
    /// the key), trailing tombstones go too: below them there is nothing left to hide.
    pub fn retain<Value>(
        &self,
        versions: &mut Vec<(u64, Option<Value>)>,
        nothing_older_below: impl FnOnce() -> bool,
    ) {
        let mut newer: Option<u64> = None;
        versions.retain(|&(sequence, _)| {
            let keep = newer.is_none_or(|newer| self.snapshot_in(sequence, newer));
            newer = Some(sequence);
            keep
        });
        if let Some(last) = versions.last_mut() {
            if self
                .snapshots
                .first()
                .is_none_or(|&oldest| oldest >= last.0)
            {
                last.0 = 0;
            }
        }
        if versions.last().is_some_and(|(_, slot)| slot.is_none()) && nothing_older_below() {
            while versions.last().is_some_and(|(_, slot)| slot.is_none()) {
                versions.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::Slot;

    fn value(text: &str) -> Slot {
        Some(text.as_bytes().to_vec())
    }

    /// What a reader at `at` sees of `versions` (newest first).
    fn seen(versions: &[(u64, Slot)], at: u64) -> Option<Slot> {
        versions
            .iter()
            .find(|(sequence, _)| *sequence <= at)
            .map(|(_, slot)| slot.clone())
    }

    #[test]
    fn without_snapshots_only_the_newest_version_stays_and_loses_its_sequence() {
        let mut versions = vec![(9, value("nine")), (5, None), (3, value("three"))];
        Retention::new(vec![]).retain(&mut versions, || false);
        assert_eq!(versions, vec![(0, value("nine"))]);
    }

    #[test]
    fn every_snapshot_reads_what_it_read_before() {
        let all = vec![
            (20, value("twenty")),
            (15, None),
            (12, value("twelve")),
            (7, value("seven")),
            (3, None),
            (1, value("one")),
        ];
        // Every subset of these snapshot points, with and without a deeper level.
        let points = [0, 1, 2, 3, 6, 7, 11, 12, 14, 15, 19, 20, 25];
        for mask in 0u32..1 << points.len() {
            let snapshots: Vec<u64> = (0..points.len())
                .filter(|i| mask & 1 << i != 0)
                .map(|i| points[i])
                .collect();
            for nothing_below in [false, true] {
                let mut kept = all.clone();
                Retention::new(snapshots.clone()).retain(&mut kept, || nothing_below);
                for &at in snapshots.iter().chain(&[u64::MAX]) {
                    let before = seen(&all, at).flatten();
                    let after = seen(&kept, at).flatten();
                    assert_eq!(after, before, "snapshots {snapshots:?}, reader at {at}");
                }
                let sequences: Vec<u64> = kept.iter().map(|(s, _)| *s).collect();
                assert!(
                    sequences.windows(2).all(|w| w[0] > w[1]),
                    "kept versions stay newest first: {sequences:?}"
                );
            }
        }
    }

    #[test]
    fn a_version_between_two_snapshots_is_dropped() {
        let mut versions = vec![
            (20, value("twenty")),
            (12, value("twelve")),
            (7, value("seven")),
        ];
        Retention::new(vec![8]).retain(&mut versions, || false);
        assert_eq!(versions, vec![(20, value("twenty")), (0, value("seven"))]);
    }
}
