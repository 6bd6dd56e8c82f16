//! `verify` and `repair` on SimFs: verify names the damaged file (and offset) and writes
//! nothing; repair rebuilds a database that opens with the salvaged data, keeps precedence
//! where a manifest recorded it, and never deletes a file.

#![allow(clippy::unwrap_used)]

mod common;

use common::{contents, key, open, sim, small_options, value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_engine::sstable::SstReader;
use strata_engine::{
    repair, verify, Db, Error, Options, Placement, RepairReport, Severity, VerifyReport,
    WriteOptions,
};
use strata_vfs::{SimFs, Vfs};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Flushes only when asked; small blocks, so that tables have several.
fn options() -> Options {
    Options {
        memtable_size: 1 << 20,
        wal_buffer_size: 1 << 20,
        ..small_options()
    }
}

fn put(db: &Db, model: &mut Model, keys: std::ops::Range<u64>, round: u64) {
    for i in keys {
        db.put(key(i), value(i, round, 30), WriteOptions::NO_SYNC)
            .unwrap();
        model.insert(key(i), value(i, round, 30));
    }
}

fn delete(db: &Db, model: &mut Model, keys: std::ops::Range<u64>) {
    for i in keys {
        db.delete(key(i), WriteOptions::NO_SYNC).unwrap();
        model.remove(&key(i));
    }
}

/// Tables at level 0 and below, overwrites and deletes across them, and writes left in the
/// WAL (closed cleanly). Returns what the database holds.
fn history(fs: &SimFs) -> Model {
    let db = open(fs, &options());
    let mut model = Model::new();
    put(&db, &mut model, 0..60, 0);
    db.flush().unwrap();
    put(&db, &mut model, 20..80, 1);
    delete(&db, &mut model, 0..5);
    db.flush().unwrap();
    db.compact_all().unwrap();
    put(&db, &mut model, 40..100, 2);
    delete(&db, &mut model, 25..30);
    db.flush().unwrap();
    put(&db, &mut model, 50..70, 3);
    db.close().unwrap();
    model
}

fn dir() -> &'static Path {
    Path::new("db")
}

fn names(fs: &SimFs, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs
        .files()
        .into_iter()
        .map(|(name, _)| PathBuf::from(name))
        .filter(|path| path.starts_with("db") && !path.starts_with("db/lost"))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

fn reopen(fs: &SimFs) -> Result<Db, Error> {
    Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options())
}

/// Runs verify and checks that it changed nothing.
fn verified(fs: &SimFs) -> VerifyReport {
    let before = fs.snapshot();
    let report = verify(fs, dir()).unwrap();
    assert_eq!(fs.snapshot(), before, "verify changed the directory");
    report
}

fn corruptions(report: &VerifyReport) -> Vec<&strata_engine::Problem> {
    report
        .problems
        .iter()
        .filter(|problem| problem.severity == Severity::Corruption)
        .collect()
}

/// The one corruption the report must hold: in `file`.
fn only_corruption_in<'r>(report: &'r VerifyReport, file: &Path) -> &'r strata_engine::Problem {
    let found = corruptions(report);
    assert!(
        !found.is_empty(),
        "no corruption found: {:?}",
        report.problems
    );
    assert!(
        found.iter().all(|problem| problem.file == file),
        "expected corruption in {} only: {:?}",
        file.display(),
        report.problems
    );
    found[0]
}

fn index_of(fs: &SimFs, table: &Path) -> Vec<strata_engine::sstable::IndexEntry> {
    SstReader::open(
        fs,
        table,
        strata_engine::sstable::SstReader::number_of(table).unwrap(),
        None,
    )
    .unwrap()
    .index()
    .entries()
}

fn records(fs: &SimFs, path: &Path) -> Vec<(u64, Vec<u8>)> {
    let file = fs.open_read(path).unwrap();
    strata_engine::wal::read_log(file.as_ref()).unwrap().0
}

/// The WAL that holds the last writes (the largest one).
fn live_wal(fs: &SimFs) -> PathBuf {
    names(fs, ".log")
        .into_iter()
        .max_by_key(|path| records(fs, path).len())
        .unwrap()
}

#[test]
fn verify_of_a_sound_database_reports_nothing() {
    let fs = sim(1);
    history(&fs);
    let report = verified(&fs);
    assert_eq!(report.problems, vec![]);
    assert!(report.tables_checked >= 2 && report.blocks_checked > report.tables_checked);
    assert_eq!(report.wals_checked, 1);
    assert!(report.manifest.is_some());
}

