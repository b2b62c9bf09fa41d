//! The seam between [`TaskContext`](crate::TaskContext) and the host: the real WIT
//! (and `wasi:http`) imports inside a component, an in-memory double in tests.

use crate::http::FetchErrorKind;
use crate::http::url::Url;
use crate::wit::aileron::operator::context as imports;
use crate::{Level, Request, Response};

/// The `context` interface of the WIT world, with plain Rust types.
///
/// JSON stays text here: encoding and decoding belong to `TaskContext`, so both
/// implementations see exactly what crosses the component boundary.
pub(crate) trait Host {
    fn log(&self, level: Level, message: &str);
    fn xcom_push(&self, key: &str, value: &str) -> Result<(), String>;
    fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String>;
    fn variable(&self, key: &str) -> Option<String>;
    fn connection(&self, conn_id: &str) -> Result<String, String>;
    fn http_with_connection(&self, conn_id: &str, request: Request) -> Result<Response, String>;
    /// Plain outbound HTTP (`wasi:http`); `url` is `request.url` parsed.
    fn http(&self, request: &Request, url: &Url) -> Result<Response, (FetchErrorKind, String)>;
}

/// The host that runs the component, reached through the WIT imports.
///
/// Only meaningful on `wasm32`: on other targets the generated imports are
/// `unreachable!()`, which is why host-side tests use `testing::TestHost` instead.
pub(crate) struct WitHost;

impl Host for WitHost {
    fn log(&self, level: Level, message: &str) {
        imports::log(level.into(), message);
    }

    fn xcom_push(&self, key: &str, value: &str) -> Result<(), String> {
        imports::xcom_push(key, value)
    }

    fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String> {
        imports::xcom_pull(task_id, key)
    }

    fn variable(&self, key: &str) -> Option<String> {
        imports::variable(key)
    }

    fn connection(&self, conn_id: &str) -> Result<String, String> {
        imports::connection(conn_id)
    }

    fn http_with_connection(&self, conn_id: &str, request: Request) -> Result<Response, String> {
        let request = imports::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        imports::http_with_connection(conn_id, &request).map(|r| Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
            truncated: false,
        })
    }

    fn http(&self, request: &Request, url: &Url) -> Result<Response, (FetchErrorKind, String)> {
        crate::http::wasi::send(request, url)
    }
}
