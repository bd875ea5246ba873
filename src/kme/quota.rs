//! Per-SAE and per-pair rate and volume limits on `enc_keys` (docs/kme.md, "Quotas"): one
//! token bucket per configured limit, holding at most the limit's amount and refilled at
//! amount per period. A request is admitted only if every bucket that applies to it holds
//! enough; then all of them are debited at once. The clock is explicit (`now`).

use super::config::{KmeConfig, PerPeriod};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// Which configured limit refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quota exceeded: {field} = \"{written}\" ({who})")]
pub struct QuotaExceeded {
    /// The config field of the limit (`sae[0].rate`, `sae_pair[1].volume`).
    pub field: String,
    /// The limit as configured.
    pub written: String,
    /// The SAE or pair it applies to (`sae-a`, `sae-a > sae-b`).
    pub who: String,
}

/// Which kind of unit a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    /// Keys (`rate`).
    Keys,
    /// Key bits (`volume`).
    Bits,
}

/// What a limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    /// `[[sae]]` number i.
    Sae(usize),
    /// `[[sae_pair]]` number i.
    Pair(usize),
}

struct Bucket {
    level: f64,
    at: Instant,
}

/// The buckets of every configured limit.
#[derive(Default)]
pub struct Quotas {
    buckets: Mutex<BTreeMap<(Owner, Unit), Bucket>>,
}

impl Quotas {
    /// Admits `keys` keys of `bits` bits in total from `master` (an SAE of this KME) to
    /// `slave` under pair `pair` (its index in `cfg.pairs`), or names the limit that
    /// refuses them; a refused request debits nothing.
    pub fn admit(
        &self,
        cfg: &KmeConfig,
        now: Instant,
        master: &str,
        pair: usize,
        keys: u64,
        bits: u64,
    ) -> Result<(), QuotaExceeded> {
        let mut limits: Vec<(Owner, Unit, &PerPeriod, String, String, u64)> = Vec::new();
        if let Some(i) = cfg.saes.iter().position(|s| s == master)
            && let Some(q) = cfg.sae_quotas.get(i)
        {
            let who = master.to_string();
            if let Some(r) = &q.rate_keys {
                limits.push((
                    Owner::Sae(i),
                    Unit::Keys,
                    r,
                    format!("sae[{i}].rate"),
                    who.clone(),
                    keys,
                ));
            }
            if let Some(v) = &q.volume_bits {
                limits.push((
                    Owner::Sae(i),
                    Unit::Bits,
                    v,
                    format!("sae[{i}].volume"),
                    who,
                    bits,
                ));
            }
        }
        if let Some(p) = cfg.pairs.get(pair) {
            let who = format!("{} > {}", p.master, p.slave);
            if let Some(r) = &p.quota.rate_keys {
                limits.push((
                    Owner::Pair(pair),
                    Unit::Keys,
                    r,
                    format!("sae_pair[{pair}].rate"),
                    who.clone(),
                    keys,
                ));
            }
            if let Some(v) = &p.quota.volume_bits {
                limits.push((
                    Owner::Pair(pair),
                    Unit::Bits,
                    v,
                    format!("sae_pair[{pair}].volume"),
                    who,
                    bits,
                ));
            }
        }
        let mut buckets = self.buckets.lock().expect("quota lock");
        for (owner, unit, limit, field, who, need) in &limits {
            let b = buckets.entry((*owner, *unit)).or_insert(Bucket {
                level: limit.amount as f64,
                at: now,
            });
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            let refill = limit.amount as f64 * elapsed / limit.period.as_secs_f64();
            b.level = (b.level + refill).min(limit.amount as f64);
            b.at = b.at.max(now);
            if b.level < *need as f64 {
                return Err(QuotaExceeded {
                    field: field.clone(),
                    written: limit.written.clone(),
                    who: who.clone(),
                });
            }
        }
        for (owner, unit, _, _, _, need) in &limits {
            if let Some(b) = buckets.get_mut(&(*owner, *unit)) {
                b.level -= *need as f64;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    const CFG: &str = r#"
[kme]
id = "kme-a"
listen = "127.0.0.1:8443"
data_dir = "data"
ca_file = "ca.pem"
cert_file = "kme-a.pem"
key_file = "kme-a.key"
[[sae]]
id = "sae-a"
volume = "1000bit/h"
[[sae]]
id = "sae-b"
[[sae]]
id = "sae-c"
[[sae_pair]]
master = "sae-a"
slave = "sae-b"
both_ways = true
rate = "2/s"
[[sae_pair]]
master = "sae-a"
slave = "sae-c"
"#;

    #[test]
    fn buckets_refill_at_the_configured_rate_and_refusals_debit_nothing() {
        let cfg = crate::kme::config::parse(CFG, Path::new("k.toml")).unwrap();
        let q = Quotas::default();
        let t0 = Instant::now();
        q.admit(&cfg, t0, "sae-a", 0, 2, 200).unwrap();
        let e = q.admit(&cfg, t0, "sae-b", 0, 1, 8).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.who.as_str()),
            ("sae_pair[0].rate", "sae-a > sae-b")
        );
        // Half a second refills one key of the pair's two per second.
        let t1 = t0 + Duration::from_millis(500);
        q.admit(&cfg, t1, "sae-b", 0, 1, 8).unwrap();
        assert!(q.admit(&cfg, t1, "sae-b", 0, 1, 8).is_err());
        // sae-a's volume: 800 bits left; a refused request (pair 1 has no limit of its
        // own) takes nothing, so 800 still fit.
        let e = q.admit(&cfg, t1, "sae-a", 1, 1, 900).unwrap_err();
        assert_eq!(e.field, "sae[0].volume");
        q.admit(&cfg, t1, "sae-a", 1, 1, 800).unwrap();
        assert!(q.admit(&cfg, t1, "sae-a", 1, 1, 8).is_err());
        // Two hours later the bucket is full again, never above its amount.
        let t2 = t1 + Duration::from_secs(7200);
        q.admit(&cfg, t2, "sae-a", 1, 1, 1000).unwrap();
        assert!(q.admit(&cfg, t2, "sae-a", 1, 1, 8).is_err());
    }
}
