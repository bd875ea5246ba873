//! The KME config's TOML schema exactly as written: serde structs with
//! `deny_unknown_fields` and a span on every value a message may point at. Nothing here is
//! checked beyond TOML types; `super::validate` turns it into [`super::KmeConfig`].

use super::{LinkRole, SourceKind};
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub kme: Spanned<RawKme>,
    #[serde(default)]
    pub sae: Vec<Spanned<RawSae>>,
    #[serde(default)]
    pub remote_sae: Vec<Spanned<RawRemoteSae>>,
    #[serde(default)]
    pub sae_pair: Vec<Spanned<RawPair>>,
    #[serde(default)]
    pub link: Vec<Spanned<RawLink>>,
}

/// `[[sae_pair]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPair {
    pub master: Spanned<String>,
    pub slave: Spanned<String>,
    #[serde(default)]
    pub both_ways: bool,
    pub rate: Option<Spanned<String>>,
    pub volume: Option<Spanned<String>>,
}

/// `[kme]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKme {
    pub id: Spanned<String>,
    pub listen: Spanned<String>,
    pub data_dir: String,
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    pub default_key_size: Option<Spanned<u32>>,
    pub min_key_size: Option<Spanned<u32>>,
    pub max_key_size: Option<Spanned<u32>>,
    pub max_key_per_request: Option<Spanned<u32>>,
    pub max_key_count: Option<Spanned<u64>>,
    pub status_log_seconds: Option<u64>,
    pub pending_key_expiry: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<u64>>,
    pub max_connections_per_source: Option<Spanned<u64>>,
    pub tls_handshake_timeout: Option<Spanned<String>>,
    pub header_read_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    pub metrics_public: bool,
}

/// `[[sae]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSae {
    pub id: Spanned<String>,
    pub rate: Option<Spanned<String>>,
    pub volume: Option<Spanned<String>>,
}

/// `[[remote_sae]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemoteSae {
    pub id: Spanned<String>,
    pub kme: Option<Spanned<String>>,
    pub route: Option<Spanned<Vec<String>>>,
    pub relay: Option<Spanned<String>>,
    pub paths: Option<Spanned<u64>>,
}

/// `[[link]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub peer: Spanned<String>,
    pub url: Spanned<String>,
    pub role: LinkRole,
    pub source: Option<SourceKind>,
    pub rate_bits_per_second: Option<Spanned<u64>>,
    pub pool_max_bits: Option<Spanned<u64>>,
    pub cvqkd: Option<Spanned<RawCvqkd>>,
}

/// `[link.cvqkd]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCvqkd {
    pub distance_km: f64,
    pub loss_db_per_km: Option<f64>,
    pub xi: Option<f64>,
    pub eta: Option<f64>,
    pub v_el: Option<f64>,
    pub va: Option<Spanned<toml::Value>>,
    pub detection: Option<crate::cvqkd::Detection>,
    pub block_size: Option<u64>,
    pub pe_samples: Option<u64>,
    pub epsilon: Option<f64>,
    pub symbol_rate_hz: Option<f64>,
    pub frame_bits: Option<usize>,
    pub quantum_port: Option<u16>,
    pub quantum_url: Option<Spanned<String>>,
}
