//! The bloom filter of an SSTable: a cache-line-blocked bloom filter over every key.
//!
//! Grammar (see `docs/sstable-format.md`):
//! ```text
//! filter := line{lines} probes:u8 lines:u32le     -- line = 64 bytes = 512 bits
//! ```
//! A key's 64-bit XXH3 hash picks one line (multiply-shift on the high half); a second
//! 64-bit value derived from it gives `probes` bit positions of 9 bits each inside that
//! line. One cache miss per lookup; at 10 bits per key and 7 probes the measured false
//! positive rate is about 1% (see the tests). A filter never says "no" for a key it holds.

use xxhash_rust::xxh3::xxh3_64;

/// Bytes per line.
const LINE_BYTES: usize = 64;
/// Bits per line.
const LINE_BITS: u64 = 512;

/// A key's filter hash, computed once per lookup and shared by every table's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

impl KeyHash {
    /// The hash of `key`.
    pub fn of(key: &[u8]) -> KeyHash {
        KeyHash(xxh3_64(key))
    }

    /// The 64-bit hash (the memtable's filter derives its bits from the same value, so a
    /// read hashes its key once).
    pub(crate) fn value(self) -> u64 {
        self.0
    }
}

fn hashes(hash: KeyHash) -> (u64, u64) {
    let hash = hash.0;
    let second = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31) ^ hash;
    (hash, second)
}

fn line_of(hash: u64, lines: u32) -> usize {
    (((hash >> 32) * lines as u64) >> 32) as usize
}

/// Key hashes per chunk of a [`FilterBuilder`]: 64 KiB, below glibc's initial mmap threshold.
const HASHES_PER_CHUNK: usize = 8192;

/// Builds a filter from key hashes.
///
/// The hashes wait in fixed chunks of `HASHES_PER_CHUNK` (8,192), not in one growing `Vec`: a
/// compaction's output table holds a million keys and more, and a doubling `Vec` of their
/// hashes peaked at 16.8 MB (twice the hashes' 8 bytes each, plus the old buffer during each
/// copy) in heaptrack's profile of peerbench's 10M fill. Each freed buffer of megabytes also
/// raised glibc's mmap threshold, after which the process kept such buffers' memory instead
/// of returning it. Chunks cost at most one chunk of slack and are never copied.
#[derive(Debug, Default)]
pub struct FilterBuilder {
    chunks: Vec<Vec<u64>>,
}

impl FilterBuilder {
    /// An empty builder.
    pub fn new() -> FilterBuilder {
        FilterBuilder::default()
    }

    /// Adds a key.
    pub fn add(&mut self, key: &[u8]) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < HASHES_PER_CHUNK => chunk.push(xxh3_64(key)),
            _ => {
                let mut chunk = Vec::with_capacity(HASHES_PER_CHUNK);
                chunk.push(xxh3_64(key));
                self.chunks.push(chunk);
            }
        }
    }

    /// How many keys were added.
    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Appends the filter for every key added, at `bits_per_key`, to `out`.
    pub fn finish_into(&self, bits_per_key: usize, out: &mut Vec<u8>) {
        let bits = (self.len() * bits_per_key).max(LINE_BITS as usize) as u64;
        let lines = bits.div_ceil(LINE_BITS).min(u32::MAX as u64) as u32;
        // ln 2 * bits per key, the classic optimum, within what 64 bits of probes allow.
        let probes = ((bits_per_key as f64 * 0.69).round() as u32).clamp(1, 7) as u8;
        let start = out.len();
        out.resize(start + lines as usize * LINE_BYTES, 0);
        let data = &mut out[start..];
        for &hash in self.chunks.iter().flatten() {
            let (hash, second) = hashes(KeyHash(hash));
            let line = line_of(hash, lines) * LINE_BYTES;
            for probe in 0..probes as u32 {
                let bit = ((second >> (probe * 9)) & (LINE_BITS - 1)) as usize;
                data[line + bit / 8] |= 1 << (bit % 8);
            }
        }
        out.push(probes);
        out.extend_from_slice(&lines.to_le_bytes());
    }
}

/// A parsed filter.
#[derive(Debug, Clone)]
pub struct Filter {
    data: Vec<u8>,
    lines: u32,
    probes: u8,
}

