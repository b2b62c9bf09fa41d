//! Operator `legacy` 1.0.0, built against `aileron:operator@0.1.0` with wit-bindgen
//! directly (the SDK targets the current version): what a plugin compiled before
//! 0.2.0 looks like to the host.
//!
//! `describe` returns name `legacy`, version `1.0.0`. `execute` logs
//! `legacy operator, try N` at info level, pushes the XCom `seen` = `true`, then:
//! with params containing `"reschedule"` asks to be rescheduled in 7 s; otherwise
//! succeeds returning `{"task_id": "<its task id>"}`.

wit_bindgen::generate!({
    world: "operator",
    path: "../../../../../wit/deps/operator@0.1.0/operator.wit",
});

use aileron::operator::context::{self, Level};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> OperatorInfo {
        OperatorInfo {
            name: "legacy".into(),
            version: "1.0.0".into(),
            description: "Built against WIT 0.1.0.".into(),
            params_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn execute(info: TaskInfo, params: Json) -> Result<Outcome, TaskError> {
        context::log(
            Level::Info,
            &format!("legacy operator, try {}", info.try_number),
        );
        context::xcom_push("seen", "true").map_err(TaskError::Failed)?;
        if params.contains("\"reschedule\"") {
            return Ok(Outcome::Reschedule(7));
        }
        Ok(Outcome::Success(Some(format!(
            "{{\"task_id\":\"{}\"}}",
            info.task_id
        ))))
    }
}

export!(Legacy);
