//! A shared, writable memory mapping of the tail of a file, for `RealFs::write_mapped`.
//!
//! Why: the WAL hands every commit group to the OS before it acknowledges it, so that an
//! acknowledged write survives a process kill. A `write(2)` per group costs a syscall; a copy
//! into a `MAP_SHARED` mapping puts the bytes in the same page cache with none (a page fault
//! per 4 KiB page at most). The kernel writes the pages back like any dirty page; `sync`
//! (`fdatasync`) makes them durable. Linux only: Linux tracks pages dirtied through a shared
//! mapping in the page cache itself (the first store to a clean page faults and marks it
//! dirty), so `fdatasync` writes back the pages of the mapping, and of mappings already
//! dropped, like any other dirty page of the file. POSIX leaves that to `msync`, so
//! elsewhere `write_mapped` is a plain `pwrite`. (An `msync(MS_SYNC)` before the
//! `fdatasync` was measured: it cost a synced write about two thirds of its rate, 3.7k
//! against 11k for fjall, for nothing Linux needs.)
//!
//! Assumptions, and why each makes the `unsafe` sound:
//! - The mapping covers only bytes inside the file's length, whose blocks a write of zeros
//!   allocated beforehand (`VfsFile::write_mapped` refuses anything else). So a store never
//!   touches a page past the end of the file or a hole, which would raise SIGBUS (past the
//!   end, or an allocation failure such as ENOSPC on first touch).
//! - Nothing else truncates the file while it is mapped: Strata has one writer per file
//!   (the database `LOCK`), and `RealFile::set_len` drops the mapping first. An operator who
//!   truncates a live WAL from outside can crash the process with SIGBUS; that is the price
//!   of the mapping, documented in `docs/wal-format.md`.
//! - The mapping is only written through `&mut` access under the file's mutex, and never
//!   read as a Rust slice while another process may write it (we only store into it).

#![allow(unsafe_code)]

use crate::{Result, VfsError};
use memmap2::{MmapMut, MmapOptions};
use std::fs::File;
use std::path::Path;

/// The current mapping of a file's tail and the range written since the last sync.
#[derive(Debug, Default)]
pub(crate) struct Mapping {
    /// The mapped region: file offset of its first byte, and the map.
    region: Option<(u64, MmapMut)>,
}

impl Mapping {
    /// Copies `data` to `offset` through the mapping, remapping if it does not cover it.
    /// The caller checked that `[offset, offset + len)` lies within `file_len`.
    pub(crate) fn write(
        &mut self,
        file: &File,
        path: &Path,
        file_len: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let end = offset + data.len() as u64;
        let covered = matches!(&self.region, Some((start, map))
            if *start <= offset && end <= *start + map.len() as u64);
        if !covered {
            // The old mapping's dirty pages stay dirty in the page cache after munmap, and
            // `fdatasync` writes them back (Linux).
            let page = page_size();
            let start = offset / page * page;
            let len = file_len - start;
            // SAFETY: `[start, start + len)` lies within the file (see the module docs), the
            // file is open for reading and writing, and no one truncates it while mapped.
            let map = unsafe {
                MmapOptions::new()
                    .offset(start)
                    .len(len as usize)
                    .map_mut(file)
            }
            .map_err(|e| VfsError::from_io("mmap", path, e))?;
            self.region = Some((start, map));
        }
        let Some((start, map)) = self.region.as_mut() else {
            unreachable!("a region was mapped above");
        };
        let at = (offset - *start) as usize;
        map[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Drops the mapping (before the file's length changes). Its dirty pages stay in the
    /// page cache, and the next `fdatasync` writes them back.
    pub(crate) fn unmap(&mut self) {
        self.region = None;
    }
}

fn page_size() -> u64 {
    // Every platform Strata runs on has pages of at most 64 KiB, and mmap offsets must be
    // page-aligned: 64 KiB alignment is aligned on all of them.
    64 * 1024
}
