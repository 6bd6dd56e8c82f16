//! `strata-vfs`: the only way Strata touches a disk.
//!
//! The engine holds an `Arc<dyn Vfs>` and never knows which filesystem is behind it:
//! - [`RealFs`] maps every call to the obvious syscall (`pread`, `pwrite`, `fdatasync`,
//!   `rename`, and an `fsync` of the opened directory for [`Vfs::sync_dir`]).
//! - [`SimFs`] is an in-memory filesystem that remembers, per file, what the process sees
//!   and what is durable, and per directory which entries are durable; `crash()` turns the
//!   durable image (plus whatever unsynced state a seeded RNG lets survive) into the new
//!   visible state. It injects faults from a serializable [`FaultConfig`].
//!
//! Assumptions, stated once:
//! - A file has one writer at a time (the engine serialises its writes); readers may share a
//!   handle from many threads, which is why every method takes `&self`.
//! - Paths are ordinary relative or absolute paths without `..`.
//! - [`Vfs::lock`] is advisory and per held guard: a second `lock` of the same path fails
//!   whether it comes from another process or this one. `RealFs` uses `flock` on the file
//!   (creating it) plus a table of the paths this process holds; `SimFs` keeps a table that a
//!   crash empties and creates no file.
//! - Errors carry the operation, the path and an [`std::io::ErrorKind`], so a caller can
//!   both print a useful message and branch on the kind (e.g. `NotFound`).
//!
//! Beside the filesystem, two platform calls live here, so that the other crates stay free
//! of `unsafe`: [`return_freed_memory`], which a flush makes after dropping a memtable, and
//! [`disable_transparent_huge_pages`], which the simulator's commands make first.

#![warn(missing_docs)]

mod error;
#[cfg(target_os = "linux")]
mod mapped;
mod memory;
mod real;
pub mod sim;

pub use error::{Result, VfsError};
pub use memory::{disable_transparent_huge_pages, return_freed_memory};
pub use real::RealFs;
pub use sim::{Event, FaultConfig, FaultCounters, FaultKind, FsProfile, OpKind, SimFs};

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

/// A filesystem: the directory-level operations.
pub trait Vfs: Send + Sync + Debug {
    /// Creates the file, or truncates it if it exists; the handle reads and writes.
    fn create(&self, path: &Path) -> Result<Box<dyn VfsFile>>;
    /// Opens an existing file for reading only.
    fn open_read(&self, path: &Path) -> Result<Box<dyn VfsFile>>;
    /// Opens an existing file for reading and writing (append or write at an offset).
    fn open_write(&self, path: &Path) -> Result<Box<dyn VfsFile>>;
    /// Renames a file, atomically replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> Result<()>;
    /// The names in a directory, sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Creates one directory; its parent must exist.
    fn create_dir(&self, path: &Path) -> Result<()>;
    /// Creates a directory and any missing parents; succeeds if it already exists.
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// Makes the creations, renames and removals inside `dir` durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Takes an exclusive lock named by `path`, held until the returned guard is dropped;
    /// fails with [`std::io::ErrorKind::WouldBlock`] while another holder (another process,
    /// or another guard in this one) has it. The lock belongs to the running process, not
    /// to the disk: a crash releases it.
    fn lock(&self, path: &Path) -> Result<Box<dyn VfsLock>>;
}

/// A held [`Vfs::lock`]; dropping it releases the lock.
pub trait VfsLock: Send + Sync + Debug {}

/// An open file. All offsets are in bytes from the start of the file.
pub trait VfsFile: Send + Sync + Debug {
    /// The path the file was opened by (for error messages).
    fn path(&self) -> &Path;
    /// Reads up to `buf.len()` bytes at `offset`; returns fewer only at end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;
    /// Appends `data` at the end of the file; returns the offset it was written at.
    fn append(&self, data: &[u8]) -> Result<u64>;
    /// Writes `data` at `offset`, extending the file (with zeros in any gap) if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Writes `data` at `offset`, which must lie within the file's current length (space a
    /// write of zeros allocated beforehand): `Err(InvalidInput)` otherwise. The bytes reach
    /// the OS at once, so they survive the death of the process (not a power cut) exactly
    /// like `write_at`'s; like them they are durable only after [`VfsFile::sync`].
    ///
    /// It exists for the cost: `RealFs` copies the bytes into a shared memory mapping of
    /// the file instead of making a `write(2)` per call (the WAL's hand-over of every commit
    /// group). The default is `write_at` after the bounds check.
    fn write_mapped(&self, offset: u64, data: &[u8]) -> Result<()> {
        check_mapped_bounds(self.path(), offset, data.len(), self.len()?)?;
        self.write_at(offset, data)
    }
    /// Makes the file's data durable (`fdatasync`).
    fn sync(&self) -> Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> Result<()>;
    /// The file's current length as the process sees it.
    fn len(&self) -> Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let read = self.read_at(offset, buf)?;
        if read < buf.len() {
            return Err(short_read_error(self.path(), offset, buf.len(), read));
        }
        Ok(())
    }

    /// Reads exactly `len` bytes at `offset` and appends them to `buf`, or fails as
    /// [`VfsFile::read_exact_at`] does and leaves `buf` as it was. One read, like
    /// `read_exact_at`; for a read into a new buffer it spares zeroing the buffer first
    /// where the filesystem can (`SimFs` copies its image straight in). The default zero-fills
    /// and calls `read_exact_at`.
    fn read_exact_at_vec(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        let start = buf.len();
        buf.resize(start + len, 0);
        let result = self.read_exact_at(offset, &mut buf[start..]);
        if result.is_err() {
            buf.truncate(start);
        }
        result
    }
}

/// The error of a read that met the end of the file after `read` of the `wanted` bytes at
/// `offset` (what [`VfsFile::read_exact_at`] returns).
pub fn short_read_error(path: &Path, offset: u64, wanted: usize, read: usize) -> VfsError {
    VfsError::new(
        "read",
        path,
        std::io::ErrorKind::UnexpectedEof,
        format!("wanted {wanted} bytes at offset {offset}, file ends after {read}"),
    )
}

/// The shared handle type the engine holds.
pub type SharedVfs = Arc<dyn Vfs>;

/// The bounds rule of [`VfsFile::write_mapped`]: the bytes lie within the file's length.
pub fn check_mapped_bounds(path: &Path, offset: u64, len: usize, file_len: u64) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(VfsError::new(
            "write_mapped",
            path,
            std::io::ErrorKind::InvalidInput,
            format!(
                "{len} bytes at offset {offset} pass the end of the file ({file_len} bytes): \
                 mapped writes go only into space allocated beforehand"
            ),
        )),
    }
}
