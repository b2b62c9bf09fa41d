//! Tests of schedules: cron and presets, data intervals, catch-up and time zones.

use super::*;

/// A timestamp from RFC 3339, or a plain date meaning midnight UTC.
fn ts(s: &str) -> Timestamp {
    if s.len() == 10 {
        return format!("{s}T00:00:00Z").parse().unwrap();
    }
    s.parse().unwrap()
}

fn ctx(start: &str, catchup: bool) -> ScheduleContext {
    ScheduleContext {
        start_date: Some(ts(start)),
        end_date: None,
        timezone: TimeZone::UTC,
        catchup,
    }
}

/// Every interval the scheduler would create, in order, as a scheduler that
/// wakes at `now` and creates every due run would.
fn due_runs(schedule: &Schedule, ctx: &ScheduleContext, now: Timestamp) -> Vec<DataInterval> {
    let mut out: Vec<DataInterval> = Vec::new();
    while let Some(next) = schedule.next_dagrun(ctx, out.last(), now) {
        if !next.is_due(now) {
            break;
        }
        out.push(next);
        assert!(out.len() < 10_000, "runaway schedule");
    }
    out
}

fn starts(runs: &[DataInterval]) -> Vec<String> {
    runs.iter().map(|r| r.start.to_string()).collect()
}

#[test]
fn parses_every_form() {
    assert_eq!(Schedule::parse(None), Ok(Schedule::Manual));
    assert_eq!(Schedule::parse(Some("@once")), Ok(Schedule::Once));
    for (preset, expr) in PRESETS {
        match Schedule::parse(Some(preset)).unwrap() {
            Schedule::Cron(c) => {
                assert_eq!(c.expression(), *expr);
                assert_eq!(c.written(), *preset);
            }
            other => panic!("{preset} parsed as {other:?}"),
        }
    }
    assert_eq!(
        Schedule::parse(Some("every 15m")),
        Ok(Schedule::Interval(Duration::from_secs(900)))
    );
    assert_eq!(
        Schedule::parse(Some("every 1h30m")),
        Ok(Schedule::Interval(Duration::from_secs(5400)))
    );
    assert_eq!(
        Schedule::parse(Some("every 2d")),
        Ok(Schedule::Interval(Duration::from_secs(172_800)))
    );
    assert!(matches!(
        Schedule::parse(Some("0 2 * * 1-5")),
        Ok(Schedule::Cron(_))
    ));
}

#[test]
fn rejects_garbage_with_clear_messages() {
    let err = |s: &str| Schedule::parse(Some(s)).unwrap_err().to_string();
    assert_eq!(
        err("@fortnightly"),
        "unknown schedule preset `@fortnightly`; expected one of @once, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @annually"
    );
    assert_eq!(
        err("0 2 * *"),
        "cron expression `0 2 * *` has 4 field(s); expected 5: minute hour day-of-month month day-of-week"
    );
    assert_eq!(
        err("0 0 2 * * *"),
        "cron expression `0 0 2 * * *` has 6 field(s); expected 5: minute hour day-of-month month day-of-week"
    );
    assert!(err("0 25 * * *").starts_with("invalid cron expression `0 25 * * *`: "));
    assert!(err("banana split * * *").starts_with("invalid cron expression"));
    assert_eq!(
        err("0 0 30 2 *"),
        "cron expression `0 0 30 2 *` never matches a date"
    );
    assert!(err("every 0m").starts_with("invalid interval `every 0m`"));
    assert!(err("every fortnight").starts_with("invalid interval"));
    assert!(err("daily").contains("has 1 field(s)"));
}

#[test]
fn serializes_as_the_canonical_string() {
    for text in ["@daily", "0 2 * * 1-5", "@once", "every 1h30m"] {
        let s = Schedule::parse(Some(text)).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }
    assert_eq!(serde_json::to_string(&Schedule::Manual).unwrap(), "null");
    assert_eq!(
        serde_json::from_str::<Schedule>("null").unwrap(),
        Schedule::Manual
    );
    assert_eq!(
        Schedule::parse(Some("every 90m"))
            .unwrap()
            .to_schedule_string()
            .unwrap(),
        "every 1h30m"
    );
}

