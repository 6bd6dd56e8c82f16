//! One test per injected fault: it fires, the caller sees what the documentation says, and
//! `counters()` and `events()` record it. Plus `FaultConfig`'s serialisation and validation.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use strata_vfs::{Event, FaultConfig, FaultKind, OpKind, SimFs, Vfs};

fn db() -> &'static Path {
    Path::new("/db")
}

fn path(name: &str) -> PathBuf {
    db().join(name)
}

/// A filesystem with `/db` durable in `/`.
fn fresh(seed: u64, config: FaultConfig) -> SimFs {
    let fs = SimFs::new(seed, config);
    fs.record_events(true);
    fs.create_dir_all(db()).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

fn read(fs: &SimFs, name: &str) -> Vec<u8> {
    fs.snapshot().remove(&format!("db/{name}")).unwrap()
}

fn faults_of(events: &[Event], kind: FaultKind) -> Vec<&Event> {
    events.iter().filter(|e| e.fault == Some(kind)).collect()
}

// --- crash at an operation index -------------------------------------------------------------

#[test]
fn crash_at_op_halts_that_op_and_all_later_ones() {
    let fs = fresh(1, FaultConfig::none());
    let f = fs.create(&path("a")).unwrap();
    f.append(b"synced").unwrap();
    f.sync().unwrap();
    fs.sync_dir(db()).unwrap();
    let at = fs.op_count() + 2;
    fs.set_crash_at(Some(at));
    f.append(b" one").unwrap(); // op at - 2
    f.append(b" two").unwrap(); // op at - 1
    assert!(!fs.is_halted());
    let error = f.append(b" three").unwrap_err(); // op `at`: does not happen
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.to_string().contains("halted"), "{error}");
    assert!(error.to_string().contains("/db/a"), "{error}");
    assert!(fs.is_halted());
    assert_eq!(
        read(&fs, "a"),
        b"synced one two",
        "the halted op wrote nothing"
    );

    // Every later operation fails too, whatever it is.
    assert_eq!(f.sync().unwrap_err().kind(), ErrorKind::Other);
    let mut buf = [0u8; 4];
    assert!(f.read_at(0, &mut buf).is_err());
    assert!(fs.open_read(&path("a")).is_err());
    assert!(fs.create(&path("b")).is_err());
    assert!(fs.list(db()).is_err());
    assert!(fs.exists(db()).is_err());
    assert!(fs.sync_dir(db()).is_err());
    assert!(fs.is_halted());

    let events = fs.events();
    let crash = faults_of(&events, FaultKind::Crash);
    assert_eq!(crash.len(), 1);
    assert_eq!(
        (crash[0].index, crash[0].op, crash[0].failed),
        (at, OpKind::Append, true)
    );
    assert_eq!(
        fs.counters().get(FaultKind::Crash),
        0,
        "counted at the restart"
    );

    fs.crash();
    assert!(!fs.is_halted());
    assert_eq!(fs.crash_count(), 1);
    assert_eq!(fs.counters().get(FaultKind::Crash), 1);
    let events = fs.events();
    let last = events.last().unwrap();
    assert_eq!(
        (last.op, last.fault),
        (OpKind::Crash, Some(FaultKind::Crash))
    );

    // Handles from before the crash are dead; new opens work and see the durable data.
    let error = f.append(b"x").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.to_string().contains("before a crash"), "{error}");
    assert!(f.len().is_err());
    let g = fs.open_write(&path("a")).unwrap();
    // The unsynced " one two" (one dirty sector) may or may not have survived.
    assert!(matches!(g.len().unwrap(), 6 | 14));
    let mut head = [0u8; 6];
    g.read_exact_at(0, &mut head).unwrap();
    assert_eq!(&head, b"synced");
    g.append(b"!").unwrap();
    fs.create(&path("b")).unwrap();
    assert_eq!(fs.list(db()).unwrap(), vec!["a", "b"]);
}

