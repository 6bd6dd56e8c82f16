//! `strata`: the command line of the Strata storage engine.
//!
//! Exit status: 0 success; 1 a violation or corruption found; 2 bad arguments (a one-line
//! error); 3 a failure at run time (I/O, a database in use). See `strata_sim::cli`.

use clap::{Args, Parser, Subcommand};

/// mimalloc: the simulator and the benchmarks allocate small blocks at a high rate from
/// several threads, where it beats the system allocator (measured in the README). The
/// engine library itself leaves the choice to the application.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use strata_sim::case::{Case, Fault, Liar, Mode};
use strata_sim::cli::CliError;
use strata_sim::corpus::{CorpusEntry, Expected};
use strata_sim::runner::run_case;
use strata_sim::sweep::{sweep, Seeds, SweepConfig};
use strata_sim::{bench, dbcmd, fleet, inspect, report, shrink, stress, summary_text};

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
    /// Run many seeds of the crash simulation in parallel.
    Sweep(SweepArgs),
    /// Rerun one case exactly, optionally printing its trace.
    Replay(ReplayArgs),
    /// Check every crash state of a small workload that the persistence model allows.
    Explore(strata_sim::explore_command::ExploreArgs),
    /// Minimise a failing corpus case and save the result beside it.
    Shrink {
        /// The corpus file.
        file: PathBuf,
    },
    /// db_bench-style workloads on the real disk.
    Bench(bench::BenchArgs),
    /// Poke a real database by hand: get, put, delete, scan, stats, compact.
    Db(dbcmd::DbArgs),
    /// Synced writes from several threads on the real disk, printing each acknowledged one
    /// (for kill tests).
    Stress(stress::StressArgs),
    /// Work with sweep summaries: `report merge` merges the shards of a sweep.
    Report(report::ReportArgs),
    /// Dump a WAL, SSTable, manifest or CURRENT file, verifying every checksum.
    Inspect {
        /// The file.
        path: PathBuf,
        /// Show at most this many records or entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Args, Debug, Clone)]
struct CaseArgs {
    /// Steps per run [default: 1000].
    #[arg(long)]
    ops: Option<usize>,
    /// Comma-separated fault kinds: crash,torn,fsync,enospc,eio,bitflip,truncate,lose, the
    /// medium's misdirect,lost-write,stale-read,latent, or the groups all (every kind but
    /// the medium's), medium, none; the summaries' names (torn_write, sync_failure,
    /// no_space, read_error, bit_flip, truncation, file_loss, misdirected_write, lost_write,
    /// stale_read, latent_sector_error) are accepted too [default: all].
    #[arg(long)]
    faults: Option<String>,
    /// concurrent (the production engine: client tasks, group commit and the background
    /// threads under the seeded scheduler) or sequential (one client, no threads)
    /// [default: concurrent].
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Concurrent mode: this many client tasks (default: 1 to 8, drawn per seed).
    #[arg(long, value_parser = parse_clients)]
    clients: Option<usize>,
    /// The simulated filesystem's persistence profile: classic, posix-strict,
    /// ext4-ordered, ext4-writeback, xfs, btrfs [default: classic].
    #[arg(long, value_parser = strata_vfs::FsProfile::from_name)]
    fs_profile: Option<strata_vfs::FsProfile>,
}

/// The most steps a seed may take: a case records one bit per skipped step, and a seed far
/// longer than this is better run as many seeds.
const MAX_OPS: usize = 1_000_000;

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse()
}

fn parse_clients(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!(
            "--clients takes a number from 1 to 64, got {text:?}"
        )),
    }
}

impl CaseArgs {
    fn ops(&self) -> usize {
        self.ops.unwrap_or(1000)
    }

    fn faults(&self) -> Result<BTreeSet<Fault>, String> {
        parse_faults(self.faults.as_deref().unwrap_or("all"))
    }

    fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Concurrent)
    }

    /// Whether any option was given (a corpus file fixes them all).
    fn any_given(&self) -> bool {
        self.ops.is_some()
            || self.faults.is_some()
            || self.mode.is_some()
            || self.clients.is_some()
            || self.fs_profile.is_some()
    }

    /// The case these options describe for `seed`.
    fn case(&self, seed: u64) -> Result<Case, String> {
        let ops = self.ops();
        if ops == 0 || ops > MAX_OPS {
            return Err(format!(
                "--ops takes 1 to {MAX_OPS} steps per seed, got {ops}"
            ));
        }
        if self.clients.is_some() && self.mode() == Mode::Sequential {
            return Err(
                "--clients needs --mode concurrent (sequential mode has one client)".into(),
            );
        }
        let mut case = Case::new(seed, ops, self.faults()?);
        case.mode = self.mode();
        case.clients = self.clients;
        case.fs_profile = self.fs_profile.unwrap_or_default();
        Ok(case)
    }
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// Seed range A..B (B exclusive); with --duration or --forever also START.. (open-ended)
    /// [default with those: 1000000000..].
    #[arg(long)]
    seeds: Option<String>,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    case: CaseArgs,
    /// Run only the seeds of shard I of N (seed % N == I), e.g. 0/4; or `env`: the shard of
    /// a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --shard-count) or of a Slurm
    /// array job (SLURM_ARRAY_TASK_ID, _MIN, _MAX, _STEP and _COUNT).
    #[arg(long)]
    shard: Option<String>,
    /// With --shard env: the number of shards (a Kubernetes Job's completions; for Slurm,
    /// if given, it must equal SLURM_ARRAY_TASK_COUNT).
    #[arg(long)]
    shard_count: Option<u64>,
    /// Run fresh seeds until this much time has passed (90s, 10m, 1h30m, 2d), then let the
    /// seeds in flight finish and stop; the summary says which seeds ran. SIGINT or SIGTERM
    /// stops it the same way.
    #[arg(long, conflicts_with = "forever")]
    duration: Option<String>,
    /// Run fresh seeds until SIGINT or SIGTERM (or the end of --seeds A..B), then stop as
    /// --duration does.
    #[arg(long)]
    forever: bool,
    /// Stop taking seeds once every coverage mark has been reached at least N times by the
    /// seeds from the start of --seeds, counted in seed order (the seeds in flight finish);
    /// the end of --seeds (or --duration) bounds it. The summary says at which seed the goal
    /// was met; exit 3 if the bound came first (and no violation was found).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    until_covered: Option<u64>,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    json: bool,
    /// Where failing cases are written.
    #[arg(long, default_value = "corpus")]
    corpus: PathBuf,
    /// Self-check: run on a lying filesystem (wal-sync-noop, sync-dir-noop,
    /// failed-sync-reported-ok); the sweep must find violations.
    #[arg(long, value_parser = parse_liar)]
    liar: Option<Liar>,
}

fn parse_liar(text: &str) -> Result<Liar, String> {
    match text {
        "wal-sync-noop" => Ok(Liar::WalSyncNoop),
        "sync-dir-noop" => Ok(Liar::SyncDirNoop),
        "failed-sync-reported-ok" => Ok(Liar::FailedSyncReportedOk),
        "panics-at-third-rename" => Ok(Liar::PanicsAtThirdRename),
        _ => Err(format!(
            "unknown liar {text:?}; known: wal-sync-noop, sync-dir-noop, failed-sync-reported-ok, \
             panics-at-third-rename"
        )),
    }
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// A corpus file to replay.
    file: Option<PathBuf>,
    /// Or a seed to run with the sweep options.
    #[arg(long, conflicts_with = "file")]
    seed: Option<u64>,
    #[command(flatten)]
    case: CaseArgs,
    /// Print every step, VFS event and fault.
    #[arg(long)]
    trace: bool,
    /// Save the case with the outcome observed now as a corpus file (for a fixed bug, run
    /// it after the fix: the file then expects a pass).
    #[arg(long)]
    save: Option<PathBuf>,
    /// The one-line note for `--save`.
    #[arg(long, default_value = "")]
    note: String,
}

fn parse_faults(text: &str) -> Result<BTreeSet<Fault>, String> {
    let mut faults = BTreeSet::new();
    for name in text.split(',').map(str::trim) {
        match name {
            // The default set: every kind but the medium's.
            "all" => faults.extend(Fault::DEFAULT),
            "medium" => faults.extend(Fault::MEDIUM),
            "none" | "" => {}
            _ => {
                // The summaries' names for the same faults.
                let name = match name {
                    "torn_write" => "torn",
                    "sync_failure" => "fsync",
                    "no_space" => "enospc",
                    "read_error" => "eio",
                    "bit_flip" => "bitflip",
                    "truncation" => "truncate",
                    "file_loss" => "lose",
                    "misdirected_write" => "misdirect",
                    "lost_write" => "lost-write",
                    "stale_read" | "misdirected_read" => "stale-read",
                    "latent_sector_error" | "unreadable_sector" => "latent",
                    other => other,
                };
                faults.insert(name.parse()?);
            }
        }
    }
    Ok(faults)
}

