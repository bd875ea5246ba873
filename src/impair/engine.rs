//! [`Engine`]: the sans-IO impairment of one direction. Datagrams go in with
//! [`Engine::push`] at an explicit `now`; the engine decides, from a seeded generator,
//! whether each is lost (random, then burst), copied, held back behind later ones or
//! delayed, and hands the survivors back in sending order through
//! [`Engine::poll_ready`]. [`Engine::next_due`] says when to poll next. The same seed, the
//! same settings and the same arrivals give the same decisions, datagram for datagram.
//!
//! Per datagram, in this order: the burst channel decides (and steps), then the random
//! loss; a survivor may get one copy; the original may be held back (reordering); each
//! copy and each original not held, and each held one when released, is scheduled at its
//! time plus a delay sample. Datagrams due at the same instant leave in arrival order.

use super::model::{Delay, DirectionCounters, Impairment, JitterShape};
use crate::proto::time::Instant;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// The Gilbert-Elliott channel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelState {
    Good,
    Bad,
}

/// A datagram waiting for its time, ordered by (due, then arrival order).
struct Scheduled<T> {
    due: Instant,
    order: u64,
    datagram: T,
}

impl<T> PartialEq for Scheduled<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl<T> Eq for Scheduled<T> {}
impl<T> PartialOrd for Scheduled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Scheduled<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// A datagram held back for reordering.
struct Held<T> {
    /// Released once this many survivors have arrived in total.
    release_after_survivors: u64,
    /// Released at this instant at the latest.
    deadline: Instant,
    datagram: T,
}

/// The impairment of one direction; `T` is the datagram (cloned only to duplicate it).
pub struct Engine<T> {
    settings: Impairment,
    rng: Xoshiro256PlusPlus,
    channel: ChannelState,
    scheduled: BinaryHeap<Reverse<Scheduled<T>>>,
    /// Held datagrams in the order they were held (their release points grow with it).
    held: VecDeque<Held<T>>,
    /// Datagrams that survived the loss stages so far.
    survivors: u64,
    /// Sequence of scheduling, the tie-break between equal due times.
    next_order: u64,
    counters: DirectionCounters,
}

impl<T: Clone> Engine<T> {
    /// An engine applying `settings`, its decisions drawn from `seed`.
    pub fn new(settings: Impairment, seed: u64) -> Self {
        Self {
            settings,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            channel: ChannelState::Good,
            scheduled: BinaryHeap::new(),
            held: VecDeque::new(),
            survivors: 0,
            next_order: 0,
            counters: DirectionCounters::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Impairment {
        &self.settings
    }

    /// What the engine did so far.
    pub fn counters(&self) -> &DirectionCounters {
        &self.counters
    }

    /// Takes `datagram`, arrived at `now`: drops it, or schedules it (and maybe a copy),
    /// or holds it back. Releases held datagrams whose followers have now all arrived.
    pub fn push(&mut self, now: Instant, datagram: T) {
        self.counters.received += 1;
        if self.burst_drops() {
            self.counters.dropped_burst += 1;
            return;
        }
        if self.chance(self.settings.loss.value()) {
            self.counters.dropped_random += 1;
            return;
        }
        self.survivors += 1;
        if self.chance(self.settings.duplicate.value()) {
            self.counters.duplicated += 1;
            self.schedule(now, datagram.clone());
        }
        let reorder = self.settings.reorder;
        match reorder {
            Some(r) if self.chance(r.probability.value()) => {
                self.counters.reordered += 1;
                self.held.push_back(Held {
                    release_after_survivors: self.survivors + u64::from(r.depth.get()),
                    deadline: now + r.max_hold,
                    datagram,
                });
            }
            _ => self.schedule(now, datagram),
        }
        while self
            .held
            .front()
            .is_some_and(|h| h.release_after_survivors <= self.survivors)
        {
            let held = self.held.pop_front().expect("front exists");
            self.schedule(now, held.datagram);
        }
    }

    /// The next datagram due at or before `now`, in sending order; `None` when nothing is
    /// due yet (see [`Engine::next_due`]).
    pub fn poll_ready(&mut self, now: Instant) -> Option<T> {
        while self.held.front().is_some_and(|h| h.deadline <= now) {
            let held = self.held.pop_front().expect("front exists");
            self.schedule(held.deadline, held.datagram);
        }
        if self.scheduled.peek().is_some_and(|s| s.0.due <= now) {
            let Reverse(s) = self.scheduled.pop().expect("peeked");
            self.counters.forwarded += 1;
            return Some(s.datagram);
        }
        None
    }

    /// When [`Engine::poll_ready`] next has something to hand out, if anything is held.
    pub fn next_due(&self) -> Option<Instant> {
        let scheduled = self.scheduled.peek().map(|s| s.0.due);
        let held = self.held.front().map(|h| h.deadline);
        match (scheduled, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Datagrams the engine holds (scheduled or held back).
    pub fn in_flight(&self) -> usize {
        self.scheduled.len() + self.held.len()
    }

    /// Steps the burst channel; true when it loses this datagram.
    fn burst_drops(&mut self) -> bool {
        let Some(ge) = self.settings.burst else {
            return false;
        };
        let lost = self.channel == ChannelState::Bad && self.chance(ge.loss_in_bad.value());
        let (leave, other) = match self.channel {
            ChannelState::Good => (ge.good_to_bad, ChannelState::Bad),
            ChannelState::Bad => (ge.bad_to_good, ChannelState::Good),
        };
        if self.chance(leave.value()) {
            self.channel = other;
        }
        lost
    }

    /// True with probability `p` (draws nothing when `p` is 0).
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }

    /// Puts `datagram` on the schedule at `at` plus a delay sample.
    fn schedule(&mut self, at: Instant, datagram: T) {
        let wait = self.delay_sample(self.settings.delay);
        if !wait.is_zero() {
            self.counters.delayed += 1;
        }
        self.next_order += 1;
        self.scheduled.push(Reverse(Scheduled {
            due: at + wait,
            order: self.next_order,
            datagram,
        }));
    }

    fn delay_sample(&mut self, delay: Delay) -> std::time::Duration {
        if delay.jitter.is_zero() {
            return delay.base;
        }
        let spread = match delay.shape {
            JitterShape::Uniform => self.rng.random_range(-1.0..=1.0),
            JitterShape::Normal => StandardNormal.sample(&mut self.rng),
        };
        let seconds = delay.base.as_secs_f64() + spread * delay.jitter.as_secs_f64();
        std::time::Duration::from_secs_f64(seconds.max(0.0))
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
