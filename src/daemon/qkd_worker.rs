//! The QKD worker: one thread that takes the core's key requests, calls the KME (ETSI 014
//! over mutual TLS, or its in-memory twin), and hands each answer back to the core. Only this
//! thread ever waits on a KME; the data plane never does.
//!
//! Requests wait in a [`QkdQueue`]: bounded per peer (a peer's newest requests are kept, as
//! they supersede its older ones) and served round-robin between peers, so one peer
//! re-initiating fast cannot starve the others. A request is sent to the KME only while a
//! handshake still waits for it (its deadline has not passed and the core still wants it),
//! so no key is fetched that no handshake would use.

use super::kme_calls::KmeCall;
use super::runtime::Shared;
use crate::constants::QKD_QUEUE_PER_PEER_MAX;
use crate::proto::PeerId;
use crate::proto::handshake::QkdKey;
use crate::proto::qkd_flow::QkdRequest;
use crate::proto::time::Instant;
use crate::qkd::KeySource;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the worker reaches keys: the source, each peer's SAE ID (config order), the key size.
pub struct QkdFetcher {
    /// The KME client or its twin.
    pub source: Arc<dyn KeySource>,
    /// SAE ID of peer `i`.
    pub peer_saes: Vec<String>,
    /// Key size in bits.
    pub key_bits: u32,
}

/// The requests waiting for the worker: at most [`QKD_QUEUE_PER_PEER_MAX`] per peer, served
/// one peer after the other.
#[derive(Default)]
pub struct QkdQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Waiting requests by peer.
    per_peer: BTreeMap<PeerId, VecDeque<QkdRequest>>,
    /// The peer served last (the next turn goes to the next peer after it).
    last_served: Option<PeerId>,
}

impl QkdQueue {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request; returns the request of the same peer it displaced (the oldest) when
    /// that peer already had [`QKD_QUEUE_PER_PEER_MAX`] waiting.
    pub fn push(&self, request: QkdRequest) -> Option<QkdRequest> {
        let mut state = self.state();
        let queue = state.per_peer.entry(request.peer).or_default();
        let displaced = (queue.len() >= QKD_QUEUE_PER_PEER_MAX)
            .then(|| queue.pop_front())
            .flatten();
        queue.push_back(request);
        drop(state);
        self.ready.notify_one();
        displaced
    }

