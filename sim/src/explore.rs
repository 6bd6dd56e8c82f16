//! `strata explore`: bounded exhaustive crash states of one small workload.
//!
//! Random seeds find the common bugs fast; a rare crash state (one sector of three lost,
//! one directory operation of two kept) needs luck. Here a single-client workload, given by
//! seed or by corpus file, runs once on `SimFs` with every crash point recorded: a copy of
//! the world before each sync (or each operation that changes the disk). Each point is
//! then crashed in every way the persistence model and profile allow
//! (`strata_vfs::sim::CrashPoint::states`), identical images are checked once, and each
//! distinct image is recovered by the engine and judged by the checker, as it knew the
//! run at that point (`runner::Checkpoint`).
//!
//! Determinism: the enumeration order is fixed, the bounds cut it at the same state every
//! time, and states are checked in batches whose results are merged in enumeration order;
//! only the speed figure reads the wall clock.

use crate::case::{Case, Mode};
use crate::runner::{Checkpoint, Entries, Runner, DB_DIR};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use strata_engine::{Db, Mark, Marks, Options};

/// The coverage marks one recovery reached, a bit per mark in [`Mark::ALL`]'s order.
type MarkSet = u64;
const _: () = assert!(Mark::ALL.len() <= 64);
use strata_vfs::sim::{CaptureAt, CrashPoint, CrashState, EnumerationOptions, Order};
use strata_vfs::{FaultConfig, FsProfile};

/// What to explore and how far.
#[derive(Debug, Clone)]
pub struct ExploreConfig {
    /// The workload (run in sequential mode, with no injected faults).
    pub case: Case,
    /// Where crash points are taken.
    pub at: CaptureAt,
    /// The filesystem's persistence rules.
    pub profile: FsProfile,
    /// The sector size of the simulated disk.
    pub sector_size: u64,
    /// Unsynced sectors survive as a prefix in write order, not as any subset.
    pub ordered_writes: bool,
    /// Enumerate torn sectors too.
    pub tears: bool,
    /// How tears are enumerated.
    pub options: EnumerationOptions,
    /// At most this many distinct states are checked in all.
    pub max_states: u64,
    /// At most this many states are enumerated per crash point.
    pub max_states_per_point: u64,
    /// Threads checking states.
    pub jobs: usize,
}

impl ExploreConfig {
    /// Defaults for `case`: crash points at syncs, the classic profile, 4 KiB sectors in any
    /// order, tears on, at most a million states.
    pub fn new(case: Case) -> ExploreConfig {
        ExploreConfig {
            case,
            at: CaptureAt::Syncs,
            profile: FsProfile::Classic,
            sector_size: 4096,
            ordered_writes: false,
            tears: true,
            options: EnumerationOptions::default(),
            max_states: 1_000_000,
            max_states_per_point: 100_000,
            jobs: 2,
        }
    }

    fn fault_config(&self) -> FaultConfig {
        FaultConfig {
            sector_size: self.sector_size,
            ordered_writes: self.ordered_writes,
            unsynced_survival: 0.5,
            torn_write_rate: if self.tears { 0.5 } else { 0.0 },
            profile: self.profile,
            ..FaultConfig::none()
        }
    }
}

/// One crash state the checker rejected.
#[derive(Debug, Clone, Serialize)]
pub struct ExploreViolation {
    /// The crash point (0-based, in the order of the run).
    pub point: usize,
    /// The VFS operation the crash came before, as `index kind path`.
    pub before: String,
    /// The workload step that operation belonged to.
    pub step: u64,
    /// The crash image, in words.
    pub image: String,
    /// What was wrong.
    pub explanation: String,
}

/// What an exploration did.
#[derive(Debug, Clone, Serialize)]
pub struct ExploreSummary {
    /// The seed of the workload.
    pub seed: u64,
    /// Its steps.
    pub ops: usize,
    /// The profile.
    pub profile: String,
    /// Where crash points were taken.
    pub crash_points_at: String,
    /// Crash points recorded.
    pub crash_points: usize,
    /// Crash points whose every state was enumerated.
    pub crash_points_complete: usize,
    /// Crash images built.
    pub states_enumerated: u64,
    /// Of them, distinct (by image content and what the checker knew).
    pub distinct_states: u64,
    /// Distinct states recovered and checked.
    pub states_checked: u64,
    /// Where a bound cut the enumeration, if one did.
    pub cut: Vec<String>,
    /// The violations, in enumeration order.
    pub violations: Vec<ExploreViolation>,
    /// For each coverage mark the recoveries reached, how many distinct states' recovery
    /// reached it (`engine/src/marks.rs`): which recovery paths the states exercised.
    pub recovery_marks: BTreeMap<String, u64>,
    /// How the workload's own run ended (a violation there is reported too).
    pub run_verdict: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Distinct states checked per second.
    pub states_per_second: f64,
}

