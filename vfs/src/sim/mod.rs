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
mod path;
mod profile;

pub use enumerate::{CaptureAt, CrashPoint, CrashState, CrashStates, EnumerationOptions, Order};
pub use event::{Event, OpKind, StableHasher};
pub use fault::{FaultConfig, FaultCounters, FaultKind, SimRng};
pub use profile::{AppendedSize, DirectoryOrder, FsProfile, PersistenceRules};

use crate::{Result, Vfs, VfsError, VfsFile, VfsLock};
use dirty::DirtySectors;
use file::{SimFile, SimLock};
use path::{join, normalize, split};
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// Writes `data` into `image` at `offset`, zero-filling any gap before it: the bytes past
/// the old end are appended, not zeroed and then overwritten.
fn store_bytes(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    if offset >= image.len() {
        image.resize(offset, 0);
        image.extend_from_slice(data);
        return;
    }
    let inside = data.len().min(image.len() - offset);
    image[offset..offset + inside].copy_from_slice(&data[..inside]);
    image.extend_from_slice(&data[inside..]);
}

/// Copies sector `sector` of `from` into `to`, growing `to` with zeros if needed.
fn copy_sector(to: &mut Vec<u8>, from: &[u8], sector: u64, sector_size: u64) {
    let start = (sector * sector_size) as usize;
    let end = (((sector + 1) * sector_size) as usize).min(from.len());
    if start >= end {
        return;
    }
    if to.len() < end {
        to.resize(end, 0);
    }
    to[start..end].copy_from_slice(&from[start..end]);
}

impl World {
    fn new(seed: u64, config: FaultConfig) -> World {
        let mut dirs = BTreeMap::new();
        dirs.insert(String::new(), Dir::default());
        World {
            config,
            rng: SimRng::new(seed),
            epoch: 0,
            next_op: 0,
            halted: false,
            inodes: BTreeMap::new(),
            next_inode: 1,
            dirs,
            write_seq: 0,
            used_bytes: 0,
            record_events: false,
            events: Vec::new(),
            hasher: StableHasher::default(),
            counters: FaultCounters::default(),
            crashes: 0,
            locks: BTreeMap::new(),
            next_lock: 1,
            capture: None,
            captures: Vec::new(),
            medium: medium::Medium::new(seed),
        }
    }

    /// Starts an operation: assigns its index, or fails if the machine is halted (or halts
    /// it now, if this is the scheduled crash point).
    fn begin(&mut self, op: OpKind, path: &Path, name: &str) -> Result<u64> {
        let index = self.next_op;
        self.next_op += 1;
        if self.halted {
            return Err(VfsError::new(
                op.name(),
                path,
                ErrorKind::Other,
                "machine halted (simulated crash)",
            ));
        }
        if self.config.crash_at_op == Some(index) {
            self.halted = true;
            self.log(index, op, name, 0, 0, Some(FaultKind::Crash), true);
            return Err(VfsError::new(
                op.name(),
                path,
                ErrorKind::Other,
                "machine halted (simulated crash)",
            ));
        }
        self.maybe_capture(index, op, name);
        Ok(index)
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &mut self,
        index: u64,
        op: OpKind,
        path: &str,
        offset: u64,
        len: u64,
        fault: Option<FaultKind>,
        failed: bool,
    ) {
        if let Some(kind) = fault {
            if kind != FaultKind::Crash {
                self.counters.record(kind);
            }
        }
        self.record_event(index, op, path, offset, len, fault, failed);
    }

    /// Hashes an event and keeps it if events are kept; counts no fault.
    #[allow(clippy::too_many_arguments)]
    fn record_event(
        &mut self,
        index: u64,
        op: OpKind,
        path: &str,
        offset: u64,
        len: u64,
        fault: Option<FaultKind>,
        failed: bool,
    ) {
        // Hashed from the parts: the event itself (its path an allocation) is built only
        // when events are kept.
        self.hasher
            .write_event_parts(index, op, path, offset, len, fault, failed);
        if self.record_events {
            self.events.push(Event {
                index,
                op,
                path: Arc::from(path),
                offset,
                len,
                fault,
                failed,
            });
        }
    }