    /// The next request, the peers taking turns; waits up to `wait` for one.
    pub fn pop(&self, wait: Duration) -> Option<QkdRequest> {
        let mut state = self.state();
        if state.per_peer.values().all(VecDeque::is_empty) {
            state = self
                .ready
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        // the peers after the one served last, then from the first up to it
        let later = (state.last_served.map_or(Unbounded, Excluded), Unbounded);
        let first = Excluded(PeerId::from_index(0));
        let earlier = (Unbounded, state.last_served.map_or(first, Included));
        let peer = state
            .per_peer
            .range(later)
            .chain(state.per_peer.range(earlier))
            .find(|(_, q)| !q.is_empty())
            .map(|(&p, _)| p)?;
        state.last_served = Some(peer);
        state.per_peer.get_mut(&peer)?.pop_front()
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.state().per_peer.values().map(VecDeque::len).sum()
    }

    /// True when no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts the worker; it ends when the daemon shuts down.
pub fn spawn(
    shared: Arc<Shared>,
    jobs: Arc<QkdQueue>,
    fetcher: QkdFetcher,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("qkd".into())
        .spawn(move || run(&shared, &jobs, &fetcher))
}

fn run(shared: &Shared, jobs: &QkdQueue, fetcher: &QkdFetcher) {
    while !shared.shutdown.load(Ordering::Relaxed) {
        let Some(request) = jobs.pop(Duration::from_millis(100)) else {
            continue;
        };
        let now = shared.clock.now();
        let wanted = |r: &QkdRequest| shared.lock().qkd_request_wanted(r.id);
        let started = std::time::Instant::now();
        if let Some(result) = serve(&shared.interface, fetcher, now, &request, wanted) {
            let call = if request.key_id.is_some() {
                KmeCall::DecKeys
            } else {
                KmeCall::EncKeys
            };
            shared
                .kme_calls
                .observe(request.peer.index(), call, started.elapsed());
            let drained = {
                let mut ep = shared.lock();
                ep.handle_qkd_key(shared.clock.now(), request.id, result);
                shared.drain(&mut ep)
            };
            shared.flush(drained);
        }
    }
}

/// Fetches the key of `request` if a handshake still waits for it at `now` (its deadline
/// has not passed and `wanted` says the core still waits for its answer); `None` when the
/// request was dropped without calling the KME.
pub fn serve(
    interface: &str,
    fetcher: &QkdFetcher,
    now: Instant,
    request: &QkdRequest,
    wanted: impl FnOnce(&QkdRequest) -> bool,
) -> Option<Result<QkdKey, String>> {
    if now >= request.deadline || !wanted(request) {
        tracing::debug!(
            interface,
            peer = request.peer.index(),
            request = request.id,
            "QKD request dropped unsent: no handshake waits for it any more"
        );
        return None;
    }
    Some(fetch(interface, fetcher, request))
}

/// One KME call; the key as the core takes it, or the error as text for its event.
fn fetch(interface: &str, fetcher: &QkdFetcher, request: &QkdRequest) -> Result<QkdKey, String> {
    let Some(sae) = fetcher.peer_saes.get(request.peer.index()) else {
        return Err(format!("no SAE ID configured for peer {}", request.peer));
    };
    let kme = fetcher.source.describe();
    let result = match &request.key_id {
        None => fetcher.source.new_key(sae, fetcher.key_bits),
        Some(id) => fetcher.source.key_by_id(sae, id, fetcher.key_bits),
    };
    match result {
        Ok(k) => {
            let call = if request.key_id.is_some() {
                "dec_keys"
            } else {
                "enc_keys"
            };
            tracing::info!(interface, peer_sae = %sae, key_id = %k.key_id, %kme, call, "QKD key delivered");
            Ok(QkdKey {
                key_id: k.key_id.into_bytes(),
                material: k.key,
            })
        }
        Err(e) => {
            tracing::warn!(interface, peer_sae = %sae, %kme, error = %e, "QKD key request failed");
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qkd::memory::MemoryKme;

    fn request(id: u64, peer: usize, deadline: Instant) -> QkdRequest {
        QkdRequest {
            id,
            peer: PeerId::from_index(peer),
            key_id: None,
            deadline,
        }
    }

    fn far() -> Instant {
        Instant::ZERO + Duration::from_secs(60)
    }

    fn drain(queue: &QkdQueue) -> Vec<(usize, u64)> {
        std::iter::from_fn(|| queue.pop(Duration::ZERO))
            .map(|r| (r.peer.index(), r.id))
            .collect()
    }

    #[test]
    fn one_peer_cannot_fill_the_queue_and_its_newest_requests_are_kept() {
        let queue = QkdQueue::new();
        let displaced: Vec<_> = (1..=10)
            .filter_map(|id| queue.push(request(id, 0, far())))
            .map(|r| r.id)
            .collect();
        assert_eq!(queue.len(), QKD_QUEUE_PER_PEER_MAX);
        assert_eq!(displaced.len(), 10 - QKD_QUEUE_PER_PEER_MAX);
        let kept: Vec<u64> = drain(&queue).into_iter().map(|(_, id)| id).collect();
        let newest: Vec<u64> = (11 - QKD_QUEUE_PER_PEER_MAX as u64..=10).collect();
        assert_eq!(kept, newest);
    }

    #[test]
    fn peers_take_turns() {
        let queue = QkdQueue::new();
        for id in 1..=3 {
            queue.push(request(id, 0, far()));
        }
        queue.push(request(4, 1, far()));
        queue.push(request(5, 2, far()));
        assert_eq!(
            drain(&queue),
            vec![(0, 1), (1, 4), (2, 5), (0, 2), (0, 3)],
            "peer 1 and 2 are served before peer 0's backlog"
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn no_kme_call_for_a_request_no_handshake_waits_for() {
        let kme = MemoryKme::new();
        let fetcher = QkdFetcher {
            source: Arc::new(kme.client("a")),
            peer_saes: vec!["b".into()],
            key_bits: 256,
        };
        let now = Instant::ZERO + Duration::from_secs(10);
        // past its deadline: the core has given up on it
        let late = request(1, 0, now);
        assert!(serve("t0", &fetcher, now, &late, |_| true).is_none());
        // the core no longer waits for it (the handshake moved on)
        let moot = request(2, 0, far());
        assert!(serve("t0", &fetcher, now, &moot, |_| false).is_none());
        assert_eq!(kme.calls(), 0, "the KME was called for a dropped request");
        // a request a handshake waits for is served
        let live = request(3, 0, far());
        let key = serve("t0", &fetcher, now, &live, |r| r.id == 3).unwrap();
        assert!(key.is_ok());
        assert_eq!((kme.calls(), kme.issued()), (1, 1));
    }

    #[test]
    fn pop_waits_for_a_request_from_another_thread() {
        let queue = QkdQueue::new();
        let q = queue.clone();
        let pusher = std::thread::spawn(move || {
            q.push(request(7, 0, far()));
        });
        let got = queue.pop(Duration::from_secs(10)).map(|r| r.id);
        pusher.join().unwrap();
        assert_eq!(got, Some(7));
    }
}
