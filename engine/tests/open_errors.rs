//! Opening bad directories: clear errors that name the file and what is wrong, never a
//! panic, never silently an empty database.

#![allow(clippy::unwrap_used)]

mod common;

use common::{open, sim, small_options};
use std::path::Path;
use std::sync::Arc;
use strata_engine::{Db, Error, Options, WriteOptions};
use strata_vfs::{RealFs, Vfs};

fn try_open(fs: &strata_vfs::SimFs, options: Options) -> Result<Db, Error> {
    Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options)
}

#[test]
fn a_directory_of_foreign_files_is_refused_by_name() {
    let fs = sim(1);
    fs.create_dir_all(Path::new("db")).unwrap();
    fs.create(Path::new("db/notes.txt"))
        .unwrap()
        .append(b"hello")
        .unwrap();
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(
        matches!(&error, Error::NotADatabase { found, .. } if found == "notes.txt"),
        "{error}"
    );
    assert!(error.to_string().contains("notes.txt"), "{error}");
}

#[test]
fn a_missing_directory_is_created_only_when_asked() {
    let fs = sim(2);
    let error = try_open(
        &fs,
        Options {
            create_if_missing: false,
            ..small_options()
        },
    )
    .unwrap_err();
    assert!(matches!(error, Error::NoDatabase { .. }), "{error}");
    assert!(error.to_string().contains("no database in db"), "{error}");
    let db = try_open(&fs, small_options()).unwrap();
    db.put(b"k", b"v", WriteOptions::SYNC).unwrap();
}

fn database_with_a_table(seed: u64) -> strata_vfs::SimFs {
    let fs = sim(seed);
    let db = open(&fs, &small_options());
    for i in 0..40u32 {
        db.put(format!("k{i:03}"), [b'x'; 40], WriteOptions::NO_SYNC)
            .unwrap();
    }
    db.flush().unwrap();
    db.close().unwrap();
    fs
}

#[test]
fn a_missing_table_is_a_corruption_error_naming_it() {
    let fs = database_with_a_table(3);
    let table = fs
        .files()
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name.ends_with(".sst"))
        .unwrap();
    fs.remove(Path::new(&table)).unwrap();
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(
        error.to_string().contains(&table) && error.to_string().contains("missing"),
        "{error}"
    );
}

#[test]
fn a_corrupt_manifest_or_current_is_a_corruption_error() {
    let fs = database_with_a_table(4);
    let manifest = fs
        .files()
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name.contains("MANIFEST"))
        .unwrap();
    fs.flip_bit(Path::new(&manifest), 9, 2).unwrap();
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains(&manifest), "{error}");

    let fs = database_with_a_table(5);
    let current = fs.create(Path::new("db/CURRENT")).unwrap();
    current.append(b"garbage without newline").unwrap();
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(
        error.is_corruption() && error.to_string().contains("CURRENT"),
        "{error}"
    );
}

#[test]
fn oversized_keys_and_values_are_rejected_not_stored() {
    let fs = sim(6);
    let options = Options {
        max_value_size: 1000,
        ..small_options()
    };
    let db = open(&fs, &options);
    let error = db
        .put(vec![b'k'; 70_000], b"v", WriteOptions::SYNC)
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    let error = db
        .put(b"k", vec![0u8; 1001], WriteOptions::SYNC)
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    assert_eq!(db.get(b"k").unwrap(), None);
    assert!(
        db.poisoned().is_none(),
        "a rejected write does not poison the database"
    );
}

#[test]
fn a_file_in_place_of_the_directory_is_an_error_on_the_real_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    std::fs::write(&path, b"not a directory").unwrap();
    let error = Db::open(Arc::new(RealFs::new()), &path, Options::default()).unwrap_err();
    assert!(error.to_string().contains("db"), "{error}");
}

