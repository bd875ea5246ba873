//! Wiring: the shared state, the router, the mutual-TLS accept loop (the caller's CN goes
//! into each request's extensions), the link leaders, the periodic status log, and
//! shutdown (SIGINT/SIGTERM for the binary, [`KmeHandle::shutdown`] in-process).

use super::api::{self, ApiError};
use super::config::ConnectionLimits;
use super::config::{KmeConfig, LinkConfig, LinkRole, SourceKind};
use super::cvqkd::board::Board;
use super::cvqkd::follower::{self, FollowerLink};
use super::cvqkd::leader::{self, LeaderLink};
use super::links::{self, LinkPush};
use super::metrics::{LinkCounter, Metrics};
use super::pools::Pools;
use super::relay;
use super::roles;
use super::status;
use super::store::StoreError;
use super::tls::{self, Caller};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::middleware;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// How long `accept` is left alone after it failed (out of descriptors, most often), so a
/// listener that stays readable does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line about failing `accept`, and one about connections refused over a
/// cap, per this interval (with the count).
const CONNECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Descriptors kept for everything but API connections (the store, calls to neighbours,
/// quantum ports, the runtime) when `max_connections` is fitted to `RLIMIT_NOFILE`.
const RESERVED_DESCRIPTORS: usize = 64;
/// An HTTP/2 connection is pinged after this long without a frame from the client...
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// ...and closed if the ping is not answered within this.
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Rates are computed over windows of this length.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// JSON around each block of a link push besides its base64 key (`{"seq":N,"key":""},`
/// with N up to 20 digits is 38 bytes), rounded up.
const LINK_PUSH_BLOCK_OVERHEAD_BYTES: usize = 64;
/// JSON around the blocks of a link push (`{"blocks":[]}`), rounded up.
const LINK_PUSH_ENVELOPE_BYTES: usize = 64;
/// The body limit of `POST /kme/v1/link/keys`: the largest push a leader sends,
/// [`links::MAX_BLOCKS_PER_PUSH`] blocks of [`links::MAX_BLOCK_BYTES`] (a pair may give
/// one direction the whole block pulled from the source) in base64, with their JSON.
pub const LINK_PUSH_BODY_LIMIT_BYTES: usize =
    link_push_body_limit_bytes(links::MAX_BLOCKS_PER_PUSH, links::MAX_BLOCK_BYTES);

/// The largest body of a push of `blocks` blocks of at most `block_bytes` each.
const fn link_push_body_limit_bytes(blocks: usize, block_bytes: usize) -> usize {
    let base64_bytes = block_bytes.div_ceil(3) * 4;
    LINK_PUSH_ENVELOPE_BYTES + blocks * (base64_bytes + LINK_PUSH_BLOCK_OVERHEAD_BYTES)
}

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
    /// The durable store, behind its async facade.
    pub pools: Pools,
    /// Counters.
    pub metrics: Arc<Metrics>,
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
                self.metrics.link_add(peer, LinkCounter::Errors503, 1);
                Err(ApiError::unavailable(format!(
                    "QKD link to '{peer}' is under alarm ({why}); nothing is relayed over it"
                )))
            }
        }
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
    let (pools, saved) = Pools::open(cfg.data_dir.clone()).await?;
    let metrics = Arc::new(Metrics::from_saved(saved));
    let links = CvqkdSetup::build(&cfg).await?;
    let shared = Arc::new(Shared {
        cfg,
        pools,
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
        .route(
            "/kme/v1/link/keys",
            post(link_keys).layer(DefaultBodyLimit::max(LINK_PUSH_BODY_LIMIT_BYTES)),
        )
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
    let limits = shared.cfg.connections;
    let mut conns = Connections::new(fit_to_descriptors(limits));
    let mut accept_errors = Throttled::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, from)) => {
                    let Some(authenticated) = conns.admit(from.ip()) else {
                        drop(tcp);
                        continue;
                    };
                    let (app, acc, stop) = (app.clone(), acceptor.clone(), stop.clone());
                    let task = connection(tcp, acc, app, stop, authenticated.clone(), limits);
                    let abort = conns.tasks.spawn(task);
                    conns.opened(from.ip(), authenticated, abort);
                }
                Err(e) => {
                    if let Some(n) = accept_errors.note() {
                        tracing::warn!(
                            "accept failed ({n} times since the last report): {e}; retrying every {} ms",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    // Out of descriptors: the oldest quarter of the connections still in
                    // their TLS handshake give theirs up, so the backlog (where an SAE may
                    // wait behind connections that will never authenticate) drains fast.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        let n = conns.handshakes().div_ceil(4);
                        for _ in 0..n {
                            conns.evict_oldest_handshake(None);
                        }
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = stop.changed() => break,
            Some(done) = conns.tasks.join_next_with_id(), if !conns.tasks.is_empty() => {
                conns.closed(done.map_or_else(|e| e.id(), |(id, ())| id));
            }
        }
    }
    drop(listener);
    tasks.abort_all();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.tasks.join_next().await.is_some() {}
    })
    .await;
    save_counters(&shared).await;
}

