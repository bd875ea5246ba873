//! The data-plane runtime: three threads around one [`Endpoint`] behind a mutex, each
//! moving whole batches so the lock is taken once per batch, never per packet.
//!
//! - `tun→udp`: read inner packets from the TUN, seal them, send them with one batch call.
//! - `udp→tun`: receive datagrams, open them, write the inner packets to the TUN.
//! - `timers`: handshake retries, rekeys, keepalives, expiries.
//!
//! I/O objects are trait objects, so the same runtime runs over real devices or their
//! in-memory twins.

use super::clock::Clock;
use super::logging::log_event;
use crate::batch::PacketBatch;
use crate::net::OFFLOAD_BATCH_PACKETS;
use crate::net::{TunIo, UdpIo};
use crate::proto::endpoint::Endpoint;
use crate::proto::events::{Event, Transmit};
use crate::proto::qkd_flow::QkdRequest;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a blocking read waits before checking for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest sleep of the timer thread (new deadlines are picked up at least this often).
const TIMER_MAX_SLEEP: Duration = Duration::from_millis(50);
/// Shortest sleep of the timer thread (a deadline already due does not spin).
const TIMER_MIN_SLEEP: Duration = Duration::from_millis(1);

/// What the threads share.
pub struct Shared {
    /// Interface name, for logs.
    pub interface: String,
    /// The protocol core.
    pub endpoint: Mutex<Endpoint>,
    /// The clock that drives it.
    pub clock: Clock,
    /// Inner side.
    pub tun: Arc<dyn TunIo>,
    /// Underlay side.
    pub udp: Arc<dyn UdpIo>,
    /// Set to stop every thread.
    pub shutdown: Arc<AtomicBool>,
    /// Tunnel MTU (sizes the batches).
    pub mtu: usize,
    /// Where QKD key requests go (`None` with QKD disabled).
    pub qkd_jobs: Option<Arc<super::qkd_worker::QkdQueue>>,
    /// How long the KME calls took, per peer.
    pub kme_calls: super::kme_calls::KmeCalls,
    /// Which peer endpoints the UDP side was last told about.
    pub peer_queues: PeerQueuesSeen,
}

/// Shortest time between two hand-overs of the peers' endpoints to the UDP side. Each
/// opens and closes sockets; someone on the path who rewrites the source port of every
/// genuine packet changes an endpoint per packet, and would otherwise have each cost a
/// socket. A change waits at most this long (the timer thread drains every 50 ms at
/// least); meanwhile the peer's datagrams arrive on the listen socket, nothing is lost.
pub const PEER_QUEUES_UPDATE_INTERVAL: Duration = Duration::from_millis(100);

/// The core's [`Endpoint::endpoints_generation`] last handed to
/// [`UdpIo::set_peer_endpoints`] (none at first), and when.
#[derive(Debug)]
pub struct PeerQueuesSeen {
    generation: AtomicU64,
    at_ns: AtomicU64,
}

impl Default for PeerQueuesSeen {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(u64::MAX),
            at_ns: AtomicU64::new(0),
        }
    }
}

impl PeerQueuesSeen {
    /// True when `generation` differs from the one handed over last and the last
    /// hand-over is at least [`PEER_QUEUES_UPDATE_INTERVAL`] old; then records it as
    /// handed over at `now` (call with the endpoint's lock held).
    pub fn due(&self, generation: u64, now: crate::proto::time::Instant) -> bool {
        let seen = self.generation.load(Ordering::Relaxed);
        let at = crate::proto::time::Instant::from_nanos(self.at_ns.load(Ordering::Relaxed));
        if seen == generation
            || (seen != u64::MAX && now.saturating_since(at) < PEER_QUEUES_UPDATE_INTERVAL)
        {
            return false;
        }
        self.generation.store(generation, Ordering::Relaxed);
        self.at_ns.store(now.as_nanos(), Ordering::Relaxed);
        true
    }
}

/// What the core wants done after a batch: datagrams to send, events to log (with their
/// peer's name), QKD keys to fetch.
pub struct Drained {
    transmits: Vec<Transmit>,
    events: Vec<(Event, Option<String>)>,
    qkd: Vec<QkdRequest>,
}

impl Shared {
    /// The endpoint, even if a thread panicked while holding it.
    pub fn lock(&self) -> MutexGuard<'_, Endpoint> {
        self.endpoint.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what the core wants sent and logged (call with the lock held). When a peer's
    /// endpoint changed, first hands the new list to the UDP side (under the lock, so two
    /// threads cannot hand over lists out of order; only on a change, and at most every
    /// [`PEER_QUEUES_UPDATE_INTERVAL`]).
    pub fn drain(&self, endpoint: &mut Endpoint) -> Drained {
        if self
            .peer_queues
            .due(endpoint.endpoints_generation(), self.clock.now())
        {
            let endpoints: Vec<_> = endpoint.peer_endpoints().collect();
            self.udp.set_peer_endpoints(&endpoints);
        }
        Drained {
            transmits: std::iter::from_fn(|| endpoint.poll_transmit()).collect(),
            events: std::iter::from_fn(|| endpoint.poll_event())
                .collect::<Vec<_>>()
                .into_iter()
                .map(|e| {
                    let name = e.peer().and_then(|p| endpoint.peer_name(p));
                    let name = name.map(str::to_owned);
                    (e, name)
                })
                .collect(),
            qkd: std::iter::from_fn(|| endpoint.poll_qkd_request()).collect(),
        }
    }

