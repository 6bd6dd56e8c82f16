//! Concurrent mode: the production engine — group commit, the flush and compaction threads,
//! write stalls, readers racing installs — driven by 1 to 8 client tasks under the seeded
//! scheduler of `strata-sched`, with every fault kind on and crashes at any VFS operation of
//! any task.
//!
//! The plan is the sequential one (`workload::plan`), cut into *phases* at its planned
//! reopens. Within a phase each step goes to a client drawn from a stream of its own, and the
//! clients run their steps at the same time. A step with a planned crash arms the filesystem,
//! as the client starts it, to halt the planned number of VFS operations later, whichever
//! task (client, flush or compaction thread) reaches it. When every client has stopped
//! (finished, or seen the machine halt or the engine poison itself), the epoch's history is
//! checked and handed to the checker in the engine's commit order (`strata_checker::History`),
//! and the runner crashes, restarts or reopens exactly as in sequential mode.
//!
//! A client stops issuing work once the machine has halted: in a real power cut nothing runs
//! after it. Operations already in flight finish (their answers are not acknowledgements).

use crate::case::{stream_seed, Case, MAX_CLIENTS};
use crate::runner::{
    batch_of, classify_error, failed_run, printable, violation, Entries, Flow, RunReport, Runner,
    Stop,
};
use crate::views::{scan_bounds, scan_steps, Held};
use crate::workload::{Op, Step};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use strata_checker::{History, ViolationKind};
use strata_engine::{Db, Error, WriteOptions};
use strata_sched::{simulate, SimClock, SimulationConfig};
use strata_vfs::sim::SimRng;
use strata_vfs::SimFs;

/// A run taking more scheduling decisions than this is stuck (a livelock).
const MAX_SCHEDULE_STEPS: usize = 50_000_000;

/// Whether a concurrent seed runs the background threads (most do) or the embedded mode,
/// where writers flush and compact inline — that code runs under concurrency too.
pub(crate) fn background_work(seed: u64) -> bool {
    SimRng::new(stream_seed(seed, "embedded")).chance(0.8)
}

/// How many clients, and how finely the scheduler interleaves them.
struct Shape {
    clients: usize,
    switch_chance: f64,
}

fn shape(case: &Case) -> Shape {
    let mut rng = SimRng::new(stream_seed(case.seed, "concurrency"));
    let drawn = 1 + rng.below(MAX_CLIENTS as u64) as usize;
    let switch_chance = [0.02, 0.1, 0.3, 0.7][rng.below(4) as usize];
    Shape {
        clients: case.clients.unwrap_or(drawn).max(1),
        switch_chance,
    }
}

/// Where a planned crash lands.
#[derive(Clone, Copy)]
enum CrashPoint {
    /// This many VFS operations after the step starts, whichever task issues them.
    VfsOperations(u64),
    /// This many scheduling points (locks, waits, notifications, VFS calls) after the step
    /// starts: a power cut between two synchronisation steps of any task.
    SchedulingPoints(u64),
}

/// Scheduling points are several times denser than VFS operations.
const POINTS_PER_VFS_OPERATION: u64 = 4;

/// A step as a client runs it.
#[derive(Clone)]
struct ClientStep {
    step: u64,
    op: Op,
    crash: Option<CrashPoint>,
}

/// Steps that run at the same time, one list per client.
#[derive(Default)]
struct Phase {
    per_client: Vec<Vec<ClientStep>>,
    /// The phase ends with a clean reopen planned at this step.
    reopen: Option<u64>,
    /// The last step of the phase (where its checks are reported).
    last_step: u64,
}

fn phases(steps: Vec<Step>, case: &Case, clients: usize) -> Vec<Phase> {
    let mut rng = SimRng::new(stream_seed(case.seed, "clients"));
    let mut crash_kinds = SimRng::new(stream_seed(case.seed, "crash-kinds"));
    let new_phase = || Phase {
        per_client: vec![Vec::new(); clients],
        ..Phase::default()
    };
    let mut phases = Vec::new();
    let mut current = new_phase();
    for (index, planned) in steps.into_iter().enumerate() {
        // Drawn for every step, skipped or not, so that a shrink moves no other step.
        let client = rng.below(clients as u64) as usize;
        let at_scheduling_point = crash_kinds.chance(0.5);
        if case.skip.contains(&index) {
            continue;
        }
        let step = index as u64;
        current.last_step = step;
        if planned.op == Op::Reopen {
            current.reopen = Some(step);
            phases.push(std::mem::replace(&mut current, new_phase()));
            continue;
        }
        current.per_client[client].push(ClientStep {
            step,
            op: planned.op,
            crash: planned
                .crash_after
                .filter(|_| !case.no_crash.contains(&index))
                .map(|after| match at_scheduling_point {
                    true => CrashPoint::SchedulingPoints(after * POINTS_PER_VFS_OPERATION),
                    false => CrashPoint::VfsOperations(after),
                }),
        });
    }
    phases.push(current);
    phases
}

