//! The record log's tests: round trips, padded trailers, records in parts, torn tails, damage.

use super::*;
use std::path::{Path, PathBuf};
use strata_vfs::{FaultConfig, SimFs, Vfs};

fn write_records(fs: &SimFs, path: &Path, records: &[Vec<u8>], preallocate: u64) {
    let file = fs.create(path).unwrap();
    let mut writer = WalWriter::new(file, preallocate);
    for record in records {
        writer.add_record(record);
    }
    writer.sync().unwrap();
}

/// `add_record` says where the record starts, which is the next block when fewer than a
/// header's bytes were left in this one (the clean-close mark in the manifest records
/// it; it recorded `end()` and a database closed with its WAL 1 byte short of a block
/// boundary did not open again: corpus/0006).
#[test]
fn a_record_after_a_padded_trailer_starts_at_the_next_block() {
    let fs = SimFs::new(3, FaultConfig::none());
    for left in 0..=HEADER_SIZE {
        let path = PathBuf::from(format!("padded-{left}.log"));
        let file = fs.create(&path).unwrap();
        let mut writer = WalWriter::new(file, 0);
        // One record that leaves exactly `left` bytes in the first block.
        let first = vec![7u8; BLOCK_SIZE - HEADER_SIZE - left];
        assert_eq!(writer.add_record(&first), 0);
        assert_eq!(writer.end(), (BLOCK_SIZE - left) as u64);
        let start = writer.add_record(b"next");
        let expected = if left < HEADER_SIZE {
            BLOCK_SIZE as u64
        } else {
            (BLOCK_SIZE - left) as u64
        };
        assert_eq!(start, expected, "{left} bytes left in the block");
        writer.sync().unwrap();
        let file = fs.open_read(&path).unwrap();
        let (records, end) = read_log(file.as_ref()).unwrap();
        assert_eq!(end, LogEnd::Clean);
        assert_eq!(records[1].0, expected, "the reader agrees");
    }
}

