//! Several threads writing with `sync = true` on the real disk: every acknowledged write is
//! present after reopening, and reads during writes see only written values.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use strata_engine::{Db, Options, WriteOptions};
use strata_vfs::{RealFs, Vfs};

#[test]
fn concurrent_synced_writers_lose_nothing_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let vfs: Arc<dyn Vfs> = Arc::new(RealFs::new());
    let options = Options {
        memtable_size: 64 * 1024,
        ..Options::default()
    };
    let db = Arc::new(Db::open(Arc::clone(&vfs), &path, options.clone()).unwrap());
    const THREADS: u64 = 8;
    const WRITES: u64 = 150;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let key = format!("t{t}-{i:05}");
                    let value = format!("value-{t}-{i}-{}", "x".repeat((i % 50) as usize));
                    db.put(&key, &value, WriteOptions::SYNC).unwrap();
                    // Read-your-write, from any thread.
                    assert_eq!(db.get(&key).unwrap(), Some(value.into_bytes()));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    // No close: the writes were acknowledged as synced, so dropping must not matter.
    drop(Arc::try_unwrap(db).unwrap());
    let db = Db::open(vfs, &path, options).unwrap();
    for t in 0..THREADS {
        for i in 0..WRITES {
            let key = format!("t{t}-{i:05}");
            let value = format!("value-{t}-{i}-{}", "x".repeat((i % 50) as usize));
            assert_eq!(db.get(&key).unwrap(), Some(value.into_bytes()), "{key}");
        }
    }
    assert_eq!(db.iter().unwrap().count() as u64, THREADS * WRITES);
}

#[test]
fn an_overwrite_never_exposes_older_data_to_a_concurrent_reader() {
    use strata_vfs::{FaultConfig, SimFs};
    // "k" has an old value in a table and a tombstone in the memtable. While a writer
    // overwrites it again and again, readers must see the tombstone or a new value — never
    // the old value from the table (an overwrite that briefly unlinks the key would expose it).
    let fs = SimFs::new(1, FaultConfig::none());
    let options = Options {
        background_work: false,
        ..Options::default()
    };
    let db = Arc::new(Db::open(Arc::new(fs) as Arc<dyn Vfs>, "db", options).unwrap());
    db.put(b"k", b"old", WriteOptions::NO_SYNC).unwrap();
    db.flush().unwrap();
    db.delete(b"k", WriteOptions::NO_SYNC).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let value = db.get(b"k").unwrap();
                    assert_ne!(
                        value.as_deref(),
                        Some(&b"old"[..]),
                        "a deleted value reappeared"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..100_000u32 {
        if i % 2 == 0 {
            db.put(b"k", i.to_le_bytes(), WriteOptions::NO_SYNC)
                .unwrap();
        } else {
            db.delete(b"k", WriteOptions::NO_SYNC).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
}

#[test]
fn point_reads_from_many_threads_are_all_counted() {
    let dir = tempfile::tempdir().unwrap();
    let vfs: Arc<dyn Vfs> = Arc::new(RealFs::new());
    let db = Arc::new(Db::open(vfs, dir.path().join("db"), Options::default()).unwrap());
    db.put(b"present", b"v", WriteOptions::NO_SYNC).unwrap();
    db.flush().unwrap();
    let before = db.stats();
    // More threads alive at once than the counters have stripes (some share the overflow
    // stripe), and a second wave that reuses the stripes the first wave gave back.
    const THREADS: u64 = 40;
    const READS: u64 = 2_000;
    for _wave in 0..2 {
        let barrier = Arc::new(std::sync::Barrier::new(THREADS as usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = Arc::clone(&db);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    // A read before the barrier: every thread holds its stripe (or shares
                    // the overflow one) while all the others do.
                    let _ = db.get(b"absent").unwrap();
                    barrier.wait();
                    for i in 0..READS {
                        let key: &[u8] = if (t + i) % 2 == 0 {
                            b"present"
                        } else {
                            b"absent"
                        };
                        let _ = db.get(key).unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }
    let after = db.stats();
    let reads = 2 * THREADS * READS;
    let first_reads = 2 * THREADS;
    assert_eq!(after.gets - before.gets, reads + first_reads);
    assert_eq!(
        after.missing_gets - before.missing_gets,
        reads / 2 + first_reads
    );
    assert_eq!(
        after.tables_probed - before.tables_probed,
        reads / 2,
        "the one table, probed by every read of the key in its range (\"absent\" sorts before it)"
    );
}
