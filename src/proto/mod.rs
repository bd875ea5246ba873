//! The sans-IO protocol core. No sockets, no threads, no clock: the runtime feeds it
//! datagrams, inner packets and the time, and drains what it wants sent.
//!
//! - [`wire`]: message formats. [`handshake`]: the key schedule. [`session`]: keys in use,
//!   budgets. [`replay`]: the anti-replay window. [`fragment`]: reassembly with bounded
//!   state. [`cookie`]: mac1/mac2, cookies, rate limits. [`endpoint`]: the interface:
//!   demultiplexing, routing, timers, each peer's state machine. [`events`]: what it tells
//!   the runtime; [`status`]: the snapshot behind `qshield status`. [`qkd_flow`]: QKD
//!   policy and key requests. [`PeerId`]: which peer.

pub mod cookie;
pub mod endpoint;
pub mod events;
pub mod fragment;
pub mod handshake;
pub mod inner;
pub mod peer_id;
pub mod qkd_flow;
pub mod replay;
pub mod session;
pub mod status;
pub mod time;
pub mod wire;

pub use peer_id::PeerId;

#[cfg(test)]
mod tests;
