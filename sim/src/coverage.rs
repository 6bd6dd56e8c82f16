//! What a sweep covered: the engine's coverage marks (`strata_engine::Mark`) counted over
//! its seeds, and `strata sweep --until-covered N`.
//!
//! Why: a sweep with no violation proves something only about the paths its seeds took.
//! Each run counts, per mark, how often the engine reached it, how often the machine
//! crashed in its window and how often the recovery after such a crash was verified
//! (`runner.rs` attributes crashes and recoveries); the summary sums them, the text summary
//! prints them as a table, and `sim/tests/coverage.rs` requires the standard sweep to reach
//! every mark, so that a change that makes a path unreachable fails CI.
//!
//! `--until-covered N` keeps taking seeds, in order from the start of the range, until every
//! mark has been reached `N` times. Seeds finish out of order on parallel workers, so the
//! seed at which coverage is reached is decided on the prefix of seeds in index order: it
//! is the same for any number of jobs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_engine::{Mark, MarkCount};

/// One mark's counts, as run statistics and summaries carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRow {
    /// The mark's name (`Mark::name`).
    pub name: String,
    /// Times the engine reached it.
    pub reached: u64,
    /// Machine crashes while it was the most recently reached mark, in its window.
    pub crashed_at: u64,
    /// Of those, the crashes whose recovery the checker verified.
    pub recovered_from: u64,
}

impl MarkRow {
    fn zero(name: &str) -> MarkRow {
        MarkRow {
            name: name.to_string(),
            reached: 0,
            crashed_at: 0,
            recovered_from: 0,
        }
    }
}

/// The rows of a run's counts, in the engine's order.
pub fn rows_of(counts: &[MarkCount]) -> Vec<MarkRow> {
    counts
        .iter()
        .map(|count| MarkRow {
            name: count.mark.name().to_string(),
            reached: count.reached,
            crashed_at: count.crashed_at,
            recovered_from: count.recovered_from,
        })
        .collect()
}

/// A row for every mark of this build, all zero.
pub fn empty_rows() -> Vec<MarkRow> {
    Mark::ALL
        .iter()
        .map(|mark| MarkRow::zero(mark.name()))
        .collect()
}

/// Adds `other`'s rows to `rows`, by name; a name `rows` lacks (a mark of another build)
/// is appended.
pub fn add_rows(rows: &mut Vec<MarkRow>, other: &[MarkRow]) {
    for theirs in other {
        let index = match rows.iter().position(|row| row.name == theirs.name) {
            Some(index) => index,
            None => {
                rows.push(MarkRow::zero(&theirs.name));
                rows.len() - 1
            }
        };
        let mine = &mut rows[index];
        mine.reached += theirs.reached;
        mine.crashed_at += theirs.crashed_at;
        mine.recovered_from += theirs.recovered_from;
    }
}

/// The marks of this build reached fewer than `times` times in `rows` (absent rows count
/// as never reached), in the engine's order.
pub fn missed(rows: &[MarkRow], times: u64) -> Vec<&'static str> {
    Mark::ALL
        .iter()
        .map(|mark| mark.name())
        .filter(|name| {
            rows.iter()
                .find(|row| row.name == *name)
                .is_none_or(|row| row.reached < times)
        })
        .collect()
}

/// `--until-covered`: the goal, and the seed at which it was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageGoal {
    /// Every mark must be reached this many times.
    pub times: u64,
    /// The seed whose run completed the goal, counting the seeds in order from the start
    /// of the range (`None`: the range or the time limit ended first).
    pub reached_at_seed: Option<u64>,
}

/// Decides, as seeds finish in any order, at which seed (in index order) every mark has
/// been reached `times` times.
#[derive(Debug)]
pub(crate) struct CoverageTracker {
    times: u64,
    /// Reached counts of the seeds of the prefix `0..next`, in `Mark::ALL`'s order.
    totals: Vec<u64>,
    /// The index of the first seed not yet counted.
    next: u64,
    /// Seeds done beyond the prefix: index → (seed, its reached counts).
    waiting: BTreeMap<u64, (u64, Vec<u64>)>,
    reached_at_seed: Option<u64>,
}

impl CoverageTracker {
    pub(crate) fn new(times: u64) -> CoverageTracker {
        CoverageTracker {
            times,
            totals: vec![0; Mark::ALL.len()],
            next: 0,
            waiting: BTreeMap::new(),
            reached_at_seed: None,
        }
    }

