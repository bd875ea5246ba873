//! The validated, typed configuration that the rest of the program consumes. Produced only
//! by [`super::load`] / [`super::parse`]; every field here has already been checked.

use crate::cidr::IpCidr;
use crate::crypto::{CipherSuite, PublicIdentity};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default UDP listen port.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// Default directory of control sockets (`<dir>/<interface>.sock`).
pub const DEFAULT_CONTROL_DIR: &str = "/run/qshield";

/// A whole daemon configuration (one TUN interface, its peers).
#[derive(Debug, Clone)]
pub struct Config {
    /// The local interface and identity.
    pub interface: InterfaceConfig,
    /// Key rotation budgets, shared by every peer of the interface.
    pub rotation: RotationConfig,
    /// QKD key source settings.
    pub qkd: QkdConfig,
    /// The remote sites; at least one, names and public keys unique.
    pub peers: Vec<PeerConfig>,
}

/// `[interface]`.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// TUN device name (1..=15 bytes, `[A-Za-z0-9_.-]`).
    pub name: String,
    /// Addresses assigned to the TUN (IPv4 and/or IPv6, with prefix), at least one.
    pub addresses: Vec<IpCidr>,
    /// Tunnel MTU in bytes (default [`crate::constants::DEFAULT_TUNNEL_MTU_BYTES`]).
    pub mtu: u16,
    /// Underlay UDP socket address to bind (default `0.0.0.0:51820`; `[::]:PORT` for dual stack).
    pub listen: SocketAddr,
    /// Directory holding the identity written by `qshield keygen`.
    pub identity_dir: PathBuf,
    /// Data-plane cipher (default AES-256-GCM).
    pub cipher: CipherSuite,
    /// Control socket path for `qshield status` (default `/run/qshield/<name>.sock`).
    pub control_socket: PathBuf,
    /// Kernel offloads of the data plane (TUN TSO/GRO, UDP GSO/GRO): `auto` uses what the
    /// kernel offers, `off` none (default `auto`).
    pub offload: OffloadMode,
    /// Where the Prometheus metrics are served (plain HTTP, `GET /metrics`), if anywhere
    /// (`metrics_listen`; a non-loopback address needs `metrics_public = true`).
    pub metrics_listen: Option<SocketAddr>,
}

/// `[interface] offload`: whether the data plane asks the kernel for offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffloadMode {
    /// Every offload the kernel accepts (detected at start, shown in status and the log).
    #[default]
    Auto,
    /// None: one system call per packet each way (the fallback path, and a baseline).
    Off,
}

/// `[rotation]`: soft budgets start a new handshake, hard budgets refuse the old key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationConfig {
    /// Soft byte budget per key (plaintext bytes sent under it).
    pub rekey_after_bytes: u64,
    /// Soft time budget per key.
    pub rekey_after: Duration,
    /// Hard byte budget per key (> soft).
    pub reject_after_bytes: u64,
    /// Hard time budget per key (> soft).
    pub reject_after: Duration,
}

/// How sessions use QKD keys (FortiGate's names): the protocol core's own type.
pub use crate::proto::qkd_flow::QkdPolicy;

/// `[qkd]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QkdConfig {
    /// The policy.
    pub policy: QkdPolicy,
    /// How to reach the KME; present exactly when the policy is not `Disable`.
    pub kme: Option<KmeClientConfig>,
}

/// The SAE's connection to its KME (ETSI GS QKD 014 over mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmeClientConfig {
    /// Base URL, `https://host:port` (the API lives under `/api/v1/keys/`).
    pub url: String,
    /// This site's SAE ID (the Common Name of `cert_file`).
    pub sae_id: String,
    /// The peers' SAE ID unless a peer sets its own `qkd_sae_id`.
    pub peer_sae_id: Option<String>,
    /// CA certificate (PEM) the KME's certificate must chain to.
    pub ca_file: PathBuf,
    /// This SAE's client certificate (PEM).
    pub cert_file: PathBuf,
    /// This SAE's private key (PEM).
    pub key_file: PathBuf,
    /// QKD key size in bits (multiple of 8).
    pub key_size_bits: u32,
}

/// One `[[peer]]`.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Operator's name for the peer (unique, used in logs and status).
    pub name: String,
    /// Underlay address to send initiations to; `None` = wait for the peer to initiate.
    pub endpoint: Option<SocketAddr>,
    /// The peer's public identity (X25519 + ML-KEM-768).
    pub public_key: PublicIdentity,
    /// Inner addresses routed to this peer and accepted from it (at least one).
    pub allowed_ips: Vec<IpCidr>,
    /// Send a keepalive after this much silence (`None` = off).
    pub persistent_keepalive: Option<Duration>,
    /// The peer's SAE ID for QKD keys (from `qkd_sae_id`, else `[qkd] peer_sae_id`; `None`
    /// when QKD is disabled).
    pub qkd_sae_id: Option<String>,
}
