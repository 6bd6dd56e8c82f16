//! The bench's host: the directory it may clear, and what it measures of the machine (the
//! disk's fsync rate, the directory's bytes, the process's peak RSS). Linux-specific where
//! it reads `/proc`; elsewhere those figures are absent, not wrong.

use std::path::Path;
use std::time::Instant;
use strata_engine::filenames;
use strata_vfs::{RealFs, Vfs};

/// Fails unless `dir` is missing, empty, or holds only Strata files that no process has open:
/// the bench deletes what it holds, and must never delete anything else.
pub(super) fn check_clearable(dir: &Path) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let known = name.to_str().and_then(filenames::parse).is_some();
        if !known || !entry.file_type().is_ok_and(|kind| kind.is_file()) {
            return Err(format!(
                "refusing to clear {}: it holds {name:?}, which is not a Strata database file \
                 (the bench replaces the database in --dir; point it at an empty or new directory)",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Deletes the database in `dir` (see [`check_clearable`]) unless another process has it open.
pub(super) fn clear_database_dir(dir: &Path) -> Result<(), String> {
    check_clearable(dir)?;
    if !dir.exists() {
        return Ok(());
    }
    let fs = RealFs::new();
    // Held while deleting, so that no process opens it meanwhile.
    let _lock = fs
        .lock(&dir.join(filenames::LOCK))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => format!(
                "refusing to clear {}: the database is in use by another process",
                dir.display()
            ),
            _ => e.to_string(),
        })?;
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))
}

/// The disk's rate of 4-KiB overwrite + fdatasync, measured in `dir`.
pub(super) fn disk_sync_rate(dir: &Path) -> Result<f64, String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fdatasync-probe");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = vec![7u8; 4096];
    file.write_all_at(&block, 0).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    let iterations = 2000;
    let start = Instant::now();
    for _ in 0..iterations {
        file.write_all_at(&block, 0).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
    }
    let rate = iterations as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

/// Bytes of the files in `dir` (not below it: the database keeps none there but `lost/`).
pub(super) fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .filter(|metadata| metadata.is_file())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The process's peak resident set (Linux `VmHWM`), if the kernel says.
pub(super) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
