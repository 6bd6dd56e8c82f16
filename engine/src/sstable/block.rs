//! Blocks: the unit of an SSTable that is read, checksummed and searched at once.
//!
//! Grammar (see `docs/sstable-format.md`):
//! ```text
//! block        := entry* restart:u32le{restarts} restarts:u32le
//! entry        := shared_field:varint unshared:varint value_field:varint sequence?
//!                 key_suffix value
//! shared_field := shared * 2 + has_sequence        -- format 2; format 1: shared
//! sequence     := varint                            -- present iff has_sequence (non-zero)
//! value_field  := 0 (tombstone, no value bytes) | value_length + 1
//! ```
//! Keys are prefix-compressed against the previous key, except at *restart points* (every
//! `RESTART_INTERVAL` entries) where `shared` is 0; the restart offsets let a reader binary
//! search a block. On disk a block is followed by the CRC-32 (IEEE, crc32fast) of its bytes.
//!
//! Entries are ordered by key, and a key's versions by recency, newest first. A version
//! carries its sequence number only while a live snapshot may need to tell it from a newer
//! one; an entry without one (sequence 0) is visible to every reader and is always its key's
//! oldest version in the table. A key's versions never span two blocks, so one block answers
//! a point read.

use crate::coding::{get_u32, put_u32, put_varint, Decoder};
use crate::memtable::Slot;

/// Entries between restart points.
pub const RESTART_INTERVAL: usize = 16;

/// Builds one block.
#[derive(Debug, Default)]
pub struct BlockBuilder {
    buffer: Vec<u8>,
    restarts: Vec<u32>,
    last_key: Vec<u8>,
    last_sequence: u64,
    entries: usize,
    /// `buffer` holds a block `finish_in_place` finished (cleared before the next entry).
    finished: bool,
}

impl BlockBuilder {
    /// An empty block.
    pub fn new() -> BlockBuilder {
        BlockBuilder::default()
    }

