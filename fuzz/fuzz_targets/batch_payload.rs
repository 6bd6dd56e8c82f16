#![no_main]
//! `cargo +nightly fuzz run batch_payload`: see `fuzz/harness.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::batch_payload(data));
