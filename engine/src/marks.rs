//! Coverage marks: named points on the engine's crash-relevant paths, in the style of
//! TigerBeetle's `testing/marks.zig`.
//!
//! Why: a crash sweep that passes says nothing about the paths it never took. A seed that
//! never crashes between a table's fsync and its manifest edit, or never recovers from a
//! torn manifest, proves nothing about them, and a change to the workload or the engine can
//! make such a path unreachable without any test failing. Marks make the coverage visible
//! and testable: the simulator counts, per run, how often each mark was *reached*, how often
//! the machine *crashed at* it, and how often the recovery after such a crash was verified
//! (*recovered from*); its sweep prints the table, and a test fails when the standard sweep
//! misses a mark.
//!
//! Each mark opens a *window* (its doc says where the window ends): a crash while the mark
//! is the most recently reached one, with its window still open, counts as a crash at it.
//! The window of a flush's table-synced mark, for example, runs until the manifest edit that
//! names the table is durable: exactly the crash that must leave the table unlisted and the
//! WAL replayed. A few marks are points with no window (a crash is never counted at them).
//!
//! Cost: [`Marks`] is disabled by default (`Options::marks`), and a disabled handle is one
//! `None` test per point; marks sit on rare paths (a job's phases, a rotation, a recovery) and
//! one on the commit path (once per commit group). An enabled handle is a few relaxed atomic
//! operations; nothing the engine does depends on it (marks only observe).
//!
//! The counters belong to one handle (one run), never to a static: a sweep runs many seeds
//! on parallel threads, each with its own handle in its own `Options`.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

macro_rules! marks {
    ($(
        $(#[doc = $about:literal])+
        $variant:ident = $name:literal, window: $window:literal;
    )+) => {
        /// A named point of the engine; see the module documentation. Each variant's doc
        /// says what was reached and where its window ends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Mark {
            $(
                $(#[doc = $about])+
                #[doc = ""]
                #[doc = concat!("Window: ", $window)]
                $variant,
            )+
        }

        impl Mark {
            /// Every mark, in the order the tables list them (commit, flush, compaction,
            /// close, recovery).
            pub const ALL: &'static [Mark] = &[$(Mark::$variant),+];

            /// The mark's name, as the sweep's tables print it (`flush_table_synced`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Mark::$variant => $name,)+
                }
            }

            /// What reaching the mark means, in a sentence.
            pub fn about(self) -> &'static str {
                match self {
                    $(Mark::$variant => concat!($($about),+).trim_ascii(),)+
                }
            }

            /// Where the mark's window ends (`None`: a point, at which no crash is counted).
            pub fn window(self) -> Option<&'static str> {
                let window = match self {
                    $(Mark::$variant => $window,)+
                };
                (window != "none").then_some(window)
            }
        }
    };
}

