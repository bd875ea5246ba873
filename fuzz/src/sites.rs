//! Two sites with fixed identities (`fixtures/site-{a,b}/`, made by `qshield keygen` for
//! fuzzing only: never use them anywhere else), and endpoints built from them as the
//! protocol doctest builds its pair. Fixed keys keep a seed file valid across runs: a real
//! initiation from A to B in `seeds/` still carries a mac1 that B accepts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use qshield::cidr::IpCidr;
use qshield::crypto::dh::DhSecret;
use qshield::crypto::kem::KemSecret;
use qshield::crypto::random::SeededRng;
use qshield::crypto::{CipherSuite, PublicIdentity, Secret, StaticIdentity};
use qshield::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
use qshield::proto::qkd_flow::QkdPolicy;
use qshield::proto::session::RotationBudget;
use std::net::SocketAddr;
use std::time::Duration;

/// One of the two sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Site A, underlay 198.18.0.1:51820, overlay 198.19.0.1.
    A,
    /// Site B, underlay 198.18.0.2:51820, overlay 198.19.0.2.
    B,
}

/// Wall clock (Unix ns) at `Instant::ZERO` for every endpoint built here: a seed's
/// initiation timestamp is this plus the instant it was made.
pub const UNIX_NS_AT_ORIGIN: u64 = 1_700_000_000_000_000_000;

impl Side {
    /// The other site.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// Underlay address.
    pub fn addr(self) -> SocketAddr {
        SocketAddr::from((self.underlay_ip(), 51820))
    }

    fn underlay_ip(self) -> [u8; 4] {
        match self {
            Side::A => [198, 18, 0, 1],
            Side::B => [198, 18, 0, 2],
        }
    }

    /// Inner (overlay) address.
    pub fn overlay(self) -> [u8; 4] {
        match self {
            Side::A => [198, 19, 0, 1],
            Side::B => [198, 19, 0, 2],
        }
    }

    /// The site's private identity, decoded from its fixture files.
    pub fn identity(self) -> StaticIdentity {
        let (x25519, mlkem) = match self {
            Side::A => (
                include_str!("../fixtures/site-a/x25519.key"),
                include_str!("../fixtures/site-a/mlkem768.key"),
            ),
            Side::B => (
                include_str!("../fixtures/site-b/x25519.key"),
                include_str!("../fixtures/site-b/mlkem768.key"),
            ),
        };
        let dh = B64
            .decode(x25519.trim())
            .expect("fixture x25519 key is base64");
        let kem = B64
            .decode(mlkem.trim())
            .expect("fixture ML-KEM key is base64");
        StaticIdentity {
            dh: DhSecret::from_bytes(&Secret::from_slice(&dh).expect("32 bytes"))
                .expect("fixture x25519 key"),
            kem: KemSecret::from_bytes(&kem).expect("fixture ML-KEM key"),
        }
    }

    /// The site's public identity.
    pub fn public(self) -> PublicIdentity {
        let text = match self {
            Side::A => include_str!("../fixtures/site-a/public.key"),
            Side::B => include_str!("../fixtures/site-b/public.key"),
        };
        PublicIdentity::from_base64(text).expect("fixture public key")
    }
}

/// Budgets large enough that no rotation happens unless a target drives the clock far.
pub fn budget() -> RotationBudget {
    RotationBudget {
        rekey_after_bytes: 1 << 30,
        rekey_after: Duration::from_secs(120),
        reject_after_bytes: 1 << 31,
        reject_after: Duration::from_secs(180),
    }
}

/// The endpoint of `side`, whose only peer is the other site (at its underlay address
/// when `knows_peer_endpoint`), routing the other site's overlay /32 to it.
pub fn endpoint(side: Side, knows_peer_endpoint: bool, rng_seed: u64) -> Endpoint {
    let other = side.other();
    let peer = PeerSettings {
        name: format!("{other:?}"),
        public: other.public(),
        endpoint: knows_peer_endpoint.then(|| other.addr()),
        allowed_ips: vec![IpCidr::new(other.overlay().into(), 32).expect("a /32")],
        persistent_keepalive: None,
    };
    let settings = EndpointSettings {
        identity: side.identity(),
        suite: CipherSuite::Aes256Gcm,
        budget: budget(),
        peers: vec![peer],
        qkd_policy: QkdPolicy::Disable,
        unix_ns_at_origin: UNIX_NS_AT_ORIGIN,
    };
    Endpoint::new(settings, Box::new(SeededRng::new(rng_seed)))
}
