//! The KME's TOML configuration (docs/kme.md): the raw schema (`deny_unknown_fields`, spans
//! kept for messages) validated into [`KmeConfig`]. Every refusal names `FILE:LINE:COL`
//! and the field path, as the daemon's config does.

use crate::config::{ConfigError, Location};
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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
        if self.sae_route(id).is_some() {
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

    /// Where `sae` is: `None` if this KME does not know it, `Some(None)` if it is attached
    /// here, `Some(Some(route))` for a remote SAE.
    pub fn sae_route(&self, sae: &str) -> Option<Option<&[String]>> {
        if self.saes.iter().any(|s| s == sae) {
            return Some(None);
        }
        let r = self.remote_saes.iter().find(|r| r.id == sae)?;
        Some(Some(&r.route))
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

/// Where `id` is configured as a KME ID (this KME, the peer of a link, a hop of a remote
/// SAE's route), in words for a message; `None` if it is not a KME ID.
fn kme_id_use(id: &str, me: &str, links: &[LinkConfig], remote: &[RemoteSae]) -> Option<String> {
    if id == me {
        return Some("kme.id".into());
    }
    if let Some(i) = links.iter().position(|l| l.peer == id) {
        return Some(format!("link[{i}].peer"));
    }
    let i = remote
        .iter()
        .position(|r| r.route.iter().any(|h| h == id))?;
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

/// An SAE at another KME and the static route of KMEs to it (the last hosts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSae {
    /// The SAE ID.
    pub id: String,
    /// KME IDs from the neighbour to the SAE's KME.
    pub route: Vec<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    kme: Spanned<RawKme>,
    #[serde(default)]
    sae: Vec<Spanned<RawSae>>,
    #[serde(default)]
    remote_sae: Vec<Spanned<RawRemoteSae>>,
    #[serde(default)]
    sae_pair: Vec<Spanned<RawPair>>,
    #[serde(default)]
    link: Vec<Spanned<RawLink>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    master: Spanned<String>,
    slave: Spanned<String>,
    #[serde(default)]
    both_ways: bool,
    rate: Option<Spanned<String>>,
    volume: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKme {
    id: Spanned<String>,
    listen: Spanned<String>,
    data_dir: String,
    ca_file: String,
    cert_file: String,
    key_file: String,
    default_key_size: Option<Spanned<u32>>,
    min_key_size: Option<Spanned<u32>>,
    max_key_size: Option<Spanned<u32>>,
    max_key_per_request: Option<Spanned<u32>>,
    max_key_count: Option<Spanned<u64>>,
    status_log_seconds: Option<u64>,
    pending_key_expiry: Option<Spanned<String>>,
    max_connections: Option<Spanned<u64>>,
    max_connections_per_source: Option<Spanned<u64>>,
    tls_handshake_timeout: Option<Spanned<String>>,
    header_read_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSae {
    id: Spanned<String>,
    rate: Option<Spanned<String>>,
    volume: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteSae {
    id: Spanned<String>,
    route: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    peer: Spanned<String>,
    url: Spanned<String>,
    role: LinkRole,
    source: Option<SourceKind>,
    rate_bits_per_second: Option<Spanned<u64>>,
    pool_max_bits: Option<Spanned<u64>>,
    cvqkd: Option<Spanned<RawCvqkd>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCvqkd {
    distance_km: f64,
    loss_db_per_km: Option<f64>,
    xi: Option<f64>,
    eta: Option<f64>,
    v_el: Option<f64>,
    va: Option<Spanned<toml::Value>>,
    detection: Option<crate::cvqkd::Detection>,
    block_size: Option<u64>,
    pe_samples: Option<u64>,
    epsilon: Option<f64>,
    symbol_rate_hz: Option<f64>,
    frame_bits: Option<usize>,
    quantum_port: Option<u16>,
    quantum_url: Option<Spanned<String>>,
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
    let raw: Raw = toml::from_str(text).map_err(|e| crate::config::toml_error(&e, text, origin))?;
    let v = Validator { text, origin };
    let kme = raw.kme.get_ref();
    let (saes, sae_quotas) = v.saes(&raw.sae)?;
    let links = v.links(&raw.link)?;
    let id = v.id(&kme.id, "kme.id")?;
    let remote_saes = v.remote_saes(&raw.remote_sae, &saes, &links, &id)?;
    v.sae_ids_are_not_kme_ids(&raw, &id, &links, &remote_saes)?;
    let pairs = v.pairs(&raw.sae_pair, &saes, &remote_saes)?;
    let pending_key_expiry = match &kme.pending_key_expiry {
        None => DEFAULT_PENDING_KEY_EXPIRY,
        Some(s) => v.expiry(s)?,
    };
    let cfg = KmeConfig {
        id,
        listen: v.socket_addr(&kme.listen, "kme.listen")?,
        data_dir: v.resolve(&kme.data_dir),
        ca_file: v.resolve(&kme.ca_file),
        cert_file: v.resolve(&kme.cert_file),
        key_file: v.resolve(&kme.key_file),
        limits: v.limits(kme, raw.kme.span())?,
        status_log_seconds: kme.status_log_seconds.unwrap_or(10),
        remote_saes,
        saes,
        sae_quotas,
        pairs,
        pending_key_expiry,
        links,
        connections: v.connections(kme)?,
    };
    Ok(cfg)
}

/// Splits `"N/PERIOD"` with an optional unit after N (`units`: suffix, multiplier).
fn parse_per_period(s: &str, units: &[(&str, u64)]) -> Option<PerPeriod> {
    let (amount, period) = s.trim().split_once('/')?;
    let amount = amount.trim();
    let digits = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let (n, unit) = amount.split_at(digits);
    let mult = units.iter().find(|(u, _)| *u == unit.trim())?.1;
    let amount = n.parse::<u64>().ok()?.checked_mul(mult)?;
    let period = match period.trim() {
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        _ => return None,
    };
    (amount > 0).then(|| PerPeriod {
        amount,
        period,
        written: s.trim().to_string(),
    })
}

/// `"90s"`, `"10m"`, `"2h"`, `"1d"`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

/// The port a followed CV-QKD link receives its pulses on.
fn follower_quantum_port(l: &LinkConfig) -> Option<u16> {
    (l.role == LinkRole::Follower).then_some(l.cvqkd.as_ref()?.quantum_port)
}

struct Validator<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, field: impl Into<String>, problem: String) -> KmeConfigError {
        KmeConfigError::Invalid {
            at: Location::at_span(self.origin, self.text, &span),
            field: field.into(),
            problem,
        }
    }

    fn resolve(&self, written: &str) -> PathBuf {
        let path = Path::new(written);
        match self.origin.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    fn id(&self, id: &Spanned<String>, field: &str) -> Result<String, KmeConfigError> {
        let s = id.get_ref();
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if !ok {
            let p = format!("'{s}' is not a valid ID (ASCII letters, digits, '-', '.', '_', ':')");
            return Err(self.err(id.span(), field, p));
        }
        Ok(s.clone())
    }

    fn socket_addr(&self, s: &Spanned<String>, field: &str) -> Result<SocketAddr, KmeConfigError> {
        s.get_ref().parse().map_err(|_| {
            let p = format!("'{}' is not IP:PORT or [IPv6]:PORT", s.get_ref());
            self.err(s.span(), field, p)
        })
    }

    fn limits(&self, kme: &RawKme, span: Range<usize>) -> Result<KeyLimits, KmeConfigError> {
        let get = |v: &Option<Spanned<u32>>, d: u32| v.as_ref().map_or(d, |s| *s.get_ref());
        let span_of = |v: &Option<Spanned<u32>>| v.as_ref().map_or(span.clone(), |s| s.span());
        let limits = KeyLimits {
            default_key_size: get(&kme.default_key_size, 256),
            min_key_size: get(&kme.min_key_size, 64),
            max_key_size: get(&kme.max_key_size, 1024),
            max_key_per_request: get(&kme.max_key_per_request, 128),
            max_key_count: kme.max_key_count.as_ref().map_or(100_000, |s| *s.get_ref()),
        };
        for (value, raw, field) in [
            (limits.min_key_size, &kme.min_key_size, "kme.min_key_size"),
            (limits.max_key_size, &kme.max_key_size, "kme.max_key_size"),
            (
                limits.default_key_size,
                &kme.default_key_size,
                "kme.default_key_size",
            ),
        ] {
            if value == 0 || value % 8 != 0 || value > MAX_KEY_SIZE_LIMIT_BITS {
                let p = format!(
                    "{value} bits: key sizes are multiples of 8 in 8..={MAX_KEY_SIZE_LIMIT_BITS}"
                );
                return Err(self.err(span_of(raw), field, p));
            }
        }
        self.check_order(&limits, kme, &span)?;
        Ok(limits)
    }

    fn check_order(
        &self,
        l: &KeyLimits,
        kme: &RawKme,
        span: &Range<usize>,
    ) -> Result<(), KmeConfigError> {
        let span_of = |v: &Option<Spanned<u32>>| v.as_ref().map_or(span.clone(), |s| s.span());
        if !(l.min_key_size..=l.max_key_size).contains(&l.default_key_size) {
            let p = format!(
                "{} is not within min_key_size..=max_key_size ({}..={})",
                l.default_key_size, l.min_key_size, l.max_key_size
            );
            return Err(self.err(span_of(&kme.default_key_size), "kme.default_key_size", p));
        }
        if !(1..=MAX_KEY_PER_REQUEST_LIMIT).contains(&l.max_key_per_request) {
            let p = format!(
                "{} is out of range (1..={MAX_KEY_PER_REQUEST_LIMIT})",
                l.max_key_per_request
            );
            let s = span_of(&kme.max_key_per_request);
            return Err(self.err(s, "kme.max_key_per_request", p));
        }
        if l.max_key_count == 0 || l.max_key_count > u64::from(u32::MAX) {
            let s = kme
                .max_key_count
                .as_ref()
                .map_or(span.clone(), |s| s.span());
            let p = format!("{} is out of range (1..={})", l.max_key_count, u32::MAX);
            return Err(self.err(s, "kme.max_key_count", p));
        }
        Ok(())
    }

    fn saes(&self, raw: &[Spanned<RawSae>]) -> Result<(Vec<String>, Vec<Quota>), KmeConfigError> {
        let mut out: Vec<String> = Vec::new();
        let mut quotas = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let field = format!("sae[{i}].id");
            let id = self.id(&s.get_ref().id, &field)?;
            if out.contains(&id) {
                let p = format!("SAE '{id}' is listed twice");
                return Err(self.err(s.get_ref().id.span(), field, p));
            }
            out.push(id);
            let r = s.get_ref();
            quotas.push(self.quota(&format!("sae[{i}]"), &r.rate, &r.volume)?);
        }
        Ok((out, quotas))
    }

    fn quota(
        &self,
        at: &str,
        rate: &Option<Spanned<String>>,
        volume: &Option<Spanned<String>>,
    ) -> Result<Quota, KmeConfigError> {
        let mut q = Quota::default();
        if let Some(r) = rate {
            let parsed = parse_per_period(r.get_ref(), &[("", 1)]).ok_or_else(|| {
                let p = format!(
                    "'{}' is not KEYS/PERIOD (e.g. \"10/s\", \"600/min\"; periods s, min, h, d; KEYS above 0)",
                    r.get_ref()
                );
                self.err(r.span(), format!("{at}.rate"), p)
            })?;
            q.rate_keys = Some(parsed);
        }
        if let Some(v) = volume {
            let units = [
                ("bit", 1),
                ("kbit", 1_000),
                ("Mbit", 1_000_000),
                ("Gbit", 1_000_000_000),
            ];
            let parsed = parse_per_period(v.get_ref(), &units).ok_or_else(|| {
                let p = format!(
                    "'{}' is not BITS/PERIOD (e.g. \"1Mbit/h\", \"256kbit/min\"; units bit, kbit, Mbit, Gbit; periods s, min, h, d; above 0)",
                    v.get_ref()
                );
                self.err(v.span(), format!("{at}.volume"), p)
            })?;
            q.volume_bits = Some(parsed);
        }
        Ok(q)
    }

    fn expiry(&self, s: &Spanned<String>) -> Result<Duration, KmeConfigError> {
        match parse_duration(s.get_ref()) {
            Some(d) if !d.is_zero() && d <= MAX_PENDING_KEY_EXPIRY => Ok(d),
            _ => {
                let p = format!(
                    "'{}' is not a duration in 1s..=30d (e.g. \"90s\", \"10m\", \"2h\", \"1d\")",
                    s.get_ref()
                );
                Err(self.err(s.span(), "kme.pending_key_expiry", p))
            }
        }
    }

    fn connections(&self, kme: &RawKme) -> Result<ConnectionLimits, KmeConfigError> {
        let d = ConnectionLimits::default();
        let count = |v: &Option<Spanned<u64>>, field: &str, default: usize| match v {
            None => Ok(default),
            Some(n) if (1..=1_000_000).contains(n.get_ref()) => Ok(*n.get_ref() as usize),
            Some(n) => {
                let p = format!("{} is out of range (1..=1000000)", n.get_ref());
                Err(self.err(n.span(), format!("kme.{field}"), p))
            }
        };
        let timeout = |v: &Option<Spanned<String>>, field: &str, default: Duration| match v {
            None => Ok(default),
            Some(s) => match parse_duration(s.get_ref()) {
                Some(t) if !t.is_zero() && t <= MAX_CONNECTION_TIMEOUT => Ok(t),
                _ => {
                    let p = format!(
                        "'{}' is not a duration in 1s..=1h (e.g. \"5s\", \"2m\")",
                        s.get_ref()
                    );
                    Err(self.err(s.span(), format!("kme.{field}"), p))
                }
            },
        };
        Ok(ConnectionLimits {
            max_connections: count(&kme.max_connections, "max_connections", d.max_connections)?,
            max_connections_per_source: count(
                &kme.max_connections_per_source,
                "max_connections_per_source",
                d.max_connections_per_source,
            )?,
            tls_handshake_timeout: timeout(
                &kme.tls_handshake_timeout,
                "tls_handshake_timeout",
                d.tls_handshake_timeout,
            )?,
            header_read_timeout: timeout(
                &kme.header_read_timeout,
                "header_read_timeout",
                d.header_read_timeout,
            )?,
            idle_timeout: timeout(&kme.idle_timeout, "idle_timeout", d.idle_timeout)?,
        })
    }

    /// Refuses an SAE ID (`[[sae]]`, `[[remote_sae]]`, either end of a `[[sae_pair]]`) that
    /// is also a KME ID: roles are told apart by the certificate's Common Name alone.
    fn sae_ids_are_not_kme_ids(
        &self,
        raw: &Raw,
        me: &str,
        links: &[LinkConfig],
        remote: &[RemoteSae],
    ) -> Result<(), KmeConfigError> {
        let saes = raw
            .sae
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("sae[{i}].id"), &s.get_ref().id));
        let remote_ids = raw
            .remote_sae
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("remote_sae[{i}].id"), &r.get_ref().id));
        let pair_ends = raw.sae_pair.iter().enumerate().flat_map(|(i, p)| {
            let p = p.get_ref();
            [
                (format!("sae_pair[{i}].master"), &p.master),
                (format!("sae_pair[{i}].slave"), &p.slave),
            ]
        });
        for (field, id) in saes.chain(remote_ids).chain(pair_ends) {
            if let Some(used) = kme_id_use(id.get_ref(), me, links, remote) {
                let p = format!(
                    "'{}' is a KME ID ({used}); an SAE may not share a KME's ID (the certificate's Common Name tells the roles apart)",
                    id.get_ref()
                );
                return Err(self.err(id.span(), field, p));
            }
        }
        Ok(())
    }

    fn pairs(
        &self,
        raw: &[Spanned<RawPair>],
        saes: &[String],
        remote: &[RemoteSae],
    ) -> Result<Vec<SaePair>, KmeConfigError> {
        let mut out: Vec<SaePair> = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let r = p.get_ref();
            let mut ends = Vec::new();
            for (which, id) in [("master", &r.master), ("slave", &r.slave)] {
                let field = format!("sae_pair[{i}].{which}");
                let s = self.id(id, &field)?;
                if !saes.contains(&s) && !remote.iter().any(|x| x.id == s) {
                    let problem =
                        format!("'{s}' is neither an [[sae]] nor a [[remote_sae]] of this KME");
                    return Err(self.err(id.span(), field, problem));
                }
                ends.push(s);
            }
            let slave = ends.pop().unwrap_or_default();
            let master = ends.pop().unwrap_or_default();
            if master == slave {
                let problem = "an SAE cannot be paired with itself".to_string();
                return Err(self.err(r.slave.span(), format!("sae_pair[{i}].slave"), problem));
            }
            let pair = SaePair {
                quota: self.quota(&format!("sae_pair[{i}]"), &r.rate, &r.volume)?,
                master,
                slave,
                both_ways: r.both_ways,
            };
            let overlaps = out.iter().position(|o| {
                o.allows(&pair.master, &pair.slave)
                    || (pair.both_ways && o.allows(&pair.slave, &pair.master))
            });
            if let Some(j) = overlaps {
                let problem = format!(
                    "'{}' and '{}' are already paired by sae_pair[{j}]",
                    pair.master, pair.slave
                );
                return Err(self.err(p.span(), format!("sae_pair[{i}]"), problem));
            }
            out.push(pair);
        }
        Ok(out)
    }

    fn remote_saes(
        &self,
        raw: &[Spanned<RawRemoteSae>],
        saes: &[String],
        links: &[LinkConfig],
        me: &str,
    ) -> Result<Vec<RemoteSae>, KmeConfigError> {
        let mut out: Vec<RemoteSae> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let r = r.get_ref();
            let field = format!("remote_sae[{i}].id");
            let id = self.id(&r.id, &field)?;
            if saes.contains(&id) || out.iter().any(|o| o.id == id) {
                let p = format!("SAE '{id}' is listed twice");
                return Err(self.err(r.id.span(), field, p));
            }
            let route = r.route.get_ref().clone();
            let rfield = format!("remote_sae[{i}].route");
            match route.first() {
                None => return Err(self.err(r.route.span(), rfield, "must not be empty".into())),
                Some(first) if !links.iter().any(|l| &l.peer == first) => {
                    let p = format!("the first hop '{first}' is not the peer of any [[link]]");
                    return Err(self.err(r.route.span(), rfield, p));
                }
                _ => {}
            }
            for (j, hop) in route.iter().enumerate() {
                if hop == me || route[..j].contains(hop) {
                    let p = format!("'{hop}' appears twice on the path (routes may not loop)");
                    return Err(self.err(r.route.span(), rfield, p));
                }
            }
            out.push(RemoteSae { id, route });
        }
        Ok(out)
    }

    fn links(&self, raw: &[Spanned<RawLink>]) -> Result<Vec<LinkConfig>, KmeConfigError> {
        let mut out: Vec<LinkConfig> = Vec::new();
        for (i, l) in raw.iter().enumerate() {
            let link = self.link(i, l.get_ref())?;
            if out.iter().any(|o| o.peer == link.peer) {
                let p = format!("a link to '{}' is configured twice", link.peer);
                return Err(self.err(l.get_ref().peer.span(), format!("link[{i}].peer"), p));
            }
            if let Some(port) = follower_quantum_port(&link)
                && out.iter().any(|o| follower_quantum_port(o) == Some(port))
            {
                let p = format!(
                    "quantum_port {port} is already the quantum port of another followed link"
                );
                return Err(self.err(l.span(), format!("link[{i}].cvqkd.quantum_port"), p));
            }
            out.push(link);
        }
        Ok(out)
    }

    fn link(&self, i: usize, l: &RawLink) -> Result<LinkConfig, KmeConfigError> {
        let rate = l.rate_bits_per_second.as_ref();
        let rate_bits_per_second = rate.map_or(100_000, |r| *r.get_ref());
        if l.role == LinkRole::Leader && rate_bits_per_second == 0 {
            let span = rate.map_or(l.peer.span(), |r| r.span());
            let p = "a leader's key source needs a rate above 0".to_string();
            return Err(self.err(span, format!("link[{i}].rate_bits_per_second"), p));
        }
        let source = l.source.unwrap_or(SourceKind::Random);
        Ok(LinkConfig {
            peer: self.id(&l.peer, &format!("link[{i}].peer"))?,
            addr: self.url(&l.url, &format!("link[{i}].url"))?,
            role: l.role,
            source,
            rate_bits_per_second,
            pool_max_bits: l.pool_max_bits.as_ref().map_or(1 << 26, |p| *p.get_ref()),
            cvqkd: self.cvqkd_of(i, l, source)?,
        })
    }

    fn cvqkd_of(
        &self,
        i: usize,
        l: &RawLink,
        source: SourceKind,
    ) -> Result<Option<CvqkdLinkConfig>, KmeConfigError> {
        let field = format!("link[{i}].cvqkd");
        match (source, &l.cvqkd) {
            (SourceKind::Cvqkd, Some(raw)) => self.cvqkd(&field, raw).map(Some),
            (SourceKind::Cvqkd, None) => {
                let p = "source = \"cvqkd\" needs a [link.cvqkd] table (at least distance_km)";
                Err(self.err(l.peer.span(), field, p.into()))
            }
            (SourceKind::Random, Some(raw)) => {
                let p = "a [link.cvqkd] table needs source = \"cvqkd\"".to_string();
                Err(self.err(raw.span(), field, p))
            }
            (SourceKind::Random, None) => Ok(None),
        }
    }

    fn cvqkd(
        &self,
        field: &str,
        raw: &Spanned<RawCvqkd>,
    ) -> Result<CvqkdLinkConfig, KmeConfigError> {
        let r = raw.get_ref();
        let block_size = r.block_size.unwrap_or(super::cvqkd::DEFAULT_BLOCK_SIZE);
        let cfg = CvqkdLinkConfig {
            distance_km: r.distance_km,
            loss_db_per_km: r.loss_db_per_km.unwrap_or(0.2),
            xi: r.xi.unwrap_or(0.01),
            eta: r.eta.unwrap_or(0.6),
            v_el: r.v_el.unwrap_or(0.1),
            va: self.modulation(field, r.va.as_ref())?,
            detection: r.detection.unwrap_or(crate::cvqkd::Detection::Homodyne),
            block_size,
            pe_samples: r.pe_samples.unwrap_or(block_size / 2),
            epsilon: r.epsilon.unwrap_or(1e-10),
            symbol_rate_hz: r
                .symbol_rate_hz
                .unwrap_or(super::cvqkd::DEFAULT_SYMBOL_RATE_HZ),
            frame_bits: r
                .frame_bits
                .unwrap_or(crate::cvqkd::sim::codes::DEFAULT_FRAME_BITS),
            quantum_port: r.quantum_port.unwrap_or(super::cvqkd::DEFAULT_QUANTUM_PORT),
            quantum_url: match &r.quantum_url {
                Some(u) => Some(self.socket_addr(u, &format!("{field}.quantum_url"))?),
                None => None,
            },
        };
        super::cvqkd::validate(&cfg)
            .map_err(|problem| self.err(raw.span(), field.to_string(), problem))?;
        Ok(cfg)
    }

    fn modulation(
        &self,
        field: &str,
        raw: Option<&Spanned<toml::Value>>,
    ) -> Result<Modulation, KmeConfigError> {
        let Some(v) = raw else {
            return Ok(Modulation::Auto);
        };
        match v.get_ref() {
            toml::Value::String(s) if s == "auto" => Ok(Modulation::Auto),
            toml::Value::Float(f) => Ok(Modulation::Fixed(*f)),
            toml::Value::Integer(n) => Ok(Modulation::Fixed(*n as f64)),
            other => {
                let p = format!("'{other}' is neither \"auto\" nor a variance in SNU");
                Err(self.err(v.span(), format!("{field}.va"), p))
            }
        }
    }

    fn url(&self, url: &Spanned<String>, field: &str) -> Result<SocketAddr, KmeConfigError> {
        let s = url.get_ref();
        let hostport = s.strip_prefix("https://").map(|r| r.trim_end_matches('/'));
        hostport.and_then(|h| h.parse().ok()).ok_or_else(|| {
            let p = format!("'{s}' is not https://IP:PORT (the peer is verified by its ID)");
            self.err(url.span(), field, p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
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
        assert_eq!(cfg.remote_saes[0].route, vec!["kme-b".to_string()]);
    }

    #[test]
    fn cvqkd_links_are_checked_and_name_the_key() {
        let cv = GOOD.replace(
            "source = \"random\"\nrate_bits_per_second = 1000",
            "source = \"cvqkd\"\n[link.cvqkd]\ndistance_km = 10.0\nva = \"auto\"",
        );
        let cfg = parse(&cv, Path::new("k.toml")).unwrap();
        let c = cfg.links[0].cvqkd.as_ref().unwrap();
        assert_eq!(cfg.links[0].source, SourceKind::Cvqkd);
        assert_eq!(
            (c.distance_km, c.va, c.quantum_port),
            (10.0, Modulation::Auto, 8444)
        );
        assert_eq!(c.pe_samples, c.block_size / 2);
        let cases = [
            ("va = \"auto\"", "va = \"max\"", "link[0].cvqkd.va"),
            ("distance_km = 10.0", "distance_km = -1.0", "distance_km"),
            ("va = \"auto\"", "va = 4.0\nframe_bits = 100", "frame_bits"),
            ("va = \"auto\"", "symbol_rate_hz = 0.0", "symbol_rate_hz"),
            ("va = \"auto\"", "eta = 1.5", "eta"),
            ("va = \"auto\"", "bogus = 1", "bogus"),
        ];
        for (from, to, field) in cases {
            let e = parse(&cv.replace(from, to), Path::new("k.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field) && e.starts_with("k.toml:"), "{to}: {e}");
        }
        let missing = GOOD.replace("source = \"random\"", "source = \"cvqkd\"");
        let e = parse(&missing, Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a [link.cvqkd] table"), "{e}");
        let stray = cv.replace("source = \"cvqkd\"", "source = \"random\"");
        let e = parse(&stray, Path::new("k.toml")).unwrap_err().to_string();
        assert!(e.contains("needs source = \"cvqkd\""), "{e}");
    }

    #[test]
    fn two_followed_cvqkd_links_cannot_share_a_quantum_port() {
        let follower = |peer: &str, port: u16| {
            format!(
                "\n[[link]]\npeer = \"{peer}\"\nurl = \"https://127.0.0.1:{port}\"\nrole = \"follower\"\nsource = \"cvqkd\"\n[link.cvqkd]\ndistance_km = 5.0\n"
            )
        };
        let base = GOOD
            .split("[[link]]")
            .next()
            .unwrap()
            .replace("[[remote_sae]]\nid = \"sae-b\"\nroute = [\"kme-b\"]\n", "");
        let two = format!("{base}{}{}", follower("kme-b", 1), follower("kme-c", 2));
        let e = parse(&two, Path::new("k.toml")).unwrap_err().to_string();
        assert!(e.contains("link[1].cvqkd.quantum_port"), "{e}");
        let apart = two.replacen(
            "distance_km = 5.0",
            "distance_km = 5.0\nquantum_port = 8445",
            1,
        );
        parse(&apart, Path::new("k.toml")).unwrap();
    }

    #[test]
    fn sae_pairs_limits_and_expiry_parse() {
        let cfg = parse(GOOD, Path::new("k.toml")).unwrap();
        assert_eq!(cfg.pending_key_expiry, DEFAULT_PENDING_KEY_EXPIRY);
        assert_eq!(cfg.pair("sae-b", "sae-a").map(|(i, _)| i), Some(0));
        assert!(cfg.pair("sae-a", "sae-x").is_none());
        let q = &cfg.pairs[0].quota;
        let rate = q.rate_keys.as_ref().unwrap();
        assert_eq!((rate.amount, rate.period), (10, Duration::from_secs(1)));
        let vol = q.volume_bits.as_ref().unwrap();
        assert_eq!(
            (vol.amount, vol.period),
            (2_000_000, Duration::from_secs(3600))
        );
        let t = GOOD.replace(
            "[[sae]]\nid = \"sae-a\"",
            "[[sae]]\nid = \"sae-a\"\nrate = \"600/min\"\nvolume = \"256kbit/d\"",
        );
        let t = t.replace("[kme]", "[kme]\npending_key_expiry = \"90s\"");
        let cfg = parse(&t, Path::new("k.toml")).unwrap();
        assert_eq!(cfg.pending_key_expiry, Duration::from_secs(90));
        let r = cfg.sae_quotas[0].rate_keys.as_ref().unwrap();
        assert_eq!((r.amount, r.period), (600, Duration::from_secs(60)));
        let cases = [
            (
                "rate = \"10/s\"",
                "rate = \"10/week\"",
                "k.toml:28:8: sae_pair[0].rate",
            ),
            ("rate = \"10/s\"", "rate = \"0/s\"", "sae_pair[0].rate"),
            (
                "volume = \"2Mbit/h\"",
                "volume = \"2MB/h\"",
                "sae_pair[0].volume",
            ),
            (
                "slave = \"sae-b\"",
                "slave = \"sae-x\"",
                "k.toml:26:9: sae_pair[0].slave",
            ),
            (
                "slave = \"sae-b\"",
                "slave = \"sae-a\"",
                "sae_pair[0].slave",
            ),
            (
                "[kme]",
                "[kme]\npending_key_expiry = \"0s\"",
                "kme.pending_key_expiry",
            ),
            (
                "[kme]",
                "[kme]\npending_key_expiry = \"10\"",
                "kme.pending_key_expiry",
            ),
            (
                "[kme]",
                "[kme]\npending_key_expiry = \"31d\"",
                "kme.pending_key_expiry",
            ),
            ("both_ways = true", "both_ways = 1", "both_ways"),
            (
                "volume = \"2Mbit/h\"",
                "[[sae_pair]]\nmaster = \"sae-b\"\nslave = \"sae-a\"",
                "already paired by sae_pair[0]",
            ),
        ];
        for (from, to, want) in cases {
            let e = parse(&GOOD.replace(from, to), Path::new("k.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.starts_with("k.toml:"), "{to}: {e}");
        }
    }

    #[test]
    fn connection_limits_parse_and_are_checked() {
        let cfg = parse(GOOD, Path::new("k.toml")).unwrap();
        assert_eq!(cfg.connections, ConnectionLimits::default());
        let t = GOOD.replace(
            "[kme]",
            "[kme]\nmax_connections = 10\nmax_connections_per_source = 3\ntls_handshake_timeout = \"2s\"\nheader_read_timeout = \"3s\"\nidle_timeout = \"2m\"",
        );
        let c = parse(&t, Path::new("k.toml")).unwrap().connections;
        assert_eq!((c.max_connections, c.max_connections_per_source), (10, 3));
        assert_eq!(
            (
                c.tls_handshake_timeout,
                c.header_read_timeout,
                c.idle_timeout
            ),
            (
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(120)
            )
        );
        for (bad, want) in [
            ("max_connections = 0", "kme.max_connections"),
            (
                "max_connections_per_source = -1",
                "max_connections_per_source",
            ),
            (
                "tls_handshake_timeout = \"0s\"",
                "kme.tls_handshake_timeout",
            ),
            ("header_read_timeout = \"2h\"", "kme.header_read_timeout"),
            ("idle_timeout = \"soon\"", "kme.idle_timeout"),
        ] {
            let t = GOOD.replace("[kme]", &format!("[kme]\n{bad}"));
            let e = parse(&t, Path::new("k.toml")).unwrap_err().to_string();
            assert!(e.contains(want) && e.starts_with("k.toml:"), "{bad}: {e}");
        }
    }

    #[test]
    fn routes_that_loop_are_refused() {
        for route in [r#"["kme-b", "kme-a"]"#, r#"["kme-b", "kme-c", "kme-b"]"#] {
            let t = GOOD.replace(r#"route = ["kme-b"]"#, &format!("route = {route}"));
            let e = parse(&t, Path::new("k.toml")).unwrap_err().to_string();
            assert!(
                e.contains("remote_sae[0].route") && e.contains("appears twice"),
                "{e}"
            );
        }
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

    /// The relay check at each hop (src/kme/relay.rs) accepts the Madrid paths: every KME on
    /// a hospital's route has the rest of it as its route to the slave and the previous KME as
    /// its first hop towards the master.
    #[test]
    fn the_madrid_routes_agree_hop_by_hop() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/madrid");
        let load_kme = |id: &str| load(&dir.join(format!("{id}.toml"))).unwrap();
        for (from, master, slave) in [
            ("kme-hospital-a", "sae-hospital-a", "sae-hospital-b"),
            ("kme-hospital-b", "sae-hospital-b", "sae-hospital-a"),
        ] {
            let path = load_kme(from).sae_route(slave).unwrap().unwrap().to_vec();
            let mut prev = from.to_string();
            for (i, hop) in path.iter().enumerate() {
                let cfg = load_kme(hop);
                let rest = cfg.sae_route(slave).unwrap().unwrap_or(&[]);
                assert_eq!(rest, &path[i + 1..], "{hop}: route to {slave}");
                let back = cfg.sae_route(master).unwrap().unwrap();
                assert_eq!(back[0], prev, "{hop}: first hop towards {master}");
                assert!(cfg.pair(master, slave).is_some(), "{hop}: pair");
                prev = hop.clone();
            }
        }
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = GOOD.replace("rate_bits_per_second = 1000", "rate_bits_per_second = 0");
        let e = parse(&bad, Path::new("k.toml")).unwrap_err().to_string();
        assert!(e.starts_with("k.toml:22:24:"), "{e}");
        assert!(e.contains("link[0].rate_bits_per_second"), "{e}");
        let bad = GOOD.replace("[kme]", "[kme]\nbogus = 1");
        let e = parse(&bad, Path::new("k.toml")).unwrap_err().to_string();
        assert!(e.contains("k.toml:3") && e.contains("bogus"), "{e}");
        let bad = GOOD.replace("[kme]", "[kme]\nmin_key_size = 12");
        let e = parse(&bad, Path::new("k.toml")).unwrap_err().to_string();
        assert!(
            e.contains("kme.min_key_size") && e.contains("multiples of 8"),
            "{e}"
        );
        let bad = GOOD.replace("route = [\"kme-b\"]", "route = [\"kme-x\"]");
        let e = parse(&bad, Path::new("k.toml")).unwrap_err().to_string();
        assert!(e.contains("remote_sae[0].route"), "{e}");
    }
}