marks! {
    /// A commit group carried the batches of more than one writer, and its WAL records were
    /// appended (and synced, if any writer asked).
    GroupCommitSeveralWriters = "group_commit_several_writers",
        window: "the next commit group of one writer (a crash may keep a prefix of the group's batches)";
    /// A rotation created the next WAL and made its name durable; the old WAL's closing
    /// record, which names it, is not durable yet.
    WalSuccessorCreated = "wal_successor_created",
        window: "the old WAL's closing record is synced";
    /// A writer found level 0 at its stop trigger and waits for compaction (or, without
    /// background work, compacts itself).
    WriteStallStop = "write_stall_stop",
        window: "the stall ends";
    /// A flush's table is durable (synced, and its name), its manifest edit not yet.
    FlushTableSynced = "flush_table_synced",
        window: "the edit naming the table is durable";
    /// Writes committed while a flush wrote its table (the flush of an immutable memtable
    /// while writes continue).
    FlushDuringWrites = "flush_during_writes",
        window: "none";
    /// A flush's manifest edit is durable; the WAL it made obsolete is not deleted yet.
    FlushWalObsolete = "flush_wal_obsolete",
        window: "the obsolete WAL is deleted";
    /// A compaction's output was split: it opened a second output table.
    CompactionSplitOutput = "compaction_split_output",
        window: "every output is synced";
    /// A compaction's outputs are durable (synced, and their names), its manifest edit not
    /// yet.
    CompactionOutputsSynced = "compaction_outputs_synced",
        window: "the edit naming the outputs is durable";
    /// A compaction's manifest edit is durable; its inputs are not deleted yet.
    CompactionInputsObsolete = "compaction_inputs_obsolete",
        window: "the inputs are deleted";
    /// A compaction's input outlived the edit that deleted it: a reader of an older version
    /// still held it, so its file stays until a later removal pass.
    ObsoleteTableHeld = "obsolete_table_held",
        window: "a removal pass finds every such table unreferenced and removes it";
    /// A read opened a table file again: the table cache (`max_open_files`) had closed it.
    TableFileReopened = "table_file_reopened",
        window: "none";
    /// A compaction moves its single input a level down by a manifest edit alone.
    TrivialMove = "trivial_move",
        window: "the edit is durable";
    /// `Db::close` made the WAL's closing record durable; the manifest's record of the clean
    /// close is not durable yet.
    CloseWalClosed = "close_wal_closed",
        window: "the manifest records the close";
    /// Recovery found that the manifest records a clean close.
    RecoveryAfterCleanClose = "recovery_after_clean_close",
        window: "CURRENT names the recovery's new manifest";
    /// Recovery found a torn last edit at the manifest's end.
    RecoveryTornManifestTail = "recovery_torn_manifest_tail",
        window: "CURRENT names the recovery's new manifest";
    /// Recovery replayed records from two or more WALs.
    RecoverySeveralWals = "recovery_several_wals",
        window: "CURRENT names the recovery's new manifest";
    /// Recovery found a torn tail at the end of the newest WAL, and stopped there.
    RecoveryTornWalTail = "recovery_torn_wal_tail",
        window: "CURRENT names the recovery's new manifest";
    /// A point-in-time recovery went past damage to durable WAL records.
    RecoveryPointInTime = "recovery_point_in_time",
        window: "CURRENT names the recovery's new manifest";
    /// Recovery's tables and its new manifest are durable; `CURRENT` does not name the
    /// manifest yet.
    RecoveryManifestWritten = "recovery_manifest_written",
        window: "CURRENT names the new manifest";
    /// Recovery deletes the files it proved obsolete (best effort).
    RecoveryObsoleteRemoved = "recovery_obsolete_removed",
        window: "the last removal";
    /// Recovery moves the files it could not prove obsolete into `lost/`.
    RecoverySetAside = "recovery_set_aside",
        window: "the moves are durable";
}

/// How many marks there are.
const COUNT: usize = Mark::ALL.len();

/// `latest` when no window is open.
const NONE: usize = usize::MAX;

impl Mark {
    fn index(self) -> usize {
        self as usize
    }

    /// The mark called `name`, if any.
    pub fn from_name(name: &str) -> Option<Mark> {
        Mark::ALL.iter().copied().find(|mark| mark.name() == name)
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One mark's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkCount {
    /// The mark.
    pub mark: Mark,
    /// Times the engine reached it.
    pub reached: u64,
    /// Machine crashes while it was the most recently reached mark and its window was open.
    pub crashed_at: u64,
    /// Of those crashes, the ones whose recovery the owner verified.
    pub recovered_from: u64,
}

/// The counters of one enabled handle.
struct Registry {
    reached: [AtomicU64; COUNT],
    crashed_at: [AtomicU64; COUNT],
    recovered_from: [AtomicU64; COUNT],
    /// Crashes counted in `crashed_at` whose recovery is not verified yet.
    awaiting_recovery: [AtomicU64; COUNT],
    /// The index of the most recently reached mark whose window is open, or [`NONE`].
    latest: AtomicUsize,
    /// While this holds, nothing is counted and no window opens or closes.
    paused: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

fn counters() -> [AtomicU64; COUNT] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// A set of mark counters, shared by the clones of one handle: disabled by default (it
/// counts nothing); [`Marks::enabled`] makes one that counts.
///
/// The engine reaches marks and opens and closes their windows; the owner of the database
/// (the simulator) says when the machine crashed ([`Marks::crashed`]) and when the recovery
/// after it was verified ([`Marks::recovered`]), since only it knows.
#[derive(Clone, Default)]
pub struct Marks {
    registry: Option<Arc<Registry>>,
}

impl Marks {
    /// A handle that counts nothing (the default).
    pub fn disabled() -> Marks {
        Marks::default()
    }