/// What the clients of a phase share (a plain lock: never held across a scheduling point).
pub(crate) struct Shared {
    pub(crate) history: History,
    base: BTreeMap<Vec<u8>, Vec<u8>>,
    stop: Option<Stop>,
    /// Per event, in the order the scheduler ran them: folded into the run's trace hash.
    pub(crate) hashes: Vec<u64>,
    trace: Vec<String>,
    writes_overlapping_background: u64,
    /// The snapshots the clients hold (any client reads or releases any of them).
    pub(crate) snapshots: Vec<Held>,
}

pub(crate) fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct Client {
    pub(crate) number: usize,
    pub(crate) db: Arc<Db>,
    fs: SimFs,
    clock: Arc<SimClock>,
    pub(crate) shared: Arc<Mutex<Shared>>,
    damage_injected: bool,
    tracing: bool,
}

impl Client {
    fn run(&self, steps: Vec<ClientStep>) {
        for ClientStep { step, op, crash } in steps {
            if self.fs.is_halted() || lock(&self.shared).stop.is_some() {
                return;
            }
            if self.db.poisoned().is_some() {
                return;
            }
            let armed = self.fs.config().crash_at_op.is_some() || self.clock.is_armed();
            match crash {
                _ if armed => {}
                Some(CrashPoint::VfsOperations(after)) => {
                    self.fs.set_crash_at(Some(self.fs.op_count() + after));
                }
                Some(CrashPoint::SchedulingPoints(after)) => {
                    let fs = self.fs.clone();
                    self.clock.arm(after, Box::new(move || fs.halt()));
                }
                None => {}
            }
            crate::flight::at_step(step, Some(format!("client {}", self.number)));
            if let Err(stop) = self.execute(step, &op) {
                lock(&self.shared).stop.get_or_insert(stop);
                return;
            }
        }
    }

