//! The sans-IO protocol core. No sockets, no threads, no clock: the runtime feeds it
//! datagrams, inner packets and the time, and drains what it wants sent.
//!
//! - [`wire`]: message formats. [`handshake`]: the key schedule. [`session`]: keys in use,
//!   budgets. [`replay`]: the anti-replay window. [`fragment`]: reassembly with bounded
//!   state. [`cookie`]: mac1/mac2, cookies, rate limits. [`endpoint`]: the interface:
//!   demultiplexing, routing, timers, each peer's state machine. [`events`]: what it tells
//!   the runtime; [`status`]: the snapshot behind `qshield status`. [`qkd_flow`]: QKD
//!   policy and key requests. [`PeerId`]: which peer.
//!
//! # Example
//!
//! Two sites complete a handshake in memory: nothing here opens a socket; the loop hands
//! every datagram one endpoint wants sent to the other, as the network would.
//!
//! ```
//! use qshield_core::cidr::IpCidr;
//! use qshield_core::crypto::random::SeededRng;
//! use qshield_core::crypto::{CipherSuite, PublicIdentity, StaticIdentity};
//! use qshield_core::proto::PeerId;
//! use qshield_core::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
//! use qshield_core::proto::events::{Event, Role};
//! use qshield_core::proto::session::RotationBudget;
//! use qshield_core::proto::time::Instant;
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addr_a: SocketAddr = "198.18.0.1:51820".parse()?;
//! let addr_b: SocketAddr = "198.18.0.2:51820".parse()?;
//! let (identity_a, identity_b) = (StaticIdentity::generate()?, StaticIdentity::generate()?);
//! let (public_a, public_b) = (identity_a.public(), identity_b.public());
//!
//! // One site whose only peer is `name` at `endpoint`, routing `inner` to it.
//! let site = |identity, name: &str, public: PublicIdentity, endpoint, inner: &str, seed| {
//!     let peer = PeerSettings {
//!         name: name.into(),
//!         public,
//!         endpoint: Some(endpoint),
//!         allowed_ips: vec![inner.parse::<IpCidr>().expect("a prefix")],
//!         persistent_keepalive: None,
//!     };
//!     let settings = EndpointSettings {
//!         identity,
//!         suite: CipherSuite::Aes256Gcm,
//!         budget: RotationBudget {
//!             rekey_after_bytes: 1 << 30,
//!             rekey_after: Duration::from_secs(120),
//!             reject_after_bytes: 1 << 31,
//!             reject_after: Duration::from_secs(180),
//!         },
//!         peers: vec![peer],
//!         qkd_policy: Default::default(),
//!         unix_ns_at_origin: 1_700_000_000_000_000_000,
//!     };
//!     Endpoint::new(settings, Box::new(SeededRng::new(seed)))
//! };
//! let mut a = site(identity_a, "b", public_b, addr_b, "198.19.0.2/32", 1);
//! let mut b = site(identity_b, "a", public_a, addr_a, "198.19.0.1/32", 2);
//!
//! // A initiates; deliver datagrams both ways until neither has anything to send.
//! let now = Instant::ZERO;
//! a.start(now);
//! loop {
//!     let mut moved = false;
//!     while let Some(mut t) = a.poll_transmit() {
//!         b.receive(now, addr_a, &mut t.payload);
//!         moved = true;
//!     }
//!     while let Some(mut t) = b.poll_transmit() {
//!         a.receive(now, addr_b, &mut t.payload);
//!         moved = true;
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//!
//! // Each side has one peer; events name it by its `PeerId`.
//! let only_peer = PeerId::from_index(0);
//! let a_events: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
//! let b_events: Vec<Event> = std::iter::from_fn(|| b.poll_event()).collect();
//! assert!(a_events.iter().any(|e| matches!(e,
//!     Event::SessionEstablished { peer, role: Role::Initiator, .. } if *peer == only_peer)));
//! assert!(b_events.iter().any(|e| matches!(e,
//!     Event::SessionEstablished { peer, role: Role::Responder, .. } if *peer == only_peer)));
//! // A's first packet under the new key (a keepalive) confirmed it to B
//! assert!(b_events.iter().any(|e| matches!(e, Event::SessionConfirmed { epoch: 1, .. })));
//! assert_eq!(a.peer_name(only_peer), Some("b"));
//! for site in [&a, &b] {
//!     let key = site.status(now).peers[0].current_key.clone();
//!     assert_eq!(key.map(|k| k.epoch), Some(1));
//! }
//! # Ok(())
//! # }
//! ```

pub mod cookie;
pub mod endpoint;
pub mod events;
pub mod fragment;
pub mod handshake;
pub mod inner;
pub mod peer_id;
pub mod qkd_flow;
pub mod replay;
pub mod session;
pub mod status;
pub mod time;
pub mod wire;

pub use peer_id::PeerId;

#[cfg(test)]
mod tests;
