//! The model at a sequence number: what a key holds there, the entries of a range, and an
//! iterator over them to replay a scan's calls against (`snapshots.rs` uses these).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::show::{printable, printable_opt};
use crate::snapshots::{IterStep, WriteRef};

/// One change to a key: its sequence number, the value after it, the op index that made it.
type Change<'a> = (u64, Option<&'a [u8]>, u64);

/// Every change to each key by the epoch's numbered writes, in sequence order.
pub(crate) struct Timeline<'a> {
    base: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    /// Per key, in sequence order.
    changes: BTreeMap<&'a [u8], Vec<Change<'a>>>,
}

impl<'a> Timeline<'a> {
    pub(crate) fn new(
        base: &'a BTreeMap<Vec<u8>, Vec<u8>>,
        writes: &[WriteRef<'a>],
    ) -> Timeline<'a> {
        let mut changes: BTreeMap<&[u8], Vec<Change<'_>>> = BTreeMap::new();
        for write in writes {
            for (offset, mutation) in write.batch.iter().enumerate() {
                changes.entry(mutation.key()).or_default().push((
                    write.first + offset as u64,
                    mutation.value(),
                    write.op_index,
                ));
            }
        }
        Timeline { base, changes }
    }

    /// What `key` holds in the model at sequence `s`.
    pub(crate) fn value_at(&self, key: &[u8], s: u64) -> Option<&'a [u8]> {
        let base = || self.base.get(key).map(Vec::as_slice);
        match self.changes.get(key) {
            None => base(),
            Some(changes) => match changes.partition_point(|c| c.0 <= s) {
                0 => base(),
                n => changes[n - 1].1,
            },
        }
    }

    /// The model at sequence `s` within the bounds, in key order.
    pub(crate) fn range_at(
        &self,
        lower: &Bound<Vec<u8>>,
        upper: &Bound<Vec<u8>>,
        s: u64,
    ) -> Vec<(&'a [u8], &'a [u8])> {
        if empty_range(lower, upper) {
            return Vec::new();
        }
        let bounds = (as_slice(lower), as_slice(upper));
        let mut keys: Vec<&'a [u8]> = self
            .base
            .range::<[u8], _>(bounds)
            .map(|(key, _)| key.as_slice())
            .chain(self.changes.range::<[u8], _>(bounds).map(|(key, _)| *key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| Some((key, self.value_at(key, s)?)))
            .collect()
    }

    /// How `key` came to hold what it holds at `s`: its base value and its changes, those
    /// past `s` marked.
    pub(crate) fn story(&self, key: &[u8], s: u64) -> String {
        let mut text = format!(
            "  key {}: the epoch's base holds {}",
            printable(key),
            printable_opt(self.base.get(key).map(Vec::as_slice))
        );
        if let Some(changes) = self.changes.get(key) {
            let skipped = changes.len().saturating_sub(8);
            if skipped > 0 {
                text.push_str(&format!("; {skipped} earlier changes"));
            }
            for (sequence, value, op) in &changes[skipped..] {
                text.push_str(&format!(
                    "; step {op} sets {} at sequence {sequence}{}",
                    printable_opt(*value),
                    if *sequence > s { " (after)" } else { "" }
                ));
            }
        }
        text
    }
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether no key lies within the bounds (`BTreeMap::range` panics on some such bounds).
fn empty_range(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    match (lower, upper) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

/// Where a scan's answer and the model's part.
pub(crate) struct ScanMismatch<'a> {
    /// Which call.
    pub(crate) index: usize,
    /// What the engine answered.
    pub(crate) got: Option<(&'a [u8], &'a [u8])>,
    /// What the model answers.
    pub(crate) expected: Option<(&'a [u8], &'a [u8])>,
}

/// One end of the model iterator.
#[derive(Default)]
struct End<'a> {
    /// Where a seek put this end (inclusive).
    from: Option<&'a [u8]>,
    /// The last key this end returned.
    last: Option<&'a [u8]>,
    done: bool,
}

/// Replays `steps` on an iterator over `entries` (the model within the scan's bounds, in key
/// order) and compares each answer.
pub(crate) fn replay_scan<'a>(
    entries: &[(&'a [u8], &'a [u8])],
    steps: &'a [IterStep],
) -> Result<(), ScanMismatch<'a>> {
    let mut front = End::default();
    let mut back = End::default();
    for (index, step) in steps.iter().enumerate() {
        let (expected, got) = match step {
            IterStep::Seek(key) => {
                front = End {
                    from: Some(key),
                    ..End::default()
                };
                continue;
            }
            IterStep::SeekForPrev(key) => {
                back = End {
                    from: Some(key),
                    ..End::default()
                };
                continue;
            }
            IterStep::Next(got) => {
                let candidate = entries.iter().copied().find(|(key, _)| {
                    front.from.is_none_or(|from| *key >= from)
                        && front.last.is_none_or(|last| *key > last)
                });
                (
                    step_end(&mut front, &back, candidate, |k, met| k >= met),
                    got,
                )
            }
            IterStep::Back(got) => {
                let candidate = entries.iter().rev().copied().find(|(key, _)| {
                    back.from.is_none_or(|from| *key <= from)
                        && back.last.is_none_or(|last| *key < last)
                });
                (
                    step_end(&mut back, &front, candidate, |k, met| k <= met),
                    got,
                )
            }
        };
        let got = got.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice()));
        if got != expected {
            return Err(ScanMismatch {
                index,
                got,
                expected,
            });
        }
    }
    Ok(())
}

/// Moves one end to `candidate`, unless it is done or would meet what the other end returned.
fn step_end<'a>(
    end: &mut End<'a>,
    other: &End<'a>,
    candidate: Option<(&'a [u8], &'a [u8])>,
    crossed: impl Fn(&[u8], &[u8]) -> bool,
) -> Option<(&'a [u8], &'a [u8])> {
    if end.done {
        return None;
    }
    match candidate {
        Some((key, value)) if !other.last.is_some_and(|met| crossed(key, met)) => {
            end.last = Some(key);
            Some((key, value))
        }
        _ => {
            end.done = true;
            None
        }
    }
}
