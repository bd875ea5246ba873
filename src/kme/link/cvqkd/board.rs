//! Per-link figures of the CV-QKD links (what `GET /kme/v1/status` shows under `cvqkd`)
//! and the link alarm. A block whose parameter estimation finds no key (the estimated
//! excess noise or loss leaves no secret bits) gives no key: that is the protocol's own
//! security. When [`ALARM_AFTER_ABORTS`] blocks in a row do so — an eavesdropper or a
//! broken fiber rather than one unlucky estimate — the link is put under alarm, and while
//! it stands the KME relays nothing over that link (503). Keys distilled before the alarm
//! stay in the pool; a block whose estimation passes clears it. A link whose pulses stop
//! arriving is starved: [`ALARM_AFTER_ABORTS`] blocks in a row without pulses (the follower
//! waited for them in vain, or the leader could not send them) raise the alarm too, and it
//! stands until a block's estimation passes again.

use crate::cvqkd::sim::{AbortReason, SideOutcome};
use crate::kme::config::CvqkdLinkConfig;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// Consecutive blocks whose estimation finds no key before the link is put under alarm.
pub const ALARM_AFTER_ABORTS: u64 = super::CVQKD_ALARM_AFTER_ABORTS;

/// One link's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CvqkdFigures {
    /// Configured fiber length, km.
    pub distance_km: f64,
    /// Optical symbol rate, pulses/s.
    pub symbol_rate_hz: f64,
    /// Pulses per block.
    pub block_size: u64,
    /// Modulation variance in use, SNU.
    pub modulation_variance_snu: f64,
    /// Blocks run (this KME's side).
    pub blocks: u64,
    /// Blocks that gave no key, for any reason.
    pub blocks_aborted: u64,
    /// Blocks stopped after estimation because the pools were full.
    pub blocks_estimate_only: u64,
    /// Estimated transmittance T̂ of the last block.
    pub transmittance_estimate: Option<f64>,
    /// Estimated excess noise ξ̂ of the last block, SNU.
    pub excess_noise_estimate_snu: Option<f64>,
    /// Worst-case T_min of the last block.
    pub transmittance_min: Option<f64>,
    /// Worst-case ξ_max of the last block, SNU.
    pub excess_noise_max_snu: Option<f64>,
    /// Estimated SNR of the last block.
    pub snr: Option<f64>,
    /// β of the code of the last reconciled block.
    pub beta: Option<f64>,
    /// Frame error rate over every reconciled frame.
    pub fer: Option<f64>,
    /// Frames reconciled.
    pub frames: u64,
    /// Frames that failed decoding or verification.
    pub frames_failed: u64,
    /// Secret key bits of the last block.
    pub last_block_key_bits: u64,
    /// Secret key bits stored since start.
    pub key_bits: u64,
    /// Secret key bits per second since start (stored, wall clock).
    pub secret_key_rate_bits_per_second: f64,
    /// Why the last aborted block gave no key.
    pub last_abort: Option<String>,
    /// Blocks in a row whose estimation found no key.
    pub consecutive_estimation_aborts: u64,
    /// Blocks that got no pulses (none arrived in time, or they could not be sent).
    pub blocks_without_pulses: u64,
    /// Blocks in a row that got no pulses.
    pub consecutive_blocks_without_pulses: u64,
    /// Follower: pulse blocks received on the quantum port and kept for their block.
    pub quantum_blocks_received: u64,
    /// Follower: connections to the quantum port refused (not from the leader's address, or
    /// while another was being received).
    pub quantum_connections_refused: u64,
    /// Follower: pulse frames refused (malformed, too slow, a second frame for a block, or
    /// no room left for blocks waiting to be announced).
    pub quantum_frames_refused: u64,
    /// Set while the link is under alarm: the reason. Nothing is relayed over it.
    pub alarm: Option<String>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl CvqkdFigures {
    /// A link's figures before its first block.
    pub fn configured(cfg: &CvqkdLinkConfig, modulation_variance_snu: f64) -> Self {
        CvqkdFigures {
            distance_km: cfg.distance_km,
            symbol_rate_hz: cfg.symbol_rate_hz,
            block_size: cfg.block_size,
            modulation_variance_snu,
            ..CvqkdFigures::default()
        }
    }
}

/// The figures of every CV-QKD link of this KME.
#[derive(Debug, Default)]
pub struct Board {
    links: Mutex<BTreeMap<String, CvqkdFigures>>,
}

