//! What a caller hands the sandbox for one TaskInstance try, and what it gets back.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::log::{DEFAULT_LOG_BYTES, LogBuffer};
use crate::meter::{LiveUsage, TryUsage};

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
///
/// Serializable so a try can travel to a remote worker as JSON, which then applies
/// exactly these limits. Every field is required on the wire: a worker that would
/// silently fill in a default could run a try looser than the scheduler decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory the guest may use in total; `None` means the sandbox's
    /// `default_memory_bytes`. Clamped to `SandboxConfig::max_memory_bytes`.
    // `deserialize_with` makes the field required: serde reads a missing `Option`
    // as `None` otherwise.
    #[serde(deserialize_with = "Option::deserialize")]
    pub memory_bytes: Option<u64>,
    /// The tenant's `max_memory`: what all its tries running in this process may
    /// hold together. `None`: counted, not capped.
    #[serde(deserialize_with = "Option::deserialize")]
    pub tenant_memory_bytes: Option<u64>,
    /// The tenant's `weight` (at least 1): when CPU-bound tries of several
    /// tenants wait for a turn on the CPU, a tenant takes this many in a row
    /// before the next tenant's turn (`cpu.rs`), as it gets executor slots.
    pub tenant_weight: u32,
    /// Airflow's `execution_timeout`: wall-clock time from the start of the try,
    /// covering both guest code and host calls. `None` means no limit. On the wire
    /// `timeout_secs`: seconds, fractional only when the duration is not whole.
    #[serde(rename = "timeout_secs", with = "secs_opt")]
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
            tenant_memory_bytes: None,
            tenant_weight: 1,
            timeout: None,
            log_bytes: DEFAULT_LOG_BYTES,
            xcom_bytes: DEFAULT_XCOM_BYTES,
            xcom_total_bytes: DEFAULT_XCOM_TOTAL_BYTES,
            allow_hosts: Vec::new(),
            allow_private_ips: false,
        }
    }
}

/// Serde for an `Option<Duration>` as seconds: a whole number when the duration is
/// whole (every `execution_timeout` a DAG file can write), else a fraction, so a
/// sub-second timeout is neither lost nor turned into 0 (which would time out at
/// once).
mod secs_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            None => s.serialize_none(),
            Some(d) if d.subsec_nanos() == 0 => s.serialize_some(&d.as_secs()),
            Some(d) => s.serialize_some(&d.as_secs_f64()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        // An integer stays exact this way; a fraction goes through f64.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Secs {
            Whole(u64),
            Fraction(f64),
        }
        match Option::<Secs>::deserialize(d)? {
            None => Ok(None),
            Some(Secs::Whole(secs)) => Ok(Some(Duration::from_secs(secs))),
            Some(Secs::Fraction(secs)) => Duration::try_from_secs_f64(secs)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("invalid number of seconds: {secs}"))),
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
    /// What the try has used so far; the caller reads it if it stops the try
    /// before it ends.
    pub live: Arc<LiveUsage>,
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
            live: Arc::default(),
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TryReport {
    pub result: TryResult,
    /// Explicit `xcom-push` calls in call order, as `(key, json)`; a later push of a
    /// key replaces an earlier one when applied. Kept even when the try fails, as in
    /// Airflow.
    pub xcom: Vec<(String, String)>,
    /// Wall-clock time of the whole try, instantiation included.
    pub duration: Duration,
    /// CPU, host-call time and memory the guest used.
    #[serde(default)]
    pub usage: TryUsage,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> TaskInfo {
        TaskInfo {
            dag_id: "etl".into(),
            run_id: "manual__2026-01-01T00:00:00+00:00".into(),
            task_id: "extract".into(),
            map_index: Some(3),
            try_number: 2,
            logical_date: "2026-01-01T00:00:00+00:00".into(),
            data_interval_start: "2026-01-01T00:00:00+00:00".into(),
            data_interval_end: "2026-01-02T00:00:00+00:00".into(),
        }
    }

    #[test]
    fn limits_travel_as_json_with_the_timeout_in_seconds() {
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            timeout: Some(Duration::from_secs(300)),
            allow_hosts: vec!["example.com".into(), "*.example.org:8443".into()],
            allow_private_ips: true,
            ..Limits::default()
        };
        let json = serde_json::to_value(&limits).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "memory_bytes": 64 << 20,
                "tenant_memory_bytes": null,
                "tenant_weight": 1,
                "timeout_secs": 300,
                "log_bytes": DEFAULT_LOG_BYTES,
                "xcom_bytes": DEFAULT_XCOM_BYTES,
                "xcom_total_bytes": DEFAULT_XCOM_TOTAL_BYTES,
                "allow_hosts": ["example.com", "*.example.org:8443"],
                "allow_private_ips": true,
            })
        );
        let back: Limits = serde_json::from_value(json).unwrap();
        assert_eq!(back, limits);

        let none = Limits::default();
        let json = serde_json::to_string(&none).unwrap();
        assert!(json.contains(r#""timeout_secs":null"#), "{json}");
        assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), none);
    }

    #[test]
    fn sub_second_timeouts_keep_their_fraction() {
        for ms in [1, 100, 250, 1500] {
            let limits = Limits {
                timeout: Some(Duration::from_millis(ms)),
                ..Limits::default()
            };
            let json = serde_json::to_value(&limits).unwrap();
            assert_eq!(json["timeout_secs"], serde_json::json!(ms as f64 / 1000.0));
            let back: Limits = serde_json::from_value(json).unwrap();
            assert_eq!(back.timeout, Some(Duration::from_millis(ms)), "{ms} ms");
        }
    }

    #[test]
    fn bad_limits_are_refused() {
        let mut json = serde_json::to_value(Limits::default()).unwrap();
        json["timeout_secs"] = serde_json::json!(-1.5);
        let err = serde_json::from_value::<Limits>(json.clone()).unwrap_err();
        assert!(
            err.to_string().contains("invalid number of seconds"),
            "{err}"
        );
        // Every field is required: a missing one is an error, not a default.
        let fields: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        for field in fields {
            let mut partial = serde_json::to_value(Limits::default()).unwrap();
            partial.as_object_mut().unwrap().remove(&field);
            let err = serde_json::from_value::<Limits>(partial).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("missing field `{field}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn task_info_travels_as_json() {
        let info = info();
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<TaskInfo>(&json).unwrap(), info);
        let unmapped = TaskInfo {
            map_index: None,
            ..info
        };
        let json = serde_json::to_value(&unmapped).unwrap();
        assert_eq!(json["map_index"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<TaskInfo>(json).unwrap(), unmapped);
    }
}
