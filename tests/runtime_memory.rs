//! The daemon's runtime (data-plane threads, timers, QKD worker) over the in-memory twins of
//! the TUN, the UDP socket and the KME: two sites, QKD keys in every session, packets through.

use qshield::cidr::IpCidr;
use qshield::crypto::random::SystemRng;
use qshield::crypto::{CipherSuite, StaticIdentity};
use qshield::daemon::clock::Clock;
use qshield::daemon::qkd_worker::QkdFetcher;
use qshield::daemon::runtime::{Runtime, Shared};
use qshield::net::{MemoryNetwork, MemoryTun, MemoryTunHost};
use qshield::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
use qshield::proto::qkd_flow::QkdPolicy;
use qshield::proto::session::RotationBudget;
use qshield::proto::status::PeerStatus;
use qshield::qkd::memory::MemoryKme;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Site {
    runtime: Runtime,
    host: MemoryTunHost,
    shared: Arc<Shared>,
}

fn packet(src: [u8; 4], dst: [u8; 4], tag: u8) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[39] = tag;
    p
}

#[allow(clippy::too_many_arguments)]
fn site(
    net: &MemoryNetwork,
    kme: &Arc<MemoryKme>,
    own: StaticIdentity,
    peer: &StaticIdentity,
    addr: SocketAddr,
    peer_addr: SocketAddr,
    peer_overlay: [u8; 4],
    names: (&str, &str),
) -> Site {
    let budget = RotationBudget {
        rekey_after_bytes: 1 << 30,
        rekey_after: Duration::from_secs(1),
        reject_after_bytes: 2 << 30,
        reject_after: Duration::from_secs(3),
    };
    let clock = Clock::start();
    let settings = EndpointSettings {
        identity: own,
        suite: CipherSuite::Aes256Gcm,
        budget,
        peers: vec![PeerSettings {
            name: names.1.into(),
            public: peer.public(),
            endpoint: Some(peer_addr),
            allowed_ips: vec![IpCidr::new(peer_overlay.into(), 32).unwrap()],
            persistent_keepalive: None,
        }],
        qkd_policy: QkdPolicy::Require,
        unix_ns_at_origin: clock.unix_ns_at_origin(),
    };
    let (tun, host) = MemoryTun::new();
    let queue = qshield::daemon::qkd_worker::QkdQueue::new();
    let shared = Arc::new(Shared {
        interface: names.0.into(),
        endpoint: Mutex::new(Endpoint::new(settings, Box::new(SystemRng))),
        clock,
        tun: Arc::new(tun),
        udp: Arc::new(net.bind(addr).unwrap()),
        shutdown: Arc::new(AtomicBool::new(false)),
        mtu: 1420,
        qkd_jobs: Some(queue.clone()),
        kme_calls: Default::default(),
        peer_queues: Default::default(),
    });
    let fetcher = QkdFetcher {
        source: Arc::new(kme.client(names.0)),
        peer_saes: vec![names.1.into()],
        key_bits: 256,
    };
    Site {
        runtime: Runtime::start(shared.clone(), Some((queue, fetcher))).unwrap(),
        shared,
        host,
    }
}

fn copy(id: &StaticIdentity) -> StaticIdentity {
    use qshield::crypto::{dh::DhSecret, kem::KemSecret};
    StaticIdentity {
        dh: DhSecret::from_bytes(&id.dh.to_bytes().unwrap()).unwrap(),
        kem: KemSecret::from_bytes(&id.kem.to_bytes().unwrap()).unwrap(),
    }
}

/// The QKD key_ID both sites' current sessions use. Keys rotate every second and the two
/// status reads are not atomic, so a read that straddles a rotation is taken again.
fn agreed_key_id(a: &Site, b: &Site) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let at_a = key_id(a).expect("a QKD key in the session");
        let at_b = key_id(b);
        if at_b.as_deref() == Some(at_a.as_str()) {
            return at_a;
        }
        assert!(
            Instant::now() < deadline,
            "the sites never agree on the QKD key: {at_a} vs {at_b:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn key_id(s: &Site) -> Option<String> {
    peer_status(s)
        .current_key
        .as_ref()
        .and_then(|k| k.qkd_key_id.clone())
}

fn peer_status(s: &Site) -> PeerStatus {
    let rt = s.runtime.shared();
    let status = rt.lock().status(rt.clock.now());
    status.peers[0].clone()
}

