//! A bump allocator: memory handed out in pieces from chunks, never freed piece by piece,
//! all of it freed when the arena is dropped. The skip list keeps its nodes here, so that a
//! memtable of a million versions is a few dozen allocations instead of two million, and so
//! that dropping a flushed memtable frees a few large blocks (which the allocator returns
//! to the operating system) instead of a million small ones (which glibc keeps, and which
//! a flush thread freeing them contends on with the writer allocating new ones).
//!
//! Chunks start small and double up to [`MAX_CHUNK`]: a simulator's 1 KiB memtable takes
//! 4 KiB, a 64 MiB one wastes at most a chunk's tail. A piece larger than a quarter of the
//! current chunk size gets an allocation of its own, as LevelDB's arena does, so a large
//! value never wastes most of a chunk.
//!
//! The arena holds raw memory and no values: whoever writes into a piece must not need it
//! dropped (the skip list stores only `Copy` headers and bytes).

#![allow(unsafe_code)]

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// The first chunk's size.
const FIRST_CHUNK: usize = 4 << 10;
/// The largest chunk: each holds about 5,000 of db_bench's 116-byte versions.
pub const MAX_CHUNK: usize = 1 << 20;
/// Every chunk's alignment, which bounds the alignment a piece may ask for.
const CHUNK_ALIGN: usize = 16;

/// Pieces of memory that live as long as the arena.
#[derive(Debug)]
pub struct Arena {
    /// Every allocation the arena made, to free on drop.
    blocks: Vec<(NonNull<u8>, Layout)>,
    /// The free part of the current chunk: `cursor..end` (both dangling before the first).
    cursor: usize,
    end: usize,
    /// The current chunk's base pointer, from which pieces are derived.
    chunk: Option<NonNull<u8>>,
    chunk_base: usize,
    next_chunk: usize,
    /// Bytes of every block allocated, chunks' unused tails included.
    allocated: usize,
}

// SAFETY: the arena owns its blocks outright (no other handle to them exists but the
// pointers it hands out, whose users synchronise through the skip list's atomics), so it
// may move to, and be dropped on, another thread.
unsafe impl Send for Arena {}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

impl Arena {
    /// An empty arena: it allocates nothing until the first piece.
    pub fn new() -> Arena {
        Arena {
            blocks: Vec::new(),
            cursor: 0,
            end: 0,
            chunk: None,
            chunk_base: 0,
            next_chunk: FIRST_CHUNK,
            allocated: 0,
        }
    }

    /// Bytes the arena has taken from the allocator.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// A piece of `layout.size()` uninitialised bytes aligned to `layout.align()`, valid
    /// until the arena is dropped and never handed out again.
    ///
    /// # Panics
    /// If `layout` asks for an alignment above 16 or for zero bytes (the skip list never
    /// does).
    pub fn allocate(&mut self, layout: Layout) -> NonNull<u8> {
        assert!(
            layout.align() <= CHUNK_ALIGN,
            "arena pieces align to at most 16"
        );
        assert!(layout.size() > 0, "arena pieces are never empty");
        let start = self.cursor.next_multiple_of(layout.align());
        if let Some(chunk) = self.chunk {
            if start
                .checked_add(layout.size())
                .is_some_and(|end| end <= self.end)
            {
                self.cursor = start + layout.size();
                // SAFETY: `start - chunk_base` is within the current chunk (checked above),
                // so the offset pointer stays inside that one allocation.
                return unsafe { chunk.add(start - self.chunk_base) };
            }
        }
        if layout.size() > self.next_chunk / 4 {
            return self.allocate_block(layout.size());
        }
        let size = self.next_chunk;
        self.next_chunk = (self.next_chunk * 2).min(MAX_CHUNK);
        let chunk = self.allocate_block(size);
        self.chunk = Some(chunk);
        self.chunk_base = chunk.as_ptr() as usize;
        self.cursor = self.chunk_base + layout.size();
        self.end = self.chunk_base + size;
        chunk
    }

    fn allocate_block(&mut self, size: usize) -> NonNull<u8> {
        let layout = match Layout::from_size_align(size, CHUNK_ALIGN) {
            Ok(layout) => layout,
            Err(_) => panic!("an arena block of {size} bytes is beyond the address space"),
        };
        // SAFETY: the layout's size is not zero (`allocate` asserts it; chunks are at least
        // `FIRST_CHUNK`).
        let block = unsafe { alloc(layout) };
        let Some(block) = NonNull::new(block) else {
            handle_alloc_error(layout)
        };
        self.blocks.push((block, layout));
        self.allocated += size;
        block
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for &(block, layout) in &self.blocks {
            // SAFETY: each block was allocated by `allocate_block` with this layout, and is
            // freed once, here.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_aligned_disjoint_and_counted() {
        let mut arena = Arena::new();
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        for i in 1..3000usize {
            let size = (i * 37) % 300 + 1;
            let align = [1, 2, 4, 8, 16][i % 5];
            let layout = Layout::from_size_align(size, align).expect("valid layout");
            let piece = arena.allocate(layout);
            let address = piece.as_ptr() as usize;
            assert_eq!(address % align, 0, "piece {i} misaligned");
            // Write the whole piece: a piece that overlapped another would corrupt it.
            // SAFETY: the piece is `size` bytes the arena handed out to this test alone.
            unsafe { piece.as_ptr().write_bytes(i as u8, size) };
            pieces.push((address, size));
        }
        for (i, &(address, size)) in pieces.iter().enumerate() {
            // SAFETY: every piece is alive until the arena drops, and was filled above.
            let bytes = unsafe { std::slice::from_raw_parts(address as *const u8, size) };
            assert!(
                bytes.iter().all(|&byte| byte == (i + 1) as u8),
                "piece {} overwritten",
                i + 1
            );
        }
        pieces.sort_unstable();
        for pair in pieces.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "pieces overlap");
        }
        let used: usize = pieces.iter().map(|piece| piece.1).sum();
        assert!(arena.allocated() >= used);
        assert!(
            arena.allocated() < used + 2 * MAX_CHUNK,
            "chunks wasted: {}",
            arena.allocated()
        );
    }

    #[test]
    fn a_large_piece_gets_a_block_of_its_own() {
        let mut arena = Arena::new();
        let small = Layout::from_size_align(64, 8).expect("valid layout");
        let first = arena.allocate(small);
        let large =
            arena.allocate(Layout::from_size_align(3 * FIRST_CHUNK, 8).expect("valid layout"));
        let after = arena.allocate(small);
        assert_eq!(
            after.as_ptr() as usize,
            first.as_ptr() as usize + 64,
            "the chunk goes on after a large piece"
        );
        assert_ne!(large.as_ptr() as usize, first.as_ptr() as usize + 64);
        assert_eq!(arena.allocated(), FIRST_CHUNK + 3 * FIRST_CHUNK);
    }
}
