//! QKD links between KMEs. Owns what every link task shares: its [`LinkContext`] (the
//! only state a link task gets: its pool, counters, neighbour and the CV-QKD board), its
//! typed [`LinkError`] (retried or not), and how a link's pool is split between its two
//! directions ([`DirectionRoom`]). The key sources: [`random`] (a CSPRNG pushed to the
//! follower, **NOT QKD**) and [`cvqkd`] (the simulated device pair, distilled at both
//! ends). Imports the config, pools, metrics, neighbour client and store types; never
//! the shared state or the HTTP side.

pub mod cvqkd;
pub mod random;

use super::config::LinkConfig;
use super::metrics::LinkMetrics;
use super::neighbours::Neighbour;
use super::pools::LinkPool;
use super::store::StoreError;
use cvqkd::board::Board;
use std::sync::Arc;

/// What a link's task is given: the link's config, its pool, its counters, its neighbour
/// and the CV-QKD board (figures and alarms). Nothing else of the KME.
#[derive(Clone)]
pub struct LinkContext {
    /// The link.
    pub link: LinkConfig,
    /// The link's pool.
    pub pool: LinkPool,
    /// The link's counters.
    pub metrics: LinkMetrics,
    /// The KME at the other end.
    pub neighbour: Neighbour,
    /// Figures and alarms of the CV-QKD links.
    pub board: Arc<Board>,
}

/// Why a link task's step failed. The task counts it and tries the next step after a pause
/// (a lost simulator end fails every later step too, as it always has: the counters show it).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The follower could not be reached with a push.
    #[error(transparent)]
    Push(reqwest::Error),
    /// The follower could not be reached on the classical channel of a CV-QKD link.
    #[error("classical channel: {0}")]
    ClassicalChannel(reqwest::Error),
    /// The follower's reply could not be read.
    #[error("{0}")]
    ReplyBody(reqwest::Error),
    /// The follower answered with an error status.
    #[error("follower answered {status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        /// The status.
        status: reqwest::StatusCode,
        /// The `message` of its error body, if read.
        message: Option<String>,
    },
    /// The follower's reply could not be decoded.
    #[error("follower's reply: {0}")]
    BadReply(String),
    /// The follower answered a request of another step.
    #[error("follower answered {0} out of turn")]
    OutOfTurn(&'static str),
    /// The follower received no pulses of the block.
    #[error("block {block_id}: no pulses ({why})")]
    NoPulses {
        /// The block.
        block_id: u64,
        /// Why.
        why: &'static str,
    },
    /// The follower stored another amount of key than the leader.
    #[error("follower stored {follower} key bytes, the leader {leader}")]
    StoredMismatch {
        /// Bytes the follower stored.
        follower: u64,
        /// Bytes the leader stored.
        leader: u64,
    },
    /// The pulses could not be sent.
    #[error("{0}")]
    QuantumChannel(String),
    /// The simulated device refused a step of the protocol.
    #[error("{0}")]
    Simulator(String),
    /// The simulated device's task panicked: it is lost.
    #[error("Alice's task failed: {0}")]
    DeviceTask(String),
    /// The simulated device was lost by an earlier panic.
    #[error("Alice is lost (earlier task panic)")]
    DeviceLost,
}

/// Room left in each direction of a link's pool, bytes: each direction (the leader's
/// sending pool and the follower's) may hold half of `pool_max_bits`, and is refilled by
/// its own need, whatever the other holds. The leader counts its own blocks not yet
/// confirmed by the follower as held (they are generated, only not spendable yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionRoom {
    /// Bytes the leader's direction lacks to be full.
    pub leader_sends_bytes: u64,
    /// Bytes the follower's direction lacks to be full.
    pub follower_sends_bytes: u64,
}

/// The bytes one direction may hold: half of `pool_max_bits`.
pub fn direction_max_bytes(link: &LinkConfig) -> u64 {
    link.pool_max_bits / 16
}

impl DirectionRoom {
    /// The room of each direction at the leader's `levels`.
    pub fn of(link: &LinkConfig, levels: &super::store::LinkLevels) -> Self {
        let max = direction_max_bytes(link);
        let leader_held = levels.leader_sends_bytes + levels.leader_unconfirmed_bytes;
        DirectionRoom {
            leader_sends_bytes: max.saturating_sub(leader_held),
            follower_sends_bytes: max.saturating_sub(levels.follower_sends_bytes),
        }
    }

    /// Both directions' room.
    pub fn total_bytes(&self) -> u64 {
        self.leader_sends_bytes + self.follower_sends_bytes
    }

    /// How many of `n` new key bytes go to the leader's direction (the rest go to the
    /// follower's): shared in proportion to each direction's room, so a direction that is
    /// full gets nothing and one that nobody spends never holds back the other.
    pub fn leader_share(&self, n: usize) -> usize {
        let total = self.total_bytes();
        if total == 0 {
            return n / 2;
        }
        (n as u128 * u128::from(self.leader_sends_bytes) / u128::from(total)) as usize
    }
}

/// Whether either direction of the link's pool is below 7/8 of its half of
/// `pool_max_bits` (the leader generates only then: a random source refills, a CV-QKD
/// link reconciles). `levels` are the leader's.
pub fn below_high_water(link: &LinkConfig, levels: &super::store::LinkLevels) -> bool {
    let max = direction_max_bytes(link);
    let room = DirectionRoom::of(link, levels);
    [room.leader_sends_bytes, room.follower_sends_bytes]
        .iter()
        .any(|&r| max - r < max - max / 8)
}
