//! Config errors: where in which file (line, column, field path) and what is wrong. Every
//! refusal of a config goes through [`ConfigError`], so an operator always gets
//! `FILE:LINE:COL: FIELD: PROBLEM`.

use super::identity_files::IdentityFileError;
use super::units::UnitError;
use crate::cidr::CidrError;
use crate::crypto::aead::UnknownCipher;
use crate::crypto::identity::PublicIdentityError;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in a config file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The config file, as given to [`super::load`] / [`super::parse`].
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters, when known.
    pub column: Option<usize>,
}

impl Location {
    /// The location of byte `offset` of `text` (clamped to the text).
    pub fn at_offset(file: &Path, text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            file: file.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: Some(before[line_start..].chars().count() + 1),
        }
    }

    /// The location of the start of a span.
    pub fn at_span(file: &Path, text: &str, span: &Range<usize>) -> Self {
        Self::at_offset(file, text, span.start)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        match self.column {
            Some(c) => write!(f, ":{c}"),
            None => Ok(()),
        }
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read config: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown or missing key, or a value of the wrong type.
    #[error("{at}: {}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Toml {
        /// Where.
        at: Location,
        /// The field path (`peer[0].allowed_ips[1]`), when the error is inside a field.
        field: Option<String>,
        /// The TOML parser's or schema's message.
        message: String,
    },
    /// A well-formed value that validation refused.
    #[error("{at}: {field}: {problem}")]
    Invalid {
        /// Where.
        at: Location,
        /// The field path (`interface.mtu`, `peer[1].allowed_ips[0]`).
        field: String,
        /// What is wrong with it (boxed: keeps `Result<_, ConfigError>` small).
        problem: Box<Problem>,
    },
    /// A peer configured with this site's own public key (found by [`super::check_identity`]).
    #[error("{}: peer[{index}].public_key: peer '{peer}' has this site's own public key; a site cannot be its own peer", file.display())]
    OwnKey {
        /// The config file.
        file: PathBuf,
        /// The peer's index in the file.
        index: usize,
        /// The peer's name.
        peer: String,
    },
}

impl ConfigError {
    /// Where the error is, unless the file could not be read at all.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } | Self::OwnKey { .. } => None,
            Self::Toml { at, .. } | Self::Invalid { at, .. } => Some(at),
        }
    }

    /// The field path the error is about, when known.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Read { .. } | Self::OwnKey { .. } => None,
            Self::Toml { field, .. } => field.as_deref(),
            Self::Invalid { field, .. } => Some(field),
        }
    }
}

