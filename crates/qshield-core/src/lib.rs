//! qshield's sans-IO core: everything that decides what bytes to send and which keys to use,
//! and nothing that sends, reads a file or reads a clock.
//!
//! - [`proto`]: wire format, hybrid handshake, sessions, rotation budgets, the per-peer
//!   timer table; driven by events and an explicit [`proto::time::Instant`].
//! - [`crypto`]: typed wrappers over aws-lc-rs (AEAD, X25519, ML-KEM-768, HKDF) and every
//!   KDF label ([`crypto::labels`]).
//! - [`constants`]: the protocol's constants (wire sizes, timers, budgets), each with its unit.
//! - [`batch`], [`cidr`]: the packet batch and the allowed-IPs types the protocol and the I/O
//!   layer share.
//! - [`icmp`]: the ICMP "fragmentation needed" / "packet too big" errors the tunnel answers
//!   oversize inner packets with.
//!
//! This crate depends on no I/O library (no tokio, no sockets, no filesystem), so the rule
//! "the protocol core does no I/O" is held by the compiler. The `qshield` crate re-exports
//! these modules under the same names (`qshield::proto`, `qshield::crypto`, ...).

#![forbid(unsafe_code)]

pub mod batch;
pub mod cidr;
pub mod constants;
pub mod crypto;
pub mod icmp;
pub mod proto;
