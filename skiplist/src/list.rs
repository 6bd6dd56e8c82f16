//! The skip list: LevelDB's design (`db/skiplist.h`) in Rust. Nodes live in an [`Arena`] and
//! are never removed; one writer at a time links new ones, readers walk the links without a
//! lock while it does.
//!
//! **Why it is sound.** A node is written whole (header, bytes, its own links) while only
//! the writer can reach it, then published level by level from the bottom with `Release`
//! stores into its predecessors' links; readers load links with `Acquire`, so a reader that
//! reaches a node sees all of it. Nothing is ever unlinked or freed before the list is
//! dropped, and every reference a reader holds borrows the list, so no reader can see freed
//! memory. The writer's own state (the arena, the height generator) sits in an `UnsafeCell`
//! that only the thread inside [`SkipList::insert`] touches; a second thread entering while
//! one is inside is a broken contract of the caller (the engine inserts under its write
//! lock), so it panics before it touches anything, rather than waiting.
//!
//! Headers are `Copy` so that no node ever needs dropping.

#![allow(unsafe_code)]

use crate::arena::Arena;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering as Memory};

/// The tallest tower: with a quarter of the nodes reaching each next level, 4^12 = 16M
/// entries before searches start to slow.
pub const MAX_HEIGHT: usize = 12;

/// One entry as the list stores it: a fixed-size header and a byte string.
#[derive(Debug)]
pub struct Entry<'a, H> {
    /// The entry's header.
    pub header: &'a H,
    /// The entry's bytes.
    pub bytes: &'a [u8],
}

impl<H> Clone for Entry<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H> Copy for Entry<'_, H> {}

/// The order of the list's entries. A search compares stored entries with a query of the
/// same shape (a header built on the stack and borrowed bytes), so a lookup allocates
/// nothing.
pub trait Comparator<H>: Send + Sync {
    /// How `a` orders against `b`.
    fn compare(&self, a: Entry<'_, H>, b: Entry<'_, H>) -> Ordering;
}

/// A node: the header, the byte count, the height, then (in the same arena piece) `height`
/// links and the bytes.
#[repr(C)]
struct Node<H> {
    header: H,
    bytes_len: u32,
    height: u32,
    tower: [AtomicPtr<Node<H>>; 0],
}

impl<H> Node<H> {
    /// Where the bytes start after a tower of `height` links.
    fn bytes_at(height: usize) -> usize {
        std::mem::offset_of!(Node<H>, tower) + height * std::mem::size_of::<AtomicPtr<Node<H>>>()
    }

    /// The piece a node takes: its fields, `height` links from the `tower` field on, then
    /// the bytes; and where the bytes start.
    fn layout(height: usize, bytes_len: usize) -> (Layout, usize) {
        let bytes_at = Node::<H>::bytes_at(height);
        let size = bytes_at
            .checked_add(bytes_len)
            .expect("a node fits in memory");
        let layout = Layout::from_size_align(
            size.max(std::mem::size_of::<Node<H>>()),
            std::mem::align_of::<Node<H>>(),
        )
        .expect("a node fits in memory");
        (layout, bytes_at)
    }
}

/// A published node, borrowed for as long as the list is. A raw pointer rather than a
/// `&Node`: a node's tower and bytes lie beyond the `Node` struct, and a pointer that came
/// from the arena's block may reach all of the node's piece, while one made from a
/// reference to the struct may reach only the struct.
struct NodeRef<'a, H> {
    node: NonNull<Node<H>>,
    _list: PhantomData<&'a Node<H>>,
}

impl<H> Clone for NodeRef<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H> Copy for NodeRef<'_, H> {}

impl<'a, H> NodeRef<'a, H> {
    /// The node a link points to, if any.
    ///
    /// # Safety
    /// `link` is null or points to a node published in a list that outlives `'a`.
    unsafe fn from_link(link: *mut Node<H>) -> Option<NodeRef<'a, H>> {
        NonNull::new(link).map(|node| NodeRef {
            node,
            _list: PhantomData,
        })
    }

    fn height(self) -> usize {
        // SAFETY: the node is published (`from_link`), so its fields were written before
        // the pointer to it could be loaded; this reads one field, through the raw pointer.
        unsafe { (*self.node.as_ptr()).height as usize }
    }

    fn link(self, level: usize) -> &'a AtomicPtr<Node<H>> {
        assert!(level < self.height(), "no link above a node's height");
        // SAFETY: the node's piece holds `height` links from the `tower` field on
        // (`Node::layout`), all initialised before it was published, `level` is below
        // `height`, and the piece lives as long as the list.
        unsafe {
            &*ptr::addr_of!((*self.node.as_ptr()).tower)
                .cast::<AtomicPtr<Node<H>>>()
                .add(level)
        }
    }

    fn entry(self) -> Entry<'a, H> {
        let raw = self.node.as_ptr();
        // SAFETY: as in `link`: the header and byte count are the node's fields, and its
        // bytes follow its tower in the same piece, all written before it was published and
        // never written again.
        unsafe {
            let bytes_len = (*raw).bytes_len as usize;
            let start = raw.cast::<u8>().add(Node::<H>::bytes_at(self.height()));
            Entry {
                header: &*ptr::addr_of!((*raw).header),
                bytes: std::slice::from_raw_parts(start, bytes_len),
            }
        }
    }
}

