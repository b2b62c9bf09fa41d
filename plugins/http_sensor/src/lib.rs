//! `http_sensor`: pokes a URL until the response meets a condition, like Airflow's
//! HttpSensor in `mode="reschedule"`.
//!
//! Each try makes one request over `wasi:http`. The host only lets it through to
//! hosts in the task's `allow_hosts` (and, unless the host allows it, never to a
//! loopback or private address), so a DAG using this operator lists the URL's host
//! there:
//!
//! ```toml
//! [tasks.wait_for_api]
//! operator = "http_sensor"
//! allow_hosts = ["api.example.com"]
//! params = { url = "https://api.example.com/ready", response_contains = "ok" }
//! ```
//!
//! What a try does with the answer:
//! - status in `expect_status` and (if given) `response_contains` in the body:
//!   success, returning `{"status": 200, "body": "…"}` (the body cut to 16 KiB of
//!   JSON text, with `"truncated": true` when cut);
//! - any other status or body: not yet, poke again in `poke_interval`;
//! - a connection, DNS, TLS or timeout error: logged as a warning, poke again;
//! - the host refused the request (not in `allow_hosts`, or a private address):
//!   fatal, since no retry can add the grant; an invalid URL, method or header is
//!   fatal too.

mod client;
mod url;

use std::collections::BTreeMap;
use std::time::Duration;

use aileron_op_support::Seconds;
use aileron_sdk::prelude::*;
use aileron_sdk::serde_json::{Value, json};
use serde::{Deserialize, Serialize};

use crate::client::{Client, FetchError, Request, WasiClient};

/// Bytes of the response body read: `response_contains` looks at this much.
const MAX_BODY_READ: usize = 1 << 20;

/// The body returned as XCom, as JSON text: well under the host's 64 KiB cap.
const MAX_BODY_XCOM: usize = 16 << 10;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// http:// or https:// URL to request.
    url: String,
    /// HTTP method.
    #[serde(default = "get")]
    method: String,
    /// Request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default)]
    body: Option<String>,
    /// Status (or list of statuses) that counts as ready; default any 2xx.
    #[serde(default)]
    expect_status: Option<ExpectStatus>,
    /// Text the response body must contain.
    #[serde(default)]
    response_contains: Option<String>,
    /// Seconds, or a duration such as "5m", before poking again.
    #[serde(default = "one_minute")]
    poke_interval: Seconds,
    /// Seconds to wait for the connection, the first byte and each later chunk
    /// (the host caps each at 30 s).
    #[serde(default = "half_a_minute")]
    request_timeout: Seconds,
}

