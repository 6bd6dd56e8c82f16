//! The command line of `strata explore` (the exploration itself is `explore.rs`).

use crate::case::{Case, Mode};
use crate::cli::CliError;
use crate::corpus::CorpusEntry;
use crate::explore::{explore, ExploreConfig};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use strata_vfs::sim::{CaptureAt, EnumerationOptions};
use strata_vfs::FsProfile;

/// `strata explore` options.
#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The workload of this seed (single client, no injected faults).
    #[arg(long, conflicts_with = "corpus")]
    pub seed: Option<u64>,
    /// Or the workload of a corpus file (a sequential case).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Steps of the seed's workload (small: tens) [default: 40].
    #[arg(long)]
    pub ops: Option<usize>,
    /// Where to crash: `syncs` (before every sync and directory sync) or `every-op`
    /// (before every operation that changes the disk).
    #[arg(long, default_value = "syncs", value_parser = parse_at)]
    pub at: CaptureAt,
    /// The filesystem's persistence profile: classic, posix-strict, ext4-ordered,
    /// ext4-writeback, xfs, btrfs.
    #[arg(long, default_value = "classic", value_parser = FsProfile::from_name)]
    pub fs_profile: FsProfile,
    /// The simulated disk's sector size in bytes (a power of two, 512 to 65536).
    #[arg(long, default_value_t = 4096, value_parser = parse_sector_size)]
    pub sector_size: u64,
    /// Unsynced sectors survive as a prefix in write order, not as any subset.
    #[arg(long)]
    pub ordered: bool,
    /// Do not enumerate torn sectors.
    #[arg(long)]
    pub no_tears: bool,
    /// A torn sector's new bytes stop at a multiple of this many bytes (a power of two).
    #[arg(long, default_value_t = 512, value_parser = parse_power_of_two)]
    pub tear_granularity: u64,
    /// At most this many torn sectors per file in one image.
    #[arg(long, default_value_t = 1)]
    pub tears_per_file: u32,
    /// At most this many distinct states are checked; the report says where it cut.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_states: u64,
    /// At most this many states are enumerated per crash point.
    #[arg(long, default_value_t = 100_000)]
    pub max_states_per_point: u64,
    /// Threads recovering and checking states (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_at(text: &str) -> Result<CaptureAt, String> {
    match text {
        "syncs" => Ok(CaptureAt::Syncs),
        "every-op" => Ok(CaptureAt::EveryOperation),
        _ => Err(format!("--at takes syncs or every-op, got {text:?}")),
    }
}

fn parse_power_of_two(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n.is_power_of_two() => Ok(n),
        _ => Err(format!("expected a power of two, got {text:?}")),
    }
}

fn parse_sector_size(text: &str) -> Result<u64, String> {
    let size = parse_power_of_two(text)?;
    if (512..=65536).contains(&size) {
        Ok(size)
    } else {
        Err(format!("--sector-size takes 512 to 65536, got {size}"))
    }
}

/// The most steps an explored workload may have: its crash states grow with it.
const MAX_EXPLORE_OPS: usize = 10_000;

impl ExploreArgs {
    fn case(&self) -> Result<Case, String> {
        match (&self.corpus, self.seed) {
            (Some(path), _) => {
                if self.ops.is_some() {
                    return Err(format!(
                        "explore --corpus {} runs the case the file records; --ops applies \
                         only with --seed",
                        path.display()
                    ));
                }
                let entry = CorpusEntry::load(path)?;
                if entry.case.mode != Mode::Sequential {
                    return Err(format!(
                        "{} is a concurrent case; explore runs sequential (single-client) \
                         cases",
                        path.display()
                    ));
                }
                Ok(entry.case)
            }
            (None, Some(seed)) => {
                let ops = self.ops.unwrap_or(40);
                if ops == 0 || ops > MAX_EXPLORE_OPS {
                    return Err(format!(
                        "--ops takes 1 to {MAX_EXPLORE_OPS} steps for explore, got {ops}"
                    ));
                }
                let mut case = Case::new(seed, ops, BTreeSet::new());
                case.mode = Mode::Sequential;
                Ok(case)
            }
            (None, None) => Err("explore needs --seed S or --corpus FILE".into()),
        }
    }

    /// The exploration these options describe.
    pub fn config(&self) -> Result<ExploreConfig, String> {
        if self.tears_per_file == 0 && !self.no_tears {
            return Err("--tears-per-file must be at least 1 (or give --no-tears)".into());
        }
        if self.max_states == 0 || self.max_states_per_point == 0 {
            return Err("--max-states and --max-states-per-point must be at least 1".into());
        }
        if self.sector_size > strata_engine::wal::SECTOR_SIZE
            && !self.fs_profile.rules().powersafe_overwrite
        {
            return Err(format!(
                "--sector-size {} under {}: the engine pads its logs to {}-byte sectors, so \
                 a larger sector without powersafe overwrite tests a disk it does not claim \
                 to support",
                self.sector_size,
                self.fs_profile,
                strata_engine::wal::SECTOR_SIZE
            ));
        }
        let mut case = self.case()?;
        case.fs_profile = self.fs_profile;
        let mut config = ExploreConfig::new(case);
        config.at = self.at;
        config.profile = self.fs_profile;
        config.sector_size = self.sector_size;
        config.ordered_writes = self.ordered;
        config.tears = !self.no_tears;
        config.options = EnumerationOptions {
            tear_granularity: self.tear_granularity.min(self.sector_size),
            tears_per_file: self.tears_per_file,
            ..EnumerationOptions::default()
        };
        config.max_states = self.max_states;
        config.max_states_per_point = self.max_states_per_point;
        config.jobs = match self.jobs {
            Some(0) => return Err("--jobs must be at least 1".into()),
            Some(jobs) => jobs,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(config)
    }
}

/// Runs `strata explore`: exit status 1 if a state was rejected.
pub fn run(args: ExploreArgs) -> Result<ExitCode, CliError> {
    let config = args.config().map_err(CliError::Usage)?;
    crate::flight::set_quiet(true);
    let summary = explore(&config);
    crate::flight::set_quiet(false);
    let summary = summary.map_err(CliError::Usage)?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string(&summary).map_err(|e| e.to_string())?
        );
    } else {
        crate::outln!("{}", summary.text().trim_end());
    }
    Ok(if summary.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
