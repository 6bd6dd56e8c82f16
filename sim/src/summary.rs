//! The summary of a sweep: what ran (the build, the configuration, the declared range, the
//! shards and exactly the seeds run) and what it found (every count, the failures). `strata
//! sweep --json` prints it; `strata report merge` ([`crate::report`]) reads and merges them.

use crate::case::{Fault, Liar, Mode};
use crate::coverage::{CoverageGoal, MarkRow};
use crate::medium::{add_outcomes, MediumOutcome};
use crate::runner::RunReport;
use crate::sweep::{Seeds, SweepConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The version of the summary's JSON form ([`Summary::summary_format`]).
pub const SUMMARY_FORMAT: u32 = 1;

/// The build that ran a sweep (as corpus entries record it, without a trace hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildInfo {
    /// The crate version.
    pub version: String,
    /// The git commit (`-modified` if the working tree had changes; `unknown` outside git).
    pub commit: String,
}

impl BuildInfo {
    /// This build.
    pub fn current() -> BuildInfo {
        let record = crate::corpus::BuildRecord::current(0);
        BuildInfo {
            version: record.version,
            commit: record.commit,
        }
    }
}

/// What every seed of a sweep ran with: shards of one sweep must agree on all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// How the engine ran.
    pub mode: Mode,
    /// Steps per seed.
    pub ops: usize,
    /// Fault kinds on (the command-line names).
    pub faults: BTreeSet<Fault>,
    /// A fixed client count (`None`: drawn per seed).
    pub clients: Option<usize>,
    /// A lying filesystem (self-check).
    pub liar: Option<Liar>,
    /// The simulated filesystem's persistence profile (absent: classic).
    #[serde(default, skip_serializing_if = "strata_vfs::FsProfile::is_classic")]
    pub fs_profile: strata_vfs::FsProfile,
}

/// The seed range a sweep was asked to run, before sharding (`end: None`: open-ended, as
/// `--seeds START..` gives for a continuous sweep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRange {
    /// The first seed.
    pub start: u64,
    /// One past the last seed, or `None`.
    pub end: Option<u64>,
}

/// Seeds that ran: those `s` of `start..end` with `s % shard_count == shard`, where
/// `shard_count` is the summary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRange {
    /// The shard index (the seeds' remainder).
    pub shard: u64,
    /// The first seed of the range (it need not be in the shard).
    pub start: u64,
    /// One past the last.
    pub end: u64,
}

impl SeedRange {
    /// The seeds, for a summary of `shard_count` shards.
    pub fn seeds(&self, shard_count: u64) -> Seeds {
        Seeds {
            range: self.start..self.end,
            shard: self.shard,
            shards: shard_count,
        }
    }
}

/// Why a sweep stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Every seed of the range ran.
    RangeDone,
    /// `--duration` ran out.
    TimeLimit,
    /// SIGINT or SIGTERM.
    Interrupted,
    /// A merge of summaries that stopped for different reasons.
    Mixed,
    /// `--until-covered`: every mark was reached as often as asked.
    Covered,
}

impl Stopped {
    /// A few words for the text summary.
    pub fn describe(self) -> &'static str {
        match self {
            Stopped::RangeDone => "the range is done",
            Stopped::TimeLimit => "the time limit",
            Stopped::Interrupted => "a signal",
            Stopped::Mixed => "different reasons in different shards",
            Stopped::Covered => "the coverage goal",
        }
    }
}

/// One failing seed, for the summary (the corpus file has the whole case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRecord {
    /// The seed.
    pub seed: u64,
    /// The violation kind.
    pub kind: String,
    /// The step it was found at.
    pub step: u64,
    /// The explanation's first line.
    pub explanation: String,
}

