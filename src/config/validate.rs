//! Turns the raw schema into the typed [`Config`]: defaults, ranges, units, paths, and the
//! cross-field rules of `[interface]`, `[rotation]` and `[qkd]` (peers: `peers`). Every
//! refusal names the field path and the span of the offending value.

use super::error::{ConfigError, Problem};
use super::raw::{Quantity, RawConfig, RawInterface, RawQkd, RawRotation};
use super::spanned::{IdCharset, Source};
use super::types::{
    Config, InterfaceConfig, KmeClientConfig, QkdConfig, QkdPolicy, RotationConfig,
};
use super::units;
use crate::constants as k;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Longest Unix socket path (`sun_path` is 108 bytes including the final NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Validates a whole raw config.
pub(super) fn config(raw: &RawConfig, src: &Source<'_>) -> Result<Config, ConfigError> {
    let qkd = qkd(raw.qkd.as_ref(), src)?;
    let mut peers = super::peers::peers(&raw.peer, src)?;
    peer_sae_ids(&qkd, &mut peers, raw, src)?;
    Ok(Config {
        interface: interface(raw.interface.get_ref(), src)?,
        rotation: rotation(raw.rotation.as_ref(), src)?,
        qkd,
        peers,
    })
}

/// With QKD on, every peer needs an SAE ID (its own `qkd_sae_id` or `[qkd] peer_sae_id`);
/// with QKD off, none is kept.
fn peer_sae_ids(
    qkd: &QkdConfig,
    peers: &mut [super::types::PeerConfig],
    raw: &RawConfig,
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    let Some(kme) = &qkd.kme else {
        peers.iter_mut().for_each(|p| p.qkd_sae_id = None);
        return Ok(());
    };
    for (i, p) in peers.iter_mut().enumerate() {
        if p.qkd_sae_id.is_none() {
            p.qkd_sae_id = kme.peer_sae_id.clone();
        }
        if p.qkd_sae_id.is_none() {
            let problem = Problem::QkdFieldRequired {
                policy: qkd.policy.name(),
            };
            return Err(src.invalid(raw.peer[i].span(), format!("peer[{i}].qkd_sae_id"), problem));
        }
    }
    Ok(())
}

fn interface(raw: &RawInterface, src: &Source<'_>) -> Result<InterfaceConfig, ConfigError> {
    let name = interface_name(&raw.name, src)?;
    let default_port = super::DEFAULT_LISTEN_PORT;
    let port: u16 = ranged(
        raw.listen_port.as_ref(),
        default_port,
        1,
        u16::MAX,
        "interface.listen_port",
        src,
    )?;
    let mtu = (
        k::DEFAULT_TUNNEL_MTU_BYTES,
        k::MIN_TUNNEL_MTU_BYTES,
        k::MAX_TUNNEL_MTU_BYTES,
    );
    Ok(InterfaceConfig {
        addresses: src.cidr_list(&raw.address, "interface.address")?,
        mtu: ranged(raw.mtu.as_ref(), mtu.0, mtu.1, mtu.2, "interface.mtu", src)?,
        listen: SocketAddr::new(listen_ip(raw.listen_address.as_ref(), src)?, port),
        identity_dir: path_field(&raw.identity_dir, "interface.identity_dir", src)?,
        cipher: cipher(raw.cipher.as_ref(), src)?,
        control_socket: control_socket(raw.control_socket.as_ref(), &name, src)?,
        offload: offload(raw.offload.as_ref(), src)?,
        metrics_listen: metrics_listen(raw, src)?,
        name,
    })
}

/// `interface.metrics_listen`: an address, loopback unless `metrics_public = true`.
fn metrics_listen(raw: &RawInterface, src: &Source<'_>) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(at) = &raw.metrics_listen else {
        return Ok(None);
    };
    let field = "interface.metrics_listen";
    let addr: SocketAddr =
        at.get_ref().trim().parse().map_err(|_| {
            src.invalid(at.span(), field, Problem::SocketAddr(at.get_ref().clone()))
        })?;
    if !addr.ip().is_loopback() && !raw.metrics_public {
        return Err(src.invalid(at.span(), field, Problem::MetricsNotLoopback(addr)));
    }
    Ok(Some(addr))
}