    /// Seed `seed`, the `index`-th of the sweep, finished with `rows`; returns whether the
    /// goal is met (by this seed or an earlier one).
    pub(crate) fn seed_done(&mut self, index: u64, seed: u64, rows: &[MarkRow]) -> bool {
        if self.reached_at_seed.is_some() {
            return true;
        }
        let reached = Mark::ALL
            .iter()
            .map(|mark| {
                rows.iter()
                    .find(|row| row.name == mark.name())
                    .map_or(0, |row| row.reached)
            })
            .collect();
        self.waiting.insert(index, (seed, reached));
        while let Some((seed, reached)) = self.waiting.remove(&self.next) {
            self.next += 1;
            for (total, count) in self.totals.iter_mut().zip(reached) {
                *total += count;
            }
            if self.totals.iter().all(|&total| total >= self.times) {
                self.reached_at_seed = Some(seed);
                return true;
            }
        }
        false
    }

    pub(crate) fn goal(&self) -> CoverageGoal {
        CoverageGoal {
            times: self.times,
            reached_at_seed: self.reached_at_seed,
        }
    }
}

/// `1 time`, `2 times`.
pub fn times(n: u64) -> String {
    match n {
        1 => "1 time".to_string(),
        n => format!("{n} times"),
    }
}

/// Prints the marks table of a summary, and the `--until-covered` outcome.
pub fn print_marks(rows: &[MarkRow], goal: Option<CoverageGoal>) {
    let never = missed(rows, 1);
    crate::outln!(
        "coverage marks: {} of {} reached (reached, crashed at, recovered from; - : a point, where no crash is counted)",
        Mark::ALL.len() - never.len(),
        Mark::ALL.len()
    );
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0);
    for row in rows {
        let point = Mark::from_name(&row.name).is_some_and(|mark| mark.window().is_none());
        let (crashed, recovered) = if point {
            ("-".to_string(), "-".to_string())
        } else {
            (row.crashed_at.to_string(), row.recovered_from.to_string())
        };
        let flag = if row.reached == 0 {
            "  <- never reached"
        } else {
            ""
        };
        crate::outln!(
            "  {:width$}  {:>10}  {:>8}  {:>8}{flag}",
            row.name,
            row.reached,
            crashed,
            recovered
        );
    }
    if let Some(goal) = goal {
        let times = times(goal.times);
        match goal.reached_at_seed {
            Some(seed) => crate::outln!(
                "coverage goal: every mark reached at least {times}, at seed {seed}"
            ),
            None => crate::outln!(
                "coverage goal NOT met: the seeds ended before every mark was reached {times}; short: {}",
                missed(rows, goal.times).join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(reached: u64) -> Vec<MarkRow> {
        let mut rows = empty_rows();
        for row in &mut rows {
            row.reached = reached;
        }
        rows
    }

    #[test]
    fn coverage_is_decided_on_the_prefix_in_seed_order() {
        let mut tracker = CoverageTracker::new(2);
        // Seed 12 (index 2) finishes first: seeds 10 and 11 are not counted yet.
        assert!(!tracker.seed_done(2, 12, &rows(5)));
        assert!(!tracker.seed_done(0, 10, &rows(1)));
        // Index 1 completes the prefix 0..=2; the goal is met at index 1 (1 + 1 = 2).
        assert!(tracker.seed_done(1, 11, &rows(1)));
        assert_eq!(tracker.goal().reached_at_seed, Some(11));
        assert!(tracker.seed_done(3, 13, &[]));
        assert_eq!(tracker.goal().reached_at_seed, Some(11));
    }

    #[test]
    fn rows_add_by_name_and_missed_marks_are_listed() {
        let mut total = empty_rows();
        let mut one = empty_rows();
        one[0].reached = 3;
        one.push(MarkRow::zero("a_mark_of_another_build"));
        add_rows(&mut total, &one);
        add_rows(&mut total, &one);
        assert_eq!(total[0].reached, 6);
        assert_eq!(total.len(), Mark::ALL.len() + 1);
        let missed = missed(&total, 1);
        assert_eq!(missed.len(), Mark::ALL.len() - 1);
        assert!(!missed.contains(&Mark::ALL[0].name()));
    }
}
