//! The `#[operator]` expansion end to end on the build machine: the generated
//! `describe` and `execute`, called through the WIT `Guest` trait exactly as the
//! component's exports call them.

use aileron_sdk::prelude::*;
use aileron_sdk::serde_json::{Value, json};
use aileron_sdk::wit::{self, Guest};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    seconds: f64,
}

/// Pretends to wait.
///
/// Never waits for real.
#[operator(name = "pause", params_schema = r#"{"type": "object"}"#)]
fn pause(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    if params.seconds < 0.0 {
        return Err(TaskError::fatal("`seconds` is negative"));
    }
    Ok(Outcome::returning(
        json!({ "task": ctx.task().task_id, "try": ctx.task().try_number, "seconds": params.seconds }),
    ))
}

fn task_info(try_number: u32) -> wit::TaskInfo {
    wit::TaskInfo {
        dag_id: "dag".into(),
        run_id: "manual__2026-01-01T00:00:00+00:00".into(),
        task_id: "wait".into(),
        map_index: None,
        try_number,
        logical_date: "2026-01-01T00:00:00+00:00".into(),
        data_interval_start: "2026-01-01T00:00:00+00:00".into(),
        data_interval_end: "2026-01-02T00:00:00+00:00".into(),
    }
}

#[test]
fn describe_reports_the_attribute_and_the_doc_comment() {
    let info = <__AileronOperator as Guest>::describe();
    assert_eq!(info.name, "pause");
    // No `version` in the attribute: the crate's own.
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info.description,
        "Pretends to wait.\n\nNever waits for real."
    );
    assert_eq!(info.params_schema, r#"{"type": "object"}"#);
}

#[test]
fn execute_decodes_params_and_returns_json_text() {
    let outcome = <__AileronOperator as Guest>::execute(task_info(2), r#"{"seconds": 1.5}"#.into());
    let Ok(wit::Outcome::Success(Some(json))) = outcome else {
        panic!("unexpected {outcome:?}");
    };
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value, json!({"task": "wait", "try": 2, "seconds": 1.5}));
}

#[test]
fn bad_params_and_operator_errors_cross_as_task_errors() {
    let missing = <__AileronOperator as Guest>::execute(task_info(1), "{}".into());
    assert!(
        matches!(&missing, Err(wit::TaskError::Fatal(m)) if m == "invalid params: missing field `seconds`"),
        "{missing:?}"
    );
    let negative = <__AileronOperator as Guest>::execute(task_info(1), r#"{"seconds": -1}"#.into());
    assert!(
        matches!(&negative, Err(wit::TaskError::Fatal(m)) if m == "`seconds` is negative"),
        "{negative:?}"
    );
}
