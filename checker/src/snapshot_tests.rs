//! The view rules (`snapshots.rs`), each shown to reject what it forbids.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{
    Checker, History, IterStep, Mutation, ViewCounts, ViewKind, Views, Violation, ViolationKind,
};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn put(key: &str, value: &str) -> Vec<Mutation> {
    vec![Mutation::put(key.as_bytes(), value.as_bytes())]
}

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn entry(key: &str, value: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((bytes(key), bytes(value)))
}

fn settle(history: History, base: &Map) -> Result<ViewCounts, Violation> {
    history.settle(&mut Checker::new(), base)
}

fn kind(verdict: Result<ViewCounts, Violation>) -> ViolationKind {
    verdict.expect_err("the history breaks a rule").kind
}

/// One write acknowledged with sequence `sequence`.
fn acknowledged(history: &mut History, step: u64, batch: Vec<Mutation>, sequence: u64) {
    let write = history.invoke_write(step, 0, batch, false);
    history.complete_write(write, true, Some(sequence));
}

/// A snapshot at `sequence` made now, by client 1.
fn snapshot(history: &mut History, step: u64, sequence: u64) -> crate::ViewId {
    let invoked = history.invoke();
    history
        .complete_view(step, 1, invoked, ViewKind::Snapshot, sequence, 0)
        .expect("not halted")
}

fn get(history: &mut History, view: crate::ViewId, key: &str, answer: Option<&str>) {
    history.complete_view_get(view, 99, 1, key.as_bytes(), answer.map(bytes), 0);
}

fn scan(history: &mut History, view: crate::ViewId, steps: Vec<IterStep>) {
    history.complete_view_scan(view, 99, 1, Bound::Unbounded, Bound::Unbounded, steps, 0);
}

#[test]
fn a_view_must_contain_every_write_acknowledged_before_it_began() {
    for (sequence, ok) in [(1, true), (0, false)] {
        let mut history = History::new();
        acknowledged(&mut history, 1, put("k", "1"), 1);
        snapshot(&mut history, 2, sequence);
        let verdict = settle(history, &Map::new());
        assert_eq!(verdict.is_ok(), ok, "sequence {sequence}: {verdict:?}");
        if !ok {
            assert_eq!(kind(verdict), ViolationKind::BadReadSequence);
        }
    }
}

#[test]
fn a_view_must_not_contain_a_write_invoked_after_it_was_made() {
    for (sequence, ok) in [(0, true), (1, false)] {
        let mut history = History::new();
        snapshot(&mut history, 1, sequence);
        acknowledged(&mut history, 2, put("k", "1"), 1);
        let verdict = settle(history, &Map::new());
        assert_eq!(verdict.is_ok(), ok, "sequence {sequence}: {verdict:?}");
        if !ok {
            assert_eq!(kind(verdict), ViolationKind::BadReadSequence);
        }
    }
}

#[test]
fn a_later_view_may_not_read_behind_an_earlier_one() {
    // Two writes in flight the whole time: either view may or may not contain them, as far as
    // the writes go; only the order of the views forbids going back.
    for (second, ok) in [(2, true), (1, false)] {
        let mut history = History::new();
        let a = history.invoke_write(1, 0, put("a", "1"), false);
        let b = history.invoke_write(2, 0, put("b", "1"), false);
        snapshot(&mut history, 3, 2);
        let invoked = history.invoke();
        history.complete_view(4, 2, invoked, ViewKind::Scan, second, 0);
        history.complete_write(a, true, Some(1));
        history.complete_write(b, true, Some(2));
        let verdict = settle(history, &Map::new());
        assert_eq!(verdict.is_ok(), ok, "second view at {second}: {verdict:?}");
        if !ok {
            assert_eq!(kind(verdict), ViolationKind::BadReadSequence);
        }
    }
}

#[test]
fn a_view_may_not_split_a_batch() {
    for (sequence, ok) in [(0, true), (2, true), (1, false)] {
        let mut history = History::new();
        let batch = vec![Mutation::put("a", "1"), Mutation::put("b", "1")];
        let write = history.invoke_write(1, 0, batch, false);
        snapshot(&mut history, 2, sequence);
        history.complete_write(write, true, Some(1));
        let verdict = settle(history, &Map::new());
        assert_eq!(verdict.is_ok(), ok, "sequence {sequence}: {verdict:?}");
        if !ok {
            assert_eq!(kind(verdict), ViolationKind::BadReadSequence);
        }
    }
}

