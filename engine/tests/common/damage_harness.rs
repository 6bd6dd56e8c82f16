//! Random damage to a closed database, and the verdict on what the engine made of it: an
//! error naming a file, exactly the data written, wrong data, or a panic. Shared by the
//! property test (`engine/tests/corruption_property.rs`) and the experiment
//! (`engine/examples/damage_experiment.rs`).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use strata_engine::{Db, Error, Options, WriteOptions};
use strata_vfs::{FaultConfig, SimFs, Vfs};

/// What is done to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// One bit flipped.
    Flip,
    /// A range of up to 64 bytes overwritten with garbage.
    Garbage,
    /// The file cut short.
    Truncate,
    /// The file deleted.
    Delete,
}

/// The verdict on one damaged database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Open or a read failed with an error naming this file.
    ErrorNamingFile(String),
    /// Every key and the full scan returned exactly the data written.
    Correct,
    /// The engine returned data that differs from what was written (a bug).
    Wrong(String),
    /// The engine panicked (a bug).
    Panic(String),
}

/// Options that leave several tables on several levels, a few WALs and a manifest.
pub fn options() -> Options {
    Options {
        memtable_size: 2048,
        block_size: 256,
        wal_preallocate: 4096,
        wal_buffer_size: 512,
        background_work: false,
        max_immutable_memtables: 4,
        level0_compaction_trigger: 3,
        level0_slowdown_trigger: 6,
        level0_stop_trigger: 8,
        level_base_bytes: 8192,
        level_size_ratio: 4,
        target_file_size: 2048,
        ..Options::default()
    }
}

/// A tiny deterministic generator (no RNG crate needed).
pub struct Draw(u64);

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Builds a closed database from `seed`: puts, overwrites and deletes, some of them synced,
/// with flushes and compactions along the way. Returns the filesystem and the data.
pub fn build(seed: u64) -> (SimFs, BTreeMap<Vec<u8>, Vec<u8>>) {
    let fs = SimFs::new(seed, FaultConfig::none());
    let db = Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options()).unwrap();
    let mut draw = Draw::new(seed);
    let mut model = BTreeMap::new();
    for i in 0..600u64 {
        let key = format!("key{:04}", draw.below(300)).into_bytes();
        let sync = if draw.below(10) == 0 {
            WriteOptions::SYNC
        } else {
            WriteOptions::NO_SYNC
        };
        if draw.below(6) == 0 {
            db.delete(&key, sync).unwrap();
            model.remove(&key);
        } else {
            let value = format!("value-{i}-{}", "v".repeat(draw.below(60) as usize)).into_bytes();
            db.put(&key, &value, sync).unwrap();
            model.insert(key, value);
        }
        if i % 150 == 149 {
            while db.maintenance().unwrap() {}
        }
    }
    db.close().unwrap();
    (fs, model)
}

/// The database's files (not `LOCK`), sorted, with their kind.
pub fn files(fs: &SimFs) -> Vec<(String, &'static str, u64)> {
    let mut files: Vec<(String, &'static str, u64)> = fs
        .files()
        .into_iter()
        .filter_map(|(name, len)| {
            let base = name.rsplit('/').next()?.to_string();
            let kind = match strata_engine::filenames::parse(&base)? {
                strata_engine::filenames::FileKind::Table(_) => "table",
                strata_engine::filenames::FileKind::Wal(_) => "wal",
                strata_engine::filenames::FileKind::Manifest(_) => "manifest",
                strata_engine::filenames::FileKind::Current => "current",
                _ => return None,
            };
            Some((name, kind, len))
        })
        .collect();
    files.sort();
    files
}

/// Damages `file` (of length `len`) with `kind`, drawing offsets from `draw`.
pub fn damage(fs: &SimFs, file: &str, len: u64, kind: DamageKind, draw: &mut Draw) {
    let path = Path::new(file);
    match kind {
        DamageKind::Flip if len > 0 => fs
            .flip_bit(path, draw.below(len), draw.below(8) as u8)
            .unwrap(),
        DamageKind::Garbage if len > 0 => {
            let start = draw.below(len);
            let count = (1 + draw.below(64)).min(len - start);
            for offset in start..start + count {
                for bit in 0..8 {
                    if draw.below(2) == 1 {
                        fs.flip_bit(path, offset, bit).unwrap();
                    }
                }
            }
        }
        DamageKind::Truncate => fs.truncate_file(path, draw.below(len)).unwrap(),
        DamageKind::Delete => fs.lose_file(path).unwrap(),
        _ => {}
    }
}

/// Opens the damaged database and reads every key written and a full scan.
pub fn judge(fs: &SimFs, expected: &BTreeMap<Vec<u8>, Vec<u8>>) -> Verdict {
    let fs = fs.clone();
    let expected = expected.clone();
    let outcome = std::panic::catch_unwind(move || judge_inner(&fs, &expected));
    match outcome {
        Ok(verdict) => verdict,
        Err(panic) => Verdict::Panic(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

fn named(error: Error) -> Verdict {
    match &error {
        Error::Corruption { file, .. } => Verdict::ErrorNamingFile(file.display().to_string()),
        Error::Io(io) if io.to_string().contains("db/") => Verdict::ErrorNamingFile(io.to_string()),
        _ => Verdict::Wrong(format!("an error that names no file: {error}")),
    }
}

fn judge_inner(fs: &SimFs, expected: &BTreeMap<Vec<u8>, Vec<u8>>) -> Verdict {
    let db = match Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options()) {
        Ok(db) => db,
        Err(error) => return named(error),
    };
    for key in (0..300).map(|k| format!("key{k:04}").into_bytes()) {
        match db.get(&key) {
            Ok(value) if value.as_ref() == expected.get(&key) => {}
            Ok(value) => {
                return Verdict::Wrong(format!(
                    "{} is {:?}, written {:?}",
                    String::from_utf8_lossy(&key),
                    value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    expected
                        .get(&key)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                ))
            }
            Err(error) => return named(error),
        }
    }
    let mut scanned = BTreeMap::new();
    let iterator = match db.iter() {
        Ok(iterator) => iterator,
        Err(error) => return named(error),
    };
    for entry in iterator {
        match entry {
            Ok((key, value)) => {
                scanned.insert(key, value);
            }
            Err(error) => return named(error),
        }
    }
    if &scanned != expected {
        return Verdict::Wrong(format!(
            "the scan holds {} keys, {} were written",
            scanned.len(),
            expected.len()
        ));
    }
    Verdict::Correct
}
