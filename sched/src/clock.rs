//! Simulated time, and the count of scheduling points. The clock moves only when a task
//! sleeps or a timed wait times out, and then to that task's deadline: a run's timing is a
//! function of its seed, never of how fast the machine running the simulation is. Every
//! scheduling point that passes through this crate (a lock, a wait, a notification, a sleep,
//! a `yield_point`) is counted, and one action can be armed to run at a given point: that is
//! how the simulator cuts the power between two synchronisation steps rather than only at a
//! VFS call.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How many scheduling rounds a simulated timed wait gives the tasks that could notify it
/// before it times out, at most. Each round is one scheduling point for every task the
/// scheduler picks, so a few rounds let a waker that is a few steps away arrive in time.
pub const MAX_TIMED_WAIT_ROUNDS: u64 = 8;

/// The clock of one simulation and the seeded choices of its timed waits (a stream of its
/// own, so that changing how often the engine waits does not move the workload's draws).
pub struct SimClock {
    nanos: AtomicU64,
    /// A plain lock: held for one draw, never across a scheduling point.
    rng: Mutex<ChaCha8Rng>,
    points: AtomicU64,
    /// The armed action and the point it runs at (a plain lock, as above).
    armed: Mutex<Option<(u64, PointAction)>>,
}

/// What runs at an armed scheduling point.
pub type PointAction = Box<dyn FnOnce() + Send>;

impl SimClock {
    /// A clock at zero whose choices come from `seed`.
    pub fn new(seed: u64) -> SimClock {
        SimClock {
            nanos: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            points: AtomicU64::new(0),
            armed: Mutex::new(None),
        }
    }

    /// Counts one scheduling point, running the armed action if this is its point.
    pub fn point(&self) {
        let point = self.points.fetch_add(1, Ordering::AcqRel) + 1;
        let action = {
            let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
            match armed.as_ref() {
                Some((at, _)) if *at <= point => armed.take().map(|(_, action)| action),
                _ => None,
            }
        };
        if let Some(action) = action {
            action();
        }
    }

    /// Scheduling points counted so far.
    pub fn points(&self) -> u64 {
        self.points.load(Ordering::Acquire)
    }

    /// Arms `action` to run `after` scheduling points from now (replacing any armed one).
    pub fn arm(&self, after: u64, action: PointAction) {
        let at = self.points() + after.max(1);
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, action));
    }

    /// Whether an action is armed.
    pub fn is_armed(&self) -> bool {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Disarms the armed action, if any.
    pub fn disarm(&self) {
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The simulated time.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    /// Moves the clock to `time` if it is later (time never goes back).
    pub fn advance_to(&self, time: Duration) {
        let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(nanos, Ordering::AcqRel);
    }

    /// How many rounds the next timed wait lasts before it times out (0 to
    /// `MAX_TIMED_WAIT_ROUNDS`).
    pub fn timed_wait_rounds(&self) -> u64 {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        rng.next_u64() % (MAX_TIMED_WAIT_ROUNDS + 1)
    }
}
