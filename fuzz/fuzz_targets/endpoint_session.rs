//! `endpoint_session`: site B's data path with a live session. A and B complete a
//! handshake in memory (as the protocol doctest does), then the input drives: inner
//! packets A seals (`Endpoint::seal_batch`; well-formed IPv4 from A's overlay address, from
//! a spoofed source, or arbitrary bytes); A's real datagrams delivered to B in order,
//! replayed, reordered, or with a byte changed; data datagrams forged with any receiver
//! index (B's real ones included) and counter; B's datagrams back to A; the clock moving on
//! (both endpoints' timers run, so keys rotate on the time budget and handshakes repeat).
//!
//! Checks: B never delivers a packet twice and never one A did not send (every packet B
//! delivers is matched against the multiset of A's sealed inner packets, cut to their
//! declared IP length), never panics, and opens no forged datagram; plus the checks of
//! `qshield_fuzz::pair` on every datagram B receives.
//!
//! Input: `arbitrary` actions (the seeds are a minimized corpus of earlier runs).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use qshield::batch::{PacketBatch, SlotMeta};
use qshield::constants::DATA_HEADER_BYTES;
use qshield::proto::inner;
use qshield::proto::wire::{DataHeader, TYPE_DATA};
use qshield_fuzz::pair::Pair;
use qshield_fuzz::sites::Side;
use std::collections::HashMap;
use std::time::Duration;

/// Largest inner packet the harness seals.
const MTU: usize = 1420;

#[derive(Arbitrary, Debug)]
enum Inner {
    /// IPv4 from A's overlay to B's, with this payload.
    Ipv4 { payload: Vec<u8>, extra: u8 },
    /// IPv4 to B's overlay from `src` (outside A's allowed IPs unless it is A's).
    Spoofed { src: [u8; 4], payload: Vec<u8> },
    /// The bytes as they are.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Index {
    /// The receiver index of one of A's data datagrams (B's real session indices).
    Real(u8),
    Any(u32),
}

#[derive(Arbitrary, Debug)]
enum Action {
    Send(Inner),
    /// A's datagrams not yet delivered, in order.
    DeliverNew,
    /// A's datagram `which` again (a replay or a reordering), with a byte XORed.
    Replay {
        which: u8,
        flip: Option<(u16, u8)>,
    },
    Forge {
        index: Index,
        counter: u64,
        body: Vec<u8>,
    },
    /// B's datagrams not yet delivered go to A.
    BackToA,
    Advance {
        millis: u16,
    },
}

struct Run {
    pair: Pair,
    a_delivered: usize,
    b_delivered: usize,
    /// Inner packets A sealed (as B must deliver them) and how many times.
    sent: HashMap<Vec<u8>, usize>,
    delivered: HashMap<Vec<u8>, usize>,
}

fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8], extra: u8) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MTU - 40)];
    let len = 20 + payload.len();
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    // trailing bytes beyond the declared length: B must cut them off
    p.extend((0..usize::from(extra % 4)).map(|i| i as u8));
    p
}

impl Run {
    fn deliver(&mut self, datagram: &[u8]) {
        let Some(packet) = self.pair.to_b(Side::A.addr(), datagram) else {
            return;
        };
        let delivered = self.delivered.entry(packet.clone()).or_default();
        *delivered += 1;
        let sent = self.sent.get(&packet).copied().unwrap_or(0);
        assert!(
            *delivered <= sent,
            "B delivered a packet {} times, A sent it {sent} times: {packet:02x?}",
            *delivered
        );
    }

