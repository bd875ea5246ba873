//! The link-state database: the latest advert of every KME heard of, with when it arrived.
//! An advert replaces the held one of its origin only when its number is higher, so a
//! replayed or reordered advert changes nothing; an origin not heard of for
//! [`LinkStateDb::max_age`] is forgotten (it is down, or cut off), and its links with it.
//! Bounded: at most [`ORIGINS_MAX`] origins and [`LINKS_PER_ADVERT_MAX`] links an advert.

use super::{KmeId, LinkStateAdvert};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Most KMEs the database holds adverts of (a city's key network is tens).
pub const ORIGINS_MAX: usize = 1024;
/// Most links one advert may report.
pub const LINKS_PER_ADVERT_MAX: usize = 64;

/// What became of an offered advert.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// It was newer than what was held (or the first of its origin): installed.
    Installed,
    /// Its number was not above the held one's: ignored (a replay, or overtaken).
    Stale {
        /// The number held.
        held: u64,
    },
}

/// Why an advert was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdvertError {
    /// More links than [`LINKS_PER_ADVERT_MAX`].
    #[error("advert of '{origin}' reports {count} links, more than {LINKS_PER_ADVERT_MAX}")]
    TooManyLinks {
        /// Its origin.
        origin: KmeId,
        /// Links reported.
        count: usize,
    },
    /// A link to itself, or the same peer twice.
    #[error("advert of '{origin}' reports its link to '{peer}' {why}")]
    BadLink {
        /// Its origin.
        origin: KmeId,
        /// The peer named.
        peer: KmeId,
        /// "twice" or "to itself".
        why: &'static str,
    },
    /// The database holds [`ORIGINS_MAX`] origins already.
    #[error("advert of '{origin}' refused: {ORIGINS_MAX} KMEs are known already")]
    Full {
        /// Its origin.
        origin: KmeId,
    },
}

/// The adverts held, by origin.
#[derive(Debug)]
pub struct LinkStateDb {
    adverts: BTreeMap<KmeId, (LinkStateAdvert, Instant)>,
    max_age: Duration,
}

impl LinkStateDb {
    /// An empty database that forgets an origin `max_age` after its last installed advert.
    pub fn new(max_age: Duration) -> Self {
        Self {
            adverts: BTreeMap::new(),
            max_age,
        }
    }

    /// How long an origin's advert is kept without a newer one.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Offers an advert received (or made by this KME) at `now`.
    pub fn offer(&mut self, advert: LinkStateAdvert, now: Instant) -> Result<Offered, AdvertError> {
        check(&advert)?;
        self.expire(now);
        match self.adverts.get(&advert.origin) {
            Some((held, _)) if advert.seq <= held.seq => Ok(Offered::Stale { held: held.seq }),
            Some(_) => {
                self.adverts.insert(advert.origin.clone(), (advert, now));
                Ok(Offered::Installed)
            }
            None if self.adverts.len() >= ORIGINS_MAX => Err(AdvertError::Full {
                origin: advert.origin,
            }),
            None => {
                self.adverts.insert(advert.origin.clone(), (advert, now));
                Ok(Offered::Installed)
            }
        }
    }

    /// Forgets the origins whose last advert is `max_age` old at `now`; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<KmeId> {
        let max_age = self.max_age;
        let old: Vec<KmeId> = self
            .adverts
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= max_age)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            self.adverts.remove(id);
        }
        old
    }

    /// The advert held for `origin`, if any.
    pub fn get(&self, origin: &KmeId) -> Option<&LinkStateAdvert> {
        self.adverts.get(origin).map(|(a, _)| a)
    }

    /// Every advert held, by origin.
    pub fn adverts(&self) -> impl Iterator<Item = &LinkStateAdvert> {
        self.adverts.values().map(|(a, _)| a)
    }

    /// How old the advert of `origin` is at `now`.
    pub fn age(&self, origin: &KmeId, now: Instant) -> Option<Duration> {
        self.adverts
            .get(origin)
            .map(|(_, at)| now.saturating_duration_since(*at))
    }

    /// Origins held.
    pub fn len(&self) -> usize {
        self.adverts.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.adverts.is_empty()
    }
}