fn interface_name(raw: &Spanned<String>, src: &Source<'_>) -> Result<String, ConfigError> {
    let name = raw.get_ref();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let valid =
        (1..=15).contains(&name.len()) && name.chars().all(ok_char) && name != "." && name != "..";
    if !valid {
        let problem = Problem::InterfaceName(name.clone());
        return Err(src.invalid(raw.span(), "interface.name", problem));
    }
    Ok(name.clone())
}

/// An optional integer within `min..=max`, or `default` when absent.
fn ranged<T>(
    raw: Option<&Spanned<i64>>,
    default: T,
    min: T,
    max: T,
    field: &str,
    src: &Source<'_>,
) -> Result<T, ConfigError>
where
    T: Copy + Into<i64> + TryFrom<i64>,
{
    let Some(raw) = raw else { return Ok(default) };
    let value = *raw.get_ref();
    let (lo, hi) = (min.into(), max.into());
    match T::try_from(value) {
        Ok(v) if (lo..=hi).contains(&value) => Ok(v),
        _ => Err(src.invalid(
            raw.span(),
            field,
            Problem::OutOfRange {
                value,
                min: lo,
                max: hi,
            },
        )),
    }
}

fn listen_ip(raw: Option<&Spanned<String>>, src: &Source<'_>) -> Result<IpAddr, ConfigError> {
    let Some(raw) = raw else {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    };
    raw.get_ref().trim().parse().map_err(|_| {
        let problem = Problem::IpAddress(raw.get_ref().clone());
        src.invalid(raw.span(), "interface.listen_address", problem)
    })
}

fn path_field(
    raw: &Spanned<String>,
    field: &str,
    src: &Source<'_>,
) -> Result<PathBuf, ConfigError> {
    if raw.get_ref().trim().is_empty() {
        return Err(src.invalid(raw.span(), field, Problem::Empty));
    }
    Ok(src.resolve(raw.get_ref()))
}

fn cipher(
    raw: Option<&Spanned<String>>,
    src: &Source<'_>,
) -> Result<crate::crypto::CipherSuite, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Default::default());
    };
    raw.get_ref()
        .parse()
        .map_err(|e| src.invalid(raw.span(), "interface.cipher", Problem::Cipher(e)))
}

fn offload(
    raw: Option<&Spanned<String>>,
    src: &Source<'_>,
) -> Result<super::types::OffloadMode, ConfigError> {
    use super::types::OffloadMode;
    match raw.map(|r| r.get_ref().as_str()) {
        None | Some("auto") => Ok(OffloadMode::Auto),
        Some("off") => Ok(OffloadMode::Off),
        Some(other) => Err(src.invalid(
            raw.map_or(0..0, |r| r.span()),
            "interface.offload",
            Problem::Offload(other.to_string()),
        )),
    }
}

fn control_socket(
    raw: Option<&Spanned<String>>,
    name: &str,
    src: &Source<'_>,
) -> Result<PathBuf, ConfigError> {
    let field = "interface.control_socket";
    let (path, span) = match raw {
        Some(raw) => (path_field(raw, field, src)?, raw.span()),
        None => (
            Path::new(super::DEFAULT_CONTROL_DIR).join(format!("{name}.sock")),
            0..0,
        ),
    };
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH_BYTES {
        let problem = Problem::SocketPathTooLong {
            len,
            max: MAX_SOCKET_PATH_BYTES,
        };
        return Err(src.invalid(span, field, problem));
    }
    Ok(path)
}

fn rotation(raw: Option<&RawRotation>, src: &Source<'_>) -> Result<RotationConfig, ConfigError> {
    let default = RawRotation::default();
    let raw = raw.unwrap_or(&default);
    let rekey_after_bytes = rekey_bytes(raw.rekey_after_bytes.as_ref(), src)?;
    let rekey_after = rekey_time(raw.rekey_after_seconds.as_ref(), src)?;
    Ok(RotationConfig {
        reject_after_bytes: reject_bytes(raw.reject_after_bytes.as_ref(), rekey_after_bytes, src)?,
        reject_after: reject_time(raw.reject_after_seconds.as_ref(), rekey_after, src)?,
        rekey_after_bytes,
        rekey_after,
    })
}

