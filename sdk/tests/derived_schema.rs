//! `#[operator]` without `params_schema`: the schema `describe` gives the host
//! is derived from the params type, so it cannot drift from the code.

use aileron_sdk::prelude::*;
use aileron_sdk::serde_json::{Value, json};
use aileron_sdk::wit::Guest;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// How long to wait, in seconds.
    #[schemars(range(min = 0))]
    seconds: f64,
    /// Shown in the log.
    label: Option<String>,
    retry: Retry,
}

#[derive(Deserialize, JsonSchema)]
struct Retry {
    attempts: u32,
}

/// Pretends to wait.
#[operator(name = "typed")]
fn typed(_ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    Ok(Outcome::returning(json!({
        "seconds": params.seconds,
        "label": params.label,
        "attempts": params.retry.attempts,
    })))
}

#[test]
fn the_schema_is_derived_from_the_params_type() {
    let info = <__AileronOperator as Guest>::describe();
    let schema: Value = serde_json::from_str(&info.params_schema).unwrap();
    let seconds = &schema["properties"]["seconds"];
    assert_eq!(seconds["type"], "number");
    assert_eq!(seconds["minimum"], 0);
    assert_eq!(seconds["description"], "How long to wait, in seconds.");
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["seconds", "retry"]);
    // Nested types are written out in place: the host's validator does not
    // follow `$ref`.
    let retry = &schema["properties"]["retry"];
    assert_eq!(retry["properties"]["attempts"]["type"], "integer");
    assert!(!info.params_schema.contains("$ref"), "{schema}");
    assert!(schema.get("$schema").is_none(), "{schema}");
}

#[test]
fn a_value_the_schema_describes_runs() {
    let info = aileron_sdk::wit::TaskInfo {
        dag_id: "dag".into(),
        run_id: "r".into(),
        task_id: "t".into(),
        map_index: None,
        try_number: 1,
        logical_date: "2026-01-01T00:00:00+00:00".into(),
        data_interval_start: "2026-01-01T00:00:00+00:00".into(),
        data_interval_end: "2026-01-02T00:00:00+00:00".into(),
    };
    let params = r#"{"seconds": 1.5, "retry": {"attempts": 3}}"#;
    let outcome = <__AileronOperator as Guest>::execute(info, params.into());
    let Ok(aileron_sdk::wit::Outcome::Success(Some(json))) = outcome else {
        panic!("unexpected {outcome:?}");
    };
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value, json!({"seconds": 1.5, "label": null, "attempts": 3}));
}
