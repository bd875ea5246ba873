//! The live key network: this KME's link-state adverts sent to its link neighbours and
//! theirs received (flooded on, so every KME learns every link), and the paths relays take,
//! computed from them ([`super::topology`] holds the pure parts).
//!
//! - Every [`ADVERT_INTERVAL`], and at once when one of its links changes health (an alarm
//!   raised or cleared, a neighbour unreachable or back), a KME numbers a new advert of its
//!   links (pool bits each way, key rate, alarm, ξ̂), and posts every advert it holds to each
//!   neighbour (`POST /kme/v1/topology`, mutual TLS). A receiver keeps the newer of each
//!   origin's adverts; one that changes a link's health is passed on at the next check
//!   ([`ADVERT_CHECK_INTERVAL`]), so a change crosses the network in about one check per
//!   hop. An origin not heard of for [`ADVERT_MAX_AGE`] is forgotten, its links with it.
//! - A neighbour that does not answer is left out of this KME's advert until it does: the
//!   link is unusable for everyone at once, before its adverts age out.
//! - [`choose_paths`]: the configured route if `[[remote_sae]] route` is set; else the best
//!   path (every hop without alarm and with the relay's pad, the most relays left at the
//!   bottleneck, then the fewest trusted nodes), or, for `relay = "multipath"`, that many
//!   node-disjoint paths. Recomputed for every key request, from this KME's own links read
//!   fresh from its store and the others' latest adverts.
//!
//! Adverts are authenticated hop by hop (each arrives over mutual TLS from a link
//! neighbour), not signed by their origin: a compromised KME can lie about other KMEs'
//! links. That can send a relay towards a link that does not exist (the hop before it
//! refuses: each KME forwards only over its own links) but cannot put one KME on two
//! node-disjoint paths (docs/kme.md, "Routes").

use super::config::{RelayMode, RemoteSae};
use super::error::ApiError;
use super::pools::{Direction, unix_ms};
use super::refusal::Shortage;
use super::relay::{ShareTag, send_dir};
use super::routes;
use super::state::Shared;
use super::topology::database::{LinkStateDb, Offered, check};
use super::topology::paths::{Graph, best_path, disjoint_paths};
use super::topology::{KmeId, LinkReport, LinkStateAdvert};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a KME sends its adverts with nothing changed.
pub const ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a KME checks its links' health and whether adverts it got must be passed on.
pub const ADVERT_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// An origin not heard of for this long is forgotten.
pub const ADVERT_MAX_AGE: Duration = Duration::from_secs(4);
/// How long a neighbour has to take the adverts; no answer marks it unreachable.
pub const ADVERT_CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// Relays kept for the status document.
pub const RECENT_RELAYS_MAX: usize = 32;

/// The body of `POST /kme/v1/topology`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvertBatch {
    /// The adverts the sender holds (its own among them).
    pub adverts: Vec<LinkStateAdvert>,
}

/// One relay as this KME saw it (the status document's `relays`).
#[derive(Clone, Debug, Serialize)]
pub struct RelayRecord {
    /// When this KME's part of it was done, Unix ms.
    pub at_unix_ms: u64,
    /// When this KME began it (checked the link's alarm and chose or checked the path),
    /// Unix ms: a relay begun before a link's alarm may be done after it.
    pub started_unix_ms: u64,
    /// Master SAE.
    pub master: String,
    /// Slave SAE.
    pub slave: String,
    /// The whole path, the master's KME first.
    pub path: Vec<String>,
    /// The share carried, for a key relayed in shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareTag>,
    /// The keys' IDs.
    pub key_ids: Vec<String>,
}

/// What the routing part of the status document shows.
#[derive(Debug, Serialize)]
pub struct RoutingStatus {
    /// Every advert held, with its age.
    pub adverts: Vec<AdvertStatus>,
    /// Neighbours that did not take the last adverts (left out of this KME's advert).
    pub unreachable: Vec<String>,
    /// Links taken out of service here (reported under alarm).
    pub out_of_service: Vec<String>,
    /// The last relays this KME took part in, newest last.
    pub relays: Vec<RelayRecord>,
}

/// One advert held.
#[derive(Debug, Serialize)]
pub struct AdvertStatus {
    /// Its origin.
    pub origin: String,
    /// Its number.
    pub seq: u64,
    /// Since it arrived, ms.
    pub age_ms: u64,
    /// The links it reports.
    pub links: Vec<LinkReport>,
}

