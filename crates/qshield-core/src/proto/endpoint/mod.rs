//! The interface-level state machine: every peer of one TUN interface, the session-index
//! table, routing by allowed IPs, and the queues of datagrams and events for the runtime.
//!
//! Driven quinn-style: [`Endpoint::seal_batch`] (inner packets from the TUN),
//! [`Endpoint::open_batch`] (datagrams from the UDP socket), [`Endpoint::handle_timeout`];
//! drained with [`Endpoint::poll_transmit`], [`Endpoint::poll_event`],
//! [`Endpoint::poll_timeout`].
//!
//! This module owns the [`Endpoint`] struct (its fields are private to it and its
//! children) and its construction and queues. Its children are `impl Endpoint` blocks on
//! those fields: `data` (the send and receive paths), `exchange` (the handshake), `qkd` (QKD
//! keys for the handshake), `timers` (what runs when), `probes` (hidden size probes for
//! long-run tests); `peer` holds one peer's state and `timer` its timer table.

mod data;
mod exchange;
mod peer;
mod probes;
mod qkd;
#[cfg(test)]
mod tests;
mod timer;
mod timers;

pub use peer::PeerSettings;
#[doc(hidden)]
pub use probes::{PeerSizes, SessionProbe, StateSizes};

use super::cookie::{CookieChecker, RateLimiter};
use super::events::{Event, InitiationReason, Transmit};
use super::fragment::Reassembler;
use super::handshake::SessionKeys;
use super::peer_id::PeerId;
use super::qkd_flow::{QkdPolicy, QkdRequest};
use super::session::{RotationBudget, Session};
use super::status::{EndpointStatus, InterfaceDrops};
use super::time::Instant;
use crate::cidr::PrefixTable;
use crate::constants::REKEY_SPREAD_DIVISOR;
use crate::crypto::dh::DhPublic;
use crate::crypto::random::Rng;
use crate::crypto::{CipherSuite, PublicIdentity, StaticIdentity};
use peer::Peers;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the endpoint is built from.
pub struct EndpointSettings {
    /// Our static identity.
    pub identity: StaticIdentity,
    /// Data cipher (both peers must agree).
    pub suite: CipherSuite,
    /// Key budgets.
    pub budget: RotationBudget,
    /// The peers.
    pub peers: Vec<PeerSettings>,
    /// How sessions use QKD keys.
    pub qkd_policy: QkdPolicy,
    /// Wall clock (ns since the Unix epoch) at [`Instant::ZERO`]: initiation timestamps
    /// are this plus `now`, so they keep increasing across restarts.
    pub unix_ns_at_origin: u64,
}

/// One interface's protocol state.
pub struct Endpoint {
    identity: StaticIdentity,
    public: PublicIdentity,
    suite: CipherSuite,
    budget: RotationBudget,
    peers: Peers,
    /// The peers' allowed IPs, for routing an inner packet to its peer.
    routes: PrefixTable<PeerId>,
    by_static: HashMap<DhPublic, PeerId>,
    indices: HashMap<u32, PeerId>,
    reassembler: Reassembler,
    cookies: CookieChecker,
    limiter: RateLimiter,
    rng: Box<dyn Rng>,
    unix_ns_at_origin: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    drops: InterfaceDrops,
    last_bad_mac1_event: Option<Instant>,
    last_rejected_event: Option<Instant>,
    qkd_policy: QkdPolicy,
    qkd_requests: VecDeque<QkdRequest>,
    qkd_next_request_id: u64,
    /// Counts changes of any peer's endpoint ([`Endpoint::endpoints_generation`]).
    endpoints_generation: u64,
}

