//! The key management entity (`qshield kme`, docs/kme.md): the ETSI GS QKD 014 V1.1.1 key
//! delivery API over HTTPS with mutual TLS ([`http`], [`tls`]), durable key pools in an
//! embedded redb store ([`store`], behind the async [`pools`] facade), QKD links between
//! KMEs fed by a [`link::random::KeySupply`] (today a CSPRNG labelled NOT QKD) or the CV-QKD
//! simulator ([`link::cvqkd`]), hop-by-hop one-time-pad relay through trusted nodes ([`relay`]),
//! certificate roles ([`roles`]), typed counters ([`metrics`]) and the status document
//! ([`status`]). It owns everything a KME does; the SAE side lives in `crate::qkd`.
//!
//! This module is the wiring: it builds the shared [`state::Shared`], starts the link
//! tasks (each given only its [`link::LinkContext`]) and the HTTP server, and stops them.
//! Handlers import the state, pools, metrics and neighbour client, never this module.
//!
//! Start one in-process with [`start`] (or [`start_on`] with a bound listener) and a
//! [`KmeConfig`] from [`config::load`] / [`config::parse`]; the binary runs [`run`].

pub mod config;
pub mod error;
pub mod http;
pub mod link;
pub mod metrics;
pub mod neighbours;
pub mod passed_pads;
pub mod pools;
pub mod prometheus;
pub mod quota;
pub mod refusal;
pub mod relay;
pub mod roles;
pub mod routes;
pub mod routing;
pub mod shares_in;
pub mod state;
pub mod status;
pub mod store;
pub mod tls;
pub mod topology;

pub use config::{KmeConfig, KmeConfigError};

