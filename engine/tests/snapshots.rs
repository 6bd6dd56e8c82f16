//! Snapshots and iterators against a model: random writes, snapshots taken and dropped,
//! flushes and compactions, and reads at each live snapshot compared with a copy of the model
//! taken when the snapshot was; scans forward, in reverse, and after `seek`/`seek_for_prev`
//! compared with the model's range. Plus batches seen whole by concurrent readers.

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_engine::{Db, DbIterator, Options, Snapshot, WriteBatch, WriteOptions};
use strata_vfs::{RealFs, Vfs};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    TakeSnapshot,
    DropSnapshot(usize),
    SnapshotGet(usize, u8),
    /// Snapshot (or the live database, `None`), bounds, reverse.
    Scan(Option<usize>, u8, u8, bool),
    /// Snapshot or live, seek target, reverse (seek_for_prev + next_back), entries to take.
    Seek(Option<usize>, u8, bool, usize),
    Flush,
    Maintenance,
    CompactAll,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("k{k:03}").into_bytes()
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0u8..30;
    let value = prop::collection::vec(any::<u8>(), 0..60);
    let which = prop::option::weighted(0.7, 0usize..8);
    prop_oneof![
        10 => (k.clone(), value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => k.clone().prop_map(Op::Delete),
        3 => prop::collection::vec((k.clone(), prop::option::of(value)), 1..6).prop_map(Op::Batch),
        2 => Just(Op::TakeSnapshot),
        1 => (0usize..8).prop_map(Op::DropSnapshot),
        5 => ((0usize..8), k.clone()).prop_map(|(i, k)| Op::SnapshotGet(i, k)),
        3 => (which.clone(), k.clone(), k.clone(), any::<bool>())
            .prop_map(|(w, a, b, r)| Op::Scan(w, a.min(b), a.max(b), r)),
        2 => (which, k, any::<bool>(), 1usize..6).prop_map(|(w, k, r, n)| Op::Seek(w, k, r, n)),
        1 => Just(Op::Flush),
        3 => Just(Op::Maintenance),
        1 => Just(Op::CompactAll),
        1 => Just(Op::Reopen),
    ]
}

/// Through the borrowing steps (`next_borrowed`, `next_back_borrowed`); the seeks below go
/// through `Iterator`, so the model checks both.
fn collect(mut iter: DbIterator, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    loop {
        let entry = if reverse {
            iter.next_back_borrowed()
        } else {
            iter.next_borrowed()
        };
        let Some(entry) = entry else {
            return entries;
        };
        let (key, value) = entry.unwrap();
        entries.push((key.to_vec(), value.to_vec()));
    }
}

fn expected_range(model: &Model, a: u8, b: u8, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries: Vec<_> = model
        .range(key(a)..=key(b))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if reverse {
        entries.reverse();
    }
    entries
}

