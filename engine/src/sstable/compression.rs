//! Block compression: how a data block's bytes are stored, recorded per block.
//!
//! ```text
//! stored_block := contents compression:u8 crc32:u32le   -- format 2; crc over contents + type
//! compression  := 0 (contents = the block) | 1 (contents = lz4_block)
//!               | 2 (contents = zstd_block)
//! lz4_block    := uncompressed_length:varint lz4 block format bytes
//! zstd_block   := uncompressed_length:varint zstd frame   -- one frame, content size in its
//!                                                           header, no frame checksum
//! ```
//! A block is stored compressed only if that saves at least an eighth of it (as LevelDB
//! does): incompressible data is not paid for twice on every read. The checksum covers the
//! stored bytes and the type, so damage is caught before anything is decompressed; the
//! decompressor is bounded anyway, so a hostile length cannot make a reader allocate more
//! than [`MAX_EXPANSION`] times the bytes the file holds. LZ4 cannot expand further than
//! that; zstd can (a run of one byte), so a zstd block that would is stored as LZ4 instead.
//! LZ4 compression is `lz4_flex`'s; its decompression is `lz4.rs`'s (the same streams
//! accepted, the same bytes produced, without zeroing the output first), with `lz4_flex`
//! asked for the reason of a stream it refuses. zstd is the reference C library through the
//! `zstd` crate, one compression and one decompression context kept per thread.
//!
//! Type 2 came after format 2 was defined: a build from before it refuses a table holding
//! zstd blocks with "unknown block compression type 2", and reads every other table.

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
    /// Zstandard at `level` ([`zstd_levels`]; zstd's own default is 3): smaller than LZ4
    /// and slower to write, for the deep levels that hold most of the data (RocksDB's
    /// `bottommost_compression`).
    Zstd {
        /// zstd's compression level; higher is smaller and slower.
        level: i32,
    },
}

impl std::fmt::Display for Compression {
    /// `none`, `lz4` or `zstd:LEVEL`: what `Compression::from_str` reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    /// `none`, `lz4`, `zstd` (level 3, zstd's default) or `zstd:LEVEL`.
    fn from_str(text: &str) -> Result<Compression, String> {
        let levels = zstd_levels();
        match text.split_once(':') {
            None if text == "none" => Ok(Compression::None),
            None if text == "lz4" => Ok(Compression::Lz4),
            None if text == "zstd" => Ok(Compression::Zstd {
                level: zstd::DEFAULT_COMPRESSION_LEVEL,
            }),
            Some(("zstd", level)) => match level.parse::<i32>() {
                Ok(level) if levels.contains(&level) => Ok(Compression::Zstd { level }),
                _ => Err(format!(
                    "zstd level {level:?} is not a number in {} ..= {}",
                    levels.start(),
                    levels.end()
                )),
            },
            _ => Err(format!(
                "unknown compression {text:?} (expected none, lz4, zstd or zstd:LEVEL)"
            )),
        }
    }
}

/// The zstd compression levels [`Compression::Zstd`] accepts.
pub fn zstd_levels() -> std::ops::RangeInclusive<i32> {
    zstd::compression_level_range()
}

/// The type byte of a block stored as it is.
pub const STORED_RAW: u8 = 0;
/// The type byte of a block stored LZ4-compressed.
pub const STORED_LZ4: u8 = 1;
/// The type byte of a block stored zstd-compressed.
pub const STORED_ZSTD: u8 = 2;

/// The largest expansion a stored block may claim: it decompresses to at most this many
/// times its compressed bytes, plus 64. It is LZ4's own limit.
pub const MAX_EXPANSION: usize = 255;
const EXPANSION_SLACK: usize = 64;

/// A compressor's output buffer larger than this is not kept for the next block.
const SCRATCH_KEPT: usize = 1 << 20;

