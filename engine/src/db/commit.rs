//! The commit pipeline: group commit (a leader appends and syncs the WAL for every queued
//! writer), memtable rotation with a fresh WAL, and the write stalls that bound level 0.

use super::poison::PanicGuard;
use super::{lock, DbInner, Immutable};
use crate::batch::{encode_closing, BatchOp, WriteBatch};
use crate::error::{Error, Result};
use crate::filenames::wal_path;
use crate::marks::Mark;
use crate::memtable::Memtable;
use crate::stats::Counters;
use crate::wal::WalWriter;
use std::sync::Arc;
use std::time::Duration;
use strata_sched::{Condvar, Mutex, Runtime};

/// A WAL this many times `memtable_size` long rotates its memtable (see `prepare_group`).
const WAL_LIMIT_IN_MEMTABLES: u64 = 4;

/// The commit pipeline's locks: the queue of writers (with its two conditions) and the
/// writer state the leader appends under.
pub(super) struct CommitPipeline {
    pub(super) queue: Mutex<CommitQueue>,
    /// Signalled when a group is finished.
    pub(super) done: Condvar,
    /// Signalled when a batch is queued while a leader gathers its group.
    pub(super) arrival: Condvar,
    pub(super) writer: Mutex<WriterState>,
}

impl CommitPipeline {
    pub(super) fn new(runtime: &Runtime, writer: WriterState) -> CommitPipeline {
        CommitPipeline {
            queue: runtime.mutex(CommitQueue::default()),
            done: runtime.condvar(),
            arrival: runtime.condvar(),
            writer: runtime.mutex(writer),
        }
    }
}

pub(super) struct WriterState {
    pub(super) wal: WalWriter,
    pub(super) wal_number: u64,
    pub(super) memtable: Arc<Memtable>,
    pub(super) last_sequence: u64,
}

#[derive(Default)]
pub(super) struct CommitQueue {
    pub(super) pending: Vec<Pending>,
    /// The last group's emptied vector, which becomes `pending` when the next leader takes
    /// the queue: a vector a group, not an allocation a group.
    pub(super) spare: Vec<Pending>,
    pub(super) next_ticket: u64,
    /// Every ticket below this is finished.
    pub(super) done_below: u64,
    pub(super) failures: std::collections::BTreeMap<u64, Error>,
    /// The first sequence number of each finished ticket whose batch reached the WAL.
    pub(super) sequences: std::collections::BTreeMap<u64, u64>,
    pub(super) leader_active: bool,
    /// Size of the last committed group: how many writers are likely to be coming.
    pub(super) last_group: usize,
}

pub(super) struct Pending {
    pub(super) ticket: u64,
    pub(super) batch: WriteBatch,
    pub(super) sync: bool,
}

/// How long a commit leader waits for the writers of the last group to join its group.
const LEADER_GATHER_TIME: Duration = Duration::from_micros(100);

impl DbInner {
    pub(super) fn commit(&self, batch: WriteBatch, sync: bool) -> (Option<u64>, Result<()>) {
        let mut queue = lock(&self.commit.queue);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push(Pending {
            ticket,
            batch,
            sync,
        });
        if queue.leader_active {
            self.commit.arrival.notify_one();
        }
        loop {
            if queue.done_below > ticket {
                let sequence = queue.sequences.remove(&ticket);
                return match queue.failures.remove(&ticket) {
                    Some(error) => (sequence, Err(error)),
                    None => (sequence, Ok(())),
                };
            }
            if !queue.leader_active {
                queue.leader_active = true;
                // The writers of the last group were just woken and are coming back with
                // their next batch: wait a moment (at most 100 µs, only when a sync is wanted
                // and fewer writers than last time are queued, so never on a single-writer
                // or unsynced path) for them to join this group rather than wait a whole
                // fsync for the next one.
                if queue.pending.len() < queue.last_group
                    && queue.pending.iter().any(|pending| pending.sync)
                {
                    let deadline = self.options.runtime.now() + LEADER_GATHER_TIME;
                    while queue.pending.len() < queue.last_group {
                        let now = self.options.runtime.now();
                        if now >= deadline {
                            break;
                        }
                        queue = self.commit.arrival.wait_timeout(queue, deadline - now).0;
                    }
                }
                let spare = std::mem::take(&mut queue.spare);
                let mut group = std::mem::replace(&mut queue.pending, spare);
                queue.last_group = group.len();
                drop(queue);
                let first = group.first().map_or(ticket, |pending| pending.ticket);
                let last = group.last().map_or(ticket, |pending| pending.ticket);
                let guard = PanicGuard::new(self, Some(first..=last));
                let (first_sequence, result) = self.commit_group(&group);
                guard.disarm();
                queue = lock(&self.commit.queue);
                if let Some(mut sequence) = first_sequence {
                    for pending in &group {
                        queue.sequences.insert(pending.ticket, sequence);
                        sequence += pending.batch.len() as u64;
                    }
                }
                queue.leader_active = false;
                let last = group.last().map_or(ticket, |pending| pending.ticket);
                assert!(last >= ticket, "a leader's group includes its own batch");
                queue.done_below = last + 1;
                if let Err(error) = result {
                    for pending in &group {
                        queue.failures.insert(pending.ticket, error.clone());
                    }
                }
                self.commit.done.notify_all();
                group.clear();
                queue.spare = group;
                continue;
            }
            queue = self.commit.done.wait(queue);
        }
    }

