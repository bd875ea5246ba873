//! The impairment model: what one direction of the relay does to the datagrams it carries
//! ([`Impairment`] and its knobs, each a validated type), which direction a datagram
//! travels ([`Direction`]), and what the engine counted ([`DirectionCounters`]). Parsing
//! of the knobs' command-line spellings lives here too, so that every error says which
//! value was wrong and why.

use serde::Serialize;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// Why an impairment value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImpairError {
    /// A probability outside [0, 1] (or not a number).
    #[error("probability {value} is outside [0, 1] (write 0.3 or 30%)")]
    ProbabilityOutOfRange {
        /// The value as given.
        value: String,
    },
    /// A value that does not parse as a number.
    #[error("'{value}' is not a number")]
    NotANumber {
        /// The value as given.
        value: String,
    },
    /// A duration that is negative or not finite.
    #[error("duration {value} ms must be a finite number of milliseconds >= 0")]
    BadDuration {
        /// The value as given.
        value: String,
    },
    /// A reorder depth of 0 (a datagram held behind no other is not reordered).
    #[error("reorder depth must be at least 1 datagram, got '{value}'")]
    ZeroDepth {
        /// The value as given.
        value: String,
    },
    /// A list with the wrong number of comma-separated fields.
    #[error("expected {expected}, got '{value}'")]
    WrongShape {
        /// What the value should look like.
        expected: &'static str,
        /// The value as given.
        value: String,
    },
}

/// A probability in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
pub struct Probability(f64);

impl Probability {
    /// Never.
    pub const NEVER: Probability = Probability(0.0);
    /// Always.
    pub const ALWAYS: Probability = Probability(1.0);

    /// `p` if it lies in [0, 1].
    pub fn new(p: f64) -> Result<Self, ImpairError> {
        if (0.0..=1.0).contains(&p) {
            Ok(Self(p))
        } else {
            Err(ImpairError::ProbabilityOutOfRange {
                value: p.to_string(),
            })
        }
    }

