//! The anti-replay window (RFC 6479 ring of 64-bit words, as WireGuard's): a counter is
//! accepted once, and only if it is no more than [`REPLAY_WINDOW_PACKETS`] below the highest
//! counter accepted. Updated only after a packet authenticates.

use crate::constants::{REPLAY_WINDOW_BITS, REPLAY_WINDOW_PACKETS};

const WORDS: usize = (REPLAY_WINDOW_BITS / 64) as usize;

/// Sliding window over received packet counters.
#[derive(Clone)]
pub struct ReplayWindow {
    bitmap: [u64; WORDS],
    /// Highest counter accepted plus one (0 = nothing accepted yet).
    next: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            bitmap: [0; WORDS],
            next: 0,
        }
    }
}

impl ReplayWindow {
    /// True when `counter` could be accepted (not too old, not yet seen). No state change:
    /// used to skip decrypting obvious replays.
    pub fn would_accept(&self, counter: u64) -> bool {
        if counter.saturating_add(REPLAY_WINDOW_PACKETS) < self.next {
            return false;
        }
        if counter >= self.next {
            return true;
        }
        let (word, bit) = Self::position(counter);
        self.bitmap[word] & (1 << bit) == 0
    }

    /// Accepts `counter` if it is new and inside the window; marks it seen.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.would_accept(counter) {
            return false;
        }
        if counter >= self.next {
            self.advance_to(counter);
        }
        let (word, bit) = Self::position(counter);
        self.bitmap[word] |= 1 << bit;
        true
    }

    /// Clears the words that the window slides over when `counter` becomes the highest.
    fn advance_to(&mut self, counter: u64) {
        let current_word = if self.next == 0 {
            None
        } else {
            Some((self.next - 1) / 64)
        };
        let new_word = counter / 64;
        match current_word {
            Some(cw) if new_word - cw < WORDS as u64 => {
                for w in cw + 1..=new_word {
                    self.bitmap[(w % WORDS as u64) as usize] = 0;
                }
            }
            _ => self.bitmap = [0; WORDS],
        }
        self.next = counter + 1;
    }

    fn position(counter: u64) -> (usize, u32) {
        (
            ((counter / 64) % WORDS as u64) as usize,
            (counter % 64) as u32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::default();
        for c in [5u64, 1, 0, 3, 2, 4] {
            assert!(w.accept(c), "first sight of {c}");
        }
        for c in 0..6 {
            assert!(!w.accept(c), "replay of {c}");
        }
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(10_000));
        let oldest_ok = 10_000 + 1 - REPLAY_WINDOW_PACKETS;
        assert!(!w.would_accept(oldest_ok - 1), "just outside the window");
        assert!(w.accept(oldest_ok), "oldest inside the window");
        assert!(w.accept(10_001));
        assert!(w.accept(u64::MAX - 1));
        assert!(!w.accept(10_002), "far behind after a jump");
    }

    #[test]
    fn at_least_2048_packets_of_reordering() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(4096));
        assert!(w.accept(4096 - 2048));
    }

    proptest! {
        #[test]
        fn matches_a_set_model(counters in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            let mut highest: Option<u64> = None;
            for c in counters {
                let too_old = highest.is_some_and(|h| c + REPLAY_WINDOW_PACKETS < h + 1);
                let expect = !too_old && !seen.contains(&c);
                prop_assert_eq!(w.accept(c), expect, "counter {}", c);
                if expect {
                    seen.insert(c);
                    highest = Some(highest.map_or(c, |h| h.max(c)));
                }
            }
        }
    }
}
