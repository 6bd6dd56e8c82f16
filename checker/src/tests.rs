//! Unit tests of the checker's rules, one scenario each.

use std::collections::BTreeMap;

use crate::{Checker, Mutation, Outcome, Violation, ViolationKind, WriteId};

fn put(key: &str, value: &str) -> Mutation {
    Mutation::put(key.as_bytes(), value.as_bytes())
}

fn del(key: &str) -> Mutation {
    Mutation::delete(key.as_bytes())
}

fn state(pairs: &[(&str, &str)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    pairs
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect()
}

/// A checker with an op counter, for short scenarios.
struct Run {
    checker: Checker,
    op: u64,
}

impl Run {
    fn new() -> Run {
        Run {
            checker: Checker::new(),
            op: 0,
        }
    }

    fn next_op(&mut self) -> u64 {
        self.op += 1;
        self.op
    }

    fn write(&mut self, batch: Vec<Mutation>, sync: bool, outcome: Outcome) -> WriteId {
        let op = self.next_op();
        let id = self.checker.write_issued(op, batch, sync);
        self.checker.write_completed(id, outcome);
        id
    }

    fn ok(&mut self, batch: Vec<Mutation>) -> WriteId {
        self.write(batch, false, Outcome::Ok)
    }

    fn synced(&mut self, batch: Vec<Mutation>) -> WriteId {
        self.write(batch, true, Outcome::Ok)
    }

    fn durable_point(&mut self) {
        let op = self.next_op();
        self.checker.durable_point(op);
    }

    fn read(&mut self, key: &str, answer: Option<&str>) -> Result<(), Violation> {
        let op = self.next_op();
        self.checker
            .read(op, key.as_bytes(), answer.map(str::as_bytes))
    }

    fn scan(
        &mut self,
        lower: Option<&str>,
        upper: Option<&str>,
        answer: &[(&str, &str)],
    ) -> Result<(), Violation> {
        let op = self.next_op();
        let answer: Vec<_> = state(answer).into_iter().collect();
        self.checker.scan(
            op,
            lower.map(str::as_bytes),
            upper.map(str::as_bytes),
            &answer,
        )
    }

    fn crash_and_recover(&mut self, recovered: &[(&str, &str)]) -> Result<usize, Violation> {
        let op = self.next_op();
        self.checker.crashed(op);
        let op = self.next_op();
        self.checker.recovered(op, &state(recovered), &[])
    }
}

/// A tiny deterministic generator for the randomized unit tests (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Asserts that the violation's explanation says `part` (and prints it whole if not).
fn assert_explains(violation: &Violation, part: &str) {
    assert!(violation.explanation.contains(part), "{violation}");
}

#[test]
fn clean_history_passes_with_k_equal_to_n() {
    for seed in 0..20 {
        let mut rng = Lcg(seed);
        let mut run = Run::new();
        let mut reference = BTreeMap::new();
        let writes = 50 + rng.below(50) as usize;
        for _ in 0..writes {
            let size = 1 + rng.below(3);
            let mut batch = Vec::new();
            for _ in 0..size {
                let key = format!("k{}", rng.below(20));
                if rng.below(4) == 0 {
                    reference.remove(key.as_bytes());
                    batch.push(del(&key));
                } else {
                    let value = format!("v{}", rng.below(1000));
                    reference.insert(key.as_bytes().to_vec(), value.as_bytes().to_vec());
                    batch.push(put(&key, &value));
                }
            }
            run.write(batch, rng.below(5) == 0, Outcome::Ok);
            let key = format!("k{}", rng.below(20));
            let answer = reference.get(key.as_bytes()).map(Vec::as_slice);
            let op = run.next_op();
            run.checker.read(op, key.as_bytes(), answer).unwrap();
        }
        assert_eq!(run.checker.model(), &reference);
        let op = run.next_op();
        let scan: Vec<_> = reference.clone().into_iter().collect();
        run.checker.scan(op, None, None, &scan).unwrap();
        let op = run.next_op();
        run.checker.crashed(op);
        let op = run.next_op();
        let k = run.checker.recovered(op, &reference, &[]).unwrap();
        // Nothing was lost, so the chosen prefix is at most n (it is smaller only when the
        // last writes left the state as it was) and the next epoch starts from the model.
        assert!(k <= writes);
        assert_eq!(run.checker.base(), &reference);
        assert_eq!(run.checker.model(), &reference);
        assert_eq!(run.checker.stats().violations, 0);
    }
}

#[test]
fn recovery_of_everything_chooses_n_when_every_write_changes_the_state() {
    let mut run = Run::new();
    for i in 0..10 {
        run.ok(vec![put(&format!("k{i}"), "v")]);
    }
    let all: Vec<(String, &str)> = (0..10).map(|i| (format!("k{i}"), "v")).collect();
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(run.crash_and_recover(&all).unwrap(), 10);
}

#[test]
fn recovery_to_any_prefix_at_or_above_k_min_passes() {
    let history = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")];
    for k in 0..=history.len() {
        let mut run = Run::new();
        run.synced(vec![put("a", "1")]);
        for (key, value) in &history[1..] {
            run.ok(vec![put(key, value)]);
        }
        let result = run.crash_and_recover(&history[..k]);
        if k >= 1 {
            assert_eq!(result.unwrap(), k);
        } else {
            let violation = result.unwrap_err();
            assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
        }
    }
}

#[test]
fn a_lost_synced_write_is_caught() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.synced(vec![put("b", "2")]);
    run.ok(vec![put("c", "3")]);
    let violation = run.crash_and_recover(&[("a", "1")]).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
    assert_explains(&violation, "k in [2, 3]");
    assert_explains(&violation, "last durable ack at step 2");
    assert_explains(&violation, "equals prefix k=1 exactly, below k_min=2");
    assert_explains(&violation, "first differing key: \"b\"");
    assert_explains(
        &violation,
        "expected (k=2): \"2\" — written by step 2 (epoch 0, write #2, Ok, sync)",
    );
    assert_explains(
        &violation,
        "recovered: <absent> — no delete ever issued; last written by step 2",
    );
}