/// What validation found wrong with a value.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// Interface names are what Linux accepts for a network device.
    #[error("'{0}' is not a valid interface name (1-15 bytes of A-Z a-z 0-9 _ . -)")]
    InterfaceName(String),
    /// A required string was empty.
    #[error("must not be empty")]
    Empty,
    /// A peer name with control characters or surrounding whitespace.
    #[error("'{0}' is not a valid peer name (printable characters, no leading or trailing space)")]
    PeerName(String),
    /// An address list with no entries.
    #[error("at least one prefix is required")]
    EmptyList,
    /// A prefix that does not parse.
    #[error("'{value}': {source}")]
    Cidr {
        /// As written.
        value: String,
        /// Why it was refused.
        source: CidrError,
    },
    /// An integer outside its allowed range.
    #[error("{value} is out of range ({min}..={max})")]
    OutOfRange {
        /// As written.
        value: i64,
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// Not an IPv4 or IPv6 address.
    #[error("'{0}' is not an IPv4 or IPv6 address")]
    IpAddress(String),
    /// Not `IP:PORT`.
    #[error("'{0}' is not IP:PORT or [IPv6]:PORT")]
    SocketAddr(String),
    /// A metrics address anyone on the network could reach, without `metrics_public`.
    #[error(
        "{0} is not a loopback address: the metrics show every peer and its traffic to whoever can reach them; listen on 127.0.0.1, or set `metrics_public = true` to serve them there"
    )]
    MetricsNotLoopback(std::net::SocketAddr),
    /// Unknown data-plane cipher.
    #[error(transparent)]
    Cipher(#[from] UnknownCipher),
    /// `interface.offload` is neither `auto` nor `off`.
    #[error("'{0}' is not an offload mode (auto or off)")]
    Offload(String),
    /// A size or duration that does not parse.
    #[error("'{value}': {source}")]
    Unit {
        /// As written.
        value: String,
        /// Why it was refused.
        source: UnitError,
    },
    /// A negative integer where a size or duration is expected.
    #[error("{0} must not be negative")]
    Negative(i64),
    /// A budget below its minimum.
    #[error("{value} is below the minimum of {min}")]
    BelowMinimum {
        /// The value, formatted.
        value: String,
        /// The minimum, formatted.
        min: String,
    },
    /// A budget or timer above its maximum.
    #[error("{value} is above the maximum of {max}")]
    AboveMaximum {
        /// The value, formatted.
        value: String,
        /// The maximum, formatted.
        max: String,
    },
    /// A hard (reject) budget not above the matching soft (rekey) budget.
    #[error("{reject} must be greater than {rekey_field} ({rekey})")]
    RejectNotAboveRekey {
        /// The hard budget, formatted.
        reject: String,
        /// The soft budget's field name.
        rekey_field: &'static str,
        /// The soft budget, formatted.
        rekey: String,
    },
    /// A `[qkd]` key that policies `allow` and `require` need.
    #[error(
        "required when qkd.policy is \"{policy}\" (the KME connection: kme_url, sae_id, ca_file, cert_file, key_file, and peer_sae_id or a peer's qkd_sae_id)"
    )]
    QkdFieldRequired {
        /// The policy in force.
        policy: &'static str,
    },
    /// A KME URL that is not `https://host[:port]`.
    #[error("'{0}': the KME URL must be https://HOST[:PORT] (ETSI QKD 014 is HTTPS only)")]
    KmeUrl(String),
    /// An empty SAE ID.
    #[error("an SAE ID must not be empty or contain '/' or spaces")]
    SaeId,
    /// A QKD key size the protocol cannot use.
    #[error("{0} bits: a QKD key size must be a multiple of 8 between 128 and 8192")]
    QkdKeySize(i64),
    /// Not a QKD policy name.
    #[error("unknown policy '{0}' (expected \"disable\", \"allow\" or \"require\")")]
    UnknownQkdPolicy(String),
    /// No `[[peer]]` section.
    #[error("at least one [[peer]] section is required")]
    NoPeers,
    /// Two peers with one name.
    #[error("duplicate peer name '{name}' (first used on line {first_line})")]
    DuplicatePeerName {
        /// The name.
        name: String,
        /// Line of the first use.
        first_line: usize,
    },
    /// Two peers with one public key.
    #[error("same public key as peer '{other}'")]
    DuplicatePublicKey {
        /// The other peer's name.
        other: String,
    },
    /// Neither or both of `public_key` and `public_key_file`.
    #[error("exactly one of public_key and public_key_file is required ({0})")]
    PublicKeySource(&'static str),
    /// An inline public key that does not decode.
    #[error("invalid public key: {0}")]
    PublicKey(PublicIdentityError),
    /// A public key file that cannot be read or does not decode.
    #[error("{0}")]
    PublicKeyFile(IdentityFileError),
    /// An endpoint that is not `IPv4:port` or `[IPv6]:port`.
    #[error("'{value}': {reason}")]
    Endpoint {
        /// As written.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An allowed prefix already routed to another peer.
    #[error(
        "'{cidr}' is also in peer '{other}' (line {other_line}); a prefix can route to one peer only"
    )]
    AllowedIpsOverlap {
        /// The prefix.
        cidr: String,
        /// The other peer's name.
        other: String,
        /// Line of the other peer's entry.
        other_line: usize,
    },
    /// A Unix socket path longer than `sun_path` allows.
    #[error("path is {len} bytes; a Unix socket path may have at most {max}")]
    SocketPathTooLong {
        /// Bytes in the path.
        len: usize,
        /// The limit.
        max: usize,
    },
}
