//! `strata stress --dir D`: writes from several threads on the real disk (synced, or with
//! `--unsynced` not), each acknowledged write printed as it returns. It exists to be killed:
//! `sim/tests/kill.rs` SIGKILLs it mid-run, reopens the database and checks that every
//! acknowledged write survived — synced or not, since a process kill is not a power cut and
//! the engine hands every commit group to the OS before acknowledging it — with the engine's
//! real threads (group commit, background flush and compaction) running.
//!
//! Thread `t`'s operation `n` is fixed by `(t, n)` alone ([`operation`]), and a thread
//! issues its next write only after the last returned, so a reader of the printed
//! acknowledgements knows each thread's state to within the one write in flight.
//!
//! Output: one line `T N` per acknowledged operation `N` of thread `T`.

use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use strata_engine::{Db, Options, WriteOptions};
use strata_vfs::RealFs;

#[derive(Args, Debug)]
pub struct StressArgs {
    /// The database directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// Operations per thread (0: until killed).
    #[arg(long, default_value_t = 0)]
    ops: u64,
    /// Prefix of every key, so that successive runs on one database write apart.
    #[arg(long, default_value = "run")]
    prefix: String,
    /// Write with `sync = false`.
    #[arg(long)]
    unsynced: bool,
    /// The engine's `wal_buffer_size` (default: the engine's default, 0). A larger value
    /// keeps acknowledged writes in the process, where a kill loses them.
    #[arg(long)]
    wal_buffer_size: Option<usize>,
}

/// Keys each thread cycles through.
pub const KEYS_PER_THREAD: u64 = 40;

/// Options that keep flushes and compactions running constantly in the background.
pub fn stress_options() -> Options {
    Options {
        memtable_size: 32 << 10,
        block_size: 1024,
        wal_preallocate: 64 << 10,
        target_file_size: 16 << 10,
        level_base_bytes: 64 << 10,
        level0_compaction_trigger: 2,
        level0_slowdown_trigger: 4,
        level0_stop_trigger: 8,
        ..Options::default()
    }
}

/// What operation `n` of thread `thread` does: the key, and the value (`None`: a delete).
pub fn operation(prefix: &str, thread: u32, n: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = format!("{prefix}/t{thread:02}/k{:03}", n % KEYS_PER_THREAD).into_bytes();
    let value = (n % 7 != 3).then(|| {
        let mut value = format!("{thread}:{n}:").into_bytes();
        value.resize(100, b'a' + (n % 26) as u8);
        value
    });
    (key, value)
}

/// Runs the writers; returns when every thread has done `--ops` (never, with 0).
pub fn run(args: StressArgs) -> Result<ExitCode, crate::cli::CliError> {
    let mut options = stress_options();
    if let Some(size) = args.wal_buffer_size {
        options.wal_buffer_size = size;
    }
    let db = Db::open(Arc::new(RealFs::new()), &args.dir, options)
        .map_err(|e| format!("open {}: {e}", args.dir.display()))?;
    let write_options = if args.unsynced {
        WriteOptions::NO_SYNC
    } else {
        WriteOptions::SYNC
    };
    let db = Arc::new(db);
    let handles: Vec<_> = (0..args.threads)
        .map(|thread| {
            let db = Arc::clone(&db);
            let prefix = args.prefix.clone();
            let ops = args.ops;
            std::thread::spawn(move || -> Result<(), String> {
                let mut n = 0u64;
                while ops == 0 || n < ops {
                    let (key, value) = operation(&prefix, thread, n);
                    match value {
                        Some(value) => db.put(&key, &value, write_options),
                        None => db.delete(&key, write_options),
                    }
                    .map_err(|e| format!("thread {thread} operation {n}: {e}"))?;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{thread} {n}")
                        .and_then(|()| out.flush())
                        .map_err(|e| format!("stdout: {e}"))?;
                    n += 1;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| "a writer thread panicked".to_string())??;
    }
    let stats = db.stats();
    eprintln!(
        "{} flushes, {} compactions, {} write slowdowns, {} write stops",
        stats.flushes, stats.compactions, stats.write_slowdowns, stats.write_stops
    );
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().map_err(|e| format!("close: {e}"))?,
        Err(_) => return Err("the database is still shared after the writers ended".into()),
    }
    Ok(ExitCode::SUCCESS)
}