/// What only the writer touches.
struct WriterState {
    arena: Arena,
    /// xorshift64 state for tower heights: fixed seed, so a list's shape is deterministic.
    random: u64,
}

/// A sorted set of entries: one writer at a time, lock-free readers, no removal.
pub struct SkipList<H, C> {
    comparator: C,
    head: [AtomicPtr<Node<H>>; MAX_HEIGHT],
    height: AtomicUsize,
    len: AtomicUsize,
    allocated: AtomicUsize,
    writing: AtomicBool,
    writer: UnsafeCell<WriterState>,
}

// SAFETY: the nodes are reached only through atomics published with Release and read with
// Acquire (see the module documentation), headers are `Send + Sync`, and the writer state
// is touched only by the one thread that `writing` admits.
unsafe impl<H: Send + Sync, C: Send + Sync> Send for SkipList<H, C> {}
// SAFETY: as for `Send`.
unsafe impl<H: Send + Sync, C: Send + Sync> Sync for SkipList<H, C> {}

impl<H: std::fmt::Debug, C> std::fmt::Debug for SkipList<H, C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SkipList")
            .field("len", &self.len.load(Memory::Relaxed))
            .field("allocated", &self.allocated.load(Memory::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Lets one thread at a time in; a second one at the same time is a caller's bug.
struct WriterGuard<'a>(&'a AtomicBool);

impl<'a> WriterGuard<'a> {
    fn enter(flag: &'a AtomicBool) -> WriterGuard<'a> {
        let busy = flag.swap(true, Memory::Acquire);
        assert!(
            !busy,
            "two inserts into one skip list at once: the caller must serialise them"
        );
        WriterGuard(flag)
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Memory::Release);
    }
}

/// A reader's place in the list: an entry, and the way to its neighbours.
pub struct Position<'a, H, C> {
    list: &'a SkipList<H, C>,
    node: NodeRef<'a, H>,
}

impl<H, C> Clone for Position<'_, H, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H, C> Copy for Position<'_, H, C> {}

impl<'a, H: Copy, C: Comparator<H>> Position<'a, H, C> {
    /// The entry here.
    pub fn entry(&self) -> Entry<'a, H> {
        self.node.entry()
    }

    /// The next entry in order.
    pub fn next(&self) -> Option<Position<'a, H, C>> {
        self.list.position(self.node.link(0).load(Memory::Acquire))
    }

    /// The entry before this one (a search: the list has no backward links).
    pub fn prev(&self) -> Option<Position<'a, H, C>> {
        self.list.before(self.entry(), false)
    }
}

impl<H: Copy, C: Comparator<H>> SkipList<H, C> {
    /// An empty list ordered by `comparator`.
    pub fn new(comparator: C) -> SkipList<H, C> {
        SkipList {
            comparator,
            head: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            allocated: AtomicUsize::new(0),
            writing: AtomicBool::new(false),
            writer: UnsafeCell::new(WriterState {
                arena: Arena::new(),
                random: 0x9e37_79b9_7f4a_7c15,
            }),
        }
    }

    /// Entries inserted.
    pub fn len(&self) -> usize {
        self.len.load(Memory::Acquire)
    }

    /// Whether no entry was inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes taken from the allocator for nodes (every chunk's whole size).
    pub fn allocated(&self) -> usize {
        self.allocated.load(Memory::Relaxed)
    }

