//! The workload plan: every step of a run, drawn up front from the seed's workload stream
//! (so removing a step while shrinking leaves the others as they were), with the engine
//! options and the crash points drawn from streams of their own.

use crate::case::{stream_seed, Case, Fault};
use strata_engine::{Options, WalRecovery};
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

fn key_name(index: u64) -> Vec<u8> {
    format!("key{index:05}").into_bytes()
}

fn value(rng: &mut SimRng, step: usize, size_class: u64) -> Vec<u8> {
    let len = match size_class {
        0 => rng.below(12) as usize,
        1 => 12 + rng.below(200) as usize,
        _ => 33_000 + rng.below(40_000) as usize,
    };
    let mut value = format!("s{step}:").into_bytes();
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
    Options {
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
        ..Options::default()
    }
}

/// Draws the plan of `case`.
pub fn plan(case: &Case) -> Plan {
    let mut rng = SimRng::new(stream_seed(case.seed, "workload"));
    let mut crash_rng = SimRng::new(stream_seed(case.seed, "crashes"));
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
        let crash_after = if case.has(Fault::Crash) && crash_rng.chance(crash_rate) {
            Some(crash_rng.below(40))
        } else {
            None
        };
        steps.push(Step { op, crash_after });
    }
    Plan {
        steps,
        options: options_for(case.seed),
        keys,
    }
}
