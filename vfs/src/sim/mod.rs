//! `SimFs`: an in-memory filesystem whose crash behaviour is as unkind as real disks allow.
//!
//! It keeps, per file, the bytes the running process sees (*visible*) and the bytes that are
//! on stable storage (*durable*), and per directory the visible and the durable entries.
//! Every decision comes from one ChaCha8 stream seeded by the caller, so a seed and a sequence
//! of calls fix every byte.
//!
//! The fault model (what survives `crash()`):
//! - Data made durable by a successful `sync` of a file survives, byte for byte (unless a
//!   bit-flip fault hits it, which is the point of that fault).
//! - Unsynced writes survive per *sector* (`sector_size`, default 4096): each dirty sector
//!   comes back with its new content, or its old durable content, or zeros where the file had
//!   no durable bytes (a hole). In the default mode any subset of sectors survives, in any
//!   order; with `ordered_writes` a prefix of them in write order does.
//! - A sector at the edge of what survives may be *torn*: a prefix of its new bytes, then
//!   zeros, garbage or the old bytes (`torn_write_rate`). Only bytes written since the last
//!   sync can be damaged ("powersafe overwrite", as SQLite calls it: modern drives do not
//!   corrupt bytes of a sector that a write did not change).
//! - An unsynced `set_len` (truncate) may or may not survive; the file is never longer than
//!   what its durable bytes and surviving sectors cover.
//! - Creating, renaming or removing a name is durable only after `sync_dir` of its parent.
//!   At a crash, each directory keeps its durable entries plus a random *prefix* of the
//!   operations done since its last `sync_dir` (journaling filesystems commit metadata in
//!   order). A directory whose own entry was not made durable disappears with its contents.
//!   A rename between two directories is an unlink in one and a link in the other, each
//!   durable with its own directory (harsher than ext4; Strata renames within one directory).
//! - A failed `sync` (EIO, `sync_failure_rate`) writes some, all or none of the dirty
//!   sectors, and then *forgets* that the rest were dirty: a later `sync` returns Ok and does
//!   not make them durable, while the process still reads the new bytes (Linux's behaviour
//!   behind PostgreSQL's "fsyncgate"). A failed `sync_dir` makes a random prefix of the
//!   pending directory operations durable.
//! - Writes fail with ENOSPC past `capacity_bytes` or at `enospc_rate`; the failed write
//!   changes nothing. Reads fail with EIO at `read_error_rate`.
//! - `crash_at_op` halts the machine at that operation index: that operation and every later
//!   one fail until `crash()` restarts the machine. `halt()` halts it between operations (a
//!   power cut at a scheduling point of a concurrent simulation). `crash()` also works at any
//!   moment.
//! - After `crash()`, every handle opened before it fails: the process that held it is dead,
//!   and every `lock` it held is free. (`lock` creates no file here, unlike `RealFs`.)
//!
//! The medium's own faults (`medium.rs`, after TigerBeetle's simulated storage; each off at
//! rate 0, drawn from a random stream of their own so that turning one on moves no other
//! decision):
//! - A *lost write* (`lost_write_rate`, per write): acknowledged, and even synced, it never
//!   reaches the medium. The process reads it back until the next crash (the page cache has
//!   it); a sync leaves the medium's old bytes there (zeros past the old end), and after the
//!   crash those are what the file holds. A later write of the same bytes that is not lost
//!   reaches the medium as usual.
//! - A *misdirected write* (`misdirected_write_rate`, per write): lost where it was meant,
//!   and at the file's next successful sync its bytes land at the same place within a sector
//!   of another sector of the same file, or of another file (a *phantom write* there; half
//!   of those at the very offset meant, as a mix-up of files would). The
//!   landing changes durable bytes only (that file's page cache keeps the old ones until the
//!   crash) and never grows a file; an unsynced misdirected write dies with a crash.
//! - A *stale* or *misdirected read* (`stale_read_rate`, per read, half each): the read
//!   returns the medium's old durable bytes instead of newer ones, or the bytes at the same
//!   place of another sector of the file (zeros past its end). Nothing is changed; counted
//!   only when the bytes returned differ from the right ones.
//! - A *latent sector error* (`latent_sector_rate`, per `sync` of a file): one durable
//!   sector of a random file becomes unreadable. Every read touching it fails with EIO
//!   (`unreadable_sector`), except while the sector is dirty (the page cache serves it),
//!   across crashes, until a successful sync writes bytes into it (the drive remaps it) or
//!   the file is cut below it.

