//! `WriteBatch`: a group of puts and deletes applied atomically, and its encoding, which is
//! also the payload of one WAL record.
//!
//! Grammar (see `docs/wal-format.md`):
//! ```text
//! wal_payload := sequence:u64le synced_through:u64le count:u32le op{count}
//!              | sequence:u64le synced_through:u64le 0:u32le successor:u64le  -- closing
//! op          := 0x01 key:bytes value:bytes        -- put
//!              | 0x00 key:bytes                    -- delete
//! bytes       := length:varint byte{length}
//! ```
//! A *closing record* ends a WAL that will never be appended to again: `successor` names the
//! WAL that continues the log (written at a rotation) or is 0 (the database was closed). Its
//! `synced_through` is its own offset (the log is synced just before it is written), so it
//! vouches for every byte before it, and it lets recovery notice a lost or shortened WAL in
//! the chain.
//! `sequence` is the number of the batch's first operation; `synced_through` is the WAL
//! offset through which the log was durable when this record was written, which lets
//! recovery tell a torn tail from corruption (a valid record that claims the log was synced
//! past a bad spot proves the bad spot was once durable).

use crate::coding::{put_length_prefixed, put_u32, put_u64, Decoder};

/// Bytes of a payload's header: sequence, synced_through, count.
const PAYLOAD_HEADER: usize = 8 + 8 + 4;

const PUT: u8 = 1;
const DELETE: u8 = 0;

/// One operation of a batch, borrowed from its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Remove `key`.
    Delete(&'a [u8]),
}

impl BatchOp<'_> {
    /// The key the operation is on.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put(key, _) | BatchOp::Delete(key) => key,
        }
    }
}

/// An atomic group of writes: after a crash, all of them or none are present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<u8>,
    count: u32,
    max_key: usize,
    max_value: usize,
    user_bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// An empty batch whose encoding has room for `operations` operations with `key_bytes`
    /// of keys and `value_bytes` of values in all, without growing: `Db::put` and `Db::delete` size
    /// their one-operation batch this way (an empty batch grew three times for one put:
    /// three of the seven allocations a random put cost, in heaptrack's profile).
    pub fn with_capacity(operations: usize, key_bytes: usize, value_bytes: usize) -> WriteBatch {
        // Per operation: the type byte and two length varints of at most 10 bytes each.
        WriteBatch {
            ops: Vec::with_capacity(operations * 21 + key_bytes + value_bytes),
            ..WriteBatch::default()
        }
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.ops.push(PUT);
        put_length_prefixed(&mut self.ops, key);
        put_length_prefixed(&mut self.ops, value);
        self.count += 1;
        self.max_key = self.max_key.max(key.len());
        self.max_value = self.max_value.max(value.len());
        self.user_bytes += key.len() + value.len();
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        self.ops.push(DELETE);
        put_length_prefixed(&mut self.ops, key);
        self.count += 1;
        self.max_key = self.max_key.max(key.len());
        self.user_bytes += key.len();
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.count = 0;
        self.max_key = 0;
        self.max_value = 0;
        self.user_bytes = 0;
    }

    /// The largest key and value in the batch (for limit checks).
    pub(crate) fn user_bytes(&self) -> usize {
        self.user_bytes
    }

    pub(crate) fn max_sizes(&self) -> (usize, usize) {
        (self.max_key, self.max_value)
    }

    /// The operations, in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            decoder: Decoder::new(&self.ops),
            remaining: self.count,
        }
    }

    /// Appends the WAL payload of this batch to `out`.
    #[cfg(test)]
    pub(crate) fn encode_payload(&self, out: &mut Vec<u8>, sequence: u64, synced_through: u64) {
        let (header, ops) = self.payload_parts(sequence, synced_through);
        out.extend_from_slice(&header);
        out.extend_from_slice(ops);
    }

    /// The WAL payload of this batch in two parts, its header and its operations (which the
    /// WAL writer copies straight from the batch).
    pub(crate) fn payload_parts(
        &self,
        sequence: u64,
        synced_through: u64,
    ) -> ([u8; PAYLOAD_HEADER], &[u8]) {
        let mut header = [0; PAYLOAD_HEADER];
        header[..8].copy_from_slice(&sequence.to_le_bytes());
        header[8..16].copy_from_slice(&synced_through.to_le_bytes());
        header[16..].copy_from_slice(&self.count.to_le_bytes());
        (header, &self.ops)
    }
}

/// Appends a closing record (see the module docs): `sequence` is the next unused sequence
/// number, `successor` the WAL that continues the log, or 0 when the database was closed.
pub(crate) fn encode_closing(
    out: &mut Vec<u8>,
    sequence: u64,
    synced_through: u64,
    successor: u64,
) {
    put_u64(out, sequence);
    put_u64(out, synced_through);
    put_u32(out, 0);
    put_u64(out, successor);
}

