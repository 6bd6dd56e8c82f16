//! The medium's own faults, after TigerBeetle's simulated storage
//! (`src/testing/storage.zig`): writes that go to the wrong place (misdirected) or nowhere
//! (lost), reads that return the wrong bytes (stale, or another sector's), and sectors that
//! become unreadable long after they were written (latent sector errors). The fault model at
//! the top of `mod.rs` states what each does; this file is how.
//!
//! Why inside `SimFs` and not a wrapper `Vfs` in Pebble's errorfs style: every one of them
//! needs what only the world holds. A lost write keeps the medium's old bytes, which are the
//! durable image; a stale read returns them; a misdirected write lands in another file's
//! durable image; the page cache that still holds a lost write dies with the power, which is
//! `crash()`; and a fault belongs in the one event log and counters of the run. So each
//! inode carries an [`InodeMedium`] (the byte ranges whose last write the medium lost, the
//! misdirected writes waiting for the sync that carries them off, the unreadable sectors),
//! `file.rs` calls in on every write, read and sync, and `SimFs::crash` around the crash.
//!
//! Determinism: every decision comes from a stream of its own, the world's seed on ChaCha
//! stream [`MEDIUM_STREAM`] (the crash model's stream is 0), and a decision is drawn only
//! while its fault's rate is non-zero. With the four rates at 0 nothing here draws, logs or
//! changes a byte, so every seed's trace is the one it was before these faults existed; and
//! turning one on moves none of the crash model's decisions.

use super::{join, FaultKind, InodeId, Node, OpKind, SimRng, World};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The ChaCha stream of the medium's decisions ("medium" in ASCII).
pub(super) const MEDIUM_STREAM: u64 = 0x6d65_6469_756d;

/// The world's medium: its random stream, and whether any inode holds medium state.
#[derive(Debug, Clone)]
pub(super) struct Medium {
    rng: SimRng,
    /// Set once any inode holds a lost range, a pending landing or a bad sector: until
    /// then (and always, with the rates at 0) every hook returns at once.
    in_use: bool,
}

impl Medium {
    pub(super) fn new(seed: u64) -> Medium {
        Medium {
            rng: SimRng::with_stream(seed, MEDIUM_STREAM),
            in_use: false,
        }
    }
}

/// One inode's state on the medium.
#[derive(Debug, Clone, Default)]
pub(super) struct InodeMedium {
    /// Byte ranges (sorted, disjoint) whose last write never reaches the medium: the next
    /// sync keeps the medium's old bytes there, a crash shows them.
    lost: Vec<(u64, u64)>,
    /// Misdirected writes of this file, landing elsewhere at its next successful sync.
    landings: Vec<Landing>,
    /// Sectors that fail every read (latent sector errors), by index.
    bad_sectors: BTreeSet<u64>,
}

/// Where a misdirected write's bytes land.
#[derive(Debug, Clone)]
struct Landing {
    target: InodeId,
    offset: u64,
    data: Vec<u8>,
}

/// What the medium makes of a read.
pub(super) enum MediumRead {
    /// The right bytes.
    Served,
    /// Other bytes, of the read's length, and the fault that gave them.
    Replaced(Vec<u8>, FaultKind),
    /// It touches an unreadable sector: EIO.
    Unreadable,
}

impl World {
    fn medium_is_idle(&self) -> bool {
        !self.medium.in_use
            && self.config.misdirected_write_rate == 0.0
            && self.config.lost_write_rate == 0.0
            && self.config.stale_read_rate == 0.0
            && self.config.latent_sector_rate == 0.0
    }

    /// A write (`write_checked`) as the medium takes it: returns the write's outcome and
    /// the medium fault it met, if any (the process sees the write whole either way).
    pub(super) fn write_to_medium(
        &mut self,
        id: InodeId,
        offset: u64,
        data: &[u8],
        may_run_out: bool,
    ) -> (std::result::Result<(), FaultKind>, Option<FaultKind>) {
        let outcome = self.write_checked(id, offset, data, may_run_out);
        if outcome.is_err() || data.is_empty() || self.medium_is_idle() {
            return (outcome, None);
        }
        let end = offset + data.len() as u64;
        let fault = if self.medium.rng.chance(self.config.misdirected_write_rate) {
            let landing = self.misdirect(id, offset, data);
            self.inode(id).medium.landings.extend(landing);
            Some(FaultKind::MisdirectedWrite)
        } else if self.medium.rng.chance(self.config.lost_write_rate) {
            Some(FaultKind::LostWrite)
        } else {
            None
        };
        if fault.is_some() {
            self.medium.in_use = true;
        }
        let medium = &mut self.inode(id).medium;
        match fault {
            Some(_) => add_range(&mut medium.lost, offset, end),
            // A later write that does reach the medium covers the lost bytes it rewrites.
            None => remove_range(&mut medium.lost, offset, end),
        }
        (outcome, fault)
    }

