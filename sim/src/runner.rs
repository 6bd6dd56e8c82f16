//! The run loop: one case, one simulated machine, one database, one checker.
//!
//! Each planned step runs against the engine; its outcome goes to the checker. A planned
//! crash halts the simulated machine a few VFS operations into a step; the runner then
//! drops the engine (the process dies), crashes the filesystem, reopens the database
//! (possibly crashing again during recovery), and asks the checker whether the recovered
//! state is one the durability promise allows. A write-path failure poisons the engine; the
//! runner then restarts the process (without a machine crash) and checks again. Every run
//! ends with a final crash (or, with crashes off, a clean reopen) and a last check.

mod recovery;
mod step;

use crate::case::{stream_seed, Case, Fault, Mode};
use crate::liar::LyingFs;
use crate::scheduled_fs::ScheduledFs;
use crate::views::{scan_bounds, scan_steps};
use crate::workload::{plan, Mutation, Op, Plan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_checker::{Checker, Mutation as CheckedMutation, Outcome, Views};
use strata_engine::{Db, Error, Marks, WriteBatch, WriteOptions};
use strata_sched::Runtime;
use strata_vfs::sim::{SimRng, StableHasher};
use strata_vfs::{FaultConfig, FaultCounters, FaultKind, SimFs, Vfs};

/// Scanned key-value pairs.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The database directory inside the simulated filesystem.
pub(crate) const DB_DIR: &str = "db";

/// What the checker knew at some point of a run, for a crash there that `strata explore`
/// builds later: the checker as it was (with a write in flight issued), its step, and the
/// index of the first VFS operation it covers.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    pub(crate) op_index: u64,
    pub(crate) step: u64,
    pub(crate) checker: Checker,
}

/// A durability violation (or an engine misbehaviour) found by a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of violation, e.g. `recovery_not_a_prefix`, `panic`.
    pub kind: String,
    /// The step at which it was found.
    pub step: u64,
    /// A human-readable explanation.
    pub explanation: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStats {
    /// Steps executed.
    pub ops: u64,
    /// Machine crashes (including during recovery).
    pub crashes: u64,
    /// Process restarts after a poisoned engine (no machine crash).
    pub restarts: u64,
    /// Recoveries verified by the checker.
    pub recoveries: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Runs ended early because the engine reported injected damage as corruption.
    pub detected_corruptions: u64,
    /// Damage injected, by damage and kind of file (`flip wal`, `truncate table`, `lose
    /// manifest`, ...).
    pub damage_by_target: BTreeMap<String, u64>,
    /// Of those, the ones the engine reported as corruption (the run's last damage, when
    /// several were injected).
    pub damage_detected_by_target: BTreeMap<String, u64>,
    /// Of those, the ones a point-in-time recovery reported and recovered past.
    pub damage_recovered_past_by_target: BTreeMap<String, u64>,
    /// Memtable flushes the engine ran.
    pub flushes: u64,
    /// Compactions the engine ran (rewrites and trivial moves).
    pub compactions: u64,
    /// Concurrent mode: client tasks of the run (0 in sequential mode).
    pub clients: u64,
    /// Commit groups the engine ran, and those that carried more than one writer's batch.
    pub commit_groups: u64,
    /// Commit groups with more than one member.
    pub multi_writer_groups: u64,
    /// Writes during which a flush or compaction finished (background work racing a write).
    pub writes_overlapping_background: u64,
    /// Scheduling decisions, and those that switched tasks.
    pub schedule_steps: u64,
    /// Scheduling decisions that switched to another task.
    pub schedule_switches: u64,
    /// Snapshots whose sequence number the checker verified.
    pub snapshots: u64,
    /// Reads at a snapshot (point reads and scans) checked against the model at its
    /// sequence.
    pub snapshot_reads: u64,
    /// Of those, reads made after a flush or compaction finished since the snapshot was
    /// taken.
    pub snapshot_reads_after_background: u64,
    /// Scans of the live database checked against the model at their iterator's sequence.
    pub sequenced_scans: u64,
    /// Scans (live or at a snapshot) with a `next_back`, checked.
    pub reverse_scans: u64,
    /// Scans (live or at a snapshot) with a `seek` or `seek_for_prev`, checked.
    pub seek_scans: u64,
    /// Snapshots still held when their engine was closed or died, that then refused to
    /// read (`Error::Closed`).
    pub snapshots_refused_after_close: u64,
    /// The engine's coverage marks: reached, crashed at, recovered from (`coverage.rs`).
    pub marks: Vec<crate::coverage::MarkRow>,
    /// The medium's faults that fired, by fault kind (`misdirect`, ...), with how the run
    /// ended.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub medium: BTreeMap<String, crate::medium::MediumOutcome>,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The case's seed.
    pub seed: u64,
    /// The violation, if any.
    pub finding: Option<Finding>,
    /// What the run did.
    pub stats: RunStats,
    /// A hash of everything that happened: equal for equal runs.
    pub trace_hash: u64,
    /// The readable trace (empty unless asked for).
    pub trace: Vec<String>,
    /// Concurrent mode, with the trace: the scheduling decisions that switched tasks (what a
    /// shrink tries to take away).
    pub switch_decisions: Vec<u64>,
}