#[test]
fn crash_at_op_in_config_fires_once() {
    let config = FaultConfig {
        crash_at_op: Some(3),
        ..FaultConfig::none()
    };
    let fs = SimFs::new(2, config);
    fs.create_dir_all(db()).unwrap(); // 0
    fs.sync_dir(Path::new("/")).unwrap(); // 1
    let f = fs.create(&path("a")).unwrap(); // 2
    assert!(f.append(b"x").is_err()); // 3: halts
    assert!(fs.is_halted());
    fs.crash();
    // The crash point is behind us: the machine runs on.
    let f = fs.create(&path("a")).unwrap();
    f.append(b"y").unwrap();
    assert!(!fs.is_halted());
    fs.set_crash_at(None);
    assert_eq!(fs.config().crash_at_op, None);
}

#[test]
fn crash_works_at_any_moment_and_kills_handles() {
    let fs = fresh(3, FaultConfig::none());
    let f = fs.create(&path("a")).unwrap();
    let reader = fs.open_read(&path("a")).unwrap();
    fs.crash();
    assert!(f.sync().is_err());
    assert!(reader.read_at(0, &mut [0; 1]).is_err());
    assert_eq!(
        fs.list(db()).unwrap(),
        Vec::<String>::new(),
        "the create was never made durable"
    );
}

// --- torn writes -------------------------------------------------------------------------------

/// Writes `sectors` sectors of new data over `sectors` synced sectors of old data, crashes with
/// every edge sector torn, and returns (old, new, image).
fn torn_run(seed: u64, ordered: bool, sectors: usize) -> (SimFs, Vec<u8>, Vec<u8>, Vec<u8>) {
    const SECTOR: usize = 16;
    let config = FaultConfig {
        sector_size: SECTOR as u64,
        ordered_writes: ordered,
        unsynced_survival: 0.0,
        torn_write_rate: 1.0,
        ..FaultConfig::none()
    };
    let fs = fresh(seed, config);
    let f = fs.create(&path("a")).unwrap();
    let old = vec![0x11; sectors * SECTOR];
    f.append(&old).unwrap();
    f.sync().unwrap();
    fs.sync_dir(db()).unwrap();
    let new: Vec<u8> = (0..sectors * SECTOR)
        .map(|i| 0x80 | (i % 64) as u8)
        .collect();
    for (s, chunk) in new.chunks(SECTOR).enumerate() {
        f.write_at((s * SECTOR) as u64, chunk).unwrap();
    }
    fs.crash();
    let image = read(&fs, "a");
    (fs, old, new, image)
}

/// For each sector: how many leading bytes are new, and whether the whole sector is new.
fn new_prefixes(new: &[u8], image: &[u8]) -> Vec<usize> {
    new.chunks(16)
        .zip(image.chunks(16))
        .map(|(n, i)| n.iter().zip(i).take_while(|(a, b)| a == b).count())
        .collect()
}

#[test]
fn torn_writes_unordered_leave_sectors_partly_new() {
    let (fs, old, new, image) = torn_run(4, false, 32);
    assert_eq!(image.len(), old.len());
    // Survival 0 and torn rate 1: every dirty sector is torn (a prefix of new bytes, then
    // zeros, garbage or the old bytes).
    let torn = fs.counters().get(FaultKind::TornWrite);
    assert_eq!(torn, 32);
    let events = fs.events();
    let logged = faults_of(&events, FaultKind::TornWrite);
    assert_eq!(logged.len() as u64, torn);
    assert!(logged
        .iter()
        .all(|e| e.op == OpKind::Crash && &*e.path == "db/a"));
    let prefixes = new_prefixes(&new, &image);
    assert!(
        prefixes.iter().any(|&p| p > 0 && p < 16),
        "no sector is partly new: {prefixes:?}"
    );
    assert_ne!(image, new, "a torn image is not the new data");
    assert_ne!(image, old, "a torn image is not the old data");
    // Inside each torn sector, the part after the new prefix is zeros, old bytes or garbage;
    // with our data, a zero or old tail must be uniform.
    let mut tails = [0; 3];
    for (s, &p) in prefixes.iter().enumerate() {
        let tail = &image[s * 16 + p..(s + 1) * 16];
        if tail.iter().all(|&b| b == 0) {
            tails[0] += 1;
        } else if tail.iter().all(|&b| b == 0x11) {
            tails[1] += 1;
        } else {
            tails[2] += 1;
        }
    }
    assert!(
        tails.iter().all(|&t| t > 0),
        "zero/old/garbage tails: {tails:?}"
    );
}

