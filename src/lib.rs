//! qshield: a userspace site-to-site VPN whose session keys are quantum-safe.
//!
//! Layers, inner to outer; each imports only layers above it in this list (the whole map,
//! with where to start reading: `docs/architecture.md`):
//! - the sans-IO core, its own crate `qshield-core` (re-exported here under the same names):
//!   [`crypto`] (typed aws-lc-rs wrappers, every KDF label), [`proto`] (wire format,
//!   handshake, sessions, rotation, the per-peer timer table), [`constants`] (protocol
//!   constants with units), [`batch`] and [`cidr`]. It depends on no I/O library, so the
//!   compiler holds the rule that the core does no I/O.
//! - [`config`]: the daemon's TOML schema, validated into typed values (errors with
//!   file:line:col); the span-aware helpers the KME's config shares.
//! - [`net`]: TUN and UDP I/O behind batch-shaped traits, each with an in-memory twin; the
//!   only module allowed `unsafe` (system calls, each block with a `// SAFETY:` comment).
//! - [`qkd`]: the SAE side of QKD key delivery: ETSI GS QKD 014 formats, the mutual-TLS
//!   client, an in-memory KME twin.
//! - [`daemon`]: `qshield up`: wires net + proto + the QKD worker, timers, the control socket.
//! - [`cvqkd`]: CV-QKD physics and the link simulator, no I/O.
//! - [`kme`]: the key management entity (ETSI GS QKD 014 server, key pools, QKD links,
//!   trusted-node relay).
//! - [`pki`] and [`cli`]: certificates for demos and tests; the command line.
//! - [`impair`]: the impairment relay of the `qshield-impair` test tool (a UDP relay that
//!   loses, duplicates, reorders and delays datagrams; uses [`net`] and the daemon's clock).

#![deny(unsafe_code)]

pub use qshield_core::{batch, cidr, constants, crypto, icmp, proto};

pub mod cli;
pub mod config;
pub mod cvqkd;
pub mod daemon;
pub mod impair;
pub mod kme;
#[allow(unsafe_code)] // the system calls; every block has a `// SAFETY:` comment
pub mod net;
pub mod pki;
pub mod prometheus_text;
pub mod qkd;