use config::{LinkConfig, LinkRole, SourceKind};
use link::cvqkd::board::Board;
use link::cvqkd::follower::{self, FollowerLink};
use link::cvqkd::leader::{self, LeaderLink};
use link::random;
use metrics::{Metrics, PairCounter};
use neighbours::Neighbours;
use pools::{Pools, unix_ms};
use state::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::StoreError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Rates are computed over windows of this length.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Why the KME could not start.
#[derive(Debug, thiserror::Error)]
pub enum KmeError {
    /// The config was refused.
    #[error(transparent)]
    Config(#[from] config::KmeConfigError),
    /// Certificates or keys could not be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A CV-QKD link could not be set up (out of range, quantum port taken).
    #[error("link to '{peer}': {problem}")]
    Cvqkd {
        /// The link's peer.
        peer: String,
        /// What is wrong.
        problem: String,
    },
    /// The listening socket could not be bound or the runtime not started.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running KME (in-process).
pub struct KmeHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl KmeHandle {
    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The status document (what `GET /kme/v1/status` answers).
    pub async fn status(&self) -> status::KmeStatus {
        status::document(&self.shared).await
    }

    /// Takes this KME's link to `peer` out of service (`false`: reported under alarm,
    /// nothing relayed over it) or back into it (`true`).
    pub fn set_link_in_service(&self, peer: &str, in_service: bool) {
        self.shared.routing.set_in_service(peer, in_service);
    }

    /// Stops accepting, lets open connections finish (up to 5 s), saves the counters.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts a KME on the current tokio runtime, listening on `cfg.listen`.
pub async fn start(cfg: KmeConfig) -> Result<KmeHandle, KmeError> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| KmeError::Io {
            context: format!("binding {}", cfg.listen),
            source,
        })?;
    start_on(cfg, listener).await
}

/// Starts a KME on an already bound listener (tests bind every KME's port first, so
/// their configs can name each other).
pub async fn start_on(cfg: KmeConfig, listener: TcpListener) -> Result<KmeHandle, KmeError> {
    let addr = listener.local_addr().map_err(|source| KmeError::Io {
        context: "reading the listening address".into(),
        source,
    })?;
    let acceptor = TlsAcceptor::from(tls::server_config(
        &cfg.id,
        &cfg.ca_file,
        &cfg.cert_file,
        &cfg.key_file,
    )?);
    let (neighbours, pools, metrics) = open_state(&cfg).await?;
    let metrics_listener = match cfg.metrics_listen {
        None => None,
        Some(at) => Some(TcpListener::bind(at).await.map_err(|source| KmeError::Io {
            context: format!("binding metrics_listen {at}"),
            source,
        })?),
    };
    let links = CvqkdSetup::build(&cfg).await?;
    let link_state = routing::Routing::new(&cfg.id);
    let shared = Arc::new(Shared {
        cfg,
        pools,
        metrics,
        neighbours,
        cvqkd: Arc::new(links.board),
        followers: links
            .followers
            .iter()
            .map(|(f, _)| (f.peer().to_string(), f.clone()))
            .collect(),
        quotas: Default::default(),
        passed_pads: Default::default(),
        routing: link_state,
        shares_in: Default::default(),
    });
    let (stop, stop_rx) = watch::channel(false);
    if let Some(l) = &metrics_listener
        && let Ok(at) = l.local_addr()
    {
        tracing::info!(%at, "Prometheus metrics at http://{at}/metrics");
    }
    let background = Background {
        leaders: links.leaders,
        quantum: links.followers,
        metrics: metrics_listener,
    };
    let task = tokio::spawn(serve(
        shared.clone(),
        listener,
        acceptor,
        stop_rx,
        background,
    ));
    tracing::info!(kme = %shared.cfg.id, %addr, "KME listening (ETSI GS QKD 014 over mutual TLS)");
    Ok(KmeHandle {
        addr,
        stop,
        task,
        shared,
    })
}

/// The neighbour client, the opened store and the counters saved in it: the state
/// [`start_on`] builds before anything serves.
async fn open_state(cfg: &KmeConfig) -> Result<(Neighbours, Pools, Arc<Metrics>), KmeError> {
    let peer_addrs: Vec<_> = cfg.links.iter().map(|l| (l.peer.clone(), l.addr)).collect();
    let client = tls::client(&cfg.ca_file, &cfg.cert_file, &cfg.key_file, &peer_addrs)?;
    let neighbours = Neighbours::new(client, &cfg.links);
    let (pools, saved) = Pools::open(cfg.data_dir.clone()).await?;
    Ok((neighbours, pools, Arc::new(Metrics::from_saved(saved))))
}

/// The handlers' shared state as [`start_on`] builds it, but with no listener, no TLS
/// acceptor and no link task: for driving [`http::router`] in-process (the fuzz targets,
/// which put the caller's [`tls::Caller`] into each request as the accept loop does).
/// A config with a CV-QKD link is refused (setting one up binds its quantum port).
#[doc(hidden)]
pub async fn shared_state_without_server(cfg: KmeConfig) -> Result<Arc<Shared>, KmeError> {
    if let Some(link) = cfg.links.iter().find(|l| l.source == SourceKind::Cvqkd) {
        return Err(KmeError::Cvqkd {
            peer: link.peer.clone(),
            problem: "CV-QKD links are not set up without a server".into(),
        });
    }
    let (neighbours, pools, metrics) = open_state(&cfg).await?;
    let link_state = routing::Routing::new(&cfg.id);
    Ok(Arc::new(Shared {
        cfg,
        pools,
        metrics,
        neighbours,
        cvqkd: Arc::new(Board::default()),
        followers: Default::default(),
        quotas: Default::default(),
        passed_pads: Default::default(),
        routing: link_state,
        shares_in: Default::default(),
    }))
}

/// The CV-QKD ends of this KME's links, built (codes, V_A) and bound before serving.
struct CvqkdSetup {
    board: Board,
    leaders: Vec<LeaderLink>,
    followers: Vec<(Arc<FollowerLink>, TcpListener)>,
}

impl CvqkdSetup {
    async fn build(cfg: &KmeConfig) -> Result<Self, KmeError> {
        let mut me = CvqkdSetup {
            board: Board::default(),
            leaders: Vec::new(),
            followers: Vec::new(),
        };
        let cv_links = cfg.links.iter().filter(|l| l.source == SourceKind::Cvqkd);
        for link in cv_links {
            let fail = |problem: String| KmeError::Cvqkd {
                peer: link.peer.clone(),
                problem,
            };
            match link.role {
                LinkRole::Leader => {
                    let l = link.clone();
                    let (leader, figures) = blocking_setup(move || LeaderLink::new(&l))
                        .await
                        .map_err(fail)?;
                    me.board.register(&link.peer, figures);
                    me.leaders.push(leader);
                }
                LinkRole::Follower => {
                    let (f, listener) = Self::follower(cfg.listen, link).await.map_err(fail)?;
                    me.board.register(&link.peer, f.1);
                    me.followers.push((Arc::new(f.0), listener));
                }
            }
        }
        Ok(me)
    }

    async fn follower(
        listen: SocketAddr,
        link: &LinkConfig,
    ) -> Result<
        (
            (FollowerLink, link::cvqkd::board::CvqkdFigures),
            TcpListener,
        ),
        String,
    > {
        let addr = FollowerLink::quantum_listen(listen, link).ok_or("not a cvqkd link")?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding the quantum port {addr}: {e}"))?;
        let l = link.clone();
        let built = blocking_setup(move || FollowerLink::new(&l)).await?;
        Ok((built, listener))
    }
}

async fn blocking_setup<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("setup task: {e}"))?
}

/// Runs the KME until `stop` changes: the background tasks and the HTTP server; at the
/// end the background tasks are stopped, connections get their grace, counters are saved.
async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: watch::Receiver<bool>,
    background: Background,
) {
    let mut tasks = JoinSet::new();
    start_background(&shared, &mut tasks, background);
    http::serve(shared.clone(), listener, acceptor, stop, || {
        tasks.abort_all()
    })
    .await;
    save_counters(&shared).await;
}

