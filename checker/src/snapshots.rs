//! Reads at a sequence number: snapshots, and scans of the live database (each scan reads at
//! the sequence its iterator reports).
//!
//! The engine numbers every operation of every batch (`Db::write_sequenced`) and publishes a
//! commit group's last number only once the whole group is in its memtable. A *view* is a
//! reader's sequence number `s`: a snapshot's, or a scan's. Its contract is exact: a read
//! through a view sees the epoch's base plus every write numbered `<= s`, in sequence order,
//! and nothing else. So the checker needs no linearization search for views: the engine
//! names the point, and the checker verifies both that the point is a legal one and that the
//! reads answer for it.
//!
//! # The rules
//!
//! For every view `s`, invoked at `i` and completed at `c` (for a scan: around the call that
//! made its iterator):
//!
//! 1. **Real time.** Every write acknowledged before `i` has all its numbers `<= s`; every
//!    write invoked after `c` has all its numbers `> s`; and `s` is at least the number of
//!    every view that completed before `i` (readers never go back in time).
//! 2. **Whole batches.** `s` never splits a batch: for each batch numbered `first..=last`,
//!    `s < first` or `s >= last`.
//! 3. **Reads.** A point read at the view equals the model at `s` for its key. A scan — any
//!    sequence of `seek`, `seek_for_prev`, `next` and `next_back` on one iterator — answers
//!    each call as an iterator over the model at `s` within the scan's bounds would: the front
//!    returns the next key after the last it returned (at or after its seek), the back the
//!    previous one, and each end stops (for good, until it seeks again) when it would reach
//!    a key the other end has returned. This checks reverse iteration, seeks and bounds, and
//!    makes batch atomicity for readers checked: a scan that sees half a batch equals the
//!    model at no `s`.
//!
//! Writes whose outcome failed or is unknown need no allowance, because `s` says which are in:
//! a write refused before the WAL has no sequence number and is in no view; one whose WAL
//! append or sync failed has numbers, but the engine never publishes its group and refuses
//! every later write, so no view's `s` can reach them (if one does, the view claims the write,
//! and a read that lacks it is a mismatch); one whose answer came after the machine halted
//! was published or not, and `s` tells which.
//!
//! Views and reads completed after the machine halted are not checked (nobody would have
//! heard them), exactly as in [`crate::History`].

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::history::Instant;
use crate::show::{printable, printable_opt};
use crate::timeline::{replay_scan, Timeline};
use crate::types::{Mutation, Violation, ViolationKind};

/// What kind of reader a view is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewKind {
    /// `Db::snapshot`: held, and read any number of times.
    Snapshot,
    /// A scan of the live database, at the sequence its iterator reports.
    Scan,
}

/// Handle of a view recorded in [`Views`] (or through [`crate::History`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewId(usize);

/// One call on an iterator, with the engine's answer where the call returns one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IterStep {
    /// `seek(key)`: the front moves to the first key at or after `key`.
    Seek(Vec<u8>),
    /// `seek_for_prev(key)`: the back moves to the last key at or before `key`.
    SeekForPrev(Vec<u8>),
    /// `next()` answered this (`None`: the front is done).
    Next(Option<(Vec<u8>, Vec<u8>)>),
    /// `next_back()` answered this (`None`: the back is done).
    Back(Option<(Vec<u8>, Vec<u8>)>),
}

/// What a check of views covered, for sweep summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewCounts {
    /// Snapshots whose sequence was checked against real time and batches.
    pub snapshots: u64,
    /// Reads at a snapshot (point reads and scans) checked against the model at its sequence.
    pub snapshot_reads: u64,
    /// Of those, reads made after the caller's job counter moved since the snapshot was
    /// taken (the simulator counts flushes and compactions): the store changed under them.
    pub snapshot_reads_after_jobs: u64,
    /// Scans of the live database checked against the model at their sequence.
    pub scans: u64,
    /// Scans (live or at a snapshot) with at least one `next_back`.
    pub reverse_scans: u64,
    /// Scans (live or at a snapshot) with at least one `seek` or `seek_for_prev`.
    pub seek_scans: u64,
}

impl ViewCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &ViewCounts) {
        self.snapshots += other.snapshots;
        self.snapshot_reads += other.snapshot_reads;
        self.snapshot_reads_after_jobs += other.snapshot_reads_after_jobs;
        self.scans += other.scans;
        self.reverse_scans += other.reverse_scans;
        self.seek_scans += other.seek_scans;
    }
}

