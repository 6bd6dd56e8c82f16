//! A data block decoded once for a scan or a compaction: its keys rebuilt into one buffer,
//! its values left where they are in the block.
//!
//! `Block::entries` gives each entry an owned key and value: two allocations and a copy of
//! the value per entry, though a merge drops every version a newer source shadows and a
//! compaction copies what it keeps into the next table anyway. A `DecodedBlock` is shared
//! (`Arc`) by the entries a table source hands out, each an index into it, and a value is
//! copied only where it leaves the engine (a scan's answer) or lands in a table.

use super::Block;
use std::sync::Arc;

/// Where entry `i`'s parts are.
#[derive(Debug, Clone, Copy)]
struct Slots {
    /// `keys[key.0..key.1]`.
    key: (usize, usize),
    sequence: u64,
    /// In the block; `None`: a tombstone.
    value: Option<(usize, usize)>,
}

/// See the module doc.
#[derive(Debug)]
pub struct DecodedBlock {
    block: Arc<Block>,
    keys: Vec<u8>,
    entries: Vec<Slots>,
}

impl DecodedBlock {
    /// Decodes every entry of `block`; `Err` says what is malformed (as `Block::entries`).
    pub fn decode(block: Arc<Block>) -> Result<DecodedBlock, String> {
        let bound = block.entry_bound();
        let mut keys = Vec::new();
        let mut entries = Vec::with_capacity(bound);
        block.for_each_entry(|key, sequence, value| {
            if keys.is_empty() {
                // Room for `bound` keys as long as the first, so that keys of one length
                // (the common case) fill one allocation instead of doubling into place.
                keys.reserve(bound * key.len());
            }
            let start = keys.len();
            keys.extend_from_slice(key);
            entries.push(Slots {
                key: (start, keys.len()),
                sequence,
                value,
            });
        })?;
        Ok(DecodedBlock {
            block,
            keys,
            entries,
        })
    }

    /// Entries in the block.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the block holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `i`'s key.
    pub fn key(&self, i: usize) -> &[u8] {
        let (start, end) = self.entries[i].key;
        &self.keys[start..end]
    }

    /// Entry `i`'s sequence number (0: visible to every reader).
    pub fn sequence(&self, i: usize) -> u64 {
        self.entries[i].sequence
    }

    /// Entry `i`'s value, `None` for a tombstone.
    pub fn value(&self, i: usize) -> Option<&[u8]> {
        self.entries[i].value.map(|range| self.block.bytes(range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sstable::BlockBuilder;

    #[test]
    fn a_decoded_block_holds_what_entries_returns() {
        let mut builder = BlockBuilder::new();
        for i in 0..70u32 {
            let key = format!("key{:04}", i / 2).into_bytes();
            let value = (i % 5 != 0).then(|| vec![i as u8; (i * 3) as usize]);
            builder.add(&key, u64::from((1 - i % 2) * 9 + 1), value.as_deref());
        }
        let mut data = Vec::new();
        builder.finish_into(&mut data);
        let block = Arc::new(Block::parse(data, 2).unwrap());
        let expected = block.entries().unwrap();
        let decoded = DecodedBlock::decode(Arc::clone(&block)).unwrap();
        assert_eq!(decoded.len(), expected.len());
        for (i, entry) in expected.iter().enumerate() {
            assert_eq!(decoded.key(i), entry.key.as_slice());
            assert_eq!(decoded.sequence(i), entry.sequence);
            assert_eq!(decoded.value(i), entry.value.as_deref());
        }
    }
}
