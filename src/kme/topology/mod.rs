//! The key network as one KME knows it, link-state style, and the routes computed from it:
//! the first step of routing by pool level and link health. Not yet wired: relays still
//! follow the configured routes (docs/kme.md). No I/O and no clock of its own: adverts and
//! the time come in as arguments.
//!
//! - [`database`]: each KME's latest [`LinkStateAdvert`] (its links: pool bits each way,
//!   key rate, alarm, estimated excess noise), numbered so a stale or replayed advert is
//!   ignored, and aged out when its origin stops refreshing it;
//! - [`paths`]: from the adverts, a usable graph (a link both ends report, neither under
//!   alarm) and the best path for a relay (enough pad on every hop in the direction of
//!   travel, the most relays left at the bottleneck, then the fewest trusted nodes), and
//!   node-disjoint paths for a key relayed in shares;
//! - [`shares`]: a key split into XOR shares, one per disjoint path, and joined again.
//!
//! Imports nothing else of the KME.

pub mod database;
pub mod paths;
pub mod shares;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A KME's ID (its certificate's common name, as in the config).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KmeId(pub String);

impl KmeId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KmeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for KmeId {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// One link as the KME at one end reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkReport {
    /// The KME at the other end.
    pub peer: KmeId,
    /// Unspent pad bits the reporting KME may spend sending to `peer`.
    pub send_bits: u64,
    /// Unspent pad bits `peer` may spend sending to the reporting KME, as this end holds
    /// them.
    pub receive_bits: u64,
    /// Secret key rate of the link, bits per second (0 when unknown).
    pub key_rate_bps: f64,
    /// The link is under alarm (an eavesdropper suspected, or its QKD aborted): no key may
    /// cross it.
    pub alarm: bool,
    /// Estimated excess noise ξ (shot-noise units) of a CV-QKD link, if measured.
    pub excess_noise: Option<f64>,
}

/// A KME's report of all its links, numbered by its origin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkStateAdvert {
    /// The KME whose links these are.
    pub origin: KmeId,
    /// Increases with every advert of this origin (it starts from the origin's wall clock
    /// in milliseconds, so a restarted KME goes on upwards).
    pub seq: u64,
    /// Its links.
    pub links: Vec<LinkReport>,
}
