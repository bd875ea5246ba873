//! Pad a neighbour spent in relays that never reached this KME. A relay's sender takes its
//! pad first (committed), then sends; when the hop fails on the way (refused further on, this
//! KME down, a crash) the sender's pad is spent and this KME's copy is not. Left alone, the
//! two ends of the direction disagree for good: the copy is a leak in this store, and when
//! this KME leads the link, it counts the follower's direction as fuller than it is, so that
//! direction is refilled less, and after enough such losses never again.
//!
//! A sender spends its direction in order, so a relay that names pad up to a position shows
//! every byte before it spent by the sender. [`PassedPads`] notes those positions as relays
//! arrive; [`sweep`] discards this KME's unspent copy before a position once
//! [`ORPHAN_PAD_GRACE`] has passed since it was noted, time enough for a relay still on its
//! way to arrive (its sender gives it up after [`NEIGHBOUR_CALL_TIMEOUT`]). A relay that
//! arrives later still finds its pad gone and is refused: its sender has given up on it.
//! Relays show a sender's position only while relays go, so each KME also reports how far
//! it has spent the direction it sends ([`report_spent`]), noted the same way.
//! Imports the config's link role, the store's positions, the pools, and the neighbour
//! client and route table (for the report).

use super::config::LinkRole;
use super::neighbours::Neighbours;
use super::pools::{Direction, Pools};
use super::routes;
use super::store::{PadPosition, PadRange};
use super::tls::NEIGHBOUR_CALL_TIMEOUT;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after a relay showed pad spent by its sender this KME's copy of it is discarded.
pub const ORPHAN_PAD_GRACE: Duration =
    NEIGHBOUR_CALL_TIMEOUT.saturating_add(Duration::from_secs(5));
/// Positions noted within this of each other are kept as one (the later), so a link keeps at
/// most [`ORPHAN_PAD_GRACE`] / this many.
const NOTE_COALESCE: Duration = Duration::from_secs(1);
/// How often [`report_spent`] tells each neighbour how far this KME has spent.
pub const SPENT_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How often [`sweep`] runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Per neighbour: positions its relays showed spent, oldest first, with when each was seen.
#[derive(Default)]
pub struct PassedPads {
    by_peer: Mutex<HashMap<String, VecDeque<(Instant, PadPosition)>>>,
}

impl PassedPads {
    /// A relay from `peer` named `ranges` of `dir` (the direction `peer` sends): the sender has
    /// spent everything up to their end. Ranges of the other direction are ignored.
    pub fn note(&self, peer: &str, dir: Direction, ranges: &[PadRange], now: Instant) {
        let Some(end) = ranges
            .iter()
            .filter(|r| Direction::of_seq(r.seq) == dir)
            .map(PadRange::end)
            .max()
        else {
            return;
        };
        self.note_position(peer, end, now);
    }

    /// `peer` showed every byte of the direction it sends before `upto` spent (a relay's
    /// end, or its own report of how far it has spent, [`report_spent`]).
    pub fn note_position(&self, peer: &str, end: PadPosition, now: Instant) {
        let mut by_peer = self.by_peer.lock().expect("passed pads lock");
        let noted = by_peer.entry(peer.to_string()).or_default();
        match noted.back_mut() {
            Some((at, pos)) if now.saturating_duration_since(*at) < NOTE_COALESCE => {
                *pos = (*pos).max(end);
            }
            _ => noted.push_back((now, end)),
        }
    }

    /// Per neighbour, the furthest position noted at least [`ORPHAN_PAD_GRACE`] before `now`
    /// (forgotten here: the caller discards up to it).
    pub fn due(&self, now: Instant) -> Vec<(String, PadPosition)> {
        let mut by_peer = self.by_peer.lock().expect("passed pads lock");
        let mut out = Vec::new();
        for (peer, noted) in by_peer.iter_mut() {
            let mut furthest = None;
            while let Some(&(at, pos)) = noted.front() {
                if now.saturating_duration_since(at) < ORPHAN_PAD_GRACE {
                    break;
                }
                noted.pop_front();
                furthest = furthest.max(Some(pos));
            }
            out.extend(furthest.map(|pos| (peer.clone(), pos)));
        }
        out
    }
}

