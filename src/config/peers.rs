//! Validation of the `[[peer]]` sections: each peer on its own (name, endpoint, public key,
//! allowed IPs, keepalive), then the rules across peers (unique names, unique keys, no
//! prefix routed to two peers).

use super::error::{ConfigError, Problem};
use super::identity_files;
use super::raw::{self, Quantity, RawPeer};
use super::spanned::Source;
use super::types::PeerConfig;
use super::units;
use super::validate::duration;
use crate::cidr::IpCidr;
use crate::crypto::PublicIdentity;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use toml::Spanned;

/// Longest keepalive interval accepted (WireGuard's limit, a 16-bit count of seconds).
const MAX_KEEPALIVE: Duration = Duration::from_secs(65_535);

/// Validates every peer, then the rules across peers.
pub(super) fn peers(
    raw: &[Spanned<RawPeer>],
    src: &Source<'_>,
) -> Result<Vec<PeerConfig>, ConfigError> {
    if raw.is_empty() {
        let end = src.text.trim_end().len();
        return Err(src.invalid(end..end, "peer", Problem::NoPeers));
    }
    let peers = raw
        .iter()
        .enumerate()
        .map(|(i, p)| peer(i, p.get_ref(), p.span(), src))
        .collect::<Result<Vec<_>, _>>()?;
    unique_names(raw, src)?;
    unique_keys(raw, &peers, src)?;
    disjoint_allowed_ips(raw, &peers, src)?;
    Ok(peers)
}

fn peer(
    i: usize,
    raw: &RawPeer,
    header: std::ops::Range<usize>,
    src: &Source<'_>,
) -> Result<PeerConfig, ConfigError> {
    Ok(PeerConfig {
        name: peer_name(i, &raw.name, src)?,
        endpoint: raw
            .endpoint
            .as_ref()
            .map(|e| endpoint(i, e, src))
            .transpose()?,
        public_key: public_key(i, raw, header, src)?,
        allowed_ips: src.cidr_list(&raw.allowed_ips, &format!("peer[{i}].allowed_ips"))?,
        persistent_keepalive: keepalive(i, raw.persistent_keepalive.as_ref(), src)?,
        qkd_sae_id: raw
            .qkd_sae_id
            .as_ref()
            .map(|s| super::validate::sae_id(s, &format!("peer[{i}].qkd_sae_id"), src))
            .transpose()?,
    })
}

fn peer_name(i: usize, raw: &Spanned<String>, src: &Source<'_>) -> Result<String, ConfigError> {
    let name = raw.get_ref();
    let problem = if name.is_empty() {
        Problem::Empty
    } else if name.trim() != name || name.chars().any(char::is_control) {
        Problem::PeerName(name.clone())
    } else {
        return Ok(name.clone());
    };
    Err(src.invalid(raw.span(), format!("peer[{i}].name"), problem))
}

fn endpoint(i: usize, raw: &Spanned<String>, src: &Source<'_>) -> Result<SocketAddr, ConfigError> {
    let text = raw.get_ref().trim();
    let reason = match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => "port 0 is not a valid destination",
        Ok(addr) if addr.ip().is_unspecified() => {
            "the unspecified address is not a valid destination"
        }
        Ok(addr) if addr.ip().is_multicast() => "a multicast address is not a valid peer",
        Ok(addr) => return Ok(addr),
        Err(_) if text.parse::<IpAddr>().is_ok() => "missing the port (IPv4:port or [IPv6]:port)",
        Err(_) => "expected IPv4:port or [IPv6]:port (host names are not supported)",
    };
    let problem = Problem::Endpoint {
        value: raw.get_ref().clone(),
        reason,
    };
    Err(src.invalid(raw.span(), format!("peer[{i}].endpoint"), problem))
}

fn public_key(
    i: usize,
    raw: &RawPeer,
    header: std::ops::Range<usize>,
    src: &Source<'_>,
) -> Result<PublicIdentity, ConfigError> {
    match (&raw.public_key, &raw.public_key_file) {
        (Some(key), None) => PublicIdentity::from_base64(key.get_ref()).map_err(|e| {
            src.invalid(
                key.span(),
                format!("peer[{i}].public_key"),
                Problem::PublicKey(e),
            )
        }),
        (None, Some(file)) => public_key_file(i, file, src),
        (Some(_), Some(file)) => {
            let problem = Problem::PublicKeySource("both are set");
            Err(src.invalid(file.span(), format!("peer[{i}].public_key_file"), problem))
        }
        (None, None) => Err(src.invalid(
            header,
            format!("peer[{i}]"),
            Problem::PublicKeySource("neither is set"),
        )),
    }
}

