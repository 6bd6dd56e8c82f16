//! What a read-only database holds in place of its WAL and manifest writers: a file that
//! refuses every operation. The engine checks `read_only` before every write path
//! (`DbInner::check_writable`, `close`), so nothing reaches it; if something did, it gets an
//! error naming the file, never a write.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use strata_vfs::{Result, VfsError, VfsFile};

/// A file of a read-only database, standing in for a writer's.
#[derive(Debug)]
pub(super) struct ReadOnlyFile {
    path: PathBuf,
}

impl ReadOnlyFile {
    pub(super) fn new(path: PathBuf) -> ReadOnlyFile {
        ReadOnlyFile { path }
    }

    fn refuse<T>(&self, op: &'static str) -> Result<T> {
        Err(VfsError::new(
            op,
            &self.path,
            ErrorKind::PermissionDenied,
            "the database is open read-only",
        ))
    }
}

impl VfsFile for ReadOnlyFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> Result<usize> {
        self.refuse("read")
    }

    fn append(&self, _data: &[u8]) -> Result<u64> {
        self.refuse("append")
    }

    fn write_at(&self, _offset: u64, _data: &[u8]) -> Result<()> {
        self.refuse("write")
    }

    fn sync(&self) -> Result<()> {
        self.refuse("sync")
    }

    fn set_len(&self, _len: u64) -> Result<()> {
        self.refuse("set_len")
    }

    fn len(&self) -> Result<u64> {
        self.refuse("stat")
    }
}
