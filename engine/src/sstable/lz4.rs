//! A safe LZ4 block decoder that appends to a `Vec`, for the read path.
//!
//! `lz4_flex` (with `safe-decode`, as this workspace builds it) decompresses into a slice,
//! so every block paid for zeroing its whole decompressed size first, and it copies an
//! overlapping match (offset below the match length: runs, repeated values) one byte at a
//! time with a bounds check per byte. Profiles of the simulator put that byte loop at about a
//! tenth of all its time. This decoder writes only the bytes it produces (`Vec::with_capacity`
//! plus `extend_from_slice` / `extend_from_within`, so nothing is zeroed and nothing is
//! `unsafe`) and copies an overlapping match in doubling chunks (the bytes from the match's
//! start onwards repeat with the offset as their period, so a copy of all of them continues
//! the period).
//!
//! It accepts exactly the streams `lz4_flex::block::decompress_into` accepts into a buffer
//! of the same capacity, and produces the same bytes (tested against it below, on valid and
//! mangled streams): a stream is sequences of a token, literals and, except for the last,
//! a non-zero 16-bit offset and a match; it ends right after a sequence's literals, and
//! nothing may be written past `capacity`. It returns no reason for a failure: the caller
//! asks `lz4_flex` for one, which keeps every error message as it was.

/// Why a stream does not decode (the caller asks `lz4_flex` for the precise reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

const MIN_MATCH: usize = 4;

/// Reads LZ4's length continuation: bytes added up until one below 255.
fn read_length(input: &[u8], at: &mut usize) -> Result<usize, Malformed> {
    let mut length = 0usize;
    loop {
        let byte = *input.get(*at).ok_or(Malformed)?;
        *at += 1;
        length = length.checked_add(byte as usize).ok_or(Malformed)?;
        if byte != 0xff {
            return Ok(length);
        }
    }
}

/// Decodes the LZ4 block `input`, appending to `out`, which must be empty; never lets
/// `out` grow past `capacity` bytes. On `Err`, `out` holds a partial result.
pub fn decompress_into_vec(
    input: &[u8],
    capacity: usize,
    out: &mut Vec<u8>,
) -> Result<(), Malformed> {
    debug_assert!(out.is_empty());
    out.reserve_exact(capacity);
    let mut at = 0;
    loop {
        let token = *input.get(at).ok_or(Malformed)?;
        at += 1;
        let mut literals = (token >> 4) as usize;
        if literals == 15 {
            literals = literals
                .checked_add(read_length(input, &mut at)?)
                .ok_or(Malformed)?;
        }
        if literals > input.len() - at || literals > capacity - out.len() {
            return Err(Malformed);
        }
        out.extend_from_slice(&input[at..at + literals]);
        at += literals;
        if at >= input.len() {
            return Ok(());
        }
        let offset = match input.get(at..at + 2) {
            Some(&[low, high]) => u16::from_le_bytes([low, high]) as usize,
            _ => return Err(Malformed),
        };
        at += 2;
        if offset == 0 {
            return Err(Malformed);
        }
        let mut length = MIN_MATCH + (token & 0x0f) as usize;
        if length == MIN_MATCH + 15 {
            length = length
                .checked_add(read_length(input, &mut at)?)
                .ok_or(Malformed)?;
        }
        if length > capacity - out.len() || offset > out.len() {
            return Err(Malformed);
        }
        let start = out.len() - offset;
        if offset >= length {
            out.extend_from_within(start..start + length);
        } else if offset == 1 {
            let byte = out[start];
            out.resize(out.len() + length, byte);
        } else {
            // out[start..] repeats with period `offset` and is a whole number of periods
            // long until the last chunk, so each copy of it extends the repetition.
            let mut left = length;
            while left > 0 {
                let chunk = left.min(out.len() - start);
                out.extend_from_within(start..start + chunk);
                left -= chunk;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `lz4_flex`'s answer for a buffer of `capacity` bytes: the bytes written, or `None`.
    fn reference(input: &[u8], capacity: usize) -> Option<Vec<u8>> {
        let mut out = vec![0u8; capacity];
        lz4_flex::block::decompress_into(input, &mut out)
            .ok()
            .map(|written| out[..written].to_vec())
    }

    fn ours(input: &[u8], capacity: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        decompress_into_vec(input, capacity, &mut out)
            .ok()
            .map(|()| out)
    }

    /// Data with runs, repeats at many offsets and noise: every kind of match.
    fn sample(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let r = next();
            match r % 4 {
                0 => data.extend(std::iter::repeat_n(r as u8, (r >> 8) as usize % 300)),
                1 if !data.is_empty() => {
                    let back = 1 + (r >> 8) as usize % data.len().min(70);
                    for _ in 0..(r >> 20) as usize % 200 {
                        data.push(data[data.len() - back]);
                    }
                }
                _ => data.extend((0..(r >> 8) % 40).map(|_| next() as u8)),
            }
        }
        data.truncate(len);
        data
    }

    #[test]
    fn valid_streams_decode_to_what_was_compressed() {
        for seed in 0..300 {
            let data = sample(seed, (seed as usize * 97) % 70_000);
            let compressed = lz4_flex::block::compress(&data);
            assert_eq!(ours(&compressed, data.len()).as_deref(), Some(&data[..]));
            // Too little room: refused, as lz4_flex refuses it.
            if !data.is_empty() {
                assert_eq!(ours(&compressed, data.len() - 1), None);
                assert_eq!(reference(&compressed, data.len() - 1), None);
            }
        }
    }

    #[test]
    fn runs_at_every_short_offset_decode() {
        for period in 1..40 {
            let data: Vec<u8> = (0..5000).map(|i| (i % period) as u8).collect();
            let compressed = lz4_flex::block::compress(&data);
            assert_eq!(ours(&compressed, data.len()), Some(data));
        }
    }

    proptest! {
        #[test]
        fn mangled_streams_are_judged_as_lz4_flex_judges_them(
            seed in 0u64..1000,
            len in 0usize..3000,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            slack in 0usize..40,
        ) {
            let data = sample(seed, len);
            let mut stream = lz4_flex::block::compress(&data);
            for (at, byte) in edits {
                if !stream.is_empty() {
                    let at = at % stream.len();
                    stream[at] = byte;
                }
            }
            stream.truncate(cut % (stream.len() + 1));
            let capacity = len + slack;
            prop_assert_eq!(ours(&stream, capacity), reference(&stream, capacity));
        }

        #[test]
        fn random_bytes_are_judged_as_lz4_flex_judges_them(
            stream in proptest::collection::vec(any::<u8>(), 0..200),
            capacity in 0usize..5000,
        ) {
            prop_assert_eq!(ours(&stream, capacity), reference(&stream, capacity));
        }
    }
}
