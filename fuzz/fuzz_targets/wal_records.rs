#![no_main]
//! `cargo +nightly fuzz run wal_records`: see `fuzz/harness.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::wal_records(data));
