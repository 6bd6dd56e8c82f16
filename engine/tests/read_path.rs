//! The point-read path's edge cases: more level-0 tables than one filter pass holds, and
//! keys whose first 16 bytes tie (the read path compares 16-byte prefixes first).

#![allow(clippy::unwrap_used)]

mod common;

use common::{open, sim, small_options};
use strata_engine::{Options, WriteOptions};

#[test]
fn more_level0_tables_than_one_probe_holds_are_read_newest_first() {
    let fs = sim(41);
    let options = Options {
        level0_compaction_trigger: 100,
        level0_slowdown_trigger: 100,
        level0_stop_trigger: 100,
        ..small_options()
    };
    let db = open(&fs, &options);
    let rounds = 45u64;
    for round in 0..rounds {
        // Every table spans "a".."shared", so every level-0 table is a candidate for every
        // key: an old round's key lies in a table past the first pass's capacity.
        db.put(b"a", b"first", WriteOptions::NO_SYNC).unwrap();
        db.put(b"shared", format!("round {round}"), WriteOptions::NO_SYNC)
            .unwrap();
        db.put(format!("only-{round:03}"), b"x", WriteOptions::NO_SYNC)
            .unwrap();
        if round == 7 {
            db.delete(b"deleted-early", WriteOptions::NO_SYNC).unwrap();
        }
        if round == 3 {
            db.put(b"deleted-early", b"old", WriteOptions::NO_SYNC)
                .unwrap();
        }
        db.flush().unwrap();
    }
    let level0 = db.levels()[0].len();
    assert!(level0 > 40, "only {level0} level-0 tables");
    assert_eq!(
        db.get(b"shared").unwrap(),
        Some(format!("round {}", rounds - 1).into_bytes())
    );
    for round in 0..rounds {
        assert_eq!(
            db.get(format!("only-{round:03}")).unwrap(),
            Some(b"x".to_vec())
        );
    }
    assert_eq!(db.get(b"deleted-early").unwrap(), None);
    assert_eq!(db.get(b"only-999").unwrap(), None);
}

#[test]
fn keys_whose_first_16_bytes_tie_are_found_and_told_apart() {
    let fs = sim(42);
    let db = open(&fs, &small_options());
    let key = |i: u64| format!("a-shared-prefix-of-more-than-16-bytes/{i:05}").into_bytes();
    let n = 400u64;
    // Untied keys sort before and after the tied group, so the tied run starts in the
    // middle of a table's block index.
    let before = |i: u64| format!("0-before/{i:03}").into_bytes();
    let after = |i: u64| format!("z-after/{i:03}").into_bytes();
    for i in (0..n).step_by(2) {
        db.put(key(i), format!("value {i}"), WriteOptions::NO_SYNC)
            .unwrap();
        db.put(before(i), b"b", WriteOptions::NO_SYNC).unwrap();
        db.put(after(i), b"a", WriteOptions::NO_SYNC).unwrap();
        while db.maintenance().unwrap() {}
    }
    db.flush().unwrap();
    while db.maintenance().unwrap() {}
    let tables: usize = db.levels().iter().map(Vec::len).sum();
    assert!(tables > 3, "only {tables} tables");
    for i in 0..n {
        let expected = (i % 2 == 0).then(|| format!("value {i}").into_bytes());
        assert_eq!(db.get(key(i)).unwrap(), expected, "key {i}");
        let expected = (i % 2 == 0).then(|| b"b".to_vec());
        assert_eq!(db.get(before(i)).unwrap(), expected, "before {i}");
        let expected = (i % 2 == 0).then(|| b"a".to_vec());
        assert_eq!(db.get(after(i)).unwrap(), expected, "after {i}");
    }
    // Shorter and longer keys that share the 16-byte prefix.
    assert_eq!(db.get(b"a-shared-prefix-").unwrap(), None);
    assert_eq!(db.get(b"a-shared-prefix-of-more").unwrap(), None);
    assert_eq!(db.get([key(10), b"x".to_vec()].concat()).unwrap(), None);
    let from_middle: Vec<_> = db
        .range(key(101)..key(111))
        .unwrap()
        .map(|entry| entry.unwrap().0)
        .collect();
    assert_eq!(
        from_middle,
        (102..111).step_by(2).map(key).collect::<Vec<_>>()
    );
}