fn rekey_bytes(raw: Option<&Spanned<Quantity>>, src: &Source<'_>) -> Result<u64, ConfigError> {
    let Some(raw) = raw else {
        return Ok(k::DEFAULT_REKEY_AFTER_BYTES);
    };
    let field = "rotation.rekey_after_bytes";
    let value = bytes(raw, field, src)?;
    if value < k::MIN_REKEY_AFTER_BYTES {
        let (value, min) = (
            units::format_bytes(value),
            units::format_bytes(k::MIN_REKEY_AFTER_BYTES),
        );
        return Err(src.invalid(raw.span(), field, Problem::BelowMinimum { value, min }));
    }
    Ok(value)
}

fn rekey_time(raw: Option<&Spanned<Quantity>>, src: &Source<'_>) -> Result<Duration, ConfigError> {
    let Some(raw) = raw else {
        return Ok(k::DEFAULT_REKEY_AFTER);
    };
    let field = "rotation.rekey_after_seconds";
    let value = duration(raw, field, src)?;
    let fmt = units::format_duration;
    if value < k::MIN_REKEY_AFTER {
        let problem = Problem::BelowMinimum {
            value: fmt(value),
            min: fmt(k::MIN_REKEY_AFTER),
        };
        return Err(src.invalid(raw.span(), field, problem));
    }
    if value > k::MAX_REKEY_AFTER {
        let problem = Problem::AboveMaximum {
            value: fmt(value),
            max: fmt(k::MAX_REKEY_AFTER),
        };
        return Err(src.invalid(raw.span(), field, problem));
    }
    Ok(value)
}

fn reject_bytes(
    raw: Option<&Spanned<Quantity>>,
    rekey: u64,
    src: &Source<'_>,
) -> Result<u64, ConfigError> {
    let Some(raw) = raw else {
        let scaled = u128::from(rekey) * u128::from(k::DEFAULT_REJECT_BYTES_NUMERATOR)
            / u128::from(k::DEFAULT_REJECT_BYTES_DENOMINATOR);
        return Ok(u64::try_from(scaled)
            .unwrap_or(u64::MAX)
            .max(rekey.saturating_add(k::DEFAULT_REJECT_MIN_MARGIN_BYTES)));
    };
    let value = bytes(raw, "rotation.reject_after_bytes", src)?;
    if value <= rekey {
        let fmt = units::format_bytes;
        let problem = Problem::RejectNotAboveRekey {
            reject: fmt(value),
            rekey_field: "rotation.rekey_after_bytes",
            rekey: fmt(rekey),
        };
        return Err(src.invalid(raw.span(), "rotation.reject_after_bytes", problem));
    }
    Ok(value)
}

fn reject_time(
    raw: Option<&Spanned<Quantity>>,
    rekey: Duration,
    src: &Source<'_>,
) -> Result<Duration, ConfigError> {
    let Some(raw) = raw else {
        return Ok(rekey * k::DEFAULT_REJECT_TIME_NUMERATOR / k::DEFAULT_REJECT_TIME_DENOMINATOR);
    };
    let value = duration(raw, "rotation.reject_after_seconds", src)?;
    if value <= rekey {
        let fmt = units::format_duration;
        let problem = Problem::RejectNotAboveRekey {
            reject: fmt(value),
            rekey_field: "rotation.rekey_after_seconds",
            rekey: fmt(rekey),
        };
        return Err(src.invalid(raw.span(), "rotation.reject_after_seconds", problem));
    }
    Ok(value)
}

/// A byte size: integer bytes or a string with a unit.
fn bytes(raw: &Spanned<Quantity>, field: &str, src: &Source<'_>) -> Result<u64, ConfigError> {
    let result = match raw.get_ref() {
        Quantity::Integer(v) => u64::try_from(*v).map_err(|_| Problem::Negative(*v)),
        Quantity::Text(t) => units::parse_bytes(t).map_err(|source| Problem::Unit {
            value: t.clone(),
            source,
        }),
    };
    result.map_err(|p| src.invalid(raw.span(), field, p))
}

