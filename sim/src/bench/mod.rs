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

mod host;
mod stats;
mod values;

use self::host::{
    check_clearable, clear_database_dir, directory_bytes, disk_sync_rate, peak_rss_bytes,
};
pub use self::stats::StatsReport;
use self::values::Values;
use crate::cli::CliError;
use crate::latency::{Latency, Percentiles};
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use strata_engine::{Db, Options, WriteOptions};
use strata_vfs::sim::SimRng;
use strata_vfs::RealFs;

const WORKLOADS: [&str; 8] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "scan",
    "compact",
    "reopen",
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
    /// Set the engine's `powersafe_overwrite`: trust the disk not to damage bytes of a
    /// sector that a torn write did not change, and so skip the WAL's sector padding at
    /// each sync (default: pad; a synced write survives a torn later append on any disk).
    #[arg(long)]
    powersafe_overwrite: bool,
    /// The engine's `wal_preallocate`: the WAL grows by this many bytes of zeros at a time
    /// (default: the engine's default; 0 never preallocates).
    #[arg(long)]
    wal_preallocate: Option<u64>,
    /// The engine's `compression_per_level`, comma-separated, one entry per level from
    /// level 0, the last for every deeper level: `none`, `lz4`, `zstd` or `zstd:LEVEL`
    /// (default: the engine's, LZ4 everywhere). Example: `lz4,lz4,zstd:3`.
    #[arg(long, value_delimiter = ',')]
    compression: Vec<strata_engine::Compression>,
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
    /// Per-operation latency (a scan: per entry).
    latency: Percentiles,
    stats: StatsReport,
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

impl Bench {
    fn options(&self) -> Options {
        Options {
            wal_buffer_size: self.args.wal_buffer_size,
            powersafe_overwrite: self.args.powersafe_overwrite,
            wal_preallocate: self
                .args
                .wal_preallocate
                .unwrap_or(Options::default().wal_preallocate),
            compression_per_level: if self.args.compression.is_empty() {
                Options::default().compression_per_level
            } else {
                self.args.compression.clone()
            },
            ..Options::default()
        }
    }

