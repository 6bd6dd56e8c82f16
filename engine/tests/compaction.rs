//! Leveled compaction through the engine: the shape it keeps, the merge's shadowing and
//! tombstone rules, key boundaries between output tables, read amplification bounds, when
//! a table may move down whole, how much of the level below an output may overlap, and
//! crash safety at every step of a compaction.

#![allow(clippy::unwrap_used)]

mod common;

use common::{contents, key, open, restart_and_expect, sim, value};

/// The common small options without compression: these tests reason about table and level
/// sizes in bytes of data.
fn small_options() -> Options {
    Options {
        compression_per_level: Vec::new(),
        ..common::small_options()
    }
}
use std::collections::BTreeMap;
use strata_engine::{Db, Options, WriteOptions};

fn load(db: &Db, rounds: u64, keys: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for round in 0..rounds {
        for i in 0..keys {
            let k = key((i * 7919 + round * 31) % keys);
            if (i + round) % 11 == 3 {
                db.delete(&k, WriteOptions::NO_SYNC).unwrap();
                model.remove(&k);
            } else {
                let v = value(i, round, 20 + (i as usize % 60));
                db.put(&k, &v, WriteOptions::NO_SYNC).unwrap();
                model.insert(k, v);
            }
            while db.maintenance().unwrap() {}
        }
    }
    model
}

fn assert_shape(db: &Db, options: &Options) {
    let levels = db.levels();
    assert!(
        levels[0].len() < options.level0_compaction_trigger,
        "level 0 holds {} tables after compaction caught up",
        levels[0].len()
    );
    for (level, tables) in levels.iter().enumerate().skip(1) {
        for pair in tables.windows(2) {
            assert!(
                pair[0].largest < pair[1].smallest,
                "level {level}: tables {} and {} overlap",
                pair[0].number,
                pair[1].number
            );
        }
        for table in tables {
            assert_eq!(table.level as usize, level);
        }
    }
    let stats = db.stats();
    for level in 1..levels.len().saturating_sub(1) {
        let budget = options.level_base_bytes * options.level_size_ratio.pow(level as u32 - 1);
        assert!(
            stats.bytes_per_level[level] <= budget,
            "level {level} holds {} bytes, over its budget {budget}",
            stats.bytes_per_level[level]
        );
    }
}

#[test]
fn compaction_keeps_the_level_shape_and_the_data() {
    let fs = sim(21);
    let options = small_options();
    let db = open(&fs, &options);
    let model = load(&db, 6, 120);
    assert_shape(&db, &options);
    let stats = db.stats();
    assert!(
        stats.compactions > 0,
        "the load must have compacted: {stats:?}"
    );
    assert!(
        db.levels().len() >= 3,
        "data reached level 2: {:?}",
        stats.tables_per_level
    );
    assert_eq!(contents(&db), model);
    for (k, v) in &model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v));
    }
    db.close().unwrap();
    let db = open(&fs, &options);
    assert_eq!(contents(&db), model, "after reopening");
}

