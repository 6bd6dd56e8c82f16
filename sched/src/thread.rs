//! Threads: OS threads in production, shuttle tasks under simulation.

/// A spawned thread's handle.
pub struct JoinHandle<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Os(std::thread::JoinHandle<T>),
    Simulated(shuttle::thread::JoinHandle<T>),
}

/// Stack of a simulated task: the engine's compaction and recovery paths need more than
/// shuttle's 60 KiB default.
const SIMULATED_STACK: usize = 1 << 20;

pub(crate) fn spawn_os<F, T>(name: &str, body: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map(|handle| JoinHandle {
            inner: Inner::Os(handle),
        })
}

pub(crate) fn spawn_simulated<F, T>(name: &str, body: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    shuttle::thread::Builder::new()
        .name(name.to_string())
        .stack_size(SIMULATED_STACK)
        .spawn(body)
        .map(|handle| JoinHandle {
            inner: Inner::Simulated(handle),
        })
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to end; `Err` if it panicked.
    pub fn join(self) -> std::thread::Result<T> {
        match self.inner {
            Inner::Os(handle) => handle.join(),
            Inner::Simulated(handle) => handle.join(),
        }
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinHandle { .. }")
    }
}
