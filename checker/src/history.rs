//! Concurrent histories: one epoch of operations from several clients, each with an
//! invocation and a completion instant, checked against the engine's claimed commit order.
//!
//! With several clients, "issue order" no longer orders the writes. The engine reports the
//! sequence number it gave each batch (its commit order, the order recovery replays), and
//! the checker takes that claim and verifies it instead of searching for a linearization:
//!
//! 1. **Real-time order.** A write acknowledged before another was invoked must have the
//!    lower sequence number, and no two batches may share a number. One sort and one pass.
//! 2. **Reads.** A point read of `k` (or one key of a scan) invoked at `i` and answered at
//!    `c` may return the value `k` holds after any operation position `p` with
//!    `low <= p <= high`, where `low` is the last position of every write acknowledged
//!    before `i` (those must be visible) and `high` the last position of every write invoked
//!    before `c` (nothing later can be). Positions are per operation, not per batch, so
//!    this rule alone would let a scan see part of a batch. So a read never returns a value
//!    that was never written, nor one overwritten by a write that completed before the read
//!    began.
//! 3. **Views.** The engine now publishes a commit group only whole, and every scan reports
//!    the sequence it reads at: snapshots and scans are views (`snapshots.rs`), checked on
//!    settling against the epoch's numbered writes. A view's sequence must respect real
//!    time and never split a batch, and whatever was read through it must equal the model
//!    at it, which is exact: batch atomicity for readers is checked there.
//! 4. **Recovery.** The epoch's writes are handed to the sequential [`Checker`] in sequence
//!    order, with each durable point (a sync, flush or close acknowledged before the machine
//!    halted) placed after the last write acknowledged before it was invoked. The prefix rule
//!    of the sequential checker then applies unchanged, in linear time, and keeps its
//!    explanations.
//!
//! Outcomes: a write with no sequence number never reached the WAL (`Rejected`); one with a
//! number that failed, or whose answer came after the machine halted (in a real power cut
//! nobody would have heard it), is in doubt (`Failed`); only an answer before the halt is an
//! acknowledgement.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::checker::Checker;
use crate::show::printable_opt;
use crate::snapshots::{IterStep, ViewCounts, ViewId, ViewKind, Views, WriteRef};
use crate::types::{Mutation, Outcome, Violation, ViolationKind};

/// A logical instant: the history numbers every invocation and completion in the order the
/// simulator saw them.
pub type Instant = u64;

/// Handle of a write recorded in a [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryWrite(usize);

#[derive(Debug)]
struct Write {
    op_index: u64,
    client: usize,
    batch: Vec<Mutation>,
    sync: bool,
    invoked: Instant,
    /// `None` while in flight, and for an answer that came after the halt.
    acknowledged: Option<Instant>,
    outcome: Option<Outcome>,
    sequence: Option<u64>,
}

impl Write {
    fn last_position(&self) -> Option<u64> {
        self.sequence
            .map(|first| first + self.batch.len().saturating_sub(1) as u64)
    }
}

#[derive(Debug)]
struct Read {
    op_index: u64,
    client: usize,
    invoked: Instant,
    completed: Instant,
    /// The keys checked and what the engine answered for each.
    answers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    what: String,
}

/// One operation on a key, in commit order: (position, the value after it, the op index).
type Change<'a> = (u64, Option<&'a [u8]>, u64);

/// One epoch of a concurrent run. See the module doc.
#[derive(Debug, Default)]
pub struct History {
    clock: Instant,
    halted: bool,
    writes: Vec<Write>,
    /// Every key a write of this history touches (the keys a scan must account for).
    written_keys: BTreeSet<Vec<u8>>,
    reads: Vec<Read>,
    /// Invocation instants of durable points acknowledged before the halt.
    durable: Vec<(u64, Instant)>,
    /// Snapshots and scans with their sequence numbers, and the reads through them
    /// (`snapshots.rs`); the writes are this history's own.
    views: Views,
}

impl History {
    /// An empty epoch.
    pub fn new() -> History {
        History::default()
    }

    fn tick(&mut self) -> Instant {
        self.clock += 1;
        self.clock
    }

    /// The machine halted (a crash point): answers from now on are not acknowledgements.
    pub fn halt(&mut self) {
        self.halted = true;
    }