    /// Adds an entry: version `sequence` (0: visible to every reader) of `key`. Keys must
    /// be added in increasing order, and a key's versions newest first (decreasing
    /// sequences, 0 last).
    pub fn add(&mut self, key: &[u8], sequence: u64, value: Option<&[u8]>) {
        assert!(
            self.entries == 0
                || key > self.last_key.as_slice()
                || (key == self.last_key.as_slice() && sequence < self.last_sequence),
            "block keys must increase, and a key's versions go newest first"
        );
        self.clear_finished();
        let shared = if self.entries.is_multiple_of(RESTART_INTERVAL) {
            self.restarts.push(self.buffer.len() as u32);
            0
        } else {
            key.iter()
                .zip(self.last_key.iter())
                .take_while(|(a, b)| a == b)
                .count()
        };
        // Room for the entry and the block's restart array at once: a block that one large
        // value fills would otherwise be copied again when `finish_*` appends the array.
        self.buffer.reserve(
            4 * 10 + key.len() - shared
                + value.map_or(0, <[u8]>::len)
                + 4 * (self.restarts.len() + 1),
        );
        put_varint(
            &mut self.buffer,
            (shared as u64) << 1 | u64::from(sequence != 0),
        );
        put_varint(&mut self.buffer, (key.len() - shared) as u64);
        put_varint(&mut self.buffer, value.map_or(0, |v| v.len() as u64 + 1));
        if sequence != 0 {
            put_varint(&mut self.buffer, sequence);
        }
        self.buffer.extend_from_slice(&key[shared..]);
        if let Some(value) = value {
            self.buffer.extend_from_slice(value);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.last_sequence = sequence;
        self.entries += 1;
    }

    /// Bytes the finished block would take (without its checksum).
    pub fn estimated_size(&self) -> usize {
        let buffered = if self.finished { 0 } else { self.buffer.len() };
        buffered + 4 * self.restarts.len() + 4
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added.
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Finishes the block where it was built (its restart array appended) and returns its
    /// bytes, which stay until the next [`BlockBuilder::add`] or `finish_*`; the builder then
    /// starts the next block. Spares [`BlockBuilder::finish_into`]'s copy when the bytes are
    /// to be compressed (or copied) anyway.
    pub fn finish_in_place(&mut self) -> &[u8] {
        self.clear_finished();
        for &restart in &self.restarts {
            put_u32(&mut self.buffer, restart);
        }
        put_u32(&mut self.buffer, self.restarts.len() as u32);
        self.restarts.clear();
        self.entries = 0;
        self.finished = true;
        &self.buffer
    }

    /// Drops a block `finish_in_place` left in the buffer.
    fn clear_finished(&mut self) {
        if self.finished {
            self.buffer.clear();
            self.finished = false;
        }
    }

    /// Appends the finished block to `out` and resets the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        self.clear_finished();
        out.extend_from_slice(&self.buffer);
        for &restart in &self.restarts {
            put_u32(out, restart);
        }
        put_u32(out, self.restarts.len() as u32);
        self.buffer.clear();
        self.restarts.clear();
        self.entries = 0;
    }
}

/// A parsed, checksum-verified block.
#[derive(Debug, Clone)]
pub struct Block {
    data: Vec<u8>,
    restarts_at: usize,
    restarts: usize,
    /// Format 2: entries may carry sequence numbers.
    versioned: bool,
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// The full key.
    pub key: Vec<u8>,
    /// The version's sequence number; 0: visible to every reader.
    pub sequence: u64,
    /// The value, or `None` for a tombstone.
    pub value: Slot,
}

/// An entry's key as the block stores it: the bytes shared with the previous key, and where
/// the rest lies in the block.
#[derive(Debug, Clone, Copy)]
struct Parts {
    shared: usize,
    suffix: (usize, usize),
    decoded: Decoded,
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where a decoded entry's parts are in the block.
#[derive(Debug, Clone, Copy)]
struct Decoded {
    next: usize,
    sequence: u64,
    value: Option<(usize, usize)>,
}

impl Block {
    /// Parses a block's bytes (already checksum-verified) of a table of format
    /// `format_version`; `Err` says what is malformed.
    pub fn parse(data: Vec<u8>, format_version: u32) -> Result<Block, String> {
        if data.len() < 4 {
            return Err(format!(
                "block of {} bytes has no restart count",
                data.len()
            ));
        }
        let restarts = get_u32(&data, data.len() - 4).unwrap_or(0) as usize;
        let restart_bytes = restarts.checked_mul(4).ok_or("restart count overflows")?;
        if restarts == 0 || restart_bytes + 4 > data.len() {
            return Err(format!(
                "restart count {restarts} does not fit a block of {} bytes",
                data.len()
            ));
        }
        let restarts_at = data.len() - 4 - restart_bytes;
        let block = Block {
            data,
            restarts_at,
            restarts,
            versioned: format_version >= 2,
        };
        for i in 0..restarts {
            if block.restart(i) >= restarts_at {
                return Err(format!("restart point {i} is outside the block"));
            }
        }
        Ok(block)
    }

    /// Bytes of the block.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    fn restart(&self, index: usize) -> usize {
        get_u32(&self.data, self.restarts_at + 4 * index).unwrap_or(0) as usize
    }

    /// Decodes the entry at `offset` given the previous key (rebuilt in `key`).
    fn decode_at(&self, offset: usize, key: &mut Vec<u8>) -> Result<Decoded, String> {
        let parts = self.decode_parts(offset, key.len())?;
        key.truncate(parts.shared);
        key.extend_from_slice(&self.data[parts.suffix.0..parts.suffix.1]);
        Ok(parts.decoded)
    }

    /// Decodes the entry at `offset` without rebuilding its key: how many bytes it shares
    /// with the previous key (of `previous_length` bytes) and where its suffix lies.
    fn decode_parts(&self, offset: usize, previous_length: usize) -> Result<Parts, String> {
        let body = &self.data[..self.restarts_at];
        let mut decoder = Decoder::new(&body[offset..]);
        let malformed = || format!("malformed entry at block offset {offset}");
        let shared_field = decoder.varint().ok_or_else(malformed)?;
        let unshared = decoder.varint().ok_or_else(malformed)? as usize;
        let value_field = decoder.varint().ok_or_else(malformed)?;
        let (shared, has_sequence) = if self.versioned {
            (shared_field >> 1, shared_field & 1 == 1)
        } else {
            (shared_field, false)
        };
        let sequence = if has_sequence {
            match decoder.varint() {
                Some(0) | None => return Err(malformed()),
                Some(sequence) => sequence,
            }
        } else {
            0
        };
        let shared = usize::try_from(shared).map_err(|_| malformed())?;
        if shared > previous_length {
            return Err(malformed());
        }
        let suffix_start = offset + decoder.position();
        decoder.bytes(unshared).ok_or_else(malformed)?;
        let suffix = (suffix_start, suffix_start + unshared);
        let value = if value_field == 0 {
            None
        } else {
            let len = usize::try_from(value_field - 1).map_err(|_| malformed())?;
            let start = offset + decoder.position();
            decoder.bytes(len).ok_or_else(malformed)?;
            Some((start, start + len))
        };
        Ok(Parts {
            shared,
            suffix,
            decoded: Decoded {
                next: offset + decoder.position(),
                sequence,
                value,
            },
        })
    }