    fn dir(&self, op: &'static str, path: &Path, norm: &str) -> Result<&Dir> {
        self.dirs
            .get(norm)
            .ok_or_else(|| self.missing_dir_error(op, path, norm))
    }

    fn missing_dir_error(&self, op: &'static str, path: &Path, norm: &str) -> VfsError {
        let (parent, name) = split(norm);
        let is_file = self
            .dirs
            .get(parent)
            .is_some_and(|dir| matches!(dir.visible.get(name), Some(Node::File(_))));
        if is_file {
            VfsError::new(op, path, ErrorKind::NotADirectory, "not a directory")
        } else {
            VfsError::new(op, path, ErrorKind::NotFound, "no such directory")
        }
    }

    fn lookup(&self, op: &'static str, path: &Path, norm: &str) -> Result<Option<Node>> {
        if norm.is_empty() {
            return Ok(Some(Node::Dir));
        }
        let (parent, name) = split(norm);
        let dir = self.dir(op, path, parent)?;
        Ok(dir.visible.get(name).copied())
    }

    fn lookup_file(&self, op: &'static str, path: &Path, norm: &str) -> Result<InodeId> {
        match self.lookup(op, path, norm)? {
            Some(Node::File(id)) => Ok(id),
            Some(Node::Dir) => Err(VfsError::new(
                op,
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            )),
            None => Err(VfsError::new(op, path, ErrorKind::NotFound, "no such file")),
        }
    }

    fn unlink_inode(&mut self, id: InodeId) {
        // An inode can have two names after a crash undid half of a cross-directory rename;
        // its bytes are counted once, so they are released once.
        if self.inodes.get(&id).is_some_and(|inode| inode.linked) {
            let inode = self.inode(id);
            inode.linked = false;
            let len = inode.visible.len() as u64;
            self.used_bytes -= len;
        }
    }

    /// The inode, to change (copied first if a copy of the world shares it).
    fn inode(&mut self, id: InodeId) -> &mut Inode {
        Arc::make_mut(
            self.inodes
                .get_mut(&id)
                .expect("a live handle's inode exists until the next crash"),
        )
    }

    /// The inode, to read.
    fn inode_ref(&self, id: InodeId) -> &Inode {
        self.inodes
            .get(&id)
            .expect("a live handle's inode exists until the next crash")
    }

    /// Checks ENOSPC for growing inode `id` by `growth` bytes.
    fn check_space(&mut self, id: InodeId, growth: u64) -> bool {
        if self.rng.chance(self.config.enospc_rate) {
            return false;
        }
        let linked = self.inodes.get(&id).is_some_and(|inode| inode.linked);
        match self.config.capacity_bytes {
            Some(capacity) if linked && growth > 0 => self.used_bytes + growth <= capacity,
            _ => true,
        }
    }

    /// A write; with `may_run_out` false (a store into allocated space, `write_mapped`) it
    /// never fails for space.
    fn write_checked(
        &mut self,
        id: InodeId,
        offset: u64,
        data: &[u8],
        may_run_out: bool,
    ) -> std::result::Result<(), FaultKind> {
        if data.is_empty() {
            // Like `pwrite` of 0 bytes (and `RealFs`): nothing is written, the file does not grow.
            return Ok(());
        }
        let old_len = self
            .inodes
            .get(&id)
            .map_or(0, |inode| inode.visible.len() as u64);
        let end = offset + data.len() as u64;
        let growth = end.saturating_sub(old_len);
        if may_run_out && !self.check_space(id, growth) {
            return Err(FaultKind::NoSpace);
        }
        self.write_seq += 1;
        let seq = self.write_seq;
        let sector_size = self.config.sector_size;
        let inode = self.inode(id);
        store_bytes(&mut inode.visible, offset as usize, data);
        // A write past the end also writes the gap (zeros): it is dirty like the data, so that
        // a sync persists the new length even if a later truncation drops the data's sectors.
        mark_dirty(inode, offset.min(old_len), end, seq, sector_size);
        if inode.linked {
            self.used_bytes += growth;
        }
        Ok(())
    }

