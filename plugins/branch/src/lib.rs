//! `branch`: follows only some of its downstream tasks, like Airflow's
//! `BranchPythonOperator` with the choice made in the DAG file.

use aileron_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The downstream task id(s) to follow.
    follow: Follow,
}

/// One task id or several; DAG authors write whichever reads better.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a task id or a list of task ids")]
enum Follow {
    One(String),
    Many(Vec<String>),
}

/// Runs only the direct downstream tasks named in `follow` and skips the others.
/// An empty list skips them all.
#[operator(name = "branch", version = "0.1.0")]
fn branch(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    let task_ids = match params.follow {
        Follow::One(task_id) => vec![task_id],
        Follow::Many(task_ids) => task_ids,
    };
    info!(ctx, "following {task_ids:?}");
    Ok(Outcome::branch(task_ids))
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    fn run(params: &str) -> Result<Outcome, TaskError> {
        TestHost::new().run(TaskInfo::default(), params, branch)
    }

    #[test]
    fn follows_one_task_or_a_list() {
        assert_eq!(run(r#"{"follow": "a"}"#), Ok(Outcome::branch(["a"])));
        assert_eq!(
            run(r#"{"follow": ["a", "b"]}"#),
            Ok(Outcome::branch(["a", "b"]))
        );
        assert_eq!(run(r#"{"follow": []}"#), Ok(Outcome::Branch(Vec::new())));
    }

    #[test]
    fn anything_else_is_fatal() {
        assert_eq!(
            run(r#"{"follow": 3}"#),
            Err(TaskError::fatal(
                "invalid params at `follow`: a task id or a list of task ids"
            ))
        );
    }
}
