//! The daemon's configuration: a TOML file (schema in `raw`, every key documented in
//! `configs/site-a-chacha.toml`) validated into the typed [`Config`] of [`types`], and the
//! identity files written by `qshield keygen` ([`identity_files`]). Every refusal is a
//! [`ConfigError`] naming the file, line, column and field path, before anything starts.
//!
//! [`parse`] reads the peers' `public_key_file`s but never the private identity:
//! `check-config` and the daemon read that with [`identity_files::read_identity`].

mod error;
pub mod identity_files;
mod locate;
mod peers;
mod raw;
pub(crate) mod spanned;
pub mod types;
pub mod units;
mod validate;

pub use error::{ConfigError, Location, Problem};
pub use types::{
    Config, DEFAULT_CONTROL_DIR, DEFAULT_LISTEN_PORT, InterfaceConfig, KmeClientConfig,
    OffloadMode, PeerConfig, QkdConfig, QkdPolicy, RotationConfig,
};

use crate::crypto::PublicIdentity;
use std::path::Path;

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config `text` that was read from `origin` (used in messages and to resolve
/// relative paths: `identity_dir`, `control_socket`, `public_key_file`).
pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let src = spanned::Source { text, origin };
    let raw: raw::RawConfig = src.parse_toml()?;
    validate::config(&raw, &src)
}

/// A TOML syntax or schema error, located and attributed to a field where possible.
fn toml_error(e: &toml::de::Error, text: &str, origin: &Path) -> ConfigError {
    let offset = e.span().map(|s| s.start);
    let at = match offset {
        Some(o) => Location::at_offset(origin, text, o),
        None => Location {
            file: origin.to_path_buf(),
            line: 1,
            column: None,
        },
    };
    ConfigError::Toml {
        at,
        field: offset.and_then(|o| locate::field_at(text, o)),
        message: e
            .message()
            .trim()
            .replace("expected i64", "expected an integer"),
    }
}

/// What [`parse`] cannot check without the private identity (for `check-config` and the
/// daemon, after [`identity_files::read_public`]): no peer has this site's own key.
pub fn check_identity(
    config: &Config,
    origin: &Path,
    own: &PublicIdentity,
) -> Result<(), ConfigError> {
    match config.peers.iter().position(|p| p.public_key == *own) {
        None => Ok(()),
        Some(index) => Err(ConfigError::OwnKey {
            file: origin.to_path_buf(),
            index,
            peer: config.peers[index].name.clone(),
        }),
    }
}
