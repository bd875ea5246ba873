//! Wiring: the shared state, the router, the mutual-TLS accept loop (the caller's CN goes
//! into each request's extensions), the link leaders, the periodic status log, and
//! shutdown (SIGINT/SIGTERM for the binary, [`KmeHandle::shutdown`] in-process).

use super::api::{self, ApiError};
use super::config::{KmeConfig, LinkConfig, LinkRole, SourceKind};
use super::cvqkd::board::Board;
use super::cvqkd::follower::{self, FollowerLink};
use super::cvqkd::leader::{self, LeaderLink};
use super::links::{self, LinkPush};
use super::relay;
use super::roles;
use super::status::{self, Metrics};
use super::store::{LinkLevels, Store, StoreError};
use super::tls::{self, Caller};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::middleware;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Rates are computed over windows of this length.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Why the KME could not start.
#[derive(Debug, thiserror::Error)]
pub enum KmeError {
    /// The config was refused.
    #[error(transparent)]
    Config(#[from] super::config::KmeConfigError),
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

/// State shared by every handler and task.
pub struct Shared {
    /// The configuration.
    pub cfg: KmeConfig,
    /// The durable store.
    pub store: Arc<Store>,
    /// Counters.
    pub metrics: Metrics,
    /// HTTPS client for calls to neighbour KMEs (this KME's certificate).
    pub peers: reqwest::Client,
    /// Figures and alarms of the CV-QKD links.
    pub cvqkd: Board,
    /// Bob's end of each CV-QKD link this KME follows, by the leader's ID.
    pub followers: BTreeMap<String, Arc<FollowerLink>>,
    /// The rate and volume buckets of `[[sae]]` and `[[sae_pair]]` limits.
    pub quotas: super::quota::Quotas,
}

impl Shared {
    /// The alarm of the link to `peer`, as a 503 to refuse a relay over it.
    pub fn refuse_if_alarm(&self, peer: &str) -> Result<(), ApiError> {
        match self.cvqkd.alarm(peer) {
            None => Ok(()),
            Some(why) => {
                self.metrics.link_add(peer, "errors_503", 1);
                Err(ApiError::unavailable(format!(
                    "QKD link to '{peer}' is under alarm ({why}); nothing is relayed over it"
                )))
            }
        }
    }

    /// The levels of the link to `peer`, read on the blocking pool.
    pub async fn link_levels(&self, peer: &str) -> Result<LinkLevels, StoreError> {
        let peer = peer.to_string();
        self.blocking(move |s| s.link_levels(&peer)).await
    }

    /// Runs a store operation on the blocking pool.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Db(format!("store task: {e}")))?
    }
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
    let peer_addrs: Vec<_> = cfg.links.iter().map(|l| (l.peer.clone(), l.addr)).collect();
    let peers = tls::client(&cfg.ca_file, &cfg.cert_file, &cfg.key_file, &peer_addrs)?;
    let dir = cfg.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
    let metrics = Metrics::from_saved(store.load_counters()?);
    let links = CvqkdSetup::build(&cfg).await?;
    let shared = Arc::new(Shared {
        cfg,
        store: Arc::new(store),
        metrics,
        peers,
        cvqkd: links.board,
        followers: links
            .followers
            .iter()
            .map(|(f, _)| (f.peer().to_string(), f.clone()))
            .collect(),
        quotas: Default::default(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let background = Background {
        leaders: links.leaders,
        quantum: links.followers,
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
            (FollowerLink, super::cvqkd::board::CvqkdFigures),
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

/// Tasks started with the server.
struct Background {
    leaders: Vec<LeaderLink>,
    quantum: Vec<(Arc<FollowerLink>, TcpListener)>,
}

/// Runs the KME of config file `path` until SIGINT or SIGTERM.
pub fn run(path: &std::path::Path) -> Result<(), KmeError> {
    let cfg = super::config::load(path)?;
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

fn router(shared: Arc<Shared>) -> Router {
    // Each group of endpoints admits one role of certificate (`kme::roles`).
    let etsi = Router::new()
        .route("/api/v1/keys/{slave}/status", get(api::status))
        .route(
            "/api/v1/keys/{slave}/enc_keys",
            get(api::enc_keys_get).post(api::enc_keys_post),
        )
        .route(
            "/api/v1/keys/{master}/dec_keys",
            get(api::dec_keys_get).post(api::dec_keys_post),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            roles::etsi_endpoints,
        ));
    let kme_to_kme = Router::new()
        .route("/kme/v1/relay", post(relay::relay_in))
        .route("/kme/v1/link/keys", post(link_keys))
        .route(
            super::cvqkd::wire::PATH,
            post(follower::handle).layer(DefaultBodyLimit::max(super::cvqkd::wire::body_limit(
                &shared.cfg.links,
            ))),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            roles::kme_endpoints,
        ));
    Router::new()
        .merge(etsi)
        .merge(kme_to_kme)
        .route("/kme/v1/status", get(kme_status))
        .fallback(api::fallback)
        .method_not_allowed_fallback(api::fallback)
        .with_state(shared)
}

async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut stop: watch::Receiver<bool>,
    background: Background,
) {
    let app = router(shared.clone());
    let mut tasks = JoinSet::new();
    start_background(&shared, &mut tasks, background);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let (app, acc, stop) = (app.clone(), acceptor.clone(), stop.clone());
                    conns.spawn(connection(tcp, acc, app, stop));
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {},
        }
    }
    drop(listener);
    tasks.abort_all();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    save_counters(&shared).await;
}

fn start_background(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, bg: Background) {
    let random_leaders = shared
        .cfg
        .links
        .iter()
        .filter(|l| l.role == LinkRole::Leader && l.source == SourceKind::Random);
    for link in random_leaders {
        tracing::info!(peer = %link.peer, rate = link.rate_bits_per_second, "link key source: {}", links::RandomSource::LABEL);
        tasks.spawn(links::run_leader(shared.clone(), link.clone()));
    }
    for leader in bg.leaders {
        tasks.spawn(leader::run(shared.clone(), leader));
    }
    for (link, listener) in bg.quantum {
        tasks.spawn(follower::run_quantum_listener(
            shared.clone(),
            link,
            listener,
        ));
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
            "link key source: {}", super::cvqkd::LABEL
        );
    }
    tasks.spawn(periodic(shared.clone()));
    tasks.spawn(api::expire_pending(shared.clone()));
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
    if let Err(e) = shared.blocking(move |s| s.save_counters(&snapshot)).await {
        tracing::warn!("saving counters: {e}");
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!("TLS handshake refused: {e}"),
        Err(_) => return tracing::debug!("TLS handshake timed out"),
    };
    let cn = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(tls::common_name);
    let Some(cn) = cn else {
        return tracing::debug!("client certificate without a Common Name");
    };
    let svc = TowerToHyperService::new(app.layer(Extension(Caller(cn))));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {},
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// `POST /kme/v1/link/keys`: the leader of a link pushes key blocks to this follower.
async fn link_keys(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A CV-QKD link never carries key material: both ends distill their own copy.
    let is_follower = shared.cfg.links.iter().any(|l| {
        l.peer == caller && l.role == LinkRole::Follower && l.source == SourceKind::Random
    });
    if !is_follower {
        return Err(ApiError::Unauthorized);
    }
    let push: LinkPush = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_detail("Bad request format", "body", e.to_string()))?;
    let blocks =
        links::decode_push(&push).ok_or_else(|| ApiError::bad("Bad request format: base64"))?;
    let peer = caller.clone();
    let stored = shared
        .blocking(move |s| s.follower_store(&peer, &blocks))
        .await?;
    shared
        .metrics
        .link_add(&caller, "received_bits", 8 * stored);
    Ok(Json(serde_json::json!({})))
}

/// `GET /kme/v1/status`: for neighbour KMEs and this KME's SAEs.
async fn kme_status(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
) -> Result<Json<status::KmeStatus>, ApiError> {
    let known =
        shared.cfg.saes.contains(&caller) || shared.cfg.links.iter().any(|l| l.peer == caller);
    if !known {
        return Err(ApiError::Unauthorized);
    }
    Ok(Json(status::document(&shared).await))
}