#[test]
fn compaction_drops_shadowed_versions_and_obsolete_tombstones() {
    let fs = sim(22);
    let options = small_options();
    let db = open(&fs, &options);
    // Many versions of few keys, then delete half of them.
    for round in 0..40u64 {
        for i in 0..10u64 {
            db.put(key(i), value(i, round, 40), WriteOptions::NO_SYNC)
                .unwrap();
        }
    }
    for i in 0..5u64 {
        db.delete(key(i), WriteOptions::NO_SYNC).unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    // Push everything to the last level: compact repeatedly with the memtable empty.
    let entries: u64 = db.levels().iter().flatten().map(|t| t.entries).sum();
    assert!(
        entries <= 10 + 5,
        "after compaction each key has at most one version (and tombstones only if data may be below): {entries} entries"
    );
    for i in 0..10u64 {
        let expected = if i < 5 { None } else { Some(value(i, 39, 40)) };
        assert_eq!(db.get(key(i)).unwrap(), expected, "key {i}");
    }
}

#[test]
fn keys_at_table_boundaries_are_found() {
    let fs = sim(23);
    let options = Options {
        target_file_size: 1024,
        ..small_options()
    };
    let db = open(&fs, &options);
    let model = load(&db, 3, 200);
    let levels = db.levels();
    let mut boundaries = 0;
    for table in levels.iter().flatten() {
        for k in [&table.smallest, &table.largest] {
            boundaries += 1;
            assert_eq!(
                db.get(k).unwrap().as_ref(),
                model.get(k),
                "boundary key {:?}",
                String::from_utf8_lossy(k)
            );
        }
    }
    assert!(boundaries > 4);
    let scanned: Vec<_> = db.iter().unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(scanned.len(), model.len());
}

#[test]
fn a_point_read_probes_at_most_level0_plus_one_table_per_level() {
    let fs = sim(24);
    let options = small_options();
    let db = open(&fs, &options);
    let model = load(&db, 4, 150);
    let levels = db.levels();
    let bound = levels[0].len() + levels.len().saturating_sub(1);
    for i in 0..300u64 {
        let before = db.stats();
        let _ = db.get(key(i)).unwrap();
        let after = db.stats();
        let probed = after.tables_probed - before.tables_probed;
        assert!(
            probed as usize <= bound,
            "key {i} probed {probed} tables, bound {bound}"
        );
    }
    assert!(!model.is_empty());
}

#[test]
fn a_crash_at_every_step_of_a_compaction_recovers_the_synced_state() {
    let build = || {
        let fs = sim(25);
        let options = Options {
            level0_compaction_trigger: 2,
            level0_slowdown_trigger: 50,
            level0_stop_trigger: 60,
            ..small_options()
        };
        let db = open(&fs, &options);
        let mut expected = BTreeMap::new();
        for round in 0..3u64 {
            for i in 0..25u64 {
                let k = key((i * 13 + round) % 30);
                if i % 7 == 6 {
                    db.delete(&k, WriteOptions::SYNC).unwrap();
                    expected.remove(&k);
                } else {
                    let v = value(i, round, 50);
                    db.put(&k, &v, WriteOptions::SYNC).unwrap();
                    expected.insert(k, v);
                }
            }
            db.flush().unwrap();
        }
        assert!(db.has_pending_work(), "level 0 is over its trigger");
        (fs, db, expected, options)
    };
    let (fs, db, expected, _) = build();
    let start = fs.op_count();
    db.compact().unwrap();
    let steps = fs.op_count() - start;
    assert!(
        steps > 5,
        "a compaction takes several VFS operations: {steps}"
    );
    drop(db);
    for offset in 0..steps {
        let (fs, db, expected_here, options) = build();
        assert_eq!(expected_here, expected);
        fs.set_crash_at(Some(fs.op_count() + offset));
        let _ = db.compact();
        drop(db);
        assert!(fs.is_halted(), "crash point {offset} of {steps} reached");
        let db = restart_and_expect(
            &fs,
            &options,
            &expected,
            &format!("crash at compaction step {offset} of {steps}"),
        );
        db.compact().unwrap();
        assert_eq!(
            contents(&db),
            expected,
            "compacting again after the crash at step {offset}"
        );
    }
}

#[test]
fn tables_above_the_deepest_level_carry_the_larger_filters() {
    let fs = sim(25);
    // Tables big enough that a filter's whole 512-bit lines do not round small tables'
    // bits per key far up.
    let options = Options {
        memtable_size: 16 << 10,
        target_file_size: 32 << 10,
        level_base_bytes: 64 << 10,
        ..small_options()
    };
    let db = open(&fs, &options);
    let _model = load(&db, 4, 2000);
    for i in 0..100 {
        db.put(format!("level-0-{i}"), b"v", WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.flush().unwrap();
    let levels = db.levels();
    let deepest = levels
        .iter()
        .rposition(|tables| !tables.is_empty())
        .unwrap();
    assert!(deepest >= 2, "levels {:?}", db.stats().tables_per_level);
    let upper_bits = options.bloom_bits_per_key + strata_engine::UPPER_LEVEL_EXTRA_BLOOM_BITS;
    let bits_per_key = |table: &strata_engine::manifest::TableMeta| {
        let path = strata_engine::filenames::table_path(std::path::Path::new("db"), table.number);
        let reader = strata_engine::sstable::SstReader::open(
            &fs,
            &path,
            strata_engine::sstable::SstReader::number_of(&path).unwrap(),
            None,
        )
        .unwrap();
        (reader.filter_bytes() * 8) as f64 / table.entries as f64
    };
    assert!(!levels[0].is_empty());
    for table in &levels[0] {
        assert!(
            bits_per_key(table) >= upper_bits as f64,
            "level-0 table {} has {:.1} bits per key",
            table.number,
            bits_per_key(table)
        );
    }
    // Tables compacted into the deepest level (not moved there whole) have the base bits.
    let at_base = levels[deepest]
        .iter()
        .filter(|table| bits_per_key(table) < upper_bits as f64)
        .count();
    assert!(at_base > 0, "no deepest-level table has the base filter");

    // Compactions into a level above the deepest write the larger filters: every table
    // level 1 gains from here on (compaction outputs, or level-0 tables moved whole).
    let newest_before = levels.iter().flatten().map(|t| t.number).max().unwrap();
    let _model = load(&db, 1, 2000);
    let levels = db.levels();
    assert!(
        levels.len() > deepest,
        "the deepest level is still {deepest} or lower"
    );
    let gained: Vec<_> = levels[1]
        .iter()
        .filter(|table| table.number > newest_before)
        .collect();
    assert!(!gained.is_empty(), "level 1 gained no table");
    for table in gained {
        assert!(
            bits_per_key(table) >= upper_bits as f64,
            "level-1 table {} written above level {deepest} has {:.1} bits per key",
            table.number,
            bits_per_key(table)
        );
    }
}

#[test]
fn compact_all_drops_a_table_of_tombstones_that_covers_no_data() {
    let fs = sim(26);
    // A memtable that holds the whole load: each flush writes one table.
    let options = Options {
        memtable_size: 64 << 10,
        ..small_options()
    };
    let db = open(&fs, &options);
    for i in 0..40u64 {
        db.put(key(i), value(i, 0, 30), WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.compact_all().unwrap();
    // Deletions of keys that were never written, below every live key: their table overlaps
    // no table of any level, so only a merge (which finds nothing beneath) can drop them.
    for i in 0..30u64 {
        db.delete(format!("gone{i:04}"), WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.flush().unwrap();
    assert_eq!(db.levels()[0].len(), 1, "one table of tombstones");
    db.compact_all().unwrap();
    let entries: u64 = db.levels().iter().flatten().map(|t| t.entries).sum();
    assert_eq!(
        entries,
        40,
        "after compact_all every entry is a live key's value; tables: {:?}",
        db.levels()
    );
    assert_eq!(contents(&db).len(), 40);
}

#[test]
fn a_table_over_twice_the_target_size_is_split_rather_than_moved() {
    let fs = sim(27);
    let options = Options {
        // 300 entries in one memtable.
        memtable_size: 128 << 10,
        level0_compaction_trigger: 1,
        level0_slowdown_trigger: 50,
        level0_stop_trigger: 60,
        ..small_options()
    };
    let limit = options.target_file_size * strata_engine::TRIVIAL_MOVE_SIZE_FACTOR;
    let db = open(&fs, &options);
    let mut model = BTreeMap::new();
    for i in 0..300u64 {
        let v = value(i, 0, 40);
        db.put(key(i), &v, WriteOptions::NO_SYNC).unwrap();
        model.insert(key(i), v);
    }
    db.flush().unwrap();
    let levels = db.levels();
    assert_eq!(levels.iter().flatten().count(), 1, "one flushed table");
    assert!(
        levels[0][0].file_size > 4 * limit,
        "the flushed table is far over the limit: {} bytes",
        levels[0][0].file_size
    );
    // The picker's compactions (not compact_all, which always merges): level 0's single
    // table overlaps nothing below, so it is a trivial move unless its size forbids one.
    db.compact().unwrap();
    let levels = db.levels();
    assert!(levels[0].is_empty());
    for table in levels.iter().flatten() {
        assert!(
            table.file_size <= limit,
            "level {} table {} is {} bytes, over {limit}",
            table.level,
            table.number,
            table.file_size
        );
    }
    assert_eq!(contents(&db), model);
}

/// A tree whose level 2 holds many small tables over a wide key range and whose level 1
/// holds a few tables at its upper end, with compactions under the caller's control.
fn wide_level_2(seed: u64) -> (strata_vfs::SimFs, Db, Options) {
    let fs = sim(seed);
    let options = Options {
        memtable_size: 1 << 20,
        level0_compaction_trigger: 1,
        level0_slowdown_trigger: 50,
        level0_stop_trigger: 60,
        level_size_ratio: 100,
        ..small_options()
    };
    let db = open(&fs, &options);
    for i in (0..2000u64).step_by(2) {
        db.put(key(i), value(i, 0, 40), WriteOptions::NO_SYNC)
            .unwrap();
    }
    // All into level 1 in target-sized tables, then the picker moves level 1's tables down
    // (lowest keys first) until level 1 is under its budget.
    db.compact_all().unwrap();
    db.compact().unwrap();
    let levels = db.levels();
    assert!(levels[0].is_empty() && !levels[1].is_empty() && levels.len() == 3);
    let limit = options.target_file_size * strata_engine::GRANDPARENT_OVERLAP_FACTOR;
    let level2_bytes: u64 = levels[2].iter().map(|t| t.file_size).sum();
    assert!(
        level2_bytes > 3 * limit,
        "level 2 holds {level2_bytes} bytes"
    );
    (fs, db, options)
}

/// Bytes of the tables of `tables` whose ranges overlap `[smallest, largest]`.
fn overlap_bytes(
    tables: &[strata_engine::manifest::TableMeta],
    smallest: &[u8],
    largest: &[u8],
) -> u64 {
    tables
        .iter()
        .filter(|t| t.largest.as_slice() >= smallest && t.smallest.as_slice() <= largest)
        .map(|t| t.file_size)
        .sum()
}

/// Runs the one compaction of level 0's single table (sparse keys from `key(1)` up to
/// `until`; `merges` says whether it overlaps level 1) into level 1, and asserts every
/// level-1 table then overlaps at most the grandparent limit plus one level-2 table.
fn compact_sparse_keys_and_check_overlap(db: &Db, options: &Options, until: &[u8], merges: bool) {
    let sparse: Vec<Vec<u8>> = (1..2000u64)
        .step_by(50)
        .map(key)
        .filter(|k| k.as_slice() < until)
        .collect();
    assert!(sparse.len() > 10);
    for k in &sparse {
        db.put(k, b"sparse", WriteOptions::NO_SYNC).unwrap();
    }
    db.flush().unwrap();
    let levels = db.levels();
    let level0 = &levels[0][0];
    assert_eq!(
        overlap_bytes(&levels[1], &level0.smallest, &level0.largest) > 0,
        merges,
        "whether level 0's table overlaps level 1"
    );
    let before = db.stats();
    assert!(db.maintenance().unwrap(), "level 0 is due for compaction");
    let after = db.stats();
    assert_eq!(
        (after.compactions + after.trivial_moves) - (before.compactions + before.trivial_moves),
        1,
        "exactly one compaction ran"
    );
    let levels = db.levels();
    assert!(levels[0].is_empty(), "the compaction was level 0's");
    let limit = options.target_file_size * strata_engine::GRANDPARENT_OVERLAP_FACTOR;
    let largest_grandparent = levels[2].iter().map(|t| t.file_size).max().unwrap();
    for table in &levels[1] {
        let overlap = overlap_bytes(&levels[2], &table.smallest, &table.largest);
        assert!(
            overlap <= limit + largest_grandparent,
            "level-1 table {} overlaps {overlap} bytes of level 2, over {limit} + {largest_grandparent}",
            table.number
        );
    }
    for k in &sparse {
        assert_eq!(db.get(k).unwrap().as_deref(), Some(&b"sparse"[..]));
    }
}

#[test]
fn a_table_moved_down_overlaps_at_most_ten_targets_of_the_level_below() {
    let (_fs, db, options) = wide_level_2(28);
    // Keys only below level 1's tables: level 0's table overlaps nothing in level 1.
    let level1_smallest = db.levels()[1][0].smallest.clone();
    compact_sparse_keys_and_check_overlap(&db, &options, &level1_smallest, false);
}

#[test]
fn a_merged_output_table_overlaps_at_most_ten_targets_of_the_level_below() {
    let (_fs, db, options) = wide_level_2(29);
    // Keys across the whole range: the compaction merges with level 1's tables.
    compact_sparse_keys_and_check_overlap(&db, &options, b"key9999", true);
}

/// Level 0 filled by `flushes` flushes of `keys` keys each, keys `first(flush) + i * 2`.
fn level0_of(
    seed: u64,
    flushes: u64,
    keys: u64,
    first: impl Fn(u64) -> u64,
) -> (strata_vfs::SimFs, Db, Options, BTreeMap<Vec<u8>, Vec<u8>>) {
    let fs = sim(seed);
    // Memtables and levels large enough that only the flushes cut tables and only level 0
    // is due for compaction.
    let options = Options {
        memtable_size: 1 << 20,
        level0_compaction_trigger: flushes as usize,
        level0_slowdown_trigger: 50,
        level0_stop_trigger: 60,
        level_base_bytes: 1 << 20,
        target_file_size: 1 << 20,
        ..small_options()
    };
    let db = open(&fs, &options);
    let mut model = BTreeMap::new();
    for flush in 0..flushes {
        for i in 0..keys {
            let k = key(first(flush) + i * 2);
            let v = value(flush, i, 30);
            db.put(&k, &v, WriteOptions::NO_SYNC).unwrap();
            model.insert(k, v);
        }
        db.flush().unwrap();
    }
    assert_eq!(db.levels()[0].len(), flushes as usize);
    (fs, db, options, model)
}

#[test]
fn disjoint_level0_tables_move_down_together_without_a_rewrite() {
    // A sequential load: each flush's keys lie above the one before.
    let (fs, db, options, model) = level0_of(40, 4, 200, |flush| flush * 1000);
    let numbers: Vec<u64> = db.levels()[0].iter().map(|t| t.number).collect();
    let before = db.stats();
    db.compact().unwrap();
    let after = db.stats();
    assert_eq!(
        after.trivial_moves - before.trivial_moves,
        1,
        "one move of all four"
    );
    assert_eq!(
        after.compactions, before.compactions,
        "nothing was rewritten"
    );
    let levels = db.levels();
    assert!(levels[0].is_empty());
    let mut moved: Vec<u64> = levels[1].iter().map(|t| t.number).collect();
    let mut expected = numbers.clone();
    moved.sort_unstable();
    expected.sort_unstable();
    assert_eq!(moved, expected, "the same files, now in level 1");
    assert_eq!(contents(&db), model);
    drop(db);
    restart_and_expect(&fs, &options, &model, "after the move");
}

#[test]
fn overlapping_level0_tables_are_merged_not_moved() {
    // The third flush's keys interleave with the second's (odd keys between its even ones).
    let first = |flush: u64| if flush == 2 { 1001 } else { flush * 1000 };
    let (fs, db, options, model) = level0_of(41, 4, 200, first);
    let before = db.stats();
    db.compact().unwrap();
    let after = db.stats();
    assert_eq!(after.trivial_moves, before.trivial_moves, "no move");
    assert_eq!(after.compactions - before.compactions, 1, "one merge");
    assert!(db.levels()[0].is_empty());
    assert_eq!(contents(&db), model);
    drop(db);
    restart_and_expect(&fs, &options, &model, "after the merge");
}
