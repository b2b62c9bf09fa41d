//! The wire contract between the scheduler and `aileron worker`: the Redis stream
//! layout and entry fields, the headers, and the JSON bodies of `/execution/v1`.
//! Both sides use these types, so the contract lives in one place
//! (`docs/design/multi-node.md` §2 and §4 explain each choice).

use aileron_sandbox::{Limits, TaskInfo, TryResult, TryUsage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The consumer group every worker reads through.
pub const GROUP: &str = "aileron";
/// A set naming every queue ever used, so the streams can be found without `SCAN`.
pub const QUEUES_KEY: &str = "aileron:queues";
/// Version of the entry layout; a worker refuses entries of another version.
pub const ENTRY_VERSION: &str = "1";

/// The name on the wire of a tenant's task queue, `<tenant>/<queue>`: each
/// tenant's work has streams of its own, so a worker can be given (and a Redis
/// ACL can allow) one tenant's keys alone. A tenant name holds no `/`, so the
/// name splits back at its first one.
pub fn tenant_queue(tenant: &str, queue: &str) -> String {
    format!("{tenant}/{queue}")
}

/// The tenant and task queue of a wire queue name, or `None` for one without a
/// tenant (written by an older scheduler, or by someone else).
pub fn split_tenant_queue(name: &str) -> Option<(&str, &str)> {
    name.split_once('/')
}

/// The stream of one wire queue (see [`tenant_queue`]).
pub fn stream_key(queue: &str) -> String {
    format!("aileron:q:{queue}")
}

/// The header carrying a try's token on every `/tries/{attempt}/…` call.
pub const TRY_TOKEN_HEADER: &str = "aileron-try-token";
/// The header naming the calling worker on every `/tries/{attempt}/…` call.
pub const WORKER_HEADER: &str = "aileron-worker";

/// Where a try belongs: the TaskInstance's identity, as carried in a stream entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryKey {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
}

/// One dispatched attempt, as stored in a stream entry. Fields are flat strings so
/// `redis-cli XRANGE` stays readable.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: EntryKey,
    pub try_number: u32,
    pub attempt: u64,
    pub token: String,
    /// `sha256:<hex>` of the operator component.
    pub digest: String,
    pub task: TaskInfo,
    /// Rendered params.
    pub params: serde_json::Value,
    pub limits: Limits,
    /// Milliseconds since the epoch when the scheduler enqueued it.
    pub enqueued_at: i64,
}

/// Why a stream entry could not be read.
#[derive(Debug, thiserror::Error)]
#[error("bad stream entry: {0}")]
pub struct EntryError(pub String);

impl Entry {
    /// The fields for `XADD`.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        fn json<T: Serialize>(v: &T) -> String {
            // These types serialise infallibly (no maps with non-string keys).
            serde_json::to_string(v).expect("entry fields serialise")
        }
        vec![
            ("v", ENTRY_VERSION.to_owned()),
            ("attempt", self.attempt.to_string()),
            ("try", self.try_number.to_string()),
            ("key", json(&self.key)),
            ("token", self.token.clone()),
            ("digest", self.digest.clone()),
            ("task", json(&self.task)),
            ("params", self.params.to_string()),
            ("limits", json(&self.limits)),
            ("enqueued_at", self.enqueued_at.to_string()),
        ]
    }

    /// Reads an entry from its fields.
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Self, EntryError> {
        let get = |name: &str| {
            fields
                .get(name)
                .ok_or_else(|| EntryError(format!("field `{name}` is missing")))
        };
        let v = get("v")?;
        if v != ENTRY_VERSION {
            return Err(EntryError(format!(
                "entry version {v}, this worker reads version {ENTRY_VERSION}"
            )));
        }
        fn parse<T: std::str::FromStr>(name: &str, s: &str) -> Result<T, EntryError> {
            s.parse()
                .map_err(|_| EntryError(format!("field `{name}` is not a number: {s:?}")))
        }
        fn json<T: serde::de::DeserializeOwned>(name: &str, s: &str) -> Result<T, EntryError> {
            serde_json::from_str(s).map_err(|e| EntryError(format!("field `{name}`: {e}")))
        }
        Ok(Entry {
            attempt: parse("attempt", get("attempt")?)?,
            try_number: parse("try", get("try")?)?,
            key: json("key", get("key")?)?,
            token: get("token")?.clone(),
            digest: get("digest")?.clone(),
            task: json("task", get("task")?)?,
            params: json("params", get("params")?)?,
            limits: json("limits", get("limits")?)?,
            enqueued_at: parse("enqueued_at", get("enqueued_at")?)?,
        })
    }
}