#[test]
fn hourly_catchup_creates_every_complete_interval() {
    let s = Schedule::parse(Some("@hourly")).unwrap();
    let c = ctx("2026-01-01T00:30:00Z", true);
    let runs = due_runs(&s, &c, ts("2026-01-01T04:10:00Z"));
    // The first interval is aligned to the first tick at/after the start date.
    assert_eq!(
        starts(&runs),
        [
            "2026-01-01T01:00:00Z",
            "2026-01-01T02:00:00Z",
            "2026-01-01T03:00:00Z"
        ]
    );
    assert_eq!(runs[0].end, ts("2026-01-01T02:00:00Z"));
    // The next one is known but not yet due.
    let next = s
        .next_dagrun(&c, runs.last(), ts("2026-01-01T04:10:00Z"))
        .unwrap();
    assert_eq!(next.start, ts("2026-01-01T04:00:00Z"));
    assert!(!next.is_due(ts("2026-01-01T04:59:59Z")));
    assert!(next.is_due(ts("2026-01-01T05:00:00Z")));
}

#[test]
fn daily_catchup_on_and_off() {
    let s = Schedule::parse(Some("@daily")).unwrap();
    let now = ts("2026-01-05T10:00:00Z");
    let on = due_runs(&s, &ctx("2026-01-01", true), now);
    assert_eq!(
        starts(&on),
        [
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z"
        ]
    );
    // catchup = false: only the latest complete interval.
    let off = due_runs(&s, &ctx("2026-01-01", false), now);
    assert_eq!(starts(&off), ["2026-01-04T00:00:00Z"]);
    assert_eq!(off[0].end, ts("2026-01-05T00:00:00Z"));
    // ...and after the scheduler was down, it skips again from the last run.
    let later = ts("2026-01-09T10:00:00Z");
    let next = s
        .next_dagrun(&ctx("2026-01-01", false), off.last(), later)
        .unwrap();
    assert_eq!(next.start, ts("2026-01-08T00:00:00Z"));
    // Exactly on a boundary, the interval that just ended is the latest.
    let on_boundary = due_runs(&s, &ctx("2026-01-01", false), ts("2026-01-05T00:00:00Z"));
    assert_eq!(starts(&on_boundary), ["2026-01-04T00:00:00Z"]);
}

#[test]
fn catchup_false_never_goes_before_start_date() {
    let s = Schedule::parse(Some("@daily")).unwrap();
    let c = ctx("2026-03-10T00:00:00Z", false);
    assert!(due_runs(&s, &c, ts("2026-03-01T00:00:00Z")).is_empty());
    let next = s.next_dagrun(&c, None, ts("2026-03-01T00:00:00Z")).unwrap();
    assert_eq!(next.start, ts("2026-03-10T00:00:00Z"));
    // No start date at all: the latest complete interval.
    let free = ScheduleContext::default();
    let next = s
        .next_dagrun(&free, None, ts("2026-03-01T12:00:00Z"))
        .unwrap();
    assert_eq!(next.start, ts("2026-02-28T00:00:00Z"));
    // catchup = true without a start date never schedules (as Airflow).
    let catchup = ScheduleContext {
        catchup: true,
        ..ScheduleContext::default()
    };
    assert_eq!(
        s.next_dagrun(&catchup, None, ts("2026-03-01T12:00:00Z")),
        None
    );
}

#[test]
fn weekly_intervals() {
    let s = Schedule::parse(Some("@weekly")).unwrap();
    // 2026-01-01 is a Thursday; the first Sunday tick is 2026-01-04.
    let runs = due_runs(&s, &ctx("2026-01-01", true), ts("2026-01-20T00:00:00Z"));
    assert_eq!(
        starts(&runs),
        ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]
    );
    assert_eq!(runs[1].end, ts("2026-01-18T00:00:00Z"));
}

#[test]
fn quarterly_preset() {
    let s = Schedule::parse(Some("@quarterly")).unwrap();
    let runs = due_runs(&s, &ctx("2026-01-01", true), ts("2026-10-02T00:00:00Z"));
    assert_eq!(
        starts(&runs),
        [
            "2026-01-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
            "2026-07-01T00:00:00Z"
        ]
    );
}

