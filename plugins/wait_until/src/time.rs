//! Parsing the datetimes `wait_until` accepts, without a date library: RFC 3339
//! as the host's templates render it, and plain dates.

use std::time::{Duration, SystemTime};

/// `2026-03-01T06:00:00Z`, `2026-03-01T07:00:00.5+01:00`, `2026-03-01 06:00`,
/// `2026-03-01T06:00:00+00:00[UTC]` (an RFC 9557 annotation is ignored),
/// `2026-03-01` (midnight). Without an offset the time is UTC.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    // An RFC 9557 time zone annotation names the zone the offset already encodes.
    let text = match text.find('[') {
        Some(at) if text.ends_with(']') => &text[..at],
        _ => text,
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let days = days_from_date(date)?;
    let (seconds_of_day, nanos, offset) = match time {
        None => (0, 0, 0),
        Some(time) => parse_time(time)?,
    };
    let secs = days * 86_400 + seconds_of_day - offset;
    if secs >= 0 {
        Some(SystemTime::UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos))
    } else {
        let before = Duration::new(secs.unsigned_abs(), 0) - Duration::new(0, nanos);
        SystemTime::UNIX_EPOCH.checked_sub(before)
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (proleptic Gregorian).
fn days_from_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (number(y)?, number(m)?, number(d)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `HH:MM[:SS[.fraction]][Z|±HH:MM|±HHMM|±HH]` → (seconds of day, nanoseconds,
/// offset east of UTC in seconds).
fn parse_time(time: &str) -> Option<(i64, u32, i64)> {
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => (&time[..at], Some(&time[at..])),
        None => (time, None),
    };
    let (clock, fraction) = match clock.split_once(['.', ',']) {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (clock, None),
    };
    let mut fields = clock.split(':');
    let h: i64 = two_digits(fields.next()?)?;
    let m: i64 = two_digits(fields.next()?)?;
    let s: i64 = match fields.next() {
        Some(s) => two_digits(s)?,
        None => 0,
    };
    // 60 admits a leap second, counted as the next second's start.
    if fields.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<9}").parse().ok()?
        }
        Some(_) => return None,
    };
    let offset = match offset {
        None | Some("Z" | "z") => 0,
        Some(o) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits = o[1..].replace(':', "");
            let (oh, om) = match digits.len() {
                2 => (two_digits(&digits)?, 0),
                4 => (two_digits(&digits[..2])?, two_digits(&digits[2..])?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some((h * 3600 + m * 60 + s, nanos, offset))
}

fn two_digits(text: &str) -> Option<i64> {
    (text.len() == 2).then(|| number(text)).flatten()
}

fn number(text: &str) -> Option<i64> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(text: &str) -> Option<f64> {
        parse(text).map(|t| match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        })
    }

    #[test]
    fn rfc3339_and_dates_parse_to_the_instant() {
        assert_eq!(epoch("1970-01-01"), Some(0.0));
        assert_eq!(epoch("2026-03-01T06:00:00Z"), Some(1_772_344_800.0));
        assert_eq!(epoch("2026-03-01T07:00:00+01:00"), Some(1_772_344_800.0));
        assert_eq!(epoch("2026-03-01t05:30:00-0030"), Some(1_772_344_800.0));
        assert_eq!(epoch("2026-03-01 06:00"), Some(1_772_344_800.0));
        assert_eq!(
            epoch("2026-03-01T06:00:00.25+00:00"),
            Some(1_772_344_800.25)
        );
        assert_eq!(
            epoch("2026-03-01T06:00:00+00:00[UTC]"),
            Some(1_772_344_800.0)
        );
        assert_eq!(epoch("2024-02-29"), Some(1_709_164_800.0));
        assert_eq!(epoch("1969-12-31T23:59:59Z"), Some(-1.0));
    }

    #[test]
    fn malformed_datetimes_are_refused() {
        for bad in [
            "",
            "tomorrow",
            "2026-3-1",
            "2026-02-29",
            "2026-13-01",
            "2026-03-01T25:00",
            "2026-03-01T06",
            "2026-03-01T06:00:00+1",
            "2026-03-01T06:00:00.",
            "2026-03-01T06:00:00Zjunk",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
