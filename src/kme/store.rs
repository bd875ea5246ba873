//! The KME's durable store (redb in `data_dir/kme.redb`): link key pools, keys waiting for
//! their slave, the IDs of delivered keys, and metric counters. Every operation is one
//! write transaction committed with `Durability::Immediate` before the caller answers
//! anyone, so after `kill -9` no key is handed out twice and none is lost.
//!
//! Link pools are split by direction so that the two ends never spend the same pad bits
//! concurrently: blocks with an even sequence number are spent by the leader when it sends,
//! odd ones by the follower. Blocks come in pairs (`seq` even, `seq + 1`); the leader decides
//! how a pair's bytes are shared between the two (by each direction's need, see
//! `kme::links`), and either block may be empty (then it is not stored). A block is stored with a bitmap of spent bytes; spent bytes are
//! overwritten with zeros and fully spent blocks are deleted. Key bytes read from the store
//! live in [`Zeroizing`] buffers (redb's freed pages are reused, not wiped: see docs/kme.md).

use crate::config::identity_files;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// (link peer, direction, block sequence) → block (see [`Block`]).
const LINK_POOL: TableDefinition<(&str, u8, u64), &[u8]> = TableDefinition::new("link_pool");
/// (scope, name) → u64: link cursors and levels, per-pair pending counts.
const META: TableDefinition<(&str, &str), u64> = TableDefinition::new("meta");
/// key ID → master, slave, key bytes (waiting for the slave's `dec_keys`).
const PENDING_DEC: TableDefinition<&str, &[u8]> = TableDefinition::new("pending_dec");
/// key ID → delivery flags (1 = to the master, 2 = to the slave).
const DELIVERED: TableDefinition<&str, u8> = TableDefinition::new("delivered");
/// key ID → Unix ms after which the pending key is expired.
const PENDING_DEADLINE: TableDefinition<&str, u64> = TableDefinition::new("pending_deadline");
/// (deadline Unix ms, key ID) → (): pending keys in the order they expire.
const PENDING_BY_DEADLINE: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("pending_by_deadline");
/// metric name → value.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// Key or pad bytes, wiped on drop.
pub type Secret = Zeroizing<Vec<u8>>;
/// Pad ranges and the keys masked with them, for the next hop.
pub type Masked = (Vec<PadRange>, Vec<Secret>);
/// A link block: its sequence number and bytes.
pub type SeqBlock = (u64, Secret);