/// One status or a list of them.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
enum ExpectStatus {
    One(#[schemars(range(min = 100, max = 599))] u16),
    Many(#[schemars(length(min = 1), inner(range(min = 100, max = 599)))] Vec<u16>),
}

impl ExpectStatus {
    fn accepts(expect: Option<&Self>, status: u16) -> bool {
        match expect {
            None => (200..300).contains(&status),
            Some(ExpectStatus::One(s)) => *s == status,
            Some(ExpectStatus::Many(list)) => list.contains(&status),
        }
    }
}

fn get() -> String {
    "GET".to_owned()
}

fn one_minute() -> Seconds {
    Seconds(Duration::from_secs(60))
}

fn half_a_minute() -> Seconds {
    Seconds(Duration::from_secs(30))
}

/// Requests `url` and succeeds once the response has an expected status (default:
/// any 2xx) and, if `response_contains` is given, that text in its body; until
/// then asks to be poked again in `poke_interval`. The URL's host must be in the
/// task's `allow_hosts`.
#[operator(name = "http_sensor", version = "0.1.0")]
fn http_sensor(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    poke(ctx, params, &WasiClient)
}

/// One poke, with the HTTP client as a parameter so tests can stand in for it.
fn poke(ctx: &TaskContext, params: Params, client: &dyn Client) -> Result<Outcome, TaskError> {
    let target = url::Url::parse(&params.url).fatal()?;
    let method = params.method.trim().to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(TaskError::fatal(format!(
            "invalid params at `method`: `{}` is not an HTTP method",
            params.method
        )));
    }
    let poke_again = Outcome::reschedule(params.poke_interval.0.max(Duration::from_secs(1)));
    let request = Request {
        method: method.clone(),
        url: target,
        headers: params.headers.into_iter().collect(),
        body: params.body.map(String::into_bytes),
        timeout: params.request_timeout.0,
        max_body: MAX_BODY_READ,
    };
    info!(ctx, "poking {method} {}", params.url);
    let response = match client.send(&request) {
        Ok(response) => response,
        Err(FetchError::Refused(why)) => {
            return Err(TaskError::fatal(format!(
                "{method} {} refused by the host: {why}; add the URL's host to the task's \
                 allow_hosts (or ask for private addresses to be allowed)",
                params.url
            )));
        }
        Err(FetchError::Invalid(why)) => {
            return Err(TaskError::fatal(format!(
                "{method} {} is not a valid request: {why}",
                params.url
            )));
        }
        Err(FetchError::Transient(why)) => {
            warn!(ctx, "{method} {} failed: {why}; poking again", params.url);
            return Ok(poke_again);
        }
    };
    let text = String::from_utf8_lossy(&response.body);
    if !ExpectStatus::accepts(params.expect_status.as_ref(), response.status) {
        info!(
            ctx,
            "not ready: status {} is not the expected {}",
            response.status,
            describe_expected(params.expect_status.as_ref())
        );
        return Ok(poke_again);
    }
    if let Some(needle) = &params.response_contains
        && !text.contains(needle.as_str())
    {
        info!(
            ctx,
            "not ready: status {} but the body does not contain {needle:?}", response.status
        );
        return Ok(poke_again);
    }
    info!(ctx, "ready: status {}", response.status);
    let (body, cut) = json_prefix(&text, MAX_BODY_XCOM);
    let mut value = json!({"status": response.status, "body": body});
    if cut || response.truncated {
        value["truncated"] = Value::Bool(true);
    }
    Ok(Outcome::returning(value))
}

fn describe_expected(expect: Option<&ExpectStatus>) -> String {
    match expect {
        None => "2xx".to_owned(),
        Some(ExpectStatus::One(s)) => s.to_string(),
        Some(ExpectStatus::Many(list)) => {
            let list: Vec<String> = list.iter().map(u16::to_string).collect();
            format!("one of {}", list.join(", "))
        }
    }
}

/// The longest prefix of `text` whose JSON string encoding fits in `max` bytes,
/// and whether it was cut.
fn json_prefix(text: &str, max: usize) -> (&str, bool) {
    let mut size = 2; // the quotes
    for (at, c) in text.char_indices() {
        size += match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        };
        if size > max {
            return (&text[..at], true);
        }
    }
    (text, false)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use aileron_sdk::testing::TestHost;

    use super::*;
    use crate::client::Response;

    /// Answers every request with the same result and records what it was asked.
    struct Fake {
        answer: Result<(u16, &'static str), FetchError>,
        asked: RefCell<Vec<String>>,
    }

    impl Fake {
        fn status(status: u16, body: &'static str) -> Self {
            Fake {
                answer: Ok((status, body)),
                asked: RefCell::default(),
            }
        }

        fn error(error: FetchError) -> Self {
            Fake {
                answer: Err(error),
                asked: RefCell::default(),
            }
        }
    }

    impl Client for Fake {
        fn send(&self, request: &Request) -> Result<Response, FetchError> {
            self.asked.borrow_mut().push(format!(
                "{} {}://{}{} {:?} {:?} {:?}",
                request.method,
                request.url.scheme,
                request.url.authority,
                request.url.path_with_query,
                request.headers,
                request.body.as_deref().map(String::from_utf8_lossy),
                request.timeout,
            ));
            match &self.answer {
                Ok((status, body)) => Ok(Response {
                    status: *status,
                    body: body.as_bytes().to_vec(),
                    truncated: false,
                }),
                Err(e) => Err(e.clone()),
            }
        }
    }

    fn run(params: &str, client: &Fake) -> (Result<Outcome, TaskError>, Vec<(Level, String)>) {
        let host = TestHost::new();
        let result = host.run(TaskInfo::default(), params, |ctx, p: Params| {
            poke(ctx, p, client)
        });
        (result, host.logs())
    }

