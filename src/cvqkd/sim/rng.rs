//! Seedable pseudo-random numbers for the simulation: xoshiro256++ and standard normal
//! samples (ziggurat, `rand_distr`). Reproducible from a printed 64-bit seed.
//!
//! A PRNG is fine for simulating physics; it gives no secrecy. Keys meant for use must come
//! from an instance seeded by a CSPRNG (see [`SimRng::from_os_entropy`]), and even then a
//! simulated link gives no quantum security.

use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The simulation's random number generator.
#[derive(Debug, Clone)]
pub struct SimRng(Xoshiro256PlusPlus);

impl SimRng {
    /// A generator seeded deterministically from `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// A generator seeded from the operating system's CSPRNG (for keys a KME would use).
    pub fn from_os_entropy() -> Self {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).expect("the OS random generator works");
        SimRng(Xoshiro256PlusPlus::from_seed(seed))
    }

    /// An independent generator derived from this one (for a sub-component).
    pub fn fork(&mut self) -> Self {
        SimRng::new(self.next_u64())
    }

    /// A uniform 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A standard normal sample N(0, 1).
    pub fn gaussian(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }

    /// A uniform index in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Fill `words` with uniform bits.
    pub fn fill_words(&mut self, words: &mut [u64]) {
        for w in words {
            *w = self.0.next_u64();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_runs_repeat_and_normals_are_standard() {
        let (mut a, mut b) = (SimRng::new(7), SimRng::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| a.gaussian()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