/// What happened on a follower's quantum port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantumPortEvent {
    /// A block's pulses were received and kept.
    BlockReceived,
    /// A connection was refused.
    ConnectionRefused,
    /// A frame was refused.
    FrameRefused,
}

/// Whether an abort says the channel itself leaves no key (alarm), rather than frames lost.
pub fn is_alarm(reason: AbortReason) -> bool {
    !matches!(reason, AbortReason::NoKeyAfterReconciliation)
}

impl Board {
    /// Registers a link with its configuration figures.
    pub fn register(&self, peer: &str, figures: CvqkdFigures) {
        let mut f = figures;
        f.started = Some(Instant::now());
        self.lock().insert(peer.to_string(), f);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CvqkdFigures>> {
        self.links.lock().expect("cvqkd board lock")
    }

    /// The figures of the link to `peer`, if it is a CV-QKD link.
    pub fn figures(&self, peer: &str) -> Option<CvqkdFigures> {
        self.lock().get(peer).cloned()
    }

    /// The alarm of the link to `peer`, if raised.
    pub fn alarm(&self, peer: &str) -> Option<String> {
        self.lock().get(peer).and_then(|f| f.alarm.clone())
    }

    /// Counts an event of the quantum port of the link to `peer`.
    pub fn quantum_port(&self, peer: &str, event: QuantumPortEvent) {
        let mut links = self.lock();
        let Some(f) = links.get_mut(peer) else {
            return;
        };
        match event {
            QuantumPortEvent::BlockReceived => f.quantum_blocks_received += 1,
            QuantumPortEvent::ConnectionRefused => f.quantum_connections_refused += 1,
            QuantumPortEvent::FrameRefused => f.quantum_frames_refused += 1,
        }
    }

    /// Records block `block_id` of this side as run without pulses (`why`); raises the
    /// alarm after [`ALARM_AFTER_ABORTS`] such blocks in a row. Logs alarm transitions.
    pub fn record_starved(&self, peer: &str, block_id: u64, why: &str) {
        let mut links = self.lock();
        let Some(f) = links.get_mut(peer) else {
            return;
        };
        f.blocks += 1;
        f.blocks_aborted += 1;
        f.blocks_without_pulses += 1;
        f.consecutive_blocks_without_pulses += 1;
        f.last_block_key_bits = 0;
        f.last_abort = Some(format!("no pulses: {why}"));
        if f.consecutive_blocks_without_pulses < ALARM_AFTER_ABORTS {
            return;
        }
        let text = format!(
            "{} blocks in a row without pulses, the last {block_id}: {why} (quantum channel cut or jammed)",
            f.consecutive_blocks_without_pulses
        );
        if f.alarm.is_none() {
            tracing::warn!(
                peer,
                "cvqkd link ALARM: {text}; relaying over this link stops"
            );
        }
        f.alarm = Some(text);
    }

    /// Records one finished block of this side (`estimate_only` when the pools were full);
    /// `stored_bits` entered the pool. Logs alarm transitions.
    pub fn record(&self, peer: &str, o: &SideOutcome, estimate_only: bool, stored_bits: u64) {
        let mut links = self.lock();
        let Some(f) = links.get_mut(peer) else {
            return;
        };
        f.blocks += 1;
        f.consecutive_blocks_without_pulses = 0;
        let r = &o.pe.rate;
        f.transmittance_estimate = Some(r.transmittance_estimate);
        f.excess_noise_estimate_snu = Some(r.excess_noise_estimate_snu);
        f.transmittance_min = Some(r.transmittance_min);
        f.excess_noise_max_snu = Some(r.excess_noise_max_snu);
        f.snr = Some(o.pe.snr);
        if o.frames > 0 {
            f.beta = Some(o.pe.beta);
            f.frames += o.frames as u64;
            f.frames_failed += (o.frames - o.frames_ok) as u64;
            f.fer = Some(f.frames_failed as f64 / f.frames as f64);
        }
        if estimate_only && o.pe.abort.is_none() {
            f.blocks_estimate_only += 1;
        } else if let Some(a) = o.abort {
            f.blocks_aborted += 1;
            f.last_abort = Some(a.to_string());
        }
        f.last_block_key_bits = stored_bits;
        f.key_bits += stored_bits;
        let secs = f.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        f.secret_key_rate_bits_per_second = f.key_bits as f64 / secs.max(1e-3);
        update_alarm(peer, f, o);
    }
}

fn update_alarm(peer: &str, f: &mut CvqkdFigures, o: &SideOutcome) {
    let reason = o.pe.abort.filter(|a| is_alarm(*a));
    f.consecutive_estimation_aborts = match reason {
        Some(_) => f.consecutive_estimation_aborts + 1,
        None => 0,
    };
    match reason {
        Some(_) if f.consecutive_estimation_aborts < ALARM_AFTER_ABORTS => {}
        Some(reason) => {
            let text = format!(
                "{} blocks in a row, the last {}: {reason} (T̂ {:.4}, ξ̂ {:.4} SNU, ξ_max {:.4} SNU)",
                f.consecutive_estimation_aborts,
                o.block_id,
                o.pe.rate.transmittance_estimate,
                o.pe.rate.excess_noise_estimate_snu,
                o.pe.rate.excess_noise_max_snu
            );
            if f.alarm.is_none() {
                tracing::warn!(
                    peer,
                    "cvqkd link ALARM: {text}; relaying over this link stops"
                );
            }
            f.alarm = Some(text);
        }
        None => {
            if f.alarm.take().is_some() {
                tracing::info!(
                    peer,
                    block = o.block_id,
                    "cvqkd link alarm cleared: estimation passes again"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cvqkd::FiniteSizeParams;
    use crate::cvqkd::LinkParams;
    use crate::cvqkd::finite_size::expected_statistics;
    use crate::cvqkd::sim::codes::CodeFamily;
    use crate::cvqkd::sim::estimation::evaluate;

    /// A block's outcome on a 1 km link at the V_A `choose_modulation` picks, estimating
    /// the expected statistics with `extra_noise` SNU more noise variance.
    fn outcome(id: u64, extra_noise: f64) -> SideOutcome {
        let fs = FiniteSizeParams::new(1 << 18, 1 << 17, 1e-6);
        let codes = CodeFamily::new(4096);
        let mut link = LinkParams::reference(0.955);
        let choice = crate::cvqkd::sim::adapt::choose_modulation(&link, &fs, &codes).unwrap();
        link.modulation_variance_snu = choice.modulation_variance_snu;
        let mut stats = expected_statistics(&link, fs.pe_samples);
        stats.noise_variance_snu += extra_noise;
        SideOutcome::aborted(id, evaluate(&link, &fs, stats, &codes))
    }

    #[test]
    fn alarm_needs_two_estimation_aborts_in_a_row_and_clears_on_a_clean_block() {
        let board = Board::default();
        board.register("kme-b", CvqkdFigures::default());
        let (clean, noisy) = (outcome(1, 0.0), outcome(2, 1.2));
        assert!(clean.pe.abort.is_none(), "{:?}", clean.pe);
        assert!(noisy.pe.abort.is_some_and(is_alarm), "{:?}", noisy.pe);
        board.record("kme-b", &noisy, false, 0);
        assert_eq!(board.alarm("kme-b"), None, "one abort is not an alarm");
        board.record("kme-b", &clean, true, 0);
        board.record("kme-b", &noisy, false, 0);
        assert_eq!(board.alarm("kme-b"), None, "not in a row");
        board.record("kme-b", &noisy, false, 0);
        let alarm = board.alarm("kme-b").expect("two in a row");
        assert!(alarm.starts_with("2 blocks in a row"), "{alarm}");
        board.record("kme-b", &clean, true, 0);
        assert_eq!(board.alarm("kme-b"), None, "a clean estimate clears it");
        let f = board.figures("kme-b").unwrap();
        assert_eq!(
            (f.blocks, f.blocks_aborted, f.blocks_estimate_only),
            (5, 3, 2)
        );
    }

    #[test]
    fn a_starved_link_raises_the_alarm_until_estimation_passes() {
        let board = Board::default();
        board.register("kme-b", CvqkdFigures::default());
        board.record_starved("kme-b", 1, "none arrived");
        assert_eq!(board.alarm("kme-b"), None, "one block is not an alarm");
        board.record("kme-b", &outcome(2, 0.0), false, 0);
        board.record_starved("kme-b", 3, "none arrived");
        assert_eq!(board.alarm("kme-b"), None, "not in a row");
        board.record_starved("kme-b", 4, "none arrived");
        let alarm = board.alarm("kme-b").expect("two in a row");
        assert!(
            alarm.contains("2 blocks in a row without pulses"),
            "{alarm}"
        );
        let f = board.figures("kme-b").unwrap();
        assert_eq!(
            (f.blocks_without_pulses, f.consecutive_blocks_without_pulses),
            (3, 2)
        );
        board.record("kme-b", &outcome(5, 0.0), false, 0);
        assert_eq!(board.alarm("kme-b"), None, "a clean estimate clears it");
    }
}
