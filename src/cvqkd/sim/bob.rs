//! Bob: detects the pulses (homodyne with random bases, or heterodyne) with efficiency η
//! and electronic noise v_el, discloses the estimation subset, and — as the reference of
//! reverse reconciliation — draws the random frame bits, publishes their MD rotations,
//! syndromes and verification tags, and amplifies privacy. He sees only his own data and
//! the public messages.

use super::SimError;
use super::bits::BitVec;
use super::estimation::{PeOutcome, estimate, evaluate};
use super::md::bob_rotation;
use super::messages::{ClassicalMessage, FrameData, QuantumBlock};
use super::protocol::{Protocol, SideOutcome, SimKey, amplify, concat_ok, pe_mask};
use super::rng::SimRng;
use super::verify::poly_hash;
use crate::cvqkd::params::Detection;

/// Bob's state machine.
#[derive(Debug)]
pub struct Bob {
    proto: Protocol,
    rng: SimRng,
    block: Option<BobBlock>,
    outcome: Option<SideOutcome>,
    key: Option<SimKey>,
}

/// Bob's private data of the block in progress.
#[derive(Debug)]
struct BobBlock {
    id: u64,
    pe_values: Vec<f64>,
    key_samples: Vec<f64>,
    pe: Option<PeOutcome>,
    frame_bits: Vec<BitVec>,
}

impl Bob {
    /// Bob with the shared protocol and his own random generator.
    pub fn new(proto: Protocol, rng: SimRng) -> Self {
        Bob {
            proto,
            rng,
            block: None,
            outcome: None,
            key: None,
        }
    }

    /// Detect the pulses and disclose the bases and the estimation subset.
    pub fn receive(&mut self, pulses: &QuantumBlock) -> ClassicalMessage {
        let (bases, samples) = self.detect(pulses);
        let pe_seed = self.rng.next_u64();
        let n = pulses.len();
        let mask = pe_mask(pe_seed, n, self.proto.finite.pe_samples as usize);
        let spp = self.proto.samples_per_pulse() as usize;
        let (mut pe_values, mut key_samples) = (Vec::new(), Vec::new());
        for (i, &is_pe) in mask.iter().enumerate() {
            let out = if is_pe {
                &mut pe_values
            } else {
                &mut key_samples
            };
            out.extend_from_slice(&samples[i * spp..(i + 1) * spp]);
        }
        self.block = Some(BobBlock {
            id: pulses.block_id,
            pe_values: pe_values.clone(),
            key_samples,
            pe: None,
            frame_bits: Vec::new(),
        });
        (self.outcome, self.key) = (None, None);
        ClassicalMessage::Disclosure {
            block_id: pulses.block_id,
            bases,
            pe_seed,
            bob_values: pe_values,
        }
    }

    /// Handle a message from Alice; returns the answer, if any.
    pub fn handle(&mut self, msg: &ClassicalMessage) -> Result<Option<ClassicalMessage>, SimError> {
        let block = self
            .block
            .as_ref()
            .ok_or(SimError::Protocol("no block in progress"))?;
        if msg.block_id() != block.id {
            return Err(SimError::Protocol("message for another block"));
        }
        match msg {
            ClassicalMessage::PeAnswer { alice_values, .. } => self.on_pe_answer(alice_values),
            ClassicalMessage::Verification {
                frame_ok, pa_seed, ..
            } => self.on_verification(frame_ok, *pa_seed).map(|()| None),
            _ => Err(SimError::Protocol("Bob got a message meant for Alice")),
        }
    }

    /// The outcome of the last finished block.
    pub fn outcome(&self) -> Option<&SideOutcome> {
        self.outcome.as_ref()
    }

    /// The parameter estimation of the block in progress (or last), once made.
    pub fn estimate(&self) -> Option<&PeOutcome> {
        self.block.as_ref().and_then(|b| b.pe.as_ref())
    }

    /// Take the key of the last block, if it produced one.
    pub fn take_key(&mut self) -> Option<SimKey> {
        self.key.take()
    }

