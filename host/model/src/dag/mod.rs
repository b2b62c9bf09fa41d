//! DAG files: parsing and validating one TOML DAG file into a [`DagSpec`], or an
//! [`ImportError`] that says what is wrong and on which line.
//!
//! The keys are ARCHITECTURE §6 (CONTRACT) plus, per task (and in `[defaults]`):
//! `queue`, `pool_slots`, `max_active_tis_per_dag`, `max_active_tis_per_dagrun`,
//! `weight_rule`, `depends_on_past`, `wait_for_downstream`, `trigger_rule`,
//! `allow_hosts`, `memory_limit`, the sensor keys `timeout` and `soft_fail`, and the
//! callbacks `on_failure`, `on_success`, `on_retry`; per task only `doc`; DAG-level
//! `doc`, `owner`, `dagrun_timeout`, `max_consecutive_failed_dag_runs`, `on_success`,
//! `on_failure`, and typed params (`[params.NAME]` with `default`, `description` and
//! JSON Schema keywords).
//! Any other key is an import error, so a typo such as `upstreams` is caught rather
//! than silently ignored.
//!
//! Defaults follow Airflow 3: `catchup = false`, `max_active_runs = 16`,
//! `max_active_tasks = 16`, `retries = 0`, `retry_delay = 300s`,
//! `pool = "default_pool"`, `pool_slots = 1`, `priority_weight = 1`,
//! `weight_rule = "downstream"`, `queue = "default"`, `trigger_rule = "all_success"`;
//! `wait_for_downstream = true` implies `depends_on_past = true` as in Airflow.
//! Ids follow Airflow's `validate_key`: at most 250 characters of ASCII letters,
//! digits, `-`, `.` and `_`, without `..`.
//!
//! Here the parsed DAG's types ([`DagSpec`], [`TaskSpec`], …) and their graph
//! helpers; `file/` the file format and its parser; `values.rs` the checks of
//! single values; `diagnostics.rs` the wording of import errors.
//!
//! Stricter than Airflow, on purpose: a DAG needs at least one task; `catchup = true`
//! needs a `start_date` (Airflow would silently never schedule it); limits such as
//! `max_active_runs` and timeouts must be positive.

use crate::params_schema::{Mode, is_template, validate_at};
use crate::schedule::{Schedule, ScheduleContext};
use crate::trigger_rule::TriggerRule;
use crate::units::{parse_duration, parse_size, serde_secs, serde_secs_opt};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// What parsing a file, or a part of it, gives.
type Result<T, E = ImportError> = std::result::Result<T, E>;

mod diagnostics;
mod file;
#[cfg(test)]
mod tests;
mod values;

use diagnostics::*;
pub use file::parse_dag_file;
use values::*;
pub use values::{parse_datetime, parse_user_datetime};

/// Airflow's `MAX_RETRY_DELAY` (`[core] max_task_retry_delay`, 24 h): the cap on an
/// exponential retry delay when the task sets no `max_retry_delay`.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Airflow's limit on dag and task ids.
pub const MAX_ID_LEN: usize = 250;

/// A parsed, validated DAG: what the metastore stores per DAG version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagSpec {
    pub dag_id: String,
    pub tenant: String,
    /// The file's path relative to the DAGs folder, `/`-separated.
    pub fileloc: String,
    pub description: Option<String>,
    /// Longer documentation (Markdown) for the UI.
    #[serde(default)]
    pub doc: Option<String>,
    pub schedule: Schedule,
    /// The `schedule` value as written.
    pub schedule_str: Option<String>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// IANA time zone name the schedule is evaluated in.
    pub timezone: String,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    #[serde(with = "serde_secs_opt", default)]
    pub dagrun_timeout: Option<Duration>,
    /// Pause the DAG after this many consecutive failed runs (Airflow; `None` = never).
    #[serde(default)]
    pub max_consecutive_failed_dag_runs: Option<u32>,
    pub tags: Vec<String>,
    pub owner: String,
    /// Default params, overridable by a run's conf. A typed param (see
    /// `param_specs`) with no default is absent here.
    pub params: Map<String, Value>,
    /// Params declared with a type or schema (Airflow's `Param`): a run's conf is
    /// validated against them, and the trigger form is built from them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub param_specs: BTreeMap<String, ParamSpec>,
    /// Run-level callbacks (`on_success`, `on_failure`); `on_retry` is task-only.
    #[serde(default)]
    pub callbacks: Callbacks,
    /// In topological order; among tasks that are ready together, in file order.
    pub tasks: Vec<TaskSpec>,
    /// sha256 (hex) of the file's bytes: the DAG version.
    pub version: String,
    /// The file's text.
    pub source: String,
    /// task_id → position in `tasks`, built on first use (not stored).
    #[serde(skip)]
    pub task_index: TaskIndex,
}

