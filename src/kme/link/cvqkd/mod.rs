//! KME links fed by the simulated CV-QKD device pair (`source = "cvqkd"`): Alice runs in
//! the leader KME ([`leader`]), Bob and the fiber in the follower ([`follower`]). The
//! pulses cross as real TCP traffic ([`quantum_channel`]); the public GG02
//! messages cross over the KMEs' mutual-TLS channel ([`wire`]). Each block's key enters
//! both ends' link pools under the same sequence numbers, so no key material ever crosses
//! the network. This module owns the glue from `[link.cvqkd]` to the simulator's protocol
//! and the per-link figures and alarm ([`board`]), the pulses' TCP framing
//! ([`quantum_channel`]), Eve's TCP relay on that fiber for `qshield qkd eve` ([`eve`]),
//! and the links' constants (`CVQKD_*`, cited by docs/kme.md).
//!
//! Honesty: a simulated link has no quantum security. Its keys are labelled
//! "cvqkd simulator (NOT QKD-secured)" in status and logs.

pub mod board;
pub mod eve;
pub mod follower;
pub mod leader;
pub mod quantum_channel;
pub mod wire;

use crate::cvqkd::sim::Protocol;
use crate::cvqkd::sim::codes::CodeFamily;
use crate::cvqkd::{FiniteSizeParams, LinkParams, transmittance_from_distance};
use crate::kme::config::{CvqkdLinkConfig, Modulation};
use std::sync::Arc;

pub use CVQKD_DEFAULT_BLOCK_SIZE as DEFAULT_BLOCK_SIZE;
pub use CVQKD_DEFAULT_QUANTUM_PORT as DEFAULT_QUANTUM_PORT;
pub use CVQKD_DEFAULT_SYMBOL_RATE_HZ as DEFAULT_SYMBOL_RATE_HZ;
pub use wire::ProtocolParams;

/// Default pulses per block of a `source = "cvqkd"` link (2^21: keys at metro distances).
pub const CVQKD_DEFAULT_BLOCK_SIZE: u64 = 1 << 21;
/// Default optical symbol rate of a simulated device pair, pulses per second (1 MBd).
pub const CVQKD_DEFAULT_SYMBOL_RATE_HZ: f64 = 1e6;
/// Default TCP port the follower receives the pulses on.
pub const CVQKD_DEFAULT_QUANTUM_PORT: u16 = 8444;
/// How long the follower waits for a block's pulses after the leader announced it.
pub const CVQKD_PULSES_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long one classical exchange between the link's KMEs may take (Alice's decoding of a
/// block runs between two of them, not inside one).
pub const CVQKD_CLASSICAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Pause after a failed accept on a quantum port (e.g. out of file descriptors).
pub const CVQKD_ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// Pause after a failed block (peer unreachable, protocol error) before the next.
pub const CVQKD_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
/// Consecutive blocks whose parameter estimation finds no key before a link is put under
/// alarm (one such block gives no key by itself; two in a row is not an unlucky estimate).
pub const CVQKD_ALARM_AFTER_ABORTS: u64 = 2;
/// Largest block accepted on the quantum channel, pulses (bounds the receive buffer).
pub const CVQKD_MAX_BLOCK_SIZE: u64 = 1 << 26;

/// What status and logs call this source.
pub const LABEL: &str = "cvqkd simulator (NOT QKD-secured)";

/// The true link of the config: the fiber's T and ξ, the detector, V_A (β is measured).
pub fn link_params(cfg: &CvqkdLinkConfig, va: f64) -> Result<LinkParams, String> {
    let t = transmittance_from_distance(cfg.distance_km, cfg.loss_db_per_km)
        .map_err(|e| config_message(&e.flag_message()))?;
    Ok(LinkParams {
        transmittance: t,
        excess_noise_snu: cfg.xi,
        detector_efficiency: cfg.eta,
        electronic_noise_snu: cfg.v_el,
        reconciliation_efficiency: 1.0,
        modulation_variance_snu: va,
        detection: cfg.detection,
        trusted_detector: true,
    })
}

