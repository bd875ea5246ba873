//! The quantum channel between Alice and Bob: the fiber (loss and excess noise) and Eve's
//! attacks (cvqkd-physics.md §7). They act only on the pulses in transit ([`QuantumBlock`]); they
//! never see Alice's or Bob's data.

use super::messages::QuantumBlock;
use super::rng::SimRng;
use serde::Serialize;
use std::f64::consts::FRAC_1_SQRT_2;

/// An attack by Eve on the pulses in transit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attack {
    /// No attack: the fiber alone.
    None,
    /// Entangling cloner: Eve replaces the fiber by a beam splitter of the same
    /// transmittance whose other input is half of her EPR pair, of variance
    /// `W = 1 + T(ξ + ξ_E)/(1 − T)`; this adds `excess_noise_snu` (ξ_E, input-referred).
    Cloner {
        /// Excess noise Eve adds, SNU at the channel input.
        excess_noise_snu: f64,
    },
    /// Intercept-resend at the fiber input on a fraction of the pulses: Eve heterodynes and
    /// resends a coherent state at her estimate, adding 2 SNU (entanglement breaking).
    InterceptResend {
        /// Fraction of pulses attacked, in (0, 1].
        fraction: f64,
    },
    /// A passive tap after the fiber: extra loss of `loss_db`, the tapped light kept by Eve.
    Tap {
        /// Tap loss, dB.
        loss_db: f64,
    },
}

/// The fiber and Eve.
#[derive(Debug, Clone)]
pub struct Channel {
    transmittance: f64,
    excess_noise_snu: f64,
    attack: Attack,
    rng: SimRng,
}

impl Channel {
    /// A fiber of `transmittance` and input excess noise `excess_noise_snu` under `attack`.
    pub fn new(transmittance: f64, excess_noise_snu: f64, attack: Attack, rng: SimRng) -> Self {
        Channel {
            transmittance,
            excess_noise_snu,
            attack,
            rng,
        }
    }

    /// The attack in place.
    pub fn attack(&self) -> Attack {
        self.attack
    }

    /// The true transmittance and input excess noise Bob's detector sees (what parameter
    /// estimation should find).
    pub fn effective(&self) -> (f64, f64) {
        let (t, xi) = (self.transmittance, self.excess_noise_snu);
        match self.attack {
            Attack::None => (t, xi),
            Attack::Cloner { excess_noise_snu } => (t, xi + excess_noise_snu),
            Attack::InterceptResend { fraction } => (t, xi + 2.0 * fraction),
            Attack::Tap { loss_db } => (t * 10f64.powf(-loss_db / 10.0), xi),
        }
    }

    /// Send the pulses through Eve and the fiber.
    pub fn transmit(&mut self, block: &mut QuantumBlock) {
        if let Attack::InterceptResend { fraction } = self.attack {
            self.intercept_resend(block, fraction);
        }
        let (t, xi) = (self.transmittance, self.excess_noise_snu);
        let (gain, noise_sd) = match self.attack {
            Attack::Cloner { excess_noise_snu } if t < 1.0 => {
                let w = 1.0 + t * (xi + excess_noise_snu) / (1.0 - t);
                (t.sqrt(), ((1.0 - t) * w).sqrt())
            }
            Attack::Cloner { excess_noise_snu } => (1.0, (xi + excess_noise_snu).sqrt()),
            _ => (t.sqrt(), (1.0 - t + t * xi).sqrt()),
        };
        self.linear(block, gain, noise_sd);
        if let Attack::Tap { loss_db } = self.attack {
            let tau = 10f64.powf(-loss_db / 10.0);
            self.linear(block, tau.sqrt(), (1.0 - tau).sqrt());
        }
    }

    /// Every quadrature becomes `gain·q + N(0, noise_sd²)`.
    fn linear(&mut self, block: &mut QuantumBlock, gain: f64, noise_sd: f64) {
        for q in block.x.iter_mut().chain(block.p.iter_mut()) {
            *q = gain * *q + noise_sd * self.rng.gaussian();
        }
    }

    /// Eve heterodynes a fraction of the pulses (each arm adds a vacuum) and resends
    /// coherent states at √2 × her outcomes (a fresh vacuum each).
    fn intercept_resend(&mut self, block: &mut QuantumBlock, fraction: f64) {
        let rng = &mut self.rng;
        for (x, p) in block.x.iter_mut().zip(block.p.iter_mut()) {
            if fraction < 1.0 && rng.unit() >= fraction {
                continue;
            }
            let mx = FRAC_1_SQRT_2 * (*x + rng.gaussian());
            let mp = FRAC_1_SQRT_2 * (*p - rng.gaussian());
            *x = std::f64::consts::SQRT_2 * mx + rng.gaussian();
            *p = std::f64::consts::SQRT_2 * mp + rng.gaussian();
        }
    }
}
