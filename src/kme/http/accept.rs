//! The accept loop's parts: the open connections and their caps ([`Connections`]), one
//! connection's TLS handshake and HTTP service with its idle timeout ([`connection`]),
//! throttled log lines, and `max_connections` fitted to the descriptor limit.

use crate::kme::config::ConnectionLimits;
use crate::kme::tls::{self, Caller};
use axum::Router;
use axum::extract::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// How long `accept` is left alone after it failed (out of descriptors, most often), so a
/// listener that stays readable does not spin the loop.
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line about failing `accept`, and one about connections refused over a
/// cap, per this interval (with the count).
pub(super) const CONNECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Descriptors kept for everything but API connections (the store, calls to neighbours,
/// quantum ports, the runtime) when `max_connections` is fitted to `RLIMIT_NOFILE`.
pub(super) const RESERVED_DESCRIPTORS: usize = 64;
/// An HTTP/2 connection is pinged after this long without a frame from the client...
pub(super) const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// ...and closed if the ping is not answered within this.
pub(super) const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connections get to finish at shutdown.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Events reported at most once per [`CONNECTION_LOG_INTERVAL`], with their count.
#[derive(Default)]
pub(super) struct Throttled {
    /// Events not reported yet.
    unreported: u64,
    last_report: Option<Instant>,
}

impl Throttled {
    /// Counts an event; the number to report now, if a report is due.
    pub(super) fn note(&mut self) -> Option<u64> {
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
pub(super) fn fit_to_descriptors(mut limits: ConnectionLimits) -> ConnectionLimits {
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
pub(super) struct Connections {
    pub(super) tasks: JoinSet<()>,
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
    pub(super) fn new(limits: ConnectionLimits) -> Self {
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
    pub(super) fn admit(&mut self, source: IpAddr) -> Option<Arc<AtomicBool>> {
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
    pub(super) fn opened(
        &mut self,
        source: IpAddr,
        authenticated: Arc<AtomicBool>,
        abort: AbortHandle,
    ) {
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
    pub(super) fn closed(&mut self, task: tokio::task::Id) {
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
    pub(super) fn handshakes(&self) -> usize {
        self.open
            .values()
            .filter(|c| !c.authenticated.load(Ordering::Acquire))
            .count()
    }

    /// Closes the oldest connection (from `source`, if given) still in its TLS handshake;
    /// false if there is none.
    pub(super) fn evict_oldest_handshake(&mut self, source: Option<IpAddr>) -> bool {
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

pub(super) async fn connection(
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
