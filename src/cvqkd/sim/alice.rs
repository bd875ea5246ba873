//! Alice: prepares Gaussian-modulated coherent states, answers Bob's disclosure with her
//! estimation samples, decodes Bob's bits from the MD rotations and syndromes (reverse
//! reconciliation), verifies each frame and amplifies privacy. She sees only her own data
//! and the public messages.

use super::SimError;
use super::bits::BitVec;
use super::estimation::{PeOutcome, estimate, evaluate};
use super::md::alice_llrs;
use super::messages::{ClassicalMessage, FrameData, QuantumBlock};
use super::protocol::{Protocol, SideOutcome, SimKey, amplify, concat_ok, pe_mask};
use super::rng::SimRng;
use super::verify::poly_hash;

/// Alice's state machine.
#[derive(Debug)]
pub struct Alice {
    proto: Protocol,
    rng: SimRng,
    block: Option<AliceBlock>,
    outcome: Option<SideOutcome>,
    key: Option<SimKey>,
}

/// Alice's private data of the block in progress.
#[derive(Debug)]
struct AliceBlock {
    id: u64,
    xa: Vec<f64>,
    pa: Vec<f64>,
    key_samples: Vec<f64>,
    pe: Option<PeOutcome>,
}

impl Alice {
    /// Alice with the shared protocol and her own random generator.
    pub fn new(proto: Protocol, rng: SimRng) -> Self {
        Alice {
            proto,
            rng,
            block: None,
            outcome: None,
            key: None,
        }
    }

    /// Draw the block's modulation (`x_A, p_A ~ N(0, V_A)`) and emit the coherent states.
    pub fn prepare(&mut self, block_id: u64) -> QuantumBlock {
        let n = self.proto.finite.block_size as usize;
        let sd = self.proto.link.modulation_variance_snu.sqrt();
        let rng = &mut self.rng;
        let xa: Vec<f64> = (0..n).map(|_| sd * rng.gaussian()).collect();
        let pa: Vec<f64> = (0..n).map(|_| sd * rng.gaussian()).collect();
        let x = xa.iter().map(|v| v + rng.gaussian()).collect();
        let p = pa.iter().map(|v| v + rng.gaussian()).collect();
        self.block = Some(AliceBlock {
            id: block_id,
            xa,
            pa,
            key_samples: Vec::new(),
            pe: None,
        });
        (self.outcome, self.key) = (None, None);
        QuantumBlock { block_id, x, p }
    }

    /// Handle a message from Bob; returns the answer, if any.
    pub fn handle(&mut self, msg: &ClassicalMessage) -> Result<Option<ClassicalMessage>, SimError> {
        let block = self
            .block
            .as_mut()
            .ok_or(SimError::Protocol("no block in progress"))?;
        if msg.block_id() != block.id {
            return Err(SimError::Protocol("message for another block"));
        }
        match msg {
            ClassicalMessage::Disclosure {
                bases,
                pe_seed,
                bob_values,
                ..
            } => self
                .on_disclosure(bases.as_ref(), *pe_seed, bob_values)
                .map(Some),
            ClassicalMessage::Reconciliation { code, frames, .. } => {
                self.on_reconciliation(*code, frames).map(Some)
            }
            _ => Err(SimError::Protocol("Alice got a message meant for Bob")),
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

    fn on_disclosure(
        &mut self,
        bases: Option<&BitVec>,
        pe_seed: u64,
        bob_values: &[f64],
    ) -> Result<ClassicalMessage, SimError> {
        let proto = &self.proto;
        let block = self.block.as_mut().expect("checked");
        let n = block.xa.len();
        let mask = pe_mask(pe_seed, n, proto.finite.pe_samples as usize);
        let (mut pe_values, mut key) = (Vec::new(), Vec::new());
        for (i, &is_pe) in mask.iter().enumerate() {
            let out = if is_pe { &mut pe_values } else { &mut key };
            match bases {
                Some(b) => out.push(if b.get(i) { block.pa[i] } else { block.xa[i] }),
                None => out.extend([block.xa[i], block.pa[i]]),
            }
        }
        if pe_values.len() != bob_values.len() {
            return Err(SimError::Protocol(
                "disclosure has the wrong number of samples",
            ));
        }
        let pe = evaluate(
            &proto.link,
            &proto.finite,
            estimate(&pe_values, bob_values),
            &proto.codes,
        );
        block.key_samples = key;
        block.pe = Some(pe);
        if pe.abort.is_some() {
            self.outcome = Some(SideOutcome::aborted(block.id, pe));
        }
        Ok(ClassicalMessage::PeAnswer {
            block_id: block.id,
            alice_values: pe_values,
        })
    }

    fn on_reconciliation(
        &mut self,
        code_index: usize,
        frames: &[FrameData],
    ) -> Result<ClassicalMessage, SimError> {
        let block = self.block.as_ref().expect("checked");
        let pe = block
            .pe
            .ok_or(SimError::Protocol("reconciliation before estimation"))?;
        if pe.abort.is_some() || pe.code != Some(code_index) || frames.len() != self.proto.frames()
        {
            return Err(SimError::Protocol(
                "reconciliation does not match the estimate",
            ));
        }
        let mut decoded = Vec::with_capacity(frames.len());
        let mut iterations = 0u64;
        for (f, data) in frames.iter().enumerate() {
            let (bits, iters) = self.decode_frame(code_index, f, data, &pe);
            iterations += u64::from(iters);
            decoded.push(bits);
        }
        let ok: Vec<bool> = decoded.iter().map(Option::is_some).collect();
        let frames_bits: Vec<BitVec> = decoded.into_iter().map(Option::unwrap_or_default).collect();
        let id = block.id;
        let mut outcome = SideOutcome::reconciled(&self.proto, id, pe, &ok);
        outcome.mean_iterations = iterations as f64 / frames.len().max(1) as f64;
        let pa_seed = self.rng.next_u64();
        if outcome.key_bits > 0 {
            self.key = Some(amplify(
                id,
                &concat_ok(&frames_bits, &ok),
                outcome.key_bits,
                pa_seed,
            ));
        }
        self.outcome = Some(outcome);
        Ok(ClassicalMessage::Verification {
            block_id: id,
            frame_ok: ok,
            pa_seed,
        })
    }

    /// Decode frame `f`; `Some(bits)` if the syndrome is met and the tag matches.
    fn decode_frame(
        &self,
        code_index: usize,
        f: usize,
        data: &FrameData,
        pe: &PeOutcome,
    ) -> (Option<BitVec>, u32) {
        let code = self.proto.codes.code(code_index);
        let nc = code.len();
        let block = self.block.as_ref().expect("checked");
        let x = &block.key_samples[f * nc..(f + 1) * nc];
        if data.rotations.len() != nc || data.syndrome.len() != code.checks() {
            return (None, 0);
        }
        let mut llr = vec![0f32; nc];
        let (gain, noise) = (pe.stats.gain, pe.stats.noise_variance_snu);
        for ((xs, alpha), out) in x
            .chunks_exact(8)
            .zip(data.rotations.chunks_exact(8))
            .zip(llr.chunks_exact_mut(8))
        {
            let xo: [f64; 8] = xs.try_into().expect("8 samples");
            let ao: [f64; 8] = alpha.try_into().expect("8 reals");
            alice_llrs(&xo, &ao, gain, noise, out);
        }
        let d = code.decode(&llr, &data.syndrome, self.proto.max_iterations);
        let ok = d.syndrome_ok && poly_hash(data.hash_key, d.bits.words()) == data.tag;
        (ok.then_some(d.bits), d.iterations)
    }
}
