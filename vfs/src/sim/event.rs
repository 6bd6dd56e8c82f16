//! The simulated filesystem's event log: one entry per operation (and per crash), enough to
//! read a trace and to prove two runs identical by hash.

use super::FaultKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The operations the simulated filesystem performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `Vfs::create`.
    Create,
    /// `Vfs::open_read` / `Vfs::open_write`.
    Open,
    /// `VfsFile::read_at`.
    Read,
    /// `VfsFile::append`.
    Append,
    /// `VfsFile::write_at`.
    Write,
    /// `VfsFile::sync`.
    Sync,
    /// `VfsFile::set_len`.
    SetLen,
    /// `VfsFile::len`.
    Len,
    /// `Vfs::rename`.
    Rename,
    /// `Vfs::remove`.
    Remove,
    /// `Vfs::list`.
    List,
    /// `Vfs::create_dir` / `create_dir_all`.
    CreateDir,
    /// `Vfs::exists`.
    Exists,
    /// `Vfs::sync_dir`.
    SyncDir,
    /// The machine crashed and restarted (`SimFs::crash`).
    Crash,
}

impl OpKind {
    /// The snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Open => "open",
            OpKind::Read => "read",
            OpKind::Append => "append",
            OpKind::Write => "write",
            OpKind::Sync => "sync",
            OpKind::SetLen => "set_len",
            OpKind::Len => "len",
            OpKind::Rename => "rename",
            OpKind::Remove => "remove",
            OpKind::List => "list",
            OpKind::CreateDir => "create_dir",
            OpKind::Exists => "exists",
            OpKind::SyncDir => "sync_dir",
            OpKind::Crash => "crash",
        }
    }
}

/// One filesystem event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The operation index (counts every operation since the filesystem was made).
    pub index: u64,
    /// What was done.
    pub op: OpKind,
    /// On which path.
    pub path: Arc<str>,
    /// Offset (reads and writes) or new length (`set_len`), else 0.
    pub offset: u64,
    /// Bytes read or written, else 0.
    pub len: u64,
    /// The fault injected into this operation, if any.
    pub fault: Option<FaultKind>,
    /// Whether the operation returned an error.
    pub failed: bool,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.index, self.op.name(), self.path)?;
        if self.offset != 0 || self.len != 0 {
            write!(f, " @{}+{}", self.offset, self.len)?;
        }
        if let Some(fault) = self.fault {
            write!(f, " FAULT:{fault}")?;
        }
        if self.failed {
            f.write_str(" -> error")?;
        }
        Ok(())
    }
}

/// FNV-1a, 64 bit, over bytes (and a word-at-a-time variant for `u64`s): a stable hash
/// (unlike `std`'s `DefaultHasher`, whose algorithm may change between Rust releases) for
/// event logs and filesystem images.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= byte as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Feeds a `u64` (one FNV-style step on the whole word: the hot path of event hashing).
    pub fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(0x0000_0100_0000_01b3);
        self.0 ^= self.0 >> 29;
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// Feeds one event.
    pub fn write_event(&mut self, event: &Event) {
        self.write_event_parts(
            event.index,
            event.op,
            &event.path,
            event.offset,
            event.len,
            event.fault,
            event.failed,
        );
    }

    /// Feeds one event given by its fields (as [`StableHasher::write_event`] does).
    #[allow(clippy::too_many_arguments)]
    pub fn write_event_parts(
        &mut self,
        index: u64,
        op: OpKind,
        path: &str,
        offset: u64,
        len: u64,
        fault: Option<FaultKind>,
        failed: bool,
    ) {
        self.write_u64(index);
        self.write(op.name().as_bytes());
        self.write(path.as_bytes());
        self.write_u64(offset);
        self.write_u64(len);
        self.write_u64(fault.map_or(0, |kind| kind as u64 + 1));
        self.write_u64(failed as u64);
    }
}