    fn slot(&self, range: Option<(usize, usize)>) -> Slot {
        range.map(|(start, end)| self.data[start..end].to_vec())
    }

    /// Finds the newest version of `key` at or below `sequence` in the block (`None`: the
    /// block has none).
    pub fn get(&self, key: &[u8], sequence: u64) -> Result<Option<Slot>, String> {
        // Binary search the restart points for the last one whose key is < `key` (a key's
        // versions may straddle a restart point, and the newest comes first); restart keys
        // are stored whole, so this compares slices of the block without copying.
        let (mut low, mut high) = (0usize, self.restarts);
        while high - low > 1 {
            let mid = (low + high) / 2;
            if self.restart_key(mid)? < key {
                low = mid;
            } else {
                high = mid;
            }
        }
        // Then scan from there without rebuilding keys (the hot read path copies nothing but
        // the value it returns). `matched` is how many leading bytes the previous key shares
        // with `key`, which it does not exceed (the scan stops at the first key above `key`).
        // An entry that shares `shared <= matched` bytes with the previous key has those
        // bytes of `key`, so its suffix against the rest of `key` decides; one that shares
        // more has the previous key's byte where that key fell below `key`, so it is below
        // `key` too, matching the same bytes.
        let mut offset = self.restart(low);
        let (mut matched, mut previous_length) = (0usize, 0usize);
        while offset < self.restarts_at {
            let parts = self.decode_parts(offset, previous_length)?;
            let (start, end) = parts.suffix;
            previous_length = parts.shared + (end - start);
            if parts.shared <= matched {
                let suffix = &self.data[start..end];
                let rest = &key[parts.shared..];
                let common = common_prefix(suffix, rest);
                matched = parts.shared + common;
                match suffix.cmp(rest) {
                    std::cmp::Ordering::Equal if parts.decoded.sequence <= sequence => {
                        return Ok(Some(self.slot(parts.decoded.value)))
                    }
                    std::cmp::Ordering::Greater => return Ok(None),
                    _ => {}
                }
            }
            offset = parts.decoded.next;
        }
        Ok(None)
    }

    /// The key at restart point `index`, borrowed from the block.
    fn restart_key(&self, index: usize) -> Result<&[u8], String> {
        let offset = self.restart(index);
        let body = &self.data[..self.restarts_at];
        let mut decoder = Decoder::new(&body[offset..]);
        let malformed = || format!("malformed restart entry at block offset {offset}");
        let shared_field = decoder.varint().ok_or_else(malformed)?;
        let unshared = decoder.varint().ok_or_else(malformed)? as usize;
        decoder.varint().ok_or_else(malformed)?;
        let shared = if self.versioned {
            if shared_field & 1 == 1 {
                decoder.varint().ok_or_else(malformed)?;
            }
            shared_field >> 1
        } else {
            shared_field
        };
        if shared != 0 {
            return Err(malformed());
        }
        decoder.bytes(unshared).ok_or_else(malformed)
    }

    /// Every entry, in order.
    pub fn entries(&self) -> Result<Vec<BlockEntry>, String> {
        // At most `RESTART_INTERVAL` entries per restart point, and each takes at least its
        // three varints: room for all of them at once, bounded by what the bytes can hold.
        let mut out = Vec::with_capacity(self.entry_bound());
        self.for_each_entry(|key, sequence, value| {
            out.push(BlockEntry {
                key: key.to_vec(),
                sequence,
                value: self.slot(value),
            })
        })?;
        Ok(out)
    }