/// A lazily built lookup from task id to position, so [`DagSpec::task`] stays O(1)
/// for the scheduler's hot loops over large DAGs. It is derived data: it never
/// affects equality and is not serialized. Build a `DagSpec` by hand with
/// `TaskIndex::default()`, and after changing `tasks` of an existing one, reset it.
#[derive(Default, Clone)]
pub struct TaskIndex(std::sync::OnceLock<HashMap<String, usize>>);

impl TaskIndex {
    fn get<'a>(&self, tasks: &'a [TaskSpec], id: &str) -> Option<&'a TaskSpec> {
        let i = self.position(tasks, id)?;
        Some(&tasks[i])
    }

    fn position(&self, tasks: &[TaskSpec], id: &str) -> Option<usize> {
        let index = self.0.get_or_init(|| {
            tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.task_id.clone(), i))
                .collect()
        });
        // Checked, in case `tasks` changed after the index was built.
        let i = *index.get(id)?;
        tasks.get(i).filter(|t| t.task_id == id).map(|_| i)
    }
}

impl PartialEq for TaskIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for TaskIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskIndex")
    }
}

/// One task of a DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub task_id: String,
    /// The operator reference as written (`http`, `http@1.2.0`, `http@sha256:…`).
    pub operator: String,
    pub operator_name: String,
    pub operator_version: String,
    /// The resolved component digest, `sha256:…`.
    pub operator_digest: String,
    /// The task's params, unrendered (a JSON object).
    pub params: Value,
    /// Dynamic task mapping: param name → list, or template rendering to a list.
    pub expand: Option<Map<String, Value>>,
    pub upstream: Vec<String>,
    /// Derived from the other tasks' `upstream`, in topological order.
    pub downstream: Vec<String>,
    pub trigger_rule: TriggerRule,
    pub retries: u32,
    #[serde(with = "serde_secs")]
    pub retry_delay: Duration,
    pub retry_exponential_backoff: bool,
    #[serde(with = "serde_secs_opt", default)]
    pub max_retry_delay: Option<Duration>,
    #[serde(with = "serde_secs_opt", default)]
    pub execution_timeout: Option<Duration>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    pub weight_rule: WeightRule,
    pub queue: String,
    /// Outbound HTTP host patterns this task may reach (checked against tenant policy).
    pub allow_hosts: Vec<String>,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub max_active_tis_per_dag: Option<u32>,
    /// Airflow's `max_active_tis_per_dagrun`: running TaskInstances of this task
    /// (mapped instances, in practice) within one DagRun.
    #[serde(default)]
    pub max_active_tis_per_dagrun: Option<u32>,
    /// Memory cap for the task's sandbox, in bytes.
    pub memory_limit: Option<u64>,
    /// A sensor's `timeout`: how long it may keep asking to be rescheduled, counted
    /// from the start of its first poke. `None` = [`DEFAULT_SENSOR_TIMEOUT`].
    #[serde(with = "serde_secs_opt", default)]
    pub timeout: Option<Duration>,
    /// A sensor that times out is `skipped` instead of `failed` (Airflow's
    /// `soft_fail`).
    #[serde(default)]
    pub soft_fail: bool,
    /// Operators run when a try fails, succeeds or is retried.
    #[serde(default)]
    pub callbacks: Callbacks,
    #[serde(default)]
    pub doc: Option<String>,
}

/// A DAG's params split into plain defaults and typed params.
type SplitParams = (Map<String, Value>, BTreeMap<String, ParamSpec>);

/// The task queue of a task whose file names none (Airflow's `default_queue`).
pub const DEFAULT_QUEUE: &str = "default";

/// Airflow's `BaseSensorOperator.timeout` default: 7 days.
pub const DEFAULT_SENSOR_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A param declared with a type (Airflow's `Param`): `[params.count]` with `default`,
/// `description` and JSON Schema keywords (`type`, `minimum`, `enum`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// `None`: the param is required in every run's conf.
    pub default: Option<Value>,
    pub description: Option<String>,
    /// The JSON Schema the value must match (the table without `default` and
    /// `description`).
    pub schema: Value,
}

/// An operator run in the sandbox when something happens to a task or a run
/// (Airflow's `on_*_callback`), typically to notify someone. Its params are
/// rendered with the same context as the task's, plus `reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackSpec {
    /// The operator reference as written.
    pub operator: String,
    pub operator_name: String,
    pub operator_version: String,
    /// `sha256:…` of the component.
    pub operator_digest: String,
    /// Unrendered params (a JSON object).
    pub params: Value,
}

