//! How long the daemon's calls to its KME take: a histogram per peer and call (`enc_keys`,
//! `dec_keys`), with Prometheus' usual bucket bounds. The QKD worker observes each call; the
//! status document carries the histograms (`peers[i].kme_calls`), and the metrics render them
//! as `qshield_peer_kme_call_duration_seconds`.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the buckets, seconds (and +Inf).
pub const KME_CALL_BUCKETS_SECONDS: [f64; 10] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Which ETSI 014 call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KmeCall {
    /// `enc_keys` (this side is the master).
    EncKeys,
    /// `dec_keys` (this side is the slave).
    DecKeys,
}

impl KmeCall {
    /// The call's name in the API.
    pub const fn name(self) -> &'static str {
        match self {
            Self::EncKeys => "enc_keys",
            Self::DecKeys => "dec_keys",
        }
    }
}

#[derive(Default, Clone)]
struct Histogram {
    /// Calls per bucket (not cumulative), the last for +Inf.
    counts: [u64; KME_CALL_BUCKETS_SECONDS.len() + 1],
    sum_seconds: f64,
}

/// The histograms, by peer index and call.
#[derive(Default)]
pub struct KmeCalls {
    by_peer: Mutex<BTreeMap<(usize, KmeCall), Histogram>>,
}

impl KmeCalls {
    /// Counts one call of `peer` that took `took` (answered or failed).
    pub fn observe(&self, peer: usize, call: KmeCall, took: Duration) {
        let s = took.as_secs_f64();
        let bucket = KME_CALL_BUCKETS_SECONDS
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(KME_CALL_BUCKETS_SECONDS.len());
        let mut map = self.by_peer.lock().expect("kme calls lock");
        let h = map.entry((peer, call)).or_default();
        h.counts[bucket] += 1;
        h.sum_seconds += s;
    }

    /// The histograms of `peer` as the status document carries them: per call, cumulative
    /// counts per upper bound (`"+Inf"` last), the sum and the count.
    pub fn to_json(&self, peer: usize) -> Value {
        let map = self.by_peer.lock().expect("kme calls lock");
        let mut out = serde_json::Map::new();
        for ((p, call), h) in map.iter() {
            if *p != peer {
                continue;
            }
            let mut cumulative = 0;
            let buckets: Vec<Value> = h
                .counts
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cumulative += c;
                    let le = KME_CALL_BUCKETS_SECONDS
                        .get(i)
                        .map_or_else(|| json!("+Inf"), |v| json!(v));
                    json!([le, cumulative])
                })
                .collect();
            out.insert(
                call.name().into(),
                json!({"buckets": buckets, "sum_seconds": h.sum_seconds, "count": cumulative}),
            );
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_cumulative_buckets() {
        let k = KmeCalls::default();
        k.observe(0, KmeCall::EncKeys, Duration::from_millis(3));
        k.observe(0, KmeCall::EncKeys, Duration::from_millis(30));
        k.observe(0, KmeCall::EncKeys, Duration::from_secs(9));
        k.observe(1, KmeCall::DecKeys, Duration::from_millis(3));
        let v = k.to_json(0);
        let enc = &v["enc_keys"];
        assert_eq!(enc["count"], 3);
        assert_eq!(enc["buckets"][0], json!([0.005, 1]));
        assert_eq!(enc["buckets"][3], json!([0.05, 2]));
        assert_eq!(enc["buckets"][10], json!(["+Inf", 3]));
        assert!((enc["sum_seconds"].as_f64().unwrap() - 9.033).abs() < 1e-9);
        assert!(
            v.get("dec_keys").is_none(),
            "peer 1's calls are not peer 0's"
        );
    }
}