    /// At least as many entries as the block holds, and no more than its bytes could hold.
    pub(crate) fn entry_bound(&self) -> usize {
        (self.restarts * RESTART_INTERVAL).min(self.restarts_at / 3 + 1)
    }

    /// Visits every entry in order: its key (rebuilt in a buffer the next entry reuses), its
    /// sequence number, and where its value lies in the block (`None`: a tombstone).
    pub(crate) fn for_each_entry(
        &self,
        mut visit: impl FnMut(&[u8], u64, Option<(usize, usize)>),
    ) -> Result<(), String> {
        let mut offset = 0;
        let mut key = Vec::new();
        while offset < self.restarts_at {
            let entry = self.decode_at(offset, &mut key)?;
            visit(&key, entry.sequence, entry.value);
            offset = entry.next;
        }
        Ok(())
    }

    /// The bytes of the block at `range` (a value's, as `for_each_entry` gave it).
    pub(crate) fn bytes(&self, (start, end): (usize, usize)) -> &[u8] {
        &self.data[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_find_every_key_and_no_other() {
        let mut builder = BlockBuilder::new();
        let keys: Vec<Vec<u8>> = (0..100u32)
            .map(|i| format!("key{:05}", i * 2).into_bytes())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            let value = if i % 7 == 0 {
                None
            } else {
                Some(key.as_slice())
            };
            builder.add(key, 0, value);
        }
        let mut data = Vec::new();
        builder.finish_into(&mut data);
        let block = Block::parse(data, 2).unwrap();
        for (i, key) in keys.iter().enumerate() {
            let expected = if i % 7 == 0 { None } else { Some(key.clone()) };
            assert_eq!(block.get(key, u64::MAX).unwrap(), Some(expected));
            let missing = format!("key{:05}", i * 2 + 1).into_bytes();
            assert_eq!(block.get(&missing, u64::MAX).unwrap(), None);
        }
        assert_eq!(block.get(b"a", u64::MAX).unwrap(), None);
        assert_eq!(block.get(b"z", u64::MAX).unwrap(), None);
        assert_eq!(block.entries().unwrap().len(), keys.len());
    }

    #[test]
    fn blocks_finished_in_place_are_the_blocks_finish_into_writes() {
        // Two builders fed the same entries, block after block: one finishes in place, the
        // other copies out. Every block's bytes, size estimate and last key agree.
        let (mut in_place, mut copied) = (BlockBuilder::new(), BlockBuilder::new());
        for block in 0..4u32 {
            for i in 0..(block * 7 + 1) {
                let key = format!("key{:02}{i:03}", block).into_bytes();
                let value = (i % 3 != 0).then(|| vec![b'v'; (i * 5) as usize]);
                in_place.add(&key, u64::from(i % 2), value.as_deref());
                copied.add(&key, u64::from(i % 2), value.as_deref());
                assert_eq!(in_place.estimated_size(), copied.estimated_size());
            }
            let mut expected = Vec::new();
            copied.finish_into(&mut expected);
            assert_eq!(
                in_place.finish_in_place(),
                expected.as_slice(),
                "block {block}"
            );
            assert!(in_place.is_empty());
            assert_eq!(in_place.estimated_size(), copied.estimated_size());
            assert_eq!(in_place.last_key(), copied.last_key());
            assert_eq!(
                Block::parse(expected, 2).unwrap().entries().unwrap().len(),
                (block * 7 + 1) as usize
            );
        }
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        for data in [
            vec![],
            vec![1, 0, 0],
            vec![0, 0, 0, 0],
            vec![9, 9, 9, 9, 1, 0, 0, 0],
        ] {
            for format in [1, 2] {
                if let Ok(block) = Block::parse(data.clone(), format) {
                    let _ = block.get(b"x", u64::MAX);
                    let _ = block.entries();
                }
            }
        }
    }

    #[test]
    fn a_read_finds_the_newest_version_at_or_below_its_sequence() {
        let mut builder = BlockBuilder::new();
        // Versions of "b" at a restart point and past it, around other keys.
        builder.add(b"a", 0, Some(b"a0"));
        builder.add(b"b", 12, Some(b"b12"));
        builder.add(b"b", 7, None);
        builder.add(b"b", 0, Some(b"b0"));
        builder.add(b"c", 30, Some(b"c30"));
        let mut data = Vec::new();
        builder.finish_into(&mut data);
        let block = Block::parse(data, 2).unwrap();
        let b = |sequence| block.get(b"b", sequence).unwrap();
        assert_eq!(b(u64::MAX), Some(Some(b"b12".to_vec())));
        assert_eq!(b(12), Some(Some(b"b12".to_vec())));
        assert_eq!(b(11), Some(None));
        assert_eq!(b(7), Some(None));
        assert_eq!(b(6), Some(Some(b"b0".to_vec())));
        assert_eq!(
            block.get(b"c", 29).unwrap(),
            None,
            "no version of c is that old"
        );
        let sequences: Vec<u64> = block
            .entries()
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, vec![0, 12, 7, 0, 30]);
    }

