//! Bob's end of a CV-QKD link, in the follower KME: the fiber's far end (a TCP listener
//! that receives the pulses and applies the fiber's loss and excess noise), Bob's detector
//! and his half of GG02, answering the leader's messages (served at `POST /kme/v1/link/cvqkd` by
//! `kme::http::cvqkd`). Bob's key of
//! each block is stored under the sequence numbers the leader names.
//!
//! The quantum port is one end of a fiber whose other end is the leader: it accepts
//! connections only from the leader's address (the IP of the link's `url`), one at a time
//! (another is refused while one is being received), one frame per connection, within
//! [`quantum_channel::frame_deadline`]. A block's first frame is kept; another frame with
//! the same block ID is refused, and when [`ARRIVED_MAX`] blocks wait for their
//! announcement a new one is refused rather than one of them evicted (a block left
//! unannounced for [`ARRIVED_MAX_AGE`] is dropped). Whoever can inject light on the fiber
//! itself can still deny blocks (Eve can always cut a fiber), but cannot make a key —
//! estimation on the disclosed samples catches foreign light — and a starved link raises
//! the alarm ([`super::board`]).

use super::CVQKD_PULSES_WAIT;
use super::board::{CvqkdFigures, QuantumPortEvent};
use super::quantum_channel;
use super::wire::{self, LinkReply, LinkRequest, ProtocolParams};
use crate::cvqkd::sim::rng::SimRng;
use crate::cvqkd::sim::{Attack, Bob, Channel, ClassicalMessage, QuantumBlock, SideOutcome};
use crate::kme::config::LinkConfig;
use crate::kme::error::ApiError;
use crate::kme::link::LinkContext;
use crate::kme::metrics::LinkCounter;
use crate::kme::refusal::Shortage;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Blocks of pulses kept waiting for their announcement.
pub const ARRIVED_MAX: usize = 2;
/// How long a block of pulses may wait for its announcement before it is dropped (the
/// leader announces a block right after sending it).
pub const ARRIVED_MAX_AGE: std::time::Duration = CVQKD_PULSES_WAIT;

/// Why an arrived block of pulses was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArrivalRefused {
    /// A block with this ID is already waiting (the first frame of a block is kept).
    #[error("a block {0} is already waiting")]
    Duplicate(u64),
    /// [`ARRIVED_MAX`] blocks are already waiting.
    #[error("{ARRIVED_MAX} blocks are already waiting for their announcement")]
    Full,
}

/// Blocks of pulses waiting for their announcement, with when each arrived.
#[derive(Debug, Default)]
pub struct Arrivals {
    blocks: VecDeque<(std::time::Instant, QuantumBlock)>,
}

impl Arrivals {
    /// Keeps `block`, arrived at `now`, unless a block with its ID is waiting or the queue
    /// is full of blocks younger than [`ARRIVED_MAX_AGE`].
    pub fn offer(
        &mut self,
        block: QuantumBlock,
        now: std::time::Instant,
    ) -> Result<(), ArrivalRefused> {
        self.blocks
            .retain(|(t, _)| now.saturating_duration_since(*t) < ARRIVED_MAX_AGE);
        if self
            .blocks
            .iter()
            .any(|(_, b)| b.block_id == block.block_id)
        {
            return Err(ArrivalRefused::Duplicate(block.block_id));
        }
        if self.blocks.len() >= ARRIVED_MAX {
            return Err(ArrivalRefused::Full);
        }
        self.blocks.push_back((now, block));
        Ok(())
    }

    /// Takes the block `block_id`, if it is waiting.
    pub fn take(&mut self, block_id: u64) -> Option<QuantumBlock> {
        let pos = self
            .blocks
            .iter()
            .position(|(_, b)| b.block_id == block_id)?;
        self.blocks.remove(pos).map(|(_, b)| b)
    }
}
/// Bob's end of one link.
pub struct FollowerLink {
    peer: String,
    leader_ip: IpAddr,
    params: ProtocolParams,
    block_size: u64,
    bob: Mutex<Bob>,
    fiber: Mutex<Channel>,
    arrived: Mutex<Arrivals>,
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
            leader_ip: link.addr.ip().to_canonical(),
            params: ProtocolParams::of(&proto),
            block_size: cfg.block_size,
            bob: Mutex::new(Bob::new(proto, rng.fork())),
            fiber: Mutex::new(fiber),
            arrived: Mutex::new(Arrivals::default()),
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

