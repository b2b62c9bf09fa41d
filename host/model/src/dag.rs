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
        let index = self.0.get_or_init(|| {
            tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.task_id.clone(), i))
                .collect()
        });
        // Checked, in case `tasks` changed after the index was built.
        tasks.get(*index.get(id)?).filter(|t| t.task_id == id)
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

// ---------------------------------------------------------------------------------
// The file format

/// Declares a TOML table type with the task options shared by `[defaults]` and
/// `[tasks.<id>]` (serde cannot combine `flatten` with `deny_unknown_fields`).
macro_rules! with_task_options {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($field: $ty,)*
            retries: Option<Spanned<u32>>,
            retry_delay: Option<Spanned<toml::Value>>,
            retry_exponential_backoff: Option<bool>,
            max_retry_delay: Option<Spanned<toml::Value>>,
            execution_timeout: Option<Spanned<toml::Value>>,
            pool: Option<Spanned<String>>,
            pool_slots: Option<Spanned<u32>>,
            priority_weight: Option<i32>,
            weight_rule: Option<Spanned<String>>,
            queue: Option<Spanned<String>>,
            trigger_rule: Option<Spanned<String>>,
            depends_on_past: Option<bool>,
            wait_for_downstream: Option<bool>,
            max_active_tis_per_dag: Option<Spanned<u32>>,
            allow_hosts: Option<Spanned<Vec<Spanned<String>>>>,
            memory_limit: Option<Spanned<toml::Value>>,
            max_active_tis_per_dagrun: Option<Spanned<u32>>,
            timeout: Option<Spanned<toml::Value>>,
            soft_fail: Option<bool>,
            on_failure: Option<Spanned<toml::Value>>,
            on_success: Option<Spanned<toml::Value>>,
            on_retry: Option<Spanned<toml::Value>>,
        }
    };
}

with_task_options! {
    /// `[defaults]`: Airflow's `default_args`.
    struct RawDefaults {}
}

