//! The values the benchmark writes.

use strata_vfs::sim::SimRng;

/// db_bench's values: slices of 1 MiB of text that compresses to about half (each 100
/// bytes are 50 random printable bytes twice), so compression does what it would on typical
/// data, no more.
pub(super) struct Values {
    data: Vec<u8>,
    position: usize,
}

impl Values {
    pub(super) fn new(rng: &mut SimRng) -> Values {
        let mut data = Vec::with_capacity(1 << 20);
        while data.len() < 1 << 20 {
            let piece: Vec<u8> = (0..50).map(|_| b' ' + rng.below(95) as u8).collect();
            data.extend_from_slice(&piece);
            data.extend_from_slice(&piece);
        }
        Values { data, position: 0 }
    }

    /// The next `size` bytes (from the start again when the text runs out).
    pub(super) fn next(&mut self, size: usize) -> &[u8] {
        if self.position + size > self.data.len() {
            self.position = 0;
        }
        let start = self.position;
        self.position += size;
        &self.data[start..start + size]
    }
}
