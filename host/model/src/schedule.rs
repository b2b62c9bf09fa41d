//! DAG schedules and their data intervals: parsing the `schedule` key and computing the
//! next DagRun exactly as Airflow's data-interval timetables do.
//!
//! Ported behaviour (Airflow 3, `airflow-core/src/airflow/timetables/`):
//! - a cron expression or preset is a `CronDataIntervalTimetable` (`interval.py` +
//!   `_cron.py`), an `every …` interval a `DeltaDataIntervalTimetable` (`_delta.py`),
//!   `@once` the `OnceTimetable` and no schedule the `NullTimetable` (`simple.py`);
//! - a run covers the data interval `[start, end)`, its logical date is `start`, and it
//!   is due once `end <= now` (Airflow's `run_after` is the interval end);
//! - `_DataIntervalTimetable.next_dagrun_info` is followed step by step, including the
//!   `catchup = false` rule ("skip to latest": only the most recent complete interval
//!   is scheduled) and the `end_date` bound (an interval *starting* after `end_date` is
//!   never scheduled; one starting at or before it is, even if it ends later).
//!
//! Cron expressions are evaluated in the DAG's time zone with croner, which handles
//! daylight-saving transitions: a daily run at midnight in Europe/Berlin has a 23-hour
//! interval on the spring-forward day and a 25-hour one on the fall-back day; a fixed
//! time that falls in a gap runs at the first instant after it; an hourly schedule
//! runs in both halves of a repeated hour (Airflow's "fold hour" handling).

use crate::units::{format_duration, parse_duration};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Airflow's cron presets (`airflow/utils/dates.py` `cron_presets`), plus the aliases
/// croniter accepts and Airflow passes through to it.
const PRESETS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@quarterly", "0 0 1 */3 *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// Why a `schedule` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "unknown schedule preset `{0}`; expected one of @once, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @annually"
    )]
    UnknownPreset(String),
    #[error(
        "cron expression `{expr}` has {fields} field(s); expected 5: minute hour day-of-month month day-of-week"
    )]
    FieldCount { expr: String, fields: usize },
    #[error("invalid cron expression `{expr}`: {reason}")]
    Cron { expr: String, reason: String },
    #[error("cron expression `{0}` never matches a date")]
    NeverMatches(String),
    #[error(
        "invalid interval `{0}`: expected `every` and a positive duration with units d, h, m, s (e.g. \"every 15m\", \"every 1h30m\", \"every 2d\")"
    )]
    Interval(String),
}

/// When a DAG runs by itself. Parsed from the DAG file's `schedule` key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Schedule {
    /// No `schedule` key: only manual triggers (Airflow's `schedule=None`).
    #[default]
    Manual,
    /// `@once`: one run at the start date, never again.
    Once,
    /// A cron expression or preset, evaluated in the DAG's time zone.
    Cron(CronSchedule),
    /// `every <duration>`: fixed-length intervals from the start date.
    Interval(Duration),
}

/// A validated cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// As written in the DAG file (a preset stays a preset), trimmed.
    written: String,
    /// The five-field expression evaluated (presets expanded).
    expression: String,
    /// Boxed: a parsed pattern is a few hundred bytes, and a `Schedule` is copied
    /// around with every `DagSpec`.
    cron: Box<Cron>,
}

/// A DagRun's data interval `[start, end)`. For `@once` and manual runs of
/// unscheduled DAGs it is a single instant (`start == end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DataInterval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl DataInterval {
    /// The zero-length interval at `at` (Airflow's `DataInterval.exact`).
    pub fn exact(at: Timestamp) -> Self {
        Self { start: at, end: at }
    }

    /// The run's logical date: the start of its data interval.
    pub fn logical_date(&self) -> Timestamp {
        self.start
    }

    /// The earliest moment the run may be created (Airflow's `run_after`).
    pub fn run_after(&self) -> Timestamp {
        self.end
    }

    /// True once the interval is complete and its run may be created.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.end <= now
    }
}

