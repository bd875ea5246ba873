//! Eve on the fiber of a simulated link, as her own process (`qshield qkd eve`): she
//! accepts the pulse stream Alice's KME sends ([`super::quantum_channel`]), applies her
//! attack to every block (entangling cloner, intercept-resend, or a tap; cvqkd.md §7) and
//! passes the blocks on to Bob's KME. She sits at the fiber's input, so the fiber's loss
//! and noise (applied at Bob's end) act after her. She never sees the classical channel's
//! contents beyond what is public, and she has no other access to either side.
//!
//! A demo switches her onto a running link by redirecting the link's quantum port to her
//! (nftables DNAT in Alice's node); every new block connection then passes through her.

use super::quantum_channel::{self, QuantumChannelError};
use crate::cvqkd::sim::rng::SimRng;
use crate::cvqkd::sim::{Attack, Channel};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};

/// What Eve has done so far.
#[derive(Debug, Default)]
pub struct EveCounters {
    /// Blocks attacked and passed on.
    pub blocks: AtomicU64,
    /// Connections that ended with a malformed frame or a failed forward.
    pub failed_connections: AtomicU64,
}

/// Eve's configuration.
#[derive(Debug, Clone, Copy)]
pub struct EveConfig {
    /// Where Bob's KME receives the pulses.
    pub forward: SocketAddr,
    /// The attack.
    pub attack: Attack,
    /// Largest block she accepts, pulses.
    pub max_block_pulses: u64,
    /// Seed of her randomness.
    pub seed: u64,
}

/// Accepts pulse streams on `listener` until the task is dropped; each connection gets its
/// own forward connection to Bob and its own random generator.
pub async fn run(listener: TcpListener, cfg: EveConfig, counters: Arc<EveCounters>) {
    let mut root = SimRng::new(cfg.seed);
    loop {
        let (inbound, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("eve: accept failed: {e}");
                tokio::time::sleep(super::CVQKD_ACCEPT_RETRY).await;
                continue;
            }
        };
        let rng = root.fork();
        let counters = counters.clone();
        tokio::spawn(async move {
            if let Err(e) = relay(inbound, cfg, rng, &counters).await {
                counters.failed_connections.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%from, "eve: connection ended: {e}");
            }
        });
    }
}

/// One pulse stream: attack each block and forward it.
async fn relay(
    mut inbound: TcpStream,
    cfg: EveConfig,
    rng: SimRng,
    counters: &EveCounters,
) -> Result<(), QuantumChannelError> {
    let mut outbound = TcpStream::connect(cfg.forward).await?;
    let mut channel = Channel::new(1.0, 0.0, cfg.attack, rng);
    while let Some(mut block) =
        quantum_channel::receive_at_most(&mut inbound, cfg.max_block_pulses).await?
    {
        channel.transmit(&mut block);
        quantum_channel::send(&mut outbound, &block).await?;
        let n = counters.blocks.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(block = block.block_id, total = n, attack = ?cfg.attack, "eve: attacked a block");
    }
    Ok(())
}