    /// A handle that counts.
    pub fn enabled() -> Marks {
        Marks::build(None)
    }

    /// A handle that counts, except while `paused` returns true: a simulator passes "the
    /// machine has halted", since after a power cut nothing the process still does happens.
    pub fn paused_while(paused: impl Fn() -> bool + Send + Sync + 'static) -> Marks {
        Marks::build(Some(Box::new(paused)))
    }

    fn build(paused: Option<Box<dyn Fn() -> bool + Send + Sync>>) -> Marks {
        Marks {
            registry: Some(Arc::new(Registry {
                reached: counters(),
                crashed_at: counters(),
                recovered_from: counters(),
                awaiting_recovery: counters(),
                latest: AtomicUsize::new(NONE),
                paused,
            })),
        }
    }

    /// Whether the handle counts.
    pub fn is_enabled(&self) -> bool {
        self.registry.is_some()
    }

    /// The registry, unless disabled or paused.
    fn active(&self) -> Option<&Registry> {
        let registry = self.registry.as_deref()?;
        match &registry.paused {
            Some(paused) if paused() => None,
            _ => Some(registry),
        }
    }

    /// Counts `mark` as reached and opens its window (a point's: counts it only).
    pub(crate) fn reach(&self, mark: Mark) {
        if let Some(registry) = self.active() {
            registry.reached[mark.index()].fetch_add(1, Ordering::Relaxed);
            if mark.window().is_some() {
                registry.latest.store(mark.index(), Ordering::Relaxed);
            }
        }
    }