/// The DAG-level facts a schedule needs (Airflow's `TimeRestriction` plus the time
/// zone of the timetable).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleContext {
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub timezone: TimeZone,
    pub catchup: bool,
}

impl Default for ScheduleContext {
    fn default() -> Self {
        Self {
            start_date: None,
            end_date: None,
            timezone: TimeZone::UTC,
            catchup: false,
        }
    }
}

impl Schedule {
    /// Parses the DAG file's `schedule` value; `None` (key absent) is [`Schedule::Manual`].
    pub fn parse(text: Option<&str>) -> Result<Schedule, ScheduleError> {
        let Some(text) = text else {
            return Ok(Schedule::Manual);
        };
        let s = text.trim();
        if s == "@once" {
            return Ok(Schedule::Once);
        }
        if s.starts_with('@') {
            return PRESETS
                .iter()
                .find(|(name, _)| *name == s)
                .map(|(_, expr)| CronSchedule::new(s, expr).map(Schedule::Cron))
                .unwrap_or_else(|| Err(ScheduleError::UnknownPreset(s.to_owned())));
        }
        if let Some(rest) = s.strip_prefix("every") {
            // `every` must be a word of its own: "everyday" is a typo, not an interval.
            if rest.starts_with(char::is_whitespace) {
                return match parse_duration(rest) {
                    Ok(d) if !d.is_zero() => Ok(Schedule::Interval(d)),
                    _ => Err(ScheduleError::Interval(s.to_owned())),
                };
            }
        }
        CronSchedule::new(s, s).map(Schedule::Cron)
    }

    /// The canonical schedule string (re-parses to an equal schedule); `None` for
    /// [`Schedule::Manual`].
    pub fn to_schedule_string(&self) -> Option<String> {
        match self {
            Schedule::Manual => None,
            Schedule::Once => Some("@once".to_owned()),
            Schedule::Cron(c) => Some(c.written.clone()),
            Schedule::Interval(d) => Some(format!("every {}", format_duration(*d))),
        }
    }

    /// True for schedules that create runs periodically (cron and intervals).
    pub fn is_periodic(&self) -> bool {
        matches!(self, Schedule::Cron(_) | Schedule::Interval(_))
    }

    /// A short human description for the UI and CLI.
    pub fn description(&self) -> String {
        match self {
            // The first two are Airflow's own timetable descriptions.
            Schedule::Manual => "Never, external triggers only".to_owned(),
            Schedule::Once => "Once, as soon as possible".to_owned(),
            Schedule::Cron(c) => c.description(),
            Schedule::Interval(d) => format!("Every {}", format_duration(*d)),
        }
    }

    /// The data interval of the next scheduled run after `last` (the data interval of
    /// the latest *scheduled* run, `None` if there was none), or `None` if the DAG
    /// will never be scheduled again.
    ///
    /// The result may lie in the future: the run is created once
    /// [`DataInterval::is_due`]. `now` only matters for `catchup = false` (which
    /// skips to the latest complete interval) and `@once` without a start date, so
    /// call this when you are about to create runs, not long before.
    pub fn next_dagrun(
        &self,
        ctx: &ScheduleContext,
        last: Option<&DataInterval>,
        now: Timestamp,
    ) -> Option<DataInterval> {
        match self {
            Schedule::Manual => None,
            Schedule::Once => {
                if last.is_some() {
                    return None;
                }
                // Airflow: "@once" is scheduled at the start date regardless of
                // catchup; without a start date the DAG is ready now.
                let at = ctx.start_date.unwrap_or(now);
                if ctx.end_date.is_some_and(|latest| at > latest) {
                    return None;
                }
                Some(DataInterval::exact(at))
            }
            Schedule::Cron(_) | Schedule::Interval(_) => {
                let timetable = Timetable {
                    schedule: self,
                    tz: &ctx.timezone,
                };
                timetable.next_dagrun_info(ctx, last, now)
            }
        }
    }

