//! A VFS wrapper that makes every filesystem call a scheduling point: before each call the
//! seeded scheduler may run another task, so that a crash, a torn write or a failed fsync can
//! land between any two VFS steps of any two tasks. A layer of its own (as Pebble composes
//! its `vfs` wrappers), so the filesystem knows nothing about scheduling.

use std::path::Path;
use std::sync::Arc;
use strata_sched::Runtime;
use strata_vfs::{Result, Vfs, VfsFile, VfsLock};

/// See the module doc.
#[derive(Debug)]
pub struct ScheduledFs {
    inner: Arc<dyn Vfs>,
    runtime: Runtime,
}

impl ScheduledFs {
    /// Wraps `inner`; `runtime` decides the scheduling points.
    pub fn new(inner: Arc<dyn Vfs>, runtime: Runtime) -> ScheduledFs {
        ScheduledFs { inner, runtime }
    }

    fn wrap(&self, file: Box<dyn VfsFile>) -> Box<dyn VfsFile> {
        Box::new(ScheduledFile {
            inner: file,
            runtime: self.runtime.clone(),
        })
    }
}

#[derive(Debug)]
struct ScheduledFile {
    inner: Box<dyn VfsFile>,
    runtime: Runtime,
}

impl VfsFile for ScheduledFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.runtime.yield_point();
        self.inner.read_at(offset, buf)
    }
    fn append(&self, data: &[u8]) -> Result<u64> {
        self.runtime.yield_point();
        self.inner.append(data)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.runtime.yield_point();
        self.inner.write_at(offset, data)
    }
    fn write_mapped(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.runtime.yield_point();
        self.inner.write_mapped(offset, data)
    }
    fn sync(&self) -> Result<()> {
        self.runtime.yield_point();
        self.inner.sync()
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.runtime.yield_point();
        self.inner.set_len(len)
    }
    fn len(&self) -> Result<u64> {
        self.runtime.yield_point();
        self.inner.len()
    }
    // One read, so one scheduling point, as `read_exact_at` (through `read_at`) has.
    fn read_exact_at_vec(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        self.runtime.yield_point();
        self.inner.read_exact_at_vec(offset, len, buf)
    }
}

impl Vfs for ScheduledFs {
    fn create(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.runtime.yield_point();
        self.inner.create(path).map(|file| self.wrap(file))
    }
    fn open_read(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.runtime.yield_point();
        self.inner.open_read(path).map(|file| self.wrap(file))
    }
    fn open_write(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.runtime.yield_point();
        self.inner.open_write(path).map(|file| self.wrap(file))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.runtime.yield_point();
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.runtime.yield_point();
        self.inner.remove(path)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.runtime.yield_point();
        self.inner.list(dir)
    }
    fn create_dir(&self, path: &Path) -> Result<()> {
        self.runtime.yield_point();
        self.inner.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.runtime.yield_point();
        self.inner.create_dir_all(path)
    }
    fn exists(&self, path: &Path) -> Result<bool> {
        self.runtime.yield_point();
        self.inner.exists(path)
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn VfsLock>> {
        self.runtime.yield_point();
        self.inner.lock(path)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.runtime.yield_point();
        self.inner.sync_dir(dir)
    }
}