/// A write with its sequence numbers, as the view rules see it.
#[derive(Debug)]
pub(crate) struct WriteRef<'a> {
    pub(crate) op_index: u64,
    pub(crate) client: usize,
    pub(crate) first: u64,
    pub(crate) batch: &'a [Mutation],
    pub(crate) invoked: Instant,
    pub(crate) acknowledged: Option<Instant>,
}

impl WriteRef<'_> {
    fn last(&self) -> u64 {
        self.first + self.batch.len().saturating_sub(1) as u64
    }
}

#[derive(Debug)]
struct OwnedWrite {
    op_index: u64,
    client: usize,
    first: u64,
    batch: Vec<Mutation>,
    invoked: Instant,
    acknowledged: Option<Instant>,
}

#[derive(Debug)]
struct View {
    op_index: u64,
    client: usize,
    kind: ViewKind,
    sequence: u64,
    invoked: Instant,
    completed: Instant,
    jobs: u64,
}

#[derive(Debug)]
enum Access {
    Get {
        key: Vec<u8>,
        answer: Option<Vec<u8>>,
    },
    Scan {
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        steps: Vec<IterStep>,
    },
}

#[derive(Debug)]
struct ViewRead {
    view: usize,
    op_index: u64,
    client: usize,
    access: Access,
    jobs: u64,
}

/// The views of one epoch and the reads made through them. Used alone by a single-client
/// simulation (which records its writes here too), and inside [`crate::History`] (which
/// supplies its own writes when it settles).
#[derive(Debug, Default)]
pub struct Views {
    writes: Vec<OwnedWrite>,
    views: Vec<View>,
    reads: Vec<ViewRead>,
}

impl Views {
    /// No views yet.
    pub fn new() -> Views {
        Views::default()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty() && self.writes.is_empty()
    }

    /// A write ended, numbered from `first` (`None`: it never reached the WAL, so no view
    /// may contain it, and it is not kept), invoked at `invoked` and acknowledged at
    /// `acknowledged` (`None` if it failed).
    pub fn write(
        &mut self,
        op_index: u64,
        client: usize,
        batch: Vec<Mutation>,
        invoked: Instant,
        acknowledged: Option<Instant>,
        first: Option<u64>,
    ) {
        let Some(first) = first else { return };
        if batch.is_empty() {
            return;
        }
        self.writes.push(OwnedWrite {
            op_index,
            client,
            first,
            batch,
            invoked,
            acknowledged,
        });
    }

    /// A view at `sequence` was made between `invoked` and `completed`; `jobs` is the
    /// caller's job counter then (see [`ViewCounts::snapshot_reads_after_jobs`]).
    #[allow(clippy::too_many_arguments)]
    pub fn view(
        &mut self,
        op_index: u64,
        client: usize,
        kind: ViewKind,
        sequence: u64,
        invoked: Instant,
        completed: Instant,
        jobs: u64,
    ) -> ViewId {
        self.views.push(View {
            op_index,
            client,
            kind,
            sequence,
            invoked,
            completed,
            jobs,
        });
        ViewId(self.views.len() - 1)
    }

    /// A point read of `key` at `view` answered `answer`.
    pub fn get(
        &mut self,
        view: ViewId,
        op_index: u64,
        client: usize,
        key: &[u8],
        answer: Option<Vec<u8>>,
        jobs: u64,
    ) {
        self.reads.push(ViewRead {
            view: view.0,
            op_index,
            client,
            access: Access::Get {
                key: key.to_vec(),
                answer,
            },
            jobs,
        });
    }

