//! The random link source: the [`KeySupply`] trait a pushed key source implements, the
//! [`RandomSource`] (a CSPRNG at a configured rate — **NOT QKD**, for tests and demos), and
//! the leader's task that pulls key blocks from the source and pushes them to the follower
//! over mutual TLS (`POST /kme/v1/link/keys`), so both ends hold the same keys under the
//! same block sequence numbers. A block enters the leader's own spendable pool only when
//! the follower has stored it; unconfirmed blocks are pushed again after a restart.

use super::{DirectionRoom, LinkContext, LinkError, below_high_water};
use crate::kme::metrics::LinkCounter;
use crate::kme::routes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How often the leader polls its source and pushes.
pub const LINK_TICK: Duration = Duration::from_millis(100);
/// Largest block pair pulled from a source at once, bytes.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;
/// Most blocks per push request.
pub const MAX_BLOCKS_PER_PUSH: usize = 64;

/// A source of key bits whose leader instance produces both ends' copies, pushed to the
/// follower (a real device's key stream could implement it). The CV-QKD simulator does
/// not: each end distills its own copy (`kme::link::cvqkd`), so no key crosses the network.
pub trait KeySupply: Send {
    /// What the source is, for status and logs (e.g. "random (NOT QKD)").
    fn label(&self) -> &'static str;
    /// Key bytes produced since the last call, at most `max_bytes`; empty when none.
    fn next_block(&mut self, now: Instant, max_bytes: usize) -> Zeroizing<Vec<u8>>;
}

/// A CSPRNG producing `rate_bits_per_second`. It is NOT QKD: its keys are only as secret
/// as this machine, and it says so everywhere it is shown.
pub struct RandomSource {
    rate_bits_per_second: u64,
    last: Option<Instant>,
    credit_bits: f64,
}

impl RandomSource {
    /// Label shown in status and logs.
    pub const LABEL: &'static str = "random (NOT QKD)";

    /// A source producing `rate_bits_per_second`.
    pub fn new(rate_bits_per_second: u64) -> Self {
        Self {
            rate_bits_per_second,
            last: None,
            credit_bits: 0.0,
        }
    }
}

impl KeySupply for RandomSource {
    fn label(&self) -> &'static str {
        Self::LABEL
    }

    fn next_block(&mut self, now: Instant, max_bytes: usize) -> Zeroizing<Vec<u8>> {
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last = Some(now);
        self.credit_bits += elapsed.as_secs_f64() * self.rate_bits_per_second as f64;
        let bytes = ((self.credit_bits / 8.0) as usize).min(max_bytes);
        self.credit_bits = (self.credit_bits - (bytes * 8) as f64).min(8.0 * max_bytes as f64);
        let mut out = Zeroizing::new(vec![0u8; bytes]);
        if bytes > 0 {
            aws_lc_rs::rand::fill(&mut out).expect("system randomness");
        }
        out
    }
}

/// One pushed block on the wire.
#[derive(Serialize, Deserialize)]
pub struct WireBlock {
    /// Block sequence number.
    pub seq: u64,
    /// Key bytes, base64.
    pub key: String,
}

