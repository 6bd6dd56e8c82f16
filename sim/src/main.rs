//! `strata`: the command line of the Strata storage engine.
//!
//! Today it runs benchmarks on the real disk (`strata bench`) and pokes a real database by
//! hand (`strata db`). Bad arguments get a one-line error and exit status 2.

mod bench;
mod dbcmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Strata: an LSM-tree storage engine born crash-tested"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// db_bench-style workloads on the real disk.
    Bench(bench::BenchArgs),
    /// Poke a real database by hand: get, put, delete, scan.
    Db(dbcmd::DbArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Db(args) => dbcmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("strata: {message}");
            ExitCode::from(2)
        }
    }
}
