//! The medium's faults, one test each: a lost write, a misdirected write, a stale or
//! misdirected read, a latent sector error; each shows its effect, its event and its count.
//! And with their rates at 0 (or on but never firing) a run is byte for byte the run it was
//! before they existed: the hashes below were recorded on commit 7f84341, which had none of
//! them.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use strata_vfs::sim::StableHasher;
use strata_vfs::{Event, FaultConfig, FaultKind, OpKind, SimFs, Vfs};

const SECTOR: u64 = 512;

fn path(name: &str) -> PathBuf {
    Path::new("/db").join(name)
}

fn config() -> FaultConfig {
    FaultConfig {
        sector_size: SECTOR,
        ..FaultConfig::none()
    }
}

/// A filesystem with `/db` durable in `/` and, durable in it, each named file holding
/// `sectors` sectors of its fill byte.
fn with_files(seed: u64, files: &[(&str, u8)], sectors: usize) -> SimFs {
    let fs = SimFs::new(seed, config());
    fs.record_events(true);
    fs.create_dir_all(Path::new("/db")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    for &(name, fill) in files {
        let f = fs.create(&path(name)).unwrap();
        f.append(&vec![fill; sectors * SECTOR as usize]).unwrap();
        f.sync().unwrap();
    }
    fs.sync_dir(Path::new("/db")).unwrap();
    fs
}

fn set_rates(fs: &SimFs, set: impl FnOnce(&mut FaultConfig)) {
    let mut config = fs.config();
    set(&mut config);
    fs.set_config(config);
}

fn contents(fs: &SimFs, name: &str) -> Vec<u8> {
    fs.snapshot().remove(&format!("db/{name}")).unwrap()
}

fn faults_of(fs: &SimFs, kind: FaultKind) -> Vec<Event> {
    fs.events()
        .into_iter()
        .filter(|event| event.fault == Some(kind))
        .collect()
}

fn read_at(fs: &SimFs, name: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let file = fs.open_read(&path(name)).unwrap();
    let mut buf = vec![0; len];
    file.read_exact_at(offset, &mut buf)
        .map_err(|error| std::io::Error::new(error.kind(), error.to_string()))?;
    Ok(buf)
}

// --- lost writes -------------------------------------------------------------------------------

#[test]
fn a_lost_write_is_read_back_until_the_crash_then_the_old_bytes_are_there() {
    let fs = with_files(1, &[("a", b'o')], 2);
    let f = fs.open_write(&path("a")).unwrap();
    set_rates(&fs, |c| c.lost_write_rate = 1.0);
    f.write_at(100, b"lost overwrite").unwrap();
    f.append(b"lost append").unwrap();
    set_rates(&fs, |c| c.lost_write_rate = 0.0);
    f.write_at(200, b"kept").unwrap();
    f.sync().unwrap();
    f.sync().unwrap();

    // The process reads what it wrote: the page cache has it.
    let mut expected = vec![b'o'; 2 * SECTOR as usize];
    expected[100..114].copy_from_slice(b"lost overwrite");
    expected[200..204].copy_from_slice(b"kept");
    expected.extend_from_slice(b"lost append");
    assert_eq!(contents(&fs, "a"), expected);
    let lost = faults_of(&fs, FaultKind::LostWrite);
    assert_eq!(lost.len(), 2);
    assert_eq!(
        (lost[0].op, lost[0].offset, lost[0].len, lost[0].failed),
        (OpKind::Write, 100, 14, false)
    );
    assert_eq!((lost[1].op, lost[1].offset), (OpKind::Append, 2 * SECTOR));
    assert_eq!(fs.counters().get(FaultKind::LostWrite), 2);

    // After the crash: the old bytes where the lost write was, zeros where the medium had
    // none (the synced size stays), and the write that was not lost.
    fs.crash();
    let mut expected = vec![b'o'; 2 * SECTOR as usize];
    expected[200..204].copy_from_slice(b"kept");
    expected.extend_from_slice(&[0; 11]);
    assert_eq!(contents(&fs, "a"), expected);
}

#[test]
fn a_lost_write_rewritten_reaches_the_medium() {
    let fs = with_files(2, &[("a", b'o')], 1);
    let f = fs.open_write(&path("a")).unwrap();
    set_rates(&fs, |c| c.lost_write_rate = 1.0);
    f.write_at(10, b"0123456789").unwrap();
    set_rates(&fs, |c| c.lost_write_rate = 0.0);
    f.write_at(12, b"AB").unwrap();
    f.sync().unwrap();
    fs.crash();
    let image = contents(&fs, "a");
    assert_eq!(&image[8..22], b"ooooABoooooooo");
}

// --- misdirected writes ------------------------------------------------------------------------

#[test]
fn a_misdirected_write_lands_elsewhere_at_the_sync_and_is_lost_where_it_was_meant() {
    let mut landed_in = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let fs = with_files(seed, &[("a", b'a'), ("b", b'b')], 4);
        let f = fs.open_write(&path("a")).unwrap();
        set_rates(&fs, |c| c.misdirected_write_rate = 1.0);
        f.write_at(SECTOR + 7, b"astray").unwrap();
        set_rates(&fs, |c| c.misdirected_write_rate = 0.0);
        let before = (contents(&fs, "a"), contents(&fs, "b"));
        f.sync().unwrap();
        // Nothing the process reads changes.
        assert_eq!((contents(&fs, "a"), contents(&fs, "b")), before);
        let events = faults_of(&fs, FaultKind::MisdirectedWrite);
        assert_eq!(events.len(), 2, "the write astray, and where it landed");
        assert_eq!(
            (events[0].op, events[0].offset),
            (OpKind::Write, SECTOR + 7)
        );
        let landing = &events[1];
        assert_eq!(landing.op, OpKind::Sync);
        assert_eq!(landing.offset % SECTOR, 7, "same place within a sector");
        assert_eq!(fs.counters().get(FaultKind::MisdirectedWrite), 1);

        fs.crash();
        let a = contents(&fs, "a");
        assert_eq!(&a[SECTOR as usize + 7..SECTOR as usize + 13], b"aaaaaa");
        let name = landing.path.rsplit('/').next().unwrap();
        let target = contents(&fs, name);
        let at = landing.offset as usize;
        assert_eq!(&target[at..at + 6], b"astray");
        assert_eq!(target.len(), 4 * SECTOR as usize, "a landing grows no file");
        if name == "a" {
            assert_ne!(landing.offset, SECTOR + 7);
        }
        landed_in.insert((name.to_string(), landing.offset == SECTOR + 7));
    }
    // In this file elsewhere, in the other file at the very offset meant (a mix-up of
    // files) and at another (a wrong address).
    assert_eq!(landed_in.len(), 3, "{landed_in:?}");
}

