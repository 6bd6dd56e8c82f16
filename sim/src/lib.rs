//! `strata-sim`: the simulator and the `strata` command line.
//!
//! - [`case`]: what fixes one run (seed, size, faults, shrink masks).
//! - [`workload`]: the plan of steps drawn from the seed.
//! - [`runner`]: the run loop — engine on `SimFs`, crashes, recovery, the checker's verdict.
//! - [`liar`]: lying filesystems for the self-check.
//! - [`sweep`], [`shrink`], [`corpus`]: many seeds, minimal cases, saved cases.
//! - [`summary`]: what a sweep ran and found, as `--json` prints it; [`coverage`]: the
//!   engine's coverage marks it counted, and `--until-covered`.
//! - [`fleet`], [`report`]: sweeps on a batch system (the shard from Kubernetes or Slurm,
//!   continuous sweeps, clean stops) and merging the shards' summaries.
//! - [`bench`](mod@bench), [`dbcmd`], [`inspect`]: the real-disk benchmark, shell and file dumper.
//! - [`stress`]: synced writers on the real disk that print their acknowledgements, for
//!   kill tests.
//!
//! Determinism: nothing in a run reads the clock, the OS RNG or thread timing; every random
//! choice comes from a stream derived from the seed ([`case::stream_seed`]).

// Not `missing_docs`: this is the binary's library, not a public API; the engine, vfs,
// sched and checker crates warn on undocumented public items.

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

pub mod cli {
    //! Why a command failed, and the exit status each reason gets (documented in the
    //! README): 0 success, 1 violations or corruption found, 2 bad arguments, 3 a failure
    //! at run time (I/O, a database in use, a poisoned engine).

    use std::fmt;

    /// A command's failure.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum CliError {
        /// The arguments are wrong (exit 2): a bad option, a path that is not what it must be.
        Usage(String),
        /// Corruption was found where the command looked (exit 1).
        Corruption(String),
        /// The command could not do its work (exit 3).
        Failure(String),
    }

    impl CliError {
        /// The process exit status for this failure.
        pub fn exit_code(&self) -> u8 {
            match self {
                CliError::Corruption(_) => 1,
                CliError::Usage(_) => 2,
                CliError::Failure(_) => 3,
            }
        }

        /// An engine error, classified: corruption (1), a bad argument (2), or a failure at
        /// run time (3). `context` says what was being done.
        pub fn engine(context: impl fmt::Display, error: strata_engine::Error) -> CliError {
            let text = format!("{context}: {error}");
            match error {
                strata_engine::Error::Corruption { .. } => CliError::Corruption(text),
                strata_engine::Error::InvalidArgument(_)
                | strata_engine::Error::NoDatabase { .. }
                | strata_engine::Error::NotADatabase { .. }
                | strata_engine::Error::AlreadyExists { .. } => CliError::Usage(text),
                _ => CliError::Failure(text),
            }
        }
    }

    /// Untyped errors are failures at run time; bad arguments are marked where found.
    impl From<String> for CliError {
        fn from(text: String) -> CliError {
            CliError::Failure(text)
        }
    }

    impl From<&str> for CliError {
        fn from(text: &str) -> CliError {
            CliError::Failure(text.to_string())
        }
    }

    impl fmt::Display for CliError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CliError::Usage(text) | CliError::Corruption(text) | CliError::Failure(text) => {
                    f.write_str(text)
                }
            }
        }
    }
}

pub mod bench;
pub mod case;
pub mod concurrent;
pub mod corpus;
pub mod coverage;
mod damage;
pub mod dbcmd;
pub mod explore;
pub mod explore_command;
pub mod fleet;
pub mod flight;
pub mod inspect;
pub mod latency;
pub mod liar;
pub mod medium;
pub mod report;
pub mod runner;
pub mod scheduled_fs;
pub mod shrink;
pub mod stress;
pub mod summary;
pub mod summary_text;
pub mod sweep;
mod views;
pub mod workload;
