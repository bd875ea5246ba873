//! Keys waiting for their slave SAE: storing them (for a local slave or at the last hop of a
//! relay), handing them to the slave once (`dec_keys`), expiring those never fetched, and
//! the delivery flags that keep every key ID from being served or stored twice while a
//! request may still name it, forgotten after that.

use super::schema::{
    DELIVERED, DELIVERED_BY_TIME, PENDING_BY_DEADLINE, PENDING_DEADLINE, PENDING_DEC, meta_add,
    meta_get, meta_sub, pair_name,
};
use super::{DELIVERED_MASTER, DELIVERED_SLAVE, EXPIRED, ExpiredCounts, NewKey, Store, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use zeroize::Zeroizing;

impl Store {
    /// Stores `keys` for a slave attached here and records them delivered to the master at
    /// `now_ms`, in one commit; refuses when the pair would exceed `max_pending` waiting
    /// keys. The keys expire at `deadline_ms` (Unix ms) if the slave has not fetched them.
    pub fn enc_local(
        &self,
        master: &str,
        slave: &str,
        keys: &[NewKey],
        max_pending: u64,
        deadline_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        self.write(|txn| {
            store_pending(txn, master, slave, keys, max_pending, deadline_ms)?;
            mark_delivered(txn, &ids, DELIVERED_MASTER, now_ms)
        })
    }

    /// Stores keys relayed in shares for a slave attached here, once every share arrived
    /// and they were joined; refuses as [`Store::enc_local`] does. (The master's KME records
    /// them delivered to the master when every path answered.)
    pub fn store_relayed(
        &self,
        master: &str,
        slave: &str,
        keys: &[NewKey],
        max_pending: u64,
        deadline_ms: u64,
    ) -> Result<(), StoreError> {
        self.write(|txn| store_pending(txn, master, slave, keys, max_pending, deadline_ms))
    }

    /// Records relayed keys as delivered to their master at `now_ms` (the relay already
    /// succeeded).
    pub fn mark_master_delivered(&self, ids: &[String], now_ms: u64) -> Result<(), StoreError> {
        self.write(|txn| mark_delivered(txn, ids, DELIVERED_MASTER, now_ms))
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
        self.write(|txn| {
            let keys = take_pending(txn, caller, master, ids, now_ms)?;
            mark_delivered(txn, ids, DELIVERED_SLAVE, now_ms)?;
            Ok(keys)
        })
    }

    /// Erases every pending key whose deadline is at or before `now_ms` and marks its ID
    /// [`EXPIRED`] (not stored or served again); returns the counts per pair. Keys stored
    /// without a deadline (by an older version) get `adopt_deadline_ms`. Forgets the
    /// delivery records written `delivered_kept_ms` or longer before `now_ms` (records
    /// written by an older version count from now).
    pub fn expire_pending(
        &self,
        now_ms: u64,
        adopt_deadline_ms: u64,
        delivered_kept_ms: u64,
    ) -> Result<ExpiredCounts, StoreError> {
        let txn = self.db.begin_write()?;
        // what the sweep changes besides expiring keys: committed even when none is due
        let adopted = adopt_untimed(&txn, adopt_deadline_ms)?;
        let changed = forget_delivered(&txn, now_ms, delivered_kept_ms)? || adopted;
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
            if !changed {
                txn.abort()?;
            } else {
                txn.commit()?;
            }
            return Ok(counts);
        }
        {
            let mut pending = txn.open_table(PENDING_DEC)?;
            let mut deadlines = txn.open_table(PENDING_DEADLINE)?;
            let mut index = txn.open_table(PENDING_BY_DEADLINE)?;
            let mut delivered = txn.open_table(DELIVERED)?;
            let mut by_time = txn.open_table(DELIVERED_BY_TIME)?;
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
                if old == 0 {
                    by_time.insert((now_ms, id.as_str()), ())?;
                }
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
}

pub(super) fn mark_delivered(
    txn: &WriteTransaction,
    ids: &[String],
    flag: u8,
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(DELIVERED)?;
    let mut by_time = txn.open_table(DELIVERED_BY_TIME)?;
    for id in ids {
        let old = table.get(id.as_str())?.map_or(0, |v| v.value());
        if old & flag != 0 {
            return Err(StoreError::NotFound);
        }
        table.insert(id.as_str(), old | flag)?;
        if old == 0 {
            by_time.insert((now_ms, id.as_str()), ())?;
        }
    }
    Ok(())
}

/// Forgets the delivery records written `kept_ms` or longer before `now_ms`; a record without
/// a time (an older version wrote it) is given `now_ms`. Returns true if it changed anything.
fn forget_delivered(txn: &WriteTransaction, now_ms: u64, kept_ms: u64) -> Result<bool, StoreError> {
    let mut delivered = txn.open_table(DELIVERED)?;
    let mut by_time = txn.open_table(DELIVERED_BY_TIME)?;
    let mut adopted = false;
    if delivered.len()? != by_time.len()? {
        let timed: std::collections::HashSet<String> = by_time
            .range::<(u64, &str)>((0, "")..)?
            .map(|row| row.map(|(k, _)| k.value().1.to_string()))
            .collect::<Result<_, _>>()?;
        let untimed: Vec<String> = delivered
            .range::<&str>(..)?
            .map(|row| row.map(|(k, _)| k.value().to_string()))
            .filter(|id| id.as_ref().map_or(true, |id| !timed.contains(id)))
            .collect::<Result<_, _>>()?;
        for id in &untimed {
            by_time.insert((now_ms, id.as_str()), ())?;
        }
        adopted = !untimed.is_empty();
    }
    let cutoff = now_ms.saturating_sub(kept_ms);
    let due: Vec<(u64, String)> = by_time
        .range::<(u64, &str)>((0, "")..(cutoff.saturating_add(1), ""))?
        .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<Result<_, _>>()?;
    for (at, id) in &due {
        by_time.remove((*at, id.as_str()))?;
        delivered.remove(id.as_str())?;
    }
    Ok(adopted || !due.is_empty())
}

pub(super) fn store_pending(
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
/// Returns true if there was any.
fn adopt_untimed(txn: &WriteTransaction, deadline_ms: u64) -> Result<bool, StoreError> {
    let pending = txn.open_table(PENDING_DEC)?;
    let mut deadlines = txn.open_table(PENDING_DEADLINE)?;
    if pending.len()? == deadlines.len()? {
        return Ok(false);
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
    Ok(true)
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

pub(super) fn decode_pending(rec: &[u8]) -> Result<(&str, &str, &[u8]), StoreError> {
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
