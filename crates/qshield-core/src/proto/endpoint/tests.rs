//! The endpoint at the cipher's packet caps (2^26 and 2^60 packets are too many to send),
//! with access to its private state: the rekey at the soft cap, the refusal at the cap, and
//! the index table afterwards.

use super::{Endpoint, EndpointSettings, PeerSettings};
use crate::cidr::IpCidr;
use crate::crypto::random::SeededRng;
use crate::crypto::{CipherSuite, StaticIdentity};
use crate::proto::PeerId;
use crate::proto::events::{Event, InitiationReason};
use crate::proto::session::{ExpiryReason, RekeyReason, RotationBudget};
use crate::proto::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

/// The one peer of [`endpoint`]'s endpoints.
const FIRST: PeerId = PeerId::from_index(0);

fn endpoint(own: &StaticIdentity, peer: &StaticIdentity, peer_addr: SocketAddr) -> Endpoint {
    let budget = RotationBudget {
        rekey_after_bytes: 1 << 30,
        rekey_after: Duration::from_secs(120),
        reject_after_bytes: 1 << 31,
        reject_after: Duration::from_secs(180),
    };
    let settings = EndpointSettings {
        identity: StaticIdentity {
            dh: crate::crypto::dh::DhSecret::from_bytes(&own.dh.to_bytes().unwrap()).unwrap(),
            kem: crate::crypto::kem::KemSecret::from_bytes(&own.kem.to_bytes().unwrap()).unwrap(),
        },
        suite: CipherSuite::Aes256Gcm,
        budget,
        peers: vec![PeerSettings {
            name: "peer".into(),
            public: peer.public(),
            endpoint: Some(peer_addr),
            allowed_ips: vec![IpCidr::new([198, 19, 0, 9].into(), 32).unwrap()],
            persistent_keepalive: None,
        }],
        qkd_policy: Default::default(),
        unix_ns_at_origin: 1,
    };
    Endpoint::new(settings, Box::new(SeededRng::new(7)))
}

/// Moves every pending datagram between the two endpoints until both are quiet; returns
/// the data datagrams (type 4) that went from `a` to `b`.
fn pump(a: &mut Endpoint, b: &mut Endpoint, now: Instant, addrs: [SocketAddr; 2]) -> usize {
    let mut data = 0;
    loop {
        let mut moved = false;
        while let Some(mut t) = a.poll_transmit() {
            data += usize::from(t.payload[0] == 4);
            b.receive(now, addrs[0], &mut t.payload);
            moved = true;
        }
        while let Some(mut t) = b.poll_transmit() {
            a.receive(now, addrs[1], &mut t.payload);
            moved = true;
        }
        if !moved {
            return data;
        }
    }
}

#[test]
fn endpoint_rekeys_at_the_packet_soft_cap_and_refuses_at_the_cap() {
    let (ia, ib) = (
        StaticIdentity::generate().unwrap(),
        StaticIdentity::generate().unwrap(),
    );
    let addrs: [SocketAddr; 2] = [
        "198.18.0.1:1".parse().unwrap(),
        "198.18.0.2:1".parse().unwrap(),
    ];
    let (mut a, mut b) = (endpoint(&ia, &ib, addrs[1]), endpoint(&ib, &ia, addrs[0]));
    let now = Instant::ZERO;
    a.start(now);
    pump(&mut a, &mut b, now, addrs);
    assert!(a.peers[FIRST].current.is_some() && b.peers[FIRST].current.is_some());
    while a.poll_event().is_some() {}
    let cap = CipherSuite::Aes256Gcm.max_packets_per_key();
    // one packet short of the soft point: nothing; the soft point: a rekey starts
    a.peers[FIRST]
        .current
        .as_mut()
        .unwrap()
        .set_next_counter(cap / 8 * 7 - 1);
    a.handle_timeout(now);
    assert!(a.poll_event().is_none());
    a.send_single(now, FIRST, &[]);
    a.handle_timeout(now);
    assert_eq!(
        a.poll_event(),
        Some(Event::HandshakeStarted {
            peer: FIRST,
            reason: InitiationReason::Rekey(RekeyReason::Packets)
        })
    );
    // drop that handshake; the last counter under the cap is still sent, then no more
    while a.poll_transmit().is_some() {}
    a.peers[FIRST]
        .current
        .as_mut()
        .unwrap()
        .set_next_counter(cap - 1);
    assert!(a.ensure_sendable(now, FIRST));
    a.send_single(now, FIRST, &[]);
    assert_eq!(pump(&mut a, &mut b, now, addrs), 1);
    assert!(!a.ensure_sendable(now, FIRST), "the cap is reached");
    assert!(a.peers[FIRST].current.is_none());
    let expired = std::iter::from_fn(|| a.poll_event()).any(|e| {
        matches!(
            e,
            Event::SessionExpired {
                reason: ExpiryReason::Packets,
                ..
            }
        )
    });
    assert!(expired);
    // the index table holds exactly the indices the peer still uses
    let mut held = a.peers[FIRST].indices();
    let mut table: Vec<u32> = a.indices.keys().copied().collect();
    held.sort();
    table.sort();
    assert_eq!(held, table);
}
