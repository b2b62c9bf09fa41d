//! `noop`: succeeds without doing anything, like Airflow's `EmptyOperator`.

use aileron_sdk::prelude::*;

/// Does nothing and succeeds. Use it to group, join or stand in for tasks.
///
/// It accepts any params and ignores them, so a task can be switched to `noop`
/// without editing its params.
#[operator(
    name = "noop",
    version = "0.1.0",
    params_schema = r#"{"type": "object"}"#
)]
fn noop(_ctx: &TaskContext) -> Result<Outcome, TaskError> {
    Ok(Outcome::success())
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn succeeds_without_a_return_value() {
        let ctx = TestHost::new().context(TaskInfo::default());
        assert_eq!(noop(&ctx), Ok(Outcome::success()));
    }
}