/// The adverts held, the neighbours' reachability and the recent relays.
pub struct Routing {
    me: KmeId,
    db: Mutex<LinkStateDb>,
    last_seq: Mutex<u64>,
    unreachable: Mutex<BTreeSet<String>>,
    out_of_service: Mutex<BTreeSet<String>>,
    /// Set when an advert that changes a link's health was installed: pass it on.
    changed: std::sync::atomic::AtomicBool,
    recent: Mutex<VecDeque<RelayRecord>>,
}

/// The health of every link in the adverts: what, when it changes, is passed on at once.
type Health = BTreeMap<(KmeId, KmeId), bool>;

fn health(adverts: &[&LinkStateAdvert]) -> Health {
    adverts
        .iter()
        .flat_map(|a| {
            a.links
                .iter()
                .map(|l| ((a.origin.clone(), l.peer.clone()), l.alarm))
        })
        .collect()
}

impl Routing {
    /// The routing state of KME `me`.
    pub fn new(me: &str) -> Self {
        Self {
            me: KmeId::from(me),
            db: Mutex::new(LinkStateDb::new(ADVERT_MAX_AGE)),
            last_seq: Mutex::new(0),
            unreachable: Mutex::default(),
            out_of_service: Mutex::default(),
            changed: std::sync::atomic::AtomicBool::new(false),
            recent: Mutex::default(),
        }
    }

