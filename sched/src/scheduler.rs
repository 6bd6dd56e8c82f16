//! The seeded scheduler and [`simulate`], the entry point of a simulated run.
//!
//! [`SeededScheduler`] implements shuttle's `Scheduler` trait with a ChaCha stream of its own:
//! at every scheduling point it keeps the current task with probability
//! `1 - switch_chance` (if that task can still run), and otherwise picks uniformly among
//! the runnable tasks. A low switch chance gives long uninterrupted runs with rare, deep
//! preemptions; a high one interleaves finely; the simulator draws it per seed so a sweep
//! sees both. Every decision is folded into a hash (and, on request, recorded), so that a
//! test can assert that one seed schedules identically every time.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// How a simulation is scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Seeds the scheduler's choices.
    pub seed: u64,
    /// Probability that a scheduling point switches to a random runnable task.
    pub switch_chance: f64,
    /// A run taking more scheduling steps than this fails (a livelock guard).
    pub max_steps: usize,
    /// Record which task ran at each step (for `strata replay --trace`).
    pub record: bool,
    /// Decisions (by index) that keep the current task whatever the draw says, when it can
    /// run: how a shrink removes preemptions without moving any other draw.
    pub no_switch: BTreeSet<u64>,
}

/// What the scheduler decided during one simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleLog {
    /// Scheduling decisions made.
    pub steps: u64,
    /// Decisions that ran a different task than the one before.
    pub switches: u64,
    /// A hash of every decision (FNV-1a over the chosen task numbers).
    pub hash: u64,
    /// With `record`: each switch, as (decision, task number): the task that runs from that
    /// decision on.
    pub switches_recorded: Vec<(u64, usize)>,
}

/// Why a simulation did not finish: a panic in any task (a broken invariant), a deadlock,
/// or the step bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationFailure {
    /// The panic message (shuttle reports deadlocks and step bounds as panics too).
    pub message: String,
    /// What was scheduled until then.
    pub log: ScheduleLog,
}

/// See the module doc.
pub struct SeededScheduler {
    rng: ChaCha8Rng,
    switch_chance: f64,
    started: bool,
    record: bool,
    no_switch: BTreeSet<u64>,
    decisions: u64,
    last: Option<usize>,
    log: Arc<Mutex<ScheduleLog>>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl SeededScheduler {
    fn new(config: &SimulationConfig, log: Arc<Mutex<ScheduleLog>>) -> SeededScheduler {
        assert!(
            (0.0..=1.0).contains(&config.switch_chance),
            "a switch chance is a probability"
        );
        SeededScheduler {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            switch_chance: config.switch_chance,
            started: false,
            record: config.record,
            no_switch: config.no_switch.clone(),
            decisions: 0,
            last: None,
            log,
        }
    }
}

impl Scheduler for SeededScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        _is_yielding: bool,
    ) -> Option<TaskId> {
        // One draw decides both (its top 53 bits whether to switch, its low 32 bits which
        // task), and it is made at every decision, so that overriding one (`no_switch`)
        // moves no later draw.
        let draw = self.rng.next_u64();
        let switch = ((draw >> 11) as f64 / (1u64 << 53) as f64) < self.switch_chance;
        let index = (((draw & 0xffff_ffff) * runnable.len() as u64) >> 32) as usize;
        let decision = self.decisions;
        self.decisions += 1;
        let can_stay = current.filter(|current| runnable.iter().any(|task| task.id() == *current));
        let chosen = match can_stay {
            Some(current) if !switch || self.no_switch.contains(&decision) => current,
            _ => runnable[index].id(),
        };
        let number = usize::from(chosen);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if self.last != Some(number) {
            if self.last.is_some() {
                log.switches += 1;
                if self.record {
                    let step = log.steps;
                    log.switches_recorded.push((step, number));
                }
            }
            self.last = Some(number);
        }
        log.steps += 1;
        log.hash = (log.hash ^ number as u64).wrapping_mul(FNV_PRIME);
        Some(chosen)
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic with a non-text payload".to_string())
}

/// Runs `body` as the main task of a simulation scheduled by `config`, on this OS thread.
/// Tasks it spawns through a [`crate::Runtime::simulated`] runtime run interleaved with it
/// under the seeded scheduler. Returns the body's value and the schedule, or the failure.
pub fn simulate<F, T>(
    config: &SimulationConfig,
    body: F,
) -> Result<(T, ScheduleLog), SimulationFailure>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let log = Arc::new(Mutex::new(ScheduleLog {
        hash: FNV_OFFSET,
        ..ScheduleLog::default()
    }));
    let scheduler = SeededScheduler::new(config, Arc::clone(&log));
    let mut shuttle_config = shuttle::Config::new();
    shuttle_config.failure_persistence = shuttle::FailurePersistence::None;
    shuttle_config.max_steps = shuttle::MaxSteps::FailAfter(config.max_steps);
    shuttle_config.stack_size = 1 << 20;
    shuttle_config.silence_warnings = true;
    let body = Arc::new(Mutex::new(Some(body)));
    let result: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    let result_in = Arc::clone(&result);
    let runner = shuttle::Runner::new(scheduler, shuttle_config);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        runner.run(move || {
            let body = body
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("a simulation runs its body once");
            let value = body();
            *result_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        })
    }));
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match outcome {
        Ok(_) => {
            let value = result
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("a finished simulation left its value");
            Ok((value, log))
        }
        Err(payload) => Err(SimulationFailure {
            message: panic_message(payload.as_ref()),
            log,
        }),
    }
}