pub(crate) enum Stop {
    Violation(Finding),
    /// The engine reported corruption after an injected bit flip: detected, run over.
    DetectedCorruption,
}

pub(crate) type Flow = Result<(), Stop>;

pub(crate) fn violation(kind: &str, step: u64, explanation: impl Into<String>) -> Stop {
    Stop::Violation(Finding {
        kind: kind.to_string(),
        step,
        explanation: explanation.into(),
    })
}

pub(crate) fn printable(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// The fault configuration of the simulated filesystem for a case.
pub fn fault_config(case: &Case) -> FaultConfig {
    let mut rng = SimRng::new(stream_seed(case.seed, "fault-config"));
    let mut config = FaultConfig {
        sector_size: [512, 4096][rng.below(2) as usize],
        ordered_writes: rng.chance(0.3),
        unsynced_survival: [0.0, 0.5, 0.9][rng.below(3) as usize],
        torn_write_rate: if case.has(Fault::Torn) { 0.3 } else { 0.0 },
        crash_at_op: None,
        sync_failure_rate: if case.has(Fault::Fsync) { 0.004 } else { 0.0 },
        capacity_bytes: None,
        enospc_rate: if case.has(Fault::Enospc) { 0.0015 } else { 0.0 },
        read_error_rate: if case.has(Fault::Eio) { 0.002 } else { 0.0 },
        bitflip_rate: 0.0,
        profile: case.fs_profile,
        ..FaultConfig::none()
    };
    crate::medium::set_rates(case, &mut config);
    config
}

pub(crate) struct Runner<'a> {
    pub(crate) case: &'a Case,
    pub(crate) plan: Plan,
    pub(crate) fs: SimFs,
    vfs: Arc<dyn Vfs>,
    /// Concurrent mode: the simulated runtime the engine and the clients run on.
    pub(crate) runtime: Option<Runtime>,
    pub(crate) db: Option<Arc<Db>>,
    pub(crate) checker: Checker,
    fault_rng: SimRng,
    /// Decisions of damage to files between runs (`damage.rs`).
    pub(crate) damage_rng: SimRng,
    config: FaultConfig,
    pub(crate) stats: RunStats,
    bitflips: u64,
    pub(crate) damage_injected: bool,
    /// The medium's faults in this run (`medium.rs`).
    pub(crate) medium: crate::medium::MediumRecord,
    /// Point-in-time recoveries' notes in `lost/` as of the last open.
    damage_notes_seen: usize,
    /// The damage and kind of file of the last damage done.
    last_damage: Option<String>,
    pub(crate) hasher: StableHasher,
    pub(crate) tracing: bool,
    pub(crate) trace: Vec<String>,
    /// Sequential mode: the epoch's views (snapshots, scans) and numbered writes, checked
    /// when the epoch ends (`views.rs`), and the logical clock they are stamped with.
    pub(crate) views: Views,
    pub(crate) instant: u64,
    /// The snapshots held (sequential mode: the runner's; concurrent mode: handed over by
    /// the clients at the end of a phase), until the engine goes.
    pub(crate) held: Vec<crate::views::Held>,
    /// `strata explore`: checkpoints, when kept.
    pub(crate) checkpoints: Option<Vec<Checkpoint>>,
    /// The engine's coverage marks (every engine of the run shares them): paused while the
    /// machine is halted; the runner says when it crashed and when a recovery was verified.
    marks: Marks,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(case: &'a Case, tracing: bool) -> Runner<'a> {
        Runner::with_config(case, tracing, fault_config(case))
    }

    /// A runner whose filesystem has `config`, not the one the seed draws.
    pub(crate) fn with_config(case: &'a Case, tracing: bool, config: FaultConfig) -> Runner<'a> {
        let fs = SimFs::new(stream_seed(case.seed, "filesystem"), config.clone());
        fs.record_events(tracing);
        let mut vfs: Arc<dyn Vfs> = match case.liar {
            Some(liar) => Arc::new(LyingFs::new(Arc::new(fs.clone()), liar)),
            None => Arc::new(fs.clone()),
        };
        let mut plan = plan(case);
        let halted = fs.clone();
        let marks = Marks::paused_while(move || halted.is_halted());
        plan.options.marks = marks.clone();
        let runtime = match case.mode {
            Mode::Sequential => None,
            Mode::Concurrent => {
                let runtime = Runtime::simulated(stream_seed(case.seed, "clock"));
                vfs = Arc::new(ScheduledFs::new(vfs, runtime.clone()));
                plan.options.runtime = runtime.clone();
                plan.options.background_work = crate::concurrent::background_work(case.seed);
                Some(runtime)
            }
        };
        Runner {
            case,
            plan,
            fs,
            vfs,
            runtime,
            db: None,
            checker: Checker::new(),
            fault_rng: SimRng::new(stream_seed(case.seed, "runner-faults")),
            damage_rng: SimRng::new(stream_seed(case.seed, "damage")),
            config,
            stats: RunStats::default(),
            bitflips: 0,
            damage_injected: false,
            medium: Default::default(),
            damage_notes_seen: 0,
            last_damage: None,
            hasher: StableHasher::default(),
            tracing,
            trace: Vec::new(),
            views: Views::new(),
            instant: 0,
            held: Vec::new(),
            checkpoints: None,
            marks,
        }
    }

    /// Notes what the checker knows now, if checkpoints are kept.
    pub(super) fn checkpoint(&mut self, step: u64) {
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.push(Checkpoint {
                op_index: self.fs.op_count(),
                step,
                checker: self.checker.clone(),
            });
        }
    }

    /// Moves the filesystem's recorded events into the trace.
    pub(crate) fn drain_events(&mut self) {
        if self.tracing {
            for event in self.fs.take_events() {
                let line = format!("      vfs {event}");
                crate::flight::trace_line(&line);
                self.trace.push(line);
            }
        }
    }

    pub(crate) fn note(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            self.drain_events();
            let task = self.runtime.as_ref().and_then(Runtime::current_task);
            let line = match task {
                Some(task) => format!("[task {task}] {}", line()),
                None => line(),
            };
            crate::flight::trace_line(&line);
            self.trace.push(line);
        }
    }

    pub(crate) fn db(&self) -> &Db {
        self.db
            .as_ref()
            .expect("the runner keeps a database open between steps")
    }

    /// Classifies an engine error; `Ok` means "a fault, keep going".
    fn engine_error(&mut self, step: u64, error: &Error) -> Flow {
        classify_error(step, error, self.damaged())
    }

    pub(crate) fn run(&mut self) -> Flow {
        match self.case.mode {
            Mode::Sequential => self.run_sequential(),
            Mode::Concurrent => self.run_concurrent(),
        }
    }

    fn run_sequential(&mut self) -> Flow {
        self.open_and_verify(0, false)?;
        let steps = std::mem::take(&mut self.plan.steps);
        for (index, planned) in steps.iter().enumerate() {
            if self.case.skip.contains(&index) {
                continue;
            }
            let step = index as u64;
            crate::flight::at_step(step, None);
            if let Some(after) = planned.crash_after {
                if !self.case.no_crash.contains(&index) {
                    self.fs.set_crash_at(Some(self.fs.op_count() + after));
                }
            }
            self.stats.ops += 1;
            self.checkpoint(step);
            self.execute(step, &planned.op)?;
            if self.fs.is_halted() {
                self.machine_crash(step)?;
            } else if self.db().poisoned().is_some() {
                self.restart(step)?;
            }
        }
        let last = steps.len() as u64;
        self.fs.set_crash_at(None);
        if self.case.has(Fault::Crash) {
            self.machine_crash(last)
        } else {
            self.reopen(last)
        }
    }

    fn count_engine_work(&mut self, db: &Db) {
        let stats = db.stats();
        self.stats.flushes += stats.flushes;
        self.stats.compactions += stats.compactions + stats.trivial_moves;
        self.stats.commit_groups += stats.commit_groups;
        self.stats.multi_writer_groups += stats.multi_writer_groups;
    }

    /// The process dies: the engine is dropped without a clean close.
    fn retire_db(&mut self) {
        if let Some(db) = self.db.take() {
            self.count_engine_work(&db);
        }
    }

    pub(crate) fn finish(mut self, flow: Flow) -> RunReport {
        self.retire_db();
        self.held.clear();
        let end = match &flow {
            Ok(()) => crate::medium::RunEnd::Passed,
            Err(Stop::DetectedCorruption) => crate::medium::RunEnd::Detected,
            Err(Stop::Violation(_)) => crate::medium::RunEnd::Violation,
        };
        self.stats.medium = self.medium_outcomes(end);
        let finding = match flow {
            Ok(()) => None,
            Err(Stop::DetectedCorruption) => {
                self.stats.detected_corruptions += 1;
                if let Some(label) = self.last_damage.clone() {
                    *self
                        .stats
                        .damage_detected_by_target
                        .entry(label)
                        .or_default() += 1;
                }
                None
            }
            Err(Stop::Violation(finding)) => Some(finding),
        };
        self.note(|| {
            format!(
                "verdict: {}",
                finding
                    .as_ref()
                    .map_or("pass".to_string(), |f| f.kind.clone())
            )
        });
        let counters: FaultCounters = self.fs.counters();
        for (kind, count) in counters.iter() {
            // The medium's kinds only when on, so that summaries without them read as before.
            let medium = FaultKind::MEDIUM.contains(&kind);
            if kind != FaultKind::BitFlip && !(medium && count == 0) {
                self.stats.faults.insert(kind.name().to_string(), count);
            }
        }
        self.stats
            .faults
            .insert(FaultKind::BitFlip.name().to_string(), self.bitflips);
        self.hasher.write_u64(self.fs.event_hash());
        self.stats.marks = crate::coverage::rows_of(&self.marks.counts());
        RunReport {
            seed: self.case.seed,
            finding,
            stats: self.stats,
            trace_hash: self.hasher.finish(),
            trace: self.trace,
            switch_decisions: Vec::new(),
        }
    }
}

