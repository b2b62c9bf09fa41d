//! A JSON Schema subset validator for operator params and DAG params.
//!
//! Operators describe their params with JSON Schema (`operator-info.params-schema`);
//! this module checks a params object against it without pulling in a full JSON
//! Schema implementation. Supported keywords:
//!
//! - `type` (a name or an array of names; `integer` accepts any whole number,
//!   including `3.0`, as JSON Schema does), `enum`, `const`;
//! - objects: `properties`, `required`, `additionalProperties` (bool or schema);
//! - arrays: `items` (one schema for every element), `minItems`, `maxItems`;
//! - numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numeric
//!   form);
//! - strings: `minLength`, `maxLength` (counted in characters);
//! - combinators: `anyOf`, `oneOf`, `allOf`;
//! - a boolean schema (`true` accepts everything, `false` nothing).
//!
//! Every other keyword (`default`, `description`, `title`, `format`, `pattern`,
//! `$ref`, …) is ignored, so a richer schema still validates what it can.
//!
//! Errors carry a path from the root: `params.seconds: expected number, got string`,
//! `params.items[2]: …`.
//!
//! DAG files are validated before rendering: a string that is a template (see
//! [`is_template`]) is rendered at run time and may become any type, so
//! [`validate_unrendered`] accepts it wherever a value is expected.

use serde_json::{Map, Value};
use std::fmt::Write as _;

/// True if `s` contains Jinja syntax (`{{ … }}` or `{% … %}`) and will be rendered
/// at run time.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Validates a rendered `value` against `schema`; paths start at `params`.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    validate_at(schema, value, "params", Mode::Rendered)
}

/// Validates a value that has not been rendered yet: template strings pass any check.
pub fn validate_unrendered(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    validate_at(schema, value, "params", Mode::Unrendered)
}

/// Checks the parts of a schema written by hand that this validator relies on: `type`
/// names a JSON Schema type (or is a list of them). A typo there would otherwise
/// reject every value with a puzzling message.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    const TYPES: [&str; 7] = [
        "null", "boolean", "object", "array", "number", "integer", "string",
    ];
    let check = |t: &Value| match t.as_str() {
        Some(name) if TYPES.contains(&name) => Ok(()),
        _ => Err(format!(
            "type must be one of {} (or a list of them), not {t}",
            TYPES.join(", ")
        )),
    };
    match schema.get("type") {
        None => Ok(()),
        Some(Value::Array(list)) => list.iter().try_for_each(check),
        Some(t) => check(t),
    }
}

/// Whether template strings are still unrendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every value is final: a template string is just a string.
    Rendered,
    /// Template strings will be rendered later and are accepted as anything.
    Unrendered,
}

/// Validates `value` against `schema`, naming the root of every path `root`.
pub fn validate_at(
    schema: &Value,
    value: &Value,
    root: &str,
    mode: Mode,
) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    check(schema, value, root, mode, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The JSON Schema type name of a value (`integer` for whole numbers).
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn matches_type(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => matches!(value, Value::Number(n) if is_integer(n)),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        // An unknown type name matches nothing, as in JSON Schema.
        _ => false,
    }
}

/// `params.a`, `params.items[2]`, `params["odd key"]`.
fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

/// A short rendering of a value for messages.
fn show(value: &Value) -> String {
    let mut s = value.to_string();
    if s.len() > 60 {
        let cut = (0..=57).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn check(schema: &Value, value: &Value, path: &str, mode: Mode, errors: &mut Vec<String>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{path}: no value is allowed here"));
            return;
        }
        Value::Object(schema) => schema,
        // A malformed schema is the operator's bug, not the DAG author's: accept.
        _ => return,
    };
    if mode == Mode::Unrendered && matches!(value, Value::String(s) if is_template(s)) {
        return;
    }

    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|t| matches_type(t, value)) {
            errors.push(format!(
                "{path}: expected {}, got {}",
                names.join(" or "),
                type_name(value)
            ));
            // Further checks would only repeat the type mismatch.
            return;
        }
    }

    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.iter().any(|a| json_eq(a, value))
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        errors.push(format!(
            "{path}: {} is not one of {}",
            show(value),
            list.join(", ")
        ));
    }
    if let Some(expected) = schema.get("const")
        && !json_eq(expected, value)
    {
        errors.push(format!(
            "{path}: expected {}, got {}",
            show(expected),
            show(value)
        ));
    }

    match value {
        Value::Object(obj) => check_object(schema, obj, path, mode, errors),
        Value::Array(items) => check_array(schema, items, path, mode, errors),
        Value::Number(n) => check_number(schema, n, path, errors),
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Null | Value::Bool(_) => {}
    }

    check_combinators(schema, value, path, mode, errors);
}