    /// The leader's work: one WAL append (and at most one fsync) for the whole group.
    /// Returns the group's first sequence number if it reached the WAL.
    pub(super) fn commit_group(&self, group: &[Pending]) -> (Option<u64>, Result<()>) {
        let mut writer = lock(&self.commit.writer);
        if let Err(error) = self.prepare_group(&mut writer) {
            return (None, Err(error));
        }
        let writer = &mut *writer;
        let first_sequence = writer.last_sequence + 1;
        let wal_start = writer.wal.end();
        let user_bytes: usize = group.iter().map(|pending| pending.batch.user_bytes()).sum();
        let mut sequence = writer.last_sequence + 1;
        for pending in group {
            let (header, ops) = pending
                .batch
                .payload_parts(sequence, writer.wal.synced_through());
            writer.wal.add_record_parts(&[&header, ops]);
            sequence += pending.batch.len() as u64;
        }
        let sync = group.iter().any(|pending| pending.sync);
        let result = if sync {
            writer.wal.sync()
        } else if writer.wal.buffered() >= self.options.wal_buffer_size {
            writer.wal.flush()
        } else {
            Ok(())
        };
        if let Err(error) = self.poison_on_error(result) {
            return (Some(first_sequence), Err(error));
        }
        if group.len() > 1 {
            self.options.marks.reach(Mark::GroupCommitSeveralWriters);
        } else {
            self.options.marks.leave(Mark::GroupCommitSeveralWriters);
        }
        Counters::add(&self.counters.commit_groups, 1);
        Counters::add(
            &self.counters.multi_writer_groups,
            u64::from(group.len() > 1),
        );
        Counters::add(&self.counters.user_bytes, user_bytes as u64);
        Counters::add(&self.counters.wal_bytes, writer.wal.end() - wal_start);
        let mut version = first_sequence;
        for pending in group {
            for op in pending.batch.iter() {
                match op {
                    BatchOp::Put(key, value) => writer.memtable.insert(key, version, Some(value)),
                    BatchOp::Delete(key) => writer.memtable.insert(key, version, None),
                }
                version += 1;
            }
        }
        assert_eq!(version, sequence, "one sequence number per operation");
        writer.last_sequence = sequence - 1;
        // Published last: a reader sees the whole group or none of it.
        self.visible_sequence
            .store(writer.last_sequence, std::sync::atomic::Ordering::Release);
        (Some(first_sequence), Ok(()))
    }

    /// Before a group's WAL append: refuse if poisoned, apply write stalls, and rotate a full
    /// memtable.
    pub(super) fn prepare_group(&self, writer: &mut WriterState) -> Result<()> {
        self.check_writable()?;
        self.throttle()?;
        self.options.marks.leave(Mark::WriteStallStop);
        let memtable_bytes = writer.memtable.approximate_size();
        // The WAL may outgrow its memtable: each synced group pads the log to a sector
        // (`wal.rs`), so small synced writes take a sector each. Four memtables' worth of
        // WAL rotates it anyway, which bounds the WAL and its replay time.
        let wal_full = memtable_bytes > 0
            && writer.wal.end()
                >= WAL_LIMIT_IN_MEMTABLES.saturating_mul(self.options.memtable_size as u64);
        if memtable_bytes >= self.options.memtable_size || wal_full {
            self.make_room(writer)?;
        }
        Ok(())
    }