with_task_options! {
    /// `[tasks.<id>]`.
    struct RawTask {
        operator: Spanned<String>,
        params: Option<Spanned<toml::Table>>,
        expand: Option<Spanned<toml::Table>>,
        upstream: Option<Spanned<Vec<Spanned<String>>>>,
        doc: Option<String>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDag {
    id: Option<Spanned<String>>,
    description: Option<String>,
    doc: Option<String>,
    schedule: Option<Spanned<String>>,
    start_date: Option<Spanned<toml::Value>>,
    end_date: Option<Spanned<toml::Value>>,
    timezone: Option<Spanned<String>>,
    catchup: Option<Spanned<bool>>,
    max_active_runs: Option<Spanned<u32>>,
    max_active_tasks: Option<Spanned<u32>>,
    dagrun_timeout: Option<Spanned<toml::Value>>,
    max_consecutive_failed_dag_runs: Option<u32>,
    tags: Option<Vec<String>>,
    owner: Option<String>,
    params: Option<Spanned<toml::Table>>,
    on_success: Option<Spanned<toml::Value>>,
    on_failure: Option<Spanned<toml::Value>>,
    defaults: Option<RawDefaults>,
    tasks: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawTask>>>>,
}

// ---------------------------------------------------------------------------------
// Parsing

/// Parses and validates one DAG file. `fileloc` is its path relative to the DAGs
/// folder; the file stem is the default `dag_id`.
pub fn parse_dag_file(
    tenant: &str,
    fileloc: &str,
    source: &str,
    catalog: &dyn OperatorCatalog,
) -> std::result::Result<DagSpec, ImportError> {
    let p = Parser { fileloc, source };
    let raw: RawDag = toml::from_str(source).map_err(|e| p.toml_error(&e))?;
    p.build(tenant, raw, catalog)
}

/// Error construction and conversions for one file.
struct Parser<'a> {
    fileloc: &'a str,
    source: &'a str,
}

type Result<T, E = ImportError> = std::result::Result<T, E>;

impl Parser<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ImportError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_col(self.source, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ImportError {
            filename: self.fileloc.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn at<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> ImportError {
        self.error(Some(spanned.span()), message)
    }

    fn toml_error(&self, e: &toml::de::Error) -> ImportError {
        let mut message = e.message().trim().to_owned();
        if let Some(improved) = improve_unknown_field(&message) {
            message = improved;
        } else if let Some(key) = e.span().and_then(|s| key_on_line(self.source, s.start)) {
            // toml names the wrong type, not the key: add it from the source line.
            if !message.contains(&format!("`{key}`")) {
                message = format!("`{key}`: {message}");
            }
        }
        self.error(e.span(), message)
    }

    fn build(&self, tenant: &str, raw: RawDag, catalog: &dyn OperatorCatalog) -> Result<DagSpec> {
        let dag_id = match &raw.id {
            Some(id) => {
                validate_id("dag id", id.get_ref()).map_err(|m| self.at(id, m))?;
                id.get_ref().clone()
            }
            None => {
                let stem = file_stem(self.fileloc);
                validate_id("dag id", stem).map_err(|m| {
                    self.error(
                        None,
                        format!("{m} (it comes from the file name; set `id = \"…\"`)"),
                    )
                })?;
                stem.to_owned()
            }
        };

        let schedule = match &raw.schedule {
            Some(s) => Schedule::parse(Some(s.get_ref())).map_err(|e| self.at(s, e.to_string()))?,
            None => Schedule::Manual,
        };

        let timezone = match &raw.timezone {
            Some(tz) => {
                TimeZone::get(tz.get_ref()).map_err(|_| {
                    self.at(tz, format!("unknown time zone `{}`; expected an IANA name such as \"UTC\" or \"Europe/Berlin\"", tz.get_ref()))
                })?;
                tz.get_ref().clone()
            }
            None => "UTC".to_owned(),
        };
        let tz = TimeZone::get(&timezone).unwrap_or(TimeZone::UTC);
        let start_date = raw
            .start_date
            .as_ref()
            .map(|d| self.date("start_date", d, &tz))
            .transpose()?;
        let end_date = raw
            .end_date
            .as_ref()
            .map(|d| self.date("end_date", d, &tz))
            .transpose()?;
        if let (Some(start), Some(end), Some(end_raw)) = (start_date, end_date, &raw.end_date)
            && end < start
        {
            return Err(self.at(
                end_raw,
                format!("end_date {end} is before start_date {start}"),
            ));
        }
        let catchup = raw.catchup.as_ref().is_some_and(|c| *c.get_ref());
        if let Some(c) = &raw.catchup
            && catchup
            && start_date.is_none()
            && schedule.is_periodic()
        {
            return Err(self.at(c, "catchup = true needs a start_date to catch up from"));
        }

        let positive = |field: &Option<Spanned<u32>>, name: &str, default: u32| -> Result<u32> {
            match field {
                Some(v) if *v.get_ref() == 0 => {
                    Err(self.at(v, format!("{name} must be at least 1")))
                }
                Some(v) => Ok(*v.get_ref()),
                None => Ok(default),
            }
        };
        let max_active_runs = positive(&raw.max_active_runs, "max_active_runs", 16)?;
        let max_active_tasks = positive(&raw.max_active_tasks, "max_active_tasks", 16)?;
        let dagrun_timeout = raw
            .dagrun_timeout
            .as_ref()
            .map(|d| self.positive_duration("dagrun_timeout", d))
            .transpose()?;

        let (params, param_specs) = match &raw.params {
            Some(p) => match toml_table_to_json(p.get_ref(), "params") {
                Ok(map) => self
                    .param_specs(map, schedule.is_periodic() || schedule == Schedule::Once)
                    .map_err(|m| self.at(p, m))?,
                Err(m) => return Err(self.at(p, m)),
            },
            None => (Map::new(), BTreeMap::new()),
        };
        let mut callbacks = Callbacks::default();
        if let Some(v) = &raw.on_success {
            callbacks.on_success = self.callbacks("on_success", v, catalog)?;
        }
        if let Some(v) = &raw.on_failure {
            callbacks.on_failure = self.callbacks("on_failure", v, catalog)?;
        }

        let defaults = match &raw.defaults {
            Some(d) => self.options(d.options(), catalog)?,
            None => TaskOptions::default(),
        };

        let Some(raw_tasks) = &raw.tasks else {
            return Err(self.error(
                None,
                "the DAG has no tasks: add at least one [tasks.<task_id>] table",
            ));
        };
        if raw_tasks.get_ref().is_empty() {
            return Err(self.at(
                raw_tasks,
                "the DAG has no tasks: add at least one [tasks.<task_id>] table",
            ));
        }
        // File order: the tasks table is sorted by name, the spans say where each was.
        let mut ordered: Vec<(&Spanned<String>, &Spanned<RawTask>)> =
            raw_tasks.get_ref().iter().collect();
        ordered.sort_by_key(|(name, _)| name.span().start);

        let mut tasks = Vec::with_capacity(ordered.len());
        for (name, task) in &ordered {
            tasks.push(self.task(name, task, &defaults, catalog)?);
        }
        let tasks = self.order_tasks(tasks, &ordered)?;

        Ok(DagSpec {
            dag_id,
            tenant: tenant.to_owned(),
            fileloc: self.fileloc.to_owned(),
            description: raw.description,
            doc: raw.doc,
            schedule_str: raw.schedule.map(Spanned::into_inner),
            schedule,
            start_date,
            end_date,
            timezone,
            catchup,
            max_active_runs,
            max_active_tasks,
            dagrun_timeout,
            max_consecutive_failed_dag_runs: raw.max_consecutive_failed_dag_runs.filter(|n| *n > 0),
            tags: raw.tags.unwrap_or_default(),
            owner: raw.owner.unwrap_or_else(|| "aileron".to_owned()),
            params,
            param_specs,
            callbacks,
            tasks,
            version: hex::encode(Sha256::digest(self.source.as_bytes())),
            source: self.source.to_owned(),
            task_index: TaskIndex::default(),
        })
    }

    /// A date (midnight in the DAG's time zone) or a datetime, as a TOML string or
    /// TOML datetime. A datetime without an offset is in the DAG's time zone.
    fn date(&self, key: &str, value: &Spanned<toml::Value>, tz: &TimeZone) -> Result<Timestamp> {
        let text = match value.get_ref() {
            toml::Value::String(s) => s.trim().to_owned(),
            toml::Value::Datetime(d) => d.to_string(),
            other => {
                return Err(self.at(
                    value,
                    format!(
                        "{key} must be a date or datetime string, not {}",
                        other.type_str()
                    ),
                ));
            }
        };
        parse_datetime(&text, tz).ok_or_else(|| {
            self.at(
                value,
                format!("invalid {key} `{text}`: expected a date (\"2026-01-01\") or an RFC 3339 datetime (\"2026-01-01T06:00:00Z\")"),
            )
        })
    }

    fn duration(&self, key: &str, value: &Spanned<toml::Value>) -> Result<Duration> {
        let parsed = match value.get_ref() {
            toml::Value::Integer(secs) => u64::try_from(*secs)
                .map(Duration::from_secs)
                .map_err(|_| format!("{key} must not be negative")),
            toml::Value::String(s) => parse_duration(s).map_err(|e| format!("{key}: {e}")),
            other => Err(format!(
                "{key} must be a duration such as \"30s\" or a number of seconds, not {}",
                other.type_str()
            )),
        };
        parsed.map_err(|m| self.at(value, m))
    }

    fn positive_duration(&self, key: &str, value: &Spanned<toml::Value>) -> Result<Duration> {
        let d = self.duration(key, value)?;
        if d.is_zero() {
            return Err(self.at(value, format!("{key} must be greater than zero")));
        }
        Ok(d)
    }

    fn options(&self, raw: OptionFields<'_>, catalog: &dyn OperatorCatalog) -> Result<TaskOptions> {
        let mut o = TaskOptions {
            retries: raw.retries.map(|r| *r.get_ref()),
            retry_exponential_backoff: raw.retry_exponential_backoff,
            soft_fail: raw.soft_fail,
            priority_weight: raw.priority_weight,
            depends_on_past: raw.depends_on_past,
            wait_for_downstream: raw.wait_for_downstream,
            pool: raw.pool.map(|p| p.get_ref().clone()),
            queue: raw.queue.map(|q| q.get_ref().clone()),
            ..TaskOptions::default()
        };
        if let Some(d) = raw.retry_delay {
            o.retry_delay = Some(self.duration("retry_delay", d)?);
        }
        if let Some(d) = raw.max_retry_delay {
            o.max_retry_delay = Some(self.positive_duration("max_retry_delay", d)?);
        }
        if let Some(d) = raw.execution_timeout {
            o.execution_timeout = Some(self.positive_duration("execution_timeout", d)?);
        }
        if let Some(d) = raw.timeout {
            o.timeout = Some(self.positive_duration("timeout", d)?);
        }
        if let Some(m) = raw.max_active_tis_per_dagrun {
            if *m.get_ref() == 0 {
                return Err(self.at(m, "max_active_tis_per_dagrun must be at least 1"));
            }
            o.max_active_tis_per_dagrun = Some(*m.get_ref());
        }
        for (name, value, slot) in [
            ("on_failure", raw.on_failure, &mut o.on_failure),
            ("on_success", raw.on_success, &mut o.on_success),
            ("on_retry", raw.on_retry, &mut o.on_retry),
        ] {
            if let Some(v) = value {
                *slot = Some(self.callbacks(name, v, catalog)?);
            }
        }
        for (name, value) in [("pool", raw.pool), ("queue", raw.queue)] {
            if let Some(v) = value
                && v.get_ref().trim().is_empty()
            {
                return Err(self.at(v, format!("{name} must not be empty")));
            }
        }
        if let Some(slots) = raw.pool_slots {
            if *slots.get_ref() == 0 {
                return Err(self.at(slots, "pool_slots cannot be less than 1"));
            }
            o.pool_slots = Some(*slots.get_ref());
        }
        if let Some(w) = raw.weight_rule {
            o.weight_rule = Some(w.get_ref().parse().map_err(|m: String| self.at(w, m))?);
        }
        if let Some(r) = raw.trigger_rule {
            o.trigger_rule =
                Some(r.get_ref().parse().map_err(
                    |e: crate::trigger_rule::UnknownTriggerRule| self.at(r, e.to_string()),
                )?);
        }
        if let Some(m) = raw.max_active_tis_per_dag {
            if *m.get_ref() == 0 {
                return Err(self.at(m, "max_active_tis_per_dag must be at least 1"));
            }
            o.max_active_tis_per_dag = Some(*m.get_ref());
        }
        if let Some(hosts) = raw.allow_hosts {
            let mut list = Vec::new();
            for h in hosts.get_ref() {
                validate_host_pattern(h.get_ref()).map_err(|m| self.at(h, m))?;
                list.push(h.get_ref().clone());
            }
            o.allow_hosts = Some(list);
        }
        if let Some(m) = raw.memory_limit {
            let bytes = match m.get_ref() {
                toml::Value::Integer(n) => {
                    u64::try_from(*n).map_err(|_| "memory_limit must not be negative".to_owned())
                }
                toml::Value::String(s) => parse_size(s).map_err(|e| format!("memory_limit: {e}")),
                other => Err(format!(
                    "memory_limit must be a size such as \"64MiB\" or a number of bytes, not {}",
                    other.type_str()
                )),
            }
            .map_err(|msg| self.at(m, msg))?;
            if bytes == 0 {
                return Err(self.at(m, "memory_limit must be greater than zero"));
            }
            let ceiling = catalog.max_memory_bytes();
            if bytes > ceiling {
                return Err(self.at(
                    m,
                    format!(
                        "memory_limit of {} is above this host's ceiling of {}",
                        crate::units::format_size(bytes),
                        crate::units::format_size(ceiling)
                    ),
                ));
            }
            o.memory_limit = Some(bytes);
        }
        Ok(o)
    }

    /// Splits the `params` table into plain defaults and typed params. A param
    /// written as a table with a `default` or `type` key is a typed param (wrap a
    /// plain table default as `{ default = { … } }`); its default must match its
    /// schema, and a scheduled DAG cannot have a required param with no default,
    /// since a scheduled run has no conf to supply it (both as in Airflow).
    fn param_specs(
        &self,
        map: Map<String, Value>,
        scheduled: bool,
    ) -> std::result::Result<SplitParams, String> {
        let mut defaults = Map::new();
        let mut specs = BTreeMap::new();
        for (name, value) in map {
            let typed = match &value {
                Value::Object(t) => t.contains_key("default") || t.contains_key("type"),
                _ => false,
            };
            if !typed {
                defaults.insert(name, value);
                continue;
            }
            let Value::Object(mut schema) = value else {
                unreachable!()
            };
            let default = schema.remove("default");
            let description = match schema.remove("description") {
                None => None,
                Some(Value::String(d)) => Some(d),
                Some(_) => return Err(format!("params.{name}.description must be a string")),
            };
            let schema = Value::Object(schema);
            crate::params_schema::check_schema(&schema)
                .map_err(|m| format!("params.{name}: {m}"))?;
            match &default {
                Some(d) => {
                    validate_at(&schema, d, &format!("params.{name}"), Mode::Rendered).map_err(
                        |e| {
                            format!(
                                "the default of param `{name}` does not match its schema: {}",
                                e.join("; ")
                            )
                        },
                    )?;
                    defaults.insert(name.clone(), d.clone());
                }
                None if scheduled => {
                    return Err(format!(
                        "param `{name}` has no default, so scheduled runs (which have no conf) could not run; give it a default or remove the schedule"
                    ));
                }
                None => {}
            }
            specs.insert(
                name,
                ParamSpec {
                    default,
                    description,
                    schema,
                },
            );
        }
        Ok((defaults, specs))
    }

    /// `on_failure = { operator = "…", params = { … } }`, or a list of such tables.
    fn callbacks(
        &self,
        key: &str,
        value: &Spanned<toml::Value>,
        catalog: &dyn OperatorCatalog,
    ) -> Result<Vec<CallbackSpec>> {
        let shape = || {
            format!(
                "{key} must be a table {{ operator = \"…\", params = {{ … }} }} or a list of them"
            )
        };
        let tables: Vec<&toml::Table> = match value.get_ref() {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_table().ok_or_else(shape))
                .collect::<std::result::Result<_, _>>()
                .map_err(|m| self.at(value, m))?,
            _ => return Err(self.at(value, shape())),
        };
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            if let Some(k) = t.keys().find(|k| *k != "operator" && *k != "params") {
                return Err(self.at(
                    value,
                    format!("{key}: unknown key `{k}`; a callback has `operator` and `params`"),
                ));
            }
            let Some(operator) = t.get("operator").and_then(toml::Value::as_str) else {
                return Err(self.at(
                    value,
                    format!("{key}: `operator` (a plugin name) is required"),
                ));
            };
            let operator = operator.trim();
            let resolved = catalog
                .resolve(operator)
                .map_err(|m| self.at(value, format!("{key}: {m}")))?;
            let params = match t.get("params") {
                None => Map::new(),
                Some(toml::Value::Table(p)) => toml_table_to_json(p, &format!("{key}.params"))
                    .map_err(|m| self.at(value, m))?,
                Some(_) => return Err(self.at(value, format!("{key}.params must be a table"))),
            };
            let params = Value::Object(params);
            validate_at(
                &resolved.params_schema,
                &params,
                &format!("{key}.params"),
                Mode::Unrendered,
            )
            .map_err(|e| self.at(value, e.join("; ")))?;
            out.push(CallbackSpec {
                operator: operator.to_owned(),
                operator_name: resolved.name,
                operator_version: resolved.version,
                operator_digest: resolved.digest,
                params,
            });
        }
        Ok(out)
    }

    fn task(
        &self,
        name: &Spanned<String>,
        raw: &Spanned<RawTask>,
        defaults: &TaskOptions,
        catalog: &dyn OperatorCatalog,
    ) -> Result<TaskSpec> {
        let task_id = name.get_ref();
        let task = raw.get_ref();
        let ctx = |m: String| format!("task `{task_id}`: {m}");
        validate_id("task id", task_id).map_err(|m| self.at(raw, m))?;
        let o = self.options(task.options(), catalog)?.or(defaults);

        let operator = task.operator.get_ref().trim();
        let resolved = catalog
            .resolve(operator)
            .map_err(|m| self.at(&task.operator, ctx(m)))?;

        let params = match &task.params {
            Some(p) => toml_table_to_json(p.get_ref(), "params").map_err(|m| self.at(p, ctx(m)))?,
            None => Map::new(),
        };
        let expand = match &task.expand {
            Some(e) => {
                let map =
                    toml_table_to_json(e.get_ref(), "expand").map_err(|m| self.at(e, ctx(m)))?;
                self.check_expand(&map, &params, &resolved.params_schema)
                    .map_err(|m| self.at(e, ctx(m)))?;
                Some(map)
            }
            None => None,
        };
        // The params a mapped TaskInstance will get: its own plus one element per
        // expand key. A placeholder template stands for the element (checked above).
        let mut merged = params.clone();
        if let Some(expand) = &expand {
            for key in expand.keys() {
                merged.insert(key.clone(), Value::String("{{ expand }}".to_owned()));
            }
        }
        if let Err(errors) = validate_at(
            &resolved.params_schema,
            &Value::Object(merged),
            "params",
            Mode::Unrendered,
        ) {
            let span = task
                .params
                .as_ref()
                .map_or_else(|| raw.span(), Spanned::span);
            return Err(self.error(Some(span), ctx(errors.join("; "))));
        }

        let mut upstream: Vec<String> = Vec::new();
        if let Some(list) = &task.upstream {
            for up in list.get_ref() {
                let up_id = up.get_ref();
                if up_id == task_id {
                    return Err(self.at(up, format!("task `{task_id}` cannot depend on itself")));
                }
                // Airflow only warns about a repeated dependency; keep one.
                if !upstream.contains(up_id) {
                    upstream.push(up_id.clone());
                }
            }
        }

        let depends_on_past =
            o.depends_on_past.unwrap_or(false) || o.wait_for_downstream.unwrap_or(false);
        Ok(TaskSpec {
            task_id: task_id.clone(),
            operator: operator.to_owned(),
            operator_name: resolved.name,
            operator_version: resolved.version,
            operator_digest: resolved.digest,
            params: Value::Object(params),
            expand,
            upstream,
            downstream: Vec::new(),
            trigger_rule: o.trigger_rule.unwrap_or_default(),
            retries: o.retries.unwrap_or(0),
            retry_delay: o.retry_delay.unwrap_or(Duration::from_secs(300)),
            retry_exponential_backoff: o.retry_exponential_backoff.unwrap_or(false),
            max_retry_delay: o.max_retry_delay,
            execution_timeout: o.execution_timeout,
            pool: o.pool.unwrap_or_else(|| "default_pool".to_owned()),
            pool_slots: o.pool_slots.unwrap_or(1),
            priority_weight: o.priority_weight.unwrap_or(1),
            weight_rule: o.weight_rule.unwrap_or_default(),
            queue: o.queue.unwrap_or_else(|| "default".to_owned()),
            allow_hosts: o.allow_hosts.unwrap_or_default(),
            depends_on_past,
            wait_for_downstream: o.wait_for_downstream.unwrap_or(false),
            max_active_tis_per_dag: o.max_active_tis_per_dag,
            max_active_tis_per_dagrun: o.max_active_tis_per_dagrun,
            memory_limit: o.memory_limit,
            timeout: o.timeout,
            soft_fail: o.soft_fail.unwrap_or(false),
            callbacks: Callbacks {
                on_failure: o.on_failure.unwrap_or_default(),
                on_success: o.on_success.unwrap_or_default(),
                on_retry: o.on_retry.unwrap_or_default(),
            },
            doc: task.doc.clone(),
        })
    }

    /// `expand` values are lists (each element checked against the param's schema)
    /// or templates rendering to a list; keys must be params the operator knows and
    /// not also be set in `params` (Airflow refuses the same argument in `partial`
    /// and `expand`).
    fn check_expand(
        &self,
        expand: &Map<String, Value>,
        params: &Map<String, Value>,
        schema: &Value,
    ) -> Result<(), String> {
        if expand.is_empty() {
            return Err("expand must name at least one param to map over".to_owned());
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (key, value) in expand {
            if params.contains_key(key) {
                return Err(format!(
                    "`{key}` is set in both params and expand; set it in one of them"
                ));
            }
            let prop = properties.and_then(|p| p.get(key));
            if prop.is_none() && closed {
                let mut known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                known.sort_unstable();
                return Err(format!(
                    "expand.{key}: unknown param; expected one of: {}",
                    known.join(", ")
                ));
            }
            match value {
                Value::String(s) if is_template(s) => {}
                Value::Array(items) => {
                    if let Some(prop) = prop {
                        let mut errors = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            if let Err(e) = validate_at(
                                prop,
                                item,
                                &format!("expand.{key}[{i}]"),
                                Mode::Unrendered,
                            ) {
                                errors.extend(e);
                            }
                        }
                        if !errors.is_empty() {
                            return Err(errors.join("; "));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "expand.{key} must be a list or a template that renders to a list, not {}",
                        json_type(other)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the graph and returns the tasks in a stable topological order with
    /// `downstream` filled in.
    fn order_tasks(
        &self,
        tasks: Vec<TaskSpec>,
        raw: &[(&Spanned<String>, &Spanned<RawTask>)],
    ) -> Result<Vec<TaskSpec>> {
        let index: HashMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.task_id.as_str(), i))
            .collect();
        // Unknown upstreams, pointing at the entry in the `upstream` list.
        for (i, task) in tasks.iter().enumerate() {
            for up in &task.upstream {
                if !index.contains_key(up.as_str()) {
                    let span = raw[i]
                        .1
                        .get_ref()
                        .upstream
                        .as_ref()
                        .and_then(|l| l.get_ref().iter().find(|u| u.get_ref() == up))
                        .map(Spanned::span);
                    let mut msg = format!("task `{}`: unknown upstream task `{up}`", task.task_id);
                    if let Some(close) = closest(up, index.keys().copied()) {
                        msg.push_str(&format!("; did you mean `{close}`?"));
                    }
                    return Err(self.error(span, msg));
                }
            }
        }

        // Kahn's algorithm; the ready set is ordered by file position.
        let n = tasks.len();
        let mut pending: Vec<usize> = tasks.iter().map(|t| t.upstream.len()).collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, task) in tasks.iter().enumerate() {
            for up in &task.upstream {
                children[index[up.as_str()]].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &c in &children[i] {
                pending[c] -= 1;
                if pending[c] == 0 {
                    ready.insert(c);
                }
            }
        }
        if order.len() < n {
            let cycle = find_cycle(&tasks, &index, &pending);
            let first = cycle[0];
            let path: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&first))
                .map(|&i| tasks[i].task_id.as_str())
                .collect();
            return Err(self.at(
                raw[first].1,
                format!("cycle detected: {}", path.join(" -> ")),
            ));
        }

        let position: HashMap<usize, usize> =
            order.iter().enumerate().map(|(pos, &i)| (i, pos)).collect();
        let mut downstream: Vec<Vec<usize>> = children;
        for list in &mut downstream {
            list.sort_by_key(|c| position[c]);
        }
        let mut slots: Vec<Option<TaskSpec>> = tasks.into_iter().map(Some).collect();
        let ids: Vec<String> = slots
            .iter()
            .map(|t| t.as_ref().map(|t| t.task_id.clone()).unwrap_or_default())
            .collect();
        Ok(order
            .into_iter()
            .filter_map(|i| {
                let mut task = slots[i].take()?;
                task.downstream = downstream[i].iter().map(|&c| ids[c].clone()).collect();
                Some(task)
            })
            .collect())
    }
}

/// The option fields of a `[defaults]` or `[tasks.<id>]` table, borrowed.
struct OptionFields<'a> {
    retries: Option<&'a Spanned<u32>>,
    retry_delay: Option<&'a Spanned<toml::Value>>,
    retry_exponential_backoff: Option<bool>,
    max_retry_delay: Option<&'a Spanned<toml::Value>>,
    execution_timeout: Option<&'a Spanned<toml::Value>>,
    pool: Option<&'a Spanned<String>>,
    pool_slots: Option<&'a Spanned<u32>>,
    priority_weight: Option<i32>,
    weight_rule: Option<&'a Spanned<String>>,
    queue: Option<&'a Spanned<String>>,
    trigger_rule: Option<&'a Spanned<String>>,
    depends_on_past: Option<bool>,
    wait_for_downstream: Option<bool>,
    max_active_tis_per_dag: Option<&'a Spanned<u32>>,
    allow_hosts: Option<&'a Spanned<Vec<Spanned<String>>>>,
    memory_limit: Option<&'a Spanned<toml::Value>>,
    max_active_tis_per_dagrun: Option<&'a Spanned<u32>>,
    timeout: Option<&'a Spanned<toml::Value>>,
    soft_fail: Option<bool>,
    on_failure: Option<&'a Spanned<toml::Value>>,
    on_success: Option<&'a Spanned<toml::Value>>,
    on_retry: Option<&'a Spanned<toml::Value>>,
}

macro_rules! option_fields {
    ($t:ty) => {
        impl $t {
            fn options(&self) -> OptionFields<'_> {
                OptionFields {
                    retries: self.retries.as_ref(),
                    retry_delay: self.retry_delay.as_ref(),
                    retry_exponential_backoff: self.retry_exponential_backoff,
                    max_retry_delay: self.max_retry_delay.as_ref(),
                    execution_timeout: self.execution_timeout.as_ref(),
                    pool: self.pool.as_ref(),
                    pool_slots: self.pool_slots.as_ref(),
                    priority_weight: self.priority_weight,
                    weight_rule: self.weight_rule.as_ref(),
                    queue: self.queue.as_ref(),
                    trigger_rule: self.trigger_rule.as_ref(),
                    depends_on_past: self.depends_on_past,
                    wait_for_downstream: self.wait_for_downstream,
                    max_active_tis_per_dag: self.max_active_tis_per_dag.as_ref(),
                    allow_hosts: self.allow_hosts.as_ref(),
                    memory_limit: self.memory_limit.as_ref(),
                    max_active_tis_per_dagrun: self.max_active_tis_per_dagrun.as_ref(),
                    timeout: self.timeout.as_ref(),
                    soft_fail: self.soft_fail,
                    on_failure: self.on_failure.as_ref(),
                    on_success: self.on_success.as_ref(),
                    on_retry: self.on_retry.as_ref(),
                }
            }
        }
    };
}
option_fields!(RawDefaults);
option_fields!(RawTask);

