//! Background jobs: a memtable flush and a compaction, each in phases (outputs written and
//! synced → manifest edit made durable → new version installed → inputs deleted), and the
//! two threads that run them — or, in the embedded mode (`background_work = false`), the
//! owner's `maintenance` calls and the writers themselves.

use super::poison::PanicGuard;
use super::{lock, DbInner, State};
use crate::compaction;
use crate::error::Result;
use crate::filenames::{table_path, wal_path};
use crate::manifest::{TableMeta, VersionEdit};
use crate::marks::Mark;
use crate::memtable::Memtable;
use crate::options::Options;
use crate::retention::Retention;
use crate::sstable::TableBuilder;
use crate::stats::Counters;
use crate::version::Version;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use strata_sched::{Condvar, Mutex, Runtime};
use strata_vfs::Vfs;

/// The background jobs' locks: the wake-up state (with its condition) and one lock per kind
/// of job, so that one flush and one compaction run at a time.
pub(super) struct BackgroundJobs {
    pub(super) state: Mutex<BackgroundState>,
    pub(super) wake: Condvar,
    pub(super) flush: Mutex<()>,
    pub(super) compaction: Mutex<()>,
}

impl BackgroundJobs {
    pub(super) fn new(runtime: &Runtime) -> BackgroundJobs {
        BackgroundJobs {
            state: runtime.mutex(BackgroundState::default()),
            wake: runtime.condvar(),
            flush: runtime.mutex(()),
            compaction: runtime.mutex(()),
        }
    }
}

#[derive(Default)]
pub(super) struct BackgroundState {
    /// Bumped whenever background work may be due (a rotation, a flush, a compaction).
    pub(super) requests: u64,
    pub(super) shutdown: bool,
}

/// The two background threads: flushes never wait behind a long compaction.
#[derive(Clone, Copy)]
pub(super) enum BackgroundRole {
    Flush,
    Compaction,
}

/// Writes a memtable as table `number` (synced, and its name made durable).
pub(super) fn write_table(
    vfs: &dyn Vfs,
    dir: &Path,
    number: u64,
    memtable: &Memtable,
    options: &Options,
    retention: &Retention,
) -> Result<TableMeta> {
    let path = table_path(dir, number);
    let mut builder = TableBuilder::new(
        vfs.create(&path)?,
        number,
        options.block_size,
        // Level-0 tables are compacted down into whatever level lies below them.
        options.bloom_bits_for_level(0, 0),
        options.compression_for_level(0),
    );
    let mut result = Ok(());
    memtable.for_each(|key, kept| {
        if result.is_err() {
            return;
        }
        // A flush keeps tombstones: older data may lie in any table below.
        retention.retain(kept, || false);
        for (sequence, slot) in kept.iter() {
            if let Err(error) = builder.add(key, *sequence, slot.as_deref()) {
                result = Err(error);
                return;
            }
        }
    });
    result?;
    let summary = builder.finish()?;
    vfs.sync_dir(dir)?;
    Ok(TableMeta {
        number,
        level: 0,
        file_size: summary.file_size,
        entries: summary.entries,
        smallest: summary.smallest,
        largest: summary.largest,
    })
}

impl DbInner {
    /// Compacts all of `level` into the next level; returns whether there was anything.
    pub(super) fn compact_level(&self, level: usize) -> Result<bool> {
        let _compacting = lock(&self.jobs.compaction);
        let version = Arc::clone(&lock(&self.state).version);
        let Some(picked) = compaction::whole_level(&version, level) else {
            return Ok(false);
        };
        let result = self.install_compaction(&picked, &version);
        drop((picked, version));
        self.remove_unreferenced_tables();
        self.poison_on_error(result)?;
        Ok(true)
    }

    /// Runs one compaction if a level needs one; returns whether it did.
    pub(super) fn compact_once(&self) -> Result<bool> {
        let _compacting = lock(&self.jobs.compaction);
        let (picked, version) = {
            let state = lock(&self.state);
            let version = Arc::clone(&state.version);
            match compaction::pick(&version, &self.options, &state.compact_pointers) {
                Some(picked) => (picked, version),
                None => return Ok(false),
            }
        };
        let result = self.install_compaction(&picked, &version);
        drop((picked, version));
        self.remove_unreferenced_tables();
        self.poison_on_error(result)?;
        // Wake stalled writers, and the other background thread: a flush may make a
        // compaction due.
        lock(&self.jobs.state).requests += 1;
        self.jobs.wake.notify_all();
        Ok(true)
    }

