//! The [`Checker`]: the acknowledged model, the epoch's write history, and the verdicts.
//!
//! See the crate documentation for the rules; this module documents how they are computed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Bound, ControlFlow};

use crate::show::{printable, printable_opt};
use crate::{CheckerStats, Mutation, Outcome, Violation, ViolationKind, WriteId};

mod explain;
mod prefix;

use prefix::PrefixSearch;

/// How many injected faults are remembered for explanations.
pub const MAX_FAULTS: usize = 20;

/// A key whose value differs between two states: (key, one side, other side).
type Difference<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);
/// A [`Difference`] copied out, to outlive the borrow it was found under.
type OwnedDifference = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// The resolution of one issued write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Issued, not completed yet. Counts as in doubt for reads (its effect may already be
    /// visible) and becomes [`Status::Failed`] at a crash or a recovery.
    Pending,
    Ok,
    Failed,
    Rejected,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pending => "in flight",
            Status::Ok => "Ok",
            Status::Failed => "Failed",
            Status::Rejected => "Rejected",
        }
    }

    /// Whether the write's effect is unknown (so a read may or may not see it).
    fn in_doubt(self) -> bool {
        matches!(self, Status::Pending | Status::Failed)
    }
}

/// What is kept of every write of the run, including earlier epochs (whose mutations are
/// dropped): enough to name the write in an explanation.
#[derive(Clone, Debug)]
struct WriteMeta {
    op_index: u64,
    epoch: u64,
    sync: bool,
    status: Status,
}

/// The durability checker for one database over a whole run.
///
/// Feed it events in the order they happen; it answers reads, scans and recoveries with a
/// verdict. It does no I/O and depends on neither the engine nor the VFS. Each call is cheap:
/// writes and reads are `O(batch · log n)`, a scan is linear in the range, and a recovery is
/// one merge pass over the base and recovered states plus `O(log n)` per mutation of the epoch
/// (see [`Checker::recovered`]).
#[derive(Clone, Debug)]
pub struct Checker {
    /// The state the current epoch started from (empty, or the last recovered state).
    base: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `base` plus every write of the epoch acknowledged `Ok`, in issue order.
    model: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every write of the run, indexed by `WriteId`.
    metas: Vec<WriteMeta>,
    /// The current epoch's number, from 0.
    epoch: u64,
    /// The `WriteId` of the epoch's first write; `local = id - epoch_first`.
    epoch_first: usize,
    /// The mutations of the epoch's writes, indexed by local number.
    batches: Vec<Vec<Mutation>>,
    /// For each key the epoch touched, the local numbers of the writes that touch it, ascending.
    touches: BTreeMap<Vec<u8>, Vec<usize>>,
    /// The largest local number acknowledged `Ok` in this epoch.
    last_ok: Option<usize>,
    /// Every non-rejected write with a local number below this is durable.
    durable_upto: usize,
    /// The op index of the last acknowledgement that set `durable_upto`.
    durable_op: Option<u64>,
    /// The op index of the crash that ended this epoch, if any.
    crash_op: Option<u64>,
    /// For each key ever written: (write id, hash of the value or `None` for a delete), in
    /// issue order. Only explanations use it ("which op wrote this value?"), so a hash is
    /// enough and keeps memory to 16 bytes per mutation.
    value_index: BTreeMap<Vec<u8>, Vec<(usize, Option<u64>)>>,
    /// The last [`MAX_FAULTS`] faults injected: (op index, description).
    faults: VecDeque<(u64, String)>,
    stats: CheckerStats,
}

impl Default for Checker {
    fn default() -> Checker {
        Checker::new()
    }
}

impl Checker {
    /// A checker for a database that starts empty, in epoch 0.
    pub fn new() -> Checker {
        Checker {
            base: BTreeMap::new(),
            model: BTreeMap::new(),
            metas: Vec::new(),
            epoch: 0,
            epoch_first: 0,
            batches: Vec::new(),
            touches: BTreeMap::new(),
            last_ok: None,
            durable_upto: 0,
            durable_op: None,
            crash_op: None,
            value_index: BTreeMap::new(),
            faults: VecDeque::new(),
            stats: CheckerStats {
                epochs: 1,
                ..CheckerStats::default()
            },
        }
    }

