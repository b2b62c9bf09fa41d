//! Operator `legacy2` 1.0.0, built against `aileron:operator@0.2.0` with
//! wit-bindgen directly (the SDK targets the current version): what a plugin
//! compiled before 0.3.0 looks like to the host.
//!
//! `execute` reads the connection named by its params (a JSON string, such as
//! `"api"`), pushes what it got as the XCom `connection` (the JSON object, or
//! `{"error": "..."}`), and ends with `skip-downstream(all)`, an outcome 0.1.0
//! does not have.

wit_bindgen::generate!({
    world: "operator",
    path: "../../../../../wit/deps/operator@0.2.0/operator.wit",
});

use aileron::operator::context;

struct Legacy2;

impl Guest for Legacy2 {
    fn describe() -> OperatorInfo {
        OperatorInfo {
            name: "legacy2".into(),
            version: "1.0.0".into(),
            description: "Built against WIT 0.2.0.".into(),
            params_schema: r#"{"type":"string"}"#.into(),
        }
    }

    fn execute(_info: TaskInfo, params: Json) -> Result<Outcome, TaskError> {
        let conn_id = params.trim().trim_matches('"');
        let seen = match context::connection(conn_id) {
            Ok(json) => json,
            Err(e) => format!("{{\"error\":{e:?}}}"),
        };
        context::xcom_push("connection", &seen).map_err(TaskError::Failed)?;
        Ok(Outcome::SkipDownstream(SkipScope::All))
    }
}

export!(Legacy2);
