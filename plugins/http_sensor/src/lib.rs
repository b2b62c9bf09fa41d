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

use std::collections::BTreeMap;
use std::time::Duration;

use aileron_op_support::Seconds;
use aileron_sdk::prelude::*;
use aileron_sdk::serde_json::{Value, json};
use serde::{Deserialize, Serialize};

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
    let method = params.method.trim().to_ascii_uppercase();
    let poke_again = Outcome::reschedule(params.poke_interval.0.max(Duration::from_secs(1)));
    let request = Request {
        method: method.clone(),
        url: params.url.clone(),
        headers: params.headers.into_iter().collect(),
        body: params.body.map(String::into_bytes).unwrap_or_default(),
        timeout: Some(params.request_timeout.0),
        max_body: Some(MAX_BODY_READ),
    };
    info!(ctx, "poking {method} {}", params.url);
    let response = match ctx.http(request) {
        Ok(response) => response,
        Err(e) if e.kind == FetchErrorKind::Refused => {
            return Err(TaskError::fatal(format!(
                "{method} {} refused by the host: {}; add the URL's host to the task's \
                 allow_hosts (or ask for private addresses to be allowed)",
                params.url, e.reason
            )));
        }
        Err(e) if e.kind == FetchErrorKind::Invalid => {
            return Err(TaskError::fatal(format!(
                "{method} {} is not a valid request: {}",
                params.url, e.reason
            )));
        }
        Err(e) => {
            warn!(
                ctx,
                "{method} {} failed: {}; poking again", params.url, e.reason
            );
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
    use aileron_sdk::testing::TestHost;

    use super::*;

    /// A host whose web answers every allowed request with `answer`.
    fn host(answer: Result<(u16, &'static str), FetchErrorKind>) -> TestHost {
        TestHost::new()
            .with_allow_hosts(["api.example.com", "h", "h:8080"])
            .with_web(move |request| match answer {
                Ok((status, body)) => Ok(Response::new(status, body)),
                Err(kind) => Err(FetchError::new(kind, request, "connection refused")),
            })
    }

    fn run(params: &str, host: &TestHost) -> Result<Outcome, TaskError> {
        host.run(TaskInfo::default(), params, http_sensor)
    }

    /// What the host was asked, in one line.
    fn asked(host: &TestHost) -> Vec<String> {
        host.fetched()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?} {:?} {:?}",
                    r.method,
                    r.url,
                    r.headers,
                    String::from_utf8_lossy(&r.body),
                    r.timeout,
                )
            })
            .collect()
    }

    fn last_log(host: &TestHost) -> (Level, String) {
        host.logs().pop().unwrap()
    }

    #[test]
    fn a_2xx_response_succeeds_with_status_and_body() {
        let host = host(Ok((204, "")));
        let result = run(r#"{"url": "https://api.example.com/ready?x=1"}"#, &host);
        assert_eq!(
            result,
            Ok(Outcome::returning(json!({"status": 204, "body": ""})))
        );
        assert_eq!(
            asked(&host),
            [r#"GET https://api.example.com/ready?x=1 [] "" Some(30s)"#]
        );
        assert_eq!(last_log(&host).1, "ready: status 204");
    }

    #[test]
    fn method_headers_body_and_timeout_are_sent() {
        let host = host(Ok((200, "ok")));
        let params = r#"{"url": "http://h:8080", "method": "post", "headers": {"X-A": "1"},
                         "body": "{}", "request_timeout": "5s"}"#;
        assert!(run(params, &host).is_ok());
        assert_eq!(
            asked(&host),
            [r#"POST http://h:8080 [("X-A", "1")] "{}" Some(5s)"#]
        );
    }

    #[test]
    fn an_unexpected_status_or_body_pokes_again() {
        let busy = host(Ok((503, "")));
        let result = run(r#"{"url": "http://h/", "poke_interval": 5}"#, &busy);
        assert_eq!(result, Ok(Outcome::Reschedule(5)));
        assert!(
            last_log(&busy)
                .1
                .contains("status 503 is not the expected 2xx")
        );

        let pending = host(Ok((200, "pending")));
        let params =
            r#"{"url": "http://h/", "expect_status": [200, 201], "response_contains": "done"}"#;
        assert_eq!(run(params, &pending), Ok(Outcome::Reschedule(60)));
        assert!(last_log(&pending).1.contains("does not contain \"done\""));

        let params = r#"{"url": "http://h/", "expect_status": 404, "poke_interval": "2m"}"#;
        assert_eq!(
            run(params, &host(Ok((200, "")))),
            Ok(Outcome::Reschedule(120))
        );
        assert!(run(params, &host(Ok((404, "")))).is_ok());
    }

    #[test]
    fn transient_errors_poke_again_and_refusals_are_fatal() {
        let down = host(Err(FetchErrorKind::Transient));
        assert_eq!(
            run(r#"{"url": "http://h/"}"#, &down),
            Ok(Outcome::Reschedule(60))
        );
        assert_eq!(last_log(&down).0, Level::Warn);

        // Not in allow_hosts: the host refuses before anything is sent.
        let error = run(
            r#"{"url": "http://elsewhere.example/"}"#,
            &host(Ok((200, ""))),
        )
        .unwrap_err();
        assert!(error.is_fatal());
        assert!(error.message().contains("allow_hosts"), "{error}");
    }

    #[test]
    fn invalid_urls_and_methods_are_fatal_without_a_request() {
        let host = host(Ok((200, "")));
        for params in [
            r#"{"url": "ftp://h/"}"#,
            r#"{"url": "h/path"}"#,
            r#"{"url": "http://user@h/"}"#,
            r#"{"url": "http://h/", "method": "GE T"}"#,
            r#"{"url": "http://h/", "expect_status": "200"}"#,
        ] {
            let error = run(params, &host).unwrap_err();
            assert!(error.is_fatal(), "{params}: {error}");
        }
        assert!(host.fetched().is_empty());
    }

    #[test]
    fn long_bodies_are_cut_to_fit_the_xcom() {
        assert_eq!(json_prefix("ab\"c", 6), ("ab\"", true));
        assert_eq!(json_prefix("ab\"c", 5), ("ab", true));
        assert_eq!(json_prefix("abc", 5), ("abc", false));
        let body: &'static str = Box::leak("é\u{1}".repeat(20_000).into_boxed_str());
        let Ok(Outcome::Success(Some(value))) =
            run(r#"{"url": "http://h/"}"#, &host(Ok((200, body))))
        else {
            panic!("expected success")
        };
        assert_eq!(value["truncated"], true);
        assert!(value.to_string().len() < MAX_BODY_XCOM + 100);
    }
}
