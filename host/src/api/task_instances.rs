//! TaskInstances: list (per run, across runs and DAGs with `~`), get, tries, logs,
//! clear and set state.

use super::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, Unprocessable};
use super::paths::{AnyRunPath, DagPath, TaskPath, TryPath};
use super::query::ApiQuery;
use super::states::{TaskState, parse_ti_states, task_state};
use super::{
    ANY, ApiError, ApiResult, ApiState, JsonBody, Specs, load_dag, load_run, load_ti, page_size,
    paginate,
};
use crate::metastore::{DagRun, Metastore, TaskInstance as TiRecord, TryRecord};
use crate::scheduler::ClearOptions;
use aileron_model::TaskInstanceState;
use aileron_model::TiKey;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstance {
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    /// -1 for a task that is not mapped.
    pub map_index: i64,
    /// The logical date of its DagRun.
    pub logical_date: Timestamp,
    /// `null` until the scheduler has looked at the TaskInstance.
    pub state: Option<TaskState>,
    /// The current or latest try; 0 before the first.
    pub try_number: u32,
    /// Airflow's meaning: the retries allowed, so the TaskInstance may run until
    /// its try number passes `max_tries + 1`. Raised when it is cleared.
    pub max_tries: u32,
    pub operator: String,
    /// `sha256:` digest of the operator component.
    pub plugin_digest: String,
    pub pool: String,
    pub pool_slots: u32,
    pub queue: String,
    pub priority_weight: i32,
    pub queued_when: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Seconds.
    pub duration: Option<f64>,
    pub hostname: String,
    /// When an `up_for_retry` or `up_for_reschedule` TaskInstance may run again.
    pub next_try_at: Option<Timestamp>,
    /// For a mapped TaskInstance, the values it got from its task's `expand`
    /// (merged over the task's params when it runs); `null` otherwise.
    #[schema(value_type = Option<Object>)]
    pub mapped_params: Option<Value>,
    /// The params as rendered for the current or latest try (Airflow's rendered
    /// fields); empty before the first try (an object always, as Airflow's
    /// clients expect).
    #[schema(value_type = Object)]
    pub rendered_fields: Value,
    /// The numbered DAG version its run ran, for `/api/v2`'s `dag_version`.
    #[serde(skip)]
    pub dag_version: Option<crate::metastore::DagVersionInfo>,
}

/// A TaskInstance with every try it made.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceDetail {
    #[serde(flatten)]
    pub task_instance: TaskInstance,
    pub tries: Vec<TaskInstanceTry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceCollection {
    pub task_instances: Vec<TaskInstance>,
    pub total_entries: usize,
}

/// One try of a TaskInstance (Airflow's TaskInstanceHistory).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceTry {
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub try_number: u32,
    /// As on the TaskInstance: the retries allowed (Airflow's meaning).
    pub max_tries: u32,
    /// The state the try ended in; the TaskInstance's state for the running try.
    pub state: Option<TaskState>,
    pub start_date: Option<Timestamp>,
    /// `null` while the try runs.
    pub end_date: Option<Timestamp>,
    pub duration: Option<f64>,
    pub operator: String,
    pub plugin_digest: String,
    pub hostname: String,
    /// Why the try failed, when it did.
    pub error: Option<String>,
    /// Guest CPU seconds, metered in the sandbox; `null` while the try runs
    /// and for a try that never ran in one.
    pub cpu_seconds: Option<f64>,
    /// Seconds the try waited on host calls (XCom, variables, connections,
    /// outbound HTTP).
    pub host_call_seconds: Option<f64>,
    /// The most linear memory the try held.
    pub peak_memory_bytes: Option<u64>,
}

/// Tries listed under the name Airflow gives them.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceTryCollection {
    pub task_instances: Vec<TaskInstanceTry>,
    pub total_entries: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Log {
    /// The log from `offset` (as asked) to its current end.
    pub content: String,
    /// Byte length of the whole log so far: pass it as `offset` to read only what
    /// comes next.
    pub offset: usize,
    /// True while the try runs and the log may still grow.
    pub running: bool,
    /// `offset` as Airflow 2's clients carry it: pass it back as `token`.
    pub continuation_token: String,
}

