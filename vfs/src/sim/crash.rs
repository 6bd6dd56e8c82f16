//! The power cut: what of the world survives `crash()`, under the profile's rules
//! (`profile.rs`) and the fault model at the top of `mod.rs`.
//!
//! Every decision a crash makes is asked of a [`Decide`]: the seeded RNG for sweeps, or an
//! enumerator (`enumerate.rs`) that walks every answer in turn, so that the same code builds
//! a random crash image and every crash image. Each question names what it decides
//! ([`Decision`]) so an enumeration can describe the image it built. The RNG answers the
//! questions of the `Classic` profile with exactly the draws SimFs made before there were
//! profiles, so no seed's trace moved.

use super::profile::{AppendedSize, DirectoryOrder, PersistenceRules};
use super::{
    apply_dir_op, copy_sector, join, FaultConfig, FaultKind, Inode, InodeId, Node, OpKind, SimRng,
    World,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One question a crash asks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decision<'a> {
    /// How many of a directory's pending operations survive (`below(pending + 1)`).
    DirectoryPrefix { dir: &'a str },
    /// Whether the `index`-th pending operation of a directory survives.
    DirectoryOperation { dir: &'a str, index: usize },
    /// How many of the filesystem's pending directory operations survive, in order.
    JournalPrefix,
    /// Whether an unsynced truncation of the file survives.
    Truncation { file: &'a str },
    /// How many dirty sectors survive, oldest write first (ordered writes).
    OrderedPrefix { file: &'a str },
    /// How many appended sectors survive, from the old end of the file on.
    AppendedPrefix { file: &'a str },
    /// Whether a dirty sector survives (unordered writes); `unchanged` when its new bytes
    /// are the ones the disk holds there already (zeros over zeros), so either answer builds
    /// the same image.
    SectorSurvives {
        file: &'a str,
        sector: u64,
        unchanged: bool,
    },
    /// Whether a sector at the edge of what survives is torn.
    SectorTorn { file: &'a str, sector: u64 },
    /// Where a torn sector's new bytes stop: an offset below the count asked for.
    TearPoint { file: &'a str, sector: u64 },
    /// What follows a tear: 0 zeros, 1 garbage, 2 the old bytes.
    TearFill { file: &'a str, sector: u64 },
    /// Whether the whole unsynced size survives, with zeros where no data landed.
    SizeAheadOfData { file: &'a str },
    /// The silent bit flip's decisions.
    BitFlip,
}

/// Where a crash's decisions come from.
pub(crate) trait Decide {
    /// A number in `0..count` (`count > 0`).
    fn below(&mut self, count: u64, what: Decision<'_>) -> u64;
    /// Yes with probability `probability`; an enumerator tries both when it is strictly
    /// between 0 and 1, and asks nothing otherwise.
    fn chance(&mut self, probability: f64, what: Decision<'_>) -> bool;
    /// Fills a torn sector's tail with garbage.
    fn garbage(&mut self, buf: &mut [u8]);

    /// Whether only the questions matter, not the image: files are left as they were
    /// (counting an enumeration's states).
    fn dry(&self) -> bool {
        false
    }

    /// Whether inode `id` has nothing unsynced, so that a crash leaves it as it is (and
    /// asks nothing of it). An enumeration answers for its copies of one world from what it
    /// found for the first.
    fn settled(&mut self, _id: InodeId, inode: &Arc<Inode>) -> bool {
        is_settled(inode)
    }
}

/// Whether a crash leaves the file as it is: nothing dirty, no truncation pending, named,
/// and the process sees what the disk holds (a failed sync may have forgotten dirty bytes).
pub(crate) fn is_settled(inode: &Inode) -> bool {
    inode.dirty.is_empty()
        && inode.pending_truncate.is_none()
        && inode.linked
        && inode.visible == inode.durable
}

impl Decide for SimRng {
    fn below(&mut self, count: u64, _: Decision<'_>) -> u64 {
        SimRng::below(self, count)
    }

    fn chance(&mut self, probability: f64, _: Decision<'_>) -> bool {
        SimRng::chance(self, probability)
    }

    fn garbage(&mut self, buf: &mut [u8]) {
        self.fill(buf);
    }
}

impl World {
    /// The machine loses power and restarts, its fate drawn from the seeded RNG.
    pub(super) fn crash(&mut self) {
        let mut rng = self.rng.clone();
        self.crash_deciding(&mut rng);
        self.rng = rng;
    }

    /// The machine loses power and restarts; `decide` answers every question.
    pub(super) fn crash_deciding(&mut self, decide: &mut dyn Decide) {
        self.epoch += 1;
        self.halted = false;
        // The processes died with their locks.
        self.locks.clear();
        self.crashes += 1;
        self.counters.record(FaultKind::Crash);
        let index = self.next_op;
        self.next_op += 1;
        self.log(
            index,
            OpKind::Crash,
            "",
            0,
            0,
            Some(FaultKind::Crash),
            false,
        );
        let rules = self.config.profile.rules();

        // 1. Directories: durable entries plus the pending operations the profile lets
        //    survive; a surviving rename may bring its file's data with it.
        let renamed_before = self.crash_directories(decide, &rules);

        // 2. What is reachable from the root survives; the rest is gone.
        let reachable_files = self.keep_reachable();

        // 3. File contents: durable bytes plus whatever unsynced sectors survive.
        let config = self.config.clone();
        let mut used = 0;
        let ids: Vec<InodeId> = self.inodes.keys().copied().collect();
        for id in ids {
            let mut torn = 0;
            let path = reachable_files.get(&id).cloned().unwrap_or_default();
            let Some(shared) = self.inodes.get_mut(&id) else {
                continue;
            };
            // A file with nothing unsynced comes back as it is (and asks nothing): left
            // shared with any copy of the world, it costs no copy.
            if decide.settled(id, shared) {
                used += shared.visible.len() as u64;
                continue;
            }
            let dry = decide.dry();
            let durable_len = shared.durable.len();
            // The durable bytes are the image's start: moved out of an inode no copy of the
            // world shares, copied from one that is shared.
            let durable = match Arc::get_mut(shared) {
                _ if dry => Vec::new(),
                Some(inode) => std::mem::take(&mut inode.durable),
                None => shared.durable.clone(),
            };
            let file = FileCrash {
                inode: shared,
                path: &path,
                config: &config,
                rules: &rules,
                renamed_before: renamed_before.get(&id).copied(),
                durable_len,
                dry,
            };
            let image = file.image(durable, decide, &mut torn);
            used += image.len() as u64;
            if !dry {
                *shared = Arc::new(shared.after_crash(image));
            }
            for _ in 0..torn {
                self.log(
                    index,
                    OpKind::Crash,
                    &path,
                    0,
                    0,
                    Some(FaultKind::TornWrite),
                    false,
                );
            }
        }
        self.used_bytes = used;

        // 4. A silent bit flip in durable data.
        if decide.chance(config.bitflip_rate, Decision::BitFlip) {
            self.flip_a_durable_bit(decide, index, &reachable_files);
        }
    }

    /// Applies the surviving pending directory operations; returns, per inode, the latest
    /// surviving rename of it (its sequence), when a rename persists data.
    fn crash_directories(
        &mut self,
        decide: &mut dyn Decide,
        rules: &PersistenceRules,
    ) -> BTreeMap<InodeId, u64> {
        let mut survivors: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        match rules.directory_order {
            DirectoryOrder::PerDirectoryPrefix => {
                for (name, dir) in &self.dirs {
                    let pending = dir.pending.len();
                    let keep = decide
                        .below(pending as u64 + 1, Decision::DirectoryPrefix { dir: name })
                        as usize;
                    survivors.insert(name.clone(), (0..pending).map(|i| i < keep).collect());
                }
            }
            DirectoryOrder::AnySubset => {
                for (name, dir) in &self.dirs {
                    let kept = (0..dir.pending.len())
                        .map(|index| {
                            decide.chance(0.5, Decision::DirectoryOperation { dir: name, index })
                        })
                        .collect();
                    survivors.insert(name.clone(), kept);
                }
            }
            DirectoryOrder::Journal => {
                let mut order: Vec<u64> = self
                    .dirs
                    .values()
                    .flat_map(|dir| dir.pending.iter().map(|op| op.seq))
                    .collect();
                order.sort_unstable();
                let keep = decide.below(order.len() as u64 + 1, Decision::JournalPrefix) as usize;
                let last_kept = keep.checked_sub(1).map(|i| order[i]);
                for (name, dir) in &self.dirs {
                    let kept = dir
                        .pending
                        .iter()
                        .map(|op| last_kept.is_some_and(|last| op.seq <= last))
                        .collect();
                    survivors.insert(name.clone(), kept);
                }
            }
        }
        let mut renamed_before = BTreeMap::new();
        for (name, dir) in self.dirs.iter_mut() {
            let kept = &survivors[name];
            let pending = std::mem::take(&mut dir.pending);
            for (op, &survives) in pending.iter().zip(kept) {
                if !survives {
                    continue;
                }
                apply_dir_op(&mut dir.durable, &op.op);
                // Only a rename over an existing file brings its data (replace-via-rename).
                if let (true, true, super::DirOp::Rename(_, _, Node::File(id))) =
                    (rules.rename_persists_data, op.replaces, &op.op)
                {
                    let latest: &mut u64 = renamed_before.entry(*id).or_default();
                    *latest = (*latest).max(op.seq);
                }
            }
            dir.visible = dir.durable.clone();
        }
        renamed_before
    }

    /// Drops every directory and file no longer reachable from the root; returns each
    /// surviving file's path.
    fn keep_reachable(&mut self) -> BTreeMap<InodeId, String> {
        let mut reachable_dirs = BTreeSet::new();
        let mut reachable_files: BTreeMap<InodeId, String> = BTreeMap::new();
        let mut stack = vec![String::new()];
        while let Some(dir_name) = stack.pop() {
            reachable_dirs.insert(dir_name.clone());
            let Some(dir) = self.dirs.get(&dir_name) else {
                continue;
            };
            for (name, node) in &dir.durable {
                let path = join(&dir_name, name);
                match node {
                    Node::Dir => {
                        if self.dirs.contains_key(&path) {
                            stack.push(path);
                        }
                    }
                    Node::File(id) => {
                        reachable_files.entry(*id).or_insert(path);
                    }
                }
            }
        }
        self.dirs.retain(|name, _| reachable_dirs.contains(name));
        // Entries naming a directory that no longer exists (it was never made durable in its
        // own parent chain) are dropped too.
        let existing: BTreeSet<String> = self.dirs.keys().cloned().collect();
        for (dir_name, dir) in self.dirs.iter_mut() {
            dir.durable.retain(|name, node| {
                *node != Node::Dir || existing.contains(&join(dir_name, name))
            });
            dir.visible = dir.durable.clone();
        }
        self.inodes.retain(|id, _| reachable_files.contains_key(id));
        reachable_files
    }

    fn flip_a_durable_bit(
        &mut self,
        decide: &mut dyn Decide,
        index: u64,
        reachable_files: &BTreeMap<InodeId, String>,
    ) {
        let candidates: Vec<InodeId> = self
            .inodes
            .iter()
            .filter(|(_, inode)| !inode.durable.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let id = candidates[decide.below(candidates.len() as u64, Decision::BitFlip) as usize];
        let len = self
            .inodes
            .get(&id)
            .map_or(0, |inode| inode.durable.len() as u64);
        let offset = decide.below(len, Decision::BitFlip);
        let bit = decide.below(8, Decision::BitFlip) as u8;
        if let Some(inode) = self.inodes.get_mut(&id).map(Arc::make_mut) {
            inode.durable[offset as usize] ^= 1 << bit;
            inode.visible[offset as usize] ^= 1 << bit;
        }
        let path = reachable_files.get(&id).cloned().unwrap_or_default();
        self.log(
            index,
            OpKind::Crash,
            &path,
            offset,
            1,
            Some(FaultKind::BitFlip),
            false,
        );
    }
}

/// A dirty sector and the sequence of its last write.
type SectorWrite = (u64, u64);

#[derive(Clone, Copy, PartialEq, Eq)]
enum SectorFate {
    Survives,
    Torn,
    Lost,
}

/// One file's part of a crash.
struct FileCrash<'a> {
    inode: &'a Inode,
    path: &'a str,
    config: &'a FaultConfig,
    rules: &'a PersistenceRules,
    /// The sequence of the latest surviving rename of this file, if it brings data along.
    renamed_before: Option<u64>,
    /// The length of the durable bytes (which the image starts from; moved out of an
    /// inode no copy shares, and never copied in a dry crash).
    durable_len: usize,
    /// Ask the questions, build no bytes.
    dry: bool,
}

impl FileCrash<'_> {
    /// What the file holds after the crash: its durable bytes (`durable`, taken out of the
    /// inode), a possibly undone truncation, and each dirty sector surviving, torn or lost.
    fn image(&self, durable: Vec<u8>, decide: &mut dyn Decide, torn_count: &mut u64) -> Vec<u8> {
        let file = self.path;
        let inode = self.inode;
        let mut image = durable;
        // The image's length before the sectors: the durable length, or a truncation's.
        // (Counted here, not read off `image`, which a dry crash leaves empty.)
        let mut base_len = self.durable_len;
        if inode.pending_truncate.is_some() && decide.chance(0.5, Decision::Truncation { file }) {
            let truncate = inode.pending_truncate.unwrap_or_default() as usize;
            image.truncate(truncate);
            base_len = base_len.min(truncate);
        }
        if inode.dirty.is_empty() {
            return image;
        }
        let sector_size = self.config.sector_size;
        let durable_len = base_len as u64;
        // Sectors a surviving rename brought along are decided already.
        let mut forced = Vec::new();
        let mut open: Vec<(u64, u64)> = Vec::with_capacity(inode.dirty.len());
        for (sector, seq) in inode.dirty.iter() {
            if self.renamed_before.is_some_and(|rename| seq < rename) {
                forced.push((sector, SectorFate::Survives));
            } else {
                open.push((sector, seq));
            }
        }
        let (appended, overwritten): (Vec<SectorWrite>, Vec<SectorWrite>) =
            match self.rules.appended_size {
                AppendedSize::Sectors => (Vec::new(), open),
                AppendedSize::WithData | AppendedSize::AheadOfData => open
                    .into_iter()
                    .partition(|&(sector, _)| sector * sector_size >= durable_len),
            };
        let mut fates = forced;
        self.decide_sectors(&overwritten, base_len, decide, &mut fates);
        let mut size_ahead = false;
        match self.rules.appended_size {
            AppendedSize::Sectors => {}
            AppendedSize::WithData => {
                // A prefix of the file's growth, whole: the size follows the data.
                let keep =
                    decide.below(appended.len() as u64 + 1, Decision::AppendedPrefix { file });
                for (rank, &(sector, _)) in appended.iter().enumerate() {
                    let fate = if (rank as u64) < keep {
                        SectorFate::Survives
                    } else {
                        SectorFate::Lost
                    };
                    fates.push((sector, fate));
                }
            }
            AppendedSize::AheadOfData => {
                self.decide_sectors(&appended, base_len, decide, &mut fates);
                size_ahead =
                    !appended.is_empty() && decide.chance(0.5, Decision::SizeAheadOfData { file });
            }
        }
        fates.sort_unstable_by_key(|&(sector, _)| sector);
        for (sector, fate) in fates {
            match fate {
                SectorFate::Lost => {}
                SectorFate::Survives if self.dry => {}
                SectorFate::Survives => {
                    copy_sector(&mut image, &inode.visible, sector, sector_size)
                }
                SectorFate::Torn => self.tear(&mut image, sector, decide, torn_count),
            }
        }
        if size_ahead && !self.dry && image.len() < inode.visible.len() {
            image.resize(inode.visible.len(), 0);
        }
        image
    }

    /// Decides the fate of `sectors` (`(sector, write sequence)` in sector order) by the
    /// write-order rule of the configuration.
    fn decide_sectors(
        &self,
        sectors: &[(u64, u64)],
        base_len: usize,
        decide: &mut dyn Decide,
        fates: &mut Vec<(u64, SectorFate)>,
    ) {
        if sectors.is_empty() {
            return;
        }
        let file = self.path;
        let torn_write_rate = self.config.torn_write_rate;
        if self.config.ordered_writes {
            let mut by_age: Vec<(u64, u64)> =
                sectors.iter().map(|&(sector, seq)| (seq, sector)).collect();
            by_age.sort_unstable();
            let cutoff =
                decide.below(by_age.len() as u64 + 1, Decision::OrderedPrefix { file }) as usize;
            for (rank, &(_, sector)) in by_age.iter().enumerate() {
                let fate = if rank < cutoff {
                    SectorFate::Survives
                } else if rank == cutoff
                    && decide.chance(torn_write_rate, Decision::SectorTorn { file, sector })
                {
                    SectorFate::Torn
                } else {
                    SectorFate::Lost
                };
                fates.push((sector, fate));
            }
        } else {
            // From the last sector down, so that each question knows how far the surviving
            // sectors above it already reach: a sector whose bytes the image shows anyway
            // (zeros in a hole, or the durable bytes) reads the same kept or lost.
            let mut extent = base_len;
            for &(sector, _) in sectors.iter().rev() {
                let unchanged = self.unchanged(sector, base_len, extent);
                let fate = if decide.chance(
                    self.config.unsynced_survival,
                    Decision::SectorSurvives {
                        file,
                        sector,
                        unchanged,
                    },
                ) {
                    SectorFate::Survives
                } else if decide.chance(torn_write_rate, Decision::SectorTorn { file, sector }) {
                    SectorFate::Torn
                } else {
                    SectorFate::Lost
                };
                if fate != SectorFate::Lost {
                    let end = ((sector + 1) * self.config.sector_size) as usize;
                    extent = extent.max(end.min(self.inode.visible.len()));
                }
                fates.push((sector, fate));
            }
        }
    }

    /// Whether the image shows the sector's new bytes even if the sector is lost: it lies
    /// within `extent` (how far the image reaches: `base_len` durable bytes, then the
    /// surviving sectors above it, zeros between) and its bytes are the durable ones, or
    /// zeros past `base_len`.
    fn unchanged(&self, sector: u64, base_len: usize, extent: usize) -> bool {
        let sector_size = self.config.sector_size as usize;
        let start = sector as usize * sector_size;
        let end = (start + sector_size).min(self.inode.visible.len());
        if start >= end || end > extent {
            return false;
        }
        let new = &self.inode.visible[start..end];
        let durable_end = base_len.clamp(start, end);
        // (An inode no copy shares lent its durable bytes to the image: then nothing is
        // known unchanged, which costs an enumeration nothing, as it never owns one.)
        let durable_matches = durable_end == start
            || self
                .inode
                .durable
                .get(start..durable_end)
                .is_some_and(|durable| new[..durable_end - start] == *durable);
        durable_matches && new[durable_end - start..].iter().all(|&byte| byte == 0)
    }

    /// A prefix of the sector's new bytes, then zeros, garbage or the old bytes.
    fn tear(
        &self,
        image: &mut Vec<u8>,
        sector: u64,
        decide: &mut dyn Decide,
        torn_count: &mut u64,
    ) {
        let file = self.path;
        let inode = self.inode;
        let sector_size = self.config.sector_size;
        let start = (sector * sector_size) as usize;
        let end = (((sector + 1) * sector_size) as usize).min(inode.visible.len());
        if start >= end {
            return;
        }
        *torn_count += 1;
        let cut = start
            + decide.below((end - start) as u64, Decision::TearPoint { file, sector }) as usize;
        let fill = decide.below(3, Decision::TearFill { file, sector });
        if self.dry {
            return;
        }
        // The sector as it was (zeros past the old end), from the cut on.
        let mut old = vec![0u8; end - cut];
        if let Some(before) = image.get(cut..end.min(image.len())) {
            old[..before.len()].copy_from_slice(before);
        }
        if image.len() < end {
            image.resize(end, 0);
        }
        image[start..cut].copy_from_slice(&inode.visible[start..cut]);
        match fill {
            0 => image[cut..end].fill(0),
            1 => decide.garbage(&mut image[cut..end]),
            _ => image[cut..end].copy_from_slice(&old),
        }
        if !self.rules.powersafe_overwrite {
            return;
        }
        // Powersafe overwrite: a torn write damages only the bytes it was writing. Bytes of
        // the sector not written since the last sync keep their old value.
        let mut written = vec![false; end - cut];
        for &(from, to) in &inode.dirty_ranges {
            let from = (from as usize).clamp(cut, end);
            let to = (to as usize).clamp(cut, end);
            written[from - cut..to - cut].fill(true);
        }
        for (i, _) in written.iter().enumerate().filter(|(_, &written)| !written) {
            image[cut + i] = old[i];
        }
    }
}
