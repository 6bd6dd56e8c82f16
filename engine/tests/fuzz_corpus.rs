//! Every fuzz target (`fuzz/harness.rs`) on the stable toolchain: the saved fuzz corpus
//! (`fuzz/corpus/<target>/`), real files of a real database with single bits flipped and
//! truncations, and seeded random bytes. None may panic. (`cargo +nightly fuzz run TARGET`
//! explores further; its finds belong in the corpus.)

#![allow(clippy::unwrap_used)]

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::Path;
use std::sync::Arc;
use strata_engine::{Db, Options, WriteOptions};
use strata_vfs::{FaultConfig, SimFs, Vfs};

/// The files of a small real database: WALs, tables, a manifest, `CURRENT`.
fn real_files() -> Vec<(String, Vec<u8>)> {
    let fs = SimFs::new(1, FaultConfig::none());
    let options = Options {
        memtable_size: 2048,
        block_size: 256,
        // Small files keep the test fast: no preallocated WAL tail.
        wal_preallocate: 0,
        background_work: false,
        ..Options::default()
    };
    let db = Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options).unwrap();
    for i in 0..200u32 {
        let key = format!("key{:04}", i % 70);
        if i % 9 == 0 {
            db.delete(&key, WriteOptions::NO_SYNC).unwrap();
        } else {
            db.put(
                &key,
                format!("value-{i}"),
                WriteOptions { sync: i % 13 == 0 },
            )
            .unwrap();
        }
        if i % 50 == 49 {
            db.flush().unwrap();
        }
    }
    db.close().unwrap();
    fs.snapshot()
        .into_iter()
        .filter(|(_, bytes)| !bytes.is_empty())
        .collect()
}

/// Which targets a real file feeds, by its name.
fn targets_for(name: &str) -> Vec<&'static str> {
    if name.ends_with(".log") {
        vec!["wal_records"]
    } else if name.ends_with(".sst") {
        vec!["table"]
    } else if name.contains("MANIFEST-") {
        vec!["manifest"]
    } else if name.ends_with("CURRENT") {
        vec!["current"]
    } else {
        Vec::new()
    }
}

fn run(name: &str, data: &[u8]) {
    let (_, target) = harness::TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .unwrap();
    target(data);
}

#[test]
fn the_saved_fuzz_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in harness::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            target(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "fuzz/corpus holds the saved inputs");
}

#[test]
fn damaged_real_files_are_errors_not_panics() {
    let files = real_files();
    assert!(files.iter().any(|(name, _)| name.ends_with(".sst")));
    assert!(files.iter().any(|(name, _)| name.ends_with(".log")));
    for (name, bytes) in &files {
        for target in targets_for(name) {
            run(target, bytes);
            // Every bit of the first 64 bytes and of the last 64, and a spread elsewhere.
            let positions: Vec<usize> = (0..bytes.len().min(64))
                .chain(bytes.len().saturating_sub(64)..bytes.len())
                .chain((0..bytes.len()).step_by(211))
                .collect();
            for &position in &positions {
                for bit in 0..8 {
                    let mut damaged = bytes.clone();
                    damaged[position] ^= 1 << bit;
                    run(target, &damaged);
                }
            }
            for cut in (0..bytes.len()).step_by(97) {
                run(target, &bytes[..cut]);
            }
        }
    }
    // Payloads, blocks and edits inside them: the decoders below the framing.
    for (_, bytes) in &files {
        for window in bytes.chunks(61) {
            for (target, _) in harness::TARGETS {
                if !["table", "wal_records", "manifest"].contains(target) {
                    run(target, window);
                }
            }
        }
    }
}

#[test]
fn seeded_random_bytes_are_errors_not_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, target) in harness::TARGETS {
        for _ in 0..2000 {
            let len = (next() % 600) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            target(&data);
        }
    }
}
