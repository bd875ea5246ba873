//! At the slave's KME, the shares of keys relayed in parts (`relay = "multipath"`), held in
//! memory until each key's last share arrives; then the key is their XOR, stored for the
//! slave. A share is never written to the store: a key whose shares do not all arrive within
//! [`SHARE_WAIT`] is dropped with them (its master's KME got an error from some path and
//! never handed the key out), and so is every share held when the KME stops.
//!
//! Bounded: at most [`KEYS_WAITING_MAX`] keys wait for shares; more is a 503.

use super::relay::ShareTag;
use super::store::{NewKey, Secret};
use super::topology::shares;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long the shares of a key wait for the rest: twice a neighbour call's timeout, so
/// every path's relay has either arrived or failed.
pub const SHARE_WAIT: Duration = Duration::from_secs(20);
/// Most keys whose shares wait at once.
pub const KEYS_WAITING_MAX: usize = 4096;

/// Why a share was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    /// The key waits for shares of another pair, count or length.
    #[error(
        "share {index} of key '{key_id}' does not match the shares that came before it ({why})"
    )]
    Mismatch {
        /// The key.
        key_id: String,
        /// The share.
        index: u8,
        /// What differs.
        why: &'static str,
    },
    /// This share of the key arrived already.
    #[error("share {index} of key '{key_id}' arrived twice")]
    Twice {
        /// The key.
        key_id: String,
        /// The share.
        index: u8,
    },
    /// [`KEYS_WAITING_MAX`] keys wait already.
    #[error("{KEYS_WAITING_MAX} keys wait for their shares already")]
    Full,
}

struct Waiting {
    master: String,
    slave: String,
    count: u8,
    len: usize,
    shares: Vec<Option<Secret>>,
    paths: Vec<Vec<String>>,
    since: Instant,
}

/// Keys complete after a share: their pair, the joined keys and the path of each share.
pub struct Joined {
    /// The keys, in the order of the share's request.
    pub keys: Vec<NewKey>,
    /// The paths the shares took (each the whole path, the master's KME first).
    pub paths: Vec<Vec<String>>,
}

/// Shares arriving in one relay: whose, which, over which path, for which keys.
pub struct Arrival<'a> {
    /// Master SAE.
    pub master: &'a str,
    /// Slave SAE.
    pub slave: &'a str,
    /// Which share of each key the relay carries.
    pub tag: ShareTag,
    /// The whole path it took, the master's KME first.
    pub path: &'a [String],
    /// The keys' IDs.
    pub ids: &'a [String],
}

/// The shares waiting, by key ID.
#[derive(Default)]
pub struct SharesIn {
    waiting: Mutex<BTreeMap<String, Waiting>>,
}

impl SharesIn {
    /// Checks that the shares of `arrival` (of `lens` bytes) would be taken, before their
    /// pad is spent.
    pub fn check(
        &self,
        arrival: &Arrival<'_>,
        lens: &[usize],
        now: Instant,
    ) -> Result<(), ShareError> {
        let mut waiting = self.waiting.lock().expect("shares lock");
        expire(&mut waiting, now);
        let mut new = 0;
        for (id, &len) in arrival.ids.iter().zip(lens) {
            match waiting.get(id) {
                None => new += 1,
                Some(w) => matches(w, id, arrival, len)?,
            }
        }
        if waiting.len() + new > KEYS_WAITING_MAX {
            return Err(ShareError::Full);
        }
        Ok(())
    }

    /// Takes the shares of `arrival` (`parts`, one per key); returns the keys this completes
    /// (all of the relay's, when it carried their last share).
    pub fn add(
        &self,
        arrival: &Arrival<'_>,
        parts: Vec<Secret>,
        now: Instant,
    ) -> Result<Joined, ShareError> {
        let Arrival {
            master,
            slave,
            tag,
            path,
            ids,
        } = *arrival;
        let mut waiting = self.waiting.lock().expect("shares lock");
        expire(&mut waiting, now);
        for (id, part) in ids.iter().zip(&parts) {
            if let Some(w) = waiting.get(id) {
                matches(w, id, arrival, part.len())?;
            }
        }
        let mut joined = Joined {
            keys: Vec::new(),
            paths: Vec::new(),
        };
        for (id, part) in ids.iter().zip(parts) {
            let w = waiting.entry(id.clone()).or_insert_with(|| Waiting {
                master: master.to_string(),
                slave: slave.to_string(),
                count: tag.count,
                len: part.len(),
                shares: vec![None; usize::from(tag.count)],
                paths: Vec::new(),
                since: now,
            });
            w.shares[usize::from(tag.index)] = Some(part);
            w.paths.push(path.to_vec());
            if w.shares.iter().all(Option::is_some) {
                let w = waiting.remove(id).expect("present");
                let all: Vec<Zeroizing<Vec<u8>>> = w.shares.into_iter().flatten().collect();
                let bytes = shares::join(&all).expect("shares of one length");
                joined.keys.push(NewKey {
                    id: id.clone(),
                    bytes,
                });
                joined.paths = w.paths;
            }
        }
        Ok(joined)
    }

