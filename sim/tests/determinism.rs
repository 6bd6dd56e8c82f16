//! Same seed, same run: every seed run twice gives the same trace hash; different seeds
//! give different runs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use strata_sim::case::{Case, Fault, Mode};
use strata_sim::runner::run_case;

fn case(seed: u64, ops: usize, mode: Mode) -> Case {
    let mut case = Case::new(seed, ops, Fault::DEFAULT.into_iter().collect());
    case.mode = mode;
    case
}

#[test]
fn the_same_seed_gives_the_same_trace_and_different_seeds_differ() {
    same_seed_same_trace(Mode::Sequential);
}

/// With 1 to 8 clients, group commit and the background threads running under the seeded
/// scheduler, a seed still fixes every byte and every scheduling decision.
#[test]
fn concurrent_runs_are_deterministic_too() {
    same_seed_same_trace(Mode::Concurrent);
}

fn same_seed_same_trace(mode: Mode) {
    let mut hashes = BTreeSet::new();
    for seed in 0..40 {
        let case = case(seed, 400, mode);
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
    for mode in [Mode::Sequential, Mode::Concurrent] {
        for seed in [3, 17, 99] {
            let case = case(seed, 300, mode);
            let quiet = run_case(&case, false);
            let traced = run_case(&case, true);
            assert_eq!(quiet.trace_hash, traced.trace_hash);
            assert!(!traced.trace.is_empty());
        }
    }
}

#[test]
fn a_concurrent_trace_shows_which_task_ran_and_the_hash_covers_the_schedule() {
    let mut case = case(17, 300, Mode::Concurrent);
    case.clients = Some(4);
    let case = case;
    let traced = run_case(&case, true);
    let text = traced.trace.join("\n");
    assert!(
        text.contains("[task 0]"),
        "the runner's own lines name its task"
    );
    for client in 0..4 {
        assert!(
            text.contains(&format!("client {client}: step")),
            "client {client}"
        );
    }
    assert!(
        text.contains("schedule: ") && text.contains(": task "),
        "the switches are listed"
    );
    // Taking a preemption away changes the schedule, and the hash sees it. (Not every switch
    // can be taken away: one away from a blocked task is forced.)
    assert!(!traced.switch_decisions.is_empty(), "four clients switch");
    let changed = traced.switch_decisions.iter().take(20).any(|&decision| {
        let mut fewer = case.clone();
        fewer.no_switch.insert(decision);
        run_case(&fewer, false).trace_hash != traced.trace_hash
    });
    assert!(
        changed,
        "no preemption among the first 20 changed the trace hash"
    );
}

#[test]
fn turning_a_fault_off_keeps_the_workload() {
    use strata_sim::workload::plan;
    let all: BTreeSet<Fault> = Fault::DEFAULT.into_iter().collect();
    let mut fewer = all.clone();
    fewer.remove(&Fault::Eio);
    fewer.remove(&Fault::Crash);
    let a = plan(&Case::new(5, 300, all));
    let b = plan(&Case::new(5, 300, fewer));
    let ops_a: Vec<_> = a.steps.iter().map(|step| step.op.clone()).collect();
    let ops_b: Vec<_> = b.steps.iter().map(|step| step.op.clone()).collect();
    assert_eq!(ops_a, ops_b);
}

/// Determinism across processes, not just within one: separate runs of the binary (each
/// with its own address-space layout, thread-local state and allocator history) report the
/// trace hash this process computes.
#[test]
fn separate_processes_compute_the_same_trace_hash() {
    for (mode, seed) in [(Mode::Concurrent, 7u64), (Mode::Sequential, 7)] {
        let expected = run_case(&case(seed, 300, mode), false).trace_hash;
        for _ in 0..2 {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(["replay", "--seed", &seed.to_string(), "--ops", "300"])
                .args(["--mode", mode.name()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            let hash = text
                .split("trace hash ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no trace hash in {text}"));
            assert_eq!(
                u64::from_str_radix(hash, 16).unwrap(),
                expected,
                "{mode:?} seed {seed}"
            );
        }
    }
}