fn check_object(
    schema: &Map<String, Value>,
    obj: &Map<String, Value>,
    path: &str,
    mode: Mode,
    errors: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                errors.push(format!("{}: is required", child_path(path, name)));
            }
        }
    }
    for (key, item) in obj {
        let child = child_path(path, key);
        if let Some(prop) = properties.and_then(|p| p.get(key)) {
            check(prop, item, &child, mode, errors);
            continue;
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                let mut msg = format!("{child}: unknown property");
                if let Some(props) = properties.filter(|p| !p.is_empty()) {
                    let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let _ = write!(msg, "; expected one of: {}", known.join(", "));
                }
                errors.push(msg);
            }
            Some(extra @ Value::Object(_)) => check(extra, item, &child, mode, errors),
            _ => {}
        }
    }
}

fn check_array(
    schema: &Map<String, Value>,
    items: &[Value],
    path: &str,
    mode: Mode,
    errors: &mut Vec<String>,
) {
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(format!(
            "{path}: expected at least {min} item(s), got {}",
            items.len()
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && (items.len() as u64) > max
    {
        errors.push(format!(
            "{path}: expected at most {max} item(s), got {}",
            items.len()
        ));
    }
    if let Some(item_schema) = schema.get("items")
        && (item_schema.is_object() || item_schema.is_boolean())
    {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), mode, errors);
        }
    }
}

