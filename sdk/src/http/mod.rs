//! Outbound HTTP: the [`Request`] and [`Response`] both
//! [`TaskContext::http`](crate::TaskContext::http) (plain `wasi:http`, let through to
//! the task's `allow_hosts`) and
//! [`TaskContext::http_with_connection`](crate::TaskContext::http_with_connection)
//! (the host adds a connection's credential) take and give, and why a request got
//! no response.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) mod allow_hosts;
pub(crate) mod url;
pub(crate) mod wasi;

/// A request to send.
///
/// For [`TaskContext::http`](crate::TaskContext::http), `url` is an absolute
/// `http://` or `https://` URL. Through a connection it is a path on the
/// connection's origin (`/v1/items?page=2`), or an absolute URL that names the
/// connection's host and port; the host refuses any other. Headers that frame the
/// message (`host`, `content-length`, ...) and a connection's credential header
/// are written by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute URL, or through a connection a path on its origin.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
    /// How long to wait for the connection, the first byte and each later chunk;
    /// `None` (and anything longer) is the host's cap of 30 s. Only for
    /// [`TaskContext::http`](crate::TaskContext::http): through a connection the
    /// host's timeout applies.
    pub timeout: Option<Duration>,
    /// Read at most this many bytes of the response body and leave the rest
    /// ([`Response::truncated`] says so); `None` reads it all. Only for
    /// [`TaskContext::http`](crate::TaskContext::http).
    pub max_body: Option<usize>,
}

impl Request {
    /// A request with `method` to `url`, no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            max_body: None,
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

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`max_body`](Self::max_body).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }
}

/// What the server answered. Redirects are not followed: a 3xx is returned as
/// it is. Through a connection, any copy of its secret has been blanked by the
/// host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, whole unless [`truncated`](Self::truncated).
    pub body: Vec<u8>,
    /// The body was longer than the request's [`max_body`](Request::max_body).
    pub truncated: bool,
}

impl Response {
    /// A response with `status` and `body` and no headers, as a test server
    /// answers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            ..Self::default()
        }
    }

    /// Adds a header (its name is kept in lower case, as the host gives them).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

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

/// Why a [`TaskContext::http`](crate::TaskContext::http) request got no response.
///
/// `?` turns it into a `failed` [`TaskError`](crate::TaskError), retried while the
/// task has retries left; an operator that knows better looks at
/// [`kind`](Self::kind): no retry adds a missing `allow_hosts` grant or mends a
/// URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {url} not sent: {reason}")]
pub struct FetchError {
    /// What went wrong, sorted by what can be done about it.
    pub kind: FetchErrorKind,
    /// The request's method, in upper case.
    pub method: String,
    /// The request's URL, as given.
    pub url: String,
    /// What the host or the SDK said.
    pub reason: String,
}

/// What kind of failure a [`FetchError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// The host refused to send it: its host and port are not in the task's
    /// `allow_hosts`, or the name resolves to a loopback or private address.
    /// The try's log has the host's full reason.
    Refused,
    /// The request cannot be sent as written (URL, method, a header the host
    /// sets itself).
    Invalid,
    /// DNS, connection, TLS, timeout or protocol trouble: may pass on its own.
    Transient,
}

impl fmt::Display for FetchErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FetchErrorKind::Refused => "refused",
            FetchErrorKind::Invalid => "invalid",
            FetchErrorKind::Transient => "transient",
        })
    }
}

impl FetchError {
    /// An error of `kind` for `request`: what a test server returns to stand in
    /// for the host's refusal or a network failure.
    pub fn new(kind: FetchErrorKind, request: &Request, reason: impl Into<String>) -> Self {
        Self {
            kind,
            method: request.method.to_ascii_uppercase(),
            url: request.url.clone(),
            reason: reason.into(),
        }
    }

    /// Whether the host refused the request (see [`FetchErrorKind::Refused`]).
    pub fn is_refused(&self) -> bool {
        self.kind == FetchErrorKind::Refused
    }
}

/// The reason given for a request to a host the task's `allow_hosts` leaves out.
pub(crate) const NOT_ALLOWED: &str =
    "the host refused it: its host and port are not in the task's allow_hosts";

/// Checks `request` before it goes to `host`: an absolute http(s) URL and a
/// method that is one word.
pub(crate) fn send(
    host: &dyn crate::host::Host,
    request: &Request,
) -> Result<Response, FetchError> {
    let fail = |kind, reason: String| FetchError::new(kind, request, reason);
    let url = url::Url::parse(&request.url).map_err(|why| fail(FetchErrorKind::Invalid, why))?;
    let method = request.method.trim();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(fail(
            FetchErrorKind::Invalid,
            format!("`{method}` is not an HTTP method"),
        ));
    }
    host.http(request, &url)
        .map_err(|(kind, reason)| fail(kind, reason))
}