impl Drop for WireBlock {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// `POST /kme/v1/link/keys` body.
#[derive(Serialize, Deserialize)]
pub struct LinkPush {
    /// The blocks, in sequence order.
    pub blocks: Vec<WireBlock>,
}

/// Decodes a push into blocks for [`crate::kme::store::Store::follower_store`].
pub fn decode_push(push: &LinkPush) -> Option<Vec<(u64, Zeroizing<Vec<u8>>)>> {
    push.blocks
        .iter()
        .map(|b| Some((b.seq, Zeroizing::new(B64.decode(&b.key).ok()?))))
        .collect()
}

/// The leader's loop for one link: pull from the source while a direction of the pool is
/// below its high-water mark, each direction getting what it lacks,
/// store, push unconfirmed blocks, confirm. Runs until the task is aborted.
pub async fn run_leader(ctx: LinkContext) {
    // CV-QKD links run their own two-sided pipeline (`kme::link::cvqkd`), not a push source.
    let mut source: Box<dyn KeySupply> = Box::new(RandomSource::new(ctx.link.rate_bits_per_second));
    let mut warned = false;
    let mut tick = tokio::time::interval(LINK_TICK);
    loop {
        tick.tick().await;
        if let Err(e) = leader_step(&ctx, source.as_mut()).await {
            if !warned {
                tracing::warn!(peer = %ctx.link.peer, "link push failed (will retry): {e}");
            }
            warned = true;
        } else {
            warned = false;
        }
    }
}

async fn leader_step(ctx: &LinkContext, source: &mut dyn KeySupply) -> Result<(), LinkError> {
    let link = &ctx.link;
    let levels = ctx.pool.levels().await?;
    // While both directions are above their high-water mark the source's output is
    // discarded (as a device's is when its KME has no room), so a direction refills in
    // blocks of at least 1/8 of its size.
    let room = DirectionRoom::of(link, &levels);
    let want = if below_high_water(link, &levels) {
        room.total_bytes() as usize
    } else {
        0
    };
    let block = source.next_block(Instant::now(), want.min(MAX_BLOCK_BYTES));
    if block.len() >= 2 {
        let n = block.len();
        let leader_len = room.leader_share(n);
        ctx.pool.leader_add_split(block, leader_len).await?;
        ctx.metrics.add(LinkCounter::GeneratedBits, 8 * n as u64);
    }
    push_unconfirmed(ctx).await
}

async fn push_unconfirmed(ctx: &LinkContext) -> Result<(), LinkError> {
    loop {
        let blocks = ctx.pool.unconfirmed(MAX_BLOCKS_PER_PUSH).await?;
        let Some(last) = blocks.last().map(|b| b.0) else {
            return Ok(());
        };
        let push = LinkPush {
            blocks: blocks
                .iter()
                .map(|(seq, k)| WireBlock {
                    seq: *seq,
                    key: B64.encode(k),
                })
                .collect(),
        };
        let resp = ctx
            .neighbour
            .post(routes::LINK_KEYS)
            .json(&push)
            .send()
            .await
            .map_err(LinkError::Push)?;
        if !resp.status().is_success() {
            return Err(LinkError::Refused {
                status: resp.status(),
                message: None,
            });
        }
        ctx.pool.confirm(last + 1).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kme::config::LinkConfig;

    fn link(pool_max_bits: u64) -> LinkConfig {
        LinkConfig {
            peer: "b".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            role: crate::kme::config::LinkRole::Leader,
            source: crate::kme::config::SourceKind::Random,
            rate_bits_per_second: 1000,
            pool_max_bits,
            cvqkd: None,
        }
    }

    #[test]
    fn each_direction_is_refilled_by_its_own_need() {
        let link = link(16 * 1000);
        let levels = |leader, unconfirmed, follower| crate::kme::store::LinkLevels {
            leader_sends_bytes: leader,
            follower_sends_bytes: follower,
            leader_unconfirmed_bytes: unconfirmed,
            ..Default::default()
        };
        // The follower's direction full, the leader's empty: all new key to the leader's.
        let l = levels(0, 0, 1000);
        assert!(below_high_water(&link, &l));
        let room = DirectionRoom::of(&link, &l);
        assert_eq!((room.total_bytes(), room.leader_share(1000)), (1000, 1000));
        // Blocks not yet confirmed count as held.
        let l = levels(500, 500, 1000);
        assert!(!below_high_water(&link, &l));
        // Unequal need: shared in proportion.
        let l = levels(200, 0, 600);
        let room = DirectionRoom::of(&link, &l);
        assert_eq!(room.leader_share(1200), 800);
        // At 7/8 of each direction's half nothing is generated.
        assert!(!below_high_water(&link, &levels(875, 0, 875)));
        assert!(below_high_water(&link, &levels(875, 0, 874)));
    }

    #[test]
    fn random_source_keeps_its_rate() {
        let mut s = RandomSource::new(8000);
        let t0 = Instant::now();
        assert!(s.next_block(t0, 1 << 20).is_empty());
        let b = s.next_block(t0 + Duration::from_millis(500), 1 << 20);
        assert_eq!(b.len(), 500);
        let b = s.next_block(t0 + Duration::from_millis(1500), 100);
        assert_eq!(b.len(), 100, "capped");
        assert_eq!(s.label(), "random (NOT QKD)");
    }
}