    /// Whether [`History::halt`] was called.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Writes recorded so far.
    pub fn write_count(&self) -> usize {
        self.writes.len()
    }

    /// A client invokes a write.
    pub fn invoke_write(
        &mut self,
        op_index: u64,
        client: usize,
        batch: Vec<Mutation>,
        sync: bool,
    ) -> HistoryWrite {
        let invoked = self.tick();
        for mutation in &batch {
            if !self.written_keys.contains(mutation.key()) {
                self.written_keys.insert(mutation.key().to_vec());
            }
        }
        self.writes.push(Write {
            op_index,
            client,
            batch,
            sync,
            invoked,
            acknowledged: None,
            outcome: None,
            sequence: None,
        });
        HistoryWrite(self.writes.len() - 1)
    }

    /// The write returned: `ok` or not, with the sequence number the engine reported.
    pub fn complete_write(&mut self, write: HistoryWrite, ok: bool, sequence: Option<u64>) {
        let now = self.tick();
        let halted = self.halted;
        let entry = &mut self.writes[write.0];
        entry.sequence = sequence;
        entry.outcome = Some(match (ok, sequence) {
            // An empty batch has nothing to order and no effect.
            (_, None) if entry.batch.is_empty() => Outcome::Rejected,
            (false, None) => Outcome::Rejected,
            // Acknowledged but unordered (`settle` reports it) or ordered: both are claims.
            (true, _) if !halted => Outcome::Ok,
            _ => Outcome::Failed,
        });
        if entry.outcome == Some(Outcome::Ok) {
            entry.acknowledged = Some(now);
        }
    }

    /// A client invokes a read, scan or durable point; pass the instant to its completion.
    pub fn invoke(&mut self) -> Instant {
        self.tick()
    }

    /// A point read answered.
    pub fn complete_read(
        &mut self,
        op_index: u64,
        client: usize,
        invoked: Instant,
        key: &[u8],
        answer: Option<Vec<u8>>,
    ) {
        let completed = self.tick();
        if self.halted {
            return;
        }
        self.reads.push(Read {
            op_index,
            client,
            invoked,
            completed,
            answers: vec![(key.to_vec(), answer)],
            what: "point read".into(),
        });
    }