fn public_key_file(
    i: usize,
    file: &Spanned<String>,
    src: &Source<'_>,
) -> Result<PublicIdentity, ConfigError> {
    let field = format!("peer[{i}].public_key_file");
    if file.get_ref().trim().is_empty() {
        return Err(src.invalid(file.span(), field, Problem::Empty));
    }
    identity_files::read_public_file(&src.resolve(file.get_ref()))
        .map_err(|e| src.invalid(file.span(), field, Problem::PublicKeyFile(e)))
}

fn keepalive(
    i: usize,
    raw: Option<&Spanned<Quantity>>,
    src: &Source<'_>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if matches!(raw.get_ref(), Quantity::Text(t) if t.trim().eq_ignore_ascii_case("off")) {
        return Ok(None);
    }
    let field = format!("peer[{i}].persistent_keepalive");
    let value = duration(raw, &field, src)?;
    let fmt = units::format_duration;
    let problem = if value.is_zero() {
        return Ok(None);
    } else if value < Duration::from_secs(1) {
        Problem::BelowMinimum {
            value: fmt(value),
            min: "1s".to_string(),
        }
    } else if value > MAX_KEEPALIVE {
        Problem::AboveMaximum {
            value: format!("{}s", value.as_secs()),
            max: format!("{}s", MAX_KEEPALIVE.as_secs()),
        }
    } else {
        return Ok(Some(value));
    };
    Err(src.invalid(raw.span(), field, problem))
}

fn unique_names(raw: &[Spanned<RawPeer>], src: &Source<'_>) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in raw.iter().enumerate() {
        let name = &p.get_ref().name;
        if let Some(&first) = seen.get(name.get_ref().as_str()) {
            let first_line = src.line(&raw[first].get_ref().name.span());
            let problem = Problem::DuplicatePeerName {
                name: name.get_ref().clone(),
                first_line,
            };
            return Err(src.invalid(name.span(), format!("peer[{i}].name"), problem));
        }
        seen.insert(name.get_ref(), i);
    }
    Ok(())
}

fn unique_keys(
    raw: &[Spanned<RawPeer>],
    peers: &[PeerConfig],
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    for (i, p) in peers.iter().enumerate() {
        let Some(first) = peers[..i].iter().find(|q| q.public_key == p.public_key) else {
            continue;
        };
        let r = raw[i].get_ref();
        let (field, span) = match (&r.public_key, &r.public_key_file) {
            (Some(k), _) => ("public_key", k.span()),
            (_, Some(f)) => ("public_key_file", f.span()),
            _ => ("name", r.name.span()),
        };
        let problem = Problem::DuplicatePublicKey {
            other: first.name.clone(),
        };
        return Err(src.invalid(span, format!("peer[{i}].{field}"), problem));
    }
    Ok(())
}

/// No network prefix may be listed under two peers. Nested prefixes (10.0.0.0/8 and
/// 10.1.0.0/16 in two peers) are allowed: routing takes the longest match.
fn disjoint_allowed_ips(
    raw: &[Spanned<RawPeer>],
    peers: &[PeerConfig],
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    let mut owner: HashMap<(IpAddr, u8), (usize, usize)> = HashMap::new();
    for (i, p) in raw.iter().enumerate() {
        for (text, span, suffix) in raw::entries(&p.get_ref().allowed_ips) {
            let Ok(cidr) = text.parse::<IpCidr>() else {
                continue;
            };
            let key = (cidr.network(), cidr.prefix);
            match owner.get(&key) {
                Some(&(other, other_line)) if other != i => {
                    let problem = Problem::AllowedIpsOverlap {
                        cidr: text.to_string(),
                        other: peers[other].name.clone(),
                        other_line,
                    };
                    return Err(src.invalid(
                        span,
                        format!("peer[{i}].allowed_ips{suffix}"),
                        problem,
                    ));
                }
                Some(_) => {}
                None => {
                    owner.insert(key, (i, src.line(&span)));
                }
            }
        }
    }
    Ok(())
}
