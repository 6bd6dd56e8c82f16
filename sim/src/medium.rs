//! The medium's faults in a run (`--faults misdirect,lost-write,stale-read,latent`, or
//! `medium`; never in the default set): their rates, the relaxations of the checker they
//! call for, and what the engine made of each.
//!
//! They are injected damage, like the bit flips of `damage.rs`, and the engine cannot be
//! expected to keep data through them: a lost synced write is gone, an unreadable sector
//! has no other copy. What it must never do is return a wrong answer *without an error*. So:
//! - A corruption error, a refusal to open, a point-in-time recovery past damage, or an I/O
//!   error from an unreadable sector (at open or when the runner reads the recovered
//!   database) ends the run as *detected*: the engine said so instead of answering.
//! - A crash with a lost or misdirected write pending (written since the last crash) waives
//!   the durability of that epoch's acknowledged writes: recovery may lose any of them, but
//!   must still be a prefix of the history (`Checker::waive_durability`). So does a stale
//!   or misdirected read since the last check: a recovery that read its log wrong has, as
//!   far as it can tell, a medium that lost the writes (a block of the live WAL read as
//!   zeros is a clean end of the log; `docs/medium-faults.md`).
//! - Everything else is checked as usual, so a state that is not a prefix, or a read of
//!   wrong data, is a violation: *silent wrong data*.
//!
//! Per fault kind, each run in which it fired counts once, by how the run ended: a
//! violation, detected, recovered past (a point-in-time recovery, then a pass), or accepted
//! (every state the checker saw was allowed: the fault did no harm it could see, or the
//! loss was within the waiver); and, among the runs that passed, those whose recovery did
//! lose acknowledged writes under the waiver. What no format can detect is in
//! `docs/medium-faults.md`.

use crate::case::{Case, Fault};
use crate::runner::Runner;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_vfs::{FaultConfig, FaultCounters, FaultKind};

/// Per write (misdirected, lost), per read (stale or misdirected) and per file sync (a
/// latent sector error somewhere): about one or two of each in a seed of 1,000 steps.
const MISDIRECTED_WRITE_RATE: f64 = 0.002;
const LOST_WRITE_RATE: f64 = 0.002;
const STALE_READ_RATE: f64 = 0.004;
const LATENT_SECTOR_RATE: f64 = 0.002;

/// Turns on the medium faults `case` has.
pub(crate) fn set_rates(case: &Case, config: &mut FaultConfig) {
    let rate = |fault, rate| if case.has(fault) { rate } else { 0.0 };
    config.misdirected_write_rate = rate(Fault::Misdirect, MISDIRECTED_WRITE_RATE);
    config.lost_write_rate = rate(Fault::LostWrite, LOST_WRITE_RATE);
    config.stale_read_rate = rate(Fault::StaleRead, STALE_READ_RATE);
    config.latent_sector_rate = rate(Fault::Latent, LATENT_SECTOR_RATE);
}

/// The filesystem's fault kinds that a case's medium fault injects (what the summary counts
/// as injected; reads failing on an unreadable sector are effects, counted as
/// `unreadable_sector` among the faults).
fn injected_kinds(fault: Fault) -> &'static [FaultKind] {
    match fault {
        Fault::Misdirect => &[FaultKind::MisdirectedWrite],
        Fault::LostWrite => &[FaultKind::LostWrite],
        Fault::StaleRead => &[FaultKind::StaleRead, FaultKind::MisdirectedRead],
        Fault::Latent => &[FaultKind::LatentSectorError],
        _ => &[],
    }
}

/// Whether any medium fault has fired.
pub(crate) fn fired(counters: &FaultCounters) -> bool {
    FaultKind::MEDIUM.iter().any(|&kind| counters.get(kind) > 0)
}

/// Writes that did not reach the medium where they were meant.
fn writes_astray(counters: &FaultCounters) -> u64 {
    counters.get(FaultKind::LostWrite) + counters.get(FaultKind::MisdirectedWrite)
}

/// Reads that returned other bytes than the right ones.
fn reads_astray(counters: &FaultCounters) -> u64 {
    counters.get(FaultKind::StaleRead) + counters.get(FaultKind::MisdirectedRead)
}

/// What the engine made of one medium fault kind, over the runs where it fired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediumOutcome {
    /// Runs in which it fired.
    pub runs: u64,
    /// Faults injected (a stale read only when it returned other bytes).
    pub injected: u64,
    /// Runs ended by the engine's error: corruption, a refusal to open, EIO.
    pub detected: u64,
    /// Runs that passed after a point-in-time recovery past damage.
    pub recovered_past: u64,
    /// Runs that passed: every state the checker saw was allowed.
    pub accepted: u64,
    /// Runs with a violation: silent wrong data (or another finding).
    pub violations: u64,
    /// Of the runs that passed (accepted or recovered past), those where a recovery lost
    /// acknowledged-durable writes under the waiver: still a prefix, but data gone.
    #[serde(default)]
    pub lost_acknowledged: u64,
}

impl MediumOutcome {
    /// Adds another's counts.
    pub fn add(&mut self, other: &MediumOutcome) {
        self.runs += other.runs;
        self.injected += other.injected;
        self.detected += other.detected;
        self.recovered_past += other.recovered_past;
        self.accepted += other.accepted;
        self.violations += other.violations;
        self.lost_acknowledged += other.lost_acknowledged;
    }
}

