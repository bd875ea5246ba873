//! Human units in the configs: byte sizes (`"8GiB"`, `"500MB"`, `1048576`) and durations
//! (`"90s"`, `"1h30m"`, `"500ms"`, `120`; the KME's config takes the strict
//! [`DurationSyntax::SingleUnit`] form). Parsing refuses anything ambiguous (fractions,
//! negative values, unknown units, overflow) rather than guessing; formatting produces the
//! shortest exact form, which parses back to the same value.

use std::time::Duration;

/// Why a size or duration string was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// The value was empty or only whitespace.
    #[error("empty value")]
    Empty,
    /// A minus sign: budgets and timers cannot be negative.
    #[error("must not be negative")]
    Negative,
    /// A number was expected where something else was found.
    #[error("expected a whole number before the unit, found '{0}'")]
    NotANumber(String),
    /// A fractional number (`1.5GiB`): write it in a smaller unit instead.
    #[error("fractions are not supported; use a smaller unit (e.g. 1536MiB, 90s)")]
    Fraction,
    /// The unit suffix is not one of the accepted ones.
    #[error("unknown unit '{unit}' (expected one of {expected})")]
    UnknownUnit {
        /// The suffix as written.
        unit: String,
        /// The accepted suffixes, for the message.
        expected: &'static str,
    },
    /// A number with no unit after it, inside a compound duration (`1h30`).
    #[error("missing unit after the last number (expected one of {DURATION_UNITS})")]
    MissingUnit,
    /// Duration parts out of order or repeated (`30m1h`, `1m1m`).
    #[error("duration parts must go from the largest unit to the smallest, each once")]
    Order,
    /// The value does not fit in the target type.
    #[error("value is too large")]
    Overflow,
}

/// The byte units accepted, for messages.
pub const BYTE_UNITS: &str =
    "B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)";
/// The duration units accepted, for messages.
pub const DURATION_UNITS: &str = "ms, s, m, h, d";

const BYTE_TABLE: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Milliseconds per duration unit, largest first (the required order of parts).
const DURATION_TABLE: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a byte size: a whole number with an optional unit (case-insensitive); no unit
/// means bytes. Whitespace between number and unit is allowed; `_` groups digits.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let (number, rest) = split_number(text.trim())?;
    let unit = rest.trim().to_ascii_lowercase();
    if unit.is_empty() {
        return Ok(number);
    }
    let factor = BYTE_TABLE
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, f)| *f)
        .ok_or_else(|| UnitError::UnknownUnit {
            unit: rest.trim().to_string(),
            expected: BYTE_UNITS,
        })?;
    number.checked_mul(factor).ok_or(UnitError::Overflow)
}

/// The duration forms a config field accepts: the daemon's config is lenient, the KME's
/// strict (its documented examples are all `<number><unit>`, and a bare `"10"` is refused
/// there rather than read as seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationSyntax {
    /// One or more `<number><unit>` parts from the largest unit to the smallest (`1h30m`,
    /// `90s`, `500ms`, units case-insensitive, spaces and `_` allowed), or a bare whole
    /// number meaning seconds.
    Compound,
    /// Exactly one whole number (digits only) directly followed by one of `s`, `m`, `h`,
    /// `d` (lowercase): `"90s"`, `"10m"`, `"2h"`, `"1d"`.
    SingleUnit,
}

/// The units [`DurationSyntax::SingleUnit`] accepts, for messages.
pub const SINGLE_DURATION_UNITS: &str = "s, m, h, d";

/// Parses a duration in the daemon's [`DurationSyntax::Compound`] form.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    parse_duration_as(text, DurationSyntax::Compound)
}

/// Parses a duration written in `syntax`.
pub fn parse_duration_as(text: &str, syntax: DurationSyntax) -> Result<Duration, UnitError> {
    match syntax {
        DurationSyntax::Compound => parse_compound_duration(text),
        DurationSyntax::SingleUnit => parse_single_unit_duration(text),
    }
}

/// [`DurationSyntax::SingleUnit`]: `<digits><s|m|h|d>`, nothing else.
fn parse_single_unit_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(UnitError::NotANumber(text.to_string()));
    }
    if unit.is_empty() {
        return Err(UnitError::MissingUnit);
    }
    let factor_ms = DURATION_TABLE
        .iter()
        .find(|(name, _)| *name == unit && *name != "ms")
        .map(|(_, f)| *f)
        .ok_or_else(|| UnitError::UnknownUnit {
            unit: unit.to_string(),
            expected: SINGLE_DURATION_UNITS,
        })?;
    let number = number.parse::<u64>().map_err(|_| UnitError::Overflow)?;
    number
        .checked_mul(factor_ms)
        .map(Duration::from_millis)
        .ok_or(UnitError::Overflow)
}

