//! A TaskInstance's state in v2: set it by hand (Airflow's "mark success /
//! failed / skipped", with `dry_run` variants that only say what would change),
//! and its `dependencies`: why a TaskInstance that has not started is waiting.

use super::super::paths::TaskPath;
use super::super::query::{ApiQuery, items};
use super::super::task_instances::{
    self as v1, MapIndex, TaskStateChange, UpdateTaskInstance, task_instances,
};
use super::super::{ApiError, ApiResult, ApiState, Caller, JsonBody, Specs, load_dag, load_run};
use super::task_instances::{TaskInstanceCollectionResponse, response};
use super::ti_tries::MappedPath;
use super::{V2Json, V2Path, V2Query};
use aileron_model::dag::DagSpec;
use aileron_model::trigger_rule::{TriggerDecision, UpstreamCounts, evaluate};
use aileron_model::{DagRunState, TaskInstanceState};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `PatchTaskInstanceBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTaskInstanceBody {
    /// `success`, `failed` or `skipped`.
    new_state: Option<String>,
    /// Accepted; Aileron does not keep notes.
    note: Option<String>,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_downstream: bool,
    /// Refused when true: Aileron marks within one DagRun.
    #[serde(default)]
    include_future: bool,
    /// Refused when true: Aileron marks within one DagRun.
    #[serde(default)]
    include_past: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatchQuery {
    /// The map index of a mapped TaskInstance (default: every instance).
    map_index: Option<i64>,
    /// `new_state` and/or `note`; both when absent.
    update_mask: Option<String>,
}

/// The state change asked for, after refusing what Aileron cannot do; `None`
/// for a body that changes no state (a note alone).
fn change(body: &PatchTaskInstanceBody, mask: Option<&str>) -> ApiResult<Option<TaskStateChange>> {
    let _ = &body.note;
    if body.include_future || body.include_past {
        return Err(ApiError::bad_request(
            "`include_future` and `include_past` cannot be true: Aileron marks TaskInstances \
             within one DagRun",
        ));
    }
    let fields: Vec<&str> = mask
        .map(|m| items(m).collect())
        .unwrap_or_else(|| vec!["new_state", "note"]);
    if let Some(bad) = fields.iter().find(|f| !matches!(**f, "new_state" | "note")) {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    if !fields.contains(&"new_state") {
        return Ok(None);
    }
    Ok(match body.new_state.as_deref() {
        None => None,
        Some("success") => Some(TaskStateChange::Success),
        Some("failed") => Some(TaskStateChange::Failed),
        Some("skipped") => Some(TaskStateChange::Skipped),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`new_state` must be success, failed or skipped, not `{other}`"
            )));
        }
    })
}

fn state_of(c: TaskStateChange) -> TaskInstanceState {
    match c {
        TaskStateChange::Success => TaskInstanceState::Success,
        TaskStateChange::Failed => TaskInstanceState::Failed,
        TaskStateChange::Skipped => TaskInstanceState::Skipped,
    }
}

/// Sets the state (or, for `dry_run`, says what it would change).
async fn patch(
    caller: Caller,
    state: State<ApiState>,
    p: TaskPath,
    map_index: Option<i64>,
    mask: Option<String>,
    body: PatchTaskInstanceBody,
    dry_run: bool,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let change = change(&body, mask.as_deref())?;
    let Some(change) = change.filter(|_| !dry_run) else {
        return dry(caller, state, p, map_index, change, &body).await;
    };
    let Json(changed) = v1::patch_ti(
        caller,
        state,
        Path(p),
        ApiQuery(MapIndex { map_index }),
        JsonBody(UpdateTaskInstance {
            new_state: change,
            include_downstream: body.include_downstream,
            include_upstream: body.include_upstream,
        }),
    )
    .await?;
    Ok(Json(TaskInstanceCollectionResponse {
        total_entries: changed.total_entries,
        task_instances: changed.task_instances.into_iter().map(response).collect(),
    }))
}

/// The TaskInstances a change would touch (those not in the state already),
/// read without changing anything; with no state change, the TaskInstance
/// itself.
async fn dry(
    caller: Caller,
    State(s): State<ApiState>,
    p: TaskPath,
    map_index: Option<i64>,
    change: Option<TaskStateChange>,
    body: &PatchTaskInstanceBody,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let run = load_run(&s, &caller, &p.dag_id, &p.dag_run_id)?;
    let spec = s
        .metastore
        .dag_version(&run.tenant, &run.dag_id, &run.dag_version)?
        .ok_or_else(|| ApiError::not_found(format!("DAG `{}` not found", p.dag_id)))?;
    if spec.task(&p.task_id).is_none() {
        return Err(ApiError::not_found(format!(
            "Task `{}` not found in DAG `{}`",
            p.task_id, p.dag_id
        )));
    }
    let mut tasks: BTreeSet<&str> = BTreeSet::from([p.task_id.as_str()]);
    if change.is_some() {
        if body.include_downstream {
            tasks.extend(spec.relatives(&p.task_id, false));
        }
        if body.include_upstream {
            tasks.extend(spec.relatives(&p.task_id, true));
        }
    }
    let records: Vec<_> = s
        .metastore
        .task_instances(&run.tenant, &run.dag_id, &run.run_id)?
        .into_iter()
        .filter(|t| {
            tasks.contains(t.task_id.as_str())
                && (t.task_id != p.task_id || map_index.is_none_or(|m| m == t.map_index))
                && change.is_none_or(|c| t.state != state_of(c))
        })
        .collect();
    let tis = task_instances(&mut Specs::new(&s.metastore), &records)?;
    Ok(Json(TaskInstanceCollectionResponse {
        total_entries: tis.len(),
        task_instances: tis.into_iter().map(response).collect(),
    }))
}

/// Set a TaskInstance's state, with its upstream or downstream tasks if asked.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "TaskInstance", operation_id = "patch_task_instance",
    params(TaskPath, PatchQuery),
    request_body = PatchTaskInstanceBody,
    responses(
        (status = 200, description = "The TaskInstances whose state changed.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state or option Aileron does not set."),
        (status = 404, description = "No such TaskInstance."),
        (status = 409, description = "The DagRun cannot be changed now."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_task_instance(
    caller: Caller,
    state: State<ApiState>,
    Path(p): Path<TaskPath>,
    V2Query(q): V2Query<PatchQuery>,
    V2Json(body): V2Json<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    patch(caller, state, p, q.map_index, q.update_mask, body, false).await
}

/// What setting a TaskInstance's state would change, changing nothing.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run",
    tag = "TaskInstance", operation_id = "patch_task_instance_dry_run",
    params(TaskPath, PatchQuery),
    request_body = PatchTaskInstanceBody,
    responses(
        (status = 200, description = "The TaskInstances that would change.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state or option Aileron does not set."),
        (status = 404, description = "No such TaskInstance."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_task_instance_dry_run(
    caller: Caller,
    state: State<ApiState>,
    Path(p): Path<TaskPath>,
    V2Query(q): V2Query<PatchQuery>,
    V2Json(body): V2Json<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    patch(caller, state, p, q.map_index, q.update_mask, body, true).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaskQuery {
    /// `new_state` and/or `note`; both when absent.
    update_mask: Option<String>,
}

/// Set one mapped TaskInstance's state.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}",
    tag = "TaskInstance", operation_id = "patch_task_instance_by_map_index",
    params(MappedPath, MaskQuery),
    request_body = PatchTaskInstanceBody,
    responses(
        (status = 200, description = "The TaskInstances whose state changed.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state or option Aileron does not set."),
        (status = 404, description = "No such TaskInstance."),
        (status = 409, description = "The DagRun cannot be changed now."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_task_instance_by_map_index(
    caller: Caller,
    state: State<ApiState>,
    V2Path(p): V2Path<MappedPath>,
    V2Query(q): V2Query<MaskQuery>,
    V2Json(body): V2Json<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let (p, map_index) = p.split();
    patch(
        caller,
        state,
        p,
        Some(map_index),
        q.update_mask,
        body,
        false,
    )
    .await
}

/// What setting one mapped TaskInstance's state would change.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/dry_run",
    tag = "TaskInstance", operation_id = "patch_task_instance_dry_run_by_map_index",
    params(MappedPath, MaskQuery),
    request_body = PatchTaskInstanceBody,
    responses(
        (status = 200, description = "The TaskInstances that would change.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state or option Aileron does not set."),
        (status = 404, description = "No such TaskInstance."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_task_instance_dry_run_by_map_index(
    caller: Caller,
    state: State<ApiState>,
    V2Path(p): V2Path<MappedPath>,
    V2Query(q): V2Query<MaskQuery>,
    V2Json(body): V2Json<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let (p, map_index) = p.split();
    patch(caller, state, p, Some(map_index), q.update_mask, body, true).await
}

/// Airflow's `TaskDependencyResponse`: one thing a TaskInstance waits for.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDependencyResponse {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDependencyCollectionResponse {
    pub dependencies: Vec<TaskDependencyResponse>,
}

fn dependency(name: &str, reason: String) -> TaskDependencyResponse {
    TaskDependencyResponse {
        name: name.to_owned(),
        reason,
    }
}

/// Why a TaskInstance that has not started waits, as Airflow names its
/// dependencies; nothing for one that runs or has finished.
async fn dependencies(
    caller: Caller,
    s: ApiState,
    p: TaskPath,
    map_index: Option<i64>,
) -> ApiResult<Json<TaskDependencyCollectionResponse>> {
    let run = load_run(&s, &caller, &p.dag_id, &p.dag_run_id)?;
    let (dag, _) = load_dag(&s, &caller, &p.dag_id)?;
    let ti = super::super::load_ti(&s, &caller, &p.dag_id, &p.dag_run_id, &p.task_id, map_index)?;
    let mut out = Vec::new();
    use TaskInstanceState as S;
    if !matches!(
        ti.state,
        S::NoStatus | S::Scheduled | S::UpForRetry | S::UpForReschedule
    ) {
        return Ok(Json(TaskDependencyCollectionResponse { dependencies: out }));
    }
    if dag.is_paused {
        out.push(dependency(
            "Dag Not Paused",
            format!("Task's DAG '{}' is paused.", p.dag_id),
        ));
    }
    if !matches!(run.state, DagRunState::Running | DagRunState::Queued) {
        out.push(dependency(
            "Dagrun Running",
            format!(
                "Task instance's dagrun was not in the 'running' state but in the state '{}'.",
                run.state.as_str()
            ),
        ));
    }
    if let Some(at) = ti.next_try_at {
        out.push(dependency(
            "Not In Retry Period",
            format!("Task is not ready for retry yet but will be retried automatically. Current date is {}; the task may run again at {at}.", s.clock.now()),
        ));
    }
    if ti.state == S::NoStatus {
        let spec: DagSpec = s
            .metastore
            .dag_version(&run.tenant, &run.dag_id, &run.dag_version)?
            .ok_or_else(|| ApiError::not_found(format!("DAG `{}` not found", p.dag_id)))?;
        if let Some(task) = spec.task(&p.task_id) {
            let all = s
                .metastore
                .task_instances(&run.tenant, &run.dag_id, &run.run_id)?;
            let counts: UpstreamCounts = all
                .iter()
                .filter(|t| task.upstream.contains(&t.task_id))
                .map(|t| t.state)
                .collect();
            if evaluate(task.trigger_rule, &counts) == TriggerDecision::Wait {
                out.push(dependency(
                    "Trigger Rule",
                    format!(
                        "Task's trigger rule '{}' requires its upstream tasks to be done first: \
                         {} of {} upstream TaskInstances are done (success {}, skipped {}, \
                         failed {}, upstream_failed {}).",
                        task.trigger_rule.as_str(),
                        counts.done,
                        counts.total,
                        counts.success,
                        counts.skipped,
                        counts.failed,
                        counts.upstream_failed,
                    ),
                ));
            }
        }
    }
    Ok(Json(TaskDependencyCollectionResponse { dependencies: out }))
}

/// Why a TaskInstance has not started.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dependencies",
    tag = "TaskInstance", operation_id = "get_task_instance_dependencies",
    params(TaskPath, MapIndex),
    responses(
        (status = 200, description = "What it waits for.", body = TaskDependencyCollectionResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_task_instance_dependencies(
    caller: Caller,
    State(s): State<ApiState>,
    Path(p): Path<TaskPath>,
    V2Query(q): V2Query<MapIndex>,
) -> ApiResult<Json<TaskDependencyCollectionResponse>> {
    dependencies(caller, s, p, q.map_index).await
}

/// Why a mapped TaskInstance has not started.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/dependencies",
    tag = "TaskInstance", operation_id = "get_task_instance_dependencies_by_map_index",
    params(MappedPath),
    responses(
        (status = 200, description = "What it waits for.", body = TaskDependencyCollectionResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_task_instance_dependencies_by_map_index(
    caller: Caller,
    State(s): State<ApiState>,
    V2Path(p): V2Path<MappedPath>,
) -> ApiResult<Json<TaskDependencyCollectionResponse>> {
    let (p, map_index) = p.split();
    dependencies(caller, s, p, Some(map_index)).await
}