    /// Pins the fix of a bug the snapshot sweep found (seed 181, sequential): a read started
    /// at the last restart point whose key was at or below the key, so when a key's versions
    /// straddled a restart point it started inside them and missed the newest.
    #[test]
    fn a_key_whose_versions_straddle_a_restart_point_reads_its_newest() {
        let mut builder = BlockBuilder::new();
        for i in 0..RESTART_INTERVAL - 2 {
            builder.add(format!("a{i:02}").as_bytes(), 0, Some(b"x"));
        }
        // Versions 30, 20 (the last entries before the restart point), 10 (at it), 0.
        for (sequence, value) in [(30, "thirty"), (20, "twenty"), (10, "ten"), (0, "zero")] {
            builder.add(b"k", sequence, Some(value.as_bytes()));
        }
        let mut data = Vec::new();
        builder.finish_into(&mut data);
        let block = Block::parse(data, 2).unwrap();
        let k = |sequence| block.get(b"k", sequence).unwrap().flatten();
        assert_eq!(k(u64::MAX), Some(b"thirty".to_vec()));
        assert_eq!(k(25), Some(b"twenty".to_vec()));
        assert_eq!(k(10), Some(b"ten".to_vec()));
        assert_eq!(k(5), Some(b"zero".to_vec()));
    }

    #[test]
    #[should_panic(expected = "newest first")]
    fn a_key_versions_out_of_order_are_refused() {
        let mut builder = BlockBuilder::new();
        builder.add(b"b", 7, None);
        builder.add(b"b", 12, None);
    }

    proptest::proptest! {
        /// A point read answers as a brute-force pass over every entry does: the first
        /// version of the key at or below the sequence. Keys are drawn from few bytes, so
        /// that they share prefixes of every length, are prefixes of each other, and repeat
        /// (versions), and targets include keys absent from the block.
        #[test]
        fn a_point_read_agrees_with_a_scan_of_every_entry(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 0..6), 1..60),
            versions in proptest::collection::vec(1u64..4, 60),
            targets in proptest::collection::vec((proptest::collection::vec(0u8..3, 0..6), 0u64..12), 40),
        ) {
            let mut builder = BlockBuilder::new();
            for (index, (key, &count)) in keys.iter().zip(&versions).enumerate() {
                for version in 0..count {
                    // Decreasing per key; the oldest is sometimes 0 (visible to every reader).
                    let sequence = if version + 1 == count && index % 2 == 0 {
                        0
                    } else {
                        3 * (count - version)
                    };
                    let value = (!(index as u64 + version).is_multiple_of(4))
                        .then(|| (index as u64 * 10 + version).to_le_bytes().to_vec());
                    builder.add(key, sequence, value.as_deref());
                }
            }
            let mut data = Vec::new();
            builder.finish_into(&mut data);
            let block = Block::parse(data, 2).unwrap();
            let entries = block.entries().unwrap();
            let present = keys.iter().flat_map(|key| (0..12).map(move |at| (key.clone(), at)));
            for (target, at) in targets.iter().cloned().chain(present) {
                let expected = entries
                    .iter()
                    .find(|entry| entry.key == target && entry.sequence <= at)
                    .map(|entry| entry.value.clone());
                proptest::prop_assert_eq!(block.get(&target, at).unwrap(), expected, "{:?} at {}", target, at);
            }
        }
    }
}
