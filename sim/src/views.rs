//! Snapshots and iterators in a run: the steps that take, read and release snapshots and
//! that iterate over the live database, as the sequential runner and the concurrent clients
//! execute them, and what both modes share: the held snapshots, running an iterator's
//! planned calls, and what happens to snapshots when their engine goes.
//!
//! Every read at a snapshot and every scan is recorded as a read through a *view*
//! (`strata_checker::Views`): the checker verifies it against the model at the view's
//! sequence number when the epoch ends. A snapshot lives until a release step (or until
//! [`MAX_SNAPSHOTS`](crate::workload::MAX_SNAPSHOTS) newer ones push it out), across
//! flushes, compactions and maintenance; when the engine is closed or dies, every snapshot
//! still held must refuse reads with `Error::Closed`, and is then dropped (a snapshot does
//! not survive a reopen).

use crate::concurrent::{lock, Client};
use crate::runner::{classify_error, printable, violation, Flow, Runner};
use crate::workload::{IterPlan, Move, Op, MAX_SNAPSHOTS};
use std::ops::Bound;
use std::sync::Arc;
use strata_checker::{Instant, IterStep, ViewId, ViewKind};
use strata_engine::{DbIterator, Error, Snapshot};

/// Most calls an iterator's drain makes: far more than any key space a plan draws (an
/// iterator that never ends is reported by the checker, not waited for).
const MAX_DRAIN: usize = 1_000;

/// A snapshot a run holds.
pub(crate) struct Held {
    pub(crate) snapshot: Arc<Snapshot>,
    /// `None`: taken after the machine halted, so nothing read through it is checked.
    pub(crate) view: Option<ViewId>,
    /// The step that took it.
    pub(crate) step: u64,
}

/// Adds a snapshot to those held; returns the one it pushes out, if any (drop it outside
/// any lock).
pub(crate) fn hold(held: &mut Vec<Held>, new: Held) -> Option<Held> {
    let oldest = (held.len() >= MAX_SNAPSHOTS).then(|| held.remove(0));
    held.push(new);
    oldest
}

/// The held snapshot a step's `pick` names (oldest first), if any is held.
pub(crate) fn picked(held: &[Held], pick: u64) -> Option<usize> {
    (!held.is_empty()).then(|| (pick % held.len() as u64) as usize)
}

/// A plan's bounds, as `range` takes them.
pub(crate) fn bounds(plan: &IterPlan) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (plan.lower.clone(), plan.upper.clone())
}

/// Runs a plan's calls on an iterator; the first error ends it.
pub(crate) fn iterate(mut iter: DbIterator, plan: &IterPlan) -> Result<Vec<IterStep>, Error> {
    let mut steps = Vec::with_capacity(plan.moves.len() + 8);
    let call = |iter: &mut DbIterator, step: &Move| -> Result<IterStep, Error> {
        Ok(match step {
            Move::Next => IterStep::Next(iter.next().transpose()?),
            // The back through the borrowing step, the front through `Iterator`: the
            // simulator runs both ways of reading an entry, and their mix on one iterator.
            Move::Back => IterStep::Back(
                iter.next_back_borrowed()
                    .transpose()?
                    .map(|(key, value)| (key.to_vec(), value.to_vec())),
            ),
            Move::Seek(key) => {
                iter.seek(key);
                IterStep::Seek(key.clone())
            }
            Move::SeekForPrev(key) => {
                iter.seek_for_prev(key);
                IterStep::SeekForPrev(key.clone())
            }
        })
    };
    for step in &plan.moves {
        steps.push(call(&mut iter, step)?);
    }
    if let Some(drain) = &plan.drain {
        for _ in 0..MAX_DRAIN {
            let step = call(&mut iter, drain)?;
            let end = matches!(step, IterStep::Next(None) | IterStep::Back(None));
            steps.push(step);
            if end {
                break;
            }
        }
    }
    Ok(steps)
}

/// A summary of an iterator's answers for the trace hash: how many calls returned an entry,
/// and the total length of the keys and values returned.
pub(crate) fn steps_hash(steps: &[IterStep]) -> u64 {
    let mut hash = steps.len() as u64;
    for step in steps {
        if let IterStep::Next(Some((key, value))) | IterStep::Back(Some((key, value))) = step {
            hash = hash
                .rotate_left(7)
                .wrapping_add((key.len() + value.len()) as u64 + 1);
        }
    }
    hash
}

