//! The plain data the checker takes in and gives back: mutations, outcomes, write handles,
//! violations and statistics. Everything a simulator may want to store in a trace or a corpus
//! file is `serde`-serializable.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One change to the key space. A put or a delete issued alone is a batch of one; a batch of
/// several is applied atomically, in order (a later mutation of the same key in the same batch
/// wins, as in the engine's `WriteBatch`, where each operation gets its own sequence number).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mutation {
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: Vec<u8>,
        /// The value it now holds.
        value: Vec<u8>,
    },
    /// Remove `key` (a no-op if it is absent).
    Delete {
        /// The key removed.
        key: Vec<u8>,
    },
}

impl Mutation {
    /// A put of `value` under `key`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Mutation {
        Mutation::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A delete of `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Mutation {
        Mutation::Delete { key: key.into() }
    }

    /// The key the mutation changes.
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }

    /// What the key holds right after this mutation: the value for a put, `None` (absent) for
    /// a delete.
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            Mutation::Put { value, .. } => Some(value),
            Mutation::Delete { .. } => None,
        }
    }
}

/// How a write ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged: the write's effect is visible to every later read of this epoch, and it is
    /// a member of the history that recovery must respect (durable if `sync` was set).
    Ok,
    /// An I/O error, or still in flight when the machine crashed: the effect is *unknown*. The
    /// write stays in the history; reads may or may not see it, and recovery may include it
    /// only as a member of a prefix (present iff every earlier write is present too).
    ///
    /// An engine error that is *known* to have had no effect must be reported as
    /// [`Outcome::Rejected`] instead: a `Failed` write followed by an acknowledged durable one
    /// must be present after recovery, because prefixes have no holes.
    Failed,
    /// Refused before anything was done (invalid argument, database poisoned or closed): known
    /// to have no effect, so the write is dropped from the history altogether. A recovered or
    /// read value that only a rejected write produced is a violation.
    Rejected,
}

/// Handle of an issued write, passed back to [`crate::Checker::write_completed`]. Handles are
/// numbered from 0 across the whole run (all epochs), in issue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriteId(pub(crate) usize);

impl WriteId {
    /// The run-wide number of this write (0 for the first write ever issued).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Which promise was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ViolationKind {
    /// A point read before a crash answered something the model does not allow.
    ReadMismatch,
    /// A range scan before a crash answered something the model does not allow (a wrong value,
    /// a missing or extra key, a key outside the range, or keys out of order).
    ScanMismatch,
    /// The state after recovery is not the state after any allowed prefix of the epoch's
    /// writes: a durable write was lost, there is a hole, half a batch, or an unwritten value.
    RecoveryNotAPrefix,
    /// A point read right after recovery disagrees with the recovered state (the full scan).
    PointReadMismatch,
    /// With concurrent clients: the engine's claimed commit order (sequence numbers)
    /// contradicts real time, two batches share numbers, or a write was acknowledged
    /// without one.
    OrderNotRealTime,
    /// A read at a snapshot (a point read or any scan) answered something other than the
    /// model at the snapshot's sequence number.
    SnapshotMismatch,
    /// The sequence number a snapshot or a scan reads at is not a legal one: it misses a
    /// write acknowledged before the reader began, includes one invoked after it was made,
    /// is older than an earlier reader's, or splits a batch.
    BadReadSequence,
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ViolationKind::ReadMismatch => "read mismatch",
            ViolationKind::ScanMismatch => "scan mismatch",
            ViolationKind::RecoveryNotAPrefix => "recovered state is not a prefix",
            ViolationKind::PointReadMismatch => "point read after recovery mismatch",
            ViolationKind::OrderNotRealTime => "commit order contradicts real time",
            ViolationKind::SnapshotMismatch => "snapshot read mismatch",
            ViolationKind::BadReadSequence => "a reader's sequence number is not a legal one",
        })
    }
}

/// A broken promise, with a multi-line explanation meant for a human: the first key that
/// differs, the expected and actual values, the op index that wrote each, and the faults that
/// preceded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The op index of the event that exposed the violation (the read, scan or recovery).
    pub op_index: u64,
    /// Which promise was broken.
    pub kind: ViolationKind,
    /// Human-readable, multi-line; the first line is a one-sentence summary.
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at step {}\n{}",
            self.kind, self.op_index, self.explanation
        )
    }
}

impl std::error::Error for Violation {}

/// Counters of what the checker has seen and checked, for sweep summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerStats {
    /// Epochs begun: 1 at the start, plus one per [`crate::Checker::recovered`] call.
    pub epochs: u64,
    /// Writes (batches) issued, whatever their outcome.
    pub writes_issued: u64,
    /// Mutations inside those batches.
    pub mutations_issued: u64,
    /// Writes acknowledged [`Outcome::Ok`].
    pub writes_ok: u64,
    /// Writes that ended [`Outcome::Failed`], including those in flight at a crash.
    pub writes_failed: u64,
    /// Writes that ended [`Outcome::Rejected`].
    pub writes_rejected: u64,
    /// Calls to [`crate::Checker::durable_point`] (and [`crate::Checker::clean_reopen`]).
    pub durable_points: u64,
    /// Faults reported through [`crate::Checker::fault`].
    pub faults: u64,
    /// Crashes reported through [`crate::Checker::crashed`].
    pub crashes: u64,
    /// Point reads checked before a crash.
    pub reads_checked: u64,
    /// Scans checked before a crash.
    pub scans_checked: u64,
    /// Entries in the answers of those scans.
    pub scanned_keys_checked: u64,
    /// Recovered states checked against the prefix rule.
    pub recoveries_checked: u64,
    /// Point reads checked right after recovery.
    pub point_reads_checked: u64,
    /// Over the recoveries that passed: writes of the epoch outside the chosen prefix, i.e.
    /// unsynced or failed writes legitimately lost in a crash.
    pub writes_lost: u64,
    /// Violations reported.
    pub violations: u64,
}
