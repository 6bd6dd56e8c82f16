//! The fault plan of the simulated filesystem: which faults are on, at what rate, and the
//! seeded random source every decision is drawn from.

use super::profile::FsProfile;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which faults the simulated filesystem injects, and how often. A rate of `0.0` turns a
/// fault off. Serializable so that a corpus file reproduces a run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// The unit in which unsynced data survives a crash (bytes, a power of two).
    pub sector_size: u64,
    /// If true, unsynced sectors of a file survive a crash in the order they were written
    /// (some prefix of them); if false, any subset survives.
    pub ordered_writes: bool,
    /// Probability that one unsynced sector survives a crash (unordered mode).
    pub unsynced_survival: f64,
    /// Probability that a sector at the edge of what survives is torn: a prefix of the new
    /// bytes followed by zeros, garbage or the old bytes.
    pub torn_write_rate: f64,
    /// Halt the machine when this operation index is reached (the operation does not happen).
    pub crash_at_op: Option<u64>,
    /// Probability that a `sync` or `sync_dir` fails with EIO (fsyncgate semantics for files).
    pub sync_failure_rate: f64,
    /// Writes that would grow the filesystem past this many visible bytes fail with ENOSPC.
    pub capacity_bytes: Option<u64>,
    /// Probability that any write fails with ENOSPC regardless of capacity.
    pub enospc_rate: f64,
    /// Probability that a read fails with EIO.
    pub read_error_rate: f64,
    /// Probability, per crash, that one bit of durable data is silently flipped.
    pub bitflip_rate: f64,
    /// The persistence rules of the filesystem simulated (`profile.rs`). Left out of the
    /// serialized form when it is the default, so configs written before profiles existed
    /// read and write the same.
    #[serde(skip_serializing_if = "FsProfile::is_classic")]
    pub profile: FsProfile,
    /// Probability that a write is misdirected: the medium never gets it where it was meant
    /// (as if lost there), and the next `sync` of the file lands its bytes at another sector
    /// of the same file or of another file (`medium.rs`). Like the other medium faults, left
    /// out of the serialized form when 0, so configs written before it read and write the
    /// same.
    #[serde(skip_serializing_if = "is_zero")]
    pub misdirected_write_rate: f64,
    /// Probability that a write is lost: acknowledged, even synced, it never reaches the
    /// medium (the process reads it until the next crash; after it, the old durable bytes).
    #[serde(skip_serializing_if = "is_zero")]
    pub lost_write_rate: f64,
    /// Probability that a read returns the wrong bytes: the medium's old (durable) bytes
    /// instead of newer ones the process wrote, or another sector's data (half each).
    #[serde(skip_serializing_if = "is_zero")]
    pub stale_read_rate: f64,
    /// Probability, per `sync` of a file, that one durable sector of some file becomes
    /// unreadable (a latent sector error): reads touching it fail with EIO, across crashes,
    /// until the sector is rewritten and synced.
    #[serde(skip_serializing_if = "is_zero")]
    pub latent_sector_rate: f64,
}

fn is_zero(rate: &f64) -> bool {
    *rate == 0.0
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig::none()
    }
}

impl FaultConfig {
    /// No injected faults; crashes (called explicitly) still lose unsynced data.
    pub fn none() -> Self {
        FaultConfig {
            sector_size: 4096,
            ordered_writes: false,
            unsynced_survival: 0.5,
            torn_write_rate: 0.0,
            crash_at_op: None,
            sync_failure_rate: 0.0,
            capacity_bytes: None,
            enospc_rate: 0.0,
            read_error_rate: 0.0,
            bitflip_rate: 0.0,
            profile: FsProfile::Classic,
            misdirected_write_rate: 0.0,
            lost_write_rate: 0.0,
            stale_read_rate: 0.0,
            latent_sector_rate: 0.0,
        }
    }

    /// Checks the configuration; returns what is wrong in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.sector_size == 0 || !self.sector_size.is_power_of_two() {
            return Err(format!(
                "sector_size must be a power of two, got {}",
                self.sector_size
            ));
        }
        for (name, rate) in [
            ("unsynced_survival", self.unsynced_survival),
            ("torn_write_rate", self.torn_write_rate),
            ("sync_failure_rate", self.sync_failure_rate),
            ("enospc_rate", self.enospc_rate),
            ("read_error_rate", self.read_error_rate),
            ("bitflip_rate", self.bitflip_rate),
            ("misdirected_write_rate", self.misdirected_write_rate),
            ("lost_write_rate", self.lost_write_rate),
            ("stale_read_rate", self.stale_read_rate),
            ("latent_sector_rate", self.latent_sector_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }
}