    /// Keys waiting for shares now.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().expect("shares lock").len()
    }
}

fn matches(w: &Waiting, id: &str, arrival: &Arrival<'_>, len: usize) -> Result<(), ShareError> {
    let Arrival {
        master, slave, tag, ..
    } = *arrival;
    let mismatch = |why| ShareError::Mismatch {
        key_id: id.to_string(),
        index: tag.index,
        why,
    };
    if w.master != master || w.slave != slave {
        return Err(mismatch("another SAE pair"));
    }
    if w.count != tag.count {
        return Err(mismatch("another number of shares"));
    }
    if w.len != len {
        return Err(mismatch("another length"));
    }
    if w.shares[usize::from(tag.index)].is_some() {
        return Err(ShareError::Twice {
            key_id: id.to_string(),
            index: tag.index,
        });
    }
    Ok(())
}

fn expire(waiting: &mut BTreeMap<String, Waiting>, now: Instant) {
    let before = waiting.len();
    waiting.retain(|_, w| now.saturating_duration_since(w.since) < SHARE_WAIT);
    let dropped = before - waiting.len();
    if dropped > 0 {
        tracing::warn!(
            keys = dropped,
            "shares of keys relayed in parts never all arrived: dropped (their master never got them)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(index: u8) -> ShareTag {
        ShareTag { index, count: 2 }
    }

    fn arrival<'a>(
        slave: &'a str,
        index: u8,
        path: &'a [String],
        ids: &'a [String],
    ) -> Arrival<'a> {
        Arrival {
            master: "m",
            slave,
            tag: tag(index),
            path,
            ids,
        }
    }

    #[test]
    fn a_key_is_joined_when_its_last_share_arrives_and_only_then() {
        let s = SharesIn::default();
        let key = Zeroizing::new(vec![7u8; 32]);
        let parts = shares::split(&key, 2, |b| b.fill(3)).unwrap();
        let ids = vec!["k".to_string()];
        let now = Instant::now();
        let p1 = vec!["a".to_string(), "r1".into(), "b".into()];
        let j = s
            .add(&arrival("s", 1, &p1, &ids), vec![parts[1].clone()], now)
            .unwrap();
        assert!(j.keys.is_empty());
        assert_eq!(s.waiting(), 1);
        assert_eq!(
            s.add(&arrival("s", 1, &p1, &ids), vec![parts[1].clone()], now)
                .err(),
            Some(ShareError::Twice {
                key_id: "k".into(),
                index: 1
            })
        );
        let p0 = vec!["a".to_string(), "r2".into(), "b".into()];
        let j = s
            .add(&arrival("s", 0, &p0, &ids), vec![parts[0].clone()], now)
            .unwrap();
        assert_eq!(j.keys.len(), 1);
        assert_eq!(*j.keys[0].bytes, *key);
        assert_eq!(j.paths.len(), 2);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn shares_that_disagree_are_refused_and_old_ones_dropped() {
        let s = SharesIn::default();
        let ids = vec!["k".to_string()];
        let now = Instant::now();
        let part = || vec![Zeroizing::new(vec![1u8; 32])];
        s.add(&arrival("s", 0, &[], &ids), part(), now).unwrap();
        let other = s.add(&arrival("x", 1, &[], &ids), part(), now).err();
        assert!(
            matches!(other, Some(ShareError::Mismatch { .. })),
            "{other:?}"
        );
        let short = vec![Zeroizing::new(vec![1u8; 16])];
        assert!(s.check(&arrival("s", 1, &[], &ids), &[16], now).is_err());
        assert!(s.add(&arrival("s", 1, &[], &ids), short, now).is_err());
        // after SHARE_WAIT the first share is gone: share 1 starts a new wait
        let later = now + SHARE_WAIT;
        let j = s.add(&arrival("s", 1, &[], &ids), part(), later).unwrap();
        assert!(j.keys.is_empty());
        assert_eq!(s.waiting(), 1);
    }
}