    /// The data interval of a manual run with logical date `logical_date` (Airflow's
    /// `infer_manual_data_interval`): for a cron schedule, the last complete interval
    /// ending at or before `logical_date` (a run triggered at 01:00 of a daily DAG
    /// covers the previous day); for an interval schedule, the interval ending at
    /// `logical_date`; otherwise the instant `logical_date`.
    pub fn manual_interval(&self, ctx: &ScheduleContext, logical_date: Timestamp) -> DataInterval {
        let timetable = Timetable {
            schedule: self,
            tz: &ctx.timezone,
        };
        match self {
            Schedule::Manual | Schedule::Once => DataInterval::exact(logical_date),
            Schedule::Cron(_) => {
                let end = timetable.align_to_prev(logical_date);
                let start = timetable.prev(end).unwrap_or(end);
                DataInterval { start, end }
            }
            Schedule::Interval(_) => DataInterval {
                start: timetable.prev(logical_date).unwrap_or(logical_date),
                end: logical_date,
            },
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_schedule_string() {
            Some(s) => f.write_str(&s),
            None => f.write_str("None"),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(Some(s))
    }
}

// Stored as the canonical string (`null` for manual), so the metastore does not
// depend on croner's internal representation.
impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_schedule_string().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        Schedule::parse(text.as_deref()).map_err(serde::de::Error::custom)
    }
}

impl CronSchedule {
    /// Parses a five-field cron expression; `written` is what the user wrote (a
    /// preset name or the expression itself).
    fn new(written: &str, expression: &str) -> Result<Self, ScheduleError> {
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(ScheduleError::FieldCount {
                expr: written.to_owned(),
                fields,
            });
        }
        // Five fields exactly, like croniter in Airflow: no seconds, no year.
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expression).map_err(|e| ScheduleError::Cron {
            expr: written.to_owned(),
            reason: e.to_string(),
        })?;
        // "0 0 30 2 *" parses but never fires; say so now rather than never
        // scheduling. croner gives up at year 5000, far past any real pattern's
        // first match (even "29 February on a Monday" recurs within 28 years).
        let probe = Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
        if cron.find_next_occurrence(&probe, true).is_err() {
            return Err(ScheduleError::NeverMatches(written.to_owned()));
        }
        Ok(Self {
            written: written.to_owned(),
            expression: expression.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// Parses a cron expression or preset name.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        match Schedule::parse(Some(text))? {
            Schedule::Cron(c) => Ok(c),
            _ => Err(ScheduleError::Cron {
                expr: text.to_owned(),
                reason: "not a cron expression".to_owned(),
            }),
        }
    }

    /// As written in the DAG file (`@daily`, `0 2 * * *`).
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The five-field expression (presets expanded).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// A human description of when it fires.
    pub fn description(&self) -> String {
        let preset = match self.written.as_str() {
            "@hourly" => Some("Every hour, at minute 0"),
            "@daily" | "@midnight" => Some("Every day at 00:00"),
            "@weekly" => Some("Every Sunday at 00:00"),
            "@monthly" => Some("At 00:00 on day 1 of every month"),
            "@quarterly" => Some("At 00:00 on day 1 of January, April, July and October"),
            "@yearly" | "@annually" => Some("At 00:00 on January 1"),
            _ => None,
        };
        match preset {
            Some(text) => text.to_owned(),
            None => format!("{} ({})", self.cron.describe(), self.expression),
        }
    }

    /// The first tick strictly after `t`, in time zone `tz`.
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&t.to_zoned(tz.clone()), false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// The last tick strictly before `t`, in time zone `tz`.
    pub fn prev_before(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&t.to_zoned(tz.clone()), false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// True when `t` is a tick.
    pub fn is_tick(&self, t: Timestamp, tz: &TimeZone) -> bool {
        self.cron
            .find_next_occurrence(&t.to_zoned(tz.clone()), true)
            .is_ok_and(|z| z.timestamp() == t)
    }
}

/// Airflow's `_DataIntervalTimetable` over a cron or delta schedule: the primitive
/// operations `_get_next`, `_get_prev`, `_align_to_next`, `_align_to_prev` and
/// `_skip_to_latest`, and `next_dagrun_info` built from them.
struct Timetable<'a> {
    schedule: &'a Schedule,
    tz: &'a TimeZone,
}

