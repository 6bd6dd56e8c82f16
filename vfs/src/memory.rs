//! Giving a flushed memtable's memory back to the operating system.
//!
//! A memtable is hundreds of thousands of small heap blocks (a skip-list node and a key and
//! value per version). When a flushed one is dropped, glibc's allocator — the one a Rust
//! program on Linux uses unless it picks another — keeps the freed blocks in its heap
//! instead of returning them: measured with shared/peerbench (1M random 116-byte writes, the
//! system allocator), the process held 116 MB after the fill and its flush, of which 68 MB
//! was freed memory that `malloc_trim` then returned. RocksDB avoids this with its arena
//! (a memtable is a few large blocks); this engine's memtable is crossbeam's skip list,
//! which allocates node by node, so it asks glibc to trim instead, once per flushed
//! memtable. A trim took 12–93 ms in that benchmark (timed once, temporarily), on the
//! thread that flushed: the background flush thread by default, outside the flush lock;
//! with `background_work` off, the writer that flushes inline pays it after its flush.
//!
//! Other allocators (mimalloc, jemalloc, musl's) return memory on their own schedule; the
//! call is glibc's only, and a no-op elsewhere. It frees nothing that is in use, so it
//! cannot change what the engine reads or writes, and a simulation's trace is unaffected.
//!
//! It lives in `strata-vfs`, the engine's one seam to the platform, because it is the only
//! other foreign call the engine makes, and the engine crate forbids `unsafe`.

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
