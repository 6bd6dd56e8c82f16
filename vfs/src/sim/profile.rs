//! Filesystem persistence profiles: which crash states a real filesystem allows, as a small
//! set of rules `SimFs` applies when the machine crashes and when a file or directory is
//! synced.
//!
//! Why: real filesystems promise more than POSIX, and an engine can come to rely on the
//! extra without anyone knowing. Pillai et al. found most of the application bugs of
//! "All File Systems Are Not Created Equal" (ALICE, OSDI'14) hiding behind ext4's
//! data=ordered mode. An engine that passes under [`FsProfile::PosixStrict`] relies on
//! nothing but `fsync` and `fsync` of the directory.
//!
//! The rules, and where each comes from:
//! - **Directory operations** ([`DirectoryOrder`]). POSIX says nothing of the order in which
//!   unsynced creates, renames and unlinks reach the disk (`PosixStrict`: any subset of them
//!   survives). ext4 (jbd2), XFS and btrfs log metadata in one journal, committed in order,
//!   so what survives is a prefix of all the operations of the filesystem (`Journal`; ext4:
//!   Documentation/filesystems/ext4/journal.rst; XFS: Documentation/filesystems/xfs/
//!   xfs-delayed-logging-design.rst). `Classic`, the model SimFs had before profiles, keeps
//!   a prefix per directory: harsher than a journal, since two directories' prefixes are
//!   independent.
//! - **Powersafe overwrite** (SQLite's name, <https://www.sqlite.org/psow.html>). With it, a
//!   torn sector damages only the bytes written since the last sync; without it
//!   (`PosixStrict`), the whole sector after the tear, including bytes made durable before.
//! - **An appended size** ([`AppendedSize`]). ext4 data=ordered writes a file's data before
//!   the journal commits its new size (Documentation/admin-guide/ext4.rst, "data=ordered"),
//!   and XFS updates the on-disk size only when the data's write completes (the fix of its
//!   "NULL files" problem, Linux 2.6.22); btrfs is copy-on-write. So an appended size is
//!   never durable ahead of its data (`WithData`): appended sectors survive as a prefix of
//!   the file, whole. ext4 data=writeback journals the size but not the data (ext4.rst:
//!   "data=writeback ... old data to appear in files after a crash"), and POSIX promises
//!   nothing: the size may be durable with zeros where the data did not land
//!   (`AheadOfData`). `Classic` lets any subset of sectors survive and the file reach the
//!   last surviving one (`Sectors`).
//! - **A rename over an existing file persists the renamed file's data.** ext4's
//!   `auto_da_alloc` (ext4.rst: "replace-via-rename") and btrfs (the rename-over flush since
//!   Linux 2.6.30) write a file's data before a rename that replaces another file commits; a
//!   rename to a new name gets no such flush. Modelled as: if a rename that replaced a file
//!   survives, every sector of the renamed file last written before the rename survives.
//! - **A file's `fsync` commits the journal.** On ext4 and XFS, `fsync` of a file whose
//!   metadata changed commits the running transaction, which holds every earlier metadata
//!   operation of the filesystem (jbd2; XFS forces the log up to the inode's last change).
//!   Modelled as: a successful file sync makes every pending directory operation durable
//!   (an approximation: ext4 skips the commit for an `fdatasync` that changed no metadata).
//! - **A file's `fsync` persists its names.** btrfs logs the inode and its new names in the
//!   log tree at `fsync` (btrfs.rst, "log tree"; the fsync and rename guarantees tested by
//!   xfstests btrfs/ and generic/ 3xx-4xx), without committing other files' operations.
//!   Modelled as: a successful sync of a file makes the pending links and renames naming it
//!   durable.
//!
//! Profiles only add to what survives or take away guarantees, never lie: data made durable
//! by a successful `sync` survives under every one of them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A named set of persistence rules (see the module documentation).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FsProfile {
    /// The model SimFs had before profiles, and still its default: a prefix of each
    /// directory's operations, powersafe overwrite, any subset of unsynced sectors.
    #[default]
    Classic,
    /// Only what POSIX promises: any unsynced data or directory operation may be lost or
    /// reordered, a torn sector may damage durable bytes, a size may be durable ahead of data.
    PosixStrict,
    /// ext4 with data=ordered (its default) and `auto_da_alloc`.
    Ext4Ordered,
    /// ext4 with data=writeback.
    Ext4Writeback,
    /// XFS.
    Xfs,
    /// btrfs.
    Btrfs,
}

