//! A TaskInstance's tries and mapped instances in v2: `/tries`, one try, the
//! same under `/{map_index}`, one mapped instance, and `/listMapped`.

use super::super::paths::TaskPath;
use super::super::query::{ApiQuery, items};
use super::super::states::TaskState;
use super::super::task_instances::{
    self as v1, MapIndex, TaskInstance as V1Ti, TaskInstanceDetail, TaskInstanceTry, task_instances,
};
use super::super::{ApiError, ApiResult, ApiState, Caller, Specs, load_run, paginate};
use super::dag_versions::{DagVersionResponse, version_response};
use super::task_instances::{TaskInstanceCollectionResponse, TaskInstanceResponse, response};
use super::{V2Path, V2Query};
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `TaskInstanceHistoryResponse`: one try.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceHistoryResponse {
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub duration: Option<f64>,
    pub state: Option<TaskState>,
    pub try_number: u32,
    pub max_tries: u32,
    pub task_display_name: String,
    pub dag_display_name: String,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub queue: Option<String>,
    pub priority_weight: Option<i32>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<Timestamp>,
    pub scheduled_when: Option<Timestamp>,
    pub pid: Option<u32>,
    pub executor: Option<String>,
    pub executor_config: String,
    /// The DAG version the try ran (its run's).
    pub dag_version: Option<DagVersionResponse>,
    /// Why the try failed, when it did (Aileron's own field).
    pub error: Option<String>,
    /// Aileron's: `sha256:` digest of the operator component the try ran.
    pub plugin_digest: String,
    /// Aileron's: guest CPU seconds metered in the sandbox; `null` while the
    /// try runs and for a try that never ran in one.
    pub cpu_seconds: Option<f64>,
    /// Aileron's: seconds the try waited on host calls (XCom, variables,
    /// connections, outbound HTTP).
    pub host_call_seconds: Option<f64>,
    /// Aileron's: the most linear memory the try held.
    pub peak_memory_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceHistoryCollectionResponse {
    pub task_instances: Vec<TaskInstanceHistoryResponse>,
    pub total_entries: usize,
}

fn history(ti: &V1Ti, t: TaskInstanceTry) -> TaskInstanceHistoryResponse {
    TaskInstanceHistoryResponse {
        task_display_name: t.task_id.clone(),
        dag_display_name: t.dag_id.clone(),
        task_id: t.task_id,
        dag_id: t.dag_id,
        dag_run_id: t.dag_run_id,
        map_index: t.map_index,
        start_date: t.start_date,
        end_date: t.end_date,
        duration: t.duration,
        state: t.state,
        try_number: t.try_number,
        max_tries: t.max_tries,
        hostname: (!t.hostname.is_empty()).then_some(t.hostname),
        unixname: None,
        pool: ti.pool.clone(),
        pool_slots: ti.pool_slots,
        queue: Some(ti.queue.clone()),
        priority_weight: Some(ti.priority_weight),
        operator_name: Some(t.operator.clone()),
        operator: Some(t.operator),
        queued_when: None,
        scheduled_when: None,
        pid: None,
        executor: None,
        executor_config: "{}".to_owned(),
        dag_version: ti
            .dag_version
            .clone()
            .map(|v| version_response(&ti.dag_id, v)),
        error: t.error,
        plugin_digest: t.plugin_digest,
        cpu_seconds: t.cpu_seconds,
        host_call_seconds: t.host_call_seconds,
        peak_memory_bytes: t.peak_memory_bytes,
    }
}

/// `/taskInstances/{task_id}/{map_index}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MappedPath {
    /// The DAG id.
    dag_id: String,
    /// The DagRun id.
    dag_run_id: String,
    /// The task id.
    task_id: String,
    /// The map index (-1 for a task that is not mapped).
    map_index: i64,
}

impl MappedPath {
    /// The TaskInstance's task path and its map index.
    pub fn split(self) -> (TaskPath, i64) {
        (
            TaskPath {
                dag_id: self.dag_id,
                dag_run_id: self.dag_run_id,
                task_id: self.task_id,
            },
            self.map_index,
        )
    }
}

/// `/taskInstances/{task_id}/tries/{task_try_number}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TryDetailPath {
    /// The DAG id.
    dag_id: String,
    /// The DagRun id.
    dag_run_id: String,
    /// The task id.
    task_id: String,
    /// The try, counted from 1.
    task_try_number: u32,
}

