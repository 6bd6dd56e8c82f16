//! Block compression: how a data block's bytes are stored, recorded per block.
//!
//! ```text
//! stored_block := contents compression:u8 crc32:u32le   -- format 2; crc over contents + type
//! compression  := 0 (contents = the block) | 1 (contents = lz4_block)
//! lz4_block    := uncompressed_length:varint lz4 block format bytes
//! ```
//! A block is stored compressed only if that saves at least an eighth of it (as LevelDB
//! does): incompressible data is not paid for twice on every read. The checksum covers the
//! stored bytes and the type, so damage is caught before anything is decompressed; the
//! decompressor is bounded anyway (LZ4 expands at most 255-fold), so a hostile length
//! cannot make a reader allocate more than the file could hold. Compression is `lz4_flex`'s;
//! decompression is `lz4.rs`'s (the same streams accepted, the same bytes produced, without
//! zeroing the output first), with `lz4_flex` asked for the reason of a stream it refuses.

use crate::coding::{put_varint, Decoder};

/// How a table's data blocks are compressed (per level: [`crate::Options::compression_per_level`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Stored as they are.
    None,
    /// LZ4 (block format, the pure-Rust `lz4_flex`): fast enough to cost little on flushes
    /// and compactions, about half the size for typical values.
    #[default]
    Lz4,
}

/// The type byte of a block stored as it is.
pub const STORED_RAW: u8 = 0;
/// The type byte of a block stored LZ4-compressed.
pub const STORED_LZ4: u8 = 1;

/// LZ4's largest expansion: a decompressed block is at most this many times its compressed
/// bytes (plus a little).
const LZ4_MAX_RATIO: usize = 255;

/// A compressor's output buffer larger than this is not kept for the next block.
const SCRATCH_KEPT: usize = 1 << 20;

thread_local! {
    /// The compressor's output buffer, kept by each thread from block to block and table to
    /// table: zeroed once at its largest size, so no block pays for zeroing LZ4's worst case
    /// (the simulator's tables are a few blocks each; every new table paid for it).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends `block` to `out` as `compression` stores it; returns the type byte written into
/// the trailer by the caller.
pub fn store(block: &[u8], compression: Compression, out: &mut Vec<u8>) -> u8 {
    if compression == Compression::Lz4 && block.len() >= 64 {
        let stored = SCRATCH.with_borrow_mut(|scratch| {
            let bound = lz4_flex::block::get_maximum_output_size(block.len());
            if scratch.len() < bound {
                scratch.resize(bound, 0);
            }
            let compressed = match lz4_flex::block::compress_into(block, scratch) {
                Ok(written) => {
                    let mut header = Vec::with_capacity(10);
                    put_varint(&mut header, block.len() as u64);
                    if header.len() + written <= block.len() - block.len() / 8 {
                        out.extend_from_slice(&header);
                        out.extend_from_slice(&scratch[..written]);
                        true
                    } else {
                        false
                    }
                }
                Err(_) => false,
            };
            if scratch.len() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
            compressed
        });
        if stored {
            return STORED_LZ4;
        }
    }
    out.extend_from_slice(block);
    STORED_RAW
}

/// The block `contents` of type `kind` hold; `Err` says what is malformed.
pub fn load(contents: Vec<u8>, kind: u8) -> Result<Vec<u8>, String> {
    match kind {
        STORED_RAW => Ok(contents),
        STORED_LZ4 => {
            let mut decoder = Decoder::new(&contents);
            let length = decoder
                .varint()
                .ok_or("compressed block without its length")?;
            let compressed = &contents[decoder.position()..];
            let bound = compressed.len().saturating_mul(LZ4_MAX_RATIO) + 64;
            let length = usize::try_from(length)
                .ok()
                .filter(|&length| length <= bound)
                .ok_or_else(|| {
                    format!(
                        "compressed block claims {length} bytes, more than its {} compressed \
                         bytes can hold",
                        compressed.len()
                    )
                })?;
            // The fast decoder (`lz4.rs`: no zeroing, no byte loop). A stream it refuses
            // goes to `lz4_flex`, which says why (and would decode it, were they ever to
            // disagree).
            let mut block = Vec::new();
            if super::lz4::decompress_into_vec(compressed, length, &mut block).is_err() {
                block = vec![0u8; length];
                match lz4_flex::block::decompress_into(compressed, &mut block) {
                    Ok(written) => block.truncate(written),
                    Err(error) => {
                        return Err(format!("compressed block does not decompress: {error}"))
                    }
                }
            }
            match block.len() {
                written if written == length => Ok(block),
                written => Err(format!(
                    "compressed block decompressed to {written} bytes, not the {length} recorded"
                )),
            }
        }
        other => Err(format!("unknown block compression type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_blocks_shrink_and_come_back_whole() {
        let block: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        let mut stored = Vec::new();
        assert_eq!(store(&block, Compression::Lz4, &mut stored), STORED_LZ4);
        assert!(stored.len() < block.len() / 4, "{} bytes", stored.len());
        assert_eq!(load(stored, STORED_LZ4).unwrap(), block);
    }

    #[test]
    fn incompressible_and_uncompressed_blocks_are_stored_raw() {
        // A xorshift stream: no repetition for LZ4 to find.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let block: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for compression in [Compression::Lz4, Compression::None] {
            let mut stored = Vec::new();
            assert_eq!(store(&block, compression, &mut stored), STORED_RAW);
            assert_eq!(stored, block);
        }
    }

    #[test]
    fn malformed_compressed_blocks_are_errors_not_panics_or_huge_allocations() {
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        huge.extend_from_slice(&[0x10, b'a']);
        let mut short = Vec::new();
        put_varint(&mut short, 100);
        short.extend_from_slice(&[0x10, b'a']);
        for contents in [vec![], vec![0x80], huge, short, vec![5, 0xff, 0xff, 0xff]] {
            assert!(load(contents, STORED_LZ4).is_err());
        }
        assert!(load(vec![1, 2, 3], 9).is_err());
    }
}
