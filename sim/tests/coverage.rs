//! The standard coverage sweep: sequential and concurrent seeds `0..1000` (every fault
//! kind, 1,000 steps each) must reach every coverage mark of the engine at least once, so
//! that a change that makes one of those paths unreachable fails CI; the failure lists the
//! marks missed. The key crash windows must also have been crashed in and recovered from.

#![allow(clippy::unwrap_used)]

use strata_engine::Mark;
use strata_sim::case::{Case, Fault, Mode};
use strata_sim::coverage::{add_rows, missed, MarkRow};
use strata_sim::runner::run_case;
use strata_sim::sweep::{sweep, Seeds, SweepConfig};

/// The seeds of the standard coverage sweep, in each mode.
const SEEDS: std::ops::Range<u64> = 0..1000;

fn marks_of(mode: Mode) -> Vec<MarkRow> {
    let mut config = SweepConfig::new(Seeds::all(SEEDS));
    config.mode = mode;
    let (summary, failures) = sweep(&config);
    let first = failures.first().and_then(|report| report.finding.clone());
    assert_eq!(summary.violations, 0, "{mode:?}: first violation {first:?}");
    summary.marks
}

#[test]
fn the_standard_sweep_reaches_every_mark() {
    let sequential = marks_of(Mode::Sequential);
    let concurrent = marks_of(Mode::Concurrent);
    let mut both = sequential.clone();
    add_rows(&mut both, &concurrent);
    let table: Vec<String> = both
        .iter()
        .zip(sequential.iter().zip(&concurrent))
        .map(|(row, (s, c))| {
            format!(
                "{:30} reached {:>7} (sequential {:>6}, concurrent {:>6}), crashed at {:>4}, recovered from {:>4}",
                row.name, row.reached, s.reached, c.reached, row.crashed_at, row.recovered_from
            )
        })
        .collect();
    let table = table.join("\n");
    println!("{table}");
    let never = missed(&both, 1);
    assert!(
        never.is_empty(),
        "the standard sweep (sequential and concurrent seeds {SEEDS:?}) never reached: {}\n{table}",
        never.join(", ")
    );
    // The crash windows the engine's durability rests on were crashed in, and the checker
    // verified the recovery from them.
    for mark in [
        Mark::WalSuccessorCreated,
        Mark::FlushTableSynced,
        Mark::FlushWalObsolete,
        Mark::CompactionOutputsSynced,
        Mark::CompactionInputsObsolete,
        Mark::RecoveryManifestWritten,
    ] {
        let row = both.iter().find(|row| row.name == mark.name()).unwrap();
        assert!(
            row.crashed_at > 0 && row.recovered_from > 0,
            "no verified recovery from a crash in the window of {mark}:\n{table}"
        );
    }
}

#[test]
fn marks_are_counted_per_run_and_do_not_change_it() {
    for mode in [Mode::Sequential, Mode::Concurrent] {
        let mut case = Case::new(7, 400, Fault::ALL.into_iter().collect());
        case.mode = mode;
        let first = run_case(&case, false);
        let again = run_case(&case, true);
        assert_eq!(first.trace_hash, again.trace_hash, "{mode:?}");
        assert_eq!(first.stats, again.stats, "{mode:?}: marks included");
        assert!(
            first.stats.marks.iter().any(|row| row.reached > 0),
            "{mode:?}"
        );
        // Every crash attributed to a mark is one of the run's crashes.
        let attributed: u64 = first.stats.marks.iter().map(|row| row.crashed_at).sum();
        assert!(attributed <= first.stats.crashes, "{mode:?}");
        let recovered: u64 = first.stats.marks.iter().map(|row| row.recovered_from).sum();
        assert!(recovered <= attributed, "{mode:?}");
    }
}