#[test]
fn an_unsynced_misdirected_write_goes_nowhere() {
    let fs = with_files(3, &[("a", b'a'), ("b", b'b')], 4);
    let f = fs.open_write(&path("a")).unwrap();
    set_rates(&fs, |c| {
        c.misdirected_write_rate = 1.0;
        c.unsynced_survival = 1.0;
    });
    f.write_at(SECTOR, b"astray").unwrap();
    fs.crash();
    assert_eq!(contents(&fs, "a"), vec![b'a'; 4 * SECTOR as usize]);
    assert_eq!(contents(&fs, "b"), vec![b'b'; 4 * SECTOR as usize]);
    assert_eq!(faults_of(&fs, FaultKind::MisdirectedWrite).len(), 1);
}

// --- stale and misdirected reads ---------------------------------------------------------------

#[test]
fn stale_reads_return_the_old_durable_bytes_or_another_sector_and_change_nothing() {
    let fs = SimFs::new(4, config());
    fs.record_events(true);
    fs.create_dir_all(Path::new("/db")).unwrap();
    let f = fs.create(&path("a")).unwrap();
    let sectors: Vec<u8> = (0..4u8)
        .flat_map(|i| vec![b'0' + i; SECTOR as usize])
        .collect();
    f.append(&sectors).unwrap();
    f.sync().unwrap();
    f.write_at(SECTOR + 10, b"newer").unwrap();
    set_rates(&fs, |c| c.stale_read_rate = 1.0);
    let (mut stale, mut misdirected) = (0, 0);
    for _ in 0..40 {
        let mut buf = [0u8; 5];
        f.read_exact_at(SECTOR + 10, &mut buf).unwrap();
        match &buf {
            b"11111" => stale += 1,
            b"00000" | b"22222" | b"33333" => misdirected += 1,
            other => panic!("unexpected bytes {other:?}"),
        }
    }
    assert!(
        stale > 5 && misdirected > 5,
        "{stale} stale, {misdirected} misdirected"
    );
    assert_eq!(faults_of(&fs, FaultKind::StaleRead).len(), stale);
    assert_eq!(
        faults_of(&fs, FaultKind::MisdirectedRead).len(),
        misdirected
    );
    assert_eq!(fs.counters().get(FaultKind::StaleRead), stale as u64);
    set_rates(&fs, |c| c.stale_read_rate = 0.0);
    let mut buf = [0u8; 5];
    f.read_exact_at(SECTOR + 10, &mut buf).unwrap();
    assert_eq!(&buf, b"newer", "reads were wrong, the file never was");
}

