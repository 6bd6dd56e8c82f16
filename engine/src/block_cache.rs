//! The block cache: parsed, checksum-verified SSTable blocks shared by all readers of a
//! database, bounded by bytes (`Options::block_cache_size`).
//!
//! It is deterministic on purpose — a fixed hash function and a fixed number of shards — so
//! that under simulation the same seed gives the same hits, hence the same VFS reads.

use crate::sstable::Block;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, Weighter};
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
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

type BlockMap = Cache<
    Key,
    Arc<Block>,
    BlockWeighter,
    BuildHasherDefault<DefaultHasher>,
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

    /// Caches a block.
    pub fn insert(&self, table: u64, offset: u64, block: Arc<Block>) {
        self.cache.insert((table, offset), block);
    }
}