/// The sweep summary (`--json` prints it as one object; `strata report merge` reads and
/// merges them). The first fields say what ran, enough to merge shards and check that
/// they make up the range: the build, the configuration, the declared range, the shards
/// and the seeds that ran. The counts follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// [`SUMMARY_FORMAT`].
    pub summary_format: u32,
    /// The build that ran it.
    pub build: BuildInfo,
    /// What every seed ran with.
    pub config: RunConfig,
    /// The seed range, before sharding.
    pub range: DeclaredRange,
    /// Into how many shards the range is split (1: not sharded).
    pub shard_count: u64,
    /// The shards this summary covers (one for a sweep; several for a merge).
    pub shards: Vec<u64>,
    /// Exactly the seeds that ran, sorted (by shard, then start).
    pub seed_ranges: Vec<SeedRange>,
    /// Why it stopped.
    pub stopped: Stopped,
    /// `--until-covered`: the goal and the seed at which it was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_covered: Option<CoverageGoal>,
    /// Seeds run.
    pub seeds: u64,
    /// Steps executed.
    pub ops: u64,
    /// Machine crashes.
    pub crashes: u64,
    /// Recoveries verified.
    pub recoveries: u64,
    /// Process restarts after a poisoned engine.
    pub restarts: u64,
    /// Memtable flushes.
    pub flushes: u64,
    /// Compactions (rewrites and trivial moves).
    pub compactions: u64,
    /// Concurrent mode: client tasks over all seeds (divide by `seeds` for the average).
    pub clients: u64,
    /// Commit groups the engine ran.
    pub commit_groups: u64,
    /// Commit groups that carried more than one writer's batch.
    pub multi_writer_groups: u64,
    /// Writes during which a flush or compaction finished.
    pub writes_overlapping_background: u64,
    /// Scheduling decisions that switched tasks.
    pub schedule_switches: u64,
    /// Snapshots whose sequence number was checked.
    pub snapshots: u64,
    /// Reads at a snapshot checked against the model at its sequence.
    pub snapshot_reads: u64,
    /// Of those, reads made after a flush or compaction finished since the snapshot was
    /// taken.
    pub snapshot_reads_after_background: u64,
    /// Scans of the live database checked against the model at their sequence.
    pub sequenced_scans: u64,
    /// Scans (live or at a snapshot) with a `next_back`, checked.
    pub reverse_scans: u64,
    /// Scans (live or at a snapshot) with a `seek` or `seek_for_prev`, checked.
    pub seek_scans: u64,
    /// Snapshots that refused to read once their engine was closed or gone.
    pub snapshots_refused_after_close: u64,
    /// Runs whose injected damage the engine reported as corruption.
    pub detected_corruptions: u64,
    /// Damage injected, by damage and kind of file (`flip wal`, `truncate table`, ...).
    pub damage_by_target: BTreeMap<String, u64>,
    /// Of those, the ones reported as corruption.
    pub damage_detected_by_target: BTreeMap<String, u64>,
    /// Of those, the ones a point-in-time recovery reported and recovered past; the rest
    /// (neither) were harmless: the checker accepted what the engine returned.
    pub damage_recovered_past_by_target: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// The engine's coverage marks, every one of the build in its order: how often the
    /// seeds reached each, crashed in its window, and recovered from such a crash.
    #[serde(default)]
    pub marks: Vec<MarkRow>,
    /// The medium's faults, by fault kind (`misdirect`, `lost-write`, `stale-read`,
    /// `latent`): the runs where each fired, and what the engine made of it (absent from
    /// sweeps without them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub medium: BTreeMap<String, MediumOutcome>,
    /// Every seed's trace hash, summed (wrapping), in 16 hex digits: the same seeds give the
    /// same digest in any order and over any sharding, and a change that must leave every
    /// trace alone (a speed-up) must leave it alone. Empty when unknown: a summary older than
    /// the field, or a merge that included one (a partial sum would look like a real one).
    #[serde(default)]
    pub trace_digest: String,
    /// Runs with a violation.
    pub violations: u64,
    /// Their seeds, sorted.
    pub failing_seeds: Vec<u64>,
    /// Violation kinds and counts.
    pub violation_kinds: BTreeMap<String, u64>,
    /// The failing seeds with their violation, sorted by seed.
    pub failures: Vec<FailureRecord>,
    /// Wall-clock seconds (a merge: the longest shard's).
    pub elapsed_s: f64,
    /// Seeds per second (a merge: the sum over shards, the fleet's rate had they all run
    /// at once).
    pub seeds_per_s: f64,
    /// Steps per second.
    pub ops_per_s: f64,
    /// Crash-recoveries per second.
    pub recoveries_per_s: f64,
}