#[test]
fn a_waived_durability_floor_accepts_a_shorter_prefix_but_never_a_hole() {
    // The synced write lost after a waiver (a point-in-time recovery past damage): a prefix.
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.synced(vec![put("b", "2")]);
    run.ok(vec![put("c", "3")]);
    let op = run.next_op();
    run.checker.crashed(op);
    run.checker.waive_durability();
    let op = run.next_op();
    assert_eq!(run.checker.recovered(op, &state(&[("a", "1")]), &[]), Ok(1));
    // A hole stays a violation after a waiver.
    run.ok(vec![put("d", "4")]);
    run.synced(vec![put("e", "5")]);
    let op = run.next_op();
    run.checker.crashed(op);
    run.checker.waive_durability();
    let op = run.next_op();
    let violation = run
        .checker
        .recovered(op, &state(&[("a", "1"), ("e", "5")]), &[])
        .unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
}

#[test]
fn a_hole_in_the_middle_is_caught() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.ok(vec![put("b", "2")]);
    run.ok(vec![put("c", "3")]);
    // write 2 missing, write 3 present: no prefix.
    let violation = run
        .crash_and_recover(&[("a", "1"), ("c", "3")])
        .unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
    assert_explains(&violation, "k in [0, 3]");
    assert_explains(
        &violation,
        "no write of this epoch was acknowledged durable",
    );
}

#[test]
fn half_a_batch_is_caught() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1"), put("b", "2"), del("z")]);
    let violation = run.crash_and_recover(&[("a", "1")]).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
    assert_explains(&violation, "put \"a\" = \"1\" (+2 more)");

    let mut run = Run::new();
    run.ok(vec![put("a", "1"), put("b", "2")]);
    assert_eq!(run.crash_and_recover(&[("a", "1"), ("b", "2")]).unwrap(), 1);
    let mut run = Run::new();
    run.ok(vec![put("a", "1"), put("b", "2")]);
    assert_eq!(run.crash_and_recover(&[]).unwrap(), 0);
}

#[test]
fn a_value_never_written_is_caught() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.ok(vec![put("a", "2")]);
    let violation = run.crash_and_recover(&[("a", "garbage")]).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
    assert_explains(&violation, "recovered: \"garbage\" — NEVER WRITTEN");

    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    let violation = run
        .crash_and_recover(&[("a", "1"), ("ghost", "x")])
        .unwrap_err();
    assert_explains(&violation, "first differing key: \"ghost\"");
    assert_explains(&violation, "expected (k=1): <absent>");
}