/// One line of the trace for an iterator's calls.
pub(crate) fn describe(plan: &IterPlan, steps: &Result<Vec<IterStep>, Error>) -> String {
    let entries = |steps: &Vec<IterStep>| {
        steps
            .iter()
            .filter(|s| matches!(s, IterStep::Next(Some(_)) | IterStep::Back(Some(_))))
            .count()
    };
    format!(
        "{:?}..{:?} moves {:?} drain {:?} -> {:?}",
        plan.lower.as_ref().map(|k| printable(k)),
        plan.upper.as_ref().map(|k| printable(k)),
        plan.moves.len(),
        plan.drain,
        steps.as_ref().map(entries)
    )
}

/// After the engine was closed or dropped: every held snapshot must refuse to read with
/// `Error::Closed`. Returns how many did; a read that answered is a violation.
pub(crate) fn refuse_after_close(held: Vec<Held>, step: u64) -> Result<u64, crate::runner::Stop> {
    let mut count = 0;
    for held in held {
        let get = held.snapshot.get(b"key00000");
        let scan = held.snapshot.iter().map(|_| ());
        for (what, result) in [("get", get.map(|_| ())), ("scan", scan)] {
            if !matches!(result, Err(Error::Closed)) {
                return Err(violation(
                    "snapshot_read_after_close",
                    step,
                    format!(
                        "a snapshot taken at step {} (sequence {}) answered a {what} after its \
                         database was closed: {result:?} (expected Err(Closed))",
                        held.step,
                        held.snapshot.sequence()
                    ),
                ));
            }
        }
        count += 1;
    }
    Ok(count)
}

/// A planned scan's bounds, `[lower, upper)`.
pub(crate) fn scan_bounds(
    lower: &Option<Vec<u8>>,
    upper: &Option<Vec<u8>>,
) -> (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>) {
    (
        lower
            .clone()
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
        upper
            .clone()
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
    )
}

/// A whole forward scan as an iterator's calls: one `next` per entry, then the end.
pub(crate) fn scan_steps(entries: crate::runner::Entries) -> Vec<IterStep> {
    entries
        .into_iter()
        .map(|entry| IterStep::Next(Some(entry)))
        .chain([IterStep::Next(None)])
        .collect()
}

impl crate::runner::RunStats {
    /// Adds what a check of views covered.
    pub(crate) fn add_views(&mut self, counts: &strata_checker::ViewCounts) {
        self.snapshots += counts.snapshots;
        self.snapshot_reads += counts.snapshot_reads;
        self.snapshot_reads_after_background += counts.snapshot_reads_after_jobs;
        self.sequenced_scans += counts.scans;
        self.reverse_scans += counts.reverse_scans;
        self.seek_scans += counts.seek_scans;
    }
}