#[test]
fn interval_schedules() {
    let s = Schedule::parse(Some("every 15m")).unwrap();
    let c = ctx("2026-01-01T00:07:00Z", true);
    let runs = due_runs(&s, &c, ts("2026-01-01T00:55:00Z"));
    // Delta intervals start at the start date itself, not at a clock boundary.
    assert_eq!(
        starts(&runs),
        [
            "2026-01-01T00:07:00Z",
            "2026-01-01T00:22:00Z",
            "2026-01-01T00:37:00Z"
        ]
    );
    // catchup = false: Airflow rounds now down to a multiple of the delta since
    // the epoch and takes the interval before it.
    let off = ctx("2026-01-01T00:07:00Z", false);
    let next = s
        .next_dagrun(&off, None, ts("2026-01-01T10:20:00Z"))
        .unwrap();
    assert_eq!(
        next,
        DataInterval {
            start: ts("2026-01-01T10:00:00Z"),
            end: ts("2026-01-01T10:15:00Z")
        }
    );
    let two_days = Schedule::parse(Some("every 2d")).unwrap();
    let runs = due_runs(
        &two_days,
        &ctx("2026-01-01", true),
        ts("2026-01-06T00:00:00Z"),
    );
    assert_eq!(
        starts(&runs),
        ["2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"]
    );
}

#[test]
fn end_date_bounds_the_starts() {
    let s = Schedule::parse(Some("@daily")).unwrap();
    let c = ScheduleContext {
        end_date: Some(ts("2026-01-03T00:00:00Z")),
        ..ctx("2026-01-01", true)
    };
    let runs = due_runs(&s, &c, ts("2026-02-01T00:00:00Z"));
    // An interval starting exactly at end_date is still scheduled (Airflow
    // compares the start with `latest`), the one after is not.
    assert_eq!(
        starts(&runs),
        [
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z"
        ]
    );
    assert_eq!(
        s.next_dagrun(&c, runs.last(), ts("2026-02-01T00:00:00Z")),
        None
    );
}

#[test]
fn berlin_daily_across_dst_transitions() {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let s = Schedule::parse(Some("@daily")).unwrap();
    let c = ScheduleContext {
        // Midnight in Berlin (CET, UTC+1).
        start_date: Some(ts("2026-03-27T23:00:00Z")),
        end_date: None,
        timezone: berlin.clone(),
        catchup: true,
    };
    let runs = due_runs(&s, &c, ts("2026-04-01T00:00:00Z"));
    let hours: Vec<i64> = runs
        .iter()
        .map(|r| r.end.duration_since(r.start).as_secs() / 3600)
        .collect();
    // 2026-03-29 is the spring-forward day: a 23-hour interval.
    assert_eq!(hours, [24, 23, 24, 24]);
    assert_eq!(runs[1].start, ts("2026-03-28T23:00:00Z"));
    assert_eq!(runs[1].end, ts("2026-03-29T22:00:00Z"));
    // Every run starts at local midnight.
    for r in &runs {
        let local = r.start.to_zoned(berlin.clone());
        assert_eq!((local.hour(), local.minute()), (0, 0));
    }

    // 2026-10-25 is the fall-back day: a 25-hour interval.
    let autumn = ScheduleContext {
        start_date: Some(ts("2026-10-23T22:00:00Z")),
        ..c
    };
    let runs = due_runs(&s, &autumn, ts("2026-10-28T00:00:00Z"));
    let hours: Vec<i64> = runs
        .iter()
        .map(|r| r.end.duration_since(r.start).as_secs() / 3600)
        .collect();
    assert_eq!(hours, [24, 25, 24, 24]);
    assert_eq!(runs[1].start, ts("2026-10-24T22:00:00Z"));
    assert_eq!(runs[1].end, ts("2026-10-25T23:00:00Z"));
}

#[test]
fn hourly_runs_in_both_halves_of_a_repeated_hour() {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let s = Schedule::parse(Some("@hourly")).unwrap();
    let c = ScheduleContext {
        start_date: Some(ts("2026-10-24T23:00:00Z")), // 01:00 CEST
        end_date: None,
        timezone: berlin,
        catchup: true,
    };
    let runs = due_runs(&s, &c, ts("2026-10-25T03:00:00Z"));
    // Every interval is one real hour, including both 02:00s.
    assert!(
        runs.iter()
            .all(|r| r.end.duration_since(r.start).as_secs() == 3600)
    );
    assert_eq!(
        starts(&runs),
        [
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z"
        ]
    );
}

