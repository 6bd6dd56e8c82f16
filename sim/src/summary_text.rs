//! Sweep summaries as text: what `strata sweep` and `strata report merge` print without
//! `--json`, one line per subject (counts, faults, engine work and the trace digest,
//! concurrency, snapshots, damage, coverage marks, medium faults, violations).

use crate::sweep::{Stopped, Summary};
use std::collections::BTreeMap;
use std::path::Path;

/// Prints a summary as text (`corpus`: where the sweep saved its failing seeds).
pub fn print_text(summary: &Summary, corpus: Option<&Path>) {
    crate::outln!(
        "{} seeds, {} ops, {} crashes, {} recoveries, {} restarts in {:.1}s ({:.0} seeds/s, {:.0} ops/s, {:.0} recoveries/s)",
        summary.seeds,
        summary.ops,
        summary.crashes,
        summary.recoveries,
        summary.restarts,
        summary.elapsed_s,
        summary.seeds_per_s,
        summary.ops_per_s,
        summary.recoveries_per_s
    );
    if summary.shard_count > 1
        || summary.stopped != Stopped::RangeDone
        || summary.seed_ranges.len() > 1
    {
        crate::outln!("seeds run: {}", describe_seeds(summary));
    }
    let faults: Vec<String> = summary
        .faults
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    crate::outln!("faults: {}", faults.join(" "));
    crate::outln!(
        "engine work: {} flushes, {} compactions; trace digest {}",
        summary.flushes,
        summary.compactions,
        summary.trace_digest
    );
    if summary.clients > 0 {
        crate::outln!(
            "concurrency: {:.2} clients per seed on average, {} commit groups ({} with more than one writer), {} writes overlapped by a flush or compaction, {} task switches",
            summary.clients as f64 / summary.seeds.max(1) as f64,
            summary.commit_groups,
            summary.multi_writer_groups,
            summary.writes_overlapping_background,
            summary.schedule_switches
        );
    }
    crate::outln!(
        "snapshots and scans: {} snapshots, {} reads at a snapshot checked ({} after a flush or compaction since it was taken), {} live scans checked at their sequence, {} reverse and {} seek scans among all, {} snapshots refused reads after close",
        summary.snapshots,
        summary.snapshot_reads,
        summary.snapshot_reads_after_background,
        summary.sequenced_scans,
        summary.reverse_scans,
        summary.seek_scans,
        summary.snapshots_refused_after_close
    );
    let damage: Vec<String> = summary
        .damage_by_target
        .iter()
        .map(|(label, &count)| {
            let of = |map: &BTreeMap<String, u64>| map.get(label).copied().unwrap_or(0);
            let detected = of(&summary.damage_detected_by_target);
            let recovered = of(&summary.damage_recovered_past_by_target);
            format!(
                "{label} {count} ({detected} detected, {recovered} recovered past, {} harmless)",
                count.saturating_sub(detected + recovered)
            )
        })
        .collect();
    crate::outln!(
        "damage to durable files: {} injected, {} runs ended by detected corruption; by damage and file: {}",
        summary.damage_by_target.values().sum::<u64>(),
        summary.detected_corruptions,
        if damage.is_empty() { "none".to_string() } else { damage.join(", ") }
    );
    crate::coverage::print_marks(&summary.marks, summary.until_covered);
    if !summary.medium.is_empty() {
        crate::outln!(
            "medium faults: {}",
            crate::medium::describe(&summary.medium)
        );
    }
    crate::outln!("violations: {}", summary.violations);
    for failure in &summary.failures {
        let saved = corpus
            .map(|dir| {
                format!(
                    "  -> {}",
                    dir.join(format!("seed-{}.json", failure.seed)).display()
                )
            })
            .unwrap_or_default();
        crate::outln!(
            "  seed {}: {} at step {}: {}{saved}",
            failure.seed,
            failure.kind,
            failure.step,
            failure.explanation
        );
    }
}

/// The seeds a summary ran, and why it stopped, in a line.
pub fn describe_seeds(summary: &Summary) -> String {
    let n = summary.shard_count;
    let ranges: Vec<String> = summary
        .seed_ranges
        .iter()
        .map(|range| {
            if n > 1 {
                format!(
                    "{}..{} of shard {}/{n}",
                    range.start, range.end, range.shard
                )
            } else {
                format!("{}..{}", range.start, range.end)
            }
        })
        .collect();
    // A whole sharded range, as a complete merge has it.
    let whole = summary.seed_ranges.len() as u64 == n
        && n > 1
        && summary.seed_ranges.iter().enumerate().all(|(i, range)| {
            range.shard == i as u64
                && (range.start, range.end)
                    == (summary.seed_ranges[0].start, summary.seed_ranges[0].end)
        });
    let mut text = if whole {
        let range = summary.seed_ranges[0];
        format!("{}..{} (all {n} shards)", range.start, range.end)
    } else if ranges.is_empty() {
        "none".to_string()
    } else {
        ranges.join(", ")
    };
    text.push_str(&format!("; stopped by {}", summary.stopped.describe()));
    if let ([range], Stopped::TimeLimit | Stopped::Interrupted) =
        (summary.seed_ranges.as_slice(), summary.stopped)
    {
        let end = summary
            .range
            .end
            .map(|end| end.to_string())
            .unwrap_or_default();
        text.push_str(&format!("; continue with --seeds {}..{end}", range.end));
    }
    text
}