#[test]
fn verify_names_the_block_with_a_flipped_bit() {
    let fs = sim(2);
    history(&fs);
    let table = names(&fs, ".sst").remove(0);
    let block = index_of(&fs, &table)[1].clone();
    fs.flip_bit(&table, block.offset + 3, 2).unwrap();
    let report = verified(&fs);
    let problem = only_corruption_in(&report, &table);
    assert_eq!(problem.offset, Some(block.offset), "{problem}");
    assert!(problem.reason.contains("checksum"), "{problem}");
}

#[test]
fn verify_names_a_truncated_table_and_its_recorded_size() {
    let fs = sim(3);
    history(&fs);
    let table = names(&fs, ".sst").remove(0);
    let len = fs.snapshot()[&table.to_string_lossy().into_owned()].len() as u64;
    fs.truncate_file(&table, len - 5).unwrap();
    let report = verified(&fs);
    let problem = only_corruption_in(&report, &table);
    assert!(problem.reason.contains("manifest recorded"), "{problem}");
    assert_eq!(problem.offset, Some(len - 5));
}

#[test]
fn verify_names_a_missing_table() {
    let fs = sim(4);
    history(&fs);
    let table = names(&fs, ".sst").remove(0);
    fs.lose_file(&table).unwrap();
    let problem = only_corruption_in(&verified(&fs), &table).clone();
    assert!(problem.reason.contains("missing"), "{problem}");
}

#[test]
fn verify_tells_damage_inside_the_manifest_from_a_torn_last_edit() {
    let fs = sim(5);
    history(&fs);
    let manifest = names(&fs, "")
        .into_iter()
        .find(|p| p.to_string_lossy().contains("MANIFEST-"))
        .unwrap();
    // A torn edit at the end (garbage nothing valid follows): a warning only.
    let file = fs.open_write(&manifest).unwrap();
    let end = file.len().unwrap();
    file.write_at(end, &[0xab; 11]).unwrap();
    file.sync().unwrap();
    drop(file);
    let report = verified(&fs);
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.count(Severity::Warning), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].offset, Some(end));
    // A flipped bit in an edit that valid edits follow: corruption at that edit.
    let edits = records(&fs, &manifest);
    assert!(edits.len() >= 2);
    fs.flip_bit(&manifest, edits[0].0 + 9, 1).unwrap();
    let report = verified(&fs);
    let problem = only_corruption_in(&report, &manifest);
    assert_eq!(problem.offset, Some(edits[0].0), "{problem}");
}

#[test]
fn verify_names_a_wal_damaged_in_the_middle() {
    let fs = sim(6);
    history(&fs);
    let wal = live_wal(&fs);
    let wal_records = records(&fs, &wal);
    assert!(wal_records.len() > 10, "{}", wal_records.len());
    fs.flip_bit(&wal, wal_records[5].0 + 12, 4).unwrap();
    let report = verified(&fs);
    let problem = only_corruption_in(&report, &wal);
    assert_eq!(problem.offset, Some(wal_records[5].0), "{problem}");
}

#[test]
fn verify_reports_orphans_without_calling_them_errors() {
    let fs = sim(7);
    history(&fs);
    let table = names(&fs, ".sst").remove(0);
    let copy = fs.create(Path::new("db/999999.sst")).unwrap();
    copy.append(&fs.snapshot()[&table.to_string_lossy().into_owned()])
        .unwrap();
    drop(copy);
    let report = verified(&fs);
    assert!(report.is_sound());
    assert_eq!(report.count(Severity::Orphan), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].file, Path::new("db/999999.sst"));
}

#[test]
fn verify_refuses_what_is_not_a_database() {
    let fs = sim(8);
    assert!(matches!(verify(&fs, dir()), Err(Error::InvalidArgument(_))));
    fs.create_dir_all(dir()).unwrap();
    assert!(matches!(verify(&fs, dir()), Err(Error::InvalidArgument(_))));
}

fn repaired(fs: &SimFs) -> RepairReport {
    let before = fs.snapshot();
    let report = repair(fs, dir(), &options()).unwrap();
    let after = fs.snapshot();
    // Never deletes: every file is where it was or in lost/ (CURRENT: a copy in lost/).
    for (path, data) in &before {
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        let kept = after.get(path) == Some(data)
            || after.get(&format!("db/lost/{name}")) == Some(data)
            || after.iter().any(|(other, bytes)| {
                other.starts_with(&format!("db/lost/{name}.")) && bytes == data
            });
        assert!(kept, "repair lost {path}: {report:#?}");
    }
    report
}

