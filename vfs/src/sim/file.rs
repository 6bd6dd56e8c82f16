//! Handles of the simulated filesystem: open files and held locks. Every call locks the
//! world, checks that the handle outlived no crash (a crash kills the process that held it),
//! takes an operation index, and logs one event.

use super::medium::MediumRead;
use super::{lock, FaultKind, InodeId, OpKind, World};
use crate::{Result, VfsError, VfsFile, VfsLock};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A held [`SimFs`] lock. Dropping it releases the lock, unless a crash already did (and
/// someone else may hold it now).
pub(super) struct SimLock {
    pub(super) world: Arc<Mutex<World>>,
    pub(super) path: String,
    pub(super) id: u64,
}

impl std::fmt::Debug for SimLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimLock({})", self.path)
    }
}

impl VfsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut world = lock(&self.world);
        if world.locks.get(&self.path) == Some(&self.id) {
            world.locks.remove(&self.path);
        }
    }
}

/// An open file of the simulated filesystem.
pub(super) struct SimFile {
    pub(super) world: Arc<Mutex<World>>,
    pub(super) inode: InodeId,
    pub(super) path: PathBuf,
    pub(super) name: Arc<str>,
    pub(super) epoch: u64,
    pub(super) writable: bool,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimFile({})", self.path.display())
    }
}

impl SimFile {
    /// Locks the world and checks that this handle is usable for `op`.
    fn enter(&self, op: OpKind, needs_write: bool) -> Result<(MutexGuard<'_, World>, u64)> {
        let mut world = lock(&self.world);
        if world.epoch != self.epoch {
            return Err(VfsError::new(
                op.name(),
                &self.path,
                ErrorKind::Other,
                "handle opened before a crash",
            ));
        }
        if needs_write && !self.writable {
            return Err(VfsError::new(
                op.name(),
                &self.path,
                ErrorKind::PermissionDenied,
                "file opened read-only",
            ));
        }
        let index = world.begin(op, &self.path, &self.name)?;
        Ok((world, index))
    }

    fn fault_error(&self, op: OpKind, fault: FaultKind) -> VfsError {
        match fault {
            FaultKind::NoSpace => VfsError::new(
                op.name(),
                &self.path,
                ErrorKind::StorageFull,
                "ENOSPC (injected): no space left on device",
            ),
            FaultKind::SyncFailure => VfsError::new(
                op.name(),
                &self.path,
                ErrorKind::Other,
                "EIO (injected): fsync failed, dirty data may be lost",
            ),
            _ => VfsError::new(
                op.name(),
                &self.path,
                ErrorKind::Other,
                format!("EIO (injected): {fault}"),
            ),
        }
    }

    fn finish(
        &self,
        mut world: MutexGuard<'_, World>,
        index: u64,
        op: OpKind,
        offset: u64,
        len: u64,
        outcome: std::result::Result<(), FaultKind>,
    ) -> Result<()> {
        let fault = outcome.err();
        world.log(index, op, &self.name, offset, len, fault, fault.is_some());
        drop(world);
        outcome.map_err(|fault| self.fault_error(op, fault))
    }
}

impl SimFile {
    /// Logs the medium fault a write met (the write itself succeeded; its own event
    /// follows).
    fn log_medium_fault(
        &self,
        world: &mut World,
        index: u64,
        op: OpKind,
        offset: u64,
        len: usize,
        fault: Option<FaultKind>,
    ) {
        if let Some(fault) = fault {
            world.log(
                index,
                op,
                &self.name,
                offset,
                len as u64,
                Some(fault),
                false,
            );
        }
    }

    /// Logs a read that `fault` failed, and returns its error.
    fn failed_read(
        &self,
        world: MutexGuard<'_, World>,
        index: u64,
        offset: u64,
        len: usize,
        fault: FaultKind,
    ) -> Result<usize> {
        self.finish(world, index, OpKind::Read, offset, len as u64, Err(fault))
            .map(|()| 0)
    }

