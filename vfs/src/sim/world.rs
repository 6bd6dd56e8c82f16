//! The world's operations on file data and directories: writes and truncations into the
//! visible image (marking dirty sectors), syncs that make them durable (with fsyncgate's
//! forgetting on failure), directory syncs, and the profile's journal rules at a sync. What
//! survives a crash of it is `crash.rs`.

use super::*;

/// Writes `data` into `image` at `offset`, zero-filling any gap before it: the bytes past
/// the old end are appended, not zeroed and then overwritten.
pub(super) fn store_bytes(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
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
pub(super) fn copy_sector(to: &mut Vec<u8>, from: &[u8], sector: u64, sector_size: u64) {
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
    pub(super) fn new(seed: u64, config: FaultConfig) -> World {
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
    pub(super) fn begin(&mut self, op: OpKind, path: &Path, name: &str) -> Result<u64> {
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
    pub(super) fn log(
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
    pub(super) fn record_event(
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

    pub(super) fn dir(&self, op: &'static str, path: &Path, norm: &str) -> Result<&Dir> {
        self.dirs
            .get(norm)
            .ok_or_else(|| self.missing_dir_error(op, path, norm))
    }

    pub(super) fn missing_dir_error(&self, op: &'static str, path: &Path, norm: &str) -> VfsError {
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

    pub(super) fn lookup(&self, op: &'static str, path: &Path, norm: &str) -> Result<Option<Node>> {
        if norm.is_empty() {
            return Ok(Some(Node::Dir));
        }
        let (parent, name) = split(norm);
        let dir = self.dir(op, path, parent)?;
        Ok(dir.visible.get(name).copied())
    }

    pub(super) fn lookup_file(&self, op: &'static str, path: &Path, norm: &str) -> Result<InodeId> {
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

    pub(super) fn unlink_inode(&mut self, id: InodeId) {
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
    pub(super) fn inode(&mut self, id: InodeId) -> &mut Inode {
        Arc::make_mut(
            self.inodes
                .get_mut(&id)
                .expect("a live handle's inode exists until the next crash"),
        )
    }

    /// The inode, to read.
    pub(super) fn inode_ref(&self, id: InodeId) -> &Inode {
        self.inodes
            .get(&id)
            .expect("a live handle's inode exists until the next crash")
    }

    /// Checks ENOSPC for growing inode `id` by `growth` bytes.
    pub(super) fn check_space(&mut self, id: InodeId, growth: u64) -> bool {
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
    pub(super) fn write_checked(
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

    pub(super) fn set_len(&mut self, id: InodeId, len: u64) -> std::result::Result<(), FaultKind> {
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

    pub(super) fn sync(&mut self, id: InodeId) -> std::result::Result<(), FaultKind> {
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
        write_back(inode);
        let rules = self.config.profile.rules();
        if rules.sync_commits_metadata {
            self.commit_all_directories();
        } else if rules.sync_persists_names {
            self.persist_names_of(id);
        }
        Ok(())
    }

    /// A journal commit: every pending directory operation becomes durable.
    pub(super) fn commit_all_directories(&mut self) {
        let mut committed = Vec::new();
        for dir in self.dirs.values_mut() {
            if !dir.pending.is_empty() {
                dir.durable = dir.visible.clone();
                committed.append(&mut dir.pending);
            }
        }
        self.renames_made_durable(&committed);
    }

    /// Directory operations just made durable: under a profile whose replace-via-rename
    /// flushes data (`profile.rs`), each such rename's file is written back with it.
    fn renames_made_durable(&mut self, ops: &[PendingOp]) {
        if !self.config.profile.rules().rename_persists_data {
            return;
        }
        for pending in ops {
            if let (true, DirOp::Rename(_, _, Node::File(id))) = (pending.replaces, &pending.op) {
                if let Some(inode) = self.inodes.get_mut(id).map(Arc::make_mut) {
                    write_back(inode);
                }
            }
        }
    }

    /// btrfs's log tree at `fsync`: the pending operations naming inode `id` become
    /// durable, with the earlier pending operations on the same names (so that an unlink of
    /// a name the inode then took cannot land after it).
    pub(super) fn persist_names_of(&mut self, id: InodeId) {
        let mut persisted = Vec::new();
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
            persisted.extend(persist);
        }
        self.renames_made_durable(&persisted);
    }

    /// The next number in the filesystem's order of data writes and directory operations.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.write_seq += 1;
        self.write_seq
    }

    /// Records a directory operation in directory `dir` (which exists).
    pub(super) fn push_dir_op(&mut self, dir: &str, op: DirOp) {
        self.push_dir_op_replacing(dir, op, false);
    }

    /// Records a directory operation; `replaces` for a rename over an existing file.
    pub(super) fn push_dir_op_replacing(&mut self, dir: &str, op: DirOp, replaces: bool) {
        let seq = self.next_seq();
        self.dirs
            .get_mut(dir)
            .expect("the caller found the directory")
            .pending
            .push(PendingOp { seq, op, replaces });
    }

    pub(super) fn sync_dir(&mut self, norm: &str) -> std::result::Result<(), FaultKind> {
        let fail = self.rng.chance(self.config.sync_failure_rate);
        let journal = self.config.profile.rules().directory_order == DirectoryOrder::Journal;
        if fail && journal && self.dirs.contains_key(norm) {
            // A journal whose forced commit fails keeps a prefix of the whole journal, in
            // the filesystem's order, never one directory's operations ahead of another's.
            let mut order: Vec<u64> = self
                .dirs
                .values()
                .flat_map(|dir| dir.pending.iter().map(|pending| pending.seq))
                .collect();
            order.sort_unstable();
            let keep = self.rng.below(order.len() as u64 + 1) as usize;
            if let Some(&last) = keep.checked_sub(1).and_then(|index| order.get(index)) {
                let mut applied = Vec::new();
                for dir in self.dirs.values_mut() {
                    let count = dir.pending.iter().take_while(|p| p.seq <= last).count();
                    for pending in dir.pending.drain(..count) {
                        apply_dir_op(&mut dir.durable, &pending.op);
                        applied.push(pending);
                    }
                }
                self.renames_made_durable(&applied);
            }
            return Err(FaultKind::SyncFailure);
        }
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
                self.renames_made_durable(&applied);
                Err(FaultKind::SyncFailure)
            }
            None => {
                dir.durable = dir.visible.clone();
                let applied = std::mem::take(&mut dir.pending);
                self.renames_made_durable(&applied);
                // A journal forces every earlier operation of the filesystem with this one.
                if journal {
                    self.commit_all_directories();
                }
                Ok(())
            }
        }
    }
}

/// A successful sync's effect on a file: its durable image becomes what the process sees.
fn write_back(inode: &mut Inode) {
    if let Some(truncate) = inode.pending_truncate.take() {
        inode.durable.truncate(truncate as usize);
    }
    if !inode.dirty.is_empty() {
        // The durable image becomes the visible length: the dirty ranges' bytes, the old
        // durable bytes elsewhere, zeros past them. Written range by range (extending
        // rather than zero-filling first), then cut or padded to length.
        let visible_len = inode.visible.len();
        inode.durable.truncate(visible_len);
        // Room for the new length at once (amortised, as a log grows sync by sync), not a
        // doubling per range: the first sync of a new table copies every byte of it.
        inode.durable.reserve(visible_len - inode.durable.len());
        for &(start, end) in &inode.dirty_ranges {
            let start = (start as usize).min(visible_len);
            let end = (end as usize).min(visible_len);
            store_bytes(&mut inode.durable, start, &inode.visible[start..end]);
        }
        inode.durable.resize(visible_len, 0);
    }
    inode.dirty.clear();
    inode.dirty_ranges.clear();
}

pub(super) fn mark_dirty(inode: &mut Inode, start: u64, end: u64, seq: u64, sector_size: u64) {
    inode
        .dirty
        .mark(start / sector_size, (end - 1) / sector_size, seq);
    match inode.dirty_ranges.last_mut() {
        Some(last) if last.1 == start => last.1 = end,
        _ => inode.dirty_ranges.push((start, end)),
    }
}

pub(super) fn apply_dir_op(entries: &mut BTreeMap<Name, Node>, op: &DirOp) {
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