/// Validated task options; `None` = not set at this level.
#[derive(Debug, Clone, Default)]
struct TaskOptions {
    retries: Option<u32>,
    retry_delay: Option<Duration>,
    retry_exponential_backoff: Option<bool>,
    max_retry_delay: Option<Duration>,
    execution_timeout: Option<Duration>,
    pool: Option<String>,
    pool_slots: Option<u32>,
    priority_weight: Option<i32>,
    weight_rule: Option<WeightRule>,
    queue: Option<String>,
    trigger_rule: Option<TriggerRule>,
    depends_on_past: Option<bool>,
    wait_for_downstream: Option<bool>,
    max_active_tis_per_dag: Option<u32>,
    allow_hosts: Option<Vec<String>>,
    memory_limit: Option<u64>,
    max_active_tis_per_dagrun: Option<u32>,
    timeout: Option<Duration>,
    soft_fail: Option<bool>,
    on_failure: Option<Vec<CallbackSpec>>,
    on_success: Option<Vec<CallbackSpec>>,
    on_retry: Option<Vec<CallbackSpec>>,
}

impl TaskOptions {
    /// These options, falling back to `defaults` for anything unset.
    fn or(self, defaults: &TaskOptions) -> TaskOptions {
        let d = defaults.clone();
        TaskOptions {
            retries: self.retries.or(d.retries),
            retry_delay: self.retry_delay.or(d.retry_delay),
            retry_exponential_backoff: self
                .retry_exponential_backoff
                .or(d.retry_exponential_backoff),
            max_retry_delay: self.max_retry_delay.or(d.max_retry_delay),
            execution_timeout: self.execution_timeout.or(d.execution_timeout),
            pool: self.pool.or(d.pool),
            pool_slots: self.pool_slots.or(d.pool_slots),
            priority_weight: self.priority_weight.or(d.priority_weight),
            weight_rule: self.weight_rule.or(d.weight_rule),
            queue: self.queue.or(d.queue),
            trigger_rule: self.trigger_rule.or(d.trigger_rule),
            depends_on_past: self.depends_on_past.or(d.depends_on_past),
            wait_for_downstream: self.wait_for_downstream.or(d.wait_for_downstream),
            max_active_tis_per_dag: self.max_active_tis_per_dag.or(d.max_active_tis_per_dag),
            allow_hosts: self.allow_hosts.or(d.allow_hosts),
            memory_limit: self.memory_limit.or(d.memory_limit),
            max_active_tis_per_dagrun: self
                .max_active_tis_per_dagrun
                .or(d.max_active_tis_per_dagrun),
            timeout: self.timeout.or(d.timeout),
            soft_fail: self.soft_fail.or(d.soft_fail),
            on_failure: self.on_failure.or(d.on_failure),
            on_success: self.on_success.or(d.on_success),
            on_retry: self.on_retry.or(d.on_retry),
        }
    }
}