    /// The shared state at a completion, with the halt recorded if it happened meanwhile.
    pub(crate) fn complete(&self) -> std::sync::MutexGuard<'_, Shared> {
        let mut shared = lock(&self.shared);
        if self.fs.is_halted() {
            shared.history.halt();
        }
        shared
    }

    pub(crate) fn note(&self, shared: &mut Shared, line: impl FnOnce() -> String) {
        if self.tracing {
            let line = format!("client {}: {}", self.number, line());
            crate::flight::trace_line(&line);
            shared.trace.push(line);
        }
    }

    pub(crate) fn error(&self, step: u64, error: &Error) -> Flow {
        // Live: a medium fault may have fired during this phase.
        let damaged = self.damage_injected || crate::medium::fired(&self.fs.counters());
        classify_error(step, error, damaged)
    }

    fn execute(&self, step: u64, op: &Op) -> Flow {
        let number = self.number;
        match op {
            Op::Write { mutations, sync } => {
                let (batch, checked) = batch_of(mutations);
                let background_before = self.db.jobs_finished();
                let token = lock(&self.shared)
                    .history
                    .invoke_write(step, number, checked, *sync);
                let (sequence, result) =
                    self.db.write_sequenced(batch, WriteOptions { sync: *sync });
                let overlapped = self.db.jobs_finished() != background_before;
                let mut shared = self.complete();
                shared
                    .history
                    .complete_write(token, result.is_ok(), sequence);
                shared.writes_overlapping_background += u64::from(overlapped);
                shared
                    .hashes
                    .extend([step, result.is_ok() as u64, sequence.unwrap_or(0)]);
                self.note(&mut shared, || {
                    format!(
                        "step {step}: write {} ops sync={sync} -> {result:?} sequence {sequence:?}",
                        mutations.len()
                    )
                });
                drop(shared);
                if let Err(error) = result {
                    self.error(step, &error)?;
                }
            }
            Op::Get(key) => {
                let invoked = lock(&self.shared).history.invoke();
                let result = self.db.get(key);
                let mut shared = self.complete();
                shared.hashes.push(step);
                self.note(&mut shared, || {
                    format!("step {step}: get {} -> {result:?}", printable(key))
                });
                match result {
                    Ok(answer) => {
                        shared
                            .hashes
                            .push(answer.as_ref().map_or(u64::MAX, |v| v.len() as u64));
                        shared
                            .history
                            .complete_read(step, number, invoked, key, answer);
                    }
                    Err(error) => {
                        drop(shared);
                        self.error(step, &error)?;
                    }
                }
            }
            Op::Scan(lower, upper) => {
                let invoked = lock(&self.shared).history.invoke();
                let iter = self.db.range(scan_bounds(lower, upper));
                let view = self.made_view(step, invoked, &iter);
                let result: Result<Entries, Error> = iter.and_then(|iter| iter.collect());
                let mut shared = self.complete();
                shared.hashes.push(step);
                self.note(&mut shared, || {
                    format!("step {step}: scan -> {:?}", result.as_ref().map(Vec::len))
                });
                match result {
                    Ok(entries) => {
                        shared.hashes.push(entries.len() as u64);
                        let shared = &mut *shared;
                        shared
                            .history
                            .complete_scan(
                                step,
                                number,
                                invoked,
                                lower.as_deref(),
                                upper.as_deref(),
                                &entries,
                                &shared.base,
                            )
                            .map_err(|v| violation(kind_name(v.kind), step, v.to_string()))?;
                        if let Some((view, jobs)) = view {
                            let (lower, upper) = scan_bounds(lower, upper);
                            let steps = scan_steps(entries);
                            shared
                                .history
                                .complete_view_scan(view, step, number, lower, upper, steps, jobs);
                        }
                    }
                    Err(error) => {
                        drop(shared);
                        self.error(step, &error)?;
                    }
                }
            }
            Op::Flush | Op::Sync | Op::Maintenance => {
                let invoked = lock(&self.shared).history.invoke();
                let result = match op {
                    Op::Flush => self.db.flush(),
                    Op::Sync => self.db.sync(),
                    _ => self.db.maintenance().map(|_| ()),
                };
                let mut shared = self.complete();
                shared.hashes.extend([step, result.is_ok() as u64]);
                self.note(&mut shared, || format!("step {step}: {op:?} -> {result:?}"));
                match result {
                    Ok(()) if !matches!(op, Op::Maintenance) => {
                        shared.history.complete_durable(step, invoked)
                    }
                    Ok(()) => {}
                    Err(error) => {
                        drop(shared);
                        self.error(step, &error)?;
                    }
                }
            }
            Op::Reopen => unreachable!("a reopen ends a phase; clients never get one"),
            Op::TakeSnapshot
            | Op::ReleaseSnapshot { .. }
            | Op::SnapshotGet { .. }
            | Op::SnapshotScan { .. }
            | Op::Iterate(_) => self.execute_view_op(step, op)?,
        }
        Ok(())
    }
}

/// The sweep's name for a checker verdict.
pub(crate) fn kind_name(kind: ViolationKind) -> &'static str {
    match kind {
        ViolationKind::ReadMismatch => "read_mismatch",
        ViolationKind::ScanMismatch => "scan_mismatch",
        ViolationKind::RecoveryNotAPrefix => "recovery_not_a_prefix",
        ViolationKind::PointReadMismatch => "point_read_mismatch",
        ViolationKind::OrderNotRealTime => "order_not_real_time",
        ViolationKind::SnapshotMismatch => "snapshot_mismatch",
        ViolationKind::BadReadSequence => "bad_read_sequence",
    }
}

