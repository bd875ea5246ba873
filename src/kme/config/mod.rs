//! The KME's TOML configuration (docs/kme.md): the typed [`KmeConfig`] the KME runs on,
//! and [`load`] / [`parse`], which read the raw schema (`raw`, `deny_unknown_fields`, spans
//! kept for messages) and validate it (`validate`). Every refusal names `FILE:LINE:COL`
//! and the field path, as the daemon's config does (both use `crate::config::spanned`).

mod raw;
mod validate;

use crate::config::spanned::{InvalidField, Source};
use crate::config::{ConfigError, Location};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest key size accepted in the config, in bits.
pub const MAX_KEY_SIZE_LIMIT_BITS: u32 = 65536;
/// Most keys per request accepted in the config.
pub const MAX_KEY_PER_REQUEST_LIMIT: u32 = 10_000;
/// How long a key waits for its slave's `dec_keys` when `pending_key_expiry` is not set.
pub const DEFAULT_PENDING_KEY_EXPIRY: Duration = Duration::from_secs(600);
/// Longest `pending_key_expiry` accepted.
pub const MAX_PENDING_KEY_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Open connections to the API when `max_connections` is not set (lowered at start to
/// what the descriptor limit allows).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open connections from one IP address when `max_connections_per_source` is not set:
/// every SAE of a site may sit behind one address.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 256;
/// How long a TLS handshake may take when `tls_handshake_timeout` is not set.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an HTTP/1 request's headers may take when `header_read_timeout` is not set.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit with no request when `idle_timeout` is not set.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest connection timeout accepted.
pub const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why a KME config was refused.
#[derive(Debug, thiserror::Error)]
pub enum KmeConfigError {
    /// Unreadable file, TOML syntax, unknown or missing key, wrong type.
    #[error(transparent)]
    Toml(#[from] ConfigError),
    /// A well-formed value that validation refused.
    #[error("{at}: {field}: {problem}")]
    Invalid {
        /// Where.
        at: Location,
        /// The field path (`link[0].rate_bits_per_second`).
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl InvalidField for KmeConfigError {
    type Problem = String;

    fn invalid(at: Location, field: String, problem: String) -> Self {
        Self::Invalid { at, field, problem }
    }
}

/// A validated KME configuration.
#[derive(Debug, Clone)]
pub struct KmeConfig {
    /// This KME's ID (the CN of its certificate).
    pub id: String,
    /// Address the HTTPS API listens on.
    pub listen: SocketAddr,
    /// Directory of the durable store.
    pub data_dir: PathBuf,
    /// CA certificate (PEM) every peer's certificate must chain to.
    pub ca_file: PathBuf,
    /// This KME's certificate (PEM).
    pub cert_file: PathBuf,
    /// This KME's private key (PEM).
    pub key_file: PathBuf,
    /// Key size limits and defaults.
    pub limits: KeyLimits,
    /// Seconds between status log lines (0: never).
    pub status_log_seconds: u64,
    /// SAEs attached to this KME.
    pub saes: Vec<String>,
    /// The quotas of each local SAE as a master (`[[sae]] rate`, `volume`), in `saes` order.
    pub sae_quotas: Vec<Quota>,
    /// SAEs attached elsewhere, with their routes.
    pub remote_saes: Vec<RemoteSae>,
    /// Which SAE may get keys for which (`[[sae_pair]]`); none configured: every key
    /// request and every relay is refused.
    pub pairs: Vec<SaePair>,
    /// How long a key waits for its slave's `dec_keys` before it is erased.
    pub pending_key_expiry: Duration,
    /// QKD links to neighbour KMEs.
    pub links: Vec<LinkConfig>,
    /// Caps and timeouts of the API's connections.
    pub connections: ConnectionLimits,
    /// Where the Prometheus metrics are served (plain HTTP, `GET /metrics`), if anywhere
    /// (`metrics_listen`; a non-loopback address needs `metrics_public = true`).
    pub metrics_listen: Option<SocketAddr>,
}

/// Caps and timeouts of the API's connections (`[kme]` `max_connections`,
/// `max_connections_per_source`, `tls_handshake_timeout`, `header_read_timeout`,
/// `idle_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most open connections (at start, lowered to what the descriptor limit allows).
    pub max_connections: usize,
    /// Most open connections from one IP address.
    pub max_connections_per_source: usize,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// How long the headers of an HTTP/1 request may take.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request being handled.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl KmeConfig {
    /// The configured pair that lets `master` get keys for `slave` (and `slave` fetch
    /// them), with its index in `pairs`.
    pub fn pair(&self, master: &str, slave: &str) -> Option<(usize, &SaePair)> {
        self.pairs
            .iter()
            .enumerate()
            .find(|(_, p)| p.allows(master, slave))
    }

    /// The role `id` has in this config: an SAE (`[[sae]]`, `[[remote_sae]]`), a KME (this
    /// KME, a link peer, a KME on a route), or none. The two never overlap ([`parse`]
    /// refuses an SAE ID equal to a KME ID), so a certificate's Common Name names one role.
    pub fn role_of(&self, id: &str) -> Option<Role> {
        if self.sae_home(id).is_some() {
            Some(Role::Sae)
        } else if kme_id_use(id, &self.id, &self.links, &self.remote_saes).is_some() {
            Some(Role::Kme)
        } else {
            None
        }
    }

    /// Whether `id` is the peer of one of this KME's links.
    pub fn is_neighbour(&self, id: &str) -> bool {
        self.links.iter().any(|l| l.peer == id)
    }

    /// Where `sae` is; `None` if this KME does not know it.
    pub fn sae_home(&self, sae: &str) -> Option<SaeHome<'_>> {
        if self.saes.iter().any(|s| s == sae) {
            return Some(SaeHome::Local);
        }
        self.remote_saes
            .iter()
            .find(|r| r.id == sae)
            .map(SaeHome::Remote)
    }
}

/// The role of an ID (a certificate's Common Name) in a KME's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A secure application entity: calls the ETSI GS QKD 014 API.
    Sae,
    /// A key management entity: calls the KME-to-KME endpoints (if it is a link neighbour).
    Kme,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sae => "SAE",
            Self::Kme => "KME",
        })
    }
}

