//! The KME's durable store (redb in `data_dir/kme.redb`): link key pools, keys waiting for
//! their slave, the IDs of delivered keys, and metric counters. Every operation is one
//! write transaction committed with `Durability::Immediate` before the caller answers
//! anyone, so after `kill -9` no key is handed out twice and none is lost.
//!
//! Link pools are split by direction so that the two ends never spend the same pad bits
//! concurrently: blocks with an even sequence number are spent by the leader when it sends,
//! odd ones by the follower. Blocks come in pairs (`seq` even, `seq + 1`); the leader decides
//! how a pair's bytes are shared between the two (by each direction's need, see
//! `kme::link::random`), and either block may be empty (then it is not stored). A block is stored with a bitmap of spent bytes; spent bytes are
//! overwritten with zeros and fully spent blocks are deleted. Key bytes read from the store
//! live in [`Zeroizing`] buffers (redb's freed pages are reused, not wiped: see docs/kme.md).

mod pads;
mod pending;
mod schema;
#[cfg(test)]
mod tests;

pub use pads::xor_split;

use super::config::LinkRole;
use crate::config::identity_files;
use redb::{Database, ReadableTable};
use schema::{
    COUNTERS, DELIVERED, DELIVERED_BY_TIME, LINK_POOL, META, PENDING_BY_DEADLINE, PENDING_DEADLINE,
    PENDING_DEC,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// Key or pad bytes, wiped on drop.
pub type Secret = Zeroizing<Vec<u8>>;
/// Pad ranges and the keys masked with them, for the next hop.
pub type Masked = (Vec<PadRange>, Vec<Secret>);
/// A link block: its sequence number and bytes.
pub type SeqBlock = (u64, Secret);

/// Which end of a link spends a pad block: blocks with an even sequence number are spent
/// by the leader when it sends, odd ones by the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Blocks the leader spends (even sequence numbers).
    LeaderSends,
    /// Blocks the follower spends (odd sequence numbers).
    FollowerSends,
}

impl Direction {
    /// The direction this KME spends when it sends over a link where it has `role`.
    pub fn sent_by(role: LinkRole) -> Self {
        match role {
            LinkRole::Leader => Self::LeaderSends,
            LinkRole::Follower => Self::FollowerSends,
        }
    }

    /// The direction of block `seq`.
    pub fn of_seq(seq: u64) -> Self {
        if seq.is_multiple_of(2) {
            Self::LeaderSends
        } else {
            Self::FollowerSends
        }
    }

    /// The other end's direction.
    pub fn opposite(self) -> Self {
        match self {
            Self::LeaderSends => Self::FollowerSends,
            Self::FollowerSends => Self::LeaderSends,
        }
    }

    /// The direction's column in the `link_pool` table.
    fn table_key(self) -> u8 {
        match self {
            Self::LeaderSends => 0,
            Self::FollowerSends => 1,
        }
    }

    /// The `meta` counter of the direction's unspent (spendable) bytes.
    fn available_counter(self) -> &'static str {
        match self {
            Self::LeaderSends => "avail0",
            Self::FollowerSends => "avail1",
        }
    }
}
/// Delivery flag: handed to the master SAE.
pub const DELIVERED_MASTER: u8 = 1;
/// Delivery flag: handed to the slave SAE.
pub const DELIVERED_SLAVE: u8 = 2;
/// Delivery flag: never delivered to the slave; erased when it expired.
pub const EXPIRED: u8 = 4;

/// Keys that expired, counted per (master, slave) pair.
pub type ExpiredCounts = std::collections::BTreeMap<(String, String), u64>;

/// The store's file name in `data_dir`.
pub const STORE_FILE: &str = "kme.redb";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's directory or file is accessible by others, owned by another user, or
    /// cannot be created.
    #[error("key store: {0}")]
    Access(#[from] identity_files::IdentityFileError),
    /// The database failed (I/O, corruption, commit).
    #[error("key store: {0}")]
    Db(String),
    /// A link pool holds fewer unspent bytes than needed.
    #[error("link to '{peer}' holds {have} unspent pad bytes, {need} needed")]
    Short {
        /// The link's peer.
        peer: String,
        /// Bytes available.
        have: u64,
        /// Bytes needed.
        need: u64,
    },
    /// A pad range named by a neighbour is missing or already spent.
    #[error("pad block {seq} of the link to '{peer}' is missing or spent")]
    PadMissing {
        /// The link's peer.
        peer: String,
        /// The block.
        seq: u64,
    },
    /// The pair already has `max_key_count` keys waiting for the slave.
    #[error("{pending} keys are waiting for the slave (max_key_count)")]
    Full {
        /// Keys waiting.
        pending: u64,
    },
    /// A requested key is not held for this master (or was delivered already).
    #[error("key not found")]
    NotFound,
    /// A relayed key reuses the ID of a key this KME has held (delivered or expired).
    #[error("key ID '{0}' was used before")]
    Reused(String),
    /// A requested key belongs to another slave SAE.
    #[error("key belongs to another SAE")]
    Unauthorized,
    /// A stored record does not decode.
    #[error("key store: corrupt record in {0}")]
    Corrupt(&'static str),
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Db(e.to_string())
            }
        }
    )*};
}
db_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Where a hop's pad bytes sit in a link pool: `len` bytes from `offset` of block `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PadRange {
    /// Block sequence number.
    pub seq: u64,
    /// First byte in the block.
    pub offset: u32,
    /// Bytes.
    pub len: u32,
}