fn check_number(
    schema: &Map<String, Value>,
    n: &serde_json::Number,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(x) = n.as_f64() else { return };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum")
        && x < min
    {
        errors.push(format!(
            "{path}: {n} is less than the minimum {}",
            fmt_num(min)
        ));
    }
    if let Some(max) = bound("maximum")
        && x > max
    {
        errors.push(format!(
            "{path}: {n} is greater than the maximum {}",
            fmt_num(max)
        ));
    }
    if let Some(min) = bound("exclusiveMinimum")
        && x <= min
    {
        errors.push(format!("{path}: {n} must be greater than {}", fmt_num(min)));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && x >= max
    {
        errors.push(format!("{path}: {n} must be less than {}", fmt_num(max)));
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn check_string(schema: &Map<String, Value>, s: &str, path: &str, errors: &mut Vec<String>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(format!(
            "{path}: expected at least {min} character(s), got {len}"
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(format!(
            "{path}: expected at most {max} character(s), got {len}"
        ));
    }
}

fn check_combinators(
    schema: &Map<String, Value>,
    value: &Value,
    path: &str,
    mode: Mode,
    errors: &mut Vec<String>,
) {
    let branches = |key: &str| schema.get(key).and_then(Value::as_array);
    let passes = |sub: &Value| {
        let mut errs = Vec::new();
        check(sub, value, path, mode, &mut errs);
        errs
    };
    if let Some(all) = branches("allOf") {
        for sub in all {
            errors.extend(passes(sub));
        }
    }
    if let Some(any) = branches("anyOf") {
        let results: Vec<Vec<String>> = any.iter().map(passes).collect();
        if !results.iter().any(Vec::is_empty) {
            errors.push(format!(
                "{path}: does not match any allowed schema ({})",
                first_reasons(&results, path)
            ));
        }
    }
    if let Some(one) = branches("oneOf") {
        let results: Vec<Vec<String>> = one.iter().map(passes).collect();
        match results.iter().filter(|r| r.is_empty()).count() {
            1 => {}
            0 => errors.push(format!(
                "{path}: does not match any allowed schema ({})",
                first_reasons(&results, path)
            )),
            n => errors.push(format!(
                "{path}: matches {n} schemas of oneOf; expected exactly one"
            )),
        }
    }
}

/// The first error of each failed branch, without the repeated path prefix.
fn first_reasons(results: &[Vec<String>], path: &str) -> String {
    let prefix = format!("{path}: ");
    results
        .iter()
        .filter_map(|r| r.first())
        .map(|e| e.strip_prefix(&prefix).unwrap_or(e).to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// JSON equality where numbers compare by value (`1` equals `1.0`), as JSON Schema's
/// `enum` and `const` require.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The errors, sorted: property order depends on serde_json's map features.
    fn errs(schema: Value, value: Value) -> Vec<String> {
        let mut errors = validate(&schema, &value).err().unwrap_or_default();
        errors.sort();
        errors
    }

    #[test]
    fn types() {
        let schema = json!({"type": "object", "properties": {
            "seconds": {"type": "number"},
            "count": {"type": "integer"},
            "name": {"type": ["string", "null"]},
            "flag": {"type": "boolean"},
        }});
        assert_eq!(
            errs(schema.clone(), json!({"seconds": "5"})),
            ["params.seconds: expected number, got string"]
        );
        assert_eq!(
            errs(schema.clone(), json!({"count": 1.5})),
            ["params.count: expected integer, got number"]
        );
        assert!(errs(schema.clone(), json!({"count": 2.0})).is_empty());
        assert!(
            errs(
                schema.clone(),
                json!({"name": null, "flag": true, "seconds": 3})
            )
            .is_empty()
        );
        assert_eq!(
            errs(schema.clone(), json!({"name": 3})),
            ["params.name: expected string or null, got integer"]
        );
        assert_eq!(
            errs(schema, json!([])),
            ["params: expected object, got array"]
        );
    }

    #[test]
    fn required_and_additional_properties() {
        let schema = json!({
            "type": "object",
            "properties": {"url": {"type": "string"}, "method": {"type": "string"}},
            "required": ["url"],
            "additionalProperties": false,
        });
        assert_eq!(
            errs(schema.clone(), json!({"urll": "x"})),
            [
                "params.url: is required",
                "params.urll: unknown property; expected one of: method, url"
            ]
        );
        let extra_schema = json!({"type": "object", "additionalProperties": {"type": "integer"}});
        assert_eq!(
            errs(extra_schema, json!({"a": 1, "odd key": "x"})),
            [r#"params["odd key"]: expected integer, got string"#]
        );
    }

    #[test]
    fn arrays() {
        let schema = json!({"type": "array", "items": {"type": "string", "minLength": 2},
                            "minItems": 1, "maxItems": 2});
        assert_eq!(
            errs(schema.clone(), json!([])),
            ["params: expected at least 1 item(s), got 0"]
        );
        assert_eq!(
            errs(schema.clone(), json!(["ok", "x", "zz"])),
            [
                "params: expected at most 2 item(s), got 3",
                "params[1]: expected at least 2 character(s), got 1"
            ]
        );
        assert!(errs(schema, json!(["ok"])).is_empty());
    }

    #[test]
    fn numbers_strings_enum_const() {
        let schema = json!({"type": "object", "properties": {
            "n": {"minimum": 1, "maximum": 10},
            "x": {"exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "s": {"maxLength": 3},
            "level": {"enum": ["info", "warn"]},
            "v": {"const": 2},
        }});
        assert_eq!(
            errs(
                schema.clone(),
                json!({"n": 0, "x": 1, "s": "abcd", "level": "debug", "v": 3})
            ),
            [
                "params.level: \"debug\" is not one of \"info\", \"warn\"",
                "params.n: 0 is less than the minimum 1",
                "params.s: expected at most 3 character(s), got 4",
                "params.v: expected 2, got 3",
                "params.x: 1 must be less than 1",
            ]
        );
        assert!(
            errs(
                schema.clone(),
                json!({"n": 10, "x": 0.5, "s": "äöü", "v": 2.0})
            )
            .is_empty()
        );
        assert_eq!(
            errs(schema, json!({"n": 11, "x": 0})),
            [
                "params.n: 11 is greater than the maximum 10",
                "params.x: 0 must be greater than 0"
            ]
        );
    }

    #[test]
    fn combinators() {
        let any = json!({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]});
        assert!(errs(any.clone(), json!("x")).is_empty());
        assert!(errs(any.clone(), json!(3)).is_empty());
        assert_eq!(
            errs(any, json!(-1)),
            [
                "params: does not match any allowed schema (expected string, got integer; -1 is less than the minimum 0)"
            ]
        );
        let one = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert_eq!(
            errs(one.clone(), json!(1)),
            ["params: matches 2 schemas of oneOf; expected exactly one"]
        );
        assert!(errs(one, json!(1.5)).is_empty());
        let all = json!({"allOf": [{"type": "integer"}, {"maximum": 3}]});
        assert_eq!(
            errs(all, json!(5)),
            ["params: 5 is greater than the maximum 3"]
        );
        assert_eq!(
            errs(json!(false), json!(1)),
            ["params: no value is allowed here"]
        );
        assert!(errs(json!(true), json!(1)).is_empty());
        // Unsupported keywords and `default` are ignored.
        assert!(
            errs(
                json!({"type": "string", "pattern": "^a$", "default": 3}),
                json!("b")
            )
            .is_empty()
        );
    }

    #[test]
    fn templates_skip_checks_only_when_unrendered() {
        assert!(is_template("{{ ds }}"));
        assert!(is_template("{% if x %}y{% endif %}"));
        assert!(!is_template("{ not a template }"));
        let schema = json!({"type": "object", "properties": {"seconds": {"type": "number"}},
                            "required": ["seconds"]});
        let value = json!({"seconds": "{{ params.delay }}"});
        assert!(validate_unrendered(&schema, &value).is_ok());
        assert_eq!(
            validate(&schema, &value).unwrap_err(),
            ["params.seconds: expected number, got string"]
        );
        // A template cannot satisfy `required` by being elsewhere.
        assert_eq!(
            validate_unrendered(&schema, &json!({"other": "{{ x }}"})).unwrap_err(),
            ["params.seconds: is required"]
        );
        assert_eq!(
            validate_at(&schema, &json!({}), "expand", Mode::Rendered).unwrap_err(),
            ["expand.seconds: is required"]
        );
    }
}