#[test]
fn torn_writes_ordered_tear_only_the_edge_sector() {
    let mut saw_partial = false;
    for seed in 0..20 {
        let (fs, old, new, image) = torn_run(seed, true, 32);
        // A prefix of the sectors (in write order) survives whole, the next one is torn, the
        // rest keep their old bytes.
        let prefixes = new_prefixes(&new, &image);
        let whole = prefixes.iter().take_while(|&&p| p == 16).count();
        let torn = fs.counters().get(FaultKind::TornWrite);
        if whole == 32 {
            assert_eq!(torn, 0, "seed {seed}");
            continue;
        }
        assert_eq!(torn, 1, "seed {seed}: exactly the edge sector is torn");
        assert_eq!(faults_of(&fs.events(), FaultKind::TornWrite).len(), 1);
        let p = prefixes[whole];
        saw_partial |= p > 0;
        assert_eq!(
            &image[(whole + 1) * 16..],
            &old[(whole + 1) * 16..],
            "seed {seed}"
        );
    }
    assert!(saw_partial, "no seed left a partly new sector");
}

// --- sync failure (fsyncgate) ----------------------------------------------------------------

#[test]
fn failed_sync_forgets_dirty_data() {
    const SECTOR: usize = 16;
    let mut saw_lost = false;
    for seed in 0..10 {
        let config = FaultConfig {
            sector_size: SECTOR as u64,
            unsynced_survival: 0.0,
            ..FaultConfig::none()
        };
        let fs = fresh(seed, config.clone());
        let f = fs.create(&path("a")).unwrap();
        fs.sync_dir(db()).unwrap();
        let old = vec![0x11; 8 * SECTOR];
        f.append(&old).unwrap();
        f.sync().unwrap();
        let new = vec![0x22; 8 * SECTOR];
        f.write_at(0, &new).unwrap();

        fs.set_config(FaultConfig {
            sync_failure_rate: 1.0,
            ..config.clone()
        });
        let error = f.sync().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Other);
        assert!(error.to_string().contains("EIO"), "{error}");
        assert!(error.to_string().contains("/db/a"), "{error}");
        fs.set_config(config);
        assert_eq!(fs.counters().get(FaultKind::SyncFailure), 1);
        let events = fs.events();
        let failed = faults_of(&events, FaultKind::SyncFailure);
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].op, failed[0].failed), (OpKind::Sync, true));

        // The process still reads the new bytes; the next sync "succeeds".
        assert_eq!(read(&fs, "a"), new);
        f.sync().unwrap();
        fs.crash();

        let image = read(&fs, "a");
        assert_eq!(image.len(), old.len());
        let mut lost = 0;
        for chunk in image.chunks(SECTOR) {
            if chunk == &old[..SECTOR] {
                lost += 1;
            } else {
                assert_eq!(
                    chunk,
                    &new[..SECTOR],
                    "seed {seed}: a sector is neither old nor new"
                );
            }
        }
        saw_lost |= lost > 0;
    }
    assert!(saw_lost, "no seed lost a sector to the failed sync");
}

#[test]
fn failed_sync_dir_makes_a_prefix_durable() {
    let config = FaultConfig::none();
    let fs = fresh(6, config.clone());
    for name in ["a", "b", "c", "d"] {
        fs.create(&path(name)).unwrap();
    }
    fs.set_config(FaultConfig {
        sync_failure_rate: 1.0,
        ..config.clone()
    });
    let error = fs.sync_dir(db()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.to_string().contains("EIO"), "{error}");
    assert_eq!(fs.counters().get(FaultKind::SyncFailure), 1);
    let events = fs.events();
    let failed = faults_of(&events, FaultKind::SyncFailure);
    assert_eq!((failed[0].op, failed[0].failed), (OpKind::SyncDir, true));
    fs.set_config(config);
    fs.crash();
    // The creates were in order a, b, c, d: whatever survived is a prefix of them.
    let listed = fs.list(db()).unwrap();
    let all = ["a", "b", "c", "d"];
    assert_eq!(listed, all[..listed.len()].to_vec());
}