pub fn task_instance(
    ti: &TiRecord,
    specs: &mut Specs<'_>,
    run: &DagRun,
) -> ApiResult<TaskInstance> {
    let spec = specs.get(&ti.tenant, &ti.dag_id, &run.dag_version)?;
    let task = spec.as_deref().and_then(|s| s.task(&ti.task_id));
    Ok(TaskInstance {
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        dag_run_id: ti.run_id.clone(),
        map_index: ti.map_index,
        logical_date: run.logical_date,
        state: task_state(ti.state),
        try_number: ti.try_number,
        max_tries: airflow_max_tries(ti),
        operator: ti.operator.clone(),
        plugin_digest: ti.plugin_digest.clone(),
        // A run keeps the spec it was created with, so the task is always there;
        // the fallbacks are the DAG-file defaults.
        pool: task.map_or_else(|| "default_pool".to_owned(), |t| t.pool.clone()),
        pool_slots: task.map_or(1, |t| t.pool_slots),
        queue: task.map_or_else(|| "default".to_owned(), |t| t.queue.clone()),
        priority_weight: task.map_or(1, |t| t.priority_weight),
        queued_when: ti.queued_at,
        start_date: ti.start_date,
        end_date: ti.end_date,
        duration: ti.duration,
        hostname: ti.hostname.clone(),
        next_try_at: ti.next_try_at,
        mapped_params: ti.rendered_params.clone(),
        rendered_fields: ti
            .rendered_fields
            .clone()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
        dag_version: specs.number(&ti.tenant, &ti.dag_id, &run.dag_version)?,
    })
}

/// API forms of TaskInstances the scheduler returned (cleared or changed ones).
pub fn task_instances(specs: &mut Specs<'_>, tis: &[TiRecord]) -> ApiResult<Vec<TaskInstance>> {
    let mut runs: std::collections::HashMap<(String, String), DagRun> = Default::default();
    let mut out = Vec::with_capacity(tis.len());
    for ti in tis {
        let k = (ti.dag_id.clone(), ti.run_id.clone());
        if !runs.contains_key(&k) {
            let Some(run) = specs
                .metastore
                .dag_run(&ti.tenant, &ti.dag_id, &ti.run_id)?
            else {
                continue;
            };
            runs.insert(k.clone(), run);
        }
        out.push(task_instance(ti, specs, &runs[&k])?);
    }
    Ok(out)
}

/// `max_tries` as Airflow reports it: the retries allowed. The metastore keeps the
/// number of tries allowed, one more.
fn airflow_max_tries(ti: &TiRecord) -> u32 {
    ti.max_tries.saturating_sub(1)
}