/// Direction of pad blocks the leader spends.
pub const DIR_LEADER_SENDS: u8 = 0;
/// Direction of pad blocks the follower spends.
pub const DIR_FOLLOWER_SENDS: u8 = 1;
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
pub enum HopAction<'a> {
    /// Pass them on over the link to `peer`, spending pad of direction `dir`.
    Forward {
        /// The next KME.
        peer: &'a str,
        /// The direction this KME spends on that link.
        dir: u8,
    },
    /// Store them for the local slave SAE.
    Deliver {
        /// Master SAE.
        master: &'a str,
        /// Slave SAE (attached here).
        slave: &'a str,
        /// Key IDs, one per key.
        ids: &'a [String],
        /// Most keys the pair may have waiting (`max_key_count`).
        max_pending: u64,
        /// When they expire, Unix ms.
        deadline_ms: u64,
    },
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
        txn.open_table(PENDING_DEADLINE)?;
        txn.open_table(PENDING_BY_DEADLINE)?;
        txn.open_table(COUNTERS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// Stores `keys` for a slave attached here and records them delivered to the master, in
    /// one commit; refuses when the pair would exceed `max_pending` waiting keys. The keys
    /// expire at `deadline_ms` (Unix ms) if the slave has not fetched them.
    pub fn enc_local(
        &self,
        master: &str,
        slave: &str,
        keys: &[NewKey],
        max_pending: u64,
        deadline_ms: u64,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        store_pending(&txn, master, slave, keys, max_pending, deadline_ms)?;
        mark_delivered(&txn, &ids, DELIVERED_MASTER)?;
        txn.commit()?;
        Ok(())
    }

    /// Records relayed keys as delivered to their master (the relay already succeeded).
    pub fn mark_master_delivered(&self, ids: &[String]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        mark_delivered(&txn, ids, DELIVERED_MASTER)?;
        txn.commit()?;
        Ok(())
    }

    /// Spends `len` pad bytes of `dir` on the link to `peer` (committed: a pad is never
    /// reused, even if the relay then fails).
    pub fn take_pad(&self, peer: &str, dir: u8, len: usize) -> Result<Pad, StoreError> {
        let txn = self.db.begin_write()?;
        let pad = take_pad(&txn, peer, dir, len)?;
        txn.commit()?;
        Ok(pad)
    }

    /// One relay hop at this KME, in one commit: spends the incoming pad `ranges` of
    /// (`from`, `from_dir`), recovers the keys from `masked`, then either re-masks them for
    /// the next link (returned) or stores them for the local slave.
    pub fn relay_hop(
        &self,
        from: &str,
        from_dir: u8,
        ranges: &[PadRange],
        masked: &[Zeroizing<Vec<u8>>],
        action: HopAction<'_>,
    ) -> Result<Option<Masked>, StoreError> {
        let txn = self.db.begin_write()?;
        let pad = use_pad(&txn, from, from_dir, ranges)?;
        let keys = xor_split(masked, &pad);
        let out = match action {
            HopAction::Forward { peer, dir } => {
                let total = keys.iter().map(|k| k.len()).sum();
                let next = take_pad(&txn, peer, dir, total)?;
                Some((next.ranges, xor_split(&keys, &next.bytes)))
            }
            HopAction::Deliver {
                master,
                slave,
                ids,
                max_pending,
                deadline_ms,
            } => {
                let new: Vec<NewKey> = ids
                    .iter()
                    .zip(keys)
                    .map(|(id, bytes)| NewKey {
                        id: id.clone(),
                        bytes,
                    })
                    .collect();
                store_pending(&txn, master, slave, &new, max_pending, deadline_ms)?;
                None
            }
        };
        txn.commit()?;
        Ok(out)
    }

    /// `dec_keys`: removes the keys `ids` of `master` for `caller` (who must be their slave)
    /// and records them delivered; all or nothing. A key whose deadline is at or before
    /// `now_ms` is not found (as an unknown one), whether or not it was erased yet.
    pub fn dec_keys(
        &self,
        caller: &str,
        master: &str,
        ids: &[String],
        now_ms: u64,
    ) -> Result<Vec<NewKey>, StoreError> {
        let txn = self.db.begin_write()?;
        let keys = take_pending(&txn, caller, master, ids, now_ms)?;
        mark_delivered(&txn, ids, DELIVERED_SLAVE)?;
        txn.commit()?;
        Ok(keys)
    }

    /// Erases every pending key whose deadline is at or before `now_ms` and marks its ID
    /// [`EXPIRED`] (never stored or served again); returns the counts per pair. Keys stored
    /// without a deadline (by an older version) get `adopt_deadline_ms`.
    pub fn expire_pending(
        &self,
        now_ms: u64,
        adopt_deadline_ms: u64,
    ) -> Result<ExpiredCounts, StoreError> {
        let txn = self.db.begin_write()?;
        adopt_untimed(&txn, adopt_deadline_ms)?;
        let due: Vec<(u64, String)> = {
            let index = txn.open_table(PENDING_BY_DEADLINE)?;
            let mut due = Vec::new();
            for row in index.range::<(u64, &str)>((0, "")..)? {
                let (k, _) = row?;
                let (deadline, id) = k.value();
                if deadline > now_ms {
                    break;
                }
                due.push((deadline, id.to_string()));
            }
            due
        };
        let mut counts = ExpiredCounts::new();
        if due.is_empty() {
            txn.abort()?;
            return Ok(counts);
        }
        {
            let mut pending = txn.open_table(PENDING_DEC)?;
            let mut deadlines = txn.open_table(PENDING_DEADLINE)?;
            let mut index = txn.open_table(PENDING_BY_DEADLINE)?;
            let mut delivered = txn.open_table(DELIVERED)?;
            for (deadline, id) in &due {
                index.remove((*deadline, id.as_str()))?;
                deadlines.remove(id.as_str())?;
                let Some(rec) = pending.remove(id.as_str())? else {
                    continue;
                };
                let rec = Zeroizing::new(rec.value().to_vec());
                let (m, s, _) = decode_pending(&rec)?;
                *counts.entry((m.to_string(), s.to_string())).or_default() += 1;
                let old = delivered.get(id.as_str())?.map_or(0, |v| v.value());
                delivered.insert(id.as_str(), old | EXPIRED)?;
            }
        }
        for ((m, s), n) in &counts {
            meta_sub(&txn, "pair", &pair_name(m, s), *n)?;
        }
        txn.commit()?;
        Ok(counts)
    }

    /// Keys waiting for `slave` from `master`.
    pub fn pending_count(&self, master: &str, slave: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let n = meta_get(&txn, "pair", &pair_name(master, slave))?;
        txn.abort()?;
        Ok(n)
    }

    /// Leader: stores a new block pair (`bytes` split in halves: even block for the leader's
    /// direction, odd for the follower's), unconfirmed; returns the even block's sequence.
    pub fn leader_add(&self, peer: &str, bytes: &[u8]) -> Result<u64, StoreError> {
        self.leader_add_split(peer, bytes, bytes.len() / 2)
    }

    /// Leader: stores a new block pair, unconfirmed: the first `leader_len` bytes of `bytes`
    /// as the even block (the leader's direction), the rest as the odd block (the
    /// follower's); an empty block is not stored. Returns the even block's sequence.
    pub fn leader_add_split(
        &self,
        peer: &str,
        bytes: &[u8],
        leader_len: usize,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let seq = meta_get(&txn, peer, "next_seq")?;
        let (a, b) = bytes.split_at(leader_len.min(bytes.len()));
        put_block(&txn, peer, seq, &Block::new(a))?;
        put_block(&txn, peer, seq + 1, &Block::new(b))?;
        meta_add(&txn, peer, "unconfirmed0", a.len() as u64)?;
        meta_add(&txn, peer, "avail1", b.len() as u64)?;
        meta_set(&txn, peer, "next_seq", seq + 2)?;
        txn.commit()?;
        Ok(seq)
    }

    /// Leader: deletes the blocks the follower never stored (a CV-QKD link whose last
    /// block's keys did not reach the follower's store); their sequence numbers are reused.
    pub fn discard_unconfirmed(&self, peer: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let from = meta_get(&txn, peer, "confirmed")?;
        let next = meta_get(&txn, peer, "next_seq")?;
        let mut removed = 0u64;
        {
            let mut table = txn.open_table(LINK_POOL)?;
            for seq in from..next {
                let Some(v) = table.remove((peer, (seq % 2) as u8, seq))? else {
                    continue;
                };
                let unspent = Block::decode(v.value())?.unspent() as u64;
                removed += unspent;
                let counter = if seq % 2 == 1 {
                    "avail1"
                } else {
                    "unconfirmed0"
                };
                meta_sub(&txn, peer, counter, unspent)?;
            }
        }
        meta_set(&txn, peer, "next_seq", from)?;
        txn.commit()?;
        Ok(removed)
    }

    /// Leader: the blocks the follower has not confirmed yet (at most `max`), in order.
    pub fn unconfirmed(&self, peer: &str, max: usize) -> Result<Vec<SeqBlock>, StoreError> {
        let txn = self.db.begin_write()?;
        let from = meta_get(&txn, peer, "confirmed")?;
        let next = meta_get(&txn, peer, "next_seq")?;
        let table = txn.open_table(LINK_POOL)?;
        let mut out = Vec::new();
        // A block given no bytes (or already spent) is skipped, not an end.
        for seq in from..next {
            if out.len() == max {
                break;
            }
            let Some(v) = table.get((peer, (seq % 2) as u8, seq))? else {
                continue;
            };
            out.push((seq, Block::decode(v.value())?.bytes));
        }
        drop(table);
        txn.abort()?;
        Ok(out)
    }

    /// Leader: the follower stored every block below `upto`; the leader may spend them.
    pub fn confirm(&self, peer: &str, upto: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let from = meta_get(&txn, peer, "confirmed")?;
        let mut added = 0;
        {
            let table = txn.open_table(LINK_POOL)?;
            for seq in (from..upto).filter(|s| s % 2 == 0) {
                if let Some(v) = table.get((peer, DIR_LEADER_SENDS, seq))? {
                    added += Block::decode(v.value())?.unspent() as u64;
                }
            }
        }
        meta_add(&txn, peer, "avail0", added)?;
        meta_sub(&txn, peer, "unconfirmed0", added)?;
        meta_set(&txn, peer, "confirmed", upto.max(from))?;
        txn.commit()?;
        Ok(())
    }

    /// Follower: stores blocks pushed by the leader; blocks it already had are ignored.
    pub fn follower_store(&self, peer: &str, blocks: &[SeqBlock]) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut next = meta_get(&txn, peer, "next_seq")?;
        let mut stored = 0;
        for (seq, bytes) in blocks {
            if *seq < next {
                continue;
            }
            put_block(&txn, peer, *seq, &Block::new(bytes))?;
            meta_add(&txn, peer, &format!("avail{}", seq % 2), bytes.len() as u64)?;
            next = seq + 1;
            stored += bytes.len() as u64;
        }
        meta_set(&txn, peer, "next_seq", next)?;
        txn.commit()?;
        Ok(stored)
    }

    /// Follower: stores the key of a block pair the leader placed at `seq` (even) and
    /// `seq + 1`, `leader_part` in the leader's direction and `follower_part` in the
    /// follower's (either may be empty); the next pair expected is then `seq + 2`.
    pub fn follower_store_pair(
        &self,
        peer: &str,
        seq: u64,
        leader_part: &[u8],
        follower_part: &[u8],
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut stored = 0;
        for (s, part) in [(seq, leader_part), (seq + 1, follower_part)] {
            if part.is_empty() {
                continue;
            }
            put_block(&txn, peer, s, &Block::new(part))?;
            meta_add(&txn, peer, &format!("avail{}", s % 2), part.len() as u64)?;
            stored += part.len() as u64;
        }
        meta_set(&txn, peer, "next_seq", seq + 2)?;
        txn.commit()?;
        Ok(stored)
    }

    /// The levels of the link to `peer`.
    pub fn link_levels(&self, peer: &str) -> Result<LinkLevels, StoreError> {
        let txn = self.db.begin_write()?;
        let levels = LinkLevels {
            leader_sends_bytes: meta_get(&txn, peer, "avail0")?,
            follower_sends_bytes: meta_get(&txn, peer, "avail1")?,
            confirmed_seq: meta_get(&txn, peer, "confirmed")?,
            next_seq: meta_get(&txn, peer, "next_seq")?,
            leader_unconfirmed_bytes: meta_get(&txn, peer, "unconfirmed0")?,
        };
        txn.abort()?;
        Ok(levels)
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

fn pair_name(master: &str, slave: &str) -> String {
    format!("{master}>{slave}")
}

fn meta_get(txn: &WriteTransaction, scope: &str, name: &str) -> Result<u64, StoreError> {
    let table = txn.open_table(META)?;
    Ok(table.get((scope, name))?.map_or(0, |v| v.value()))
}

fn meta_set(txn: &WriteTransaction, scope: &str, name: &str, v: u64) -> Result<(), StoreError> {
    txn.open_table(META)?.insert((scope, name), v)?;
    Ok(())
}

fn meta_add(txn: &WriteTransaction, scope: &str, name: &str, d: u64) -> Result<(), StoreError> {
    let v = meta_get(txn, scope, name)?;
    meta_set(txn, scope, name, v.saturating_add(d))
}

fn meta_sub(txn: &WriteTransaction, scope: &str, name: &str, d: u64) -> Result<(), StoreError> {
    let v = meta_get(txn, scope, name)?;
    meta_set(txn, scope, name, v.saturating_sub(d))
}

fn mark_delivered(txn: &WriteTransaction, ids: &[String], flag: u8) -> Result<(), StoreError> {
    let mut table = txn.open_table(DELIVERED)?;
    for id in ids {
        let old = table.get(id.as_str())?.map_or(0, |v| v.value());
        if old & flag != 0 {
            return Err(StoreError::NotFound);
        }
        table.insert(id.as_str(), old | flag)?;
    }
    Ok(())
}

fn store_pending(
    txn: &WriteTransaction,
    master: &str,
    slave: &str,
    keys: &[NewKey],
    max_pending: u64,
    deadline_ms: u64,
) -> Result<(), StoreError> {
    let pair = pair_name(master, slave);
    let pending = meta_get(txn, "pair", &pair)?;
    if pending.saturating_add(keys.len() as u64) > max_pending {
        return Err(StoreError::Full { pending });
    }
    {
        let delivered = txn.open_table(DELIVERED)?;
        if let Some(k) = keys
            .iter()
            .find(|k| matches!(delivered.get(k.id.as_str()), Ok(Some(v)) if v.value() & (DELIVERED_SLAVE | EXPIRED) != 0))
        {
            return Err(StoreError::Reused(k.id.clone()));
        }
    }
    let mut table = txn.open_table(PENDING_DEC)?;
    let mut deadlines = txn.open_table(PENDING_DEADLINE)?;
    let mut index = txn.open_table(PENDING_BY_DEADLINE)?;
    for k in keys {
        let record = encode_pending(master, slave, &k.bytes);
        if table.insert(k.id.as_str(), record.as_slice())?.is_some() {
            return Err(StoreError::Reused(k.id.clone()));
        }
        deadlines.insert(k.id.as_str(), deadline_ms)?;
        index.insert((deadline_ms, k.id.as_str()), ())?;
    }
    drop((table, deadlines, index));
    meta_add(txn, "pair", &pair, keys.len() as u64)
}

/// Gives every pending key without a deadline (stored by an older version) `deadline_ms`.
fn adopt_untimed(txn: &WriteTransaction, deadline_ms: u64) -> Result<(), StoreError> {
    let pending = txn.open_table(PENDING_DEC)?;
    let mut deadlines = txn.open_table(PENDING_DEADLINE)?;
    if pending.len()? == deadlines.len()? {
        return Ok(());
    }
    let mut index = txn.open_table(PENDING_BY_DEADLINE)?;
    for row in pending.range::<&str>(..)? {
        let (k, _) = row?;
        let id = k.value();
        if deadlines.get(id)?.is_none() {
            deadlines.insert(id, deadline_ms)?;
            index.insert((deadline_ms, id), ())?;
        }
    }
    Ok(())
}

fn take_pending(
    txn: &WriteTransaction,
    caller: &str,
    master: &str,
    ids: &[String],
    now_ms: u64,
) -> Result<Vec<NewKey>, StoreError> {
    let mut table = txn.open_table(PENDING_DEC)?;
    let mut deadlines = txn.open_table(PENDING_DEADLINE)?;
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        let deadline = deadlines.get(id.as_str())?.map(|v| v.value());
        let rec = match deadline {
            Some(d) if d <= now_ms => None,
            _ => table
                .get(id.as_str())?
                .map(|v| Zeroizing::new(v.value().to_vec())),
        };
        records.push((rec, deadline));
    }
    // A key held for another slave is refused (401) before any is reported missing.
    let mut out = Vec::with_capacity(ids.len());
    let mut missing = false;
    for (id, (rec, _)) in ids.iter().zip(&records) {
        let Some(rec) = rec else {
            missing = true;
            continue;
        };
        let (m, s, key) = decode_pending(rec)?;
        if s != caller {
            return Err(StoreError::Unauthorized);
        }
        missing |= m != master;
        out.push(NewKey {
            id: id.clone(),
            bytes: Zeroizing::new(key.to_vec()),
        });
    }
    if missing {
        return Err(StoreError::NotFound);
    }
    let mut index = txn.open_table(PENDING_BY_DEADLINE)?;
    for (id, (_, deadline)) in ids.iter().zip(&records) {
        table.remove(id.as_str())?;
        deadlines.remove(id.as_str())?;
        if let Some(d) = deadline {
            index.remove((*d, id.as_str()))?;
        }
    }
    drop((table, deadlines, index));
    meta_sub(txn, "pair", &pair_name(master, caller), ids.len() as u64)?;
    Ok(out)
}

