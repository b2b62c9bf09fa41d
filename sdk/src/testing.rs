//! [`TestHost`]: an in-memory host, so operators can be unit-tested with plain
//! `cargo test` on the build machine, without wasm or a running Aileron.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::RETURN_VALUE_KEY;
use crate::host::Host;
use crate::http::url::Url;
use crate::http::{FetchErrorKind, NOT_ALLOWED};
use crate::{
    __private, FetchError, Level, Outcome, Request, Response, TaskContext, TaskError, TaskInfo,
};

pub use crate::http::allow_hosts::host_allowed;

/// An in-memory stand-in for the Aileron host.
///
/// Seed it with variables, connections and upstream XComs, hand its
/// [`context`](TestHost::context) to the operator function (or let
/// [`run`](TestHost::run) decode JSON params first, exactly as a deployed operator
/// does), then inspect the log lines and XComs the operator produced.
///
/// ```
/// use aileron_sdk::prelude::*;
/// use aileron_sdk::testing::TestHost;
///
/// fn greet(ctx: &TaskContext, name: String) -> Result<Outcome, TaskError> {
///     let greeting = ctx.variable("greeting").unwrap_or_else(|| "Hello".into());
///     info!(ctx, "{greeting}, {name}");
///     ctx.xcom_push("name", &name)?;
///     Ok(Outcome::success())
/// }
///
/// let host = TestHost::new().with_variable("greeting", "Hi");
/// let mut task = TaskInfo::default();
/// task.task_id = "greet".into();
///
/// let outcome = host.run(task, r#""Ada""#, greet).unwrap();
/// assert_eq!(outcome, Outcome::success());
/// assert_eq!(host.logs(), [(Level::Info, "Hi, Ada".to_owned())]);
/// assert_eq!(host.xcom("greet", "name"), Some("Ada".into()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct TestHost {
    state: Rc<RefCell<State>>,
}

#[derive(Debug, Default)]
struct State {
    variables: BTreeMap<String, String>,
    connections: BTreeMap<String, Value>,
    /// Keyed by (task id, key); values kept as the JSON text that crossed the seam.
    xcoms: BTreeMap<(String, String), String>,
    logs: Vec<(Level, String)>,
    servers: BTreeMap<String, Server>,
    /// Every request sent through a connection: (conn id, request).
    sent: Vec<(String, Request)>,
    /// The task's `allow_hosts`, for `ctx.http`.
    allow_hosts: Vec<String>,
    /// What answers `ctx.http` requests the allow-list lets through.
    web: Option<Web>,
    /// Every `ctx.http` request, refused ones included.
    fetched: Vec<Request>,
}

/// How the test web answers a plain outbound request.
type WebAnswer = dyn Fn(&Request) -> Result<Response, FetchError>;

/// What answers plain outbound requests.
struct Web(Rc<WebAnswer>);

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Web(..)")
    }
}

/// How a test server answers a request: a response, or the host's refusal.
type Answer = dyn Fn(&Request) -> Result<Response, String>;

/// What answers requests sent through one connection.
struct Server(Rc<Answer>);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Server(..)")
    }
}

impl TestHost {
    /// A host with no variables, connections or XComs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines the variable `key`.
    pub fn with_variable(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.state
            .borrow_mut()
            .variables
            .insert(key.into(), value.into());
        self
    }

    /// Defines the connection `conn_id` as the JSON object the host would send.
    pub fn with_connection(self, conn_id: impl Into<String>, connection: Value) -> Self {
        self.state
            .borrow_mut()
            .connections
            .insert(conn_id.into(), connection);
        self
    }

    /// Answers requests sent through connection `conn_id`
    /// ([`TaskContext::http_with_connection`]) with `server`; an `Err` is the
    /// host's refusal. Without one, such requests fail as for an undefined
    /// connection.
    pub fn with_http(
        self,
        conn_id: impl Into<String>,
        server: impl Fn(&Request) -> Result<Response, String> + 'static,
    ) -> Self {
        self.state
            .borrow_mut()
            .servers
            .insert(conn_id.into(), Server(Rc::new(server)));
        self
    }