    fn send(&mut self, packet: Vec<u8>) {
        if packet.len() > MTU {
            return;
        }
        if let Some(h) = inner::parse(&packet) {
            *self.sent.entry(packet[..h.len].to_vec()).or_default() += 1;
        }
        let p = &mut self.pair;
        let mut batch = PacketBatch::new(1, MTU);
        batch.set_len(1);
        batch.slot_mut(0)[DATA_HEADER_BYTES..DATA_HEADER_BYTES + packet.len()]
            .copy_from_slice(&packet);
        batch.set_meta(
            0,
            SlotMeta {
                start: DATA_HEADER_BYTES,
                len: packet.len(),
                addr: None,
            },
        );
        p.a.seal_batch(p.now, &mut batch);
        let meta = batch.meta(0);
        if meta.len > 0 {
            p.a_sent.push(qshield::proto::events::Transmit {
                to: meta.addr.expect("a sealed datagram has a destination"),
                payload: batch.bytes(0).to_vec(),
            });
        }
        p.drain();
    }

    fn step(&mut self, action: Action) {
        match action {
            Action::Send(inner) => {
                let packet = match inner {
                    Inner::Ipv4 { payload, extra } => {
                        ipv4(Side::A.overlay(), Side::B.overlay(), &payload, extra)
                    }
                    Inner::Spoofed { src, payload } => ipv4(src, Side::B.overlay(), &payload, 0),
                    Inner::Raw(bytes) => bytes,
                };
                self.send(packet);
            }
            Action::DeliverNew => {
                for d in self.pair.a_sent_since(self.a_delivered) {
                    self.deliver(&d);
                }
                self.a_delivered = self.pair.a_sent.len();
            }
            Action::Replay { which, flip } => {
                let n = self.pair.a_sent.len();
                if n == 0 {
                    return;
                }
                let mut d = self.pair.a_sent[usize::from(which) % n].payload.clone();
                if let Some((at, x)) = flip {
                    let len = d.len();
                    d[usize::from(at) % len] ^= x;
                }
                self.deliver(&d);
            }
            Action::Forge {
                index,
                counter,
                body,
            } => {
                let receiver_index = match index {
                    Index::Real(i) => {
                        let real: Vec<u32> = self
                            .pair
                            .a_sent
                            .iter()
                            .filter(|t| t.payload.first() == Some(&TYPE_DATA))
                            .filter_map(|t| DataHeader::parse(&t.payload).ok())
                            .map(|h| h.receiver_index)
                            .collect();
                        match real.get(usize::from(i) % real.len().max(1)) {
                            Some(&r) => r,
                            None => return,
                        }
                    }
                    Index::Any(r) => r,
                };
                let mut d = vec![0u8; DATA_HEADER_BYTES];
                DataHeader {
                    receiver_index,
                    counter,
                }
                .write(&mut d);
                d.extend_from_slice(&body);
                let opened = self.pair.to_b(Side::A.addr(), &d);
                assert!(opened.is_none(), "B opened a forged datagram");
            }
            Action::BackToA => {
                let p = &mut self.pair;
                let pending: Vec<Vec<u8>> = p.b_sent[self.b_delivered..]
                    .iter()
                    .filter(|t| t.to == Side::A.addr())
                    .map(|t| t.payload.clone())
                    .collect();
                self.b_delivered = p.b_sent.len();
                for mut d in pending {
                    p.a.receive(p.now, Side::B.addr(), &mut d);
                }
                p.drain();
            }
            Action::Advance { millis } => {
                self.pair.advance(Duration::from_millis(u64::from(millis)))
            }
        }
    }

    /// Runs the handshake A starts to completion (A's keepalive confirms it to B).
    fn handshake(&mut self) {
        let now = self.pair.now;
        self.pair.a.start(now);
        self.pair.drain();
        for _ in 0..4 {
            self.step(Action::DeliverNew);
            self.step(Action::BackToA);
        }
        let status = self.pair.b.status(self.pair.now);
        assert!(
            status.peers[0].current_key.is_some(),
            "the setup handshake did not complete"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut run = Run {
        pair: Pair::new(true, true),
        a_delivered: 0,
        b_delivered: 0,
        sent: HashMap::new(),
        delivered: HashMap::new(),
    };
    run.handshake();
    let mut u = Unstructured::new(data);
    for _ in 0..256 {
        match Action::arbitrary(&mut u) {
            Ok(a) => run.step(a),
            Err(_) => break,
        }
    }
});