impl Runner<'_> {
    fn tick(&mut self) -> u64 {
        self.instant += 1;
        self.instant
    }

    /// Sequential mode: a snapshot or iterator step.
    pub(crate) fn execute_view_op(&mut self, step: u64, op: &Op) -> Flow {
        match op {
            Op::TakeSnapshot => {
                let invoked = self.tick();
                let snapshot = self.db().snapshot();
                let completed = self.tick();
                let jobs = self.db().jobs_finished();
                let sequence = snapshot.sequence();
                let view = self.views.view(
                    step,
                    0,
                    ViewKind::Snapshot,
                    sequence,
                    invoked,
                    completed,
                    jobs,
                );
                self.hasher.write_u64(step);
                self.hasher.write_u64(sequence);
                self.note(|| format!("step {step}: snapshot -> sequence {sequence}"));
                let held = Held {
                    snapshot: Arc::new(snapshot),
                    view: Some(view),
                    step,
                };
                drop(hold(&mut self.held, held));
            }
            Op::ReleaseSnapshot { pick } => {
                if let Some(index) = picked(&self.held, *pick) {
                    let held = self.held.remove(index);
                    self.note(|| {
                        format!("step {step}: release the snapshot of step {}", held.step)
                    });
                }
            }
            Op::SnapshotGet { pick, key } => {
                let Some(index) = picked(&self.held, *pick) else {
                    self.note(|| format!("step {step}: snapshot get: no snapshot held"));
                    return Ok(());
                };
                let jobs = self.db().jobs_finished();
                let (snapshot, view, taken) = {
                    let held = &self.held[index];
                    (Arc::clone(&held.snapshot), held.view, held.step)
                };
                let result = snapshot.get(key);
                self.hasher.write_u64(step);
                self.note(|| {
                    format!(
                        "step {step}: get {} at the snapshot of step {taken} -> {result:?}",
                        printable(key)
                    )
                });
                match result {
                    Ok(answer) => {
                        self.hasher
                            .write_u64(answer.as_ref().map_or(u64::MAX, |v| v.len() as u64));
                        if let Some(view) = view {
                            self.views.get(view, step, 0, key, answer, jobs);
                        }
                    }
                    Err(error) => classify_error(step, &error, self.damaged())?,
                }
            }
            Op::SnapshotScan { pick, scan } => {
                let Some(index) = picked(&self.held, *pick) else {
                    self.note(|| format!("step {step}: snapshot scan: no snapshot held"));
                    return Ok(());
                };
                let jobs = self.db().jobs_finished();
                let (snapshot, view, taken) = {
                    let held = &self.held[index];
                    (Arc::clone(&held.snapshot), held.view, held.step)
                };
                let result = snapshot
                    .range(bounds(scan))
                    .and_then(|iter| iterate(iter, scan));
                self.hasher.write_u64(step);
                self.note(|| {
                    format!(
                        "step {step}: scan at the snapshot of step {taken} {}",
                        describe(scan, &result)
                    )
                });
                match result {
                    Ok(steps) => {
                        self.hasher.write_u64(steps_hash(&steps));
                        if let Some(view) = view {
                            let (lower, upper) = bounds(scan);
                            self.views.scan(view, step, 0, lower, upper, steps, jobs);
                        }
                    }
                    Err(error) => classify_error(step, &error, self.damaged())?,
                }
            }
            Op::Iterate(plan) => {
                let invoked = self.tick();
                let iter = self.db().range(bounds(plan));
                let completed = self.tick();
                let jobs = self.db().jobs_finished();
                let result = iter.and_then(|iter| {
                    let sequence = iter.sequence();
                    iterate(iter, plan).map(|steps| (sequence, steps))
                });
                self.hasher.write_u64(step);
                self.note(|| {
                    let steps = result.as_ref().map(|(_, steps)| steps.clone());
                    let steps = steps.map_err(Clone::clone);
                    format!("step {step}: iterate {}", describe(plan, &steps))
                });
                match result {
                    Ok((sequence, steps)) => {
                        self.hasher.write_u64(sequence);
                        self.hasher.write_u64(steps_hash(&steps));
                        let view = self.views.view(
                            step,
                            0,
                            ViewKind::Scan,
                            sequence,
                            invoked,
                            completed,
                            jobs,
                        );
                        let (lower, upper) = bounds(plan);
                        self.views.scan(view, step, 0, lower, upper, steps, jobs);
                    }
                    Err(error) => classify_error(step, &error, self.damaged())?,
                }
            }
            _ => unreachable!("not a snapshot or iterator step: {op:?}"),
        }
        Ok(())
    }

    /// The epoch ends (sequential mode): checks its views against the model at their
    /// sequences. Concurrent mode checks them when each phase's history settles.
    pub(crate) fn settle_views(&mut self, step: u64) -> Flow {
        let views = std::mem::take(&mut self.views);
        self.instant = 0;
        let counts = views
            .check(self.checker.base())
            .map_err(|v| violation(crate::concurrent::kind_name(v.kind), step, v.to_string()))?;
        self.stats.add_views(&counts);
        Ok(())
    }

    /// The engine is gone (closed, or dropped as the process died): the held snapshots
    /// must refuse to read, and go with it.
    pub(crate) fn release_held(&mut self, step: u64) -> Flow {
        let held = std::mem::take(&mut self.held);
        self.stats.snapshots_refused_after_close += refuse_after_close(held, step)?;
        Ok(())
    }
}