    /// Homodyne: a random basis per pulse, `y = √η q + N(0, 1 − η + v_el)`. Heterodyne: a
    /// 50:50 split, `y_{x,p} = √(η/2) q + N(0, 1 − η/2 + v_el)` (cvqkd-physics.md §2).
    fn detect(&mut self, pulses: &QuantumBlock) -> (Option<BitVec>, Vec<f64>) {
        let (eta, v_el) = (
            self.proto.link.detector_efficiency,
            self.proto.link.electronic_noise_snu,
        );
        let rng = &mut self.rng;
        match self.proto.link.detection {
            Detection::Homodyne => {
                let mut words = vec![0u64; pulses.len().div_ceil(64)];
                rng.fill_words(&mut words);
                let bases = BitVec::from_words(words, pulses.len());
                let sd = (1.0 - eta + v_el).sqrt();
                let g = eta.sqrt();
                let y = (0..pulses.len())
                    .map(|i| {
                        let q = if bases.get(i) {
                            pulses.p[i]
                        } else {
                            pulses.x[i]
                        };
                        g * q + sd * rng.gaussian()
                    })
                    .collect();
                (Some(bases), y)
            }
            Detection::Heterodyne => {
                let sd = (1.0 - eta / 2.0 + v_el).sqrt();
                let g = (eta / 2.0).sqrt();
                let y = (0..pulses.len())
                    .flat_map(|i| [pulses.x[i], pulses.p[i]])
                    .map(|q| g * q + sd * rng.gaussian())
                    .collect();
                (None, y)
            }
        }
    }

    fn on_pe_answer(&mut self, alice_values: &[f64]) -> Result<Option<ClassicalMessage>, SimError> {
        let block = self.block.as_mut().expect("checked");
        if alice_values.len() != block.pe_values.len() {
            return Err(SimError::Protocol("answer has the wrong number of samples"));
        }
        let proto = &self.proto;
        let pe = evaluate(
            &proto.link,
            &proto.finite,
            estimate(alice_values, &block.pe_values),
            &proto.codes,
        );
        block.pe = Some(pe);
        let (Some(code_index), None) = (pe.code, pe.abort) else {
            self.outcome = Some(SideOutcome::aborted(block.id, pe));
            return Ok(None);
        };
        let frames = (0..proto.frames())
            .map(|f| self.frame(code_index, f))
            .collect();
        let id = self.block.as_ref().expect("checked").id;
        Ok(Some(ClassicalMessage::Reconciliation {
            block_id: id,
            code: code_index,
            frames,
        }))
    }

    /// Draw the bits of frame `f` and build its public data.
    fn frame(&mut self, code_index: usize, f: usize) -> FrameData {
        let code = self.proto.codes.code(code_index);
        let nc = code.len();
        let mut words = vec![0u64; nc.div_ceil(64)];
        self.rng.fill_words(&mut words);
        let bits = BitVec::from_words(words, nc);
        let block = self.block.as_mut().expect("checked");
        let y = &block.key_samples[f * nc..(f + 1) * nc];
        let mut rotations = Vec::with_capacity(nc);
        for (k, ys) in y.chunks_exact(8).enumerate() {
            let yo: [f64; 8] = ys.try_into().expect("8 samples");
            let byte = (bits.words()[k / 8] >> ((k % 8) * 8)) as u8;
            rotations.extend_from_slice(&bob_rotation(&yo, byte));
        }
        let hash_key = self.rng.next_u64();
        let data = FrameData {
            rotations,
            syndrome: code.syndrome(&bits),
            hash_key,
            tag: poly_hash(hash_key, bits.words()),
        };
        block.frame_bits.push(bits);
        data
    }

    fn on_verification(&mut self, frame_ok: &[bool], pa_seed: u64) -> Result<(), SimError> {
        let block = self.block.as_ref().expect("checked");
        let pe = block
            .pe
            .filter(|p| p.abort.is_none())
            .ok_or(SimError::Protocol("verification without reconciliation"))?;
        if frame_ok.len() != block.frame_bits.len() {
            return Err(SimError::Protocol(
                "verification has the wrong number of frames",
            ));
        }
        let outcome = SideOutcome::reconciled(&self.proto, block.id, pe, frame_ok);
        if outcome.key_bits > 0 {
            let reconciled = concat_ok(&block.frame_bits, frame_ok);
            self.key = Some(amplify(block.id, &reconciled, outcome.key_bits, pa_seed));
        }
        self.outcome = Some(outcome);
        Ok(())
    }
}
