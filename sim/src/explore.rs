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
use std::sync::Arc;
use std::time::Instant;
use strata_engine::{Db, Options};
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
    /// How the workload's own run ended (a violation there is reported too).
    pub run_verdict: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Distinct states checked per second.
    pub states_per_second: f64,
}

/// States checked together, in parallel; the results merge in order.
const BATCH: usize = 256;

/// Runs the workload, then enumerates and checks its crash states.
pub fn explore(config: &ExploreConfig) -> Result<ExploreSummary, String> {
    if config.case.mode != Mode::Sequential {
        return Err(
            "explore runs single-client (sequential) cases; this case is concurrent".into(),
        );
    }
    let started = Instant::now();
    let mut runner = Runner::with_config(&config.case, false, config.fault_config());
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
        run_verdict,
        seconds: 0.0,
        states_per_second: 0.0,
    };
    let checker = StateChecker { options, keys };
    // A pipeline: this thread enumerates (in a fixed order, so the bounds and the dedup
    // are deterministic) while `jobs` threads recover and check; verdicts come back by
    // batch number and are merged in enumeration order.
    let jobs = config.jobs.max(1);
    let (work, queue) = std::sync::mpsc::sync_channel::<(usize, Vec<Pending>)>(jobs * 2);
    let queue = std::sync::Mutex::new(queue);
    let (verdict_sender, verdicts) = std::sync::mpsc::channel::<(usize, Vec<Verdict>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let verdict_sender = verdict_sender.clone();
            let (queue, checker, checkpoints) = (&queue, &checker, &checkpoints);
            scope.spawn(move || loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .recv();
                let Ok((number, batch)) = next else {
                    return;
                };
                let judged = batch
                    .into_iter()
                    .map(|pending| checker.judge(pending, checkpoints))
                    .collect();
                if verdict_sender.send((number, judged)).is_err() {
                    return;
                }
            });
        }
        drop(verdict_sender);
        let mut batches = 0;
        enumerate_states(&points, &checkpoints, config, &mut summary, |batch| {
            // A send fails only if every checker died, which the scope reports.
            let _ = work.send((batches, batch));
            batches += 1;
        });
        drop(work);
    });
    let mut judged: Vec<(usize, Vec<Verdict>)> = verdicts.into_iter().collect();
    judged.sort_by_key(|(number, _)| *number);
    for verdict in judged.into_iter().flat_map(|(_, batch)| batch) {
        summary.states_checked += 1;
        if let Some(explanation) = verdict.problem {
            let point = &points[verdict.point];
            summary.violations.push(ExploreViolation {
                point: verdict.point,
                before: describe_point(point),
                step: checkpoints[verdict.checkpoint].step,
                image: point.describe(&verdict.choices, config.options),
                explanation,
            });
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.states_per_second = summary.states_checked as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// Walks every point's states within the bounds, in order, handing each distinct one to
/// `check` in batches.
fn enumerate_states(
    points: &[CrashPoint],
    checkpoints: &[Checkpoint],
    config: &ExploreConfig,
    summary: &mut ExploreSummary,
    mut check: impl FnMut(Vec<Pending>),
) {
    let mut seen: HashSet<(u64, usize)> = HashSet::new();
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    'points: for (point_index, point) in points.iter().enumerate() {
        let checkpoint_index = checkpoints
            .iter()
            .rposition(|checkpoint| checkpoint.op_index <= point.op_index())
            .expect("the first checkpoint comes before any operation");
        // A point with more states than its bound is walked fewest deviations first, so
        // that the bound keeps the states nearest the durable image, over every question.
        let whole = point.count_states(config.options, config.max_states_per_point);
        let order = match whole {
            Some(_) => Order::DepthFirst,
            None => Order::FewestDeviationsFirst,
        };
        let options = EnumerationOptions {
            order,
            ..config.options
        };
        let mut complete = true;
        for (enumerated_here, state) in point.states(options).enumerate() {
            if enumerated_here as u64 == config.max_states_per_point {
                complete = false;
                summary.cut.push(format!(
                    "--max-states-per-point {} cut crash point {point_index} ({}): its \
                     states nearest the durable image were checked",
                    config.max_states_per_point,
                    describe_point(point)
                ));
                break;
            }
            summary.states_enumerated += 1;
            if !seen.insert((state.image_hash, checkpoint_index)) {
                continue;
            }
            summary.distinct_states += 1;
            batch.push(Pending {
                point: point_index,
                checkpoint: checkpoint_index,
                state,
            });
            if batch.len() == BATCH {
                check(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
            }
            if summary.distinct_states == config.max_states {
                let left = points.len() - point_index - 1;
                summary.cut.push(format!(
                    "--max-states {} reached at crash point {point_index} of {} ({}); {left} \
                     later points not enumerated",
                    config.max_states,
                    points.len(),
                    describe_point(point)
                ));
                break 'points;
            }
        }
        if complete {
            summary.crash_points_complete += 1;
        }
    }
    if !batch.is_empty() {
        check(batch);
    }
}

fn describe_point(point: &CrashPoint) -> String {
    format!(
        "before op {} {} {}",
        point.op_index(),
        point.op().name(),
        point.path()
    )
}

struct Pending {
    point: usize,
    checkpoint: usize,
    state: CrashState,
}

/// A checked state: where it came from and what was wrong, if anything.
struct Verdict {
    point: usize,
    checkpoint: usize,
    choices: Vec<u64>,
    problem: Option<String>,
}

/// Recovers crash states and judges them.
struct StateChecker {
    options: Options,
    keys: Vec<Vec<u8>>,
}

impl StateChecker {
    /// Checks one state; a panic in recovery is a problem of the state, not the end.
    fn judge(&self, pending: Pending, checkpoints: &[Checkpoint]) -> Verdict {
        let checkpoint = &checkpoints[pending.checkpoint];
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.check(&pending.state, checkpoint)
        }));
        let problem = match outcome {
            Ok(result) => result.err(),
            Err(payload) => Some(format!(
                "recovery panicked: {}",
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into())
            )),
        };
        Verdict {
            point: pending.point,
            checkpoint: pending.checkpoint,
            choices: pending.state.choices,
            problem,
        }
    }

    /// Opens the database on the crash image and asks the checker (as it was at the
    /// checkpoint) whether what it holds is allowed.
    fn check(&self, state: &CrashState, checkpoint: &Checkpoint) -> Result<(), String> {
        let mut checker = checkpoint.checker.clone();
        checker.crashed(checkpoint.step);
        let db = Db::open(Arc::new(state.fs.clone()), DB_DIR, self.options.clone())
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