/// The finite-size parameters of the config.
pub fn finite(cfg: &CvqkdLinkConfig) -> FiniteSizeParams {
    FiniteSizeParams::new(cfg.block_size, cfg.pe_samples, cfg.epsilon)
}

/// Checks a `[link.cvqkd]` table; the message names the key.
pub fn validate(cfg: &CvqkdLinkConfig) -> Result<(), String> {
    if !(cfg.symbol_rate_hz.is_finite() && cfg.symbol_rate_hz > 0.0) {
        return Err(format!(
            "symbol_rate_hz must be above 0 (got {})",
            cfg.symbol_rate_hz
        ));
    }
    if cfg.block_size > CVQKD_MAX_BLOCK_SIZE {
        return Err(format!(
            "block_size {} exceeds {}",
            cfg.block_size, CVQKD_MAX_BLOCK_SIZE
        ));
    }
    if cfg.quantum_port == 0 {
        return Err("quantum_port must not be 0".into());
    }
    let va = match cfg.va {
        Modulation::Fixed(v) => v,
        Modulation::Auto => 4.0,
    };
    // The simulator's own checks (link, block, frame), its flag names turned into keys.
    let sim = crate::cvqkd::sim::SimConfig {
        link: link_params(cfg, va)?,
        finite: finite(cfg),
        attack: crate::cvqkd::sim::Attack::None,
        frame_bits: cfg.frame_bits,
        max_iterations: crate::cvqkd::sim::protocol::DEFAULT_MAX_ITERATIONS,
        seed: 0,
    };
    sim.validate().map_err(|e| config_message(&e.to_string()))?;
    let key_samples = cfg.block_size.saturating_sub(cfg.pe_samples)
        * u64::from(cfg.detection.samples_per_pulse());
    if key_samples < cfg.frame_bits as u64 {
        return Err(format!(
            "block_size − pe_samples leaves {key_samples} key samples, fewer than one frame of {} bits",
            cfg.frame_bits
        ));
    }
    Ok(())
}

/// Rewrites a simulator flag message (`--v-el: ...`) with the config key (`v_el: ...`).
fn config_message(flag_message: &str) -> String {
    let (flag, rest) = flag_message.split_once(':').unwrap_or((flag_message, ""));
    let key = match flag.trim_start_matches('-') {
        "va" => "va".to_string(),
        "pe-samples" => "pe_samples".to_string(),
        "block-size" => "block_size".to_string(),
        "loss-db-per-km" => "loss_db_per_km".to_string(),
        "distance-km" => "distance_km".to_string(),
        "v-el" => "v_el".to_string(),
        other => other.replace('-', "_"),
    };
    format!("{key}:{rest}")
}

/// The modulation variance the link runs at: fixed, or chosen for the nominal channel.
pub fn resolve_modulation(cfg: &CvqkdLinkConfig, codes: &CodeFamily) -> Result<f64, String> {
    match cfg.va {
        Modulation::Fixed(v) => Ok(v),
        Modulation::Auto => {
            let nominal = link_params(cfg, 4.0)?;
            crate::cvqkd::sim::adapt::choose_modulation(&nominal, &finite(cfg), codes)
                .map(|c| c.modulation_variance_snu)
                .ok_or_else(|| {
                    format!(
                        "va = \"auto\": no modulation variance gives key at {} km with these \
                         detector and block settings (out of the reconciliation's range)",
                        cfg.distance_km
                    )
                })
        }
    }
}

/// The protocol both ends run (β is measured per block; T and ξ are what it estimates).
pub fn protocol(cfg: &CvqkdLinkConfig) -> Result<Protocol, String> {
    let codes = Arc::new(CodeFamily::new(cfg.frame_bits));
    let va = resolve_modulation(cfg, &codes)?;
    Ok(Protocol {
        link: link_params(cfg, va)?,
        finite: finite(cfg),
        codes,
        max_iterations: crate::cvqkd::sim::protocol::DEFAULT_MAX_ITERATIONS,
    })
}
