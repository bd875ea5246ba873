//! Bob's end of a CV-QKD link, in the follower KME: the fiber's far end (a TCP listener
//! that receives the pulses and applies the fiber's loss and excess noise), Bob's detector
//! and his half of GG02, answering the leader over `POST /kme/v1/link/cvqkd`. Bob's key of
//! each block is stored under the sequence numbers the leader names.
//!
//! The quantum port is open to anyone who can reach it, as a fiber is to anyone with access
//! to it: injected or displaced pulses can deny blocks (Eve can always cut a fiber), but
//! they cannot make a key — estimation on the disclosed samples catches foreign light.

use super::board::CvqkdFigures;
use super::wire::{self, LinkReply, LinkRequest, ProtocolParams};
use crate::constants::CVQKD_PULSES_WAIT;
use crate::cvqkd::quantum_channel;
use crate::cvqkd::sim::rng::SimRng;
use crate::cvqkd::sim::{Attack, Bob, Channel, ClassicalMessage, QuantumBlock, SideOutcome};
use crate::kme::api::ApiError;
use crate::kme::config::LinkConfig;
use crate::kme::server::Shared;
use crate::kme::tls::Caller;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Blocks of pulses kept waiting for their announcement (older ones are dropped).
const ARRIVED_MAX: usize = 2;
/// Bob's end of one link.
pub struct FollowerLink {
    peer: String,
    params: ProtocolParams,
    block_size: u64,
    bob: Mutex<Bob>,
    fiber: Mutex<Channel>,
    arrived: Mutex<VecDeque<QuantumBlock>>,
    notify: Notify,
}

impl FollowerLink {
    /// Bob, his detector and the fiber of `link`'s `[link.cvqkd]`; the quantum listener is
    /// bound by the caller.
    pub fn new(link: &LinkConfig) -> Result<(Self, CvqkdFigures), String> {
        let cfg = link.cvqkd.as_ref().ok_or("not a cvqkd link")?;
        let proto = super::protocol(cfg)?;
        let mut rng = SimRng::from_os_entropy();
        let fiber = Channel::new(
            proto.link.transmittance,
            proto.link.excess_noise_snu,
            Attack::None,
            rng.fork(),
        );
        let figures = CvqkdFigures::configured(cfg, proto.link.modulation_variance_snu);
        let me = FollowerLink {
            peer: link.peer.clone(),
            params: ProtocolParams::of(&proto),
            block_size: cfg.block_size,
            bob: Mutex::new(Bob::new(proto, rng.fork())),
            fiber: Mutex::new(fiber),
            arrived: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
        };
        Ok((me, figures))
    }

    /// The peer (the leader's KME ID).
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Where the follower listens for `link`'s pulses: the API's IP, the link's port.
    pub fn quantum_listen(listen: SocketAddr, link: &LinkConfig) -> Option<SocketAddr> {
        let port = link.cvqkd.as_ref()?.quantum_port;
        Some(SocketAddr::new(listen.ip(), port))
    }

    fn push_arrived(&self, block: QuantumBlock) {
        let mut q = self.arrived.lock().expect("arrived lock");
        q.retain(|b| b.block_id != block.block_id);
        q.push_back(block);
        while q.len() > ARRIVED_MAX {
            q.pop_front();
        }
        drop(q);
        self.notify.notify_waiters();
    }

    fn take_arrived(&self, block_id: u64) -> Option<QuantumBlock> {
        let mut q = self.arrived.lock().expect("arrived lock");
        let pos = q.iter().position(|b| b.block_id == block_id)?;
        q.remove(pos)
    }

