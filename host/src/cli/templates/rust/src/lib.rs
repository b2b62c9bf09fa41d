//! `{{name}}`: an Aileron operator that greets someone. It logs the greeting,
//! shares the name as the `name` XCom and returns the greeting, which becomes
//! the task's `return_value` XCom.

use aileron_sdk::prelude::*;
use serde::Deserialize;

/// The task's `params`. The JSON Schema the host checks DAG files against is
/// derived from this type: doc comments become descriptions.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Who to greet.
    name: String,
}

/// Greets `name` and returns the greeting.
#[operator(name = "{{name}}")]
fn {{ident}}(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    let greeting = format!("Hello, {}!", params.name);
    ctx.info(&greeting);
    ctx.xcom_push("name", &params.name)?;
    Ok(Outcome::returning(greeting))
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn greets_and_shares_the_name() {
        let host = TestHost::new();
        let mut task = TaskInfo::default();
        task.task_id = "greet".to_owned();
        let outcome = host.run(task, r#"{"name": "Ada"}"#, {{ident}});
        assert_eq!(outcome, Ok(Outcome::returning("Hello, Ada!")));
        assert_eq!(host.logs(), [(Level::Info, "Hello, Ada!".to_owned())]);
        assert_eq!(host.xcom("greet", "name"), Some("Ada".into()));
    }
}
