//! The concurrent-history rules, each shown to reject what it forbids.

use std::collections::BTreeMap;

use crate::{Checker, History, Mutation, ViolationKind};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn put(key: &str, value: &str) -> Vec<Mutation> {
    vec![Mutation::put(key.as_bytes(), value.as_bytes())]
}

fn map(pairs: &[(&str, &str)]) -> Map {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn settle(history: History) -> (Checker, Result<(), crate::Violation>) {
    let mut checker = Checker::new();
    let verdict = history.settle(&mut checker, &Map::new()).map(|_| ());
    (checker, verdict)
}

fn kind(verdict: Result<(), crate::Violation>) -> ViolationKind {
    verdict.expect_err("the history breaks a rule").kind
}

#[test]
fn a_commit_order_against_real_time_is_a_violation() {
    let mut history = History::new();
    let a = history.invoke_write(1, 0, put("a", "1"), false);
    history.complete_write(a, true, Some(5));
    let b = history.invoke_write(2, 1, put("b", "1"), false);
    history.complete_write(b, true, Some(4));
    assert_eq!(kind(settle(history).1), ViolationKind::OrderNotRealTime);
}

#[test]
fn concurrent_writes_may_commit_in_either_order() {
    for (first, second) in [(1, 2), (2, 1)] {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("a", "1"), false);
        let b = history.invoke_write(2, 1, put("a", "2"), false);
        history.complete_write(a, true, Some(first));
        history.complete_write(b, true, Some(second));
        assert!(settle(history).1.is_ok());
    }
}

#[test]
fn overlapping_or_missing_sequence_numbers_are_violations() {
    let mut history = History::new();
    let a = history.invoke_write(
        1,
        0,
        vec![Mutation::put("a", "1"), Mutation::put("b", "1")],
        false,
    );
    let b = history.invoke_write(2, 1, put("c", "1"), false);
    history.complete_write(a, true, Some(1));
    history.complete_write(b, true, Some(2));
    assert_eq!(kind(settle(history).1), ViolationKind::OrderNotRealTime);

    let mut history = History::new();
    let a = history.invoke_write(1, 0, put("a", "1"), false);
    history.complete_write(a, true, None);
    assert_eq!(kind(settle(history).1), ViolationKind::OrderNotRealTime);
}

#[test]
fn a_read_must_see_every_write_acknowledged_before_it_began() {
    for (answer, ok) in [(Some("2"), true), (Some("1"), false), (None, false)] {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("k", "1"), false);
        history.complete_write(a, true, Some(1));
        let b = history.invoke_write(2, 0, put("k", "2"), false);
        history.complete_write(b, true, Some(2));
        let read = history.invoke();
        history.complete_read(3, 1, read, b"k", answer.map(|v| v.as_bytes().to_vec()));
        let verdict = settle(history).1;
        assert_eq!(verdict.is_ok(), ok, "answer {answer:?}: {verdict:?}");
        if !ok {
            assert_eq!(kind(verdict), ViolationKind::ReadMismatch);
        }
    }
}

#[test]
fn a_read_overlapping_a_write_may_see_it_or_not_but_never_an_unwritten_value() {
    for (answer, ok) in [(Some("1"), true), (None, true), (Some("9"), false)] {
        let mut history = History::new();
        let read = history.invoke();
        let a = history.invoke_write(1, 0, put("k", "1"), false);
        history.complete_read(2, 1, read, b"k", answer.map(|v| v.as_bytes().to_vec()));
        history.complete_write(a, true, Some(1));
        assert_eq!(settle(history).1.is_ok(), ok, "answer {answer:?}");
    }
    // A write invoked after the read answered cannot be seen by it.
    let mut history = History::new();
    let read = history.invoke();
    history.complete_read(1, 1, read, b"k", Some(b"1".to_vec()));
    let a = history.invoke_write(2, 0, put("k", "1"), false);
    history.complete_write(a, true, Some(1));
    assert_eq!(kind(settle(history).1), ViolationKind::ReadMismatch);
}