fn encode_pending(master: &str, slave: &str, key: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(
        4 + master.len() + slave.len() + key.len(),
    ));
    for s in [master, slave] {
        v.extend_from_slice(&(s.len() as u16).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
    }
    v.extend_from_slice(key);
    v
}

fn decode_pending(rec: &[u8]) -> Result<(&str, &str, &[u8]), StoreError> {
    let bad = || StoreError::Corrupt("pending_dec");
    let field = |rec: &[u8]| -> Option<(usize, usize)> {
        let n = u16::from_le_bytes(rec.get(..2)?.try_into().ok()?) as usize;
        (rec.len() >= 2 + n).then_some((2, 2 + n))
    };
    let (a, b) = field(rec).ok_or_else(bad)?;
    let master = std::str::from_utf8(&rec[a..b]).map_err(|_| bad())?;
    let rest = &rec[b..];
    let (c, d) = field(rest).ok_or_else(bad)?;
    let slave = std::str::from_utf8(&rest[c..d]).map_err(|_| bad())?;
    Ok((master, slave, &rest[d..]))
}

/// A link key block: its bytes (spent ones zeroed) and a bitmap of spent bytes.
struct Block {
    bytes: Zeroizing<Vec<u8>>,
    spent: Vec<u8>,
}

impl Block {
    fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.to_vec()),
            spent: vec![0; bytes.len().div_ceil(8)],
        }
    }

    fn decode(v: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("link_pool");
        let n = u32::from_le_bytes(v.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let n = n as usize;
        if v.len() != 4 + n + n.div_ceil(8) {
            return Err(bad());
        }
        Ok(Self {
            bytes: Zeroizing::new(v[4..4 + n].to_vec()),
            spent: v[4 + n..].to_vec(),
        })
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(4 + self.bytes.len() + self.spent.len()));
        v.extend_from_slice(&(self.bytes.len() as u32).to_le_bytes());
        v.extend_from_slice(&self.bytes);
        v.extend_from_slice(&self.spent);
        v
    }

    fn is_spent(&self, i: usize) -> bool {
        self.spent[i / 8] & (1 << (i % 8)) != 0
    }

    fn unspent(&self) -> usize {
        (0..self.bytes.len()).filter(|&i| !self.is_spent(i)).count()
    }

    /// Spends bytes `from..from+len`, all of which must be unspent.
    fn spend(&mut self, from: usize, len: usize, out: &mut Vec<u8>) -> bool {
        if from + len > self.bytes.len() || (from..from + len).any(|i| self.is_spent(i)) {
            return false;
        }
        for i in from..from + len {
            out.push(self.bytes[i]);
            self.bytes[i] = 0;
            self.spent[i / 8] |= 1 << (i % 8);
        }
        true
    }

    /// The first run of unspent bytes, at most `max` long.
    fn first_run(&self, max: usize) -> Option<(usize, usize)> {
        let start = (0..self.bytes.len()).find(|&i| !self.is_spent(i))?;
        let len = (start..self.bytes.len())
            .take_while(|&i| !self.is_spent(i))
            .count()
            .min(max);
        Some((start, len))
    }
}

