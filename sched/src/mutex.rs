//! A mutex that is `std::sync::Mutex` in production and a shuttle mutex (a scheduling point
//! on every lock) under simulation. Poisoning is not surfaced: a panic while holding a lock
//! is a broken invariant the engine reports by other means (it poisons the database), and
//! the data is still the best there is.

use crate::clock::SimClock;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// See the module doc.
pub struct Mutex<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Os(std::sync::Mutex<T>),
    Simulated(shuttle::sync::Mutex<T>, Arc<SimClock>),
}

/// A held [`Mutex`].
pub struct MutexGuard<'a, T> {
    pub(crate) mutex: &'a Mutex<T>,
    pub(crate) inner: Option<GuardInner<'a, T>>,
}

pub(crate) enum GuardInner<'a, T> {
    Os(std::sync::MutexGuard<'a, T>),
    Simulated(shuttle::sync::MutexGuard<'a, T>),
}

impl<T> Mutex<T> {
    pub(crate) fn os(value: T) -> Mutex<T> {
        Mutex {
            inner: Inner::Os(std::sync::Mutex::new(value)),
        }
    }

    pub(crate) fn simulated(value: T, clock: Arc<SimClock>) -> Mutex<T> {
        Mutex {
            inner: Inner::Simulated(shuttle::sync::Mutex::new(value), clock),
        }
    }

    /// Locks, waiting as long as it takes.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            inner: Some(self.lock_inner()),
        }
    }

    pub(crate) fn lock_inner(&self) -> GuardInner<'_, T> {
        match &self.inner {
            Inner::Os(mutex) => GuardInner::Os(
                mutex
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            ),
            Inner::Simulated(mutex, clock) => {
                clock.point();
                GuardInner::Simulated(
                    mutex
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()),
                )
            }
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.inner.as_ref() {
            Some(GuardInner::Os(guard)) => guard,
            Some(GuardInner::Simulated(guard)) => guard,
            None => unreachable!("a guard holds its lock except inside a condition-variable wait"),
        }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self.inner.as_mut() {
            Some(GuardInner::Os(guard)) => guard,
            Some(GuardInner::Simulated(guard)) => guard,
            None => unreachable!("a guard holds its lock except inside a condition-variable wait"),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mutex { .. }")
    }
}