#[test]
fn a_snapshot_read_equals_the_model_at_its_sequence() {
    let base: Map = [(bytes("x"), bytes("base"))].into_iter().collect();
    for (key, answer, ok) in [
        ("k", Some("1"), true),
        ("k", Some("2"), false),
        ("k", None, false),
        ("x", Some("base"), true),
        ("x", None, false),
        ("y", None, true),
        ("y", Some("base"), false),
    ] {
        let mut history = History::new();
        acknowledged(&mut history, 1, put("k", "1"), 1);
        let view = snapshot(&mut history, 2, 1);
        acknowledged(&mut history, 3, put("k", "2"), 2);
        acknowledged(&mut history, 4, vec![Mutation::delete("x")], 3);
        get(&mut history, view, key, answer);
        let verdict = settle(history, &base);
        assert_eq!(verdict.is_ok(), ok, "{key} = {answer:?}: {verdict:?}");
        if ok {
            assert_eq!(verdict.expect("ok").snapshot_reads, 1);
        } else {
            assert_eq!(kind(verdict), ViolationKind::SnapshotMismatch);
        }
    }
}

#[test]
fn a_failed_write_is_in_exactly_the_views_its_numbers_reach() {
    // The write failed after it was numbered 2: a view at 1 must not show it, one at 2
    // claims it and must.
    for (sequence, answer, ok) in [
        (1, Some("1"), true),
        (1, Some("2"), false),
        (2, Some("2"), true),
        (2, Some("1"), false),
    ] {
        let mut history = History::new();
        acknowledged(&mut history, 1, put("k", "1"), 1);
        let failed = history.invoke_write(2, 0, put("k", "2"), false);
        let view = snapshot(&mut history, 3, sequence);
        history.complete_write(failed, false, Some(2));
        get(&mut history, view, "k", answer);
        let verdict = settle(history, &Map::new());
        assert_eq!(
            verdict.is_ok(),
            ok,
            "at {sequence}, {answer:?}: {verdict:?}"
        );
    }
}

#[test]
fn reads_after_the_halt_are_not_checked() {
    let mut history = History::new();
    acknowledged(&mut history, 1, put("k", "1"), 1);
    let view = snapshot(&mut history, 2, 1);
    history.halt();
    get(&mut history, view, "k", Some("wrong"));
    let invoked = history.invoke();
    assert!(history
        .complete_view(3, 1, invoked, ViewKind::Snapshot, 0, 0)
        .is_none());
    let counts = settle(history, &Map::new()).expect("nothing after the halt is checked");
    assert_eq!(counts.snapshot_reads, 0);
    assert_eq!(counts.snapshots, 1);
}

/// A history with keys a..e = 1 at sequences 1..=5 and a snapshot at 5, then `c` deleted and
/// `d` overwritten.
fn five_keys() -> (History, crate::ViewId) {
    let mut history = History::new();
    for (index, key) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        acknowledged(&mut history, index as u64, put(key, "1"), index as u64 + 1);
    }
    let view = snapshot(&mut history, 10, 5);
    acknowledged(&mut history, 11, vec![Mutation::delete("c")], 6);
    acknowledged(&mut history, 12, put("d", "2"), 7);
    (history, view)
}

fn scan_verdict(steps: Vec<IterStep>) -> Result<ViewCounts, Violation> {
    let (mut history, view) = five_keys();
    scan(&mut history, view, steps);
    settle(history, &Map::new())
}

#[test]
fn a_snapshot_scan_sees_the_model_at_its_sequence_in_either_direction() {
    use IterStep::{Back, Next};
    let all = ["a", "b", "c", "d", "e"];
    let forward: Vec<IterStep> = all
        .iter()
        .map(|key| Next(entry(key, "1")))
        .chain([Next(None)])
        .collect();
    let counts = scan_verdict(forward).expect("the model at 5");
    assert_eq!((counts.snapshot_reads, counts.reverse_scans), (1, 0));
    let reverse: Vec<IterStep> = all
        .iter()
        .rev()
        .map(|key| Back(entry(key, "1")))
        .chain([Back(None)])
        .collect();
    let counts = scan_verdict(reverse).expect("the model at 5, backwards");
    assert_eq!(counts.reverse_scans, 1);
    // Later writes showing through, a key missing, the order reversed, an early end.
    for wrong in [
        vec![
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(entry("d", "1")),
        ],
        vec![
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(entry("c", "1")),
            Next(entry("d", "2")),
        ],
        vec![Back(entry("e", "1")), Back(entry("c", "1"))],
        vec![Back(entry("a", "1"))],
        vec![Next(entry("a", "1")), Next(None)],
        vec![Back(None)],
    ] {
        assert_eq!(
            kind(scan_verdict(wrong.clone())),
            ViolationKind::SnapshotMismatch,
            "{wrong:?}"
        );
    }
}

