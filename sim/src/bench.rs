//! `strata bench`: db_bench-style workloads on the real disk.
//!
//! Keys are 16 bytes (`{:016}` of a number), values 100 bytes; every random choice comes
//! from a fixed seed. `fillseq` and `fillrandom` start from an empty database (fillrandom
//! writes every key once, in a shuffled order); `overwrite` rewrites random existing keys;
//! `readrandom` reads existing keys, `readmissing` keys that sort among them but do not
//! exist; `scan` iterates everything. A read workload that finds the database empty fills
//! it first (untimed). Read workloads start once background flushes and compactions are
//! idle. `compact` flushes and pushes every table to the deepest level (a full compaction).
//! With `--sync`, the disk's own 4-KiB overwrite+fdatasync rate is measured and printed
//! beside the results.

use crate::cli::CliError;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use strata_engine::{filenames, Db, Options, WriteOptions};
use strata_vfs::sim::SimRng;
use strata_vfs::{RealFs, Vfs};

const WORKLOADS: [&str; 7] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "scan",
    "compact",
];

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Directory for the benchmark database (its contents are replaced).
    #[arg(long)]
    dir: PathBuf,
    /// Comma-separated workloads, run in order.
    #[arg(
        long,
        default_value = "fillseq,fillrandom,overwrite,readrandom,readmissing,scan",
        value_delimiter = ','
    )]
    workloads: Vec<String>,
    /// Operations per workload (keys in the database).
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Acknowledge every write only after the WAL fsync.
    #[arg(long)]
    sync: bool,
    /// Reads per read workload (default: --num).
    #[arg(long)]
    reads: Option<u64>,
    /// Writer/reader threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 301)]
    seed: u64,
    /// One JSON object per workload on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// The engine's `wal_buffer_size`: 0 (the default) hands every commit group to the OS
    /// before acknowledging it (an acknowledged write survives a process kill); N keeps up
    /// to N bytes of acknowledged writes in the process (a kill may lose them).
    #[arg(long, default_value_t = 0)]
    wal_buffer_size: usize,
}

#[derive(Serialize, Debug)]
struct Report {
    workload: String,
    ops: u64,
    seconds: f64,
    ops_per_sec: f64,
    mb_per_sec: f64,
    threads: usize,
    sync: bool,
    /// The durability promise behind the figure.
    promise: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_overwrite_fdatasync_per_sec: Option<f64>,
    stats: StatsReport,
}

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
        }
    }
}

/// The 16 decimal digits of `i` (its last 16, zero-padded), without allocating.
fn key_of(mut i: u64) -> [u8; 16] {
    let mut key = [b'0'; 16];
    for digit in key.iter_mut().rev() {
        *digit = b'0' + (i % 10) as u8;
        i /= 10;
    }
    key
}

fn missing_key_of(i: u64) -> [u8; 16] {
    let mut key = key_of(i);
    key[15] = b'.';
    key
}

/// db_bench's values: slices of 1 MiB of text that compresses to about half (each 100
/// bytes are 50 random printable bytes twice), so compression does what it would on typical
/// data, no more.
struct Values {
    data: Vec<u8>,
    position: usize,
}

impl Values {
    fn new(rng: &mut SimRng) -> Values {
        let mut data = Vec::with_capacity(1 << 20);
        while data.len() < 1 << 20 {
            let piece: Vec<u8> = (0..50).map(|_| b' ' + rng.below(95) as u8).collect();
            data.extend_from_slice(&piece);
            data.extend_from_slice(&piece);
        }
        Values { data, position: 0 }
    }

    /// The next `size` bytes (from the start again when the text runs out).
    fn next(&mut self, size: usize) -> &[u8] {
        if self.position + size > self.data.len() {
            self.position = 0;
        }
        let start = self.position;
        self.position += size;
        &self.data[start..start + size]
    }
}

fn shuffled(num: u64, rng: &mut SimRng) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..num).collect();
    for i in (1..keys.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        keys.swap(i, j);
    }
    keys
}

struct Bench {
    args: BenchArgs,
    db: Option<Arc<Db>>,
    filled: bool,
    /// Statistics when the current database was opened empty.
    at_fill: strata_engine::Stats,
}

/// Fails unless `dir` is missing, empty, or holds only Strata files that no process has open:
/// the bench deletes what it holds, and must never delete anything else.
fn check_clearable(dir: &Path) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let known = name.to_str().and_then(filenames::parse).is_some();
        if !known || !entry.file_type().is_ok_and(|kind| kind.is_file()) {
            return Err(format!(
                "refusing to clear {}: it holds {name:?}, which is not a Strata database file \
                 (the bench replaces the database in --dir; point it at an empty or new directory)",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Deletes the database in `dir` (see [`check_clearable`]) unless another process has it open.
fn clear_database_dir(dir: &Path) -> Result<(), String> {
    check_clearable(dir)?;
    if !dir.exists() {
        return Ok(());
    }
    let fs = RealFs::new();
    // Held while deleting, so that no process opens it meanwhile.
    let _lock = fs
        .lock(&dir.join(filenames::LOCK))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => format!(
                "refusing to clear {}: the database is in use by another process",
                dir.display()
            ),
            _ => e.to_string(),
        })?;
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))
}

