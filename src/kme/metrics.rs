//! The KME's counters, typed: per link ([`LinkCounter`]) and per SAE pair
//! ([`PairCounter`]), with their rates per second over the last sampling window. The
//! names are what the store saves (`link:{peer}:{what}`, `pair:{master}>{slave}:{what}`)
//! and what operators will scrape. [`LinkMetrics`] is one link's handle, what a link task
//! is given. Imports nothing else of the KME but the refusal reasons.

use super::refusal::{Refusal, Shortage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A counter of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkCounter {
    /// Key bits the leader's source generated.
    GeneratedBits,
    /// Key bits the follower received (pushed or distilled) from its leader.
    ReceivedBits,
    /// Pad bits spent by relays in either direction.
    ConsumedBits,
    /// Relay hops sent over the link.
    RelaysSent,
    /// Relay hops received over the link.
    RelaysReceived,
    /// Relays over the link refused (503): for lack of pad, or under alarm.
    Refused(Shortage),
    /// CV-QKD blocks that failed (leader).
    CvqkdBlockErrors,
    /// Pulse frames the quantum port refused (CV-QKD follower).
    QuantumFramesRefused,
}

impl LinkCounter {
    fn all() -> impl Iterator<Item = Self> {
        [
            Self::GeneratedBits,
            Self::ReceivedBits,
            Self::ConsumedBits,
            Self::RelaysSent,
            Self::RelaysReceived,
            Self::CvqkdBlockErrors,
            Self::QuantumFramesRefused,
        ]
        .into_iter()
        .chain(Shortage::ALL.into_iter().map(Self::Refused))
    }

    /// The counter's saved name.
    pub fn name(self) -> String {
        match self {
            Self::GeneratedBits => "generated_bits".into(),
            Self::ReceivedBits => "received_bits".into(),
            Self::ConsumedBits => "consumed_bits".into(),
            Self::RelaysSent => "relays_sent".into(),
            Self::RelaysReceived => "relays_received".into(),
            Self::Refused(why) => format!("refused_503_{}", why.label()),
            Self::CvqkdBlockErrors => "cvqkd_block_errors".into(),
            Self::QuantumFramesRefused => "quantum_frames_refused".into(),
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|c| c.name() == name)
    }
}

/// A counter of one SAE pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PairCounter {
    /// Keys delivered to the master.
    KeysToMaster,
    /// Keys delivered to the slave.
    KeysToSlave,
    /// Keys relayed to another KME for the slave.
    KeysRelayed,
    /// Key bits delivered (master and slave).
    BitsDelivered,
    /// Requests refused (400 or 503), by reason.
    Refused(Refusal),
    /// Keys the slave never fetched, erased after `pending_key_expiry`.
    KeysExpired,
}

impl PairCounter {
    fn all() -> impl Iterator<Item = Self> {
        [
            Self::KeysToMaster,
            Self::KeysToSlave,
            Self::KeysRelayed,
            Self::BitsDelivered,
            Self::KeysExpired,
        ]
        .into_iter()
        .chain(Refusal::all().map(Self::Refused))
    }

    /// The counter's saved name.
    pub fn name(self) -> String {
        match self {
            Self::KeysToMaster => "keys_to_master".into(),
            Self::KeysToSlave => "keys_to_slave".into(),
            Self::KeysRelayed => "keys_relayed".into(),
            Self::BitsDelivered => "bits_delivered".into(),
            Self::Refused(r) => format!("refused_{}_{}", r.code(), r.reason()),
            Self::KeysExpired => "keys_expired".into(),
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|c| c.name() == name)
    }
}

/// Which counter: of a link, of an SAE pair, or a saved one this version does not know
/// (kept, so it is saved again unchanged).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum CounterKey {
    Link(String, LinkCounter),
    Pair(String, String, PairCounter),
    Unknown(String),
}

impl CounterKey {
    /// The saved name.
    fn name(&self) -> String {
        match self {
            Self::Link(peer, c) => format!("link:{peer}:{}", c.name()),
            Self::Pair(master, slave, c) => format!("pair:{master}>{slave}:{}", c.name()),
            Self::Unknown(name) => name.clone(),
        }
    }

    /// The key of a saved name.
    fn parse(name: String) -> Self {
        let typed = if let Some(rest) = name.strip_prefix("link:") {
            rest.rsplit_once(':').and_then(|(peer, what)| {
                Some(Self::Link(peer.to_string(), LinkCounter::from_name(what)?))
            })
        } else if let Some(rest) = name.strip_prefix("pair:") {
            rest.rsplit_once(':').and_then(|(pair, what)| {
                let (master, slave) = pair.split_once('>')?;
                let c = PairCounter::from_name(what)?;
                Some(Self::Pair(master.to_string(), slave.to_string(), c))
            })
        } else {
            None
        };
        typed.unwrap_or(Self::Unknown(name))
    }
}

/// The last sample: when, the counters then, the rates over the window before it.
type Window = (
    Instant,
    BTreeMap<CounterKey, u64>,
    BTreeMap<CounterKey, f64>,
);

/// Every counter of the KME.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<CounterKey, u64>>,
    window: Mutex<Option<Window>>,
}

impl Metrics {
    /// Metrics starting from saved counters (by saved name).
    pub fn from_saved(saved: Vec<(String, u64)>) -> Self {
        let m = Self::default();
        *m.counters.lock().expect("metrics lock") = saved
            .into_iter()
            .map(|(name, v)| (CounterKey::parse(name), v))
            .collect();
        m
    }

    fn add(&self, key: CounterKey, delta: u64) {
        let mut c = self.counters.lock().expect("metrics lock");
        *c.entry(key).or_default() += delta;
    }