    /// Where a misdirected write lands: the same place within a sector, in another sector
    /// of this file or (half the time, when there is one) of another file with durable
    /// bytes; there, half the time at the very offset it was meant for (a mix-up of files,
    /// as a filesystem's block map may make), else in a random sector (a wrong address on
    /// the device). `None` when there is no other sector.
    fn misdirect(&mut self, id: InodeId, offset: u64, data: &[u8]) -> Option<Landing> {
        let sector_size = self.config.sector_size;
        let others: Vec<InodeId> = self
            .inodes
            .iter()
            .filter(|(other, inode)| **other != id && inode.linked && !inode.durable.is_empty())
            .map(|(other, _)| *other)
            .collect();
        let rng = &mut self.medium.rng;
        let (target, sector) = if !others.is_empty() && rng.chance(0.5) {
            let target = others[rng.below(others.len() as u64) as usize];
            let sectors = (self.inodes[&target].durable.len() as u64).div_ceil(sector_size);
            let sector = match rng.chance(0.5) {
                true => offset / sector_size,
                false => rng.below(sectors),
            };
            (target, sector)
        } else {
            let sectors = (self.inodes[&id].visible.len() as u64).div_ceil(sector_size);
            if sectors < 2 {
                return None;
            }
            (id, other_sector(rng, sectors, offset / sector_size))
        };
        Some(Landing {
            target,
            offset: sector * sector_size + offset % sector_size,
            data: data.to_vec(),
        })
    }

    /// A file's sync (`sync`) as the medium takes it: the lost ranges keep the medium's old
    /// bytes, the file's misdirected writes land, a bad sector rewritten heals, and perhaps
    /// a durable sector somewhere goes bad. `index` is the sync's operation index.
    pub(super) fn sync_to_medium(
        &mut self,
        id: InodeId,
        index: u64,
    ) -> std::result::Result<(), FaultKind> {
        if self.medium_is_idle() {
            return self.sync(id);
        }
        let Some(inode) = self.inodes.get_mut(&id).map(Arc::make_mut) else {
            return self.sync(id);
        };
        let lost = std::mem::take(&mut inode.medium.lost);
        let landings = std::mem::take(&mut inode.medium.landings);
        let rewritten = if inode.medium.bad_sectors.is_empty() {
            Vec::new()
        } else {
            inode.dirty_ranges.clone()
        };
        let durable_len = inode.durable.len() as u64;
        let kept: Vec<Vec<u8>> = lost
            .iter()
            .map(|&(start, end)| {
                inode.durable[start.min(durable_len) as usize..end.min(durable_len) as usize]
                    .to_vec()
            })
            .collect();
        let outcome = self.sync(id);
        let sector_size = self.config.sector_size;
        if let Some(inode) = self.inodes.get_mut(&id).map(Arc::make_mut) {
            // What reached the medium there is what it held: past its old end, zeros.
            for (&(start, end), old) in lost.iter().zip(&kept) {
                let stop = (end as usize).min(inode.durable.len());
                for at in start as usize..stop {
                    inode.durable[at] = old.get(at - start as usize).copied().unwrap_or(0);
                }
            }
            let len = inode.durable.len() as u64;
            inode.medium.bad_sectors.retain(|&sector| {
                let (from, to) = (sector * sector_size, (sector + 1) * sector_size);
                let healed = outcome.is_ok() && rewrites(&rewritten, &lost, from, to);
                from < len && !healed
            });
        }
        if outcome.is_ok() {
            for landing in landings {
                self.land(index, landing);
            }
        }
        self.maybe_spoil_a_sector(index);
        outcome
    }

