//! qshield: a userspace site-to-site VPN whose session keys are quantum-safe.
//!
//! Layout (dependencies point inward):
//! - [`proto`]: the sans-IO protocol core (wire format, handshake, sessions, rotation).
//! - [`crypto`]: thin, typed wrappers over aws-lc-rs plus every KDF label.
//! - [`config`]: the TOML schema, validated into typed values.
//! - [`net`]: TUN and UDP I/O behind batch-shaped traits, each with an in-memory twin.
//! - [`daemon`]: the runtime that wires net + proto, timers and the control socket.
//! - [`kme`]: the key management entity (ETSI GS QKD 014 server, key pools, relay).
//! - [`constants`]: every protocol constant, with its unit.

pub use qshield_core::{batch, cidr, constants, crypto, proto};

pub mod cli;
pub mod config;
pub mod cvqkd;
pub mod daemon;
pub mod kme;
pub mod net;
pub mod pki;
pub mod qkd;
