//! Human-written quantities in DAG files: durations ("30s", "1h30m", "2d") and byte
//! sizes ("64MiB"), with their parsers, their canonical spelling and serde helpers.

use std::fmt::Write as _;
use std::time::Duration;

/// Why a duration or a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "invalid duration `{0}`: expected a number of seconds or amounts with units d, h, m, s (e.g. \"30s\", \"5m\", \"1h30m\", \"2d\")"
    )]
    Duration(String),
    #[error(
        "invalid size `{0}`: expected a number of bytes or an amount with a unit B, KiB, MiB, GiB, KB, MB or GB (e.g. \"64MiB\")"
    )]
    Size(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// Parses a duration written as amounts with units, largest first or not:
/// `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1h 30m"`. A bare number is seconds.
/// Units: `d` (24 h), `h`, `m`, `s`. Zero is allowed here; callers that need a
/// positive duration check for it.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(UnitError::Duration(text.to_owned()));
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(UnitError::Duration(text.to_owned()));
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| UnitError::Overflow(text.to_owned()))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let factor = match &rest[..unit_len] {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(UnitError::Duration(text.to_owned())),
        };
        rest = rest[unit_len..].trim_start();
        total = amount
            .checked_mul(factor)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| UnitError::Overflow(text.to_owned()))?;
    }
    Ok(Duration::from_secs(total))
}

/// The canonical spelling of a whole-second duration: `"1h30m"`, `"2d"`, `"0s"`.
/// `parse_duration(&format_duration(d)) == d` for every whole-second `d`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            let _ = write!(out, "{}{unit}", secs / size);
            secs %= size;
        }
    }
    out
}

/// Parses a byte size: a bare number of bytes, or an amount with a unit. Binary
/// units (`KiB`, `MiB`, `GiB`) are powers of 1024, decimal ones (`KB`, `MB`, `GB`)
/// powers of 1000, as their names say.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let s = text.trim();
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err(UnitError::Size(text.to_owned()));
    }
    let amount: u64 = s[..digits]
        .parse()
        .map_err(|_| UnitError::Overflow(text.to_owned()))?;
    let factor: u64 = match s[digits..].trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(UnitError::Size(text.to_owned())),
    };
    amount
        .checked_mul(factor)
        .ok_or_else(|| UnitError::Overflow(text.to_owned()))
}

/// A byte size in the largest binary unit that spells it exactly: `"4GiB"`,
/// `"64MiB"`, `"1536B"`. `parse_size(&format_size(n)) == n` for every `n`.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Serde helper: a `Duration` stored as whole seconds (what the metastore keeps).
pub mod serde_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Serde helper: an `Option<Duration>` stored as whole seconds or `null`.
pub mod serde_secs_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|secs| secs.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("5m"), Ok(300));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("1h 30m"), Ok(5400));
        assert_eq!(secs("2d"), Ok(172_800));
        assert_eq!(secs("90"), Ok(90));
        assert_eq!(secs("0s"), Ok(0));
        for bad in ["", "m", "5x", "1.5h", "-3s", "h5", "5 m s", "1w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(UnitError::Overflow(_))
        ));
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .to_string()
                .starts_with("invalid duration `5x`")
        );
    }

    #[test]
    fn canonical_durations_round_trip() {
        for secs in [0, 1, 59, 60, 61, 3600, 5400, 86_400, 90_061] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn sizes_format_in_the_largest_exact_unit_and_round_trip() {
        assert_eq!(format_size(1 << 32), "4GiB");
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(3 << 10), "3KiB");
        assert_eq!(format_size(0), "0B");
        for n in [0, 1, 1023, 1024, 1536, 64 << 20, (1 << 30) + 1, u64::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12B"), Ok(12));
        assert!(parse_size("64mb").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(matches!(
            parse_size("99999999999GiB"),
            Err(UnitError::Overflow(_))
        ));
    }
}
