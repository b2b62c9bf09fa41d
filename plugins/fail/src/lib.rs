//! `fail`: fails on purpose, to exercise retries, trigger rules and alerting.

use aileron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct Params {
    /// The error message.
    message: String,
    /// Fail without retries.
    fatal: bool,
    /// Succeed from this try number on.
    #[schemars(range(min = 1))]
    until_try: Option<u32>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            message: "failed on purpose".to_owned(),
            fatal: false,
            until_try: None,
        }
    }
}

/// Fails with `message`: as `failed` (retried while retries remain) or, with
/// `fatal = true`, as `fatal` (never retried). With `until_try = N`, succeeds
/// instead once the try number reaches N, so "fails twice, then recovers" is
/// `until_try = 3`.
#[operator(name = "fail", version = "0.1.0")]
fn fail(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    let try_number = ctx.task().try_number;
    if params.until_try.is_some_and(|until| try_number >= until) {
        info!(ctx, "try {try_number} reached until_try, succeeding");
        return Ok(Outcome::success());
    }
    if params.fatal {
        Err(TaskError::fatal(params.message))
    } else {
        Err(TaskError::failed(params.message))
    }
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    fn run(try_number: u32, params: &str) -> Result<Outcome, TaskError> {
        let mut task = TaskInfo::default();
        task.try_number = try_number;
        TestHost::new().run(task, params, fail)
    }

    #[test]
    fn fails_retryably_by_default() {
        assert_eq!(run(1, "{}"), Err(TaskError::failed("failed on purpose")));
    }

    #[test]
    fn fails_fatally_on_request() {
        assert_eq!(
            run(1, r#"{"fatal": true, "message": "boom"}"#),
            Err(TaskError::fatal("boom"))
        );
    }

    #[test]
    fn succeeds_from_until_try_on() {
        assert!(run(2, r#"{"until_try": 3}"#).is_err());
        assert_eq!(run(3, r#"{"until_try": 3}"#), Ok(Outcome::success()));
        assert_eq!(run(4, r#"{"until_try": 3}"#), Ok(Outcome::success()));
    }
}
