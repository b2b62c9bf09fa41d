//! `short_circuit`: Airflow's ShortCircuitOperator. A true `condition` lets the
//! downstream tasks run; a false one skips them.

use aileron_sdk::prelude::*;
use aileron_sdk::serde_json::Value;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Any value, usually a template; its truthiness decides.
    condition: Value,
    /// When the condition is false: skip every downstream task (true), or only
    /// the direct ones and let trigger rules decide the rest (false).
    #[serde(default = "yes")]
    ignore_downstream_trigger_rules: bool,
}

fn yes() -> bool {
    true
}

/// Succeeds either way. If `condition` is truthy, returns it as XCom and the
/// downstream tasks run as usual. If it is falsy, skips the downstream tasks: all of
/// them, whatever their trigger rules, when `ignore_downstream_trigger_rules` is true
/// (the default); only the direct ones otherwise, their trigger rules deciding the
/// rest.
///
/// Truthiness is Python's, as in Airflow, with one addition for templates, which
/// render to text: false, null, 0, "", [] and {} are false, and so are the strings
/// "false", "0", "none" and "null" in any case and with surrounding whitespace
/// (so `"{{ params.run_it }}"` rendering to "False" is false). Everything else is true.
#[operator(name = "short_circuit", version = "0.1.0")]
fn short_circuit(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    let condition = params.condition;
    info!(ctx, "condition result is {condition}");
    if is_truthy(&condition) {
        ctx.info("proceeding with downstream tasks");
        return Ok(Outcome::returning(condition));
    }
    // Airflow pushes the condition's value either way (unless it is None).
    if !condition.is_null() {
        ctx.xcom_push("return_value", &condition)
            .map_err(|e| TaskError::failed(e.to_string()))?;
    }
    let all = params.ignore_downstream_trigger_rules;
    if all {
        ctx.info("skipping all downstream tasks");
    } else {
        ctx.info("skipping the direct downstream tasks; trigger rules decide the rest");
    }
    Ok(Outcome::skip_downstream(all))
}

/// Python's `bool(value)`, plus the falsy spellings a rendered template produces.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => {
            let s = s.trim();
            !(s.is_empty()
                || ["false", "0", "none", "null"]
                    .iter()
                    .any(|falsy| s.eq_ignore_ascii_case(falsy)))
        }
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use aileron_sdk::serde_json::json;
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn truthiness_follows_python_and_rendered_text() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!("  "),
            json!("False"),
            json!("false"),
            json!("0"),
            json!("None"),
            json!("null"),
            json!([]),
            json!({}),
        ] {
            assert!(!is_truthy(&falsy), "{falsy} should be false");
        }
        for truthy in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("True"),
            json!("no"),
            json!("0.0"),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(is_truthy(&truthy), "{truthy} should be true");
        }
    }

    #[test]
    fn a_true_condition_succeeds_and_returns_it() {
        let host = TestHost::new();
        let outcome = host.run(
            TaskInfo::default(),
            r#"{"condition": [1, 2]}"#,
            short_circuit,
        );
        assert_eq!(outcome, Ok(Outcome::returning(json!([1, 2]))));
        assert_eq!(
            host.logs().last().unwrap(),
            &(Level::Info, "proceeding with downstream tasks".to_owned())
        );
    }

    #[test]
    fn a_false_condition_skips_all_downstream_by_default() {
        let host = TestHost::new();
        let outcome = host.run(
            TaskInfo::default(),
            r#"{"condition": "False"}"#,
            short_circuit,
        );
        assert_eq!(outcome, Ok(Outcome::skip_downstream(true)));
        // The condition is still the task's return value, as in Airflow.
        assert_eq!(host.xcom("", "return_value"), Some(json!("False")));
    }

    #[test]
    fn trigger_rules_may_decide_past_the_direct_downstream() {
        let params = r#"{"condition": 0, "ignore_downstream_trigger_rules": false}"#;
        let outcome = TestHost::new().run(TaskInfo::default(), params, short_circuit);
        assert_eq!(outcome, Ok(Outcome::skip_downstream(false)));
    }

    #[test]
    fn the_condition_is_required() {
        let outcome = TestHost::new().run(TaskInfo::default(), "{}", short_circuit);
        assert_eq!(
            outcome,
            Err(TaskError::fatal(
                "invalid params: missing field `condition`"
            ))
        );
    }
}
