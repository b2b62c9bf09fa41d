//! [`Connection`]: a tenant's stored credentials for an external system, as the
//! host hands them to an operator.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A connection, with Airflow's field names.
///
/// Every field but `conn_type` is optional, as in Airflow. `Debug` never prints the
/// password, so logging a connection does not leak it.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Connection {
    /// The kind of system, such as `postgres` or `http`.
    pub conn_type: String,
    /// Host name or address.
    pub host: Option<String>,
    /// Port number.
    pub port: Option<u16>,
    /// User name.
    pub login: Option<String>,
    /// Password or token.
    pub password: Option<String>,
    /// Database, schema or path, depending on `conn_type`.
    pub schema: Option<String>,
    /// Anything else, as a JSON object.
    #[serde(deserialize_with = "extra_object")]
    pub extra: Map<String, Value>,
}

impl Connection {
    /// Deserializes `extra` into a type of the operator's own.
    pub fn extra_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(Value::Object(self.extra.clone()))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("conn_type", &self.conn_type)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("schema", &self.schema)
            .field("extra", &self.extra)
            .finish()
    }
}

/// Accepts `extra` as an object, as `null`, or (as Airflow stores it) as a string
/// holding a JSON object, so operators see one shape whatever the host stored.
fn extra_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        Value::String(text) if text.trim().is_empty() => Ok(Map::new()),
        Value::String(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(de::Error::custom(
                "`extra` is a string but not a JSON object",
            )),
        },
        other => Err(de::Error::invalid_type(
            unexpected(&other),
            &"a JSON object or a string holding one",
        )),
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::Array(_) => de::Unexpected::Seq,
        _ => de::Unexpected::Other("a JSON value"),
    }
}

/// Why a connection could not be read.
///
/// `?` turns it into a `failed` [`TaskError`](crate::TaskError): the connection may
/// be created before the next try. Use [`TaskResultExt::fatal`](crate::TaskResultExt::fatal)
/// to fail at once instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The host has no such connection for this tenant, or refused to hand it out.
    #[error("connection `{conn_id}` is not available: {reason}")]
    Unavailable {
        /// The connection asked for.
        conn_id: String,
        /// The host's reason.
        reason: String,
    },
    /// The connection's JSON does not deserialize into the requested type.
    #[error("connection `{conn_id}` does not have the expected shape")]
    Decode {
        /// The connection asked for.
        conn_id: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_may_be_an_object_a_json_string_or_absent() {
        let from_object: Connection =
            serde_json::from_value(json!({"conn_type": "http", "extra": {"verify": false}}))
                .unwrap();
        let from_string: Connection =
            serde_json::from_value(json!({"conn_type": "http", "extra": "{\"verify\": false}"}))
                .unwrap();
        let absent: Connection = serde_json::from_value(json!({"conn_type": "http"})).unwrap();
        assert_eq!(from_object.extra["verify"], false);
        assert_eq!(from_object, from_string);
        assert!(absent.extra.is_empty());
        assert!(serde_json::from_value::<Connection>(json!({"extra": "[1]"})).is_err());
        assert!(serde_json::from_value::<Connection>(json!({"extra": 3})).is_err());
    }

    #[test]
    fn debug_redacts_the_password() {
        let connection: Connection =
            serde_json::from_value(json!({"conn_type": "postgres", "password": "hunter2"}))
                .unwrap();
        let debug = format!("{connection:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn extra_deserializes_into_an_operator_type() {
        #[derive(Deserialize)]
        struct Extra {
            verify: bool,
        }
        let connection: Connection =
            serde_json::from_value(json!({"conn_type": "http", "extra": {"verify": true}}))
                .unwrap();
        assert!(connection.extra_as::<Extra>().unwrap().verify);
    }
}