impl Endpoint {
    /// A new endpoint; nothing is sent until [`Endpoint::start`] or traffic.
    pub fn new(settings: EndpointSettings, rng: Box<dyn Rng>) -> Self {
        let public = settings.identity.public();
        let by_static = settings
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.public.dh, PeerId::from_index(i)))
            .collect();
        let routes = PrefixTable::new(settings.peers.iter().enumerate().flat_map(|(i, p)| {
            p.allowed_ips
                .iter()
                .map(move |c| (c, PeerId::from_index(i)))
        }));
        Self {
            cookies: CookieChecker::new(&public.dh),
            identity: settings.identity,
            public,
            suite: settings.suite,
            budget: settings.budget,
            peers: Peers::new(settings.peers),
            routes,
            by_static,
            indices: HashMap::new(),
            reassembler: Reassembler::default(),
            limiter: RateLimiter::default(),
            rng,
            unix_ns_at_origin: settings.unix_ns_at_origin,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            drops: InterfaceDrops::default(),
            last_bad_mac1_event: None,
            last_rejected_event: None,
            qkd_policy: settings.qkd_policy,
            qkd_requests: VecDeque::new(),
            qkd_next_request_id: 0,
            endpoints_generation: 0,
        }
    }

    /// Starts a handshake with every peer that has an endpoint.
    pub fn start(&mut self, now: Instant) {
        for p in self.peers.ids() {
            self.initiate(now, p, InitiationReason::Startup);
        }
    }

    /// Our public identity.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handshake messages being reassembled (bounded; for status and tests).
    pub fn reassembly_in_progress(&self) -> usize {
        self.reassembler.in_progress()
    }

    /// A number that changes whenever a peer's endpoint does (learned from an
    /// authenticated packet), so the I/O layer reads [`Endpoint::peer_endpoints`] only
    /// then.
    pub fn endpoints_generation(&self) -> u64 {
        self.endpoints_generation
    }

    /// Every peer's known endpoint, in peer order (peers without one are left out).
    pub fn peer_endpoints(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.values().filter_map(|p| p.endpoint)
    }

    /// The name of peer `peer` (as configured), or `None` for an ID this endpoint does
    /// not have.
    pub fn peer_name(&self, peer: PeerId) -> Option<&str> {
        self.peers.get(peer).map(|p| p.settings.name.as_str())
    }

    /// A status snapshot.
    pub fn status(&self, now: Instant) -> EndpointStatus {
        EndpointStatus {
            peers: self
                .peers
                .values()
                .map(|p| p.status(now, &self.budget, self.suite.name(), self.qkd_policy))
                .collect(),
            drops: self.drops,
        }
    }

    /// Allocates a fresh session index for peer `p`.
    fn new_index(&mut self, p: PeerId) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if let Entry::Vacant(e) = self.indices.entry(i) {
                e.insert(p);
                return i;
            }
        }
    }

    /// Our wall clock at `now`, for initiation timestamps.
    fn unix_ns(&self, now: Instant) -> u64 {
        self.unix_ns_at_origin.saturating_add(now.as_nanos())
    }

    /// Forgets the indices of the sessions an installed one displaced.
    fn forget_indices(&mut self, freed: Vec<u32>) {
        for i in freed {
            self.indices.remove(&i);
        }
    }

    /// Builds a session from handshake keys with the peer's next epoch.
    ///
    /// An initiator's session rekeys by time a random part of `rekey_after /
    /// REKEY_SPREAD_DIVISOR` early, so sessions established together rekey apart.
    fn new_session(&mut self, p: PeerId, keys: &SessionKeys, now: Instant) -> Session {
        let early = if keys.is_initiator {
            let spread = self.budget.rekey_after / REKEY_SPREAD_DIVISOR;
            let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(u64::from(self.rng.next_u32()) % spread_ms.saturating_add(1))
        } else {
            Duration::ZERO
        };
        let peer = &mut self.peers[p];
        peer.epoch += 1;
        peer.handshakes += 1;
        peer.last_handshake = Some(now);
        let mut session = Session::new(keys, self.suite, peer.epoch, now);
        session.set_rekey_early(early);
        session
    }
}