#[test]
fn seeks_move_one_end_to_the_key_or_past_it() {
    use IterStep::{Back, Next, Seek, SeekForPrev};
    let right = [
        vec![
            Seek(bytes("c")),
            Next(entry("c", "1")),
            Next(entry("d", "1")),
        ],
        vec![Seek(bytes("bb")), Next(entry("c", "1"))],
        vec![Seek(bytes("z")), Next(None)],
        vec![
            SeekForPrev(bytes("c")),
            Back(entry("c", "1")),
            Back(entry("b", "1")),
        ],
        vec![SeekForPrev(bytes("cc")), Back(entry("c", "1"))],
        vec![SeekForPrev(bytes("0")), Back(None)],
        // A seek restarts an end that had finished.
        vec![
            Next(entry("a", "1")),
            Seek(bytes("e")),
            Next(entry("e", "1")),
            Next(None),
            Seek(bytes("b")),
            Next(entry("b", "1")),
        ],
    ];
    for steps in right {
        let counts = scan_verdict(steps.clone()).unwrap_or_else(|v| panic!("{steps:?}: {v}"));
        assert_eq!(counts.seek_scans, 1);
    }
    for wrong in [
        vec![Seek(bytes("c")), Next(entry("b", "1"))],
        vec![Seek(bytes("bb")), Next(entry("d", "1"))],
        vec![SeekForPrev(bytes("c")), Back(entry("d", "1"))],
        vec![SeekForPrev(bytes("cc")), Back(entry("b", "1"))],
        vec![Seek(bytes("z")), Next(entry("e", "1"))],
    ] {
        assert_eq!(
            kind(scan_verdict(wrong.clone())),
            ViolationKind::SnapshotMismatch,
            "{wrong:?}"
        );
    }
}

#[test]
fn the_two_ends_meet_and_never_pass() {
    use IterStep::{Back, Next, SeekForPrev};
    let right = [
        vec![
            Next(entry("a", "1")),
            Back(entry("e", "1")),
            Next(entry("b", "1")),
            Back(entry("d", "1")),
            Next(entry("c", "1")),
            Back(None),
            Next(None),
        ],
        // The back sought to c but returned nothing yet: the front may pass c.
        vec![
            SeekForPrev(bytes("c")),
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(entry("c", "1")),
            Next(entry("d", "1")),
        ],
        // Once the back returned c, the front stops before it, and stays stopped.
        vec![
            SeekForPrev(bytes("c")),
            Back(entry("c", "1")),
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(None),
            Next(None),
        ],
        // An end that stopped stays stopped until it seeks, even if the other end seeks away.
        vec![
            SeekForPrev(bytes("c")),
            Back(entry("c", "1")),
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(None),
            SeekForPrev(bytes("e")),
            Next(None),
        ],
    ];
    for steps in right {
        scan_verdict(steps.clone()).unwrap_or_else(|v| panic!("{steps:?}: {v}"));
    }
    for wrong in [
        vec![
            Next(entry("a", "1")),
            Back(entry("e", "1")),
            Next(entry("b", "1")),
            Back(entry("d", "1")),
            Next(entry("c", "1")),
            Back(entry("c", "1")),
        ],
        vec![
            SeekForPrev(bytes("c")),
            Back(entry("c", "1")),
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(entry("c", "1")),
        ],
        vec![
            Next(entry("a", "1")),
            Back(entry("e", "1")),
            Next(entry("b", "1")),
            Back(entry("d", "1")),
            Next(entry("c", "1")),
            Back(None),
            Next(entry("d", "1")),
        ],
        vec![
            SeekForPrev(bytes("c")),
            Back(entry("c", "1")),
            Next(entry("a", "1")),
            Next(entry("b", "1")),
            Next(None),
            SeekForPrev(bytes("e")),
            Next(entry("c", "1")),
        ],
    ] {
        assert_eq!(
            kind(scan_verdict(wrong.clone())),
            ViolationKind::SnapshotMismatch,
            "{wrong:?}"
        );
    }
}

#[test]
fn bounds_are_kept_inclusive_or_exclusive() {
    use IterStep::{Back, Next};
    let check = |lower: Bound<&str>, upper: Bound<&str>, steps: Vec<IterStep>| {
        let (mut history, view) = five_keys();
        history.complete_view_scan(view, 20, 1, lower.map(bytes), upper.map(bytes), steps, 0);
        settle(history, &Map::new())
    };
    use Bound::{Excluded, Included, Unbounded};
    for (lower, upper, steps) in [
        (
            Included("b"),
            Excluded("d"),
            vec![Next(entry("b", "1")), Next(entry("c", "1")), Next(None)],
        ),
        (
            Excluded("b"),
            Included("d"),
            vec![Back(entry("d", "1")), Back(entry("c", "1")), Back(None)],
        ),
        (Included("d"), Included("b"), vec![Next(None), Back(None)]),
        (Excluded("c"), Excluded("c"), vec![Next(None)]),
        (
            Unbounded,
            Included("a"),
            vec![Back(entry("a", "1")), Back(None)],
        ),
    ] {
        check(lower, upper, steps.clone()).unwrap_or_else(|v| panic!("{steps:?}: {v}"));
    }
    for (lower, upper, steps) in [
        (Included("b"), Excluded("d"), vec![Back(entry("d", "1"))]),
        (Excluded("b"), Included("d"), vec![Next(entry("b", "1"))]),
        (Included("c"), Included("c"), vec![Next(None)]),
    ] {
        assert_eq!(
            kind(check(lower, upper, steps.clone())),
            ViolationKind::SnapshotMismatch,
            "{steps:?}"
        );
    }
}

