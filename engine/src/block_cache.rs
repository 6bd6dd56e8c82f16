//! The block cache: parsed, checksum-verified SSTable blocks shared by all readers of a
//! database, bounded by bytes (`Options::block_cache_size`).
//!
//! It is deterministic on purpose — a fixed hash function and a fixed number of shards — so
//! that under simulation the same seed gives the same hits, hence the same VFS reads.

use crate::sstable::Block;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, Weighter};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Cache key: (table number, block offset).
type Key = (u64, u64);

#[derive(Clone, Copy, Debug)]
struct BlockWeighter;

impl Weighter<Key, Arc<Block>> for BlockWeighter {
    fn weight(&self, _key: &Key, block: &Arc<Block>) -> u64 {
        block.size() as u64 + 64
    }
}

/// A hash fixed by this code, not by the toolchain: std's `DefaultHasher` may change with a
/// Rust release, which would move blocks between shards and so change which reads hit, and
/// with them every simulated trace. Each `u64` is mixed in with the SplitMix64 finalizer;
/// other input (never used by `Key`) goes through FNV-1a.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct FixedHasher(u64);

impl Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mut z = (self.0 ^ value).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

type BlockMap = Cache<
    Key,
    Arc<Block>,
    BlockWeighter,
    BuildHasherDefault<FixedHasher>,
    DefaultLifecycle<Key, Arc<Block>>,
>;

/// A byte-bounded cache of parsed blocks.
pub struct BlockCache {
    cache: BlockMap,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockCache({} blocks)", self.cache.len())
    }
}

impl BlockCache {
    /// A cache holding about `capacity` bytes of blocks; `None` if `capacity` is 0.
    pub fn new(capacity: u64) -> Option<Arc<BlockCache>> {
        if capacity == 0 {
            return None;
        }
        let options = OptionsBuilder::new()
            .weight_capacity(capacity)
            .estimated_items_capacity((capacity / 4096).max(16) as usize)
            .shards(16)
            .build()
            .expect("block cache options are valid");
        Some(Arc::new(BlockCache {
            cache: Cache::with_options(
                options,
                BlockWeighter,
                BuildHasherDefault::default(),
                DefaultLifecycle::default(),
            ),
        }))
    }

    /// The cached block, if any.
    pub fn get(&self, table: u64, offset: u64) -> Option<Arc<Block>> {
        self.cache.get(&(table, offset))
    }

    /// Bytes of the blocks cached now (each block's size plus 64 of bookkeeping).
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// Caches a block.
    pub fn insert(&self, table: u64, offset: u64, block: Arc<Block>) {
        self.cache.insert((table, offset), block);
    }
}

#[cfg(test)]
mod hash_tests {
    use super::FixedHasher;
    use std::hash::{Hash, Hasher};

    /// The values are pinned: a change here changes every simulated trace, so it must be a
    /// decision, not a side effect of a toolchain or dependency upgrade.
    #[test]
    fn the_block_key_hash_is_fixed() {
        let hash = |key: (u64, u64)| {
            let mut hasher = FixedHasher::default();
            key.hash(&mut hasher);
            hasher.finish()
        };
        assert_eq!(hash((0, 0)), 0xa706_dd2f_4d19_7e6f);
        assert_eq!(hash((7, 4096)), 0x3aad_b98b_8f5a_6301);
        assert_ne!(hash((7, 4096)), hash((4096, 7)));
    }
}
