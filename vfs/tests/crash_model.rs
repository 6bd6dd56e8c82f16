//! Property tests of `SimFs`'s crash model against a shadow model.
//!
//! Random operation sequences over a few files in one directory are applied to a `SimFs` and
//! to a model that tracks, per file (inode), the bytes that are durable at the last successful
//! `sync` and every value written at each position since; and per directory the entries that
//! are durable at the last `sync_dir` and the operations since. After `crash()` the observed
//! image must be one the model allows:
//! - the directory holds its durable entries plus a *prefix* of the operations since its last
//!   `sync_dir` (so a name made durable by `sync_dir` is never undone, and a later unsynced
//!   create, rename or remove may be);
//! - each file's bytes are its synced bytes, or a value an unsynced write put at that position,
//!   or zero where the file had no durable bytes (a hole) or an unsynced truncation cut it;
//! - with `unsynced_survival` 1.0 every visible byte survives; with 0.0 exactly the synced state
//!   does (with or without a pending truncation).

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use strata_vfs::{FaultConfig, SimFs, Vfs, VfsFile};

const NAMES: [&str; 3] = ["a", "b", "c"];
const DIR: &str = "/db";

fn path_of(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// A distinct, non-zero byte for write number `write` at position `i` of its data.
fn pattern(write: u64, i: usize, base: u8, span: u8) -> u8 {
    base + ((write.wrapping_mul(37) + i as u64 * 11) % span as u64) as u8
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Append(usize, usize),
    WriteAt(usize, usize, usize),
    Sync(usize),
    SetLen(usize, usize),
    Rename(usize, usize),
    Remove(usize),
    SyncDir,
    Crash,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let file = 0..NAMES.len();
    prop_oneof![
        3 => file.clone().prop_map(Op::Create),
        6 => (file.clone(), 0usize..160).prop_map(|(f, n)| Op::Append(f, n)),
        4 => (file.clone(), 0usize..200, 1usize..80).prop_map(|(f, o, n)| Op::WriteAt(f, o, n)),
        4 => file.clone().prop_map(Op::Sync),
        2 => (file.clone(), 0usize..200).prop_map(|(f, n)| Op::SetLen(f, n)),
        2 => (file.clone(), file.clone()).prop_map(|(f, g)| Op::Rename(f, g)),
        1 => file.prop_map(Op::Remove),
        2 => Just(Op::SyncDir),
        1 => Just(Op::Crash),
    ]
}

/// How strictly unsynced data is checked, from the config in force.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Survival {
    /// Any of the allowed outcomes (`unsynced_survival` strictly between 0 and 1, or ordered).
    Some,
    /// `unsynced_survival` 0.0, unordered: exactly the synced state survives.
    Nothing,
    /// `unsynced_survival` 1.0, unordered, no torn writes: everything visible survives.
    Everything,
}

#[derive(Debug, Clone, Default)]
struct ModelFile {
    visible: Vec<u8>,
    /// The bytes at the last successful sync.
    durable: Vec<u8>,
    /// Every value written at each position since the last sync (zeros of gaps included).
    written: Vec<BTreeSet<u8>>,
    /// The smallest length a truncation set since the last sync.
    min_trunc: Option<usize>,
    /// The largest visible length since the last sync.
    max_len: usize,
    /// Sectors written (or zero-filled) since the last sync.
    touched: BTreeSet<usize>,
}

impl ModelFile {
    fn fresh(contents: Vec<u8>) -> Self {
        ModelFile {
            max_len: contents.len(),
            visible: contents.clone(),
            durable: contents,
            ..ModelFile::default()
        }
    }

    fn record(&mut self, pos: usize, value: u8, sector: usize) {
        if self.written.len() <= pos {
            self.written.resize(pos + 1, BTreeSet::new());
        }
        self.written[pos].insert(value);
        self.touched.insert(pos / sector);
    }

