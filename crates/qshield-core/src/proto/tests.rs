//! Budget edges that need crate-internal access: the cipher packet caps (2^26 and 2^60
//! packets are too many to send) and the receive-side hard limits, at the session (the
//! endpoint's are in `endpoint/tests.rs`).

use super::handshake::SessionKeys;
use super::session::{ExpiryReason, KeyUse, OpenError, RekeyReason, RotationBudget, Session};
use super::time::Instant;
use super::wire::DataHeader;
use crate::crypto::{CipherSuite, Secret};
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
