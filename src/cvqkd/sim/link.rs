//! The whole link in one process: Alice, the channel (fiber and Eve) and Bob exchange the
//! quantum block and the classical messages, block after block; each block yields a
//! [`BlockReport`] with the true and estimated channel, SNR, β, FER and key bits.

use super::SimError;
use super::alice::Alice;
use super::bob::Bob;
use super::channel::{Attack, Channel};
use super::codes::CodeFamily;
use super::messages::ClassicalMessage;
use super::protocol::{Protocol, SideOutcome, SimKey};
use super::rng::SimRng;
use crate::cvqkd::finite_size::FiniteSizeParams;
use crate::cvqkd::params::LinkParams;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// Everything a simulation run needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The true link: fiber T and ξ, detector, V_A, detection (β is ignored: measured).
    pub link: LinkParams,
    /// Block size, estimation samples and ε.
    pub finite: FiniteSizeParams,
    /// Eve.
    pub attack: Attack,
    /// LDPC frame length, bits (a multiple of 64).
    pub frame_bits: usize,
    /// Belief-propagation iteration cap.
    pub max_iterations: u32,
    /// Seed of every random choice (printed so a run can be repeated).
    pub seed: u64,
}

impl SimConfig {
    /// Check the link, block and frame parameters; errors name the flag.
    pub fn validate(&self) -> Result<(), SimError> {
        self.link.validate()?;
        self.finite.validate()?;
        if self.frame_bits < 64 || !self.frame_bits.is_multiple_of(64) {
            return Err(SimError::FrameBits(self.frame_bits));
        }
        super::parse::validate_attack(&self.attack, self.link.transmittance)
    }
}

/// One block's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// Block number.
    pub block_id: u64,
    /// True transmittance seen at Bob's input (fiber × tap).
    pub transmittance_true: f64,
    /// True input excess noise (fiber + Eve).
    pub excess_noise_true_snu: f64,
    /// Estimated T̂.
    pub transmittance_estimate: f64,
    /// Estimated ξ̂, SNU.
    pub excess_noise_estimate_snu: f64,
    /// Worst-case T_min.
    pub transmittance_min: f64,
    /// Worst-case ξ_max, SNU.
    pub excess_noise_max_snu: f64,
    /// Estimated SNR per real sample.
    pub snr_estimate: f64,
    /// Code rate used (none if aborted before reconciliation).
    pub code_rate: Option<f64>,
    /// β = R/C(ŝ) of the code used.
    pub beta: Option<f64>,
    /// Frames reconciled.
    pub frames: usize,
    /// Frames that failed decoding or verification.
    pub frames_failed: usize,
    /// Frame error rate of this block (none without frames).
    pub fer: Option<f64>,
    /// Mean BP iterations per frame.
    pub mean_iterations: f64,
    /// The finite-size bound at the estimates with the code's β, bits for the block
    /// (N·K_N; before frame losses and tags).
    pub bound_bits: f64,
    /// Secret key bits produced.
    pub key_bits: usize,
    /// Why no key, if so.
    pub abort: Option<String>,
    /// Alice's and Bob's keys are bit-identical (true when both have none).
    pub keys_match: bool,
    /// Wall time of the block, s.
    pub seconds: f64,
}

/// A block's report and both final keys.
#[derive(Debug)]
pub struct BlockRun {
    /// The figures.
    pub report: BlockReport,
    /// Alice's key, if any.
    pub alice_key: Option<SimKey>,
    /// Bob's key, if any.
    pub bob_key: Option<SimKey>,
}

/// Alice, the channel and Bob in one process.
#[derive(Debug)]
pub struct LinkSimulator {
    config: SimConfig,
    alice: Alice,
    bob: Bob,
    channel: Channel,
    next_block: u64,
}

impl LinkSimulator {
    /// Set up a link; the three components get independent generators forked from the seed.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let proto = Protocol {
            link: config.link,
            finite: config.finite,
            codes: Arc::new(CodeFamily::new(config.frame_bits)),
            max_iterations: config.max_iterations,
        };
        let mut root = SimRng::new(config.seed);
        let l = &config.link;
        let channel = Channel::new(
            l.transmittance,
            l.excess_noise_snu,
            config.attack,
            root.fork(),
        );
        Ok(LinkSimulator {
            alice: Alice::new(proto.clone(), root.fork()),
            bob: Bob::new(proto, root.fork()),
            channel,
            config,
            next_block: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Run one block through the whole pipeline.
    pub fn run_block(&mut self) -> Result<BlockRun, SimError> {
        let start = Instant::now();
        let id = self.next_block;
        self.next_block += 1;
        let mut pulses = self.alice.prepare(id);
        self.channel.transmit(&mut pulses);
        let mut to_alice = Some(self.bob.receive(&pulses));
        drop(pulses);
        while let Some(msg) = to_alice.take() {
            let Some(reply) = self.alice.handle(&msg)? else {
                break;
            };
            to_alice = self.bob.handle(&reply)?;
        }
        let outcome = self
            .bob
            .outcome()
            .cloned()
            .ok_or(SimError::Protocol("Bob has no outcome"))?;
        let (alice_key, bob_key) = (self.alice.take_key(), self.bob.take_key());
        let alice_iters = self.alice.outcome().map_or(0.0, |o| o.mean_iterations);
        let report = self.report(&outcome, alice_iters, &alice_key, &bob_key, start);
        Ok(BlockRun {
            report,
            alice_key,
            bob_key,
        })
    }

    fn report(
        &self,
        o: &SideOutcome,
        iterations: f64,
        ka: &Option<SimKey>,
        kb: &Option<SimKey>,
        start: Instant,
    ) -> BlockReport {
        let (t_true, xi_true) = self.channel.effective();
        let r = &o.pe.rate;
        let reconciled = o.frames > 0;
        BlockReport {
            block_id: o.block_id,
            transmittance_true: t_true,
            excess_noise_true_snu: xi_true,
            transmittance_estimate: r.transmittance_estimate,
            excess_noise_estimate_snu: r.excess_noise_estimate_snu,
            transmittance_min: r.transmittance_min,
            excess_noise_max_snu: r.excess_noise_max_snu,
            snr_estimate: o.pe.snr,
            code_rate: o
                .pe
                .code
                .filter(|_| reconciled)
                .map(|_| o.pe.beta * r.i_ab / self.spp()),
            beta: o.pe.code.filter(|_| reconciled).map(|_| o.pe.beta),
            frames: o.frames,
            frames_failed: o.frames - o.frames_ok,
            fer: reconciled.then(|| (o.frames - o.frames_ok) as f64 / o.frames as f64),
            mean_iterations: iterations,
            bound_bits: r.key_rate_bits_per_pulse * self.config.finite.block_size as f64,
            key_bits: o.key_bits,
            abort: o.abort.map(|a| a.to_string()),
            keys_match: ka == kb,
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    fn spp(&self) -> f64 {
        f64::from(self.config.link.detection.samples_per_pulse())
    }
}

/// Whether a message goes to Alice (else to Bob).
pub fn is_for_alice(msg: &ClassicalMessage) -> bool {
    matches!(
        msg,
        ClassicalMessage::Disclosure { .. } | ClassicalMessage::Reconciliation { .. }
    )
}