/// The callbacks of a task or a DAG; each event may name several operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Callbacks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<CallbackSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<CallbackSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_retry: Vec<CallbackSpec>,
}

impl Callbacks {
    pub fn is_empty(&self) -> bool {
        self.on_failure.is_empty() && self.on_success.is_empty() && self.on_retry.is_empty()
    }

    fn all(&self) -> impl Iterator<Item = &CallbackSpec> {
        self.on_failure
            .iter()
            .chain(&self.on_success)
            .chain(&self.on_retry)
    }
}

/// How a task's effective priority is computed (Airflow's `weight_rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightRule {
    /// Own weight plus every downstream task's (favours tasks that unblock much).
    #[default]
    Downstream,
    /// Own weight plus every upstream task's (favours finishing started runs).
    Upstream,
    /// Own weight only.
    Absolute,
}

impl WeightRule {
    pub const ALL: [WeightRule; 3] = [Self::Downstream, Self::Upstream, Self::Absolute];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downstream => "downstream",
            Self::Upstream => "upstream",
            Self::Absolute => "absolute",
        }
    }
}

impl fmt::Display for WeightRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WeightRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown weight_rule `{s}`; expected one of: downstream, upstream, absolute"
                )
            })
    }
}

/// Why a DAG file could not be imported. Shown in the UI, API and CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ImportError {
    /// The file's path relative to the DAGs folder.
    pub filename: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column (in characters), when known.
    pub column: Option<u32>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.filename, self.message),
            None => write!(f, "{}: {}", self.filename, self.message),
        }
    }
}

/// Resolves operator references to installed plugins.
pub trait OperatorCatalog {
    /// `reference` is `name`, `name@version` or `name@sha256:…`. On failure, a
    /// message for the DAG author, ideally listing what is available.
    fn resolve(&self, reference: &str) -> Result<ResolvedOperator, String>;
    /// The most linear memory this host grants one try: a `memory_limit` above it
    /// is an import error naming it, rather than a limit silently lowered.
    fn max_memory_bytes(&self) -> u64;
    /// The ceilings a platform admin set for the tenant whose files this catalog
    /// parses; none by default.
    fn ceilings(&self) -> Ceilings {
        Ceilings::default()
    }
}

/// What a tenant's DAG files may ask for at most, set by a platform admin. A
/// file asking for more is an import error naming the ceiling; a file that asks
/// nothing gets the ceiling (for `max_active_runs`, the lower of it and
/// Airflow's default of 16; for `memory_limit`, at most the host's ceiling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ceilings {
    pub max_active_runs: Option<u32>,
    pub execution_timeout: Option<Duration>,
    pub memory_limit: Option<u64>,
}

impl Ceilings {
    /// Mixed into a DAG version's hash: a version stands for one file parsed
    /// under one set of ceilings. Empty when there are none, so versions of
    /// tenants without ceilings stay the hash of the file alone.
    pub(crate) fn fingerprint(&self) -> String {
        if *self == Ceilings::default() {
            return String::new();
        }
        // Spelled out rather than `Debug`, whose format is no promise.
        let or_none = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        format!(
            "\n#ceilings max_active_runs={} execution_timeout_ms={} memory_limit={}",
            or_none(self.max_active_runs.map(u64::from)),
            or_none(self.execution_timeout.map(|d| d.as_millis() as u64)),
            or_none(self.memory_limit)
        )
    }
}

/// An installed operator plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedOperator {
    pub name: String,
    pub version: String,
    /// `sha256:…` of the component.
    pub digest: String,
    /// JSON Schema of the operator's params.
    pub params_schema: Value,
}

impl DagSpec {
    /// Whether a task or a callback of this DAG runs the component `digest`
    /// (what removing an operator must not pull from under a DAG).
    pub fn runs_component(&self, digest: &str) -> bool {
        self.component_digests().any(|d| d == digest)
    }

    /// The component each task, task callback and DAG callback resolved to, in
    /// file order (repeats included).
    pub fn component_digests(&self) -> impl Iterator<Item = &str> {
        component_digests(&self.tasks, &self.callbacks)
    }

