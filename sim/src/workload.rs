//! The workload plan: every step of a run, drawn up front from the seed's workload stream
//! (so removing a step while shrinking leaves the others as they were), with the engine
//! options and the crash points drawn from streams of their own.
//!
//! Workload 2 (issue 12) adds snapshots and iterators from a stream of their own
//! (`snapshots`): for each step it draws whether the step becomes one of them — take a
//! snapshot, read at one (a point read or a scan), release one, or an iterator over the live
//! database (reverse, `seek`/`seek_for_prev`, a bounded mix of `next`/`next_back`, bounds
//! inclusive or exclusive). The workload stream draws every step's ordinary operation first
//! all the same, so the steps that stay ordinary are the ones workload 1 drew. Cases saved
//! before it (no `workload` field) keep workload 1.

use crate::case::{stream_seed, Case, Fault};
use std::ops::Bound;
use strata_engine::{Compression, Options, WalRecovery};
use strata_vfs::sim::SimRng;

/// One write inside a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Set a key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Vec<u8>),
}

/// One workload operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A put, delete or atomic batch.
    Write {
        mutations: Vec<Mutation>,
        sync: bool,
    },
    /// A point read.
    Get(Vec<u8>),
    /// A range scan `[lower, upper)`.
    Scan(Option<Vec<u8>>, Option<Vec<u8>>),
    /// `Db::flush`.
    Flush,
    /// `Db::sync`.
    Sync,
    /// One step of background work (`Db::maintenance`).
    Maintenance,
    /// `Db::close` and open again.
    Reopen,
    /// `Db::snapshot`, held until released (or until the engine goes). At most
    /// [`MAX_SNAPSHOTS`] are held; taking one more releases the oldest.
    TakeSnapshot,
    /// A point read at the `pick % held`-th held snapshot (oldest first); nothing if none
    /// is held.
    SnapshotGet { pick: u64, key: Vec<u8> },
    /// A scan at a held snapshot, picked the same way.
    SnapshotScan { pick: u64, scan: IterPlan },
    /// Releases a held snapshot, picked the same way.
    ReleaseSnapshot { pick: u64 },
    /// An iterator over the live database.
    Iterate(IterPlan),
}

/// The snapshots a run holds at most at once (all clients together).
pub const MAX_SNAPSHOTS: usize = 4;

/// One call on an iterator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// `next()`.
    Next,
    /// `next_back()`.
    Back,
    /// `seek(key)`.
    Seek(Vec<u8>),
    /// `seek_for_prev(key)`.
    SeekForPrev(Vec<u8>),
}

/// An iterator's bounds and calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterPlan {
    /// The lower bound.
    pub lower: Bound<Vec<u8>>,
    /// The upper bound.
    pub upper: Bound<Vec<u8>>,
    /// The calls, in order.
    pub moves: Vec<Move>,
    /// Then `next()` (or `next_back()`) until the end.
    pub drain: Option<Move>,
}

/// A planned step: the operation and, if a crash is planned, how many VFS operations after
/// the step starts the machine halts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to do.
    pub op: Op,
    /// Halt the machine this many VFS operations into the step.
    pub crash_after: Option<u64>,
}

/// The whole plan of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Step>,
    /// Engine options drawn for this seed.
    pub options: Options,
    /// The key space (for sampled point reads after recovery).
    pub keys: Vec<Vec<u8>>,
}

