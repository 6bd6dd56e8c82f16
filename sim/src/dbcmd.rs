//! `strata db --dir D get|put|delete|scan|stats|compact|verify|repair`: a small shell over a
//! real database. `verify` and `repair` work on the directory without opening it (they are
//! for databases that may not open).

use crate::cli::CliError;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use strata_engine::{Db, Options, Placement, RepairReport, Severity, VerifyReport, WriteOptions};
use strata_vfs::RealFs;

#[derive(Args, Debug)]
pub struct DbArgs {
    /// The database directory.
    #[arg(long)]
    dir: PathBuf,
    /// Keys and values on the command line are hex (e.g. 00ff10), and output is hex too.
    #[arg(long)]
    hex: bool,
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
        /// One JSON object per entry (`{"key": …, "value": …}`).
        #[arg(long)]
        json: bool,
        /// From the last key down.
        #[arg(long)]
        reverse: bool,
    },
    /// Print the tree's shape and the engine's statistics (JSON with --json).
    Stats {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Compact until no level needs it.
    Compact,
    /// Check every file's checksums and the manifest's consistency with the directory,
    /// without changing anything: one line per problem, then a summary. Exit 0 if sound
    /// (warnings and orphans allowed), 1 if corruption was found.
    Verify {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the manifest from what is readable (the database must not be open): keeps
    /// readable tables, salvages damaged ones, replays WAL records, and moves everything it
    /// does not keep into lost/ (never deletes).
    Repair,
}

/// Bytes as text for the terminal: valid UTF-8 as it is, except that `\`, tab, newline and
/// other control characters are escaped; every byte that is not UTF-8 as `\xNN`. Never lossy:
/// two different keys never print the same.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Parses hex (an even number of digits, any case); the error names `what`.
pub fn from_hex(text: &str, what: &str) -> Result<Vec<u8>, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--hex: {what} {text:?} is not an even number of hex digits"
        ))
    };
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// How keys and values are read from the command line and printed.
struct Codec {
    hex: bool,
}

impl Codec {
    fn input(&self, text: &str, what: &str) -> Result<Vec<u8>, CliError> {
        if self.hex {
            from_hex(text, what)
        } else {
            Ok(text.as_bytes().to_vec())
        }
    }

    fn output(&self, bytes: &[u8]) -> String {
        if self.hex {
            to_hex(bytes)
        } else {
            printable(bytes)
        }
    }
}

pub fn run(args: DbArgs) -> Result<ExitCode, crate::cli::CliError> {
    match args.action {
        Action::Verify { json } => return verify(&args.dir, json),
        Action::Repair => return repair(&args.dir),
        _ => {}
    }
    let codec = Codec { hex: args.hex };
    let creating = matches!(args.action, Action::Put { .. } | Action::Delete { .. });
    if args.dir.exists() && !args.dir.is_dir() {
        return Err(CliError::Usage(format!(
            "{} is not a directory (--dir names the database's directory)",
            args.dir.display()
        )));
    }
    if !creating && !args.dir.join("CURRENT").exists() && args.dir.exists() {
        return Err(CliError::Usage(format!(
            "{} holds no Strata database (no CURRENT file)",
            args.dir.display()
        )));
    }
    let options = Options {
        create_if_missing: creating,
        ..Options::default()
    };
    // Reads open the database read-only: no lock, nothing written, so they work beside a
    // running writer and on a directory this user may not write.
    let reading = matches!(
        args.action,
        Action::Get { .. } | Action::Scan { .. } | Action::Stats { .. }
    );
    let vfs = Arc::new(RealFs::new());
    let opened = if reading {
        Db::open_read_only(vfs, &args.dir, options)
    } else {
        Db::open(vfs, &args.dir, options)
    };
    let db = opened.map_err(|error| {
        let permission = matches!(&error, strata_engine::Error::Io(io)
            if io.kind() == std::io::ErrorKind::PermissionDenied);
        if permission {
            CliError::Failure(format!(
                "cannot open {}: this user may not write there (a read-only directory or \
                 file?): {error}",
                args.dir.display()
            ))
        } else {
            CliError::engine(format!("cannot open {}", args.dir.display()), error)
        }
    })?;
    for note in &db.recovery_report().damage_notes {
        eprintln!(
            "strata: warning: a point-in-time recovery dropped writes past damage; see {}",
            note.display()
        );
    }
    let code = match args.action {
        Action::Get { key } => match db
            .get(codec.input(&key, "key")?)
            .map_err(|e| CliError::engine("database", e))?
        {
            Some(value) => {
                crate::outln!("{}", codec.output(&value));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("not found: {key}");
                ExitCode::from(1)
            }
        },
        Action::Put { key, value } => {
            db.put(
                codec.input(&key, "key")?,
                codec.input(&value, "value")?,
                WriteOptions::SYNC,
            )
            .map_err(|e| CliError::engine("database", e))?;
            ExitCode::SUCCESS
        }
        Action::Delete { key } => {
            db.delete(codec.input(&key, "key")?, WriteOptions::SYNC)
                .map_err(|e| CliError::engine("database", e))?;
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
                crate::outln!("{report}");
            } else {
                crate::outln!("level  tables        bytes");
                for (level, (tables, bytes)) in stats
                    .tables_per_level
                    .iter()
                    .zip(&stats.bytes_per_level)
                    .enumerate()
                {
                    crate::outln!("L{level:<5} {tables:>6} {bytes:>12}");
                }
                crate::outln!("(statistics count this process only: opened just now)");
            }
            ExitCode::SUCCESS
        }
        Action::Compact => {
            db.compact().map_err(|e| CliError::engine("database", e))?;
            ExitCode::SUCCESS
        }
        Action::Verify { .. } | Action::Repair => unreachable!("handled before the open"),
        Action::Scan {
            from,
            to,
            limit,
            json,
            reverse,
        } => {
            use std::ops::Bound;
            let lower = match from {
                Some(key) => Bound::Included(codec.input(&key, "--from")?),
                None => Bound::Unbounded,
            };
            let upper = match to {
                Some(key) => Bound::Excluded(codec.input(&key, "--to")?),
                None => Bound::Unbounded,
            };
            let iter = db
                .range((lower, upper))
                .map_err(|e| CliError::engine("database", e))?;
            let iter: Box<dyn Iterator<Item = _>> = if reverse {
                Box::new(iter.rev())
            } else {
                Box::new(iter)
            };
            for entry in iter.take(limit.unwrap_or(usize::MAX)) {
                let (key, value) = entry.map_err(|e| CliError::engine("database", e))?;
                if json {
                    let line = serde_json::json!({
                        "key": codec.output(&key),
                        "value": codec.output(&value),
                    });
                    crate::outln!("{line}");
                } else {
                    crate::outln!("{}\t{}", codec.output(&key), codec.output(&value));
                }
            }
            ExitCode::SUCCESS
        }
    };
    db.close().map_err(|e| CliError::engine("database", e))?;
    Ok(code)
}