#[test]
fn fixed_time_in_a_dst_gap_runs_after_the_gap() {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let s = Schedule::parse(Some("30 2 * * *")).unwrap();
    let c = ScheduleContext {
        start_date: Some(ts("2026-03-28T00:00:00Z")),
        end_date: None,
        timezone: berlin,
        catchup: true,
    };
    let runs = due_runs(&s, &c, ts("2026-04-01T00:00:00Z"));
    // 02:30 does not exist on 2026-03-29 in Berlin: that tick is 03:00 CEST.
    assert_eq!(runs[0].start, ts("2026-03-28T01:30:00Z"));
    assert_eq!(runs[0].end, ts("2026-03-29T01:00:00Z"));
    assert_eq!(runs[1].end, ts("2026-03-30T00:30:00Z"));
}

#[test]
fn once_runs_once() {
    let s = Schedule::Once;
    let c = ctx("2026-01-01T06:00:00Z", false);
    let first = s.next_dagrun(&c, None, ts("2026-02-01T00:00:00Z")).unwrap();
    assert_eq!(first, DataInterval::exact(ts("2026-01-01T06:00:00Z")));
    assert!(first.is_due(ts("2026-01-01T06:00:00Z")));
    assert_eq!(
        s.next_dagrun(&c, Some(&first), ts("2026-02-01T00:00:00Z")),
        None
    );
    // Without a start date the DAG is ready now.
    let now = ts("2026-05-05T05:05:05Z");
    assert_eq!(
        s.next_dagrun(&ScheduleContext::default(), None, now),
        Some(DataInterval::exact(now))
    );
    // An end date before the start date: never.
    let ended = ScheduleContext {
        end_date: Some(ts("2025-12-31T00:00:00Z")),
        ..c
    };
    assert_eq!(s.next_dagrun(&ended, None, now), None);
}

#[test]
fn manual_schedule_never_runs_by_itself() {
    assert_eq!(
        Schedule::Manual.next_dagrun(&ctx("2026-01-01", true), None, ts("2030-01-01T00:00:00Z")),
        None
    );
}

#[test]
fn manual_intervals() {
    let c = ctx("2026-01-01", false);
    let daily = Schedule::parse(Some("@daily")).unwrap();
    // Airflow's example: triggered at 01:00 on the 25th covers the 24th.
    assert_eq!(
        daily.manual_interval(&c, ts("2026-01-25T01:00:00Z")),
        DataInterval {
            start: ts("2026-01-24T00:00:00Z"),
            end: ts("2026-01-25T00:00:00Z")
        }
    );
    // On a tick, the interval ending at that tick.
    assert_eq!(
        daily.manual_interval(&c, ts("2026-01-25T00:00:00Z")).start,
        ts("2026-01-24T00:00:00Z")
    );
    let every = Schedule::parse(Some("every 1h")).unwrap();
    assert_eq!(
        every.manual_interval(&c, ts("2026-01-25T01:30:00Z")),
        DataInterval {
            start: ts("2026-01-25T00:30:00Z"),
            end: ts("2026-01-25T01:30:00Z")
        }
    );
    let t = ts("2026-01-25T01:30:00Z");
    assert_eq!(
        Schedule::Manual.manual_interval(&c, t),
        DataInterval::exact(t)
    );
    assert_eq!(
        Schedule::Once.manual_interval(&c, t),
        DataInterval::exact(t)
    );
}

#[test]
fn descriptions() {
    assert_eq!(
        Schedule::Manual.description(),
        "Never, external triggers only"
    );
    assert_eq!(Schedule::Once.description(), "Once, as soon as possible");
    assert_eq!(
        Schedule::parse(Some("@daily")).unwrap().description(),
        "Every day at 00:00"
    );
    assert_eq!(
        Schedule::parse(Some("every 90m")).unwrap().description(),
        "Every 1h30m"
    );
    let cron = Schedule::parse(Some("0 2 * * 1-5")).unwrap().description();
    assert!(cron.ends_with("(0 2 * * 1-5)"), "{cron}");
}