/// Parses `A<separator>B` into two numbers; `flag` and `form` name the option in errors.
fn parse_pair(text: &str, separator: &str, flag: &str, form: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once(separator)
        .ok_or_else(|| format!("{flag} takes {form}, got {text:?}"))?;
    let number = |part: &str| {
        part.parse::<u64>()
            .map_err(|_| format!("{flag}: {part:?} is not a number"))
    };
    Ok((number(a)?, number(b)?))
}

/// Where a continuous sweep (`--duration`, `--forever`) starts without `--seeds`: above
/// every range the tests and the README's sweeps use.
const FRESH_SEEDS_START: u64 = 1_000_000_000;

/// Parses `A..B`, or with `open_allowed` also `A..` (to `u64::MAX`, exclusive).
fn parse_seeds(text: &str, open_allowed: bool) -> Result<(u64, u64), String> {
    if let Some(start) = text.strip_suffix("..") {
        if !open_allowed {
            return Err(format!(
                "--seeds {text}: an open-ended range needs --duration or --forever"
            ));
        }
        let start = start
            .parse::<u64>()
            .map_err(|_| format!("--seeds: {start:?} is not a number"))?;
        return Ok((start, u64::MAX));
    }
    let (a, b) = parse_pair(text, "..", "--seeds", "a range A..B")?;
    if a >= b {
        return Err(format!(
            "--seeds {text}: the range is empty or reversed (A must be below B)"
        ));
    }
    Ok((a, b))
}