    fn set_len(&mut self, id: InodeId, len: u64) -> std::result::Result<(), FaultKind> {
        let old_len = self
            .inodes
            .get(&id)
            .map_or(0, |inode| inode.visible.len() as u64);
        if len > old_len && !self.check_space(id, len - old_len) {
            return Err(FaultKind::NoSpace);
        }
        self.write_seq += 1;
        let seq = self.write_seq;
        let sector_size = self.config.sector_size;
        let inode = self.inode(id);
        let linked = inode.linked;
        if len < old_len {
            inode.visible.truncate(len as usize);
            let keep_below = len.div_ceil(sector_size);
            inode.dirty.keep_below(keep_below);
            if len < inode.durable.len() as u64 {
                inode.pending_truncate = Some(inode.pending_truncate.map_or(len, |t| t.min(len)));
            }
            if linked {
                self.used_bytes -= old_len - len;
            }
        } else if len > old_len {
            inode.visible.resize(len as usize, 0);
            mark_dirty(inode, old_len, len, seq, sector_size);
            if linked {
                self.used_bytes += len - old_len;
            }
        }
        Ok(())
    }

    fn sync(&mut self, id: InodeId) -> std::result::Result<(), FaultKind> {
        let fail = self.rng.chance(self.config.sync_failure_rate);
        let sector_size = self.config.sector_size;
        let Some(inode) = self.inodes.get_mut(&id).map(Arc::make_mut) else {
            return Ok(());
        };
        if fail {
            // fsyncgate: some, all or none of the dirty data reaches the disk, and the
            // kernel then forgets the rest was ever dirty.
            if let Some(truncate) = inode.pending_truncate {
                if self.rng.chance(0.5) {
                    inode.durable.truncate(truncate as usize);
                }
            }
            for sector in inode.dirty.sectors() {
                if self.rng.chance(0.5) {
                    copy_sector(&mut inode.durable, &inode.visible, sector, sector_size);
                }
            }
            inode.dirty.clear();
            inode.dirty_ranges.clear();
            inode.pending_truncate = None;
            return Err(FaultKind::SyncFailure);
        }
        if let Some(truncate) = inode.pending_truncate.take() {
            inode.durable.truncate(truncate as usize);
        }
        if !inode.dirty.is_empty() {
            // The durable image becomes the visible length: the dirty ranges' bytes, the old
            // durable bytes elsewhere, zeros past them. Written range by range (extending
            // rather than zero-filling first), then cut or padded to length.
            let visible_len = inode.visible.len();
            inode.durable.truncate(visible_len);
            for &(start, end) in &inode.dirty_ranges {
                let start = (start as usize).min(visible_len);
                let end = (end as usize).min(visible_len);
                store_bytes(&mut inode.durable, start, &inode.visible[start..end]);
            }
            inode.durable.resize(visible_len, 0);
        }
        inode.dirty.clear();
        inode.dirty_ranges.clear();
        let rules = self.config.profile.rules();
        if rules.sync_commits_metadata {
            self.commit_all_directories();
        } else if rules.sync_persists_names {
            self.persist_names_of(id);
        }
        Ok(())
    }

    /// A journal commit: every pending directory operation becomes durable.
    fn commit_all_directories(&mut self) {
        for dir in self.dirs.values_mut() {
            if !dir.pending.is_empty() {
                dir.durable = dir.visible.clone();
                dir.pending.clear();
            }
        }
    }

    /// btrfs's log tree at `fsync`: the pending operations naming inode `id` become
    /// durable, with the earlier pending operations on the same names (so that an unlink of
    /// a name the inode then took cannot land after it).
    fn persist_names_of(&mut self, id: InodeId) {
        for dir in self.dirs.values_mut() {
            let names: BTreeSet<Name> = dir
                .pending
                .iter()
                .filter(|pending| pending.op.node() == Some(Node::File(id)))
                .flat_map(|pending| pending.op.names())
                .collect();
            if names.is_empty() {
                continue;
            }
            let (persist, keep): (Vec<PendingOp>, Vec<PendingOp>) =
                std::mem::take(&mut dir.pending)
                    .into_iter()
                    .partition(|pending| pending.op.names().any(|name| names.contains(&name)));
            for pending in &persist {
                apply_dir_op(&mut dir.durable, &pending.op);
            }
            dir.pending = keep;
        }
    }