/// A cycle among the tasks still `pending` after the topological sort, as indexes in
/// dependency order (each is upstream of the next, the last upstream of the first).
fn find_cycle(tasks: &[TaskSpec], index: &HashMap<&str, usize>, pending: &[usize]) -> Vec<usize> {
    // Every unsorted task has an unsorted upstream, so walking upstream edges from one
    // of them must revisit a task: that loop is a cycle.
    let start = (0..tasks.len()).find(|&i| pending[i] > 0).unwrap_or(0);
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut current = start;
    loop {
        if let Some(&pos) = seen.get(&current) {
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            // The walk went upstream; report it downstream-wards, starting at the task
            // that comes first in the file.
            cycle.reverse();
            let min_pos = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(p, _)| p);
            cycle.rotate_left(min_pos);
            return cycle;
        }
        seen.insert(current, path.len());
        path.push(current);
        let next = tasks[current]
            .upstream
            .iter()
            .map(|u| index[u.as_str()])
            .find(|&u| pending[u] > 0);
        match next {
            Some(n) => current = n,
            None => return path,
        }
    }
}

// ---------------------------------------------------------------------------------
// Helpers

/// Airflow's `validate_key`, restricted to ASCII.
fn validate_id(what: &str, id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    let len = id.chars().count();
    if len > MAX_ID_LEN {
        return Err(format!(
            "{what} has to be less than {MAX_ID_LEN} characters, not {len}"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!(
            "{what} `{id}` has to be made of alphanumeric characters, dashes, dots and underscores exclusively"
        ));
    }
    if id.contains("..") {
        return Err(format!(
            "{what} `{id}` must not contain consecutive dots ('..')"
        ));
    }
    Ok(())
}

/// An `allow_hosts` entry: a host name, optionally with a port, optionally with a
/// leading `*.` wildcard — not a URL.
fn validate_host_pattern(pattern: &str) -> std::result::Result<(), String> {
    let bad = pattern.is_empty()
        || pattern.contains("://")
        || pattern.contains('/')
        || pattern.chars().any(char::is_whitespace)
        || pattern.strip_prefix("*.").unwrap_or(pattern).contains('*');
    if bad {
        return Err(format!(
            "allow_hosts entry `{pattern}` must be a host such as \"api.example.com\", \"api.example.com:8443\" or \"*.example.com\""
        ));
    }
    Ok(())
}

/// A date or datetime a person typed (`--logical-date`, the API's
/// `logical_date`): as [`parse_datetime`] in UTC, with a message saying what is
/// accepted.
pub fn parse_user_datetime(text: &str) -> Result<Timestamp, String> {
    parse_datetime(text, &TimeZone::UTC).ok_or_else(|| {
        format!(
            "`{text}` is not a date (2026-01-31) or an RFC 3339 datetime (2026-01-31T02:00:00Z)"
        )
    })
}

/// A date, an RFC 3339 datetime, or a datetime without offset (in `tz`).
pub fn parse_datetime(text: &str, tz: &TimeZone) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt.to_zoned(tz.clone()).ok().map(|z| z.timestamp());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date.to_zoned(tz.clone()).ok().map(|z| z.timestamp());
    }
    None
}

