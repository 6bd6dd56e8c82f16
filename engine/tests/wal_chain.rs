//! The WAL chain (closing records that name the successor), the two recovery modes, what
//! recovery sets aside instead of deleting, and replay that honours `memtable_size`
//! (issue 10, causes 1, 3, 4 and 5).

#![allow(clippy::unwrap_used)]

mod common;

use common::{contents, key, sim, small_options, value};
use std::path::Path;
use std::sync::Arc;
use strata_engine::{Db, Error, Options, WalRecovery, WriteOptions};
use strata_vfs::{SimFs, Vfs};

fn options() -> Options {
    Options {
        memtable_size: 1024,
        max_immutable_memtables: 8,
        wal_buffer_size: 1 << 20,
        ..small_options()
    }
}

fn open_with(fs: &SimFs, options: &Options) -> Result<Db, Error> {
    Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options.clone())
}

/// The WALs holding records, oldest first.
fn wals(fs: &SimFs) -> Vec<String> {
    let mut names: Vec<String> = fs
        .files()
        .into_iter()
        .filter(|(name, len)| name.starts_with("db/") && name.ends_with(".log") && *len > 0)
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}

/// Synced writes through several WAL rotations, then a process death that keeps the WALs.
fn several_wals(seed: u64, writes: u64) -> SimFs {
    let fs = sim(seed);
    let db = open_with(&fs, &options()).unwrap();
    for i in 0..writes {
        db.put(key(i), value(i, 0, 40), WriteOptions::SYNC).unwrap();
    }
    drop(db);
    assert!(wals(&fs).len() >= 3, "rotations left several WALs");
    fs
}

fn corruption(opened: Result<Db, Error>) -> (std::path::PathBuf, String) {
    match opened {
        Err(Error::Corruption { file, reason, .. }) => (file, reason),
        Ok(db) => panic!("opened with {} keys", contents(&db).len()),
        Err(other) => panic!("{other}"),
    }
}

/// Cause 3: a lost WAL in the middle of the chain. The closing record of the WAL before it
/// names it, so recovery says which WAL went missing (before, only the sequence gap in the
/// next one showed, and only when the next one held records).
#[test]
fn a_lost_wal_in_the_chain_is_named_as_missing() {
    let fs = several_wals(20, 40);
    let chain = wals(&fs);
    fs.lose_file(Path::new(&chain[1])).unwrap();
    let (file, reason) = corruption(open_with(&fs, &options()));
    assert_eq!(file, Path::new(&chain[0]));
    let lost_name = chain[1].trim_start_matches("db/");
    assert!(
        reason.contains("missing") && reason.contains(lost_name),
        "{reason}"
    );
}

/// Cause 3: the newest WAL lost, with synced writes in it. Nothing after it could show a
/// gap, and the manifest names an older WAL; before the chain, recovery opened without them.
#[test]
fn a_lost_newest_wal_is_corruption_not_lost_synced_writes() {
    let fs = several_wals(21, 40);
    let chain = wals(&fs);
    fs.lose_file(Path::new(chain.last().unwrap())).unwrap();
    let (file, reason) = corruption(open_with(&fs, &options()));
    assert_eq!(file, Path::new(&chain[chain.len() - 2]));
    assert!(reason.contains("missing"), "{reason}");
}

/// Cause 1: a manifest whose last edit is torn (as a crash during a flush's edit leaves it)
/// lists fewer tables than the directory holds. The edit may have been durable before it
/// was damaged, so the tables it would have listed are set aside in `lost/`, not deleted.
#[test]
fn a_torn_manifest_edit_sets_unlisted_tables_aside_instead_of_deleting_them() {
    let fs = sim(22);
    let db = open_with(&fs, &options()).unwrap();
    for i in 0..20 {
        db.put(key(i), value(i, 0, 40), WriteOptions::SYNC).unwrap();
    }
    db.flush().unwrap();
    db.close().unwrap();
    // A table no manifest edit lists (a flush whose edit was then torn) ...
    let snapshot = fs.snapshot();
    let (_, table) = snapshot
        .iter()
        .find(|(name, _)| name.ends_with(".sst"))
        .unwrap();
    let table = table.clone();
    let orphan = fs.create(Path::new("db/000900.sst")).unwrap();
    orphan.append(&table).unwrap();
    orphan.sync().unwrap();
    // ... and the torn edit itself: the first bytes of a record that never finished.
    let mut manifests: Vec<String> = fs
        .files()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.contains("MANIFEST-"))
        .collect();
    manifests.sort();
    let manifest = fs.open_write(Path::new(manifests.last().unwrap())).unwrap();
    let end = manifest.len().unwrap();
    manifest
        .write_at(end, &[0x5a, 0x11, 0x20, 0x00, 0x01, 0x04])
        .unwrap();
    manifest.sync().unwrap();
    fs.sync_dir(Path::new("db")).unwrap();

    let db = open_with(&fs, &options()).unwrap();
    assert_eq!(contents(&db).len(), 20);
    assert_eq!(
        db.recovery_report().set_aside,
        vec![Path::new("db/lost/000900.sst").to_path_buf()]
    );
    db.close().unwrap();
    assert_eq!(fs.snapshot()["db/lost/000900.sst"], table);
    // Set aside for good: the next open neither deletes it nor takes it back.
    let db = open_with(&fs, &options()).unwrap();
    assert!(db.recovery_report().set_aside.is_empty());
    assert!(fs.exists(Path::new("db/lost/000900.sst")).unwrap());
}

