//! The daemon (`qshield up`): loads the identity, binds the UDP socket, creates the TUN,
//! builds the protocol core, runs the data-plane threads and the control socket, and shuts
//! everything down cleanly on SIGINT/SIGTERM (the TUN disappears with its file descriptor).

pub mod accept_loop;
pub mod clock;
pub mod control;
pub mod kme_calls;
pub mod logging;
pub mod prometheus;
pub mod qkd_worker;
pub mod runtime;
pub mod status;

use crate::config::{Config, ConfigError, identity_files};
use crate::net::{NetError, TunDevice, TunSettings, UdpSocket};
use crate::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
use crate::proto::session::RotationBudget;
use clock::Clock;
use control::{ControlError, ControlSocket};
use runtime::{Runtime, Shared};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The identity files could not be read.
    #[error(transparent)]
    Identity(#[from] identity_files::IdentityFileError),
    /// The TUN device or the UDP socket could not be set up.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The KME client could not be set up (certificate files).
    #[error(transparent)]
    Qkd(#[from] crate::qkd::QkdError),
    /// Threads or signal handlers could not be started.
    #[error("cannot start the daemon: {0}")]
    Start(#[from] std::io::Error),
    /// The metrics address could not be bound.
    #[error("cannot listen for metrics on {addr} (interface.metrics_listen): {source}")]
    Metrics {
        /// `interface.metrics_listen`.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Runs the daemon for the config at `path` until SIGINT or SIGTERM.
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let config = crate::config::load(path)?;
    let identity = identity_files::read_identity(&config.interface.identity_dir)?;
    crate::config::check_identity(&config, path, &identity.public())?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.clone())?;
    }
    let udp = Arc::new(UdpSocket::bind_offloaded(
        config.interface.listen,
        offload_wish(&config),
    )?);
    let tun = Arc::new(TunDevice::create(&tun_settings(&config))?);
    let (t, u) = (tun.offload(), udp.offload());
    tracing::info!(
        interface = %config.interface.name, tun_vnet_hdr = t.vnet_hdr, tun_tso = t.tso, tun_uso = t.uso,
        tun_gro = t.gro, udp_gso = u.gso, udp_gro = u.gro, "offloads"
    );
    let control = ControlSocket::bind(&config.interface.control_socket)?;
    let metrics = match config.interface.metrics_listen {
        None => None,
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|source| DaemonError::Metrics { addr, source })?,
        ),
    };
    let clock = Clock::start();
    let endpoint = Endpoint::new(
        endpoint_settings(&config, identity, &clock),
        Box::new(crate::crypto::random::SystemRng),
    );
    tracing::info!(
        interface = %config.interface.name, listen = %config.interface.listen, peers = config.peers.len(),
        cipher = %config.interface.cipher, public_key = %endpoint.public().fingerprint(), "qshield up"
    );
    let qkd = qkd_fetcher(&config)?;
    let jobs = qkd_worker::QkdQueue::new();
    let shared = Arc::new(Shared {
        interface: config.interface.name.clone(),
        endpoint: Mutex::new(endpoint),
        clock,
        tun: tun.clone(),
        udp: udp.clone(),
        shutdown: shutdown.clone(),
        mtu: usize::from(config.interface.mtu),
        qkd_jobs: qkd.is_some().then_some(jobs.clone()),
        kme_calls: Default::default(),
        peer_queues: Default::default(),
    });
    let runtime = Runtime::start(shared.clone(), qkd.map(|f| (jobs, f)))?;
    let mode = match config.interface.offload {
        crate::config::OffloadMode::Auto => "auto",
        crate::config::OffloadMode::Off => "off",
    };
    let info = Arc::new(
        status::DaemonInfo::new(&config, tun.clone(), udp.clone()).with_offload(mode, t, u),
    );
    let metrics_thread = match metrics {
        None => None,
        Some(listener) => {
            let at = listener.local_addr()?;
            tracing::info!(interface = %config.interface.name, %at, "Prometheus metrics at http://{at}/metrics");
            let (shared, info, stop) = (shared.clone(), info.clone(), shutdown.clone());
            Some(
                std::thread::Builder::new()
                    .name("qs-metrics".into())
                    .spawn(move || {
                        prometheus::serve(listener, &stop, || status::report(&shared, &info))
                    })?,
            )
        }
    };
    control.serve(&shutdown, || status::report(&shared, &info).to_string());
    tracing::info!(interface = %config.interface.name, "shutting down");
    runtime.stop();
    shutdown.store(true, Ordering::Relaxed);
    if let Some(t) = metrics_thread {
        let _ = t.join();
    }
    Ok(())
}

/// The KME client and each peer's SAE ID, when the QKD policy is not `disable`.
pub fn qkd_fetcher(config: &Config) -> Result<Option<qkd_worker::QkdFetcher>, DaemonError> {
    let Some(kme) = &config.qkd.kme else {
        return Ok(None);
    };
    let source = crate::qkd::client::Etsi014Client::new(kme)?;
    tracing::info!(kme = %kme.url, sae_id = %kme.sae_id, policy = ?config.qkd.policy, "QKD keys from the KME (ETSI GS QKD 014, mutual TLS)");
    Ok(Some(qkd_worker::QkdFetcher {
        source: Arc::new(source),
        peer_saes: config
            .peers
            .iter()
            .map(|p| p.qkd_sae_id.clone().unwrap_or_default())
            .collect(),
        key_bits: kme.key_size_bits,
    }))
}

/// The TUN the config asks for: its addresses, and a route for every allowed prefix.
pub fn tun_settings(config: &Config) -> TunSettings {
    TunSettings {
        name: config.interface.name.clone(),
        mtu: config.interface.mtu,
        offload: offload_wish(config),
        addresses: config.interface.addresses.clone(),
        routes: config
            .peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().copied())
            .collect(),
    }
}

/// The offloads to ask for: all with `offload = "auto"` (less any named in
/// `QSHIELD_OFFLOAD_DISABLE`), none with `off`.
pub fn offload_wish(config: &Config) -> crate::net::OffloadWish {
    match config.interface.offload {
        crate::config::OffloadMode::Auto => crate::net::OffloadWish::all().from_env(),
        crate::config::OffloadMode::Off => crate::net::OffloadWish::none(),
    }
}

/// The core's settings from a validated config.
pub fn endpoint_settings(
    config: &Config,
    identity: crate::crypto::StaticIdentity,
    clock: &Clock,
) -> EndpointSettings {
    let r = &config.rotation;
    EndpointSettings {
        identity,
        suite: config.interface.cipher,
        budget: RotationBudget {
            rekey_after_bytes: r.rekey_after_bytes,
            rekey_after: r.rekey_after,
            reject_after_bytes: r.reject_after_bytes,
            reject_after: r.reject_after,
        },
        peers: config.peers.iter().map(peer_settings).collect(),
        qkd_policy: config.qkd.policy,
        unix_ns_at_origin: clock.unix_ns_at_origin(),
    }
}

fn peer_settings(p: &crate::config::PeerConfig) -> PeerSettings {
    PeerSettings {
        name: p.name.clone(),
        public: p.public_key.clone(),
        endpoint: p.endpoint,
        allowed_ips: p.allowed_ips.clone(),
        persistent_keepalive: p.persistent_keepalive,
    }
}