/// [`DurationSyntax::Compound`].
fn parse_compound_duration(text: &str) -> Result<Duration, UnitError> {
    let mut rest = text.trim();
    let (first, after) = split_number(rest)?;
    if after.trim().is_empty() {
        return Ok(Duration::from_secs(first));
    }
    let mut total_ms: u64 = 0;
    let mut smallest_seen = usize::MAX;
    while !rest.is_empty() {
        let (number, after) = split_number(rest)?;
        let after = after.trim_start();
        let (index, unit_len) = duration_unit(after)?;
        if smallest_seen != usize::MAX && index <= smallest_seen {
            return Err(UnitError::Order);
        }
        smallest_seen = index;
        let part = number
            .checked_mul(DURATION_TABLE[index].1)
            .ok_or(UnitError::Overflow)?;
        total_ms = total_ms.checked_add(part).ok_or(UnitError::Overflow)?;
        rest = after[unit_len..].trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// Recognises the unit at the start of `text`: (index in the table, length in bytes).
fn duration_unit(text: &str) -> Result<(usize, usize), UnitError> {
    let letters = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let word = &text[..letters];
    if word.is_empty() {
        return Err(UnitError::MissingUnit);
    }
    DURATION_TABLE
        .iter()
        .position(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|i| (i, letters))
        .ok_or_else(|| UnitError::UnknownUnit {
            unit: word.to_string(),
            expected: DURATION_UNITS,
        })
}

/// Splits a leading whole number (digits and `_`) from the rest of `text`.
fn split_number(text: &str) -> Result<(u64, &str), UnitError> {
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let digits: String = text[..end].chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return Err(UnitError::NotANumber(text.to_string()));
    }
    if text[end..].starts_with(['.', ',']) {
        return Err(UnitError::Fraction);
    }
    let number = digits.parse::<u64>().map_err(|_| UnitError::Overflow)?;
    Ok((number, &text[end..]))
}

/// The shortest exact form of a byte count: the largest binary or decimal unit that divides
/// it (`8GiB`, `500MB`), else plain bytes (`1234B`).
pub fn format_bytes(bytes: u64) -> String {
    const ORDER: [(&str, u64); 8] = [
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    ORDER
        .iter()
        .find(|(_, f)| bytes != 0 && bytes.is_multiple_of(*f))
        .map_or_else(|| format!("{bytes}B"), |(u, f)| format!("{}{u}", bytes / f))
}

/// The exact form of a duration in config syntax (`2m`, `1h30m`, `1s500ms`, `0s`), to
/// millisecond precision (sub-millisecond parts are dropped).
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, factor) in DURATION_TABLE {
        if ms >= factor {
            out.push_str(&format!("{}{unit}", ms / factor));
            ms %= factor;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_accept_every_unit() {
        assert_eq!(parse_bytes("8GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("8 GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("1kb"), Ok(1000));
        assert_eq!(parse_bytes("3KiB"), Ok(3072));
        assert_eq!(parse_bytes("2TiB"), Ok(2 << 40));
        assert_eq!(parse_bytes("7B"), Ok(7));
        assert_eq!(parse_bytes("1_048_576"), Ok(1 << 20));
        assert_eq!(parse_bytes("  42  "), Ok(42));
    }

    #[test]
    fn bytes_refuse_bad_input() {
        assert_eq!(parse_bytes(""), Err(UnitError::Empty));
        assert_eq!(parse_bytes("   "), Err(UnitError::Empty));
        assert_eq!(parse_bytes("-1GiB"), Err(UnitError::Negative));
        assert_eq!(parse_bytes("1.5GiB"), Err(UnitError::Fraction));
        assert!(matches!(parse_bytes("GiB"), Err(UnitError::NotANumber(_))));
        assert!(matches!(
            parse_bytes("8 gigs"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert_eq!(parse_bytes("16777216TiB"), Err(UnitError::Overflow));
        assert_eq!(
            parse_bytes("99999999999999999999"),
            Err(UnitError::Overflow)
        );
    }

    #[test]
    fn durations_accept_compound_forms() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m 5s"), Ok(Duration::from_secs(5405)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("25"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_refuse_bad_input() {
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
        assert_eq!(parse_duration("-5s"), Err(UnitError::Negative));
        assert_eq!(parse_duration("1.5h"), Err(UnitError::Fraction));
        assert_eq!(parse_duration("30m1h"), Err(UnitError::Order));
        assert_eq!(parse_duration("1m1m"), Err(UnitError::Order));
        assert!(matches!(
            parse_duration("5 fortnights"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert_eq!(parse_duration("1h30"), Err(UnitError::MissingUnit));
        assert!(matches!(parse_duration("h"), Err(UnitError::NotANumber(_))));
        assert_eq!(
            parse_duration("18446744073709551615d"),
            Err(UnitError::Overflow)
        );
    }

    #[test]
    fn single_unit_durations_are_strict() {
        let single = |t| parse_duration_as(t, DurationSyntax::SingleUnit);
        assert_eq!(single("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(single(" 10m "), Ok(Duration::from_secs(600)));
        assert_eq!(single("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(single("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(single("0s"), Ok(Duration::ZERO));
        assert_eq!(single(""), Err(UnitError::Empty));
        assert_eq!(single("-5s"), Err(UnitError::Negative));
        assert_eq!(single("10"), Err(UnitError::MissingUnit));
        assert!(matches!(single("s"), Err(UnitError::NotANumber(_))));
        for refused in ["500ms", "1h30m", "10 s", "10S", "1_000s", "1.5h"] {
            assert!(
                matches!(single(refused), Err(UnitError::UnknownUnit { .. })),
                "{refused}"
            );
        }
        assert_eq!(single("18446744073709551615s"), Err(UnitError::Overflow));
        assert_eq!(single("99999999999999999999s"), Err(UnitError::Overflow));
    }

    #[test]
    fn formatting_round_trips() {
        for b in [
            0,
            1,
            999,
            1000,
            1024,
            1 << 20,
            8 << 30,
            10 * (1 << 30),
            1234,
            u64::MAX,
        ] {
            assert_eq!(parse_bytes(&format_bytes(b)), Ok(b), "{b}");
        }
        assert_eq!(format_bytes(8 << 30), "8GiB");
        assert_eq!(format_bytes(500_000_000), "500MB");
        for ms in [0, 1, 500, 1000, 1500, 120_000, 5_400_000, 90_061_001] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