/// Where `id` is configured as a KME ID (this KME, the peer of a link, a remote SAE's KME or
/// a hop of its route), in words for a message; `None` if it is not a KME ID.
fn kme_id_use(id: &str, me: &str, links: &[LinkConfig], remote: &[RemoteSae]) -> Option<String> {
    if id == me {
        return Some("kme.id".into());
    }
    if let Some(i) = links.iter().position(|l| l.peer == id) {
        return Some(format!("link[{i}].peer"));
    }
    if let Some(i) = remote.iter().position(|r| r.kme == id) {
        return Some(format!("remote_sae[{i}].kme"));
    }
    let i = remote
        .iter()
        .position(|r| r.route.iter().flatten().any(|h| h == id))?;
    Some(format!("remote_sae[{i}].route"))
}

/// A limit of so many units (keys or bits) per period, enforced as a token bucket that
/// holds at most `amount` and refills `amount` per `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerPeriod {
    /// Units per period.
    pub amount: u64,
    /// The period.
    pub period: Duration,
    /// As written in the config (`"10/s"`, `"1Mbit/h"`), for messages.
    pub written: String,
}

/// Rate and volume limits of an SAE or a pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quota {
    /// Keys per period (`rate = "10/s"`).
    pub rate_keys: Option<PerPeriod>,
    /// Key bits per period (`volume = "1Mbit/h"`).
    pub volume_bits: Option<PerPeriod>,
}

/// A configured SAE pair: `master` may get keys for `slave` with `enc_keys`, and `slave`
/// may fetch them with `dec_keys`; with `both_ways`, the reverse too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaePair {
    /// The master SAE.
    pub master: String,
    /// The slave SAE.
    pub slave: String,
    /// The slave may be master too.
    pub both_ways: bool,
    /// The pair's limits (shared by both directions).
    pub quota: Quota,
}

impl SaePair {
    /// Whether this pair lets `master` get keys for `slave`.
    pub fn allows(&self, master: &str, slave: &str) -> bool {
        (self.master == master && self.slave == slave)
            || (self.both_ways && self.master == slave && self.slave == master)
    }
}

/// The limits the ETSI 014 status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// Default key size, bits.
    pub default_key_size: u32,
    /// Smallest key size, bits.
    pub min_key_size: u32,
    /// Largest key size, bits.
    pub max_key_size: u32,
    /// Most keys per request.
    pub max_key_per_request: u32,
    /// Most keys (of the default size) a pool holds.
    pub max_key_count: u64,
}

/// An SAE at another KME: which KME hosts it, and how keys for it travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSae {
    /// The SAE ID.
    pub id: String,
    /// The KME that hosts it (`kme`, or the last KME of `route`).
    pub kme: String,
    /// A configured route that overrides the computed one (`route`): KME IDs from the
    /// neighbour to [`RemoteSae::kme`]. `None`: routes are computed from the link state.
    pub route: Option<Vec<String>>,
    /// Whole keys over one path, or XOR shares over node-disjoint paths (`relay`, `paths`).
    pub relay: RelayMode,
}

