//! The TOML schema exactly as written by the operator: serde structs with
//! `deny_unknown_fields` and a span on every value that validation looks at. Nothing here
//! is checked beyond TOML types; `validate` turns it into [`super::Config`].

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub interface: Spanned<RawInterface>,
    pub rotation: Option<RawRotation>,
    pub qkd: Option<RawQkd>,
    #[serde(default)]
    pub peer: Vec<Spanned<RawPeer>>,
}

/// `[interface]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub name: Spanned<String>,
    pub address: Spanned<StringList>,
    pub mtu: Option<Spanned<i64>>,
    pub listen_port: Option<Spanned<i64>>,
    pub listen_address: Option<Spanned<String>>,
    pub identity_dir: Spanned<String>,
    pub cipher: Option<Spanned<String>>,
    pub control_socket: Option<Spanned<String>>,
    pub offload: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    pub metrics_public: bool,
}

/// `[rotation]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRotation {
    pub rekey_after_bytes: Option<Spanned<Quantity>>,
    pub rekey_after_seconds: Option<Spanned<Quantity>>,
    pub reject_after_bytes: Option<Spanned<Quantity>>,
    pub reject_after_seconds: Option<Spanned<Quantity>>,
}

/// `[qkd]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQkd {
    pub policy: Option<Spanned<String>>,
    pub kme_url: Option<Spanned<String>>,
    pub sae_id: Option<Spanned<String>>,
    pub peer_sae_id: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub key_size: Option<Spanned<i64>>,
}

/// One `[[peer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub name: Spanned<String>,
    pub endpoint: Option<Spanned<String>>,
    pub public_key: Option<Spanned<String>>,
    pub public_key_file: Option<Spanned<String>>,
    pub allowed_ips: Spanned<StringList>,
    pub persistent_keepalive: Option<Spanned<Quantity>>,
    pub qkd_sae_id: Option<Spanned<String>>,
}

/// A size or duration: a TOML integer, or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Quantity {
    /// A bare integer (bytes or seconds).
    Integer(i64),
    /// A string to parse with `units`.
    Text(String),
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QuantityVisitor)
    }
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string with a unit (\"8GiB\", \"2m\")")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Ok(Quantity::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        i64::try_from(v)
            .map(Quantity::Integer)
            .map_err(|_| E::custom("integer is too large"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Ok(Quantity::Text(v.to_string()))
    }
}

/// A list of strings that may also be written as a single string.
#[derive(Debug)]
pub(super) enum StringList {
    /// `key = "x"`: the outer span locates it.
    One(String),
    /// `key = ["x", "y"]`: each entry keeps its own span.
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringListVisitor)
    }
}

struct StringListVisitor;

impl<'de> Visitor<'de> for StringListVisitor {
    type Value = StringList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
        Ok(StringList::One(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<String>>()? {
            items.push(item);
        }
        Ok(StringList::Many(items))
    }
}

/// The entries of a string list with their spans and field path suffixes: `[i]` for an
/// array entry, nothing for a lone string.
pub(super) fn entries(list: &Spanned<StringList>) -> Vec<(&str, Range<usize>, String)> {
    match list.get_ref() {
        StringList::One(s) => vec![(s.as_str(), list.span(), String::new())],
        StringList::Many(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| (s.get_ref().as_str(), s.span(), format!("[{i}]")))
            .collect(),
    }
}