    fn push_arrived(&self, block: QuantumBlock) -> Result<(), ArrivalRefused> {
        let kept = self
            .arrived
            .lock()
            .expect("arrived lock")
            .offer(block, std::time::Instant::now());
        self.notify.notify_waiters();
        kept
    }

    fn take_arrived(&self, block_id: u64) -> Option<QuantumBlock> {
        self.arrived.lock().expect("arrived lock").take(block_id)
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

/// Receives pulses on `listener` until the task is aborted: from the leader's address only,
/// one connection at a time, one frame per connection within its deadline; every block
/// passes through the fiber and waits for the leader's announcement.
pub async fn run_quantum_listener(ctx: LinkContext, link: Arc<FollowerLink>, l: TcpListener) {
    let mut current: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    loop {
        tokio::select! {
            accepted = l.accept() => {
                let (tcp, from) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(peer = %link.peer, "quantum port: accept failed: {e}");
                        tokio::time::sleep(super::CVQKD_ACCEPT_RETRY).await;
                        continue;
                    }
                };
                let why = if from.ip().to_canonical() != link.leader_ip {
                    Some("not from the leader's address")
                } else if current.is_some() {
                    Some("another connection is being received")
                } else {
                    None
                };
                if let Some(why) = why {
                    drop(tcp);
                    ctx.board.quantum_port(&link.peer, QuantumPortEvent::ConnectionRefused);
                    tracing::debug!(peer = %link.peer, %from, "quantum port: connection refused: {why}");
                    continue;
                }
                let (ctx, link) = (ctx.clone(), link.clone());
                current = Some(Box::pin(async move {
                    if let Err(e) = receive_one(&link, tcp).await {
                        ctx.board.quantum_port(&link.peer, QuantumPortEvent::FrameRefused);
                        ctx.metrics.add(LinkCounter::QuantumFramesRefused, 1);
                        tracing::warn!(peer = %link.peer, %from, "pulses refused: {e}");
                    } else {
                        ctx.board.quantum_port(&link.peer, QuantumPortEvent::BlockReceived);
                    }
                }));
            }
            () = async { current.as_mut().expect("guarded").await }, if current.is_some() => {
                current = None;
            }
        }
    }
}

/// Why a connection to the quantum port gave no block.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    /// The frame was refused.
    #[error(transparent)]
    Frame(#[from] quantum_channel::QuantumChannelError),
    /// The connection closed before a frame.
    #[error("connection closed without a frame")]
    Empty,
    /// The frame did not arrive within its deadline.
    #[error("no complete frame within {0:?} (slow sender cut off)")]
    TooSlow(std::time::Duration),
    /// The block was not kept.
    #[error(transparent)]
    Refused(#[from] ArrivalRefused),
    /// The fiber's task failed.
    #[error("fiber task: {0}")]
    Task(String),
}

/// One connection: one frame within its deadline, through the fiber, kept for its block.
async fn receive_one(link: &Arc<FollowerLink>, mut tcp: TcpStream) -> Result<(), ReceiveError> {
    let deadline = quantum_channel::frame_deadline(link.block_size);
    let block = tokio::time::timeout(
        deadline,
        quantum_channel::receive(&mut tcp, link.block_size),
    )
    .await
    .map_err(|_| ReceiveError::TooSlow(deadline))??
    .ok_or(ReceiveError::Empty)?;
    drop(tcp);
    let l = link.clone();
    let block = tokio::task::spawn_blocking(move || {
        let mut block = block;
        l.fiber.lock().expect("fiber lock").transmit(&mut block);
        block
    })
    .await
    .map_err(|e| ReceiveError::Task(e.to_string()))?;
    link.push_arrived(block)?;
    Ok(())
}

/// Bob's answer to one of the leader's messages (`POST /kme/v1/link/cvqkd`).
pub async fn answer(
    ctx: &LinkContext,
    link: &Arc<FollowerLink>,
    req: LinkRequest,
) -> Result<LinkReply, ApiError> {
    match req {
        LinkRequest::Start { params, block_id } => start(ctx, link, params, block_id).await,
        LinkRequest::Estimate { msg, reconcile } => estimate(ctx, link, msg, reconcile).await,
        LinkRequest::Finish {
            msg,
            seq,
            leader_bytes,
        } => finish(ctx, link, msg, seq, leader_bytes).await,
    }
}

async fn start(
    ctx: &LinkContext,
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
        let why = format!("none arrived within {} s", CVQKD_PULSES_WAIT.as_secs());
        ctx.board.record_starved(&link.peer, block_id, &why);
        return Ok(LinkReply::NoPulses { block_id });
    };
    let msg = on_bob(link, move |bob| Ok(bob.receive(&pulses))).await?;
    let next_seq = ctx.pool.levels().await?.next_seq;
    Ok(LinkReply::Started { msg, next_seq })
}

