//! What `qshield qkd simulate` prints: per-block lines and a summary over blocks, as text
//! or JSON.

use super::link::{BlockReport, SimConfig};
use serde::Serialize;
use std::fmt::Write;

/// Aggregates over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Blocks run.
    pub blocks: usize,
    /// Blocks that gave no key.
    pub aborts: usize,
    /// Aborts by reason.
    pub abort_reasons: Vec<(String, usize)>,
    /// Mean and standard deviation of T̂ over blocks.
    pub transmittance_estimate: (f64, f64),
    /// Mean and standard deviation of ξ̂ over blocks, SNU.
    pub excess_noise_estimate_snu: (f64, f64),
    /// Mean estimated SNR.
    pub snr_estimate: f64,
    /// Mean β over reconciled blocks.
    pub beta: Option<f64>,
    /// Frames failed over frames reconciled.
    pub fer: Option<f64>,
    /// Key bits over all blocks.
    pub key_bits: usize,
    /// Mean key bits per block.
    pub key_bits_per_block: f64,
    /// Key bits per pulse sent.
    pub key_bits_per_pulse: f64,
    /// Whether every block's keys were bit-identical.
    pub keys_match: bool,
    /// Simulated pulses per second of wall time (this machine, all stages).
    pub pulses_per_second: f64,
    /// Key bits per second of wall time.
    pub key_bits_per_second: f64,
}

fn mean_sd(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = v.clone().count().max(1) as f64;
    let m = v.clone().sum::<f64>() / n;
    let var = v.map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

impl Summary {
    /// Summarise `reports` of blocks of `block_size` pulses.
    pub fn of(reports: &[BlockReport], block_size: u64) -> Self {
        let mut reasons: Vec<(String, usize)> = Vec::new();
        for r in reports.iter().filter_map(|r| r.abort.clone()) {
            match reasons.iter_mut().find(|(k, _)| *k == r) {
                Some((_, n)) => *n += 1,
                None => reasons.push((r, 1)),
            }
        }
        let frames: usize = reports.iter().map(|r| r.frames).sum();
        let failed: usize = reports.iter().map(|r| r.frames_failed).sum();
        let betas: Vec<f64> = reports.iter().filter_map(|r| r.beta).collect();
        let key_bits: usize = reports.iter().map(|r| r.key_bits).sum();
        let seconds: f64 = reports.iter().map(|r| r.seconds).sum();
        let n = reports.len().max(1) as f64;
        let pulses = block_size as f64 * reports.len() as f64;
        Summary {
            blocks: reports.len(),
            aborts: reports.iter().filter(|r| r.key_bits == 0).count(),
            abort_reasons: reasons,
            transmittance_estimate: mean_sd(reports.iter().map(|r| r.transmittance_estimate)),
            excess_noise_estimate_snu: mean_sd(reports.iter().map(|r| r.excess_noise_estimate_snu)),
            snr_estimate: reports.iter().map(|r| r.snr_estimate).sum::<f64>() / n,
            beta: (!betas.is_empty()).then(|| betas.iter().sum::<f64>() / betas.len() as f64),
            fer: (frames > 0).then(|| failed as f64 / frames as f64),
            key_bits,
            key_bits_per_block: key_bits as f64 / n,
            key_bits_per_pulse: key_bits as f64 / pulses.max(1.0),
            keys_match: reports.iter().all(|r| r.keys_match),
            pulses_per_second: pulses / seconds.max(1e-9),
            key_bits_per_second: key_bits as f64 / seconds.max(1e-9),
        }
    }
}

/// The JSON document of a run.
#[derive(Debug, Serialize)]
pub struct RunDocument<'a> {
    /// Seed of the run.
    pub seed: u64,
    /// Parameters.
    pub link: &'a crate::cvqkd::params::LinkParams,
    /// How V_A was set (`--va`): fixed, or auto with the chosen code and expected SNR.
    pub modulation: &'a super::adapt::VaSelection,
    /// Block parameters.
    pub finite_size: &'a crate::cvqkd::finite_size::FiniteSizeParams,
    /// Attack.
    pub attack: &'a super::channel::Attack,
    /// Frame length, bits.
    pub frame_bits: usize,
    /// Per block.
    pub blocks: &'a [BlockReport],
    /// Over blocks.
    pub summary: &'a Summary,
    /// Reminder printed with every run.
    pub note: &'static str,
}

