//! Checks and conversions of single values of a DAG file: ids, host patterns,
//! dates, and TOML values turned into the JSON that params are kept as.

use super::*;

/// Airflow's `validate_key`, restricted to ASCII.
pub(super) fn validate_id(what: &str, id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    let len = id.chars().count();
    if len > MAX_ID_LEN {
        return Err(format!(
            "{what} has to be less than {MAX_ID_LEN} characters, not {len}"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!(
            "{what} `{id}` has to be made of alphanumeric characters, dashes, dots and underscores exclusively"
        ));
    }
    if id.contains("..") {
        return Err(format!(
            "{what} `{id}` must not contain consecutive dots ('..')"
        ));
    }
    Ok(())
}

/// An `allow_hosts` entry: a host name, optionally with a port, optionally with a
/// leading `*.` wildcard — not a URL.
pub(super) fn validate_host_pattern(pattern: &str) -> std::result::Result<(), String> {
    let bad = pattern.is_empty()
        || pattern.contains("://")
        || pattern.contains('/')
        || pattern.chars().any(char::is_whitespace)
        || pattern.strip_prefix("*.").unwrap_or(pattern).contains('*');
    if bad {
        return Err(format!(
            "allow_hosts entry `{pattern}` must be a host such as \"api.example.com\", \"api.example.com:8443\" or \"*.example.com\""
        ));
    }
    Ok(())
}

/// A date or datetime a person typed (`--logical-date`, the API's
/// `logical_date`): as [`parse_datetime`] in UTC, with a message saying what is
/// accepted.
pub fn parse_user_datetime(text: &str) -> Result<Timestamp, String> {
    parse_datetime(text, &TimeZone::UTC).ok_or_else(|| {
        format!(
            "`{text}` is not a date (2026-01-31) or an RFC 3339 datetime (2026-01-31T02:00:00Z)"
        )
    })
}

/// A date, an RFC 3339 datetime, or a datetime without offset (in `tz`).
pub fn parse_datetime(text: &str, tz: &TimeZone) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt.to_zoned(tz.clone()).ok().map(|z| z.timestamp());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date.to_zoned(tz.clone()).ok().map(|z| z.timestamp());
    }
    None
}

pub(super) fn file_stem(fileloc: &str) -> &str {
    let name = fileloc.rsplit(['/', '\\']).next().unwrap_or(fileloc);
    name.strip_suffix(".toml").unwrap_or(name)
}

pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

pub(super) fn toml_to_json(value: &toml::Value, path: &str) -> std::result::Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{path}: {f} is not representable in JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        // JSON has no datetime: keep the TOML spelling, which is RFC 3339.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{path}[{i}]")))
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(toml_table_to_json(t, path)?),
    })
}

pub(super) fn toml_table_to_json(
    table: &toml::Table,
    path: &str,
) -> std::result::Result<Map<String, Value>, String> {
    table
        .iter()
        .map(|(k, v)| Ok((k.clone(), toml_to_json(v, &format!("{path}.{k}"))?)))
        .collect()
}