    /// Waits until no flush or compaction is due.
    fn wait_idle(&self) -> Result<(), String> {
        while self.db().has_pending_work() {
            if let Some(reason) = self.db().poisoned() {
                return Err(format!("background work failed: {reason}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(())
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

    /// Runs `work(thread, share, latency)` on every thread; returns the seconds taken and
    /// the threads' latencies merged.
    fn timed(
        &self,
        total: u64,
        work: impl Fn(usize, u64, &mut Latency) -> Result<(), String> + Sync,
    ) -> Result<(f64, Latency), String> {
        let threads = self.args.threads.max(1);
        let start = Instant::now();
        let latencies = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let work = &work;
                    let share =
                        total / threads as u64 + u64::from((t as u64) < total % threads as u64);
                    scope.spawn(move || {
                        let mut latency = Latency::new();
                        work(t, share, &mut latency).map(|()| latency)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a benchmark thread panicked".into()))
                })
                .collect::<Result<Vec<Latency>, String>>()
        })?;
        let seconds = start.elapsed().as_secs_f64();
        let mut merged = Latency::new();
        for latency in &latencies {
            merged.merge(latency);
        }
        Ok((seconds, merged))
    }

    fn fill(&self, order: &[u64], sync: bool) -> Result<(f64, Latency), String> {
        let db = self.db();
        let threads = self.args.threads.max(1);
        let value_size = self.args.value_size;
        let seed = self.args.seed;
        self.timed(order.len() as u64, |t, _, latency| {
            let mut rng = SimRng::new(seed ^ (t as u64 + 1));
            let mut values = Values::new(&mut rng);
            for &i in order.iter().skip(t).step_by(threads) {
                let key = key_of(i);
                let value = values.next(value_size);
                let start = Instant::now();
                db.put(key, value, WriteOptions { sync })
                    .map_err(|e| e.to_string())?;
                latency.record_since(start);
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

    /// Runs one workload: (operations, seconds, bytes, latencies).
    fn run_workload(&mut self, name: &str) -> Result<(u64, f64, u64, Latency), String> {
        let num = self.args.num;
        let entry_bytes = 16 + self.args.value_size as u64;
        let sync = self.args.sync;
        match name {
            "fillseq" => {
                self.reset()?;
                let order: Vec<u64> = (0..num).collect();
                let (seconds, latency) = self.fill(&order, sync)?;
                self.filled = true;
                Ok((num, seconds, num * entry_bytes, latency))
            }
            "fillrandom" => {
                self.reset()?;
                let mut rng = SimRng::new(self.args.seed);
                let order = shuffled(num, &mut rng);
                let (seconds, latency) = self.fill(&order, sync)?;
                self.filled = true;
                Ok((num, seconds, num * entry_bytes, latency))
            }
            "overwrite" => {
                self.ensure_filled()?;
                let mut rng = SimRng::new(self.args.seed ^ 0x0f);
                let order: Vec<u64> = (0..num).map(|_| rng.below(num)).collect();
                let (seconds, latency) = self.fill(&order, sync)?;
                Ok((num, seconds, num * entry_bytes, latency))
            }
            "compact" => {
                self.ensure_filled()?;
                let db = self.db();
                let start = Instant::now();
                db.compact_all().map_err(|e| e.to_string())?;
                let mut latency = Latency::new();
                latency.record_since(start);
                Ok((1, start.elapsed().as_secs_f64(), 0, latency))
            }
            "reopen" => {
                // Open (recovery) time: a clean close, then an open that finds the memtable's
                // writes in the WAL and replays them.
                self.ensure_filled()?;
                if let Some(db) = self.db.take() {
                    let db = Arc::try_unwrap(db).map_err(|_| "the database is still shared")?;
                    db.close().map_err(|e| e.to_string())?;
                }
                let start = Instant::now();
                self.open()?;
                // A new `Db` counts from zero: later workloads' figures count from here.
                self.at_fill = strata_engine::Stats::default();
                let mut latency = Latency::new();
                latency.record_since(start);
                Ok((1, start.elapsed().as_secs_f64(), 0, latency))
            }
            "readrandom" | "readmissing" => {
                self.ensure_filled()?;
                let db = self.db();
                let missing = name == "readmissing";
                let seed = self.args.seed;
                let found = std::sync::atomic::AtomicU64::new(0);
                let reads = self.args.reads.unwrap_or(num);
                let (seconds, latency) = self.timed(reads, |t, ops, latency| {
                    let mut rng = SimRng::new(seed ^ 0xabc ^ t as u64);
                    let mut hits = 0;
                    for _ in 0..ops {
                        let i = rng.below(num);
                        let key = if missing {
                            missing_key_of(i)
                        } else {
                            key_of(i)
                        };
                        let start = Instant::now();
                        let found = db.get(key).map_err(|e| e.to_string())?.is_some();
                        latency.record_since(start);
                        if found {
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
                Ok((reads, seconds, reads * entry_bytes, latency))
            }
            "scan" => {
                self.ensure_filled()?;
                let db = self.db();
                let start = Instant::now();
                let mut entries = 0u64;
                let mut bytes = 0u64;
                let mut latency = Latency::new();
                let mut iter = db.iter().map_err(|e| e.to_string())?;
                loop {
                    let step = Instant::now();
                    // The borrowing step: no allocation per entry, as a scan that only
                    // looks at the bytes would read.
                    let Some(entry) = iter.next_borrowed() else {
                        break;
                    };
                    latency.record_since(step);
                    let (key, value) = entry.map_err(|e| e.to_string())?;
                    entries += 1;
                    bytes += (key.len() + value.len()) as u64;
                }
                let seconds = start.elapsed().as_secs_f64();
                if entries != num {
                    return Err(format!("scan: saw {entries} entries, expected {num}"));
                }
                Ok((entries, seconds, bytes, latency))
            }
            other => Err(format!(
                "unknown workload {other:?}; known: {}",
                WORKLOADS.join(",")
            )),
        }
    }
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
        (true, _) if bench.args.powersafe_overwrite => "every acknowledged write survives a \
             power cut (fdatasync per commit group) on a disk with powersafe overwrite; a torn \
             later append may destroy synced writes on one without (--powersafe-overwrite: no \
             WAL padding)"
            .to_string(),
        (true, _) => "every acknowledged write survives a power cut (fdatasync per commit \
                      group), on any disk (the WAL is padded to a 4 KiB sector at each sync)"
            .to_string(),
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
        let compression: Vec<String> = bench
            .options()
            .compression_per_level
            .iter()
            .map(ToString::to_string)
            .collect();
        crate::outln!(
            "compression per level (the last for every deeper level): {}",
            compression.join(",")
        );
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
        let writes_keys = workload.starts_with("fill") || workload == "overwrite";
        if !writes_keys {
            // Reads are measured once background flushes and compactions are idle.
            bench.ensure_filled()?;
            bench.wait_idle()?;
        }
        let before = bench.db.as_ref().map(|db| db.stats()).unwrap_or_default();
        let (ops, seconds, bytes, latency) = bench.run_workload(workload)?;
        let mut before = before;
        if workload.starts_with("fill") || workload == "reopen" {
            // A fill or a reopen starts a new `Db`: its counters start from zero.
            before = bench.at_fill.clone();
        }
        let after = bench.db().stats();
        let writes = if writes_keys { ops } else { 0 };
        let stats = StatsReport::between(&before, &after, &bench.at_fill).with_writes(writes);
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
            latency: latency.percentiles(),
            stats,
        };
        if json {
            crate::outln!(
                "{}",
                serde_json::to_string(&report).map_err(|e| e.to_string())?
            );
        } else {
            let p = report.latency;
            crate::outln!(
                "{:<12} {:>10} {:>9.3} {:>14.0} {:>10.1}   p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.0} µs   wa {:.2}  writes/group {}  probes/get {:.2}  blocks/missing {:.3}  levels {:?}",
                report.workload,
                report.ops,
                report.seconds,
                report.ops_per_sec,
                report.mb_per_sec,
                p.p50_us,
                p.p99_us,
                p.p999_us,
                p.max_us,
                report.stats.write_amplification,
                match report.stats.writes_per_commit_group {
                    0.0 => "-".to_owned(),
                    per_group => format!("{per_group:.2}"),
                },
                report.stats.tables_probed_per_get,
                report.stats.data_blocks_per_missing_get,
                report.stats.tables_per_level
            );
        }
        let _ = std::io::stdout().flush();
    }
    // The footprint, at the end: what the data takes on disk against its logical size, and
    // the process's peak memory.
    // Measured once background work is idle, so that tables being compacted and files not
    // yet deleted do not count.
    bench.wait_idle()?;
    let logical = bench.args.num * (16 + bench.args.value_size as u64);
    let disk = directory_bytes(&bench.args.dir);
    let footprint = serde_json::json!({
        "logical_bytes": logical,
        "disk_bytes": disk,
        "space_amplification": disk as f64 / logical as f64,
        "peak_rss_bytes": peak_rss_bytes(),
    });
    if json {
        crate::outln!("{footprint}");
    } else {
        crate::outln!(
            "disk {:.1} MiB for {:.1} MiB of keys and values (space amplification {:.2}); peak RSS {:.1} MiB",
            disk as f64 / 1048576.0,
            logical as f64 / 1048576.0,
            disk as f64 / logical as f64,
            peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
        );
    }
    if let Some(db) = bench.db.take() {
        if let Ok(db) = Arc::try_unwrap(db) {
            db.close().map_err(|e| e.to_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