/// A place in one direction of a link pool: byte `offset` of block `seq`. A direction is
/// spent in this order (block by block, each from its first unspent byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PadPosition {
    /// Block sequence number.
    pub seq: u64,
    /// Byte in the block.
    pub offset: u32,
}

impl PadRange {
    /// The position just after the range.
    pub fn end(&self) -> PadPosition {
        PadPosition {
            seq: self.seq,
            offset: self.offset.saturating_add(self.len),
        }
    }
}

/// A key generated or relayed to this KME for one of its slaves.
pub struct NewKey {
    /// The key ID (UUID string).
    pub id: String,
    /// Key bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

/// The levels of one link's pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkLevels {
    /// Unspent bytes the leader may spend.
    pub leader_sends_bytes: u64,
    /// Unspent bytes the follower may spend.
    pub follower_sends_bytes: u64,
    /// Leader: blocks below this are confirmed by the follower.
    pub confirmed_seq: u64,
    /// Leader: next block sequence; follower: next block expected.
    pub next_seq: u64,
    /// Leader: bytes of the leader's direction stored but not yet confirmed by the follower
    /// (not spendable yet, but already generated); follower: 0.
    pub leader_unconfirmed_bytes: u64,
}

impl LinkLevels {
    /// Unspent bits in both directions.
    pub fn stored_bits(&self) -> u64 {
        8 * (self.leader_sends_bytes + self.follower_sends_bytes)
    }
}

/// What the last hop of a relay does with the recovered keys.
pub enum HopAction {
    /// Pass them on over the link to `peer`, spending pad of direction `dir`.
    Forward {
        /// The next KME.
        peer: String,
        /// The direction this KME spends on that link.
        dir: Direction,
    },
    /// Store them for the local slave SAE.
    Deliver {
        /// Master SAE.
        master: String,
        /// Slave SAE (attached here).
        slave: String,
        /// Key IDs, one per key.
        ids: Vec<String>,
        /// Most keys the pair may have waiting (`max_key_count`).
        max_pending: u64,
        /// When they expire, Unix ms.
        deadline_ms: u64,
    },
    /// Give them back: they are shares of keys relayed in parts, stored only when every
    /// share has arrived ([`Store::store_relayed`]).
    Unmask,
}

/// What a relay hop did.
pub enum HopOutcome {
    /// Re-masked for the next KME: the pad it names and the masked keys.
    Forwarded(Masked),
    /// Stored for the local slave.
    Delivered,
    /// Unmasked and given back (shares).
    Unmasked(Vec<Secret>),
}

/// A pad taken from a link pool: where it was and its bytes.
pub struct Pad {
    /// Where the bytes were.
    pub ranges: Vec<PadRange>,
    /// The bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

/// The durable store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store in `dir`. The directory is created 0700 and
    /// `kme.redb` 0600 whatever the umask; an existing one that group or others may access,
    /// or that another user owns, is refused (it holds unspent pads and pending keys in
    /// clear).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        identity_files::create_private_dir(dir)?;
        let path = dir.join(STORE_FILE);
        identity_files::create_private_file(&path)?;
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LINK_POOL)?;
        txn.open_table(META)?;
        txn.open_table(PENDING_DEC)?;
        txn.open_table(DELIVERED)?;
        txn.open_table(DELIVERED_BY_TIME)?;
        txn.open_table(PENDING_DEADLINE)?;
        txn.open_table(PENDING_BY_DEADLINE)?;
        txn.open_table(COUNTERS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// Runs `change` in one write transaction, committed only if it succeeds (all or
    /// nothing).
    fn write<T>(
        &self,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write()?;
        let out = change(&txn)?;
        txn.commit()?;
        Ok(out)
    }

    /// Every saved counter.
    pub fn load_counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let txn = self.db.begin_write()?;
        let out = {
            let table = txn.open_table(COUNTERS)?;
            let mut out = Vec::new();
            for row in table.range::<&str>(..)? {
                let (k, v) = row?;
                out.push((k.value().to_string(), v.value()));
            }
            out
        };
        txn.abort()?;
        Ok(out)
    }

    /// Saves counters (metrics only: a crash loses at most one interval of them).
    pub fn save_counters(&self, counters: &[(String, u64)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(COUNTERS)?;
            for (k, v) in counters {
                table.insert(k.as_str(), v)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