    /// Waits (bounded) for the pulses of `block_id`.
    async fn wait_pulses(&self, block_id: u64) -> Option<QuantumBlock> {
        let deadline = tokio::time::Instant::now() + CVQKD_PULSES_WAIT;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(b) = self.take_arrived(block_id) {
                return Some(b);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Receives pulse streams on `listener` until the task is aborted: every block passes
/// through the fiber and waits for the leader's announcement.
pub async fn run_quantum_listener(shared: Arc<Shared>, link: Arc<FollowerLink>, l: TcpListener) {
    loop {
        let (tcp, from) = match l.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(peer = %link.peer, "quantum port: accept failed: {e}");
                tokio::time::sleep(crate::constants::CVQKD_ACCEPT_RETRY).await;
                continue;
            }
        };
        let (shared, link) = (shared.clone(), link.clone());
        tokio::spawn(async move {
            if let Err(e) = receive_stream(&link, tcp).await {
                shared
                    .metrics
                    .link_add(&link.peer, "quantum_frames_refused", 1);
                tracing::warn!(peer = %link.peer, %from, "pulses refused: {e}");
            }
        });
    }
}

async fn receive_stream(
    link: &Arc<FollowerLink>,
    mut tcp: TcpStream,
) -> Result<(), quantum_channel::QuantumChannelError> {
    while let Some(block) = quantum_channel::receive(&mut tcp, link.block_size).await? {
        let l = link.clone();
        let block = tokio::task::spawn_blocking(move || {
            let mut block = block;
            l.fiber.lock().expect("fiber lock").transmit(&mut block);
            block
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        link.push_arrived(block);
    }
    Ok(())
}

/// `POST /kme/v1/link/cvqkd`: the leader drives a block.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(link) = shared.followers.get(&caller).cloned() else {
        return Err(ApiError::Unauthorized);
    };
    let req: LinkRequest =
        wire::decode(&body).map_err(|e| ApiError::bad_detail("Bad request format", "body", e))?;
    let reply = match req {
        LinkRequest::Start { params, block_id } => start(&shared, &link, params, block_id).await?,
        LinkRequest::Estimate { msg, reconcile } => {
            estimate(&shared, &link, msg, reconcile).await?
        }
        LinkRequest::Finish {
            msg,
            seq,
            leader_bytes,
        } => finish(&shared, &link, msg, seq, leader_bytes).await?,
    };
    let headers = [(axum::http::header::CONTENT_TYPE, wire::CONTENT_TYPE)];
    Ok((headers, wire::encode(&reply)).into_response())
}

async fn start(
    shared: &Arc<Shared>,
    link: &Arc<FollowerLink>,
    params: ProtocolParams,
    block_id: u64,
) -> Result<LinkReply, ApiError> {
    if let Some(d) = params.first_difference(&link.params) {
        return Err(ApiError::bad(format!(
            "cvqkd link parameters differ between the two KMEs ({d})"
        )));
    }
    let Some(pulses) = link.wait_pulses(block_id).await else {
        return Err(ApiError::unavailable(format!(
            "no pulses of block {block_id} arrived within {} s (quantum channel cut?)",
            CVQKD_PULSES_WAIT.as_secs()
        )));
    };
    let msg = on_bob(link, move |bob| Ok(bob.receive(&pulses))).await?;
    let next_seq = shared.link_levels(&link.peer).await?.next_seq;
    Ok(LinkReply::Started { msg, next_seq })
}

async fn estimate(
    shared: &Arc<Shared>,
    link: &Arc<FollowerLink>,
    msg: ClassicalMessage,
    reconcile: bool,
) -> Result<LinkReply, ApiError> {
    let (reply, ended) = on_bob(link, move |bob| {
        let reply = bob.handle(&msg)?;
        let ended = match (bob.outcome(), bob.estimate()) {
            (Some(o), _) => Some(o.clone()),
            (None, Some(pe)) if !reconcile => Some(SideOutcome::aborted(msg.block_id(), *pe)),
            _ => None,
        };
        Ok((reply, ended))
    })
    .await?;
    if let Some(o) = ended {
        shared.cvqkd.record(&link.peer, &o, !reconcile, 0);
    }
    Ok(LinkReply::Estimated(reply.filter(|_| reconcile)))
}

async fn finish(
    shared: &Arc<Shared>,
    link: &Arc<FollowerLink>,
    msg: ClassicalMessage,
    seq: Option<u64>,
    leader_bytes: u64,
) -> Result<LinkReply, ApiError> {
    let (key, outcome) = on_bob(link, move |bob| {
        bob.handle(&msg)?;
        let key = bob.take_key();
        let outcome = bob.outcome().cloned();
        Ok((key, outcome))
    })
    .await?;
    let bytes = key.as_ref().map(wire::key_bytes).unwrap_or_default();
    let stored = match seq {
        Some(seq) if bytes.len() >= 2 => {
            store(shared, &link.peer, seq, bytes, leader_bytes).await?
        }
        Some(_) => return Err(ApiError::bad("leader stored a key this follower has not")),
        None => 0,
    };
    if let Some(o) = outcome {
        shared.cvqkd.record(&link.peer, &o, false, 8 * stored);
    }
    Ok(LinkReply::Finished {
        stored_bytes: stored,
    })
}

/// Stores Bob's key as link blocks `seq` (its first `leader_bytes`, the leader's direction)
/// and `seq + 1` (the rest), as the leader shared Alice's.
async fn store(
    shared: &Arc<Shared>,
    peer: &str,
    seq: u64,
    bytes: zeroize::Zeroizing<Vec<u8>>,
    leader_bytes: u64,
) -> Result<u64, ApiError> {
    let next = shared.link_levels(peer).await?.next_seq;
    if next != seq {
        return Err(ApiError::bad(format!(
            "link block sequence mismatch: leader stores at {seq}, follower expects {next}"
        )));
    }
    if !seq.is_multiple_of(2) || leader_bytes > bytes.len() as u64 {
        return Err(ApiError::bad(format!(
            "link block pair at {seq} with {leader_bytes} of {} key bytes for the leader",
            bytes.len()
        )));
    }
    let p = peer.to_string();
    let stored = shared
        .blocking(move |s| {
            let (a, b) = bytes.split_at(leader_bytes as usize);
            s.follower_store_pair(&p, seq, a, b)
        })
        .await?;
    shared.metrics.link_add(peer, "received_bits", 8 * stored);
    Ok(stored)
}

/// Runs `f` on Bob off the async threads; protocol errors are the leader's fault (400).
async fn on_bob<T, F>(link: &Arc<FollowerLink>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut Bob) -> Result<T, crate::cvqkd::sim::SimError> + Send + 'static,
{
    let l = link.clone();
    tokio::task::spawn_blocking(move || f(&mut l.bob.lock().expect("bob lock")))
        .await
        .map_err(|e| ApiError::unavailable(format!("Bob's task failed: {e}")))?
        .map_err(|e| ApiError::bad(format!("cvqkd: {e}")))
}
