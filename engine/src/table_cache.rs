//! The table cache: the open file handles of a database's tables, at most
//! `Options::max_open_files` of them (LevelDB's and RocksDB's `max_open_files`).
//!
//! Without it every live table kept a handle for as long as it lived, so a database's open
//! files grew with its data (a 1 TB database of 64 MiB tables: 16,000 handles, past the
//! default `ulimit -n` of 1,024). A table's index and filter stay in memory (they are a
//! small fraction of its bytes, and a point read needs them first); only the handle is
//! evicted, and reopened by the next read of a block that is not in the block cache.
//!
//! Assumptions, and why they hold:
//! - A table file is never removed while a version that lists it can still be read: the
//!   engine removes a compaction's inputs only once no reader holds them
//!   (`DbInner::remove_unreferenced_tables`), so a reopen finds the file. Before this cache,
//!   readers of an old version read a removed file through the handle they still held.
//! - A reopened file has the bytes that were verified when the table was opened: tables are
//!   written once and never changed in place.
//! - The bound holds for the cache. A read in progress holds the handle it took, so at most
//!   `max_open_files` plus one per concurrent reader are open at any moment.
//!
//! Eviction is quick_cache's (CLOCK-Pro), with the fixed hash of the block cache, so under
//! simulation the same seed evicts the same handles, and so opens the same files.

use crate::block_cache::{BlockCache, FixedHasher};
use crate::error::{Error, Result};
use crate::marks::{Mark, Marks};
use crate::options::Options;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, UnitWeighter};
use std::hash::BuildHasherDefault;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strata_vfs::{Vfs, VfsFile};

type FileMap = Cache<
    u64,
    Arc<dyn VfsFile>,
    UnitWeighter,
    BuildHasherDefault<FixedHasher>,
    DefaultLifecycle<u64, Arc<dyn VfsFile>>,
>;

/// Below this many handles the cache is one shard, so the bound is exact; above it, a few
/// shards whose capacities add up to at most the bound.
const SHARDED_FROM: usize = 256;
const SHARDS: usize = 4;

/// The open handles of a database's tables, keyed by table number.
pub struct TableFiles {
    vfs: Arc<dyn Vfs>,
    marks: Marks,
    files: FileMap,
    reopened: AtomicU64,
}

impl std::fmt::Debug for TableFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableFiles({} open)", self.files.len())
    }
}

impl TableFiles {
    /// A cache of at most `max_open_files` handles (at least 1; `Options::validate` refuses 0).
    pub fn new(vfs: Arc<dyn Vfs>, max_open_files: usize, marks: Marks) -> Arc<TableFiles> {
        assert!(
            max_open_files >= 1,
            "max_open_files is validated to be >= 1"
        );
        let shards = if max_open_files < SHARDED_FROM {
            1
        } else {
            SHARDS
        };
        // quick_cache gives each shard the ceiling of its share: round down, so the shards
        // together never hold more than the bound.
        let capacity = (max_open_files / shards * shards) as u64;
        let options = OptionsBuilder::new()
            .weight_capacity(capacity)
            .estimated_items_capacity(capacity as usize)
            .shards(shards)
            .build()
            .expect("table cache options are valid");
        Arc::new(TableFiles {
            vfs,
            marks,
            files: Cache::with_options(
                options,
                UnitWeighter,
                BuildHasherDefault::default(),
                DefaultLifecycle::default(),
            ),
            reopened: AtomicU64::new(0),
        })
    }

    /// Keeps the handle a table was opened (and verified) through.
    pub fn insert(&self, number: u64, file: Arc<dyn VfsFile>) {
        self.files.insert(number, file);
    }

    /// Table `number`'s handle: the cached one, or the file at `path` opened again.
    ///
    /// Two readers that miss at once both open the file, and one handle is kept. Not
    /// quick_cache's `get_or_insert_with`: its second caller blocks on the first, outside
    /// the `strata-sched` runtime, so under the simulated scheduler (which may switch
    /// threads inside the first caller's open) the two deadlocked (found by the sweep).
    pub fn file(&self, number: u64, path: &Path) -> Result<Arc<dyn VfsFile>> {
        if let Some(file) = self.files.get(&number) {
            return Ok(file);
        }
        self.reopened.fetch_add(1, Ordering::Relaxed);
        self.marks.reach(Mark::TableFileReopened);
        let file: Arc<dyn VfsFile> = match self.vfs.open_read(path) {
            Ok(file) => Arc::from(file),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(Error::corruption(
                    path,
                    0,
                    "table file is missing, though a live version lists it",
                ))
            }
            Err(error) => return Err(Error::Io(error)),
        };
        self.files.insert(number, Arc::clone(&file));
        Ok(file)
    }

    /// Drops table `number`'s handle (its file was removed).
    pub fn forget(&self, number: u64) {
        self.files.remove(&number);
    }

    /// Handles the cache holds now.
    pub fn open_count(&self) -> usize {
        self.files.len()
    }

    /// Times a table's file was opened again after its handle was evicted.
    pub fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Relaxed)
    }
}

/// The caches a database's tables share: parsed blocks and open files.
#[derive(Debug, Clone, Default)]
pub struct TableCaches {
    /// Parsed, verified blocks (none if `Options::block_cache_size` is 0).
    pub blocks: Option<Arc<BlockCache>>,
    /// Open handles (none: each reader keeps its own open, as a one-off reader does).
    pub files: Option<Arc<TableFiles>>,
}