/// A planned write as the engine's batch and as the checker's mutations.
pub(crate) fn batch_of(mutations: &[Mutation]) -> (WriteBatch, Vec<CheckedMutation>) {
    let mut batch = WriteBatch::new();
    let mut checked = Vec::with_capacity(mutations.len());
    for mutation in mutations {
        match mutation {
            Mutation::Put(key, value) => {
                batch.put(key, value);
                checked.push(CheckedMutation::put(key.clone(), value.clone()));
            }
            Mutation::Delete(key) => {
                batch.delete(key);
                checked.push(CheckedMutation::delete(key.clone()));
            }
        }
    }
    (batch, checked)
}

/// Classifies an engine error from a valid operation; `Ok` means "a fault, keep going".
pub(crate) fn classify_error(step: u64, error: &Error, damage_injected: bool) -> Flow {
    match error {
        Error::Io(_) | Error::Poisoned { .. } => Ok(()),
        Error::Corruption { .. } if damage_injected => Err(Stop::DetectedCorruption),
        Error::Corruption { .. } => Err(violation(
            "corruption_without_damage",
            step,
            format!("the engine reported corruption though no bit was flipped: {error}"),
        )),
        // InvalidArgument, Locked, Closed, and any kind a later engine adds.
        _ => Err(violation(
            "unexpected_error",
            step,
            format!("a valid operation failed: {error}"),
        )),
    }
}