    /// Closes `mark`'s window, if it is the most recently reached mark's.
    pub(crate) fn leave(&self, mark: Mark) {
        if let Some(registry) = self.active() {
            let _ = registry.latest.compare_exchange(
                mark.index(),
                NONE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Closes each of `marks`' windows, as [`Marks::leave`].
    pub(crate) fn leave_each(&self, marks: &[Mark]) {
        for &mark in marks {
            self.leave(mark);
        }
    }

    /// The most recently reached mark whose window is open.
    pub fn latest(&self) -> Option<Mark> {
        let registry = self.registry.as_deref()?;
        Mark::ALL
            .get(registry.latest.load(Ordering::Relaxed))
            .copied()
    }

    /// The machine crashed: counts a crash at the latest mark with an open window (and
    /// returns it), closes that window, and keeps the crash for [`Marks::recovered`].
    pub fn crashed(&self) -> Option<Mark> {
        let registry = self.registry.as_deref()?;
        let mark = Mark::ALL
            .get(registry.latest.swap(NONE, Ordering::Relaxed))
            .copied()?;
        registry.crashed_at[mark.index()].fetch_add(1, Ordering::Relaxed);
        registry.awaiting_recovery[mark.index()].fetch_add(1, Ordering::Relaxed);
        Some(mark)
    }

    /// The recovery after the crashes counted since the last call was verified: each counts
    /// as recovered from.
    pub fn recovered(&self) {
        if let Some(registry) = self.registry.as_deref() {
            for (waiting, recovered) in registry
                .awaiting_recovery
                .iter()
                .zip(&registry.recovered_from)
            {
                recovered.fetch_add(waiting.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    /// The process ended without a machine crash (a clean close, a restart): the open
    /// window, if any, closes with it.
    pub fn process_ended(&self) {
        if let Some(registry) = self.registry.as_deref() {
            registry.latest.store(NONE, Ordering::Relaxed);
        }
    }

    /// Every mark's counts, in [`Mark::ALL`]'s order (all zero when disabled).
    pub fn counts(&self) -> Vec<MarkCount> {
        let load = |counters: &[AtomicU64; COUNT], mark: Mark| {
            counters[mark.index()].load(Ordering::Relaxed)
        };
        Mark::ALL
            .iter()
            .map(|&mark| match self.registry.as_deref() {
                Some(registry) => MarkCount {
                    mark,
                    reached: load(&registry.reached, mark),
                    crashed_at: load(&registry.crashed_at, mark),
                    recovered_from: load(&registry.recovered_from, mark),
                },
                None => MarkCount {
                    mark,
                    reached: 0,
                    crashed_at: 0,
                    recovered_from: 0,
                },
            })
            .collect()
    }
}

impl fmt::Debug for Marks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.is_enabled() {
            true => f.write_str("Marks(enabled)"),
            false => f.write_str("Marks(disabled)"),
        }
    }
}

/// Two handles are equal when both count or neither does (options compare equal whatever
/// counters their marks count into).
impl PartialEq for Marks {
    fn eq(&self, other: &Marks) -> bool {
        self.is_enabled() == other.is_enabled()
    }
}

impl Eq for Marks {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn count(marks: &Marks, mark: Mark) -> MarkCount {
        marks.counts()[mark.index()]
    }

    #[test]
    fn names_are_unique_and_every_mark_is_listed_in_order() {
        for (index, mark) in Mark::ALL.iter().enumerate() {
            assert_eq!(mark.index(), index);
            assert_eq!(Mark::from_name(mark.name()), Some(*mark));
            assert!(!mark.about().is_empty());
        }
        assert_eq!(Mark::FlushDuringWrites.window(), None);
        assert!(Mark::FlushTableSynced.window().is_some());
    }

    #[test]
    fn a_crash_counts_at_the_latest_open_window_and_waits_for_its_recovery() {
        let marks = Marks::enabled();
        marks.reach(Mark::FlushTableSynced);
        marks.reach(Mark::FlushDuringWrites); // a point: the window stays the flush's
        assert_eq!(marks.latest(), Some(Mark::FlushTableSynced));
        marks.leave(Mark::WalSuccessorCreated); // not the latest: nothing closes
        assert_eq!(marks.crashed(), Some(Mark::FlushTableSynced));
        assert_eq!(marks.crashed(), None, "the crash closed the window");
        marks.reach(Mark::FlushTableSynced);
        marks.leave(Mark::FlushTableSynced);
        assert_eq!(marks.crashed(), None);
        let flush = count(&marks, Mark::FlushTableSynced);
        assert_eq!(
            (flush.reached, flush.crashed_at, flush.recovered_from),
            (2, 1, 0)
        );
        marks.recovered();
        marks.recovered();
        assert_eq!(count(&marks, Mark::FlushTableSynced).recovered_from, 1);
        assert_eq!(count(&marks, Mark::FlushDuringWrites).reached, 1);
        marks.reach(Mark::TrivialMove);
        marks.process_ended();
        assert_eq!(marks.crashed(), None);
    }

    #[test]
    fn disabled_and_paused_handles_count_nothing() {
        let disabled = Marks::default();
        disabled.reach(Mark::TrivialMove);
        assert_eq!(disabled.crashed(), None);
        assert!(disabled.counts().iter().all(|c| c.reached == 0));
        assert_eq!(disabled, Marks::disabled());
        assert_ne!(disabled, Marks::enabled());

        let halted = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&halted);
        let marks = Marks::paused_while(move || flag.load(Ordering::Relaxed));
        marks.reach(Mark::CompactionOutputsSynced);
        halted.store(true, Ordering::Relaxed);
        marks.leave(Mark::CompactionOutputsSynced);
        marks.reach(Mark::TrivialMove);
        assert_eq!(marks.crashed(), Some(Mark::CompactionOutputsSynced));
        assert_eq!(count(&marks, Mark::TrivialMove).reached, 0);
    }
}