    /// Inserts the entry `header` with the concatenation of `parts` as its bytes, and
    /// returns the bytes of arena its node takes (its layout, rounded up to the alignment
    /// the next node starts at). Returns `None`, and links nothing, if an equal entry is
    /// there already.
    ///
    /// # Panics
    /// If another thread is inside `insert` on this list at the same time: inserts must be
    /// serialised by the caller (readers need nothing).
    pub fn insert(&self, header: H, parts: &[&[u8]]) -> Option<usize> {
        let _guard = WriterGuard::enter(&self.writing);
        // SAFETY: the guard admits one thread at a time, and no reference into the writer
        // state outlives this call.
        let writer = unsafe { &mut *self.writer.get() };
        let bytes_len: usize = parts.iter().map(|part| part.len()).sum();
        let bytes_len_u32 = u32::try_from(bytes_len).expect("an entry is shorter than 4 GiB");
        let height = random_height(&mut writer.random);
        let (layout, bytes_at) = Node::<H>::layout(height, bytes_len);
        let piece = writer.arena.allocate(layout).cast::<Node<H>>();
        // SAFETY: `piece` is fresh arena memory laid out by `Node::layout` for this height
        // and byte count, reachable by no one else until it is linked below: every field,
        // link and byte is written here before any reader can load a pointer to it.
        let node: NodeRef<'_, H> = unsafe {
            let raw = piece.as_ptr();
            ptr::addr_of_mut!((*raw).header).write(header);
            ptr::addr_of_mut!((*raw).bytes_len).write(bytes_len_u32);
            ptr::addr_of_mut!((*raw).height).write(height as u32);
            let tower = ptr::addr_of_mut!((*raw).tower).cast::<AtomicPtr<Node<H>>>();
            for level in 0..height {
                tower.add(level).write(AtomicPtr::new(ptr::null_mut()));
            }
            let mut at = raw.cast::<u8>().add(bytes_at);
            for part in parts {
                ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
            NodeRef {
                node: piece,
                _list: PhantomData,
            }
        };
        self.allocated
            .store(writer.arena.allocated(), Memory::Relaxed);
        let new = node.entry();
        let mut predecessors: [&AtomicPtr<Node<H>>; MAX_HEIGHT] =
            std::array::from_fn(|level| &self.head[level]);
        let (_, next) = self.search(
            |entry| self.comparator.compare(entry, new).is_lt(),
            Some(&mut predecessors),
        );
        if let Some(next) = self.position(next) {
            if self.comparator.compare(next.entry(), new).is_eq() {
                return None;
            }
        }
        let list_height = self.height.load(Memory::Relaxed);
        if height > list_height {
            // Levels the list never used: their predecessor is the head (set above).
            self.height.store(height, Memory::Relaxed);
        }
        for (level, predecessor) in predecessors.iter().enumerate().take(height) {
            node.link(level)
                .store(predecessor.load(Memory::Relaxed), Memory::Relaxed);
            predecessor.store(piece.as_ptr(), Memory::Release);
        }
        self.len.fetch_add(1, Memory::Release);
        Some(layout.pad_to_align().size())
    }

    /// The first entry.
    pub fn first(&self) -> Option<Position<'_, H, C>> {
        self.position(self.head[0].load(Memory::Acquire))
    }

    /// The last entry.
    pub fn last(&self) -> Option<Position<'_, H, C>> {
        self.last_where(|_| true)
    }

    /// The first entry at or after `query` (`inclusive`) or after it.
    pub fn after(&self, query: Entry<'_, H>, inclusive: bool) -> Option<Position<'_, H, C>> {
        let (_, found) = self.search(
            |entry| {
                let order = self.comparator.compare(entry, query);
                order.is_lt() || (!inclusive && order.is_eq())
            },
            None,
        );
        self.position(found)
    }

    /// The last entry at or before `query` (`inclusive`) or before it.
    pub fn before(&self, query: Entry<'_, H>, inclusive: bool) -> Option<Position<'_, H, C>> {
        self.last_where(|entry| {
            let order = self.comparator.compare(entry, query);
            order.is_lt() || (inclusive && order.is_eq())
        })
    }

    fn position(&self, link: *mut Node<H>) -> Option<Position<'_, H, C>> {
        let node = self.node(link)?;
        Some(Position { list: self, node })
    }

    /// The node a link loaded from this list points to.
    fn node(&self, link: *mut Node<H>) -> Option<NodeRef<'_, H>> {
        // SAFETY: every non-null link in the list points to a published node, which lives
        // as long as the list (module documentation).
        unsafe { NodeRef::from_link(link) }
    }

    /// The walk of every search, given that `before` holds for a prefix of the list: the
    /// last node for which it holds (`None`: the head) and the link from it to the first
    /// for which it does not (null: the end); with `predecessors`, the link at each level
    /// that points past the prefix.
    fn search<'s>(
        &'s self,
        before: impl Fn(Entry<'_, H>) -> bool,
        mut predecessors: Option<&mut [&'s AtomicPtr<Node<H>>; MAX_HEIGHT]>,
    ) -> (Option<NodeRef<'s, H>>, *mut Node<H>) {
        let mut level = self.height.load(Memory::Relaxed) - 1;
        let mut current: Option<NodeRef<'s, H>> = None;
        loop {
            let link = match current {
                Some(node) => node.link(level),
                None => &self.head[level],
            };
            let next = link.load(Memory::Acquire);
            if let Some(node) = self.node(next) {
                if before(node.entry()) {
                    current = Some(node);
                    continue;
                }
            }
            if let Some(predecessors) = predecessors.as_deref_mut() {
                predecessors[level] = link;
            }
            if level == 0 {
                return (current, next);
            }
            level -= 1;
        }
    }

    /// The last node for which `before` holds, given that it holds for a prefix of the list.
    fn last_where(&self, before: impl Fn(Entry<'_, H>) -> bool) -> Option<Position<'_, H, C>> {
        let (last, _) = self.search(before, None);
        last.map(|node| Position { list: self, node })
    }
}

/// A tower height: 1, then each further level with probability 1/4.
fn random_height(state: &mut u64) -> usize {
    let mut height = 1;
    while height < MAX_HEIGHT {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        if !(*state).is_multiple_of(4) {
            break;
        }
        height += 1;
    }
    height
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