    /// Records that a write was issued: a put or delete is a batch of one, a batch is atomic.
    /// `sync` is the write's durability request: acknowledged `Ok` with `sync`, it makes itself
    /// and every earlier write of the epoch durable.
    ///
    /// The write joins the epoch's history now, in issue order, whatever its outcome turns out
    /// to be (a [`Outcome::Rejected`] write is dropped from it when completed). Until completed
    /// it is in doubt: reads may or may not see it.
    pub fn write_issued(&mut self, op_index: u64, batch: Vec<Mutation>, sync: bool) -> WriteId {
        let id = self.metas.len();
        let local = self.batches.len();
        for mutation in &batch {
            let key = mutation.key();
            match self.touches.get_mut(key) {
                Some(list) => {
                    if list.last() != Some(&local) {
                        list.push(local);
                    }
                }
                None => {
                    self.touches.insert(key.to_vec(), vec![local]);
                }
            }
            let entry = (id, mutation.value().map(value_hash));
            match self.value_index.get_mut(key) {
                Some(list) => list.push(entry),
                None => {
                    self.value_index.insert(key.to_vec(), vec![entry]);
                }
            }
        }
        self.stats.writes_issued += 1;
        self.stats.mutations_issued += batch.len() as u64;
        self.metas.push(WriteMeta {
            op_index,
            epoch: self.epoch,
            sync,
            status: Status::Pending,
        });
        self.batches.push(batch);
        WriteId(id)
    }

    /// Records how an issued write ended.
    ///
    /// - [`Outcome::Ok`]: the write enters the model (in issue order, even if an earlier write
    ///   completes later); with `sync` it makes itself and every earlier write of the epoch
    ///   durable.
    /// - [`Outcome::Failed`]: the effect is unknown; the write stays in the history.
    /// - [`Outcome::Rejected`]: the write had no effect and leaves the history.
    ///
    /// Only the first resolution counts: completing a write twice, a write already marked
    /// failed by [`Checker::crashed`], or a write of an earlier epoch is ignored (a crash
    /// decides the fate of whatever was in flight).
    pub fn write_completed(&mut self, id: WriteId, outcome: Outcome) {
        if id.0 < self.epoch_first {
            return;
        }
        let Some(meta) = self.metas.get_mut(id.0) else {
            return;
        };
        if meta.status != Status::Pending {
            return;
        }
        let local = id.0 - self.epoch_first;
        match outcome {
            Outcome::Ok => {
                meta.status = Status::Ok;
                let (sync, op_index) = (meta.sync, meta.op_index);
                self.stats.writes_ok += 1;
                self.last_ok = Some(self.last_ok.map_or(local, |last| last.max(local)));
                if sync {
                    self.mark_durable(local + 1, op_index);
                }
                self.apply_ok_to_model(local);
            }
            Outcome::Failed => {
                meta.status = Status::Failed;
                self.stats.writes_failed += 1;
            }
            Outcome::Rejected => {
                meta.status = Status::Rejected;
                self.stats.writes_rejected += 1;
            }
        }
    }

    /// Records a successful sync, flush or close: every write acknowledged `Ok` so far in this
    /// epoch — and so, by the prefix rule, every write issued before the latest of them — is
    /// durable.
    pub fn durable_point(&mut self, op_index: u64) {
        self.stats.durable_points += 1;
        if let Some(last) = self.last_ok {
            self.mark_durable(last + 1, op_index);
        }
    }

    /// Records a fault injected into the machine. Only the last [`MAX_FAULTS`] are kept, to be
    /// listed in explanations.
    pub fn fault(&mut self, op_index: u64, description: String) {
        self.stats.faults += 1;
        if self.faults.len() == MAX_FAULTS {
            self.faults.pop_front();
        }
        self.faults.push_back((op_index, description));
    }

    /// Checks a point read answered before a crash.
    ///
    /// The answer must equal the model (the epoch's base plus every write acknowledged `Ok`, in
    /// issue order). If writes whose effect is unknown (failed, or still in flight) touched the
    /// key *after* the last acknowledged write of it, the value any of them left is accepted
    /// too (absence, for a delete). An in-doubt write issued before the key's last
    /// acknowledged write cannot show through it, so its value is not accepted.
    pub fn read(
        &mut self,
        op_index: u64,
        key: &[u8],
        answer: Option<&[u8]>,
    ) -> Result<(), Violation> {
        self.stats.reads_checked += 1;
        if self.allowed(key, answer) {
            return Ok(());
        }
        let expected = self.model.get(key).map(Vec::as_slice);
        let mut text = format!(
            "get({}) at step {op_index} returned a value the model does not allow\n",
            printable(key)
        );
        text.push_str(&self.key_report(key, expected, answer, "answered"));
        Err(self.violation(op_index, ViolationKind::ReadMismatch, text))
    }