/// Background task: discards, for every link, this KME's copy of pad its neighbour spent in
/// relays that never arrived (see the module doc), logging what it discards.
pub async fn sweep(passed: &PassedPads, pools: &Pools, roles: &[(String, LinkRole)]) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        for (peer, upto) in passed.due(Instant::now()) {
            let Some((_, role)) = roles.iter().find(|(p, _)| *p == peer) else {
                continue;
            };
            let dir = Direction::sent_by(*role).opposite();
            match pools.link(&peer).discard_passed(dir, upto).await {
                Ok(0) => {}
                Ok(bytes) => tracing::info!(
                    %peer,
                    bits = 8 * bytes,
                    "discarded pad the neighbour spent in relays that never arrived"
                ),
                Err(e) => tracing::warn!(%peer, "discarding pad spent by the neighbour: {e}"),
            }
        }
    }
}

/// Background task: every [`SPENT_REPORT_INTERVAL`], tells each link neighbour how far
/// this KME has spent the direction it sends (`POST /kme/v1/link/spent`), when that moved
/// or was not yet told. Relays show it too, but only while relays go: a direction this KME
/// spent whole in relays that never arrived (its neighbour down meanwhile) leaves no relay
/// to show it, and the neighbour, when it leads the link, would count the direction full
/// and never refill it.
pub async fn report_spent(pools: &Pools, neighbours: &Neighbours, roles: &[(String, LinkRole)]) {
    let mut told: HashMap<String, PadPosition> = HashMap::new();
    let mut tick = tokio::time::interval(SPENT_REPORT_INTERVAL);
    loop {
        tick.tick().await;
        for (peer, role) in roles {
            let dir = Direction::sent_by(*role);
            let Ok(upto) = pools.link(peer).spent_upto(dir).await else {
                continue;
            };
            if told.get(peer) == Some(&upto) {
                continue;
            }
            let sent = neighbours
                .to(peer)
                .post(routes::LINK_SPENT)
                .json(&upto)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    told.insert(peer.clone(), upto);
                }
                Ok(r) => tracing::debug!(%peer, status = %r.status(), "spent position refused"),
                Err(e) => tracing::debug!(%peer, "spent position not delivered: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(seq: u64, offset: u32, len: u32) -> PadRange {
        PadRange { seq, offset, len }
    }

    #[test]
    fn the_furthest_end_is_due_after_the_grace_and_only_once() {
        let passed = PassedPads::default();
        let t0 = Instant::now();
        let dir = Direction::LeaderSends;
        passed.note("b", dir, &[range(2, 0, 10), range(4, 0, 6)], t0);
        // within the coalescing time: one entry, the furthest end
        passed.note("b", dir, &[range(2, 10, 4)], t0 + Duration::from_millis(10));
        // the other direction's ranges are not this neighbour's to show
        passed.note(
            "b",
            dir,
            &[range(9, 0, 100)],
            t0 + Duration::from_millis(20),
        );
        let later = t0 + NOTE_COALESCE + Duration::from_millis(1);
        passed.note("b", dir, &[range(6, 0, 32)], later);
        assert!(
            passed
                .due(t0 + ORPHAN_PAD_GRACE - Duration::from_millis(1))
                .is_empty()
        );
        let first = PadPosition { seq: 4, offset: 6 };
        assert_eq!(
            passed.due(t0 + ORPHAN_PAD_GRACE),
            vec![("b".to_string(), first)]
        );
        assert!(passed.due(t0 + ORPHAN_PAD_GRACE).is_empty(), "once");
        let second = PadPosition { seq: 6, offset: 32 };
        assert_eq!(
            passed.due(later + ORPHAN_PAD_GRACE),
            vec![("b".to_string(), second)]
        );
    }
}
