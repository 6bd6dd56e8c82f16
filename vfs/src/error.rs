//! The one error type of the VFS: which operation, on which path, what kind, and why.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A failed filesystem operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfsError {
    /// The operation, e.g. `"open"`, `"sync"`, `"rename"`.
    pub op: &'static str,
    /// The path the operation was on.
    pub path: PathBuf,
    /// The `std::io` kind, for callers that branch on it.
    pub kind: io::ErrorKind,
    /// What went wrong, in words.
    pub detail: String,
}

/// The VFS result type.
pub type Result<T> = std::result::Result<T, VfsError>;

impl VfsError {
    /// Builds an error.
    pub fn new(
        op: &'static str,
        path: &Path,
        kind: io::ErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        VfsError {
            op,
            path: path.to_path_buf(),
            kind,
            detail: detail.into(),
        }
    }

    /// Wraps an `std::io::Error` from a real syscall.
    pub fn from_io(op: &'static str, path: &Path, error: io::Error) -> Self {
        VfsError::new(op, path, error.kind(), error.to_string())
    }

    /// The `std::io` kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.kind
    }
}

impl fmt::Display for VfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.detail)
    }
}

impl std::error::Error for VfsError {}

impl From<VfsError> for io::Error {
    fn from(error: VfsError) -> io::Error {
        io::Error::new(error.kind, error.to_string())
    }
}
