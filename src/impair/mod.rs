//! The impairment relay behind `qshield-impair`: a UDP relay for tests that loses,
//! duplicates, reorders and delays datagrams in userspace (for kernels without netem).
//!
//! - [`model`]: the knobs ([`Impairment`](model::Impairment): random loss, Gilbert-Elliott
//!   burst loss, reordering, duplication, delay and jitter), each a validated type with its
//!   command-line spelling, and the per-direction counters.
//! - [`engine`]: the sans-IO engine of one direction: seeded, driven by an explicit clock,
//!   deterministic for a seed.
//! - [`relay`]: the I/O: two UDP sockets, one thread per direction, the stats file.
//! - [`cli`]: the binary's flags (clap).

pub mod cli;
pub mod engine;
pub mod model;
pub mod relay;
