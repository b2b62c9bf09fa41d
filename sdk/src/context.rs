//! [`TaskContext`]: the TaskInstance try an operator runs for, and the host services
//! (log, XCom, variables, connections, outbound HTTP) scoped to that try.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::host::Host;
use crate::{
    Connection, ConnectionError, FetchError, HttpError, Level, Request, Response, TaskInfo,
};

/// The XCom key a task's return value is stored under, as in Airflow.
pub const RETURN_VALUE_KEY: &str = "return_value";

/// Everything an operator may reach outside its own memory during one try.
///
/// The `#[operator]` function receives it as its first argument. Every call goes to
/// the host, which checks it against the TaskInstance's grants and meters it (log
/// bytes, XCom size), so an operator needs no credentials of its own.
///
/// In `cargo test`, build one with [`testing::TestHost`](crate::testing::TestHost).
pub struct TaskContext {
    task: TaskInfo,
    host: Box<dyn Host>,
}

impl TaskContext {
    pub(crate) fn new(task: TaskInfo, host: Box<dyn Host>) -> Self {
        Self { task, host }
    }

    /// The TaskInstance try being executed.
    pub fn task(&self) -> &TaskInfo {
        &self.task
    }

    /// Appends `message` to this try's log at `level`.
    ///
    /// The [`debug!`](crate::debug), [`info!`](crate::info), [`warn!`](crate::warn)
    /// and [`error!`](crate::error) macros format the message first.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.host.log(level, message.as_ref());
    }

    /// Appends `message` to this try's log at [`Level::Debug`].
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Appends `message` to this try's log at [`Level::Info`].
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Appends `message` to this try's log at [`Level::Warn`].
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Appends `message` to this try's log at [`Level::Error`].
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }

    /// Stores `value` as JSON under `key` for this TaskInstance.
    ///
    /// A task's return value is pushed by the host from [`Outcome::Success`](crate::Outcome::Success);
    /// this is for additional keys. The host refuses values over the size cap.
    pub fn xcom_push<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), XComError> {
        let json = serde_json::to_string(value).map_err(|source| XComError::Encode {
            key: key.to_owned(),
            source,
        })?;
        self.host
            .xcom_push(key, &json)
            .map_err(|reason| XComError::Refused {
                key: key.to_owned(),
                reason,
            })
    }

    /// Reads the XCom `key` (default [`RETURN_VALUE_KEY`]) pushed by `task_id` in the
    /// same DagRun; `Ok(None)` when there is none.
    ///
    /// For a mapped task the value is a JSON list with one element per map index, so
    /// ask for a `Vec<T>`.
    pub fn xcom_pull<T: DeserializeOwned>(
        &self,
        task_id: &str,
        key: Option<&str>,
    ) -> Result<Option<T>, XComError> {
        let Some(json) = self.host.xcom_pull(task_id, key) else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|source| XComError::Decode {
                task_id: task_id.to_owned(),
                key: key.unwrap_or(RETURN_VALUE_KEY).to_owned(),
                source,
            })
    }

    /// Reads the variable `key` of this DAG's tenant.
    pub fn variable(&self, key: &str) -> Option<String> {
        self.host.variable(key)
    }

    /// Reads the connection `conn_id` of this DAG's tenant.
    ///
    /// Unless the connection is marked exposed, its `password` is `None` here:
    /// the host keeps it, and [`http_with_connection`](Self::http_with_connection)
    /// uses it.
    pub fn connection(&self, conn_id: &str) -> Result<Connection, ConnectionError> {
        self.connection_as(conn_id)
    }

    /// Reads the connection `conn_id` into a type of the operator's own, for
    /// connections whose `extra` has a known shape (or as raw `serde_json::Value`).
    pub fn connection_as<T: DeserializeOwned>(&self, conn_id: &str) -> Result<T, ConnectionError> {
        let json =
            self.host
                .connection(conn_id)
                .map_err(|reason| ConnectionError::Unavailable {
                    conn_id: conn_id.to_owned(),
                    reason,
                })?;
        serde_json::from_str(&json).map_err(|source| ConnectionError::Decode {
            conn_id: conn_id.to_owned(),
            source,
        })
    }
}

impl TaskContext {
    /// Sends `request` with the credential of connection `conn_id`, added by the
    /// host: basic auth, a bearer token, a named header or query parameter, as
    /// the connection's `extra.auth_type` says. The host sends it only to the
    /// connection's own host and port (over TLS unless the connection's scheme is
    /// `http`) and does not follow redirects; the operator never sees the secret.
    ///
    /// ```no_run
    /// # use aileron_sdk::prelude::*;
    /// # fn f(ctx: &TaskContext) -> Result<Outcome, TaskError> {
    /// let response = ctx.http_with_connection("crm", Request::get("/v1/contacts?limit=10"))?;
    /// let contacts: serde_json::Value = response.json()?;
    /// # Ok(Outcome::returning(contacts)) }
    /// ```
    pub fn http_with_connection(
        &self,
        conn_id: &str,
        request: Request,
    ) -> Result<Response, HttpError> {
        self.host
            .http_with_connection(conn_id, request)
            .map_err(|reason| HttpError {
                conn_id: conn_id.to_owned(),
                reason,
            })
    }
}

impl TaskContext {
    /// Sends `request` to its absolute `http://` or `https://` URL over
    /// `wasi:http`. The host lets it through only to a host and port in the
    /// task's `allow_hosts`, never to a loopback or private address unless the
    /// host allows that, waits at most 30 s for each step, and does not follow
    /// redirects.
    ///
    /// ```no_run
    /// # use aileron_sdk::prelude::*;
    /// # use std::time::Duration;
    /// # fn f(ctx: &TaskContext) -> Result<Outcome, TaskError> {
    /// let request = Request::get("https://api.example.com/v1/ready").timeout(Duration::from_secs(5));
    /// let response = ctx.http(request)?;
    /// # Ok(Outcome::returning(response.status)) }
    /// ```
    ///
    /// A request the host refuses, or one that gets no response, is a
    /// [`FetchError`] whose [`kind`](FetchError::kind) says which; `?` makes it a
    /// `failed` try.
    pub fn http(&self, request: Request) -> Result<Response, FetchError> {
        crate::http::send(self.host.as_ref(), &request)
    }
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// Why an XCom could not be pushed or pulled.
///
/// `?` turns it into a `failed` [`TaskError`](crate::TaskError).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XComError {
    /// The value's `Serialize` impl failed.
    #[error("could not encode XCom `{key}` as JSON")]
    Encode {
        /// The key being pushed.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The host refused the value, for example because it exceeds the size cap.
    #[error("the host refused XCom `{key}`: {reason}")]
    Refused {
        /// The key being pushed.
        key: String,
        /// The host's reason.
        reason: String,
    },
    /// The stored JSON does not deserialize into the requested type.
    #[error("XCom `{key}` of task `{task_id}` does not have the expected shape")]
    Decode {
        /// The task that pushed it.
        task_id: String,
        /// The key pulled.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
}