fn put_block(txn: &WriteTransaction, peer: &str, seq: u64, b: &Block) -> Result<(), StoreError> {
    let mut table = txn.open_table(LINK_POOL)?;
    let dir = (seq % 2) as u8;
    if b.unspent() == 0 {
        table.remove((peer, dir, seq))?;
    } else {
        table.insert((peer, dir, seq), b.encode().as_slice())?;
    }
    Ok(())
}

fn take_pad(txn: &WriteTransaction, peer: &str, dir: u8, len: usize) -> Result<Pad, StoreError> {
    let key = format!("avail{dir}");
    let have = meta_get(txn, peer, &key)?;
    if have < len as u64 {
        return Err(StoreError::Short {
            peer: peer.to_string(),
            have,
            need: len as u64,
        });
    }
    let limit = if dir == DIR_LEADER_SENDS {
        meta_get(txn, peer, "confirmed")?
    } else {
        u64::MAX
    };
    let mut pad = Pad {
        ranges: Vec::new(),
        bytes: Zeroizing::new(Vec::with_capacity(len)),
    };
    let mut changed = Vec::new();
    {
        let table = txn.open_table(LINK_POOL)?;
        for row in table.range((peer, dir, 0)..(peer, dir, limit))? {
            let (k, v) = row?;
            let seq = k.value().2;
            let mut block = Block::decode(v.value())?;
            while pad.bytes.len() < len {
                let Some((from, n)) = block.first_run(len - pad.bytes.len()) else {
                    break;
                };
                block.spend(from, n, &mut pad.bytes);
                pad.ranges.push(PadRange {
                    seq,
                    offset: from as u32,
                    len: n as u32,
                });
            }
            changed.push((seq, block));
            if pad.bytes.len() == len {
                break;
            }
        }
    }
    if pad.bytes.len() < len {
        return Err(StoreError::Short {
            peer: peer.to_string(),
            have: pad.bytes.len() as u64,
            need: len as u64,
        });
    }
    for (seq, block) in &changed {
        put_block(txn, peer, *seq, block)?;
    }
    meta_sub(txn, peer, &key, len as u64)?;
    Ok(pad)
}

