//! `strata sweep`: many seeds in parallel, a progress bar, a summary, and every failing
//! seed saved to the corpus.

use crate::case::{Case, Fault};
use crate::corpus::{CorpusEntry, Expected};
use crate::runner::{run_case, RunReport};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The seeds of a sweep: those of `range` with `seed % shards == shard`, never collected
/// (a range of 2^64 seeds costs no memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds {
    /// All seeds, before sharding.
    pub range: std::ops::Range<u64>,
    /// This shard's index, below `shards`.
    pub shard: u64,
    /// The number of shards (at least 1).
    pub shards: u64,
}

impl Seeds {
    /// Every seed of `range`.
    pub fn all(range: std::ops::Range<u64>) -> Seeds {
        Seeds {
            range,
            shard: 0,
            shards: 1,
        }
    }

    fn first(&self) -> Option<u64> {
        let shards = self.shards.max(1);
        let offset = (self.shard % shards + shards - self.range.start % shards) % shards;
        self.range
            .start
            .checked_add(offset)
            .filter(|&first| first < self.range.end)
    }

    /// How many seeds there are.
    pub fn count(&self) -> u64 {
        self.first().map_or(0, |first| {
            (self.range.end - 1 - first) / self.shards.max(1) + 1
        })
    }

    /// The `index`-th seed, in order.
    pub fn nth(&self, index: u64) -> Option<u64> {
        let seed = self
            .first()?
            .checked_add(index.checked_mul(self.shards.max(1))?)?;
        (seed < self.range.end).then_some(seed)
    }
}

/// What a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// The seeds, in order.
    pub seeds: Seeds,
    /// Worker threads.
    pub jobs: usize,
    /// Steps per run.
    pub ops: usize,
    /// Fault kinds on.
    pub faults: BTreeSet<Fault>,
    /// A lying filesystem (self-check).
    pub liar: Option<crate::case::Liar>,
    /// How the engine runs.
    pub mode: crate::case::Mode,
    /// Concurrent mode: a fixed number of clients (default: drawn per seed).
    pub clients: Option<usize>,
    /// Where failing cases are written (`None`: not written).
    pub corpus: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
}

/// The sweep summary (`--json` prints it as one object).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
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
    /// Runs with a violation.
    pub violations: u64,
    /// Their seeds, sorted.
    pub failing_seeds: Vec<u64>,
    /// Violation kinds and counts.
    pub violation_kinds: BTreeMap<String, u64>,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Seeds per second.
    pub seeds_per_s: f64,
    /// Steps per second.
    pub ops_per_s: f64,
    /// Crash-recoveries per second.
    pub recoveries_per_s: f64,
}

impl Summary {
    fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
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
        if let Some(finding) = &report.finding {
            self.violations += 1;
            self.failing_seeds.push(report.seed);
            *self
                .violation_kinds
                .entry(finding.kind.clone())
                .or_default() += 1;
        }
    }
}

/// Runs the sweep; returns the summary and the failing reports (sorted by seed).
pub fn sweep(config: &SweepConfig) -> (Summary, Vec<RunReport>) {
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    let failures = Mutex::new(Vec::new());
    let bar = if config.progress {
        let bar = indicatif::ProgressBar::new(config.seeds.count());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} seeds  {per_sec}  eta {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message("0 violations");
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(seed) = config.seeds.nth(i) else {
                    break;
                };
                let mut case = Case::new(seed, config.ops, config.faults.clone());
                case.liar = config.liar;
                case.mode = config.mode;
                case.clients = config.clients;
                let report = run_case(&case, false);
                let mut totals = summary.lock().unwrap_or_else(|p| p.into_inner());
                totals.add(&report);
                if report.finding.is_some() {
                    bar.set_message(format!("{} violations", totals.violations));
                    drop(totals);
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((case, report));
                } else {
                    drop(totals);
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let mut summary = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|(case, _)| case.seed);
    summary.failing_seeds.sort_unstable();
    summary.elapsed_s = start.elapsed().as_secs_f64();
    let seconds = summary.elapsed_s.max(1e-9);
    summary.seeds_per_s = summary.seeds as f64 / seconds;
    summary.ops_per_s = summary.ops as f64 / seconds;
    summary.recoveries_per_s = summary.recoveries as f64 / seconds;
    if let Some(dir) = &config.corpus {
        for (case, report) in &failures {
            if let Some(finding) = &report.finding {
                let entry = CorpusEntry::new(
                    case.clone(),
                    Expected::Violation(finding.clone()),
                    format!(
                        "found by sweep: {} at step {}; not yet fixed",
                        finding.kind, finding.step
                    ),
                )
                .recorded_by_this_build(report.trace_hash);
                let path = dir.join(format!("seed-{}.json", case.seed));
                if let Err(error) = entry.save(&path) {
                    eprintln!("strata: {error}");
                }
            }
        }
    }
    (
        summary,
        failures.into_iter().map(|(_, report)| report).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::Seeds;

    #[test]
    fn seeds_are_counted_and_indexed_without_collecting_them() {
        for (start, end, shards) in [(0u64, 10u64, 1u64), (3, 17, 4), (5, 6, 3), (10, 11, 2)] {
            for shard in 0..shards {
                let seeds = Seeds {
                    range: start..end,
                    shard,
                    shards,
                };
                let expected: Vec<u64> = (start..end).filter(|s| s % shards == shard).collect();
                let listed: Vec<u64> = (0..).map_while(|i| seeds.nth(i)).collect();
                assert_eq!(listed, expected, "{seeds:?}");
                assert_eq!(seeds.count(), expected.len() as u64, "{seeds:?}");
            }
        }
        let huge = Seeds {
            range: 0..u64::MAX,
            shard: 1,
            shards: 2,
        };
        assert_eq!(huge.count(), u64::MAX / 2);
        assert_eq!(huge.nth(huge.count() - 1), Some(u64::MAX - 2));
        assert_eq!(huge.nth(huge.count()), None);
    }
}