// --- latent sector errors ----------------------------------------------------------------------

#[test]
fn a_latent_sector_error_fails_reads_across_crashes_until_rewritten_and_synced() {
    let fs = with_files(5, &[("a", b'a')], 4);
    let f = fs.open_write(&path("a")).unwrap();
    set_rates(&fs, |c| c.latent_sector_rate = 1.0);
    f.sync().unwrap();
    set_rates(&fs, |c| c.latent_sector_rate = 0.0);
    let bad = fs.unreadable_sectors();
    assert_eq!(bad.len(), 1, "{bad:?}");
    let (name, offset) = bad[0].clone();
    assert_eq!(name, "db/a");
    let spoiled = faults_of(&fs, FaultKind::LatentSectorError);
    assert_eq!((spoiled[0].offset, spoiled[0].len), (offset, SECTOR));

    let error = read_at(&fs, "a", offset + 3, 2).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.to_string().contains("unreadable_sector"), "{error}");
    assert_eq!(fs.counters().get(FaultKind::UnreadableSector), 1);
    let other = (offset + SECTOR) % (4 * SECTOR);
    assert!(read_at(&fs, "a", other, SECTOR as usize).is_ok());

    fs.crash();
    assert!(
        read_at(&fs, "a", offset, 1).is_err(),
        "it persists across a crash"
    );
    // Written (the page cache serves it) and synced (the drive remaps it): healed.
    let f = fs.open_write(&path("a")).unwrap();
    f.write_at(offset + 1, b"x").unwrap();
    assert_eq!(read_at(&fs, "a", offset, 2).unwrap(), b"ax");
    f.sync().unwrap();
    assert!(fs.unreadable_sectors().is_empty());
    fs.crash();
    assert_eq!(read_at(&fs, "a", offset, 2).unwrap(), b"ax");
}

// --- rate 0 changes nothing --------------------------------------------------------------------

fn other_faults() -> FaultConfig {
    FaultConfig {
        sector_size: 64,
        torn_write_rate: 0.3,
        sync_failure_rate: 0.05,
        enospc_rate: 0.02,
        read_error_rate: 0.05,
        bitflip_rate: 0.5,
        ..FaultConfig::none()
    }
}