fn file_stem(fileloc: &str) -> &str {
    let name = fileloc.rsplit(['/', '\\']).next().unwrap_or(fileloc);
    name.strip_suffix(".toml").unwrap_or(name)
}

/// 1-based line and character column of byte `offset`.
fn line_col(source: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// The key of a `key = value` line containing byte `offset`, if it is one.
fn key_on_line(source: &str, offset: usize) -> Option<String> {
    let offset = offset.min(source.len());
    let start = source.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = source[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    simple.then(|| key.to_owned())
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a message
/// that suggests the closest known key.
fn improve_unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let mut out = format!("unknown key `{field}`");
    if let Some(close) = closest(field, expected.iter().copied()) {
        out.push_str(&format!("; did you mean `{close}`?"));
    } else if !expected.is_empty() {
        out.push_str(&format!("; expected one of: {}", expected.join(", ")));
    }
    Some(out)
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn toml_to_json(value: &toml::Value, path: &str) -> std::result::Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{path}: {f} is not representable in JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        // JSON has no datetime: keep the TOML spelling, which is RFC 3339.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{path}[{i}]")))
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(toml_table_to_json(t, path)?),
    })
}

fn toml_table_to_json(
    table: &toml::Table,
    path: &str,
) -> std::result::Result<Map<String, Value>, String> {
    table
        .iter()
        .map(|(k, v)| Ok((k.clone(), toml_to_json(v, &format!("{path}.{k}"))?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A catalog with three operators and fake digests.
    struct Catalog;

    impl OperatorCatalog for Catalog {
        fn resolve(&self, reference: &str) -> std::result::Result<ResolvedOperator, String> {
            let (name, version) = match reference.split_once('@') {
                Some((n, v)) => (n, Some(v)),
                None => (reference, None),
            };
            let schema = match name {
                "echo" => json!({"type": "object", "properties": {"message": {"type": "string"}},
                                 "required": ["message"], "additionalProperties": false}),
                "http" => json!({"type": "object", "properties": {
                                    "url": {"type": "string", "minLength": 1},
                                    "method": {"enum": ["GET", "POST"]}},
                                 "required": ["url"], "additionalProperties": false}),
                "sleep" => {
                    json!({"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0}}})
                }
                _ => {
                    return Err(format!(
                        "unknown operator `{name}`; installed: echo, http, sleep"
                    ));
                }
            };
            if version.is_some_and(|v| v != "1.0.0" && !v.starts_with("sha256:")) {
                return Err(format!(
                    "operator `{name}` has no version `{}`; installed: 1.0.0",
                    version.unwrap_or_default()
                ));
            }
            Ok(ResolvedOperator {
                name: name.to_owned(),
                version: "1.0.0".to_owned(),
                digest: format!("sha256:{}", hex::encode(Sha256::digest(name.as_bytes()))),
                params_schema: schema,
            })
        }

        fn max_memory_bytes(&self) -> u64 {
            1 << 32
        }
    }

    fn parse(source: &str) -> Result<DagSpec> {
        parse_dag_file("acme", "etl/example_etl.toml", source, &Catalog)
    }

    /// The message and line of the import error for `source`.
    fn error(source: &str) -> (String, Option<u32>) {
        let e = parse(source).expect_err("the file should not import");
        assert_eq!(e.filename, "etl/example_etl.toml");
        (e.message, e.line)
    }

    const MINIMAL: &str = "[tasks.only]\noperator = \"echo\"\nparams = { message = \"hi\" }\n";

    const FULL: &str = r##"id = "example_etl"
description = "Daily ETL"
doc = "# Example"
schedule = "0 2 * * *"
start_date = "2026-01-01"
end_date = "2027-01-01T00:00:00Z"
timezone = "Europe/Berlin"
catchup = true
max_active_runs = 3
max_active_tasks = 8
dagrun_timeout = "2h"
max_consecutive_failed_dag_runs = 5
tags = ["etl", "daily"]
owner = "data-team"
params = { region = "eu", regions = ["eu", "us"], limit = 10 }

[defaults]
retries = 2
retry_delay = "30s"
retry_exponential_backoff = true
max_retry_delay = "10m"
execution_timeout = "5m"
pool = "etl_pool"
priority_weight = 2
queue = "fast"
memory_limit = "64MiB"

[tasks.transform]
operator = "echo"
upstream = ["extract"]
trigger_rule = "all_done"
params = { message = "{{ ti.xcom_pull(task_ids='extract') }} for {{ ds }}" }
retries = 0
doc = "Transforms"

[tasks.extract]
operator = "http@1.0.0"
params = { url = "https://example.com/data.json", method = "GET" }
allow_hosts = ["example.com", "*.cdn.example.com:443"]
pool_slots = 2
weight_rule = "absolute"
max_active_tis_per_dag = 1
depends_on_past = true
execution_timeout = 60

[tasks.each_region]
operator = "echo"
upstream = ["transform"]
expand = { message = "{{ params.regions }}" }
wait_for_downstream = true

[tasks.each_literal]
operator = "echo"
upstream = ["transform"]
expand = { message = ["a", "b"] }
"##;

    #[test]
    fn a_full_file_parses_with_every_key() {
        let dag = parse(FULL).unwrap();
        assert_eq!(dag.dag_id, "example_etl");
        assert_eq!(dag.tenant, "acme");
        assert_eq!(dag.fileloc, "etl/example_etl.toml");
        assert_eq!(dag.description.as_deref(), Some("Daily ETL"));
        assert_eq!(dag.doc.as_deref(), Some("# Example"));
        assert_eq!(dag.schedule_str.as_deref(), Some("0 2 * * *"));
        assert!(matches!(dag.schedule, Schedule::Cron(_)));
        // A plain date is midnight in the DAG's time zone (CET = UTC+1).
        assert_eq!(
            dag.start_date,
            Some("2025-12-31T23:00:00Z".parse().unwrap())
        );
        assert_eq!(dag.end_date, Some("2027-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(dag.timezone, "Europe/Berlin");
        assert!(dag.catchup);
        assert_eq!((dag.max_active_runs, dag.max_active_tasks), (3, 8));
        assert_eq!(dag.dagrun_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(dag.max_consecutive_failed_dag_runs, Some(5));
        assert_eq!(dag.tags, ["etl", "daily"]);
        assert_eq!(dag.owner, "data-team");
        assert_eq!(
            Value::Object(dag.params.clone()),
            json!({"region": "eu", "regions": ["eu", "us"], "limit": 10})
        );
        assert_eq!(dag.version, hex::encode(Sha256::digest(FULL.as_bytes())));
        assert_eq!(dag.source, FULL);

        // Topological order; ready tasks in file order.
        let ids: Vec<&str> = dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["extract", "transform", "each_region", "each_literal"]);

        let extract = dag.task("extract").unwrap();
        assert_eq!(extract.operator, "http@1.0.0");
        assert_eq!(
            (
                extract.operator_name.as_str(),
                extract.operator_version.as_str()
            ),
            ("http", "1.0.0")
        );
        assert!(extract.operator_digest.starts_with("sha256:"));
        assert_eq!(
            extract.params,
            json!({"url": "https://example.com/data.json", "method": "GET"})
        );
        assert_eq!(
            extract.allow_hosts,
            ["example.com", "*.cdn.example.com:443"]
        );
        assert_eq!(extract.pool_slots, 2);
        assert_eq!(extract.weight_rule, WeightRule::Absolute);
        assert_eq!(extract.max_active_tis_per_dag, Some(1));
        assert!(extract.depends_on_past && !extract.wait_for_downstream);
        assert_eq!(extract.execution_timeout, Some(Duration::from_secs(60)));
        assert_eq!(extract.downstream, ["transform"]);
        // Inherited from [defaults].
        assert_eq!(extract.retries, 2);
        assert_eq!(extract.retry_delay, Duration::from_secs(30));
        assert!(extract.retry_exponential_backoff);
        assert_eq!(extract.max_retry_delay, Some(Duration::from_secs(600)));
        assert_eq!(extract.pool, "etl_pool");
        assert_eq!(extract.priority_weight, 2);
        assert_eq!(extract.queue, "fast");
        assert_eq!(extract.memory_limit, Some(64 << 20));
        assert_eq!(extract.trigger_rule, TriggerRule::AllSuccess);

        let transform = dag.task("transform").unwrap();
        assert_eq!(transform.retries, 0, "a task overrides [defaults]");
        assert_eq!(transform.execution_timeout, Some(Duration::from_secs(300)));
        assert_eq!(transform.trigger_rule, TriggerRule::AllDone);
        assert_eq!(transform.upstream, ["extract"]);
        assert_eq!(transform.downstream, ["each_region", "each_literal"]);
        assert_eq!(transform.doc.as_deref(), Some("Transforms"));

        let mapped = dag.task("each_region").unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(
            mapped.expand.clone().map(Value::Object),
            Some(json!({"message": "{{ params.regions }}"}))
        );
        assert_eq!(mapped.params, json!({}));
        assert!(
            mapped.wait_for_downstream && mapped.depends_on_past,
            "wait_for_downstream implies depends_on_past"
        );

        let leaves: Vec<&str> = dag.leaves().map(|t| t.task_id.as_str()).collect();
        assert_eq!(leaves, ["each_region", "each_literal"]);
        let roots: Vec<&str> = dag.roots().map(|t| t.task_id.as_str()).collect();
        assert_eq!(roots, ["extract"]);
        let ctx = dag.schedule_context();
        assert_eq!(ctx.timezone.iana_name(), Some("Europe/Berlin"));
        assert!(ctx.catchup);
    }

    #[test]
    fn round_trips_through_json() {
        let dag = parse(FULL).unwrap();
        let json = serde_json::to_string(&dag).unwrap();
        let back: DagSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, dag);
        // The task index is rebuilt on demand, not stored.
        assert!(!json.contains("task_index"));
        assert_eq!(back.task("each_region").unwrap().task_id, "each_region");
        assert!(back.task("nope").is_none());
        // Durations are stored as seconds.
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["dagrun_timeout"], json!(7200));
        assert_eq!(value["tasks"][0]["retry_delay"], json!(30));
        assert_eq!(value["schedule"], json!("0 2 * * *"));
    }

    #[test]
    fn defaults_for_a_minimal_file() {
        let dag = parse(MINIMAL).unwrap();
        assert_eq!(dag.dag_id, "example_etl", "the file stem");
        assert_eq!(dag.schedule, Schedule::Manual);
        assert_eq!(dag.timezone, "UTC");
        assert!(!dag.catchup);
        assert_eq!((dag.max_active_runs, dag.max_active_tasks), (16, 16));
        assert_eq!(dag.owner, "aileron");
        let t = &dag.tasks[0];
        assert_eq!(t.retries, 0);
        assert_eq!(t.retry_delay, Duration::from_secs(300));
        assert_eq!(t.pool, "default_pool");
        assert_eq!(t.pool_slots, 1);
        assert_eq!(t.priority_weight, 1);
        assert_eq!(t.weight_rule, WeightRule::Downstream);
        assert_eq!(t.queue, "default");
        assert_eq!(t.trigger_rule, TriggerRule::AllSuccess);
        assert!(t.allow_hosts.is_empty() && t.memory_limit.is_none() && t.expand.is_none());
    }

    #[test]
    fn dates_and_datetimes() {
        let parse_start = |value: &str| {
            let src = format!("start_date = {value}\ntimezone = \"Europe/Berlin\"\n{MINIMAL}");
            parse(&src).unwrap().start_date.unwrap().to_string()
        };
        assert_eq!(parse_start("\"2026-07-01\""), "2026-06-30T22:00:00Z");
        assert_eq!(
            parse_start("\"2026-07-01T06:00:00Z\""),
            "2026-07-01T06:00:00Z"
        );
        assert_eq!(
            parse_start("\"2026-07-01T06:00:00+02:00\""),
            "2026-07-01T04:00:00Z"
        );
        assert_eq!(
            parse_start("\"2026-07-01T06:00:00\""),
            "2026-07-01T04:00:00Z"
        );
        // Native TOML dates and datetimes work too.
        assert_eq!(parse_start("2026-07-01"), "2026-06-30T22:00:00Z");
        assert_eq!(parse_start("2026-07-01T06:00:00Z"), "2026-07-01T06:00:00Z");
    }

    #[test]
    fn unknown_keys_are_import_errors() {
        let src = "[tasks.a]\noperator = \"echo\"\nparams = { message = \"x\" }\n\n[tasks.b]\noperator = \"echo\"\nupstreams = [\"a\"]\n";
        assert_eq!(
            error(src),
            (
                "unknown key `upstreams`; did you mean `upstream`?".to_owned(),
                Some(7)
            )
        );
        let (msg, line) = error(&format!("shedule = \"@daily\"\n{MINIMAL}"));
        assert_eq!(
            (msg.as_str(), line),
            ("unknown key `shedule`; did you mean `schedule`?", Some(1))
        );
        let (msg, _) = error(&format!("[defaults]\nzzz = 1\n{MINIMAL}"));
        assert!(
            msg.starts_with("unknown key `zzz`; expected one of: retries, retry_delay"),
            "{msg}"
        );
    }

    #[test]
    fn toml_syntax_and_type_errors_have_lines() {
        let (msg, line) = error("id = \"x\n[tasks.a]\n");
        assert_eq!(line, Some(1));
        assert!(!msg.is_empty());
        let (msg, line) = error("[tasks.a]\noperator = 3\n");
        assert_eq!(line, Some(2));
        assert!(
            msg.starts_with("`operator`: invalid type: integer `3`"),
            "{msg}"
        );
        let (msg, line) = error("[tasks.a]\nparams = { message = \"x\" }\n");
        assert_eq!((msg.as_str(), line), ("missing field `operator`", Some(1)));
    }

    #[test]
    fn bad_ids() {
        let (msg, line) = error(&format!("id = \"my dag\"\n{MINIMAL}"));
        assert_eq!(
            (msg.as_str(), line),
            (
                "dag id `my dag` has to be made of alphanumeric characters, dashes, dots and underscores exclusively",
                Some(1)
            )
        );
        let (msg, _) = error(&format!("id = \"a..b\"\n{MINIMAL}"));
        assert_eq!(
            msg,
            "dag id `a..b` must not contain consecutive dots ('..')"
        );
        let (msg, _) = error(&format!("id = \"{}\"\n{MINIMAL}", "x".repeat(251)));
        assert_eq!(msg, "dag id has to be less than 250 characters, not 251");
        let e = parse_dag_file("acme", "bad name.toml", MINIMAL, &Catalog).unwrap_err();
        assert!(
            e.message.contains("it comes from the file name"),
            "{}",
            e.message
        );
        assert_eq!(e.to_string(), format!("bad name.toml: {}", e.message));
        let (msg, line) = error("[tasks.\"a b\"]\noperator = \"echo\"\n");
        assert_eq!(
            (msg.as_str(), line),
            (
                "task id `a b` has to be made of alphanumeric characters, dashes, dots and underscores exclusively",
                Some(1)
            )
        );
    }

    #[test]
    fn graph_errors() {
        let cycle = "[tasks.a]\noperator = \"sleep\"\nupstream = [\"c\"]\n\n[tasks.b]\noperator = \"sleep\"\nupstream = [\"a\"]\n\n[tasks.c]\noperator = \"sleep\"\nupstream = [\"b\"]\n\n[tasks.d]\noperator = \"sleep\"\n";
        assert_eq!(
            error(cycle),
            ("cycle detected: a -> b -> c -> a".to_owned(), Some(1))
        );
        let unknown = "[tasks.extract]\noperator = \"sleep\"\n\n[tasks.load]\noperator = \"sleep\"\nupstream = [\"extract\", \"extrat\"]\n";
        assert_eq!(
            error(unknown),
            (
                "task `load`: unknown upstream task `extrat`; did you mean `extract`?".to_owned(),
                Some(6)
            )
        );
        let own = "[tasks.a]\noperator = \"sleep\"\nupstream = [\"a\"]\n";
        assert_eq!(
            error(own),
            ("task `a` cannot depend on itself".to_owned(), Some(3))
        );
        assert_eq!(
            error("id = \"x\"\n"),
            (
                "the DAG has no tasks: add at least one [tasks.<task_id>] table".to_owned(),
                None
            )
        );
    }

    #[test]
    fn operator_errors() {
        let (msg, line) = error("\n[tasks.a]\noperator = \"htp\"\n");
        assert_eq!(
            (msg.as_str(), line),
            (
                "task `a`: unknown operator `htp`; installed: echo, http, sleep",
                Some(3)
            )
        );
        let (msg, _) = error("[tasks.a]\noperator = \"http@9.9.9\"\nparams = { url = \"x\" }\n");
        assert_eq!(
            msg,
            "task `a`: operator `http` has no version `9.9.9`; installed: 1.0.0"
        );
    }

    #[test]
    fn schedule_timezone_and_date_errors() {
        let (msg, line) = error(&format!("schedule = \"0 25 * * *\"\n{MINIMAL}"));
        assert!(
            msg.starts_with("invalid cron expression `0 25 * * *`"),
            "{msg}"
        );
        assert_eq!(line, Some(1));
        let (msg, _) = error(&format!("schedule = \"@fortnightly\"\n{MINIMAL}"));
        assert!(
            msg.starts_with("unknown schedule preset `@fortnightly`"),
            "{msg}"
        );
        let (msg, line) = error(&format!(
            "description = \"x\"\ntimezone = \"Mars/Olympus\"\n{MINIMAL}"
        ));
        assert_eq!(
            (msg.as_str(), line),
            (
                "unknown time zone `Mars/Olympus`; expected an IANA name such as \"UTC\" or \"Europe/Berlin\"",
                Some(2)
            )
        );
        let (msg, line) = error(&format!("start_date = \"2026-13-01\"\n{MINIMAL}"));
        assert_eq!(line, Some(1));
        assert!(
            msg.starts_with("invalid start_date `2026-13-01`: expected a date"),
            "{msg}"
        );
        let (msg, line) = error(&format!(
            "start_date = \"2026-02-01\"\nend_date = \"2026-01-01\"\n{MINIMAL}"
        ));
        assert_eq!(
            (msg.as_str(), line),
            (
                "end_date 2026-01-01T00:00:00Z is before start_date 2026-02-01T00:00:00Z",
                Some(2)
            )
        );
        let (msg, _) = error(&format!("schedule = \"@daily\"\ncatchup = true\n{MINIMAL}"));
        assert_eq!(msg, "catchup = true needs a start_date to catch up from");
    }

    #[test]
    fn option_errors() {
        let task = |extra: &str| format!("[tasks.a]\noperator = \"sleep\"\n{extra}\n");
        assert_eq!(
            error(&task("trigger_rule = \"all_sucess\"")).0,
            "unknown trigger rule `all_sucess`; expected one of: all_success, all_failed, all_done, all_done_min_one_success, all_skipped, one_success, one_failed, one_done, none_failed, none_failed_min_one_success, none_skipped, always"
        );
        assert_eq!(error(&task("trigger_rule = \"x\"")).1, Some(3));
        let (msg, line) = error(&task("retry_delay = \"5 minutes\""));
        assert_eq!(line, Some(3));
        assert!(
            msg.starts_with("retry_delay: invalid duration `5 minutes`"),
            "{msg}"
        );
        assert_eq!(
            error(&task("retry_delay = -5")).0,
            "retry_delay must not be negative"
        );
        assert_eq!(
            error(&task("execution_timeout = \"0s\"")).0,
            "execution_timeout must be greater than zero"
        );
        assert_eq!(
            error(&task("pool_slots = 0")).0,
            "pool_slots cannot be less than 1"
        );
        assert_eq!(
            error(&task("weight_rule = \"sideways\"")).0,
            "unknown weight_rule `sideways`; expected one of: downstream, upstream, absolute"
        );
        assert_eq!(
            error(&task("memory_limit = \"100GiB\"")),
            (
                "memory_limit of 100GiB is above this host's ceiling of 4GiB".to_owned(),
                Some(3)
            )
        );
        assert!(
            error(&task("memory_limit = \"lots\""))
                .0
                .starts_with("memory_limit: invalid size `lots`")
        );
        assert_eq!(
            error(&task("allow_hosts = [\"https://example.com/x\"]")).0,
            "allow_hosts entry `https://example.com/x` must be a host such as \"api.example.com\", \"api.example.com:8443\" or \"*.example.com\""
        );
        assert_eq!(
            error(&format!("max_active_runs = 0\n{MINIMAL}")).0,
            "max_active_runs must be at least 1"
        );
        let (msg, line) = error(&format!("[defaults]\nretry_delay = \"soon\"\n{MINIMAL}"));
        assert_eq!(line, Some(2));
        assert!(msg.starts_with("retry_delay: invalid duration `soon`"));
    }

    #[test]
    fn params_are_checked_against_the_operator_schema() {
        let (msg, line) =
            error("[tasks.a]\noperator = \"sleep\"\nparams = { seconds = \"five\" }\n");
        assert_eq!(
            (msg.as_str(), line),
            (
                "task `a`: params.seconds: expected number, got string",
                Some(3)
            )
        );
        let (msg, line) = error("[tasks.a]\noperator = \"http\"\n");
        assert_eq!(
            (msg.as_str(), line),
            ("task `a`: params.url: is required", Some(1))
        );
        let (msg, _) =
            error("[tasks.a]\noperator = \"http\"\nparams = { url = \"x\", methd = \"GET\" }\n");
        assert_eq!(
            msg,
            "task `a`: params.methd: unknown property; expected one of: method, url"
        );
        // Templates are rendered at run time: their type is not checked now.
        parse("[tasks.a]\noperator = \"sleep\"\nparams = { seconds = \"{{ params.delay }}\" }\n")
            .unwrap();
        // [tasks.x.params] sub-tables work too.
        let dag = parse("[tasks.a]\noperator = \"http\"\n[tasks.a.params]\nurl = \"https://x\"\n")
            .unwrap();
        assert_eq!(dag.tasks[0].params, json!({"url": "https://x"}));
    }

    #[test]
    fn expand_is_checked() {
        let t = |expand: &str| format!("[tasks.m]\noperator = \"echo\"\nexpand = {expand}\n");
        // A literal list is checked element by element.
        assert_eq!(
            error(&t("{ message = [\"ok\", 3] }")),
            (
                "task `m`: expand.message[1]: expected string, got integer".to_owned(),
                Some(3)
            )
        );
        assert_eq!(
            error(&t("{ mesage = [\"a\"] }")).0,
            "task `m`: expand.mesage: unknown param; expected one of: message"
        );
        assert_eq!(
            error(&t("{ message = \"not a template\" }")).0,
            "task `m`: expand.message must be a list or a template that renders to a list, not a string"
        );
        assert_eq!(
            error(&t("{}")).0,
            "task `m`: expand must name at least one param to map over"
        );
        assert_eq!(
            error("[tasks.m]\noperator = \"echo\"\nparams = { message = \"x\" }\nexpand = { message = [\"a\"] }\n").0,
            "task `m`: `message` is set in both params and expand; set it in one of them"
        );
        // An expand key satisfies `required`.
        parse(&t("{ message = [\"a\", \"b\"] }")).unwrap();
        parse(&t("{ message = \"{{ params.regions }}\" }")).unwrap();
    }

    #[test]
    fn topological_order_is_stable() {
        let src = "[tasks.b]\noperator = \"sleep\"\nupstream = [\"a\"]\n[tasks.a]\noperator = \"sleep\"\n[tasks.c]\noperator = \"sleep\"\n[tasks.d]\noperator = \"sleep\"\nupstream = [\"b\", \"c\", \"b\"]\n";
        let dag = parse(src).unwrap();
        let ids: Vec<&str> = dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(
            dag.task("d").unwrap().upstream,
            ["b", "c"],
            "a repeated upstream is kept once"
        );
        assert_eq!(dag.task("a").unwrap().downstream, ["b"]);
        assert_eq!(dag.task("b").unwrap().downstream, ["d"]);
    }

    #[test]
    fn priority_weights_follow_the_weight_rule() {
        let src = "[tasks.a]\noperator = \"sleep\"\npriority_weight = 1\n\
                   [tasks.b]\noperator = \"sleep\"\nupstream = [\"a\"]\npriority_weight = 10\n\
                   [tasks.c]\noperator = \"sleep\"\nupstream = [\"a\"]\npriority_weight = 100\nweight_rule = \"upstream\"\n\
                   [tasks.d]\noperator = \"sleep\"\nupstream = [\"b\", \"c\"]\npriority_weight = 1000\nweight_rule = \"absolute\"\n";
        let dag = parse(src).unwrap();
        assert_eq!(dag.priority_weight_total("a"), 1111);
        assert_eq!(dag.priority_weight_total("b"), 1010);
        assert_eq!(dag.priority_weight_total("c"), 101);
        assert_eq!(dag.priority_weight_total("d"), 1000);
    }

    #[test]
    fn retry_delays() {
        let mut task = parse(MINIMAL).unwrap().tasks.remove(0);
        task.retry_delay = Duration::from_secs(30);
        assert_eq!(task.retry_delay_for(1), Duration::from_secs(30));
        assert_eq!(task.retry_delay_for(5), Duration::from_secs(30));
        task.retry_exponential_backoff = true;
        let secs: Vec<u64> = (1..=6).map(|n| task.retry_delay_for(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960]);
        task.max_retry_delay = Some(Duration::from_secs(200));
        assert_eq!(task.retry_delay_for(4), Duration::from_secs(200));
        task.max_retry_delay = None;
        assert_eq!(task.retry_delay_for(40), MAX_RETRY_DELAY);
        task.retry_delay = Duration::ZERO;
        assert_eq!(
            task.retry_delay_for(1),
            Duration::from_secs(1),
            "at least a second"
        );
    }

    #[test]
    fn typed_params_validate_defaults_and_conf() {
        let dag = parse(
            r#"
[params]
region = "eu"
[params.count]
default = 3
type = "integer"
minimum = 1
description = "How many"
[params.target]
type = "string"
enum = ["a", "b"]
[tasks.only]
operator = "echo"
params = { message = "hi" }
"#,
        )
        .unwrap();
        assert_eq!(dag.params.get("count"), Some(&serde_json::json!(3)));
        assert!(!dag.params.contains_key("target"));
        assert_eq!(
            dag.param_specs["count"].description.as_deref(),
            Some("How many")
        );
        let conf = |v: serde_json::Value| v.as_object().unwrap().clone();
        let ok = dag
            .resolve_params(&conf(serde_json::json!({"target": "a", "extra": 1})))
            .unwrap();
        assert_eq!(ok["count"], 3);
        assert_eq!(ok["extra"], 1);
        let err = dag.resolve_params(&Map::new()).unwrap_err();
        assert!(err.contains("param `target` is required"), "{err}");
        let err = dag
            .resolve_params(&conf(serde_json::json!({"target": "c", "count": 0})))
            .unwrap_err();
        assert!(
            err.contains("params.count") && err.contains("params.target"),
            "{err}"
        );
    }

    #[test]
    fn typed_param_errors() {
        let (m, _) = error(
            "schedule = \"@daily\"\nstart_date = \"2026-01-01\"\n[params.n]\ntype = \"integer\"\n[tasks.only]\noperator = \"echo\"\n",
        );
        assert!(m.contains("param `n` has no default"), "{m}");
        let (m, _) = error(
            "[params.n]\ntype = \"integer\"\ndefault = \"x\"\n[tasks.only]\noperator = \"echo\"\n",
        );
        assert!(m.contains("the default of param `n` does not match"), "{m}");
        let (m, _) =
            error("[params.n]\ntype = \"int\"\ndefault = 1\n[tasks.only]\noperator = \"echo\"\n");
        assert!(m.contains("type must be one of"), "{m}");
    }

    #[test]
    fn callbacks_sensor_and_limit_keys() {
        let dag = parse(
            r#"
on_failure = { operator = "echo", params = { message = "run {{ run_id }} failed: {{ reason }}" } }
on_success = [{ operator = "sleep" }, { operator = "echo", params = { message = "ok" } }]
[defaults]
on_retry = { operator = "echo", params = { message = "retrying" } }
[tasks.wait]
operator = "sleep"
timeout = "10m"
soft_fail = true
max_active_tis_per_dagrun = 2
on_failure = { operator = "echo", params = { message = "{{ ti.task_id }}" } }
"#,
        )
        .unwrap();
        assert_eq!(dag.callbacks.on_failure.len(), 1);
        assert_eq!(dag.callbacks.on_success.len(), 2);
        assert_eq!(dag.callbacks.on_success[0].operator_name, "sleep");
        let t = dag.task("wait").unwrap();
        assert_eq!(t.timeout, Some(Duration::from_secs(600)));
        assert!(t.soft_fail);
        assert_eq!(t.max_active_tis_per_dagrun, Some(2));
        assert_eq!(t.callbacks.on_retry.len(), 1, "from [defaults]");
        assert_eq!(t.callbacks.on_failure[0].operator_name, "echo");
        // It survives the metastore's JSON.
        let back: DagSpec = serde_json::from_str(&serde_json::to_string(&dag).unwrap()).unwrap();
        assert_eq!(back, dag);

        let (m, _) = error("on_failure = \"echo\"\n[tasks.only]\noperator = \"echo\"\n");
        assert!(m.contains("on_failure must be a table"), "{m}");
        let (m, _) =
            error("on_failure = { operator = \"nope\" }\n[tasks.only]\noperator = \"echo\"\n");
        assert!(m.contains("on_failure"), "{m}");
        let (m, _) = error(
            "on_failure = { operator = \"echo\", when = 1 }\n[tasks.only]\noperator = \"echo\"\n",
        );
        assert!(m.contains("unknown key `when`"), "{m}");
        let (m, _) =
            error("on_retry = { operator = \"echo\" }\n[tasks.only]\noperator = \"echo\"\n");
        assert!(m.contains("on_retry"), "{m}");
    }

    #[test]
    fn import_error_display() {
        let e = ImportError {
            filename: "a.toml".into(),
            line: Some(3),
            column: Some(1),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "a.toml:3: boom");
        assert_eq!(
            line_col("ab\ncd\néx", 8),
            (3, 2),
            "columns count characters"
        );
    }
}