    pub(super) fn install_compaction(
        &self,
        picked: &compaction::Compaction,
        version: &Version,
    ) -> Result<()> {
        let output_level = picked.output_level();
        let trivial = picked.is_trivial_move(&self.options);
        let marks = &self.options.marks;
        let output = if trivial {
            marks.reach(Mark::TrivialMove);
            let moved = picked.inputs.iter().map(|table| {
                let mut meta = table.meta.clone();
                meta.level = output_level as u32;
                meta
            });
            compaction::CompactionOutput {
                tables: moved.collect(),
                ..Default::default()
            }
        } else {
            compaction::run(
                picked,
                version,
                self.vfs.as_ref(),
                &self.dir,
                &self.options,
                &self.retention(),
                || lock(&self.state).allocate_file_number(),
            )?
        };
        if !trivial && !output.tables.is_empty() {
            marks.reach(Mark::CompactionOutputsSynced);
        }
        let deleted: Vec<(u32, u64)> = picked
            .inputs
            .iter()
            .map(|t| (picked.level as u32, t.meta.number))
            .chain(
                picked
                    .overlapping
                    .iter()
                    .map(|t| (output_level as u32, t.meta.number)),
            )
            .collect();
        {
            let mut state = lock(&self.state);
            let edit = VersionEdit {
                log_number: None,
                next_file_number: Some(state.manifest_state.next_file_number),
                last_sequence: None,
                added: output.tables.clone(),
                deleted,
                closed_wal: None,
            };
            self.log_and_install(&mut state, &edit)?;
            marks.leave_each(&[Mark::TrivialMove, Mark::CompactionOutputsSynced]);
            if let Some(largest) = picked.inputs.iter().map(|t| t.meta.largest.clone()).max() {
                state.compact_pointers[picked.level] = largest;
            }
            self.publish_view(&state);
        }
        if trivial {
            Counters::add(&self.counters.trivial_moves, 1);
        } else {
            Counters::add(&self.counters.compactions, 1);
            Counters::add(&self.counters.compaction_read_bytes, output.bytes_read);
            Counters::add(
                &self.counters.compaction_written_bytes,
                output.bytes_written,
            );
            // The edit is durable: the inputs are garbage now, but a reader holding an
            // older version may still read them (and the table cache may have closed their
            // handles), so their files wait for `remove_unreferenced_tables`.
            marks.reach(Mark::CompactionInputsObsolete);
            let readers = picked.inputs.iter().chain(&picked.overlapping);
            lock(&self.obsolete_tables)
                .extend(readers.map(|table| (table.meta.number, Arc::downgrade(&table.reader))));
        }
        Ok(())
    }

    /// Removes the files of the tables a durable edit deleted that no reader holds any
    /// more (best effort: a crash may undo a removal, and the next open retries). Called
    /// after each compaction, once its own references are dropped, and at close; a table
    /// an iterator held waits until the next call (LevelDB's `DeleteObsoleteFiles`).
    pub(super) fn remove_unreferenced_tables(&self) {
        let (removable, none_held): (Vec<u64>, bool) = {
            let mut obsolete = lock(&self.obsolete_tables);
            let (unreferenced, held): (Vec<_>, Vec<_>) = std::mem::take(&mut *obsolete)
                .into_iter()
                .partition(|(_, reader)| reader.strong_count() == 0);
            if !held.is_empty() {
                self.options.marks.reach(Mark::ObsoleteTableHeld);
            }
            *obsolete = held;
            let removable = unreferenced.into_iter().map(|(number, _)| number);
            (removable.collect(), obsolete.is_empty())
        };
        for number in removable {
            let _ = self.vfs.remove(&table_path(&self.dir, number));
            if let Some(files) = &self.caches.files {
                files.forget(number);
            }
        }
        self.options.marks.leave(Mark::CompactionInputsObsolete);
        if none_held {
            // (Not another lock: under the seeded scheduler each is a switch point.)
            self.options.marks.leave(Mark::ObsoleteTableHeld);
        }
    }