/// How keys for a remote SAE are relayed (`[[remote_sae]] relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// `"single"` (the default): each key whole over one path; every KME on it sees the key.
    Single,
    /// `"multipath"`: each key split into `paths` XOR shares, each over its own path, the
    /// paths sharing no KME but the two ends; no single trusted node sees the key.
    Multipath {
        /// Node-disjoint paths, one share each (`paths`, 2 by default).
        paths: usize,
    },
}

/// Most node-disjoint paths a multipath relay may ask for (`[[remote_sae]] paths`).
pub const MULTIPATH_PATHS_MAX: usize = 4;

/// Where an SAE is, as this KME's config knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaeHome<'a> {
    /// Attached to this KME (`[[sae]]`).
    Local,
    /// Attached to another KME (`[[remote_sae]]`).
    Remote(&'a RemoteSae),
}

/// Which end of a link generates its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkRole {
    /// Runs the key source and pushes blocks to the follower.
    Leader,
    /// Receives blocks from the leader.
    Follower,
}

/// Where a link's keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A CSPRNG at a configured rate: NOT QKD (tests and demos).
    Random,
    /// The GG02 CV-QKD link simulator: Alice in the leader, Bob and the fiber in the
    /// follower, the pulses and the classical messages as real traffic between them. A
    /// simulation: its keys have no quantum security.
    Cvqkd,
}

/// Modulation variance: fixed, or chosen from the nominal channel to land on the best code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Modulation {
    /// Chosen at start from the configured fiber and detector.
    Auto,
    /// V_A in SNU.
    Fixed(f64),
}

/// The simulated CV-QKD device pair of a `source = "cvqkd"` link (`[link.cvqkd]`); both
/// ends must configure the same values.
#[derive(Debug, Clone, PartialEq)]
pub struct CvqkdLinkConfig {
    /// Fiber length, km.
    pub distance_km: f64,
    /// Fiber attenuation, dB/km.
    pub loss_db_per_km: f64,
    /// Excess noise at the channel input, SNU.
    pub xi: f64,
    /// Bob's detector efficiency η.
    pub eta: f64,
    /// Bob's electronic noise, SNU.
    pub v_el: f64,
    /// Alice's modulation variance.
    pub va: Modulation,
    /// Homodyne or heterodyne.
    pub detection: crate::cvqkd::Detection,
    /// Pulses per block N.
    pub block_size: u64,
    /// Pulses disclosed for parameter estimation m.
    pub pe_samples: u64,
    /// Every ε of the finite-size bound.
    pub epsilon: f64,
    /// Optical symbol rate, pulses per second (blocks never start faster than this allows).
    pub symbol_rate_hz: f64,
    /// LDPC frame length, bits.
    pub frame_bits: usize,
    /// TCP port the follower receives the pulses on (the fiber's far end).
    pub quantum_port: u16,
    /// Leader only: where the pulses are sent, if not `peer IP:quantum_port` (a splice in
    /// the fiber, e.g. an eavesdropper in a test).
    pub quantum_url: Option<SocketAddr>,
}

/// A QKD link to a neighbour KME.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The neighbour's KME ID (the CN it presents).
    pub peer: String,
    /// The neighbour's API address.
    pub addr: SocketAddr,
    /// This end's role.
    pub role: LinkRole,
    /// Key source (used by the leader).
    pub source: SourceKind,
    /// Key bits per second the source produces.
    pub rate_bits_per_second: u64,
    /// The link's pool size, bits: each direction may hold half of it, and the leader
    /// stops generating while both directions hold at least 7/8 of their half.
    pub pool_max_bits: u64,
    /// The simulated device pair, for `source = "cvqkd"`.
    pub cvqkd: Option<CvqkdLinkConfig>,
}