mod crash;
mod dirty;
mod enumerate;
mod event;
mod fault;
mod file;
mod medium;
mod namespace;
mod path;
mod profile;
mod world;

pub use enumerate::{CaptureAt, CrashPoint, CrashState, CrashStates, EnumerationOptions, Order};
pub use event::{Event, OpKind, StableHasher};
pub use fault::{FaultConfig, FaultCounters, FaultKind, SimRng};
pub use profile::{AppendedSize, DirectoryOrder, FsProfile, PersistenceRules};

use crate::{Result, VfsError};
use dirty::DirtySectors;
use path::{join, normalize, split};
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use world::{apply_dir_op, copy_sector};

/// The simulated filesystem. Cloning gives another handle on the same world.
#[derive(Clone)]
pub struct SimFs {
    world: Arc<Mutex<World>>,
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimFs")
    }
}

type InodeId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(InodeId),
    Dir,
}

/// A directory entry's name: shared, so copying a directory's entries (every `sync_dir`
/// makes the visible ones durable, every crash the durable ones visible) copies no text.
type Name = Arc<str>;

#[derive(Debug, Clone)]
enum DirOp {
    Link(Name, Node),
    Unlink(Name),
    Rename(Name, Name, Node),
}

impl DirOp {
    /// The node the operation gives a name to, if any.
    fn node(&self) -> Option<Node> {
        match self {
            DirOp::Link(_, node) | DirOp::Rename(_, _, node) => Some(*node),
            DirOp::Unlink(_) => None,
        }
    }

    /// The names the operation changes.
    fn names(&self) -> impl Iterator<Item = Name> + '_ {
        let (first, second) = match self {
            DirOp::Link(name, _) | DirOp::Unlink(name) => (name, None),
            DirOp::Rename(from, to, _) => (from, Some(to)),
        };
        std::iter::once(Name::clone(first)).chain(second.cloned())
    }
}

/// A directory operation not yet durable, with its place in the filesystem's order of
/// operations (shared with data writes: `World::write_seq`).
#[derive(Debug, Clone)]
struct PendingOp {
    seq: u64,
    op: DirOp,
    /// A rename over an existing file (the replace-via-rename that ext4's `auto_da_alloc`
    /// and btrfs flush the data of).
    replaces: bool,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    visible: BTreeMap<Name, Node>,
    durable: BTreeMap<Name, Node>,
    /// Operations since the last `sync_dir`, in order.
    pending: Vec<PendingOp>,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    visible: Vec<u8>,
    durable: Vec<u8>,
    /// Dirty sector index -> sequence number of the last write to it.
    dirty: DirtySectors,
    /// Byte ranges written since the last sync (what a successful sync copies).
    dirty_ranges: Vec<(u64, u64)>,
    /// The smallest length set by a truncation since the last sync.
    pending_truncate: Option<u64>,
    /// Whether a directory entry names this inode (orphans do not count against capacity).
    linked: bool,
    /// Its lost writes, misdirected writes and unreadable sectors (`medium.rs`).
    medium: medium::InodeMedium,
}

