//! One seed and one sequence of calls fix every byte: equal runs give equal event and image
//! hashes, and the seed (not anything else) is what changes a crash image.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use strata_vfs::sim::StableHasher;
use strata_vfs::{Event, FaultConfig, FaultCounters, FaultKind, SimFs, Vfs};

/// Everything observable about a run.
#[derive(Debug, PartialEq)]
struct Run {
    event_hash: u64,
    image_hash: u64,
    events: Vec<Event>,
    counters: FaultCounters,
    outcomes: Vec<String>,
    op_count: u64,
}

fn faulty() -> FaultConfig {
    FaultConfig {
        sector_size: 64,
        unsynced_survival: 0.5,
        torn_write_rate: 0.3,
        sync_failure_rate: 0.1,
        enospc_rate: 0.05,
        read_error_rate: 0.05,
        bitflip_rate: 0.5,
        ..FaultConfig::none()
    }
}

fn file(i: usize) -> PathBuf {
    Path::new("/db").join(format!("{i:03}.log"))
}

/// A workload that touches every operation and, under `faulty()`, every fault; it records
/// each outcome (values and error kinds) and crashes twice.
fn workload(fs: &SimFs, rounds: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |what: String| out.push(what);
    note(format!("{:?}", fs.create_dir_all(Path::new("/db"))));
    note(format!("{:?}", fs.sync_dir(Path::new("/"))));
    for crash in 0..2 {
        for round in 0..rounds {
            let i = round % 5;
            match fs.create(&file(i)) {
                Ok(handle) => {
                    for chunk in 0..6u8 {
                        let data = vec![chunk.wrapping_mul(31).wrapping_add(round as u8); 50];
                        note(format!("{:?}", handle.append(&data).map_err(|e| e.kind())));
                    }
                    note(format!(
                        "{:?}",
                        handle.write_at(7, b"overwrite").map_err(|e| e.kind())
                    ));
                    if round % 3 == 0 {
                        note(format!("{:?}", handle.sync().map_err(|e| e.kind())));
                    }
                    if round % 4 == 1 {
                        note(format!("{:?}", handle.set_len(120).map_err(|e| e.kind())));
                    }
                    let mut buf = [0u8; 32];
                    note(format!(
                        "{:?}",
                        handle.read_at(3, &mut buf).map_err(|e| e.kind())
                    ));
                    note(format!("{buf:?}"));
                }
                Err(e) => note(format!("create: {:?}", e.kind())),
            }
            if round % 5 == 2 {
                note(format!(
                    "{:?}",
                    fs.rename(&file(i), &file(i + 10)).map_err(|e| e.kind())
                ));
            }
            if round % 7 == 3 {
                note(format!(
                    "{:?}",
                    fs.remove(&file((i + 1) % 5)).map_err(|e| e.kind())
                ));
            }
            if round % 2 == 0 {
                note(format!(
                    "{:?}",
                    fs.sync_dir(Path::new("/db")).map_err(|e| e.kind())
                ));
            }
        }
        fs.crash();
        note(format!("crash {crash}: {:?}", fs.list(Path::new("/db"))));
        note(format!("{:?}", fs.snapshot()));
    }
    out
}

fn run(seed: u64, config: FaultConfig, rounds: usize) -> Run {
    let fs = SimFs::new(seed, config);
    fs.record_events(true);
    let outcomes = workload(&fs, rounds);
    Run {
        event_hash: fs.event_hash(),
        image_hash: fs.image_hash(),
        events: fs.events(),
        counters: fs.counters(),
        outcomes,
        op_count: fs.op_count(),
    }
}

#[test]
fn same_seed_same_run() {
    for seed in [0, 1, 42, u64::MAX] {
        let first = run(seed, faulty(), 40);
        let second = run(seed, faulty(), 40);
        assert_eq!(first.event_hash, second.event_hash, "seed {seed}");
        assert_eq!(first.image_hash, second.image_hash, "seed {seed}");
        assert_eq!(first, second, "seed {seed}");
        // The workload did meet faults, so equality is not trivial.
        assert!(
            first.counters.total() > 2,
            "seed {seed}: {:?}",
            first.counters
        );
        assert!(!first.events.is_empty());
    }
}

#[test]
fn every_fault_kind_is_reproduced() {
    // Across a few seeds the fault mix, with the medium's faults on too, exercises every
    // kind, and each run reproduces exactly.
    let config = FaultConfig {
        misdirected_write_rate: 0.02,
        lost_write_rate: 0.02,
        stale_read_rate: 0.1,
        latent_sector_rate: 0.05,
        ..faulty()
    };
    let mut seen = FaultCounters::default();
    for seed in 0..8 {
        let first = run(seed, config.clone(), 60);
        assert_eq!(first, run(seed, config.clone(), 60), "seed {seed}");
        seen.add(&first.counters);
    }
    for (kind, count) in seen.iter() {
        // Truncation and file loss are done by the caller (`truncate_file`, `lose_file`),
        // never drawn by the filesystem itself.
        if matches!(kind, FaultKind::Truncation | FaultKind::FileLoss) {
            continue;
        }
        assert!(count > 0, "{kind} never fired: {seen:?}");
    }
}

