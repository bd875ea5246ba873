//! Link key pools: blocks stored in pairs by the leader and the follower, confirmed,
//! spent as one-time pads (by taking the first unspent bytes, or the ranges a neighbour
//! named), and the levels of each link. A block carries a bitmap of spent bytes; spent bytes
//! are zeroed and fully spent blocks deleted.

use super::pending::store_pending;
use super::schema::{LINK_POOL, meta_add, meta_get, meta_set, meta_sub};
use super::{
    Direction, HopAction, HopOutcome, LinkLevels, NewKey, Pad, PadPosition, PadRange, SeqBlock,
    Store, StoreError,
};
use redb::{ReadableTable, WriteTransaction};
use zeroize::Zeroizing;

impl Store {
    /// Spends `len` pad bytes of `dir` on the link to `peer` (committed: a pad is never
    /// reused, even if the relay then fails).
    pub fn take_pad(&self, peer: &str, dir: Direction, len: usize) -> Result<Pad, StoreError> {
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
        from_dir: Direction,
        ranges: &[PadRange],
        masked: &[Zeroizing<Vec<u8>>],
        action: HopAction,
    ) -> Result<HopOutcome, StoreError> {
        let txn = self.db.begin_write()?;
        let pad = use_pad(&txn, from, from_dir, ranges)?;
        let keys = xor_split(masked, &pad);
        let out = match action {
            HopAction::Forward { peer, dir } => {
                let total = keys.iter().map(|k| k.len()).sum();
                let next = take_pad(&txn, &peer, dir, total)?;
                HopOutcome::Forwarded((next.ranges, xor_split(&keys, &next.bytes)))
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
                store_pending(&txn, &master, &slave, &new, max_pending, deadline_ms)?;
                HopOutcome::Delivered
            }
            HopAction::Unmask => HopOutcome::Unmasked(keys),
        };
        txn.commit()?;
        Ok(out)
    }

    /// Discards the unspent bytes of `dir` on the link to `peer` that lie before `upto`: the
    /// neighbour that spends `dir` spends its pool in order and has spent them all (a relay
    /// of its reached past them), so the relays that spent them will never arrive: they
    /// failed on the way (a hop refused or down, a crash). Returns the bytes discarded.
    pub fn discard_passed(
        &self,
        peer: &str,
        dir: Direction,
        upto: PadPosition,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut discarded = 0u64;
        {
            let mut table = txn.open_table(LINK_POOL)?;
            let column = dir.table_key();
            let passed: Vec<u64> = table
                .range((peer, column, 0)..(peer, column, upto.seq))?
                .map(|row| row.map(|(k, _)| k.value().2))
                .collect::<Result<_, _>>()?;
            for seq in passed {
                if let Some(v) = table.remove((peer, column, seq))? {
                    discarded += Block::decode(v.value())?.unspent() as u64;
                }
            }
        }
        let partly = {
            let table = txn.open_table(LINK_POOL)?;
            let v = table.get((peer, dir.table_key(), upto.seq))?;
            v.map(|v| Block::decode(v.value())).transpose()?
        };
        if let Some(mut block) = partly {
            let end = (upto.offset as usize).min(block.bytes.len());
            let mut spent = Zeroizing::new(Vec::new());
            for i in 0..end {
                if !block.is_spent(i) {
                    block.spend(i, 1, &mut spent);
                }
            }
            discarded += spent.len() as u64;
            put_block(&txn, peer, upto.seq, &block)?;
        }
        meta_sub(&txn, peer, dir.available_counter(), discarded)?;
        txn.commit()?;
        Ok(discarded)
    }

    /// Discards the unspent bytes of `ranges` of `dir` on the link to `peer`: pad a
    /// neighbour named in a relay this KME refused (the neighbour spent it before sending,
    /// so no relay can use it any more). Bytes already spent, and blocks already gone, are
    /// skipped. Returns the bytes discarded.
    pub fn discard_ranges(
        &self,
        peer: &str,
        dir: Direction,
        ranges: &[PadRange],
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut discarded = Zeroizing::new(Vec::new());
        for r in ranges.iter().filter(|r| Direction::of_seq(r.seq) == dir) {
            let block = {
                let table = txn.open_table(LINK_POOL)?;
                let v = table.get((peer, dir.table_key(), r.seq))?;
                v.map(|v| Block::decode(v.value())).transpose()?
            };
            let Some(mut block) = block else { continue };
            let start = (r.offset as usize).min(block.bytes.len());
            let end = start.saturating_add(r.len as usize).min(block.bytes.len());
            for i in start..end {
                if !block.is_spent(i) {
                    block.spend(i, 1, &mut discarded);
                }
            }
            put_block(&txn, peer, r.seq, &block)?;
        }
        meta_sub(&txn, peer, dir.available_counter(), discarded.len() as u64)?;
        txn.commit()?;
        Ok(discarded.len() as u64)
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
        meta_add(
            &txn,
            peer,
            Direction::FollowerSends.available_counter(),
            b.len() as u64,
        )?;
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
                let Some(v) = table.remove((peer, Direction::of_seq(seq).table_key(), seq))? else {
                    continue;
                };
                let unspent = Block::decode(v.value())?.unspent() as u64;
                removed += unspent;
                let counter = match Direction::of_seq(seq) {
                    Direction::FollowerSends => Direction::FollowerSends.available_counter(),
                    Direction::LeaderSends => "unconfirmed0",
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
            let Some(v) = table.get((peer, Direction::of_seq(seq).table_key(), seq))? else {
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
            let leader = Direction::LeaderSends;
            for seq in (from..upto).filter(|s| Direction::of_seq(*s) == leader) {
                if let Some(v) = table.get((peer, leader.table_key(), seq))? {
                    added += Block::decode(v.value())?.unspent() as u64;
                }
            }
        }
        meta_add(
            &txn,
            peer,
            Direction::LeaderSends.available_counter(),
            added,
        )?;
        meta_sub(&txn, peer, "unconfirmed0", added)?;
        meta_set(&txn, peer, "confirmed", upto.max(from))?;
        txn.commit()?;
        Ok(())
    }

    /// Follower: stores blocks pushed by the leader; blocks it already had, and a block
    /// numbered `u64::MAX` (no next number could follow it), are ignored.
    pub fn follower_store(&self, peer: &str, blocks: &[SeqBlock]) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut next = meta_get(&txn, peer, "next_seq")?;
        let mut stored = 0;
        for (seq, bytes) in blocks {
            // a number with no successor is refused: `next` could not move past it
            let Some(after) = seq.checked_add(1) else {
                continue;
            };
            if *seq < next {
                continue;
            }
            put_block(&txn, peer, *seq, &Block::new(bytes))?;
            meta_add(
                &txn,
                peer,
                Direction::of_seq(*seq).available_counter(),
                bytes.len() as u64,
            )?;
            next = after;
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
            meta_add(
                &txn,
                peer,
                Direction::of_seq(s).available_counter(),
                part.len() as u64,
            )?;
            stored += part.len() as u64;
        }
        meta_set(&txn, peer, "next_seq", seq + 2)?;
        txn.commit()?;
        Ok(stored)
    }

