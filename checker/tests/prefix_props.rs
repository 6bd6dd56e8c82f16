//! Property tests: the checker's incremental prefix walk agrees with a brute-force reference
//! that rebuilds `base + w[0..k]` for every `k`.
//!
//! Histories are random: batches of puts and deletes over a small key space (so writes
//! overlap and different prefixes can coincide), random sync flags, durable points, and
//! `Ok`/`Failed`/`Rejected`/in-flight outcomes. The reference computes `k_min` from the rules
//! of DESIGN §4 directly.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_checker::{Checker, Mutation, Outcome, ViolationKind};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// How a generated write ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Ok,
    Failed,
    Rejected,
    /// Never completed: in flight at the crash.
    InFlight,
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        batch: Vec<Mutation>,
        sync: bool,
        end: End,
    },
    DurablePoint,
}

/// A corruption of a valid recovered state.
#[derive(Clone, Debug)]
enum Corruption {
    /// Remove the `n`-th key (mod the state's size).
    Drop(usize),
    /// Replace the `n`-th key's value with value number `v` (some never written).
    Change(usize, u8),
    /// Insert key number `k` with value number `v`.
    Add(u8, u8),
}

fn key(n: u8) -> Vec<u8> {
    format!("k{n}").into_bytes()
}

fn value(n: u8) -> Vec<u8> {
    format!("v{n}").into_bytes()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (0u8..6, prop::option::weighted(0.75, 0u8..4)).prop_map(|(k, v)| match v {
        Some(v) => Mutation::put(key(k), value(v)),
        None => Mutation::delete(key(k)),
    })
}

fn step() -> impl Strategy<Value = Step> {
    let end = prop_oneof![
        14 => Just(End::Ok),
        2 => Just(End::Failed),
        2 => Just(End::Rejected),
        1 => Just(End::InFlight),
    ];
    prop_oneof![
        9 => (prop::collection::vec(mutation(), 1..4), prop::bool::weighted(0.2), end)
            .prop_map(|(batch, sync, end)| Step::Write { batch, sync, end }),
        1 => Just(Step::DurablePoint),
    ]
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        any::<usize>().prop_map(Corruption::Drop),
        (any::<usize>(), 0u8..6).prop_map(|(n, v)| Corruption::Change(n, v)),
        (0u8..8, 0u8..6).prop_map(|(k, v)| Corruption::Add(k, v)),
    ]
}

/// The reference view of one epoch: its non-rejected batches in issue order and `k_min`.
struct Reference {
    base: State,
    prefix: Vec<Vec<Mutation>>,
    k_min: usize,
    /// The acknowledged model at the end of the epoch.
    model: State,
}

impl Reference {
    fn state_after(&self, k: usize) -> State {
        let mut state = self.base.clone();
        for batch in &self.prefix[..k] {
            apply(&mut state, batch);
        }
        state
    }

    /// The smallest allowed `k` whose state equals `recovered`, by brute force.
    fn smallest_valid(&self, recovered: &State) -> Option<usize> {
        (self.k_min..=self.prefix.len()).find(|&k| &self.state_after(k) == recovered)
    }
}

fn apply(state: &mut State, batch: &[Mutation]) {
    for mutation in batch {
        match mutation {
            Mutation::Put { key, value } => {
                state.insert(key.clone(), value.clone());
            }
            Mutation::Delete { key } => {
                state.remove(key);
            }
        }
    }
}