impl Timetable<'_> {
    /// `_get_next`: the first schedule point strictly after `t`.
    fn next(&self, t: Timestamp) -> Option<Timestamp> {
        match self.schedule {
            Schedule::Cron(c) => c.next_after(t, self.tz),
            Schedule::Interval(d) => t.checked_add(*d).ok(),
            Schedule::Manual | Schedule::Once => None,
        }
    }

    /// `_get_prev`: the last schedule point strictly before `t`.
    fn prev(&self, t: Timestamp) -> Option<Timestamp> {
        match self.schedule {
            Schedule::Cron(c) => c.prev_before(t, self.tz),
            Schedule::Interval(d) => t.checked_sub(*d).ok(),
            Schedule::Manual | Schedule::Once => None,
        }
    }

    /// `_align_to_next`: `t` if it is a schedule point, else the next one. A delta
    /// schedule has no fixed points, so every time is aligned.
    ///
    /// Written as Airflow writes it (`prev(next(t)) != t`) rather than "is `t` a
    /// tick": a tick moved out of a DST gap (02:30 → 03:00) is not a match of the
    /// expression, but it is where the previous interval ended.
    fn align_to_next(&self, t: Timestamp) -> Timestamp {
        if !matches!(self.schedule, Schedule::Cron(_)) {
            return t;
        }
        match self.next(t) {
            Some(next) if self.prev(next) != Some(t) => next,
            _ => t,
        }
    }

    /// `_align_to_prev`: `t` if it is a schedule point, else the previous one.
    fn align_to_prev(&self, t: Timestamp) -> Timestamp {
        if !matches!(self.schedule, Schedule::Cron(_)) {
            return t;
        }
        match self.prev(t) {
            Some(prev) if self.next(prev) != Some(t) => prev,
            _ => t,
        }
    }

    /// `_skip_to_latest`: the start of the latest interval that is complete at `now`,
    /// but not before the (aligned) start date.
    fn skip_to_latest(&self, earliest: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
        let new_start = match self.schedule {
            Schedule::Cron(_) => {
                let last_start = self.prev(now)?;
                let next_start = self.next(last_start)?;
                if next_start == now {
                    // `now` is on a boundary: the interval ending now is complete.
                    last_start
                } else {
                    // Between boundaries: the interval ending at `last_start` is the
                    // latest complete one.
                    self.prev(last_start)?
                }
            }
            Schedule::Interval(d) => {
                // Airflow rounds `now` down to a multiple of the delta since the Unix
                // epoch, then steps one delta back.
                let step = i128::try_from(d.as_nanos()).ok()?;
                let now_ns = now.as_nanosecond();
                let rounded = Timestamp::from_nanosecond(now_ns - now_ns.rem_euclid(step)).ok()?;
                self.prev(rounded)?
            }
            Schedule::Manual | Schedule::Once => return None,
        };
        Some(match earliest {
            Some(e) => new_start.max(self.align_to_next(e)),
            None => new_start,
        })
    }

    /// `_DataIntervalTimetable.next_dagrun_info`.
    fn next_dagrun_info(
        &self,
        ctx: &ScheduleContext,
        last: Option<&DataInterval>,
        now: Timestamp,
    ) -> Option<DataInterval> {
        let earliest = if ctx.catchup {
            ctx.start_date.map(|e| self.align_to_next(e))
        } else {
            self.skip_to_latest(ctx.start_date, now)
        };
        let start = match last {
            // First run: the first schedule point at or after the earliest time.
            None => earliest?,
            Some(last) => {
                // Re-aligning copes with a schedule that changed since `last`.
                let aligned = self.align_to_prev(last.end);
                match earliest {
                    Some(e) => aligned.max(e),
                    None => aligned,
                }
            }
        };
        if ctx.end_date.is_some_and(|latest| start > latest) {
            return None;
        }
        let end = self.next(start)?;
        Some(DataInterval { start, end })
    }
}

#[cfg(test)]
mod tests;
