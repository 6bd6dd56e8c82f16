//! The fuzz harness: one function per decoder of untrusted bytes. Each must return an error
//! for bad input, never panic, and never allocate by an unchecked length. Shared by the
//! `cargo fuzz` targets (`fuzz/fuzz_targets/`) and by `engine/tests/fuzz_corpus.rs`, which
//! replays the saved corpus (`fuzz/corpus/<target>/`) on the stable toolchain in CI.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use strata_engine::manifest::{self, ManifestState, VersionEdit};
use strata_engine::sstable::{Block, Filter, KeyHash, ReadCounters, SstReader, TableBuilder};
use strata_engine::wal::WalReader;
use strata_vfs::{FaultConfig, SimFs, Vfs};

/// A target: bytes in, nothing out (a panic is the failure).
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("wal_records", wal_records),
    ("batch_payload", batch_payload),
    ("block", block),
    ("filter", filter),
    ("table", table),
    ("manifest_edit", manifest_edit),
    ("manifest", manifest),
    ("current", current),
];

/// A filesystem holding one file `f` with `data`.
fn file_with(data: &[u8]) -> (SimFs, &'static Path) {
    let fs = SimFs::new(0, FaultConfig::none());
    let path = Path::new("f");
    let file = fs.create(path).expect("an in-memory create");
    if !data.is_empty() {
        file.append(data).expect("an in-memory append");
    }
    (fs, path)
}

/// WAL framing: every record the reader yields, then the reader's verdict on the end.
pub fn wal_records(data: &[u8]) {
    let (fs, path) = file_with(data);
    let file = fs.open_read(path).expect("open");
    if let Ok(mut reader) = WalReader::new(file.as_ref()) {
        while let Ok(Some(_)) = reader.next_record() {}
        let _ = reader.end();
    }
    let _ = WalReader::scan_after(file.as_ref(), (data.len() / 3) as u64);
}

/// A WAL record's payload: a write batch with its sequence numbers.
pub fn batch_payload(data: &[u8]) {
    if let Ok(decoded) = strata_engine::decode_payload(data) {
        for op in decoded.batch.iter() {
            let _ = op;
        }
    }
}

/// A data or index block: parse, list, and look up a key taken from the input.
pub fn block(data: &[u8]) {
    // Both formats: the first byte picks one, so the saved corpus reaches both.
    let format = 1 + u32::from(data.first().is_some_and(|byte| byte & 1 == 1));
    if let Ok(block) = Block::parse(data.to_vec(), format) {
        let _ = block.entries();
        let key = &data[..data.len().min(8)];
        let _ = block.get(key, u64::MAX);
        let _ = block.get(key, 1);
        let _ = block.get(b"", u64::MAX);
    }
}

/// A bloom filter block.
pub fn filter(data: &[u8]) {
    if let Ok(filter) = Filter::parse(data.to_vec()) {
        let _ = filter.may_contain(KeyHash::of(data));
        let _ = filter.may_contain(KeyHash::of(b"key"));
    }
}

/// The footer a real table ends with (its last 48 bytes), learnt once from a table we write.
fn footer_template() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(write_footer_template)
}

fn write_footer_template() -> Vec<u8> {
    let fs = SimFs::new(0, FaultConfig::none());
    let path = Path::new("t.sst");
    let mut builder = TableBuilder::new(
        fs.create(path).expect("create"),
        1,
        256,
        10,
        strata_engine::Compression::Lz4,
    );
    builder.add(b"a", 0, Some(b"1")).expect("add");
    builder.finish().expect("finish");
    let file = fs.open_read(path).expect("open");
    let len = file.len().expect("len");
    let mut footer = vec![0u8; 48];
    file.read_exact_at(len - 48, &mut footer).expect("read");
    footer
}

/// A whole table: the input's bytes, with a footer whose handles come from the input's last
/// 32 bytes but whose magic, version and checksum are valid, so that the index, the filter
/// and the blocks behind them are reached too.
pub fn table(data: &[u8]) {
    let mut bytes = data.to_vec();
    let mut footer = footer_template().to_vec();
    let take = data.len().min(32);
    footer[..take].copy_from_slice(&data[data.len() - take..]);
    let version = u32::from_le_bytes([footer[32], footer[33], footer[34], footer[35]]);
    let crc = strata_engine::sstable::table_checksum(
        version,
        1,
        strata_engine::sstable::FOOTER_IDENTITY_OFFSET,
        &footer[..36],
    );
    footer[36..40].copy_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&footer);
    let (fs, path) = file_with(&bytes);
    if let Ok(reader) = SstReader::open(&fs, path, 1, None) {
        let mut counters = ReadCounters::default();
        for index in 0..reader.index().len().min(64) {
            if let Ok(block) = reader.read_block(index) {
                let _ = block.entries();
            }
        }
        let _ = reader.get(b"a", u64::MAX, &mut counters);
        let _ = reader.get(b"a", 1, &mut counters);
        let _ = reader.may_contain(KeyHash::of(b"a"));
        let _ = reader.seek_block(b"m");
    }
}

/// One manifest edit, applied to an empty state and to itself twice.
pub fn manifest_edit(data: &[u8]) {
    if let Ok(edit) = VersionEdit::decode(data) {
        let mut state = ManifestState::default();
        let _ = state.apply(&edit);
        let _ = state.apply(&edit);
        let _ = edit.encode();
    }
}

/// A whole manifest file: framing, every edit, the resulting state.
pub fn manifest(data: &[u8]) {
    let (fs, path) = file_with(data);
    let file = fs.open_read(path).expect("open");
    let _ = manifest::read_manifest(file.as_ref());
}

/// `CURRENT`.
pub fn current(data: &[u8]) {
    let (fs, path) = file_with(data);
    let _ = manifest::read_current_file(&fs, path);
    let _ = Arc::new(fs);
}