/// Adds every kind's outcome of `other` into `mine`.
pub(crate) fn add_outcomes(
    mine: &mut BTreeMap<String, MediumOutcome>,
    other: &BTreeMap<String, MediumOutcome>,
) {
    for (kind, outcome) in other {
        mine.entry(kind.clone()).or_default().add(outcome);
    }
}

/// The summary's line: each kind's figures.
pub(crate) fn describe(outcomes: &BTreeMap<String, MediumOutcome>) -> String {
    let kinds: Vec<String> = outcomes
        .iter()
        .map(|(kind, o)| {
            format!(
                "{kind} {} injected in {} runs ({} detected, {} recovered past, {} accepted, {} silent wrong data; {} of the passing runs lost acknowledged writes as a prefix)",
                o.injected, o.runs, o.detected, o.recovered_past, o.accepted, o.violations, o.lost_acknowledged
            )
        })
        .collect();
    kinds.join(", ")
}

/// How a run ended, for the outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Violation,
    Detected,
    Passed,
}

/// The runner's record of the medium faults in a run.
#[derive(Debug, Default)]
pub(crate) struct MediumRecord {
    /// Writes astray as of the last machine crash.
    astray_at_crash: u64,
    /// The next recovery check waives durability: writes were astray at the crash.
    waive_next_check: bool,
    /// Reads astray as of the last recovery check.
    reads_astray_at_check: u64,
    /// The durability floor (`k_min`) a waiver lifted for the check under way.
    waived_floor: Option<usize>,
    /// A recovery under a waiver lost acknowledged-durable writes.
    lost_acknowledged: bool,
    /// Reads failed on an unreadable sector, as of the start of the current open.
    unreadable_at_open: u64,
    /// A point-in-time recovery went past damage after a medium fault.
    recovered_past: bool,
}

impl Runner<'_> {
    /// Whether damage was injected so far: the damage of `damage.rs`, or any medium fault.
    /// (Live: a medium fault fires in the middle of a step.)
    pub(crate) fn damaged(&self) -> bool {
        self.damage_injected || fired(&self.fs.counters())
    }

    /// At a machine crash: lost and misdirected writes since the last crash are gone now.
    pub(crate) fn medium_at_crash(&mut self, step: u64) {
        let astray = writes_astray(&self.fs.counters());
        if astray > self.medium.astray_at_crash {
            self.medium.astray_at_crash = astray;
            self.medium.waive_next_check = true;
            self.note(|| {
                format!(
                    "step {step}: writes astray on the medium before the crash: durability waived"
                )
            });
        }
    }

    /// Before a recovery check: the waiver a crash with writes astray, or a read astray
    /// since the last check, calls for.
    pub(crate) fn medium_before_check(&mut self, step: u64) {
        let reads = reads_astray(&self.fs.counters());
        let misread = reads > self.medium.reads_astray_at_check;
        self.medium.reads_astray_at_check = reads;
        let waive = std::mem::take(&mut self.medium.waive_next_check) || misread;
        self.medium.waived_floor = None;
        if waive {
            if misread {
                self.note(|| {
                    format!("step {step}: reads astray since the last check: durability waived")
                });
            }
            self.medium.waived_floor = Some(self.checker.prefix_bounds().0);
            self.checker.waive_durability();
        }
    }

    /// After a recovery check that chose prefix `k` (`None`: a violation).
    pub(crate) fn medium_after_check(&mut self, step: u64, k: Option<usize>) {
        if let (Some(floor), Some(k)) = (self.medium.waived_floor.take(), k) {
            if k < floor {
                self.medium.lost_acknowledged = true;
                self.note(|| {
                    format!(
                        "step {step}: under the waiver, acknowledged writes {}..{floor} were lost",
                        k + 1
                    )
                });
            }
        }
    }

    /// At the start of an open (and its verification).
    pub(crate) fn medium_open_begins(&mut self) {
        self.medium.unreadable_at_open = self.fs.counters().get(FaultKind::UnreadableSector);
    }

    /// Whether a read failed on an unreadable sector since the open began: an I/O error
    /// then is the medium's, reported, not a transient fault to retry or the engine's own.
    pub(crate) fn unreadable_since_open(&self) -> bool {
        self.fs.counters().get(FaultKind::UnreadableSector) > self.medium.unreadable_at_open
    }

    /// A point-in-time recovery went past damage.
    pub(crate) fn medium_recovered_past(&mut self) {
        if fired(&self.fs.counters()) {
            self.medium.recovered_past = true;
        }
    }

    /// Each medium fault kind that fired in the run, with how the run ended.
    pub(crate) fn medium_outcomes(&self, end: RunEnd) -> BTreeMap<String, MediumOutcome> {
        let counters = self.fs.counters();
        let mut outcomes = BTreeMap::new();
        for fault in Fault::MEDIUM {
            let injected: u64 = injected_kinds(fault)
                .iter()
                .map(|&kind| counters.get(kind))
                .sum();
            if injected == 0 {
                continue;
            }
            let mut outcome = MediumOutcome {
                runs: 1,
                injected,
                lost_acknowledged: u64::from(
                    end == RunEnd::Passed && self.medium.lost_acknowledged,
                ),
                ..MediumOutcome::default()
            };
            match end {
                RunEnd::Violation => outcome.violations = 1,
                RunEnd::Detected => outcome.detected = 1,
                RunEnd::Passed if self.medium.recovered_past => outcome.recovered_past = 1,
                RunEnd::Passed => outcome.accepted = 1,
            }
            outcomes.insert(fault.name().to_string(), outcome);
        }
        outcomes
    }
}