/// Events reported at most once per [`CONNECTION_LOG_INTERVAL`], with their count.
#[derive(Default)]
struct Throttled {
    /// Events not reported yet.
    unreported: u64,
    last_report: Option<Instant>,
}

impl Throttled {
    /// Counts an event; the number to report now, if a report is due.
    fn note(&mut self) -> Option<u64> {
        self.unreported += 1;
        if self
            .last_report
            .is_some_and(|t| t.elapsed() < CONNECTION_LOG_INTERVAL)
        {
            return None;
        }
        self.last_report = Some(Instant::now());
        Some(std::mem::take(&mut self.unreported))
    }
}

/// `limits` with `max_connections` lowered to what `RLIMIT_NOFILE` leaves once
/// [`RESERVED_DESCRIPTORS`] are kept for the rest of the KME.
fn fit_to_descriptors(mut limits: ConnectionLimits) -> ConnectionLimits {
    let Some(nofile) = descriptor_limit() else {
        return limits;
    };
    let room = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if room < limits.max_connections {
        tracing::info!(
            "at most {room} API connections (max_connections is {}, but the descriptor limit is {nofile})",
            limits.max_connections
        );
        limits.max_connections = room;
    }
    limits
}

/// This process's soft `RLIMIT_NOFILE`, from /proc/self/limits (`None`: unlimited or
/// unreadable).
fn descriptor_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The open API connections: how many from each source address, which are still in
/// their TLS handshake, in the order they were admitted.
struct Connections {
    tasks: JoinSet<()>,
    /// Admission number of each connection's task.
    by_task: HashMap<tokio::task::Id, u64>,
    /// By admission number (oldest first).
    open: BTreeMap<u64, OpenConnection>,
    per_source: HashMap<IpAddr, usize>,
    next: u64,
    limits: ConnectionLimits,
    /// Connections refused over a cap.
    refused: Throttled,
}

struct OpenConnection {
    source: IpAddr,
    /// Set once the TLS handshake completed with a client certificate.
    authenticated: Arc<AtomicBool>,
    abort: AbortHandle,
}

