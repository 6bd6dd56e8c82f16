//! The simulator must catch engines and storage stacks that lie: a sweep of at most 1,000
//! seeds finds a violation for each lying filesystem. If the harness (workload, fault
//! model or checker) stops catching one of them, this test fails CI.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use strata_sim::case::{Case, Fault, Liar};
use strata_sim::runner::run_case;

fn seeds_to_catch(liar: Liar) -> Option<u64> {
    let faults: BTreeSet<Fault> = Fault::DEFAULT.into_iter().collect();
    (0..1000u64).find(|&seed| {
        let mut case = Case::new(seed, 1000, faults.clone());
        case.liar = Some(liar);
        run_case(&case, false).finding.is_some()
    })
}

#[test]
fn a_wal_sync_that_does_nothing_is_caught() {
    let seed = seeds_to_catch(Liar::WalSyncNoop);
    assert!(
        seed.is_some(),
        "1,000 seeds did not catch a WAL sync that does nothing"
    );
}

#[test]
fn a_sync_dir_that_does_nothing_is_caught() {
    let seed = seeds_to_catch(Liar::SyncDirNoop);
    assert!(
        seed.is_some(),
        "1,000 seeds did not catch a sync_dir that does nothing"
    );
}

#[test]
fn a_failed_fsync_reported_as_success_is_caught() {
    let seed = seeds_to_catch(Liar::FailedSyncReportedOk);
    assert!(
        seed.is_some(),
        "1,000 seeds did not catch a failed fsync reported as success"
    );
}

#[test]
fn honest_storage_passes_the_same_seeds() {
    let faults: BTreeSet<Fault> = Fault::DEFAULT.into_iter().collect();
    for seed in 0..50 {
        let report = run_case(&Case::new(seed, 1000, faults.clone()), false);
        assert!(
            report.finding.is_none(),
            "seed {seed}: {:?}",
            report.finding
        );
    }
}

/// A panic in a run is reported with its message, where it was raised, the step (and, in
/// concurrent mode, the task), and with a trace, the steps up to it.
#[test]
fn a_panic_is_reported_with_its_location_step_and_trace() {
    use strata_sim::case::Mode;
    for mode in [Mode::Sequential, Mode::Concurrent] {
        let mut case = strata_sim::case::Case::new(
            11,
            300,
            strata_sim::case::Fault::DEFAULT.into_iter().collect(),
        );
        case.mode = mode;
        case.liar = Some(Liar::PanicsAtThirdRename);
        let report = strata_sim::runner::run_case(&case, true);
        let finding = report.finding.expect("the planted panic is a finding");
        assert_eq!(finding.kind, "panic", "{mode:?}: {}", finding.explanation);
        assert!(
            finding.explanation.contains("the planted panic")
                && finding.explanation.contains("sim/src/liar.rs:"),
            "{mode:?}: {}",
            finding.explanation
        );
        assert!(finding.step > 0, "{mode:?}: {}", finding.explanation);
        assert!(
            finding
                .explanation
                .contains(&format!("(step {}", finding.step)),
            "{mode:?}: {}",
            finding.explanation
        );
        let last = report.trace.last().expect("the trace up to the panic");
        assert!(last.contains("panicked at"), "{mode:?}: {last}");
        assert!(
            report.trace.len() > 10,
            "{mode:?}: {} lines",
            report.trace.len()
        );
    }
}
