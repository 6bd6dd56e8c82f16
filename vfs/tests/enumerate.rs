//! The crash enumeration (`sim/enumerate.rs`) against the random crash it walks, and the
//! persistence profiles against each other on a workload built to tell them apart.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use strata_vfs::sim::{CaptureAt, CrashPoint, EnumerationOptions, Order};
use strata_vfs::{FaultConfig, FsProfile, SimFs, Vfs};

fn config(profile: FsProfile, sector_size: u64, torn: f64) -> FaultConfig {
    FaultConfig {
        sector_size,
        torn_write_rate: torn,
        profile,
        ..FaultConfig::none()
    }
}

fn every_image(point: &CrashPoint, options: EnumerationOptions) -> BTreeSet<u64> {
    point
        .states(options)
        .map(|state| state.image_hash)
        .collect()
}

/// A file of three 16-byte sectors, one durable, then overwritten and grown, unsynced.
fn small_world(seed: u64, config: FaultConfig) -> SimFs {
    let fs = SimFs::new(seed, config);
    fs.create_dir_all(Path::new("/d")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let file = fs.create(Path::new("/d/f")).unwrap();
    file.append(b"0123456789abcdef").unwrap();
    file.sync().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    file.write_at(4, b"WXYZ").unwrap();
    file.append(&[7u8; 24]).unwrap();
    fs.create(Path::new("/d/g")).unwrap();
    fs
}

#[test]
fn the_enumeration_counts_every_subset_of_sectors_and_directory_prefixes() {
    let fs = small_world(1, config(FsProfile::Classic, 16, 0.0));
    let point = fs.crash_point_now();
    let states: Vec<_> = point.states(EnumerationOptions::default()).collect();
    // 3 dirty sectors (any subset: 8) times 2 prefixes of the directory's one pending create.
    assert_eq!(states.len(), 16);
    let images: BTreeSet<u64> = states.iter().map(|state| state.image_hash).collect();
    assert_eq!(images.len(), 16, "every answer builds a different image");
    assert_eq!(
        point.count_states(EnumerationOptions::default(), 100),
        Some(16)
    );
    assert_eq!(
        point.count_states(EnumerationOptions::default(), 16),
        Some(16)
    );
    assert_eq!(point.count_states(EnumerationOptions::default(), 15), None);
    // The other order: the same states, the durable image first, then one answer away.
    let fewest_first = EnumerationOptions {
        order: Order::FewestDeviationsFirst,
        ..EnumerationOptions::default()
    };
    let reordered: Vec<_> = point.states(fewest_first).collect();
    assert_eq!(reordered.len(), 16);
    let again: BTreeSet<u64> = reordered.iter().map(|state| state.image_hash).collect();
    assert_eq!(again, images);
    let deviations: Vec<usize> = reordered
        .iter()
        .map(|state| state.choices.iter().filter(|&&c| c > 0).count())
        .collect();
    assert!(
        deviations.windows(2).all(|pair| pair[0] <= pair[1]),
        "{deviations:?}"
    );
    assert_eq!(deviations[0], 0);
    let described = point.describe(&states[5].choices, EnumerationOptions::default());
    assert!(described.contains("d/f: sector"), "{described}");
}

/// Two 8-byte sectors: one durable and overwritten in part, one appended; an unsynced
/// create and an unsynced rename.
fn tiny_world(seed: u64, config: FaultConfig) -> SimFs {
    let fs = SimFs::new(seed, config);
    fs.create_dir_all(Path::new("/d")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let file = fs.create(Path::new("/d/f")).unwrap();
    file.append(b"01234567").unwrap();
    file.sync().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    file.write_at(2, b"XY").unwrap();
    file.append(b"abcdef").unwrap();
    fs.create(Path::new("/d/g")).unwrap();
    fs.rename(Path::new("/d/f"), Path::new("/d/h")).unwrap();
    fs
}

#[test]
fn random_crashes_only_ever_build_images_the_enumeration_lists() {
    // Tears at every byte, any number per file: the enumeration then holds every image the
    // RNG can draw, except that the RNG's garbage is random and the enumeration's a fixed
    // pattern; an image with garbage matches an enumerated garbage image everywhere else.
    let options = EnumerationOptions {
        tear_granularity: 1,
        tears_per_file: u32::MAX,
        ..EnumerationOptions::default()
    };
    for profile in FsProfile::ALL {
        for ordered in [false, true] {
            let mut config = config(profile, 8, 0.4);
            config.ordered_writes = ordered;
            let point = tiny_world(0, config.clone()).crash_point_now();
            let mut hashes = BTreeSet::new();
            let mut garbage_images = Vec::new();
            for state in point.states(options) {
                hashes.insert(state.image_hash);
                if point.describe(&state.choices, options).contains("garbage") {
                    garbage_images.push(state.fs.snapshot());
                }
            }
            let mut seen = BTreeSet::new();
            for seed in 0..300 {
                let fs = tiny_world(seed, config.clone());
                fs.crash();
                let image = fs.image_hash();
                let snapshot = fs.snapshot();
                assert!(
                    hashes.contains(&image)
                        || garbage_images
                            .iter()
                            .any(|listed| same_but_for_garbage(listed, &snapshot)),
                    "{profile} (ordered {ordered}): seed {seed} crashed into an image the \
                     enumeration lacks: {snapshot:?}"
                );
                seen.insert(image);
            }
            assert!(seen.len() > 4, "{profile}: the random crashes vary");
        }
    }
}

/// The same files and lengths, and at most one run of differing bytes per 8-byte sector
/// (a tear's garbage tail).
fn same_but_for_garbage(
    listed: &BTreeMap<String, Vec<u8>>,
    random: &BTreeMap<String, Vec<u8>>,
) -> bool {
    listed.len() == random.len()
        && listed.iter().zip(random).all(|((path, a), (other, b))| {
            let differing: Vec<usize> = (0..a.len()).filter(|&i| a.get(i) != b.get(i)).collect();
            path == other
                && a.len() == b.len()
                && differing
                    .windows(2)
                    .all(|pair| pair[1] == pair[0] + 1 || pair[1] / 8 != pair[0] / 8)
        })
}

#[test]
fn random_crashes_of_the_small_world_stay_within_its_enumeration() {
    let options = EnumerationOptions {
        tear_granularity: 1,
        tears_per_file: u32::MAX,
        ..EnumerationOptions::default()
    };
    for profile in [FsProfile::Classic, FsProfile::PosixStrict] {
        let config = config(profile, 16, 0.0);
        let enumerated = every_image(&small_world(0, config.clone()).crash_point_now(), options);
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            let fs = small_world(seed, config.clone());
            fs.crash();
            let image = fs.image_hash();
            assert!(
                enumerated.contains(&image),
                "{profile}: seed {seed} crashed into an image the enumeration lacks"
            );
            seen.insert(image);
        }
        assert!(seen.len() > 8, "{profile}: the random crashes vary");
    }
}

/// Steps that each profile's rules treat differently (see `profile.rs`).
fn telling_workload(fs: &SimFs) {
    let root = Path::new("/");
    fs.create_dir_all(Path::new("/a")).unwrap();
    fs.create_dir_all(Path::new("/b")).unwrap();
    fs.sync_dir(root).unwrap();
    // Powersafe overwrite: a durable half sector, then an unsynced append into it.
    let log = fs.create(Path::new("/a/log")).unwrap();
    fs.sync_dir(Path::new("/a")).unwrap();
    log.append(b"durable!").unwrap();
    log.sync().unwrap();
    log.append(b"appended").unwrap();
    // Growth: two more sectors, unsynced (a size ahead of its data, or not).
    log.append(&[9u8; 32]).unwrap();
    // Write-then-rename over an existing file, unsynced (a replace-via-rename bringing its
    // data along).
    let old = fs.create(Path::new("/a/final")).unwrap();
    old.append(b"old contents....").unwrap();
    old.sync().unwrap();
    fs.sync_dir(Path::new("/a")).unwrap();
    let temp = fs.create(Path::new("/a/temp")).unwrap();
    temp.append(b"new contents....").unwrap();
    fs.rename(Path::new("/a/temp"), Path::new("/a/final"))
        .unwrap();
    // Operations in two directories (one journal, or a prefix each; any subset).
    fs.create(Path::new("/b/one")).unwrap();
    fs.create(Path::new("/a/two")).unwrap();
    fs.create(Path::new("/b/three")).unwrap();
    // A sync of a new file (a journal commit, its own name, or nothing of the directories).
    let synced = fs.create(Path::new("/b/synced")).unwrap();
    synced.append(b"s").unwrap();
    synced.sync().unwrap();
    fs.create(Path::new("/a/after")).unwrap();
}

#[test]
fn each_profile_allows_crash_states_that_the_others_do_not() {
    let mut images: BTreeMap<FsProfile, BTreeSet<u64>> = BTreeMap::new();
    for profile in FsProfile::ALL {
        let fs = SimFs::new(7, config(profile, 16, 0.5));
        fs.capture_crash_points(Some(CaptureAt::EveryOperation));
        telling_workload(&fs);
        let mut points = fs.take_crash_points();
        points.push(fs.crash_point_now());
        let all = images.entry(profile).or_default();
        for point in &points {
            all.extend(every_image(point, EnumerationOptions::default()));
        }
    }
    for (a, first) in &images {
        for (b, second) in &images {
            if a < b {
                assert_ne!(first, second, "{a} and {b} allow the same crash states");
            }
        }
    }
    // posix-strict is the harshest: no state a journal allows is beyond it... except
    // what a journal's sync commits or a rename brings along, which POSIX does not promise
    // but does not forbid either. Its set is the largest.
    let strict = images[&FsProfile::PosixStrict].len();
    for (profile, set) in &images {
        assert!(
            set.len() <= strict,
            "{profile} allows {} states, posix-strict {strict}",
            set.len()
        );
    }
}

#[test]
fn only_a_rename_over_an_existing_file_brings_its_data_under_ext4_ordered() {
    // Data written to `temp`, unsynced, then renamed to `target` and the directory synced:
    // ext4's auto_da_alloc flushes the data only when the rename replaces a file.
    for replace in [false, true] {
        let fs = SimFs::new(3, config(FsProfile::Ext4Ordered, 16, 0.0));
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        if replace {
            let old = fs.create(Path::new("/d/target")).unwrap();
            old.append(b"old").unwrap();
            old.sync().unwrap();
        }
        fs.sync_dir(Path::new("/d")).unwrap();
        let temp = fs.create(Path::new("/d/temp")).unwrap();
        temp.append(b"new contents").unwrap();
        fs.rename(Path::new("/d/temp"), Path::new("/d/target"))
            .unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        let point = fs.crash_point_now();
        let contents: BTreeSet<Vec<u8>> = point
            .states(EnumerationOptions::default())
            .map(|state| state.fs.snapshot()["d/target"].clone())
            .collect();
        if replace {
            assert_eq!(
                contents,
                BTreeSet::from([b"new contents".to_vec()]),
                "replace-via-rename keeps the data"
            );
        } else {
            assert!(
                contents.contains(&Vec::new()),
                "a rename to a new name may come back empty: {contents:?}"
            );
        }
    }
}

#[test]
fn a_failed_directory_sync_under_a_journal_keeps_a_prefix_of_the_whole_journal() {
    let order = ["a/x", "b/y", "a/z"];
    let mut seen = BTreeSet::new();
    for seed in 0..200 {
        let fs = SimFs::new(seed, config(FsProfile::Xfs, 16, 0.0));
        for dir in ["/a", "/b"] {
            fs.create_dir_all(Path::new(dir)).unwrap();
        }
        fs.sync_dir(Path::new("/")).unwrap();
        fs.sync_dir(Path::new("/a")).unwrap();
        for name in order {
            fs.create(&Path::new("/").join(name)).unwrap();
        }
        fs.set_config(FaultConfig {
            sync_failure_rate: 1.0,
            ..config(FsProfile::Xfs, 16, 0.0)
        });
        assert!(fs.sync_dir(Path::new("/a")).is_err());
        fs.set_config(config(FsProfile::Xfs, 16, 0.0));
        fs.crash();
        let present: Vec<&str> = order
            .iter()
            .copied()
            .filter(|name| fs.snapshot().contains_key(*name))
            .collect();
        assert_eq!(
            present,
            order[..present.len()],
            "seed {seed}: not a prefix of the journal"
        );
        seen.insert(present.len());
    }
    assert_eq!(seen.len(), 4, "every prefix occurs: {seen:?}");
}
