//! A simulation case: everything that fixes one run, serializable so that a corpus file
//! reproduces it exactly. The seed fixes the workload, the engine options and every fault
//! decision; the rest says which faults are on and which planned steps a shrink removed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use strata_vfs::FsProfile;

/// The fault kinds a sweep can turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Crashes at random VFS operations (and during recovery).
    Crash,
    /// Torn sectors in unsynced data at a crash.
    Torn,
    /// fsync failures with fsyncgate semantics.
    Fsync,
    /// ENOSPC on writes.
    Enospc,
    /// EIO on reads.
    Eio,
    /// Bit flips in durable data of every file kind, after a crash.
    Bitflip,
    /// A file cut short, after a crash (operator error, a lost tail).
    Truncate,
    /// A file lost, after a crash.
    Lose,
    /// Misdirected writes: lost where meant, landed at another sector or file (`SimFs`).
    Misdirect,
    /// Lost writes: acknowledged and synced, never on the medium.
    LostWrite,
    /// Stale and misdirected reads: the medium's older bytes, or another sector's.
    StaleRead,
    /// Latent sector errors: durable sectors that later fail every read with EIO.
    Latent,
}

impl Fault {
    /// The default set (`--faults all`, and every sweep that names none): every kind but
    /// the medium's, whose seeds keep the traces they had before those existed.
    pub const DEFAULT: [Fault; 8] = [
        Fault::Crash,
        Fault::Torn,
        Fault::Fsync,
        Fault::Enospc,
        Fault::Eio,
        Fault::Bitflip,
        Fault::Truncate,
        Fault::Lose,
    ];

    /// The medium's faults (`--faults medium`): injected damage the engine may not survive
    /// without losing data, so a sweep counts what it detected (`sim/src/medium.rs`).
    pub const MEDIUM: [Fault; 4] = [
        Fault::Misdirect,
        Fault::LostWrite,
        Fault::StaleRead,
        Fault::Latent,
    ];

    /// Every kind, in a fixed order.
    pub const ALL: [Fault; 12] = [
        Fault::Crash,
        Fault::Torn,
        Fault::Fsync,
        Fault::Enospc,
        Fault::Eio,
        Fault::Bitflip,
        Fault::Truncate,
        Fault::Lose,
        Fault::Misdirect,
        Fault::LostWrite,
        Fault::StaleRead,
        Fault::Latent,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Torn => "torn",
            Fault::Fsync => "fsync",
            Fault::Enospc => "enospc",
            Fault::Eio => "eio",
            Fault::Bitflip => "bitflip",
            Fault::Truncate => "truncate",
            Fault::Lose => "lose",
            Fault::Misdirect => "misdirect",
            Fault::LostWrite => "lost-write",
            Fault::StaleRead => "stale-read",
            Fault::Latent => "latent",
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Fault, String> {
        Fault::ALL
            .iter()
            .copied()
            .find(|fault| fault.name() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault kind {text:?}; known: {}", known.join(","))
            })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A VFS wrapper that lies the way buggy storage stacks and engines do (the self-check:
/// the sweep must catch each of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liar {
    /// `sync` of a WAL file does nothing and returns Ok.
    WalSyncNoop,
    /// `sync_dir` does nothing and returns Ok.
    SyncDirNoop,
    /// A failed `sync` is reported as success.
    FailedSyncReportedOk,
    /// The third `rename` (the `CURRENT` switch of the first reopen) panics: a stand-in for
    /// an engine that panics, to check how a panic is reported (not a lie of storage, so
    /// not in [`Liar::ALL`]).
    PanicsAtThirdRename,
}

impl Liar {
    /// Every liar.
    pub const ALL: [Liar; 3] = [
        Liar::WalSyncNoop,
        Liar::SyncDirNoop,
        Liar::FailedSyncReportedOk,
    ];
}

/// How a case runs the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The production engine under the seeded scheduler: several client tasks, group commit,
    /// the flush and compaction threads (or, for some seeds, the embedded mode without them),
    /// simulated time.
    Concurrent,
    /// One client, one operation at a time, no background threads (`background_work =
    /// false`, the owner calls `maintenance`), no scheduler: the fastest mode, and the one
    /// every corpus file saved before the scheduler existed replays in.
    Sequential,
}

impl Mode {
    /// Corpus files written before modes existed ran sequentially.
    fn before_modes() -> Mode {
        Mode::Sequential
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Concurrent => "concurrent",
            Mode::Sequential => "sequential",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "concurrent" => Ok(Mode::Concurrent),
            "sequential" => Ok(Mode::Sequential),
            _ => Err(format!(
                "unknown mode {text:?}; known: concurrent, sequential"
            )),
        }
    }
}

/// Most client tasks a concurrent case draws.
pub const MAX_CLIENTS: usize = 8;

/// One simulation case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Fixes the workload, the engine options and every fault decision.
    pub seed: u64,
    /// Planned workload steps.
    pub ops: usize,
    /// Fault kinds turned on.
    pub faults: BTreeSet<Fault>,
    /// Planned steps a shrink removed (by index).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub skip: BTreeSet<usize>,
    /// Planned crash points a shrink removed (by step index).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub no_crash: BTreeSet<usize>,
    /// A lying VFS wrapper (self-check only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liar: Option<Liar>,
    /// How the engine runs.
    #[serde(default = "Mode::before_modes")]
    pub mode: Mode,
    /// Concurrent mode: this many client tasks instead of the 1 to [`MAX_CLIENTS`] the seed
    /// draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
    /// Concurrent mode: scheduling decisions a shrink replaced by "keep running the current
    /// task" (by decision index).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub no_switch: BTreeSet<u64>,
    /// Which workload the plan draws (`workload.rs`): 1, the original operations; 2 (now),
    /// with snapshots and iterators. Cases saved before the field existed keep 1, so their
    /// plans stay the ones they were shrunk on.
    #[serde(default = "workload_before_versions")]
    pub workload: u32,
    /// The filesystem persistence profile `SimFs` simulates (`strata sweep --fs-profile`).
    #[serde(default, skip_serializing_if = "FsProfile::is_classic")]
    pub fs_profile: FsProfile,
}

/// The workload [`Case::new`] draws.
pub const WORKLOAD: u32 = 2;

fn workload_before_versions() -> u32 {
    1
}

impl Case {
    /// The default case for a seed: `ops` steps, the given faults, concurrent mode.
    pub fn new(seed: u64, ops: usize, faults: BTreeSet<Fault>) -> Case {
        Case {
            seed,
            ops,
            faults,
            skip: BTreeSet::new(),
            no_crash: BTreeSet::new(),
            liar: None,
            mode: Mode::Concurrent,
            clients: None,
            no_switch: BTreeSet::new(),
            workload: WORKLOAD,
            fs_profile: FsProfile::Classic,
        }
    }

    /// Whether a fault kind is on.
    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }
}

/// Derives an independent stream seed from the run seed and a stream name, so that e.g.
/// turning a fault kind off does not change the workload (SplitMix64 over an FNV of the
/// name).
pub fn stream_seed(seed: u64, stream: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream.bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ hash;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
