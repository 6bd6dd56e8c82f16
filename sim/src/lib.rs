//! `strata-sim`: the simulator and the `strata` command line.
//!
//! - [`case`]: what fixes one run (seed, size, faults, shrink masks).
//! - [`workload`]: the plan of steps drawn from the seed.
//! - [`runner`]: the run loop — engine on `SimFs`, crashes, recovery, the checker's verdict.
//! - [`liar`]: lying filesystems for the self-check.
//! - [`sweep`], [`shrink`], [`corpus`]: many seeds, minimal cases, saved cases.
//! - [`bench`], [`dbcmd`], [`inspect`]: the real-disk benchmark, shell and file dumper.
//! - [`stress`]: synced writers on the real disk that print their acknowledgements, for
//!   kill tests.
//!
//! Determinism: nothing in a run reads the clock, the OS RNG or thread timing; every random
//! choice comes from a stream derived from the seed ([`case::stream_seed`]).

pub mod bench;
pub mod case;
pub mod concurrent;
pub mod corpus;
mod damage;
pub mod dbcmd;
pub mod inspect;
pub mod liar;
pub mod runner;
pub mod scheduled_fs;
pub mod shrink;
pub mod stress;
pub mod sweep;
pub mod workload;
