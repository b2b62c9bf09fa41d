//! The durable records the metastore keeps: DAGs, DagRuns, TaskInstances and their
//! tries, import errors. Every record carries its tenant.

use aileron_model::schedule::DataInterval;
use aileron_model::{DagRunState, TaskInstanceState};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A DAG as the scheduler tracks it (its parsed spec lives in `dag_versions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DagRecord {
    pub tenant: String,
    pub dag_id: String,
    pub fileloc: String,
    /// Content hash of the DAG file the current spec came from.
    pub version: String,
    pub is_paused: bool,
    /// False once the DAG's file is gone; its runs and history stay readable.
    pub is_active: bool,
    /// The data interval of the latest scheduled (not manual) run, the base for the next.
    pub last_scheduled_interval: Option<DataInterval>,
    pub last_parsed: Timestamp,
    /// The current spec's tags, kept here so a filtered DAG list reads records
    /// only, not every DAG's spec.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A pool as stored (`pools` table): the API writes it, the scheduler admits by
/// its `slots`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolRecord {
    pub slots: u32,
    pub description: Option<String>,
}

/// How a DagRun came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    Manual,
    Scheduled,
    Backfill,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::Backfill => "backfill",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DagRun {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    pub state: DagRunState,
    pub logical_date: Timestamp,
    pub data_interval: DataInterval,
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// The DAG version this run was created with; it keeps it if the file changes.
    pub dag_version: String,
    pub queued_at: Timestamp,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Creation order, so runs list in the order they were made even with equal dates.
    pub seq: u64,
    /// The backfill that created this run, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<u64>,
}

/// One finished (or abandoned) try of a TaskInstance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TryRecord {
    pub try_number: u32,
    /// The state the try ended the TaskInstance in (`success`, `failed`,
    /// `up_for_retry`, `skipped`, `up_for_reschedule`).
    pub state: TaskInstanceState,
    pub start_date: Timestamp,
    pub end_date: Timestamp,
    pub duration: f64,
    pub plugin_digest: String,
    /// Why the try failed, when it did.
    pub error: Option<String>,
    pub hostname: String,
    /// The dispatch this try ran as (the global attempt number; see
    /// `TaskInstance::attempt`). 0 in stores older than schema version 2.
    #[serde(default)]
    pub attempt: u64,
    /// The CPU, host-call time and memory it used; `None` for a try that never
    /// ran in a sandbox (abandoned, or from before usage was metered).
    #[serde(default)]
    pub usage: Option<aileron_sandbox::TryUsage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInstance {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    /// -1 for a task that is not mapped, as in Airflow.
    pub map_index: i64,
    pub state: TaskInstanceState,
    /// Number of the current or latest try; 0 before the first.
    pub try_number: u32,
    /// retries + 1.
    pub max_tries: u32,
    pub operator: String,
    pub plugin_digest: String,
    pub queued_at: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub duration: Option<f64>,
    /// When an `up_for_retry` or `up_for_reschedule` TaskInstance may run again.
    pub next_try_at: Option<Timestamp>,
    /// For a mapped TaskInstance, the values its `expand` gave it.
    pub rendered_params: Option<serde_json::Value>,
    /// The params as rendered for the current or latest try.
    #[serde(default)]
    pub rendered_fields: Option<serde_json::Value>,
    pub tries: Vec<TryRecord>,
    pub hostname: String,
    /// The attempt number of the latest dispatch: unique across the metastore and
    /// new at every dispatch (a rescheduled sensor keeps its try number but gets a
    /// new attempt). Remote workers present it with every call, and a call for any
    /// other attempt is refused: the fencing token of `docs/design/multi-node.md`.
    #[serde(default)]
    pub attempt: u64,
}

impl TaskInstance {
    pub fn map_index_opt(&self) -> Option<u32> {
        u32::try_from(self.map_index).ok()
    }
}

/// An import error of one DAG file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportErrorRecord {
    pub tenant: String,
    pub filename: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
    pub timestamp: Timestamp,
}

/// One callback operator run (a task's or DAG's `on_failure`, `on_success`,
/// `on_retry`): what fired it and how it went, with its log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackRecord {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    /// Order within the run.
    pub seq: u64,
    /// `on_failure`, `on_success` or `on_retry`.
    pub event: String,
    /// The TaskInstance try that fired it; `None` for a DAG-level callback.
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<u32>,
    pub operator: String,
    pub plugin_digest: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    /// Why it fired (`failed`, `timed_out`, `success`, the task's error, …).
    pub reason: Option<String>,
    pub queued_at: Timestamp,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub error: Option<String>,
    pub log: String,
}

/// How a backfill treats a logical date that already has a run (Airflow 3's
/// `reprocess_behavior`). The API takes and shows it as is; `all` is read as
/// another name for `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReprocessBehavior {
    /// Leave every existing run alone.
    #[default]
    None,
    /// Re-run (clear) existing runs that failed.
    Failed,
    /// Re-run every finished existing run (Airflow's `completed`).
    #[serde(alias = "all")]
    Completed,
}

impl ReprocessBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Failed => "failed",
            Self::Completed => "completed",
        }
    }
}

/// A backfill: runs of one DAG over a range of past logical dates, made and paced
/// by the scheduler alongside the normal schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackfillRecord {
    pub id: u64,
    pub tenant: String,
    pub dag_id: String,
    /// Logical dates from `from_date` to `to_date`, both included.
    pub from_date: Timestamp,
    pub to_date: Timestamp,
    pub run_backwards: bool,
    pub dag_run_conf: serde_json::Map<String, serde_json::Value>,
    pub reprocess_behavior: ReprocessBehavior,
    /// How many of this backfill's runs may be running at once.
    pub max_active_runs: u32,
    pub is_paused: bool,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// The runs it created or re-ran, in the order they start.
    pub run_ids: Vec<String>,
    /// Logical dates it left alone because a run already covered them.
    #[serde(default)]
    pub skipped_dates: Vec<Timestamp>,
}

impl From<&TaskInstance> for aileron_model::TiKey {
    fn from(ti: &TaskInstance) -> Self {
        aileron_model::TiKey {
            tenant: ti.tenant.clone(),
            dag_id: ti.dag_id.clone(),
            run_id: ti.run_id.clone(),
            task_id: ti.task_id.clone(),
            map_index: ti.map_index,
        }
    }
}

impl DagRun {
    /// The key of this run.
    pub fn key(&self) -> aileron_model::RunKey {
        aileron_model::RunKey::new(&self.tenant, &self.dag_id, &self.run_id)
    }
}