impl Filter {
    /// Parses a filter block; `Err` says what is malformed.
    pub fn parse(mut data: Vec<u8>) -> Result<Filter, String> {
        if data.len() < 5 {
            return Err(format!("filter of {} bytes is too short", data.len()));
        }
        let n = data.len();
        let lines = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]);
        let probes = data[n - 5];
        if lines == 0
            || u64::from(lines) * LINE_BYTES as u64 != (n - 5) as u64
            || !(1..=7).contains(&probes)
        {
            return Err(format!(
                "filter of {n} bytes claims {lines} lines and {probes} probes"
            ));
        }
        data.truncate(n - 5);
        Ok(Filter {
            data,
            lines,
            probes,
        })
    }

    /// Bytes of filter bits.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// False if `key` is certainly not in the table; true if it may be.
    ///
    /// Branch-free on the filter's bits: a read tests several tables' filters in a row, and
    /// without a branch on each loaded bit the CPU issues every table's cache-line miss
    /// before the first one returns (and never mispredicts on a bit).
    pub fn may_contain(&self, key: KeyHash) -> bool {
        let (hash, second) = hashes(key);
        let start = line_of(hash, self.lines) * LINE_BYTES;
        let Some(line) = self
            .data
            .get(start..start + LINE_BYTES)
            .and_then(|line| <&[u8; LINE_BYTES]>::try_from(line).ok())
        else {
            unreachable!("line {start} of a filter of {} bytes", self.data.len())
        };
        let mut found = 1u8;
        for probe in 0..self.probes as u32 {
            let bit = ((second >> (probe * 9)) & (LINE_BITS - 1)) as usize;
            found &= line[bit / 8] >> (bit % 8);
        }
        found & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: impl Iterator<Item = Vec<u8>>, bits_per_key: usize) -> Filter {
        let mut builder = FilterBuilder::new();
        for key in keys {
            builder.add(&key);
        }
        let mut out = Vec::new();
        builder.finish_into(bits_per_key, &mut out);
        Filter::parse(out).unwrap()
    }

    #[test]
    fn no_false_negatives() {
        for n in [1usize, 10, 1000, 50_000] {
            let filter = build((0..n).map(|i| format!("key{i:016}").into_bytes()), 10);
            for i in 0..n {
                assert!(
                    filter.may_contain(KeyHash::of(format!("key{i:016}").as_bytes())),
                    "n={n} key {i}"
                );
            }
        }
    }

    #[test]
    fn false_positive_rate_at_10_bits_per_key_is_at_most_1_2_percent() {
        let n = 100_000;
        let filter = build((0..n).map(|i| format!("{i:016}").into_bytes()), 10);
        let trials = 200_000;
        let false_positives = (0..trials)
            .filter(|i| filter.may_contain(KeyHash::of(format!("{:015}.", i * 7 + 3).as_bytes())))
            .count();
        let rate = false_positives as f64 / trials as f64;
        assert!(rate <= 0.012, "false positive rate {rate:.4} above 1.2%");
        assert!(
            rate > 0.0,
            "a filter with no false positives at all is suspicious"
        );
    }

    #[test]
    fn upper_level_filters_have_about_a_tenth_of_the_false_positives() {
        let n = 100_000;
        let bits = 10 + crate::options::UPPER_LEVEL_EXTRA_BLOOM_BITS;
        let filter = build((0..n).map(|i| format!("{i:016}").into_bytes()), bits);
        let trials = 400_000;
        let false_positives = (0..trials)
            .filter(|i| filter.may_contain(KeyHash::of(format!("{:015}.", i * 7 + 3).as_bytes())))
            .count();
        let rate = false_positives as f64 / trials as f64;
        assert!(
            rate <= 0.0015,
            "false positive rate {rate:.5} at {bits} bits per key"
        );
    }

    /// The grammar's bits, set from one flat list of hashes: the chunked builder must give
    /// the same bytes (a table's filter is part of its file, which the simulator's traces pin).
    fn reference_filter(keys: &[Vec<u8>], bits_per_key: usize) -> Vec<u8> {
        let bits = (keys.len() * bits_per_key).max(LINE_BITS as usize) as u64;
        let lines = bits.div_ceil(LINE_BITS) as u32;
        let probes = ((bits_per_key as f64 * 0.69).round() as u32).clamp(1, 7) as u8;
        let mut data = vec![0u8; lines as usize * LINE_BYTES];
        for key in keys {
            let (hash, second) = hashes(KeyHash::of(key));
            let line = line_of(hash, lines) * LINE_BYTES;
            for probe in 0..probes as u32 {
                let bit = ((second >> (probe * 9)) & (LINE_BITS - 1)) as usize;
                data[line + bit / 8] |= 1 << (bit % 8);
            }
        }
        data.push(probes);
        data.extend_from_slice(&lines.to_le_bytes());
        data
    }

    #[test]
    fn filters_across_hash_chunks_match_the_grammar_bit_for_bit() {
        for n in [
            1,
            HASHES_PER_CHUNK - 1,
            HASHES_PER_CHUNK,
            HASHES_PER_CHUNK + 1,
            3 * HASHES_PER_CHUNK + 17,
        ] {
            let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i:09}").into_bytes()).collect();
            let mut builder = FilterBuilder::new();
            for key in &keys {
                builder.add(key);
            }
            assert_eq!(builder.len(), n);
            let mut out = vec![0xAA];
            builder.finish_into(10, &mut out);
            assert_eq!(out[0], 0xAA, "the filter is appended after what `out` held");
            assert!(out[1..] == reference_filter(&keys, 10)[..], "{n} keys");
        }
    }

    #[test]
    fn malformed_filters_are_rejected() {
        assert!(Filter::parse(vec![]).is_err());
        assert!(Filter::parse(vec![0; 69]).is_err());
        let mut bad = vec![0u8; 64];
        bad.push(9);
        bad.extend_from_slice(&1u32.to_le_bytes());
        assert!(Filter::parse(bad).is_err());
    }
}