    /// A misdirected write reaches the medium at the wrong place: the target's durable
    /// bytes change (not what the process reads: its page cache holds the old ones), and
    /// the file does not grow.
    fn land(&mut self, index: u64, landing: Landing) {
        let Some(inode) = self.inodes.get_mut(&landing.target).map(Arc::make_mut) else {
            return;
        };
        let start = landing.offset as usize;
        let end = (start + landing.data.len()).min(inode.durable.len());
        if start >= end {
            return;
        }
        inode.durable[start..end].copy_from_slice(&landing.data[..end - start]);
        let path = self.name_of(landing.target);
        // The write was counted when it went astray; this says where it arrived.
        self.log_uncounted(
            index,
            OpKind::Sync,
            &path,
            start as u64,
            (end - start) as u64,
            FaultKind::MisdirectedWrite,
        );
    }

    /// With `latent_sector_rate`, one durable sector of a random file becomes unreadable.
    fn maybe_spoil_a_sector(&mut self, index: u64) {
        if !self.medium.rng.chance(self.config.latent_sector_rate) {
            return;
        }
        let candidates: Vec<InodeId> = self
            .inodes
            .iter()
            .filter(|(_, inode)| inode.linked && !inode.durable.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let sector_size = self.config.sector_size;
        let rng = &mut self.medium.rng;
        let id = candidates[rng.below(candidates.len() as u64) as usize];
        let sectors = (self.inodes[&id].durable.len() as u64).div_ceil(sector_size);
        let sector = rng.below(sectors);
        self.inode(id).medium.bad_sectors.insert(sector);
        self.medium.in_use = true;
        let path = self.name_of(id);
        self.log(
            index,
            OpKind::Sync,
            &path,
            sector * sector_size,
            sector_size,
            Some(FaultKind::LatentSectorError),
            false,
        );
    }

    /// A read of visible bytes `start..end` as the medium serves it.
    pub(super) fn read_from_medium(&mut self, id: InodeId, start: usize, end: usize) -> MediumRead {
        if start >= end || self.medium_is_idle() {
            return MediumRead::Served;
        }
        let sector_size = self.config.sector_size;
        let Some(inode) = self.inodes.get(&id) else {
            return MediumRead::Served;
        };
        let (first, last) = (start as u64 / sector_size, (end as u64 - 1) / sector_size);
        // A sector written since the last sync is read from the page cache.
        let unreadable = inode
            .medium
            .bad_sectors
            .range(first..=last)
            .any(|&bad| !inode.dirty.sectors().any(|dirty| dirty == bad));
        if unreadable {
            return MediumRead::Unreadable;
        }
        let rng = &mut self.medium.rng;
        if !rng.chance(self.config.stale_read_rate) {
            return MediumRead::Served;
        }
        let right = &inode.visible[start..end];
        let mut bytes = right.to_vec();
        let fault = if rng.chance(0.5) {
            let durable_end = end.min(inode.durable.len());
            if start < durable_end {
                bytes[..durable_end - start].copy_from_slice(&inode.durable[start..durable_end]);
            }
            FaultKind::StaleRead
        } else {
            let sectors = (inode.visible.len() as u64).div_ceil(sector_size);
            if sectors < 2 {
                return MediumRead::Served;
            }
            let sector = other_sector(rng, sectors, first);
            let from = (sector * sector_size) as usize + start % sector_size as usize;
            for (at, byte) in bytes.iter_mut().enumerate() {
                *byte = inode.visible.get(from + at).copied().unwrap_or(0);
            }
            FaultKind::MisdirectedRead
        };
        if bytes == right {
            MediumRead::Served
        } else {
            MediumRead::Replaced(bytes, fault)
        }
    }

    /// The power cut as the medium takes it: the page cache dies, so the bytes of lost
    /// writes are the medium's old ones (the crash model then decides each sector as usual)
    /// and misdirected writes not yet synced go nowhere; bad sectors stay bad.
    pub(super) fn crash_with_medium(&mut self) {
        if self.medium.in_use {
            for inode in self.inodes.values_mut().map(Arc::make_mut) {
                inode.medium.landings.clear();
                for (start, end) in std::mem::take(&mut inode.medium.lost) {
                    let stop = (end as usize).min(inode.visible.len());
                    for at in start as usize..stop {
                        inode.visible[at] = inode.durable.get(at).copied().unwrap_or(0);
                    }
                }
            }
        }
        self.crash();
        if self.medium.in_use {
            let sector_size = self.config.sector_size;
            for inode in self.inodes.values_mut().map(Arc::make_mut) {
                let len = inode.durable.len() as u64;
                inode
                    .medium
                    .bad_sectors
                    .retain(|&sector| sector * sector_size < len);
            }
        }
    }

    /// The unreadable sectors, as `(path, sector offset)`, in path order.
    pub(super) fn unreadable_sectors(&self) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        for (id, inode) in &self.inodes {
            for &sector in &inode.medium.bad_sectors {
                found.push((self.name_of(*id), sector * self.config.sector_size));
            }
        }
        found.sort();
        found
    }