impl Bench {
    fn options(&self) -> Options {
        Options {
            wal_buffer_size: self.args.wal_buffer_size,
            ..Options::default()
        }
    }

    fn reset(&mut self) -> Result<(), String> {
        if let Some(db) = self.db.take() {
            drop(db);
        }
        clear_database_dir(&self.args.dir)?;
        self.open()?;
        self.filled = false;
        self.at_fill = self.db().stats();
        Ok(())
    }

    fn open(&mut self) -> Result<(), String> {
        let db = Db::open(Arc::new(RealFs::new()), &self.args.dir, self.options())
            .map_err(|e| format!("cannot open {}: {e}", self.args.dir.display()))?;
        self.db = Some(Arc::new(db));
        Ok(())
    }

    fn db(&self) -> Arc<Db> {
        Arc::clone(
            self.db
                .as_ref()
                .expect("the bench opens the database first"),
        )
    }

    /// Runs `work(thread, ops)` on every thread, splitting `total` ops; returns seconds.
    fn timed(
        &self,
        total: u64,
        work: impl Fn(usize, u64) -> Result<(), String> + Sync,
    ) -> Result<f64, String> {
        let threads = self.args.threads.max(1);
        let start = Instant::now();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let work = &work;
                    let share =
                        total / threads as u64 + u64::from((t as u64) < total % threads as u64);
                    scope.spawn(move || work(t, share))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a benchmark thread panicked".into()))
                })
                .collect::<Result<Vec<()>, String>>()
        })?;
        Ok(start.elapsed().as_secs_f64())
    }

    fn fill(&self, order: &[u64], sync: bool) -> Result<f64, String> {
        let db = self.db();
        let threads = self.args.threads.max(1);
        let value_size = self.args.value_size;
        let seed = self.args.seed;
        self.timed(order.len() as u64, |t, _| {
            let mut rng = SimRng::new(seed ^ (t as u64 + 1));
            let mut values = Values::new(&mut rng);
            for &i in order.iter().skip(t).step_by(threads) {
                db.put(key_of(i), values.next(value_size), WriteOptions { sync })
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }

    fn ensure_filled(&mut self) -> Result<(), String> {
        if !self.filled {
            let mut rng = SimRng::new(self.args.seed);
            let order = shuffled(self.args.num, &mut rng);
            self.fill(&order, false)?;
            self.filled = true;
        }
        Ok(())
    }

    fn run_workload(&mut self, name: &str) -> Result<(u64, f64, u64), String> {
        let num = self.args.num;
        let entry_bytes = 16 + self.args.value_size as u64;
        let sync = self.args.sync;
        match name {
            "fillseq" => {
                self.reset()?;
                let order: Vec<u64> = (0..num).collect();
                let seconds = self.fill(&order, sync)?;
                self.filled = true;
                Ok((num, seconds, num * entry_bytes))
            }
            "fillrandom" => {
                self.reset()?;
                let mut rng = SimRng::new(self.args.seed);
                let order = shuffled(num, &mut rng);
                let seconds = self.fill(&order, sync)?;
                self.filled = true;
                Ok((num, seconds, num * entry_bytes))
            }
            "overwrite" => {
                self.ensure_filled()?;
                let mut rng = SimRng::new(self.args.seed ^ 0x0f);
                let order: Vec<u64> = (0..num).map(|_| rng.below(num)).collect();
                let seconds = self.fill(&order, sync)?;
                Ok((num, seconds, num * entry_bytes))
            }
            "compact" => {
                self.ensure_filled()?;
                let db = self.db();
                let start = Instant::now();
                db.compact_all().map_err(|e| e.to_string())?;
                Ok((1, start.elapsed().as_secs_f64(), 0))
            }
            "readrandom" | "readmissing" => {
                self.ensure_filled()?;
                let db = self.db();
                let missing = name == "readmissing";
                let seed = self.args.seed;
                let found = std::sync::atomic::AtomicU64::new(0);
                let reads = self.args.reads.unwrap_or(num);
                let seconds = self.timed(reads, |t, ops| {
                    let mut rng = SimRng::new(seed ^ 0xabc ^ t as u64);
                    let mut hits = 0;
                    for _ in 0..ops {
                        let i = rng.below(num);
                        let key = if missing {
                            missing_key_of(i)
                        } else {
                            key_of(i)
                        };
                        if db.get(key).map_err(|e| e.to_string())?.is_some() {
                            hits += 1;
                        }
                    }
                    found.fetch_add(hits, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                })?;
                let found = found.into_inner();
                let expected = if missing { 0 } else { reads };
                if found != expected {
                    return Err(format!(
                        "{name}: found {found} of {reads} keys, expected {expected}"
                    ));
                }
                Ok((reads, seconds, reads * entry_bytes))
            }
            "scan" => {
                self.ensure_filled()?;
                let db = self.db();
                let start = Instant::now();
                let mut entries = 0u64;
                let mut bytes = 0u64;
                for entry in db.iter().map_err(|e| e.to_string())? {
                    let (key, value) = entry.map_err(|e| e.to_string())?;
                    entries += 1;
                    bytes += (key.len() + value.len()) as u64;
                }
                let seconds = start.elapsed().as_secs_f64();
                if entries != num {
                    return Err(format!("scan: saw {entries} entries, expected {num}"));
                }
                Ok((entries, seconds, bytes))
            }
            other => Err(format!(
                "unknown workload {other:?}; known: {}",
                WORKLOADS.join(",")
            )),
        }
    }
}

/// The disk's rate of 4-KiB overwrite + fdatasync, measured in `dir`.
fn disk_sync_rate(dir: &Path) -> Result<f64, String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fdatasync-probe");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = vec![7u8; 4096];
    file.write_all_at(&block, 0).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    let iterations = 2000;
    let start = Instant::now();
    for _ in 0..iterations {
        file.write_all_at(&block, 0).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
    }
    let rate = iterations as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

pub fn run(args: BenchArgs) -> Result<ExitCode, crate::cli::CliError> {
    for workload in &args.workloads {
        if !WORKLOADS.contains(&workload.as_str()) {
            return Err(CliError::Usage(format!(
                "unknown workload {workload:?}; known: {}",
                WORKLOADS.join(",")
            )));
        }
    }
    if args.num == 0 {
        return Err(CliError::Usage("--num must be at least 1".into()));
    }
    if args.value_size < 8 {
        return Err(CliError::Usage("--value-size must be at least 8".into()));
    }
    if args.threads == 0 || args.threads > 1024 {
        return Err(CliError::Usage(
            "--threads must be between 1 and 1024".into(),
        ));
    }
    // Refuse before writing anything into it: the bench replaces what `--dir` holds.
    check_clearable(&args.dir).map_err(CliError::Usage)?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let disk_rate = if args.sync {
        Some(disk_sync_rate(&args.dir)?)
    } else {
        None
    };
    let json = args.json;
    let workloads = args.workloads.clone();
    let mut bench = Bench {
        args,
        db: None,
        filled: false,
        at_fill: strata_engine::Stats::default(),
    };
    bench.open()?;
    bench.at_fill = bench.db().stats();
    let promise = match (bench.args.sync, bench.args.wal_buffer_size) {
        (true, _) => {
            "every acknowledged write survives a power cut (fdatasync per commit group)".to_string()
        }
        (false, 0) => "every acknowledged write survives a process kill (write(2) per commit \
                       group), not a power cut"
            .to_string(),
        (false, size) => format!(
            "a process kill may lose up to {size} bytes of acknowledged writes \
             (wal_buffer_size {size})"
        ),
    };
    if !json {
        crate::outln!("durability: {promise}");
        crate::outln!(
            "{:<12} {:>10} {:>9} {:>14} {:>10}",
            "workload",
            "ops",
            "seconds",
            "ops/s",
            "MB/s"
        );
        if let Some(rate) = disk_rate {
            crate::outln!("disk: {rate:.0} 4-KiB overwrite+fdatasync/s");
        }
    }
    for workload in &workloads {
        if !workload.starts_with("fill") && workload != "overwrite" {
            // Reads are measured once background flushes and compactions are idle.
            bench.ensure_filled()?;
            while bench.db().has_pending_work() {
                if let Some(reason) = bench.db().poisoned() {
                    return Err(format!("background work failed: {reason}").into());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let before = bench.db.as_ref().map(|db| db.stats()).unwrap_or_default();
        let (ops, seconds, bytes) = bench.run_workload(workload)?;
        let mut before = before;
        if workload.starts_with("fill") {
            // A fill starts a new database: its counters start from zero.
            before = bench.at_fill.clone();
        }
        let after = bench.db().stats();
        let stats = StatsReport::between(&before, &after, &bench.at_fill);
        let report = Report {
            workload: workload.clone(),
            ops,
            seconds,
            ops_per_sec: ops as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
            threads: bench.args.threads,
            sync: bench.args.sync,
            promise: promise.clone(),
            disk_overwrite_fdatasync_per_sec: disk_rate,
            stats,
        };
        if json {
            crate::outln!(
                "{}",
                serde_json::to_string(&report).map_err(|e| e.to_string())?
            );
        } else {
            crate::outln!(
                "{:<12} {:>10} {:>9.3} {:>14.0} {:>10.1}   wa {:.2}  probes/get {:.2}  blocks/missing {:.3}  levels {:?}",
                report.workload,
                report.ops,
                report.seconds,
                report.ops_per_sec,
                report.mb_per_sec,
                report.stats.write_amplification,
                report.stats.tables_probed_per_get,
                report.stats.data_blocks_per_missing_get,
                report.stats.tables_per_level
            );
        }
        let _ = std::io::stdout().flush();
    }
    if let Some(db) = bench.db.take() {
        if let Ok(db) = Arc::try_unwrap(db) {
            db.close().map_err(|e| e.to_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
