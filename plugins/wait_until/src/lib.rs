//! `wait_until`: Airflow's DateTimeSensor. Succeeds once the wall clock reaches
//! `target_time`; until then asks to be poked again.

mod time;

use std::time::{Duration, SystemTime};

use aileron_op_support::Seconds;
use aileron_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// RFC 3339 datetime or date (UTC) to wait for.
    target_time: String,
    /// Seconds, or a duration such as "5m", between pokes.
    #[serde(default = "one_minute")]
    poke_interval: Seconds,
}

fn one_minute() -> Seconds {
    Seconds(Duration::from_secs(60))
}

/// Succeeds once the current time is at or past `target_time`; until then asks to
/// be poked again after `poke_interval`, or sooner if the target comes first.
///
/// `target_time` is an RFC 3339 datetime (`2026-03-01T06:00:00+01:00`; a space may
/// replace the `T`, and a datetime without offset is UTC) or a date (midnight UTC),
/// usually a template such as `"{{ data_interval_end.add(hours=2) }}"`.
/// `poke_interval` is seconds or a duration such as `"5m"` (default 60 s).
///
/// "Now" is the real wall clock the sandbox gives the operator (`wasi:clocks`), not
/// the run's logical date: a run catching up on last year succeeds at once.
#[operator(name = "wait_until", version = "0.1.0")]
fn wait_until(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    check(ctx, params, SystemTime::now())
}

/// One poke at `now`.
fn check(ctx: &TaskContext, params: Params, now: SystemTime) -> Result<Outcome, TaskError> {
    let target = time::parse(&params.target_time).ok_or_else(|| {
        TaskError::fatal(format!(
            "invalid params at `target_time`: `{}` is not an RFC 3339 datetime \
             (2026-03-01T06:00:00Z) or a date (2026-03-01)",
            params.target_time
        ))
    })?;
    let Ok(left) = target.duration_since(now) else {
        info!(ctx, "{} has passed", params.target_time);
        return Ok(Outcome::success());
    };
    if left.is_zero() {
        info!(ctx, "{} has passed", params.target_time);
        return Ok(Outcome::success());
    }
    let wait = params.poke_interval.0.min(left).max(Duration::from_secs(1));
    info!(
        ctx,
        "waiting for {}: {}s to go, poking again in {}s",
        params.target_time,
        Seconds(left).ceil_secs(),
        Seconds(wait).ceil_secs()
    );
    Ok(Outcome::reschedule(wait))
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    /// 2026-03-01T06:00:00Z.
    fn six_am() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_344_800)
    }

    fn poke(params: &str, now: SystemTime) -> Result<Outcome, TaskError> {
        TestHost::new().run(TaskInfo::default(), params, |ctx, p| check(ctx, p, now))
    }

    #[test]
    fn a_past_or_present_target_succeeds() {
        let params = r#"{"target_time": "2026-03-01T06:00:00Z"}"#;
        assert_eq!(poke(params, six_am()), Ok(Outcome::success()));
        assert_eq!(
            poke(params, six_am() + Duration::from_secs(1)),
            Ok(Outcome::success())
        );
        assert_eq!(
            poke(r#"{"target_time": "2026-03-01"}"#, six_am()),
            Ok(Outcome::success())
        );
    }

    #[test]
    fn a_future_target_pokes_again_no_later_than_the_target() {
        let params = r#"{"target_time": "2026-03-01T07:00:00+01:00", "poke_interval": 30}"#;
        let before = six_am() - Duration::from_secs(600);
        assert_eq!(poke(params, before), Ok(Outcome::Reschedule(30)));
        let close = six_am() - Duration::from_millis(2500);
        assert_eq!(poke(params, close), Ok(Outcome::Reschedule(3)));
        let closer = six_am() - Duration::from_millis(10);
        assert_eq!(poke(params, closer), Ok(Outcome::Reschedule(1)));
        let params = r#"{"target_time": "2026-03-01 06:00:00", "poke_interval": "5m"}"#;
        assert_eq!(
            poke(params, six_am() - Duration::from_secs(3600)),
            Ok(Outcome::Reschedule(300))
        );
    }

    #[test]
    fn a_bad_target_is_fatal() {
        let outcome = poke(r#"{"target_time": "tomorrow"}"#, six_am());
        assert!(outcome.is_err_and(|e| e.is_fatal() && e.message().contains("RFC 3339")));
    }
}
