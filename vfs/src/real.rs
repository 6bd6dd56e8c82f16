//! `RealFs`: the VFS on the real disk through `std::fs`.
//!
//! Each call maps to the obvious syscall: `read_at`/`write_at` are `pread`/`pwrite`, `sync` is
//! `fdatasync` (`File::sync_data`), and `sync_dir` opens the directory and `fsync`s it, which is
//! what makes a create, rename or remove durable on Linux. Files are never opened with
//! `O_APPEND` (Linux `pwrite` ignores the offset on such files); `append` writes at the end
//! offset the handle tracks, which is correct because a file has one writer at a time.

use crate::{Result, Vfs, VfsError, VfsFile, VfsLock};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    /// A handle on the real filesystem.
    pub fn new() -> Self {
        RealFs
    }
}

#[derive(Debug)]
struct RealFile {
    file: File,
    path: PathBuf,
    writable: bool,
    /// The end of the file as this (single) writer knows it.
    end: AtomicU64,
    /// The shared mapping `write_mapped` stores through (Linux).
    #[cfg(target_os = "linux")]
    mapping: Mutex<crate::mapped::Mapping>,
}

impl RealFile {
    fn open(
        op: &'static str,
        path: &Path,
        options: &OpenOptions,
        writable: bool,
    ) -> Result<Box<dyn VfsFile>> {
        let file = options
            .open(path)
            .map_err(|e| VfsError::from_io(op, path, e))?;
        let metadata = file
            .metadata()
            .map_err(|e| VfsError::from_io(op, path, e))?;
        if metadata.is_dir() {
            return Err(VfsError::new(
                op,
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        Ok(Box::new(RealFile {
            file,
            path: path.to_path_buf(),
            writable,
            end: AtomicU64::new(metadata.len()),
            #[cfg(target_os = "linux")]
            mapping: Mutex::new(crate::mapped::Mapping::default()),
        }))
    }

    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(VfsError::new(
                op,
                &self.path,
                ErrorKind::PermissionDenied,
                "file opened read-only",
            ))
        }
    }
}

impl VfsFile for RealFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(VfsError::from_io("read", &self.path, e)),
            }
        }
        Ok(done)
    }

    fn append(&self, data: &[u8]) -> Result<u64> {
        self.check_writable("append")?;
        let offset = self.end.load(Ordering::Acquire);
        self.file
            .write_all_at(data, offset)
            .map_err(|e| VfsError::from_io("append", &self.path, e))?;
        self.end
            .store(offset + data.len() as u64, Ordering::Release);
        Ok(offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable("write")?;
        if data.is_empty() {
            // Like `pwrite` of 0 bytes: nothing is written and the file does not grow.
            return Ok(());
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| VfsError::from_io("write", &self.path, e))?;
        self.end
            .fetch_max(offset + data.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn write_mapped(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable("write_mapped")?;
        let file_len = self.end.load(Ordering::Acquire);
        crate::check_mapped_bounds(&self.path, offset, data.len(), file_len)?;
        if data.is_empty() {
            return Ok(());
        }
        lock_mapping(&self.mapping).write(&self.file, &self.path, file_len, offset, data)
    }

    fn sync(&self) -> Result<()> {
        self.check_writable("sync")?;
        self.file
            .sync_data()
            .map_err(|e| VfsError::from_io("sync", &self.path, e))
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.check_writable("set_len")?;
        // A mapping past the new end would fault (SIGBUS) on its next store.
        #[cfg(target_os = "linux")]
        lock_mapping(&self.mapping).unmap();
        self.file
            .set_len(len)
            .map_err(|e| VfsError::from_io("set_len", &self.path, e))?;
        self.end.store(len, Ordering::Release);
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        if self.writable {
            return Ok(self.end.load(Ordering::Acquire));
        }
        let metadata = self
            .file
            .metadata()
            .map_err(|e| VfsError::from_io("len", &self.path, e))?;
        Ok(metadata.len())
    }
}

impl Vfs for RealFs {
    fn create(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        RealFile::open(
            "create",
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
            true,
        )
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        RealFile::open("open", path, OpenOptions::new().read(true), false)
    }

    fn open_write(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        RealFile::open(
            "open",
            path,
            OpenOptions::new().read(true).write(true),
            true,
        )
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| {
            VfsError::new(
                "rename",
                from,
                e.kind(),
                format!("to {}: {e}", to.display()),
            )
        })
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| VfsError::from_io("remove", path, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let entries = fs::read_dir(dir).map_err(|e| VfsError::from_io("list", dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| VfsError::from_io("list", dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn create_dir(&self, path: &Path) -> Result<()> {
        fs::create_dir(path).map_err(|e| VfsError::from_io("create_dir", path, e))
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).map_err(|e| VfsError::from_io("create_dir", path, e))
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        match path.try_exists() {
            // A path through a regular file names nothing (as `SimFs` says), not an error.
            Err(e) if e.kind() == ErrorKind::NotADirectory => Ok(false),
            result => result.map_err(|e| VfsError::from_io("exists", path, e)),
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let handle = File::open(dir).map_err(|e| VfsError::from_io("sync_dir", dir, e))?;
        handle
            .sync_all()
            .map_err(|e| VfsError::from_io("sync_dir", dir, e))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn VfsLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| VfsError::from_io("lock", path, e))?;
        // `flock` is per open file, so a second open in this process conflicts too — on
        // local filesystems. Where it is emulated with per-process locks (NFS), it would
        // not, so this process also keeps its own table of held lock files.
        let key = fs::canonicalize(path).map_err(|e| VfsError::from_io("lock", path, e))?;
        let mut held = held_locks();
        if held.contains(&key) {
            return Err(VfsError::new(
                "lock",
                path,
                ErrorKind::WouldBlock,
                "held by another open handle in this process",
            ));
        }
        match file.try_lock() {
            Ok(()) => {
                held.insert(key.clone());
                Ok(Box::new(RealLock { _file: file, key }))
            }
            Err(TryLockError::WouldBlock) => Err(VfsError::new(
                "lock",
                path,
                ErrorKind::WouldBlock,
                "held by another process (or another open handle in this one)",
            )),
            Err(TryLockError::Error(e)) => Err(VfsError::from_io("lock", path, e)),
        }
    }
}

/// Lock files this process holds (canonical paths).
static HELD_LOCKS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn held_locks() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // A set of paths cannot be left half-updated by a panic.
    HELD_LOCKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A held `flock`; closing the file releases it.
#[derive(Debug)]
struct RealLock {
    _file: File,
    key: PathBuf,
}

impl VfsLock for RealLock {}

impl Drop for RealLock {
    fn drop(&mut self) {
        held_locks().remove(&self.key);
    }
}

#[cfg(target_os = "linux")]
fn lock_mapping(mapping: &Mutex<crate::mapped::Mapping>) -> MutexGuard<'_, crate::mapped::Mapping> {
    // A panic while holding it cannot leave the mapping inconsistent: every store completes
    // or panics before the dirty range is updated, which only widens what `sync` flushes.
    mapping
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