    /// `0.3` or `30%`.
    pub fn parse(s: &str) -> Result<Self, ImpairError> {
        let t = s.trim();
        let (number, scale) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 100.0),
            None => (t, 1.0),
        };
        let v: f64 = number.parse().map_err(|_| ImpairError::NotANumber {
            value: s.to_string(),
        })?;
        Self::new(v / scale).map_err(|_| ImpairError::ProbabilityOutOfRange {
            value: s.to_string(),
        })
    }

    /// The probability as a number in [0, 1].
    pub fn value(self) -> f64 {
        self.0
    }

    /// True when it can never happen.
    pub fn is_never(self) -> bool {
        self.0 == 0.0
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

/// Parses a duration in milliseconds: `20`, `2.5` or `20ms`.
pub fn parse_millis(s: &str) -> Result<Duration, ImpairError> {
    let t = s.trim();
    let number = t.strip_suffix("ms").unwrap_or(t).trim();
    let ms: f64 = number.parse().map_err(|_| ImpairError::NotANumber {
        value: s.to_string(),
    })?;
    if !ms.is_finite() || ms < 0.0 {
        return Err(ImpairError::BadDuration {
            value: s.to_string(),
        });
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// Serializes a duration as milliseconds (the unit of the command line).
fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Burst loss: a two-state Gilbert-Elliott channel. Each datagram is lost with
/// `loss_in_bad` while the channel is bad (never while it is good), then the channel moves
/// good → bad with `good_to_bad` and bad → good with `bad_to_good`. The long-run loss is
/// `good_to_bad / (good_to_bad + bad_to_good) * loss_in_bad`; bursts last `1 / bad_to_good`
/// datagrams on average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GilbertElliott {
    /// Per datagram, from the good to the bad state.
    pub good_to_bad: Probability,
    /// Per datagram, from the bad back to the good state.
    pub bad_to_good: Probability,
    /// Loss while in the bad state.
    pub loss_in_bad: Probability,
}

impl GilbertElliott {
    /// `P_GB,P_BG` or `P_GB,P_BG,LOSS_IN_BAD` (loss in the bad state defaults to 100 %).
    pub fn parse(s: &str) -> Result<Self, ImpairError> {
        let fields: Vec<&str> = s.split(',').collect();
        let shape = || ImpairError::WrongShape {
            expected: "P_GB,P_BG or P_GB,P_BG,LOSS_IN_BAD (e.g. 1%,25%)",
            value: s.to_string(),
        };
        let (gb, bg, bad) = match fields.as_slice() {
            [gb, bg] => (gb, bg, None),
            [gb, bg, bad] => (gb, bg, Some(bad)),
            _ => return Err(shape()),
        };
        Ok(Self {
            good_to_bad: Probability::parse(gb)?,
            bad_to_good: Probability::parse(bg)?,
            loss_in_bad: bad.map_or(Ok(Probability::ALWAYS), |b| Probability::parse(b))?,
        })
    }

    /// The long-run fraction of datagrams this channel loses.
    pub fn stationary_loss(&self) -> f64 {
        let (gb, bg) = (self.good_to_bad.value(), self.bad_to_good.value());
        if gb + bg == 0.0 {
            return 0.0;
        }
        gb / (gb + bg) * self.loss_in_bad.value()
    }
}

/// Default longest time a reordered datagram is held when fewer than `depth` datagrams
/// follow it (the end of a stream must not strand it).
pub const DEFAULT_REORDER_MAX_HOLD: Duration = Duration::from_secs(1);

/// Reordering: with `probability`, a datagram is held back and sent right after the next
/// `depth` datagrams of its direction (or after `max_hold`, whichever comes first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reorder {
    /// Per datagram.
    pub probability: Probability,
    /// Later datagrams that overtake a held one.
    pub depth: NonZeroU32,
    /// Longest hold.
    #[serde(rename = "max_hold_ms", serialize_with = "as_millis")]
    pub max_hold: Duration,
}

impl Reorder {
    /// `PROB,DEPTH` or `PROB,DEPTH,MAX_HOLD_MS` (max hold defaults to 1000 ms).
    pub fn parse(s: &str) -> Result<Self, ImpairError> {
        let fields: Vec<&str> = s.split(',').collect();
        let (p, depth, hold) = match fields.as_slice() {
            [p, d] => (p, d, None),
            [p, d, h] => (p, d, Some(h)),
            _ => {
                return Err(ImpairError::WrongShape {
                    expected: "PROB,DEPTH or PROB,DEPTH,MAX_HOLD_MS (e.g. 1%,3)",
                    value: s.to_string(),
                });
            }
        };
        let depth_value: u32 = depth.trim().parse().map_err(|_| ImpairError::NotANumber {
            value: depth.to_string(),
        })?;
        Ok(Self {
            probability: Probability::parse(p)?,
            depth: NonZeroU32::new(depth_value).ok_or_else(|| ImpairError::ZeroDepth {
                value: depth.to_string(),
            })?,
            max_hold: hold.map_or(Ok(DEFAULT_REORDER_MAX_HOLD), |h| parse_millis(h))?,
        })
    }
}

/// How jitter is spread around the base delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JitterShape {
    /// Uniform in [delay − jitter, delay + jitter].
    #[default]
    Uniform,
    /// Normal with mean delay and standard deviation jitter.
    Normal,
}

/// Delay: each datagram waits `base` plus a jitter sample (never less than zero). Jitter
/// reorders datagrams by itself, as it does on a real path.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Delay {
    /// Mean delay.
    #[serde(rename = "base_ms", serialize_with = "as_millis")]
    pub base: Duration,
    /// Half-width (uniform) or standard deviation (normal).
    #[serde(rename = "jitter_ms", serialize_with = "as_millis")]
    pub jitter: Duration,
    /// The jitter's distribution.
    pub shape: JitterShape,
}