/// Which unsynced directory operations survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryOrder {
    /// A prefix of each directory's operations since its last sync, chosen per directory.
    PerDirectoryPrefix,
    /// A prefix of all the filesystem's operations in the order they were done (a journal).
    Journal,
    /// Any subset.
    AnySubset,
}

/// How the unsynced growth of a file survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendedSize {
    /// Like any other dirty sector: any subset survives, and the file reaches the last
    /// surviving one (zeros in the holes).
    Sectors,
    /// Never ahead of the data: appended sectors survive as a prefix of the file, whole.
    WithData,
    /// Possibly ahead of the data: any subset of appended sectors survives, and the size may
    /// be the whole unsynced size, with zeros where no sector landed.
    AheadOfData,
}

/// The rules of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistenceRules {
    /// Which unsynced directory operations survive.
    pub directory_order: DirectoryOrder,
    /// Whether a torn sector keeps the bytes not written since the last sync.
    pub powersafe_overwrite: bool,
    /// How an unsynced size survives.
    pub appended_size: AppendedSize,
    /// Whether a surviving rename brings the renamed file's earlier data with it.
    pub rename_persists_data: bool,
    /// Whether a file's successful sync makes every pending directory operation durable.
    pub sync_commits_metadata: bool,
    /// Whether a file's successful sync makes the pending operations naming it durable.
    pub sync_persists_names: bool,
}

impl FsProfile {
    /// Every profile, harshest first after the default.
    pub const ALL: [FsProfile; 6] = [
        FsProfile::Classic,
        FsProfile::PosixStrict,
        FsProfile::Ext4Ordered,
        FsProfile::Ext4Writeback,
        FsProfile::Xfs,
        FsProfile::Btrfs,
    ];

    /// The name used on the command line and in corpus files.
    pub fn name(self) -> &'static str {
        match self {
            FsProfile::Classic => "classic",
            FsProfile::PosixStrict => "posix-strict",
            FsProfile::Ext4Ordered => "ext4-ordered",
            FsProfile::Ext4Writeback => "ext4-writeback",
            FsProfile::Xfs => "xfs",
            FsProfile::Btrfs => "btrfs",
        }
    }

    /// The profile with this name, or a message listing the names.
    pub fn from_name(name: &str) -> Result<FsProfile, String> {
        FsProfile::ALL
            .into_iter()
            .find(|profile| profile.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = FsProfile::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown filesystem profile {name:?}; the profiles are {}",
                    names.join(", ")
                )
            })
    }

    /// Whether this is the default profile.
    pub fn is_classic(&self) -> bool {
        *self == FsProfile::Classic
    }

    /// The profile's rules.
    pub fn rules(self) -> PersistenceRules {
        let journaled = PersistenceRules {
            directory_order: DirectoryOrder::Journal,
            powersafe_overwrite: true,
            appended_size: AppendedSize::WithData,
            rename_persists_data: false,
            sync_commits_metadata: true,
            sync_persists_names: false,
        };
        match self {
            FsProfile::Classic => PersistenceRules {
                directory_order: DirectoryOrder::PerDirectoryPrefix,
                powersafe_overwrite: true,
                appended_size: AppendedSize::Sectors,
                rename_persists_data: false,
                sync_commits_metadata: false,
                sync_persists_names: false,
            },
            FsProfile::PosixStrict => PersistenceRules {
                directory_order: DirectoryOrder::AnySubset,
                powersafe_overwrite: false,
                appended_size: AppendedSize::AheadOfData,
                rename_persists_data: false,
                sync_commits_metadata: false,
                sync_persists_names: false,
            },
            FsProfile::Ext4Ordered => PersistenceRules {
                rename_persists_data: true,
                ..journaled
            },
            FsProfile::Ext4Writeback => PersistenceRules {
                appended_size: AppendedSize::AheadOfData,
                ..journaled
            },
            FsProfile::Xfs => journaled,
            FsProfile::Btrfs => PersistenceRules {
                rename_persists_data: true,
                sync_commits_metadata: false,
                sync_persists_names: true,
                ..journaled
            },
        }
    }
}

impl fmt::Display for FsProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_has_its_own_rules_and_a_name_that_reads_back() {
        for (i, a) in FsProfile::ALL.iter().enumerate() {
            assert_eq!(FsProfile::from_name(a.name()), Ok(*a));
            for b in &FsProfile::ALL[i + 1..] {
                assert_ne!(a.rules(), b.rules(), "{a} and {b} have the same rules");
            }
        }
        assert!(FsProfile::from_name("ext3")
            .unwrap_err()
            .contains("posix-strict"));
    }
}
