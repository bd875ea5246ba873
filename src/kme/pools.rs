//! The async face of the store: every store operation the KME's handlers and link tasks
//! run, each on tokio's blocking pool (redb commits are synchronous disk writes), behind
//! one helper. [`Pools`] serves the whole KME; [`LinkPool`] is one link's pool, what a link
//! task is given. Owns no state of its own; imports only the store and the config's role.

use super::store::{
    ExpiredCounts, HopAction, HopOutcome, LinkLevels, NewKey, Pad, PadPosition, PadRange, Secret,
    SeqBlock, Store, StoreError,
};
use std::path::PathBuf;
use std::sync::Arc;

pub use super::store::Direction;

/// Milliseconds since the Unix epoch (the store's clock for pending-key deadlines).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The store, shared; every call runs on the blocking pool.
#[derive(Clone)]
pub struct Pools {
    store: Arc<Store>,
}

impl Pools {
    /// Opens (or creates) the store in `dir` (see [`Store::open`]); also returns the saved
    /// counters.
    pub async fn open(dir: PathBuf) -> Result<(Self, Vec<(String, u64)>), StoreError> {
        let store = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|e| StoreError::Db(e.to_string()))??;
        let saved = store.load_counters()?;
        let pools = Self {
            store: Arc::new(store),
        };
        Ok((pools, saved))
    }

    /// Runs a store operation on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Db(format!("store task: {e}")))?
    }

    /// The pool of the link to `peer`.
    pub fn link(&self, peer: &str) -> LinkPool {
        LinkPool {
            pools: self.clone(),
            peer: peer.to_string(),
        }
    }

    /// Keys waiting for `slave` from `master`.
    pub async fn pending_count(&self, master: &str, slave: &str) -> Result<u64, StoreError> {
        let (m, s) = (master.to_string(), slave.to_string());
        self.run(move |st| st.pending_count(&m, &s)).await
    }

    /// Stores `keys` for a local slave (see [`Store::enc_local`]) and gives them back.
    pub async fn enc_local(
        &self,
        master: &str,
        slave: &str,
        keys: Vec<NewKey>,
        max_pending: u64,
        deadline_ms: u64,
    ) -> Result<Vec<NewKey>, StoreError> {
        let (m, s) = (master.to_string(), slave.to_string());
        self.run(move |st| {
            st.enc_local(&m, &s, &keys, max_pending, deadline_ms, unix_ms())
                .map(|()| keys)
        })
        .await
    }

    /// Hands keys `ids` of `master` to their slave `caller` (see [`Store::dec_keys`]).
    pub async fn dec_keys(
        &self,
        caller: &str,
        master: &str,
        ids: Vec<String>,
        now_ms: u64,
    ) -> Result<Vec<NewKey>, StoreError> {
        let (c, m) = (caller.to_string(), master.to_string());
        self.run(move |st| st.dec_keys(&c, &m, &ids, now_ms)).await
    }

    /// Erases the pending keys due at `now_ms` and forgets old delivery records (see
    /// [`Store::expire_pending`]).
    pub async fn expire_pending(
        &self,
        now_ms: u64,
        adopt_deadline_ms: u64,
        delivered_kept_ms: u64,
    ) -> Result<ExpiredCounts, StoreError> {
        self.run(move |st| st.expire_pending(now_ms, adopt_deadline_ms, delivered_kept_ms))
            .await
    }

    /// Stores keys joined from their shares for a local slave (see [`Store::store_relayed`]).
    pub async fn store_relayed(
        &self,
        master: &str,
        slave: &str,
        keys: Vec<NewKey>,
        max_pending: u64,
        deadline_ms: u64,
    ) -> Result<(), StoreError> {
        let (m, s) = (master.to_string(), slave.to_string());
        self.run(move |st| st.store_relayed(&m, &s, &keys, max_pending, deadline_ms))
            .await
    }

    /// Records relayed keys as delivered to their master.
    pub async fn mark_master_delivered(&self, ids: Vec<String>) -> Result<(), StoreError> {
        self.run(move |st| st.mark_master_delivered(&ids, unix_ms()))
            .await
    }

    /// One relay hop at this KME (see [`Store::relay_hop`]).
    pub async fn relay_hop(
        &self,
        from: &str,
        from_dir: Direction,
        pads: Vec<PadRange>,
        masked: Vec<Secret>,
        action: HopAction,
    ) -> Result<HopOutcome, StoreError> {
        let from = from.to_string();
        self.run(move |st| st.relay_hop(&from, from_dir, &pads, &masked, action))
            .await
    }

    /// Saves the metric counters.
    pub async fn save_counters(&self, counters: Vec<(String, u64)>) -> Result<(), StoreError> {
        self.run(move |st| st.save_counters(&counters)).await
    }
}