/// Writes, overwrites, syncs and reads in four files over three crashes; returns what
/// every call answered.
fn workload(fs: &SimFs) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!("{:?}", fs.create_dir_all(Path::new("/db")).is_ok()));
    out.push(format!("{:?}", fs.sync_dir(Path::new("/")).is_ok()));
    for crash in 0..3u8 {
        for round in 0..12usize {
            let name = format!("{:03}.dat", round % 4);
            let handle = match fs.open_write(&path(&name)) {
                Ok(handle) => handle,
                Err(_) => match fs.create(&path(&name)) {
                    Ok(handle) => handle,
                    Err(e) => {
                        out.push(format!("create {:?}", e.kind()));
                        continue;
                    }
                },
            };
            for chunk in 0..5u8 {
                let byte = chunk
                    .wrapping_mul(37)
                    .wrapping_add(round as u8)
                    .wrapping_add(crash);
                let result = handle.append(&[byte; 90]).map_err(|e| e.kind());
                out.push(format!("{result:?}"));
            }
            let result = handle.write_at(70, b"overwritten").map_err(|e| e.kind());
            out.push(format!("{result:?}"));
            if round % 2 == 0 {
                out.push(format!("{:?}", handle.sync().map_err(|e| e.kind())));
            }
            let mut buf = [0u8; 100];
            let result = handle.read_at(40, &mut buf).map_err(|e| e.kind());
            out.push(format!("{result:?}"));
            out.push(format!("{buf:?}"));
            if round % 5 == 3 {
                out.push(format!("{:?}", fs.sync_dir(Path::new("/db")).is_ok()));
            }
        }
        fs.crash();
    }
    out
}

/// The event, image and outcome hashes of the workload.
fn hashes(config: FaultConfig) -> (u64, u64, u64) {
    let fs = SimFs::new(42, config);
    let mut outcomes = StableHasher::default();
    for line in workload(&fs) {
        outcomes.write(line.as_bytes());
    }
    (fs.event_hash(), fs.image_hash(), outcomes.finish())
}

#[test]
fn with_the_medium_faults_off_or_never_firing_every_decision_is_the_one_before_them() {
    // Recorded on commit 7f84341, before the medium faults existed; recorded again when a
    // crash began deciding unsynced sectors from the last one down (so that an enumeration
    // knows how far the survivors above reach), which moved the crash model's draws on
    // purpose, and changed nothing of the medium's.
    let before = (
        0xea30_b014_6e57_7e10,
        0xb4f7_c7f1_1207_5438,
        0xc8ec_eebe_7f4f_7eff,
    );
    assert_eq!(hashes(other_faults()), before);
    // On, at a rate that never fires: the medium draws from its own stream, so not one
    // decision of the crash model moves.
    let never = 1e-300;
    let all_on = FaultConfig {
        misdirected_write_rate: never,
        lost_write_rate: never,
        stale_read_rate: never,
        latent_sector_rate: never,
        ..other_faults()
    };
    assert_eq!(hashes(all_on), before);
}

#[test]
fn the_medium_faults_are_deterministic_and_fire() {
    let config = FaultConfig {
        misdirected_write_rate: 0.05,
        lost_write_rate: 0.05,
        stale_read_rate: 0.2,
        latent_sector_rate: 0.1,
        ..other_faults()
    };
    let first = hashes(config.clone());
    assert_eq!(hashes(config.clone()), first);
    assert_ne!(first.0, hashes(other_faults()).0);
    let mut counters = strata_vfs::FaultCounters::default();
    for seed in 0..8 {
        let fs = SimFs::new(seed, config.clone());
        workload(&fs);
        counters.add(&fs.counters());
    }
    for kind in [
        FaultKind::MisdirectedWrite,
        FaultKind::LostWrite,
        FaultKind::LatentSectorError,
        FaultKind::UnreadableSector,
    ] {
        assert!(counters.get(kind) > 0, "{kind} never fired: {counters:?}");
    }
    // A wrong read is counted only when it returned other bytes than the right ones (here
    // the re-read bytes are mostly rewritten with the same values, so mostly another
    // sector's).
    let wrong_reads = counters.get(FaultKind::StaleRead) + counters.get(FaultKind::MisdirectedRead);
    assert!(wrong_reads > 0, "{counters:?}");
}

#[test]
fn configs_without_medium_faults_serialise_as_before() {
    let json = serde_json::to_string(&FaultConfig::none()).unwrap();
    for field in ["misdirected", "lost_write", "stale_read", "latent"] {
        assert!(!json.contains(field), "{json}");
    }
    let on = FaultConfig {
        lost_write_rate: 0.5,
        ..FaultConfig::none()
    };
    let json = serde_json::to_string(&on).unwrap();
    assert!(json.contains("\"lost_write_rate\":0.5"), "{json}");
    assert_eq!(serde_json::from_str::<FaultConfig>(&json).unwrap(), on);
}