#[test]
fn a_resurrected_delete_is_caught() {
    let mut run = Run::new();
    run.synced(vec![put("a", "1")]);
    run.synced(vec![del("a")]);
    let violation = run.crash_and_recover(&[("a", "1")]).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
    assert_explains(&violation, "expected (k=2): <absent> — deleted by step 2");
    assert_explains(&violation, "recovered: \"1\" — written by step 1");

    // The same delete unsynced may be lost (as a suffix).
    let mut run = Run::new();
    run.synced(vec![put("a", "1")]);
    run.ok(vec![del("a")]);
    assert_eq!(run.crash_and_recover(&[("a", "1")]).unwrap(), 1);
}

#[test]
fn reads_are_checked_against_the_model() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.read("a", Some("1")).unwrap();
    run.read("b", None).unwrap();
    let violation = run.read("a", Some("0")).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::ReadMismatch);
    assert_explains(&violation, "expected: \"1\" — written by step 1");
    assert_explains(&violation, "answered: \"0\" — NEVER WRITTEN");
    let violation = run.read("a", None).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::ReadMismatch);
    run.ok(vec![del("a")]);
    let violation = run.read("a", Some("1")).unwrap_err();
    assert_explains(&violation, "expected: <absent> — deleted by step");
    assert!(violation.to_string().starts_with("read mismatch at step"));
}

#[test]
fn rejected_writes_never_count() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.write(vec![put("a", "bad")], true, Outcome::Rejected);
    run.write(vec![put("b", "bad")], false, Outcome::Rejected);
    run.ok(vec![put("c", "3")]);
    assert_eq!(run.checker.model(), &state(&[("a", "1"), ("c", "3")]));
    assert!(run.read("a", Some("bad")).is_err());
    assert!(run.read("b", Some("bad")).is_err());
    // The rejected sync write made nothing durable.
    assert_eq!(run.checker.prefix_bounds(), (0, 2));
    let mut other = Run::new();
    other.ok(vec![put("a", "1")]);
    other.write(vec![put("a", "bad")], true, Outcome::Rejected);
    other.ok(vec![put("c", "3")]);
    let violation = other.crash_and_recover(&[("a", "bad")]).unwrap_err();
    assert_explains(&violation, "written only by step 2");
    assert_explains(&violation, "(1 rejected, not counted)");
    // k counts only the non-rejected writes.
    assert_eq!(run.crash_and_recover(&[("a", "1"), ("c", "3")]).unwrap(), 2);
    assert_eq!(run.checker.stats().writes_rejected, 2);
}

#[test]
fn failed_writes_may_be_present_or_absent_only_as_a_prefix() {
    let build = || {
        let mut run = Run::new();
        run.synced(vec![put("a", "1")]);
        run.write(vec![put("b", "2")], false, Outcome::Failed);
        run.write(vec![put("c", "3")], true, Outcome::Failed);
        run
    };
    assert_eq!(build().crash_and_recover(&[("a", "1")]).unwrap(), 1);
    assert_eq!(
        build()
            .crash_and_recover(&[("a", "1"), ("b", "2")])
            .unwrap(),
        2
    );
    assert_eq!(
        build()
            .crash_and_recover(&[("a", "1"), ("b", "2"), ("c", "3")])
            .unwrap(),
        3
    );
    let violation = build()
        .crash_and_recover(&[("a", "1"), ("c", "3")])
        .unwrap_err();
    assert_eq!(violation.kind, ViolationKind::RecoveryNotAPrefix);
    // A failed write before an acknowledged durable one is inside k_min.
    let mut run = Run::new();
    run.write(vec![put("a", "1")], false, Outcome::Failed);
    run.synced(vec![put("b", "2")]);
    assert_eq!(run.checker.prefix_bounds(), (2, 2));
    assert!(run.crash_and_recover(&[("b", "2")]).is_err());
}