    /// The next number in the filesystem's order of data writes and directory operations.
    fn next_seq(&mut self) -> u64 {
        self.write_seq += 1;
        self.write_seq
    }

    /// Records a directory operation in directory `dir` (which exists).
    fn push_dir_op(&mut self, dir: &str, op: DirOp) {
        let seq = self.next_seq();
        self.dirs
            .get_mut(dir)
            .expect("the caller found the directory")
            .pending
            .push(PendingOp { seq, op });
    }

    fn sync_dir(&mut self, norm: &str) -> std::result::Result<(), FaultKind> {
        let fail = self.rng.chance(self.config.sync_failure_rate);
        let keep = if fail {
            let pending = self
                .dirs
                .get(norm)
                .map_or(0, |dir| dir.pending.len() as u64);
            Some(self.rng.below(pending + 1) as usize)
        } else {
            None
        };
        let Some(dir) = self.dirs.get_mut(norm) else {
            return Ok(());
        };
        match keep {
            Some(count) => {
                let applied: Vec<PendingOp> = dir.pending.drain(..count).collect();
                for pending in &applied {
                    apply_dir_op(&mut dir.durable, &pending.op);
                }
                Err(FaultKind::SyncFailure)
            }
            None => {
                dir.durable = dir.visible.clone();
                dir.pending.clear();
                // A journal forces every earlier operation of the filesystem with this one.
                if self.config.profile.rules().directory_order == DirectoryOrder::Journal {
                    self.commit_all_directories();
                }
                Ok(())
            }
        }
    }
}

fn mark_dirty(inode: &mut Inode, start: u64, end: u64, seq: u64, sector_size: u64) {
    inode
        .dirty
        .mark(start / sector_size, (end - 1) / sector_size, seq);
    match inode.dirty_ranges.last_mut() {
        Some(last) if last.1 == start => last.1 = end,
        _ => inode.dirty_ranges.push((start, end)),
    }
}

