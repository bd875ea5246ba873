//! The key management entity (`qshield kme`, docs/kme.md): the ETSI GS QKD 014 V1.1.1 key
//! delivery API over HTTPS with mutual TLS ([`api`], [`tls`]), durable key pools in an
//! embedded redb store ([`store`]), QKD links between KMEs fed by a [`links::KeySupply`]
//! (today a CSPRNG labelled NOT QKD), hop-by-hop one-time-pad relay through trusted nodes
//! ([`relay`]), certificate roles ([`roles`]), typed counters ([`metrics`]) and the status document ([`status`]), and the wiring
//! ([`server`]). It owns everything a KME does; the SAE side lives in `crate::qkd`.
//!
//! Start one in-process with [`start`] (or [`start_on`] with a bound listener) and a
//! [`KmeConfig`] from [`config::load`] / [`config::parse`]; the binary runs [`run`].

pub mod api;
pub mod config;
pub mod cvqkd;
pub mod links;
pub mod metrics;
pub mod pools;
pub mod quota;
pub mod relay;
pub mod roles;
pub mod server;
pub mod status;
pub mod store;
pub mod tls;

pub use config::{KmeConfig, KmeConfigError};
pub use server::{KmeError, KmeHandle, run, start, start_on};
