//! Corpus files: one self-contained JSON file per saved case — a failing seed being worked
//! on, or a fixed bug kept as a regression. `cargo test` replays every file in `corpus/`
//! and expects the recorded outcome.

use crate::case::Case;
use crate::runner::{fault_config, Finding};
use crate::workload::options_for;
use serde::{Deserialize, Serialize};
use std::path::Path;
use strata_vfs::FaultConfig;

/// The corpus format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// What replaying a case must produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// No violation (a fixed bug kept as a regression).
    Pass,
    /// A violation of this kind (an open bug).
    Violation(Finding),
}

/// The engine options a case ran with (derived from the seed; recorded for readers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineOptionsRecord {
    /// `Options::memtable_size`.
    pub memtable_size: usize,
    /// `Options::max_immutable_memtables`.
    pub max_immutable_memtables: usize,
    /// `Options::block_size`.
    pub block_size: usize,
    /// `Options::wal_preallocate`.
    pub wal_preallocate: u64,
    /// `Options::wal_buffer_size`.
    pub wal_buffer_size: usize,
    /// `Options::block_cache_size`.
    pub block_cache_size: u64,
    /// `Options::bloom_bits_per_key`.
    pub bloom_bits_per_key: usize,
    /// `Options::level0_compaction_trigger`, `level0_slowdown_trigger`, `level0_stop_trigger`.
    pub level0_triggers: (usize, usize, usize),
    /// `Options::level_base_bytes`.
    pub level_base_bytes: u64,
    /// `Options::level_size_ratio`.
    pub level_size_ratio: u64,
    /// `Options::target_file_size`.
    pub target_file_size: u64,
    /// `Options::max_open_files` (absent in entries older than the table cache: 0).
    pub max_open_files: usize,
}

impl EngineOptionsRecord {
    /// The options `seed` draws.
    pub fn for_seed(seed: u64) -> EngineOptionsRecord {
        let options = options_for(seed);
        EngineOptionsRecord {
            memtable_size: options.memtable_size,
            max_immutable_memtables: options.max_immutable_memtables,
            block_size: options.block_size,
            wal_preallocate: options.wal_preallocate,
            wal_buffer_size: options.wal_buffer_size,
            block_cache_size: options.block_cache_size,
            bloom_bits_per_key: options.bloom_bits_per_key,
            level0_triggers: (
                options.level0_compaction_trigger,
                options.level0_slowdown_trigger,
                options.level0_stop_trigger,
            ),
            level_base_bytes: options.level_base_bytes,
            level_size_ratio: options.level_size_ratio,
            target_file_size: options.target_file_size,
            max_open_files: options.max_open_files,
        }
    }
}

/// One corpus file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusEntry {
    /// `FORMAT_VERSION`.
    pub format_version: u32,
    /// The case (seed, size, faults, shrink masks).
    pub case: Case,
    /// The simulated filesystem's fault configuration (derived from the case).
    pub fault_config: FaultConfig,
    /// The engine options (derived from the seed).
    pub engine_options: EngineOptionsRecord,
    /// What replaying must produce.
    pub expected: Expected,
    /// One line: what this case is about (a postmortem, for a fixed bug).
    pub note: String,
    /// The build that recorded the entry, and the trace hash it saw (absent in entries older
    /// than the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
}

/// Which build recorded a corpus entry, and what trace it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRecord {
    /// The crate version.
    pub version: String,
    /// The git commit (`-modified` if the working tree had changes; `unknown` outside git).
    pub commit: String,
    /// The run's trace hash (hex): replaying the case must give the same one, on any
    /// toolchain, unless the simulation itself was changed on purpose.
    pub trace_hash: String,
}

impl BuildRecord {
    /// This build, with a run's trace hash.
    pub fn current(trace_hash: u64) -> BuildRecord {
        BuildRecord {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: env!("STRATA_COMMIT").to_string(),
            trace_hash: format!("{trace_hash:016x}"),
        }
    }
}

impl CorpusEntry {
    /// An entry for `case` with the given expectation.
    pub fn new(case: Case, expected: Expected, note: impl Into<String>) -> CorpusEntry {
        CorpusEntry {
            format_version: FORMAT_VERSION,
            fault_config: fault_config(&case),
            engine_options: EngineOptionsRecord::for_seed(case.seed),
            case,
            expected,
            note: note.into(),
            build: None,
        }
    }

    /// The entry, recording this build and the trace hash its run produced.
    pub fn recorded_by_this_build(mut self, trace_hash: u64) -> CorpusEntry {
        self.build = Some(BuildRecord::current(trace_hash));
        self
    }

    /// Reads and validates a corpus file; the error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<CorpusEntry, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let entry: CorpusEntry = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a valid corpus file: {e}", path.display()))?;
        if entry.format_version != FORMAT_VERSION {
            return Err(format!(
                "{} has corpus format version {}, this build reads {FORMAT_VERSION}",
                path.display(),
                entry.format_version
            ));
        }
        Ok(entry)
    }

    /// Whether the recorded fault config and engine options are what the seed draws today
    /// (if not, the generator changed and the case may not reproduce what it recorded).
    pub fn is_current(&self) -> bool {
        self.fault_config == fault_config(&self.case)
            && self.engine_options == EngineOptionsRecord::for_seed(self.case.seed)
    }

    /// Writes the entry as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}
