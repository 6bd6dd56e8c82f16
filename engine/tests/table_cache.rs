//! The table cache (`Options::max_open_files`): a database keeps at most that many table
//! files open, reads reopen the ones it closed, and a compaction's inputs stay on disk
//! while an iterator of an older version still reads them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use strata_engine::filenames::{parse, FileKind};
use strata_engine::{Db, Options, WriteOptions};
use strata_vfs::{FaultConfig, SimFs, Vfs};

fn options(max_open_files: usize) -> Options {
    Options {
        memtable_size: 4 * 1024,
        block_size: 256,
        // Every block read goes to a file.
        block_cache_size: 0,
        background_work: false,
        level0_compaction_trigger: 100,
        level0_slowdown_trigger: 100,
        level0_stop_trigger: 100,
        max_open_files,
        ..Options::default()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    format!("value-{i}-{round}-{}", "x".repeat(40)).into_bytes()
}

/// Writes `count` keys in `tables` flushes, each flush overwriting every key, so that each
/// level-0 table holds all of them.
fn fill(db: &Db, count: u32, tables: u32) {
    for round in 0..tables {
        for i in 0..count {
            db.put(key(i), value(i, round), WriteOptions::NO_SYNC)
                .unwrap();
        }
        db.flush().unwrap();
    }
}

fn table_files(fs: &SimFs) -> Vec<u64> {
    let mut numbers: Vec<u64> = fs
        .list(Path::new("db"))
        .unwrap()
        .iter()
        .filter_map(|name| match parse(name) {
            Some(FileKind::Table(number)) => Some(number),
            _ => None,
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

#[test]
fn reads_reopen_the_table_files_the_cache_closed_and_never_hold_more() {
    let fs = Arc::new(SimFs::new(7, FaultConfig::none()));
    let db = Db::open(fs.clone() as Arc<dyn Vfs>, "db", options(2)).unwrap();
    fill(&db, 60, 6);
    let tables: usize = db.stats().tables_per_level.iter().sum();
    assert!(tables >= 6, "{tables} tables");
    for _ in 0..2 {
        for i in 0..60 {
            assert_eq!(db.get(key(i)).unwrap(), Some(value(i, 5)));
            // A key only the oldest table has: every table is read.
            assert_eq!(db.get(b"absent").unwrap(), None);
        }
    }
    let stats = db.stats();
    assert!(
        stats.open_table_files <= 2,
        "{} open",
        stats.open_table_files
    );
    assert!(
        stats.table_files_reopened > 0,
        "no read reopened a file: the bound never closed one"
    );
    db.close().unwrap();
}

#[test]
fn a_compaction_keeps_the_inputs_an_iterator_still_reads_and_removes_them_after() {
    let fs = Arc::new(SimFs::new(8, FaultConfig::none()));
    let db = Db::open(fs.clone() as Arc<dyn Vfs>, "db", options(1)).unwrap();
    fill(&db, 200, 4);
    let before = table_files(&fs);
    let mut iterator = db.iter().unwrap();
    let (first, _) = iterator.next().unwrap().unwrap();
    assert_eq!(first, key(0));
    // Every table the iterator reads is now an input of a durable edit.
    db.compact_all().unwrap();
    let live: Vec<u64> = db
        .levels()
        .iter()
        .flatten()
        .map(|table| table.number)
        .collect();
    assert!(
        before.iter().all(|number| !live.contains(number)),
        "the compaction rewrote every table: before {before:?}, live {live:?}"
    );
    // Reading a block of another table closes the handle the iterator's tables had, so the
    // iterator reopens each: the files must still be there.
    for i in 0..200 {
        assert_eq!(db.get(key(i)).unwrap(), Some(value(i, 3)));
    }
    let rest: Vec<_> = iterator.map(Result::unwrap).collect();
    assert_eq!(rest.len(), 199);
    for (offset, (k, v)) in rest.iter().enumerate() {
        let i = offset as u32 + 1;
        assert_eq!((k, v), (&key(i), &value(i, 3)));
    }
    assert!(
        before
            .iter()
            .all(|number| table_files(&fs).contains(number)),
        "an input was removed while the iterator held it"
    );
    // Nothing holds them now: the next removal pass (here, the close) deletes them.
    db.close().unwrap();
    let after = table_files(&fs);
    assert!(
        before.iter().all(|number| !after.contains(number)),
        "obsolete tables left behind: {after:?} (inputs were {before:?})"
    );
    assert_eq!(after, live);
}

/// A compaction reads each input block once, and the inputs are garbage after it: it takes
/// cached blocks but caches none it reads, so it neither evicts the readers' blocks nor
/// grows the process by the whole cache during a load.
#[test]
fn a_compaction_does_not_fill_the_block_cache() {
    let fs = Arc::new(SimFs::new(9, FaultConfig::none()));
    let db = Db::open(
        fs.clone() as Arc<dyn Vfs>,
        "db",
        Options {
            block_cache_size: 1 << 20,
            ..options(1000)
        },
    )
    .unwrap();
    fill(&db, 300, 4);
    assert_eq!(db.stats().block_cache_bytes, 0, "flushes cache nothing");
    db.compact_all().unwrap();
    assert!(db.stats().compactions > 0);
    assert_eq!(
        db.stats().block_cache_bytes,
        0,
        "the compaction cached the blocks it read"
    );
    assert_eq!(db.get(key(7)).unwrap(), Some(value(7, 3)));
    assert!(db.stats().block_cache_bytes > 0, "a user's read is cached");
    db.close().unwrap();
}
