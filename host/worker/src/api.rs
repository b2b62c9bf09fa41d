//! The worker's client of the scheduler's execution API (`/execution/v1`): one
//! method per route, each answer sorted into what the worker should do next
//! (go on, back off, drop a fenced try, resend a log), following the worker rules
//! of `docs/design/multi-node.md` §4.2.

use aileron_protocol::seg;
use aileron_protocol::wire::{
    ConnectionResponse, ExecError, FinishRequest, FinishResponse, LogChunk, MemoryHoldRequest,
    MemoryHoldResponse, RegisterRequest, RegisterResponse, StartRequest, StartResponse,
    TRY_TOKEN_HEADER, TryHeartbeat, ValueResponse, WORKER_HEADER, WorkerHeartbeat,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;

/// How long one ordinary call may take. Every call is small; a scheduler that
/// takes longer is as good as unreachable, and the caller backs off and retries.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a health probe may take: it only asks whether the scheduler is back.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a component download may take: up to 128 MiB over a slow link.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long asking for a share of a tenant's memory quota may take: a guest
/// waits on it in the middle of an allocation.
const MEMORY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting should take milliseconds; waiting longer only delays the backoff.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an error answer that is read: problem JSON is a few hundred bytes.
const ERROR_BODY_CAP: usize = 64 << 10;
/// The most of an ordinary answer that is read (the 4 MiB body limit of the API).
const ANSWER_CAP: usize = 4 << 20;

/// Why a call did not succeed, sorted by what the caller does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The scheduler could not be reached, or failed (5xx, 408, 429), or its
    /// answer could not be read: retry with backoff.
    Unavailable(String),
    /// 401, or 403 on a worker route: the worker token is wrong. Log and back off
    /// (the operator may fix the scheduler's token without restarting workers).
    Unauthorized(String),
    /// 403, 404, 409 or 410 on a try route: the try is no longer this worker's.
    Fenced { status: u16, reason: String },
    /// 404 on a worker route or for a component.
    NotFound(String),
    /// 422 with the offset the scheduler expects a log to continue from.
    LogGap { expected_offset: usize },
    /// Any other 4xx: the scheduler refused the request as such, so sending it
    /// again cannot help.
    Refused { status: u16, detail: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unavailable(e) => write!(f, "scheduler unavailable: {e}"),
            Failure::Unauthorized(e) => write!(f, "the scheduler refused the worker token: {e}"),
            Failure::Fenced { status, reason } => write!(f, "{status} {reason}"),
            Failure::NotFound(e) => write!(f, "not found: {e}"),
            Failure::LogGap { expected_offset } => {
                write!(f, "log gap: the scheduler expects offset {expected_offset}")
            }
            Failure::Refused { status, detail } => write!(f, "refused with {status}: {detail}"),
        }
    }
}

impl Failure {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Unavailable(_) | Failure::Unauthorized(_))
    }
}

/// Which kind of route a call goes to: the answers mean different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/workers/…` and `/components/…`.
    Worker,
    /// `/tries/{attempt}/…`, fenced by the attempt.
    Try,
}