/// What a closing record says of the log after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSuccessor {
    /// The database was closed: nothing follows.
    Closed,
    /// The log continues in the WAL with this number.
    Wal(u64),
}

/// A decoded WAL payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPayload {
    /// The batch's first sequence number (a closing record: the next unused one).
    pub sequence: u64,
    /// Durable prefix of the log when the record was written.
    pub synced_through: u64,
    /// The batch (empty in a closing record).
    pub batch: WriteBatch,
    /// `Some` for a closing record: what follows this WAL.
    pub closing: Option<LogSuccessor>,
}

/// Decodes a WAL payload; `Err` names what is malformed.
pub fn decode_payload(payload: &[u8]) -> Result<DecodedPayload, String> {
    let mut decoder = Decoder::new(payload);
    let (Some(sequence), Some(synced_through), Some(count)) =
        (decoder.u64(), decoder.u64(), decoder.u32())
    else {
        return Err(format!(
            "record of {} bytes is shorter than its header",
            payload.len()
        ));
    };
    let mut batch = WriteBatch::new();
    if count == 0 && decoder.remaining() == 8 {
        let successor = decoder.u64().unwrap_or_default();
        return Ok(DecodedPayload {
            sequence,
            synced_through,
            batch,
            closing: Some(match successor {
                0 => LogSuccessor::Closed,
                number => LogSuccessor::Wal(number),
            }),
        });
    }
    for index in 0..count {
        let malformed = || format!("operation {index} of {count} is malformed");
        match decoder.byte() {
            Some(PUT) => {
                let key = decoder.length_prefixed().ok_or_else(malformed)?;
                let value = decoder.length_prefixed().ok_or_else(malformed)?;
                batch.put(key, value);
            }
            Some(DELETE) => {
                let key = decoder.length_prefixed().ok_or_else(malformed)?;
                batch.delete(key);
            }
            Some(kind) => return Err(format!("operation {index} has unknown kind {kind}")),
            None => return Err(malformed()),
        }
    }
    if !decoder.is_empty() {
        return Err(format!(
            "{} trailing bytes after {count} operations",
            payload.len() - decoder.position()
        ));
    }
    Ok(DecodedPayload {
        sequence,
        synced_through,
        batch,
        closing: None,
    })
}

/// Iterates a batch's operations.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    decoder: Decoder<'a>,
    remaining: u32,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchOp<'a>;

    fn next(&mut self) -> Option<BatchOp<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The encoding was produced by `put`/`delete` (or validated by `decode_payload`),
        // so failing to decode it is a broken invariant.
        let kind = self.decoder.byte().expect("batch encoding is valid");
        let key = self
            .decoder
            .length_prefixed()
            .expect("batch encoding is valid");
        if kind == PUT {
            let value = self
                .decoder
                .length_prefixed()
                .expect("batch encoding is valid");
            Some(BatchOp::Put(key, value))
        } else {
            Some(BatchOp::Delete(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sized_by_with_capacity_never_grows() {
        for (key_length, value_length) in [(0, 0), (1, 1), (16, 100), (200, 70_000), (1 << 16, 0)] {
            let (key, value) = (vec![1u8; key_length], vec![2u8; value_length]);
            let mut put = WriteBatch::with_capacity(1, key.len(), value.len());
            let capacity = put.ops.capacity();
            put.put(&key, &value);
            assert_eq!(
                put.ops.capacity(),
                capacity,
                "put of {key_length}+{value_length}"
            );
            let mut delete = WriteBatch::with_capacity(1, key.len(), 0);
            let capacity = delete.ops.capacity();
            delete.delete(&key);
            assert_eq!(delete.ops.capacity(), capacity, "delete of {key_length}");
        }
    }

    #[test]
    fn payload_round_trips_and_rejects_truncation() {
        let mut batch = WriteBatch::new();
        batch.put(b"a", b"1").delete(b"b").put(b"", vec![7u8; 300]);
        let mut payload = Vec::new();
        batch.encode_payload(&mut payload, 42, 4096);
        let decoded = decode_payload(&payload).unwrap();
        assert_eq!(decoded.sequence, 42);
        assert_eq!(decoded.synced_through, 4096);
        assert_eq!(decoded.batch, batch);
        let ops: Vec<_> = decoded.batch.iter().collect();
        assert_eq!(ops[1], BatchOp::Delete(b"b"));
        for cut in 0..payload.len() {
            assert!(
                decode_payload(&payload[..cut]).is_err(),
                "truncated at {cut} must not decode"
            );
        }
    }
}