async fn estimate(
    ctx: &LinkContext,
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
        ctx.board.record(&link.peer, &o, !reconcile, 0);
    }
    Ok(LinkReply::Estimated(reply.filter(|_| reconcile)))
}

async fn finish(
    ctx: &LinkContext,
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
        Some(seq) if bytes.len() >= 2 => store(ctx, seq, bytes, leader_bytes).await?,
        Some(_) => return Err(ApiError::bad("leader stored a key this follower has not")),
        None => 0,
    };
    if let Some(o) = outcome {
        ctx.board.record(&link.peer, &o, false, 8 * stored);
    }
    Ok(LinkReply::Finished {
        stored_bytes: stored,
    })
}

/// Stores Bob's key as link blocks `seq` (its first `leader_bytes`, the leader's direction)
/// and `seq + 1` (the rest), as the leader shared Alice's.
async fn store(
    ctx: &LinkContext,
    seq: u64,
    bytes: zeroize::Zeroizing<Vec<u8>>,
    leader_bytes: u64,
) -> Result<u64, ApiError> {
    let pool = &ctx.pool;
    let next = pool.levels().await?.next_seq;
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
    let stored = pool
        .follower_store_pair(seq, bytes, leader_bytes as usize)
        .await?;
    ctx.metrics.add(LinkCounter::ReceivedBits, 8 * stored);
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
        .map_err(|e| ApiError::unavailable(Shortage::Internal, format!("Bob's task failed: {e}")))?
        .map_err(|e| ApiError::bad(format!("cvqkd: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn block(id: u64, v: f64) -> QuantumBlock {
        QuantumBlock {
            block_id: id,
            x: vec![v; 4],
            p: vec![v; 4],
        }
    }

    #[test]
    fn the_first_frame_of_a_block_is_kept_and_none_is_evicted_before_its_age() {
        let mut a = Arrivals::default();
        let t0 = Instant::now();
        a.offer(block(1, 1.0), t0).unwrap();
        assert_eq!(
            a.offer(block(1, -1.0), t0),
            Err(ArrivalRefused::Duplicate(1))
        );
        a.offer(block(2, -1.0), t0).unwrap();
        assert_eq!(a.offer(block(3, -1.0), t0), Err(ArrivalRefused::Full));
        assert_eq!(a.take(1).unwrap().x[0], 1.0, "the genuine block");
        // A block never announced is dropped once it is older than ARRIVED_MAX_AGE.
        a.offer(block(4, 1.0), t0).unwrap();
        let later = t0 + ARRIVED_MAX_AGE;
        a.offer(block(5, 1.0), later).unwrap();
        assert!(a.take(2).is_none() && a.take(4).is_none());
        assert!(a.take(5).is_some());
    }
}
