//! [`Relay`]: the I/O around two [`Engine`]s. Two UDP sockets (side A's and side B's
//! listening addresses) and one thread per direction: it takes a batch from its receiving
//! socket (`recvmmsg`), hands each datagram to its direction's engine at the clock's `now`,
//! and sends what the engine releases from the other socket to the far side's peer address
//! (`sendmmsg`), waiting between batches no longer than the engine's next due datagram.
//! The counters of both directions and of both sockets are published for the stats file
//! ([`Relay::stats`]), which the caller writes every second and at exit.

use super::engine::Engine;
use super::model::{Direction, DirectionCounters, Impairment};
use crate::batch::{PacketBatch, SlotMeta};
use crate::daemon::clock::Clock;
use crate::net::{IoStats, NetError, UdpIo, UdpSocket};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest datagram carried, bytes (a whole UDP datagram; fragments arrive reassembled).
pub const MAX_DATAGRAM_BYTES: usize = 65_535;
/// Datagrams taken from the kernel, or given to it, per system call batch.
pub const RELAY_BATCH_DATAGRAMS: usize = 64;
/// Longest wait for a datagram when nothing is held: how soon a stop is noticed.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Spare datagram buffers a direction keeps for reuse (more are freed).
pub const SPARE_BUFFERS: usize = 4096;
/// How often [`Relay::run_until`] rewrites the stats file.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A listening socket could not be bound.
    #[error("cannot listen for side {side} on {addr}: {source}")]
    Bind {
        /// `A` or `B`.
        side: char,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: NetError,
    },
    /// A direction's socket failed while receiving or sending.
    #[error("relay {direction}: {source}")]
    Io {
        /// Which direction failed.
        direction: Direction,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A forwarding thread could not be started, or ended by a panic.
    #[error("relay thread: {0}")]
    Thread(String),
    /// The stats file could not be written.
    #[error("cannot write the stats file {path}: {source}")]
    Stats {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the relay listens and forwards, and what it does to each direction.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Side A's daemon sends here.
    pub a_listen: SocketAddr,
    /// Side B's daemon sends here.
    pub b_listen: SocketAddr,
    /// Side A's daemon (B->A datagrams go here).
    pub a_peer: SocketAddr,
    /// Side B's daemon (A->B datagrams go here).
    pub b_peer: SocketAddr,
    /// What A->B datagrams go through.
    pub a_to_b: Impairment,
    /// What B->A datagrams go through.
    pub b_to_a: Impairment,
    /// Seed of the A->B engine.
    pub a_to_b_seed: u64,
    /// Seed of the B->A engine.
    pub b_to_a_seed: u64,
}

/// The counters one forwarding thread publishes.
#[derive(Debug, Default)]
struct Published {
    counters: Mutex<DirectionCounters>,
}

/// A bound relay, not yet forwarding.
pub struct Relay {
    settings: RelaySettings,
    a: Arc<UdpSocket>,
    b: Arc<UdpSocket>,
    published: [Arc<Published>; 2],
    clock: Clock,
}

impl Relay {
    /// Binds both listening sockets.
    pub fn bind(settings: RelaySettings) -> Result<Self, RelayError> {
        let bind = |side, addr| {
            UdpSocket::bind(addr).map_err(|source| RelayError::Bind { side, addr, source })
        };
        Ok(Self {
            a: Arc::new(bind('A', settings.a_listen)?),
            b: Arc::new(bind('B', settings.b_listen)?),
            settings,
            published: Default::default(),
            clock: Clock::start(),
        })
    }

    /// The addresses bound for side A and side B (ports resolved when 0 was asked).
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.a.local_addr()?, self.b.local_addr()?))
    }

    /// Forwards both ways until `stop` is set, writing the stats to `stats_file` (if any)
    /// every [`STATS_INTERVAL`] and once more at the end; returns the final stats.
    pub fn run_until(
        &self,
        stop: &Arc<AtomicBool>,
        stats_file: Option<&Path>,
    ) -> Result<Value, RelayError> {
        let threads = [Direction::AToB, Direction::BToA].map(|d| self.spawn(d, stop.clone()));
        let mut handles = Vec::new();
        for t in threads {
            handles.push(t?);
        }
        let mut outcome = Ok(());
        let mut last_write = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) && !handles.iter().any(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            if last_write.elapsed() >= STATS_INTERVAL {
                last_write = std::time::Instant::now();
                if let Some(Err(e)) = stats_file.map(|path| write_stats(path, &self.stats())) {
                    outcome = Err(e);
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let ended = h
                .join()
                .map_err(|_| RelayError::Thread("a forwarding thread panicked".into()))?;
            if outcome.is_ok() {
                outcome = ended;
            }
        }
        let stats = self.stats();
        if let Some(path) = stats_file {
            write_stats(path, &stats)?;
        }
        outcome.map(|()| stats)
    }

    /// The counters of both directions and both sockets, as the stats file holds them.
    pub fn stats(&self) -> Value {
        let counters = |d: Direction| {
            *self.published[index(d)]
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        let socket = |s: IoStats| {
            json!({ "received": s.received, "sent": s.sent,
                    "dropped_truncated": s.dropped_truncated, "send_errors": s.send_errors })
        };
        json!({
            "uptime_seconds": self.clock.now().as_nanos() as f64 / 1e9,
            "a_to_b": counters(Direction::AToB),
            "b_to_a": counters(Direction::BToA),
            "sockets": { "a": socket(self.a.stats()), "b": socket(self.b.stats()) },
            "settings": {
                "a_to_b": self.settings.a_to_b, "b_to_a": self.settings.b_to_a,
                "a_to_b_seed": self.settings.a_to_b_seed, "b_to_a_seed": self.settings.b_to_a_seed,
            },
        })
    }

    fn spawn(
        &self,
        direction: Direction,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<Result<(), RelayError>>, RelayError> {
        let s = &self.settings;
        let (rx, tx, to, impairment, seed) = match direction {
            Direction::AToB => (&self.a, &self.b, s.b_peer, s.a_to_b, s.a_to_b_seed),
            Direction::BToA => (&self.b, &self.a, s.a_peer, s.b_to_a, s.b_to_a_seed),
        };
        let forwarder = Forwarder {
            direction,
            rx: rx.clone(),
            tx: tx.clone(),
            to,
            engine: Engine::new(impairment, seed),
            clock: self.clock,
            published: self.published[index(direction)].clone(),
            spare: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("impair-{}", direction.key()))
            .spawn(move || forwarder.run(&stop))
            .map_err(|e| RelayError::Thread(e.to_string()))
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::AToB => 0,
        Direction::BToA => 1,
    }
}

/// Writes `stats` to `path` atomically (a temporary file renamed over it).
pub fn write_stats(path: &Path, stats: &Value) -> Result<(), RelayError> {
    let err = |source| RelayError::Stats {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let text = serde_json::to_string_pretty(stats).expect("a JSON value serializes");
    std::fs::write(&tmp, text + "\n").map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// One direction: its sockets, its engine and its buffers.
struct Forwarder {
    direction: Direction,
    rx: Arc<UdpSocket>,
    tx: Arc<UdpSocket>,
    to: SocketAddr,
    engine: Engine<Vec<u8>>,
    clock: Clock,
    published: Arc<Published>,
    /// Buffers of datagrams already sent, reused for the next ones.
    spare: Vec<Vec<u8>>,
}

impl Forwarder {
    fn run(mut self, stop: &AtomicBool) -> Result<(), RelayError> {
        let direction = self.direction;
        let io = |source| RelayError::Io { direction, source };
        let mut inbox = PacketBatch::new(RELAY_BATCH_DATAGRAMS, MAX_DATAGRAM_BYTES);
        let mut outbox = PacketBatch::new(RELAY_BATCH_DATAGRAMS, MAX_DATAGRAM_BYTES);
        while !stop.load(Ordering::Relaxed) {
            self.send_due(&mut outbox).map_err(io)?;
            *self
                .published
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = *self.engine.counters();
            let now = self.clock.now();
            let wait = self
                .engine
                .next_due()
                .map_or(IDLE_WAIT, |due| due.saturating_since(now).min(IDLE_WAIT));
            let n = self.rx.recv_batch(&mut inbox, wait).map_err(io)?;
            let now = self.clock.now();
            for i in 0..n {
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(inbox.bytes(i));
                self.engine.push(now, buf);
            }
        }
        Ok(())
    }

    /// Sends every datagram due now, a batch at a time.
    fn send_due(&mut self, outbox: &mut PacketBatch) -> std::io::Result<()> {
        let now = self.clock.now();
        let mut filled = 0;
        while let Some(datagram) = self.engine.poll_ready(now) {
            outbox.slot_mut(filled)[..datagram.len()].copy_from_slice(&datagram);
            outbox.set_meta(
                filled,
                SlotMeta {
                    start: 0,
                    len: datagram.len(),
                    addr: Some(self.to),
                },
            );
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.push(datagram);
            }
            filled += 1;
            if filled == outbox.capacity() {
                outbox.set_len(filled);
                self.tx.send_batch(outbox)?;
                filled = 0;
            }
        }
        if filled > 0 {
            outbox.set_len(filled);
            self.tx.send_batch(outbox)?;
        }
        Ok(())
    }
}