fn run(
    vfs: Arc<dyn Vfs>,
    dir: &std::path::Path,
    options: Options,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut db = Some(Db::open(Arc::clone(&vfs), dir, options.clone()).expect("open"));
    let mut model = Model::new();
    // Each live snapshot with the model as it was when it was taken.
    let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let handle = db.as_ref().expect("open database");
        let pick = |which: usize, snapshots: &Vec<(Snapshot, Model)>| {
            (!snapshots.is_empty()).then(|| which % snapshots.len())
        };
        match op {
            Op::Put(k, v) => {
                handle
                    .put(key(*k), v, WriteOptions::default())
                    .expect("put");
                model.insert(key(*k), v.clone());
            }
            Op::Delete(k) => {
                handle
                    .delete(key(*k), WriteOptions::default())
                    .expect("delete");
                model.remove(&key(*k));
            }
            Op::Batch(entries) => {
                let mut batch = WriteBatch::new();
                for (k, v) in entries {
                    match v {
                        Some(v) => {
                            batch.put(key(*k), v);
                            model.insert(key(*k), v.clone());
                        }
                        None => {
                            batch.delete(key(*k));
                            model.remove(&key(*k));
                        }
                    }
                }
                handle.write(batch, WriteOptions::default()).expect("batch");
            }
            Op::TakeSnapshot => {
                if snapshots.len() < 8 {
                    snapshots.push((handle.snapshot(), model.clone()));
                }
            }
            Op::DropSnapshot(which) => {
                if let Some(i) = pick(*which, &snapshots) {
                    snapshots.remove(i);
                }
            }
            Op::SnapshotGet(which, k) => {
                if let Some(i) = pick(*which, &snapshots) {
                    let (snapshot, seen) = &snapshots[i];
                    prop_assert_eq!(
                        snapshot.get(key(*k)).expect("snapshot get"),
                        seen.get(&key(*k)).cloned(),
                        "op {}: get {} at snapshot {}",
                        index,
                        k,
                        snapshot.sequence()
                    );
                }
            }
            Op::Scan(which, a, b, reverse) => {
                let (iter, seen) = match which.and_then(|w| pick(w, &snapshots)) {
                    Some(i) => (snapshots[i].0.range(key(*a)..=key(*b)), &snapshots[i].1),
                    None => (handle.range(key(*a)..=key(*b)), &model),
                };
                prop_assert_eq!(
                    collect(iter.expect("range"), *reverse),
                    expected_range(seen, *a, *b, *reverse),
                    "op {}: scan {}..={} reverse {}",
                    index,
                    a,
                    b,
                    reverse
                );
            }
            Op::Seek(which, k, reverse, take) => {
                // Bounded to keys 5..=25, so that seeks land inside, before and after them.
                let (iter, seen) = match which.and_then(|w| pick(w, &snapshots)) {
                    Some(i) => (snapshots[i].0.range(key(5)..=key(25)), &snapshots[i].1),
                    None => (handle.range(key(5)..=key(25)), &model),
                };
                let mut iter = iter.expect("range");
                let in_bounds = seen.range(key(5)..=key(25));
                let (got, want): (Vec<_>, Vec<_>) = if *reverse {
                    iter.seek_for_prev(key(*k));
                    let got = (0..*take)
                        .map_while(|_| iter.next_back())
                        .map(|e| e.unwrap());
                    let want = in_bounds.rev().filter(|(key_, _)| **key_ <= key(*k));
                    (
                        got.collect(),
                        want.take(*take)
                            .map(|(a, b)| (a.clone(), b.clone()))
                            .collect(),
                    )
                } else {
                    iter.seek(key(*k));
                    let got = (0..*take).map_while(|_| iter.next()).map(|e| e.unwrap());
                    let want = in_bounds.filter(|(key_, _)| **key_ >= key(*k));
                    (
                        got.collect(),
                        want.take(*take)
                            .map(|(a, b)| (a.clone(), b.clone()))
                            .collect(),
                    )
                };
                prop_assert_eq!(got, want, "op {}: seek {} reverse {}", index, k, reverse);
            }
            Op::Flush => handle.flush().expect("flush"),
            Op::Maintenance => {
                handle.maintenance().expect("maintenance");
            }
            Op::CompactAll => handle.compact_all().expect("compact_all"),
            Op::Reopen => {
                // Snapshots end with the database that made them.
                snapshots.clear();
                db.take().expect("open database").close().expect("close");
                db = Some(Db::open(Arc::clone(&vfs), dir, options.clone()).expect("reopen"));
            }
        }
    }
    for (snapshot, seen) in &snapshots {
        let forward: Model = snapshot.iter().unwrap().map(|e| e.unwrap()).collect();
        prop_assert_eq!(
            &forward,
            seen,
            "snapshot {} at the end",
            snapshot.sequence()
        );
        let mut backward: Vec<_> = snapshot.iter().unwrap().rev().map(|e| e.unwrap()).collect();
        backward.reverse();
        prop_assert_eq!(backward, seen.clone().into_iter().collect::<Vec<_>>());
    }
    drop(snapshots);
    db.take().expect("open database").close().expect("close");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_snapshot_reads_the_database_as_it_was_when_taken(
        ops in prop::collection::vec(op_strategy(), 1..300),
        seed in any::<u64>(),
    ) {
        let fs = common::sim(seed);
        run(Arc::new(fs), std::path::Path::new("db"), common::small_options(), &ops)?;
    }
}