    /// Gives the task `allow_hosts`, as the DAG would: [`TaskContext::http`] to
    /// any other host is refused, with the warning the host logs.
    pub fn with_allow_hosts<S: Into<String>>(self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.state.borrow_mut().allow_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Answers [`TaskContext::http`] requests to allowed hosts with `server`,
    /// which may return a [`FetchError`] to stand in for a network failure.
    /// Without one, allowed requests fail as if nothing listened.
    ///
    /// ```
    /// use aileron_sdk::prelude::*;
    /// use aileron_sdk::testing::TestHost;
    ///
    /// let host = TestHost::new()
    ///     .with_allow_hosts(["api.example.com"])
    ///     .with_web(|request| Ok(Response::new(200, format!("you asked {}", request.url))));
    /// let ctx = host.context(TaskInfo::default());
    /// let ok = ctx.http(Request::get("https://api.example.com/x")).unwrap();
    /// assert_eq!(ok.text(), "you asked https://api.example.com/x");
    /// let refused = ctx.http(Request::get("https://elsewhere.example/")).unwrap_err();
    /// assert!(refused.is_refused());
    /// ```
    pub fn with_web(
        self,
        server: impl Fn(&Request) -> Result<Response, FetchError> + 'static,
    ) -> Self {
        self.state.borrow_mut().web = Some(Web(Rc::new(server)));
        self
    }

    /// Every [`TaskContext::http`] request so far, refused ones included.
    pub fn fetched(&self) -> Vec<Request> {
        self.state.borrow().fetched.clone()
    }

    /// Every request sent through a connection so far: (conn id, request).
    pub fn requests(&self) -> Vec<(String, Request)> {
        self.state.borrow().sent.clone()
    }

    /// Stores an XCom as if the task `task_id` had pushed it.
    pub fn with_xcom(
        self,
        task_id: impl Into<String>,
        key: impl Into<String>,
        value: Value,
    ) -> Self {
        self.state
            .borrow_mut()
            .xcoms
            .insert((task_id.into(), key.into()), value.to_string());
        self
    }

    /// A context for the try `task`, backed by this host.
    pub fn context(&self, task: TaskInfo) -> TaskContext {
        let handle = Handle {
            state: Rc::clone(&self.state),
            task_id: task.task_id.clone(),
        };
        TaskContext::new(task, Box::new(handle))
    }

    /// Decodes `params_json` into the operator's params type and calls `operator`,
    /// as the component's `execute` export does: a bad params document gives the same
    /// fatal error a deployed operator would.
    pub fn run<P, F>(
        &self,
        task: TaskInfo,
        params_json: &str,
        operator: F,
    ) -> Result<Outcome, TaskError>
    where
        P: DeserializeOwned,
        F: FnOnce(&TaskContext, P) -> Result<Outcome, TaskError>,
    {
        __private::run(&self.context(task), params_json, operator)
    }

    /// Every line logged so far, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// The XCom `key` of `task_id`, if one was seeded or pushed.
    pub fn xcom(&self, task_id: &str, key: &str) -> Option<Value> {
        let state = self.state.borrow();
        let json = state.xcoms.get(&(task_id.to_owned(), key.to_owned()))?;
        // Only valid JSON gets in: `with_xcom` and `TaskContext::xcom_push` serialize.
        Some(serde_json::from_str(json).expect("XComs are stored as JSON"))
    }
}

/// One context's view of a [`TestHost`]: pushes land under the context's task id.
struct Handle {
    state: Rc<RefCell<State>>,
    task_id: String,
}

impl Host for Handle {
    fn log(&self, level: Level, message: &str) {
        self.state
            .borrow_mut()
            .logs
            .push((level, message.to_owned()));
    }

    fn xcom_push(&self, key: &str, value: &str) -> Result<(), String> {
        self.state
            .borrow_mut()
            .xcoms
            .insert((self.task_id.clone(), key.to_owned()), value.to_owned());
        Ok(())
    }

    fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String> {
        let key = key.unwrap_or(RETURN_VALUE_KEY);
        self.state
            .borrow()
            .xcoms
            .get(&(task_id.to_owned(), key.to_owned()))
            .cloned()
    }

    fn variable(&self, key: &str) -> Option<String> {
        self.state.borrow().variables.get(key).cloned()
    }

    fn connection(&self, conn_id: &str) -> Result<String, String> {
        self.state
            .borrow()
            .connections
            .get(conn_id)
            .map(Value::to_string)
            .ok_or_else(|| format!("connection `{conn_id}` is not defined"))
    }

    fn http_with_connection(&self, conn_id: &str, request: Request) -> Result<Response, String> {
        let server = {
            let mut state = self.state.borrow_mut();
            state.sent.push((conn_id.to_owned(), request.clone()));
            state.servers.get(conn_id).map(|s| Rc::clone(&s.0))
        };
        match server {
            Some(server) => server(&request),
            None => Err(format!("connection `{conn_id}` is not defined")),
        }
    }

