//! Little-endian fixed-width integers and LEB128 varints, the building blocks of every
//! on-disk format. Decoders return `None` on truncated input; callers turn that into a
//! corruption error naming the file and offset.

/// Appends `value` as a LEB128 varint (1–10 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes a varint at the start of `input`; returns the value and the bytes it used.
pub fn get_varint(input: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        value |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends a `u32`, little-endian.
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a `u64`, little-endian.
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Reads a little-endian `u32` at `at`.
pub fn get_u32(input: &[u8], at: usize) -> Option<u32> {
    let bytes = input.get(at..at + 4)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Reads a little-endian `u64` at `at`.
pub fn get_u64(input: &[u8], at: usize) -> Option<u64> {
    let bytes = input.get(at..at + 8)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    Some(u64::from_le_bytes(array))
}

/// A cursor over a byte slice that decodes varints and length-prefixed strings.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Decoder { input, position: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.position)
    }

    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.position >= self.input.len()
    }

    /// The next varint.
    pub fn varint(&mut self) -> Option<u64> {
        let (value, used) = get_varint(&self.input[self.position..])?;
        self.position += used;
        Some(value)
    }

    /// The next byte.
    pub fn byte(&mut self) -> Option<u8> {
        let byte = *self.input.get(self.position)?;
        self.position += 1;
        Some(byte)
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        let value = get_u32(self.input, self.position)?;
        self.position += 4;
        Some(value)
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        let value = get_u64(self.input, self.position)?;
        self.position += 8;
        Some(value)
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(len)?;
        let bytes = self.input.get(self.position..end)?;
        self.position = end;
        Some(bytes)
    }

    /// A varint length followed by that many bytes.
    pub fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.bytes(len)
    }
}

/// Appends a varint length and the bytes.
pub fn put_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for shift in 0..64 {
            for value in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let mut out = Vec::new();
                put_varint(&mut out, value);
                assert_eq!(get_varint(&out), Some((value, out.len())));
                assert_eq!(
                    get_varint(&out[..out.len() - 1]),
                    None,
                    "truncated varint must not decode"
                );
            }
        }
    }

    #[test]
    fn decoder_rejects_truncated_strings() {
        let mut out = Vec::new();
        put_length_prefixed(&mut out, b"hello");
        assert_eq!(Decoder::new(&out).length_prefixed(), Some(&b"hello"[..]));
        assert_eq!(Decoder::new(&out[..4]).length_prefixed(), None);
    }
}
