//! `strata db --dir D get|put|delete|scan`: a small shell over a real database.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use strata_engine::{Db, Options, WriteOptions};
use strata_vfs::RealFs;

#[derive(Args, Debug)]
pub struct DbArgs {
    /// The database directory.
    #[arg(long)]
    dir: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Print the value of KEY (exit 1 if absent).
    Get { key: String },
    /// Set KEY to VALUE (synced).
    Put { key: String, value: String },
    /// Remove KEY (synced).
    Delete { key: String },
    /// Print keys and values in order.
    Scan {
        /// First key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Last key (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the tree's shape and the engine's statistics (JSON with --json).
    Stats {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Compact until no level needs it.
    Compact,
}

fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn run(args: DbArgs) -> Result<ExitCode, String> {
    let creating = matches!(args.action, Action::Put { .. } | Action::Delete { .. });
    if !creating && !args.dir.join("CURRENT").exists() && args.dir.exists() {
        return Err(format!(
            "{} holds no Strata database (no CURRENT file)",
            args.dir.display()
        ));
    }
    let options = Options {
        create_if_missing: creating,
        ..Options::default()
    };
    let db = Db::open(Arc::new(RealFs::new()), &args.dir, options)
        .map_err(|e| format!("cannot open {}: {e}", args.dir.display()))?;
    let code = match args.action {
        Action::Get { key } => match db.get(key.as_bytes()).map_err(|e| e.to_string())? {
            Some(value) => {
                println!("{}", printable(&value));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("not found: {key}");
                ExitCode::from(1)
            }
        },
        Action::Put { key, value } => {
            db.put(key.as_bytes(), value.as_bytes(), WriteOptions::SYNC)
                .map_err(|e| e.to_string())?;
            ExitCode::SUCCESS
        }
        Action::Delete { key } => {
            db.delete(key.as_bytes(), WriteOptions::SYNC)
                .map_err(|e| e.to_string())?;
            ExitCode::SUCCESS
        }
        Action::Stats { json } => {
            let stats = db.stats();
            if json {
                let report = serde_json::json!({
                    "tables_per_level": stats.tables_per_level,
                    "bytes_per_level": stats.bytes_per_level,
                    "write_amplification": stats.write_amplification(),
                    "flushes": stats.flushes,
                    "compactions": stats.compactions,
                    "trivial_moves": stats.trivial_moves,
                });
                println!("{report}");
            } else {
                println!("level  tables        bytes");
                for (level, (tables, bytes)) in stats
                    .tables_per_level
                    .iter()
                    .zip(&stats.bytes_per_level)
                    .enumerate()
                {
                    println!("L{level:<5} {tables:>6} {bytes:>12}");
                }
                println!("(statistics count this process only: opened just now)");
            }
            ExitCode::SUCCESS
        }
        Action::Compact => {
            db.compact().map_err(|e| e.to_string())?;
            ExitCode::SUCCESS
        }
        Action::Scan { from, to, limit } => {
            use std::ops::Bound;
            let lower = from.map_or(Bound::Unbounded, |k| Bound::Included(k.into_bytes()));
            let upper = to.map_or(Bound::Unbounded, |k| Bound::Excluded(k.into_bytes()));
            let iter = db.range((lower, upper)).map_err(|e| e.to_string())?;
            for entry in iter.take(limit.unwrap_or(usize::MAX)) {
                let (key, value) = entry.map_err(|e| e.to_string())?;
                println!("{}\t{}", printable(&key), printable(&value));
            }
            ExitCode::SUCCESS
        }
    };
    db.close().map_err(|e| e.to_string())?;
    Ok(code)
}