// --- ENOSPC ----------------------------------------------------------------------------------

#[test]
fn capacity_limits_growth_and_removal_frees_space() {
    let config = FaultConfig {
        capacity_bytes: Some(100),
        ..FaultConfig::none()
    };
    let fs = fresh(7, config);
    let f = fs.create(&path("a")).unwrap();
    assert_eq!(f.append(&[1; 60]).unwrap(), 0);
    let error = f.append(&[2; 50]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StorageFull);
    assert!(error.to_string().contains("ENOSPC"), "{error}");
    assert!(error.to_string().contains("/db/a"), "{error}");
    assert_eq!(f.len().unwrap(), 60, "the failed append changed nothing");
    assert_eq!(read(&fs, "a"), vec![1; 60]);
    assert_eq!(fs.counters().get(FaultKind::NoSpace), 1);
    let events = fs.events();
    let failed = faults_of(&events, FaultKind::NoSpace);
    assert_eq!(
        (failed[0].op, failed[0].len, failed[0].failed),
        (OpKind::Append, 50, true)
    );

    // Up to the capacity exactly is fine; overwriting in place needs no space.
    assert_eq!(f.append(&[3; 40]).unwrap(), 60);
    f.write_at(0, &[4; 100]).unwrap();
    assert_eq!(
        f.write_at(99, &[5; 2]).unwrap_err().kind(),
        ErrorKind::StorageFull
    );
    assert_eq!(f.set_len(101).unwrap_err().kind(), ErrorKind::StorageFull);
    let g = fs.create(&path("b")).unwrap();
    assert_eq!(g.append(&[6]).unwrap_err().kind(), ErrorKind::StorageFull);
    assert_eq!(read(&fs, "a"), vec![4; 100]);
    assert_eq!(fs.counters().get(FaultKind::NoSpace), 4);

    // Shrinking or removing a file frees space.
    f.set_len(90).unwrap();
    g.append(&[7; 10]).unwrap();
    assert_eq!(g.append(&[7]).unwrap_err().kind(), ErrorKind::StorageFull);
    fs.remove(&path("a")).unwrap();
    g.append(&[8; 90]).unwrap();
    assert_eq!(g.len().unwrap(), 100);
    // Renaming over a file frees the replaced file's space.
    let h = fs.create(&path("c")).unwrap();
    fs.rename(&path("c"), &path("b")).unwrap();
    h.append(&[9; 100]).unwrap();
}

#[test]
fn after_a_crash_only_surviving_files_take_space() {
    let config = FaultConfig {
        capacity_bytes: Some(100),
        unsynced_survival: 1.0,
        ..FaultConfig::none()
    };
    let mut lost_a_name = false;
    for seed in 0..10 {
        let fs = fresh(seed, config.clone());
        let f = fs.create(&path("x")).unwrap();
        f.append(&[1; 70]).unwrap();
        f.sync().unwrap();
        fs.crash(); // the name "x" was never made durable: it may be gone
        let used: usize = fs.snapshot().values().map(Vec::len).sum();
        lost_a_name |= used == 0;
        let g = fs.create(&path("y")).unwrap();
        g.append(&vec![2; 100 - used]).unwrap();
        assert_eq!(g.append(&[3]).unwrap_err().kind(), ErrorKind::StorageFull);
    }
    assert!(lost_a_name, "no seed undid the create");
}

#[test]
fn enospc_rate_fails_every_write() {
    let config = FaultConfig {
        enospc_rate: 1.0,
        ..FaultConfig::none()
    };
    let fs = fresh(8, FaultConfig::none());
    let f = fs.create(&path("a")).unwrap();
    f.append(b"before").unwrap();
    fs.set_config(config);
    assert_eq!(f.append(b"x").unwrap_err().kind(), ErrorKind::StorageFull);
    assert_eq!(
        f.write_at(0, b"y").unwrap_err().kind(),
        ErrorKind::StorageFull
    );
    assert_eq!(f.set_len(100).unwrap_err().kind(), ErrorKind::StorageFull);
    f.set_len(3).unwrap(); // shrinking needs no space
    assert_eq!(fs.counters().get(FaultKind::NoSpace), 3);
    assert_eq!(faults_of(&fs.events(), FaultKind::NoSpace).len(), 3);
    assert_eq!(read(&fs, "a"), b"bef");
    fs.set_config(FaultConfig::none());
    f.append(b"ore").unwrap();
    assert_eq!(read(&fs, "a"), b"before");
}