#[test]
fn a_database_created_with_its_parent_directories_survives_a_crash() {
    for seed in 0..40 {
        let fs = sim(100 + seed);
        let db = Db::open(
            Arc::new(fs.clone()) as Arc<dyn Vfs>,
            "a/b/db",
            small_options(),
        )
        .unwrap();
        db.put(b"k", b"v", WriteOptions::SYNC).unwrap();
        drop(db);
        fs.crash();
        let db = Db::open(
            Arc::new(fs.clone()) as Arc<dyn Vfs>,
            "a/b/db",
            small_options(),
        )
        .unwrap();
        assert_eq!(
            db.get(b"k").unwrap(),
            Some(b"v".to_vec()),
            "seed {seed}: a synced write was lost"
        );
    }
}

#[test]
fn a_database_open_twice_is_refused_until_the_first_closes() {
    let fs = sim(61);
    let first = try_open(&fs, small_options()).unwrap();
    first.put(b"k", b"v", WriteOptions::SYNC).unwrap();
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
    assert!(error.to_string().contains("db"), "{error}");
    first.close().unwrap();
    let second = try_open(&fs, small_options()).unwrap();
    assert_eq!(second.get(b"k").unwrap(), Some(b"v".to_vec()));
    drop(second);
    // Dropping releases it too.
    let third = try_open(&fs, small_options()).unwrap();
    assert_eq!(third.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn the_real_disk_lock_file_keeps_a_second_open_out_and_is_not_a_foreign_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let real = || Arc::new(RealFs::new()) as Arc<dyn Vfs>;
    let first = Db::open(real(), &dir, Options::default()).unwrap();
    first.put(b"k", b"v", WriteOptions::SYNC).unwrap();
    let error = Db::open(real(), &dir, Options::default()).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
    assert!(
        error.to_string().contains(&dir.display().to_string()),
        "{error}"
    );
    first.close().unwrap();
    assert!(dir.join("LOCK").exists());
    let again = Db::open(real(), &dir, Options::default()).unwrap();
    assert_eq!(again.get(b"k").unwrap(), Some(b"v".to_vec()));
    again.close().unwrap();

    // A creation that died before CURRENT leaves LOCK behind; it is ours, not foreign.
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::write(fresh.join("LOCK"), b"").unwrap();
    let db = Db::open(real(), &fresh, Options::default()).unwrap();
    db.put(b"a", b"b", WriteOptions::SYNC).unwrap();
    db.close().unwrap();
}

#[test]
fn a_refused_directory_on_the_real_disk_is_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let real = || Arc::new(RealFs::new()) as Arc<dyn Vfs>;
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let error = Db::open(real(), &foreign, Options::default()).unwrap_err();
    assert!(matches!(error, Error::NotADatabase { .. }), "{error}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let no_create = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let error = Db::open(real(), &empty, no_create).unwrap_err();
    assert!(matches!(error, Error::NoDatabase { .. }), "{error}");
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&foreign), vec!["notes.txt".to_string()]);
    assert!(names(&empty).is_empty(), "{:?}", names(&empty));
}

#[test]
fn an_open_that_fails_after_taking_the_lock_releases_it() {
    let fs = sim(62);
    try_open(&fs, small_options()).unwrap().close().unwrap();
    let exclusive = Options {
        error_if_exists: true,
        ..small_options()
    };
    let error = try_open(&fs, exclusive).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    // Corrupt CURRENT: recovery fails after the lock was taken.
    let current = fs.create(Path::new("db/CURRENT")).unwrap();
    current.append(b"MANIFEST-999999\n").unwrap();
    current.sync().unwrap();
    drop(current);
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    // Neither failure kept the lock: the error now is the corruption, not `Locked`.
    let error = try_open(&fs, small_options()).unwrap_err();
    assert!(error.is_corruption(), "{error}");
}

/// `error_if_exists` has its own error, and the engine says which write errors mean the
/// write had no effect.
#[test]
fn an_existing_database_and_refused_writes_have_their_own_errors() {
    let fs = sim(31);
    drop(try_open(&fs, small_options()).unwrap());
    let error = try_open(
        &fs,
        Options {
            error_if_exists: true,
            ..small_options()
        },
    )
    .unwrap_err();
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error}");
    assert!(Error::InvalidArgument("x".into()).write_had_no_effect());
    assert!(Error::Poisoned { reason: "x".into() }.write_had_no_effect());
    assert!(!Error::corruption("f", 0, "x").write_had_no_effect());
}