    /// Write stalls: a level 0 at its slowdown trigger costs a write group 1 ms (background
    /// mode); at its stop trigger, writers wait for compaction (or, without background work,
    /// compact themselves). This bounds read amplification under any write rate.
    pub(super) fn throttle(&self) -> Result<()> {
        let mut slowed = false;
        loop {
            self.check_writable()?;
            let level0 = self.read_view().version.level_len(0);
            if level0 < self.options.level0_slowdown_trigger {
                return Ok(());
            }
            if level0 < self.options.level0_stop_trigger {
                if self.options.background_work && !slowed {
                    Counters::add(&self.counters.slowdowns, 1);
                    self.options.runtime.sleep(Duration::from_millis(1));
                }
                return Ok(());
            }
            if !slowed {
                self.options.marks.reach(Mark::WriteStallStop);
            }
            slowed = true;
            Counters::add(&self.counters.stops, 1);
            if self.options.background_work {
                let background = lock(&self.jobs.state);
                self.jobs.wake.notify_all();
                let _unused = self
                    .jobs
                    .wake
                    .wait_timeout(background, Duration::from_millis(50));
            } else if !self.compact_once()? {
                return Ok(());
            }
        }
    }

    /// Makes the memtable immutable and starts a new one with a new WAL, first waiting for
    /// (or, without background work, doing) a flush if too many immutables are queued.
    pub(super) fn make_room(&self, writer: &mut WriterState) -> Result<()> {
        loop {
            self.check_writable()?;
            if lock(&self.state).immutables.len() < self.options.max_immutable_memtables {
                break;
            }
            if self.options.background_work {
                let background = lock(&self.jobs.state);
                if lock(&self.state).immutables.len() >= self.options.max_immutable_memtables {
                    let _unused = self
                        .jobs
                        .wake
                        .wait_timeout(background, Duration::from_millis(50));
                }
            } else {
                self.flush_oldest()?;
            }
        }
        let result = self.rotate(writer);
        self.poison_on_error(result)
    }

    pub(super) fn rotate(&self, writer: &mut WriterState) -> Result<()> {
        // The old WAL must be durable before the new one can hold synced writes, or a crash
        // could keep a later write and lose an earlier one.
        writer.wal.sync()?;
        let number = lock(&self.state).allocate_file_number();
        let file = self.vfs.create(&wal_path(&self.dir, number))?;
        self.vfs.sync_dir(&self.dir)?;
        self.options.marks.reach(Mark::WalSuccessorCreated);
        // The closing record names the successor, which exists durably by now: recovery
        // then notices a successor (or any later WAL) that goes missing, and a shortened
        // WAL. It is durable before the successor holds any record.
        let mut payload = Vec::new();
        encode_closing(
            &mut payload,
            writer.last_sequence + 1,
            writer.wal.synced_through(),
            number,
        );
        writer.wal.add_record(&payload);
        writer.wal.sync()?;
        self.options.marks.leave(Mark::WalSuccessorCreated);
        let memtable = Arc::new(Memtable::new(self.options.memtable_size));
        {
            let mut state = lock(&self.state);
            let old = std::mem::replace(&mut writer.memtable, Arc::clone(&memtable));
            state.immutables.push_back(Immutable {
                memtable: old,
                wal_number: writer.wal_number,
                last_sequence: writer.last_sequence,
            });
            state.memtable = memtable;
            state.current_wal_number = number;
            self.publish_view(&state);
        }
        writer.wal = WalWriter::new(file, self.options.wal_preallocate)
            .pad_syncs(!self.options.powersafe_overwrite);
        writer.wal_number = number;
        let mut background = lock(&self.jobs.state);
        background.requests += 1;
        self.jobs.wake.notify_all();
        Ok(())
    }
}
