//! What the KME targets send: names that are mostly the configured ones, JSON values of
//! any type, and the raw request format of their seed files (a datagram list of
//! `METHOD URI\nCALLER\nBODY` requests, `qshield_fuzz::frames`).

use crate::kme::{CALLERS, Kme, SAES};
use arbitrary::Arbitrary;
use axum::http::Method;

/// A name in a path or body: one the KME knows, or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    /// `SAES[i % 4]`.
    Sae(u8),
    /// `CALLERS[i % 8]` (SAEs, KMEs, a stranger).
    Any(u8),
    /// Anything.
    Other(String),
}

impl Name {
    /// The name.
    pub fn resolve(&self) -> String {
        match self {
            Name::Sae(i) => SAES[usize::from(*i) % SAES.len()].to_string(),
            Name::Any(i) => CALLERS[usize::from(*i) % CALLERS.len()].to_string(),
            Name::Other(s) => s.clone(),
        }
    }
}

/// The caller `i` picks.
pub fn caller(i: u8) -> &'static str {
    CALLERS[usize::from(i) % CALLERS.len()]
}

/// A JSON value of any type.
#[derive(Arbitrary, Debug, Clone)]
pub enum Json {
    /// A number that fits the field.
    Small(u16),
    /// Any integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An array of strings.
    Strings(Vec<String>),
    /// An object of one field.
    Object(String, Box<Json>),
}

impl Json {
    /// As a `serde_json` value.
    pub fn value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Small(n) => Value::from(*n),
            Json::Int(n) => Value::from(*n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Null => Value::Null,
            Json::Bool(b) => Value::from(*b),
            Json::Strings(v) => Value::from(v.clone()),
            Json::Object(k, v) => {
                let mut m = serde_json::Map::new();
                m.insert(k.clone(), v.value());
                Value::Object(m)
            }
        }
    }

    /// As a query-string value.
    pub fn query(&self) -> String {
        match self {
            Json::Str(s) => s.clone(),
            other => other.value().to_string(),
        }
    }
}

/// One request of a seed file: `METHOD URI\nCALLER\nBODY`.
pub struct RawRequest<'a> {
    /// Method.
    pub method: Method,
    /// URI (path and query).
    pub uri: &'a str,
    /// The caller's ID.
    pub caller: &'a str,
    /// Body bytes.
    pub body: &'a [u8],
}

/// Parses one request of a seed file.
pub fn parse_raw(bytes: &[u8]) -> Option<RawRequest<'_>> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let first = std::str::from_utf8(&bytes[..nl]).ok()?;
    let rest = &bytes[nl + 1..];
    let nl2 = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let caller = std::str::from_utf8(&rest[..nl2]).ok()?;
    let body = rest.get(nl2 + 1..).unwrap_or_default();
    let (method, uri) = first.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    Some(RawRequest {
        method,
        uri,
        caller,
        body,
    })
}

/// Formats one request of a seed file.
pub fn format_raw(method: &str, uri: &str, caller: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{method} {uri}\n{caller}\n").into_bytes();
    v.extend_from_slice(body);
    v
}

/// The input of the KME targets: a first byte even means raw requests in the seed format
/// ([`run_raw`]); odd means up to `max_actions` structured actions decoded from the rest,
/// each given to `step`. Returns the KME after structured actions, `None` after raw ones.
pub fn run_input<A: for<'a> Arbitrary<'a>>(
    data: &[u8],
    max_actions: usize,
    mut step: impl FnMut(&mut Kme, A),
) -> Option<Kme> {
    let (&mode, rest) = data.split_first()?;
    let mut kme = Kme::new();
    if mode % 2 == 0 {
        run_raw(&mut kme, rest);
        return None;
    }
    let mut u = arbitrary::Unstructured::new(rest);
    for _ in 0..max_actions {
        match A::arbitrary(&mut u) {
            Ok(a) => step(&mut kme, a),
            Err(_) => break,
        }
    }
    Some(kme)
}

/// Sends every request of a seed-format datagram list, checking each answer.
pub fn run_raw(kme: &mut Kme, data: &[u8]) {
    for frame in crate::frames::split(data) {
        if let Some(r) = parse_raw(frame) {
            kme.call(r.caller, r.method, r.uri, r.body.to_vec());
        }
    }
}