impl Runner<'_> {
    pub(crate) fn run_concurrent(&mut self) -> Flow {
        self.open_and_verify(0, false)?;
        let shape = shape(self.case);
        self.stats.clients = shape.clients as u64;
        let steps = std::mem::take(&mut self.plan.steps);
        let planned = steps.len() as u64;
        let phases = phases(steps, self.case, shape.clients);
        let runtime = self
            .runtime
            .clone()
            .expect("concurrent mode runs on a simulated runtime");
        for phase in phases {
            self.stats.ops += phase.per_client.iter().map(Vec::len).sum::<usize>() as u64;
            let (last_step, reopen) = (phase.last_step, phase.reopen);
            self.run_phase(phase)?;
            let step = last_step;
            // A crash armed but not reached in the phase is dropped with it.
            if let Some(clock) = runtime.clock() {
                clock.disarm();
            }
            if self.fs.is_halted() {
                self.machine_crash(step)?;
                continue;
            }
            self.fs.set_crash_at(None);
            if self.db().poisoned().is_some() {
                self.restart(step)?;
            } else if let Some(reopen) = reopen {
                self.stats.ops += 1;
                self.note(|| format!("step {reopen}: reopen"));
                self.reopen(reopen)?;
            }
        }
        let last = planned;
        self.fs.set_crash_at(None);
        if self.case.has(crate::case::Fault::Crash) {
            self.machine_crash(last)
        } else {
            self.reopen(last)
        }
    }

    fn run_phase(&mut self, phase: Phase) -> Flow {
        let runtime = self
            .runtime
            .clone()
            .expect("concurrent mode runs on a simulated runtime");
        let shared = Arc::new(Mutex::new(Shared {
            history: History::new(),
            // Every phase ends in a recovery (a crash, a restart or a reopen), so the model
            // is the recovered state this phase starts from.
            base: self.checker.model().clone(),
            stop: None,
            hashes: Vec::new(),
            trace: Vec::new(),
            writes_overlapping_background: 0,
            snapshots: Vec::new(),
        }));
        let db = Arc::clone(self.db.as_ref().expect("an open database between phases"));
        let mut handles = Vec::new();
        for (number, ops) in phase.per_client.into_iter().enumerate() {
            if ops.is_empty() {
                continue;
            }
            let client = Client {
                number,
                db: Arc::clone(&db),
                fs: self.fs.clone(),
                clock: Arc::clone(runtime.clock().expect("a simulated runtime has a clock")),
                shared: Arc::clone(&shared),
                damage_injected: self.damaged(),
                tracing: self.tracing,
            };
            let spawned = runtime.spawn(&format!("client-{number}"), move || client.run(ops));
            handles.push(spawned.expect("a simulated task always spawns"));
        }
        drop(db);
        for handle in handles {
            if handle.join().is_err() {
                return Err(violation(
                    "panic",
                    phase.last_step,
                    "a client task panicked",
                ));
            }
        }
        let shared = Arc::into_inner(shared).expect("every client has ended");
        let shared = shared
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for hash in shared.hashes {
            self.hasher.write_u64(hash);
        }
        self.drain_events();
        self.trace.extend(shared.trace);
        self.stats.writes_overlapping_background += shared.writes_overlapping_background;
        // The snapshots still held outlive the clients, until the engine goes.
        self.held = shared.snapshots;
        if let Some(stop) = shared.stop {
            return Err(stop);
        }
        let counts = shared
            .history
            .settle(&mut self.checker, &shared.base)
            .map_err(|v| violation(kind_name(v.kind), phase.last_step, v.to_string()))?;
        self.stats.add_views(&counts);
        Ok(())
    }
}

/// Runs a concurrent case inside a simulation: the runner is the main task, the clients and
/// the engine's threads are tasks beside it.
pub fn run_concurrent_case(case: &Case, trace: bool) -> RunReport {
    let config = SimulationConfig {
        seed: stream_seed(case.seed, "schedule"),
        switch_chance: shape(case).switch_chance,
        max_steps: MAX_SCHEDULE_STEPS,
        record: trace,
        no_switch: case.no_switch.clone(),
    };
    let owned = case.clone();
    let outcome = simulate(&config, move || {
        let mut runner = Runner::new(&owned, trace);
        let flow = runner.run();
        runner.finish(flow)
    });
    match outcome {
        Ok((mut report, log)) => {
            report.stats.schedule_steps = log.steps;
            report.stats.schedule_switches = log.switches;
            report.trace_hash = report.trace_hash.rotate_left(17) ^ log.hash;
            if trace {
                report.switch_decisions = log.switches_recorded.iter().map(|s| s.0).collect();
                report.trace.push(format!(
                    "schedule: {} decisions, {} switches, hash {:016x}",
                    log.steps, log.switches, log.hash
                ));
                for (step, task) in &log.switches_recorded {
                    report
                        .trace
                        .push(format!("  decision {step}: task {task} runs"));
                }
            }
            report
        }
        Err(failure) => {
            let kind = if failure.message.contains("deadlock") {
                "deadlock"
            } else {
                "panic"
            };
            failed_run(case.seed, kind, &failure.message)
        }
    }
}
