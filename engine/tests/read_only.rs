//! `Db::open_read_only`: no lock conflict, no writes of any kind, writes refused with
//! `Error::ReadOnly`, and the database as it was when opened, WAL included.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use strata_engine::{Db, Error, Options, WriteOptions};
use strata_vfs::{OpKind, RealFs, Vfs};

fn write_some(db: &Db, from: u32, to: u32) {
    for i in from..to {
        db.put(format!("k{i:04}"), format!("v{i}"), WriteOptions::default())
            .unwrap();
    }
}

#[test]
fn a_read_only_open_makes_no_write_of_any_kind() {
    let fs = common::sim(3);
    let options = common::small_options();
    {
        let db = common::open(&fs, &options);
        write_some(&db, 0, 300);
        db.flush().unwrap();
        write_some(&db, 300, 320); // left in the WAL
        db.close().unwrap();
    }
    let before = fs.snapshot();
    fs.record_events(true);
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    let reader = Db::open_read_only(Arc::clone(&vfs), "db", options.clone()).unwrap();
    assert_eq!(reader.get("k0005").unwrap(), Some(b"v5".to_vec()));
    assert_eq!(
        reader.get("k0310").unwrap(),
        Some(b"v310".to_vec()),
        "a WAL-only write"
    );
    assert_eq!(reader.iter().unwrap().count(), 320);
    assert_eq!(reader.iter().unwrap().rev().count(), 320);
    let snapshot = reader.snapshot();
    assert_eq!(snapshot.get("k0319").unwrap(), Some(b"v319".to_vec()));
    for refused in [
        reader.put("x", "y", WriteOptions::default()),
        reader.delete("k0001", WriteOptions::default()),
        reader.flush(),
        reader.compact(),
        reader.compact_all(),
        reader.sync(),
        reader.maintenance().map(|_| ()),
    ] {
        let error = refused.unwrap_err();
        assert!(matches!(error, Error::ReadOnly { .. }), "{error}");
        assert!(error.write_had_no_effect());
    }
    drop(snapshot);
    reader.close().unwrap();
    let events = fs.take_events();
    let writes: Vec<_> = events
        .iter()
        .filter(|event| {
            !matches!(
                event.op,
                OpKind::Open | OpKind::Read | OpKind::Len | OpKind::List | OpKind::Exists
            )
        })
        .collect();
    assert!(
        writes.is_empty(),
        "a read-only open changed the disk: {writes:?}"
    );
    assert!(!events.is_empty(), "the events were recorded");
    assert_eq!(fs.snapshot(), before, "every file byte for byte as it was");
}

#[test]
fn read_only_opens_share_a_database_with_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let vfs: Arc<dyn Vfs> = Arc::new(RealFs::new());
    let writer = Db::open(Arc::clone(&vfs), dir.path(), Options::default()).unwrap();
    write_some(&writer, 0, 50);
    let first = Db::open_read_only(Arc::clone(&vfs), dir.path(), Options::default()).unwrap();
    let second = Db::open_read_only(Arc::clone(&vfs), dir.path(), Options::default()).unwrap();
    assert_eq!(first.get("k0049").unwrap(), Some(b"v49".to_vec()));
    assert_eq!(second.iter().unwrap().count(), 50);
    // A writer's later writes are not seen until a reopen.
    write_some(&writer, 50, 60);
    assert_eq!(first.get("k0055").unwrap(), None);
    let third = Db::open_read_only(Arc::clone(&vfs), dir.path(), Options::default()).unwrap();
    assert_eq!(third.get("k0055").unwrap(), Some(b"v55".to_vec()));
    // And a second writer is still refused: the read-only opens took no lock, the writer did.
    let error = Db::open(Arc::clone(&vfs), dir.path(), Options::default()).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
}

#[test]
fn a_read_only_open_creates_nothing_where_there_is_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let vfs: Arc<dyn Vfs> = Arc::new(RealFs::new());
    let missing = dir.path().join("missing");
    let error = Db::open_read_only(Arc::clone(&vfs), &missing, Options::default()).unwrap_err();
    assert!(matches!(error, Error::NoDatabase { .. }), "{error}");
    assert!(!missing.exists());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = Db::open_read_only(Arc::clone(&vfs), &empty, Options::default()).unwrap_err();
    assert!(matches!(error, Error::NoDatabase { .. }), "{error}");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "no LOCK left behind"
    );
    std::fs::write(empty.join("notes.txt"), "mine").unwrap();
    let error = Db::open_read_only(vfs, &empty, Options::default()).unwrap_err();
    assert!(matches!(error, Error::NotADatabase { .. }), "{error}");
}