    fn db(&self) -> std::sync::MutexGuard<'_, LinkStateDb> {
        self.db.lock().expect("routing db lock")
    }

    /// The next number of this KME's adverts: above the last, and at least the wall clock
    /// in ms (so a restarted KME goes on upwards).
    fn next_seq(&self) -> u64 {
        let mut last = self.last_seq.lock().expect("seq lock");
        *last = (*last + 1).max(unix_ms());
        *last
    }

    /// Installs this KME's own advert of `links`.
    fn install_own(&self, links: Vec<LinkReport>) -> LinkStateAdvert {
        let advert = LinkStateAdvert {
            origin: self.me.clone(),
            seq: self.next_seq(),
            links,
        };
        if let Err(e) = self.db().offer(advert.clone(), Instant::now()) {
            tracing::warn!("this KME's own advert: {e}");
        }
        advert
    }

    /// Takes `adverts` from neighbour `from`: all refused if one is malformed; each
    /// installed if newer than the one held (this KME's own origin excepted). Returns how
    /// many were installed.
    pub fn receive(&self, from: &str, adverts: Vec<LinkStateAdvert>) -> Result<usize, ApiError> {
        for a in &adverts {
            check(a).map_err(|e| {
                ApiError::bad_detail("Bad request format", "adverts", e.to_string())
            })?;
        }
        let now = Instant::now();
        let mut db = self.db();
        let before = health(&db.adverts().collect::<Vec<_>>());
        let mut installed = 0;
        for a in adverts {
            if a.origin == self.me {
                continue;
            }
            match db.offer(a, now) {
                Ok(Offered::Installed) => installed += 1,
                Ok(Offered::Stale { .. }) => {}
                Err(e) => {
                    tracing::debug!(peer = from, "advert not kept: {e}");
                }
            }
        }
        if health(&db.adverts().collect::<Vec<_>>()) != before {
            self.changed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(installed)
    }

    /// The graph of the adverts held now.
    pub fn graph(&self) -> Graph {
        let mut db = self.db();
        db.expire(Instant::now());
        Graph::from_db(&db)
    }

    fn snapshot(&self) -> Vec<LinkStateAdvert> {
        let mut db = self.db();
        db.expire(Instant::now());
        db.adverts().cloned().collect()
    }

    /// Takes the link to `peer` out of service (`false`) or back (`true`): out of service,
    /// it is reported under alarm and nothing is relayed over it. (In-process; the KME's
    /// tests use it to cut links.)
    pub fn set_in_service(&self, peer: &str, in_service: bool) {
        let mut out = self.out_of_service.lock().expect("service lock");
        if in_service {
            out.remove(peer);
        } else {
            out.insert(peer.to_string());
        }
    }

    /// Whether the link to `peer` was taken out of service.
    pub fn out_of_service(&self, peer: &str) -> bool {
        self.out_of_service
            .lock()
            .expect("service lock")
            .contains(peer)
    }

    /// Remembers a relay for the status document.
    pub fn record(&self, record: RelayRecord) {
        let mut recent = self.recent.lock().expect("recent lock");
        if recent.len() == RECENT_RELAYS_MAX {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    /// The status document's routing part.
    pub fn status(&self) -> RoutingStatus {
        let now = Instant::now();
        let mut db = self.db();
        db.expire(now);
        let adverts = db
            .adverts()
            .map(|a| AdvertStatus {
                origin: a.origin.0.clone(),
                seq: a.seq,
                age_ms: db.age(&a.origin, now).unwrap_or_default().as_millis() as u64,
                links: a.links.clone(),
            })
            .collect();
        drop(db);
        RoutingStatus {
            adverts,
            unreachable: self
                .unreachable
                .lock()
                .expect("lock")
                .iter()
                .cloned()
                .collect(),
            out_of_service: self
                .out_of_service
                .lock()
                .expect("lock")
                .iter()
                .cloned()
                .collect(),
            relays: self.recent.lock().expect("lock").iter().cloned().collect(),
        }
    }
}

/// This KME's links as an advert reports them: pool levels read from the store now, the
/// key rate (the CV-QKD link's measured rate, a random source's configured one), the alarm
/// (a CV-QKD alarm, or out of service), ξ̂. Unreachable neighbours are left out.
async fn own_links(shared: &Shared) -> Vec<LinkReport> {
    let unreachable = shared.routing.unreachable.lock().expect("lock").clone();
    let mut out = Vec::new();
    for link in &shared.cfg.links {
        if unreachable.contains(&link.peer) {
            continue;
        }
        let Ok(levels) = shared.pools.link(&link.peer).levels().await else {
            continue;
        };
        let bits = |d: Direction| {
            8 * match d {
                Direction::LeaderSends => levels.leader_sends_bytes,
                Direction::FollowerSends => levels.follower_sends_bytes,
            }
        };
        let dir = Direction::sent_by(link.role);
        let figures = shared.cvqkd.figures(&link.peer);
        out.push(LinkReport {
            peer: KmeId::from(link.peer.as_str()),
            send_bits: bits(dir),
            receive_bits: bits(dir.opposite()),
            key_rate_bps: figures
                .as_ref()
                .map_or(link.rate_bits_per_second as f64, |f| {
                    f.secret_key_rate_bits_per_second
                }),
            alarm: shared.cvqkd.alarm(&link.peer).is_some()
                || shared.routing.out_of_service(&link.peer),
            excess_noise: figures.and_then(|f| f.excess_noise_estimate_snu),
        });
    }
    out
}

/// Refreshes this KME's own advert from its store now.
pub async fn refresh_own(shared: &Shared) -> LinkStateAdvert {
    let links = own_links(shared).await;
    shared.routing.install_own(links)
}

/// The health of this KME's links as its advert would report them (which links, which
/// under alarm), without reading the store.
fn own_health(shared: &Shared) -> Vec<(String, bool)> {
    let unreachable = shared.routing.unreachable.lock().expect("lock").clone();
    shared
        .cfg
        .links
        .iter()
        .filter(|l| !unreachable.contains(&l.peer))
        .map(|l| {
            let alarm =
                shared.cvqkd.alarm(&l.peer).is_some() || shared.routing.out_of_service(&l.peer);
            (l.peer.clone(), alarm)
        })
        .collect()
}

/// Background task: sends the adverts to every neighbour each [`ADVERT_INTERVAL`], and at
/// once when this KME's links change health or an advert received changed another's.
pub async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(ADVERT_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent: Option<Instant> = None;
    let mut last_health = Vec::new();
    loop {
        tick.tick().await;
        let h = own_health(&shared);
        let passed_on = shared
            .routing
            .changed
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let due = last_sent.is_none_or(|t| t.elapsed() >= ADVERT_INTERVAL);
        if !(due || passed_on || h != last_health) {
            continue;
        }
        if h != last_health {
            let shown: Vec<String> = h
                .iter()
                .map(|(peer, alarm)| {
                    format!("{peer} {}", if *alarm { "UNDER ALARM" } else { "ok" })
                })
                .collect();
            tracing::info!(
                "links reachable and their health: {}; adverts go out now",
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(", ")
                }
            );
        }
        last_health = h;
        last_sent = Some(Instant::now());
        refresh_own(&shared).await;
        let batch = AdvertBatch {
            adverts: shared.routing.snapshot(),
        };
        let body = match serde_json::to_vec(&batch) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let mut sends = tokio::task::JoinSet::new();
        for l in &shared.cfg.links {
            let peer = l.peer.clone();
            let req = shared
                .neighbours
                .to(&peer)
                .post(routes::TOPOLOGY)
                .timeout(ADVERT_CALL_TIMEOUT)
                .header("content-type", "application/json")
                .body(body.clone());
            sends.spawn(async move {
                let ok = matches!(req.send().await, Ok(r) if r.status().is_success());
                (peer, ok)
            });
        }
        let mut results = Vec::new();
        while let Some(done) = sends.join_next().await {
            // (a send cancelled by the runtime stopping counts for nothing)
            if let Ok(r) = done {
                results.push(r);
            }
        }
        let mut unreachable = shared.routing.unreachable.lock().expect("lock");
        for (peer, ok) in results {
            let changed = if ok {
                unreachable.remove(&peer)
            } else {
                unreachable.insert(peer.clone())
            };
            if changed {
                if ok {
                    tracing::info!(%peer, "neighbour KME reachable again: its link is back in this KME's adverts");
                } else {
                    tracing::warn!(%peer, "neighbour KME unreachable (it did not take this KME's adverts within {} s): its link is left out of the adverts, so no relay uses it; check that it runs and that the network between reaches it", ADVERT_CALL_TIMEOUT.as_secs());
                }
            }
        }
    }
}

/// The paths keys for `remote` take, `need_bits` of pad on every hop: the configured route,
/// or computed from the link state (one path, or `paths` node-disjoint ones for
/// `relay = "multipath"`). Each path is the route a relay names: every KME after this one.
pub async fn choose_paths(
    shared: &Shared,
    remote: &RemoteSae,
    need_bits: u64,
) -> Result<Vec<Vec<String>>, ApiError> {
    if let Some(route) = &remote.route {
        return Ok(vec![route.clone()]);
    }
    refresh_own(shared).await;
    let g = shared.routing.graph();
    let (me, to) = (&shared.routing.me, KmeId::from(remote.kme.as_str()));
    let found = match remote.relay {
        RelayMode::Single => best_path(&g, me, &to, need_bits).map(|p| vec![p]),
        RelayMode::Multipath { paths } => disjoint_paths(&g, me, &to, paths, need_bits),
    };
    match found {
        Ok(paths) => Ok(paths.iter().map(|p| p.route()).collect()),
        Err(e) => {
            tracing::info!(slave = %remote.id, "no relay path: {e}");
            Err(ApiError::unavailable(Shortage::NoPath, e.to_string()))
        }
    }
}

/// How many keys of `key_bits` could be relayed to `remote` now: the pad at the
/// bottleneck of the path (of the poorest path, for multipath; of the first hop, for a
/// configured route), in keys. 0 when no path has one key's pad.
pub async fn keys_available(shared: &Shared, remote: &RemoteSae, key_bits: u64) -> u64 {
    let key_bits = key_bits.max(1);
    if let Some(route) = &remote.route {
        let Some(dir) = send_dir(shared, &route[0]) else {
            return 0;
        };
        let Ok(levels) = shared.pools.link(&route[0]).levels().await else {
            return 0;
        };
        let bytes = match dir {
            Direction::LeaderSends => levels.leader_sends_bytes,
            Direction::FollowerSends => levels.follower_sends_bytes,
        };
        return 8 * bytes / key_bits;
    }
    refresh_own(shared).await;
    let g = shared.routing.graph();
    let (me, to) = (&shared.routing.me, KmeId::from(remote.kme.as_str()));
    let bottleneck = match remote.relay {
        RelayMode::Single => best_path(&g, me, &to, key_bits).map(|p| p.bottleneck_bits),
        RelayMode::Multipath { paths } => disjoint_paths(&g, me, &to, paths, key_bits)
            .map(|ps| ps.iter().map(|p| p.bottleneck_bits).min().unwrap_or(0)),
    };
    bottleneck.unwrap_or(0) / key_bits
}

/// `send_dir` for a neighbour that must exist (the first hop of a chosen path).
pub fn first_hop_dir(shared: &Shared, peer: &str) -> Result<Direction, ApiError> {
    send_dir(shared, peer).ok_or_else(|| {
        ApiError::unavailable(
            Shortage::NoPath,
            format!("the path starts at '{peer}', not a link of this KME"),
        )
    })
}