/// Sorts a failed answer. `body` is the error answer's problem JSON, if it had one.
pub fn classify(kind: RouteKind, status: StatusCode, body: Option<&ExecError>) -> Failure {
    let detail = || {
        body.map(|b| match &b.reason {
            Some(r) if !b.detail.is_empty() => format!("{r}: {}", b.detail),
            Some(r) => r.clone(),
            None => b.detail.clone(),
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
    };
    let code = status.as_u16();
    if status.is_server_error() || matches!(code, 408 | 429) {
        return Failure::Unavailable(format!("{status}: {}", detail()));
    }
    match (kind, code) {
        (_, 401) | (RouteKind::Worker, 403) => Failure::Unauthorized(detail()),
        (RouteKind::Try, 403 | 404 | 409 | 410) => Failure::Fenced {
            status: code,
            // The machine-readable reason (`superseded`…) is what the log should
            // name; the detail is for humans reading the scheduler's side.
            reason: body.and_then(|b| b.reason.clone()).unwrap_or_else(detail),
        },
        (RouteKind::Worker, 404) => Failure::NotFound(detail()),
        (_, 422) => match body.and_then(|b| b.expected_offset) {
            Some(expected_offset) => Failure::LogGap { expected_offset },
            None => Failure::Refused {
                status: code,
                detail: detail(),
            },
        },
        _ => Failure::Refused {
            status: code,
            detail: detail(),
        },
    }
}

/// The execution API of one scheduler, as one worker calls it.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `{server}/execution/v1`.
    base: String,
    /// `{server}/health`.
    health: String,
    token: String,
    worker: String,
}

/// The credentials of one try: its attempt and its token.
#[derive(Debug, Clone)]
pub struct TryAuth {
    pub attempt: u64,
    pub token: String,
}

impl Api {
    pub fn new(server: &str, token: &str, worker: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()?;
        let server = server.trim_end_matches('/');
        Ok(Api {
            http,
            base: format!("{server}/execution/v1"),
            health: format!("{server}/health"),
            token: token.to_owned(),
            worker: worker.to_owned(),
        })
    }

    fn worker_path(&self, rest: &str) -> String {
        format!("/workers/{}/{rest}", seg(&self.worker))
    }

    /// Whether the scheduler answers its health check: a cheap probe while
    /// backing off, so that a scheduler that comes back is used at once rather
    /// than after the rest of a long backoff.
    pub async fn scheduler_answers(&self) -> bool {
        self.http
            .get(&self.health)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, Failure> {
        let path = self.worker_path("register");
        let resp = self
            .send(Method::POST, &path, None, Some(req), CALL_TIMEOUT)
            .await?;
        json(resp).await
    }

    pub async fn worker_heartbeat(&self, beat: &WorkerHeartbeat) -> Result<(), Failure> {
        let path = self.worker_path("heartbeat");
        self.send(Method::PUT, &path, None, Some(beat), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// Asks to hold part of a tenant's `max_memory`, or gives some back.
    pub async fn memory_hold(
        &self,
        req: &MemoryHoldRequest,
    ) -> Result<MemoryHoldResponse, Failure> {
        let path = self.worker_path("memory");
        let resp = self
            .send(Method::PUT, &path, None, Some(req), MEMORY_TIMEOUT)
            .await?;
        json(resp).await
    }

    pub async fn stop(&self) -> Result<(), Failure> {
        let path = self.worker_path("stop");
        self.send::<()>(Method::POST, &path, None, None, CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// The bytes of a component, at most `cap` of them.
    pub async fn component(&self, digest: &str, cap: usize) -> Result<Vec<u8>, Failure> {
        let path = format!("/components/{}", seg(digest));
        let resp = self
            .send::<()>(Method::GET, &path, None, None, DOWNLOAD_TIMEOUT)
            .await?;
        read_capped(resp, cap).await
    }

    pub async fn start(&self, t: &TryAuth, req: &StartRequest) -> Result<StartResponse, Failure> {
        let path = format!("/tries/{}/start", t.attempt);
        let resp = self
            .send(Method::POST, &path, Some(t), Some(req), CALL_TIMEOUT)
            .await?;
        // The start is applied once the answer is 2xx; an answer that cannot be
        // read must not make the worker start it again, so it falls back to
        // shipping the log from the beginning (the scheduler trims overlaps).
        Ok(json(resp).await.unwrap_or(StartResponse {
            try_number: 0,
            log_offset: 0,
        }))
    }

    pub async fn try_heartbeat(&self, t: &TryAuth, beat: &TryHeartbeat) -> Result<(), Failure> {
        let path = format!("/tries/{}/heartbeat", t.attempt);
        self.send(Method::PUT, &path, Some(t), Some(beat), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    pub async fn logs(&self, t: &TryAuth, chunk: &LogChunk) -> Result<(), Failure> {
        let path = format!("/tries/{}/logs", t.attempt);
        self.send(Method::POST, &path, Some(t), Some(chunk), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// Finishes a try. `None` when the scheduler applied it but its answer could
    /// not be read: the outcome is committed either way.
    pub async fn finish(
        &self,
        t: &TryAuth,
        req: &FinishRequest,
    ) -> Result<Option<FinishResponse>, Failure> {
        let path = format!("/tries/{}/finish", t.attempt);
        let resp = self
            .send(Method::POST, &path, Some(t), Some(req), CALL_TIMEOUT)
            .await?;
        Ok(json(resp).await.ok())
    }

    pub async fn xcom(
        &self,
        t: &TryAuth,
        task_id: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, Failure> {
        let mut path = format!("/tries/{}/xcom/{}", t.attempt, seg(task_id));
        if let Some(key) = key {
            path.push_str(&format!("?key={}", seg(key)));
        }
        let resp = self
            .send::<()>(Method::GET, &path, Some(t), None, CALL_TIMEOUT)
            .await?;
        Ok(json::<ValueResponse>(resp).await?.value)
    }

    /// A variable; `Ok(None)` when it is not defined (404).
    pub async fn variable(&self, t: &TryAuth, key: &str) -> Result<Option<String>, Failure> {
        let path = format!("/tries/{}/variables/{}", t.attempt, seg(key));
        match self
            .send::<()>(Method::GET, &path, Some(t), None, CALL_TIMEOUT)
            .await
        {
            Ok(resp) => Ok(json::<ValueResponse>(resp).await?.value),
            // On these two read routes a 404 says the name is not defined. A try
            // that is gone is still fenced within one heartbeat interval, while
            // reading a missing variable as a fence would kill a healthy try.
            Err(Failure::Fenced { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A connection as JSON text; `Ok(Err(why))` when it cannot be had.
    pub async fn connection(
        &self,
        t: &TryAuth,
        conn_id: &str,
    ) -> Result<Result<String, String>, Failure> {
        let path = format!("/tries/{}/connections/{}", t.attempt, seg(conn_id));
        match self
            .send::<()>(Method::GET, &path, Some(t), None, CALL_TIMEOUT)
            .await
        {
            Ok(resp) => {
                let answer: ConnectionResponse = json(resp).await?;
                Ok(match (answer.connection, answer.error) {
                    (Some(c), _) => Ok(c),
                    (None, Some(e)) => Err(e),
                    (None, None) => Err(format!("connection `{conn_id}` is not defined")),
                })
            }
            Err(Failure::Fenced { status: 404, .. }) => {
                Ok(Err(format!("connection `{conn_id}` is not defined")))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one request and sorts a failed answer.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        try_auth: Option<&TryAuth>,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<reqwest::Response, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .timeout(timeout);
        let kind = match try_auth {
            Some(t) => {
                req = req
                    .header(TRY_TOKEN_HEADER, &t.token)
                    .header(WORKER_HEADER, &self.worker);
                RouteKind::Try
            }
            None => RouteKind::Worker,
        };
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unavailable(error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let problem = read_capped(resp, ERROR_BODY_CAP)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<ExecError>(&b).ok());
        Err(classify(kind, status, problem.as_ref()))
    }
}

/// Reads a JSON answer.
async fn json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, Failure> {
    let bytes = read_capped(resp, ANSWER_CAP).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Unavailable(format!("unreadable answer from the scheduler: {e}")))
}

/// Reads a body of at most `cap` bytes; a longer one is an error rather than
/// memory spent on it.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, Failure> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Failure::Refused {
            status: resp.status().as_u16(),
            detail: format!("the answer is larger than {cap} bytes"),
        });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::Unavailable(error_chain(&e)))?
    {
        if bytes.len() + chunk.len() > cap {
            return Err(Failure::Refused {
                status: resp.status().as_u16(),
                detail: format!("the answer is larger than {cap} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// An error with its causes, since reqwest's own message ("error sending
/// request") hides whether the connection was refused or timed out.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(reason: Option<&str>, expected_offset: Option<usize>) -> ExecError {
        ExecError {
            title: "Conflict".into(),
            status: 409,
            detail: "attempt 7 is superseded".into(),
            reason: reason.map(str::to_owned),
            expected_offset,
        }
    }

    #[test]
    fn try_routes_are_fenced_by_403_404_409_410() {
        let body = problem(Some("superseded"), None);
        for code in [403, 404, 409, 410] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                classify(RouteKind::Try, status, Some(&body)),
                Failure::Fenced {
                    status: code,
                    reason: "superseded".into()
                }
            );
        }
        // Without problem JSON the reason is still something readable.
        assert_eq!(
            classify(RouteKind::Try, StatusCode::CONFLICT, None),
            Failure::Fenced {
                status: 409,
                reason: "Conflict".into()
            }
        );
    }

    #[test]
    fn worker_routes_back_off_on_auth_and_report_missing() {
        assert!(matches!(
            classify(RouteKind::Worker, StatusCode::FORBIDDEN, None),
            Failure::Unauthorized(_)
        ));
        assert!(matches!(
            classify(RouteKind::Try, StatusCode::UNAUTHORIZED, None),
            Failure::Unauthorized(_)
        ));
        assert!(matches!(
            classify(RouteKind::Worker, StatusCode::NOT_FOUND, None),
            Failure::NotFound(_)
        ));
    }

    #[test]
    fn server_errors_are_retried_and_gaps_resent() {
        for code in [500, 502, 503, 504, 408, 429] {
            let f = classify(RouteKind::Try, StatusCode::from_u16(code).unwrap(), None);
            assert!(f.is_retryable(), "{code}: {f:?}");
        }
        let gap = problem(None, Some(1024));
        assert_eq!(
            classify(RouteKind::Try, StatusCode::UNPROCESSABLE_ENTITY, Some(&gap)),
            Failure::LogGap {
                expected_offset: 1024
            }
        );
        let f = classify(RouteKind::Try, StatusCode::UNPROCESSABLE_ENTITY, None);
        assert!(matches!(f, Failure::Refused { status: 422, .. }), "{f:?}");
        assert!(!f.is_retryable());
        let f = classify(
            RouteKind::Try,
            StatusCode::BAD_REQUEST,
            Some(&problem(None, None)),
        );
        assert_eq!(
            f,
            Failure::Refused {
                status: 400,
                detail: "attempt 7 is superseded".into()
            }
        );
    }
}
