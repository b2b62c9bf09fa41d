//! Params types shared by the standard operators: a duration a DAG author writes
//! as seconds (`60`, `0.5`) or with units (`"30s"`, `"5m"`, `"1h30m"`, `"2d"`), the
//! spelling DAG files use for `retry_delay`.

use std::fmt;
use std::time::Duration;

use aileron_sdk::schemars;
use serde::de::{self, Deserializer, Visitor};

/// A non-negative duration, from a number of seconds or a string with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

/// Its schema: a number of seconds (at least 0) or a string with units, which
/// the host cannot check further than being a string.
impl schemars::JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Seconds".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["number", "string"], "minimum": 0})
    }
}

/// As a number of seconds: how a default shows in the params schema.
impl serde::Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0.as_secs_f64())
    }
}

impl Seconds {
    /// Whole seconds, rounded up so a sub-second interval still waits.
    pub fn ceil_secs(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

impl<'de> de::Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"seconds (a number ≥ 0) or a duration such as "30s", "5m", "1h30m""#)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(|v| Seconds(Duration::from_secs(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Duration::try_from_secs_f64(v)
                    .map(Seconds)
                    .map_err(|_| E::invalid_value(de::Unexpected::Float(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_duration(v)
                    .map(Seconds)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

/// `"90"`, `"30s"`, `"5m"`, `"1h30m"`, `"1h 30m"`, `"2d"`: amounts with units `d`,
/// `h`, `m`, `s`; a bare number is seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let factor = match &rest[..unit] {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return None,
        };
        rest = rest[unit..].trim_start();
        total = total.checked_add(amount.checked_mul(factor)?)?;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(json: &str) -> Result<Seconds, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_unit_strings_are_durations() {
        assert_eq!(seconds("60"), Ok(Seconds(Duration::from_secs(60))));
        assert_eq!(seconds("0.5"), Ok(Seconds(Duration::from_millis(500))));
        assert_eq!(seconds(r#""5m""#), Ok(Seconds(Duration::from_secs(300))));
        assert_eq!(
            seconds(r#""1h 30m""#),
            Ok(Seconds(Duration::from_secs(5400)))
        );
        assert_eq!(
            seconds(r#""2d""#),
            Ok(Seconds(Duration::from_secs(172_800)))
        );
        assert_eq!(seconds(r#""90""#), Ok(Seconds(Duration::from_secs(90))));
        assert!(seconds("-1").is_err());
        assert!(seconds(r#""5 minutes""#).is_err());
        assert!(seconds(r#""""#).is_err());
        assert!(seconds("true").is_err());
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(Seconds(Duration::from_millis(1500)).ceil_secs(), 2);
        assert_eq!(Seconds(Duration::from_secs(3)).ceil_secs(), 3);
    }
}