/// `POST /workers/{id}/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Display name (`--name`, default the hostname).
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub slots: u32,
    /// The worker's Aileron version.
    pub version: String,
    /// The tenants whose tries it takes (`--tenants`); absent: every tenant its
    /// token allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// What the worker holds of each capped tenant's `max_memory` (its running
    /// tries kept it while the scheduler was away), by tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub memory_held: BTreeMap<String, u64>,
}

/// The answer to a registration: the timing the worker must follow. All timing
/// lives in the scheduler, so workers need no timing flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// How often to heartbeat the worker and each running try.
    pub heartbeat_interval_ms: u64,
    /// A try whose heartbeats stop for this long is failed by the scheduler.
    pub worker_timeout_ms: u64,
    /// Stream entries idle this long are taken over with `XAUTOCLAIM`.
    pub claim_idle_ms: u64,
    /// The tenants the worker serves: what it asked for, or its token's tenant;
    /// absent: every tenant (it finds their streams in Redis).
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
}

/// `PUT /workers/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerHeartbeat {
    /// Attempts the worker is running.
    pub running: Vec<u64>,
    pub free_slots: u32,
    /// Linear memory each tenant's tries hold on the worker now, by tenant
    /// (those with none left out): the usage API sums it over workers.
    #[serde(default)]
    pub tenant_memory: BTreeMap<String, u64>,
}

/// `PUT /workers/{id}/memory`: the worker asks to hold `want` bytes of a
/// tenant's `max_memory` (at least `need`), or gives some back (`want` below
/// what it holds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryHoldRequest {
    pub tenant: String,
    /// The tenant's `max_memory` as the growing try was given it.
    pub cap: u64,
    pub need: u64,
    pub want: u64,
}

/// The answer: what the worker now holds (`None`: `need` did not fit, and what
/// it held is unchanged), and what the other processes hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryHoldResponse {
    pub granted: Option<u64>,
    /// The tenant is near its cap: give back what is not in use at once.
    #[serde(default)]
    pub tight: bool,
    pub others: u64,
}

/// `POST /tries/{attempt}/start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub hostname: String,
}

/// The answer to a start: which try it is and from which log offset to ship.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartResponse {
    pub try_number: u32,
    pub log_offset: usize,
}

/// A piece of a try's log, `POST /tries/{attempt}/logs` and in `finish`. `offset` is
/// the byte offset of `text` in the worker's log; the scheduler appends only what
/// it does not have yet, and answers 422 with `expected_offset` on a gap.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    pub offset: usize,
    pub text: String,
}

/// `GET /tries/{attempt}/xcom/{task_id}?key=K` and `GET …/variables/{key}`: the
/// value as JSON text (an XCom) or plain text (a variable), `null` when absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueResponse {
    pub value: Option<String>,
}

/// `GET /tries/{attempt}/connections/{conn_id}`: the connection object as JSON
/// text, or why it cannot be had (not defined, not readable).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionResponse {
    pub connection: Option<String>,
    pub error: Option<String>,
}

/// `PUT /tries/{attempt}/heartbeat`. The body is optional: a worker that sends
/// none (older versions did not) only keeps its lease.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryHeartbeat {
    /// What the try used so far: its tenant is charged for it as it runs, and
    /// for the last figure sent if the try is stopped or lost.
    #[serde(default)]
    pub usage: TryUsage,
}