/// A duration: integer seconds or a string with units.
pub(super) fn duration(
    raw: &Spanned<Quantity>,
    field: &str,
    src: &Source<'_>,
) -> Result<Duration, ConfigError> {
    match raw.get_ref() {
        Quantity::Integer(v) => u64::try_from(*v)
            .map(Duration::from_secs)
            .map_err(|_| src.invalid(raw.span(), field, Problem::Negative(*v))),
        Quantity::Text(t) => src.duration(
            t,
            raw.span(),
            field,
            units::DurationSyntax::Compound,
            |source| Problem::Unit {
                value: t.clone(),
                source,
            },
        ),
    }
}

fn qkd(raw: Option<&RawQkd>, src: &Source<'_>) -> Result<QkdConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(QkdConfig::default());
    };
    let policy = match raw.policy.as_ref() {
        None => QkdPolicy::Disable,
        Some(p) => match p.get_ref().as_str() {
            "disable" => QkdPolicy::Disable,
            "allow" => QkdPolicy::Allow,
            "require" => QkdPolicy::Require,
            other => {
                let problem = Problem::UnknownQkdPolicy(other.to_string());
                return Err(src.invalid(p.span(), "qkd.policy", problem));
            }
        },
    };
    let kme = match policy {
        QkdPolicy::Disable => None,
        _ => Some(kme_client(raw, policy, src)?),
    };
    Ok(QkdConfig { policy, kme })
}

/// The KME connection, every field required (policy `allow` or `require`).
fn kme_client(
    raw: &RawQkd,
    policy: QkdPolicy,
    src: &Source<'_>,
) -> Result<KmeClientConfig, ConfigError> {
    let anchor = raw.policy.as_ref().map(Spanned::span).unwrap_or_default();
    let missing = |field: &str| {
        let problem = Problem::QkdFieldRequired {
            policy: policy.name(),
        };
        src.invalid(anchor.clone(), format!("qkd.{field}"), problem)
    };
    let need = |v: &Option<Spanned<String>>, field: &str| -> Result<Spanned<String>, ConfigError> {
        v.clone().ok_or_else(|| missing(field))
    };
    let path =
        |v: &Option<Spanned<String>>, field: &str| need(v, field).map(|s| src.resolve(s.get_ref()));
    Ok(KmeClientConfig {
        url: kme_url(&need(&raw.kme_url, "kme_url")?, src)?,
        sae_id: sae_id(&need(&raw.sae_id, "sae_id")?, "qkd.sae_id", src)?,
        peer_sae_id: raw
            .peer_sae_id
            .as_ref()
            .map(|s| sae_id(s, "qkd.peer_sae_id", src))
            .transpose()?,
        ca_file: path(&raw.ca_file, "ca_file")?,
        cert_file: path(&raw.cert_file, "cert_file")?,
        key_file: path(&raw.key_file, "key_file")?,
        key_size_bits: qkd_key_size(raw.key_size.as_ref(), src)?,
    })
}

fn kme_url(raw: &Spanned<String>, src: &Source<'_>) -> Result<String, ConfigError> {
    let url = raw.get_ref().trim_end_matches('/');
    let host = url.strip_prefix("https://").unwrap_or_default();
    if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
        return Err(src.invalid(
            raw.span(),
            "qkd.kme_url",
            Problem::KmeUrl(raw.get_ref().clone()),
        ));
    }
    Ok(url.to_string())
}

/// An SAE ID: non-empty, no '/', no whitespace (it goes into URL paths).
pub(super) fn sae_id(
    raw: &Spanned<String>,
    field: &str,
    src: &Source<'_>,
) -> Result<String, ConfigError> {
    src.id(raw, field, IdCharset::PathSegment, |_| Problem::SaeId)
}

fn qkd_key_size(raw: Option<&Spanned<i64>>, src: &Source<'_>) -> Result<u32, ConfigError> {
    let Some(raw) = raw else {
        return Ok(k::DEFAULT_QKD_KEY_BITS);
    };
    let bits = *raw.get_ref();
    if bits % 8 != 0 || !(128..=8192).contains(&bits) {
        return Err(src.invalid(raw.span(), "qkd.key_size", Problem::QkdKeySize(bits)));
    }
    Ok(bits as u32)
}
