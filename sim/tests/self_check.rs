//! The simulator must catch engines and storage stacks that lie: a sweep of at most 1,000
//! seeds finds a violation for each lying filesystem. If the harness (workload, fault
//! model or checker) stops catching one of them, this test fails CI.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use strata_sim::case::{Case, Fault, Liar};
use strata_sim::runner::run_case;

fn seeds_to_catch(liar: Liar) -> Option<u64> {
    let faults: BTreeSet<Fault> = Fault::ALL.into_iter().collect();
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
    let faults: BTreeSet<Fault> = Fault::ALL.into_iter().collect();
    for seed in 0..50 {
        let report = run_case(&Case::new(seed, 1000, faults.clone()), false);
        assert!(
            report.finding.is_none(),
            "seed {seed}: {:?}",
            report.finding
        );
    }
}