// --- read EIO --------------------------------------------------------------------------------

#[test]
fn read_error_rate_fails_reads() {
    let fs = fresh(9, FaultConfig::none());
    let f = fs.create(&path("a")).unwrap();
    f.append(b"data").unwrap();
    fs.set_config(FaultConfig {
        read_error_rate: 1.0,
        ..FaultConfig::none()
    });
    let mut buf = [0u8; 4];
    let error = f.read_at(0, &mut buf).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.to_string().contains("EIO"), "{error}");
    assert!(error.to_string().contains("/db/a"), "{error}");
    assert_eq!(buf, [0; 4]);
    assert_eq!(
        f.read_exact_at(0, &mut buf).unwrap_err().kind(),
        ErrorKind::Other
    );
    // Only reads fail: writes and metadata work.
    f.append(b"!").unwrap();
    assert_eq!(f.len().unwrap(), 5);
    assert_eq!(fs.counters().get(FaultKind::ReadError), 2);
    let events = fs.events();
    let failed = faults_of(&events, FaultKind::ReadError);
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e.op == OpKind::Read && e.failed));
    fs.set_config(FaultConfig::none());
    f.read_exact_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"data");
}

// --- bit flips -------------------------------------------------------------------------------

fn differing_bits(a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[test]
fn bitflip_rate_flips_exactly_one_durable_bit_per_crash() {
    for seed in 0..10 {
        let fs = fresh(
            seed,
            FaultConfig {
                bitflip_rate: 1.0,
                ..FaultConfig::none()
            },
        );
        for name in ["a", "b", "c"] {
            let f = fs.create(&path(name)).unwrap();
            f.append(&[name.as_bytes()[0]; 100]).unwrap();
            f.sync().unwrap();
        }
        fs.sync_dir(db()).unwrap();
        let durable = fs.snapshot();
        fs.crash();
        let after = fs.snapshot();
        let flipped: u32 = durable
            .iter()
            .map(|(name, data)| differing_bits(data, &after[name]))
            .sum();
        assert_eq!(flipped, 1, "seed {seed}");
        assert_eq!(fs.counters().get(FaultKind::BitFlip), 1);
        let events = fs.events();
        let flip = faults_of(&events, FaultKind::BitFlip);
        assert_eq!(flip.len(), 1);
        let name = &*flip[0].path;
        assert_eq!(
            differing_bits(&durable[name], &after[name]),
            1,
            "the event names the file"
        );
        let offset = flip[0].offset as usize;
        assert_ne!(
            durable[name][offset], after[name][offset],
            "the event names the byte"
        );
        // The flip is in the durable data: another crash (without flips) brings it back.
        fs.set_config(FaultConfig::none());
        fs.crash();
        assert_eq!(fs.snapshot(), after, "seed {seed}");
    }
}

#[test]
fn flip_bit_corrupts_visible_and_durable_data() {
    let fs = fresh(10, FaultConfig::none());
    let f = fs.create(&path("a")).unwrap();
    f.append(&[0u8; 8]).unwrap();
    f.sync().unwrap();
    fs.sync_dir(db()).unwrap();
    fs.flip_bit(&path("a"), 3, 2).unwrap();
    let mut buf = [0u8; 8];
    f.read_exact_at(0, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, 0, 4, 0, 0, 0, 0]);
    assert_eq!(fs.counters().get(FaultKind::BitFlip), 1);
    fs.crash();
    assert_eq!(
        read(&fs, "a"),
        vec![0, 0, 0, 4, 0, 0, 0, 0],
        "the flip is durable"
    );
    let error = fs.flip_bit(&path("a"), 8, 0).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        fs.flip_bit(&path("zz"), 0, 0).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// --- FaultConfig -----------------------------------------------------------------------------

#[test]
fn fault_config_round_trips_through_json() {
    let config = FaultConfig {
        sector_size: 512,
        ordered_writes: true,
        unsynced_survival: 0.25,
        torn_write_rate: 0.125,
        crash_at_op: Some(1234),
        sync_failure_rate: 0.01,
        capacity_bytes: Some(1 << 20),
        enospc_rate: 0.001,
        read_error_rate: 0.002,
        bitflip_rate: 0.5,
        profile: strata_vfs::FsProfile::PosixStrict,
        misdirected_write_rate: 0.001,
        lost_write_rate: 0.002,
        stale_read_rate: 0.003,
        latent_sector_rate: 0.004,
    };
    let json = serde_json::to_string(&config).unwrap();
    let back: FaultConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    assert_eq!(
        serde_json::from_str::<FaultConfig>(&serde_json::to_string(&FaultConfig::none()).unwrap())
            .unwrap(),
        FaultConfig::none()
    );
    // Missing fields take the defaults; unknown fields are rejected (a typo must not be
    // silently ignored in a corpus file).
    let partial: FaultConfig = serde_json::from_str(r#"{"torn_write_rate": 0.5}"#).unwrap();
    assert_eq!(
        partial,
        FaultConfig {
            torn_write_rate: 0.5,
            ..FaultConfig::none()
        }
    );
    assert!(serde_json::from_str::<FaultConfig>(r#"{"torn_write_rat": 0.5}"#).is_err());
    // The fault kinds serialise by their snake-case names.
    for kind in FaultKind::ALL {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
        assert_eq!(serde_json::from_str::<FaultKind>(&json).unwrap(), kind);
    }
}

#[test]
fn validate_rejects_bad_configs() {
    assert!(FaultConfig::none().validate().is_ok());
    assert_eq!(FaultConfig::default(), FaultConfig::none());
    for sector_size in [0, 3, 100, 4097] {
        let config = FaultConfig {
            sector_size,
            ..FaultConfig::none()
        };
        let why = config.validate().unwrap_err();
        assert!(why.contains("sector_size"), "{why}");
    }
    for sector_size in [1, 16, 4096, 1 << 20] {
        let config = FaultConfig {
            sector_size,
            ..FaultConfig::none()
        };
        assert!(config.validate().is_ok(), "{sector_size}");
    }
    type Setter = fn(&mut FaultConfig, f64);
    let rates: [(&str, Setter); 10] = [
        ("unsynced_survival", |c, r| c.unsynced_survival = r),
        ("torn_write_rate", |c, r| c.torn_write_rate = r),
        ("sync_failure_rate", |c, r| c.sync_failure_rate = r),
        ("enospc_rate", |c, r| c.enospc_rate = r),
        ("read_error_rate", |c, r| c.read_error_rate = r),
        ("bitflip_rate", |c, r| c.bitflip_rate = r),
        ("misdirected_write_rate", |c, r| {
            c.misdirected_write_rate = r
        }),
        ("lost_write_rate", |c, r| c.lost_write_rate = r),
        ("stale_read_rate", |c, r| c.stale_read_rate = r),
        ("latent_sector_rate", |c, r| c.latent_sector_rate = r),
    ];
    for (name, set) in rates {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let mut config = FaultConfig::none();
            set(&mut config, bad);
            let why = config.validate().unwrap_err();
            assert!(why.contains(name), "{name} = {bad}: {why}");
        }
        for good in [0.0, 0.5, 1.0] {
            let mut config = FaultConfig::none();
            set(&mut config, good);
            assert!(config.validate().is_ok(), "{name} = {good}");
        }
    }
}

#[test]
#[should_panic(expected = "invalid FaultConfig")]
fn simfs_refuses_an_invalid_config() {
    let _ = SimFs::new(
        0,
        FaultConfig {
            sector_size: 3,
            ..FaultConfig::none()
        },
    );
}

#[test]
#[should_panic(expected = "invalid FaultConfig")]
fn set_config_refuses_an_invalid_config() {
    let fs = SimFs::new(0, FaultConfig::none());
    fs.set_config(FaultConfig {
        enospc_rate: 2.0,
        ..FaultConfig::none()
    });
}

#[test]
fn counters_add_and_total() {
    let fs = fresh(
        12,
        FaultConfig {
            enospc_rate: 1.0,
            ..FaultConfig::none()
        },
    );
    let f = fs.create(&path("a")).unwrap();
    let _ = f.append(b"x");
    let _ = f.append(b"y");
    fs.crash();
    let counters = fs.counters();
    assert_eq!(counters.total(), 3);
    let mut sum = counters;
    sum.add(&counters);
    assert_eq!(sum.get(FaultKind::NoSpace), 4);
    assert_eq!(sum.get(FaultKind::Crash), 2);
    let listed: Vec<(FaultKind, u64)> = counters.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(listed, vec![(FaultKind::Crash, 1), (FaultKind::NoSpace, 2)]);
}

#[test]
fn a_crash_releases_locks_and_a_dead_holder_cannot_release_the_new_one() {
    let fs = fresh(91, FaultConfig::none());
    let lock_path = path("LOCK");
    let dead = fs.lock(&lock_path).unwrap();
    let error = fs.lock(&lock_path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WouldBlock, "{error}");
    let ops = fs.op_count();
    fs.crash();
    let alive = fs.lock(&lock_path).expect("the crash released the lock");
    // The dead process's guard goes away late: the new holder keeps the lock.
    drop(dead);
    let error = fs.lock(&lock_path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WouldBlock, "{error}");
    drop(alive);
    let _again = fs.lock(&lock_path).unwrap();
    // Locks are process state: they take no operation index (crash itself takes one).
    assert_eq!(fs.op_count(), ops + 1);
    assert!(!fs.exists(&lock_path).unwrap(), "a lock creates no file");
}

#[test]
fn truncation_and_file_loss_are_durable_at_once() {
    let fs = fresh(3, FaultConfig::none());
    for name in ["cut", "gone", "kept"] {
        let file = fs.create(&path(name)).unwrap();
        file.append(&[7u8; 300]).unwrap();
        file.sync().unwrap();
    }
    fs.sync_dir(db()).unwrap();
    fs.truncate_file(&path("cut"), 120).unwrap();
    fs.lose_file(&path("gone")).unwrap();
    assert_eq!(read(&fs, "cut").len(), 120);
    assert!(!fs.exists(&path("gone")).unwrap());
    // A crash brings neither back: the damage is in the durable image too.
    fs.crash();
    assert_eq!(read(&fs, "cut"), vec![7u8; 120]);
    assert!(!fs.exists(&path("gone")).unwrap());
    assert_eq!(read(&fs, "kept").len(), 300);
    assert_eq!(fs.counters().get(FaultKind::Truncation), 1);
    assert_eq!(fs.counters().get(FaultKind::FileLoss), 1);
    // Neither is an operation of the engine's: a missing file is an error, not a panic.
    assert!(fs.lose_file(&path("gone")).is_err());
}

#[test]
fn mapped_stores_never_run_out_of_space_and_are_durable_only_after_sync() {
    let fs = fresh(4, FaultConfig::none());
    let file = fs.create(&path("wal")).unwrap();
    file.write_at(0, &[0u8; 8192]).unwrap();
    file.sync().unwrap();
    fs.sync_dir(db()).unwrap();
    fs.set_config(FaultConfig {
        enospc_rate: 1.0,
        ..FaultConfig::none()
    });
    // The blocks exist: a store into them cannot fail for space, a write past them can.
    assert!(file.write_at(8192, b"more").is_err());
    file.write_mapped(0, b"synced").unwrap();
    file.sync().unwrap();
    file.write_mapped(4096, b"not synced").unwrap();
    fs.set_config(FaultConfig {
        unsynced_survival: 0.0,
        ..FaultConfig::none()
    });
    fs.crash();
    let data = read(&fs, "wal");
    assert_eq!(&data[..6], b"synced");
    assert_eq!(
        &data[4096..4106],
        &[0u8; 10],
        "an unsynced store may be lost"
    );
}