    fn http(&self, request: &Request, url: &Url) -> Result<Response, (FetchErrorKind, String)> {
        let (allowed, web) = {
            let mut state = self.state.borrow_mut();
            state.fetched.push(request.clone());
            let allowed = url
                .host_port()
                .is_some_and(|(host, port)| host_allowed(&state.allow_hosts, host, port));
            let granted = if state.allow_hosts.is_empty() {
                "the task has no allow_hosts, so it may make no HTTP request".to_owned()
            } else {
                format!("allow_hosts is [{}]", state.allow_hosts.join(", "))
            };
            (
                allowed.then_some(()).ok_or(granted),
                state.web.as_ref().map(|w| Rc::clone(&w.0)),
            )
        };
        if let Err(granted) = allowed {
            // The host's warning, then the error the guest sees.
            self.log(
                Level::Warn,
                &format!(
                    "outbound HTTP to {} denied: not in the task's allow_hosts ({granted})",
                    url.authority
                ),
            );
            return Err((FetchErrorKind::Refused, NOT_ALLOWED.to_owned()));
        }
        let Some(web) = web else {
            return Err((FetchErrorKind::Transient, "connection refused".to_owned()));
        };
        let mut response = web(request).map_err(|e| (e.kind, e.reason))?;
        if let Some(max) = request.max_body
            && response.body.len() > max
        {
            response.body.truncate(max);
            response.truncated = true;
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{ConnectionError, XComError};

    #[test]
    fn requests_through_a_connection_reach_the_test_server() {
        let host = TestHost::new().with_http("crm", |request| {
            Ok(
                Response::new(200, format!("{{\"path\":\"{}\"}}", request.url))
                    .with_header("content-type", "application/json"),
            )
        });
        let ctx = host.context(TaskInfo::default());
        let response = ctx
            .http_with_connection("crm", Request::get("/v1/contacts"))
            .unwrap();
        assert!(response.is_success());
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(
            response.json::<Value>().unwrap(),
            json!({"path": "/v1/contacts"})
        );
        let err = ctx
            .http_with_connection("nope", Request::post("/"))
            .unwrap_err();
        assert!(err.to_string().contains("`nope` is not defined"), "{err}");
        assert_eq!(host.requests().len(), 2);
        assert_eq!(host.requests()[0].0, "crm");
    }

    #[test]
    fn outbound_requests_reach_only_allowed_hosts() {
        let host = TestHost::new()
            .with_allow_hosts(["*.example.com:8443", "api.test"])
            .with_web(|request| match request.url.as_str() {
                "http://api.test/down" => Err(FetchError::new(
                    FetchErrorKind::Transient,
                    request,
                    "connection timed out",
                )),
                _ => Ok(Response::new(200, vec![b'x'; 10]).with_header("X-Kind", "test")),
            });
        let ctx = host.context(TaskInfo::default());
        let ok = ctx
            .http(Request::get("https://a.example.com:8443/ready").max_body(4))
            .unwrap();
        assert_eq!((ok.status, ok.body.len(), ok.truncated), (200, 4, true));
        assert_eq!(ok.header("x-kind"), Some("test"));

        let refused = ctx
            .http(Request::get("https://a.example.com/ready"))
            .unwrap_err();
        assert_eq!(refused.kind, FetchErrorKind::Refused);
        assert!(refused.to_string().contains("allow_hosts"), "{refused}");
        let (level, warning) = host.logs().pop().unwrap();
        assert_eq!(level, Level::Warn);
        assert!(warning.contains("a.example.com denied"), "{warning}");

        let down = ctx.http(Request::post("http://api.test/down")).unwrap_err();
        assert_eq!(down.kind, FetchErrorKind::Transient);
        assert_eq!(
            down.to_string(),
            "POST http://api.test/down not sent: connection timed out"
        );
        for bad in ["ftp://api.test/", "api.test/x", "http://u@api.test/"] {
            assert_eq!(
                ctx.http(Request::get(bad)).unwrap_err().kind,
                FetchErrorKind::Invalid,
                "{bad}"
            );
        }
        let bad_method = ctx
            .http(Request::new("GE T", "http://api.test/"))
            .unwrap_err();
        assert_eq!(bad_method.kind, FetchErrorKind::Invalid);
        // Invalid requests never reach the host.
        assert_eq!(host.fetched().len(), 3);
    }

    #[test]
    fn xcoms_round_trip_through_json() {
        let host = TestHost::new().with_xcom("extract", RETURN_VALUE_KEY, json!({"rows": 3}));
        let ctx = host.context(TaskInfo::default());
        let pulled: Option<Value> = ctx.xcom_pull("extract", None).unwrap();
        assert_eq!(pulled, Some(json!({"rows": 3})));
        assert_eq!(
            ctx.xcom_pull::<Value>("extract", Some("other")).unwrap(),
            None
        );
        let wrong_shape = ctx.xcom_pull::<Vec<u8>>("extract", None).unwrap_err();
        assert!(
            matches!(wrong_shape, XComError::Decode { .. }),
            "{wrong_shape}"
        );
    }

    #[test]
    fn connections_decode_or_explain_why_not() {
        let host =
            TestHost::new().with_connection("db", json!({"conn_type": "postgres", "port": 5432}));
        let ctx = host.context(TaskInfo::default());
        let db = ctx.connection("db").unwrap();
        assert_eq!((db.conn_type.as_str(), db.port), ("postgres", Some(5432)));
        let missing = ctx.connection("nope").unwrap_err();
        assert!(matches!(missing, ConnectionError::Unavailable { .. }));
        assert_eq!(
            TaskError::from(missing),
            TaskError::failed(
                "connection `nope` is not available: connection `nope` is not defined"
            )
        );
    }

    #[test]
    fn run_reports_bad_params_as_fatal() {
        let host = TestHost::new();
        let result = host.run(
            TaskInfo::default(),
            r#"{"n": "x"}"#,
            |_, _: BTreeMap<String, u32>| Ok(Outcome::success()),
        );
        assert_eq!(
            result,
            Err(TaskError::fatal(
                r#"invalid params at `n`: invalid type: string "x", expected u32"#
            ))
        );
    }
}