impl Inode {
    /// The inode a crash leaves: `image` seen and durable, nothing pending, named. Every
    /// field is listed, so that a new one must say whether it outlives a crash.
    fn after_crash(&self, image: Vec<u8>) -> Inode {
        Inode {
            visible: image.clone(),
            durable: image,
            dirty: DirtySectors::default(),
            dirty_ranges: Vec::new(),
            pending_truncate: None,
            linked: true,
            // Bad sectors outlive a crash; lost and misdirected writes were settled just
            // before it (`crash_with_medium`).
            medium: self.medium.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct World {
    config: FaultConfig,
    rng: SimRng,
    epoch: u64,
    next_op: u64,
    halted: bool,
    /// Shared, so that copying the world (a crash point, every state of its enumeration)
    /// copies no file a crash leaves as it was: every change goes through `inode_mut`.
    inodes: BTreeMap<InodeId, Arc<Inode>>,
    next_inode: InodeId,
    dirs: BTreeMap<String, Dir>,
    write_seq: u64,
    used_bytes: u64,
    record_events: bool,
    events: Vec<Event>,
    hasher: StableHasher,
    counters: FaultCounters,
    crashes: u64,
    /// Held locks: path -> the holder's id. Process state, emptied by a crash.
    locks: BTreeMap<String, u64>,
    next_lock: u64,
    /// Which operations are preceded by a copy of the world (`enumerate.rs`).
    capture: Option<CaptureAt>,
    captures: Vec<CrashPoint>,
    /// The medium's faults: their random stream, of its own (`medium.rs`).
    medium: medium::Medium,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    // A panic while holding the lock leaves the world as it was at an operation boundary
    // or mid-operation; either way the simulation is over, so poisoning is not propagated.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimFs {
    /// A fresh, empty filesystem whose every random decision is fixed by `seed`.
    ///
    /// # Panics
    /// If `config` is invalid (see [`FaultConfig::validate`]): configs are checked where they
    /// are read from users.
    pub fn new(seed: u64, config: FaultConfig) -> SimFs {
        if let Err(reason) = config.validate() {
            panic!("invalid FaultConfig: {reason}");
        }
        SimFs {
            world: Arc::new(Mutex::new(World::new(seed, config))),
        }
    }

    /// Keeps every event in memory (for traces); the event hash is kept either way.
    pub fn record_events(&self, on: bool) {
        lock(&self.world).record_events = on;
    }

    /// The events recorded so far (empty unless `record_events(true)`).
    pub fn events(&self) -> Vec<Event> {
        lock(&self.world).events.clone()
    }

    /// Takes the recorded events out, leaving the log empty.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut lock(&self.world).events)
    }

    /// A hash of every event so far: equal for equal runs.
    pub fn event_hash(&self) -> u64 {
        lock(&self.world).hasher.finish()
    }

    /// Faults injected so far, by kind.
    pub fn counters(&self) -> FaultCounters {
        lock(&self.world).counters
    }

    /// How many operations have been performed (the next operation's index).
    pub fn op_count(&self) -> u64 {
        lock(&self.world).next_op
    }

    /// How many times the machine crashed.
    pub fn crash_count(&self) -> u64 {
        lock(&self.world).crashes
    }

    /// The fault configuration in force.
    pub fn config(&self) -> FaultConfig {
        lock(&self.world).config.clone()
    }

    /// Replaces the fault configuration (e.g. to turn faults off during a check).
    ///
    /// # Panics
    /// If `config` is invalid.
    pub fn set_config(&self, config: FaultConfig) {
        if let Err(reason) = config.validate() {
            panic!("invalid FaultConfig: {reason}");
        }
        lock(&self.world).config = config;
    }

    /// Schedules the machine to halt at operation `index` (or never).
    pub fn set_crash_at(&self, index: Option<u64>) {
        lock(&self.world).config.crash_at_op = index;
    }

    /// Halts the machine now, between two operations: every later operation fails as after
    /// a crash point, until `crash()`. (A no-op if it has halted already.)
    pub fn halt(&self) {
        let mut world = lock(&self.world);
        if !world.halted {
            world.halted = true;
            // Into the event hash: a halt here and one an operation later are different runs.
            let index = world.next_op;
            world.hasher.write_u64(index ^ 0x4841_4c54_4841_4c54);
        }
    }

    /// Whether the machine has halted at its scheduled crash point and awaits `crash()`.
    pub fn is_halted(&self) -> bool {
        lock(&self.world).halted
    }

    /// Power loss and restart: the durable image, plus whatever unsynced state the RNG lets
    /// survive, becomes the visible state; every open handle dies.
    pub fn crash(&self) {
        lock(&self.world).crash_with_medium();
    }

    /// The sectors a latent sector error made unreadable, as `(path, offset of the sector)`.
    pub fn unreadable_sectors(&self) -> Vec<(String, u64)> {
        lock(&self.world).unreadable_sectors()
    }

    /// Flips one bit of a file's data, visible and durable alike (disk corruption).
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("flip_bit", path)?;
        let id = world.lookup_file("flip_bit", path, &norm)?;
        let inode = world.inode(id);
        let at = offset as usize;
        if at >= inode.visible.len() {
            return Err(VfsError::new(
                "flip_bit",
                path,
                ErrorKind::InvalidInput,
                "offset past end of file",
            ));
        }
        inode.visible[at] ^= 1 << (bit % 8);
        if at < inode.durable.len() {
            inode.durable[at] ^= 1 << (bit % 8);
        }
        world.counters.record(FaultKind::BitFlip);
        Ok(())
    }

    /// Cuts a file to `len` bytes, visible and durable alike (an operator's mistake, a lost
    /// tail). No-op past the end.
    pub fn truncate_file(&self, path: &Path, len: u64) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("truncate_file", path)?;
        let id = world.lookup_file("truncate_file", path, &norm)?;
        let inode = world.inode(id);
        let before = inode.visible.len() as u64;
        let linked = inode.linked;
        inode.visible.truncate(len as usize);
        inode.durable.truncate(len as usize);
        if linked {
            world.used_bytes -= before.saturating_sub(len);
        }
        world.counters.record(FaultKind::Truncation);
        Ok(())
    }

