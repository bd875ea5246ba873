//! Reassembly of handshake messages split into ≤ 1200-byte fragments, with bounded state:
//! at most [`REASSEMBLY_SLOTS_MAX`] messages at once, [`REASSEMBLY_SLOTS_PER_SOURCE_MAX`] per
//! source address, each dropped [`REASSEMBLY_TIMEOUT`] after its last fragment. The slot
//! idle longest is evicted when a bound is reached, so a flood cannot block real handshakes
//! for long.
//!
//! Loss: a message is retransmitted whole (same bytes, same sender index), and a slot keeps
//! the fragments it has until the timeout, which outlasts the longest retransmission
//! interval. So fragments of different retransmissions combine, and one message does not
//! need all its fragments through in one attempt. An initiation's slot is also kept, for the
//! same time, once complete: a later fragment that matches it byte for byte is reported as a
//! [`Reassembled::Repeat`] (the initiator did not get our answer), so one fragment of a
//! retransmission is enough to send the cached response again. Once every fragment came
//! again, the whole message is returned again ([`Reassembled::Complete`]), to be processed
//! anew as before (an initiation we could not answer, say for want of its QKD key, is
//! retried only on a whole retransmission, never on one fragment).

use super::time::Instant;
use super::wire::{FRAGMENT_PAYLOAD_MAX_BYTES, Fragment, TYPE_INITIATION};
use crate::constants::{REASSEMBLY_SLOTS_MAX, REASSEMBLY_SLOTS_PER_SOURCE_MAX, REASSEMBLY_TIMEOUT};
use crate::crypto::kdf;
use std::net::SocketAddr;

/// What a fragment completed, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// This fragment completed the message: all of it.
    Complete(Vec<u8>),
    /// A fragment of an initiation completed earlier, identical to the part it carries:
    /// the message was retransmitted. Carries the message's digest ([`kdf::hash`]).
    Repeat([u8; kdf::HASH_BYTES]),
}

struct Slot {
    source: SocketAddr,
    msg_type: u8,
    sender_index: u32,
    count: u8,
    received: u8,
    buf: Vec<u8>,
    /// When the last fragment arrived (the timeout counts from here).
    last_fragment: Instant,
    /// Set once complete (initiations only): the message's digest.
    completed: Option<[u8; kdf::HASH_BYTES]>,
    /// Fragments received again since completion (or since the last whole repeat).
    repeated: u8,
}

/// Messages being reassembled, and initiations recently completed.
#[derive(Default)]
pub struct Reassembler {
    slots: Vec<Slot>,
    evicted: u64,
}

impl Reassembler {
    /// Adds a fragment (whose MACs were already checked). Returns the whole message when this
    /// fragment completes it, or the digest of an initiation it repeats.
    pub fn insert(
        &mut self,
        now: Instant,
        source: SocketAddr,
        frag: &Fragment<'_>,
    ) -> Option<Reassembled> {
        let h = frag.header;
        if h.count == 1 {
            return Some(Reassembled::Complete(frag.payload.to_vec()));
        }
        self.expire(now);
        let at = usize::from(h.index) * FRAGMENT_PAYLOAD_MAX_BYTES;
        let found = self.find(source, h.msg_type, h.sender_index, h.count, h.message_len);
        let i = match found {
            Some(i) => match self.slots[i].completed {
                Some(digest) if self.slots[i].buf[at..at + frag.payload.len()] == *frag.payload => {
                    let slot = &mut self.slots[i];
                    slot.last_fragment = now;
                    slot.repeated |= 1 << h.index;
                    if slot.repeated.count_ones() < u32::from(slot.count) {
                        return Some(Reassembled::Repeat(digest));
                    }
                    // every fragment came again: the whole message, to process anew
                    slot.repeated = 0;
                    return Some(Reassembled::Complete(slot.buf.clone()));
                }
                // same sender index and length, other bytes: a new message
                Some(_) => {
                    self.slots.swap_remove(i);
                    self.open_slot(now, source, frag)
                }
                None => i,
            },
            None => self.open_slot(now, source, frag),
        };
        let slot = &mut self.slots[i];
        slot.buf[at..at + frag.payload.len()].copy_from_slice(frag.payload);
        slot.received |= 1 << h.index;
        slot.last_fragment = now;
        if slot.received.count_ones() < u32::from(slot.count) {
            return None;
        }
        if slot.msg_type == TYPE_INITIATION {
            slot.completed = Some(kdf::hash(&[&slot.buf]));
            return Some(Reassembled::Complete(slot.buf.clone()));
        }
        Some(Reassembled::Complete(self.slots.swap_remove(i).buf))
    }

