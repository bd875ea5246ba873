//! The packet batch: a reusable slab of equal-stride slots that carries packets from one
//! pipeline stage to the next (TUN → seal → UDP, UDP → open → TUN) with no allocation per
//! packet. The caller owns it; the protocol core only reads and rewrites slots in place.
//!
//! Each slot reserves [`DATA_HEADER_BYTES`] in front of the inner packet and
//! [`AEAD_TAG_BYTES`] + padding behind it, so sealing and opening happen in place.

use crate::constants::{AEAD_TAG_BYTES, DATA_HEADER_BYTES, PADDING_MULTIPLE_BYTES};
use std::net::SocketAddr;

/// One slot's metadata: where its bytes start and end, and its underlay address.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotMeta {
    /// Offset of the first meaningful byte within the slot.
    pub start: usize,
    /// Number of meaningful bytes from `start`; 0 marks a dropped or empty slot.
    pub len: usize,
    /// Underlay peer address: destination on transmit, source on receive.
    pub addr: Option<SocketAddr>,
}

/// A fixed number of slots of `stride` bytes each.
pub struct PacketBatch {
    data: Vec<u8>,
    stride: usize,
    meta: Vec<SlotMeta>,
    count: usize,
}

impl PacketBatch {
    /// A batch of `capacity` slots able to hold inner packets up to `mtu` bytes.
    pub fn new(capacity: usize, mtu: usize) -> Self {
        let stride = Self::stride_for(mtu);
        Self {
            data: vec![0; stride * capacity],
            stride,
            meta: vec![SlotMeta::default(); capacity],
            count: 0,
        }
    }

    /// Bytes per slot for an MTU: header, the packet, its padding and the tag.
    pub fn stride_for(mtu: usize) -> usize {
        DATA_HEADER_BYTES + mtu + PADDING_MULTIPLE_BYTES + AEAD_TAG_BYTES
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// Bytes per slot.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Slots in use (filled by the last stage).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Marks the first `count` slots as in use.
    pub fn set_len(&mut self, count: usize) {
        assert!(count <= self.capacity(), "batch length beyond capacity");
        self.count = count;
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Whole slot `i` (all `stride` bytes), for a stage that fills it.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let s = self.stride;
        &mut self.data[i * s..(i + 1) * s]
    }

    /// Every slot as its own mutable slice, all from one borrow: for system calls that need
    /// pointers to several slots at once (`recvmmsg`).
    pub fn slots_mut(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        self.data.chunks_exact_mut(self.stride)
    }

    /// Metadata of slot `i`.
    pub fn meta(&self, i: usize) -> SlotMeta {
        self.meta[i]
    }

    /// Sets the metadata of slot `i`.
    pub fn set_meta(&mut self, i: usize, meta: SlotMeta) {
        self.meta[i] = meta;
    }

    /// The meaningful bytes of slot `i` (`start .. start + len`).
    pub fn bytes(&self, i: usize) -> &[u8] {
        let m = self.meta[i];
        let base = i * self.stride;
        &self.data[base + m.start..base + m.start + m.len]
    }

    /// Slot `i` and its metadata together, for a stage that rewrites both.
    pub fn slot_and_meta_mut(&mut self, i: usize) -> (&mut [u8], &mut SlotMeta) {
        let s = self.stride;
        (&mut self.data[i * s..(i + 1) * s], &mut self.meta[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_overlap() {
        let mut b = PacketBatch::new(3, 100);
        b.slot_mut(1).fill(7);
        assert!(b.slot_mut(0).iter().all(|&x| x == 0));
        assert!(b.slot_mut(2).iter().all(|&x| x == 0));
        b.set_meta(
            1,
            SlotMeta {
                start: 16,
                len: 4,
                addr: None,
            },
        );
        b.set_len(2);
        assert_eq!(b.bytes(1), &[7, 7, 7, 7]);
        assert_eq!(b.len(), 2);
    }
}
