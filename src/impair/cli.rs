//! The command line of `qshield-impair` (clap): the four addresses, the impairment knobs
//! for both directions with per-direction overrides, the seed and the stats file. A bad
//! value is refused by clap with the flag's name and the reason.

use super::model::{
    Delay, Direction, GilbertElliott, Impairment, JitterShape, Probability, Reorder, parse_millis,
};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// qshield-impair: a UDP relay that impairs what it carries, for tests on kernels without
/// netem. Datagrams arriving on --a-listen go to --b-peer (sent from --b-listen), and
/// datagrams arriving on --b-listen go to --a-peer (sent from --a-listen): each daemon
/// names the relay's listening address on its side as its peer's endpoint.
///
/// Every knob applies to both directions; a flag ending in -a-to-b or -b-to-a replaces it
/// for that direction only. Per datagram, in this order: burst loss, random loss,
/// duplication, reordering, delay. Decisions come from --seed and are the same on every run
/// with the same seed and the same arrivals.
///
/// Probabilities are written 0.3 or 30%. Times are milliseconds (20 or 20ms).
/// SIGINT or SIGTERM stops the relay after writing the stats file.
#[derive(Debug, Parser)]
#[command(
    name = "qshield-impair",
    version,
    long_about,
    allow_negative_numbers = true
)]
pub struct RelayArgs {
    /// Address to receive side A's datagrams on (side A's daemon sends here).
    #[arg(long, value_name = "IP:PORT")]
    pub a_listen: SocketAddr,
    /// Address to receive side B's datagrams on (side B's daemon sends here).
    #[arg(long, value_name = "IP:PORT")]
    pub b_listen: SocketAddr,
    /// Side A's daemon: datagrams from side B are sent here (from --a-listen).
    #[arg(long, value_name = "IP:PORT")]
    pub a_peer: SocketAddr,
    /// Side B's daemon: datagrams from side A are sent here (from --b-listen).
    #[arg(long, value_name = "IP:PORT")]
    pub b_peer: SocketAddr,

    /// Independent random loss per datagram.
    #[arg(long, value_name = "P", value_parser = Probability::parse, default_value = "0")]
    pub loss: Probability,
    /// --loss for A->B only.
    #[arg(long, value_name = "P", value_parser = Probability::parse)]
    pub loss_a_to_b: Option<Probability>,
    /// --loss for B->A only.
    #[arg(long, value_name = "P", value_parser = Probability::parse)]
    pub loss_b_to_a: Option<Probability>,

    /// Burst loss (Gilbert-Elliott): per datagram the channel goes good->bad with P_GB and
    /// bad->good with P_BG; in the bad state each datagram is lost with LOSS_IN_BAD
    /// (default 100%). Bursts last 1/P_BG datagrams on average. Example: 1%,25%.
    #[arg(long, value_name = "P_GB,P_BG[,LOSS_IN_BAD]", value_parser = GilbertElliott::parse)]
    pub burst: Option<GilbertElliott>,
    /// --burst for A->B only.
    #[arg(long, value_name = "P_GB,P_BG[,LOSS_IN_BAD]", value_parser = GilbertElliott::parse)]
    pub burst_a_to_b: Option<GilbertElliott>,
    /// --burst for B->A only.
    #[arg(long, value_name = "P_GB,P_BG[,LOSS_IN_BAD]", value_parser = GilbertElliott::parse)]
    pub burst_b_to_a: Option<GilbertElliott>,

    /// Reordering: with probability PROB a datagram is held back and sent right after the
    /// next DEPTH datagrams of its direction, or after MAX_HOLD_MS (default 1000) if fewer
    /// follow. Example: 1%,3.
    #[arg(long, value_name = "PROB,DEPTH[,MAX_HOLD_MS]", value_parser = Reorder::parse)]
    pub reorder: Option<Reorder>,
    /// --reorder for A->B only.
    #[arg(long, value_name = "PROB,DEPTH[,MAX_HOLD_MS]", value_parser = Reorder::parse)]
    pub reorder_a_to_b: Option<Reorder>,
    /// --reorder for B->A only.
    #[arg(long, value_name = "PROB,DEPTH[,MAX_HOLD_MS]", value_parser = Reorder::parse)]
    pub reorder_b_to_a: Option<Reorder>,

    /// Duplication: with this probability a datagram is sent twice (the copy with its own
    /// delay sample, never held back).
    #[arg(long, value_name = "P", value_parser = Probability::parse, default_value = "0")]
    pub duplicate: Probability,
    /// --duplicate for A->B only.
    #[arg(long, value_name = "P", value_parser = Probability::parse)]
    pub duplicate_a_to_b: Option<Probability>,
    /// --duplicate for B->A only.
    #[arg(long, value_name = "P", value_parser = Probability::parse)]
    pub duplicate_b_to_a: Option<Probability>,