    /// Messages in progress (not counting completed initiations kept for repeats).
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.completed.is_none()).count()
    }

    /// Slots held: messages in progress and completed initiations kept for repeats.
    pub fn slots(&self) -> usize {
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
            self.evict_idlest(|s| s.source == source);
        } else if self.slots.len() >= REASSEMBLY_SLOTS_MAX {
            self.evict_idlest(|_| true);
        }
        let h = frag.header;
        self.slots.push(Slot {
            source,
            msg_type: h.msg_type,
            sender_index: h.sender_index,
            count: h.count,
            received: 0,
            buf: vec![0; usize::from(h.message_len)],
            last_fragment: now,
            completed: None,
            repeated: 0,
        });
        self.slots.len() - 1
    }

    /// Makes room: a completed initiation kept for repeats goes first (it is only a
    /// shortcut), else the message in progress idle longest (counted as evicted).
    fn evict_idlest(&mut self, filter: impl Fn(&Slot) -> bool) {
        let idlest = |completed: bool| {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| filter(s) && s.completed.is_some() == completed)
                .min_by_key(|(_, s)| s.last_fragment)
                .map(|(i, _)| i)
        };
        if let Some(i) = idlest(true) {
            self.slots.swap_remove(i);
        } else if let Some(i) = idlest(false) {
            self.slots.swap_remove(i);
            self.evicted += 1;
        }
    }

    fn expire(&mut self, now: Instant) {
        self.slots
            .retain(|s| now - s.last_fragment < REASSEMBLY_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::{parse_fragment, split_message};
    use std::time::Duration;

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
        assert_eq!(out, Reassembled::Complete(msg.clone()));
        assert_eq!(r.in_progress(), 0);
        // the completed initiation is kept: a fragment of its retransmission is a repeat,
        // and the whole retransmission is the message again
        let digest = kdf::hash(&[&msg]);
        for i in [1, 1, 0] {
            let again = r.insert(Instant::ZERO, src, &parse_fragment(&d[i]).unwrap());
            assert_eq!(again, Some(Reassembled::Repeat(digest)));
        }
        let whole = r.insert(Instant::ZERO, src, &parse_fragment(&d[2]).unwrap());
        assert_eq!(whole, Some(Reassembled::Complete(msg.clone())));
        let again = r.insert(Instant::ZERO, src, &parse_fragment(&d[2]).unwrap());
        assert_eq!(
            again,
            Some(Reassembled::Repeat(digest)),
            "counting starts over"
        );
    }

    #[test]
    fn fragments_combine_across_retransmissions_until_idle_for_the_timeout() {
        let msg: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
        let d = datagrams(9, &msg);
        let src: SocketAddr = "198.18.0.1:1".parse().unwrap();
        let mut r = Reassembler::default();
        let gap = REASSEMBLY_TIMEOUT - Duration::from_millis(1);
        let t1 = Instant::ZERO + gap;
        let t2 = t1 + gap;
        assert!(
            r.insert(Instant::ZERO, src, &parse_fragment(&d[0]).unwrap())
                .is_none()
        );
        assert!(r.insert(t1, src, &parse_fragment(&d[1]).unwrap()).is_none());
        let out = r.insert(t2, src, &parse_fragment(&d[2]).unwrap());
        assert_eq!(
            out,
            Some(Reassembled::Complete(msg)),
            "each gap below the timeout"
        );
        // a gap of the full timeout loses what was held
        let d = datagrams(10, &vec![3u8; 2500]);
        assert!(r.insert(t2, src, &parse_fragment(&d[0]).unwrap()).is_none());
        let late = t2 + REASSEMBLY_TIMEOUT;
        assert!(
            r.insert(late, src, &parse_fragment(&d[1]).unwrap())
                .is_none()
        );
        assert!(
            r.insert(late, src, &parse_fragment(&d[2]).unwrap())
                .is_none()
        );
        assert_eq!(
            r.in_progress(),
            1,
            "fragment 0 expired; 1 and 2 wait in a new slot"
        );
    }

    #[test]
    fn a_fragment_that_differs_from_the_completed_message_is_a_new_message() {
        let src: SocketAddr = "198.18.0.1:1".parse().unwrap();
        let mut r = Reassembler::default();
        let first = datagrams(5, &vec![1u8; 2500]);
        for f in &first {
            r.insert(Instant::ZERO, src, &parse_fragment(f).unwrap());
        }
        let other = datagrams(5, &vec![2u8; 2500]);
        assert!(
            r.insert(Instant::ZERO, src, &parse_fragment(&other[0]).unwrap())
                .is_none()
        );
        assert!(
            r.insert(Instant::ZERO, src, &parse_fragment(&other[1]).unwrap())
                .is_none()
        );
        let out = r.insert(Instant::ZERO, src, &parse_fragment(&other[2]).unwrap());
        assert_eq!(out, Some(Reassembled::Complete(vec![2u8; 2500])));
    }

    #[test]
    fn completed_initiations_make_room_first_and_uncounted() {
        let one: SocketAddr = "198.18.0.1:1".parse().unwrap();
        let mut r = Reassembler::default();
        for i in 0..REASSEMBLY_SLOTS_PER_SOURCE_MAX as u32 {
            for f in datagrams(i, &vec![i as u8; 2000]) {
                r.insert(Instant::ZERO, one, &parse_fragment(&f).unwrap());
            }
        }
        assert_eq!(
            (r.slots(), r.in_progress()),
            (REASSEMBLY_SLOTS_PER_SOURCE_MAX, 0)
        );
        let d = datagrams(99, &vec![9u8; 2000]);
        assert!(
            r.insert(Instant::ZERO, one, &parse_fragment(&d[0]).unwrap())
                .is_none()
        );
        assert_eq!(r.slots(), REASSEMBLY_SLOTS_PER_SOURCE_MAX);
        assert_eq!((r.in_progress(), r.evicted()), (1, 0));
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
            "everything idle for the timeout is gone"
        );
    }
}
