//! The prefix walk: which prefix of the epoch's writes, if any, a recovered state is.
//!
//! Recovery may yield the base state plus any prefix `w[0..k]` of the epoch's non-rejected
//! writes, in issue order, with `k` at least the number acknowledged durable. The walk keeps
//! the running state as an overlay on the base and the count of keys where it differs from the
//! recovered state, so each step costs the keys of one batch, not a comparison of two states.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::{entries, for_each_difference, Checker, Status};

/// The result of walking the candidate prefixes of an epoch.
pub(super) enum PrefixSearch {
    /// The smallest allowed prefix length whose state equals the recovered state.
    Match(usize),
    /// No allowed prefix matches.
    NoMatch {
        /// The allowed prefix closest to matching (fewest differing keys, ties to the larger).
        best_k: usize,
        /// How many keys differ at `best_k`.
        best_mismatch: usize,
        /// The largest prefix *below* `k_min` that matches exactly, if any: the tell-tale of a
        /// lost durable write.
        below: Option<usize>,
    },
}

impl Checker {
    /// The local numbers of the epoch's non-rejected writes, in issue order: the sequence
    /// whose prefixes recovery may yield.
    pub(super) fn prefix_order(&self) -> Vec<usize> {
        (0..self.batches.len())
            .filter(|&local| self.status(local) != Status::Rejected)
            .collect()
    }

    /// How many writes of `order` are acknowledged durable. Computed at recovery rather than
    /// at acknowledgement because an earlier write may be rejected later.
    pub(super) fn k_min(&self, order: &[usize]) -> usize {
        order.partition_point(|&local| local < self.durable_upto)
    }

    /// Walks `k` from 0 to `n`, keeping the running state `base + w[0..k]` as an overlay on
    /// the base and the count of keys where it differs from `state`.
    pub(super) fn search_prefix(
        &self,
        state: &BTreeMap<Vec<u8>, Vec<u8>>,
        order: &[usize],
        k_min: usize,
    ) -> PrefixSearch {
        let mut mismatch = 0usize;
        let _: ControlFlow<()> =
            for_each_difference(entries(&self.base), entries(state), |_, _, _| {
                mismatch += 1;
                ControlFlow::Continue(())
            });

        let mut overlay: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        let mut best: Option<(usize, usize)> = None; // (mismatch, k)
        let mut below = None;
        for k in 0..=order.len() {
            if k > 0 {
                for mutation in &self.batches[order[k - 1]] {
                    let key = mutation.key();
                    let want = state.get(key).map(Vec::as_slice);
                    let current = match overlay.get(key) {
                        Some(value) => *value,
                        None => self.base.get(key).map(Vec::as_slice),
                    };
                    let next = mutation.value();
                    overlay.insert(key, next);
                    match (current == want, next == want) {
                        (true, false) => mismatch += 1,
                        (false, true) => mismatch -= 1,
                        _ => {}
                    }
                }
            }
            if k < k_min {
                if mismatch == 0 {
                    below = Some(k);
                }
                continue;
            }
            if mismatch == 0 {
                return PrefixSearch::Match(k);
            }
            if best.is_none_or(|(fewest, _)| mismatch <= fewest) {
                best = Some((mismatch, k));
            }
        }
        let (best_mismatch, best_k) = best.unwrap_or((0, order.len()));
        PrefixSearch::NoMatch {
            best_k,
            best_mismatch,
            below,
        }
    }
}
