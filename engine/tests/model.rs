//! Model test: random puts, deletes, batches, gets, scans, flushes, maintenance and clean
//! reopens against a `BTreeMap`, on `SimFs` (no faults) and on `RealFs` in a temp dir.

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_engine::{Db, Options, WriteBatch, WriteOptions};
use strata_vfs::{RealFs, Vfs};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Scan(u8, u8),
    Flush,
    Maintenance,
    Compact,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("k{k:03}").into_bytes()
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 200..1500),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0u8..40;
    prop_oneof![
        10 => (k.clone(), value_strategy()).prop_map(|(k, v)| Op::Put(k, v)),
        4 => k.clone().prop_map(Op::Delete),
        2 => prop::collection::vec((k.clone(), prop::option::of(value_strategy())), 1..6).prop_map(Op::Batch),
        5 => k.clone().prop_map(Op::Get),
        2 => (k.clone(), k).prop_map(|(a, b)| Op::Scan(a.min(b), a.max(b))),
        1 => Just(Op::Flush),
        3 => Just(Op::Maintenance),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn run(
    vfs: Arc<dyn Vfs>,
    dir: &std::path::Path,
    options: Options,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut db = Some(Db::open(Arc::clone(&vfs), dir, options.clone()).expect("open"));
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        let handle = db.as_ref().expect("open database");
        let sync = WriteOptions {
            sync: index % 3 == 0,
        };
        match op {
            Op::Put(k, v) => {
                handle.put(key(*k), v, sync).expect("put");
                model.insert(key(*k), v.clone());
            }
            Op::Delete(k) => {
                handle.delete(key(*k), sync).expect("delete");
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
                handle.write(batch, sync).expect("batch");
            }
            Op::Get(k) => {
                prop_assert_eq!(
                    handle.get(key(*k)).expect("get"),
                    model.get(&key(*k)).cloned(),
                    "op {} get {}",
                    index,
                    k
                );
            }
            Op::Scan(a, b) => {
                let got: Vec<(Vec<u8>, Vec<u8>)> = handle
                    .range(key(*a)..key(*b))
                    .expect("range")
                    .map(|e| e.expect("entry"))
                    .collect();
                let want: Vec<(Vec<u8>, Vec<u8>)> = model
                    .range(key(*a)..key(*b))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(got, want, "op {} scan {}..{}", index, a, b);
            }
            Op::Flush => handle.flush().expect("flush"),
            Op::Maintenance => {
                handle.maintenance().expect("maintenance");
            }
            Op::Compact => handle.compact().expect("compact"),
            Op::Reopen => {
                db.take().expect("open database").close().expect("close");
                db = Some(Db::open(Arc::clone(&vfs), dir, options.clone()).expect("reopen"));
            }
        }
    }
    let handle = db.as_ref().expect("open database");
    let all: BTreeMap<Vec<u8>, Vec<u8>> = handle
        .iter()
        .expect("iter")
        .map(|e| e.expect("entry"))
        .collect();
    prop_assert_eq!(&all, &model);
    db.take().expect("open database").close().expect("close");
    let reopened = Db::open(vfs, dir, options).expect("final reopen");
    let all: BTreeMap<Vec<u8>, Vec<u8>> = reopened
        .iter()
        .expect("iter")
        .map(|e| e.expect("entry"))
        .collect();
    prop_assert_eq!(&all, &model, "after a clean reopen");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap_on_simfs(ops in prop::collection::vec(op_strategy(), 1..250), seed in any::<u64>()) {
        let fs = common::sim(seed);
        run(Arc::new(fs), std::path::Path::new("db"), common::small_options(), &ops)?;
    }

    #[test]
    fn engine_matches_a_btreemap_on_the_real_disk(ops in prop::collection::vec(op_strategy(), 1..120)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = Options { background_work: true, ..common::small_options() };
        run(Arc::new(RealFs::new()), &dir.path().join("db"), options, &ops)?;
    }
}