/// The kinds of injected fault, for event logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The machine stopped (at a scheduled operation or by an explicit `crash()`).
    Crash,
    /// A sector was left torn by a crash.
    TornWrite,
    /// A `sync` or `sync_dir` failed with EIO.
    SyncFailure,
    /// A write failed with ENOSPC.
    NoSpace,
    /// A read failed with EIO.
    ReadError,
    /// A bit of durable data was flipped.
    BitFlip,
    /// A file was cut short, durably (operator error, a lost tail).
    Truncation,
    /// A file vanished, durably (operator error, a lost file).
    FileLoss,
    /// A write went to the wrong place: lost where it was meant, landed elsewhere at the
    /// file's next sync.
    MisdirectedWrite,
    /// A write never reached the medium.
    LostWrite,
    /// A read returned the medium's older bytes instead of the newer ones written.
    StaleRead,
    /// A read returned another sector's data.
    MisdirectedRead,
    /// A durable sector became unreadable.
    LatentSectorError,
    /// A read touched an unreadable sector and failed with EIO.
    UnreadableSector,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::Crash,
        FaultKind::TornWrite,
        FaultKind::SyncFailure,
        FaultKind::NoSpace,
        FaultKind::ReadError,
        FaultKind::BitFlip,
        FaultKind::Truncation,
        FaultKind::FileLoss,
        FaultKind::MisdirectedWrite,
        FaultKind::LostWrite,
        FaultKind::StaleRead,
        FaultKind::MisdirectedRead,
        FaultKind::LatentSectorError,
        FaultKind::UnreadableSector,
    ];

    /// The faults of the medium itself (`medium.rs`), in [`FaultKind::ALL`]'s order.
    pub const MEDIUM: [FaultKind; 6] = [
        FaultKind::MisdirectedWrite,
        FaultKind::LostWrite,
        FaultKind::StaleRead,
        FaultKind::MisdirectedRead,
        FaultKind::LatentSectorError,
        FaultKind::UnreadableSector,
    ];

    /// The snake-case name used in configs, traces and summaries.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::TornWrite => "torn_write",
            FaultKind::SyncFailure => "sync_failure",
            FaultKind::NoSpace => "no_space",
            FaultKind::ReadError => "read_error",
            FaultKind::BitFlip => "bit_flip",
            FaultKind::Truncation => "truncation",
            FaultKind::FileLoss => "file_loss",
            FaultKind::MisdirectedWrite => "misdirected_write",
            FaultKind::LostWrite => "lost_write",
            FaultKind::StaleRead => "stale_read",
            FaultKind::MisdirectedRead => "misdirected_read",
            FaultKind::LatentSectorError => "latent_sector_error",
            FaultKind::UnreadableSector => "unreadable_sector",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounters {
    counts: [u64; FaultKind::ALL.len()],
}

impl FaultCounters {
    /// Counts one fault.
    pub fn record(&mut self, kind: FaultKind) {
        self.counts[kind as usize] += 1;
    }

    /// How many of this kind.
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.counts[kind as usize]
    }

    /// Adds another set of counters (for sweep summaries).
    pub fn add(&mut self, other: &FaultCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    /// The total over all kinds.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(kind, count)` pairs in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (FaultKind, u64)> + '_ {
        FaultKind::ALL.iter().map(|&kind| (kind, self.get(kind)))
    }
}

/// The seeded random source of the simulation: a ChaCha8 stream and the few draws we need.
#[derive(Debug, Clone)]
pub struct SimRng {
    rng: ChaCha8Rng,
}

impl SimRng {
    /// A stream fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Another stream of the same key: `SimRng::with_stream(seed, 0)` is `SimRng::new(seed)`,
    /// and each other `stream` is an independent sequence, so drawing from it moves no
    /// decision of the first.
    pub fn with_stream(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        SimRng { rng }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform integer in `0..bound` (`bound > 0`), by Lemire's multiply-shift.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no value");
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`. Draws nothing when `p` is 0 or 1, so a fault that is off
    /// does not shift the stream of the decisions after it.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit() < p
        }
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }
}