/// Runs the workload, then enumerates and checks its crash states.
pub fn explore(config: &ExploreConfig) -> Result<ExploreSummary, String> {
    if config.case.mode != Mode::Sequential {
        return Err(
            "explore runs single-client (sequential) cases; this case is concurrent".into(),
        );
    }
    let started = Instant::now();
    // One profile for the disk and for what the engine is told of it (its WAL padding).
    let case = Case {
        fs_profile: config.profile,
        ..config.case.clone()
    };
    let mut runner = Runner::with_config(&case, false, config.fault_config());
    runner.fs.capture_crash_points(Some(config.at));
    runner.checkpoints = Some(Vec::new());
    let flow = runner.run();
    runner.fs.capture_crash_points(None);
    let mut points = runner.fs.take_crash_points();
    points.push(runner.fs.crash_point_now());
    let checkpoints = runner.checkpoints.take().unwrap_or_default();
    let options = runner.plan.options.clone();
    let keys: Vec<Vec<u8>> = runner.plan.keys.iter().take(32).cloned().collect();
    let report = runner.finish(flow);
    let run_verdict = report
        .finding
        .as_ref()
        .map_or("pass".to_string(), |finding| {
            format!("{}: {}", finding.kind, finding.explanation)
        });

    let mut summary = ExploreSummary {
        seed: config.case.seed,
        ops: config.case.ops,
        profile: config.profile.name().to_string(),
        crash_points_at: match config.at {
            CaptureAt::Syncs => "syncs".into(),
            CaptureAt::EveryOperation => "every-op".into(),
        },
        crash_points: points.len(),
        crash_points_complete: 0,
        states_enumerated: 0,
        distinct_states: 0,
        states_checked: 0,
        cut: Vec::new(),
        violations: Vec::new(),
        recovery_marks: BTreeMap::new(),
        run_verdict,
        seconds: 0.0,
        states_per_second: 0.0,
    };
    let checker = StateChecker { options, keys };
    // The points are independent: `jobs` threads each take the next point, enumerate it
    // (dedup within the point) and check its states; this thread merges the points'
    // results in point order, dedups across points and applies `--max-states`. So every
    // figure is the one a single thread would get: a point is taken only after every
    // point before it, and the merge stops the taking once the bound is reached.
    let jobs = config.jobs.max(1).min(points.len().max(1));
    let next_point = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, results) = std::sync::mpsc::channel::<PointResult>();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let (points, checkpoints, checker) = (&points, &checkpoints, &checker);
            let (next_point, stop) = (&next_point, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let index = next_point.fetch_add(1, Ordering::SeqCst);
                    if index >= points.len() {
                        return;
                    }
                    let result = explore_point(index, points, checkpoints, checker, config);
                    if sender.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut waiting: BTreeMap<usize, PointResult> = BTreeMap::new();
        let mut merged = 0;
        let mut seen: HashSet<(u64, usize)> = HashSet::new();
        for result in results.iter() {
            waiting.insert(result.point, result);
            while let Some(result) = waiting.remove(&merged) {
                merged += 1;
                let done = merge_point(
                    result,
                    &points,
                    &checkpoints,
                    config,
                    &mut seen,
                    &mut summary,
                );
                if done {
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
    });
    summary.seconds = started.elapsed().as_secs_f64();
    summary.states_per_second = summary.states_checked as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// One crash point, enumerated and checked.
struct PointResult {
    point: usize,
    checkpoint: usize,
    /// States built.
    enumerated: u64,
    /// Whether the per-point bound cut it.
    complete: bool,
    /// The point's distinct states in order: their image hash and what was wrong.
    states: Vec<(u64, Option<Violation>, MarkSet)>,
}

/// A rejected state: the answers that built it and what was wrong.
struct Violation {
    choices: Vec<u64>,
    explanation: String,
}

/// Enumerates one point's states within `--max-states-per-point` (dedup within the point)
/// and checks each.
fn explore_point(
    point_index: usize,
    points: &[CrashPoint],
    checkpoints: &[Checkpoint],
    checker: &StateChecker,
    config: &ExploreConfig,
) -> PointResult {
    let point = &points[point_index];
    let checkpoint_index = checkpoints
        .iter()
        .rposition(|checkpoint| checkpoint.op_index <= point.op_index())
        .expect("the first checkpoint comes before any operation");
    let checkpoint = &checkpoints[checkpoint_index];
    // A point with more states than its bound is walked fewest deviations first, so that
    // the bound keeps the states nearest the durable image, over every question.
    let whole = point.count_states(config.options, config.max_states_per_point);
    let order = match whole {
        Some(_) => Order::DepthFirst,
        None => Order::FewestDeviationsFirst,
    };
    let options = EnumerationOptions {
        order,
        ..config.options
    };
    let mut result = PointResult {
        point: point_index,
        checkpoint: checkpoint_index,
        enumerated: 0,
        complete: true,
        states: Vec::new(),
    };
    let mut seen: HashSet<u64> = HashSet::new();
    for state in point.states(options) {
        if result.enumerated == config.max_states_per_point {
            result.complete = false;
            break;
        }
        result.enumerated += 1;
        if !seen.insert(state.image_hash) {
            continue;
        }
        let (problem, marks) = checker.judge(&state, checkpoint);
        let problem = problem.map(|explanation| Violation {
            choices: state.choices.clone(),
            explanation,
        });
        result.states.push((state.image_hash, problem, marks));
    }
    result
}

/// Adds one point's result to the summary; true once `--max-states` is reached.
fn merge_point(
    result: PointResult,
    points: &[CrashPoint],
    checkpoints: &[Checkpoint],
    config: &ExploreConfig,
    seen: &mut HashSet<(u64, usize)>,
    summary: &mut ExploreSummary,
) -> bool {
    let point = &points[result.point];
    summary.states_enumerated += result.enumerated;
    if !result.complete {
        summary.cut.push(format!(
            "--max-states-per-point {} cut crash point {} ({}): its states nearest the \
             durable image were checked",
            config.max_states_per_point,
            result.point,
            describe_point(point)
        ));
    }
    let count = result.states.len();
    for (index, (image_hash, problem, marks)) in result.states.into_iter().enumerate() {
        if !seen.insert((image_hash, result.checkpoint)) {
            continue;
        }
        for (index, mark) in Mark::ALL.iter().enumerate() {
            if marks & (1 << index) != 0 {
                *summary
                    .recovery_marks
                    .entry(mark.name().to_string())
                    .or_default() += 1;
            }
        }
        summary.distinct_states += 1;
        summary.states_checked += 1;
        if let Some(violation) = problem {
            summary.violations.push(ExploreViolation {
                point: result.point,
                before: describe_point(point),
                step: checkpoints[result.checkpoint].step,
                image: point.describe(&violation.choices, config.options),
                explanation: violation.explanation,
            });
        }
        if summary.distinct_states == config.max_states {
            let left = points.len() - result.point - 1;
            let rest_of_point = index + 1 < count || !result.complete;
            if !rest_of_point && left == 0 {
                // The bound fell on the very last state: nothing was cut.
                if result.complete {
                    summary.crash_points_complete += 1;
                }
                return true;
            }
            if !rest_of_point && result.complete {
                summary.crash_points_complete += 1;
            }
            summary.cut.push(format!(
                "--max-states {} reached at crash point {} of {} ({}); {left} later points \
                 not merged",
                config.max_states,
                result.point,
                points.len(),
                describe_point(point)
            ));
            return true;
        }
    }
    if result.complete {
        summary.crash_points_complete += 1;
    }
    false
}

fn describe_point(point: &CrashPoint) -> String {
    format!(
        "before op {} {} {}",
        point.op_index(),
        point.op().name(),
        point.path()
    )
}

/// Recovers crash states and judges them.
struct StateChecker {
    options: Options,
    keys: Vec<Vec<u8>>,
}

impl StateChecker {
    /// Checks one state; a panic in recovery is a problem of the state, not the end.
    /// Also returns the coverage marks its recovery reached (counted per state, so that
    /// the merge can count each distinct state once).
    fn judge(&self, state: &CrashState, checkpoint: &Checkpoint) -> (Option<String>, MarkSet) {
        let marks = Marks::enabled();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.check(state, checkpoint, &marks)
        }));
        let reached = marks
            .counts()
            .iter()
            .enumerate()
            .filter(|(_, count)| count.reached > 0)
            .fold(0, |set, (index, _)| set | 1 << index);
        let problem = match outcome {
            Ok(result) => result.err(),
            Err(payload) => Some(format!(
                "recovery panicked: {}",
                crate::flight::panic_message(payload.as_ref())
            )),
        };
        (problem, reached)
    }

    /// Opens the database on the crash image and asks the checker (as it was at the
    /// checkpoint) whether what it holds is allowed.
    fn check(
        &self,
        state: &CrashState,
        checkpoint: &Checkpoint,
        marks: &Marks,
    ) -> Result<(), String> {
        let mut checker = checkpoint.checker.clone();
        checker.crashed(checkpoint.step);
        let options = Options {
            marks: marks.clone(),
            ..self.options.clone()
        };
        let db = Db::open(Arc::new(state.fs.clone()), DB_DIR, options)
            .map_err(|error| format!("recovery failed: {error}"))?;
        if let Some(damage) = &db.recovery_report().wal_damage {
            return Err(format!(
                "recovery reported WAL damage, though a crash is all that happened: {damage}"
            ));
        }
        let entries: Entries = db
            .iter()
            .and_then(|iter| iter.collect())
            .map_err(|error| format!("reading the recovered database failed: {error}"))?;
        let recovered: BTreeMap<Vec<u8>, Vec<u8>> = entries.into_iter().collect();
        let mut reads = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let answer = db
                .get(key)
                .map_err(|error| format!("a point read failed: {error}"))?;
            reads.push((key.clone(), answer));
        }
        checker
            .recovered(checkpoint.step, &recovered, &reads)
            .map(|_| ())
            .map_err(|violation| violation.to_string())
    }
}