#[test]
fn in_flight_writes_at_a_crash_are_failed() {
    let build = || {
        let mut run = Run::new();
        run.synced(vec![put("a", "1")]);
        let op = run.next_op();
        let id = run.checker.write_issued(op, vec![put("b", "2")], true);
        let op = run.next_op();
        run.checker.crashed(op);
        // A completion after the crash does not change its fate.
        run.checker.write_completed(id, Outcome::Ok);
        run
    };
    for recovered in [&[("a", "1")][..], &[("a", "1"), ("b", "2")][..]] {
        let mut run = build();
        assert_eq!(run.checker.model(), &state(&[("a", "1")]));
        let op = run.next_op();
        assert!(run.checker.recovered(op, &state(recovered), &[]).is_ok());
        assert_eq!(run.checker.stats().writes_failed, 1);
        assert_eq!(run.checker.stats().writes_ok, 1);
    }
}

#[test]
fn reads_accept_in_doubt_values_only_after_the_last_acknowledged_write() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.write(vec![put("a", "2")], false, Outcome::Failed);
    run.write(vec![del("a")], false, Outcome::Failed);
    run.read("a", Some("1")).unwrap();
    run.read("a", Some("2")).unwrap();
    run.read("a", None).unwrap();
    let violation = run.read("a", Some("3")).unwrap_err();
    assert_explains(&violation, "also accepted");
    // An acknowledged write after the failed ones hides them.
    run.ok(vec![put("a", "4")]);
    run.read("a", Some("4")).unwrap();
    assert!(run.read("a", Some("2")).is_err());
    assert!(run.read("a", None).is_err());
    // A pending write is in doubt too.
    let op = run.next_op();
    let id = run.checker.write_issued(op, vec![put("p", "x")], false);
    run.read("p", Some("x")).unwrap();
    run.read("p", None).unwrap();
    run.checker.write_completed(id, Outcome::Ok);
    assert!(run.read("p", None).is_err());
}

#[test]
fn scans_are_checked_key_by_key() {
    let mut run = Run::new();
    run.ok(vec![
        put("a", "1"),
        put("b", "2"),
        put("c", "3"),
        put("d", "4"),
    ]);
    run.scan(
        None,
        None,
        &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
    )
    .unwrap();
    run.scan(Some("b"), Some("d"), &[("b", "2"), ("c", "3")])
        .unwrap();
    run.scan(Some("c"), None, &[("c", "3"), ("d", "4")])
        .unwrap();
    run.scan(Some("d"), Some("b"), &[]).unwrap();
    run.scan(Some("b"), Some("b"), &[]).unwrap();

    let missing = run.scan(Some("b"), Some("d"), &[("b", "2")]).unwrap_err();
    assert_eq!(missing.kind, ViolationKind::ScanMismatch);
    assert_explains(&missing, "is missing key \"c\"");
    let extra = run.scan(
        None,
        None,
        &[("a", "1"), ("aa", "x"), ("b", "2"), ("c", "3"), ("d", "4")],
    );
    assert_explains(&extra.unwrap_err(), "has extra key \"aa\"");
    let wrong = run.scan(None, Some("b"), &[("a", "9")]).unwrap_err();
    assert_explains(&wrong, "has a wrong value for key \"a\"");
    let outside = run.scan(Some("b"), Some("d"), &[("b", "2"), ("c", "3"), ("d", "4")]);
    assert_explains(&outside.unwrap_err(), "outside the range");

    let op = run.next_op();
    let unordered = vec![
        (b"b".to_vec(), b"2".to_vec()),
        (b"a".to_vec(), b"1".to_vec()),
    ];
    let violation = run.checker.scan(op, None, None, &unordered).unwrap_err();
    assert_explains(&violation, "not after the previous key");

    // In-doubt writes: a failed delete of "b" and a failed put of "e".
    run.write(vec![del("b"), put("e", "5")], false, Outcome::Failed);
    run.scan(
        None,
        None,
        &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
    )
    .unwrap();
    run.scan(
        None,
        None,
        &[("a", "1"), ("c", "3"), ("d", "4"), ("e", "5")],
    )
    .unwrap();
    assert!(run.scan(None, None, &[("a", "1"), ("c", "3")]).is_err());
    assert_eq!(run.checker.stats().scans_checked, 13);
}