    /// Checks a range scan answered before a crash: `answer` must hold the model's entries with
    /// `lower <= key < upper_exclusive` (`None` = unbounded), in strictly ascending key order.
    ///
    /// The comparison is key by key, with the same in-doubt allowance as [`Checker::read`]: a
    /// key the model lacks may appear (or a model key may be missing, or hold another value)
    /// only if an in-doubt write after the key's last acknowledged write explains it.
    pub fn scan(
        &mut self,
        op_index: u64,
        lower: Option<&[u8]>,
        upper_exclusive: Option<&[u8]>,
        answer: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), Violation> {
        self.stats.scans_checked += 1;
        self.stats.scanned_keys_checked += answer.len() as u64;
        let range = format!(
            "scan [{}, {})",
            lower.map_or_else(|| "-inf".to_owned(), printable),
            upper_exclusive.map_or_else(|| "+inf".to_owned(), printable)
        );

        // The answer's shape: inside the range, strictly ascending.
        let mut previous: Option<&[u8]> = None;
        for (position, (key, _)) in answer.iter().enumerate() {
            let key = key.as_slice();
            let shape_error = if lower.is_some_and(|lower| key < lower)
                || upper_exclusive.is_some_and(|upper| key >= upper)
            {
                Some(format!(
                    "entry {position} has key {} outside the range",
                    printable(key)
                ))
            } else if previous.is_some_and(|previous| previous >= key) {
                Some(format!(
                    "entry {position} has key {} not after the previous key {}",
                    printable(key),
                    printable_opt(previous)
                ))
            } else {
                None
            };
            if let Some(problem) = shape_error {
                let text = format!(
                    "{range} at step {op_index} returned a malformed answer ({} entries): {problem}\n",
                    answer.len()
                );
                return Err(self.violation(op_index, ViolationKind::ScanMismatch, text));
            }
            previous = Some(key);
        }

        // The contents: merge the model's range with the answer, key by key.
        let empty_range =
            matches!((lower, upper_exclusive), (Some(lower), Some(upper)) if lower >= upper);
        let bounds = (
            lower.map_or(Bound::Unbounded, Bound::Included),
            upper_exclusive.map_or(Bound::Unbounded, Bound::Excluded),
        );
        let model_entries = (!empty_range)
            .then(|| self.model.range::<[u8], _>(bounds))
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.as_slice(), value.as_slice()));
        let answer_entries = answer
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()));
        let first_unexplained =
            for_each_difference(model_entries, answer_entries, |key, expected, answered| {
                if self.in_doubt_allows(key, answered) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break::<OwnedDifference>((
                        key.to_vec(),
                        expected.map(<[u8]>::to_vec),
                        answered.map(<[u8]>::to_vec),
                    ))
                }
            });
        let ControlFlow::Break((key, expected, answered)) = first_unexplained else {
            return Ok(());
        };
        let model_count = if empty_range {
            0
        } else {
            self.model.range::<[u8], _>(bounds).count()
        };
        let what = match (&expected, &answered) {
            (Some(_), None) => "is missing key",
            (None, Some(_)) => "has extra key",
            _ => "has a wrong value for key",
        };
        let mut text = format!(
            "{range} at step {op_index} {what} {} (the model has {model_count} entries in range, the answer {})\n",
            printable(&key),
            answer.len()
        );
        text.push_str(&self.key_report(&key, expected.as_deref(), answered.as_deref(), "answered"));
        Err(self.violation(op_index, ViolationKind::ScanMismatch, text))
    }

    /// Records that the machine crashed: every write issued but not completed becomes
    /// [`Outcome::Failed`] (in flight at a crash: effect unknown). The epoch ends at the next
    /// [`Checker::recovered`].
    pub fn crashed(&mut self, op_index: u64) {
        self.stats.crashes += 1;
        self.crash_op = Some(op_index);
        self.fail_pending();
    }

    /// Records a clean close and reopen without a crash: the close made every acknowledged
    /// write durable, exactly as [`Checker::durable_point`]. The simulator then calls
    /// [`Checker::recovered`] with the reopened state, which must hold every acknowledged write.
    pub fn clean_reopen(&mut self, op_index: u64) {
        self.durable_point(op_index);
    }

    /// Releases the epoch's durability floor for the next [`Checker::recovered`]: the engine
    /// reported damage to its log and recovered past it (a point-in-time recovery), so any
    /// acknowledged write may be lost. The recovered state must still be a prefix of the
    /// epoch's writes: never a hole, never a write without the ones before it.
    pub fn waive_durability(&mut self) {
        self.durable_upto = 0;
        self.durable_op = None;
    }

    /// Checks the state after recovery (a full scan, `state`) and point reads made right after
    /// it, then starts a new epoch whose base is `state`. Returns the prefix length `k` chosen.
    ///
    /// Let `w[0..n]` be the epoch's non-rejected writes in issue order (failed and in-flight
    /// ones included). `state` must equal `base + w[0..k]`, each batch applied whole, for some
    /// `k_min <= k <= n`, where `k_min` counts the writes acknowledged durable (see
    /// [`Checker::write_issued`] and [`Checker::durable_point`]). The smallest such `k` is
    /// returned (any matching one is valid; the smallest is deterministic). Every point read
    /// must equal `state`.
    ///
    /// The walk never rebuilds a state per candidate: it applies one batch at a time to a
    /// running overlay on the base and keeps the number of keys where the running state and
    /// `state` differ (one merge pass to start, then `O(log n)` per mutation); `k` matches when
    /// that number is 0.
    ///
    /// On a violation the new epoch starts from `state` all the same, so a caller that goes on
    /// is checked against what the engine actually holds rather than failing again on the same
    /// loss.
    pub fn recovered(
        &mut self,
        op_index: u64,
        state: &BTreeMap<Vec<u8>, Vec<u8>>,
        point_reads: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<usize, Violation> {
        self.stats.recoveries_checked += 1;
        self.stats.point_reads_checked += point_reads.len() as u64;
        self.fail_pending();
        let order = self.prefix_order();
        let n = order.len();
        let k_min = self.k_min(&order);
        let verdict = match self.search_prefix(state, &order, k_min) {
            PrefixSearch::Match(k) => {
                match point_reads
                    .iter()
                    .find(|(key, answer)| state.get(key).map(Vec::as_slice) != answer.as_deref())
                {
                    None => {
                        self.stats.writes_lost += (n - k) as u64;
                        Ok(k)
                    }
                    Some((key, answer)) => {
                        let text = self.explain_point_read(op_index, state, key, answer.as_deref());
                        Err(self.violation(op_index, ViolationKind::PointReadMismatch, text))
                    }
                }
            }
            PrefixSearch::NoMatch {
                best_k,
                best_mismatch,
                below,
            } => {
                let text = self.explain_recovery(
                    op_index,
                    state,
                    &order,
                    k_min,
                    best_k,
                    best_mismatch,
                    below,
                );
                Err(self.violation(op_index, ViolationKind::RecoveryNotAPrefix, text))
            }
        };
        self.start_epoch(state);
        verdict
    }

    /// The acknowledged model now: the epoch's base plus every write acknowledged `Ok` in this
    /// epoch, in issue order.
    pub fn model(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.model
    }

    /// The state the current epoch started from.
    pub fn base(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.base
    }

    /// The current epoch's number (0 until the first recovery).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The prefix lengths a recovery right now would accept: `(k_min, n)`.
    pub fn prefix_bounds(&self) -> (usize, usize) {
        let order = self.prefix_order();
        (self.k_min(&order), order.len())
    }

    /// The remembered faults, oldest first: (op index, description).
    pub fn recent_faults(&self) -> impl Iterator<Item = (u64, &str)> {
        self.faults.iter().map(|(op, text)| (*op, text.as_str()))
    }

    /// What has been seen and checked so far.
    pub fn stats(&self) -> CheckerStats {
        self.stats
    }

    // ----- bookkeeping -----

    fn mark_durable(&mut self, upto: usize, op_index: u64) {
        if upto >= self.durable_upto {
            self.durable_upto = upto;
            self.durable_op = Some(op_index);
        }
    }

    fn fail_pending(&mut self) {
        for meta in &mut self.metas[self.epoch_first..] {
            if meta.status == Status::Pending {
                meta.status = Status::Failed;
                self.stats.writes_failed += 1;
            }
        }
    }

    /// Brings the model up to date with the newly acknowledged write `local`. If it is the
    /// last write touching a key, its mutation simply applies; otherwise (an earlier write
    /// acknowledged after a later one) the key's value is recomputed from its touch list.
    fn apply_ok_to_model(&mut self, local: usize) {
        let mut recompute: BTreeSet<Vec<u8>> = BTreeSet::new();
        for mutation in &self.batches[local] {
            let latest = self
                .touches
                .get(mutation.key())
                .and_then(|list| list.last())
                == Some(&local);
            if !latest {
                recompute.insert(mutation.key().to_vec());
                continue;
            }
            match mutation {
                Mutation::Put { key, value } => {
                    self.model.insert(key.clone(), value.clone());
                }
                Mutation::Delete { key } => {
                    self.model.remove(key.as_slice());
                }
            }
        }
        for key in recompute {
            match self.acknowledged_value(&key).map(<[u8]>::to_vec) {
                Some(value) => {
                    self.model.insert(key, value);
                }
                None => {
                    self.model.remove(&key);
                }
            }
        }
    }

    /// The value of `key` in the model, computed from the touch list: the effect of the last
    /// acknowledged write touching it, else the base.
    fn acknowledged_value(&self, key: &[u8]) -> Option<&[u8]> {
        let touches = self.touches.get(key).map(Vec::as_slice).unwrap_or_default();
        for &local in touches.iter().rev() {
            if self.status(local) == Status::Ok {
                return self.effect(local, key);
            }
        }
        self.base.get(key).map(Vec::as_slice)
    }

    /// What write `local` leaves in `key`: its last mutation of the key wins.
    fn effect(&self, local: usize, key: &[u8]) -> Option<&[u8]> {
        self.batches[local]
            .iter()
            .rev()
            .find(|mutation| mutation.key() == key)
            .and_then(Mutation::value)
    }

    fn status(&self, local: usize) -> Status {
        self.metas[self.epoch_first + local].status
    }

    /// The in-doubt writes touching `key` after its last acknowledged write, newest first.
    fn in_doubt_writes(&self, key: &[u8]) -> Vec<usize> {
        let touches = self.touches.get(key).map(Vec::as_slice).unwrap_or_default();
        let mut found = Vec::new();
        for &local in touches.iter().rev() {
            let status = self.status(local);
            if status == Status::Ok {
                break;
            }
            if status.in_doubt() {
                found.push(local);
            }
        }
        found
    }

    fn in_doubt_allows(&self, key: &[u8], answer: Option<&[u8]>) -> bool {
        self.in_doubt_writes(key)
            .into_iter()
            .any(|local| self.effect(local, key) == answer)
    }

    fn allowed(&self, key: &[u8], answer: Option<&[u8]>) -> bool {
        self.model.get(key).map(Vec::as_slice) == answer || self.in_doubt_allows(key, answer)
    }

    fn start_epoch(&mut self, state: &BTreeMap<Vec<u8>, Vec<u8>>) {
        self.base = state.clone();
        self.model = state.clone();
        self.epoch += 1;
        self.epoch_first = self.metas.len();
        self.batches.clear();
        self.touches.clear();
        self.last_ok = None;
        self.durable_upto = 0;
        self.durable_op = None;
        self.crash_op = None;
        self.stats.epochs += 1;
    }
}