impl ExploreSummary {
    /// The text report.
    pub fn text(&self) -> String {
        let mut out = format!(
            "explore: seed {}, {} ops, profile {}, crash points before every {} ({} points, \
             {} enumerated completely)\n",
            self.seed,
            self.ops,
            self.profile,
            if self.crash_points_at == "syncs" {
                "sync"
            } else {
                "disk-changing operation"
            },
            self.crash_points,
            self.crash_points_complete
        );
        out.push_str(&format!(
            "  states enumerated {}, distinct {}, checked {}, violations {}\n",
            self.states_enumerated,
            self.distinct_states,
            self.states_checked,
            self.violations.len()
        ));
        if self.cut.is_empty() {
            out.push_str("  bounds: none reached; the enumeration is complete\n");
        }
        for cut in &self.cut {
            out.push_str(&format!("  bound: {cut}\n"));
        }
        out.push_str(&format!(
            "  {:.0} distinct states/s ({:.2} s)\n",
            self.states_per_second, self.seconds
        ));
        if !self.recovery_marks.is_empty() {
            let marks: Vec<String> = self
                .recovery_marks
                .iter()
                .map(|(mark, states)| format!("{mark} {states}"))
                .collect();
            out.push_str(&format!(
                "  recoveries reached (distinct states): {}\n",
                marks.join(", ")
            ));
        }
        if self.run_verdict != "pass" {
            out.push_str(&format!("  the workload's own run: {}\n", self.run_verdict));
        }
        for violation in self.violations.iter().take(10) {
            out.push_str(&format!(
                "VIOLATION at crash point {} ({}, step {}):\n  image: {}\n  {}\n",
                violation.point,
                violation.before,
                violation.step,
                violation.image,
                violation.explanation.replace('\n', "\n  ")
            ));
        }
        if self.violations.len() > 10 {
            out.push_str(&format!(
                "... and {} more violations (--json lists them all)\n",
                self.violations.len() - 10
            ));
        }
        out
    }

    /// Whether anything was wrong.
    pub fn failed(&self) -> bool {
        !self.violations.is_empty() || self.run_verdict != "pass"
    }
}
