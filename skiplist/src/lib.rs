//! Strata's memtable index: an arena skip list. One writer at a time inserts (the engine's
//! commit leader, under its write lock); any number of readers search and walk it without
//! locks; nothing is ever removed, and all of its memory is freed at once when it is dropped.
//!
//! Why not crossbeam's `SkipMap`, which the memtable used before: that allocates a node and
//! the memtable allocated the key and value, two heap blocks per version. In shared/peerbench
//! (the system allocator, as an application gets it) `malloc` and `free` were 43% of the
//! writer thread's samples in a 10M-key sequential load, and the flush thread freeing a
//! memtable's blocks contended with the writer for glibc's arena lock. Here a version is one
//! bump of a pointer, and a flushed memtable is a few dozen blocks of up to 1 MiB.
//!
//! This is the one crate below the engine besides `strata-vfs` that allows `unsafe`: in
//! [`arena`] (raw blocks) and in `list` (nodes in them), each with its safety argument.
//! Every other crate of the workspace forbids it.

pub mod arena;
mod list;

pub use list::{Comparator, Entry, Position, SkipList, MAX_HEIGHT};