/// The report of a run that panicked (or, concurrent, deadlocked or ran out of steps): the
/// message, and from the flight recorder where the panic was raised, at which step and in
/// which task, and (tracing) the trace up to it.
pub(crate) fn failed_run(seed: u64, kind: &str, message: &str) -> RunReport {
    let flight = crate::flight::take();
    let step = flight.step.unwrap_or(0);
    let mut explanation = match &flight.panic {
        Some((first, location)) if kind == "panic" => {
            format!("the engine or simulator panicked at {location}: {first}")
        }
        _ => format!("the engine or simulator failed: {message}"),
    };
    match (&flight.step, &flight.task) {
        (Some(step), Some(task)) => {
            explanation.push_str(&format!(" (step {step}, the last begun, by {task})"))
        }
        (Some(step), None) => explanation.push_str(&format!(" (step {step})")),
        _ => {}
    }
    if flight.panic.is_some() && kind == "panic" && !explanation.contains(message) {
        explanation.push_str(&format!("\nreported as: {message}"));
    }
    let mut trace = flight.trace.unwrap_or_default();
    if !trace.is_empty() {
        trace.push(format!("step {step}: {}", explanation.replace('\n', "; ")));
    }
    RunReport {
        seed,
        finding: Some(Finding {
            kind: kind.into(),
            step,
            explanation,
        }),
        stats: RunStats::default(),
        trace_hash: 0,
        trace,
        switch_decisions: Vec::new(),
    }
}

/// Runs one case; `trace` keeps a readable trace of every step and VFS event.
pub fn run_case(case: &Case, trace: bool) -> RunReport {
    crate::flight::begin(trace);
    if case.mode == Mode::Concurrent {
        return crate::concurrent::run_concurrent_case(case, trace);
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut runner = Runner::new(case, trace);
        let flow = runner.run();
        runner.finish(flow)
    }));
    match outcome {
        Ok(report) => report,
        Err(payload) => {
            let message = crate::flight::panic_message(payload.as_ref());
            failed_run(case.seed, "panic", &message)
        }
    }
}