impl TableCaches {
    /// A database's caches, sized by its options.
    pub fn for_database(vfs: &Arc<dyn Vfs>, options: &Options) -> TableCaches {
        TableCaches {
            blocks: BlockCache::new(options.block_cache_size),
            files: Some(TableFiles::new(
                Arc::clone(vfs),
                options.max_open_files,
                options.marks.clone(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_vfs::RealFs;

    fn table_files(dir: &Path, bound: usize, tables: u64) -> Arc<TableFiles> {
        let vfs: Arc<dyn Vfs> = Arc::new(RealFs::new());
        for number in 0..tables {
            let file = vfs.create(&dir.join(format!("{number}"))).expect("create");
            file.append(&number.to_le_bytes()).expect("append");
        }
        TableFiles::new(vfs, bound, Marks::disabled())
    }

    #[test]
    fn the_cache_never_holds_more_handles_than_its_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bound in [1, 2, 3, 255, 256, 257, 1000] {
            let files = table_files(dir.path(), bound, 300);
            for round in 0..3 {
                for number in 0..300u64 {
                    let path = dir.path().join(format!("{number}"));
                    let file = files.file(number, &path).expect("open");
                    let mut bytes = [0u8; 8];
                    file.read_exact_at(0, &mut bytes).expect("read");
                    assert_eq!(u64::from_le_bytes(bytes), number, "round {round}");
                    assert!(
                        files.open_count() <= bound,
                        "{} handles open, bound {bound}",
                        files.open_count()
                    );
                }
            }
            assert!(files.reopened() >= 300, "bound {bound}");
        }
    }

    /// A filesystem whose first `open_read` waits (up to ten seconds) for a release.
    #[derive(Debug)]
    struct FirstOpenWaits {
        real: RealFs,
        first: std::sync::atomic::AtomicBool,
        entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
        release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Vfs for FirstOpenWaits {
        fn open_read(&self, path: &Path) -> strata_vfs::Result<Box<dyn VfsFile>> {
            if self.first.swap(false, Ordering::SeqCst) {
                let _ = self.entered.lock().expect("lock").send(());
                let release = self.release.lock().expect("lock");
                let _ = release.recv_timeout(std::time::Duration::from_secs(10));
            }
            self.real.open_read(path)
        }
        fn create(&self, path: &Path) -> strata_vfs::Result<Box<dyn VfsFile>> {
            self.real.create(path)
        }
        fn open_write(&self, path: &Path) -> strata_vfs::Result<Box<dyn VfsFile>> {
            self.real.open_write(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> strata_vfs::Result<()> {
            self.real.rename(from, to)
        }
        fn remove(&self, path: &Path) -> strata_vfs::Result<()> {
            self.real.remove(path)
        }
        fn list(&self, dir: &Path) -> strata_vfs::Result<Vec<String>> {
            self.real.list(dir)
        }
        fn create_dir(&self, path: &Path) -> strata_vfs::Result<()> {
            self.real.create_dir(path)
        }
        fn create_dir_all(&self, path: &Path) -> strata_vfs::Result<()> {
            self.real.create_dir_all(path)
        }
        fn exists(&self, path: &Path) -> strata_vfs::Result<bool> {
            self.real.exists(path)
        }
        fn sync_dir(&self, dir: &Path) -> strata_vfs::Result<()> {
            self.real.sync_dir(dir)
        }
        fn lock(&self, path: &Path) -> strata_vfs::Result<Box<dyn strata_vfs::VfsLock>> {
            self.real.lock(path)
        }
    }

    /// Under the seeded scheduler a task may be switched out inside its open (a VFS call);
    /// a second reader of the same table must then not wait on an OS lock the scheduler
    /// cannot see, or the run hangs (corpus/0011: quick_cache's `get_or_insert_with` made
    /// the second caller wait for the first).
    #[test]
    fn a_reader_never_waits_for_another_readers_open_of_the_same_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("000001.sst");
        RealFs::new()
            .create(&path)
            .and_then(|file| file.append(b"table"))
            .expect("write");
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let vfs: Arc<dyn Vfs> = Arc::new(FirstOpenWaits {
            real: RealFs::new(),
            first: std::sync::atomic::AtomicBool::new(true),
            entered: std::sync::Mutex::new(entered_tx),
            release: std::sync::Mutex::new(release_rx),
        });
        let files = TableFiles::new(vfs, 4, Marks::disabled());
        let first = {
            let (files, path) = (Arc::clone(&files), path.clone());
            std::thread::spawn(move || files.file(1, &path).map(|_| ()))
        };
        entered.recv().expect("the first open started");
        let (done_tx, done) = std::sync::mpsc::channel();
        let second = {
            let (files, path) = (Arc::clone(&files), path.clone());
            std::thread::spawn(move || {
                let _ = done_tx.send(files.file(1, &path).map(|_| ()));
            })
        };
        let outcome = done.recv_timeout(std::time::Duration::from_secs(5));
        let _ = release.send(());
        first.join().expect("first reader").expect("first open");
        second.join().expect("second reader");
        match outcome {
            Ok(result) => result.expect("second open"),
            Err(_) => panic!("the second reader waited for the first one's open"),
        }
    }

    #[test]
    fn a_missing_table_file_is_corruption_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = table_files(dir.path(), 4, 0);
        let path = dir.path().join("000007.sst");
        let error = files.file(7, &path).expect_err("no such file");
        let text = error.to_string();
        assert!(
            text.contains("000007.sst") && text.contains("missing"),
            "{text}"
        );
    }
}
