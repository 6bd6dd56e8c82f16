//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use strata_engine::{Db, Options};
use strata_vfs::{FaultConfig, SimFs, Vfs};

/// Options that make flushes and WAL rotations happen within a few dozen writes.
pub fn small_options() -> Options {
    Options {
        memtable_size: 2048,
        block_size: 256,
        wal_preallocate: 4096,
        wal_buffer_size: 512,
        background_work: false,
        max_immutable_memtables: 2,
        level0_compaction_trigger: 2,
        level0_slowdown_trigger: 3,
        level0_stop_trigger: 4,
        level_base_bytes: 4096,
        level_size_ratio: 3,
        target_file_size: 1024,
        ..Options::default()
    }
}

pub fn sim(seed: u64) -> SimFs {
    SimFs::new(seed, FaultConfig::none())
}

pub fn open(fs: &SimFs, options: &Options) -> Db {
    Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options.clone()).expect("open")
}

/// The whole database as a map.
pub fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.iter()
        .expect("iter")
        .map(|entry| entry.expect("scan entry"))
        .collect()
}

pub fn key(i: u64) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

pub fn value(i: u64, round: u64, len: usize) -> Vec<u8> {
    let mut v = format!("v{i}-{round}-").into_bytes();
    v.resize(len.max(v.len()), b'a' + (round % 26) as u8);
    v
}

/// Power loss at the armed crash point: restarts the machine, disarms further crashes,
/// reopens, and asserts the database holds exactly `expected` (`what` names the crash).
pub fn restart_and_expect(
    fs: &SimFs,
    options: &Options,
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    what: &str,
) -> Db {
    fs.crash();
    fs.set_crash_at(None);
    let db = open(fs, options);
    assert_eq!(&contents(&db), expected, "{what}");
    db
}
