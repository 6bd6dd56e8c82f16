//! Benchmarks of the simulated filesystem's hot paths: making a `SimFs`, and the write path
//! the engine's WAL exercises (append + sync).

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;
use strata_vfs::{FaultConfig, SimFs, Vfs};

fn new_simfs(c: &mut Criterion) {
    c.bench_function("simfs_new", |b| {
        b.iter(|| SimFs::new(black_box(42), FaultConfig::none()))
    });
}

fn append_sync_1000(c: &mut Criterion) {
    let record = [0x5Au8; 100];
    c.bench_function("simfs_new_create_1000_append_100B_sync", |b| {
        b.iter(|| {
            let fs = SimFs::new(black_box(42), FaultConfig::none());
            let file = fs.create(Path::new("/wal")).unwrap();
            for _ in 0..1000 {
                file.append(black_box(&record)).unwrap();
                file.sync().unwrap();
            }
            fs
        })
    });
}

criterion_group!(benches, new_simfs, append_sync_1000);
criterion_main!(benches);