/// The directory `verify` and `repair` work on: it must exist and be a directory.
fn existing_dir(dir: &Path) -> Result<(), CliError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(CliError::Usage(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Err(error) => Err(CliError::Usage(format!("{}: {error}", dir.display()))),
    }
}

fn verify(dir: &Path, json: bool) -> Result<ExitCode, crate::cli::CliError> {
    existing_dir(dir)?;
    let report = strata_engine::verify(&RealFs::new(), dir)
        .map_err(|e| CliError::engine(format!("cannot verify {}", dir.display()), e))?;
    if json {
        crate::outln!("{}", verify_json(dir, &report));
    } else {
        for problem in &report.problems {
            crate::outln!("{problem}");
        }
        crate::outln!(
            "{}: {} corruption, {} warnings, {} orphans; {} tables ({} data blocks) and {} WALs \
             checked",
            if report.is_sound() {
                "sound"
            } else {
                "CORRUPT"
            },
            report.count(Severity::Corruption),
            report.count(Severity::Warning),
            report.count(Severity::Orphan),
            report.tables_checked,
            report.blocks_checked,
            report.wals_checked
        );
    }
    Ok(if report.is_sound() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_json(dir: &Path, report: &VerifyReport) -> serde_json::Value {
    let problems: Vec<serde_json::Value> = report
        .problems
        .iter()
        .map(|problem| {
            serde_json::json!({
                "severity": problem.severity.name(),
                "file": problem.file.display().to_string(),
                "offset": problem.offset,
                "reason": problem.reason,
            })
        })
        .collect();
    serde_json::json!({
        "dir": dir.display().to_string(),
        "manifest": report.manifest.as_ref().map(|path| path.display().to_string()),
        "sound": report.is_sound(),
        "corruptions": report.count(Severity::Corruption),
        "warnings": report.count(Severity::Warning),
        "orphans": report.count(Severity::Orphan),
        "tables_checked": report.tables_checked,
        "blocks_checked": report.blocks_checked,
        "wals_checked": report.wals_checked,
        "problems": problems,
    })
}

fn repair(dir: &Path) -> Result<ExitCode, crate::cli::CliError> {
    existing_dir(dir)?;
    let report = strata_engine::repair(&RealFs::new(), dir, &Options::default())
        .map_err(|e| CliError::engine(format!("cannot repair {}", dir.display()), e))?;
    print_repair(&report);
    Ok(ExitCode::SUCCESS)
}

fn print_repair(report: &RepairReport) {
    match &report.base_manifest {
        Some(path) if report.consistent => crate::outln!(
            "base: {} (agrees with the WALs: nothing guessed)",
            path.display()
        ),
        Some(path) => crate::outln!(
            "base: {} (does not agree with the WALs: see the warnings)",
            path.display()
        ),
        None => crate::outln!("base: no readable manifest (table levels are guessed)"),
    }
    for table in &report.kept {
        let guessed = match table.placement {
            Placement::Recorded => "",
            Placement::Guessed => ", level guessed",
        };
        crate::outln!(
            "kept {:06}.sst at L{} ({} entries{guessed})",
            table.number,
            table.level,
            table.entries
        );
    }
    for table in &report.salvaged {
        crate::outln!(
            "salvaged {:06}.sst into {:06}.sst at L{} ({} entries; {} data blocks lost)",
            table.from,
            table.into,
            table.level,
            table.entries,
            table.blocks_lost
        );
    }
    let written: Vec<String> = report
        .tables_written
        .iter()
        .map(|number| format!("{number:06}.sst"))
        .collect();
    crate::outln!(
        "replayed {} WAL records into {}",
        report.records_replayed,
        if written.is_empty() {
            "no table".to_string()
        } else {
            written.join(", ")
        }
    );
    for set_aside in &report.set_aside {
        crate::outln!(
            "set aside {}: {}",
            set_aside.path.display(),
            set_aside.reason
        );
    }
    for line in &report.dropped {
        crate::outln!("dropped: {line}");
    }
    for line in &report.warnings {
        crate::outln!("warning: {line}");
    }
    crate::outln!("new manifest: {}", report.manifest.display());
}
