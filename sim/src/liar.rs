//! Lying filesystems: VFS wrappers that behave like buggy storage stacks (or engines that
//! skip a step). The simulator must catch every one of them; `tests/self_check.rs` proves
//! it does, so a harness that stops catching them fails CI.

use crate::case::Liar;
use std::path::Path;
use std::sync::Arc;
use strata_vfs::{Result, Vfs, VfsFile, VfsLock};

/// A filesystem that lies in one way.
#[derive(Debug)]
pub struct LyingFs {
    inner: Arc<dyn Vfs>,
    liar: Liar,
    renames: std::sync::atomic::AtomicU64,
}

impl LyingFs {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Vfs>, liar: Liar) -> LyingFs {
        LyingFs {
            inner,
            liar,
            renames: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn wrap(&self, file: Box<dyn VfsFile>) -> Box<dyn VfsFile> {
        Box::new(LyingFile {
            inner: file,
            liar: self.liar,
        })
    }
}

#[derive(Debug)]
struct LyingFile {
    inner: Box<dyn VfsFile>,
    liar: Liar,
}

impl VfsFile for LyingFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn append(&self, data: &[u8]) -> Result<u64> {
        self.inner.append(data)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_at(offset, data)
    }
    fn write_mapped(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_mapped(offset, data)
    }
    fn sync(&self) -> Result<()> {
        match self.liar {
            Liar::WalSyncNoop if self.path().extension().is_some_and(|ext| ext == "log") => Ok(()),
            Liar::FailedSyncReportedOk => {
                let _ = self.inner.sync();
                Ok(())
            }
            _ => self.inner.sync(),
        }
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
    fn read_exact_at_vec(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.read_exact_at_vec(offset, len, buf)
    }
}

impl Vfs for LyingFs {
    fn create(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.inner.create(path).map(|file| self.wrap(file))
    }
    fn open_read(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.inner.open_read(path).map(|file| self.wrap(file))
    }
    fn open_write(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.inner.open_write(path).map(|file| self.wrap(file))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let count = self
            .renames
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.liar == Liar::PanicsAtThirdRename && count == 2 {
            panic!(
                "the planted panic: rename of {} (third rename)",
                from.display()
            );
        }
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir(&self, path: &Path) -> Result<()> {
        self.inner.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.inner.create_dir_all(path)
    }
    fn exists(&self, path: &Path) -> Result<bool> {
        self.inner.exists(path)
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn VfsLock>> {
        self.inner.lock(path)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        match self.liar {
            Liar::SyncDirNoop => Ok(()),
            Liar::FailedSyncReportedOk => {
                let _ = self.inner.sync_dir(dir);
                Ok(())
            }
            _ => self.inner.sync_dir(dir),
        }
    }
}