    /// Delay added to every datagram, ms.
    #[arg(long, value_name = "MS", value_parser = parse_millis, default_value = "0")]
    pub delay: Duration,
    /// --delay for A->B only.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub delay_a_to_b: Option<Duration>,
    /// --delay for B->A only.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub delay_b_to_a: Option<Duration>,
    /// Jitter around --delay, ms: the half-width of a uniform spread or the standard
    /// deviation of a normal one (see --jitter-shape). A delay never goes below 0. Jitter
    /// reorders datagrams by itself.
    #[arg(long, value_name = "MS", value_parser = parse_millis, default_value = "0")]
    pub jitter: Duration,
    /// --jitter for A->B only.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub jitter_a_to_b: Option<Duration>,
    /// --jitter for B->A only.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub jitter_b_to_a: Option<Duration>,
    /// Distribution of the jitter.
    #[arg(long, value_enum, default_value_t = JitterShape::Uniform)]
    pub jitter_shape: JitterShape,

    /// Seed of every decision (the two directions draw from seeds derived from it). Random,
    /// and printed at start, when not given.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Write the counters of both directions as JSON to FILE every second and at exit.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
}

impl RelayArgs {
    /// The impairment of `direction`: the shared knobs with that direction's overrides.
    pub fn impairment(&self, direction: Direction) -> Impairment {
        fn pick<T>(direction: Direction, a_to_b: Option<T>, b_to_a: Option<T>) -> Option<T> {
            match direction {
                Direction::AToB => a_to_b,
                Direction::BToA => b_to_a,
            }
        }
        Impairment {
            loss: pick(direction, self.loss_a_to_b, self.loss_b_to_a).unwrap_or(self.loss),
            burst: pick(direction, self.burst_a_to_b, self.burst_b_to_a).or(self.burst),
            reorder: pick(direction, self.reorder_a_to_b, self.reorder_b_to_a).or(self.reorder),
            duplicate: pick(direction, self.duplicate_a_to_b, self.duplicate_b_to_a)
                .unwrap_or(self.duplicate),
            delay: Delay {
                base: pick(direction, self.delay_a_to_b, self.delay_b_to_a).unwrap_or(self.delay),
                jitter: pick(direction, self.jitter_a_to_b, self.jitter_b_to_a)
                    .unwrap_or(self.jitter),
                shape: self.jitter_shape,
            },
        }
    }
}

/// The seed of one direction's engine, derived from the relay's seed.
pub fn direction_seed(seed: u64, direction: Direction) -> u64 {
    match direction {
        Direction::AToB => seed,
        // any fixed odd constant keeps the two streams apart
        Direction::BToA => seed ^ 0x9e37_79b9_7f4a_7c15,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<RelayArgs, clap::Error> {
        let mut argv = vec![
            "qshield-impair",
            "--a-listen",
            "198.18.1.2:51821",
            "--b-listen",
            "198.18.2.1:51821",
            "--a-peer",
            "198.18.1.1:51820",
            "--b-peer",
            "198.18.2.2:51820",
        ];
        argv.extend_from_slice(extra);
        RelayArgs::try_parse_from(argv)
    }

    #[test]
    fn per_direction_flags_override_the_shared_ones() {
        let args = parse(&[
            "--loss",
            "30%",
            "--loss-b-to-a",
            "1%",
            "--delay",
            "5",
            "--reorder",
            "1%,3",
        ])
        .unwrap();
        let ab = args.impairment(Direction::AToB);
        let ba = args.impairment(Direction::BToA);
        assert!((ab.loss.value() - 0.3).abs() < 1e-12);
        assert!((ba.loss.value() - 0.01).abs() < 1e-12);
        assert_eq!(ab.delay.base, Duration::from_millis(5));
        assert_eq!(ba.reorder, ab.reorder);
        assert!(ab.reorder.is_some());
        assert_ne!(
            direction_seed(1, Direction::AToB),
            direction_seed(1, Direction::BToA)
        );
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_flag() {
        for (flag, value) in [
            ("--loss", "130%"),
            ("--burst", "1%"),
            ("--reorder", "1%,0"),
            ("--duplicate-a-to-b", "x"),
            ("--jitter", "-3"),
        ] {
            let err = parse(&[flag, value]).unwrap_err().to_string();
            assert!(
                err.contains(flag),
                "error for {flag} {value} does not name it: {err}"
            );
            assert!(
                err.contains(value),
                "error for {flag} {value} does not quote it: {err}"
            );
        }
    }
}