    /// Removes a file's name, visibly and durably at once (a lost file).
    pub fn lose_file(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("lose_file", path)?;
        let id = world.lookup_file("lose_file", path, &norm)?;
        let (parent, name) = split(&norm);
        let dir = world.dirs.get_mut(parent).expect("lookup found the parent");
        dir.visible.remove(name);
        dir.durable.remove(name);
        dir.pending.retain(|pending| match &pending.op {
            DirOp::Link(linked, _) => &**linked != name,
            DirOp::Unlink(_) => true,
            DirOp::Rename(_, to, _) => &**to != name,
        });
        world.unlink_inode(id);
        world.counters.record(FaultKind::FileLoss);
        Ok(())
    }

    /// Every file's visible contents, by normalised path (for tests and image hashes).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let world = lock(&self.world);
        let mut files = BTreeMap::new();
        for (dir_name, dir) in &world.dirs {
            for (name, node) in &dir.visible {
                if let Node::File(id) = node {
                    let data = world
                        .inodes
                        .get(id)
                        .map(|inode| inode.visible.clone())
                        .unwrap_or_default();
                    files.insert(join(dir_name, name), data);
                }
            }
        }
        files
    }

    /// Every file's normalised path and visible length, without copying contents.
    pub fn files(&self) -> Vec<(String, u64)> {
        let world = lock(&self.world);
        let mut files = Vec::new();
        for (dir_name, dir) in &world.dirs {
            for (name, node) in &dir.visible {
                if let Node::File(id) = node {
                    let len = world
                        .inodes
                        .get(id)
                        .map_or(0, |inode| inode.visible.len() as u64);
                    files.push((join(dir_name, name), len));
                }
            }
        }
        files
    }

    /// Every directory, by normalised path (the root is "").
    pub fn directories(&self) -> Vec<String> {
        lock(&self.world).dirs.keys().cloned().collect()
    }

    /// A stable hash of the visible image: every directory, name and byte.
    pub fn image_hash(&self) -> u64 {
        enumerate::world_image_hash(&lock(&self.world), |_, inode| {
            enumerate::file_content_hash(inode)
        })
    }
}
