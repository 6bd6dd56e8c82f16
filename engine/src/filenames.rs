//! The names of the files in a database directory.
//!
//! ```text
//! CURRENT            the name of the live manifest, then "\n"; replaced atomically
//! CURRENT.tmp        a CURRENT being written
//! MANIFEST-NNNNNN    the log of version edits
//! NNNNNN.log         a write-ahead log
//! NNNNNN.sst         an SSTable
//! LOCK               locked (flock) by the process that has the database open; empty
//! lost/              files recovery could not prove obsolete, set aside instead of deleted,
//!                    and RECOVERY-NNNNNN.txt: what a point-in-time recovery dropped
//! ```
//! Every number comes from one counter, so a number names one file for the life of the
//! database.

use std::path::{Path, PathBuf};

/// The kinds of file Strata keeps in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `CURRENT`.
    Current,
    /// `CURRENT.tmp`.
    CurrentTemp,
    /// `MANIFEST-NNNNNN`.
    Manifest(u64),
    /// `NNNNNN.log`.
    Wal(u64),
    /// `NNNNNN.sst`.
    Table(u64),
    /// `LOCK`.
    Lock,
    /// `lost/`, the directory of files set aside.
    Lost,
}

/// `CURRENT`.
pub const CURRENT: &str = "CURRENT";
/// `CURRENT.tmp`.
pub const CURRENT_TEMP: &str = "CURRENT.tmp";
/// `LOCK`.
pub const LOCK: &str = "LOCK";
/// `lost/`: where recovery and repair set aside files they could not prove obsolete.
pub const LOST: &str = "lost";

/// The name of a manifest.
pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

/// The path of a WAL.
pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    numbered_path(dir, number, ".log")
}

/// The path of a table.
pub fn table_path(dir: &Path, number: u64) -> PathBuf {
    numbered_path(dir, number, ".sst")
}

/// `dir.join(format!("{number:06}{suffix}"))`, built in one allocation without the
/// formatting machinery (every open, flush and compaction names tables and WALs by the
/// dozen).
fn numbered_path(dir: &Path, number: u64, suffix: &str) -> PathBuf {
    let mut digits = [b'0'; 20];
    let mut rest = number;
    let mut start = digits.len();
    while rest > 0 || start > digits.len() - 6 {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let digits = std::str::from_utf8(&digits[start..]).unwrap_or_default();
    let mut name = String::with_capacity(digits.len() + suffix.len());
    name.push_str(digits);
    name.push_str(suffix);
    let mut path = PathBuf::with_capacity(dir.as_os_str().len() + 1 + name.len());
    path.push(dir);
    path.push(name);
    path
}

/// What a directory entry is, if it is one of ours.
pub fn parse(name: &str) -> Option<FileKind> {
    let number = |digits: &str| -> Option<u64> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    if name == CURRENT {
        Some(FileKind::Current)
    } else if name == CURRENT_TEMP {
        Some(FileKind::CurrentTemp)
    } else if name == LOCK {
        Some(FileKind::Lock)
    } else if name == LOST {
        Some(FileKind::Lost)
    } else if let Some(digits) = name.strip_prefix("MANIFEST-") {
        number(digits).map(FileKind::Manifest)
    } else if let Some(digits) = name.strip_suffix(".log") {
        number(digits).map(FileKind::Wal)
    } else if let Some(digits) = name.strip_suffix(".sst") {
        number(digits).map(FileKind::Table)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_paths_are_the_formatted_ones() {
        for number in [
            0,
            1,
            9,
            10,
            99_999,
            999_999,
            1_000_000,
            123_456_789,
            u64::MAX,
        ] {
            for dir in ["", "db", "/abs/db", "db/", "a/b/c"] {
                let dir = Path::new(dir);
                assert_eq!(
                    table_path(dir, number),
                    dir.join(format!("{number:06}.sst"))
                );
                assert_eq!(wal_path(dir, number), dir.join(format!("{number:06}.log")));
            }
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse(&manifest_name(7)), Some(FileKind::Manifest(7)));
        let wal = wal_path(Path::new("d"), 12);
        assert_eq!(
            parse(wal.file_name().unwrap().to_str().unwrap()),
            Some(FileKind::Wal(12))
        );
        let table = table_path(Path::new("d"), 1234567);
        assert_eq!(
            parse(table.file_name().unwrap().to_str().unwrap()),
            Some(FileKind::Table(1234567))
        );
        assert_eq!(parse("x.log"), None);
        assert_eq!(parse("MANIFEST-"), None);
        assert_eq!(parse(LOCK), Some(FileKind::Lock));
        assert_eq!(parse("LOCK.old"), None);
    }
}