    /// How far this KME has spent `dir` on the link to `peer`: the first unspent byte of
    /// its lowest block of that direction; holding none, the start of the next block number
    /// (every block before it is spent, or was never this KME's). A direction is spent in
    /// order, so every byte before the position is spent here.
    pub fn spent_upto(&self, peer: &str, dir: Direction) -> Result<PadPosition, StoreError> {
        let lowest = {
            let txn = self.db.begin_write()?;
            let lowest = {
                let table = txn.open_table(LINK_POOL)?;
                let column = dir.table_key();
                let mut rows = table.range((peer, column, 0)..(peer, column, u64::MAX))?;
                match rows.next() {
                    Some(row) => {
                        let (k, v) = row?;
                        Some((k.value().2, Block::decode(v.value())?))
                    }
                    None => None,
                }
            };
            txn.abort()?;
            lowest
        };
        Ok(match lowest {
            Some((seq, block)) => PadPosition {
                seq,
                offset: (0..block.bytes.len())
                    .find(|&i| !block.is_spent(i))
                    .unwrap_or(block.bytes.len()) as u32,
            },
            None => PadPosition {
                seq: self.link_levels(peer)?.next_seq,
                offset: 0,
            },
        })
    }

    /// The levels of the link to `peer`.
    pub fn link_levels(&self, peer: &str) -> Result<LinkLevels, StoreError> {
        let txn = self.db.begin_write()?;
        let levels = LinkLevels {
            leader_sends_bytes: meta_get(&txn, peer, Direction::LeaderSends.available_counter())?,
            follower_sends_bytes: meta_get(
                &txn,
                peer,
                Direction::FollowerSends.available_counter(),
            )?,
            confirmed_seq: meta_get(&txn, peer, "confirmed")?,
            next_seq: meta_get(&txn, peer, "next_seq")?,
            leader_unconfirmed_bytes: meta_get(&txn, peer, "unconfirmed0")?,
        };
        txn.abort()?;
        Ok(levels)
    }
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
    let dir = Direction::of_seq(seq).table_key();
    if b.unspent() == 0 {
        table.remove((peer, dir, seq))?;
    } else {
        table.insert((peer, dir, seq), b.encode().as_slice())?;
    }
    Ok(())
}

fn take_pad(
    txn: &WriteTransaction,
    peer: &str,
    dir: Direction,
    len: usize,
) -> Result<Pad, StoreError> {
    let key = dir.available_counter();
    let have = meta_get(txn, peer, key)?;
    if have < len as u64 {
        return Err(StoreError::Short {
            peer: peer.to_string(),
            have,
            need: len as u64,
        });
    }
    let limit = if dir == Direction::LeaderSends {
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
        let column = dir.table_key();
        for row in table.range((peer, column, 0)..(peer, column, limit))? {
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
    meta_sub(txn, peer, key, len as u64)?;
    Ok(pad)
}

fn use_pad(
    txn: &WriteTransaction,
    peer: &str,
    dir: Direction,
    ranges: &[PadRange],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let mut out = Zeroizing::new(Vec::new());
    let missing = |seq| StoreError::PadMissing {
        peer: peer.to_string(),
        seq,
    };
    for r in ranges {
        if Direction::of_seq(r.seq) != dir {
            return Err(missing(r.seq));
        }
        let mut block = {
            let table = txn.open_table(LINK_POOL)?;
            let v = table
                .get((peer, dir.table_key(), r.seq))?
                .ok_or_else(|| missing(r.seq))?;
            Block::decode(v.value())?
        };
        if !block.spend(r.offset as usize, r.len as usize, &mut out) {
            return Err(missing(r.seq));
        }
        put_block(txn, peer, r.seq, &block)?;
    }
    meta_sub(txn, peer, dir.available_counter(), out.len() as u64)?;
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