#[test]
fn a_different_operation_changes_the_event_hash() {
    let fs_a = SimFs::new(5, faulty());
    let fs_b = SimFs::new(5, faulty());
    workload(&fs_a, 10);
    workload(&fs_b, 10);
    assert_eq!(fs_a.event_hash(), fs_b.event_hash());
    let a = fs_a.create(&file(1)).unwrap();
    let b = fs_b.create(&file(1)).unwrap();
    a.append(b"x").unwrap();
    b.append(b"y").unwrap();
    // Same op kinds, paths, offsets and lengths: the event hash covers what was done, not
    // the bytes, so it stays equal; the image hash covers the bytes and tells them apart.
    assert_eq!(fs_a.event_hash(), fs_b.event_hash());
    assert_ne!(fs_a.image_hash(), fs_b.image_hash());
    a.append(b"more").unwrap();
    b.append(b"mor").unwrap();
    assert_ne!(fs_a.event_hash(), fs_b.event_hash());
}

#[test]
fn the_hash_is_kept_without_recording_events() {
    let recorded = run(9, faulty(), 20);
    let fs = SimFs::new(9, faulty());
    let outcomes = workload(&fs, 20);
    assert!(fs.events().is_empty(), "events are kept only when asked");
    assert_eq!(fs.event_hash(), recorded.event_hash);
    assert_eq!(fs.image_hash(), recorded.image_hash);
    assert_eq!(outcomes, recorded.outcomes);
}

#[test]
fn the_event_hash_is_the_hash_of_the_recorded_events() {
    // The filesystem hashes each event from its parts without building it (unless it keeps
    // events); the hash must be the one `write_event` gives for the event it would build.
    for seed in 0..4 {
        let recorded = run(seed, faulty(), 30);
        let mut hasher = StableHasher::default();
        for event in &recorded.events {
            hasher.write_event(event);
        }
        assert!(recorded.events.len() > 100, "seed {seed}");
        assert_eq!(hasher.finish(), recorded.event_hash, "seed {seed}");
    }
}

#[test]
fn take_events_empties_the_log() {
    let fs = SimFs::new(3, FaultConfig::none());
    fs.record_events(true);
    fs.create_dir_all(Path::new("/db")).unwrap();
    let f = fs.create(&file(0)).unwrap();
    f.append(b"abc").unwrap();
    let events = fs.take_events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].op, strata_vfs::OpKind::Append);
    assert_eq!((events[2].offset, events[2].len), (0, 3));
    assert_eq!(&*events[2].path, "db/000.log");
    assert!(fs.events().is_empty());
    assert_eq!(fs.op_count(), 3);
}

/// A workload with plenty of unsynced data: 8 files of 64 unsynced sectors each.
fn unsynced_workload(seed: u64) -> SimFs {
    let fs = SimFs::new(
        seed,
        FaultConfig {
            sector_size: 16,
            unsynced_survival: 0.5,
            ..FaultConfig::none()
        },
    );
    fs.create_dir_all(Path::new("/db")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    for i in 0..8 {
        let f = fs.create(&file(i)).unwrap();
        f.append(&[i as u8 + 1; 16]).unwrap();
        f.sync().unwrap();
        f.append(&[0xEE; 64 * 16]).unwrap();
    }
    fs.sync_dir(Path::new("/db")).unwrap();
    fs
}

#[test]
fn different_seeds_give_different_crash_images() {
    let mut images = BTreeSet::new();
    let mut events = BTreeSet::new();
    for seed in 0..20 {
        let fs = unsynced_workload(seed);
        let before = fs.image_hash();
        let event_hash_before = fs.event_hash();
        // Without faults, nothing before the crash depends on the seed.
        assert_eq!(before, unsynced_workload(seed + 1000).image_hash());
        assert_eq!(
            event_hash_before,
            unsynced_workload(seed + 1000).event_hash()
        );
        fs.crash();
        images.insert(fs.image_hash());
        events.insert(fs.event_hash());
        // The same seed crashes to the same image.
        let again = unsynced_workload(seed);
        again.crash();
        assert_eq!(again.image_hash(), fs.image_hash(), "seed {seed}");
        assert_eq!(again.event_hash(), fs.event_hash(), "seed {seed}");
    }
    assert!(
        images.len() >= 2,
        "only {} distinct crash images",
        images.len()
    );
    // 8 * 64 independent coin flips per seed: in practice every seed differs.
    assert_eq!(images.len(), 20, "crash images collide across seeds");
    assert_eq!(
        events.len(),
        1,
        "a crash without torn writes or bit flips logs the same events"
    );
}

#[test]
fn image_hash_sees_every_byte_name_and_directory() {
    let base = || {
        let fs = SimFs::new(1, FaultConfig::none());
        fs.create_dir_all(Path::new("/db")).unwrap();
        fs.create(&file(0)).unwrap().append(b"abc").unwrap();
        fs
    };
    let reference = base().image_hash();
    assert_eq!(reference, base().image_hash());
    let byte = base();
    byte.flip_bit(&file(0), 1, 0).unwrap();
    let name = base();
    name.rename(&file(0), &file(1)).unwrap();
    let dir = base();
    dir.create_dir(Path::new("/db/sub")).unwrap();
    let empty = base();
    empty.create(&file(2)).unwrap();
    let hashes: BTreeSet<u64> = [
        reference,
        byte.image_hash(),
        name.image_hash(),
        dir.image_hash(),
        empty.image_hash(),
    ]
    .into_iter()
    .collect();
    assert_eq!(hashes.len(), 5);
}

#[test]
fn clones_share_one_world() {
    let fs = SimFs::new(11, faulty());
    let clone = fs.clone();
    clone.create_dir_all(Path::new("/db")).unwrap();
    assert!(fs.exists(Path::new("/db")).unwrap());
    assert_eq!(fs.op_count(), 2);
    assert_eq!(fs.event_hash(), clone.event_hash());
    fs.crash();
    assert_eq!(clone.crash_count(), 1);
    assert_eq!(fs.image_hash(), clone.image_hash());
}