    /// A scan of `[lower, upper)` answered `entries`. Every key the epoch knows of inside the
    /// range and missing from the answer is checked as answered "absent".
    #[allow(clippy::too_many_arguments)]
    pub fn complete_scan(
        &mut self,
        op_index: u64,
        client: usize,
        invoked: Instant,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        entries: &[(Vec<u8>, Vec<u8>)],
        base: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<(), Violation> {
        let completed = self.tick();
        if self.halted {
            return Ok(());
        }
        let in_range = |key: &[u8]| {
            lower.is_none_or(|lower| key >= lower) && upper.is_none_or(|upper| key < upper)
        };
        for (index, (key, _)) in entries.iter().enumerate() {
            let ordered = index == 0 || entries[index - 1].0 < *key;
            if !in_range(key) || !ordered {
                return Err(Violation {
                    op_index,
                    kind: ViolationKind::ScanMismatch,
                    explanation: format!(
                        "client {client}'s scan [{}, {}) returned key {} {}",
                        printable_opt(lower),
                        printable_opt(upper),
                        printable_opt(Some(key)),
                        if ordered {
                            "outside its range"
                        } else {
                            "out of order"
                        }
                    ),
                });
            }
        }
        let mut answers: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let range = (
            lower.map_or(Bound::Unbounded, |key| Bound::Included(key.to_vec())),
            upper.map_or(Bound::Unbounded, |key| Bound::Excluded(key.to_vec())),
        );
        // An inverted range is empty (and `BTreeMap::range` would panic on it).
        let inverted = matches!((lower, upper), (Some(lower), Some(upper)) if lower > upper);
        if !inverted {
            for key in base
                .range::<Vec<u8>, _>(range.clone())
                .map(|(key, _)| key)
                .chain(self.written_keys.range::<Vec<u8>, _>(range))
            {
                answers.insert(key.clone(), None);
            }
        }
        for (key, value) in entries {
            answers.insert(key.clone(), Some(value.clone()));
        }
        self.reads.push(Read {
            op_index,
            client,
            invoked,
            completed,
            answers: answers.into_iter().collect(),
            what: format!("scan [{}, {})", printable_opt(lower), printable_opt(upper)),
        });
        Ok(())
    }

    /// A snapshot (or a scan's iterator) invoked at `invoked` was made at `sequence`; `jobs`
    /// is the caller's job counter (see [`ViewCounts`]). `None` after the halt: nothing read
    /// through it is checked.
    pub fn complete_view(
        &mut self,
        op_index: u64,
        client: usize,
        invoked: Instant,
        kind: ViewKind,
        sequence: u64,
        jobs: u64,
    ) -> Option<ViewId> {
        let completed = self.tick();
        if self.halted {
            return None;
        }
        Some(
            self.views
                .view(op_index, client, kind, sequence, invoked, completed, jobs),
        )
    }

    /// A point read through `view` answered (checked against the model at its sequence).
    pub fn complete_view_get(
        &mut self,
        view: ViewId,
        op_index: u64,
        client: usize,
        key: &[u8],
        answer: Option<Vec<u8>>,
        jobs: u64,
    ) {
        self.tick();
        if !self.halted {
            self.views.get(view, op_index, client, key, answer, jobs);
        }
    }

    /// An iterator through `view` over `(lower, upper)` took `steps`.
    #[allow(clippy::too_many_arguments)]
    pub fn complete_view_scan(
        &mut self,
        view: ViewId,
        op_index: u64,
        client: usize,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        steps: Vec<IterStep>,
        jobs: u64,
    ) {
        self.tick();
        if !self.halted {
            self.views
                .scan(view, op_index, client, lower, upper, steps, jobs);
        }
    }

    /// A sync, flush or clean close invoked at `invoked` succeeded: every write acknowledged
    /// before `invoked` is durable.
    pub fn complete_durable(&mut self, op_index: u64, invoked: Instant) {
        self.tick();
        if !self.halted {
            self.durable.push((op_index, invoked));
        }
    }

    /// Checks the epoch (real-time order, reads) and hands its writes to `checker` in commit
    /// order, ready for [`Checker::crashed`] / [`Checker::recovered`].
    ///
    /// `base` is the state the history started from (what [`History::complete_scan`] was
    /// given): the checker's model when the history began. Returns what the view rules
    /// covered.
    pub fn settle(
        self,
        checker: &mut Checker,
        base: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<ViewCounts, Violation> {
        let mut ordered: Vec<&Write> = self
            .writes
            .iter()
            .filter(|w| w.outcome != Some(Outcome::Rejected))
            .collect();
        if let Some(unordered) = ordered.iter().find(|w| w.sequence.is_none()) {
            return Err(Violation {
                op_index: unordered.op_index,
                kind: ViolationKind::OrderNotRealTime,
                explanation: format!(
                    "client {}'s write (step {}) was acknowledged without a sequence number",
                    unordered.client, unordered.op_index
                ),
            });
        }
        ordered.sort_by_key(|w| w.sequence);
        self.check_real_time(&ordered)?;
        self.check_reads(base, &ordered)?;
        let numbered = ordered
            .iter()
            .filter_map(|w| {
                Some(WriteRef {
                    op_index: w.op_index,
                    client: w.client,
                    first: w.sequence?,
                    batch: &w.batch,
                    invoked: w.invoked,
                    acknowledged: w.acknowledged,
                })
            })
            .collect();
        let counts = self.views.check_with(base, numbered)?;
        let marks = self.durable_marks(&ordered);
        drop(ordered);
        self.feed(checker, marks);
        Ok(counts)
    }

    fn check_real_time(&self, ordered: &[&Write]) -> Result<(), Violation> {
        for pair in ordered.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if first.last_position() >= second.sequence {
                return Err(Violation {
                    op_index: second.op_index,
                    kind: ViolationKind::OrderNotRealTime,
                    explanation: format!(
                        "the sequence numbers of step {} (client {}, {:?}..={:?}) and step {} \
                         (client {}, from {:?}) overlap",
                        first.op_index,
                        first.client,
                        first.sequence,
                        first.last_position(),
                        second.op_index,
                        second.client,
                        second.sequence
                    ),
                });
            }
        }
        // From the highest number down: the earliest acknowledgement among the writes
        // ordered after this one must not precede this one's invocation.
        let mut earliest_later: Option<&Write> = None;
        for write in ordered.iter().rev() {
            if let Some(later) = earliest_later {
                let acknowledged = later.acknowledged.expect("kept only when acknowledged");
                if acknowledged < write.invoked {
                    return Err(Violation {
                        op_index: write.op_index,
                        kind: ViolationKind::OrderNotRealTime,
                        explanation: format!(
                            "step {} (client {}) was acknowledged with sequence {:?} before step {} \
                             (client {}) was invoked, yet step {} got the lower sequence {:?}: \
                             the engine's commit order contradicts real time",
                            later.op_index,
                            later.client,
                            later.sequence,
                            write.op_index,
                            write.client,
                            write.op_index,
                            write.sequence
                        ),
                    });
                }
            }
            if let Some(acknowledged) = write.acknowledged {
                if earliest_later.is_none_or(|later| Some(acknowledged) < later.acknowledged) {
                    earliest_later = Some(write);
                }
            }
        }
        Ok(())
    }

    fn check_reads(
        &self,
        base: &BTreeMap<Vec<u8>, Vec<u8>>,
        ordered: &[&Write],
    ) -> Result<(), Violation> {
        if self.reads.is_empty() {
            return Ok(());
        }
        // Per key, every operation on it in commit order: (position, value after it, op).
        let mut timeline: BTreeMap<&[u8], Vec<Change<'_>>> = BTreeMap::new();
        for write in ordered {
            let first = write
                .sequence
                .expect("ordered writes have sequence numbers");
            for (offset, mutation) in write.batch.iter().enumerate() {
                timeline.entry(mutation.key()).or_default().push((
                    first + offset as u64,
                    mutation.value(),
                    write.op_index,
                ));
            }
        }
        // Running maxima over the writes by acknowledgement and by invocation instant, so
        // that each read finds its bounds by binary search.
        let by_acknowledgement = running_max(
            self.writes
                .iter()
                .filter_map(|w| Some((w.acknowledged?, w.last_position()?))),
        );
        let by_invocation = running_max(
            self.writes
                .iter()
                .filter_map(|w| Some((w.invoked, w.last_position()?))),
        );
        // Suffix minima of first positions by invocation: nothing invoked after a read
        // answered can be visible to it.
        let mut invoked_first: Vec<(Instant, u64)> = self
            .writes
            .iter()
            .filter_map(|w| Some((w.invoked, w.sequence?)))
            .collect();
        invoked_first.sort_unstable();
        for index in (0..invoked_first.len().saturating_sub(1)).rev() {
            invoked_first[index].1 = invoked_first[index].1.min(invoked_first[index + 1].1);
        }
        // Reads in invocation order, so that every read that answered before one began has
        // been placed: what it saw is a floor for the later one (no going back in time).
        let mut order: Vec<&Read> = self.reads.iter().collect();
        order.sort_by_key(|read| read.invoked);
        let mut placed: Vec<(Instant, Option<u64>, u64)> = Vec::new();
        for read in order {
            let floor = placed
                .iter()
                .filter(|(completed, _, _)| *completed < read.invoked)
                .max_by_key(|(_, seen, _)| *seen)
                .filter(|(_, seen, _)| seen.is_some());
            let low = bound_before(&by_acknowledgement, read.invoked).max(floor.and_then(|f| f.1));
            let later = invoked_first.partition_point(|entry| entry.0 <= read.completed);
            let mut high = bound_before(&by_invocation, read.completed);
            if let Some(&(_, first_later)) = invoked_first.get(later) {
                high = high.map(|high| high.min(first_later.saturating_sub(1)));
            }
            let mut seen = low;
            for (key, answer) in &read.answers {
                let empty = Vec::new();
                let changes = timeline.get(key.as_slice()).unwrap_or(&empty);
                let base_value = base.get(key).map(Vec::as_slice);
                // The value visible after position `low`, then every later change up to `high`.
                let settled = low.map_or(0, |low| changes.partition_point(|c| c.0 <= low));
                let mut allowed = vec![match settled {
                    0 => (base_value, None, low),
                    n => (changes[n - 1].1, Some(changes[n - 1].2), low),
                }];
                for change in &changes[settled..] {
                    if high.is_some_and(|high| change.0 <= high) {
                        allowed.push((change.1, Some(change.2), Some(change.0)));
                    }
                }
                if let Some(found) = allowed
                    .iter()
                    .find(|(value, _, _)| *value == answer.as_deref())
                {
                    seen = seen.max(found.2);
                    continue;
                }
                let listed: Vec<String> = allowed
                    .iter()
                    .map(|(value, op, _)| match op {
                        Some(op) => format!("{} (step {op})", printable_opt(*value)),
                        None => format!("{} (the epoch's base)", printable_opt(*value)),
                    })
                    .collect();
                let written_by = changes
                    .iter()
                    .find(|c| c.1 == answer.as_deref())
                    .map_or("no write of this epoch".to_string(), |c| {
                        format!("step {}", c.2)
                    });
                let floor_note = floor.map_or(String::new(), |(_, seen, op)| {
                    format!(
                        "; step {op}, which answered before this read began, saw position {seen:?}"
                    )
                });
                return Err(Violation {
                    op_index: read.op_index,
                    kind: if read.what == "point read" {
                        ViolationKind::ReadMismatch
                    } else {
                        ViolationKind::ScanMismatch
                    },
                    explanation: format!(
                        "client {}'s {} (step {}) answered {} for key {}, which {} wrote; a \
                         linearization allows only: {}\n  (visible through position {:?}, \
                         nothing past position {:?}{floor_note})",
                        read.client,
                        read.what,
                        read.op_index,
                        printable_opt(answer.as_deref()),
                        printable_opt(Some(key)),
                        written_by,
                        listed.join(", "),
                        low,
                        high
                    ),
                });
            }
            placed.push((read.completed, seen, read.op_index));
        }
        Ok(())
    }

    /// Where each durable point goes: right after the last write (in commit order)
    /// acknowledged before it was invoked. `(writes before it, op index)`, sorted.
    fn durable_marks(&self, ordered: &[&Write]) -> Vec<(usize, u64)> {
        // The position (in commit order) of each acknowledgement, by instant.
        let mut acknowledged: Vec<(Instant, usize)> = ordered
            .iter()
            .enumerate()
            .filter_map(|(index, w)| Some((w.acknowledged?, index + 1)))
            .collect();
        acknowledged.sort_unstable();
        let mut latest = 0;
        for entry in &mut acknowledged {
            latest = latest.max(entry.1);
            entry.1 = latest;
        }
        let mut marks: Vec<(usize, u64)> = self
            .durable
            .iter()
            .map(|&(op_index, invoked)| {
                let before = acknowledged.partition_point(|entry| entry.0 < invoked);
                let after = before.checked_sub(1).map_or(0, |i| acknowledged[i].1);
                (after, op_index)
            })
            .collect();
        marks.sort_unstable();
        marks
    }

    /// Hands the writes to the sequential checker in commit order, with the durable points
    /// between them.
    fn feed(self, checker: &mut Checker, marks: Vec<(usize, u64)>) {
        let mut writes: Vec<Write> = self
            .writes
            .into_iter()
            .filter(|w| w.outcome != Some(Outcome::Rejected))
            .collect();
        writes.sort_by_key(|w| w.sequence);
        let mut marks = marks.into_iter().peekable();
        for (index, write) in writes.into_iter().enumerate() {
            while let Some((_, op_index)) = marks.next_if(|(after, _)| *after == index) {
                checker.durable_point(op_index);
            }
            let outcome = write.outcome.unwrap_or(Outcome::Failed);
            let id = checker.write_issued(write.op_index, write.batch, write.sync);
            checker.write_completed(id, outcome);
        }
        for (_, op_index) in marks {
            checker.durable_point(op_index);
        }
    }
}

/// `(instant, position)` pairs sorted by instant, each position replaced by the largest so
/// far.
fn running_max(pairs: impl Iterator<Item = (Instant, u64)>) -> Vec<(Instant, u64)> {
    let mut pairs: Vec<(Instant, u64)> = pairs.collect();
    pairs.sort_unstable();
    let mut largest = 0;
    for pair in &mut pairs {
        largest = largest.max(pair.1);
        pair.1 = largest;
    }
    pairs
}

/// The largest position among the pairs strictly before `instant`.
fn bound_before(maxima: &[(Instant, u64)], instant: Instant) -> Option<u64> {
    match maxima.partition_point(|pair| pair.0 < instant) {
        0 => None,
        n => Some(maxima[n - 1].1),
    }
}
