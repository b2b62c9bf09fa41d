//! Datetimes in the template context (Airflow passes pendulum datetimes) and
//! `macros`, Airflow's date helpers.

use super::render::invalid;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use minijinja::ErrorKind;
use minijinja::value::{Kwargs, Object, ObjectRepr, Value as MjValue, from_args};
use std::fmt;
use std::sync::Arc;

/// Python's `isoformat()`: microseconds only when non-zero, offset as +HH:MM.
pub(super) fn iso(z: &Zoned) -> String {
    let micros = z.subsec_nanosecond() / 1_000;
    let base = z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let offset = z.strftime("%:z").to_string();
    if micros == 0 {
        format!("{base}{offset}")
    } else {
        format!("{base}.{micros:06}{offset}")
    }
}

/// Airflow's dates are UTC datetimes.
pub(super) fn utc(t: Timestamp) -> Zoned {
    t.to_zoned(TimeZone::UTC)
}

/// A datetime in the template context (Airflow passes pendulum datetimes).
#[derive(Debug, Clone)]
pub(super) struct DateTime(pub(super) Zoned);

impl DateTime {
    fn shifted(&self, kwargs: &Kwargs, sign: i64) -> Result<MjValue, minijinja::Error> {
        let mut secs: i64 = 0;
        for (unit, size) in [
            ("weeks", 604_800),
            ("days", 86_400),
            ("hours", 3_600),
            ("minutes", 60),
            ("seconds", 1),
        ] {
            let n: Option<i64> = kwargs.get(unit)?;
            secs = n
                .unwrap_or(0)
                .checked_mul(size)
                .and_then(|s| secs.checked_add(s))
                .ok_or_else(|| invalid("date arithmetic overflow"))?;
        }
        kwargs.assert_all_used()?;
        let moved = self
            .0
            .checked_add(SignedDuration::from_secs(secs * sign))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(MjValue::from_object(DateTime(moved)))
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&iso(&self.0))
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let z = &self.0;
        Some(match key.as_str()? {
            "year" => MjValue::from(z.year()),
            "month" => MjValue::from(z.month()),
            "day" => MjValue::from(z.day()),
            "hour" => MjValue::from(z.hour()),
            "minute" => MjValue::from(z.minute()),
            "second" => MjValue::from(z.second()),
            "microsecond" => MjValue::from(z.subsec_nanosecond() / 1_000),
            "timezone_name" | "tz" => MjValue::from(z.time_zone().iana_name().unwrap_or("UTC")),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[MjValue],
    ) -> Result<MjValue, minijinja::Error> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = from_args(args)?;
                jiff::fmt::strtime::format(fmt.as_str(), &self.0)
                    .map(MjValue::from)
                    .map_err(|e| invalid(format!("strftime: {e}")))
            }
            "isoformat" => {
                let () = from_args(args)?;
                Ok(MjValue::from(iso(&self.0)))
            }
            "timestamp" => {
                let () = from_args(args)?;
                Ok(MjValue::from(
                    self.0.timestamp().as_millisecond() as f64 / 1000.0,
                ))
            }
            "date" | "to_date_string" => {
                let () = from_args(args)?;
                Ok(MjValue::from(self.0.strftime("%Y-%m-%d").to_string()))
            }
            "in_timezone" | "in_tz" | "astimezone" => {
                let (name,): (String,) = from_args(args)?;
                let tz = TimeZone::get(&name)
                    .map_err(|e| invalid(format!("unknown time zone `{name}`: {e}")))?;
                Ok(MjValue::from_object(DateTime(self.0.with_time_zone(tz))))
            }
            "add" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                self.shifted(&kwargs, 1)
            }
            "subtract" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                self.shifted(&kwargs, -1)
            }
            _ => Err(minijinja::Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }

    fn custom_cmp(
        self: &Arc<Self>,
        other: &minijinja::value::DynObject,
    ) -> Option<std::cmp::Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.0.timestamp().cmp(&other.0.timestamp()))
    }
}

/// `macros`: Airflow's date helpers.
#[derive(Debug)]
pub(super) struct Macros;

impl Object for Macros {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[MjValue],
    ) -> Result<MjValue, minijinja::Error> {
        match method {
            // `ds_add('2015-01-01', 5)` → '2015-01-06'
            "ds_add" => {
                let (ds, days): (String, i64) = from_args(args)?;
                let date: jiff::civil::Date = ds.parse().map_err(|e| {
                    invalid(format!("ds_add: `{ds}` is not a YYYY-MM-DD date: {e}"))
                })?;
                let moved = date
                    .checked_add(
                        jiff::Span::new()
                            .try_days(days)
                            .map_err(|e| invalid(e.to_string()))?,
                    )
                    .map_err(|e| invalid(e.to_string()))?;
                Ok(MjValue::from(moved.to_string()))
            }
            // `ds_format('2015-01-01', '%Y-%m-%d', '%m-%d-%y')` → '01-01-15'
            "ds_format" => {
                let (ds, input, output): (String, String, String) = from_args(args)?;
                let parsed = jiff::fmt::strtime::BrokenDownTime::parse(input.as_str(), ds.as_str())
                    .map_err(|e| invalid(format!("ds_format: {e}")))?;
                parsed
                    .to_string(output.as_str())
                    .map(MjValue::from)
                    .map_err(|e| invalid(format!("ds_format: {e}")))
            }
            _ => Err(minijinja::Error::from(ErrorKind::UnknownMethod)),
        }
    }
}
