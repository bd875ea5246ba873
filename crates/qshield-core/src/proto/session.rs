//! A session: one pair of directional AEAD keys with its indices, counters, replay window
//! and usage, and the budget rules that say when it must be replaced (soft) or refused
//! (hard). Sealing and opening happen in place in the caller's buffer.

use super::handshake::SessionKeys;
use super::replay::ReplayWindow;
use super::time::Instant;
use super::wire::DataHeader;
use crate::constants::{
    AEAD_TAG_BYTES, DATA_HEADER_BYTES, PACKET_CAP_SOFT_DENOMINATOR, PACKET_CAP_SOFT_NUMERATOR,
    PADDING_MULTIPLE_BYTES,
};
use crate::crypto::{CipherSuite, PacketKey};
use std::time::Duration;

/// Soft and hard budgets of every key (from the `[rotation]` config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationBudget {
    /// Plaintext bytes sent before a new handshake starts.
    pub rekey_after_bytes: u64,
    /// Key age at which a new handshake starts.
    pub rekey_after: Duration,
    /// Plaintext bytes after which the key is refused.
    pub reject_after_bytes: u64,
    /// Key age at which the key is refused.
    pub reject_after: Duration,
}

/// Why a key must be replaced soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyReason {
    /// It reached the soft time budget.
    Time,
    /// It reached the soft byte budget.
    Bytes,
    /// It reached the soft point of the cipher's packet cap.
    Packets,
}

/// Why a key may no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryReason {
    /// Hard time budget.
    Time,
    /// Hard byte budget.
    Bytes,
    /// The cipher's packet cap (AEAD usage limit).
    Packets,
    /// Too many failed decryptions (AEAD integrity limit).
    Forgeries,
}

/// How far a key is into its budget for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Within every soft budget.
    Fresh,
    /// Past a soft budget: keep using it, start a new handshake.
    RekeyDue(RekeyReason),
    /// Past a hard budget: do not use it.
    Exhausted(ExpiryReason),
}

/// Why an incoming data packet was dropped after its session was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The tag did not verify.
    BadTag,
    /// The counter was seen before or is older than the window.
    Replay,
    /// The key is past a hard budget.
    Expired,
}

/// One session's keys and usage.
pub struct Session {
    /// Sequence number of this session for the peer (1 = first).
    pub epoch: u64,
    /// Our index (the peer addresses data to it).
    pub local_index: u32,
    /// The peer's index (we address data to it).
    pub remote_index: u32,
    /// True when we initiated the handshake that made it.
    pub is_initiator: bool,
    /// The ID of the QKD key mixed into it, if one was.
    pub qkd_key_id: Option<String>,
    /// When it was established.
    pub created_at: Instant,
    send_key: PacketKey,
    receive_key: PacketKey,
    next_counter: u64,
    replay: ReplayWindow,
    /// Usage counters.
    pub usage: Usage,
    /// How much earlier than `rekey_after` an initiator rekeys by time.
    rekey_early: Duration,
}

/// Traffic counted under one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Inner bytes sealed.
    pub bytes_sent: u64,
    /// Packets sealed.
    pub packets_sent: u64,
    /// Inner bytes opened.
    pub bytes_received: u64,
    /// Packets opened.
    pub packets_received: u64,
    /// Packets that failed authentication under this key.
    pub forgeries: u64,
}

impl Session {
    /// A session from fresh handshake keys.
    pub fn new(keys: &SessionKeys, suite: CipherSuite, epoch: u64, now: Instant) -> Self {
        Self {
            epoch,
            local_index: keys.local_index,
            remote_index: keys.remote_index,
            is_initiator: keys.is_initiator,
            qkd_key_id: keys.qkd_key_id.clone(),
            created_at: now,
            send_key: PacketKey::new(suite, &keys.send),
            receive_key: PacketKey::new(suite, &keys.receive),
            next_counter: 0,
            replay: ReplayWindow::default(),
            usage: Usage::default(),
            rekey_early: Duration::ZERO,
        }
    }

    /// Makes an initiator's session rekey by time `early` before `rekey_after` (see
    /// [`REKEY_SPREAD_DIVISOR`](crate::constants::REKEY_SPREAD_DIVISOR)).
    pub fn set_rekey_early(&mut self, early: Duration) {
        self.rekey_early = early;
    }

    /// The data cipher.
    pub fn suite(&self) -> CipherSuite {
        self.send_key.suite()
    }