impl Summary {
    /// An empty summary of the sweep `config` describes (no seeds ran yet).
    pub fn empty(config: &SweepConfig) -> Summary {
        let range = &config.seeds.range;
        Summary {
            summary_format: SUMMARY_FORMAT,
            build: BuildInfo::current(),
            config: RunConfig {
                mode: config.mode,
                ops: config.ops,
                faults: config.faults.clone(),
                clients: config.clients,
                liar: config.liar,
                fs_profile: config.fs_profile,
            },
            range: DeclaredRange {
                start: range.start,
                end: (range.end != u64::MAX).then_some(range.end),
            },
            shard_count: config.seeds.shards.max(1),
            shards: vec![config.seeds.shard],
            seed_ranges: Vec::new(),
            stopped: Stopped::RangeDone,
            until_covered: None,
            seeds: 0,
            ops: 0,
            crashes: 0,
            recoveries: 0,
            restarts: 0,
            flushes: 0,
            compactions: 0,
            clients: 0,
            commit_groups: 0,
            multi_writer_groups: 0,
            writes_overlapping_background: 0,
            schedule_switches: 0,
            snapshots: 0,
            snapshot_reads: 0,
            snapshot_reads_after_background: 0,
            sequenced_scans: 0,
            reverse_scans: 0,
            seek_scans: 0,
            snapshots_refused_after_close: 0,
            detected_corruptions: 0,
            damage_by_target: BTreeMap::new(),
            damage_detected_by_target: BTreeMap::new(),
            damage_recovered_past_by_target: BTreeMap::new(),
            faults: BTreeMap::new(),
            marks: crate::coverage::empty_rows(),
            medium: BTreeMap::new(),
            trace_digest: format!("{:016x}", 0),
            violations: 0,
            failing_seeds: Vec::new(),
            violation_kinds: BTreeMap::new(),
            failures: Vec::new(),
            elapsed_s: 0.0,
            seeds_per_s: 0.0,
            ops_per_s: 0.0,
            recoveries_per_s: 0.0,
        }
    }

    /// Adds another summary's counts (not its description: the caller checks that the two
    /// describe parts of one sweep).
    pub fn add_counts(&mut self, other: &Summary) {
        self.seeds += other.seeds;
        self.ops += other.ops;
        self.crashes += other.crashes;
        self.recoveries += other.recoveries;
        self.restarts += other.restarts;
        self.flushes += other.flushes;
        self.compactions += other.compactions;
        self.clients += other.clients;
        self.commit_groups += other.commit_groups;
        self.multi_writer_groups += other.multi_writer_groups;
        self.writes_overlapping_background += other.writes_overlapping_background;
        self.schedule_switches += other.schedule_switches;
        self.snapshots += other.snapshots;
        self.snapshot_reads += other.snapshot_reads;
        self.snapshot_reads_after_background += other.snapshot_reads_after_background;
        self.sequenced_scans += other.sequenced_scans;
        self.reverse_scans += other.reverse_scans;
        self.seek_scans += other.seek_scans;
        self.snapshots_refused_after_close += other.snapshots_refused_after_close;
        self.detected_corruptions += other.detected_corruptions;
        for (mine, theirs) in [
            (&mut self.damage_by_target, &other.damage_by_target),
            (
                &mut self.damage_detected_by_target,
                &other.damage_detected_by_target,
            ),
            (
                &mut self.damage_recovered_past_by_target,
                &other.damage_recovered_past_by_target,
            ),
            (&mut self.faults, &other.faults),
            (&mut self.violation_kinds, &other.violation_kinds),
        ] {
            for (label, count) in theirs {
                *mine.entry(label.clone()).or_default() += count;
            }
        }
        crate::coverage::add_rows(&mut self.marks, &other.marks);
        add_outcomes(&mut self.medium, &other.medium);
        match digest_value(&other.trace_digest) {
            Some(value) => self.add_trace_digest(value),
            None => self.trace_digest.clear(),
        }
        self.violations += other.violations;
        self.failing_seeds.extend(&other.failing_seeds);
        self.failing_seeds.sort_unstable();
        self.failures.extend(other.failures.iter().cloned());
        self.failures.sort_by_key(|failure| failure.seed);
    }

    /// Adds one trace hash to the digest, unless the digest is unknown (and stays so).
    fn add_trace_digest(&mut self, value: u64) {
        if let Some(sum) = digest_value(&self.trace_digest) {
            self.trace_digest = format!("{:016x}", sum.wrapping_add(value));
        }
    }

