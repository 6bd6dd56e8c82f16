#![no_main]
//! `cargo +nightly fuzz run block`: see `fuzz/harness.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::block(data));