    /// Seals the inner packet at `slot[DATA_HEADER_BYTES..DATA_HEADER_BYTES + len]` in place:
    /// pads it, writes header and tag. Returns the datagram length. `len == 0` is a keepalive.
    pub fn seal(&mut self, slot: &mut [u8], len: usize) -> usize {
        let padded = padded_len(len, slot.len() - DATA_HEADER_BYTES - AEAD_TAG_BYTES);
        slot[DATA_HEADER_BYTES + len..DATA_HEADER_BYTES + padded].fill(0);
        let counter = self.next_counter;
        self.next_counter += 1;
        DataHeader {
            receiver_index: self.remote_index,
            counter,
        }
        .write(slot);
        let (header, body) = slot.split_at_mut(DATA_HEADER_BYTES);
        let tag = self.send_key.seal(counter, header, &mut body[..padded]);
        body[padded..padded + AEAD_TAG_BYTES].copy_from_slice(&tag);
        self.usage.bytes_sent += len as u64;
        self.usage.packets_sent += 1;
        DATA_HEADER_BYTES + padded + AEAD_TAG_BYTES
    }

    /// Opens a data datagram in place. On success the padded inner packet is at
    /// `datagram[DATA_HEADER_BYTES..DATA_HEADER_BYTES + n]` and `n` is returned.
    pub fn open(
        &mut self,
        header: &DataHeader,
        datagram: &mut [u8],
        now: Instant,
        budget: &RotationBudget,
    ) -> Result<usize, OpenError> {
        if self.receive_expired(now, budget) {
            return Err(OpenError::Expired);
        }
        if !self.replay.would_accept(header.counter) {
            return Err(OpenError::Replay);
        }
        let (head, body) = datagram.split_at_mut(DATA_HEADER_BYTES);
        let Ok(n) = self.receive_key.open(header.counter, head, body) else {
            self.usage.forgeries += 1;
            return Err(OpenError::BadTag);
        };
        if !self.replay.accept(header.counter) {
            return Err(OpenError::Replay);
        }
        self.usage.packets_received += 1;
        Ok(n)
    }

    /// Counts `inner` bytes received (the caller learns the unpadded length from the IP header).
    pub fn count_received_bytes(&mut self, inner: usize) {
        self.usage.bytes_received += inner as u64;
    }

    /// Age of the key at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now - self.created_at
    }

    /// Where this key stands for sending at `now`.
    pub fn send_use(&self, now: Instant, budget: &RotationBudget) -> KeyUse {
        if let Some(reason) = self.hard_limit(now, budget, self.usage.bytes_sent, self.next_counter)
        {
            return KeyUse::Exhausted(reason);
        }
        let cap = self.suite().max_packets_per_key();
        if self.next_counter >= cap / PACKET_CAP_SOFT_DENOMINATOR * PACKET_CAP_SOFT_NUMERATOR {
            return KeyUse::RekeyDue(RekeyReason::Packets);
        }
        if self.usage.bytes_sent >= budget.rekey_after_bytes {
            return KeyUse::RekeyDue(RekeyReason::Bytes);
        }
        if self.age(now) >= self.rekey_after(budget) {
            return KeyUse::RekeyDue(RekeyReason::Time);
        }
        KeyUse::Fresh
    }

    /// The soft time budget: the initiator's, less its random spread; the responder of a
    /// session waits half the soft-to-hard margin longer, so the initiator normally rekeys
    /// first and both rarely initiate at once.
    pub fn rekey_after(&self, budget: &RotationBudget) -> Duration {
        if self.is_initiator {
            budget.rekey_after.saturating_sub(self.rekey_early)
        } else {
            budget.rekey_after + (budget.reject_after.saturating_sub(budget.rekey_after)) / 2
        }
    }

    /// True when the key may no longer open packets.
    pub fn receive_expired(&self, now: Instant, budget: &RotationBudget) -> bool {
        self.hard_limit(
            now,
            budget,
            self.usage.bytes_received,
            self.usage.packets_received,
        )
        .is_some()
    }

    fn hard_limit(
        &self,
        now: Instant,
        budget: &RotationBudget,
        bytes: u64,
        packets: u64,
    ) -> Option<ExpiryReason> {
        if self.age(now) >= budget.reject_after {
            Some(ExpiryReason::Time)
        } else if bytes >= budget.reject_after_bytes {
            Some(ExpiryReason::Bytes)
        } else if packets >= self.suite().max_packets_per_key() {
            Some(ExpiryReason::Packets)
        } else if self.usage.forgeries >= self.suite().max_forgeries_per_key() {
            Some(ExpiryReason::Forgeries)
        } else {
            None
        }
    }

    /// Packets that may still be sealed before the cap (for status).
    pub fn packets_left(&self) -> u64 {
        self.suite()
            .max_packets_per_key()
            .saturating_sub(self.next_counter)
    }

    /// Moves the send counter forward to `counter`, never back (no counter value is used
    /// twice): tests bring a key near its packet cap without sealing every packet.
    #[doc(hidden)]
    pub fn skip_send_counter_to(&mut self, counter: u64) {
        self.next_counter = self.next_counter.max(counter);
    }

    /// Sets the next send counter (tests of budget edges).
    #[cfg(test)]
    pub(crate) fn set_next_counter(&mut self, c: u64) {
        self.next_counter = c;
    }
}