    /// An iterator at `view` over `(lower, upper)` took `steps`.
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &mut self,
        view: ViewId,
        op_index: u64,
        client: usize,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        steps: Vec<IterStep>,
        jobs: u64,
    ) {
        self.reads.push(ViewRead {
            view: view.0,
            op_index,
            client,
            access: Access::Scan {
                lower,
                upper,
                steps,
            },
            jobs,
        });
    }

    /// Checks every view and every read through one against the writes recorded with
    /// [`Views::write`], over `base` (the state the epoch started from).
    pub fn check(&self, base: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<ViewCounts, Violation> {
        let writes = self
            .writes
            .iter()
            .map(|w| WriteRef {
                op_index: w.op_index,
                client: w.client,
                first: w.first,
                batch: &w.batch,
                invoked: w.invoked,
                acknowledged: w.acknowledged,
            })
            .collect();
        self.check_with(base, writes)
    }

    /// [`Views::check`] with the epoch's numbered writes supplied by the caller.
    pub(crate) fn check_with(
        &self,
        base: &BTreeMap<Vec<u8>, Vec<u8>>,
        mut writes: Vec<WriteRef<'_>>,
    ) -> Result<ViewCounts, Violation> {
        let mut counts = ViewCounts::default();
        if self.views.is_empty() {
            return Ok(counts);
        }
        writes.sort_by_key(|w| w.first);
        for pair in writes.windows(2) {
            if pair[0].last() >= pair[1].first {
                return Err(Violation {
                    op_index: pair[1].op_index,
                    kind: ViolationKind::OrderNotRealTime,
                    explanation: format!(
                        "the sequence numbers of step {} ({}..={}) and step {} (from {}) overlap",
                        pair[0].op_index,
                        pair[0].first,
                        pair[0].last(),
                        pair[1].op_index,
                        pair[1].first
                    ),
                });
            }
        }
        self.check_sequences(&writes)?;
        let timeline = Timeline::new(base, &writes);
        for read in &self.reads {
            let view = &self.views[read.view];
            match view.kind {
                ViewKind::Snapshot => {
                    counts.snapshot_reads += 1;
                    counts.snapshot_reads_after_jobs += u64::from(read.jobs > view.jobs);
                }
                ViewKind::Scan => counts.scans += 1,
            }
            match &read.access {
                Access::Get { key, answer } => {
                    let expected = timeline.value_at(key, view.sequence);
                    if expected != answer.as_deref() {
                        return Err(Violation {
                            op_index: read.op_index,
                            kind: mismatch_kind(view.kind),
                            explanation: format!(
                                "client {}'s point read of {} (step {}) at {} answered {}; the \
                                 model at sequence {} holds {}\n{}",
                                read.client,
                                printable(key),
                                read.op_index,
                                describe_view(view),
                                printable_opt(answer.as_deref()),
                                view.sequence,
                                printable_opt(expected),
                                timeline.story(key, view.sequence)
                            ),
                        });
                    }
                }
                Access::Scan {
                    lower,
                    upper,
                    steps,
                } => {
                    counts.reverse_scans +=
                        u64::from(steps.iter().any(|s| matches!(s, IterStep::Back(_))));
                    counts.seek_scans += u64::from(
                        steps
                            .iter()
                            .any(|s| matches!(s, IterStep::Seek(_) | IterStep::SeekForPrev(_))),
                    );
                    let entries = timeline.range_at(lower, upper, view.sequence);
                    replay_scan(&entries, steps).map_err(|mismatch| Violation {
                        op_index: read.op_index,
                        kind: mismatch_kind(view.kind),
                        explanation: format!(
                            "client {}'s scan {} (step {}) at {}: call {} of [{}] answered {}; \
                             an iterator over the model at sequence {} answers {}\n{}",
                            read.client,
                            show_bounds(lower, upper),
                            read.op_index,
                            describe_view(view),
                            mismatch.index + 1,
                            show_steps(steps, mismatch.index),
                            show_entry(mismatch.got),
                            view.sequence,
                            show_entry(mismatch.expected),
                            [mismatch.got, mismatch.expected]
                                .iter()
                                .flatten()
                                .map(|(key, _)| timeline.story(key, view.sequence))
                                .collect::<Vec<_>>()
                                .join("\n")
                        ),
                    })?;
                }
            }
        }
        counts.snapshots = self
            .views
            .iter()
            .filter(|v| v.kind == ViewKind::Snapshot)
            .count() as u64;
        Ok(counts)
    }

    /// Rules 1 and 2: each view's sequence against real time, earlier views and batches.
    fn check_sequences(&self, writes: &[WriteRef<'_>]) -> Result<(), Violation> {
        // The largest last number of the writes acknowledged before an instant, and the
        // smallest first number of the writes invoked after one.
        let mut acknowledged: Vec<(Instant, u64)> = writes
            .iter()
            .filter_map(|w| Some((w.acknowledged?, w.last())))
            .collect();
        acknowledged.sort_unstable();
        let mut largest = 0;
        for entry in &mut acknowledged {
            largest = largest.max(entry.1);
            entry.1 = largest;
        }
        let mut invoked: Vec<(Instant, u64)> =
            writes.iter().map(|w| (w.invoked, w.first)).collect();
        invoked.sort_unstable();
        for index in (0..invoked.len().saturating_sub(1)).rev() {
            invoked[index].1 = invoked[index].1.min(invoked[index + 1].1);
        }
        // Views by completion, with the running largest sequence (and whose it is).
        let mut completed: Vec<(Instant, u64, usize)> = self
            .views
            .iter()
            .enumerate()
            .map(|(index, v)| (v.completed, v.sequence, index))
            .collect();
        completed.sort_unstable();
        for index in 1..completed.len() {
            if completed[index - 1].1 > completed[index].1 {
                completed[index].1 = completed[index - 1].1;
                completed[index].2 = completed[index - 1].2;
            }
        }
        for view in &self.views {
            let s = view.sequence;
            let before = acknowledged.partition_point(|entry| entry.0 < view.invoked);
            if before > 0 && acknowledged[before - 1].1 > s {
                let missed = writes
                    .iter()
                    .find(|w| w.acknowledged.is_some_and(|a| a < view.invoked) && w.last() > s)
                    .expect("the running maximum comes from such a write");
                return Err(sequence_violation(
                    view,
                    format!(
                        "step {} (client {}, sequences {}..={}) was acknowledged before it began, \
                         yet is not in it",
                        missed.op_index,
                        missed.client,
                        missed.first,
                        missed.last()
                    ),
                ));
            }
            let after = invoked.partition_point(|entry| entry.0 <= view.completed);
            if after < invoked.len() && invoked[after].1 <= s {
                let future = writes
                    .iter()
                    .find(|w| w.invoked > view.completed && w.first <= s)
                    .expect("the suffix minimum comes from such a write");
                return Err(sequence_violation(
                    view,
                    format!(
                        "step {} (client {}, from sequence {}) was invoked after it was made, yet \
                         is in it",
                        future.op_index, future.client, future.first
                    ),
                ));
            }
            let earlier = completed.partition_point(|entry| entry.0 < view.invoked);
            if earlier > 0 && completed[earlier - 1].1 > s {
                let other = &self.views[completed[earlier - 1].2];
                return Err(sequence_violation(
                    view,
                    format!(
                        "{} (step {}) had already read at sequence {}: a later reader went back \
                         in time",
                        describe_view(other),
                        other.op_index,
                        other.sequence
                    ),
                ));
            }
            let containing = writes.partition_point(|w| w.first <= s);
            if let Some(split) = containing.checked_sub(1).map(|i| &writes[i]) {
                if s < split.last() {
                    return Err(sequence_violation(
                        view,
                        format!(
                            "it splits the batch of step {} (client {}, sequences {}..={}): a \
                             reader would see part of it",
                            split.op_index,
                            split.client,
                            split.first,
                            split.last()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn mismatch_kind(kind: ViewKind) -> ViolationKind {
    match kind {
        ViewKind::Snapshot => ViolationKind::SnapshotMismatch,
        ViewKind::Scan => ViolationKind::ScanMismatch,
    }
}

fn describe_view(view: &View) -> String {
    match view.kind {
        ViewKind::Snapshot => format!(
            "the snapshot client {} took at step {} (sequence {})",
            view.client, view.op_index, view.sequence
        ),
        ViewKind::Scan => format!("its iterator's sequence {}", view.sequence),
    }
}

fn sequence_violation(view: &View, why: String) -> Violation {
    let what = match view.kind {
        ViewKind::Snapshot => format!(
            "the snapshot client {} took at step {}",
            view.client, view.op_index
        ),
        ViewKind::Scan => format!("client {}'s scan at step {}", view.client, view.op_index),
    };
    Violation {
        op_index: view.op_index,
        kind: ViolationKind::BadReadSequence,
        explanation: format!("{what} reads at sequence {}, but {why}", view.sequence),
    }
}

fn show_bounds(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> String {
    let lower = match lower {
        Bound::Included(key) => format!("[{}", printable(key)),
        Bound::Excluded(key) => format!("({}", printable(key)),
        Bound::Unbounded => "(-inf".to_string(),
    };
    let upper = match upper {
        Bound::Included(key) => format!("{}]", printable(key)),
        Bound::Excluded(key) => format!("{})", printable(key)),
        Bound::Unbounded => "+inf)".to_string(),
    };
    format!("{lower}, {upper}")
}

fn show_entry(entry: Option<(&[u8], &[u8])>) -> String {
    entry.map_or("the end".to_string(), |(key, value)| {
        format!("{} = {}", printable(key), printable(value))
    })
}

/// The calls of a scan up to and including `upto`, compactly.
fn show_steps(steps: &[IterStep], upto: usize) -> String {
    let shown: Vec<String> = steps
        .iter()
        .take(upto + 1)
        .map(|step| match step {
            IterStep::Seek(key) => format!("seek {}", printable(key)),
            IterStep::SeekForPrev(key) => format!("seek_for_prev {}", printable(key)),
            IterStep::Next(Some((key, _))) => format!("next {}", printable(key)),
            IterStep::Next(None) => "next end".to_string(),
            IterStep::Back(Some((key, _))) => format!("next_back {}", printable(key)),
            IterStep::Back(None) => "next_back end".to_string(),
        })
        .collect();
    let skipped = shown.len().saturating_sub(12);
    let mut text = shown[skipped..].join(", ");
    if skipped > 0 {
        text = format!("{skipped} calls, … {text}");
    }
    text
}
