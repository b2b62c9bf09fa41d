//! What a caller hands the sandbox for one TaskInstance try, and what it gets back.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::log::{DEFAULT_LOG_BYTES, LogBuffer};

/// Default cap of one XCom value (each `xcom-push` and the return value): 64 KiB.
///
/// Airflow sets no cap of its own; its tightest metadata backend, MySQL, stores XCom
/// values in a `BLOB` column that holds 64 KiB, so DAGs ported from Airflow fit, and
/// values this small can be rendered into templates and shipped to workers with
/// every try. Bigger data belongs in object storage with its URL in the XCom.
pub const DEFAULT_XCOM_BYTES: usize = 64 << 10;

/// Default cap of all XCom values one try pushes together: 16 full-size values.
/// Without it a guest could push small values in a loop until the host runs out of
/// memory, since pushed values are held until the try ends.
pub const DEFAULT_XCOM_TOTAL_BYTES: usize = 16 * DEFAULT_XCOM_BYTES;

/// The TaskInstance try being executed, as the operator sees it (`task-info` in WIT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    /// Index within a mapped task; `None` for a task that is not mapped.
    pub map_index: Option<u32>,
    /// 1 for the first try.
    pub try_number: u32,
    /// RFC 3339.
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
}

/// Limits of one try. The caller has already applied the tenant's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory the guest may use in total; `None` means the sandbox's
    /// `default_memory_bytes`. Clamped to `SandboxConfig::max_memory_bytes`.
    pub memory_bytes: Option<u64>,
    /// Airflow's `execution_timeout`: wall-clock time from the start of the try,
    /// covering both guest code and host calls. `None` means no limit.
    pub timeout: Option<Duration>,
    /// Cap of the try's log, in bytes; used by [`TryRequest::new`] to size the
    /// [`LogBuffer`] (a caller that builds its own buffer sets that buffer's cap).
    pub log_bytes: usize,
    /// Cap of each XCom value: every `xcom-push` and the return value.
    pub xcom_bytes: usize,
    /// Cap of all values pushed with `xcom-push` in one try.
    pub xcom_total_bytes: usize,
    /// Outbound HTTP (`wasi:http`) is allowed only to these host patterns (the task's
    /// `allow_hosts`: `example.com`, `*.example.com`, optionally with `:port`).
    /// Empty = no outbound HTTP at all.
    pub allow_hosts: Vec<String>,
    /// Whether an allowed host may resolve to a loopback, private or link-local
    /// address. Off by default so an allowed name cannot be pointed at the host's
    /// own network; tests and trusted single-tenant setups turn it on.
    pub allow_private_ips: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: None,
            timeout: None,
            log_bytes: DEFAULT_LOG_BYTES,
            xcom_bytes: DEFAULT_XCOM_BYTES,
            xcom_total_bytes: DEFAULT_XCOM_TOTAL_BYTES,
            allow_hosts: Vec::new(),
            allow_private_ips: false,
        }
    }
}

/// Host services for one try, scoped by the caller (the tenant, DAG run and task are
/// already fixed). The local executor reads the metastore; a remote worker calls
/// the scheduler's execution API.
#[async_trait::async_trait]
pub trait HostServices: Send + Sync + 'static {
    /// The XCom `key` (`None` = `return_value`) of `task_id` in the same DAG run.
    async fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String>;
    /// A variable of the DAG's tenant.
    async fn variable(&self, key: &str) -> Option<String>;
    /// A connection of the DAG's tenant as a JSON object, or why it cannot be had.
    async fn connection(&self, conn_id: &str) -> Result<String, String>;
}

/// Host services that have nothing: no XComs, variables or connections. For
/// `aileron tasks test`-style runs, benchmarks and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostServices;

#[async_trait::async_trait]
impl HostServices for NoHostServices {
    async fn xcom_pull(&self, _task_id: &str, _key: Option<&str>) -> Option<String> {
        None
    }

    async fn variable(&self, _key: &str) -> Option<String> {
        None
    }

    async fn connection(&self, conn_id: &str) -> Result<String, String> {
        Err(format!("connection `{conn_id}` is not defined"))
    }
}

/// One TaskInstance try to run.
pub struct TryRequest {
    /// The tenant that owns the DAG; recorded in traces.
    pub tenant: String,
    /// The component to run, `sha256:<hex>`, as resolved when the DAG was parsed.
    pub digest: String,
    pub info: TaskInfo,
    /// The task's params, already rendered. `null` is passed to the operator as `{}`.
    pub params: serde_json::Value,
    pub limits: Limits,
    pub host: Arc<dyn HostServices>,
    /// The try's log; the caller may read it while the try runs.
    pub log: Arc<LogBuffer>,
}

impl TryRequest {
    /// A request with a fresh log sized by `limits.log_bytes`.
    pub fn new(
        tenant: impl Into<String>,
        digest: impl Into<String>,
        info: TaskInfo,
        params: serde_json::Value,
        limits: Limits,
        host: Arc<dyn HostServices>,
    ) -> Self {
        let log = Arc::new(LogBuffer::new(limits.log_bytes));
        TryRequest {
            tenant: tenant.into(),
            digest: digest.into(),
            info,
            params,
            limits,
            host,
            log,
        }
    }
}

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TryResult {
    /// Succeeded, with the `return_value` XCom (JSON) if the operator returned one.
    Success(Option<String>),
    /// The task is skipped, with the reason.
    Skip(String),
    /// Only these direct downstream task ids run.
    Branch(Vec<String>),
    /// Sensor not ready: poke again after this many seconds.
    Reschedule(u64),
    /// Succeeded and short-circuits: downstream tasks are skipped. `all` skips every
    /// task downstream whatever its trigger rule (Airflow's
    /// `ignore_downstream_trigger_rules=True`); otherwise only the direct downstream
    /// tasks are skipped and trigger rules decide the rest.
    SkipDownstream { all: bool },
    /// Failed; retried while retries remain. Traps, limits and timeouts end here.
    Failed(String),
    /// Failed and never retried.
    Fatal(String),
}

/// The outcome of one try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TryReport {
    pub result: TryResult,
    /// Explicit `xcom-push` calls in call order, as `(key, json)`; a later push of a
    /// key replaces an earlier one when applied. Kept even when the try fails, as in
    /// Airflow.
    pub xcom: Vec<(String, String)>,
    /// Wall-clock time of the whole try, instantiation included.
    pub duration: Duration,
}