/// Feeds one epoch's steps to the checker (ops numbered from `*op`) and computes the reference
/// by the rules: an `Ok` sync write makes itself and everything before it durable; a durable
/// point makes every write acknowledged `Ok` before it durable; rejected writes are dropped.
fn run_epoch(checker: &mut Checker, op: &mut u64, steps: &[Step]) -> Reference {
    let base = checker.model().clone();
    let mut model = base.clone();
    let mut ends = Vec::new();
    let mut batches = Vec::new();
    let mut durable_upto = 0;
    let mut last_ok = None;
    for step in steps {
        *op += 1;
        match step {
            Step::Write { batch, sync, end } => {
                let local = batches.len();
                let id = checker.write_issued(*op, batch.clone(), *sync);
                match end {
                    End::Ok => {
                        checker.write_completed(id, Outcome::Ok);
                        apply(&mut model, batch);
                        last_ok = Some(local);
                        if *sync {
                            durable_upto = durable_upto.max(local + 1);
                        }
                    }
                    End::Failed => checker.write_completed(id, Outcome::Failed),
                    End::Rejected => checker.write_completed(id, Outcome::Rejected),
                    End::InFlight => {}
                }
                batches.push(batch.clone());
                ends.push(*end);
            }
            Step::DurablePoint => {
                checker.durable_point(*op);
                if let Some(last) = last_ok {
                    durable_upto = durable_upto.max(last + 1);
                }
            }
        }
    }
    let mut prefix = Vec::new();
    let mut k_min = 0;
    for (local, (batch, end)) in batches.into_iter().zip(ends).enumerate() {
        if end == End::Rejected {
            continue;
        }
        if local < durable_upto {
            k_min += 1;
        }
        prefix.push(batch);
    }
    Reference {
        base,
        prefix,
        k_min,
        model,
    }
}

/// A non-empty starting state, made by a first epoch that ends in a clean reopen.
fn seed_base(checker: &mut Checker, op: &mut u64, base: &[(u8, u8)]) {
    for &(k, v) in base {
        *op += 1;
        let id = checker.write_issued(*op, vec![Mutation::put(key(k), value(v))], false);
        checker.write_completed(id, Outcome::Ok);
    }
    *op += 1;
    checker.clean_reopen(*op);
    let state = checker.model().clone();
    *op += 1;
    let k = checker
        .recovered(*op, &state, &[])
        .expect("a clean reopen recovers everything");
    assert!(k <= base.len());
}