/// Cause 5: recovering a large WAL writes tables of about `memtable_size`, as writes do,
/// not one oversized table.
#[test]
fn recovery_writes_tables_no_larger_than_the_memtable_size() {
    let fs = sim(23);
    let large = Options {
        memtable_size: 1 << 20,
        ..options()
    };
    let db = open_with(&fs, &large).unwrap();
    for i in 0..400 {
        db.put(key(i), value(i, 0, 100), WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.close().unwrap();
    let db = open_with(&fs, &options()).unwrap();
    let report = db.recovery_report().clone();
    assert_eq!(contents(&db).len(), 400);
    assert!(report.tables_written >= 10, "{report:?}");
    for (name, len) in fs.files() {
        if name.ends_with(".sst") {
            // A memtable's worth of entries (plus the one that crossed the limit) and the
            // table's blocks, index, filter and footer.
            assert!(len < 4 * 1024, "{name} is {len} bytes");
        }
    }
}

/// Writes 100 keys, the last one synced, and closes: LevelDB's `corruption_test.cc`
/// `Recovery` setup. Returns the filesystem and the WAL.
fn hundred_writes_then_two_damaged_bytes(seed: u64) -> (SimFs, String) {
    let fs = sim(seed);
    let big = Options {
        memtable_size: 1 << 20,
        ..options()
    };
    let db = open_with(&fs, &big).unwrap();
    for i in 0..100 {
        let sync = if i == 99 {
            WriteOptions::SYNC
        } else {
            WriteOptions::NO_SYNC
        };
        db.put(key(i), value(i, 0, 400), sync).unwrap();
    }
    db.close().unwrap();
    let wal = wals(&fs).pop().unwrap();
    // As LevelDB's test: the first record's header area, and somewhere in the second block.
    fs.flip_bit(Path::new(&wal), 19, 0).unwrap();
    fs.flip_bit(Path::new(&wal), 32 * 1024 + 1000, 0).unwrap();
    (fs, wal)
}

/// Cause 4: LevelDB keeps 36 of the 100 (it skips the damaged blocks, leaving a hole in the
/// history); Strata recovered 0 with no error. Strict recovery now refuses, naming the WAL.
#[test]
fn two_damaged_bytes_in_a_durable_wal_are_corruption_in_strict_mode() {
    let (fs, wal) = hundred_writes_then_two_damaged_bytes(24);
    let strict = Options {
        memtable_size: 1 << 20,
        ..options()
    };
    let (file, _) = corruption(open_with(&fs, &strict));
    assert_eq!(file, Path::new(&wal));
}

/// Cause 4, for availability: a point-in-time recovery opens with the prefix before the
/// first damage (here: nothing, since the first record is hit), says so, and sets the
/// damaged WAL aside for an operator.
#[test]
fn point_in_time_recovery_keeps_the_prefix_before_the_damage_and_reports_it() {
    let (fs, wal) = hundred_writes_then_two_damaged_bytes(25);
    let point_in_time = Options {
        memtable_size: 1 << 20,
        wal_recovery: WalRecovery::PointInTime,
        ..options()
    };
    let db = open_with(&fs, &point_in_time).unwrap();
    assert!(contents(&db).is_empty());
    let report = db.recovery_report();
    assert!(
        report.wal_damage.as_ref().unwrap().contains(&wal),
        "{report:?}"
    );
    let lost = format!("db/lost/{}", wal.trim_start_matches("db/"));
    assert_eq!(report.set_aside, vec![Path::new(&lost).to_path_buf()]);
    // And it wrote that down, durably, before committing the shorter state.
    assert_eq!(report.damage_notes.len(), 1, "{report:?}");
    let note = report.damage_notes[0].to_str().unwrap().to_string();
    let text = String::from_utf8(fs.snapshot()[&note].clone()).unwrap();
    assert!(text.contains(&wal) && text.contains("dropped"), "{text}");
    // The database goes on from there.
    db.put(key(500), b"after", WriteOptions::SYNC).unwrap();
    db.close().unwrap();
    let db = open_with(&fs, &point_in_time).unwrap();
    assert_eq!(contents(&db).len(), 1);
    assert!(db.recovery_report().wal_damage.is_none());
    // Every later open still says that a recovery dropped writes, until the note is removed.
    assert_eq!(
        db.recovery_report().damage_notes,
        vec![Path::new(&note).to_path_buf()]
    );
}

/// Damage in the middle of the chain under point-in-time recovery: every record before it
/// is kept, nothing after it (in that WAL or later ones): a prefix, never a hole.
#[test]
fn point_in_time_recovery_never_leaves_a_hole() {
    let fs = several_wals(26, 60);
    let chain = wals(&fs);
    let second = Path::new(&chain[1]);
    let (records, _) = {
        let file = fs.open_read(second).unwrap();
        strata_engine::wal::read_log(file.as_ref()).unwrap()
    };
    fs.flip_bit(second, records[1].0 + 20, 2).unwrap();
    let point_in_time = Options {
        wal_recovery: WalRecovery::PointInTime,
        ..options()
    };
    let db = open_with(&fs, &point_in_time).unwrap();
    let state = contents(&db);
    let kept = state.len() as u64;
    assert!(kept > 0 && kept < 60, "{kept}");
    for i in 0..60 {
        assert_eq!(
            state.contains_key(&key(i)),
            i < kept,
            "key {i} of a {kept}-prefix"
        );
    }
    assert_eq!(db.recovery_report().set_aside.len(), chain.len() - 1);
}

/// A cleanly closed WAL cut at a record boundary reads like a log a crash ended early; the
/// manifest's record of the close (where the closing record starts) tells them apart.
#[test]
fn a_cleanly_closed_wal_cut_at_a_record_boundary_is_corruption() {
    let fs = sim(27);
    let big = Options {
        memtable_size: 1 << 20,
        ..options()
    };
    let db = open_with(&fs, &big).unwrap();
    for i in 0..30 {
        db.put(key(i), value(i, 0, 40), WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.close().unwrap();
    let wal = wals(&fs).pop().unwrap();
    let file = fs.open_read(Path::new(&wal)).unwrap();
    let (records, _) = strata_engine::wal::read_log(file.as_ref()).unwrap();
    drop(file);
    // Cut the last ten batches and the closing record, exactly at a record's start.
    fs.truncate_file(Path::new(&wal), records[records.len() - 11].0)
        .unwrap();
    let (file, reason) = corruption(open_with(&fs, &big));
    assert_eq!(file, Path::new(&wal));
    assert!(reason.contains("closing record"), "{reason}");
}

/// A database closed with its WAL a few bytes short of a block boundary: the closing record
/// goes to the next block, and the manifest's record of the close must say so. It recorded
/// the end of the log instead, and the database did not open again (found by the sweep:
/// corpus/0006).
#[test]
fn a_close_at_the_end_of_a_block_reopens() {
    for left in 1..=7usize {
        let fs = sim(40 + left as u64);
        let options = Options {
            memtable_size: 1 << 20,
            ..options()
        };
        let db = open_with(&fs, &options).unwrap();
        // One record of 7 header bytes and a payload of 25 + value bytes (sequence, synced
        // mark, count, kind, key length, key "k", 2-byte value length), ending `left` bytes
        // before the first block boundary.
        let value = vec![b'v'; 32 * 1024 - left - 7 - 25];
        db.put(b"k", &value, WriteOptions::NO_SYNC).unwrap();
        db.close().unwrap();
        let db = open_with(&fs, &options).unwrap_or_else(|error| panic!("{left}: {error}"));
        assert_eq!(db.get(b"k").unwrap(), Some(value), "{left} bytes left");
    }
}