#[test]
fn a_scan_missing_an_acknowledged_key_is_a_violation() {
    let mut history = History::new();
    let a = history.invoke_write(1, 0, put("k", "1"), false);
    history.complete_write(a, true, Some(1));
    let scan = history.invoke();
    history
        .complete_scan(2, 1, scan, None, None, &[], &Map::new())
        .expect("well-formed");
    assert_eq!(kind(settle(history).1), ViolationKind::ScanMismatch);

    let mut history = History::new();
    let scan = history.invoke();
    let wrong = vec![
        (b"b".to_vec(), b"1".to_vec()),
        (b"a".to_vec(), b"1".to_vec()),
    ];
    let error = history
        .complete_scan(1, 0, scan, None, None, &wrong, &Map::new())
        .expect_err("out of order");
    assert_eq!(error.kind, ViolationKind::ScanMismatch);
}

#[test]
fn recovery_is_checked_in_commit_order_not_invocation_order() {
    // b is invoked after a but commits first; a synced a makes both durable.
    let history = || {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("k", "a"), true);
        let b = history.invoke_write(2, 1, put("k", "b"), false);
        history.complete_write(b, true, Some(1));
        history.complete_write(a, true, Some(2));
        history
    };
    let (mut checker, verdict) = settle(history());
    verdict.expect("consistent");
    checker.crashed(3);
    checker
        .recovered(3, &map(&[("k", "a")]), &[])
        .expect("commit order: a last");
    let (mut checker, _) = settle(history());
    checker.crashed(3);
    let error = checker
        .recovered(3, &map(&[("k", "b")]), &[])
        .expect_err("the synced, last-committed write was lost");
    assert_eq!(error.kind, ViolationKind::RecoveryNotAPrefix);
}

#[test]
fn a_durable_point_covers_the_writes_acknowledged_before_it_began_only() {
    let mut history = History::new();
    let a = history.invoke_write(1, 0, put("a", "1"), false);
    history.complete_write(a, true, Some(1));
    let sync = history.invoke();
    let b = history.invoke_write(2, 1, put("b", "1"), false);
    history.complete_write(b, true, Some(2));
    history.complete_durable(3, sync);
    let (mut checker, verdict) = settle(history);
    verdict.expect("consistent");
    checker.crashed(4);
    // b may be lost (acknowledged after the sync began); a may not.
    let k = checker
        .recovered(4, &map(&[("a", "1")]), &[])
        .expect("b lost: allowed");
    assert_eq!(k, 1);
    let mut history = History::new();
    let a = history.invoke_write(1, 0, put("a", "1"), false);
    history.complete_write(a, true, Some(1));
    let sync = history.invoke();
    history.complete_durable(2, sync);
    let (mut checker, _) = settle(history);
    checker.crashed(3);
    let error = checker
        .recovered(3, &Map::new(), &[])
        .expect_err("a was durable");
    assert_eq!(error.kind, ViolationKind::RecoveryNotAPrefix);
}

#[test]
fn an_answer_after_the_halt_is_not_an_acknowledgement() {
    let mut history = History::new();
    let a = history.invoke_write(1, 0, put("a", "1"), true);
    history.halt();
    history.complete_write(a, true, Some(1));
    let (mut checker, verdict) = settle(history);
    verdict.expect("consistent");
    checker.crashed(2);
    checker
        .recovered(2, &Map::new(), &[])
        .expect("a synced write answered only after the power cut may be lost");
}

#[test]
fn a_read_cannot_go_back_to_a_value_an_earlier_read_saw_overwritten() {
    // The write of "2" is still in flight; one read sees it, a later read must too.
    for (second, ok) in [(Some("2"), true), (Some("1"), false)] {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("k", "1"), false);
        history.complete_write(a, true, Some(1));
        let b = history.invoke_write(2, 0, put("k", "2"), false);
        let first = history.invoke();
        history.complete_read(3, 1, first, b"k", Some(b"2".to_vec()));
        let later = history.invoke();
        history.complete_read(4, 2, later, b"k", second.map(|v| v.as_bytes().to_vec()));
        history.complete_write(b, true, Some(2));
        let verdict = settle(history).1;
        assert_eq!(verdict.is_ok(), ok, "second read {second:?}: {verdict:?}");
    }
}