    /// One read operation of up to `len` bytes at `offset`: hands the bytes there (fewer at
    /// the end of the file) to `take`, and returns how many; or fails (an injected EIO).
    fn read_with(&self, offset: u64, len: usize, take: impl FnOnce(&[u8])) -> Result<usize> {
        let (mut world, index) = self.enter(OpKind::Read, false)?;
        let read_error_rate = world.config.read_error_rate;
        if world.rng.chance(read_error_rate) {
            return self.failed_read(world, index, offset, len, FaultKind::ReadError);
        }
        let visible_len = world.inode_ref(self.inode).visible.len();
        let start = (offset as usize).min(visible_len);
        let end = (start + len).min(visible_len);
        let read = end - start;
        match world.read_from_medium(self.inode, start, end) {
            MediumRead::Served => take(&world.inode_ref(self.inode).visible[start..end]),
            MediumRead::Replaced(bytes, fault) => {
                let name = &self.name;
                world.log(
                    index,
                    OpKind::Read,
                    name,
                    offset,
                    read as u64,
                    Some(fault),
                    false,
                );
                take(&bytes);
            }
            MediumRead::Unreadable => {
                return self.failed_read(world, index, offset, len, FaultKind::UnreadableSector);
            }
        }
        self.finish(world, index, OpKind::Read, offset, read as u64, Ok(()))?;
        Ok(read)
    }

    /// One write operation: `write_at`, or with `may_run_out` false a mapped store.
    fn store(&self, offset: u64, data: &[u8], may_run_out: bool) -> Result<()> {
        let (mut world, index) = self.enter(OpKind::Write, true)?;
        let (outcome, fault) = world.write_to_medium(self.inode, offset, data, may_run_out);
        self.log_medium_fault(&mut world, index, OpKind::Write, offset, data.len(), fault);
        self.finish(
            world,
            index,
            OpKind::Write,
            offset,
            data.len() as u64,
            outcome,
        )
    }
}

impl VfsFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.read_with(offset, buf.len(), |bytes| {
            buf[..bytes.len()].copy_from_slice(bytes)
        })
    }

    /// One read, like `read_exact_at`, the bytes copied from the image straight into `buf`.
    fn read_exact_at_vec(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        let read = self.read_with(offset, len, |bytes| buf.extend_from_slice(bytes))?;
        if read < len {
            buf.truncate(buf.len() - read);
            return Err(crate::short_read_error(&self.path, offset, len, read));
        }
        Ok(())
    }

    fn append(&self, data: &[u8]) -> Result<u64> {
        let (mut world, index) = self.enter(OpKind::Append, true)?;
        let offset = world.inode_ref(self.inode).visible.len() as u64;
        let (outcome, fault) = world.write_to_medium(self.inode, offset, data, true);
        self.log_medium_fault(&mut world, index, OpKind::Append, offset, data.len(), fault);
        self.finish(
            world,
            index,
            OpKind::Append,
            offset,
            data.len() as u64,
            outcome,
        )?;
        Ok(offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.store(offset, data, true)
    }

    /// A store into a shared mapping of allocated space: visible at once, durable after
    /// `sync`, lost or kept per sector at a crash like any unsynced write (the kernel writes
    /// mapped pages back in any order), and never ENOSPC (the blocks exist). Past the end
    /// it fails as `RealFs` does (a mapping there would fault).
    fn write_mapped(&self, offset: u64, data: &[u8]) -> Result<()> {
        crate::check_mapped_bounds(&self.path, offset, data.len(), self.len()?)?;
        self.store(offset, data, false)
    }

    fn sync(&self) -> Result<()> {
        let (mut world, index) = self.enter(OpKind::Sync, true)?;
        let outcome = world.sync_to_medium(self.inode, index);
        self.finish(world, index, OpKind::Sync, 0, 0, outcome)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let (mut world, index) = self.enter(OpKind::SetLen, true)?;
        let outcome = world.set_len(self.inode, len);
        self.finish(world, index, OpKind::SetLen, len, 0, outcome)
    }

    fn len(&self) -> Result<u64> {
        let (world, index) = self.enter(OpKind::Len, false)?;
        let len = world.inode_ref(self.inode).visible.len() as u64;
        self.finish(world, index, OpKind::Len, 0, 0, Ok(()))?;
        Ok(len)
    }
}
