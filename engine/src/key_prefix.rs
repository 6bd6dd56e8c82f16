//! `KeyPrefix`: a key's first 16 bytes as one `u128`, so that the hot comparisons of the
//! read path (which table of a level, which block of a table) are an integer compare on a
//! contiguous array instead of a `memcmp` through a heap pointer per step.

use std::cmp::Ordering;

/// A key's first 16 bytes as a big-endian number, zero-padded. Two prefixes that differ
/// order their keys exactly as a byte-wise comparison would (a shorter key that matches the
/// other's first bytes pads with zeros, which never sort above a byte); equal prefixes fall
/// back to the full comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPrefix(u128);

impl KeyPrefix {
    /// The prefix of `key`.
    pub fn of(key: &[u8]) -> KeyPrefix {
        let mut bytes = [0u8; 16];
        let n = key.len().min(16);
        bytes[..n].copy_from_slice(&key[..n]);
        KeyPrefix(u128::from_be_bytes(bytes))
    }
}

/// Byte-wise order of `a` and `b`, given their prefixes.
pub fn compare_prefixed(a: &[u8], a_prefix: KeyPrefix, b: &[u8], b_prefix: KeyPrefix) -> Ordering {
    a_prefix.cmp(&b_prefix).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_comparison_agrees_with_byte_order() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"ab".to_vec(),
            b"0000000000000001".to_vec(),
            b"0000000000000001\0".to_vec(),
            b"0000000000000001x".to_vec(),
            b"000000000000000.".to_vec(),
            vec![255; 17],
            vec![255; 16],
            [vec![255; 16], vec![0]].concat(),
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    compare_prefixed(a, KeyPrefix::of(a), b, KeyPrefix::of(b)),
                    a.cmp(b),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }
}