#[test]
fn a_read_cannot_see_a_write_ordered_after_one_invoked_after_it_answered() {
    // c was invoked before the read answered, but commits after d, which was invoked after
    // it: the read cannot see c's position without d's.
    let mut history = History::new();
    let c = history.invoke_write(1, 0, put("k", "c"), false);
    let read = history.invoke();
    history.complete_read(2, 1, read, b"k", Some(b"c".to_vec()));
    let d = history.invoke_write(3, 2, put("j", "d"), false);
    history.complete_write(d, true, Some(1));
    history.complete_write(c, true, Some(2));
    assert_eq!(kind(settle(history).1), ViolationKind::ReadMismatch);
}

#[test]
fn scans_are_checked_against_a_non_empty_base() {
    let base = map(&[("a", "0"), ("b", "0")]);
    for (entries, ok) in [
        (vec![("a", "1"), ("b", "0")], true),
        (vec![("a", "1")], false),
        (vec![("a", "0"), ("b", "0")], false),
    ] {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("a", "1"), false);
        history.complete_write(a, true, Some(1));
        let scan = history.invoke();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        history
            .complete_scan(2, 1, scan, None, None, &entries, &base)
            .expect("well-formed");
        let verdict = history.settle(&mut Checker::new(), &base);
        assert_eq!(verdict.is_ok(), ok, "{entries:?}: {verdict:?}");
    }
}

#[test]
fn a_failed_write_with_a_sequence_may_or_may_not_be_recovered_and_an_empty_one_is_nothing() {
    for recovered in [map(&[("a", "1")]), map(&[("a", "1"), ("b", "1")])] {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("a", "1"), true);
        history.complete_write(a, true, Some(1));
        let b = history.invoke_write(2, 1, put("b", "1"), true);
        history.complete_write(b, false, Some(2));
        let empty = history.invoke_write(3, 2, Vec::new(), false);
        history.complete_write(empty, true, None);
        let (mut checker, verdict) = settle(history);
        verdict.expect("consistent");
        checker.crashed(4);
        checker
            .recovered(4, &recovered, &[])
            .expect("b's effect is unknown");
    }
}

#[test]
fn a_batch_may_be_seen_half_applied_by_a_concurrent_read_but_not_after_it_is_acknowledged() {
    let batch = vec![Mutation::put("a", "1"), Mutation::put("b", "1")];
    // Concurrent: the read may see a's put without b's.
    let mut history = History::new();
    let write = history.invoke_write(1, 0, batch.clone(), false);
    let read = history.invoke();
    history.complete_read(2, 1, read, b"b", None);
    let read = history.invoke();
    history.complete_read(3, 1, read, b"a", Some(b"1".to_vec()));
    history.complete_write(write, true, Some(1));
    assert!(settle(history).1.is_ok());
    // After the acknowledgement, both.
    let mut history = History::new();
    let write = history.invoke_write(1, 0, batch, false);
    history.complete_write(write, true, Some(1));
    let read = history.invoke();
    history.complete_read(2, 1, read, b"b", None);
    assert_eq!(kind(settle(history).1), ViolationKind::ReadMismatch);
}

#[test]
fn an_inverted_scan_range_is_empty_not_a_panic() {
    let mut history = History::new();
    let scan = history.invoke();
    history
        .complete_scan(1, 0, scan, Some(b"z"), Some(b"a"), &[], &map(&[("m", "1")]))
        .expect("nothing to answer");
    assert!(history
        .settle(&mut Checker::new(), &map(&[("m", "1")]))
        .is_ok());
}
