//! Two endpoints, A and B, on a simulated clock, and the checks the endpoint targets make
//! on B after every datagram it receives: handshake datagrams it sends fit
//! [`MAX_HANDSHAKE_DATAGRAM_BYTES`] and go to the sender or to A; reassembly stays within
//! [`REASSEMBLY_SLOTS_MAX`]; a datagram refused before any state is touched is counted
//! under the right drop (unknown type or unparsable fragment or data header: `malformed`;
//! a fragment whose mac1 is wrong: `bad_mac1`).

use crate::sites::{self, Side};
use qshield::constants::{MAX_HANDSHAKE_DATAGRAM_BYTES, REASSEMBLY_SLOTS_MAX};
use qshield::proto::cookie::{append_macs, mac1_key, mac1_valid};
use qshield::proto::endpoint::Endpoint;
use qshield::proto::events::Transmit;
use qshield::proto::status::InterfaceDrops;
use qshield::proto::time::Instant;
use qshield::proto::wire::{
    DataHeader, FRAGMENT_MACS_BYTES, TYPE_COOKIE_REPLY, TYPE_DATA, TYPE_INITIATION, TYPE_RESPONSE,
    parse_fragment,
};
use std::net::SocketAddr;
use std::time::Duration;

/// How far the clock may move in one step, at most (about a minute: past the reassembly
/// timeout, the retry timers and a cookie's life, not past the rotation budget's time).
pub const MAX_STEP: Duration = Duration::from_millis(65_535);

/// The two endpoints and what each has sent so far.
pub struct Pair {
    /// The simulated clock.
    pub now: Instant,
    /// Site A.
    pub a: Endpoint,
    /// Site B, the one the targets attack.
    pub b: Endpoint,
    /// Every datagram A sent, oldest first.
    pub a_sent: Vec<Transmit>,
    /// Every datagram B sent, oldest first.
    pub b_sent: Vec<Transmit>,
    /// B's mac1 key: what a fragment addressed to B must carry.
    pub b_mac1_key: [u8; 32],
}

/// What a datagram is expected to cost B before B looks at its state.
enum Refusal {
    Malformed,
    BadMac1,
}

fn expected_refusal(key: &[u8; 32], d: &[u8]) -> Option<Refusal> {
    match d.first() {
        Some(&TYPE_INITIATION | &TYPE_RESPONSE) => match parse_fragment(d) {
            Err(_) => Some(Refusal::Malformed),
            Ok(f) if !mac1_valid(key, &f) => Some(Refusal::BadMac1),
            Ok(_) => None,
        },
        Some(&TYPE_DATA) => DataHeader::parse(d).is_err().then_some(Refusal::Malformed),
        Some(&TYPE_COOKIE_REPLY) => None,
        _ => Some(Refusal::Malformed),
    }
}

impl Pair {
    /// A and B with the fixed identities; each knows the other's address when told so.
    pub fn new(a_knows_b: bool, b_knows_a: bool) -> Pair {
        Pair {
            now: Instant::ZERO,
            a: sites::endpoint(Side::A, a_knows_b, 1),
            b: sites::endpoint(Side::B, b_knows_a, 2),
            a_sent: Vec::new(),
            b_sent: Vec::new(),
            b_mac1_key: mac1_key(&Side::B.public().dh),
        }
    }

    /// Moves the clock on (at most [`MAX_STEP`]) and runs both endpoints' timers.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by.min(MAX_STEP);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.drain();
    }

    /// Collects what both want sent (and drops their events, after checking B's sends).
    pub fn drain(&mut self) -> (usize, usize) {
        let (a0, b0) = (self.a_sent.len(), self.b_sent.len());
        while let Some(t) = self.a.poll_transmit() {
            self.a_sent.push(t);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.b_sent.push(t);
        }
        while self.a.poll_event().is_some() {}
        while self.b.poll_event().is_some() {}
        (a0, b0)
    }

    /// A's datagrams from index `from` on.
    pub fn a_sent_since(&self, from: usize) -> Vec<Vec<u8>> {
        self.a_sent[from..]
            .iter()
            .map(|t| t.payload.clone())
            .collect()
    }

    /// Hands `datagram` from `from` to B and checks B's reaction; returns the inner packet
    /// B delivered, if any.
    pub fn to_b(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        let refusal = expected_refusal(&self.b_mac1_key, datagram);
        let before = self.b.status(self.now).drops;
        let mut buf = datagram.to_vec();
        let opened = self.b.receive(self.now, from, &mut buf);
        let after = self.b.status(self.now).drops;
        let inner = opened.map(|n| {
            assert_eq!(
                datagram[0], TYPE_DATA,
                "B delivered a packet from a handshake datagram"
            );
            buf[qshield::constants::DATA_HEADER_BYTES..][..n].to_vec()
        });
        match refusal {
            Some(Refusal::Malformed) => {
                assert_eq!(
                    after.malformed,
                    before.malformed + 1,
                    "malformed not counted"
                );
                assert_eq!(inner, None);
            }
            Some(Refusal::BadMac1) => {
                assert_eq!(after.bad_mac1, before.bad_mac1 + 1, "bad mac1 not counted");
            }
            None => {}
        }
        if refusal.is_some() {
            assert_eq!(
                total(&after),
                total(&before) + 1,
                "a refused datagram counted twice"
            );
        }
        assert!(self.b.reassembly_in_progress() <= REASSEMBLY_SLOTS_MAX);
        let (_, b0) = self.drain();
        for t in &self.b_sent[b0..] {
            if matches!(t.payload.first(), Some(1..=3)) {
                assert!(t.payload.len() <= MAX_HANDSHAKE_DATAGRAM_BYTES);
                assert!(
                    t.to == from || t.to == Side::A.addr(),
                    "B sent a handshake datagram to {} after one from {from}",
                    t.to
                );
            }
        }
        inner
    }

    /// Rewrites a fragment's MACs: strips the 32 bytes of MACs, then appends a mac1 valid
    /// for B (and no mac2), so edits to its header or payload still reach B's reassembly.
    pub fn remac_for_b(&self, fragment: &mut Vec<u8>) {
        let keep = fragment.len().saturating_sub(FRAGMENT_MACS_BYTES);
        fragment.truncate(keep);
        append_macs(fragment, &self.b_mac1_key, None);
    }
}

/// Every interface drop counter added up.
fn total(d: &InterfaceDrops) -> u64 {
    d.malformed
        + d.unknown_index
        + d.stale_reply
        + d.bad_mac1
        + d.cookie_required
        + d.rate_limited
        + d.handshake_rejected
        + d.no_route
}
