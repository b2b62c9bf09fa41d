//! What the `#[operator]` macro expands to. Not a public API: it may change in any
//! release, so operator code must never name it.

use serde::de::DeserializeOwned;

pub use wit_bindgen;

use crate::host::WitHost;
use crate::{Outcome, TaskContext, TaskError, wit};

/// `describe`: the operator's metadata, checked by the macro at compile time.
pub fn describe(
    name: &str,
    version: &str,
    description: &str,
    params_schema: &str,
) -> wit::OperatorInfo {
    wit::OperatorInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        description: description.to_owned(),
        params_schema: params_schema.to_owned(),
    }
}

/// The JSON Schema of an operator's params type, as `describe` gives it to
/// the host: every nested type written out in place (the host's validator
/// does not follow `$ref`), and no `$schema` line, which says nothing here.
pub fn schema_of<P: schemars::JsonSchema>() -> String {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    let schema = settings.into_generator().into_root_schema_for::<P>();
    serde_json::to_string(&schema).expect("a schema serializes")
}

/// `execute` for an operator function taking `(ctx, params)`.
pub fn execute<P, F>(
    info: wit::TaskInfo,
    params: &str,
    operator: F,
) -> Result<wit::Outcome, wit::TaskError>
where
    P: DeserializeOwned,
    F: FnOnce(&TaskContext, P) -> Result<Outcome, TaskError>,
{
    let ctx = TaskContext::new(info.into(), Box::new(WitHost));
    run(&ctx, params, operator)
        .map(Into::into)
        .map_err(Into::into)
}

/// `execute` for an operator function taking only `ctx`: its params, whatever they
/// are, are not its concern.
pub fn execute_without_params<F>(
    info: wit::TaskInfo,
    operator: F,
) -> Result<wit::Outcome, wit::TaskError>
where
    F: FnOnce(&TaskContext) -> Result<Outcome, TaskError>,
{
    let ctx = TaskContext::new(info.into(), Box::new(WitHost));
    operator(&ctx).map(Into::into).map_err(Into::into)
}

/// The macro spans a call to this at the params type, so a type that does not
/// implement `Deserialize` is reported there rather than at the attribute.
pub fn assert_params<P: DeserializeOwned>() {}

/// Decodes the params, then calls the operator: shared by the real `execute` and
/// by `testing::TestHost::run`, so tests exercise the same error messages.
pub(crate) fn run<P, F>(ctx: &TaskContext, params: &str, operator: F) -> Result<Outcome, TaskError>
where
    P: DeserializeOwned,
    F: FnOnce(&TaskContext, P) -> Result<Outcome, TaskError>,
{
    operator(ctx, decode_params(params)?)
}

/// Decodes params JSON, naming the offending field on failure.
///
/// The error is `fatal`: the same params would fail the same way on every retry.
/// The JSON line/column serde_json appends is dropped, because the DAG author wrote
/// TOML and never saw that JSON; the field path is what locates the problem.
pub(crate) fn decode_params<P: DeserializeOwned>(json: &str) -> Result<P, TaskError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let params = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = without_position(error.inner());
        if path == "." {
            TaskError::fatal(format!("invalid params: {message}"))
        } else {
            TaskError::fatal(format!("invalid params at `{path}`: {message}"))
        }
    })?;
    deserializer.end().map_err(|error| {
        TaskError::fatal(format!("invalid params: {}", without_position(&error)))
    })?;
    Ok(params)
}

fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if error.line() == 0 {
        return message;
    }
    let position = format!(" at line {} column {}", error.line(), error.column());
    message
        .strip_suffix(&position)
        .map_or_else(|| message.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        #[allow(dead_code, reason = "only its decoding is under test")]
        message: String,
        #[serde(default)]
        #[allow(dead_code, reason = "only its decoding is under test")]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        #[allow(dead_code, reason = "only its decoding is under test")]
        count: u32,
    }

    fn error_of(json: &str) -> TaskError {
        decode_params::<Params>(json).unwrap_err()
    }

    #[test]
    fn a_missing_field_is_fatal_and_named() {
        assert_eq!(
            error_of("{}"),
            TaskError::fatal("invalid params: missing field `message`")
        );
    }

    #[test]
    fn a_mistyped_field_is_named_by_its_path() {
        assert_eq!(
            error_of(r#"{"message": "x", "inner": {"count": "three"}}"#),
            TaskError::fatal(
                r#"invalid params at `inner.count`: invalid type: string "three", expected u32"#
            )
        );
    }

    #[test]
    fn unknown_fields_and_trailing_text_are_rejected() {
        assert_eq!(
            error_of(r#"{"message": "x", "mesage": "y"}"#),
            TaskError::fatal(
                "invalid params at `mesage`: unknown field `mesage`, expected `message` or `inner`"
            )
        );
        assert_eq!(
            error_of(r#"{"message": "x"} {}"#),
            TaskError::fatal("invalid params: trailing characters")
        );
    }

    #[test]
    fn valid_params_decode() {
        assert!(decode_params::<Params>(r#"{"message": "x", "inner": {"count": 3}}"#).is_ok());
    }
}