/// Inner length rounded up to the padding multiple, but never beyond `room`.
fn padded_len(len: usize, room: usize) -> usize {
    len.next_multiple_of(PADDING_MULTIPLE_BYTES)
        .min(room.max(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Secret;

    fn pair(suite: CipherSuite) -> (Session, Session) {
        let k1 = Secret::new([1u8; 32]);
        let k2 = Secret::new([2u8; 32]);
        let a = SessionKeys {
            send: k1.clone(),
            receive: k2.clone(),
            local_index: 1,
            remote_index: 2,
            is_initiator: true,
            qkd_key_id: None,
        };
        let b = SessionKeys {
            send: k2,
            receive: k1,
            local_index: 2,
            remote_index: 1,
            is_initiator: false,
            qkd_key_id: None,
        };
        (
            Session::new(&a, suite, 1, Instant::ZERO),
            Session::new(&b, suite, 1, Instant::ZERO),
        )
    }

    fn budget() -> RotationBudget {
        RotationBudget {
            rekey_after_bytes: 1000,
            rekey_after: Duration::from_secs(10),
            reject_after_bytes: 2000,
            reject_after: Duration::from_secs(20),
        }
    }

    #[test]
    fn seal_then_open_in_place_with_padding() {
        for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
            let (mut a, mut b) = pair(suite);
            let mut slot = vec![0u8; 16 + 100 + 16 + 16];
            slot[16..16 + 5].copy_from_slice(b"hello");
            let n = a.seal(&mut slot, 5);
            assert_eq!(n, 16 + 16 + 16);
            let hdr = DataHeader::parse(&slot[..n]).unwrap();
            assert_eq!(hdr.receiver_index, 2);
            let pt = b
                .open(&hdr, &mut slot[..n], Instant::ZERO, &budget())
                .unwrap();
            assert_eq!(&slot[16..21], b"hello");
            assert_eq!(pt, 16);
        }
    }

    #[test]
    fn replay_and_tamper_are_refused() {
        let (mut a, mut b) = pair(CipherSuite::Aes256Gcm);
        let mut slot = vec![0u8; 64];
        let n = a.seal(&mut slot, 0);
        let sealed = slot[..n].to_vec();
        let hdr = DataHeader::parse(&sealed).unwrap();
        let mut copy = sealed.clone();
        assert!(b.open(&hdr, &mut copy, Instant::ZERO, &budget()).is_ok());
        let mut copy = sealed.clone();
        assert_eq!(
            b.open(&hdr, &mut copy, Instant::ZERO, &budget()),
            Err(OpenError::Replay)
        );
        let mut slot = vec![0u8; 64];
        let n = a.seal(&mut slot, 0);
        slot[n - 1] ^= 0x80;
        let hdr = DataHeader::parse(&slot[..n]).unwrap();
        assert_eq!(
            b.open(&hdr, &mut slot[..n], Instant::ZERO, &budget()),
            Err(OpenError::BadTag)
        );
        assert_eq!(b.usage.forgeries, 1);
    }

    #[test]
    fn budgets_at_their_edges() {
        let (mut a, b) = pair(CipherSuite::Aes256Gcm);
        let t = |s| Instant::ZERO + Duration::from_secs(s);
        assert_eq!(a.send_use(t(9), &budget()), KeyUse::Fresh);
        assert_eq!(
            a.send_use(t(10), &budget()),
            KeyUse::RekeyDue(RekeyReason::Time)
        );
        assert_eq!(
            a.send_use(t(20), &budget()),
            KeyUse::Exhausted(ExpiryReason::Time)
        );
        // the responder's soft time is halfway between soft and hard
        assert_eq!(b.send_use(t(14), &budget()), KeyUse::Fresh);
        assert_eq!(
            b.send_use(t(15), &budget()),
            KeyUse::RekeyDue(RekeyReason::Time)
        );
        a.usage.bytes_sent = 999;
        assert_eq!(a.send_use(t(0), &budget()), KeyUse::Fresh);
        a.usage.bytes_sent = 1000;
        assert_eq!(
            a.send_use(t(0), &budget()),
            KeyUse::RekeyDue(RekeyReason::Bytes)
        );
        a.usage.bytes_sent = 2000;
        assert_eq!(
            a.send_use(t(0), &budget()),
            KeyUse::Exhausted(ExpiryReason::Bytes)
        );
        a.usage.bytes_sent = 0;
        let cap = CipherSuite::Aes256Gcm.max_packets_per_key();
        a.set_next_counter(cap / 8 * 7 - 1);
        assert_eq!(a.send_use(t(0), &budget()), KeyUse::Fresh);
        a.set_next_counter(cap / 8 * 7);
        assert_eq!(
            a.send_use(t(0), &budget()),
            KeyUse::RekeyDue(RekeyReason::Packets)
        );
        a.set_next_counter(cap);
        assert_eq!(
            a.send_use(t(0), &budget()),
            KeyUse::Exhausted(ExpiryReason::Packets)
        );
    }
}
