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