#[test]
fn a_compaction_keeps_the_versions_a_live_snapshot_reads() {
    let fs = common::sim(7);
    let db = common::open(&fs, &common::small_options());
    let put = |k: &str, v: &str| db.put(k, v, WriteOptions::default()).unwrap();
    put("a", "1");
    put("b", "1");
    let first = db.snapshot();
    put("a", "2");
    db.delete("b", WriteOptions::default()).unwrap();
    let second = db.snapshot();
    put("a", "3");
    db.compact_all().unwrap();
    assert!(db.levels().iter().skip(1).any(|level| !level.is_empty()));
    let value = |snapshot: &Snapshot, k: &str| {
        snapshot
            .get(k)
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(value(&first, "a").as_deref(), Some("1"));
    assert_eq!(value(&first, "b").as_deref(), Some("1"));
    assert_eq!(value(&second, "a").as_deref(), Some("2"));
    assert_eq!(value(&second, "b"), None);
    assert_eq!(db.get("a").unwrap(), Some(b"3".to_vec()));
    let entries = || -> u64 {
        db.levels()
            .iter()
            .flatten()
            .map(|table| table.entries)
            .sum()
    };
    assert_eq!(entries(), 5, "a: 3, 2, 1; b: a tombstone and 1");
    // Once the snapshots are gone, the next compaction through those keys keeps one
    // version of each.
    drop((first, second));
    put("a", "4");
    db.compact_all().unwrap();
    assert_eq!(
        entries(),
        1,
        "only a's newest version is left (b's tombstone is dropped)"
    );
    assert_eq!(db.get("a").unwrap(), Some(b"4".to_vec()));
}

#[test]
fn the_two_ends_of_an_iterator_meet_and_never_pass() {
    let fs = common::sim(8);
    let db = common::open(&fs, &common::small_options());
    for k in 0..40u8 {
        db.put(key(k), [k], WriteOptions::default()).unwrap();
        if k % 10 == 9 {
            db.flush().unwrap();
        }
    }
    let mut iter = db.iter().unwrap();
    let mut seen = Vec::new();
    loop {
        // The front through `Iterator`, the back through the borrowing step.
        let front = iter.next().map(|entry| entry.unwrap().0);
        let back = iter
            .next_back_borrowed()
            .map(|entry| entry.unwrap().0.to_vec());
        if front.is_none() && back.is_none() {
            break;
        }
        seen.extend(front.into_iter().chain(back));
    }
    seen.sort();
    let all: Vec<Vec<u8>> = (0..40u8).map(key).collect();
    assert_eq!(seen, all, "every key once, from one end or the other");
}

/// Writers commit batches that set every key of a group to one value; readers scan, read
/// snapshots and point-read concurrently, with flushes and compactions in the background.
/// A reader that sees two values within one group saw part of a batch.
#[test]
fn concurrent_readers_see_each_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        background_work: true,
        ..common::small_options()
    };
    let db = Arc::new(Db::open(Arc::new(RealFs::new()), dir.path().join("db"), options).unwrap());
    const KEYS: u8 = 12;
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let db = Arc::clone(&db);
        let writing = Arc::clone(&writing);
        std::thread::spawn(move || {
            for round in 0..3_000u32 {
                let mut batch = WriteBatch::new();
                for k in 0..KEYS {
                    batch.put(key(k), round.to_le_bytes());
                }
                db.write(batch, WriteOptions::default()).unwrap();
            }
            writing.store(false, std::sync::atomic::Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let db = Arc::clone(&db);
            let writing = Arc::clone(&writing);
            std::thread::spawn(move || {
                let mut checked = 0u64;
                while writing.load(std::sync::atomic::Ordering::Acquire) {
                    let values: Vec<Vec<u8>> = if reader == 0 {
                        db.iter().unwrap().map(|e| e.unwrap().1).collect()
                    } else {
                        let snapshot = db.snapshot();
                        (0..KEYS)
                            .filter_map(|k| snapshot.get(key(k)).unwrap())
                            .collect()
                    };
                    if values.is_empty() {
                        continue;
                    }
                    assert_eq!(
                        values.len(),
                        KEYS as usize,
                        "a batch seen in part: {values:?}"
                    );
                    assert!(
                        values.iter().all(|v| *v == values[0]),
                        "a batch seen in part: {values:?}"
                    );
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    writer.join().unwrap();
    let checked: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checked > 0, "the readers read while the writer wrote");
    assert!(
        db.stats().tables_per_level.iter().sum::<usize>() > 0,
        "flushes ran meanwhile"
    );
}