/// Appends `value` in decimal, zero-padded to `width` digits: what `format!("{value:0w$}")`
/// writes, through `itoa` rather than the formatting machinery (key names were 2% of a
/// sequential sweep).
fn push_decimal(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

fn key_name(index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(8);
    key.extend_from_slice(b"key");
    push_decimal(&mut key, index, 5);
    key
}

fn value(rng: &mut SimRng, step: usize, size_class: u64) -> Vec<u8> {
    let len = match size_class {
        0 => rng.below(12) as usize,
        1 => 12 + rng.below(200) as usize,
        _ => 33_000 + rng.below(40_000) as usize,
    };
    let mut value = Vec::with_capacity(len.max(24));
    value.push(b's');
    push_decimal(&mut value, step as u64, 1);
    value.push(b':');
    let fill = b'a' + (rng.below(26) as u8);
    value.resize(len.max(value.len()), fill);
    value
}

/// Engine options for the seed: small memtables and blocks so that flushes and WAL
/// rotations happen within a few hundred operations.
pub fn options_for(seed: u64) -> Options {
    let mut rng = SimRng::new(stream_seed(seed, "options"));
    let memtable_size = 1024 << rng.below(5);
    let max_immutable_memtables = 1 + rng.below(3) as usize;
    let block_size = 256 << rng.below(4);
    let wal_preallocate = [0, 4096, 32 * 1024][rng.below(3) as usize];
    let wal_buffer_size = [0, 256, 4096][rng.below(3) as usize];
    let block_cache_size = [0, 64 * 1024][rng.below(2) as usize];
    // Compaction: tiny levels and tables, so that compactions happen within a few hundred
    // operations.
    let level0_compaction_trigger = 2 + rng.below(3) as usize;
    let level0_slowdown_trigger = level0_compaction_trigger + rng.below(3) as usize;
    let level0_stop_trigger = level0_slowdown_trigger + 1 + rng.below(3) as usize;
    let mut options = Options {
        memtable_size,
        max_immutable_memtables,
        block_size,
        wal_preallocate,
        wal_buffer_size,
        background_work: false,
        block_cache_size,
        bloom_bits_per_key: [0, 10][rng.below(2) as usize],
        level0_compaction_trigger,
        level0_slowdown_trigger,
        level0_stop_trigger,
        level_base_bytes: 4096 << rng.below(4),
        level_size_ratio: 2 + rng.below(9),
        target_file_size: 1024 << rng.below(4),
        // A quarter of the seeds recover past WAL damage instead of refusing to open: every
        // recovery mode the engine offers is swept.
        wal_recovery: if rng.chance(0.25) {
            WalRecovery::PointInTime
        } else {
            WalRecovery::Strict
        },
        // Drawn last, so that the draws above stay what they were: compression off, LZ4
        // everywhere (the default), or level 0 raw and LZ4 below (a tree of both kinds).
        compression_per_level: match rng.below(3) {
            0 => Vec::new(),
            1 => vec![Compression::Lz4],
            _ => vec![Compression::None, Compression::Lz4],
        },
        // After compression, for the same reason: a quarter of the seeds keep one to three
        // table files open, so that reads reopen files the table cache closed, and
        // compactions remove inputs an iterator still reads.
        max_open_files: if rng.chance(0.25) {
            1 + rng.below(3) as usize
        } else {
            Options::default().max_open_files
        },
        ..Options::default()
    };
    // After the table cache, for the same reason: a third of the seeds that compress with
    // LZ4 use zstd instead (everywhere, or below a raw level 0), at a fast level or zstd's
    // default, so that tables of all three block types are written, read, damaged and
    // compacted into one another.
    if rng.chance(1.0 / 3.0) {
        let level = [1, 3][rng.below(2) as usize];
        for compression in &mut options.compression_per_level {
            if *compression == Compression::Lz4 {
                *compression = Compression::Zstd { level };
            }
        }
    }
    options
}

/// A key between two of the key space's (or before or after all of them), or one of them.
fn seek_key(rng: &mut SimRng, key_count: u64) -> Vec<u8> {
    match rng.below(8) {
        0 => b"a".to_vec(),
        1 => b"z".to_vec(),
        2..=4 => {
            // "key00042" < "key000425" < "key00043"
            let mut key = key_name(rng.below(key_count + 1));
            key.push(b'5');
            key
        }
        _ => key_name(rng.below(key_count + 1)),
    }
}

/// An iterator's bounds and calls: a whole scan in either direction, a seek and a few steps,
/// or a mix of both ends.
fn iter_plan(rng: &mut SimRng, key_count: u64) -> IterPlan {
    let a = rng.below(key_count);
    let b = rng.below(key_count);
    // Now and then an inverted range, which holds nothing.
    let (low, high) = if rng.chance(0.03) {
        (a.max(b) + 1, a.min(b))
    } else {
        (a.min(b), a.max(b))
    };
    let lower = match rng.below(10) {
        0 | 1 => Bound::Unbounded,
        2 | 3 => Bound::Excluded(key_name(low)),
        _ => Bound::Included(key_name(low)),
    };
    let upper = match rng.below(10) {
        0 | 1 => Bound::Unbounded,
        2 | 3 => Bound::Included(key_name(high)),
        _ => Bound::Excluded(key_name(high + 1)),
    };
    let steps = 1 + rng.below(8) as usize;
    let (moves, drain) = match rng.below(10) {
        0 | 1 => (Vec::new(), Some(Move::Next)),
        2..=4 => (Vec::new(), Some(Move::Back)),
        5 | 6 => {
            let mut moves = vec![Move::Seek(seek_key(rng, key_count))];
            moves.extend(std::iter::repeat_n(Move::Next, steps));
            (moves, rng.chance(0.2).then_some(Move::Next))
        }
        7 | 8 => {
            let mut moves = vec![Move::SeekForPrev(seek_key(rng, key_count))];
            moves.extend(std::iter::repeat_n(Move::Back, steps));
            (moves, rng.chance(0.2).then_some(Move::Back))
        }
        _ => {
            let moves = (0..2 + rng.below(10))
                .map(|_| match rng.below(10) {
                    0..=3 => Move::Next,
                    4..=7 => Move::Back,
                    8 => Move::Seek(seek_key(rng, key_count)),
                    _ => Move::SeekForPrev(seek_key(rng, key_count)),
                })
                .collect();
            let drain = match rng.below(4) {
                0 => Some(Move::Next),
                1 => Some(Move::Back),
                _ => None,
            };
            (moves, drain)
        }
    };
    IterPlan {
        lower,
        upper,
        moves,
        drain,
    }
}

/// Workload 2: whether step becomes a snapshot or iterator step, and which (about one step
/// in six).
fn snapshot_step(rng: &mut SimRng, key_count: u64, hot: u64) -> Option<Op> {
    let roll = rng.below(100);
    let pick = rng.below(MAX_SNAPSHOTS as u64 * 2);
    Some(match roll {
        0..=2 => Op::TakeSnapshot,
        3..=8 => Op::SnapshotGet {
            pick,
            key: if rng.chance(0.5) {
                key_name(rng.below(hot))
            } else {
                key_name(rng.below(key_count))
            },
        },
        9..=11 => Op::SnapshotScan {
            pick,
            scan: iter_plan(rng, key_count),
        },
        12 => Op::ReleaseSnapshot { pick },
        13..=15 => Op::Iterate(iter_plan(rng, key_count)),
        _ => return None,
    })
}

/// Draws the plan of `case`.
pub fn plan(case: &Case) -> Plan {
    let mut rng = SimRng::new(stream_seed(case.seed, "workload"));
    let mut crash_rng = SimRng::new(stream_seed(case.seed, "crashes"));
    let mut snapshot_rng = SimRng::new(stream_seed(case.seed, "snapshots"));
    let key_count = 8 + rng.below(120);
    let keys: Vec<Vec<u8>> = (0..key_count).map(key_name).collect();
    let hot = 1 + key_count / 8;
    let sync_rate = [0.05, 0.2, 0.5][rng.below(3) as usize];
    let large_rate = [0.0, 0.01, 0.03][rng.below(3) as usize];
    // About three crashes per 1,000 steps (plus the final one every run ends with). The
    // rate does not depend on `case.ops`, so a shorter run is a prefix of a longer one.
    let crash_rate = 0.003;
    let pick_key = |rng: &mut SimRng| -> Vec<u8> {
        if rng.chance(0.5) {
            key_name(rng.below(hot))
        } else {
            key_name(rng.below(key_count))
        }
    };
    let mut steps = Vec::with_capacity(case.ops);
    for step in 0..case.ops {
        let size_class = |rng: &mut SimRng| {
            if rng.chance(large_rate) {
                2
            } else {
                rng.below(2)
            }
        };
        let roll = rng.below(100);
        let op = match roll {
            0..=39 => {
                let key = pick_key(&mut rng);
                let class = size_class(&mut rng);
                Op::Write {
                    mutations: vec![Mutation::Put(key, value(&mut rng, step, class))],
                    sync: rng.chance(sync_rate),
                }
            }
            40..=49 => Op::Write {
                mutations: vec![Mutation::Delete(pick_key(&mut rng))],
                sync: rng.chance(sync_rate),
            },
            50..=57 => {
                let len = 2 + rng.below(6);
                let mut mutations = Vec::new();
                for _ in 0..len {
                    let key = pick_key(&mut rng);
                    if rng.chance(0.25) {
                        mutations.push(Mutation::Delete(key));
                    } else {
                        let class = size_class(&mut rng);
                        mutations.push(Mutation::Put(key, value(&mut rng, step, class)));
                    }
                }
                Op::Write {
                    mutations,
                    sync: rng.chance(sync_rate),
                }
            }
            58..=77 => Op::Get(pick_key(&mut rng)),
            78..=82 => {
                let a = rng.below(key_count);
                let b = rng.below(key_count);
                let lower = if rng.chance(0.2) {
                    None
                } else {
                    Some(key_name(a.min(b)))
                };
                let upper = if rng.chance(0.2) {
                    None
                } else {
                    Some(key_name(a.max(b) + 1))
                };
                Op::Scan(lower, upper)
            }
            83..=85 => Op::Flush,
            86..=87 => Op::Sync,
            88..=98 => Op::Maintenance,
            _ => Op::Reopen,
        };
        let op = match case.workload {
            1 => op,
            _ => snapshot_step(&mut snapshot_rng, key_count, hot).unwrap_or(op),
        };
        let crash_after = if case.has(Fault::Crash) && crash_rng.chance(crash_rate) {
            Some(crash_rng.below(40))
        } else {
            None
        };
        steps.push(Step { op, crash_after });
    }
    Plan {
        steps,
        options: Options {
            // Half the seeds of a profile whose disks have powersafe overwrite trust it
            // (no WAL padding), from a stream of its own; a profile without it never does.
            powersafe_overwrite: case.fs_profile.rules().powersafe_overwrite
                && SimRng::new(stream_seed(case.seed, "powersafe")).chance(0.5),
            ..options_for(case.seed)
        },
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        let mut values: Vec<u64> = (0..2_000).collect();
        values.extend([9_999, 10_000, 99_999, 100_000, 123_456_789, u64::MAX]);
        for value in values {
            for width in [1, 5] {
                let mut out = b"x".to_vec();
                push_decimal(&mut out, value, width);
                assert_eq!(
                    out,
                    format!("x{value:0width$}").into_bytes(),
                    "{value} {width}"
                );
            }
            assert_eq!(key_name(value), format!("key{value:05}").into_bytes());
        }
    }
}
