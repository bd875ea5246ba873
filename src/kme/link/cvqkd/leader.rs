//! Alice's end of a CV-QKD link, in the leader KME: one block after another, no faster
//! than the optical symbol rate allows, she sends the pulses on the quantum channel (a new
//! TCP connection per block, so a splice in the fiber takes effect at the next block) and
//! drives the classical exchange with Bob's KME. Her key of each block is stored first,
//! unconfirmed, shared between the link's two directions by their need (the leader names
//! the share, so the follower splits its copy alike); the follower stores its copy under
//! the same numbers; then the leader confirms. A block whose fate the leader did not hear is settled at the next block from
//! the follower's next expected sequence: confirmed if stored there, else discarded.
//! When both directions' pools are full the link keeps watching the channel: blocks stop after
//! parameter estimation (cheap), so an eavesdropper is still detected.

use super::board::CvqkdFigures;
use super::quantum_channel;
use super::wire::{self, LinkReply, LinkRequest, ProtocolParams};
use super::{CVQKD_CLASSICAL_TIMEOUT, CVQKD_RETRY_PAUSE};
use crate::cvqkd::sim::rng::SimRng;
use crate::cvqkd::sim::{Alice, ClassicalMessage, SideOutcome};
use crate::kme::config::LinkConfig;
use crate::kme::link::{DirectionRoom, LinkContext, LinkError};
use crate::kme::metrics::LinkCounter;
use crate::kme::neighbours::error_message;
use crate::kme::routes;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Alice's end of one link.
pub struct LeaderLink {
    link: LinkConfig,
    params: ProtocolParams,
    quantum: SocketAddr,
    block_interval: Duration,
    alice: Option<Alice>,
    next_block: u64,
}

impl LeaderLink {
    /// Alice for `link`'s `[link.cvqkd]`.
    pub fn new(link: &LinkConfig) -> Result<(Self, CvqkdFigures), String> {
        let cfg = link.cvqkd.as_ref().ok_or("not a cvqkd link")?;
        let proto = super::protocol(cfg)?;
        let mut rng = SimRng::from_os_entropy();
        let figures = CvqkdFigures::configured(cfg, proto.link.modulation_variance_snu);
        let me = LeaderLink {
            params: ProtocolParams::of(&proto),
            quantum: cfg
                .quantum_url
                .unwrap_or(SocketAddr::new(link.addr.ip(), cfg.quantum_port)),
            block_interval: Duration::from_secs_f64(cfg.block_size as f64 / cfg.symbol_rate_hz),
            next_block: rng.next_u64() >> 1,
            alice: Some(Alice::new(proto, rng.fork())),
            link: link.clone(),
        };
        Ok((me, figures))
    }

    /// The link.
    pub fn link(&self) -> &LinkConfig {
        &self.link
    }
}

/// Runs the link until the task is aborted (or its simulated device is lost).
pub async fn run(ctx: LinkContext, mut me: LeaderLink) {
    let mut failing = false;
    let mut next_start = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next_start).await;
        next_start = tokio::time::Instant::now() + me.block_interval;
        match run_block(&ctx, &mut me).await {
            Ok(()) => {
                if failing {
                    tracing::info!(peer = %me.link.peer, "cvqkd link: blocks run again");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(peer = %me.link.peer, "cvqkd block failed (will retry): {e}");
                }
                failing = true;
                ctx.metrics.add(LinkCounter::CvqkdBlockErrors, 1);
                tokio::time::sleep(CVQKD_RETRY_PAUSE).await;
            }
        }
    }
}

/// One block, end to end.
async fn run_block(ctx: &LinkContext, me: &mut LeaderLink) -> Result<(), LinkError> {
    let block_id = me.next_block;
    me.next_block += 1;
    let reconcile = pools_have_room(ctx).await?;
    let pulses = on_alice(me, move |a| Ok(a.prepare(block_id))).await?;
    if let Err(e) = send_pulses(me.quantum, &pulses).await {
        ctx.board
            .record_starved(&me.link.peer, block_id, &e.to_string());
        return Err(e);
    }
    drop(pulses);
    let start = LinkRequest::Start {
        params: me.params,
        block_id,
    };
    let (msg, next_seq) = match call(ctx, &start).await? {
        LinkReply::Started { msg, next_seq } => (msg, next_seq),
        LinkReply::NoPulses { block_id } => {
            let why = "the follower received none";
            ctx.board.record_starved(&me.link.peer, block_id, why);
            return Err(LinkError::NoPulses { block_id, why });
        }
        _ => return Err(LinkError::OutOfTurn("Start")),
    };
    settle_unconfirmed(ctx, next_seq).await?;
    let (answer, pe) = on_alice(me, move |a| {
        let answer = a
            .handle(&msg)?
            .ok_or("Alice had no answer to the disclosure")?;
        Ok((answer, *a.estimate().ok_or("no estimate")?))
    })
    .await?;
    let reconcile = reconcile && pe.abort.is_none();
    let estimate = LinkRequest::Estimate {
        msg: answer,
        reconcile,
    };
    let LinkReply::Estimated(reply) = call(ctx, &estimate).await? else {
        return Err(LinkError::OutOfTurn("Estimate"));
    };
    match reply {
        Some(reconciliation) if reconcile => finish(ctx, me, reconciliation).await,
        _ => {
            let o = SideOutcome::aborted(block_id, pe);
            ctx.board.record(&me.link.peer, &o, !reconcile, 0);
            Ok(())
        }
    }
}