/// Refuses an advert with too many links, a link to itself or one peer twice.
pub fn check(advert: &LinkStateAdvert) -> Result<(), AdvertError> {
    if advert.links.len() > LINKS_PER_ADVERT_MAX {
        return Err(AdvertError::TooManyLinks {
            origin: advert.origin.clone(),
            count: advert.links.len(),
        });
    }
    for (i, link) in advert.links.iter().enumerate() {
        let why = if link.peer == advert.origin {
            "to itself"
        } else if advert.links[..i].iter().any(|l| l.peer == link.peer) {
            "twice"
        } else {
            continue;
        };
        return Err(AdvertError::BadLink {
            origin: advert.origin.clone(),
            peer: link.peer.clone(),
            why,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kme::topology::LinkReport;

    fn advert(origin: &str, seq: u64, peers: &[&str]) -> LinkStateAdvert {
        LinkStateAdvert {
            origin: origin.into(),
            seq,
            links: peers
                .iter()
                .map(|p| LinkReport {
                    peer: (*p).into(),
                    send_bits: 1000,
                    receive_bits: 1000,
                    key_rate_bps: 0.0,
                    alarm: false,
                    excess_noise: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_newer_advert_replaces_and_a_replayed_or_older_one_is_ignored() {
        let t0 = Instant::now();
        let mut db = LinkStateDb::new(Duration::from_secs(30));
        assert_eq!(db.offer(advert("a", 5, &["b"]), t0), Ok(Offered::Installed));
        assert_eq!(
            db.offer(advert("a", 5, &["b", "c"]), t0),
            Ok(Offered::Stale { held: 5 }),
            "a replay"
        );
        assert_eq!(
            db.offer(advert("a", 4, &[]), t0),
            Ok(Offered::Stale { held: 5 }),
            "an older advert overtaken on the way"
        );
        assert_eq!(db.get(&"a".into()).unwrap().links.len(), 1);
        assert_eq!(db.offer(advert("a", 6, &[]), t0), Ok(Offered::Installed));
        assert!(db.get(&"a".into()).unwrap().links.is_empty());
    }

    #[test]
    fn an_origin_not_refreshed_within_max_age_is_forgotten() {
        let t0 = Instant::now();
        let mut db = LinkStateDb::new(Duration::from_secs(30));
        db.offer(advert("a", 1, &["b"]), t0).unwrap();
        db.offer(advert("b", 1, &["a"]), t0 + Duration::from_secs(20))
            .unwrap();
        assert_eq!(db.expire(t0 + Duration::from_secs(29)), Vec::<KmeId>::new());
        assert_eq!(
            db.expire(t0 + Duration::from_secs(30)),
            vec![KmeId::from("a")]
        );
        assert_eq!(db.len(), 1);
        assert_eq!(
            db.age(&"b".into(), t0 + Duration::from_secs(30)),
            Some(Duration::from_secs(10))
        );
        // once forgotten, any number is new again (a KME back after being cut off)
        assert_eq!(
            db.offer(advert("a", 1, &["b"]), t0 + Duration::from_secs(31)),
            Ok(Offered::Installed)
        );
    }

    #[test]
    fn malformed_adverts_are_refused_with_their_reason() {
        let t0 = Instant::now();
        let mut db = LinkStateDb::new(Duration::from_secs(30));
        let e = db.offer(advert("a", 1, &["b", "b"]), t0).unwrap_err();
        assert_eq!(e.to_string(), "advert of 'a' reports its link to 'b' twice");
        let e = db.offer(advert("a", 1, &["a"]), t0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "advert of 'a' reports its link to 'a' to itself"
        );
        let many: Vec<String> = (0..=LINKS_PER_ADVERT_MAX)
            .map(|i| format!("k{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = db.offer(advert("a", 1, &many), t0).unwrap_err();
        assert!(
            matches!(e, AdvertError::TooManyLinks { count: 65, .. }),
            "{e}"
        );
        assert!(db.is_empty(), "nothing refused was kept");
    }

    #[test]
    fn the_number_of_origins_is_bounded() {
        let t0 = Instant::now();
        let mut db = LinkStateDb::new(Duration::from_secs(30));
        for i in 0..ORIGINS_MAX {
            db.offer(advert(&format!("k{i}"), 1, &[]), t0).unwrap();
        }
        let e = db.offer(advert("one-more", 1, &[]), t0).unwrap_err();
        assert!(matches!(e, AdvertError::Full { .. }), "{e}");
        // a known origin still refreshes
        assert_eq!(db.offer(advert("k0", 2, &[]), t0), Ok(Offered::Installed));
    }
}