#[test]
fn repair_after_the_manifest_is_lost_recovers_every_key() {
    let fs = sim(10);
    let model = history(&fs);
    for manifest in names(&fs, "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("MANIFEST-"))
    {
        fs.lose_file(&manifest).unwrap();
    }
    assert!(reopen(&fs).is_err());
    let report = repaired(&fs);
    assert!(
        !report.consistent && report.base_manifest.is_none(),
        "{report:#?}"
    );
    assert!(report
        .kept
        .iter()
        .all(|t| t.placement == Placement::Guessed));
    assert!(report.records_replayed > 0);
    let db = reopen(&fs).unwrap();
    assert_eq!(contents(&db), model);
    drop(db);
    assert!(verified(&fs).is_sound());
}

#[test]
fn repair_after_current_is_lost_recovers_every_key_as_recovery_would() {
    let fs = sim(11);
    let model = history(&fs);
    let levels = reopen(&fs).unwrap().levels();
    fs.lose_file(Path::new("db/CURRENT")).unwrap();
    // An unfinished job's output, which no edit lists: here a copy of the oldest table
    // under a new number, whose values later writes replaced.
    let oldest = names(&fs, ".sst").remove(0);
    let copy = fs.create(Path::new("db/999999.sst")).unwrap();
    copy.append(&fs.snapshot()[&oldest.to_string_lossy().into_owned()])
        .unwrap();
    drop(copy);
    let report = repaired(&fs);
    assert!(report.consistent, "{report:#?}");
    assert!(fs.exists(Path::new("db/lost/999999.sst")).unwrap());
    assert!(report
        .kept
        .iter()
        .all(|t| t.placement == Placement::Recorded));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let db = reopen(&fs).unwrap();
    assert_eq!(contents(&db), model);
    // The tables kept their levels.
    let numbers = |levels: &[Vec<strata_engine::manifest::TableMeta>]| -> Vec<Vec<u64>> {
        levels
            .iter()
            .skip(1)
            .map(|l| l.iter().map(|t| t.number).collect())
            .collect()
    };
    assert_eq!(numbers(&db.levels()), numbers(&levels));
}

/// A history in which a compaction into a deeper level, after a flush to level 0, writes
/// older data under a higher number than the flush's: ordering the tables by number would
/// return the older value.
fn misleading_numbers(fs: &SimFs) -> Model {
    let db = open(fs, &options());
    let mut model = Model::new();
    for round in 0..2 {
        put(&db, &mut model, 0..300, round);
        db.flush().unwrap();
        db.compact_all().unwrap();
        db.compact().unwrap();
    }
    put(&db, &mut model, 0..300, 2);
    db.flush().unwrap();
    put(&db, &mut model, 0..300, 3);
    db.flush().unwrap();
    // Level 0 into level 1 (now over its budget), then a flush before level 1 goes down.
    assert!(db.maintenance().unwrap());
    put(&db, &mut model, 100..120, 4);
    db.flush().unwrap();
    db.compact().unwrap();
    let levels = db.levels();
    db.close().unwrap();
    let newest_flush = levels[0].iter().map(|t| t.number).max().unwrap();
    let misleading = levels
        .iter()
        .skip(1)
        .flatten()
        .any(|t| t.number > newest_flush && t.smallest <= key(119) && t.largest >= key(100));
    let shape: Vec<Vec<String>> = levels
        .iter()
        .map(|l| {
            l.iter()
                .map(|t| {
                    format!(
                        "{}:{}..{}",
                        t.number,
                        String::from_utf8_lossy(&t.smallest),
                        String::from_utf8_lossy(&t.largest)
                    )
                })
                .collect()
        })
        .collect();
    assert!(
        misleading,
        "no deeper table numbered above the flush: {shape:?}"
    );
    model
}

#[test]
fn repair_keeps_recorded_levels_where_file_numbers_would_mislead() {
    let fs = sim(12);
    let model = misleading_numbers(&fs);
    fs.lose_file(Path::new("db/CURRENT")).unwrap();
    let report = repaired(&fs);
    assert!(report.consistent, "{report:#?}");
    assert_eq!(contents(&reopen(&fs).unwrap()), model);
}

#[test]
fn without_a_manifest_repair_reports_its_guesses() {
    let fs = sim(13);
    misleading_numbers(&fs);
    for manifest in names(&fs, "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("MANIFEST-"))
    {
        fs.lose_file(&manifest).unwrap();
    }
    let report = repaired(&fs);
    assert!(
        report.warnings.iter().any(|w| w.contains("is a guess")),
        "{report:#?}"
    );
    assert!(reopen(&fs).is_ok());
}

#[test]
fn repair_sets_a_damaged_table_aside_and_salvages_its_readable_blocks() {
    let fs = sim(14);
    let mut model = history(&fs);
    // A table of keys written once, so that what its damaged block held is simply gone.
    let db = reopen(&fs).unwrap();
    put(&db, &mut model, 1000..1100, 9);
    db.flush().unwrap();
    db.close().unwrap();
    let table = names(&fs, ".sst").pop().unwrap();
    let index = index_of(&fs, &table);
    assert!(index.len() >= 3);
    let reader = SstReader::open(
        &fs,
        &table,
        strata_engine::sstable::SstReader::number_of(&table).unwrap(),
        None,
    )
    .unwrap();
    let lost_keys: Vec<Vec<u8>> = reader
        .read_block(1)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    drop(reader);
    fs.flip_bit(&table, index[1].offset + 1, 0).unwrap();
    assert!(reopen(&fs).is_ok(), "a block is read only when needed");
    let report = repaired(&fs);
    assert!(report.consistent, "{report:#?}");
    let name = table.file_name().unwrap().to_string_lossy().into_owned();
    assert!(fs.snapshot().contains_key(&format!("db/lost/{name}")));
    assert_eq!(report.salvaged.len(), 1, "{report:#?}");
    assert_eq!(report.salvaged[0].blocks_lost, 1);
    for key in &lost_keys {
        model.remove(key);
    }
    let db = reopen(&fs).unwrap();
    assert_eq!(contents(&db), model);
    drop(db);
    assert!(verified(&fs).is_sound());
}

#[test]
fn repair_after_a_wal_damaged_in_the_middle_keeps_the_records_before_it() {
    let fs = sim(15);
    let model = history(&fs);
    let wal = live_wal(&fs);
    let wal_records = records(&fs, &wal);
    fs.flip_bit(&wal, wal_records[5].0 + 12, 4).unwrap();
    assert!(reopen(&fs).is_err());
    let report = repaired(&fs);
    assert!(!report.consistent);
    assert_eq!(report.records_replayed, 5, "{report:#?}");
    assert!(
        report.dropped.iter().any(|line| line.contains("not")),
        "{report:#?}"
    );
    let db = reopen(&fs).unwrap();
    let state = contents(&db);
    // Round 3 wrote keys 50..70 one per record: the first five survive, the rest fall back
    // to the values the tables hold (round 2).
    for i in 50..70 {
        let expected = if i < 55 {
            model[&key(i)].clone()
        } else {
            value(i, 2, 30)
        };
        assert_eq!(state.get(&key(i)), Some(&expected), "key {i}");
    }
}

/// Flushes `k = old`, then `k = new`, and puts the first WAL back as a crash that undid its
/// removal would (`closed`: as it was when flushed, its closing record naming the next
/// WAL; otherwise as it was before its rotation). Without a manifest, repair must not
/// replay it over the newer table.
fn left_behind_wal_is_not_replayed(seed: u64, closed: bool) {
    let fs = sim(seed);
    let options = Options {
        memtable_size: 1024,
        max_immutable_memtables: 3,
        ..options()
    };
    let db = Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options.clone()).unwrap();
    db.put(b"k", b"old", WriteOptions::SYNC).unwrap();
    let old_wal = live_wal(&fs);
    let mut filler = 0;
    while closed && names(&fs, ".log").len() < 2 {
        db.put(key(filler), value(filler, 0, 100), WriteOptions::SYNC)
            .unwrap();
        filler += 1;
    }
    let old_bytes = fs.snapshot()[&old_wal.to_string_lossy().into_owned()].clone();
    db.flush().unwrap();
    db.put(b"k", b"new", WriteOptions::SYNC).unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    assert!(!fs.exists(&old_wal).unwrap(), "the flush removed it");
    let restored = fs.create(&old_wal).unwrap();
    restored.append(&old_bytes).unwrap();
    restored.sync().unwrap();
    fs.sync_dir(dir()).unwrap();
    for manifest in names(&fs, "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("MANIFEST-"))
    {
        fs.lose_file(&manifest).unwrap();
    }
    let report = repaired(&fs);
    assert!(
        report
            .dropped
            .iter()
            .any(|line| line.contains(&*old_wal.to_string_lossy())),
        "{report:#?}"
    );
    let db = Db::open(Arc::new(fs.clone()) as Arc<dyn Vfs>, "db", options).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"new"[..]));
}

#[test]
fn a_flushed_wal_left_behind_is_not_replayed_over_newer_tables() {
    left_behind_wal_is_not_replayed(16, true);
    left_behind_wal_is_not_replayed(18, false);
}

#[test]
fn repair_refuses_an_open_database_and_a_second_repair_changes_nothing() {
    let fs = sim(17);
    let model = history(&fs);
    let db = reopen(&fs).unwrap();
    assert!(matches!(
        repair(&fs, dir(), &options()),
        Err(Error::Locked { .. })
    ));
    drop(db);
    fs.lose_file(Path::new("db/CURRENT")).unwrap();
    repaired(&fs);
    let again = repaired(&fs);
    assert!(again.consistent && again.salvaged.is_empty(), "{again:#?}");
    assert_eq!(contents(&reopen(&fs).unwrap()), model);
}
