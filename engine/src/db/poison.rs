//! Fail-stop: after a write-path error whose effect on disk is unknown the database refuses
//! writes until it is reopened (retrying an fsync is the fsyncgate bug), and a panic inside
//! the engine (a broken invariant) poisons it rather than leave writers waiting forever.

use super::{lock, DbInner};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use strata_sched::{Mutex, Runtime};

/// Why the database refuses writes, if it does. The flag spares the hot path a lock.
pub(super) struct Poison {
    pub(super) poisoned: AtomicBool,
    pub(super) reason: Mutex<Option<String>>,
}

impl Poison {
    pub(super) fn new(runtime: &Runtime) -> Poison {
        Poison {
            poisoned: AtomicBool::new(false),
            reason: runtime.mutex(None),
        }
    }

    /// Poisons the database; the first reason stays.
    pub(super) fn set(&self, reason: String) {
        let mut held = lock(&self.reason);
        held.get_or_insert(reason);
        // Under the lock: whoever sees the flag finds the reason.
        self.poisoned.store(true, Ordering::Release);
    }

    /// The reason, if poisoned.
    pub(super) fn reason(&self) -> Option<String> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.reason).clone()
    }

    /// `Err(Poisoned)` if poisoned.
    pub(super) fn check(&self) -> Result<()> {
        match self.reason() {
            Some(reason) => Err(Error::Poisoned { reason }),
            None => Ok(()),
        }
    }
}

/// Poisons the database if the thread holding it panics (a broken invariant): without it a
/// panicking commit leader would leave its group, and every later writer, waiting forever.
pub(super) struct PanicGuard<'a> {
    pub(super) inner: &'a DbInner,
    /// The tickets of the commit group being led, if any.
    pub(super) group: Option<std::ops::RangeInclusive<u64>>,
    pub(super) armed: bool,
}

impl<'a> PanicGuard<'a> {
    pub(super) fn new(
        inner: &'a DbInner,
        group: Option<std::ops::RangeInclusive<u64>>,
    ) -> PanicGuard<'a> {
        PanicGuard {
            inner,
            group,
            armed: true,
        }
    }

    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if !self.armed || !std::thread::panicking() {
            return;
        }
        let reason = "a thread panicked inside the engine (a broken invariant)".to_string();
        self.inner.poison.set(reason.clone());
        if let Some(group) = self.group.clone() {
            let mut queue = lock(&self.inner.commit.queue);
            queue.leader_active = false;
            queue.done_below = queue.done_below.max(group.end() + 1);
            for ticket in group {
                queue.failures.insert(
                    ticket,
                    Error::Poisoned {
                        reason: reason.clone(),
                    },
                );
            }
            self.inner.commit.done.notify_all();
        }
        let _background = lock(&self.inner.jobs.state);
        self.inner.jobs.wake.notify_all();
    }
}