impl Delay {
    /// True when every datagram leaves at once.
    pub fn is_zero(&self) -> bool {
        self.base.is_zero() && self.jitter.is_zero()
    }
}

/// Everything one direction of the relay does to its datagrams. The default does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Impairment {
    /// Independent random loss per datagram.
    pub loss: Probability,
    /// Burst loss, on top of the random loss.
    pub burst: Option<GilbertElliott>,
    /// Reordering.
    pub reorder: Option<Reorder>,
    /// Per datagram, one extra copy.
    pub duplicate: Probability,
    /// Delay and jitter.
    pub delay: Delay,
}

/// Which way a datagram crosses the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From side A's daemon to side B's.
    AToB,
    /// From side B's daemon to side A's.
    BToA,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::AToB, Direction::BToA];

    /// `a_to_b` or `b_to_a` (the key in the stats file).
    pub fn key(self) -> &'static str {
        match self {
            Direction::AToB => "a_to_b",
            Direction::BToA => "b_to_a",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AToB => "A->B",
            Direction::BToA => "B->A",
        })
    }
}

/// What the engine did in one direction, since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DirectionCounters {
    /// Datagrams handed to the engine.
    pub received: u64,
    /// Datagrams handed back for sending (duplicates included).
    pub forwarded: u64,
    /// Lost to the independent random loss.
    pub dropped_random: u64,
    /// Lost to the burst (Gilbert-Elliott) loss.
    pub dropped_burst: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back behind later ones.
    pub reordered: u64,
    /// Datagrams (copies included) given a non-zero delay.
    pub delayed: u64,
}

impl DirectionCounters {
    /// Datagrams the engine still holds: received, minus dropped, plus copies, minus
    /// forwarded.
    pub fn in_flight(&self) -> u64 {
        (self.received + self.duplicated)
            - (self.dropped_random + self.dropped_burst + self.forwarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_parse_as_fractions_or_percentages_and_refuse_the_rest() {
        assert_eq!(Probability::parse("0.3").unwrap().value(), 0.3);
        assert!((Probability::parse("30%").unwrap().value() - 0.3).abs() < 1e-12);
        assert_eq!(Probability::parse(" 1 ").unwrap(), Probability::ALWAYS);
        assert!(matches!(
            Probability::parse("1.5"),
            Err(ImpairError::ProbabilityOutOfRange { .. })
        ));
        assert!(matches!(
            Probability::parse("-1%"),
            Err(ImpairError::ProbabilityOutOfRange { .. })
        ));
        assert!(matches!(
            Probability::parse("NaN"),
            Err(ImpairError::ProbabilityOutOfRange { .. })
        ));
        assert!(matches!(
            Probability::parse("lots"),
            Err(ImpairError::NotANumber { .. })
        ));
    }

    #[test]
    fn compound_knobs_parse_with_their_defaults() {
        let ge = GilbertElliott::parse("1%,25%").unwrap();
        assert_eq!(ge.loss_in_bad, Probability::ALWAYS);
        assert!((ge.stationary_loss() - 0.01 / 0.26).abs() < 1e-12);
        assert!(GilbertElliott::parse("1%").is_err());
        let r = Reorder::parse("5%,3").unwrap();
        assert_eq!(r.depth.get(), 3);
        assert_eq!(r.max_hold, DEFAULT_REORDER_MAX_HOLD);
        assert_eq!(
            Reorder::parse("5%,3,20").unwrap().max_hold,
            Duration::from_millis(20)
        );
        assert!(matches!(
            Reorder::parse("5%,0"),
            Err(ImpairError::ZeroDepth { .. })
        ));
        assert_eq!(parse_millis("2.5ms").unwrap(), Duration::from_micros(2500));
        assert!(matches!(
            parse_millis("-1"),
            Err(ImpairError::BadDuration { .. })
        ));
    }
}