    /// Sends, logs and hands on what [`Shared::drain`] took (call without the lock).
    pub fn flush(
        &self,
        Drained {
            transmits,
            events,
            qkd,
        }: Drained,
    ) {
        for request in qkd {
            if let Some(jobs) = &self.qkd_jobs
                && let Some(dropped) = jobs.push(request)
            {
                tracing::debug!(interface = %self.interface, peer = dropped.peer.index(), request = dropped.id, "QKD request dropped unsent: superseded by newer ones of the same peer");
            }
        }
        for t in transmits {
            if let Err(e) = self.udp.send_to(&t.payload, t.to) {
                tracing::debug!(interface = %self.interface, to = %t.to, error = %e, "send failed");
            }
        }
        for (e, peer_name) in &events {
            log_event(&self.interface, e, peer_name.as_deref());
        }
    }
}

/// The running threads.
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Starts the threads (and the QKD worker, given its queue and fetcher) and the first
    /// handshakes.
    pub fn start(
        shared: Arc<Shared>,
        qkd: Option<(
            Arc<super::qkd_worker::QkdQueue>,
            super::qkd_worker::QkdFetcher,
        )>,
    ) -> std::io::Result<Self> {
        let mut threads = Vec::new();
        if let Some((jobs, fetcher)) = qkd {
            threads.push(super::qkd_worker::spawn(shared.clone(), jobs, fetcher)?);
        }
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("tun→udp".into())
                .spawn(move || tun_to_udp(&s))?,
        );
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("udp→tun".into())
                .spawn(move || udp_to_tun(&s))?,
        );
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("timers".into())
                .spawn(move || timers(&s))?,
        );
        let drained = {
            let mut ep = shared.lock();
            ep.start(shared.clock.now());
            shared.drain(&mut ep)
        };
        shared.flush(drained);
        Ok(Self { shared, threads })
    }

    /// The shared state (status, tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops every thread and waits for them.
    pub fn stop(self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// One direction of the data plane: where batches come from, what the core does to them,
/// where they go.
struct Pipeline<'a> {
    input: &'a str,
    output: &'a str,
    receive: &'a dyn Fn(&mut PacketBatch, Duration) -> std::io::Result<usize>,
    process: fn(&mut Endpoint, crate::proto::time::Instant, &mut PacketBatch),
    send: &'a dyn Fn(&PacketBatch) -> std::io::Result<usize>,
}

fn tun_to_udp(s: &Shared) {
    let batch = PacketBatch::new(OFFLOAD_BATCH_PACKETS, s.mtu);
    run_pipeline(
        s,
        batch,
        Pipeline {
            input: "TUN",
            output: "UDP",
            receive: &|b, t| s.tun.recv_batch(b, t),
            process: Endpoint::seal_batch,
            send: &|b| s.udp.send_batch(b),
        },
    );
}

fn udp_to_tun(s: &Shared) {
    let batch = PacketBatch::new(
        OFFLOAD_BATCH_PACKETS,
        s.mtu.max(crate::constants::MAX_HANDSHAKE_DATAGRAM_BYTES),
    );
    run_pipeline(
        s,
        batch,
        Pipeline {
            input: "UDP",
            output: "TUN",
            receive: &|b, t| s.udp.recv_batch(b, t),
            process: Endpoint::open_batch,
            send: &|b| s.tun.send_batch(b),
        },
    );
}

/// Moves batches through one pipeline until shutdown: the core's lock is held once per
/// batch, never across I/O.
fn run_pipeline(s: &Shared, mut batch: PacketBatch, p: Pipeline<'_>) {
    while !s.shutdown.load(Ordering::Relaxed) {
        match (p.receive)(&mut batch, POLL_INTERVAL) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(interface = %s.interface, error = %e, "{} receive failed", p.input);
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        }
        let drained = {
            let mut ep = s.lock();
            (p.process)(&mut ep, s.clock.now(), &mut batch);
            s.drain(&mut ep)
        };
        if let Err(e) = (p.send)(&batch) {
            tracing::debug!(interface = %s.interface, error = %e, "{} batch send failed", p.output);
        }
        s.flush(drained);
    }
}

fn timers(s: &Shared) {
    while !s.shutdown.load(Ordering::Relaxed) {
        let (drained, sleep) = {
            let mut ep = s.lock();
            let now = s.clock.now();
            ep.handle_timeout(now);
            let sleep = ep
                .poll_timeout()
                .map_or(TIMER_MAX_SLEEP, |t| t.saturating_since(now));
            (
                s.drain(&mut ep),
                sleep.clamp(TIMER_MIN_SLEEP, TIMER_MAX_SLEEP),
            )
        };
        s.flush(drained);
        std::thread::sleep(sleep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::time::Instant;

    #[test]
    fn peer_endpoints_are_handed_over_once_per_change_and_at_most_every_interval() {
        let seen = PeerQueuesSeen::default();
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        assert!(seen.due(0, t(0)), "the first list, at start");
        assert!(!seen.due(0, t(500)), "no change, no hand-over");
        assert!(seen.due(1, t(500)));
        // An endpoint changing with every packet: one hand-over per interval, never more.
        let handed = (501..1500).filter(|&ms| seen.due(ms, t(ms))).count();
        assert_eq!(
            handed, 9,
            "hand-overs in 999 ms of changes every millisecond"
        );
        // The last change is handed over once the interval has passed, without new ones.
        assert!(seen.due(1499, t(1600)));
        assert!(!seen.due(1499, t(1700)));
    }
}
