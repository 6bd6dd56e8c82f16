//! Salvaging WAL records when the manifest and the WALs do not pass recovery's checks.
//!
//! The records a repair replays become the newest level-0 tables, above every table kept.
//! That is right only for records newer than everything in the tables, and a WAL whose
//! records were flushed long ago may still lie in the directory (its removal is best
//! effort). Replaying such a WAL on top would bring back values that later writes, flushed
//! since, replaced. So, without a manifest that agrees with the WALs:
//!
//! - records at or below `floor` (the last sequence number a readable manifest says its
//!   tables hold; 0 without one) are skipped: the tables have them;
//! - only the *live chain* is replayed: the newest WAL, and each WAL before it whose closing
//!   record names the next one (a rotation writes that record before the successor takes
//!   any write; `docs/wal-format.md`). A WAL before a break in the chain was not the log's
//!   continuation — typically a flushed WAL whose removal a crash undid, whose closing record
//!   names a successor that is gone — so its data is in tables, or the WAL after it was
//!   lost; it is set aside unreplayed and reported. One guess: a WAL with no closing record
//!   below WALs that hold nothing joins the chain (a rotation cut short by a crash);
//! - each WAL is replayed up to its first damage; records after the damage are reported as
//!   dropped; a batch that does not advance the sequence is skipped as a repeat, and a jump
//!   in the sequence is reported as a gap (writes lost between).

use crate::batch::{decode_payload, DecodedPayload, LogSuccessor};
use crate::db::replay::TableSink;
use crate::error::Result;
use crate::filenames::wal_path;
use crate::manifest::ManifestState;
use crate::options::Options;
use crate::wal::{self, LogEnd, WalReader};
use std::path::Path;
use strata_vfs::Vfs;

/// What one pass over a WAL says of it.
#[derive(Debug, Clone, Default)]
pub(super) struct WalSummary {
    /// Whether it holds any valid record (before or after damage).
    pub(super) holds_records: bool,
    /// The successor its closing record names, if a valid closing record was found.
    pub(super) successor: Option<LogSuccessor>,
    /// The highest sequence number any valid record of it uses.
    pub(super) last_sequence: u64,
}

/// Reads every valid record of the WAL `number` (past damage too, by `scan_after`).
pub(super) fn summarize(vfs: &dyn Vfs, dir: &Path, number: u64) -> Result<WalSummary> {
    let file = vfs.open_read(&wal_path(dir, number))?;
    let (mut records, end) = wal::read_log(file.as_ref())?;
    if let LogEnd::Broken { offset, .. } = end {
        records.extend(WalReader::scan_after(file.as_ref(), offset)?);
    }
    let mut summary = WalSummary::default();
    for decoded in records
        .iter()
        .filter_map(|(_, payload)| decode_payload(payload).ok())
    {
        summary.holds_records = true;
        summary.last_sequence = summary.last_sequence.max(last_sequence_of(&decoded));
        if decoded.closing.is_some() {
            summary.successor = decoded.closing;
        }
    }
    Ok(summary)
}

fn last_sequence_of(decoded: &DecodedPayload) -> u64 {
    match decoded.closing {
        Some(_) => decoded.sequence.saturating_sub(1),
        None => decoded.sequence + (decoded.batch.len() as u64).saturating_sub(1),
    }
}

/// Splits `wals` (ascending, with their summaries) into the live chain (ascending) and the
/// WALs that hold records but are not part of it. The chain runs down from the newest WAL
/// (empty or not): a WAL joins if its closing record names the WAL above it, or if it has no
/// closing record and every WAL above it is empty (a rotation cut short by a crash, before
/// the closing record was durable). The first WAL that does not join ends the chain.
pub(super) fn live_chain(wals: &[(u64, WalSummary)]) -> (Vec<u64>, Vec<u64>) {
    let mut below = wals.iter().rev();
    let Some((head, head_summary)) = below.next() else {
        return (Vec::new(), Vec::new());
    };
    let mut chain = vec![*head];
    let mut above_empty = !head_summary.holds_records;
    let mut disconnected = Vec::new();
    let mut broken = false;
    for (number, summary) in below {
        let start = chain[chain.len() - 1];
        let joins = !broken
            && match summary.successor {
                Some(LogSuccessor::Wal(successor)) => successor == start,
                Some(LogSuccessor::Closed) => false,
                None => above_empty,
            };
        if joins {
            chain.push(*number);
            above_empty &= !summary.holds_records;
        } else {
            broken = true;
            if summary.holds_records {
                disconnected.push(*number);
            }
        }
    }
    chain.reverse();
    disconnected.reverse();
    (chain, disconnected)
}