impl Connections {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            tasks: JoinSet::new(),
            by_task: HashMap::new(),
            open: BTreeMap::new(),
            per_source: HashMap::new(),
            next: 0,
            limits,
            refused: Throttled::default(),
        }
    }

    /// Whether a new connection from `source` may be served (its authenticated flag) or
    /// must be closed at once. At a cap the oldest connection still in its TLS handshake
    /// (from `source`, at the per-source cap) is closed to make room; if there is none,
    /// the new one is refused.
    fn admit(&mut self, source: IpAddr) -> Option<Arc<AtomicBool>> {
        let from_source = self.per_source.get(&source).copied().unwrap_or(0);
        let refused = if from_source >= self.limits.max_connections_per_source
            && !self.evict_oldest_handshake(Some(source))
        {
            Some("max_connections_per_source")
        } else if self.open.len() >= self.limits.max_connections
            && !self.evict_oldest_handshake(None)
        {
            Some("max_connections")
        } else {
            None
        };
        match refused {
            Some(cap) => {
                if let Some(n) = self.refused.note() {
                    tracing::warn!(%source, "{n} connections closed at once since the last report ({cap} reached)");
                }
                None
            }
            None => Some(Arc::new(AtomicBool::new(false))),
        }
    }

    /// Records the connection [`Self::admit`] let in.
    fn opened(&mut self, source: IpAddr, authenticated: Arc<AtomicBool>, abort: AbortHandle) {
        let n = self.next;
        self.next += 1;
        self.by_task.insert(abort.id(), n);
        *self.per_source.entry(source).or_default() += 1;
        let conn = OpenConnection {
            source,
            authenticated,
            abort,
        };
        self.open.insert(n, conn);
    }

    /// Forgets the connection whose task ended.
    fn closed(&mut self, task: tokio::task::Id) {
        if let Some(n) = self.by_task.remove(&task) {
            self.forget(n);
        }
    }

    fn forget(&mut self, n: u64) -> Option<OpenConnection> {
        let conn = self.open.remove(&n)?;
        if let Some(count) = self.per_source.get_mut(&conn.source) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&conn.source);
            }
        }
        Some(conn)
    }

    /// How many connections are still in their TLS handshake.
    fn handshakes(&self) -> usize {
        self.open
            .values()
            .filter(|c| !c.authenticated.load(Ordering::Acquire))
            .count()
    }

    /// Closes the oldest connection (from `source`, if given) still in its TLS handshake;
    /// false if there is none.
    fn evict_oldest_handshake(&mut self, source: Option<IpAddr>) -> bool {
        let oldest = self
            .open
            .iter()
            .find(|(_, c)| {
                !c.authenticated.load(Ordering::Acquire) && source.is_none_or(|s| s == c.source)
            })
            .map(|(n, _)| *n);
        let Some(conn) = oldest.and_then(|n| self.forget(n)) else {
            return false;
        };
        tracing::debug!(source = %conn.source, "closing a connection still in its TLS handshake to make room");
        conn.abort.abort();
        true
    }
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
    if let Err(e) = shared.pools.save_counters(snapshot).await {
        tracing::warn!("saving counters: {e}");
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    app: Router,
    mut stop: watch::Receiver<bool>,
    authenticated: Arc<AtomicBool>,
    limits: ConnectionLimits,
) {
    let _ = tcp.set_nodelay(true);
    let handshake = acceptor.accept(tcp);
    let tls = match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
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
    authenticated.store(true, Ordering::Release);
    let activity = Arc::new(Activity::new());
    let svc = TowerToHyperService::new(app.layer(Extension(Caller(cn))));
    let tracked = activity.clone();
    let svc = hyper::service::service_fn(move |req| {
        use hyper::service::Service;
        let busy = tracked.begin();
        let answer = svc.call(req);
        async move {
            let r = answer.await;
            drop(busy);
            r
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    loop {
        let check = tokio::time::Instant::now() + activity.idle_left(limits.idle_timeout);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(check) => {
                if activity.idle_left(limits.idle_timeout).is_zero() {
                    tracing::debug!("closing a connection idle for {:?}", limits.idle_timeout);
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

/// Whether a connection is handling a request, and since when it has not been.
struct Activity {
    since: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended, milliseconds after `since`.
    last_ms: AtomicU64,
}

/// A request being handled (ends when dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.since.elapsed().as_millis() as u64;
        self.0.last_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// How long until the connection has been idle for `timeout` (a full `timeout` while a
    /// request is being handled; zero once it has).
    fn idle_left(&self, timeout: Duration) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return timeout;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        let idle = self.since.elapsed().saturating_sub(last);
        timeout.saturating_sub(idle)
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
    let stored = shared.pools.link(&caller).follower_store(blocks).await?;
    shared
        .metrics
        .link_add(&caller, LinkCounter::ReceivedBits, 8 * stored);
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    #[test]
    fn the_largest_link_push_fits_the_body_limit() {
        let push = LinkPush {
            blocks: (0..links::MAX_BLOCKS_PER_PUSH)
                .map(|i| links::WireBlock {
                    seq: u64::MAX - i as u64,
                    key: B64.encode(vec![0xa5; links::MAX_BLOCK_BYTES]),
                })
                .collect(),
        };
        let len = serde_json::to_vec(&push).unwrap().len();
        assert!(
            len <= LINK_PUSH_BODY_LIMIT_BYTES,
            "{len} > {LINK_PUSH_BODY_LIMIT_BYTES}"
        );
        // Not wildly above the need either (a body limit bounds memory).
        assert!(LINK_PUSH_BODY_LIMIT_BYTES < len + len / 50);
    }
}
