//! A file's dirty sectors: for each sector written since the last sync, the sequence number
//! of the last write to it.
//!
//! Kept as one dense run of slots from the lowest dirty sector to the highest (0: clean;
//! write sequence numbers start at 1), not a map: the writes of a simulated file are
//! appends and overwrites near its end, so the run is short, and marking a 50 KiB value's
//! hundred sectors is a fill instead of a hundred tree inserts. It iterates in sector
//! order, as the `BTreeMap` it replaced did: the crash model draws one random decision per
//! dirty sector in that order, so the order is part of every seed's trace.

/// See the module doc.
#[derive(Debug, Default, Clone)]
pub(super) struct DirtySectors {
    /// The sector `seqs[0]` stands for.
    first: u64,
    /// Sequence numbers of sectors `first..`, 0 for a clean one; never ends in 0.
    seqs: Vec<u64>,
    /// Dirty sectors (non-zero slots).
    count: usize,
}

impl DirtySectors {
    /// Marks sectors `from..=to` written by write `seq` (non-zero).
    pub(super) fn mark(&mut self, from: u64, to: u64, seq: u64) {
        debug_assert!(seq != 0 && from <= to);
        if self.seqs.is_empty() {
            self.first = from;
        } else if from < self.first {
            let shift = (self.first - from) as usize;
            self.seqs
                .splice(0..0, std::iter::repeat_n(0, shift))
                .for_each(drop);
            self.first = from;
        }
        let (start, end) = ((from - self.first) as usize, (to - self.first) as usize + 1);
        if self.seqs.len() < end {
            self.seqs.resize(end, 0);
        }
        for slot in &mut self.seqs[start..end] {
            self.count += usize::from(*slot == 0);
            *slot = seq;
        }
    }

    /// Forgets every dirty sector at or past `limit`.
    pub(super) fn keep_below(&mut self, limit: u64) {
        let keep = limit.saturating_sub(self.first) as usize;
        if keep < self.seqs.len() {
            self.count -= self.seqs[keep..].iter().filter(|&&seq| seq != 0).count();
            self.seqs.truncate(keep);
            while self.seqs.last() == Some(&0) {
                self.seqs.pop();
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.seqs.clear();
        self.count = 0;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// `(sector, seq)` of each dirty sector, in sector order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.first;
        self.seqs
            .iter()
            .enumerate()
            .filter(|(_, &seq)| seq != 0)
            .map(move |(i, &seq)| (first + i as u64, seq))
    }

    /// The dirty sectors, in order.
    pub(super) fn sectors(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(sector, _)| sector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The same marks and cuts on a `BTreeMap` (what this replaced) and on the dense run
    /// agree at every step.
    #[test]
    fn marks_and_cuts_agree_with_a_map() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for _ in 0..200 {
            let (mut map, mut dense) = (BTreeMap::new(), DirtySectors::default());
            for seq in 1..60 {
                match next(10) {
                    0 => {
                        map.clear();
                        dense.clear();
                    }
                    1 | 2 => {
                        let limit = next(70);
                        map.retain(|&sector, _| sector < limit);
                        dense.keep_below(limit);
                    }
                    _ => {
                        let from = next(64);
                        let to = from + next(8);
                        for sector in from..=to {
                            map.insert(sector, seq);
                        }
                        dense.mark(from, to, seq);
                    }
                }
                let expected: Vec<(u64, u64)> = map.iter().map(|(&k, &v)| (k, v)).collect();
                assert_eq!(dense.iter().collect::<Vec<_>>(), expected);
                assert_eq!(dense.len(), map.len());
                assert_eq!(dense.is_empty(), map.is_empty());
            }
        }
    }
}