    /// The place of task `id` in `tasks` (file order among ready tasks).
    pub fn task_position(&self, id: &str) -> Option<usize> {
        self.task_index
            .position(&self.tasks, id)
            .or_else(|| self.tasks.iter().position(|t| t.task_id == id))
    }

    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.task_index
            .get(&self.tasks, id)
            .or_else(|| self.tasks.iter().find(|t| t.task_id == id))
    }

    /// The time zone (validated at parse time; UTC if the stored name is unknown).
    pub fn time_zone(&self) -> TimeZone {
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    pub fn schedule_context(&self) -> ScheduleContext {
        ScheduleContext {
            start_date: self.start_date,
            end_date: self.end_date,
            timezone: self.time_zone(),
            catchup: self.catchup,
        }
    }

    /// Tasks with no downstream task: they decide the DagRun's state.
    pub fn leaves(&self) -> impl Iterator<Item = &TaskSpec> {
        self.tasks.iter().filter(|t| t.downstream.is_empty())
    }

    /// Tasks with no upstream task.
    pub fn roots(&self) -> impl Iterator<Item = &TaskSpec> {
        self.tasks.iter().filter(|t| t.upstream.is_empty())
    }

    /// The delay before retrying `task` after try `try_number` failed (1-based).
    /// See [`TaskSpec::retry_delay_for`].
    pub fn retry_delay_for(&self, task: &TaskSpec, try_number: u32) -> Duration {
        task.retry_delay_for(try_number)
    }

    /// The params a run sees: the DAG's defaults with the run's `conf` laid over
    /// them (Airflow's `dag_run_conf_overrides_params`), checked against the typed
    /// params. The error names every param that is missing or wrong.
    pub fn resolve_params(&self, conf: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut params = self.params.clone();
        for (k, v) in conf {
            params.insert(k.clone(), v.clone());
        }
        let mut errors = Vec::new();
        for (name, spec) in &self.param_specs {
            match params.get(name) {
                None => errors.push(format!(
                    "param `{name}` is required: it has no default, so the run's conf must set it"
                )),
                Some(value) => {
                    if let Err(e) = validate_at(
                        &spec.schema,
                        value,
                        &format!("params.{name}"),
                        Mode::Rendered,
                    ) {
                        errors.extend(e);
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(params)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Every task reachable from `task_id` going downstream (or upstream), without
    /// `task_id` itself.
    pub fn relatives(&self, task_id: &str, upstream: bool) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![task_id];
        while let Some(id) = stack.pop() {
            let Some(task) = self.task(id) else { continue };
            let next = if upstream {
                &task.upstream
            } else {
                &task.downstream
            };
            for n in next {
                if seen.insert(n.as_str()) {
                    stack.push(n);
                }
            }
        }
        seen
    }

    /// The effective priority of `task_id` under its weight rule (Airflow's
    /// `priority_weight_total`): its own weight, plus every downstream (or upstream)
    /// task's weight, each counted once.
    pub fn priority_weight_total(&self, task_id: &str) -> i64 {
        let Some(task) = self.task(task_id) else {
            return 0;
        };
        let own = i64::from(task.priority_weight);
        let others = match task.weight_rule {
            WeightRule::Absolute => return own,
            WeightRule::Downstream => self.relatives(task_id, false),
            WeightRule::Upstream => self.relatives(task_id, true),
        };
        own + others
            .into_iter()
            .filter_map(|id| self.task(id))
            .map(|t| i64::from(t.priority_weight))
            .sum::<i64>()
    }
}

impl TaskSpec {
    /// The delay before retrying after try `try_number` (1-based) failed.
    ///
    /// Airflow's `next_retry_datetime`: `retry_delay`, or with exponential backoff
    /// `ceil(retry_delay * 2^(try_number - 1))` seconds (at least 1), capped at 24 h
    /// and then at `max_retry_delay`. Airflow adds a deterministic jitter of up to
    /// the same amount again (a hash of the TaskInstance); Aileron does not, so
    /// delays are predictable.
    pub fn retry_delay_for(&self, try_number: u32) -> Duration {
        if !self.retry_exponential_backoff {
            return self.retry_delay;
        }
        let exponent = try_number.saturating_sub(1).min(63);
        let secs = self.retry_delay.as_secs_f64() * 2f64.powi(exponent as i32);
        let backoff =
            Duration::from_secs_f64(secs.ceil().clamp(1.0, MAX_RETRY_DELAY.as_secs_f64()));
        match self.max_retry_delay {
            Some(cap) => backoff.min(cap),
            None => backoff,
        }
    }

    /// True for a mapped task (one TaskInstance per `expand` element).
    pub fn is_mapped(&self) -> bool {
        self.expand.is_some()
    }
}

/// See [`DagSpec::component_digests`]; also what a DAG version hashes.
fn component_digests<'a>(
    tasks: &'a [TaskSpec],
    callbacks: &'a Callbacks,
) -> impl Iterator<Item = &'a str> {
    let of_tasks = tasks.iter().flat_map(|t| {
        std::iter::once(t.operator_digest.as_str())
            .chain(t.callbacks.all().map(|c| c.operator_digest.as_str()))
    });
    of_tasks.chain(callbacks.all().map(|c| c.operator_digest.as_str()))
}
