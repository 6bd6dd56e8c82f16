//! Giving a flushed memtable's memory back to the operating system, and keeping the
//! simulator's short-lived memory off transparent huge pages.
//!
//! When a flushed memtable is dropped, glibc's allocator — the one a Rust program on Linux
//! uses unless it picks another — keeps the freed blocks in its heap instead of returning
//! them: measured with shared/peerbench (1M random 116-byte writes, the system allocator),
//! when a memtable was hundreds of thousands of small blocks (a skip-list node and a key and
//! value per version), the process held 116 MB after the fill and its flush, of which 68 MB
//! was freed memory that `malloc_trim` then returned. The memtable is now an arena of
//! chunks of up to 1 MiB (`strata-skiplist`), as RocksDB's is; glibc serves chunks of that
//! size from its heap too once its mmap threshold has risen past them (glibc's documented
//! rule: the threshold rises to the size of each mapped block freed), so the engine still
//! asks glibc to trim, once per flushed memtable. What the trim returns with the arena was
//! not measured again; the figures above are of the node-by-node memtable. A trim took 12–93 ms in that benchmark (timed once, temporarily), on the
//! thread that flushed: the background flush thread by default, outside the flush lock;
//! with `background_work` off, the writer that flushes inline pays it after its flush.
//!
//! Other allocators (mimalloc, jemalloc, musl's) return memory on their own schedule; the
//! call is glibc's only, and a no-op elsewhere. It frees nothing that is in use, so it
//! cannot change what the engine reads or writes, and a simulation's trace is unaffected.
//!
//! The simulator's sweep allocates and frees a seed's worth of memory hundreds of times a
//! second: memtables, SimFs file images, 33–73 KB values. mimalloc, its allocator, asks for
//! transparent huge pages on the memory it maps (`MADV_HUGEPAGE`, which the kernel's default
//! `madvise` mode honours), so each page it takes back after freeing it is a 2 MiB page that
//! the kernel zeroes whole on the first touch. In `perf` profiles of a one-thread sweep that
//! zeroing (`clear_page_erms`) took 15–18% of the samples. [`disable_transparent_huge_pages`]
//! turns THP off for the process (`prctl(PR_SET_THP_DISABLE)`), which the simulator's
//! commands do first. Measured on 2 cores, five interleaved pairs of `strata sweep --seeds
//! 0..1000 --clients 1`: median CPU time 9.00 s against 9.49 s, each pair faster, the
//! system time about halved; `--mode sequential`: no difference (10.03 s against 9.96 s).
//!
//! They live in `strata-vfs`, the engine's one seam to the platform, because they are the only
//! other foreign calls the workspace makes, and the other crates forbid `unsafe`.

#![allow(unsafe_code)]

/// Returns the allocator's freed pages to the operating system (glibc: `malloc_trim`).
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            /// glibc: releases free memory at the top of each heap and, since 2.8, every
            /// whole free page inside them; returns 1 if it released any.
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: `malloc_trim` takes no pointer, touches only memory that is free, and is
        // thread-safe (it takes each arena's lock).
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Stops the kernel from backing this process's memory with transparent huge pages (Linux:
/// `prctl(PR_SET_THP_DISABLE)`, inherited by child processes); a no-op elsewhere. Returns
/// whether THP is now off. It changes how fast memory is first touched, never its contents.
pub fn disable_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            /// Linux: operations on the calling process; variadic, the arguments after the
            /// first are `unsigned long`s.
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
        // SAFETY: PR_SET_THP_DISABLE takes four `unsigned long`s (1 to disable, then zeros),
        // passes no pointer, and only sets a flag of the calling process.
        let result = unsafe {
            prctl(
                PR_SET_THP_DISABLE,
                1 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
            )
        };
        result == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn transparent_huge_pages_are_off_after_the_call() {
        assert!(disable_transparent_huge_pages());
        // The kernel reports the flag back: PR_GET_THP_DISABLE is 1 once it is set.
        let status = std::fs::read_to_string("/proc/self/status").expect("Linux has /proc");
        let line = status.lines().find(|line| line.starts_with("THP_enabled:"));
        if let Some(line) = line {
            assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
        }
    }
}
