//! A condition variable: `std::sync::Condvar` in production, a shuttle condition variable
//! plus simulated timeouts under simulation.
//!
//! Shuttle's own timed waits never time out, so a simulated [`Condvar::wait_timeout`] is ours:
//! it releases the lock and gives the other tasks a seeded number of scheduling rounds (0 to
//! `clock::MAX_TIMED_WAIT_ROUNDS`) to notify it; a notification in that window ends
//! the wait early, otherwise the clock moves to the deadline and the wait reports a timeout.
//! Both are behaviours a real timed wait can show (a notification arrives in time, or the
//! other threads were too slow), and a timed wait can never deadlock the simulation, just as
//! it cannot on the OS. Untimed waits block in shuttle until notified; if every task is
//! blocked that way, shuttle reports a deadlock, which is a real bug (a lost wakeup).
//!
//! On the OS a notification with nobody waiting returns without a syscall: `std`'s condition
//! variable makes a `futex` wake call on every notify, and the engine notifies after every
//! commit group and background job, almost always with no one waiting (a single writer; the
//! simulator's sequential mode, where those calls were about 3% of its time). Waiters count
//! themselves in while they hold the mutex; a notifier that changed the waited-for state
//! under that mutex (as a condition variable requires anyway) then sees the count.

use crate::clock::SimClock;
use crate::mutex::{GuardInner, MutexGuard};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// See the module doc.
pub struct Condvar {
    inner: Inner,
}

enum Inner {
    Os {
        condvar: std::sync::Condvar,
        /// Threads inside `wait` or `wait_timeout` (counted in under the mutex).
        waiters: AtomicUsize,
    },
    Simulated {
        condvar: shuttle::sync::Condvar,
        clock: Arc<SimClock>,
        /// Bumped by every notification, so that a timed wait polling its window sees one.
        notifications: AtomicU64,
    },
}

const MIXED: &str = "a condition variable and its mutex come from the same runtime";

impl Condvar {
    pub(crate) fn os() -> Condvar {
        Condvar {
            inner: Inner::Os {
                condvar: std::sync::Condvar::new(),
                waiters: AtomicUsize::new(0),
            },
        }
    }

    pub(crate) fn simulated(clock: Arc<SimClock>) -> Condvar {
        Condvar {
            inner: Inner::Simulated {
                condvar: shuttle::sync::Condvar::new(),
                clock,
                notifications: AtomicU64::new(0),
            },
        }
    }

    /// Releases the lock, waits for a notification (or a spurious wakeup) and locks again.
    pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let held = guard.inner.take().expect("a guard holds its lock");
        guard.inner = Some(match (held, &self.inner) {
            (GuardInner::Os(held), Inner::Os { condvar, waiters }) => {
                waiters.fetch_add(1, Ordering::SeqCst);
                let held = condvar
                    .wait(held)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                waiters.fetch_sub(1, Ordering::SeqCst);
                GuardInner::Os(held)
            }
            (GuardInner::Simulated(held), Inner::Simulated { condvar, clock, .. }) => {
                clock.point();
                GuardInner::Simulated(
                    condvar
                        .wait(held)
                        .unwrap_or_else(|poisoned| poisoned.into_inner()),
                )
            }
            _ => panic!("{MIXED}"),
        });
        guard
    }

    /// Like [`Condvar::wait`], but gives up after `timeout`; the flag says whether it did.
    pub fn wait_timeout<'a, T>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        match &self.inner {
            Inner::Os { condvar, waiters } => {
                let Some(GuardInner::Os(held)) = guard.inner.take() else {
                    panic!("{MIXED}");
                };
                waiters.fetch_add(1, Ordering::SeqCst);
                let (held, result) = condvar
                    .wait_timeout(held, timeout)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                waiters.fetch_sub(1, Ordering::SeqCst);
                guard.inner = Some(GuardInner::Os(held));
                (guard, result.timed_out())
            }
            Inner::Simulated {
                clock,
                notifications,
                ..
            } => {
                assert!(
                    matches!(guard.inner, Some(GuardInner::Simulated(_))),
                    "{MIXED}"
                );
                let seen = notifications.load(Ordering::Acquire);
                let deadline = clock.now() + timeout;
                for _ in 0..clock.timed_wait_rounds() {
                    drop(guard.inner.take());
                    shuttle::thread::yield_now();
                    guard.inner = Some(guard.mutex.lock_inner());
                    if notifications.load(Ordering::Acquire) != seen {
                        return (guard, false);
                    }
                }
                clock.advance_to(deadline);
                (guard, true)
            }
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.notify(false);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify(true);
    }

    fn notify(&self, all: bool) {
        match &self.inner {
            Inner::Os { waiters, .. } if waiters.load(Ordering::SeqCst) == 0 => {}
            Inner::Os { condvar, .. } if all => condvar.notify_all(),
            Inner::Os { condvar, .. } => condvar.notify_one(),
            Inner::Simulated {
                condvar,
                notifications,
                clock,
            } => {
                clock.point();
                notifications.fetch_add(1, Ordering::AcqRel);
                if all {
                    condvar.notify_all();
                } else {
                    condvar.notify_one();
                }
            }
        }
    }
}

impl std::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Condvar { .. }")
    }
}