    /// A visible name of inode `id` (empty for an orphan).
    fn name_of(&self, id: InodeId) -> String {
        for (dir_name, dir) in &self.dirs {
            for (name, node) in &dir.visible {
                if *node == Node::File(id) {
                    return join(dir_name, name);
                }
            }
        }
        String::new()
    }

    /// Logs an event without counting a fault (the fault was counted at its decision).
    fn log_uncounted(
        &mut self,
        index: u64,
        op: OpKind,
        path: &str,
        offset: u64,
        len: u64,
        fault: FaultKind,
    ) {
        self.record_event(index, op, path, offset, len, Some(fault), false);
    }
}

/// A uniform sector of `0..sectors` other than `own` (`own < sectors`, `sectors >= 2`).
fn other_sector(rng: &mut SimRng, sectors: u64, own: u64) -> u64 {
    let drawn = rng.below(sectors - 1);
    if drawn >= own {
        drawn + 1
    } else {
        drawn
    }
}

/// Adds `start..end` to sorted disjoint `ranges`, merging what it touches.
fn add_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let (mut start, mut end) = (start, end);
    ranges.retain(|&(from, to)| {
        let touches = from <= end && start <= to;
        if touches {
            start = start.min(from);
            end = end.max(to);
        }
        !touches
    });
    let at = ranges.partition_point(|&(from, _)| from < start);
    ranges.insert(at, (start, end));
}

/// Takes `start..end` out of sorted disjoint `ranges`.
fn remove_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    if ranges.is_empty() {
        return;
    }
    let mut kept = Vec::with_capacity(ranges.len() + 1);
    for &(from, to) in ranges.iter() {
        if to <= start || end <= from {
            kept.push((from, to));
            continue;
        }
        if from < start {
            kept.push((from, start));
        }
        if end < to {
            kept.push((end, to));
        }
    }
    *ranges = kept;
}

/// Whether the byte ranges a sync wrote (`written`, less the `lost` ones) touch `from..to`.
fn rewrites(written: &[(u64, u64)], lost: &[(u64, u64)], from: u64, to: u64) -> bool {
    written.iter().any(|&(start, end)| {
        let mut part = vec![(start.max(from), end.min(to))];
        part.retain(|&(a, b)| a < b);
        for &(lost_start, lost_end) in lost {
            remove_range(&mut part, lost_start, lost_end);
        }
        !part.is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::{add_range, remove_range, rewrites};

    #[test]
    fn ranges_merge_and_split() {
        let mut ranges = Vec::new();
        add_range(&mut ranges, 10, 20);
        add_range(&mut ranges, 30, 40);
        add_range(&mut ranges, 0, 5);
        assert_eq!(ranges, vec![(0, 5), (10, 20), (30, 40)]);
        add_range(&mut ranges, 18, 30);
        assert_eq!(ranges, vec![(0, 5), (10, 40)]);
        remove_range(&mut ranges, 3, 12);
        assert_eq!(ranges, vec![(0, 3), (12, 40)]);
        remove_range(&mut ranges, 20, 25);
        assert_eq!(ranges, vec![(0, 3), (12, 20), (25, 40)]);
        remove_range(&mut ranges, 0, 100);
        assert!(ranges.is_empty());
    }

    #[test]
    fn a_sector_is_rewritten_only_by_bytes_that_reached_the_medium() {
        assert!(rewrites(&[(0, 10)], &[], 0, 512));
        assert!(!rewrites(&[(0, 10)], &[(0, 10)], 0, 512));
        assert!(rewrites(&[(0, 10)], &[(0, 5)], 0, 512));
        assert!(!rewrites(&[(600, 700)], &[], 0, 512));
    }
}