/// Alice decodes, stores her key unconfirmed, the follower stores Bob's, the leader confirms.
async fn finish(
    ctx: &LinkContext,
    me: &mut LeaderLink,
    reconciliation: ClassicalMessage,
) -> Result<(), LinkError> {
    let (verification, key, outcome) = on_alice(me, move |a| {
        let v = a
            .handle(&reconciliation)?
            .ok_or("Alice had no verification")?;
        let outcome = a.outcome().cloned().ok_or("Alice has no outcome")?;
        Ok((v, a.take_key(), outcome))
    })
    .await?;
    let bytes = key.as_ref().map(wire::key_bytes).unwrap_or_default();
    let n = bytes.len() as u64;
    // The key is shared between the two directions by their need now.
    let levels = ctx.pool.levels().await?;
    let leader_len = DirectionRoom::of(&me.link, &levels).leader_share(bytes.len());
    let seq = if n >= 2 {
        Some(ctx.pool.leader_add_split(bytes, leader_len).await?)
    } else {
        None
    };
    let done = LinkRequest::Finish {
        msg: verification,
        seq,
        leader_bytes: leader_len as u64,
    };
    let LinkReply::Finished { stored_bytes } = call(ctx, &done).await? else {
        return Err(LinkError::OutOfTurn("Finish"));
    };
    if let Some(seq) = seq {
        if stored_bytes != n {
            return Err(LinkError::StoredMismatch {
                follower: stored_bytes,
                leader: n,
            });
        }
        ctx.pool.confirm(seq + 2).await?;
        ctx.metrics.add(LinkCounter::GeneratedBits, 8 * n);
    }
    ctx.board.record(&me.link.peer, &outcome, false, 8 * n);
    Ok(())
}

/// Whether a direction of the link's pool is below its high-water mark (else: estimate
/// only).
async fn pools_have_room(ctx: &LinkContext) -> Result<bool, LinkError> {
    let levels = ctx.pool.levels().await?;
    Ok(crate::kme::link::below_high_water(&ctx.link, &levels))
}

/// Confirms blocks the follower stored, discards those it did not.
async fn settle_unconfirmed(ctx: &LinkContext, follower_next: u64) -> Result<(), LinkError> {
    let peer = ctx.pool.peer();
    let levels = ctx.pool.levels().await?;
    if levels.next_seq == levels.confirmed_seq {
        return Ok(());
    }
    if follower_next >= levels.next_seq {
        let upto = levels.next_seq;
        tracing::info!(
            peer,
            upto,
            "cvqkd: follower had stored the last key; confirmed"
        );
        ctx.pool.confirm(upto).await?;
    } else {
        tracing::info!(peer, "cvqkd: follower never stored the last key; discarded");
        ctx.pool.discard_unconfirmed().await?;
    }
    Ok(())
}

/// Sends one block's pulses on a fresh connection.
async fn send_pulses(
    to: SocketAddr,
    pulses: &crate::cvqkd::sim::QuantumBlock,
) -> Result<(), LinkError> {
    let mut tcp = tokio::net::TcpStream::connect(to)
        .await
        .map_err(|e| LinkError::QuantumChannel(format!("quantum channel to {to}: {e}")))?;
    quantum_channel::send(&mut tcp, pulses)
        .await
        .map_err(|e| LinkError::QuantumChannel(e.to_string()))?;
    let _ = tcp.shutdown().await;
    Ok(())
}

/// One classical exchange with the follower.
async fn call(ctx: &LinkContext, req: &LinkRequest) -> Result<LinkReply, LinkError> {
    let resp = ctx
        .neighbour
        .post(routes::CVQKD_LINK)
        .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
        .body(wire::encode(req))
        .timeout(CVQKD_CLASSICAL_TIMEOUT)
        .send()
        .await
        .map_err(LinkError::ClassicalChannel)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(LinkError::ReplyBody)?;
    if !status.is_success() {
        let message = error_message(&body).unwrap_or_else(|| "no message".to_string());
        return Err(LinkError::Refused {
            status,
            message: Some(message),
        });
    }
    wire::decode(&body).map_err(|e| LinkError::BadReply(e.to_string()))
}

/// Runs `f` on Alice off the async threads.
async fn on_alice<T, F>(me: &mut LeaderLink, f: F) -> Result<T, LinkError>
where
    T: Send + 'static,
    F: FnOnce(&mut Alice) -> Result<T, Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let mut alice = me.alice.take().ok_or(LinkError::DeviceLost)?;
    let (alice, out) = tokio::task::spawn_blocking(move || {
        let out = f(&mut alice);
        (alice, out)
    })
    .await
    .map_err(|e| LinkError::DeviceTask(e.to_string()))?;
    me.alice = Some(alice);
    out.map_err(|e| LinkError::Simulator(e.to_string()))
}
