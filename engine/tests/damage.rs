//! Damage to bytes the engine made durable is corruption, never wrong data: a manifest edit
//! cut off after it was synced, and a flipped bit in a cleanly closed WAL.

#![allow(clippy::unwrap_used)]

mod common;

use common::{contents, key, open, sim, small_options, value};
use std::path::Path;
use strata_engine::{Db, Error, Options, WriteOptions};
use strata_vfs::{SimFs, Vfs};

fn options() -> Options {
    Options {
        memtable_size: 1 << 20,
        wal_buffer_size: 1 << 20,
        ..small_options()
    }
}

fn names(fs: &SimFs, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .files()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.ends_with(suffix) || name.contains(suffix))
        .collect();
    names.sort();
    names
}

fn reopen(fs: &SimFs) -> Result<Db, Error> {
    Db::open(
        std::sync::Arc::new(fs.clone()) as std::sync::Arc<dyn Vfs>,
        "db",
        options(),
    )
}

/// The open must fail with corruption: returns the file it names and why.
fn expect_corruption(opened: Result<Db, Error>, keys: u64) -> (std::path::PathBuf, String) {
    match opened {
        Err(Error::Corruption { file, reason, .. }) => (file, reason),
        Ok(db) => panic!("opened with {} of {keys} keys", contents(&db).len()),
        Err(other) => panic!("{other}"),
    }
}

/// Puts `range`'s keys without sync.
fn put_all(db: &Db, range: std::ops::Range<u64>, len: usize) {
    for i in range {
        db.put(key(i), value(i, 0, len), WriteOptions::NO_SYNC)
            .unwrap();
    }
}

/// Cuts the newest manifest's last record off, as if it had never been written (or were
/// damaged past reading); returns the manifest's name.
fn cut_last_manifest_record(fs: &SimFs) -> String {
    let manifest = names(fs, "MANIFEST-").pop().unwrap();
    let file = fs.open_write(Path::new(&manifest)).unwrap();
    let (records, _) = strata_engine::wal::read_log(file.as_ref()).unwrap();
    // The last edit that changed the state: the close's mark after it goes with it.
    let last_change = records
        .iter()
        .rposition(|(_, record)| {
            strata_engine::manifest::VersionEdit::decode(record)
                .unwrap()
                .closed_wal
                .is_none()
        })
        .unwrap();
    assert!(last_change >= 1, "a snapshot and the flush's edit");
    file.set_len(records[last_change].0).unwrap();
    file.sync().unwrap();
    manifest
}

/// Issue 10, causes 1 and 3: the last manifest edit (a flush: its table added, its WAL
/// obsolete and then deleted) is cut off after it was durable. Before the continuity checks,
/// the shorter manifest opened as an older database and the flushed table was deleted as an
/// orphan.
#[test]
fn a_durable_manifest_edit_cut_off_is_corruption_not_an_older_database() {
    let fs = sim(10);
    let db = open(&fs, &options());
    put_all(&db, 0..20, 20);
    db.flush().unwrap();
    put_all(&db, 20..30, 20);
    db.close().unwrap();
    cut_last_manifest_record(&fs);
    // Found by the missing WAL first (the sequence gap in the next WAL would be next).
    let (_, reason) = expect_corruption(reopen(&fs), 30);
    assert!(reason.contains("missing"), "{reason}");
    // Nothing was deleted on the word of the damaged manifest: the flushed table is there.
    assert_eq!(names(&fs, ".sst").len(), 1);
}

/// Issue 10, cause 2: unsynced writes made durable by `close` carry no synced mark, so damage
/// in the middle of their WAL looked like a torn tail and every later record was dropped.
/// The closing record marks the log durable.
#[test]
fn damage_inside_a_cleanly_closed_wal_is_corruption_not_a_shorter_log() {
    let fs = sim(11);
    let db = open(&fs, &options());
    put_all(&db, 0..100, 40);
    db.close().unwrap();
    let (wal, len) = fs
        .files()
        .into_iter()
        .filter(|(name, len)| name.ends_with(".log") && *len > 0)
        .max_by_key(|(_, len)| *len)
        .unwrap();
    let (records, _) = {
        let file = fs.open_read(Path::new(&wal)).unwrap();
        strata_engine::wal::read_log(file.as_ref()).unwrap()
    };
    fs.flip_bit(Path::new(&wal), records[50].0 + 9, 3).unwrap();
    let (file, _) = expect_corruption(reopen(&fs), 100);
    assert_eq!(file, Path::new(&wal));
    assert_eq!(
        records.len(),
        101,
        "100 batches and the closing record ({len} bytes)"
    );
}

