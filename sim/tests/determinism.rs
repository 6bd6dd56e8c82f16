//! Same seed, same run: every seed run twice gives the same trace hash; different seeds
//! give different runs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use strata_sim::case::{Case, Fault};
use strata_sim::runner::run_case;

#[test]
fn the_same_seed_gives_the_same_trace_and_different_seeds_differ() {
    let faults: BTreeSet<Fault> = Fault::ALL.into_iter().collect();
    let mut hashes = BTreeSet::new();
    for seed in 0..40 {
        let case = Case::new(seed, 400, faults.clone());
        let first = run_case(&case, false);
        let second = run_case(&case, false);
        assert_eq!(
            first.trace_hash, second.trace_hash,
            "seed {seed} is not deterministic"
        );
        assert_eq!(
            first.stats, second.stats,
            "seed {seed} is not deterministic"
        );
        assert_eq!(first.finding, second.finding);
        hashes.insert(first.trace_hash);
    }
    assert_eq!(hashes.len(), 40, "every seed should run differently");
}

#[test]
fn tracing_does_not_change_the_run() {
    let faults: BTreeSet<Fault> = Fault::ALL.into_iter().collect();
    for seed in [3, 17, 99] {
        let case = Case::new(seed, 300, faults.clone());
        let quiet = run_case(&case, false);
        let traced = run_case(&case, true);
        assert_eq!(quiet.trace_hash, traced.trace_hash);
        assert!(!traced.trace.is_empty());
    }
}

#[test]
fn turning_a_fault_off_keeps_the_workload() {
    use strata_sim::workload::plan;
    let all: BTreeSet<Fault> = Fault::ALL.into_iter().collect();
    let mut fewer = all.clone();
    fewer.remove(&Fault::Eio);
    fewer.remove(&Fault::Crash);
    let a = plan(&Case::new(5, 300, all));
    let b = plan(&Case::new(5, 300, fewer));
    let ops_a: Vec<_> = a.steps.iter().map(|step| step.op.clone()).collect();
    let ops_b: Vec<_> = b.steps.iter().map(|step| step.op.clone()).collect();
    assert_eq!(ops_a, ops_b);
}