    #[test]
    fn a_2xx_response_succeeds_with_status_and_body() {
        let fake = Fake::status(204, "");
        let (result, logs) = run(r#"{"url": "https://api.example.com/ready?x=1"}"#, &fake);
        assert_eq!(
            result,
            Ok(Outcome::returning(json!({"status": 204, "body": ""})))
        );
        assert_eq!(
            fake.asked.borrow()[0],
            "GET https://api.example.com/ready?x=1 [] None 30s"
        );
        assert_eq!(logs.last().unwrap().1, "ready: status 204");
    }

    #[test]
    fn method_headers_body_and_timeout_are_sent() {
        let fake = Fake::status(200, "ok");
        let params = r#"{"url": "http://h:8080", "method": "post", "headers": {"X-A": "1"},
                         "body": "{}", "request_timeout": "5s"}"#;
        assert!(run(params, &fake).0.is_ok());
        assert_eq!(
            fake.asked.borrow()[0],
            r#"POST http://h:8080/ [("X-A", "1")] Some("{}") 5s"#
        );
    }

    #[test]
    fn an_unexpected_status_or_body_pokes_again() {
        let (result, logs) = run(
            r#"{"url": "http://h/", "poke_interval": 5}"#,
            &Fake::status(503, ""),
        );
        assert_eq!(result, Ok(Outcome::Reschedule(5)));
        assert!(
            logs.last()
                .unwrap()
                .1
                .contains("status 503 is not the expected 2xx")
        );

        let params =
            r#"{"url": "http://h/", "expect_status": [200, 201], "response_contains": "done"}"#;
        let (result, logs) = run(params, &Fake::status(200, "pending"));
        assert_eq!(result, Ok(Outcome::Reschedule(60)));
        assert!(logs.last().unwrap().1.contains("does not contain \"done\""));

        let params = r#"{"url": "http://h/", "expect_status": 404, "poke_interval": "2m"}"#;
        assert_eq!(
            run(params, &Fake::status(200, "")).0,
            Ok(Outcome::Reschedule(120))
        );
        assert!(run(params, &Fake::status(404, "")).0.is_ok());
    }

    #[test]
    fn transient_errors_poke_again_and_refusals_are_fatal() {
        let fake = Fake::error(FetchError::Transient("connection refused".into()));
        let (result, logs) = run(r#"{"url": "http://h/"}"#, &fake);
        assert_eq!(result, Ok(Outcome::Reschedule(60)));
        assert_eq!(logs.last().unwrap().0, Level::Warn);

        let fake = Fake::error(FetchError::Refused("HTTP request denied".into()));
        let error = run(r#"{"url": "http://h/"}"#, &fake).0.unwrap_err();
        assert!(error.is_fatal());
        assert!(error.message().contains("allow_hosts"), "{error}");
    }

    #[test]
    fn invalid_urls_and_methods_are_fatal_without_a_request() {
        let fake = Fake::status(200, "");
        for params in [
            r#"{"url": "ftp://h/"}"#,
            r#"{"url": "h/path"}"#,
            r#"{"url": "http://user@h/"}"#,
            r#"{"url": "http://h/", "method": "GE T"}"#,
            r#"{"url": "http://h/", "expect_status": "200"}"#,
        ] {
            let error = run(params, &fake).0.unwrap_err();
            assert!(error.is_fatal(), "{params}: {error}");
        }
        assert!(fake.asked.borrow().is_empty());
    }

    #[test]
    fn long_bodies_are_cut_to_fit_the_xcom() {
        assert_eq!(json_prefix("ab\"c", 6), ("ab\"", true));
        assert_eq!(json_prefix("ab\"c", 5), ("ab", true));
        assert_eq!(json_prefix("abc", 5), ("abc", false));
        let body: &'static str = Box::leak("é\u{1}".repeat(20_000).into_boxed_str());
        let Ok(Outcome::Success(Some(value))) =
            run(r#"{"url": "http://h/"}"#, &Fake::status(200, body)).0
        else {
            panic!("expected success")
        };
        assert_eq!(value["truncated"], true);
        assert!(value.to_string().len() < MAX_BODY_XCOM + 100);
    }
}