/// `POST /tries/{attempt}/finish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    pub outcome: TryResult,
    /// Explicit `xcom-push` calls as `(key, json)`, in call order.
    pub xcom: Vec<(String, String)>,
    pub duration_ms: u64,
    /// What the try used: its tenant's CPU budget and usage figures count it.
    #[serde(default)]
    pub usage: TryUsage,
    /// The rest of the log not yet shipped.
    pub log: LogChunk,
}

/// The answer to a finish: the state the TaskInstance is now in; `duplicate` when
/// this finish had already been applied (a retried call whose answer was lost).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishResponse {
    pub state: String,
    pub duplicate: bool,
}

/// Why a try call was refused with 409: the caller no longer owns the try and must
/// drop it (abort the sandbox, discard the output, acknowledge the entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Another attempt of the TaskInstance is current (or none is).
    Superseded,
    /// The attempt is current but another worker started it.
    RunningElsewhere,
    /// The attempt is current but the TaskInstance is not queued (a start).
    NotQueued,
    /// The attempt is current but no longer running (cleared, marked, timed out).
    NotRunning,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Superseded => "superseded",
            Refusal::RunningElsewhere => "running_elsewhere",
            Refusal::NotQueued => "not_queued",
            Refusal::NotRunning => "not_running",
        }
    }
}

/// The body of every error answer of `/execution/v1`: the API's problem JSON plus a
/// machine-readable `reason`, and for a log gap the offset to resend from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecError {
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_offset: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            key: EntryKey {
                tenant: "default".into(),
                dag_id: "etl".into(),
                run_id: "manual__2026-01-01T00:00:00+00:00".into(),
                task_id: "extract".into(),
                map_index: -1,
            },
            try_number: 2,
            attempt: 81234,
            token: "v1.a.b".into(),
            digest: "sha256:00".into(),
            task: TaskInfo {
                dag_id: "etl".into(),
                run_id: "manual__2026-01-01T00:00:00+00:00".into(),
                task_id: "extract".into(),
                map_index: None,
                try_number: 2,
                logical_date: "2026-01-01T00:00:00Z".into(),
                data_interval_start: "2026-01-01T00:00:00Z".into(),
                data_interval_end: "2026-01-01T00:00:00Z".into(),
            },
            params: serde_json::json!({"n": 1}),
            limits: Limits {
                timeout: Some(std::time::Duration::from_millis(1500)),
                ..Limits::default()
            },
            enqueued_at: 1_767_225_600_123,
        }
    }

    #[test]
    fn an_entry_survives_its_fields() {
        let e = entry();
        let fields: HashMap<String, String> = e
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(Entry::from_fields(&fields).unwrap(), e);
    }

    #[test]
    fn a_bad_entry_names_what_is_wrong() {
        let mut fields: HashMap<String, String> = entry()
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        fields.insert("v".into(), "9".into());
        let err = Entry::from_fields(&fields).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
        fields.insert("v".into(), "1".into());
        fields.remove("limits");
        let err = Entry::from_fields(&fields).unwrap_err().to_string();
        assert!(err.contains("`limits` is missing"), "{err}");
    }

    #[test]
    fn outcomes_and_refusals_have_stable_json() {
        let f = FinishRequest {
            outcome: TryResult::SkipDownstream { all: true },
            xcom: vec![("k".into(), "1".into())],
            duration_ms: 5,
            usage: TryUsage {
                cpu_seconds: 0.25,
                host_call_seconds: 0.5,
                peak_memory_bytes: 1 << 20,
                refused_allocations: 0,
            },
            log: LogChunk::default(),
        };
        let text = serde_json::to_string(&f).unwrap();
        assert!(
            text.contains(
                r#""usage":{"cpu_seconds":0.25,"host_call_seconds":0.5,"peak_memory_bytes":1048576,"refused_allocations":0}"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""outcome":{"SkipDownstream":{"all":true}}"#),
            "{text}"
        );
        assert_eq!(
            serde_json::to_string(&Refusal::RunningElsewhere).unwrap(),
            r#""running_elsewhere""#
        );
    }
}