impl Client {
    /// Concurrent mode: a snapshot or iterator step of one client. The held snapshots are
    /// shared by the clients, under the phase's lock (never held across the engine's calls).
    pub(crate) fn execute_view_op(&self, step: u64, op: &Op) -> Flow {
        let number = self.number;
        match op {
            Op::TakeSnapshot => {
                let invoked = lock(&self.shared).history.invoke();
                let snapshot = self.db.snapshot();
                let jobs = self.db.jobs_finished();
                let sequence = snapshot.sequence();
                let mut shared = self.complete();
                let view = shared.history.complete_view(
                    step,
                    number,
                    invoked,
                    ViewKind::Snapshot,
                    sequence,
                    jobs,
                );
                shared.hashes.extend([step, sequence]);
                self.note(&mut shared, || {
                    format!("step {step}: snapshot -> sequence {sequence}")
                });
                let held = Held {
                    snapshot: Arc::new(snapshot),
                    view,
                    step,
                };
                let pushed_out = hold(&mut shared.snapshots, held);
                drop(shared);
                drop(pushed_out);
            }
            Op::ReleaseSnapshot { pick } => {
                let mut shared = lock(&self.shared);
                let released = picked(&shared.snapshots, *pick).map(|i| shared.snapshots.remove(i));
                if let Some(released) = &released {
                    self.note(&mut shared, || {
                        format!(
                            "step {step}: release the snapshot of step {}",
                            released.step
                        )
                    });
                }
                drop(shared);
                drop(released);
            }
            Op::SnapshotGet { pick, key } => {
                let Some((snapshot, view, taken)) = self.pick_snapshot(*pick) else {
                    return Ok(());
                };
                let jobs = self.db.jobs_finished();
                let result = snapshot.get(key);
                let mut shared = self.complete();
                shared.hashes.push(step);
                self.note(&mut shared, || {
                    format!(
                        "step {step}: get {} at the snapshot of step {taken} -> {result:?}",
                        printable(key)
                    )
                });
                match result {
                    Ok(answer) => {
                        shared
                            .hashes
                            .push(answer.as_ref().map_or(u64::MAX, |v| v.len() as u64));
                        if let Some(view) = view {
                            shared
                                .history
                                .complete_view_get(view, step, number, key, answer, jobs);
                        }
                    }
                    Err(error) => {
                        drop(shared);
                        self.error(step, &error)?;
                    }
                }
            }
            Op::SnapshotScan { pick, scan } => {
                let Some((snapshot, view, taken)) = self.pick_snapshot(*pick) else {
                    return Ok(());
                };
                let jobs = self.db.jobs_finished();
                let result = snapshot
                    .range(bounds(scan))
                    .and_then(|iter| iterate(iter, scan));
                self.iterated(step, view.map(|view| (view, jobs)), scan, result, || {
                    format!("scan at the snapshot of step {taken}")
                })?;
            }
            Op::Iterate(plan) => {
                let invoked = lock(&self.shared).history.invoke();
                let iter = self.db.range(bounds(plan));
                let view = self.made_view(step, invoked, &iter);
                let result = iter.and_then(|iter| iterate(iter, plan));
                self.iterated(step, view, plan, result, || "iterate".to_string())?;
            }
            _ => unreachable!("not a snapshot or iterator step: {op:?}"),
        }
        Ok(())
    }

    /// A scan's iterator was made (or not): its view, with the jobs counter then.
    pub(crate) fn made_view(
        &self,
        step: u64,
        invoked: Instant,
        iter: &Result<DbIterator, Error>,
    ) -> Option<(ViewId, u64)> {
        let jobs = self.db.jobs_finished();
        let mut shared = self.complete();
        let sequence = iter.as_ref().ok()?.sequence();
        shared.hashes.push(sequence);
        let view = shared.history.complete_view(
            step,
            self.number,
            invoked,
            ViewKind::Scan,
            sequence,
            jobs,
        )?;
        Some((view, jobs))
    }

    /// The held snapshot a step picks: shared, so that a release meanwhile leaves it alive
    /// until this read ends.
    fn pick_snapshot(&self, pick: u64) -> Option<(Arc<Snapshot>, Option<ViewId>, u64)> {
        let shared = lock(&self.shared);
        let held = &shared.snapshots[picked(&shared.snapshots, pick)?];
        Some((Arc::clone(&held.snapshot), held.view, held.step))
    }

    /// An iterator's calls ended: recorded through its view, or the error classified.
    fn iterated(
        &self,
        step: u64,
        view: Option<(ViewId, u64)>,
        plan: &crate::workload::IterPlan,
        result: Result<Vec<IterStep>, Error>,
        what: impl FnOnce() -> String,
    ) -> Flow {
        let mut shared = self.complete();
        shared.hashes.push(step);
        self.note(&mut shared, || {
            format!("step {step}: {} {}", what(), describe(plan, &result))
        });
        match result {
            Ok(steps) => {
                shared.hashes.push(steps_hash(&steps));
                if let Some((view, jobs)) = view {
                    let (lower, upper) = bounds(plan);
                    shared.history.complete_view_scan(
                        view,
                        step,
                        self.number,
                        lower,
                        upper,
                        steps,
                        jobs,
                    );
                }
                Ok(())
            }
            Err(error) => {
                drop(shared);
                self.error(step, &error)
            }
        }
    }
}
