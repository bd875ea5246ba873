//! Turns the KME config's raw schema into the typed [`KmeConfig`]: defaults, ranges, IDs,
//! routes, pairs and their quotas, links and their CV-QKD devices, and the rules across
//! them (an SAE ID is never a KME ID, routes do not loop, followed links do not share a
//! quantum port). Every refusal names the field path and the span of the offending value.

use super::raw::{Raw, RawCvqkd, RawKme, RawLink, RawPair, RawRemoteSae, RawSae};
use super::{
    ConnectionLimits, CvqkdLinkConfig, DEFAULT_PENDING_KEY_EXPIRY, KeyLimits, KmeConfig,
    KmeConfigError, LinkConfig, LinkRole, MAX_CONNECTION_TIMEOUT, MAX_KEY_PER_REQUEST_LIMIT,
    MAX_KEY_SIZE_LIMIT_BITS, MAX_PENDING_KEY_EXPIRY, MULTIPATH_PATHS_MAX, Modulation, PerPeriod,
    Quota, RelayMode, RemoteSae, SaePair, SourceKind, kme_id_use,
};
use crate::config::spanned::{IdCharset, Source};
use crate::config::units::DurationSyntax;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Validates a whole raw KME config.
pub(super) fn config(raw: &Raw, src: &Source<'_>) -> Result<KmeConfig, KmeConfigError> {
    let v = Validator { src };
    let kme = raw.kme.get_ref();
    let (saes, sae_quotas) = v.saes(&raw.sae)?;
    let links = v.links(&raw.link)?;
    let id = v.id(&kme.id, "kme.id")?;
    let remote_saes = v.remote_saes(&raw.remote_sae, &saes, &links, &id)?;
    v.sae_ids_are_not_kme_ids(raw, &id, &links, &remote_saes)?;
    let pairs = v.pairs(&raw.sae_pair, &saes, &remote_saes)?;
    let pending_key_expiry = match &kme.pending_key_expiry {
        None => DEFAULT_PENDING_KEY_EXPIRY,
        Some(s) => v.expiry(s)?,
    };
    let cfg = KmeConfig {
        id,
        listen: v.socket_addr(&kme.listen, "kme.listen")?,
        data_dir: v.src.resolve(&kme.data_dir),
        ca_file: v.src.resolve(&kme.ca_file),
        cert_file: v.src.resolve(&kme.cert_file),
        key_file: v.src.resolve(&kme.key_file),
        limits: v.limits(kme, raw.kme.span())?,
        status_log_seconds: kme.status_log_seconds.unwrap_or(10),
        remote_saes,
        saes,
        sae_quotas,
        pairs,
        pending_key_expiry,
        links,
        connections: v.connections(kme)?,
        metrics_listen: v.metrics_listen(kme)?,
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

/// The port a followed CV-QKD link receives its pulses on.
fn follower_quantum_port(l: &LinkConfig) -> Option<u16> {
    (l.role == LinkRole::Follower).then_some(l.cvqkd.as_ref()?.quantum_port)
}
/// The validation of one config text.
struct Validator<'a> {
    src: &'a Source<'a>,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, field: impl Into<String>, problem: String) -> KmeConfigError {
        self.src.invalid(span, field, problem)
    }

    fn id(&self, id: &Spanned<String>, field: &str) -> Result<String, KmeConfigError> {
        self.src.id(id, field, IdCharset::AsciiName, |s| {
            format!("'{s}' is not a valid ID (ASCII letters, digits, '-', '.', '_', ':')")
        })
    }

    fn socket_addr(&self, s: &Spanned<String>, field: &str) -> Result<SocketAddr, KmeConfigError> {
        self.src.socket_addr(s, field, |written| {
            format!("'{written}' is not IP:PORT or [IPv6]:PORT")
        })
    }

    /// A duration in `1s..=max`, written as `<number><s|m|h|d>`; a refusal says `expected`.
    fn bounded_duration(
        &self,
        s: &Spanned<String>,
        field: &str,
        max: Duration,
        expected: &str,
    ) -> Result<Duration, KmeConfigError> {
        let problem = || format!("'{}' is not a duration in {expected}", s.get_ref());
        let d = self.src.duration::<KmeConfigError>(
            s.get_ref(),
            s.span(),
            field,
            DurationSyntax::SingleUnit,
            |_| problem(),
        )?;
        if d.is_zero() || d > max {
            return Err(self.err(s.span(), field, problem()));
        }
        Ok(d)
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
        let expected = "1s..=30d (e.g. \"90s\", \"10m\", \"2h\", \"1d\")";
        self.bounded_duration(
            s,
            "kme.pending_key_expiry",
            MAX_PENDING_KEY_EXPIRY,
            expected,
        )
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
            Some(s) => {
                let expected = "1s..=1h (e.g. \"5s\", \"2m\")";
                self.bounded_duration(s, &format!("kme.{field}"), MAX_CONNECTION_TIMEOUT, expected)
            }
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
        for (i, spanned) in raw.iter().enumerate() {
            let r = spanned.get_ref();
            let field = format!("remote_sae[{i}].id");
            let id = self.id(&r.id, &field)?;
            if saes.contains(&id) || out.iter().any(|o| o.id == id) {
                let p = format!("SAE '{id}' is listed twice");
                return Err(self.err(r.id.span(), field, p));
            }
            let route = match &r.route {
                Some(route) => Some(self.route(i, route, links, me)?),
                None => None,
            };
            let kme = match (&r.kme, &route) {
                (Some(kme), _) => self.id(kme, &format!("remote_sae[{i}].kme"))?,
                (None, Some(route)) => route[route.len() - 1].clone(),
                (None, None) => {
                    let p = format!(
                        "SAE '{id}' names no KME: set `kme` to the ID of the KME that hosts it"
                    );
                    return Err(self.err(spanned.span(), format!("remote_sae[{i}]"), p));
                }
            };
            if let Some(kme_span) = r.kme.as_ref().map(Spanned::span) {
                let kfield = format!("remote_sae[{i}].kme");
                if kme == me {
                    let p = format!(
                        "'{kme}' is this KME; an SAE attached here is an [[sae]], not a [[remote_sae]]"
                    );
                    return Err(self.err(kme_span, kfield, p));
                }
                if let Some(last) = route.as_ref().and_then(|r| r.last())
                    && *last != kme
                {
                    let p = format!("the route ends at '{last}', not at the SAE's KME '{kme}'");
                    let span = r.route.as_ref().map_or(kme_span, Spanned::span);
                    return Err(self.err(span, format!("remote_sae[{i}].route"), p));
                }
            }
            let relay = self.relay_mode(i, r, route.is_some())?;
            out.push(RemoteSae {
                id,
                kme,
                route,
                relay,
            });
        }
        Ok(out)
    }

    /// A configured route (`remote_sae[i].route`): starts at a link peer, never loops.
    fn route(
        &self,
        i: usize,
        route: &Spanned<Vec<String>>,
        links: &[LinkConfig],
        me: &str,
    ) -> Result<Vec<String>, KmeConfigError> {
        let rfield = format!("remote_sae[{i}].route");
        let hops = route.get_ref().clone();
        match hops.first() {
            None => return Err(self.err(route.span(), rfield, "must not be empty".into())),
            Some(first) if !links.iter().any(|l| &l.peer == first) => {
                let p = format!("the first hop '{first}' is not the peer of any [[link]]");
                return Err(self.err(route.span(), rfield, p));
            }
            _ => {}
        }
        for (j, hop) in hops.iter().enumerate() {
            if hop == me || hops[..j].contains(hop) {
                let p = format!("'{hop}' appears twice on the path (routes may not loop)");
                return Err(self.err(route.span(), rfield, p));
            }
        }
        Ok(hops)
    }

    /// `remote_sae[i].relay` and `.paths`.
    fn relay_mode(
        &self,
        i: usize,
        r: &RawRemoteSae,
        routed: bool,
    ) -> Result<RelayMode, KmeConfigError> {
        let multipath = match &r.relay {
            None => false,
            Some(m) if m.get_ref() == "single" => false,
            Some(m) if m.get_ref() == "multipath" => true,
            Some(m) => {
                let p = format!("'{}' is not \"single\" or \"multipath\"", m.get_ref());
                return Err(self.err(m.span(), format!("remote_sae[{i}].relay"), p));
            }
        };
        let pfield = format!("remote_sae[{i}].paths");
        match (&r.paths, multipath) {
            (Some(p), false) => {
                Err(self.err(p.span(), pfield, "is for relay = \"multipath\" only".into()))
            }
            (_, false) => Ok(RelayMode::Single),
            (_, true) if routed => {
                let span = r.relay.as_ref().map_or(0..0, Spanned::span);
                Err(self.err(
                    span,
                    format!("remote_sae[{i}].relay"),
                    "a configured `route` is one path; multipath routes are computed (remove `route`)".into(),
                ))
            }
            (None, true) => Ok(RelayMode::Multipath { paths: 2 }),
            (Some(p), true) => {
                let n = *p.get_ref();
                if !(2..=MULTIPATH_PATHS_MAX as u64).contains(&n) {
                    let why = format!("{n} is not between 2 and {MULTIPATH_PATHS_MAX}");
                    return Err(self.err(p.span(), pfield, why));
                }
                Ok(RelayMode::Multipath { paths: n as usize })
            }
        }
    }

    /// `kme.metrics_listen`: an address, loopback unless `metrics_public = true` (the
    /// metrics name links, SAE pairs and their traffic: nothing for the world to read).
    fn metrics_listen(&self, kme: &RawKme) -> Result<Option<SocketAddr>, KmeConfigError> {
        let Some(raw) = &kme.metrics_listen else {
            return Ok(None);
        };
        let addr = self.socket_addr(raw, "kme.metrics_listen")?;
        if !addr.ip().is_loopback() && !kme.metrics_public {
            let p = format!(
                "{addr} is not a loopback address: the metrics show every link, SAE pair and their traffic to whoever can reach them; listen on 127.0.0.1, or set `metrics_public = true` to serve them there"
            );
            return Err(self.err(raw.span(), "kme.metrics_listen", p));
        }
        Ok(Some(addr))
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
        let block_size = r
            .block_size
            .unwrap_or(crate::kme::link::cvqkd::DEFAULT_BLOCK_SIZE);
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
                .unwrap_or(crate::kme::link::cvqkd::DEFAULT_SYMBOL_RATE_HZ),
            frame_bits: r
                .frame_bits
                .unwrap_or(crate::cvqkd::sim::codes::DEFAULT_FRAME_BITS),
            quantum_port: r
                .quantum_port
                .unwrap_or(crate::kme::link::cvqkd::DEFAULT_QUANTUM_PORT),
            quantum_url: match &r.quantum_url {
                Some(u) => Some(self.socket_addr(u, &format!("{field}.quantum_url"))?),
                None => None,
            },
        };
        crate::kme::link::cvqkd::validate(&cfg)
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
    use super::super::tests::GOOD;
    use super::super::*;
    use std::path::Path;

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
    fn remote_saes_name_their_kme_and_how_keys_travel() {
        let computed = GOOD.replace("route = [\"kme-b\"]", "kme = \"kme-b\"");
        let cfg = parse(&computed, Path::new("k.toml")).unwrap();
        let r = &cfg.remote_saes[0];
        assert_eq!(
            (r.kme.as_str(), &r.route, r.relay),
            ("kme-b", &None, RelayMode::Single)
        );
        let multi = computed.replace(
            "kme = \"kme-b\"",
            "kme = \"kme-b\"\nrelay = \"multipath\"\npaths = 3",
        );
        let cfg = parse(&multi, Path::new("k.toml")).unwrap();
        assert_eq!(cfg.remote_saes[0].relay, RelayMode::Multipath { paths: 3 });
        let bad = [
            (
                "kme = \"kme-b\"",
                "",
                "remote_sae[0]: SAE 'sae-b' names no KME",
            ),
            (
                "kme = \"kme-b\"",
                "kme = \"kme-a\"",
                "remote_sae[0].kme: 'kme-a' is this KME",
            ),
            (
                "kme = \"kme-b\"",
                "kme = \"kme-c\"\nroute = [\"kme-b\"]",
                "remote_sae[0].route: the route ends at 'kme-b', not at the SAE's KME 'kme-c'",
            ),
            (
                "kme = \"kme-b\"",
                "kme = \"kme-b\"\nrelay = \"split\"",
                "remote_sae[0].relay",
            ),
            (
                "kme = \"kme-b\"",
                "kme = \"kme-b\"\npaths = 2",
                "is for relay = \"multipath\" only",
            ),
            (
                "kme = \"kme-b\"",
                "kme = \"kme-b\"\nrelay = \"multipath\"\npaths = 9",
                "remote_sae[0].paths: 9 is not between 2 and 4",
            ),
            (
                "kme = \"kme-b\"",
                "route = [\"kme-b\"]\nrelay = \"multipath\"",
                "multipath routes are computed",
            ),
        ];
        for (from, to, want) in bad {
            let e = parse(&computed.replace(from, to), Path::new("k.toml"))
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
