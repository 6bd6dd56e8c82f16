#![no_main]
//! `cargo +nightly fuzz run manifest_edit`: see `fuzz/harness.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::manifest_edit(data));
