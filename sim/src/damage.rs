//! Damage to durable files between runs of the engine: a flipped bit (the medium), a file cut
//! short or a file lost (an operator's mistake, a lost tail). Applied after a crash, before
//! recovery, to every kind of file the engine keeps.
//!
//! The checker's rule after damage: recovery (or a later read) fails with `Corruption`, or
//! what the engine returns is a state the durability promise allows. Under
//! `WalRecovery::PointInTime` a recovery that reports WAL damage may also lose acknowledged
//! writes, but must still yield a prefix of the history.
//!
//! One place is left out on purpose, because no format can tell damage there from what a
//! crash leaves: the records of the newest WAL after the last point a record proves durable
//! (`synced_through`). Their sync completed, but nothing written after it says so, so a
//! flipped bit or a cut there reads exactly as a torn tail. That region is not damaged
//! (flips), and the newest WAL is not cut (truncation), see `docs/wal-format.md`.

use crate::case::Fault;
use crate::runner::Runner;
use strata_engine::filenames::{self, FileKind};
use strata_engine::wal::{self, LogEnd};
use strata_engine::{decode_payload, LogSuccessor};
use strata_vfs::Vfs;

/// One kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    Flip,
    Truncate,
    Lose,
}

impl Damage {
    fn name(self) -> &'static str {
        match self {
            Damage::Flip => "flip",
            Damage::Truncate => "truncate",
            Damage::Lose => "lose",
        }
    }
}

/// A file that damage may hit, and the bytes of it that may be damaged.
struct Target {
    name: String,
    kind: &'static str,
    len: u64,
    /// Bytes `[0, flip_limit)` may be flipped.
    flip_limit: u64,
    /// Whether the file may be cut short.
    may_truncate: bool,
}

impl Runner<'_> {
    /// Maybe damages one file (each damage the case has on is drawn with its own chance).
    pub(crate) fn damage_files(&mut self, step: u64) {
        for (fault, damage, chance) in [
            (Fault::Bitflip, Damage::Flip, 0.02),
            (Fault::Truncate, Damage::Truncate, 0.01),
            (Fault::Lose, Damage::Lose, 0.005),
        ] {
            if !self.case.has(fault) || !self.damage_rng.chance(chance) {
                continue;
            }
            let targets = self.damage_targets();
            let eligible: Vec<&Target> = targets
                .iter()
                .filter(|target| match damage {
                    Damage::Flip => target.flip_limit > 0,
                    Damage::Truncate => target.may_truncate && target.len > 0,
                    Damage::Lose => true,
                })
                .collect();
            if eligible.is_empty() {
                continue;
            }
            let target = eligible[self.damage_rng.below(eligible.len() as u64) as usize];
            let path = std::path::Path::new(&target.name);
            let (done, text) = match damage {
                Damage::Flip => {
                    let offset = self.damage_rng.below(target.flip_limit);
                    let bit = self.damage_rng.below(8) as u8;
                    (
                        self.fs.flip_bit(path, offset, bit).is_ok(),
                        format!("bit {bit} of byte {offset} of {} flipped", target.name),
                    )
                }
                Damage::Truncate => {
                    let len = self.damage_rng.below(target.len);
                    (
                        self.fs.truncate_file(path, len).is_ok(),
                        format!("{} cut from {} to {len} bytes", target.name, target.len),
                    )
                }
                Damage::Lose => (
                    self.fs.lose_file(path).is_ok(),
                    format!("{} lost", target.name),
                ),
            };
            if done {
                let label = format!("{} {}", damage.name(), target.kind);
                self.record_damage(step, label, text);
            }
        }
    }

    /// The files of the database that damage may hit, in name order.
    fn damage_targets(&self) -> Vec<Target> {
        let mut files: Vec<(String, u64)> = self.fs.files();
        files.sort();
        let mut targets = Vec::new();
        let mut wals = Vec::new();
        for (name, len) in files {
            let base = name.rsplit('/').next().unwrap_or(&name);
            let kind = match filenames::parse(base) {
                Some(FileKind::Table(_)) => "table",
                Some(FileKind::Manifest(_)) => "manifest",
                Some(FileKind::Current) | Some(FileKind::CurrentTemp) => "current",
                Some(FileKind::Wal(number)) => {
                    wals.push((number, name.clone(), len));
                    continue;
                }
                _ => continue,
            };
            targets.push(Target {
                name,
                kind,
                len,
                flip_limit: len,
                may_truncate: true,
            });
        }
        wals.sort();
        // Which WALs hold records, and how far the newest of those is proven durable.
        let mut summaries = Vec::new();
        for (_, name, len) in &wals {
            summaries.push(self.wal_summary(name, *len));
        }
        let newest_with_records = summaries.iter().rposition(|summary| summary.holds_records);
        for (index, ((_, name, len), summary)) in wals.iter().zip(&summaries).enumerate() {
            let vouched_by_successor = newest_with_records.is_some_and(|newest| index < newest);
            let (flip_limit, may_truncate) = if vouched_by_successor || summary.closed {
                // Its successor holds records, so it was finished (closing record and all)
                // before they were written; or it was closed with the database.
                (*len, vouched_by_successor)
            } else {
                (summary.proven_durable.min(*len), false)
            };
            targets.push(Target {
                name: name.clone(),
                kind: "wal",
                len: *len,
                flip_limit,
                may_truncate,
            });
        }
        targets
    }

    fn wal_summary(&self, name: &str, len: u64) -> WalSummary {
        let mut summary = WalSummary::default();
        let Ok(file) = self.fs.open_read(std::path::Path::new(name)) else {
            return summary;
        };
        let Ok((records, end)) = wal::read_log(file.as_ref()) else {
            return summary;
        };
        // As recovery counts them: a valid record, first or after damage at the start.
        summary.holds_records = !records.is_empty()
            || match end {
                LogEnd::Broken { offset, .. } => {
                    wal::WalReader::scan_after(file.as_ref(), offset).is_ok_and(|r| !r.is_empty())
                }
                LogEnd::Clean => false,
            };
        for (_, payload) in &records {
            if let Ok(decoded) = decode_payload(payload) {
                summary.proven_durable = summary.proven_durable.max(decoded.synced_through);
                summary.closed = decoded.closing == Some(LogSuccessor::Closed);
            }
        }
        summary.proven_durable = summary.proven_durable.min(len);
        summary
    }
}

#[derive(Default)]
struct WalSummary {
    holds_records: bool,
    /// The largest `synced_through` of its valid records.
    proven_durable: u64,
    /// Its last valid record is a closing record of a clean close.
    closed: bool,
}