    /// Adds to a counter of the link to `peer`.
    pub fn link_add(&self, peer: &str, counter: LinkCounter, delta: u64) {
        self.add(CounterKey::Link(peer.to_string(), counter), delta);
    }

    /// Adds to a counter of the SAE pair `master` > `slave`.
    pub fn pair_add(&self, master: &str, slave: &str, counter: PairCounter, delta: u64) {
        let key = CounterKey::Pair(master.to_string(), slave.to_string(), counter);
        self.add(key, delta);
    }

    /// The handle of the link to `peer`.
    pub fn link(self: &Arc<Self>, peer: &str) -> LinkMetrics {
        LinkMetrics {
            metrics: self.clone(),
            peer: peer.to_string(),
        }
    }

    /// A copy of every counter, by saved name.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let c = self.counters.lock().expect("metrics lock");
        c.iter().map(|(k, v)| (k.name(), *v)).collect()
    }

    /// Closes a sampling window: rates are the counters' growth since the last call.
    pub fn sample(&self, now: Instant) {
        let current = self.counters.lock().expect("metrics lock").clone();
        let mut w = self.window.lock().expect("metrics lock");
        let rates = match w.as_ref() {
            Some((t, prev, _)) => {
                let dt = now.saturating_duration_since(*t).as_secs_f64().max(1e-3);
                current
                    .iter()
                    .map(|(k, v)| {
                        let before = prev.get(k).copied().unwrap_or(0);
                        (k.clone(), (v - before) as f64 / dt)
                    })
                    .collect()
            }
            None => BTreeMap::new(),
        };
        *w = Some((now, current, rates));
    }

    fn rate_of(&self, key: &CounterKey) -> f64 {
        let w = self.window.lock().expect("metrics lock");
        w.as_ref()
            .and_then(|(_, _, r)| r.get(key).copied())
            .unwrap_or(0.0)
    }

    fn get(&self, key: &CounterKey) -> u64 {
        let c = self.counters.lock().expect("metrics lock");
        c.get(key).copied().unwrap_or(0)
    }

    /// A link counter's value.
    pub fn link_value(&self, peer: &str, counter: LinkCounter) -> u64 {
        self.get(&CounterKey::Link(peer.to_string(), counter))
    }

    /// A link counter's rate per second over the last window.
    pub fn link_rate(&self, peer: &str, counter: LinkCounter) -> f64 {
        self.rate_of(&CounterKey::Link(peer.to_string(), counter))
    }

    /// A pair counter's value.
    pub fn pair_value(&self, master: &str, slave: &str, counter: PairCounter) -> u64 {
        self.get(&CounterKey::Pair(master.into(), slave.into(), counter))
    }

    /// A pair counter's rate per second over the last window.
    pub fn pair_rate(&self, master: &str, slave: &str, counter: PairCounter) -> f64 {
        self.rate_of(&CounterKey::Pair(master.into(), slave.into(), counter))
    }

    /// The refusals of the pair `master` > `slave` so far, by code and reason (those never
    /// counted left out).
    pub fn pair_refusals(&self, master: &str, slave: &str) -> Vec<(Refusal, u64)> {
        Refusal::all()
            .map(|r| (r, self.pair_value(master, slave, PairCounter::Refused(r))))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The relays refused over the link to `peer` so far, by reason (those never counted
    /// left out).
    pub fn link_refusals(&self, peer: &str) -> Vec<(Shortage, u64)> {
        Shortage::ALL
            .into_iter()
            .map(|why| (why, self.link_value(peer, LinkCounter::Refused(why))))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The SAE pairs (master, slave) with a counter, in the order of their saved names.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let c = self.counters.lock().expect("metrics lock");
        let mut pairs: Vec<(String, String)> = c
            .keys()
            .filter_map(|k| match k {
                CounterKey::Pair(m, s, _) => Some((m.clone(), s.clone())),
                _ => None,
            })
            .collect();
        pairs.sort_by_cached_key(|(m, s)| format!("{m}>{s}:"));
        pairs.dedup();
        pairs
    }
}

/// The counters of one link, by its peer.
#[derive(Clone)]
pub struct LinkMetrics {
    metrics: Arc<Metrics>,
    peer: String,
}

impl LinkMetrics {
    /// Adds to one of the link's counters.
    pub fn add(&self, counter: LinkCounter, delta: u64) {
        self.metrics.link_add(&self.peer, counter, delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_names_round_trip() {
        let saved = vec![
            ("link:b:consumed_bits".to_string(), 8),
            ("pair:s1>s2:keys_to_master".to_string(), 3),
            ("pair:s1>s2:refused_503_quota".to_string(), 2),
            ("link:b:refused_503_link_alarm".to_string(), 4),
            ("something:else".to_string(), 1),
        ];
        let m = Metrics::from_saved(saved.clone());
        assert_eq!(m.link_value("b", LinkCounter::ConsumedBits), 8);
        assert_eq!(m.pair_value("s1", "s2", PairCounter::KeysToMaster), 3);
        let quota = PairCounter::Refused(Refusal::Unavailable(Shortage::Quota));
        assert_eq!(m.pair_value("s1", "s2", quota), 2);
        let alarm = LinkCounter::Refused(Shortage::LinkAlarm);
        assert_eq!(m.link_value("b", alarm), 4);
        let mut again = m.snapshot();
        again.sort();
        let mut saved = saved;
        saved.sort();
        assert_eq!(again, saved);
        assert_eq!(m.pairs(), vec![("s1".to_string(), "s2".to_string())]);
    }
}