/// What replaying the chain did.
#[derive(Debug, Default)]
pub(super) struct ChainReplay {
    /// Batches replayed.
    pub(super) records: u64,
    /// The sequence number after the last batch replayed (or `floor + 1`).
    pub(super) next_sequence: u64,
    /// What was not replayed and why, one line each.
    pub(super) dropped: Vec<String>,
}

/// Replays the chain's batches above `floor` into level-0 tables added to `state`.
pub(super) fn replay_chain(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    chain: &[u64],
    floor: u64,
    state: &mut ManifestState,
) -> Result<ChainReplay> {
    let mut sink = TableSink::new(vfs, dir, options);
    let mut outcome = ChainReplay {
        next_sequence: floor + 1,
        ..ChainReplay::default()
    };
    // Without a manifest (floor 0) nothing says where the tables' data ends, so the first
    // batch cannot show a gap.
    let mut expected = (floor > 0).then_some(floor + 1);
    for &number in chain {
        let path = wal_path(dir, number);
        let file = vfs.open_read(&path)?;
        let mut reader = WalReader::new(file.as_ref())?;
        let mut stopped_at = None;
        while let Some((offset, payload)) = reader.next_record()? {
            let decoded = match decode_payload(&payload) {
                Ok(decoded) => decoded,
                Err(reason) => {
                    stopped_at = Some((offset, format!("record passes its checksum but {reason}")));
                    break;
                }
            };
            if decoded.closing.is_some() || decoded.sequence < outcome.next_sequence {
                continue;
            }
            if let Some(expected) = expected.filter(|&expected| decoded.sequence > expected) {
                outcome.dropped.push(format!(
                    "{} at offset {offset}: sequence numbers {expected}..{} are missing \
                     (writes lost before this record)",
                    path.display(),
                    decoded.sequence - 1
                ));
            }
            sink.apply(&decoded.batch, state)?;
            outcome.records += 1;
            outcome.next_sequence = decoded.sequence + decoded.batch.len() as u64;
            expected = Some(outcome.next_sequence);
        }
        if stopped_at.is_none() {
            if let Some(LogEnd::Broken { offset, reason }) = reader.end() {
                stopped_at = Some((*offset, reason.clone()));
            }
        }
        drop(reader);
        if let Some((offset, reason)) = stopped_at {
            let later = WalReader::scan_after(file.as_ref(), offset)?
                .iter()
                .filter(|(_, payload)| {
                    decode_payload(payload).is_ok_and(|decoded| decoded.closing.is_none())
                })
                .count();
            if later > 0 {
                outcome.dropped.push(format!(
                    "{} at offset {offset}: {reason}; {later} valid records after it were not \
                     replayed",
                    path.display()
                ));
            }
        }
    }
    sink.finish(state)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(successor: Option<LogSuccessor>) -> WalSummary {
        WalSummary {
            holds_records: true,
            successor,
            last_sequence: 0,
        }
    }

    #[test]
    fn the_chain_runs_down_from_the_newest_wal_to_the_first_break() {
        let wals = vec![
            (3, summary(Some(LogSuccessor::Closed))),
            (5, summary(Some(LogSuccessor::Wal(6)))),
            (6, summary(Some(LogSuccessor::Wal(9)))),
            (9, summary(Some(LogSuccessor::Wal(11)))),
            (11, WalSummary::default()),
        ];
        let (chain, disconnected) = live_chain(&wals);
        assert_eq!(chain, vec![5, 6, 9, 11]);
        assert_eq!(disconnected, vec![3]);
        // A flushed WAL left behind names a successor that is gone: not the log's end.
        let wals = vec![
            (4, summary(Some(LogSuccessor::Wal(6)))),
            (8, WalSummary::default()),
        ];
        assert_eq!(live_chain(&wals), (vec![8], vec![4]));
        // No closing record: the log's end if nothing above holds records.
        let wals = vec![(4, summary(None)), (8, WalSummary::default())];
        assert_eq!(live_chain(&wals), (vec![4, 8], vec![]));
        let wals = vec![(4, summary(None)), (8, summary(None))];
        assert_eq!(live_chain(&wals), (vec![8], vec![4]));
        // A break is final: a WAL before it is not joined even if it names the next one.
        let wals = vec![
            (1, summary(Some(LogSuccessor::Wal(2)))),
            (2, summary(Some(LogSuccessor::Closed))),
            (4, summary(None)),
        ];
        assert_eq!(live_chain(&wals), (vec![4], vec![1, 2]));
        assert_eq!(live_chain(&[]), (vec![], vec![]));
    }
}