    /// Flushes the oldest immutable memtable, if any; returns whether it did.
    pub(super) fn flush_oldest(&self) -> Result<bool> {
        let _flushing = lock(&self.jobs.flush);
        let (memtable, wal_number, last_sequence, number) = {
            let mut state = lock(&self.state);
            let Some(oldest) = state.immutables.front() else {
                return Ok(false);
            };
            let job = (
                Arc::clone(&oldest.memtable),
                oldest.wal_number,
                oldest.last_sequence,
            );
            let number = state.allocate_file_number();
            (job.0, job.1, job.2, number)
        };
        let result = self.install_flush(&memtable, wal_number, last_sequence, number);
        self.poison_on_error(result)?;
        let _ = self.vfs.remove(&wal_path(&self.dir, wal_number));
        self.options.marks.leave(Mark::FlushWalObsolete);
        // Wake stalled writers, and the other background thread: a flush may make a
        // compaction due.
        lock(&self.jobs.state).requests += 1;
        self.jobs.wake.notify_all();
        // The read view no longer holds it: unless a reader still does, this frees it. The
        // trim took 12-93 ms in peerbench's 1M fill, so the next flush must not wait for it.
        drop((memtable, _flushing));
        strata_vfs::return_freed_memory();
        Ok(true)
    }

    pub(super) fn install_flush(
        &self,
        memtable: &Memtable,
        wal_number: u64,
        last_sequence: u64,
        number: u64,
    ) -> Result<()> {
        let marks = &self.options.marks;
        let visible_before = self.visible_sequence.load(Ordering::Acquire);
        let meta = if memtable.is_empty() {
            None
        } else {
            Some(write_table(
                self.vfs.as_ref(),
                &self.dir,
                number,
                memtable,
                &self.options,
                &self.retention(),
            )?)
        };
        if meta.is_some() {
            marks.reach(Mark::FlushTableSynced);
            if self.visible_sequence.load(Ordering::Acquire) != visible_before {
                marks.reach(Mark::FlushDuringWrites);
            }
        }
        Counters::add(&self.counters.flushes, 1);
        Counters::add(
            &self.counters.flushed_bytes,
            meta.as_ref().map_or(0, |m| m.file_size),
        );
        let mut state = lock(&self.state);
        let log_number = state
            .immutables
            .get(1)
            .map_or(state.current_wal_number, |next| next.wal_number);
        assert!(
            log_number > wal_number,
            "WALs are numbered in the order they are written"
        );
        let edit = VersionEdit {
            log_number: Some(log_number),
            next_file_number: Some(state.manifest_state.next_file_number),
            last_sequence: Some(last_sequence),
            added: meta.into_iter().collect(),
            deleted: Vec::new(),
            closed_wal: None,
        };
        self.log_and_install(&mut state, &edit)?;
        marks.leave(Mark::FlushTableSynced);
        marks.reach(Mark::FlushWalObsolete);
        state.immutables.pop_front();
        self.publish_view(&state);
        Ok(())
    }

    /// Makes `edit` durable in the manifest, then installs the version it describes (the
    /// caller publishes the new read view). Called with the state lock held.
    pub(super) fn log_and_install(&self, state: &mut State, edit: &VersionEdit) -> Result<()> {
        // Checked and set under the state lock: once one edit's fsync has failed, no other
        // thread may append an edit after it (a durable record after a lost one would make
        // the manifest unreadable). Not `check_writable`: background work finishing while
        // the database closes must still install its edit.
        self.poison.check()?;
        let appended = state.manifest.append(edit);
        self.poison_on_error(appended)?;
        if let Err(reason) = state.manifest_state.apply(edit) {
            panic!("a version edit contradicts the manifest state: {reason}");
        }
        let version = Version::open(
            self.vfs.as_ref(),
            &self.dir,
            &state.manifest_state,
            Some(&state.version),
            &self.caches,
        )?;
        state.version = Arc::new(version);
        Ok(())
    }

    pub(super) fn background_loop(self: Arc<Self>, role: BackgroundRole) {
        let _guard = PanicGuard::new(&self, None);
        let mut seen = 0;
        loop {
            loop {
                let work = match role {
                    BackgroundRole::Flush => self.flush_oldest(),
                    BackgroundRole::Compaction => self.compact_once(),
                };
                match work {
                    Ok(true) => continue,
                    Ok(false) => break,
                    // The database is poisoned; writers see why.
                    Err(_) => return,
                }
            }
            let mut background = lock(&self.jobs.state);
            loop {
                if background.shutdown {
                    return;
                }
                if background.requests != seen {
                    seen = background.requests;
                    break;
                }
                background = self.jobs.wake.wait(background);
            }
        }
    }
}
