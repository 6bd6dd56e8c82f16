//! What the merge moves: a key's version as a source yields it ([`Entry`]) and its value
//! ([`Value`]), held where the source read it until someone copies it out.

use crate::memtable::Slot;
use crate::sstable::DecodedBlock;
use std::sync::Arc;

/// One version of a key, as a source yields it.
#[derive(Debug)]
pub struct Entry(Repr);

#[derive(Debug)]
enum Repr {
    Owned {
        key: Vec<u8>,
        /// 0: visible to every reader.
        sequence: u64,
        /// `None`: a tombstone.
        slot: Slot,
    },
    /// Entry `index` of a decoded table block.
    InBlock {
        block: Arc<DecodedBlock>,
        index: usize,
    },
}

impl Entry {
    /// A version held by the source itself.
    pub fn new(key: Vec<u8>, sequence: u64, slot: Slot) -> Entry {
        Entry(Repr::Owned {
            key,
            sequence,
            slot,
        })
    }

    /// Entry `index` of a decoded table block.
    pub(super) fn in_block(block: Arc<DecodedBlock>, index: usize) -> Entry {
        Entry(Repr::InBlock { block, index })
    }

    /// The user key.
    pub fn key(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned { key, .. } => key,
            Repr::InBlock { block, index } => block.key(*index),
        }
    }

    /// The version's sequence number and its value (`None`: a tombstone).
    pub fn into_version(self) -> (u64, Option<Value>) {
        match self.0 {
            Repr::Owned { sequence, slot, .. } => (sequence, slot.map(Value::Owned)),
            Repr::InBlock { block, index } => {
                let sequence = block.sequence(index);
                match block.value(index) {
                    Some(_) => (sequence, Some(Value::InBlock { block, index })),
                    None => (sequence, None),
                }
            }
        }
    }
}

/// A version's value, where its source holds it until someone copies it out.
#[derive(Debug)]
pub enum Value {
    /// Held by the entry (memtables).
    Owned(Vec<u8>),
    /// The value of entry `index` of a decoded table block (never a tombstone's).
    InBlock {
        /// The block.
        block: Arc<DecodedBlock>,
        /// The entry.
        index: usize,
    },
}

impl Value {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Value::Owned(bytes) => bytes,
            Value::InBlock { block, index } => block.value(*index).unwrap_or_default(),
        }
    }

    /// The bytes, owned (a copy, unless the source gave them away).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Value::Owned(bytes) => bytes,
            value => value.as_bytes().to_vec(),
        }
    }
}
