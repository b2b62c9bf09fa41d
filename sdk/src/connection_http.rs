//! HTTP through a connection: [`Request`] and [`Response`] for
//! [`TaskContext::http_with_connection`](crate::TaskContext::http_with_connection),
//! where the host adds the connection's credential and the operator never holds it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request to send through a connection.
///
/// `url` is a path on the connection's origin (`/v1/items?page=2`), or an
/// absolute URL that names the connection's host and port; the host refuses any
/// other. Headers that frame the message (`host`, `content-length`, ...) and the
/// credential's own header are written by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// A path, or an absolute URL on the connection's origin.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with `method` to `url`, no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` to `url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, serde_json::Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }
}

/// What the server answered. Redirects are not followed: a 3xx is returned as
/// it is. Any copy of the connection's secret in it has been blanked by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a request through a connection got no response: the connection is not
/// defined or cannot be used for this URL, or the server could not be reached.
///
/// `?` turns it into a `failed` [`TaskError`](crate::TaskError), retried while the
/// task has retries left.
#[derive(Debug, thiserror::Error)]
#[error("HTTP request with connection `{conn_id}` not done: {reason}")]
pub struct HttpError {
    /// The connection used.
    pub conn_id: String,
    /// The host's reason.
    pub reason: String,
}
