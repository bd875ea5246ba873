//! What the fuzz targets share: two fixed site identities (so seeds made once stay valid),
//! endpoints built from them, the datagram-list framing of the raw seed corpora, and the
//! in-process KME the `etsi014`, `kme_link_push` and `kme_relay` targets drive.
//!
//! The targets are in `fuzz_targets/`; `examples/gen_seeds.rs` writes `seeds/`.

pub mod config_errors;
pub mod frames;
pub mod kme;
pub mod links;
pub mod pair;
pub mod requests;
pub mod sites;
