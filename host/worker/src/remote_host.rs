//! Host services of a try run by a worker: XCom pulls, variables and connections
//! come from the scheduler's execution API rather than a local metastore. A call
//! the scheduler refuses because the try is no longer this worker's fences it.

use super::api::{Api, Failure, TryAuth};
use aileron_protocol::backoff::Backoff;
use aileron_sandbox::{HostServices, LogBuffer, LogLevel};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a host call waits for an unreachable scheduler before the guest gets
/// "no value". The try's own `execution_timeout` bounds it too; past a minute the
/// operator is better told than kept waiting.
const PATIENCE: Duration = Duration::from_secs(60);

/// Why a try was taken from this worker, as the first call to learn it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// What was being done: `start`, `heartbeat`, `logs`, `finish`, `xcom`…
    pub during: &'static str,
    pub status: u16,
    pub reason: String,
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (during {})",
            self.status, self.reason, self.during
        )
    }
}

/// `HostServices` over the execution API for one try.
pub struct RemoteHost {
    api: Api,
    auth: TryAuth,
    /// The try's log: a call that gives up says so there, where the DAG's author
    /// looks, instead of only in the worker's log.
    log: Arc<LogBuffer>,
    /// Set on the first refusal; the try runner aborts the sandbox when it changes.
    fence: watch::Sender<Option<Fence>>,
}

impl RemoteHost {
    pub fn new(
        api: Api,
        auth: TryAuth,
        log: Arc<LogBuffer>,
        fence: watch::Sender<Option<Fence>>,
    ) -> Self {
        RemoteHost {
            api,
            auth,
            log,
            fence,
        }
    }

    /// Runs one call, retrying while the scheduler is unavailable, for at most
    /// [`PATIENCE`]. `None` when the call failed for good (the try log says why).
    async fn call<T, F, Fut>(&self, what: &'static str, name: &str, call: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        loop {
            if self.fence.borrow().is_some() {
                return None;
            }
            match call().await {
                Ok(value) => return Some(value),
                Err(Failure::Fenced { status, reason }) => {
                    self.fence.send_if_modified(|f| {
                        f.get_or_insert(Fence {
                            during: what,
                            status,
                            reason,
                        });
                        true
                    });
                    return None;
                }
                Err(failure) if failure.is_retryable() && started.elapsed() < PATIENCE => {
                    let delay = backoff.next_delay();
                    tracing::debug!(
                        attempt = self.auth.attempt,
                        "{what} `{name}` failed: {failure}; backing off {delay:.1?}"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(failure) => {
                    self.log.append_line(
                        LogLevel::Warn,
                        &format!("{what} `{name}` could not be read from the scheduler: {failure}"),
                    );
                    return None;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl HostServices for RemoteHost {
    async fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String> {
        self.call("xcom", task_id, || self.api.xcom(&self.auth, task_id, key))
            .await
            .flatten()
    }

    async fn variable(&self, key: &str) -> Option<String> {
        self.call("variable", key, || self.api.variable(&self.auth, key))
            .await
            .flatten()
    }

    async fn connection(&self, conn_id: &str) -> Result<String, String> {
        match self
            .call("connection", conn_id, || {
                self.api.connection(&self.auth, conn_id)
            })
            .await
        {
            Some(answer) => answer,
            None => Err(format!(
                "connection `{conn_id}` could not be read from the scheduler"
            )),
        }
    }
}