/// Tasks started with the server.
struct Background {
    leaders: Vec<LeaderLink>,
    quantum: Vec<(Arc<FollowerLink>, TcpListener)>,
    /// The bound `metrics_listen`, if configured.
    metrics: Option<TcpListener>,
}

/// Runs the KME of config file `path` until SIGINT or SIGTERM.
pub fn run(path: &std::path::Path) -> Result<(), KmeError> {
    let cfg = config::load(path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| KmeError::Io {
            context: "starting the runtime".into(),
            source,
        })?;
    let result = rt.block_on(async {
        let handle = start(cfg).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(())
    });
    // A CV-QKD block being decoded on the blocking pool is abandoned, not awaited: its key
    // was never stored, and the leader settles the block at the next start.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}

fn start_background(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, bg: Background) {
    let random_leaders = shared
        .cfg
        .links
        .iter()
        .filter(|l| l.role == LinkRole::Leader && l.source == SourceKind::Random);
    for link in random_leaders {
        tracing::info!(peer = %link.peer, rate = link.rate_bits_per_second, "link key source: {}", random::RandomSource::LABEL);
        tasks.spawn(random::run_leader(shared.link_context(link)));
    }
    for leader in bg.leaders {
        let ctx = shared.link_context(leader.link());
        tasks.spawn(leader::run(ctx, leader));
    }
    for (end, listener) in bg.quantum {
        let Some(link) = shared.cfg.links.iter().find(|l| l.peer == end.peer()) else {
            continue;
        };
        let ctx = shared.link_context(link);
        tasks.spawn(follower::run_quantum_listener(ctx, end, listener));
    }
    for l in shared
        .cfg
        .links
        .iter()
        .filter(|l| l.source == SourceKind::Cvqkd)
    {
        let f = shared.cvqkd.figures(&l.peer).unwrap_or_default();
        tracing::info!(
            peer = %l.peer,
            distance_km = f.distance_km,
            va = f.modulation_variance_snu,
            symbol_rate_hz = f.symbol_rate_hz,
            block_size = f.block_size,
            "link key source: {}", link::cvqkd::LABEL
        );
    }
    tasks.spawn(periodic(shared.clone()));
    tasks.spawn(routing::run(shared.clone()));
    if let Some(listener) = bg.metrics {
        tasks.spawn(serve_metrics(shared.clone(), listener));
    }
    tasks.spawn(expire_pending(shared.clone()));
    let roles: Vec<(String, LinkRole)> = shared
        .cfg
        .links
        .iter()
        .map(|l| (l.peer.clone(), l.role))
        .collect();
    let s = shared.clone();
    let sweep_roles = roles.clone();
    tasks.spawn(async move { passed_pads::sweep(&s.passed_pads, &s.pools, &sweep_roles).await });
    let s = shared.clone();
    tasks.spawn(async move { passed_pads::report_spent(&s.pools, &s.neighbours, &roles).await });
}

/// Serves `GET /metrics` (the Prometheus text format) on `listener`, plain HTTP.
async fn serve_metrics(shared: Arc<Shared>, listener: TcpListener) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(s): axum::extract::State<Arc<Shared>>| async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
                        prometheus::render(&s).await,
                    )
                },
            ),
        )
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("metrics listener stopped: {e}");
    }
}

async fn periodic(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    let log_every = shared.cfg.status_log_seconds;
    let mut last_log = Instant::now();
    loop {
        tick.tick().await;
        shared.metrics.sample(Instant::now());
        if log_every > 0 && last_log.elapsed() >= Duration::from_secs(log_every) {
            last_log = Instant::now();
            tracing::info!("{}", status::log_line(&status::document(&shared).await));
            save_counters(&shared).await;
        }
    }
}

async fn save_counters(shared: &Arc<Shared>) {
    let snapshot = shared.metrics.snapshot();
    if let Err(e) = shared.pools.save_counters(snapshot).await {
        tracing::warn!("saving counters: {e}");
    }
}

/// How often undelivered keys are checked for expiry.
const EXPIRY_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Background task: erases keys that waited longer than `pending_key_expiry` for their
/// slave, logging each pair's count; their IDs are never served again.
async fn expire_pending(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let (now, adopt) = (unix_ms(), shared.expiry_deadline_ms());
        let kept = shared.delivered_kept_ms();
        match shared.pools.expire_pending(now, adopt, kept).await {
            Ok(expired) => {
                for ((master, slave), n) in expired {
                    tracing::warn!(%master, %slave, keys = n, "undelivered keys expired and erased (pending_key_expiry)");
                    shared
                        .metrics
                        .pair_add(&master, &slave, PairCounter::KeysExpired, n);
                }
            }
            Err(e) => tracing::warn!("expiring pending keys: {e}"),
        }
    }
}