/// The closing record changes nothing for an undamaged database, and a crash that tears the
/// tail of an unclosed WAL still recovers a prefix.
#[test]
fn a_clean_close_and_a_torn_tail_still_recover() {
    let fs = sim(12);
    let db = open(&fs, &options());
    for i in 0..50 {
        db.put(key(i), value(i, 0, 10), WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.close().unwrap();
    let db = reopen(&fs).unwrap();
    assert_eq!(contents(&db).len(), 50);
    db.put(key(100), b"synced", WriteOptions::SYNC).unwrap();
    for i in 101..120 {
        db.put(key(i), b"unsynced", WriteOptions::NO_SYNC).unwrap();
    }
    drop(db);
    fs.crash();
    let db = reopen(&fs).unwrap();
    let state = contents(&db);
    assert!(
        state.len() >= 51 && state.contains_key(&key(100)),
        "{}",
        state.len()
    );
    db.close().unwrap();
    assert!(reopen(&fs).is_ok());
}

/// The same cut, with no write after the flush: no record is left to show a gap in the
/// sequence numbers, but the WAL the shorter manifest still needs is gone.
#[test]
fn a_cut_flush_edit_with_no_later_write_is_corruption_too() {
    let fs = sim(13);
    let db = open(&fs, &options());
    put_all(&db, 0..20, 20);
    db.flush().unwrap();
    db.close().unwrap();
    let manifest = cut_last_manifest_record(&fs);
    let (file, reason) = expect_corruption(reopen(&fs), 20);
    assert!(reason.contains("missing"), "{reason}");
    assert_eq!(file, Path::new(&manifest));
    assert_eq!(names(&fs, ".sst").len(), 1, "the flushed table is kept");
}

/// An older WAL shortened after a later one was written (its last records, closing record
/// included, cut at a record boundary, so nothing in it looks torn) is corruption naming it.
/// Before the closing records, the sequence gap at the start of the next WAL found it.
#[test]
fn a_wal_shortened_before_a_later_one_is_corruption() {
    let fs = sim(14);
    let options = Options {
        memtable_size: 1024,
        max_immutable_memtables: 3,
        ..options()
    };
    let db = Db::open(
        std::sync::Arc::new(fs.clone()) as std::sync::Arc<dyn Vfs>,
        "db",
        options.clone(),
    )
    .unwrap();
    for i in 0..40 {
        db.put(key(i), value(i, 0, 40), WriteOptions::SYNC).unwrap();
    }
    // Keep the WALs: drop without flushing (the immutables are flushed only by maintenance).
    drop(db);
    let mut wals: Vec<(String, u64)> = fs
        .files()
        .into_iter()
        .filter(|(name, len)| name.ends_with(".log") && *len > 0)
        .collect();
    wals.sort();
    assert!(wals.len() >= 2, "rotations left several WALs: {wals:?}");
    // Cut the oldest WAL's closing record and the record before it.
    let oldest = fs.open_write(Path::new(&wals[0].0)).unwrap();
    let (records, _) = strata_engine::wal::read_log(oldest.as_ref()).unwrap();
    oldest.set_len(records[records.len() - 2].0).unwrap();
    oldest.sync().unwrap();
    drop(oldest);
    let reopened = Db::open(
        std::sync::Arc::new(fs.clone()) as std::sync::Arc<dyn Vfs>,
        "db",
        options,
    );
    let (file, reason) = expect_corruption(reopened, 40);
    assert!(reason.contains("shortened"), "{reason}");
    assert_eq!(file, Path::new(&wals[0].0));
}