#[test]
fn durable_points_make_acknowledged_writes_durable() {
    let build = || {
        let mut run = Run::new();
        run.ok(vec![put("a", "1")]);
        run.ok(vec![put("b", "2")]);
        run.durable_point();
        run.ok(vec![put("c", "3")]);
        run
    };
    assert_eq!(build().checker.prefix_bounds(), (2, 3));
    let violation = build().crash_and_recover(&[("a", "1")]).unwrap_err();
    assert_explains(&violation, "last durable ack at step 3");
    assert_eq!(
        build()
            .crash_and_recover(&[("a", "1"), ("b", "2")])
            .unwrap(),
        2
    );
    assert_eq!(
        build()
            .crash_and_recover(&[("a", "1"), ("b", "2"), ("c", "3")])
            .unwrap(),
        3
    );

    // A durable point with nothing acknowledged yet makes nothing durable.
    let mut run = Run::new();
    run.durable_point();
    run.write(vec![put("a", "1")], false, Outcome::Failed);
    run.durable_point();
    assert_eq!(run.checker.prefix_bounds(), (0, 1));
}

#[test]
fn clean_reopen_makes_everything_acknowledged_durable() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    run.ok(vec![put("b", "2")]);
    let op = run.next_op();
    run.checker.clean_reopen(op);
    assert_eq!(run.checker.prefix_bounds(), (2, 2));
    let op = run.next_op();
    assert!(run
        .checker
        .recovered(op, &state(&[("a", "1")]), &[])
        .is_err());

    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    let op = run.next_op();
    run.checker.clean_reopen(op);
    let op = run.next_op();
    assert_eq!(
        run.checker
            .recovered(op, &state(&[("a", "1")]), &[])
            .unwrap(),
        1
    );
}

#[test]
fn point_reads_after_recovery_must_match_the_recovered_state() {
    let mut run = Run::new();
    run.synced(vec![put("a", "1")]);
    let op = run.next_op();
    run.checker.crashed(op);
    let recovered = state(&[("a", "1")]);
    let good = vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"z".to_vec(), None)];
    let op = run.next_op();
    assert_eq!(run.checker.recovered(op, &recovered, &good).unwrap(), 1);

    let mut run = Run::new();
    run.synced(vec![put("a", "1")]);
    let bad = vec![(b"a".to_vec(), None)];
    let op = run.next_op();
    let violation = run.checker.recovered(op, &recovered, &bad).unwrap_err();
    assert_eq!(violation.kind, ViolationKind::PointReadMismatch);
    assert_explains(&violation, "scan: \"1\" — written by step 1");
    assert_explains(&violation, "get:  <absent>");
}

#[test]
fn epochs_chain_and_origins_reach_back_across_epochs() {
    let mut run = Run::new();
    run.synced(vec![put("a", "old")]);
    run.ok(vec![put("b", "lost")]);
    assert_eq!(run.crash_and_recover(&[("a", "old")]).unwrap(), 1);
    assert_eq!(run.checker.epoch(), 1);
    assert_eq!(run.checker.model(), &state(&[("a", "old")]));
    assert_eq!(run.checker.prefix_bounds(), (0, 0));
    run.read("a", Some("old")).unwrap();
    // The lost write's value must not come back in a later epoch.
    run.ok(vec![put("c", "new")]);
    let violation = run
        .crash_and_recover(&[("a", "old"), ("b", "lost")])
        .unwrap_err();
    assert_explains(
        &violation,
        "recovered: \"lost\" — written by step 2 (epoch 0, Ok)",
    );
    assert_explains(&violation, "recovery at step 8 (epoch 1, crash at step 7)");
    // The recovered state is adopted anyway.
    assert_eq!(run.checker.epoch(), 2);
    assert_eq!(run.checker.base(), &state(&[("a", "old"), ("b", "lost")]));
    let stats = run.checker.stats();
    assert_eq!(stats.epochs, 3);
    assert_eq!(stats.recoveries_checked, 2);
    assert_eq!(stats.violations, 1);
    assert_eq!(stats.writes_lost, 1);
}

#[test]
fn the_model_follows_issue_order_even_when_completions_do_not() {
    let mut checker = Checker::new();
    let first = checker.write_issued(1, vec![put("a", "first"), put("x", "1")], false);
    let second = checker.write_issued(2, vec![put("a", "second")], false);
    checker.write_completed(second, Outcome::Ok);
    checker.write_completed(first, Outcome::Ok);
    assert_eq!(checker.model(), &state(&[("a", "second"), ("x", "1")]));
    // Completing twice is ignored.
    checker.write_completed(first, Outcome::Failed);
    assert_eq!(checker.stats().writes_failed, 0);
}