/// Reads and validates the KME config at `path`.
pub fn load(path: &Path) -> Result<KmeConfig, KmeConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates KME config `text` read from `origin` (relative paths are taken from its
/// directory).
pub fn parse(text: &str, origin: &Path) -> Result<KmeConfig, KmeConfigError> {
    let src = Source { text, origin };
    let raw: raw::Raw = src.parse_toml()?;
    validate::config(&raw, &src)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid config: one local SAE, one remote SAE behind a random-source link,
    /// one pair with limits.
    pub(super) const GOOD: &str = r#"
[kme]
id = "kme-a"
listen = "127.0.0.1:8443"
data_dir = "data"
ca_file = "pki/ca.pem"
cert_file = "pki/kme-a.pem"
key_file = "pki/kme-a.key"

[[sae]]
id = "sae-a"

[[remote_sae]]
id = "sae-b"
route = ["kme-b"]

[[link]]
peer = "kme-b"
url = "https://127.0.0.1:8444"
role = "leader"
source = "random"
rate_bits_per_second = 1000

[[sae_pair]]
master = "sae-a"
slave = "sae-b"
both_ways = true
rate = "10/s"
volume = "2Mbit/h"
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let cfg = parse(GOOD, Path::new("/etc/q/kme.toml")).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/etc/q/data"));
        assert_eq!(cfg.limits.default_key_size, 256);
        assert_eq!(cfg.links[0].role, LinkRole::Leader);
        assert_eq!(cfg.remote_saes[0].route, Some(vec!["kme-b".to_string()]));
        assert_eq!(cfg.remote_saes[0].kme, "kme-b");
    }

    #[test]
    fn the_madrid_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/madrid");
        for node in ["hospital-a", "ring-1", "ring-2", "hospital-b"] {
            let cfg = load(&dir.join(format!("kme-{node}.toml"))).unwrap();
            for (m, s) in [
                ("sae-hospital-a", "sae-hospital-b"),
                ("sae-hospital-b", "sae-hospital-a"),
            ] {
                assert!(cfg.pair(m, s).is_some(), "kme-{node}: {m} > {s}");
            }
        }
    }

    /// The Madrid configs describe one network: every link is configured at both ends with
    /// opposite roles and the same fiber, every KME knows where both hospitals' SAEs are and
    /// relays their pair, and the two hospitals are joined by two node-disjoint paths (the
    /// ring and the second path through ring-3), so keys can be rerouted or sent in shares.
    #[test]
    fn the_madrid_kmes_agree_on_one_network_with_two_paths() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/madrid");
        let ids = [
            "kme-hospital-a",
            "kme-ring-1",
            "kme-ring-2",
            "kme-ring-3",
            "kme-hospital-b",
        ];
        let cfgs: Vec<KmeConfig> = ids
            .iter()
            .map(|id| load(&dir.join(format!("{id}.toml"))).unwrap())
            .collect();
        let hosts = [
            ("sae-hospital-a", "kme-hospital-a"),
            ("sae-hospital-b", "kme-hospital-b"),
        ];
        let mut adverts =
            crate::kme::topology::database::LinkStateDb::new(std::time::Duration::from_secs(60));
        for cfg in &cfgs {
            for l in &cfg.links {
                let other = cfgs.iter().find(|c| c.id == l.peer).expect("peer config");
                let back = other.links.iter().find(|b| b.peer == cfg.id);
                let back = back.unwrap_or_else(|| panic!("{} -> {}: no link back", cfg.id, l.peer));
                assert_ne!(back.role, l.role, "{} -> {}: roles", cfg.id, l.peer);
                assert_eq!(back.cvqkd, l.cvqkd, "{} -> {}: fiber", cfg.id, l.peer);
            }
            for (sae, kme) in hosts {
                match cfg.sae_home(sae) {
                    Some(SaeHome::Local) => assert_eq!(cfg.id, kme),
                    Some(SaeHome::Remote(r)) => assert_eq!(r.kme, kme, "{}: {sae}", cfg.id),
                    None => panic!("{} does not know {sae}", cfg.id),
                }
            }
            assert!(cfg.pair("sae-hospital-a", "sae-hospital-b").is_some());
            let links = cfg
                .links
                .iter()
                .map(|l| crate::kme::topology::LinkReport {
                    peer: l.peer.as_str().into(),
                    send_bits: l.pool_max_bits,
                    receive_bits: l.pool_max_bits,
                    key_rate_bps: 0.0,
                    alarm: false,
                    excess_noise: None,
                })
                .collect();
            let advert = crate::kme::topology::LinkStateAdvert {
                origin: cfg.id.as_str().into(),
                seq: 1,
                links,
            };
            adverts.offer(advert, std::time::Instant::now()).unwrap();
        }
        use crate::kme::topology::paths::{Graph, best_path, disjoint_paths};
        let g = Graph::from_db(&adverts);
        let (a, b) = ("kme-hospital-a".into(), "kme-hospital-b".into());
        let two = disjoint_paths(&g, &a, &b, 2, 256).unwrap();
        assert_eq!(two.len(), 2);
        // with every pool full, the ring (the larger pools) is the preferred path
        let best = best_path(&g, &a, &b, 256).unwrap();
        assert_eq!(best.route(), ["kme-ring-1", "kme-ring-2", "kme-hospital-b"]);
    }
}
