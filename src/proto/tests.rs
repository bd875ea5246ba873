//! Budget edges that need crate-internal access: the cipher packet caps (2^26 and 2^60
//! packets are too many to send) and the receive-side hard limits, at the session and at
//! the endpoint.

use super::endpoint::{Endpoint, EndpointSettings};
use super::events::{Event, InitiationReason};
use super::handshake::SessionKeys;
use super::peer::PeerSettings;
use super::peer_id::PeerId;
use super::session::{ExpiryReason, KeyUse, OpenError, RekeyReason, RotationBudget, Session};
use super::time::Instant;
use super::wire::DataHeader;
use crate::cidr::IpCidr;
use crate::crypto::random::SeededRng;
use crate::crypto::{CipherSuite, Secret, StaticIdentity};
use std::net::SocketAddr;
use std::time::Duration;

fn budget() -> RotationBudget {
    RotationBudget {
        rekey_after_bytes: 1000,
        rekey_after: Duration::from_secs(10),
        reject_after_bytes: 2000,
        reject_after: Duration::from_secs(20),
    }
}

fn pair(suite: CipherSuite) -> (Session, Session) {
    let keys = |send: u8, receive: u8, local, remote, is_initiator| SessionKeys {
        send: Secret::new([send; 32]),
        receive: Secret::new([receive; 32]),
        local_index: local,
        remote_index: remote,
        is_initiator,
        qkd_key_id: None,
    };
    (
        Session::new(&keys(1, 2, 1, 2, true), suite, 1, Instant::ZERO),
        Session::new(&keys(2, 1, 2, 1, false), suite, 1, Instant::ZERO),
    )
}

fn sealed(s: &mut Session) -> Vec<u8> {
    let mut slot = vec![0u8; 64];
    let n = s.seal(&mut slot, 0);
    slot.truncate(n);
    slot
}

fn open(s: &mut Session, d: &[u8], now: Instant) -> Result<usize, OpenError> {
    let mut d = d.to_vec();
    let h = DataHeader::parse(&d).unwrap();
    s.open(&h, &mut d, now, &budget())
}

#[test]
fn packet_caps_of_both_ciphers_at_their_edges() {
    for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
        let cap = suite.max_packets_per_key();
        let soft = cap / 8 * 7;
        let (mut a, mut b) = pair(suite);
        a.set_next_counter(soft - 1);
        assert_eq!(a.send_use(Instant::ZERO, &budget()), KeyUse::Fresh);
        sealed(&mut a);
        assert_eq!(
            a.send_use(Instant::ZERO, &budget()),
            KeyUse::RekeyDue(RekeyReason::Packets)
        );
        a.set_next_counter(cap - 1);
        assert_eq!(a.packets_left(), 1);
        assert_eq!(
            a.send_use(Instant::ZERO, &budget()),
            KeyUse::RekeyDue(RekeyReason::Packets)
        );
        let last = sealed(&mut a);
        assert_eq!(
            a.send_use(Instant::ZERO, &budget()),
            KeyUse::Exhausted(ExpiryReason::Packets),
            "{suite:?}"
        );
        assert_eq!(a.packets_left(), 0);
        // the receiver accepts the last allowed counter, then refuses the key
        b.usage.packets_received = cap - 1;
        assert!(open(&mut b, &last, Instant::ZERO).is_ok());
        let (mut a2, _) = pair(suite);
        let another = sealed(&mut a2);
        assert_eq!(
            open(&mut b, &another, Instant::ZERO),
            Err(OpenError::Expired)
        );
    }
}

#[test]
fn receive_side_hard_limits_at_their_edges() {
    let b0 = budget();
    // bytes: one short opens, exactly the budget refuses
    let (mut a, mut b) = pair(CipherSuite::Aes256Gcm);
    b.usage.bytes_received = b0.reject_after_bytes - 1;
    assert!(open(&mut b, &sealed(&mut a), Instant::ZERO).is_ok());
    b.usage.bytes_received = b0.reject_after_bytes;
    assert_eq!(
        open(&mut b, &sealed(&mut a), Instant::ZERO),
        Err(OpenError::Expired)
    );
    // time: one nanosecond short opens, exactly the budget refuses
    let (mut a, mut b) = pair(CipherSuite::Aes256Gcm);
    let edge = Instant::ZERO + b0.reject_after;
    let before = Instant::from_nanos(edge.as_nanos() - 1);
    assert!(open(&mut b, &sealed(&mut a), before).is_ok());
    assert_eq!(open(&mut b, &sealed(&mut a), edge), Err(OpenError::Expired));
    // forgeries: the integrity limit refuses the key once reached
    let (mut a, mut b) = pair(CipherSuite::ChaCha20Poly1305);
    b.usage.forgeries = CipherSuite::ChaCha20Poly1305.max_forgeries_per_key() - 1;
    let mut bad = sealed(&mut a);
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(open(&mut b, &bad, Instant::ZERO), Err(OpenError::BadTag));
    assert_eq!(
        open(&mut b, &sealed(&mut a), Instant::ZERO),
        Err(OpenError::Expired)
    );
    assert_eq!(
        b.send_use(Instant::ZERO, &b0),
        KeyUse::Exhausted(ExpiryReason::Forgeries)
    );
}

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

/// The one peer of [`endpoint`]'s endpoints.
const FIRST: PeerId = PeerId::from_index(0);

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
