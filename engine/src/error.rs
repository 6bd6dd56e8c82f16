//! The engine's error type: a misbehaving world (I/O errors, corrupt bytes, bad arguments)
//! is an `Err`; a broken invariant of our own is an `assert!`.

use std::fmt;
use std::path::PathBuf;
use strata_vfs::VfsError;

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    Io(VfsError),
    /// Bytes on disk are not what we wrote: a checksum mismatch, a bad magic number, a
    /// malformed record. Never returned as data.
    Corruption {
        /// The file the bad bytes are in.
        file: PathBuf,
        /// Where in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write-path failure left the on-disk state unknown (a failed fsync, say);
    /// writes are refused until the database is reopened.
    Poisoned {
        /// The failure that poisoned the database.
        reason: String,
    },
    /// The caller asked for something the engine does not accept (e.g. a key too large,
    /// options outside their limits).
    InvalidArgument(String),
    /// There is no database at the path: the directory is missing or empty, and the
    /// options do not create one (`create_if_missing` is false).
    NoDatabase {
        /// The database directory.
        dir: PathBuf,
    },
    /// The directory holds files but no Strata database; it is left untouched.
    NotADatabase {
        /// The directory.
        dir: PathBuf,
        /// A file in it that is not Strata's.
        found: String,
    },
    /// A database exists where `error_if_exists` asked for a new one.
    AlreadyExists {
        /// The database directory.
        dir: PathBuf,
    },
    /// Another process (or another open `Db` in this one) has the database open: its
    /// `LOCK` file is locked.
    Locked {
        /// The database directory.
        dir: PathBuf,
    },
    /// The database was closed: what a [`Snapshot`](crate::Snapshot) outliving its `Db`
    /// reads, and what background work sees when it races `close`.
    Closed,
    /// A write, flush, compaction or sync on a database opened with
    /// [`Db::open_read_only`](crate::Db::open_read_only).
    ReadOnly {
        /// The database directory.
        dir: PathBuf,
    },
}

/// The engine result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds a corruption error.
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether this is a corruption error.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// Whether a write that returned this error certainly had no effect: it was refused
    /// before anything reached the WAL (a bad argument, a poisoned or closed database). For
    /// any other error (I/O, corruption) the write may or may not be durable, and a reader
    /// may or may not see it until the database is reopened.
    pub fn write_had_no_effect(&self) -> bool {
        matches!(
            self,
            Error::InvalidArgument(_)
                | Error::Poisoned { .. }
                | Error::Closed
                | Error::ReadOnly { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(error) => write!(f, "I/O error: {error}"),
            Error::Corruption { file, offset, reason } => {
                write!(f, "corruption in {} at offset {offset}: {reason}", file.display())
            }
            Error::Poisoned { reason } => write!(
                f,
                "database is poisoned after a write-path failure ({reason}); reopen it to recover from what is durable"
            ),
            Error::InvalidArgument(reason) => write!(f, "invalid argument: {reason}"),
            Error::NoDatabase { dir } => write!(
                f,
                "no database in {} (missing or empty; create_if_missing is off)",
                dir.display()
            ),
            Error::NotADatabase { dir, found } => write!(
                f,
                "{} is not empty and holds no Strata database (found {found:?}); it was left untouched",
                dir.display()
            ),
            Error::AlreadyExists { dir } => write!(
                f,
                "a database already exists in {} (error_if_exists is on)",
                dir.display()
            ),
            Error::Locked { dir } => write!(
                f,
                "database {} is in use: its LOCK file is held by another process (or another open Db in this one)",
                dir.display()
            ),
            Error::Closed => f.write_str("database is closed"),
            Error::ReadOnly { dir } => write!(
                f,
                "database {} is open read-only: writes, flushes, compactions and syncs are refused",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<VfsError> for Error {
    fn from(error: VfsError) -> Error {
        Error::Io(error)
    }
}
