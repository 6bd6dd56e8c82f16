//! The flight recorder: what a run was doing when it panicked.
//!
//! A panic unwinds the runner, and its trace and step counter with it. So the runner also
//! tells this recorder (a thread-local: a case runs on one OS thread, its shuttle tasks
//! included) the step and task it is at and, with `--trace`, every trace line; and a panic
//! hook records the panic's message and source location here. The report of a panicked run
//! then says where (file:line), when (step, task) and, with `--trace`, what led up to it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// What is known of a run in progress.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    /// The planned step being executed.
    pub(crate) step: Option<u64>,
    /// The task executing it (concurrent mode).
    pub(crate) task: Option<String>,
    /// The trace so far, when tracing.
    pub(crate) trace: Option<Vec<String>>,
    /// The last panic: message and location.
    pub(crate) panic: Option<(String, String)>,
}

thread_local! {
    static FLIGHT: RefCell<Flight> = RefCell::new(Flight::default());
}

static QUIET: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Starts recording a run (and installs the panic hook, once per process).
pub(crate) fn begin(tracing: bool) {
    install_panic_hook();
    FLIGHT.with(|flight| {
        *flight.borrow_mut() = Flight {
            trace: tracing.then(Vec::new),
            ..Flight::default()
        }
    });
}

/// The run is at `step`, in `task`.
pub(crate) fn at_step(step: u64, task: Option<String>) {
    FLIGHT.with(|flight| {
        let mut flight = flight.borrow_mut();
        flight.step = Some(step);
        flight.task = task;
    });
}

/// A trace line (kept only when tracing).
pub(crate) fn trace_line(line: &str) {
    FLIGHT.with(|flight| {
        if let Some(trace) = flight.borrow_mut().trace.as_mut() {
            trace.push(line.to_string());
        }
    });
}

/// Ends the recording and returns what it holds.
pub(crate) fn take() -> Flight {
    FLIGHT.with(|flight| std::mem::take(&mut *flight.borrow_mut()))
}

/// Whether panics print the usual message (a sweep silences them: each is reported with its
/// seed instead).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A panic's message: its payload when that is a string, as `panic!` makes it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = panic_message(info.payload());
            let location = info
                .location()
                .map_or("an unknown location".to_string(), |at| {
                    format!("{}:{}:{}", at.file(), at.line(), at.column())
                });
            // `try_with`: a panic while the thread-local is being destroyed records nothing.
            let _ = FLIGHT.try_with(|flight| {
                if let Ok(mut flight) = flight.try_borrow_mut() {
                    flight.panic.get_or_insert((message, location));
                }
            });
            if !QUIET.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}
