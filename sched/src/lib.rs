//! `strata-sched`: the scheduling seam. Everything in the engine that depends on threads or
//! time goes through a [`Runtime`]: spawning a thread, a mutex, a condition variable (with
//! or without a timeout), a sleep, the clock, and a scheduling point. It sits beside
//! `strata-vfs` below the engine, the way LevelDB's `Env` puts files, threads and the clock
//! behind one seam.
//!
//! Two runtimes, one engine:
//!
//! - [`Runtime::os`]: OS threads, `std::sync`, `std::time::Instant`. Production.
//! - [`Runtime::simulated`]: inside [`simulate`], every task is a `shuttle` task (a coroutine
//!   on the calling OS thread); exactly one runs at a time, and a seeded scheduler
//!   ([`scheduler::SeededScheduler`]) picks the next one at every synchronisation point and at
//!   every [`Runtime::yield_point`] (the simulator calls it before each VFS operation). Time is
//!   simulated: a clock that moves only when a task sleeps or a timed wait times out.
//!
//! Why `shuttle` rather than a scheduler of our own: it already implements mutexes, condition
//! variables, join handles and deadlock detection over cheap coroutine switches (a stack swap,
//! where handing a baton between OS threads is a futex wake and wait), it is the tool
//! Amazon's ShardStore uses for the same job, and its `Scheduler` trait lets us own the one
//! part that must be ours: the seeded choice. What shuttle does not model is time (its timed
//! waits never time out and `sleep` is a context switch), so the timed waits and the clock are
//! ours, in [`condvar`] and `clock`.
//!
//! Assumptions, and why they hold:
//! - Code under simulation never blocks on a lock that is not one of ours while another task
//!   could hold it across a scheduling point (a real lock held across a switch would hang the
//!   OS thread). The engine's remaining `std` locks (statistics stripes, the
//!   block cache's shards) are held only for a few instructions with no scheduling point
//!   inside.
//! - Primitives are created from the runtime of the database that uses them, so a simulated
//!   mutex is only ever locked inside its simulation.

#![warn(missing_docs)]

mod clock;
pub mod condvar;
mod mutex;
pub mod scheduler;
mod thread;

pub use clock::{PointAction, SimClock};
pub use condvar::Condvar;
pub use mutex::{Mutex, MutexGuard};
pub use scheduler::{simulate, ScheduleLog, SimulationConfig, SimulationFailure};
pub use thread::JoinHandle;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where threads, locks and time come from. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Os { epoch: Instant },
    Simulated(Arc<SimClock>),
}

impl Runtime {
    /// OS threads, `std::sync` and the real monotonic clock.
    pub fn os() -> Runtime {
        Runtime {
            kind: Kind::Os {
                epoch: Instant::now(),
            },
        }
    }

    /// The simulated runtime of the enclosing [`simulate`] call, with a clock of its own
    /// (whose timed-wait choices come from `seed`). Its primitives may be used only inside
    /// that simulation.
    pub fn simulated(seed: u64) -> Runtime {
        Runtime {
            kind: Kind::Simulated(Arc::new(SimClock::new(seed))),
        }
    }

    /// Whether this is a simulated runtime.
    pub fn is_simulated(&self) -> bool {
        matches!(self.kind, Kind::Simulated(_))
    }

    /// A new mutex protecting `value`.
    pub fn mutex<T>(&self, value: T) -> Mutex<T> {
        match &self.kind {
            Kind::Os { .. } => Mutex::os(value),
            Kind::Simulated(clock) => Mutex::simulated(value, Arc::clone(clock)),
        }
    }

    /// A new condition variable.
    pub fn condvar(&self) -> Condvar {
        match &self.kind {
            Kind::Os { .. } => Condvar::os(),
            Kind::Simulated(clock) => Condvar::simulated(Arc::clone(clock)),
        }
    }

    /// Spawns a thread (a simulated task under simulation).
    pub fn spawn<F, T>(&self, name: &str, body: F) -> std::io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match &self.kind {
            Kind::Os { .. } => thread::spawn_os(name, body),
            Kind::Simulated(_) => thread::spawn_simulated(name, body),
        }
    }

    /// Sleeps for `duration` (simulated: a scheduling point, then the clock moves on).
    pub fn sleep(&self, duration: Duration) {
        match &self.kind {
            Kind::Os { .. } => std::thread::sleep(duration),
            Kind::Simulated(clock) => {
                let wake = clock.now() + duration;
                clock.point();
                shuttle::thread::yield_now();
                clock.advance_to(wake);
            }
        }
    }

    /// Time since the runtime was created: monotonic, and simulated under simulation.
    pub fn now(&self) -> Duration {
        match &self.kind {
            Kind::Os { epoch } => epoch.elapsed(),
            Kind::Simulated(clock) => clock.now(),
        }
    }

    /// The simulation's clock and scheduling-point counter (`None` in production).
    pub fn clock(&self) -> Option<&Arc<SimClock>> {
        match &self.kind {
            Kind::Os { .. } => None,
            Kind::Simulated(clock) => Some(clock),
        }
    }

    /// The number of the running simulated task (`None` in production).
    pub fn current_task(&self) -> Option<usize> {
        match &self.kind {
            Kind::Os { .. } => None,
            Kind::Simulated(_) => shuttle::current::get_current_task().map(usize::from),
        }
    }

    /// A point where the scheduler may run another task (nothing in production). The
    /// simulator calls it before every VFS operation.
    pub fn yield_point(&self) {
        if let Kind::Simulated(clock) = &self.kind {
            clock.point();
            shuttle::thread::yield_now();
        }
    }
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime::os()
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Os { .. } => f.write_str("Runtime::Os"),
            Kind::Simulated(clock) => write!(f, "Runtime::Simulated(now={:?})", clock.now()),
        }
    }
}

/// Two runtimes are equal when they are the same kind (options compare equal whatever
/// clock their runtime started at).
impl PartialEq for Runtime {
    fn eq(&self, other: &Runtime) -> bool {
        self.is_simulated() == other.is_simulated()
    }
}

impl Eq for Runtime {}

#[cfg(test)]
mod tests;
