//! Coverage marks on a real database: a flush and a compaction reach their marks and close
//! every window they open, and a crash at each VFS operation of a flush is counted at the
//! window it falls in, in the order the engine makes things durable.

#![allow(clippy::unwrap_used)]

mod common;

use common::{contents, key, open, sim, small_options, value};
use std::collections::BTreeSet;
use strata_engine::{Mark, Marks, Options, WriteOptions};

fn reached(marks: &Marks, mark: Mark) -> u64 {
    marks
        .counts()
        .iter()
        .find(|count| count.mark == mark)
        .unwrap()
        .reached
}

fn fill(db: &strata_engine::Db, round: u64) {
    for i in 0..60 {
        db.put(key(i), value(i, round, 40), WriteOptions::NO_SYNC)
            .unwrap();
    }
}

#[test]
fn jobs_reach_their_marks_and_close_their_windows() {
    let fs = sim(1);
    let marks = Marks::enabled();
    let options = Options {
        marks: marks.clone(),
        ..small_options()
    };
    let db = open(&fs, &options);
    for round in 0..6 {
        fill(&db, round);
        db.flush().unwrap();
        while db.maintenance().unwrap() {}
    }
    for mark in [
        Mark::WalSuccessorCreated,
        Mark::FlushTableSynced,
        Mark::FlushWalObsolete,
        Mark::CompactionOutputsSynced,
        Mark::CompactionInputsObsolete,
        Mark::RecoveryManifestWritten,
        Mark::RecoveryObsoleteRemoved,
    ] {
        assert!(reached(&marks, mark) > 0, "{mark} not reached");
    }
    assert_eq!(marks.latest(), None, "every window closed with its job");
    db.close().unwrap();
    assert_eq!(reached(&marks, Mark::CloseWalClosed), 1);
    assert_eq!(marks.latest(), None);
    let again = open(&fs, &options);
    assert_eq!(reached(&marks, Mark::RecoveryAfterCleanClose), 1);
    assert_eq!(marks.latest(), None);
    drop(again);
    // The default handle counts nothing and changes nothing.
    assert!(!Options::default().marks.is_enabled());
}

#[test]
fn a_crash_in_a_flush_counts_at_the_window_it_falls_in() {
    let mut windows = Vec::new();
    for after in 0..40 {
        let fs = sim(2);
        let halted = fs.clone();
        let marks = Marks::paused_while(move || halted.is_halted());
        let options = Options {
            marks: marks.clone(),
            wal_buffer_size: 0,
            ..small_options()
        };
        let db = open(&fs, &options);
        fill(&db, 0);
        db.sync().unwrap();
        let expected = contents(&db);
        fs.set_crash_at(Some(fs.op_count() + after));
        let flushed = db.flush();
        if !fs.is_halted() {
            flushed.unwrap();
            break;
        }
        drop(db);
        windows.push(marks.crashed());
        fs.set_crash_at(None);
        fs.crash();
        let db = open(&fs, &options);
        assert_eq!(
            contents(&db),
            expected,
            "crash {after} operations into the flush"
        );
        marks.recovered();
    }
    // Consecutive crash points fall in consecutive windows, in the engine's order.
    let mut order: Vec<Option<Mark>> = windows.clone();
    order.dedup();
    let seen: BTreeSet<Mark> = windows.iter().flatten().copied().collect();
    for mark in [
        Mark::WalSuccessorCreated,
        Mark::FlushTableSynced,
        Mark::FlushWalObsolete,
    ] {
        assert!(seen.contains(&mark), "{mark} never crashed at: {order:?}");
    }
    let position = |mark: Mark| order.iter().position(|&m| m == Some(mark)).unwrap();
    assert!(position(Mark::FlushTableSynced) < position(Mark::FlushWalObsolete));
}
