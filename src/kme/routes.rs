//! The route table: every path the KME serves, used by the router ([`super::http`]) and,
//! for the KME-to-KME routes, by the neighbour client ([`super::neighbours`]). Imports
//! nothing.

/// ETSI GS QKD 014 "Get status" of the slave SAE in the path.
pub const ETSI_STATUS: &str = "/api/v1/keys/{slave}/status";
/// ETSI GS QKD 014 "Get key" for the slave SAE in the path.
pub const ETSI_ENC_KEYS: &str = "/api/v1/keys/{slave}/enc_keys";
/// ETSI GS QKD 014 "Get key with key IDs" from the master SAE in the path.
pub const ETSI_DEC_KEYS: &str = "/api/v1/keys/{master}/dec_keys";
/// A relay hop from a neighbour KME.
pub const RELAY: &str = "/kme/v1/relay";
/// A link leader's push of key blocks to its follower.
pub const LINK_KEYS: &str = "/kme/v1/link/keys";
/// A link neighbour's report of how far it has spent the direction it sends.
pub const LINK_SPENT: &str = "/kme/v1/link/spent";
/// A link neighbour's link-state adverts (its own and those it holds).
pub const TOPOLOGY: &str = "/kme/v1/topology";
/// The classical messages of a CV-QKD link, leader to follower.
pub const CVQKD_LINK: &str = "/kme/v1/link/cvqkd";
/// The status document, for neighbour KMEs and this KME's SAEs.
pub const KME_STATUS: &str = "/kme/v1/status";
