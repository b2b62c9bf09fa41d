//! A DAG's tasks in v2 (`/dags/{dag_id}/tasks`): Airflow 3's `TaskResponse`,
//! built from the same task view `/api/v1` answers.

use super::super::dags::TimeDelta;
use super::super::paths::{DagPath, DagTaskPath};
use super::super::tasks::{self as v1, Task};
use super::super::{ApiResult, ApiState, Caller};
use super::V2Query;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Airflow's `TaskResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub owner: String,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub trigger_rule: String,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub retries: u32,
    pub queue: String,
    pub pool: String,
    pub pool_slots: u32,
    pub execution_timeout: Option<TimeDelta>,
    pub retry_delay: TimeDelta,
    pub retry_exponential_backoff: f64,
    pub priority_weight: i32,
    pub weight_rule: String,
    pub ui_color: String,
    pub ui_fgcolor: String,
    pub template_fields: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    /// The operator component's name.
    pub operator_name: String,
    /// The task's params as written (templates unrendered).
    #[schema(value_type = Object)]
    pub params: Value,
    #[schema(value_type = Object)]
    pub class_ref: Value,
    pub is_mapped: bool,
    pub extra_links: Vec<String>,
    /// Aileron's: the operator as written in the DAG file (`echo`,
    /// `http@1.2.0`, …).
    pub operator: String,
    /// Aileron's: `sha256:` digest of the operator component the task runs.
    pub plugin_digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCollectionResponse {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: usize,
}

fn response(t: Task, params: Value) -> TaskResponse {
    TaskResponse {
        task_display_name: t.task_display_name,
        owner: t.owner,
        start_date: t.start_date,
        end_date: t.end_date,
        trigger_rule: t.trigger_rule,
        depends_on_past: t.depends_on_past,
        wait_for_downstream: t.wait_for_downstream,
        retries: t.retries,
        queue: t.queue,
        pool: t.pool,
        pool_slots: t.pool_slots,
        execution_timeout: t.execution_timeout,
        retry_delay: t.retry_delay,
        // Airflow 3 writes the flag as a number: 0 or 1.
        retry_exponential_backoff: if t.retry_exponential_backoff {
            1.0
        } else {
            0.0
        },
        priority_weight: t.priority_weight,
        weight_rule: t.weight_rule,
        ui_color: t.ui_color,
        ui_fgcolor: t.ui_fgcolor,
        template_fields: t.template_fields,
        downstream_task_ids: t.downstream_task_ids,
        doc_md: t.doc_md,
        operator_name: t.class_ref.class_name.clone(),
        params,
        class_ref: serde_json::json!({
            "module_path": t.class_ref.module_path,
            "class_name": t.class_ref.class_name,
        }),
        is_mapped: t.is_mapped,
        extra_links: Vec::new(),
        operator: t.operator,
        plugin_digest: t.plugin_digest,
        task_id: t.task_id,
    }
}

/// The task's own params by id, to go with the v1 view, which has none.
fn params_of(spec: &aileron_model::dag::DagSpec, task_id: &str) -> Value {
    spec.task(task_id)
        .map(|t| t.params.clone())
        .unwrap_or(Value::Null)
}

/// List a DAG's tasks.
#[utoipa::path(
    get, path = "/dags/{dag_id}/tasks", tag = "Task", operation_id = "get_tasks",
    params(DagPath, v1::TaskOrder),
    responses(
        (status = 200, description = "The DAG's tasks.", body = TaskCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 404, description = "No such DAG."),
    )
)]
pub async fn get_tasks(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    V2Query(order): V2Query<v1::TaskOrder>,
) -> ApiResult<Json<TaskCollectionResponse>> {
    let (_, spec) = super::super::load_dag(&s, &caller, &dag_id)?;
    let tasks = v1::tasks(&spec, order)?;
    let total_entries = tasks.len();
    Ok(Json(TaskCollectionResponse {
        tasks: tasks
            .into_iter()
            .map(|t| {
                let params = params_of(&spec, &t.task_id);
                response(t, params)
            })
            .collect(),
        total_entries,
    }))
}

/// Get one of a DAG's tasks.
#[utoipa::path(
    get, path = "/dags/{dag_id}/tasks/{task_id}", tag = "Task", operation_id = "get_task",
    params(DagTaskPath),
    responses(
        (status = 200, description = "The task.", body = TaskResponse),
        (status = 404, description = "No such DAG or task."),
    )
)]
pub async fn get_task(
    caller: Caller,
    state: State<ApiState>,
    path: Path<DagTaskPath>,
) -> ApiResult<Json<TaskResponse>> {
    let dag_id = path.dag_id.clone();
    let (_, spec) = super::super::load_dag(&state, &caller, &dag_id)?;
    let Json(t) = v1::get_task(caller, state, path).await?;
    let params = params_of(&spec, &t.task_id);
    Ok(Json(response(t, params)))
}
