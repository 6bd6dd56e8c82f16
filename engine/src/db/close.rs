//! Closing: background work stopped, acknowledged writes made durable, the WAL ended with
//! its closing record, the manifest told where that record is, and the lock released last.
//! `Drop` does the same without the sync (best effort: buffered writes go to the OS).

use super::{lock, Db};
use crate::batch::encode_closing;
use crate::error::{Error, Result};
use crate::manifest::VersionEdit;
use crate::marks::Mark;
use std::sync::atomic::Ordering;

impl Db {
    /// Stops background work and makes every acknowledged write durable.
    pub fn close(self) -> Result<()> {
        self.shutdown(true)
    }

    fn shutdown(&self, sync: bool) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.stop_and_sync(sync);
        // Last: nothing writes after this, so another process may open the database.
        drop(lock(&self.inner.dir_lock).take());
        result
    }

    fn stop_and_sync(&self, sync: bool) -> Result<()> {
        if self.inner.read_only {
            // No threads, nothing buffered, nothing to mark closed.
            return Ok(());
        }
        {
            let mut background = lock(&self.inner.jobs.state);
            background.shutdown = true;
            self.inner.jobs.wake.notify_all();
        }
        let handles = std::mem::take(&mut *lock(&self.threads));
        // A panic there is a broken invariant; its guard poisoned the database. Report it
        // rather than panic here (this may run inside `Drop`, during an unwind).
        let panicked = handles
            .into_iter()
            .map(|handle| handle.join().is_err())
            .filter(|&failed| failed)
            .count();
        if panicked > 0 {
            return Err(Error::Poisoned {
                reason: "a background thread panicked".into(),
            });
        }
        // Tables an iterator held when their compaction finished.
        self.inner.remove_unreferenced_tables();
        let mut writer = lock(&self.inner.commit.writer);
        // Poisoned (perhaps by background work that failed while this close waited for it):
        // the acknowledged writes still buffered cannot be made durable, so the close must
        // not report that they were (found by the concurrent sweep; corpus/0004).
        if let Some(reason) = self.inner.poison.reason() {
            return Err(Error::Poisoned { reason });
        }
        let result = if sync {
            writer.wal.sync().and_then(|()| {
                // The closing record says the log is durable through here, so that damage to
                // any record before it is corruption rather than a torn tail (the records of
                // unsynced writes carry no such mark of their own).
                let mut payload = Vec::new();
                encode_closing(
                    &mut payload,
                    writer.last_sequence + 1,
                    writer.wal.synced_through(),
                    0,
                );
                // Where the record starts: past `end()` if the block's trailer had to be
                // padded (found by the sweep: corpus/0006).
                let closing_offset = writer.wal.add_record(&payload);
                writer.wal.sync()?;
                let marks = &self.inner.options.marks;
                marks.reach(Mark::CloseWalClosed);
                // And the manifest says where the closing record is: a WAL cut at a record
                // boundary after a clean close would otherwise read as a crash's early end.
                let mut state = lock(&self.inner.state);
                self.inner.poison.check()?;
                state.manifest.append(&VersionEdit {
                    closed_wal: Some((writer.wal_number, closing_offset)),
                    ..VersionEdit::default()
                })?;
                marks.leave(Mark::CloseWalClosed);
                Ok(())
            })
        } else {
            writer.wal.flush()
        };
        self.inner.poison_on_error(result)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Best effort: hand buffered writes to the OS. Durability needs `close` or `sync`.
        let _ = self.shutdown(false);
    }
}