/// The pool of one link, by its peer.
#[derive(Clone)]
pub struct LinkPool {
    pools: Pools,
    peer: String,
}

impl LinkPool {
    /// The link's peer.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The link's levels.
    pub async fn levels(&self) -> Result<LinkLevels, StoreError> {
        let p = self.peer.clone();
        self.pools.run(move |st| st.link_levels(&p)).await
    }

    /// Spends `len` pad bytes of `dir` (committed, never reused).
    pub async fn take_pad(&self, dir: Direction, len: usize) -> Result<Pad, StoreError> {
        let p = self.peer.clone();
        self.pools.run(move |st| st.take_pad(&p, dir, len)).await
    }

    /// Discards the unspent pad of `dir` before `upto`, which the neighbour spent in relays
    /// that never arrived (see [`Store::discard_passed`]); the bytes discarded.
    pub async fn discard_passed(
        &self,
        dir: Direction,
        upto: PadPosition,
    ) -> Result<u64, StoreError> {
        let p = self.peer.clone();
        self.pools
            .run(move |st| st.discard_passed(&p, dir, upto))
            .await
    }

    /// How far this KME has spent `dir` (see [`Store::spent_upto`]).
    pub async fn spent_upto(&self, dir: Direction) -> Result<PadPosition, StoreError> {
        let p = self.peer.clone();
        self.pools.run(move |st| st.spent_upto(&p, dir)).await
    }

    /// Discards the unspent pad of `dir` in `ranges`, named by a relay this KME refused
    /// (see [`Store::discard_ranges`]); the bytes discarded.
    pub async fn discard_ranges(
        &self,
        dir: Direction,
        ranges: Vec<PadRange>,
    ) -> Result<u64, StoreError> {
        let p = self.peer.clone();
        self.pools
            .run(move |st| st.discard_ranges(&p, dir, &ranges))
            .await
    }

    /// Leader: stores a new block pair, `leader_len` bytes for the leader's direction
    /// (see [`Store::leader_add_split`]); the even block's sequence.
    pub async fn leader_add_split(
        &self,
        bytes: Secret,
        leader_len: usize,
    ) -> Result<u64, StoreError> {
        let p = self.peer.clone();
        self.pools
            .run(move |st| st.leader_add_split(&p, &bytes, leader_len))
            .await
    }

    /// Leader: the blocks the follower has not confirmed yet, at most `max`.
    pub async fn unconfirmed(&self, max: usize) -> Result<Vec<SeqBlock>, StoreError> {
        let p = self.peer.clone();
        self.pools.run(move |st| st.unconfirmed(&p, max)).await
    }

    /// Leader: the follower stored every block below `upto`.
    pub async fn confirm(&self, upto: u64) -> Result<(), StoreError> {
        let p = self.peer.clone();
        self.pools.run(move |st| st.confirm(&p, upto)).await
    }

    /// Leader: deletes the blocks the follower never stored; the bytes removed.
    pub async fn discard_unconfirmed(&self) -> Result<u64, StoreError> {
        let p = self.peer.clone();
        self.pools.run(move |st| st.discard_unconfirmed(&p)).await
    }

    /// Follower: stores pushed blocks; the bytes stored.
    pub async fn follower_store(&self, blocks: Vec<SeqBlock>) -> Result<u64, StoreError> {
        let p = self.peer.clone();
        self.pools
            .run(move |st| st.follower_store(&p, &blocks))
            .await
    }

    /// Follower: stores a block pair at `seq`, the first `leader_bytes` of `bytes` in the
    /// leader's direction (see [`Store::follower_store_pair`]); the bytes stored.
    pub async fn follower_store_pair(
        &self,
        seq: u64,
        bytes: Secret,
        leader_bytes: usize,
    ) -> Result<u64, StoreError> {
        let p = self.peer.clone();
        self.pools
            .run(move |st| {
                let (a, b) = bytes.split_at(leader_bytes);
                st.follower_store_pair(&p, seq, a, b)
            })
            .await
    }
}