fn records_of_sizes(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (0..size).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

#[test]
fn a_record_in_parts_is_the_record_of_their_concatenation() {
    // Byte for byte the same log, whatever the split, across block boundaries and with
    // empty parts; the reader gets the concatenation back.
    let records = records_of_sizes(&[0, 5, 300, BLOCK_SIZE - HEADER_SIZE, 3 * BLOCK_SIZE + 11]);
    let fs = SimFs::new(4, FaultConfig::none());
    let mut logs = Vec::new();
    for split in 0..4usize {
        let path = PathBuf::from(format!("split-{split}.log"));
        let mut writer = WalWriter::new(fs.create(&path).unwrap(), 0);
        for (i, record) in records.iter().enumerate() {
            let cut = (record.len() * split / 3).min(record.len());
            let cut2 = (cut + i * 97).min(record.len());
            let parts: [&[u8]; 4] = [&record[..cut], &[], &record[cut..cut2], &record[cut2..]];
            match split {
                0 => writer.add_record(record),
                _ => writer.add_record_parts(&parts),
            };
        }
        writer.sync().unwrap();
        let file = fs.open_read(&path).unwrap();
        let (read, end) = read_log(file.as_ref()).unwrap();
        assert_eq!(end, LogEnd::Clean);
        assert_eq!(
            read.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records
        );
        logs.push(fs.snapshot()[&format!("split-{split}.log")].clone());
    }
    assert!(
        logs.iter().all(|log| *log == logs[0]),
        "the same bytes, whatever the split"
    );
}

#[test]
fn records_round_trip_across_blocks() {
    for preallocate in [0, 4096, 1 << 20] {
        let fs = SimFs::new(1, FaultConfig::none());
        let path = Path::new("log");
        let records = records_of_sizes(&[
            0,
            1,
            100,
            BLOCK_SIZE - HEADER_SIZE,
            BLOCK_SIZE,
            3 * BLOCK_SIZE + 5,
            10,
            BLOCK_SIZE - 20,
            7,
        ]);
        write_records(&fs, path, &records, preallocate);
        let file = fs.open_read(path).unwrap();
        let (read, end) = read_log(file.as_ref()).unwrap();
        assert_eq!(end, LogEnd::Clean);
        assert_eq!(
            read.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records
        );
    }
}

#[test]
fn a_torn_tail_stops_at_the_last_whole_record() {
    let fs = SimFs::new(2, FaultConfig::none());
    let path = Path::new("log");
    let records = records_of_sizes(&[50, 60, 70]);
    write_records(&fs, path, &records, 0);
    let full_len = fs.snapshot()["log"].len();
    for cut in 0..full_len {
        let file = fs.open_write(path).unwrap();
        let data = fs.snapshot()["log"].clone();
        let copy = fs.create(Path::new("copy")).unwrap();
        copy.append(&data[..cut]).unwrap();
        drop(file);
        let (read, end) = read_log(copy.as_ref()).unwrap();
        let whole = records.iter().scan(0usize, |acc, r| {
            *acc += HEADER_SIZE + r.len();
            Some(*acc)
        });
        let expected = whole.filter(|&end| end <= cut).count();
        assert_eq!(read.len(), expected, "cut at {cut}");
        let at_boundary = cut == 0 || [57, 57 + 67, 57 + 67 + 77].contains(&cut);
        assert_eq!(end == LogEnd::Clean, at_boundary, "cut at {cut}: {end:?}");
    }
}

#[test]
fn a_flipped_bit_in_the_middle_is_found_by_scan_after() {
    let fs = SimFs::new(3, FaultConfig::none());
    let path = Path::new("log");
    let records = records_of_sizes(&[50, 60, 70]);
    write_records(&fs, path, &records, 4096);
    fs.flip_bit(path, 57 + 10, 3).unwrap();
    let file = fs.open_read(path).unwrap();
    let (read, end) = read_log(file.as_ref()).unwrap();
    assert_eq!(read.len(), 1);
    let LogEnd::Broken { offset, .. } = end else {
        panic!("expected a broken end")
    };
    assert_eq!(offset, 57);
    let later = WalReader::scan_after(file.as_ref(), offset).unwrap();
    assert_eq!(later.len(), 1, "the third record is still valid");
    assert_eq!(later[0].1, records[2]);
}

/// A sync ends the log on a sector boundary, so no later write shares a sector with synced
/// bytes: under `posix-strict` (no powersafe overwrite) every crash state of an unsynced
/// append after a sync keeps every synced record. Without the padding, `strata explore
/// --fs-profile posix-strict` found the log's last synced records zeroed by a torn append.
#[test]
fn every_crash_of_an_append_after_a_sync_keeps_the_synced_records_without_powersafe_overwrite() {
    for preallocate in [0, 1 << 16] {
        for first_size in [10, 4000, SECTOR_SIZE as usize - HEADER_SIZE - 3, 9000] {
            let (states, losing) = crash_an_append_after_a_sync(preallocate, first_size, true);
            assert!(states > 3, "the append's sectors were enumerated");
            assert_eq!(
                losing, None,
                "first record {first_size} bytes, preallocate {preallocate}"
            );
        }
    }
    // Without the padding (`Options::powersafe_overwrite`), some crash state loses them: the
    // risk that option documents, and proof that this test can fail.
    let (_, losing) = crash_an_append_after_a_sync(0, 10, false);
    assert!(
        losing.is_some(),
        "an unpadded log survived every torn append"
    );
}

/// Syncs two records, appends a third without syncing, and enumerates every crash under
/// `posix-strict`: how many states, and the first that lost a synced record (described).
fn crash_an_append_after_a_sync(
    preallocate: u64,
    first_size: usize,
    pad: bool,
) -> (usize, Option<String>) {
    use strata_vfs::sim::EnumerationOptions;
    let fs = SimFs::new(
        5,
        FaultConfig {
            torn_write_rate: 0.5,
            profile: strata_vfs::FsProfile::PosixStrict,
            ..FaultConfig::none()
        },
    );
    let path = PathBuf::from("synced.log");
    let mut writer = WalWriter::new(fs.create(&path).unwrap(), preallocate).pad_syncs(pad);
    let synced = records_of_sizes(&[first_size, 20]);
    for record in &synced {
        writer.add_record(record);
    }
    writer.sync().unwrap();
    if pad {
        assert_eq!(
            writer.end() % SECTOR_SIZE,
            0,
            "a sync ends on a sector boundary"
        );
    }
    fs.sync_dir(Path::new("")).unwrap();
    writer.add_record(&[9u8; 100]);
    writer.flush().unwrap();
    let point = fs.crash_point_now();
    let mut states = 0;
    let mut losing = None;
    for state in point.states(EnumerationOptions::default()) {
        states += 1;
        let file = state.fs.open_read(&path).unwrap();
        let (records, _) = read_log(file.as_ref()).unwrap();
        let payloads: Vec<&Vec<u8>> = records.iter().map(|(_, r)| r).collect();
        if losing.is_none() && !(payloads.len() >= 2 && payloads[..2] == [&synced[0], &synced[1]]) {
            losing = Some(point.describe(&state.choices, EnumerationOptions::default()));
        }
    }
    (states, losing)
}
