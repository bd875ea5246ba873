//! The in-memory twin of a KME pair: SAEs attached to one [`MemoryKme`] share its keys, one
//! `new_key` and one `key_by_id` per key, as ETSI 014 demands. Tests can take it down.

use super::{DeliveredKey, KeySource, QkdError};
use crate::crypto::random::fill_random;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A key waiting for its slave: (master SAE, slave SAE, key bits).
type PendingKey = (String, String, Vec<u8>);

/// Keys in flight between masters and slaves.
#[derive(Default)]
pub struct MemoryKme {
    pending: Mutex<HashMap<String, PendingKey>>,
    issued: AtomicU64,
    calls: AtomicU64,
    down: AtomicBool,
}

impl MemoryKme {
    /// A new, empty KME.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A client for the SAE `sae_id`.
    pub fn client(self: &Arc<Self>, sae_id: &str) -> MemoryKmeClient {
        MemoryKmeClient {
            kme: self.clone(),
            sae_id: sae_id.to_string(),
        }
    }

    /// Makes every call fail (true) or succeed again (false).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Keys issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// Calls made so far (`enc_keys` and `dec_keys`, answered or not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// One SAE's view of a [`MemoryKme`].
pub struct MemoryKmeClient {
    kme: Arc<MemoryKme>,
    sae_id: String,
}

impl KeySource for MemoryKmeClient {
    fn new_key(&self, slave_sae: &str, size_bits: u32) -> Result<DeliveredKey, QkdError> {
        self.kme.calls.fetch_add(1, Ordering::SeqCst);
        if self.kme.down.load(Ordering::SeqCst) {
            return Err(QkdError::Unreachable("memory KME is down".into()));
        }
        let n = self.kme.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let key_id = format!("00000000-0000-4000-8000-{n:012x}");
        let mut key = vec![0u8; size_bits as usize / 8];
        fill_random(&mut key).map_err(|e| QkdError::Malformed(e.to_string()))?;
        let entry = (self.sae_id.clone(), slave_sae.to_string(), key.clone());
        self.kme
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id.clone(), entry);
        Ok(DeliveredKey {
            key_id,
            key: key.into(),
        })
    }

    fn key_by_id(
        &self,
        master_sae: &str,
        key_id: &str,
        _size_bits: u32,
    ) -> Result<DeliveredKey, QkdError> {
        self.kme.calls.fetch_add(1, Ordering::SeqCst);
        if self.kme.down.load(Ordering::SeqCst) {
            return Err(QkdError::Unreachable("memory KME is down".into()));
        }
        let mut pending = self.kme.pending.lock().unwrap_or_else(|e| e.into_inner());
        let matches = pending
            .get(key_id)
            .is_some_and(|(m, s, _)| m == master_sae && *s == self.sae_id);
        let refused = || QkdError::Refused {
            status: 400,
            message: super::etsi014::messages::KEYS_NOT_FOUND.into(),
        };
        let (_, _, key) = matches
            .then(|| pending.remove(key_id))
            .flatten()
            .ok_or_else(refused)?;
        Ok(DeliveredKey {
            key_id: key_id.to_string(),
            key: key.into(),
        })
    }

    fn describe(&self) -> String {
        "memory KME".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_goes_to_its_slave_once() {
        let kme = MemoryKme::new();
        let (a, b, c) = (kme.client("a"), kme.client("b"), kme.client("c"));
        let k = a.new_key("b", 256).unwrap();
        assert!(
            c.key_by_id("a", &k.key_id, 256).is_err(),
            "only the named slave"
        );
        assert_eq!(b.key_by_id("a", &k.key_id, 256).unwrap().key, k.key);
        assert!(b.key_by_id("a", &k.key_id, 256).is_err(), "only once");
        kme.set_down(true);
        assert!(matches!(a.new_key("b", 256), Err(QkdError::Unreachable(_))));
    }
}