    pub(crate) fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
        self.add_trace_digest(report.trace_hash);
        self.ops += report.stats.ops;
        self.crashes += report.stats.crashes;
        self.recoveries += report.stats.recoveries;
        self.restarts += report.stats.restarts;
        self.flushes += report.stats.flushes;
        self.compactions += report.stats.compactions;
        self.clients += report.stats.clients;
        self.commit_groups += report.stats.commit_groups;
        self.multi_writer_groups += report.stats.multi_writer_groups;
        self.writes_overlapping_background += report.stats.writes_overlapping_background;
        self.schedule_switches += report.stats.schedule_switches;
        self.snapshots += report.stats.snapshots;
        self.snapshot_reads += report.stats.snapshot_reads;
        self.snapshot_reads_after_background += report.stats.snapshot_reads_after_background;
        self.sequenced_scans += report.stats.sequenced_scans;
        self.reverse_scans += report.stats.reverse_scans;
        self.seek_scans += report.stats.seek_scans;
        self.snapshots_refused_after_close += report.stats.snapshots_refused_after_close;
        self.detected_corruptions += report.stats.detected_corruptions;
        for (mine, theirs) in [
            (&mut self.damage_by_target, &report.stats.damage_by_target),
            (
                &mut self.damage_detected_by_target,
                &report.stats.damage_detected_by_target,
            ),
            (
                &mut self.damage_recovered_past_by_target,
                &report.stats.damage_recovered_past_by_target,
            ),
        ] {
            for (label, count) in theirs {
                *mine.entry(label.clone()).or_default() += count;
            }
        }
        for (kind, count) in &report.stats.faults {
            *self.faults.entry(kind.clone()).or_default() += count;
        }
        crate::coverage::add_rows(&mut self.marks, &report.stats.marks);
        add_outcomes(&mut self.medium, &report.stats.medium);
        if let Some(finding) = &report.finding {
            self.violations += 1;
            self.failing_seeds.push(report.seed);
            *self
                .violation_kinds
                .entry(finding.kind.clone())
                .or_default() += 1;
            self.failures.push(FailureRecord {
                seed: report.seed,
                kind: finding.kind.clone(),
                step: finding.step,
                explanation: finding.explanation.lines().next().unwrap_or("").to_string(),
            });
        }
    }
}

/// The value of a `trace_digest`: `None` when it is unknown (empty) or not 16 hex digits
/// (`report::load` refuses such a file before it gets here).
pub(crate) fn digest_value(digest: &str) -> Option<u64> {
    if digest.len() != 16 {
        return None;
    }
    u64::from_str_radix(digest, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{Seeds, SweepConfig};

    fn summary_of(hashes: &[u64]) -> Summary {
        let mut summary = Summary::empty(&SweepConfig::new(Seeds {
            range: 0..hashes.len() as u64,
            shard: 0,
            shards: 1,
        }));
        for (seed, &hash) in hashes.iter().enumerate() {
            let mut report = crate::runner::failed_run(seed as u64, "test", "a made-up run");
            report.trace_hash = hash;
            summary.add(&report);
        }
        summary
    }

    #[test]
    fn the_trace_digest_is_the_same_for_any_order_and_split_and_moves_with_any_trace() {
        let hashes = [u64::MAX, 0x1234_5678_9abc_def0, 7, 1 << 63];
        let whole = summary_of(&hashes);
        let sum = hashes
            .iter()
            .fold(0u64, |sum, &hash| sum.wrapping_add(hash));
        assert_eq!(whole.trace_digest, format!("{sum:016x}"));
        let reversed: Vec<u64> = hashes.iter().rev().copied().collect();
        assert_eq!(summary_of(&reversed).trace_digest, whole.trace_digest);
        let mut merged = summary_of(&hashes[..1]);
        merged.add_counts(&summary_of(&hashes[1..]));
        assert_eq!(merged.trace_digest, whole.trace_digest);
        let mut changed = hashes;
        changed[2] ^= 1 << 40;
        assert_ne!(summary_of(&changed).trace_digest, whole.trace_digest);
        // A summary from before the field (serde's default: empty) makes the merged digest
        // unknown, not a partial sum, and it stays unknown.
        let mut old = summary_of(&[]);
        old.trace_digest = String::new();
        merged.add_counts(&old);
        assert_eq!(merged.trace_digest, "");
        merged.add_counts(&whole);
        assert_eq!(merged.trace_digest, "");
    }
}