/// `/taskInstances/{task_id}/{map_index}/tries/{task_try_number}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MappedTryPath {
    /// The DAG id.
    dag_id: String,
    /// The DagRun id.
    dag_run_id: String,
    /// The task id.
    task_id: String,
    /// The map index (-1 for a task that is not mapped).
    map_index: i64,
    /// The try, counted from 1.
    task_try_number: u32,
}

/// The TaskInstance with its tries.
async fn detail(
    caller: Caller,
    state: State<ApiState>,
    dag_id: String,
    dag_run_id: String,
    task_id: String,
    map_index: Option<i64>,
) -> ApiResult<TaskInstanceDetail> {
    let path = Path(TaskPath {
        dag_id,
        dag_run_id,
        task_id,
    });
    let Json(detail) = v1::get_ti(caller, state, path, ApiQuery(MapIndex { map_index })).await?;
    Ok(detail)
}

fn all_tries(d: TaskInstanceDetail) -> TaskInstanceHistoryCollectionResponse {
    let ti = d.task_instance;
    let task_instances: Vec<_> = d.tries.into_iter().map(|t| history(&ti, t)).collect();
    TaskInstanceHistoryCollectionResponse {
        total_entries: task_instances.len(),
        task_instances,
    }
}

fn one_try(d: TaskInstanceDetail, n: u32) -> ApiResult<TaskInstanceHistoryResponse> {
    let ti = d.task_instance;
    d.tries
        .into_iter()
        .find(|t| t.try_number == n)
        .map(|t| history(&ti, t))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The Task Instance with dag_id: `{}`, run_id: `{}`, task_id: `{}`, try_number: \
                 `{n}` and map_index: `{}` was not found",
                ti.dag_id, ti.dag_run_id, ti.task_id, ti.map_index
            ))
        })
}

/// List a TaskInstance's tries, the running one included.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries",
    tag = "TaskInstance", operation_id = "get_task_instance_tries",
    params(TaskPath, MapIndex),
    responses(
        (status = 200, description = "Every try, oldest first.", body = TaskInstanceHistoryCollectionResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_task_instance_tries(
    caller: Caller,
    state: State<ApiState>,
    Path(p): Path<TaskPath>,
    V2Query(q): V2Query<MapIndex>,
) -> ApiResult<Json<TaskInstanceHistoryCollectionResponse>> {
    let d = detail(
        caller,
        state,
        p.dag_id,
        p.dag_run_id,
        p.task_id,
        q.map_index,
    )
    .await?;
    Ok(Json(all_tries(d)))
}

/// List a mapped TaskInstance's tries.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries",
    tag = "TaskInstance", operation_id = "get_mapped_task_instance_tries",
    params(MappedPath),
    responses(
        (status = 200, description = "Every try, oldest first.", body = TaskInstanceHistoryCollectionResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_mapped_task_instance_tries(
    caller: Caller,
    state: State<ApiState>,
    V2Path(p): V2Path<MappedPath>,
) -> ApiResult<Json<TaskInstanceHistoryCollectionResponse>> {
    let d = detail(
        caller,
        state,
        p.dag_id,
        p.dag_run_id,
        p.task_id,
        Some(p.map_index),
    )
    .await?;
    Ok(Json(all_tries(d)))
}

/// Get one try of a TaskInstance.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{task_try_number}",
    tag = "TaskInstance", operation_id = "get_task_instance_try_details",
    params(TryDetailPath, MapIndex),
    responses(
        (status = 200, description = "The try.", body = TaskInstanceHistoryResponse),
        (status = 404, description = "No such TaskInstance or try."),
    )
)]
pub async fn get_task_instance_try_details(
    caller: Caller,
    state: State<ApiState>,
    V2Path(p): V2Path<TryDetailPath>,
    V2Query(q): V2Query<MapIndex>,
) -> ApiResult<Json<TaskInstanceHistoryResponse>> {
    let d = detail(
        caller,
        state,
        p.dag_id,
        p.dag_run_id,
        p.task_id,
        q.map_index,
    )
    .await?;
    Ok(Json(one_try(d, p.task_try_number)?))
}

/// Get one try of a mapped TaskInstance.
#[utoipa::path(
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries/{task_try_number}",
    tag = "TaskInstance", operation_id = "get_mapped_task_instance_try_details",
    params(MappedTryPath),
    responses(
        (status = 200, description = "The try.", body = TaskInstanceHistoryResponse),
        (status = 404, description = "No such TaskInstance or try."),
    )
)]
pub async fn get_mapped_task_instance_try_details(
    caller: Caller,
    state: State<ApiState>,
    V2Path(p): V2Path<MappedTryPath>,
) -> ApiResult<Json<TaskInstanceHistoryResponse>> {
    let d = detail(
        caller,
        state,
        p.dag_id,
        p.dag_run_id,
        p.task_id,
        Some(p.map_index),
    )
    .await?;
    Ok(Json(one_try(d, p.task_try_number)?))
}

