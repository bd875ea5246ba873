//! Offloads in software, as pure functions over bytes (no system calls, no allocation per
//! packet): the `virtio_net_hdr` of a TUN opened with `IFF_VNET_HDR` ([`vnet`]),
//! segmentation of the super-packets it hands out ([`segment`]: TSO for TCP over IPv4 and
//! IPv6, USO for UDP), coalescing of received TCP segments into super-packets for it
//! ([`gro`]), and the Internet checksum they all need ([`checksum`]).
//!
//! The TUN device (`tun.rs`) drives them; tests check them against a straightforward
//! reference (`tests` below).

pub mod checksum;
pub mod gro;
pub mod headers;
pub mod segment;
pub mod vnet;

pub use gro::{GROUP_HEADER_MAX, GroTable, Group};
pub use segment::{Plan, SegmentError};
pub use vnet::{VNET_HDR_LEN, VirtioNetHdr};

#[cfg(test)]
mod tests;
