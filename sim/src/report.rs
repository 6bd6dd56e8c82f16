//! `strata report merge`: the shard summaries of one sweep
//! (from a CI matrix, a Kubernetes Indexed Job, a Slurm array) merged into one, after
//! checking that they are shards of the same sweep and that together they ran every seed of
//! the declared range exactly once.
//!
//! Exit status of `report merge`: 0 merged, no violation; 1 merged, and some seed failed
//! (as `sweep` would have exited); 2 the files do not merge (unreadable or not a summary, a
//! different build or configuration, a seed run twice, a seed missing); 3 the `--out` file
//! could not be written.

use crate::cli::CliError;
use crate::sweep::{SeedRange, Seeds, Stopped, Summary, SUMMARY_FORMAT};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `strata report …`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Merge the JSON summaries of a sweep's shards (`strata sweep --shard … --json`) into
    /// one: every count summed, failures united. Refused (exit 2) when the files come from
    /// different builds or configurations, when a seed ran in two of them, or when a seed of
    /// the declared range ran in none. Exit 1 when the merged sweep has violations.
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// The shard summaries.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the merged summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the merged summary, as JSON, to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `strata report`.
pub fn run(args: ReportArgs) -> Result<ExitCode, CliError> {
    let ReportCommand::Merge(args) = args.command;
    let inputs = args
        .files
        .iter()
        .map(|path| {
            load(path).map(|summary| Input {
                name: path.display().to_string(),
                summary,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Usage)?;
    let merged = merge(&inputs).map_err(CliError::Usage)?;
    let json = serde_json::to_string(&merged).map_err(|e| e.to_string())?;
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{json}\n"))
            .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", out.display())))?;
    }
    if args.json {
        crate::outln!("{json}");
    } else {
        crate::outln!(
            "merged {} summaries: shards {} of {}",
            inputs.len(),
            list(&merged.shards),
            merged.shard_count
        );
        crate::summary_text::print_text(&merged, None);
    }
    Ok(if merged.violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn list(numbers: &[u64]) -> String {
    let text: Vec<String> = numbers.iter().map(u64::to_string).collect();
    text.join(",")
}

/// One summary to merge, and the name (path) errors call it by.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file's name, for errors.
    pub name: String,
    /// Its summary.
    pub summary: Summary,
}

/// Reads a summary that `strata sweep --json` (or `report merge`) wrote; the error names
/// the file and what is wrong with it.
pub fn load(path: &Path) -> Result<Summary, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{name} is not a JSON sweep summary: {e}"))?;
    match value.get("summary_format") {
        None => {
            return Err(format!(
                "{name} is not a strata sweep summary (it has no summary_format; \
                 `strata sweep --json` writes one)"
            ))
        }
        Some(format) if format.as_u64() != Some(u64::from(SUMMARY_FORMAT)) => {
            return Err(format!(
                "{name} has summary format {format}; this build reads {SUMMARY_FORMAT}"
            ))
        }
        Some(_) => {}
    }
    let summary: Summary = serde_json::from_value(value)
        .map_err(|e| format!("{name} is not a valid strata sweep summary: {e}"))?;
    if !summary.trace_digest.is_empty()
        && crate::summary::digest_value(&summary.trace_digest).is_none()
    {
        return Err(format!(
            "{name} has trace_digest {:?}, not 16 hex digits",
            summary.trace_digest
        ));
    }
    Ok(summary)
}

fn describe_range(summary: &Summary) -> String {
    match summary.range.end {
        Some(end) => format!("{}..{end}", summary.range.start),
        None => format!("{}.. (open-ended)", summary.range.start),
    }
}

/// The checks one summary must pass on its own: its seed ranges lie in its declared range
/// and its shards, and its counts agree with them.
fn check_one(input: &Input) -> Result<(), String> {
    let s = &input.summary;
    let name = &input.name;
    if s.shard_count == 0 {
        return Err(format!("{name}: shard_count is 0"));
    }
    if let Some(&shard) = s.shards.iter().find(|&&shard| shard >= s.shard_count) {
        return Err(format!(
            "{name}: shard {shard} is not below its shard_count {}",
            s.shard_count
        ));
    }
    let mut held: u64 = 0;
    for range in &s.seed_ranges {
        let outside = range.start < s.range.start
            || s.range.end.is_some_and(|end| range.end > end)
            || range.start > range.end;
        if outside || !s.shards.contains(&range.shard) {
            return Err(format!(
                "{name}: its seed range {}..{} of shard {} is not in its declared range {} and \
                 shards {}",
                range.start,
                range.end,
                range.shard,
                describe_range(s),
                list(&s.shards)
            ));
        }
        held = held.saturating_add(range.seeds(s.shard_count).count());
    }
    if held != s.seeds {
        return Err(format!(
            "{name}: it counts {} seeds but its seed ranges hold {held}",
            s.seeds
        ));
    }
    if s.failing_seeds.len() as u64 != s.violations || s.failures.len() as u64 != s.violations {
        return Err(format!(
            "{name}: it counts {} violations but lists {} failing seeds and {} failures",
            s.violations,
            s.failing_seeds.len(),
            s.failures.len()
        ));
    }
    Ok(())
}

/// The checks two summaries must pass to be shards of one sweep.
fn check_same_sweep(a: &Input, b: &Input) -> Result<(), String> {
    let (x, y) = (&a.summary, &b.summary);
    let (an, bn) = (&a.name, &b.name);
    if x.build != y.build {
        return Err(format!(
            "{an} and {bn} come from different builds ({} at {}; {} at {}): the shards of one \
             sweep must run one build",
            x.build.version, x.build.commit, y.build.version, y.build.commit
        ));
    }
    if x.config != y.config {
        let show = |s: &Summary| serde_json::to_string(&s.config).unwrap_or_default();
        return Err(format!(
            "{an} and {bn} ran different configurations ({}; {})",
            show(x),
            show(y)
        ));
    }
    if x.range != y.range {
        return Err(format!(
            "{an} and {bn} declare different seed ranges ({}; {})",
            describe_range(x),
            describe_range(y)
        ));
    }
    if x.shard_count != y.shard_count {
        return Err(format!(
            "{an} and {bn} split the range into different numbers of shards ({} and {})",
            x.shard_count, y.shard_count
        ));
    }
    if x.range.end.is_some() {
        if let Some(shard) = x.shards.iter().find(|shard| y.shards.contains(shard)) {
            return Err(format!(
                "{an} and {bn} both hold shard {shard}/{}: a shard was given twice",
                x.shard_count
            ));
        }
    }
    Ok(())
}

/// Merges the summaries of a sweep's shards, after checking that they are shards of one
/// sweep, that no seed ran twice and (for a declared range with an end) that every seed
/// of it ran.
pub fn merge(inputs: &[Input]) -> Result<Summary, String> {
    let first = inputs
        .first()
        .ok_or("report merge needs at least one summary")?;
    for input in inputs {
        check_one(input)?;
    }
    for (i, a) in inputs.iter().enumerate() {
        for b in &inputs[i + 1..] {
            check_same_sweep(a, b)?;
        }
    }
    let n = first.summary.shard_count;
    // Every seed range, with the file it came from.
    let ranges: Vec<(&str, SeedRange)> = inputs
        .iter()
        .flat_map(|input| {
            input
                .summary
                .seed_ranges
                .iter()
                .map(move |range| (input.name.as_str(), *range))
        })
        .collect();
    for (i, (a_name, a)) in ranges.iter().enumerate() {
        for (b_name, b) in &ranges[i + 1..] {
            if a.shard != b.shard {
                continue; // Different remainders: no seed in common.
            }
            let overlap = Seeds {
                range: a.start.max(b.start)..a.end.min(b.end),
                shard: a.shard,
                shards: n,
            };
            if overlap.range.start < overlap.range.end {
                if let Some(seed) = overlap.nth(0) {
                    let whom = if a_name == b_name {
                        format!("twice in {a_name}")
                    } else {
                        format!("in both {a_name} and {b_name}")
                    };
                    return Err(format!(
                        "seed {seed} (shard {}/{n}) ran {whom}: a shard was given twice",
                        a.shard
                    ));
                }
            }
        }
    }
    if let Some(end) = first.summary.range.end {
        check_complete(first.summary.range.start..end, n, &ranges)?;
    }
    let mut merged = first.summary.clone();
    for input in &inputs[1..] {
        let other = &input.summary;
        merged.add_counts(other);
        merged.shards.extend(&other.shards);
        if merged.stopped != other.stopped {
            merged.stopped = Stopped::Mixed;
        }
        merged.elapsed_s = merged.elapsed_s.max(other.elapsed_s);
        merged.seeds_per_s += other.seeds_per_s;
        merged.ops_per_s += other.ops_per_s;
        merged.recoveries_per_s += other.recoveries_per_s;
    }
    merged.shards.sort_unstable();
    merged.shards.dedup();
    merged.seed_ranges = coalesce(ranges.into_iter().map(|(_, range)| range).collect(), n);
    Ok(merged)
}

/// Checks that the ranges (disjoint) hold every seed of `declared`.
fn check_complete(
    declared: std::ops::Range<u64>,
    n: u64,
    ranges: &[(&str, SeedRange)],
) -> Result<(), String> {
    let mut by_shard: BTreeMap<u64, Vec<(&str, SeedRange)>> = BTreeMap::new();
    for &(name, range) in ranges {
        by_shard.entry(range.shard).or_default().push((name, range));
    }
    let missing = |seed: u64, why: String| {
        Err(format!(
            "seed {seed} of the declared range {}..{} ran in none of the summaries: {why}",
            declared.start, declared.end
        ))
    };
    // A shard no summary holds: the first seeds of the range have distinct remainders, so
    // one of the first (held shards + 1) with no summary is missing, if any is.
    let first_seeds = declared.start..declared.end.min(declared.start.saturating_add(n));
    for seed in first_seeds.take(by_shard.len() + 1) {
        if !by_shard.contains_key(&(seed % n)) {
            return missing(seed, format!("no summary holds shard {}/{n}", seed % n));
        }
    }
    for (shard, mut held) in by_shard {
        held.sort_by_key(|(_, range)| range.start);
        let mut cursor = declared.start;
        let mut last: Option<&str> = None;
        for (name, range) in held.iter().copied().chain([(
            "",
            SeedRange {
                shard,
                start: declared.end,
                end: declared.end,
            },
        )]) {
            let gap = Seeds {
                range: cursor..range.start.max(cursor),
                shard,
                shards: n,
            };
            if let Some(seed) = gap.nth(0) {
                let why = match last {
                    Some(file) => format!(
                        "shard {shard}/{n} in {file} stops before it (the sweep was cut short?)"
                    ),
                    None => format!("shard {shard}/{n} starts after it"),
                };
                return missing(seed, why);
            }
            cursor = cursor.max(range.end);
            last = Some(name);
        }
    }
    Ok(())
}

/// Sorts seed ranges and joins those of one shard with no seed of it between them.
fn coalesce(mut ranges: Vec<SeedRange>, n: u64) -> Vec<SeedRange> {
    ranges.sort();
    let mut out: Vec<SeedRange> = Vec::new();
    for range in ranges {
        if let Some(last) = out.last_mut() {
            let between = Seeds {
                range: last.end..range.start.max(last.end),
                shard: range.shard,
                shards: n,
            };
            if last.shard == range.shard && between.count() == 0 {
                last.end = last.end.max(range.end);
                continue;
            }
        }
        out.push(range);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepConfig;

    /// A summary of shard `shard`/`n` of `range` that ran `start..end` (counts made up to
    /// agree with it).
    fn summary(range: std::ops::Range<u64>, shard: u64, n: u64, ran: (u64, u64)) -> Input {
        let mut summary = Summary::empty(&SweepConfig::new(Seeds {
            range,
            shard,
            shards: n,
        }));
        let seed_range = SeedRange {
            shard,
            start: ran.0,
            end: ran.1,
        };
        summary.seed_ranges = vec![seed_range];
        summary.seeds = seed_range.seeds(n).count();
        summary.ops = 10 * summary.seeds;
        Input {
            name: format!("s{shard}-{}-{}.json", ran.0, ran.1),
            summary,
        }
    }

    fn refused(inputs: &[Input], want: &str) {
        match merge(inputs) {
            Err(message) => assert!(message.contains(want), "want {want:?} in {message:?}"),
            Ok(merged) => panic!("merged, want {want:?}: {merged:?}"),
        }
    }

    #[test]
    fn open_ranges_merge_unless_a_seed_ran_twice() {
        let open = 100..u64::MAX;
        let a = summary(open.clone(), 0, 2, (100, 150));
        let b = summary(open.clone(), 1, 2, (100, 171));
        let merged = merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(merged.seeds, 25 + 35);
        assert_eq!(merged.ops, 600);
        assert_eq!(merged.seed_ranges.len(), 2);
        // Shard 1 again, from a rerun that overlaps the first: seed 169 ran twice.
        let again = summary(open.clone(), 1, 2, (169, 200));
        refused(
            &[a.clone(), b.clone(), again],
            "seed 169 (shard 1/2) ran in both",
        );
        // Shard 1 again, continuing where the first stopped: no seed twice, and the two
        // ranges join.
        let next = summary(open, 1, 2, (171, 200));
        let merged = merge(&[a, b, next]).unwrap();
        assert_eq!(merged.seed_ranges.len(), 2, "{:?}", merged.seed_ranges);
        assert_eq!(
            merged.seed_ranges[1],
            SeedRange {
                shard: 1,
                start: 100,
                end: 200
            }
        );
    }

    #[test]
    fn a_closed_range_must_be_whole() {
        let a = summary(0..100, 0, 2, (0, 100));
        // Shard 1 cut short by a time limit at seed 61.
        let cut = summary(0..100, 1, 2, (0, 60));
        refused(&[a.clone(), cut], "seed 61 of the declared range 0..100 ran in none of the summaries: shard 1/2 in s1-0-60.json stops before it");
        refused(std::slice::from_ref(&a), "seed 1 of the declared range 0..100 ran in none of the summaries: no summary holds shard 1/2");
        let b = summary(0..100, 1, 2, (0, 100));
        let mut other_build = b.clone();
        other_build.summary.build.commit = "another".into();
        refused(&[a.clone(), other_build], "come from different builds");
        let mut lying = b.clone();
        lying.summary.violations = 1;
        refused(
            &[a.clone(), lying],
            "counts 1 violations but lists 0 failing seeds",
        );
        let merged = merge(&[b, a]).unwrap();
        assert_eq!(merged.seeds, 100);
        assert_eq!(
            crate::summary_text::describe_seeds(&merged),
            "0..100 (all 2 shards); stopped by the range is done"
        );
    }
}
