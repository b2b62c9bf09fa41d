//! `sleep`: waits, then succeeds; for timeouts, pools and concurrency in DAGs.

use std::time::Duration;

use aileron_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// How long to wait.
    #[schemars(range(min = 0))]
    seconds: f64,
}

/// Waits `seconds` seconds (fractions allowed), then succeeds.
///
/// The wait is a host call (WASI `poll`), so it counts against the task's
/// execution timeout but not against its CPU budget.
#[operator(name = "sleep", version = "0.1.0")]
fn sleep(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    // Negative, NaN or absurdly large waits are a mistake in the DAG: no retry fixes them.
    let duration = Duration::try_from_secs_f64(params.seconds)
        .context("`seconds`")
        .fatal()?;
    info!(ctx, "sleeping for {duration:?}");
    std::thread::sleep(duration);
    Ok(Outcome::success())
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn sleeps_then_succeeds() {
        let outcome = TestHost::new().run(TaskInfo::default(), r#"{"seconds": 0.01}"#, sleep);
        assert_eq!(outcome, Ok(Outcome::success()));
    }

    #[test]
    fn a_negative_wait_is_fatal() {
        let outcome = TestHost::new().run(TaskInfo::default(), r#"{"seconds": -1}"#, sleep);
        assert!(outcome.is_err_and(|error| error.is_fatal()));
    }
}