/// What each thread keeps from block to block and table to table.
#[derive(Default)]
struct Scratch {
    /// LZ4's output buffer, zeroed once at its largest size, so no block pays for zeroing
    /// LZ4's worst case (the simulator's tables are a few blocks each; every new table paid
    /// for it).
    lz4: Vec<u8>,
    /// zstd's output buffer (zstd writes into spare capacity: nothing to zero).
    zstd: Vec<u8>,
    /// The compression context and the level it is set to. zstd's contexts hold megabytes
    /// of tables: one per block would cost more than the compression.
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
    /// The decompression context.
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The most bytes `compressed_len` stored bytes may decompress to.
fn decompressed_bound(compressed_len: usize) -> usize {
    compressed_len
        .saturating_mul(MAX_EXPANSION)
        .saturating_add(EXPANSION_SLACK)
}

/// Appends `header` and `body` to `out` if they are worth storing for a block of
/// `block_len`: at least an eighth saved, and within the bound a reader holds the body to.
fn append_if_worth(block_len: usize, header: &[u8], body: &[u8], out: &mut Vec<u8>) -> bool {
    let worth = header.len() + body.len() <= block_len - block_len / 8
        && block_len <= decompressed_bound(body.len());
    if worth {
        out.extend_from_slice(header);
        out.extend_from_slice(body);
    }
    worth
}

/// LZ4-compresses `block` onto `out` (header and body) if that is worth it.
fn store_lz4(block: &[u8], scratch: &mut Vec<u8>, header: &[u8], out: &mut Vec<u8>) -> bool {
    let bound = lz4_flex::block::get_maximum_output_size(block.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let stored = lz4_flex::block::compress_into(block, scratch)
        .is_ok_and(|written| append_if_worth(block.len(), header, &scratch[..written], out));
    if scratch.len() > SCRATCH_KEPT {
        *scratch = Vec::new();
    }
    stored
}

/// zstd-compresses `block` at `level` onto `out` (header and body) if that is worth it.
/// A context that cannot be made or set (out of memory) stores nothing: the caller
/// falls back, and the block stays readable.
fn store_zstd(
    block: &[u8],
    level: i32,
    scratch: &mut Scratch,
    header: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let compressor = match &mut scratch.compressor {
        Some((set, compressor)) if *set == level => compressor,
        slot => match zstd::bulk::Compressor::new(level) {
            Ok(compressor) => &mut slot.insert((level, compressor)).1,
            Err(_) => return false,
        },
    };
    let output = &mut scratch.zstd;
    output.clear();
    output.reserve(zstd::zstd_safe::compress_bound(block.len()));
    let stored = compressor
        .compress_to_buffer(block, output)
        .is_ok_and(|written| append_if_worth(block.len(), header, &output[..written], out));
    if output.capacity() > SCRATCH_KEPT {
        *output = Vec::new();
    }
    stored
}

/// Appends `block` to `out` as `compression` stores it; returns the type byte written into
/// the trailer by the caller. A block zstd does not store (not worth it, or shrunk past
/// [`MAX_EXPANSION`]) gets LZ4's try.
pub fn store(block: &[u8], compression: Compression, out: &mut Vec<u8>) -> u8 {
    let stored = if compression == Compression::None || block.len() < 64 {
        None
    } else {
        let mut header = Vec::with_capacity(10);
        put_varint(&mut header, block.len() as u64);
        SCRATCH.with_borrow_mut(|scratch| {
            if let Compression::Zstd { level } = compression {
                if store_zstd(block, level, scratch, &header, out) {
                    return Some(STORED_ZSTD);
                }
            }
            store_lz4(block, &mut scratch.lz4, &header, out).then_some(STORED_LZ4)
        })
    };
    stored.unwrap_or_else(|| {
        out.extend_from_slice(block);
        STORED_RAW
    })
}

/// The block `contents` of type `kind` hold; `Err` says what is malformed.
pub fn load(contents: &[u8], kind: u8) -> Result<Vec<u8>, String> {
    let (length, compressed) = match kind {
        STORED_RAW => return Ok(contents.to_vec()),
        STORED_LZ4 | STORED_ZSTD => claimed_length(contents)?,
        other => return Err(format!("unknown block compression type {other}")),
    };
    let block = if kind == STORED_LZ4 {
        load_lz4(compressed, length)?
    } else {
        load_zstd(compressed, length)?
    };
    match block.len() {
        written if written == length => Ok(block),
        written => Err(format!(
            "compressed block decompressed to {written} bytes, not the {length} recorded"
        )),
    }
}

/// A compressed block's recorded length, held to the bound, and its compressed bytes.
fn claimed_length(contents: &[u8]) -> Result<(usize, &[u8]), String> {
    let mut decoder = Decoder::new(contents);
    let length = decoder
        .varint()
        .ok_or("compressed block without its length")?;
    let compressed = &contents[decoder.position()..];
    let length = usize::try_from(length)
        .ok()
        .filter(|&length| length <= decompressed_bound(compressed.len()))
        .ok_or_else(|| {
            format!(
                "compressed block claims {length} bytes, more than its {} compressed bytes \
                 can hold",
                compressed.len()
            )
        })?;
    Ok((length, compressed))
}

fn load_lz4(compressed: &[u8], length: usize) -> Result<Vec<u8>, String> {
    // The fast decoder (`lz4.rs`: no zeroing, no byte loop). A stream it refuses goes to
    // `lz4_flex`, which says why (and would decode it, were they ever to disagree).
    let mut block = Vec::new();
    if super::lz4::decompress_into_vec(compressed, length, &mut block).is_err() {
        block = vec![0u8; length];
        match lz4_flex::block::decompress_into(compressed, &mut block) {
            Ok(written) => block.truncate(written),
            Err(error) => return Err(format!("compressed block does not decompress: {error}")),
        }
    }
    Ok(block)
}

/// zstd writes into the spare capacity of a `Vec` of exactly the recorded length, and
/// fails rather than write past it.
fn load_zstd(compressed: &[u8], length: usize) -> Result<Vec<u8>, String> {
    let mut block = Vec::with_capacity(length);
    SCRATCH.with_borrow_mut(|scratch| {
        let decompressor = match &mut scratch.decompressor {
            Some(decompressor) => decompressor,
            slot => slot.insert(zstd::bulk::Decompressor::new().map_err(|error| {
                format!("no zstd decompression context for the block: {error}")
            })?),
        };
        decompressor
            .decompress_to_buffer(compressed, &mut block)
            .map_err(|error| format!("zstd block does not decompress: {error}"))
    })?;
    Ok(block)
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
        assert_eq!(load(&stored, STORED_LZ4).unwrap(), block);
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
        for compression in [
            Compression::Lz4,
            Compression::None,
            Compression::Zstd { level: 3 },
        ] {
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
            assert!(load(&contents, STORED_LZ4).is_err());
            assert!(load(&contents, STORED_ZSTD).is_err());
        }
        assert!(load(&[1, 2, 3], 9).is_err());
    }

    /// Text-like block: 100-byte values of 50 random printable bytes twice, as `strata
    /// bench` writes, behind 16-byte keys.
    fn text_block() -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut printable = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b' ' + (state % 95) as u8
        };
        let mut block = Vec::new();
        for key in 0..40u32 {
            block.extend_from_slice(format!("key{key:013}").as_bytes());
            let half: Vec<u8> = (0..50).map(|_| printable()).collect();
            block.extend_from_slice(&half);
            block.extend_from_slice(&half);
        }
        block
    }

    #[test]
    fn zstd_blocks_come_back_whole_and_smaller_than_lz4() {
        let block = text_block();
        let mut lz4 = Vec::new();
        assert_eq!(store(&block, Compression::Lz4, &mut lz4), STORED_LZ4);
        for level in [1, 3, 19] {
            let mut zstd = Vec::new();
            assert_eq!(
                store(&block, Compression::Zstd { level }, &mut zstd),
                STORED_ZSTD
            );
            assert!(
                zstd.len() < lz4.len(),
                "level {level}: {} vs lz4 {}",
                zstd.len(),
                lz4.len()
            );
            assert_eq!(load(&zstd, STORED_ZSTD).unwrap(), block, "level {level}");
        }
    }

    #[test]
    fn every_block_store_writes_is_one_load_accepts() {
        // Runs of one byte compress near the expansion bound, where a writer and a reader
        // that disagree on it (the header counted or not) part ways: the simulator's seed 6
        // wrote a 40,828-byte block in 3+157 bytes that its reader refused.
        for length in (64..70_000).step_by(97) {
            let mut block = vec![b'r'; length];
            block[0] = b's';
            for compression in [Compression::Lz4, Compression::Zstd { level: 1 }] {
                let mut stored = Vec::new();
                let kind = store(&block, compression, &mut stored);
                let loaded = load(&stored, kind);
                assert_eq!(
                    loaded.as_deref(),
                    Ok(&block[..]),
                    "{length} bytes, {compression}"
                );
            }
        }
    }

    #[test]
    fn compression_names_read_back_as_written() {
        for compression in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd { level: 1 },
            Compression::Zstd { level: -5 },
            Compression::Zstd { level: 19 },
        ] {
            assert_eq!(compression.to_string().parse(), Ok(compression));
        }
        assert_eq!("zstd".parse(), Ok(Compression::Zstd { level: 3 }));
        for bad in ["", "LZ4", "zstd:", "zstd:x", "zstd:99", "lz4:1", "gzip"] {
            assert!(bad.parse::<Compression>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_zstd_block_beyond_the_expansion_bound_is_stored_as_lz4() {
        // A megabyte of one byte: zstd stores it in a few dozen bytes, which a reader would
        // refuse (more than MAX_EXPANSION times the stored bytes); LZ4 stays within it.
        let block = vec![b'x'; 1 << 20];
        let mut stored = Vec::new();
        assert_eq!(
            store(&block, Compression::Zstd { level: 3 }, &mut stored),
            STORED_LZ4
        );
        assert_eq!(load(&stored, STORED_LZ4).unwrap(), block);
    }

    #[test]
    fn truncated_or_mislabelled_zstd_blocks_are_errors() {
        // (A flipped bit inside the frame may decode to other bytes of the same length: the
        // block's CRC, checked before this, is what catches that.)
        let block = text_block();
        let mut stored = Vec::new();
        assert_eq!(
            store(&block, Compression::Zstd { level: 3 }, &mut stored),
            STORED_ZSTD
        );
        let truncated = stored[..stored.len() - 3].to_vec();
        let header = {
            let mut header = Vec::new();
            put_varint(&mut header, block.len() as u64);
            header.len()
        };
        // The recorded length one short of, or one past, the frame's content.
        let relabelled = |length: usize| {
            let mut contents = Vec::new();
            put_varint(&mut contents, length as u64);
            contents.extend_from_slice(&stored[header..]);
            contents
        };
        for contents in [
            truncated,
            relabelled(block.len() - 1),
            relabelled(block.len() + 1),
        ] {
            assert!(load(&contents, STORED_ZSTD).is_err());
        }
        assert_eq!(load(&relabelled(block.len()), STORED_ZSTD).unwrap(), block);
    }
}