/// Polls `s`'s peer status until `done` holds; panics with `what` and the last status after
/// `limit`.
fn wait_for(s: &Site, limit: Duration, what: &str, done: impl Fn(&PeerStatus) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let st = peer_status(s);
        if done(&st) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}: {st:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn through(from: &Site, to: &Site, p: &[u8]) -> bool {
    from.host.inject(p);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if to.host.recv_written(Duration::from_millis(50)).as_deref() == Some(p) {
            return true;
        }
    }
    false
}

#[test]
fn two_sites_exchange_packets_with_a_fresh_qkd_key_per_rotation() {
    let net = MemoryNetwork::new();
    let kme = MemoryKme::new();
    let (ia, ib) = (
        StaticIdentity::generate().unwrap(),
        StaticIdentity::generate().unwrap(),
    );
    let (pa, pb) = (copy(&ia), copy(&ib));
    let (aa, ab): (SocketAddr, SocketAddr) = (
        "198.18.0.1:51820".parse().unwrap(),
        "198.18.0.2:51820".parse().unwrap(),
    );
    let a = site(
        &net,
        &kme,
        ia,
        &pb,
        aa,
        ab,
        [198, 19, 0, 2],
        ("sae-a", "sae-b"),
    );
    let b = site(
        &net,
        &kme,
        ib,
        &pa,
        ab,
        aa,
        [198, 19, 0, 1],
        ("sae-b", "sae-a"),
    );
    assert!(
        through(&a, &b, &packet([198, 19, 0, 1], [198, 19, 0, 2], 1)),
        "A to B"
    );
    assert!(
        through(&b, &a, &packet([198, 19, 0, 2], [198, 19, 0, 1], 2)),
        "B to A"
    );
    let first = agreed_key_id(&a, &b);
    // Keys rotate every second: wait for the next QKD key rather than a fixed time.
    wait_for(
        &a,
        Duration::from_secs(5),
        "a rotation to a new QKD key",
        |st| {
            st.current_key
                .as_ref()
                .and_then(|k| k.qkd_key_id.as_ref())
                .is_some_and(|id| *id != first)
        },
    );
    assert!(through(
        &a,
        &b,
        &packet([198, 19, 0, 1], [198, 19, 0, 2], 3)
    ));
    let later = key_id(&a).expect("still QKD");
    assert_ne!(first, later, "each rotation takes a new QKD key");
    assert!(kme.issued() >= 2);
    kme.set_down(true);
    let failures_before = peer_status(&a).qkd.failures;
    // Fail closed because of the KME: A's KME calls fail, and the current key reaches its
    // hard limit (3 s) and is dropped with no successor.
    wait_for(
        &a,
        Duration::from_secs(6),
        "the key dropped at its hard limit after failed KME calls",
        |st| st.current_key.is_none() && st.qkd.failures > failures_before,
    );
    assert!(
        peer_status(&a).qkd.last_error.is_some(),
        "the status names the KME failure"
    );
    assert!(
        !through(&a, &b, &packet([198, 19, 0, 1], [198, 19, 0, 2], 4)),
        "require: fail closed"
    );
    kme.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut back = false;
    while !back && Instant::now() < deadline {
        back = through(&a, &b, &packet([198, 19, 0, 1], [198, 19, 0, 2], 5));
    }
    assert!(back, "recovers by itself when the KME is back");
    let recovered = key_id(&a).expect("the recovered session mixes a QKD key");
    assert_ne!(recovered, later, "the recovered session has a new QKD key");
    // Every KME call, answered or failed, is in the sites' call-time histograms.
    let calls = |s: &Site| {
        let v = s.shared.kme_calls.to_json(0);
        let n = |c: &str| v[c]["count"].as_u64().unwrap_or(0);
        n("enc_keys") + n("dec_keys")
    };
    let st = (peer_status(&a).qkd, peer_status(&b).qkd);
    let made = st.0.keys_consumed + st.0.failures + st.1.keys_consumed + st.1.failures;
    assert!(
        calls(&a) + calls(&b) >= made,
        "{} calls timed, {made} made",
        calls(&a) + calls(&b)
    );
    assert!(calls(&a) > 0 && calls(&b) > 0);
    a.runtime.stop();
    b.runtime.stop();
}