/// Get one mapped TaskInstance.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}",
    tag = "TaskInstance", operation_id = "get_mapped_task_instance",
    params(MappedPath),
    responses(
        (status = 200, description = "The TaskInstance.", body = TaskInstanceResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_mapped_task_instance(
    caller: Caller,
    state: State<ApiState>,
    V2Path(p): V2Path<MappedPath>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    let d = detail(
        caller,
        state,
        p.dag_id,
        p.dag_run_id,
        p.task_id,
        Some(p.map_index),
    )
    .await?;
    Ok(Json(response(d.task_instance)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MappedFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// States (repeat the parameter); `no_status` for none yet.
    state: Option<String>,
    /// `map_index` (default), `state`, `start_date`, `end_date` or `duration`,
    /// `-` before it for descending.
    order_by: Option<String>,
}

/// List the mapped TaskInstances of a task in one DagRun.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/listMapped",
    tag = "TaskInstance", operation_id = "get_mapped_task_instances",
    params(TaskPath, MappedFilter),
    responses(
        (status = 200, description = "One page of mapped TaskInstances.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 404, description = "No such DagRun, or a task that is not mapped."),
    )
)]
pub async fn get_mapped_task_instances(
    caller: Caller,
    State(s): State<ApiState>,
    Path(p): Path<TaskPath>,
    V2Query(q): V2Query<MappedFilter>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let order = q.order_by.as_deref().unwrap_or("map_index");
    let (descending, field) = match order.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, order),
    };
    if !matches!(
        field,
        "map_index" | "state" | "start_date" | "end_date" | "duration"
    ) {
        return Err(ApiError::bad_request(format!(
            "Ordering with '{field}' is disallowed or the attribute does not exist on the model"
        )));
    }
    let states: Option<Vec<String>> = q
        .state
        .as_deref()
        .map(|l| items(l).map(str::to_owned).collect());
    load_run(&s, &caller, &p.dag_id, &p.dag_run_id)?;
    let records: Vec<_> = s
        .metastore
        .task_instances(caller.tenant(), &p.dag_id, &p.dag_run_id)?
        .into_iter()
        .filter(|t| t.task_id == p.task_id && t.map_index >= 0)
        .collect();
    if records.is_empty() {
        return Err(ApiError::not_found(format!(
            "Task id {} is not mapped",
            p.task_id
        )));
    }
    let mut tis: Vec<TaskInstanceResponse> =
        task_instances(&mut Specs::new(&s.metastore), &records)?
            .into_iter()
            .map(response)
            .filter(|t| {
                states.as_ref().is_none_or(|want| {
                    let have = state_name(t.state);
                    want.contains(&have)
                })
            })
            .collect();
    tis.sort_by(|a, b| {
        let o = match field {
            "state" => state_name(a.state).cmp(&state_name(b.state)),
            "start_date" => a.start_date.cmp(&b.start_date),
            "end_date" => a.end_date.cmp(&b.end_date),
            "duration" => a
                .duration
                .partial_cmp(&b.duration)
                .unwrap_or(std::cmp::Ordering::Equal),
            _ => std::cmp::Ordering::Equal,
        }
        .then(a.map_index.cmp(&b.map_index));
        if descending { o.reverse() } else { o }
    });
    let (task_instances, total_entries) = paginate(tis, q.limit, q.offset);
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances,
        total_entries,
    }))
}

/// A state's name as the API writes it; `no_status` for none yet.
fn state_name(state: Option<TaskState>) -> String {
    match state.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::String(name))) => name,
        _ => "no_status".to_owned(),
    }
}