/// The entries of a map as borrowed slices.
fn entries(map: &BTreeMap<Vec<u8>, Vec<u8>>) -> impl Iterator<Item = (&[u8], &[u8])> {
    map.iter()
        .map(|(key, value)| (key.as_slice(), value.as_slice()))
}

/// Merges two key-sorted entry streams and calls `on_difference(key, a, b)` for every key whose
/// value differs (absent on one side counts as differing), in key order, until it breaks.
fn for_each_difference<'a, B>(
    a: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    b: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    mut on_difference: impl FnMut(&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    loop {
        let (key, in_a, in_b) = match (a.peek().copied(), b.peek().copied()) {
            (None, None) => return ControlFlow::Continue(()),
            (Some((key, value)), None) => {
                a.next();
                (key, Some(value), None)
            }
            (None, Some((key, value))) => {
                b.next();
                (key, None, Some(value))
            }
            (Some((key_a, value_a)), Some((key_b, value_b))) => match key_a.cmp(key_b) {
                std::cmp::Ordering::Less => {
                    a.next();
                    (key_a, Some(value_a), None)
                }
                std::cmp::Ordering::Greater => {
                    b.next();
                    (key_b, None, Some(value_b))
                }
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next();
                    if value_a == value_b {
                        continue;
                    }
                    (key_a, Some(value_a), Some(value_b))
                }
            },
        };
        on_difference(key, in_a, in_b)?;
    }
}

/// XXH3, 64 bits: a hash of a value for the value index (explanations only), the same on
/// every platform and fast on the large values sweeps write.
fn value_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}