fn tries(ti: &TiRecord) -> Vec<TaskInstanceTry> {
    let entry = |t: &TryRecord| TaskInstanceTry {
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        dag_run_id: ti.run_id.clone(),
        map_index: ti.map_index,
        try_number: t.try_number,
        max_tries: airflow_max_tries(ti),
        state: task_state(t.state),
        start_date: Some(t.start_date),
        end_date: Some(t.end_date),
        duration: Some(t.duration),
        operator: ti.operator.clone(),
        plugin_digest: t.plugin_digest.clone(),
        hostname: t.hostname.clone(),
        error: t.error.clone(),
        cpu_seconds: t.usage.map(|u| u.cpu_seconds),
        host_call_seconds: t.usage.map(|u| u.host_call_seconds),
        peak_memory_bytes: t.usage.map(|u| u.peak_memory_bytes),
    };
    let mut out: Vec<TaskInstanceTry> = ti.tries.iter().map(entry).collect();
    // The try in progress has no record yet: it is the TaskInstance itself.
    let recorded = ti.tries.last().map_or(0, |t| t.try_number);
    if ti.try_number > recorded
        && matches!(
            ti.state,
            TaskInstanceState::Queued | TaskInstanceState::Running
        )
    {
        out.push(TaskInstanceTry {
            task_id: ti.task_id.clone(),
            dag_id: ti.dag_id.clone(),
            dag_run_id: ti.run_id.clone(),
            map_index: ti.map_index,
            try_number: ti.try_number,
            max_tries: airflow_max_tries(ti),
            state: task_state(ti.state),
            start_date: ti.start_date,
            end_date: None,
            duration: None,
            operator: ti.operator.clone(),
            plugin_digest: ti.plugin_digest.clone(),
            hostname: ti.hostname.clone(),
            error: None,
            cpu_seconds: None,
            host_call_seconds: None,
            peak_memory_bytes: None,
        });
    }
    out
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TiFilter {
    /// Page size (default 100).
    pub(crate) limit: Option<usize>,
    /// Entries to skip.
    pub(crate) offset: Option<usize>,
    /// States, comma-separated or the parameter repeated; `none` for
    /// TaskInstances without a state.
    pub(crate) state: Option<String>,
    /// Only this task's TaskInstances.
    pub(crate) task_id: Option<String>,
    /// Only TaskInstances in this pool.
    pub(crate) pool: Option<String>,
}

/// List TaskInstances of a DagRun; `~` as the DagRun id lists them across the
/// DAG's runs, and `~` as both ids across every DAG.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", tag = "TaskInstance",
    operation_id = "get_task_instances",
    params(AnyRunPath, TiFilter),
    responses(
        (status = 200, description = "One page of TaskInstances.", body = TaskInstanceCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn list_tis(
    caller: Caller,
    State(s): State<ApiState>,
    Path(AnyRunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<AnyRunPath>,
    ApiQuery(q): ApiQuery<TiFilter>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let states = q
        .state
        .as_deref()
        .map(parse_ti_states)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let dag = match (dag_id.as_str(), run_id.as_str()) {
        (ANY, ANY) => None,
        (ANY, _) => {
            return Err(ApiError::bad_request(
                "`~` as the DAG id needs `~` as the DagRun id too: run ids are per DAG",
            ));
        }
        (_, ANY) => {
            load_dag(&s, &caller, &dag_id)?;
            Some(dag_id)
        }
        _ => {
            let run = load_run(&s, &caller, &dag_id, &run_id)?;
            let mut specs = Specs::new(&s.metastore);
            let mut out = Vec::new();
            for ti in s
                .metastore
                .task_instances(caller.tenant(), &run.dag_id, &run.run_id)?
            {
                if q.task_id.as_ref().is_some_and(|t| *t != ti.task_id)
                    || states.as_ref().is_some_and(|st| !st.contains(&ti.state))
                {
                    continue;
                }
                let api = task_instance(&ti, &mut specs, &run)?;
                if q.pool
                    .as_ref()
                    .is_none_or(|p| p.split(',').any(|x| x == api.pool))
                {
                    out.push(api);
                }
            }
            let (task_instances, total_entries) = paginate(out, q.limit, q.offset);
            return Ok(Json(TaskInstanceCollection {
                task_instances,
                total_entries,
            }));
        }
    };
    let tenant = caller.tenant().to_owned();
    let (task_instances, total_entries) = s
        .blocking(move |m| across_runs(m, &tenant, dag.as_deref(), &q, states.as_deref()))
        .await?;
    Ok(Json(TaskInstanceCollection {
        task_instances,
        total_entries,
    }))
}

/// One page of TaskInstances across a tenant's runs (of one DAG, or all), in run
/// creation order, and how many match. Runs are walked from the run index and
/// only the page's TaskInstances are turned into API objects; with no filter that
/// needs each record, the total comes from the state counts and the walk stops at
/// the end of the page.
fn across_runs(
    m: &Metastore,
    tenant: &str,
    dag: Option<&str>,
    q: &TiFilter,
    states: Option<&[TaskInstanceState]>,
) -> ApiResult<(Vec<TaskInstance>, usize)> {
    let (offset, limit) = (q.offset.unwrap_or(0), page_size(q.limit));
    let counted_total = if q.task_id.is_none() && q.pool.is_none() {
        let counts = match dag {
            Some(dag_id) => m.dag_ti_counts(tenant, dag_id)?,
            None => m.tenant_ti_counts(tenant)?,
        };
        let n: u64 = counts
            .iter()
            .filter(|(state, _)| states.is_none_or(|st| st.contains(state)))
            .map(|(_, n)| n)
            .sum();
        Some(usize::try_from(n).unwrap_or(usize::MAX))
    } else {
        None
    };
    let mut specs = Specs::new(m);
    let mut page = Vec::new();
    let mut matched = 0usize;
    m.visit_runs(tenant, dag, |dag_id, run_id| -> ApiResult<bool> {
        let mut run: Option<DagRun> = None;
        for ti in m.task_instances(tenant, dag_id, run_id)? {
            if q.task_id.as_ref().is_some_and(|t| *t != ti.task_id)
                || states.is_some_and(|st| !st.contains(&ti.state))
            {
                continue;
            }
            let in_page = matched >= offset && page.len() < limit;
            if in_page || q.pool.is_some() {
                if run.is_none() {
                    run = m.dag_run(tenant, dag_id, run_id)?;
                }
                let Some(run) = &run else { break };
                let api = task_instance(&ti, &mut specs, run)?;
                if q.pool
                    .as_ref()
                    .is_some_and(|p| !p.split(',').any(|x| x == api.pool))
                {
                    continue;
                }
                if in_page {
                    page.push(api);
                }
            }
            matched += 1;
        }
        Ok(counted_total.is_none() || page.len() < limit)
    })?;
    Ok((page, counted_total.unwrap_or(matched)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MapIndex {
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    pub map_index: Option<i64>,
}

/// Get a TaskInstance with its tries.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "TaskInstance", operation_id = "get_task_instance",
    params(TaskPath, MapIndex),
    responses(
        (status = 200, description = "The TaskInstance with its tries.", body = TaskInstanceDetail),
        BadRequest,
        NotFound,
    )
)]
pub async fn get_ti(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TaskPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
    }): Path<TaskPath>,
    ApiQuery(q): ApiQuery<MapIndex>,
) -> ApiResult<Json<TaskInstanceDetail>> {
    let run = load_run(&s, &caller, &dag_id, &run_id)?;
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    Ok(Json(TaskInstanceDetail {
        task_instance: task_instance(&ti, &mut Specs::new(&s.metastore), &run)?,
        tries: tries(&ti),
    }))
}

/// The states a TaskInstance may be set to by hand.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStateChange {
    Success,
    Failed,
    Skipped,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskInstance {
    pub(crate) new_state: TaskStateChange,
    /// Set the same state on every task downstream of this one.
    #[serde(default)]
    pub(crate) include_downstream: bool,
    /// Set the same state on every task upstream of this one.
    #[serde(default)]
    pub(crate) include_upstream: bool,
}

/// Set a TaskInstance's state (Airflow's "mark success/failed"), optionally with
/// its downstream or upstream tasks. Answers the TaskInstances that changed.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "TaskInstance", operation_id = "patch_task_instance",
    params(TaskPath, MapIndex),
    request_body = UpdateTaskInstance,
    responses(
        (
            status = 200,
            description = "The TaskInstances whose state changed.",
            body = TaskInstanceCollection,
        ),
        BadRequest,
        NotFound,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn patch_ti(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TaskPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
    }): Path<TaskPath>,
    ApiQuery(q): ApiQuery<MapIndex>,
    JsonBody(body): JsonBody<UpdateTaskInstance>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    load_run(&s, &caller, &dag_id, &run_id)?;
    load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    let state = match body.new_state {
        TaskStateChange::Success => TaskInstanceState::Success,
        TaskStateChange::Failed => TaskInstanceState::Failed,
        TaskStateChange::Skipped => TaskInstanceState::Skipped,
    };
    let changed = s
        .scheduler
        .set_task_state(
            caller.tenant(),
            &dag_id,
            &run_id,
            &task_id,
            q.map_index,
            state,
            body.include_downstream,
            body.include_upstream,
        )
        .await?;
    let task_instances = task_instances(&mut Specs::new(&s.metastore), &changed)?;
    Ok(Json(TaskInstanceCollection {
        total_entries: task_instances.len(),
        task_instances,
    }))
}

/// List every try of a TaskInstance, the running one included.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries",
    tag = "TaskInstance", operation_id = "get_task_instance_tries",
    params(TaskPath, MapIndex),
    responses(
        (status = 200, description = "Every try, oldest first.", body = TaskInstanceTryCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn list_tries(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TaskPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
    }): Path<TaskPath>,
    ApiQuery(q): ApiQuery<MapIndex>,
) -> ApiResult<Json<TaskInstanceTryCollection>> {
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    let task_instances = tries(&ti);
    Ok(Json(TaskInstanceTryCollection {
        total_entries: task_instances.len(),
        task_instances,
    }))
}

/// Get one try of a TaskInstance.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{try_number}",
    tag = "TaskInstance", operation_id = "get_task_instance_try",
    params(TryPath, MapIndex),
    responses(
        (status = 200, description = "The try.", body = TaskInstanceTry),
        BadRequest,
        NotFound,
    )
)]
pub async fn get_try(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TryPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        try_number,
    }): Path<TryPath>,
    ApiQuery(q): ApiQuery<MapIndex>,
) -> ApiResult<Json<TaskInstanceTry>> {
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    tries(&ti)
        .into_iter()
        .find(|t| t.try_number == try_number)
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "try {try_number} of `{task_id}` does not exist (latest is {})",
                ti.try_number
            ))
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    map_index: Option<i64>,
    /// Byte offset to read from, to tail a running try: pass the `offset` of the
    /// previous answer.
    offset: Option<usize>,
    /// The `continuation_token` of a previous answer, as Airflow 2's clients
    /// send it; the same as its `offset`.
    token: Option<String>,
}

