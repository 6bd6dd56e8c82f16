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

/// `println!` for the command line: when stdout is closed early (piped into `head`), the
/// process ends quietly with status 0 instead of panicking; any other failure to write
/// ends it with a message and status 3 (a runtime failure).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)+) => {
        $crate::output::line(format_args!($($arg)+))
    };
}

pub mod output {
    //! Standard output for the command line (see [`crate::outln`]).
    use std::io::{ErrorKind, Write};

    /// Writes one line to stdout; on a closed pipe exits 0, on another error exits 3.
    pub fn line(args: std::fmt::Arguments<'_>) {
        let mut out = std::io::stdout().lock();
        if let Err(error) = writeln!(out, "{args}") {
            if error.kind() == ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("strata: cannot write to standard output: {error}");
            std::process::exit(3);
        }
    }
}

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
