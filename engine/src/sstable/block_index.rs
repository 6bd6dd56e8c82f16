//! The parsed index of an open table: each data block's last key and handle, kept in a few
//! flat arrays rather than one heap allocation per block.
//!
//! Why flat: every open table holds its index for its whole life (a point read searches it
//! before any block), so at scale the indexes are a large share of the engine's memory. An
//! entry with its own key `Vec` cost about 88 bytes per block beyond the key (a 40-byte
//! entry, the key's heap block with its allocator header, a 16-byte prefix, and a doubling
//! `Vec`'s slack); here a block costs its key's bytes plus 36 (a 4-byte key end, a 16-byte
//! handle, a 16-byte prefix), each array sized exactly at open. The search is unchanged: it
//! compares the contiguous prefixes and touches key bytes only where prefixes tie.

use super::reader::IndexEntry;
use crate::key_prefix::KeyPrefix;

/// Where a data block is: its offset in the file and its size without the trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHandle {
    /// Block offset in the file.
    pub offset: u64,
    /// Block size, without the checksum.
    pub size: u64,
}

/// The data blocks of a table, in key order.
#[derive(Debug, Default)]
pub struct BlockIndex {
    /// Every block's last key, one after another.
    keys: Vec<u8>,
    /// Where block `i`'s last key ends in `keys` (it starts where block `i - 1`'s ends).
    key_ends: Vec<u32>,
    handles: Vec<BlockHandle>,
    /// Block `i`'s last key's prefix.
    prefixes: Vec<KeyPrefix>,
}

impl BlockIndex {
    /// An empty index with room for `blocks` blocks whose last keys take `key_bytes`.
    pub(super) fn with_capacity(blocks: usize, key_bytes: usize) -> BlockIndex {
        BlockIndex {
            keys: Vec::with_capacity(key_bytes),
            key_ends: Vec::with_capacity(blocks),
            handles: Vec::with_capacity(blocks),
            prefixes: Vec::with_capacity(blocks),
        }
    }

    /// Appends the next block; `Err` if the keys outgrow the 4 GiB a `u32` end addresses.
    pub(super) fn push(&mut self, last_key: &[u8], handle: BlockHandle) -> Result<(), String> {
        self.keys.extend_from_slice(last_key);
        let end = u32::try_from(self.keys.len())
            .map_err(|_| "the index's keys take more than 4 GiB".to_string())?;
        self.key_ends.push(end);
        self.handles.push(handle);
        self.prefixes.push(KeyPrefix::of(last_key));
        Ok(())
    }

    /// How many data blocks the table has.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the table has no data blocks.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Where block `i` is.
    pub fn handle(&self, i: usize) -> BlockHandle {
        self.handles[i]
    }

    /// The largest key in block `i`.
    pub fn last_key(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |before| self.key_ends[before]) as usize;
        &self.keys[start..self.key_ends[i] as usize]
    }

    /// Block `i` as an owned entry (for `verify` and `inspect`, which report it).
    pub fn entry(&self, i: usize) -> IndexEntry {
        let handle = self.handle(i);
        IndexEntry {
            last_key: self.last_key(i).to_vec(),
            offset: handle.offset,
            size: handle.size,
        }
    }

    /// Every block as an owned entry, in order.
    pub fn entries(&self) -> Vec<IndexEntry> {
        (0..self.len()).map(|i| self.entry(i)).collect()
    }

    /// The first block whose last key is `>= key` (`len()` if none).
    pub fn seek(&self, key: &[u8]) -> usize {
        let prefix = KeyPrefix::of(key);
        let start = self.prefixes.partition_point(|p| *p < prefix);
        let tied = self.prefixes[start..].partition_point(|p| *p == prefix);
        let mut low = start;
        let mut high = start + tied;
        // The first tied block whose last key is `>= key`, by bisection on the key bytes.
        while low < high {
            let middle = low + (high - low) / 2;
            if self.last_key(middle) < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys with long shared prefixes (ties of the 16-byte prefix) and short ones.
    fn keys() -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = (0..40u32)
            .map(|i| format!("same-sixteen-byt{i:03}").into_bytes())
            .chain((0..40u32).map(|i| format!("k{i:02}").into_bytes()))
            .chain([Vec::new(), vec![0xff; 20], vec![b'a'; 16], vec![b'a'; 17]])
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn seek_finds_the_first_block_whose_last_key_is_not_below_the_key() {
        let keys = keys();
        let mut index = BlockIndex::with_capacity(keys.len(), 0);
        for (i, key) in keys.iter().enumerate() {
            let handle = BlockHandle {
                offset: i as u64 * 100,
                size: i as u64,
            };
            index.push(key, handle).unwrap();
        }
        assert_eq!(index.len(), keys.len());
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(index.last_key(i), key.as_slice());
            assert_eq!(index.entry(i).offset, i as u64 * 100);
        }
        let mut probes = keys.clone();
        probes.extend(keys.iter().map(|key| [key.as_slice(), b"\0"].concat()));
        probes.extend([b"same-sixteen-byt".to_vec(), b"zzz".to_vec(), b"k".to_vec()]);
        for probe in probes {
            let brute_force = keys
                .iter()
                .position(|last| *last >= probe)
                .unwrap_or(keys.len());
            assert_eq!(index.seek(&probe), brute_force, "{probe:?}");
        }
    }
}