#[test]
fn a_live_scan_that_sees_half_a_batch_is_a_violation() {
    // One batch writes a and b; the scan's iterator says sequence 3 (after the batch), so
    // it must see both new values; a scan that saw only one would have read at no sequence.
    use IterStep::Next;
    for (steps, ok) in [
        (
            vec![Next(entry("a", "2")), Next(entry("b", "2")), Next(None)],
            true,
        ),
        (
            vec![Next(entry("a", "2")), Next(entry("b", "1")), Next(None)],
            false,
        ),
    ] {
        let mut history = History::new();
        acknowledged(
            &mut history,
            1,
            vec![Mutation::put("a", "1"), Mutation::put("b", "1")],
            1,
        );
        let batch = history.invoke_write(
            2,
            0,
            vec![Mutation::put("a", "2"), Mutation::put("b", "2")],
            false,
        );
        let invoked = history.invoke();
        let view = history
            .complete_view(3, 1, invoked, ViewKind::Scan, 4, 0)
            .expect("not halted");
        history.complete_write(batch, true, Some(3));
        scan(&mut history, view, steps.clone());
        let verdict = settle(history, &Map::new());
        assert_eq!(verdict.is_ok(), ok, "{steps:?}: {verdict:?}");
        match verdict {
            Ok(counts) => assert_eq!((counts.scans, counts.snapshot_reads), (1, 0)),
            Err(violation) => assert_eq!(violation.kind, ViolationKind::ScanMismatch),
        }
    }
}

#[test]
fn reads_after_a_job_are_counted_as_such() {
    let mut history = History::new();
    acknowledged(&mut history, 1, put("k", "1"), 1);
    let invoked = history.invoke();
    let view = history
        .complete_view(2, 1, invoked, ViewKind::Snapshot, 1, 7)
        .expect("not halted");
    history.complete_view_get(view, 3, 1, b"k", Some(bytes("1")), 7);
    history.complete_view_get(view, 4, 1, b"k", Some(bytes("1")), 8);
    let counts = settle(history, &Map::new()).expect("both right");
    assert_eq!(
        (counts.snapshot_reads, counts.snapshot_reads_after_jobs),
        (2, 1)
    );
}

#[test]
fn the_views_of_a_single_client_are_checked_the_same_way() {
    // A single-client simulation records its writes in `Views` itself.
    let run = |sequence: u64, answer: Option<&str>| {
        let mut views = Views::new();
        views.write(1, 0, put("k", "1"), 1, Some(2), Some(1));
        let view = views.view(2, 0, ViewKind::Snapshot, sequence, 3, 4, 0);
        views.write(3, 0, put("k", "2"), 5, Some(6), Some(2));
        // Refused before the WAL: no number, in no view.
        views.write(4, 0, put("k", "3"), 7, None, None);
        views.get(view, 5, 0, b"k", answer.map(bytes), 0);
        views.check(&Map::new())
    };
    assert!(run(1, Some("1")).is_ok());
    assert_eq!(
        run(1, Some("2")).expect_err("a later write").kind,
        ViolationKind::SnapshotMismatch
    );
    assert_eq!(
        run(1, Some("3")).expect_err("a refused write").kind,
        ViolationKind::SnapshotMismatch
    );
    assert_eq!(
        run(0, Some("1"))
            .expect_err("misses an acknowledged write")
            .kind,
        ViolationKind::BadReadSequence
    );
    assert_eq!(
        run(2, Some("2")).expect_err("contains a later write").kind,
        ViolationKind::BadReadSequence
    );
}

#[test]
fn overlapping_numbers_leave_no_model_to_read_at() {
    let run = |second: u64| {
        let mut views = Views::new();
        views.write(
            1,
            0,
            vec![Mutation::put("a", "1"), Mutation::put("b", "1")],
            1,
            Some(2),
            Some(1),
        );
        views.write(2, 0, put("a", "2"), 3, Some(4), Some(second));
        views.view(3, 0, ViewKind::Snapshot, 3, 5, 6, 0);
        views.check(&Map::new())
    };
    assert!(run(3).is_ok());
    assert_eq!(
        run(2).expect_err("two writes numbered 2").kind,
        ViolationKind::OrderNotRealTime
    );
}