fn use_pad(
    txn: &WriteTransaction,
    peer: &str,
    dir: u8,
    ranges: &[PadRange],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let mut out = Zeroizing::new(Vec::new());
    let missing = |seq| StoreError::PadMissing {
        peer: peer.to_string(),
        seq,
    };
    for r in ranges {
        if r.seq % 2 != u64::from(dir) {
            return Err(missing(r.seq));
        }
        let mut block = {
            let table = txn.open_table(LINK_POOL)?;
            let v = table
                .get((peer, dir, r.seq))?
                .ok_or_else(|| missing(r.seq))?;
            Block::decode(v.value())?
        };
        if !block.spend(r.offset as usize, r.len as usize, &mut out) {
            return Err(missing(r.seq));
        }
        put_block(txn, peer, r.seq, &block)?;
    }
    meta_sub(txn, peer, &format!("avail{dir}"), out.len() as u64)?;
    Ok(out)
}

/// XORs the concatenation of `parts` with `pad` and splits the result like `parts`.
pub fn xor_split(parts: &[Zeroizing<Vec<u8>>], pad: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut offset = 0;
    parts
        .iter()
        .map(|p| {
            let out: Vec<u8> = p.iter().zip(&pad[offset..]).map(|(a, b)| a ^ b).collect();
            offset += p.len();
            Zeroizing::new(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfirmed_blocks_are_discarded_and_their_numbers_reused() {
        let dir = tempfile::tempdir().unwrap();
        let leader = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(leader.leader_add("f", &[1u8; 16]).unwrap(), 0);
        leader.confirm("f", 2).unwrap();
        assert_eq!(leader.leader_add("f", &[2u8; 8]).unwrap(), 2);
        let before = leader.link_levels("f").unwrap();
        assert_eq!((before.follower_sends_bytes, before.next_seq), (12, 4));
        assert_eq!(leader.discard_unconfirmed("f").unwrap(), 8);
        let after = leader.link_levels("f").unwrap();
        assert_eq!(
            (after.leader_sends_bytes, after.follower_sends_bytes),
            (8, 8),
            "only the confirmed pair is left"
        );
        assert_eq!((after.confirmed_seq, after.next_seq), (2, 2));
        assert!(leader.unconfirmed("f", 10).unwrap().is_empty());
        assert_eq!(leader.leader_add("f", &[3u8; 4]).unwrap(), 2, "reused");
    }

    #[test]
    fn a_pair_may_give_one_direction_everything() {
        let dir = tempfile::tempdir().unwrap();
        let leader = Store::open(&dir.path().join("l")).unwrap();
        let follower = Store::open(&dir.path().join("f")).unwrap();
        assert_eq!(leader.leader_add_split("f", &[1u8; 10], 10).unwrap(), 0);
        assert_eq!(leader.leader_add_split("f", &[2u8; 6], 0).unwrap(), 2);
        let l = leader.link_levels("f").unwrap();
        assert_eq!(
            (l.leader_unconfirmed_bytes, l.follower_sends_bytes),
            (10, 6)
        );
        // The empty blocks 1 and 2 are skipped, not the end of the push.
        let push = leader.unconfirmed("f", 10).unwrap();
        let seqs: Vec<u64> = push.iter().map(|b| b.0).collect();
        assert_eq!(seqs, [0, 3]);
        follower.follower_store("l", &push).unwrap();
        leader.confirm("f", 4).unwrap();
        let l = leader.link_levels("f").unwrap();
        assert_eq!((l.leader_sends_bytes, l.leader_unconfirmed_bytes), (10, 0));
        assert_eq!(follower.link_levels("l").unwrap().next_seq, 4);
        // A CV-QKD pair: both ends place the key alike, the next pair is seq + 2.
        assert_eq!(
            follower
                .follower_store_pair("l", 4, &[], &[3u8; 8])
                .unwrap(),
            8
        );
        let f = follower.link_levels("l").unwrap();
        assert_eq!(
            (f.leader_sends_bytes, f.follower_sends_bytes, f.next_seq),
            (10, 14, 6)
        );
    }

    #[test]
    fn expired_keys_are_erased_and_their_ids_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(&dir.path().join("db")).unwrap();
        let key = |id: &str| NewKey {
            id: id.to_string(),
            bytes: Zeroizing::new(vec![7u8; 32]),
        };
        st.enc_local("m", "s", &[key("k1"), key("k2")], 10, 1_000)
            .unwrap();
        st.enc_local("m", "s", &[key("k3")], 10, 5_000).unwrap();
        // At its deadline a key is not found, as an unknown one, even before the sweep.
        let ids = ["k1".to_string()];
        assert!(matches!(
            st.dec_keys("s", "m", &ids, 1_000),
            Err(StoreError::NotFound)
        ));
        assert!(st.expire_pending(999, 9_999).unwrap().is_empty());
        let expired = st.expire_pending(1_000, 9_999).unwrap();
        assert_eq!(expired.get(&("m".into(), "s".into())), Some(&2));
        assert_eq!(st.pending_count("m", "s").unwrap(), 1);
        assert!(st.expire_pending(1_000, 9_999).unwrap().is_empty());
        assert!(matches!(
            st.dec_keys("s", "m", &ids, 0),
            Err(StoreError::NotFound)
        ));
        // The key that did not expire is delivered once; no ID is stored again.
        assert_eq!(
            st.dec_keys("s", "m", &["k3".into()], 4_999).unwrap().len(),
            1
        );
        for id in ["k1", "k3"] {
            assert!(
                matches!(
                    st.enc_local("m", "s", &[key(id)], 10, 9_000),
                    Err(StoreError::Reused(_))
                ),
                "{id}"
            );
        }
        assert_eq!(st.pending_count("m", "s").unwrap(), 0);
    }

    #[test]
    fn pads_are_spent_once_and_match_on_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let leader = Store::open(&dir.path().join("l")).unwrap();
        let follower = Store::open(&dir.path().join("f")).unwrap();
        let block: Vec<u8> = (0..64u8).collect();
        leader.leader_add("f", &block).unwrap();
        let push = leader.unconfirmed("l", 10).unwrap();
        assert!(push.is_empty(), "per-peer pools");
        let push = leader.unconfirmed("f", 10).unwrap();
        assert_eq!(push.len(), 2);
        assert!(
            leader.take_pad("f", DIR_LEADER_SENDS, 1).is_err(),
            "unconfirmed"
        );
        follower.follower_store("l", &push).unwrap();
        follower.follower_store("l", &push).unwrap();
        leader.confirm("f", 2).unwrap();
        assert_eq!(follower.link_levels("l").unwrap().leader_sends_bytes, 32);
        let pad = leader.take_pad("f", DIR_LEADER_SENDS, 20).unwrap();
        assert_eq!(&pad.bytes[..], &block[..20]);
        let got = {
            let keys = vec![Zeroizing::new(vec![0u8; 20])];
            let masked = xor_split(&keys, &pad.bytes);
            let ids = ["k1".to_string()];
            let act = HopAction::Deliver {
                master: "m",
                slave: "s",
                ids: &ids,
                max_pending: 10,
                deadline_ms: 2000,
            };
            follower
                .relay_hop("l", DIR_LEADER_SENDS, &pad.ranges, &masked, act)
                .unwrap();
            follower.dec_keys("s", "m", &ids, 1000).unwrap()
        };
        assert_eq!(&got[0].bytes[..], &[0u8; 20][..]);
        let ids = ["k1".to_string()];
        let act = HopAction::Deliver {
            master: "m",
            slave: "s",
            ids: &ids,
            max_pending: 10,
            deadline_ms: 2000,
        };
        let masked = vec![Zeroizing::new(vec![0u8; 20])];
        assert!(
            follower
                .relay_hop("l", 0, &pad.ranges, &masked, act)
                .is_err(),
            "spent"
        );
        assert!(matches!(
            follower.dec_keys("s", "m", &ids, 1000),
            Err(StoreError::NotFound)
        ));
        assert_eq!(leader.link_levels("f").unwrap().leader_sends_bytes, 12);
        let pad = follower.take_pad("l", DIR_FOLLOWER_SENDS, 32).unwrap();
        assert_eq!(&pad.bytes[..], &block[32..]);
    }
}