fn run_sweep(args: SweepArgs) -> Result<ExitCode, CliError> {
    let continuous = args.duration.is_some() || args.forever;
    let (a, b) = match &args.seeds {
        Some(text) => parse_seeds(text, continuous).map_err(CliError::Usage)?,
        None if continuous => (FRESH_SEEDS_START, u64::MAX),
        None => {
            return Err(CliError::Usage(
                "sweep needs --seeds A..B (or --duration/--forever, which run fresh seeds)".into(),
            ))
        }
    };
    let faults = args.case.faults().map_err(CliError::Usage)?;
    // Validates the case options once, for every seed.
    args.case.case(a).map_err(CliError::Usage)?;
    let (shard, shards) =
        fleet::resolve_shard(args.shard.as_deref(), args.shard_count, &fleet::process_env)
            .map_err(CliError::Usage)?;
    let duration = args
        .duration
        .as_deref()
        .map(fleet::parse_duration)
        .transpose()
        .map_err(CliError::Usage)?;
    let jobs = match args.jobs {
        Some(0) => return Err(CliError::Usage("--jobs must be at least 1".into())),
        Some(jobs) => jobs,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut config = SweepConfig::new(Seeds {
        range: a..b,
        shard,
        shards,
    });
    config.jobs = jobs;
    config.ops = args.case.ops();
    config.faults = faults;
    config.liar = args.liar;
    config.mode = args.case.mode();
    config.clients = args.case.clients;
    config.fs_profile = args.case.fs_profile.unwrap_or_default();
    config.corpus = Some(args.corpus.clone());
    config.progress = !args.json;
    config.until_covered = args.until_covered;
    if continuous {
        // The wall clock decides only when to stop taking seeds; no run reads it.
        config.deadline = duration.map(|limit| std::time::Instant::now() + limit);
        config.stop = Some(fleet::stop_on_signal().map_err(CliError::Failure)?);
    }
    // Panics are reported per seed (with message, location, step and task), not printed.
    strata_sim::flight::set_quiet(true);
    let (summary, _failures) = sweep(&config);
    strata_sim::flight::set_quiet(false);
    if args.json {
        strata_sim::outln!(
            "{}",
            serde_json::to_string(&summary).map_err(|e| e.to_string())?
        );
    } else {
        summary_text::print_text(&summary, Some(&args.corpus));
    }
    if summary.violations > 0 {
        return Ok(ExitCode::from(1));
    }
    match summary.until_covered {
        Some(goal) if goal.reached_at_seed.is_none() => Err(CliError::Failure(format!(
            "the coverage goal was not met: the seeds ran out before every mark was reached {} \
             (short: {})",
            strata_sim::coverage::times(goal.times),
            strata_sim::coverage::missed(&summary.marks, goal.times).join(", ")
        ))),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let mut note = args.note.clone();
    let (case, expected) = match (&args.file, args.seed) {
        (Some(file), _) => {
            if args.case.any_given() {
                return Err(CliError::Usage(format!(
                    "replay {} runs the case the file records: --ops, --faults, --mode and \
                     --clients apply only with --seed",
                    file.display()
                )));
            }
            let entry = CorpusEntry::load(file).map_err(CliError::Usage)?;
            if !entry.is_current() {
                eprintln!(
                    "strata: warning: {} records a fault config or engine options that seed {} no longer draws (the generator changed)",
                    file.display(),
                    entry.case.seed
                );
            }
            if note.is_empty() {
                note = entry.note.clone();
            }
            (entry.case, Some(entry.expected))
        }
        (None, Some(seed)) => (args.case.case(seed).map_err(CliError::Usage)?, None),
        (None, None) => {
            return Err(CliError::Usage(
                "replay needs a corpus FILE or --seed S".into(),
            ))
        }
    };
    let report = run_case(&case, args.trace);
    if args.trace {
        for line in &report.trace {
            strata_sim::outln!("{line}");
        }
    }
    strata_sim::outln!(
        "seed {}: {} ops, {} crashes, {} recoveries, trace hash {:016x}",
        case.seed,
        report.stats.ops,
        report.stats.crashes,
        report.stats.recoveries,
        report.trace_hash
    );
    match &report.finding {
        None => strata_sim::outln!("verdict: pass"),
        Some(finding) => strata_sim::outln!(
            "verdict: VIOLATION {} at step {}\n{}",
            finding.kind,
            finding.step,
            finding.explanation
        ),
    }
    if let Some(path) = &args.save {
        let observed = match &report.finding {
            None => Expected::Pass,
            Some(finding) => Expected::Violation(finding.clone()),
        };
        CorpusEntry::new(case.clone(), observed, note)
            .recorded_by_this_build(report.trace_hash)
            .save(path)?;
        strata_sim::outln!("saved {}", path.display());
    }
    if let Some(expected) = expected {
        let matches = match (&expected, &report.finding) {
            (Expected::Pass, None) => true,
            (Expected::Violation(want), Some(got)) => want.kind == got.kind,
            _ => false,
        };
        strata_sim::outln!(
            "recorded outcome: {}",
            if matches { "reproduced" } else { "DIFFERS" }
        );
    }
    Ok(if report.finding.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_shrink(file: PathBuf) -> Result<ExitCode, CliError> {
    let entry = CorpusEntry::load(&file).map_err(CliError::Usage)?;
    let report = run_case(&entry.case, false);
    let Some(finding) = report.finding else {
        return Err(CliError::Usage(format!(
            "{} passes today; there is nothing to shrink",
            file.display()
        )));
    };
    let before = shrink::size(&entry.case);
    let (small, runs) = shrink::shrink(&entry.case, &finding.kind);
    let after = shrink::size(&small);
    let final_report = run_case(&small, false);
    let final_finding = final_report
        .finding
        .ok_or("the shrunk case no longer fails (the simulation is not deterministic?)")?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("case");
    let out = file.with_file_name(format!("{stem}-shrunk.json"));
    let shrunk = CorpusEntry::new(
        small,
        Expected::Violation(final_finding),
        format!("shrunk from {}", file.display()),
    )
    .recorded_by_this_build(final_report.trace_hash);
    shrunk.save(&out)?;
    strata_sim::outln!(
        "shrunk {} -> {}: size {before} -> {after} ({:.1}x smaller) in {runs} runs",
        file.display(),
        out.display(),
        before as f64 / after.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
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
    if matches!(
        cli.command,
        Command::Sweep(_) | Command::Replay(_) | Command::Explore(_) | Command::Shrink { .. }
    ) {
        // The simulator maps and frees memory at a high rate; on huge pages each fresh page
        // costs a 2 MiB zeroing (see `strata_vfs::disable_transparent_huge_pages`). Neither
        // the outcome nor the trace depends on it.
        strata_vfs::disable_transparent_huge_pages();
    }
    let result = match cli.command {
        Command::Sweep(args) => run_sweep(args),
        Command::Replay(args) => run_replay(args),
        Command::Explore(args) => strata_sim::explore_command::run(args),
        Command::Shrink { file } => run_shrink(file),
        Command::Bench(args) => bench::run(args),
        Command::Db(args) => dbcmd::run(args),
        Command::Stress(args) => stress::run(args),
        Command::Report(args) => report::run(args),
        Command::Inspect { path, limit } => inspect::run(&path, limit),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("strata: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