fn apply_dir_op(entries: &mut BTreeMap<Name, Node>, op: &DirOp) {
    match op {
        DirOp::Link(name, node) => {
            entries.insert(name.clone(), *node);
        }
        DirOp::Unlink(name) => {
            entries.remove(name);
        }
        DirOp::Rename(from, to, node) => {
            entries.remove(from);
            entries.insert(to.clone(), *node);
        }
    }
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

    fn open_handle(
        &self,
        op: OpKind,
        path: &Path,
        writable: bool,
        create: bool,
    ) -> Result<Box<dyn VfsFile>> {
        let mut world = lock(&self.world);
        let norm = normalize(op.name(), path)?;
        let index = world.begin(op, path, &norm)?;
        let result = if create {
            Self::create_inode(&mut world, path, &norm)
        } else {
            world.lookup_file(op.name(), path, &norm)
        };
        world.log(index, op, &norm, 0, 0, None, result.is_err());
        let inode = result?;
        Ok(Box::new(SimFile {
            world: Arc::clone(&self.world),
            inode,
            path: path.to_path_buf(),
            name: Arc::from(norm.as_str()),
            epoch: world.epoch,
            writable,
        }))
    }

    fn create_inode(world: &mut World, path: &Path, norm: &str) -> Result<InodeId> {
        let (parent, name) = split(norm);
        if name.is_empty() {
            return Err(VfsError::new(
                "create",
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        match world
            .dir("create", path, parent)?
            .visible
            .get(name)
            .copied()
        {
            Some(Node::Dir) => Err(VfsError::new(
                "create",
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            )),
            Some(Node::File(id)) => {
                world.set_len(id, 0).map_err(|_| {
                    VfsError::new("create", path, ErrorKind::Other, "truncate failed")
                })?;
                Ok(id)
            }
            None => {
                let id = world.next_inode;
                world.next_inode += 1;
                world.inodes.insert(
                    id,
                    Arc::new(Inode {
                        linked: true,
                        ..Inode::default()
                    }),
                );
                let dir = world.dirs.get_mut(parent).expect("checked above");
                let name = Name::from(name);
                dir.visible.insert(Name::clone(&name), Node::File(id));
                world.push_dir_op(parent, DirOp::Link(name, Node::File(id)));
                Ok(id)
            }
        }
    }

    fn create_one_dir(world: &mut World, path: &Path, norm: &str) -> Result<()> {
        let (parent, name) = split(norm);
        if name.is_empty()
            || world
                .dir("create_dir", path, parent)?
                .visible
                .contains_key(name)
        {
            return Err(VfsError::new(
                "create_dir",
                path,
                ErrorKind::AlreadyExists,
                "already exists",
            ));
        }
        let dir = world.dirs.get_mut(parent).expect("checked above");
        let name = Name::from(name);
        dir.visible.insert(Name::clone(&name), Node::Dir);
        world.push_dir_op(parent, DirOp::Link(name, Node::Dir));
        world.dirs.insert(norm.to_string(), Dir::default());
        Ok(())
    }
}

impl Vfs for SimFs {
    fn create(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.open_handle(OpKind::Create, path, true, true)
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.open_handle(OpKind::Open, path, false, false)
    }

    fn open_write(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.open_handle(OpKind::Open, path, true, false)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let from_norm = normalize("rename", from)?;
        let to_norm = normalize("rename", to)?;
        let index = world.begin(OpKind::Rename, from, &from_norm)?;
        let result = Self::rename_locked(&mut world, from, &from_norm, to, &to_norm);
        world.log(
            index,
            OpKind::Rename,
            &from_norm,
            0,
            0,
            None,
            result.is_err(),
        );
        result
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("remove", path)?;
        let index = world.begin(OpKind::Remove, path, &norm)?;
        let result = world.lookup_file("remove", path, &norm).map(|id| {
            let (parent, name) = split(&norm);
            let dir = world.dirs.get_mut(parent).expect("lookup found the parent");
            dir.visible.remove(name);
            world.push_dir_op(parent, DirOp::Unlink(Name::from(name)));
            world.unlink_inode(id);
        });
        world.log(index, OpKind::Remove, &norm, 0, 0, None, result.is_err());
        result
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut world = lock(&self.world);
        let norm = normalize("list", dir)?;
        let index = world.begin(OpKind::List, dir, &norm)?;
        let result = world.dir("list", dir, &norm).map(|entries| {
            entries
                .visible
                .keys()
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        });
        world.log(index, OpKind::List, &norm, 0, 0, None, result.is_err());
        result
    }

    fn create_dir(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("create_dir", path)?;
        let index = world.begin(OpKind::CreateDir, path, &norm)?;
        let result = Self::create_one_dir(&mut world, path, &norm);
        world.log(index, OpKind::CreateDir, &norm, 0, 0, None, result.is_err());
        result
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("create_dir", path)?;
        let index = world.begin(OpKind::CreateDir, path, &norm)?;
        let mut result = Ok(());
        let mut prefix = String::new();
        for component in norm.split('/').filter(|c| !c.is_empty()) {
            prefix = join(&prefix, component);
            match world.lookup("create_dir", path, &prefix) {
                Ok(Some(Node::Dir)) => continue,
                Ok(Some(Node::File(_))) => {
                    // Like mkdir(2): EEXIST for the last component, ENOTDIR before it.
                    result = Err(if prefix == norm {
                        VfsError::new(
                            "create_dir",
                            path,
                            ErrorKind::AlreadyExists,
                            "a file is in the way",
                        )
                    } else {
                        VfsError::new(
                            "create_dir",
                            path,
                            ErrorKind::NotADirectory,
                            "a file is in the way",
                        )
                    });
                    break;
                }
                Ok(None) => {
                    if let Err(e) = Self::create_one_dir(&mut world, path, &prefix) {
                        result = Err(e);
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        world.log(index, OpKind::CreateDir, &norm, 0, 0, None, result.is_err());
        result
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let mut world = lock(&self.world);
        let norm = normalize("exists", path)?;
        let index = world.begin(OpKind::Exists, path, &norm)?;
        let found = world.lookup("exists", path, &norm).ok().flatten().is_some();
        world.log(index, OpKind::Exists, &norm, 0, 0, None, false);
        Ok(found)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("sync_dir", dir)?;
        let index = world.begin(OpKind::SyncDir, dir, &norm)?;
        if let Err(e) = world.dir("sync_dir", dir, &norm) {
            world.log(index, OpKind::SyncDir, &norm, 0, 0, None, true);
            return Err(e);
        }
        let result = world.sync_dir(&norm);
        let fault = result.err();
        world.log(index, OpKind::SyncDir, &norm, 0, 0, fault, fault.is_some());
        match fault {
            None => Ok(()),
            Some(_) => Err(VfsError::new(
                "sync_dir",
                dir,
                ErrorKind::Other,
                "EIO (injected): directory fsync failed",
            )),
        }
    }

    /// A lock is process state, not disk state: it creates no file, is not an operation
    /// (it takes no index, so adding it shifted no seed's fault decisions), and a crash
    /// releases it. A halted machine refuses it like any other call.
    fn lock(&self, path: &Path) -> Result<Box<dyn VfsLock>> {
        let mut world = lock(&self.world);
        let norm = normalize("lock", path)?;
        if world.halted {
            return Err(VfsError::new(
                "lock",
                path,
                ErrorKind::Other,
                "machine halted (simulated crash point)",
            ));
        }
        let (parent, _) = split(&norm);
        world.dir("lock", path, parent)?;
        if world.locks.contains_key(&norm) {
            return Err(VfsError::new(
                "lock",
                path,
                ErrorKind::WouldBlock,
                "held by another open handle",
            ));
        }
        let id = world.next_lock;
        world.next_lock += 1;
        world.locks.insert(norm.clone(), id);
        Ok(Box::new(SimLock {
            world: Arc::clone(&self.world),
            path: norm,
            id,
        }))
    }
}

impl SimFs {
    fn rename_locked(
        world: &mut World,
        from: &Path,
        from_norm: &str,
        to: &Path,
        to_norm: &str,
    ) -> Result<()> {
        let id = match world.lookup("rename", from, from_norm)? {
            Some(Node::File(id)) => id,
            Some(Node::Dir) => {
                return Err(VfsError::new(
                    "rename",
                    from,
                    ErrorKind::Unsupported,
                    "SimFs renames files only",
                ))
            }
            None => {
                return Err(VfsError::new(
                    "rename",
                    from,
                    ErrorKind::NotFound,
                    "no such file",
                ))
            }
        };
        let replaced = match world.lookup("rename", to, to_norm)? {
            Some(Node::Dir) => {
                return Err(VfsError::new(
                    "rename",
                    to,
                    ErrorKind::IsADirectory,
                    "target is a directory",
                ))
            }
            Some(Node::File(old)) => Some(old),
            None => None,
        };
        if from_norm == to_norm {
            return Ok(());
        }
        if let Some(old) = replaced {
            world.unlink_inode(old);
        }
        let (from_parent, from_name) = split(from_norm);
        let (to_parent, to_name) = split(to_norm);
        let node = Node::File(id);
        if from_parent == to_parent {
            let dir = world
                .dirs
                .get_mut(from_parent)
                .expect("lookup found the parent");
            dir.visible.remove(from_name);
            let to_name = Name::from(to_name);
            dir.visible.insert(Name::clone(&to_name), node);
            world.push_dir_op(
                from_parent,
                DirOp::Rename(Name::from(from_name), to_name, node),
            );
        } else {
            let source = world
                .dirs
                .get_mut(from_parent)
                .expect("lookup found the parent");
            source.visible.remove(from_name);
            world.push_dir_op(from_parent, DirOp::Unlink(Name::from(from_name)));
            let target = world
                .dirs
                .get_mut(to_parent)
                .expect("lookup found the parent");
            let to_name = Name::from(to_name);
            target.visible.insert(Name::clone(&to_name), node);
            world.push_dir_op(to_parent, DirOp::Link(to_name, node));
        }
        Ok(())
    }
}
