//! `strata sweep`: many seeds in parallel, a progress bar, a summary, and every failing
//! seed saved to the corpus. A sweep may stop early, at a time limit or a signal: it then
//! lets the seeds in flight finish and takes no more, so the seeds it ran are always the
//! first ones of its shard, and the summary says which ([`Summary::seed_ranges`]). With
//! `--until-covered` it also stops once its seeds, in order, reached every coverage mark
//! often enough (`coverage.rs`).

use crate::case::{Case, Fault, Mode};
use crate::corpus::{CorpusEntry, Expected};
use crate::coverage::CoverageTracker;
use crate::runner::{run_case, RunReport};
pub use crate::summary::{
    BuildInfo, DeclaredRange, FailureRecord, RunConfig, SeedRange, Stopped, Summary, SUMMARY_FORMAT,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The simulated filesystem's persistence profile.
    pub fs_profile: strata_vfs::FsProfile,
    /// Where failing cases are written (`None`: not written).
    pub corpus: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Stop taking new seeds at this instant (`--duration`); the seeds in flight finish.
    pub deadline: Option<Instant>,
    /// Stop taking new seeds once this is set (SIGINT/SIGTERM in a continuous sweep).
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop taking new seeds once the seeds from the start of the range, in order, have
    /// reached every coverage mark this many times (`--until-covered`); the range's end
    /// and the deadline still bound the sweep.
    pub until_covered: Option<u64>,
}

impl SweepConfig {
    /// A sweep of `seeds` with every option at its default: the available cores, 1,000
    /// steps per seed, every fault, concurrent mode, clients drawn per seed, no corpus, no
    /// progress bar, no time limit.
    pub fn new(seeds: Seeds) -> SweepConfig {
        SweepConfig {
            seeds,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ops: 1000,
            faults: Fault::DEFAULT.into_iter().collect(),
            liar: None,
            mode: Mode::Concurrent,
            clients: None,
            fs_profile: strata_vfs::FsProfile::Classic,
            corpus: None,
            progress: false,
            deadline: None,
            stop: None,
            until_covered: None,
        }
    }

    pub(crate) fn should_stop(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
            || self
                .stop
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// Runs the sweep; returns the summary and the failing reports (sorted by seed). Each
/// failing seed is saved to the corpus as soon as it fails (a continuous sweep may be
/// killed). With a deadline or a stop flag, the workers stop taking seeds once it is due
/// and finish the ones they have: the seeds run are the shard's first `n`, and the
/// summary's [`Summary::seed_ranges`] and [`Summary::stopped`] say so.
pub fn sweep(config: &SweepConfig) -> (Summary, Vec<RunReport>) {
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::empty(config));
    let failures = Mutex::new(Vec::new());
    let coverage = config
        .until_covered
        .map(|times| Mutex::new(CoverageTracker::new(times)));
    let covered = AtomicBool::new(false);
    let total = config.seeds.count();
    let open_ended = config.seeds.range.end == u64::MAX;
    let bar = if config.progress {
        let (bar, template) = if open_ended {
            (
                indicatif::ProgressBar::no_length(),
                "{elapsed_precise} {pos} seeds  {per_sec}  {msg}",
            )
        } else {
            (
                indicatif::ProgressBar::new(total),
                "{elapsed_precise} [{bar:40}] {pos}/{len} seeds  {per_sec}  eta {eta}  {msg}",
            )
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
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
                // Checked before an index is taken: every index taken runs to the end, so
                // the seeds run are always the first `n` of the shard.
                if config.should_stop() || covered.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(seed) = config.seeds.nth(i) else {
                    break;
                };
                let mut case = Case::new(seed, config.ops, config.faults.clone());
                case.liar = config.liar;
                case.mode = config.mode;
                case.clients = config.clients;
                case.fs_profile = config.fs_profile;
                let report = run_case(&case, false);
                if report.finding.is_some() {
                    save_failure(config, &case, &report);
                }
                if let Some(tracker) = &coverage {
                    let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
                    if tracker.seed_done(i, seed, &report.stats.marks) {
                        covered.store(true, Ordering::SeqCst);
                    }
                }
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
    summary.failures.sort_by_key(|failure| failure.seed);
    let ran = next.into_inner().min(total);
    debug_assert_eq!(ran, summary.seeds);
    let range = &config.seeds.range;
    summary.seed_ranges = if ran == total {
        summary.stopped = Stopped::RangeDone;
        vec![SeedRange {
            shard: config.seeds.shard,
            start: range.start,
            end: range.end,
        }]
    } else {
        summary.stopped = if covered.load(Ordering::SeqCst) {
            Stopped::Covered
        } else if config
            .stop
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
        {
            Stopped::Interrupted
        } else {
            Stopped::TimeLimit
        };
        // One past the last seed run (none ran: an empty range at the start).
        let end = match ran.checked_sub(1).and_then(|last| config.seeds.nth(last)) {
            Some(last) => last + 1,
            None => range.start,
        };
        vec![SeedRange {
            shard: config.seeds.shard,
            start: range.start,
            end,
        }]
    };
    summary.until_covered = coverage.map(|tracker| {
        tracker
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .goal()
    });
    summary.elapsed_s = start.elapsed().as_secs_f64();
    let seconds = summary.elapsed_s.max(1e-9);
    summary.seeds_per_s = summary.seeds as f64 / seconds;
    summary.ops_per_s = summary.ops as f64 / seconds;
    summary.recoveries_per_s = summary.recoveries as f64 / seconds;
    (
        summary,
        failures.into_iter().map(|(_, report)| report).collect(),
    )
}

/// Saves a failing seed to the corpus (if the sweep has one), reporting a failure to write.
fn save_failure(config: &SweepConfig, case: &Case, report: &RunReport) {
    let (Some(dir), Some(finding)) = (&config.corpus, &report.finding) else {
        return;
    };
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