/// Get the log of one try, whole or from an offset.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
    tag = "TaskInstance", operation_id = "get_log",
    params(TryPath, LogQuery),
    responses(
        (status = 200, description = "The log, from the offset asked for.", body = Log),
        BadRequest,
        NotFound,
    )
)]
pub async fn get_log(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TryPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        try_number,
    }): Path<TryPath>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Log>> {
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    if try_number == 0 || try_number > ti.try_number.max(1) {
        return Err(ApiError::not_found(format!(
            "try {try_number} of `{task_id}` does not exist (latest is {})",
            ti.try_number
        )));
    }
    let key = TiKey::from(&ti);
    let (content, running) = match s.scheduler.live_log(&key, try_number) {
        Some(live) => (live, true),
        None => (s.metastore.log(&ti, try_number)?.unwrap_or_default(), false),
    };
    let offset = match (q.offset, q.token.as_deref()) {
        (Some(offset), _) => offset,
        (None, Some(token)) => token.parse().map_err(|_| {
            ApiError::bad_request("`token` is not a continuation_token this server gave")
        })?,
        (None, None) => 0,
    };
    let offset = offset.min(content.len());
    // Never split a UTF-8 character: move the offset back to a boundary.
    let offset = (0..=offset)
        .rev()
        .find(|i| content.is_char_boundary(*i))
        .unwrap_or(0);
    Ok(Json(Log {
        content: content[offset..].to_owned(),
        offset: content.len(),
        running,
        continuation_token: content.len().to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskInstances {
    /// The DagRun whose TaskInstances to clear.
    dag_run_id: String,
    /// The tasks to clear; all of the run's when absent.
    task_ids: Option<Vec<String>>,
    /// Also clear every task downstream of those.
    #[serde(default)]
    include_downstream: bool,
    /// Also clear every task upstream of those.
    #[serde(default)]
    include_upstream: bool,
    /// Clear only failed and upstream-failed TaskInstances (default true, as in
    /// Airflow).
    #[serde(default = "default_true")]
    #[schema(default = true)]
    only_failed: bool,
    /// Only report what would be cleared (default true, as in Airflow).
    #[serde(default = "default_true")]
    #[schema(default = true)]
    dry_run: bool,
    /// Airflow's fields that reach beyond one DagRun or change how it is
    /// cleared: taken, and refused when they ask for what Aileron does not do
    /// (see [`ClearTaskInstances::unsupported`]). A cleared DagRun always runs
    /// again (`reset_dag_runs`, default true).
    #[serde(default = "default_true")]
    #[schema(default = true)]
    reset_dag_runs: bool,
    #[serde(default)]
    only_running: bool,
    #[serde(default)]
    include_future: bool,
    #[serde(default)]
    include_past: bool,
    /// Airflow 2's subdags, which Aileron does not have: nothing to include.
    #[serde(default)]
    include_subdags: bool,
    #[serde(default)]
    include_parentdag: bool,
    start_date: Option<String>,
    end_date: Option<String>,
}

impl ClearTaskInstances {
    /// The first option set to something Aileron does not do: it clears
    /// within one DagRun, always sets that run going again, and clears by
    /// state (failed or all), not by running.
    fn unsupported(&self) -> Option<&'static str> {
        [
            ("start_date", self.start_date.is_some()),
            ("end_date", self.end_date.is_some()),
            ("only_running", self.only_running),
            (
                "reset_dag_runs: false",
                !self.reset_dag_runs && !self.dry_run,
            ),
            ("include_future", self.include_future),
            ("include_past", self.include_past),
        ]
        .into_iter()
        .find_map(|(field, set)| set.then_some(field))
    }
}

fn default_true() -> bool {
    true
}

/// Clear TaskInstances of a DagRun so they run again. Answers the TaskInstances
/// cleared (or, for a dry run, that would be).
#[utoipa::path(
    post, path = "/dags/{dag_id}/clearTaskInstances", tag = "TaskInstance",
    operation_id = "post_clear_task_instances",
    params(DagPath),
    request_body = ClearTaskInstances,
    responses(
        (
            status = 200,
            description = "The TaskInstances cleared (or to be, for a dry run), as they were.",
            body = TaskInstanceCollection,
        ),
        BadRequest,
        NotFound,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn clear_tis(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    JsonBody(body): JsonBody<ClearTaskInstances>,
) -> ApiResult<Json<TaskInstanceCollection>> {
    let _ = (body.include_subdags, body.include_parentdag);
    if let Some(field) = body.unsupported() {
        return Err(ApiError::bad_request(format!(
            "Aileron clears within one DagRun and has no `{field}`"
        )));
    }
    load_dag(&s, &caller, &dag_id)?;
    let run = load_run(&s, &caller, &dag_id, &body.dag_run_id)?;
    if let Some(ids) = &body.task_ids {
        let spec = Specs::new(&s.metastore).get(caller.tenant(), &dag_id, &run.dag_version)?;
        if let Some(spec) = spec
            && let Some(unknown) = ids.iter().find(|id| spec.task(id).is_none())
        {
            return Err(ApiError::bad_request(format!(
                "`task_ids`: DagRun `{}` has no task `{unknown}`",
                body.dag_run_id
            )));
        }
    }
    let cleared = s
        .scheduler
        .clear(
            caller.tenant(),
            &dag_id,
            &body.dag_run_id,
            ClearOptions {
                task_ids: body.task_ids,
                downstream: body.include_downstream,
                upstream: body.include_upstream,
                only_failed: body.only_failed,
                dry_run: body.dry_run,
            },
        )
        .await?;
    let task_instances = task_instances(&mut Specs::new(&s.metastore), &cleared)?;
    Ok(Json(TaskInstanceCollection {
        total_entries: task_instances.len(),
        task_instances,
    }))
}