    fn write(&mut self, offset: usize, data: &[u8], sector: usize) {
        if data.is_empty() {
            return;
        }
        for pos in self.visible.len()..offset {
            self.record(pos, 0, sector);
        }
        let end = offset + data.len();
        if self.visible.len() < end {
            self.visible.resize(end, 0);
        }
        self.visible[offset..end].copy_from_slice(data);
        for (i, &byte) in data.iter().enumerate() {
            self.record(offset + i, byte, sector);
        }
        self.max_len = self.max_len.max(end);
    }

    fn set_len(&mut self, len: usize, sector: usize) {
        if len < self.visible.len() {
            self.visible.truncate(len);
            self.min_trunc = Some(self.min_trunc.map_or(len, |t| t.min(len)));
        } else {
            for pos in self.visible.len()..len {
                self.record(pos, 0, sector);
            }
            self.visible.resize(len, 0);
            self.max_len = self.max_len.max(len);
        }
    }

    fn sync(&mut self) {
        *self = ModelFile::fresh(self.visible.clone());
    }

    /// The length below which the durable bytes cannot have been cut.
    fn floor(&self) -> usize {
        self.durable.len().min(self.min_trunc.unwrap_or(usize::MAX))
    }

    /// Whether `image` is a crash outcome this file allows; `Err` says why not.
    fn allows(
        &self,
        image: &[u8],
        survival: Survival,
        torn: bool,
        sector: usize,
    ) -> Result<(), String> {
        let floor = self.floor();
        let ceiling = self.durable.len().max(self.max_len);
        if image.len() < floor || image.len() > ceiling {
            return Err(format!(
                "length {} outside [{floor}, {ceiling}] (durable {}, visible {})",
                image.len(),
                self.durable.len(),
                self.visible.len()
            ));
        }
        for (i, &byte) in image.iter().enumerate() {
            if torn && self.touched.contains(&(i / sector)) {
                continue; // a torn sector's tail may be anything
            }
            let synced = self.durable.get(i) == Some(&byte);
            let written = self.written.get(i).is_some_and(|set| set.contains(&byte));
            let hole = byte == 0 && i >= floor;
            if !(synced || written || hole) {
                return Err(format!(
                    "byte {i} is {byte}: not synced ({:?}), not written since ({:?}), not a hole (floor {floor})",
                    self.durable.get(i),
                    self.written.get(i)
                ));
            }
        }
        match survival {
            Survival::Some => {}
            Survival::Nothing => {
                let cut = &self.durable[..floor];
                if image != self.durable.as_slice() && image != cut {
                    return Err(format!(
                        "with no survival the image must be the synced bytes ({} or {} long), got {} bytes",
                        self.durable.len(),
                        floor,
                        image.len()
                    ));
                }
            }
            Survival::Everything => {
                if image.len() < self.visible.len()
                    || image[..self.visible.len()] != self.visible[..]
                {
                    return Err(format!(
                        "with full survival the visible bytes ({} long) must survive, got {} bytes",
                        self.visible.len(),
                        image.len()
                    ));
                }
                let undone_truncation = self.durable.len().max(self.visible.len());
                if image.len() != self.visible.len()
                    && !(floor < self.durable.len() && image.len() == undone_truncation)
                {
                    return Err(format!(
                        "with full survival the length must be {} (or {undone_truncation} if an unsynced truncation is undone), got {}",
                        self.visible.len(),
                        image.len()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(String, usize),
    Unlink(String),
    Rename(String, String, usize),
}

fn apply(entries: &mut BTreeMap<String, usize>, op: &DirOp) {
    match op {
        DirOp::Link(name, id) => {
            entries.insert(name.clone(), *id);
        }
        DirOp::Unlink(name) => {
            entries.remove(name);
        }
        DirOp::Rename(from, to, id) => {
            entries.remove(from);
            entries.insert(to.clone(), *id);
        }
    }
}

/// The shadow model: inodes by id (never reused) and the one directory.
#[derive(Debug, Default)]
struct Model {
    files: Vec<ModelFile>,
    visible: BTreeMap<String, usize>,
    durable: BTreeMap<String, usize>,
    pending: Vec<DirOp>,
    writes: u64,
}

struct Harness {
    fs: SimFs,
    model: Model,
    sector: usize,
    survival: Survival,
    torn: bool,
    log: Vec<String>,
}

impl Harness {
    fn new(seed: u64, config: FaultConfig) -> Harness {
        let survival = if config.ordered_writes {
            Survival::Some
        } else if config.unsynced_survival == 0.0 && config.torn_write_rate == 0.0 {
            Survival::Nothing
        } else if config.unsynced_survival == 1.0 {
            Survival::Everything
        } else {
            Survival::Some
        };
        let harness = Harness {
            sector: config.sector_size as usize,
            torn: config.torn_write_rate > 0.0,
            survival,
            fs: SimFs::new(seed, config),
            model: Model::default(),
            log: Vec::new(),
        };
        harness.fs.create_dir_all(Path::new(DIR)).unwrap();
        harness.fs.sync_dir(Path::new("/")).unwrap();
        harness
    }

    fn data(&mut self, len: usize) -> Vec<u8> {
        self.model.writes += 1;
        let write = self.model.writes;
        (0..len).map(|i| pattern(write, i, 1, 255)).collect()
    }

    /// Applies one op to both; asserts that the filesystem's answer matches the model's.
    fn step(&mut self, op: &Op) -> Result<(), String> {
        self.log.push(format!("{op:?}"));
        let sector = self.sector;
        let name_of = |f: usize| NAMES[f].to_string();
        match *op {
            Op::Create(f) => {
                let name = name_of(f);
                self.fs
                    .create(&path_of(&name))
                    .map_err(|e| format!("create failed: {e}"))?;
                match self.model.visible.get(&name) {
                    Some(&id) => self.model.files[id].set_len(0, sector),
                    None => {
                        let id = self.model.files.len();
                        self.model.files.push(ModelFile::default());
                        self.model.visible.insert(name.clone(), id);
                        self.model.pending.push(DirOp::Link(name, id));
                    }
                }
            }
            Op::Append(f, len) | Op::WriteAt(f, _, len) => {
                let name = name_of(f);
                let data = self.data(len);
                let Some(file) = self.open(&name)? else {
                    return Ok(());
                };
                let id = self.model.visible[&name];
                let model = &mut self.model.files[id];
                let offset = match *op {
                    Op::WriteAt(_, offset, _) => {
                        file.write_at(offset as u64, &data)
                            .map_err(|e| format!("write_at failed: {e}"))?;
                        offset
                    }
                    _ => {
                        let offset = file
                            .append(&data)
                            .map_err(|e| format!("append failed: {e}"))?;
                        if offset != model.visible.len() as u64 {
                            return Err(format!(
                                "append returned {offset}, model length {}",
                                model.visible.len()
                            ));
                        }
                        offset as usize
                    }
                };
                model.write(offset, &data, sector);
                let len = file.len().map_err(|e| e.to_string())?;
                if len != model.visible.len() as u64 {
                    return Err(format!("length {len}, model {}", model.visible.len()));
                }
            }
            Op::Sync(f) => {
                let name = name_of(f);
                if let Some(file) = self.open(&name)? {
                    file.sync().map_err(|e| format!("sync failed: {e}"))?;
                    let id = self.model.visible[&name];
                    self.model.files[id].sync();
                }
            }
            Op::SetLen(f, len) => {
                let name = name_of(f);
                if let Some(file) = self.open(&name)? {
                    file.set_len(len as u64)
                        .map_err(|e| format!("set_len failed: {e}"))?;
                    let id = self.model.visible[&name];
                    self.model.files[id].set_len(len, sector);
                }
            }
            Op::Rename(f, g) => {
                let (from, to) = (name_of(f), name_of(g));
                let result = self.fs.rename(&path_of(&from), &path_of(&to));
                match self.model.visible.get(&from).copied() {
                    None => expect_not_found(result, "rename")?,
                    Some(id) => {
                        result.map_err(|e| format!("rename failed: {e}"))?;
                        if from != to {
                            self.model.visible.remove(&from);
                            self.model.visible.insert(to.clone(), id);
                            self.model.pending.push(DirOp::Rename(from, to, id));
                        }
                    }
                }
            }
            Op::Remove(f) => {
                let name = name_of(f);
                let result = self.fs.remove(&path_of(&name));
                if self.model.visible.remove(&name).is_some() {
                    result.map_err(|e| format!("remove failed: {e}"))?;
                    self.model.pending.push(DirOp::Unlink(name));
                } else {
                    expect_not_found(result, "remove")?;
                }
            }
            Op::SyncDir => {
                self.fs
                    .sync_dir(Path::new(DIR))
                    .map_err(|e| format!("sync_dir failed: {e}"))?;
                self.model.durable = self.model.visible.clone();
                self.model.pending.clear();
            }
            Op::Crash => self.crash_and_check()?,
        }
        let listed = self.fs.list(Path::new(DIR)).map_err(|e| e.to_string())?;
        let expected: Vec<String> = self.model.visible.keys().cloned().collect();
        if listed != expected {
            return Err(format!("listing {listed:?}, model {expected:?}"));
        }
        Ok(())
    }

    /// Opens `name` for writing if the model says it exists; checks NotFound otherwise.
    fn open(&self, name: &str) -> Result<Option<Box<dyn VfsFile>>, String> {
        let result = self.fs.open_write(&path_of(name));
        if self.model.visible.contains_key(name) {
            result.map(Some).map_err(|e| format!("open failed: {e}"))
        } else {
            expect_not_found(result, "open").map(|()| None)
        }
    }

    /// Crashes the filesystem, checks the image against the model, and resets the model to
    /// the image (the new durable state).
    fn crash_and_check(&mut self) -> Result<(), String> {
        self.fs.crash();
        let root = self.fs.list(Path::new("/")).map_err(|e| e.to_string())?;
        if root != vec!["db".to_string()] {
            return Err(format!(
                "the synced directory /db was lost: / holds {root:?}"
            ));
        }
        let snapshot = self.fs.snapshot();
        let listed = self.fs.list(Path::new(DIR)).map_err(|e| e.to_string())?;
        let mut images = BTreeMap::new();
        for name in &listed {
            let key = format!("db/{name}");
            let image = snapshot
                .get(&key)
                .ok_or_else(|| format!("{key} listed but not in the snapshot"))?;
            // The snapshot and a read through a fresh handle must agree.
            let file = self
                .fs
                .open_read(&path_of(name))
                .map_err(|e| e.to_string())?;
            let mut read = vec![0; file.len().map_err(|e| e.to_string())? as usize];
            file.read_exact_at(0, &mut read)
                .map_err(|e| e.to_string())?;
            if &read != image {
                return Err(format!("{name}: read and snapshot differ"));
            }
            images.insert(name.clone(), image.clone());
        }

        let mut reasons = Vec::new();
        let mut entries = self.model.durable.clone();
        let mut chosen = None;
        for k in 0..=self.model.pending.len() {
            if k > 0 {
                apply(&mut entries, &self.model.pending[k - 1]);
            }
            let names: Vec<String> = entries.keys().cloned().collect();
            if names != listed {
                continue;
            }
            let verdict: Result<(), String> = entries.iter().try_for_each(|(name, &id)| {
                self.model.files[id]
                    .allows(&images[name], self.survival, self.torn, self.sector)
                    .map_err(|why| format!("prefix {k}: {name} (inode {id}): {why}"))
            });
            match verdict {
                Ok(()) => {
                    chosen = Some(k);
                    break;
                }
                Err(why) => reasons.push(why),
            }
        }
        if chosen.is_none() {
            return Err(format!(
                "no prefix of the {} pending directory ops explains the crash image: listed {listed:?}, durable {:?}, pending {:?}; {reasons:?}",
                self.model.pending.len(),
                self.model.durable,
                self.model.pending
            ));
        }

        let mut model = Model {
            writes: self.model.writes,
            ..Model::default()
        };
        for (name, image) in images {
            let id = model.files.len();
            model.files.push(ModelFile::fresh(image));
            model.visible.insert(name.clone(), id);
            model.durable.insert(name, id);
        }
        self.model = model;
        Ok(())
    }

    fn run(&mut self, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            self.step(op)?;
        }
        self.step(&Op::Crash)
    }
}

fn expect_not_found<T>(result: strata_vfs::Result<T>, what: &str) -> Result<(), String> {
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{what}: expected NotFound, got {e}")),
        Ok(_) => Err(format!("{what}: expected NotFound, got Ok")),
    }
}

fn config(sector: u64, ordered: bool, survival: f64, torn: f64) -> FaultConfig {
    FaultConfig {
        sector_size: sector,
        ordered_writes: ordered,
        unsynced_survival: survival,
        torn_write_rate: torn,
        ..FaultConfig::none()
    }
}

fn run_case(seed: u64, config: FaultConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(seed, config.clone());
    harness.run(ops).map_err(|why| {
        TestCaseError::fail(format!(
            "{why}\nconfig {config:?}\nops so far {:?}",
            harness.log
        ))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any survival rate, either write-ordering mode, no torn writes: every crash image is one
    /// the model allows.
    #[test]
    fn crash_images_are_allowed(
        seed in any::<u64>(),
        sector in prop_oneof![Just(16u64), Just(64u64)],
        ordered in any::<bool>(),
        survival in prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0f64..1.0],
        ops in vec(op_strategy(), 1..60),
    ) {
        run_case(seed, config(sector, ordered, survival, 0.0), &ops)?;
    }

    /// `unsynced_survival` 0.0: exactly the synced state of every file survives.
    #[test]
    fn nothing_unsynced_survives_at_zero(
        seed in any::<u64>(),
        sector in prop_oneof![Just(16u64), Just(64u64)],
        ops in vec(op_strategy(), 1..60),
    ) {
        run_case(seed, config(sector, false, 0.0, 0.0), &ops)?;
    }

    /// `unsynced_survival` 1.0 and no torn writes: everything visible survives, for every
    /// file whose name survives.
    #[test]
    fn everything_visible_survives_at_one(
        seed in any::<u64>(),
        sector in prop_oneof![Just(16u64), Just(64u64)],
        ops in vec(op_strategy(), 1..60),
    ) {
        run_case(seed, config(sector, false, 1.0, 0.0), &ops)?;
    }

    /// Torn writes on: bytes in sectors written since the last sync may be anything, but every
    /// other byte, the lengths and the directory still obey the model.
    #[test]
    fn torn_writes_stay_inside_dirty_sectors(
        seed in any::<u64>(),
        ordered in any::<bool>(),
        survival in prop_oneof![Just(0.0), Just(0.5)],
        ops in vec(op_strategy(), 1..60),
    ) {
        run_case(seed, config(16, ordered, survival, 1.0), &ops)?;
    }

    /// `ordered_writes`: after appending whole sectors without a sync, what survives is a
    /// prefix of them in write order.
    #[test]
    fn ordered_writes_survive_as_a_prefix(
        seed in any::<u64>(),
        synced_sectors in 0usize..4,
        appended_sectors in 1usize..24,
    ) {
        const SECTOR: usize = 16;
        let fs = SimFs::new(seed, config(SECTOR as u64, true, 0.5, 0.0));
        let dir = Path::new(DIR);
        fs.create_dir_all(dir).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let path = path_of("log");
        let file = fs.create(&path).unwrap();
        fs.sync_dir(dir).unwrap();
        let mut expected = Vec::new();
        for s in 0..synced_sectors + appended_sectors {
            let data: Vec<u8> = (0..SECTOR).map(|i| pattern(s as u64, i, 1, 255)).collect();
            file.append(&data).unwrap();
            expected.extend_from_slice(&data);
            if s + 1 == synced_sectors {
                file.sync().unwrap();
            }
        }
        fs.crash();
        let image = fs.snapshot().remove("db/log").unwrap();
        prop_assert_eq!(image.len() % SECTOR, 0);
        prop_assert!(image.len() >= synced_sectors * SECTOR);
        prop_assert_eq!(&image[..], &expected[..image.len()]);
    }

    /// A failed sync (fsyncgate): it writes some sectors, forgets the rest, and a later
    /// successful sync does not make the forgotten bytes durable.
    #[test]
    fn failed_sync_loses_bytes_for_good(
        seed in any::<u64>(),
        initial_len in 0usize..200,
        writes in vec((0usize..240, 1usize..64), 1..6),
        extra in proptest::option::of((0usize..300, 1usize..32)),
    ) {
        let (a, after_failure) = failed_sync_scenario(seed, initial_len, &writes, extra, true);
        let durable = &a.durable;
        let visible = &a.visible;
        let image = &a.image;
        let old = |i: usize| durable.get(i).copied().unwrap_or(0);
        // The process kept reading the new bytes until the crash.
        prop_assert_eq!(&after_failure, &a.before_extra);
        match a.extra {
            Some((offset, ref data)) => {
                prop_assert_eq!(image.len(), visible.len(), "a successful sync persists the length");
                prop_assert_eq!(&image[offset..offset + data.len()], &data[..]);
            }
            None => {
                prop_assert!(image.len() >= durable.len() && image.len() <= visible.len(),
                    "length {} outside [{}, {}]", image.len(), durable.len(), visible.len());
                // The same run without the later successful sync crashes to the same image: that
                // sync made nothing durable.
                let (b, _) = failed_sync_scenario(seed, initial_len, &writes, None, false);
                prop_assert_eq!(image, &b.image, "the sync after the failed one changed the durable image");
            }
        }
        let extra_range = a.extra.as_ref().map(|(o, d)| *o..*o + d.len());
        for (s, chunk) in image.chunks(a.sector).enumerate() {
            let start = s * a.sector;
            let in_extra = |i: usize| extra_range.as_ref().is_some_and(|r| r.contains(&i));
            let positions: Vec<usize> = (start..start + chunk.len()).filter(|&i| !in_extra(i)).collect();
            let before_failure = |i: usize| a.before_extra.get(i).copied().unwrap_or(0);
            let all_new = positions.iter().all(|&i| image[i] == before_failure(i));
            let all_old = positions.iter().all(|&i| image[i] == old(i));
            prop_assert!(all_new || all_old,
                "sector {s}: neither wholly written by the failed sync nor wholly old: {:?}", chunk);
        }
    }
}

struct FailedSync {
    sector: usize,
    durable: Vec<u8>,
    /// The file as the process saw it at the failed sync.
    before_extra: Vec<u8>,
    /// The file as the process saw it at the crash.
    visible: Vec<u8>,
    extra: Option<(usize, Vec<u8>)>,
    image: Vec<u8>,
}

/// Synced initial contents, unsynced writes, a failed sync, optionally one more write, then
/// (if `sync_after`) a successful sync, and a crash with `unsynced_survival` 0.
fn failed_sync_scenario(
    seed: u64,
    initial_len: usize,
    writes: &[(usize, usize)],
    extra: Option<(usize, usize)>,
    sync_after: bool,
) -> (FailedSync, Vec<u8>) {
    const SECTOR: usize = 16;
    let base = config(SECTOR as u64, false, 0.0, 0.0);
    let fs = SimFs::new(seed, base.clone());
    fs.create_dir_all(Path::new(DIR)).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let path = path_of("f");
    let file = fs.create(&path).unwrap();
    let durable: Vec<u8> = (0..initial_len).map(|i| pattern(0, i, 1, 100)).collect();
    file.append(&durable).unwrap();
    file.sync().unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();

    let mut visible = durable.clone();
    for (w, &(offset, len)) in writes.iter().enumerate() {
        let data: Vec<u8> = (0..len)
            .map(|i| pattern(w as u64 + 1, i, 101, 100))
            .collect();
        file.write_at(offset as u64, &data).unwrap();
        if visible.len() < offset + len {
            visible.resize(offset + len, 0);
        }
        visible[offset..offset + len].copy_from_slice(&data);
    }
    fs.set_config(FaultConfig {
        sync_failure_rate: 1.0,
        ..base.clone()
    });
    let error = file.sync().expect_err("the injected sync failure");
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.to_string().contains("EIO"), "{error}");
    fs.set_config(base);
    assert_eq!(fs.counters().get(strata_vfs::FaultKind::SyncFailure), 1);

    let mut after_failure = vec![0; file.len().unwrap() as usize];
    file.read_exact_at(0, &mut after_failure).unwrap();
    let before_extra = visible.clone();
    let extra = extra.map(|(offset, len)| {
        let data: Vec<u8> = (0..len).map(|i| pattern(99, i, 201, 50)).collect();
        file.write_at(offset as u64, &data).unwrap();
        if visible.len() < offset + len {
            visible.resize(offset + len, 0);
        }
        visible[offset..offset + len].copy_from_slice(&data);
        (offset, data)
    });
    if sync_after {
        file.sync().expect("a sync after a failed one returns Ok");
    }
    fs.crash();
    let image = fs
        .snapshot()
        .remove("db/f")
        .expect("the synced name survives");
    (
        FailedSync {
            sector: SECTOR,
            durable,
            before_extra,
            visible,
            extra,
            image,
        },
        after_failure,
    )
}

/// The model check itself can fail: an image with a byte no write put there is rejected.
#[test]
fn model_rejects_a_byte_from_nowhere() {
    let mut file = ModelFile::fresh(vec![1, 2, 3, 4]);
    file.write(2, &[9, 9], 16);
    assert!(file
        .allows(&[1, 2, 9, 4], Survival::Some, false, 16)
        .is_ok());
    assert!(file
        .allows(&[1, 2, 3, 4], Survival::Some, false, 16)
        .is_ok());
    assert!(file
        .allows(&[1, 2, 7, 4], Survival::Some, false, 16)
        .is_err());
    assert!(
        file.allows(&[1, 2, 3], Survival::Some, false, 16).is_err(),
        "synced bytes cut"
    );
    assert!(file
        .allows(&[1, 2, 9, 9], Survival::Nothing, false, 16)
        .is_err());
    assert!(file
        .allows(&[1, 2, 3, 4], Survival::Everything, false, 16)
        .is_err());
    file.set_len(1, 16);
    assert!(
        file.allows(&[1], Survival::Nothing, false, 16).is_ok(),
        "truncation survived"
    );
    assert!(
        file.allows(&[1, 0, 3, 4], Survival::Some, false, 16)
            .is_ok(),
        "a hole past the cut"
    );
}

/// A rename between directories is an unlink in one and a link in the other, each durable
/// with its own directory: a crash can leave both names on one file. Removing both must
/// neither panic nor leak space.
#[test]
fn cross_directory_rename_can_leave_two_names() {
    let config = FaultConfig {
        capacity_bytes: Some(100),
        ..FaultConfig::none()
    };
    let mut saw_two_names = false;
    for seed in 0..16 {
        let fs = SimFs::new(seed, config.clone());
        for dir in ["/x", "/y"] {
            fs.create_dir(Path::new(dir)).unwrap();
        }
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.create(Path::new("/x/f")).unwrap();
        f.append(&[7; 60]).unwrap();
        f.sync().unwrap();
        fs.sync_dir(Path::new("/x")).unwrap();
        fs.rename(Path::new("/x/f"), Path::new("/y/f")).unwrap();
        fs.sync_dir(Path::new("/y")).unwrap(); // the unlink in /x stays pending
        fs.crash();
        let both = fs.exists(Path::new("/x/f")).unwrap();
        assert!(
            fs.exists(Path::new("/y/f")).unwrap(),
            "the link in /y was made durable"
        );
        saw_two_names |= both;
        if both {
            fs.remove(Path::new("/x/f")).unwrap();
        }
        fs.remove(Path::new("/y/f")).unwrap();
        // Everything is gone, so the whole capacity is free again.
        let g = fs.create(Path::new("/y/g")).unwrap();
        g.append(&[1; 100]).unwrap();
        assert_eq!(
            g.append(&[1]).unwrap_err().kind(),
            ErrorKind::StorageFull,
            "seed {seed}"
        );
    }
    assert!(saw_two_names, "no seed kept both names");
}