#[test]
fn within_a_batch_the_last_mutation_of_a_key_wins() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1"), del("a"), put("b", "1"), put("b", "2")]);
    assert_eq!(run.checker.model(), &state(&[("b", "2")]));
    assert_eq!(run.crash_and_recover(&[("b", "2")]).unwrap(), 1);
}

#[test]
fn explanations_name_faults_and_the_writes_around_the_cut() {
    let mut run = Run::new();
    run.synced(vec![put("k1", "v1")]);
    run.ok(vec![put("k2", "v2")]);
    let op = run.next_op();
    run.checker
        .fault(op, "EIO on sync of 000003.log".to_owned());
    for i in 0..25 {
        run.checker.fault(op, format!("filler fault {i}"));
    }
    run.checker.fault(op, "torn write of 000003.log".to_owned());
    let violation = run.crash_and_recover(&[("k2", "v2")]).unwrap_err();
    assert_explains(&violation, "recent faults (last 20, oldest first)");
    assert_explains(&violation, "torn write of 000003.log");
    assert!(
        !violation.explanation.contains("EIO on sync"),
        "{violation}"
    );
    assert_explains(&violation, "writes around the cut");
    assert_explains(&violation, "#1 step 1 [Ok, sync] put \"k1\" = \"v1\"");
    // k=2 differs in one key ("k1" missing), k=1 in two: k=2 is the closest.
    assert_explains(
        &violation,
        "#2 (last in prefix) step 2 [Ok] put \"k2\" = \"v2\"",
    );
    assert_explains(&violation, "write #1 is durable");
    assert_eq!(run.checker.recent_faults().count(), 20);
    assert_eq!(run.checker.stats().faults, 27);
}

#[test]
fn long_and_binary_values_are_shown_cut_and_in_hex() {
    let mut run = Run::new();
    let long = vec![b'x'; 300];
    let op = run.next_op();
    let id = run
        .checker
        .write_issued(op, vec![Mutation::put(vec![0u8, 1, 2], long.clone())], true);
    run.checker.write_completed(id, Outcome::Ok);
    let op = run.next_op();
    let violation = run.checker.read(op, &[0, 1, 2], Some(&[9])).unwrap_err();
    assert_explains(&violation, "key: 0x000102");
    assert_explains(&violation, "…\" (300 bytes)");
    assert_explains(&violation, "answered: 0x09 — NEVER WRITTEN");
}

#[test]
fn violations_serialize_and_display() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1")]);
    let violation = run.read("a", Some("2")).unwrap_err();
    let json = serde_json::to_string(&violation).unwrap();
    let back: Violation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, violation);
    let shown = violation.to_string();
    assert!(
        shown.starts_with("read mismatch at step 2\nget(\"a\") at step 2 returned"),
        "{shown}"
    );
    let mutation = put("k", "v");
    let json = serde_json::to_string(&mutation).unwrap();
    assert_eq!(serde_json::from_str::<Mutation>(&json).unwrap(), mutation);
    let stats = serde_json::to_string(&run.checker.stats()).unwrap();
    assert!(stats.contains("\"writes_ok\":1"), "{stats}");
}

#[test]
fn stats_count_what_was_checked() {
    let mut run = Run::new();
    run.ok(vec![put("a", "1"), put("b", "2")]);
    run.write(vec![put("c", "3")], false, Outcome::Failed);
    run.read("a", Some("1")).unwrap();
    run.scan(None, None, &[("a", "1"), ("b", "2")]).unwrap();
    run.durable_point();
    run.crash_and_recover(&[("a", "1"), ("b", "2")]).unwrap();
    let stats = run.checker.stats();
    assert_eq!(stats.writes_issued, 2);
    assert_eq!(stats.mutations_issued, 3);
    assert_eq!(stats.writes_ok, 1);
    assert_eq!(stats.writes_failed, 1);
    assert_eq!(stats.reads_checked, 1);
    assert_eq!(stats.scans_checked, 1);
    assert_eq!(stats.scanned_keys_checked, 2);
    assert_eq!(stats.durable_points, 1);
    assert_eq!(stats.crashes, 1);
    assert_eq!(stats.recoveries_checked, 1);
    assert_eq!(stats.writes_lost, 1);
    assert_eq!(stats.violations, 0);
}
