//! The engine's statistics over one benchmark workload.

use serde::Serialize;

/// Engine statistics for one workload (counters are deltas over the workload; the shape
/// of the tree is as it stands at the end).
#[derive(Serialize, Debug, Default)]
pub struct StatsReport {
    pub write_amplification: f64,
    pub tables_probed_per_get: f64,
    pub data_blocks_per_missing_get: f64,
    pub tables_per_level: Vec<usize>,
    pub bytes_per_level: Vec<u64>,
    pub bloom_negatives: u64,
    pub flushes: u64,
    pub compactions: u64,
    pub bytes_flushed: u64,
    pub bytes_compacted_read: u64,
    pub bytes_compacted_written: u64,
    pub write_slowdowns: u64,
    pub write_stops: u64,
    /// Commit groups over the workload: one WAL append, and with `--sync` one fdatasync, each.
    pub commit_groups: u64,
    /// The workload's writes ÷ its commit groups (0 without groups): how well group commit
    /// shares an fdatasync among concurrent writers (at most `--threads`).
    pub writes_per_commit_group: f64,
}

impl StatsReport {
    /// The report for the change from `before` to `after`; write amplification counts
    /// everything since the database was filled.
    pub fn between(
        before: &strata_engine::Stats,
        after: &strata_engine::Stats,
        since_fill: &strata_engine::Stats,
    ) -> StatsReport {
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        let window = strata_engine::Stats {
            gets: delta(after.gets, before.gets),
            tables_probed: delta(after.tables_probed, before.tables_probed),
            missing_gets: delta(after.missing_gets, before.missing_gets),
            missing_data_blocks_read: delta(
                after.missing_data_blocks_read,
                before.missing_data_blocks_read,
            ),
            ..Default::default()
        };
        let written = strata_engine::Stats {
            user_bytes_written: delta(after.user_bytes_written, since_fill.user_bytes_written),
            wal_bytes_written: delta(after.wal_bytes_written, since_fill.wal_bytes_written),
            bytes_flushed: delta(after.bytes_flushed, since_fill.bytes_flushed),
            bytes_compacted_written: delta(
                after.bytes_compacted_written,
                since_fill.bytes_compacted_written,
            ),
            ..Default::default()
        };
        StatsReport {
            write_amplification: written.write_amplification(),
            tables_probed_per_get: window.tables_probed_per_get(),
            data_blocks_per_missing_get: window.data_blocks_per_missing_get(),
            tables_per_level: after.tables_per_level.clone(),
            bytes_per_level: after.bytes_per_level.clone(),
            bloom_negatives: delta(after.bloom_negatives, before.bloom_negatives),
            flushes: delta(after.flushes, before.flushes),
            compactions: delta(
                after.compactions + after.trivial_moves,
                before.compactions + before.trivial_moves,
            ),
            bytes_flushed: delta(after.bytes_flushed, before.bytes_flushed),
            bytes_compacted_read: delta(after.bytes_compacted_read, before.bytes_compacted_read),
            bytes_compacted_written: delta(
                after.bytes_compacted_written,
                before.bytes_compacted_written,
            ),
            write_slowdowns: delta(after.write_slowdowns, before.write_slowdowns),
            write_stops: delta(after.write_stops, before.write_stops),
            commit_groups: delta(after.commit_groups, before.commit_groups),
            writes_per_commit_group: 0.0,
        }
    }

    /// Sets [`StatsReport::writes_per_commit_group`] for a workload of `writes` writes.
    pub fn with_writes(mut self, writes: u64) -> StatsReport {
        if self.commit_groups > 0 {
            self.writes_per_commit_group = writes as f64 / self.commit_groups as f64;
        }
        self
    }
}