fn crash_and_recover(
    checker: &mut Checker,
    op: &mut u64,
    state: &State,
) -> Result<usize, strata_checker::Violation> {
    *op += 1;
    checker.crashed(*op);
    *op += 1;
    let point_reads: Vec<_> = (0u8..8)
        .map(|k| (key(k), state.get(&key(k)).cloned()))
        .collect();
    checker.recovered(*op, state, &point_reads)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any allowed prefix passes, and the checker picks the smallest allowed `k` that matches.
    #[test]
    fn every_allowed_prefix_passes(
        base in prop::collection::vec((0u8..6, 0u8..4), 0..6),
        steps in prop::collection::vec(step(), 0..40),
        pick in any::<usize>(),
    ) {
        let mut checker = Checker::new();
        let mut op = 0;
        seed_base(&mut checker, &mut op, &base);
        let reference = run_epoch(&mut checker, &mut op, &steps);
        prop_assert_eq!(checker.model(), &reference.model);
        let n = reference.prefix.len();
        prop_assert_eq!(checker.prefix_bounds(), (reference.k_min, n));
        let k = reference.k_min + pick % (n - reference.k_min + 1);
        let recovered = reference.state_after(k);
        let expected = reference.smallest_valid(&recovered);
        prop_assert!(expected.is_some_and(|j| j <= k));
        let chosen = crash_and_recover(&mut checker, &mut op, &recovered);
        prop_assert_eq!(chosen.ok(), expected);
        prop_assert_eq!(checker.base(), &recovered);
    }

    /// A corrupted state passes exactly when brute force finds an allowed prefix equal to it;
    /// otherwise the checker reports `RecoveryNotAPrefix`.
    #[test]
    fn corrupted_states_are_judged_like_brute_force(
        base in prop::collection::vec((0u8..6, 0u8..4), 0..6),
        steps in prop::collection::vec(step(), 0..40),
        pick in any::<usize>(),
        corruptions in prop::collection::vec(corruption(), 1..3),
    ) {
        let mut checker = Checker::new();
        let mut op = 0;
        seed_base(&mut checker, &mut op, &base);
        let reference = run_epoch(&mut checker, &mut op, &steps);
        let n = reference.prefix.len();
        let k = reference.k_min + pick % (n - reference.k_min + 1);
        let mut recovered = reference.state_after(k);
        for corruption in &corruptions {
            match *corruption {
                Corruption::Drop(i) => {
                    if let Some(victim) = recovered.keys().nth(i % recovered.len().max(1)).cloned() {
                        recovered.remove(&victim);
                    }
                }
                Corruption::Change(i, v) => {
                    if let Some(victim) = recovered.keys().nth(i % recovered.len().max(1)).cloned() {
                        recovered.insert(victim, value(v));
                    }
                }
                Corruption::Add(k, v) => {
                    recovered.insert(key(k), value(v));
                }
            }
        }
        let expected = reference.smallest_valid(&recovered);
        match crash_and_recover(&mut checker, &mut op, &recovered) {
            Ok(chosen) => prop_assert_eq!(Some(chosen), expected),
            Err(violation) => {
                prop_assert_eq!(expected, None, "{}", violation);
                prop_assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
                prop_assert!(violation.explanation.contains("first differing key"), "{}", violation);
            }
        }
    }

    /// A state that lost an acknowledged-durable write is always reported.
    #[test]
    fn losing_a_durable_write_is_reported(
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut checker = Checker::new();
        let mut op = 0;
        let reference = run_epoch(&mut checker, &mut op, &steps);
        prop_assume!(reference.k_min > 0);
        let durable = reference.state_after(reference.k_min);
        // Every prefix below k_min that differs from all allowed ones must be refused.
        for j in 0..reference.k_min {
            let recovered = reference.state_after(j);
            let mut fork = checker.clone();
            let mut fork_op = op;
            let verdict = crash_and_recover(&mut fork, &mut fork_op, &recovered);
            match reference.smallest_valid(&recovered) {
                Some(valid) => prop_assert_eq!(verdict.ok(), Some(valid)),
                None => {
                    let violation = verdict.expect_err("a lost durable write must be caught");
                    prop_assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
                }
            }
        }
        prop_assert_eq!(crash_and_recover(&mut checker, &mut op, &durable).ok(), reference.smallest_valid(&durable));
    }

    /// Reads and scans answered from the acknowledged model always pass, across epochs; a
    /// value never written always fails.
    #[test]
    fn reads_from_the_model_pass_across_epochs(
        epochs in prop::collection::vec((prop::collection::vec(step(), 0..25), any::<usize>()), 1..4),
        probes in prop::collection::vec(0u8..8, 1..8),
    ) {
        let mut checker = Checker::new();
        let mut op = 0;
        for (steps, pick) in &epochs {
            let reference = run_epoch(&mut checker, &mut op, steps);
            prop_assert_eq!(checker.model(), &reference.model);
            for &k in &probes {
                op += 1;
                let answer = reference.model.get(&key(k)).map(Vec::as_slice);
                prop_assert!(checker.read(op, &key(k), answer).is_ok());
                op += 1;
                let violation = checker.read(op, &key(k), Some(b"never")).expect_err("never written");
                prop_assert_eq!(violation.kind, ViolationKind::ReadMismatch);
            }
            op += 1;
            let lower = key(probes[0]);
            let all: Vec<_> = reference.model.range(lower.clone()..).map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert!(checker.scan(op, Some(&lower), None, &all).is_ok());
            let n = reference.prefix.len();
            let k = reference.k_min + pick % (n - reference.k_min + 1);
            let recovered = reference.state_after(k);
            prop_assert_eq!(crash_and_recover(&mut checker, &mut op, &recovered).ok(), reference.smallest_valid(&recovered));
        }
        prop_assert_eq!(checker.stats().violations, probes.len() as u64 * epochs.len() as u64);
        prop_assert_eq!(checker.epoch(), epochs.len() as u64);
    }
}
