//! Reassembly of handshake messages split into ≤ 1200-byte fragments, with bounded state:
//! at most [`REASSEMBLY_SLOTS_MAX`] messages in progress, [`REASSEMBLY_SLOTS_PER_SOURCE_MAX`]
//! per source address, each dropped after [`REASSEMBLY_TIMEOUT`]. The oldest slot is evicted
//! when a bound is reached, so a flood cannot block real handshakes for long.

use super::time::Instant;
use super::wire::{FRAGMENT_PAYLOAD_MAX_BYTES, Fragment};
use crate::constants::{REASSEMBLY_SLOTS_MAX, REASSEMBLY_SLOTS_PER_SOURCE_MAX, REASSEMBLY_TIMEOUT};
use std::net::SocketAddr;

struct Slot {
    source: SocketAddr,
    msg_type: u8,
    sender_index: u32,
    count: u8,
    received: u8,
    buf: Vec<u8>,
    started: Instant,
}

/// Messages being reassembled.
#[derive(Default)]
pub struct Reassembler {
    slots: Vec<Slot>,
    evicted: u64,
}

impl Reassembler {
    /// Adds a fragment (whose MACs were already checked). Returns the whole message when this
    /// fragment completes it.
    pub fn insert(
        &mut self,
        now: Instant,
        source: SocketAddr,
        frag: &Fragment<'_>,
    ) -> Option<Vec<u8>> {
        let h = frag.header;
        if h.count == 1 {
            return Some(frag.payload.to_vec());
        }
        self.expire(now);
        let i = match self.find(source, h.msg_type, h.sender_index, h.count, h.message_len) {
            Some(i) => i,
            None => self.open_slot(now, source, frag),
        };
        let slot = &mut self.slots[i];
        let at = usize::from(h.index) * FRAGMENT_PAYLOAD_MAX_BYTES;
        slot.buf[at..at + frag.payload.len()].copy_from_slice(frag.payload);
        slot.received |= 1 << h.index;
        if slot.received.count_ones() == u32::from(slot.count) {
            return Some(self.slots.swap_remove(i).buf);
        }
        None
    }

    /// Messages in progress.
    pub fn in_progress(&self) -> usize {
        self.slots.len()
    }

    /// Slots evicted early because a bound was reached.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn find(
        &self,
        source: SocketAddr,
        msg_type: u8,
        sender_index: u32,
        count: u8,
        len: u16,
    ) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.source == source
                && s.msg_type == msg_type
                && s.sender_index == sender_index
                && s.count == count
                && s.buf.len() == usize::from(len)
        })
    }

    fn open_slot(&mut self, now: Instant, source: SocketAddr, frag: &Fragment<'_>) -> usize {
        let from_source = self.slots.iter().filter(|s| s.source == source).count();
        if from_source >= REASSEMBLY_SLOTS_PER_SOURCE_MAX {
            self.evict_oldest(|s| s.source == source);
        } else if self.slots.len() >= REASSEMBLY_SLOTS_MAX {
            self.evict_oldest(|_| true);
        }
        let h = frag.header;
        self.slots.push(Slot {
            source,
            msg_type: h.msg_type,
            sender_index: h.sender_index,
            count: h.count,
            received: 0,
            buf: vec![0; usize::from(h.message_len)],
            started: now,
        });
        self.slots.len() - 1
    }

    fn evict_oldest(&mut self, filter: impl Fn(&Slot) -> bool) {
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| filter(s))
            .min_by_key(|(_, s)| s.started)
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            self.slots.swap_remove(i);
            self.evicted += 1;
        }
    }

    fn expire(&mut self, now: Instant) {
        self.slots.retain(|s| now - s.started < REASSEMBLY_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::{TYPE_INITIATION, parse_fragment, split_message};

    fn datagrams(sender: u32, msg: &[u8]) -> Vec<Vec<u8>> {
        split_message(TYPE_INITIATION, sender, msg)
            .into_iter()
            .map(|mut f| {
                f.extend_from_slice(&[0u8; 32]);
                f
            })
            .collect()
    }

    #[test]
    fn reassembles_in_any_order_and_ignores_duplicates() {
        let msg: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let d = datagrams(7, &msg);
        assert_eq!(d.len(), 3);
        let src: SocketAddr = "198.18.0.1:1".parse().unwrap();
        let mut r = Reassembler::default();
        assert!(
            r.insert(Instant::ZERO, src, &parse_fragment(&d[2]).unwrap())
                .is_none()
        );
        assert!(
            r.insert(Instant::ZERO, src, &parse_fragment(&d[2]).unwrap())
                .is_none()
        );
        assert!(
            r.insert(Instant::ZERO, src, &parse_fragment(&d[0]).unwrap())
                .is_none()
        );
        let out = r
            .insert(Instant::ZERO, src, &parse_fragment(&d[1]).unwrap())
            .unwrap();
        assert_eq!(out, msg);
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn state_is_bounded_and_expires() {
        let msg = vec![1u8; 2000];
        let mut r = Reassembler::default();
        for i in 0..(REASSEMBLY_SLOTS_MAX as u32 * 2) {
            let src: SocketAddr = format!("198.18.{}.{}:9", i / 200, i % 200 + 1)
                .parse()
                .unwrap();
            let d = datagrams(i, &msg);
            r.insert(Instant::ZERO, src, &parse_fragment(&d[0]).unwrap());
        }
        assert_eq!(r.in_progress(), REASSEMBLY_SLOTS_MAX);
        let one: SocketAddr = "198.18.9.9:9".parse().unwrap();
        for i in 0..10 {
            let d = datagrams(1000 + i, &msg);
            r.insert(Instant::ZERO, one, &parse_fragment(&d[0]).unwrap());
        }
        assert!(
            r.slots.iter().filter(|s| s.source == one).count() <= REASSEMBLY_SLOTS_PER_SOURCE_MAX
        );
        let later = Instant::ZERO + REASSEMBLY_TIMEOUT;
        let d = datagrams(5000, &msg);
        r.insert(later, one, &parse_fragment(&d[0]).unwrap());
        assert_eq!(
            r.in_progress(),
            1,
            "everything older than the timeout is gone"
        );
    }
}