/// The honesty note printed with every run.
pub const NOTE: &str = "simulated link: the numbers follow GG02 theory; the keys come from a \
PRNG and have no quantum security (never \"QKD-secured\")";

/// Header of the text output.
pub fn text_header(cfg: &SimConfig) -> String {
    let l = &cfg.link;
    let f = &cfg.finite;
    let mut s = String::new();
    let _ = writeln!(s, "# {NOTE}");
    let _ = writeln!(
        s,
        "# seed {}  T {:.5}  xi {} SNU  eta {}  v_el {} SNU  V_A {} SNU  {}  N {}  m {}  eps {:e}  frame {} bits  attack {:?}",
        cfg.seed,
        l.transmittance,
        l.excess_noise_snu,
        l.detector_efficiency,
        l.electronic_noise_snu,
        l.modulation_variance_snu,
        l.detection,
        f.block_size,
        f.pe_samples,
        f.epsilon_pe,
        cfg.frame_bits,
        cfg.attack
    );
    let _ = writeln!(
        s,
        "{:>5} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>6} {:>9} {:>10} {:>10}  status",
        "block",
        "T_true",
        "T_est",
        "xi_true",
        "xi_est",
        "SNR",
        "R",
        "beta",
        "FER",
        "bound",
        "key bits"
    );
    s
}

/// One text line per block.
pub fn text_line(r: &BlockReport) -> String {
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    let fer = r
        .fer
        .map_or("-".into(), |_| format!("{}/{}", r.frames_failed, r.frames));
    format!(
        "{:>5} {:>8.5} {:>8.5} {:>8.4} {:>8.4} {:>7.3} {:>5} {:>6} {:>9} {:>10.0} {:>10}  {}\n",
        r.block_id,
        r.transmittance_true,
        r.transmittance_estimate,
        r.excess_noise_true_snu,
        r.excess_noise_estimate_snu,
        r.snr_estimate,
        opt(r.code_rate, 2),
        opt(r.beta, 3),
        fer,
        r.bound_bits.max(0.0),
        r.key_bits,
        status(r)
    )
}

fn status(r: &BlockReport) -> String {
    match (&r.abort, r.keys_match) {
        (Some(a), _) => format!("abort: {a}"),
        (None, true) => "key (Alice = Bob)".into(),
        (None, false) => "KEY MISMATCH".into(),
    }
}

/// The summary in text.
pub fn text_summary(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "summary: {} blocks, {} aborted {:?}",
        s.blocks, s.aborts, s.abort_reasons
    );
    let _ = writeln!(
        o,
        "  T_est {:.5} ± {:.5}   xi_est {:.4} ± {:.4} SNU   SNR {:.3}",
        s.transmittance_estimate.0,
        s.transmittance_estimate.1,
        s.excess_noise_estimate_snu.0,
        s.excess_noise_estimate_snu.1,
        s.snr_estimate
    );
    let beta = s.beta.map_or("-".into(), |b| format!("{b:.3}"));
    let fer = s.fer.map_or("-".into(), |f| format!("{f:.3}"));
    let _ = writeln!(
        o,
        "  beta {beta}   FER {fer}   keys identical: {}",
        s.keys_match
    );
    let _ = writeln!(
        o,
        "  key {} bits ({:.0} per block, {:.3e} per pulse)   {:.3e} pulses/s, {:.3e} key bits/s (wall, this machine)",
        s.key_bits,
        s.key_bits_per_block,
        s.key_bits_per_pulse,
        s.pulses_per_second,
        s.key_bits_per_second
    );
    o
}
