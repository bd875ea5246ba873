//! The redb schema of the store: its tables, and the `meta` counters (link cursors and
//! levels, per-pair pending counts) every other part of the store reads and writes inside
//! one write transaction. Imports nothing of the KME but the store's error.

use super::StoreError;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// (link peer, direction, block sequence) → block (see `pads::Block`).
pub(super) const LINK_POOL: TableDefinition<(&str, u8, u64), &[u8]> =
    TableDefinition::new("link_pool");
/// (scope, name) → u64: link cursors and levels, per-pair pending counts.
pub(super) const META: TableDefinition<(&str, &str), u64> = TableDefinition::new("meta");
/// key ID → master, slave, key bytes (waiting for the slave's `dec_keys`).
pub(super) const PENDING_DEC: TableDefinition<&str, &[u8]> = TableDefinition::new("pending_dec");
/// key ID → delivery flags (1 = to the master, 2 = to the slave).
pub(super) const DELIVERED: TableDefinition<&str, u8> = TableDefinition::new("delivered");
/// (Unix ms the record was written, key ID) → (): `delivered` records in the order they are
/// forgotten.
pub(super) const DELIVERED_BY_TIME: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("delivered_by_time");
/// key ID → Unix ms after which the pending key is expired.
pub(super) const PENDING_DEADLINE: TableDefinition<&str, u64> =
    TableDefinition::new("pending_deadline");
/// (deadline Unix ms, key ID) → (): pending keys in the order they expire.
pub(super) const PENDING_BY_DEADLINE: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("pending_by_deadline");
/// metric name → value.
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

pub(super) fn pair_name(master: &str, slave: &str) -> String {
    format!("{master}>{slave}")
}

pub(super) fn meta_get(txn: &WriteTransaction, scope: &str, name: &str) -> Result<u64, StoreError> {
    let table = txn.open_table(META)?;
    Ok(table.get((scope, name))?.map_or(0, |v| v.value()))
}

pub(super) fn meta_set(
    txn: &WriteTransaction,
    scope: &str,
    name: &str,
    v: u64,
) -> Result<(), StoreError> {
    txn.open_table(META)?.insert((scope, name), v)?;
    Ok(())
}

pub(super) fn meta_add(
    txn: &WriteTransaction,
    scope: &str,
    name: &str,
    d: u64,
) -> Result<(), StoreError> {
    let v = meta_get(txn, scope, name)?;
    meta_set(txn, scope, name, v.saturating_add(d))
}

pub(super) fn meta_sub(
    txn: &WriteTransaction,
    scope: &str,
    name: &str,
    d: u64,
) -> Result<(), StoreError> {
    let v = meta_get(txn, scope, name)?;
    meta_set(txn, scope, name, v.saturating_sub(d))
}
