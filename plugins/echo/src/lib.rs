//! `echo`: logs a message and returns it, the "hello world" of operators.

use aileron_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The text to log and return.
    message: String,
}

/// Logs `message` at info level and returns it as the task's return value.
#[operator(name = "echo", version = "0.1.0")]
fn echo(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    ctx.info(&params.message);
    Ok(Outcome::returning(params.message))
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn logs_and_returns_the_message() {
        let host = TestHost::new();
        let outcome = host.run(TaskInfo::default(), r#"{"message": "hello"}"#, echo);
        assert_eq!(outcome, Ok(Outcome::returning("hello")));
        assert_eq!(host.logs(), [(Level::Info, "hello".to_owned())]);
    }

    #[test]
    fn a_missing_message_is_fatal() {
        let outcome = TestHost::new().run(TaskInfo::default(), "{}", echo);
        assert_eq!(
            outcome,
            Err(TaskError::fatal("invalid params: missing field `message`"))
        );
    }
}
