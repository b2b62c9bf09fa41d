//! A DAG's tasks as Airflow 2 describes them (`/dags/{dag_id}/tasks`): what
//! Airflow's `Task` schema says of an operator, with the component behind it.

use super::Caller;
use super::dags::TimeDelta;
use super::error::{BadRequest, NotFound};
use super::paths::{DagPath, DagTaskPath};
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState, load_dag};
use aileron_model::dag::{DagSpec, TaskSpec};
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `Task`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    /// The operator, as a class would be named: `aileron.operators.<name>`.
    pub class_ref: ClassReference,
    pub task_id: String,
    pub task_display_name: String,
    /// The DAG's owner: Aileron has no per-task owner.
    pub owner: String,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub trigger_rule: String,
    /// Operators have no extra links.
    pub extra_links: Vec<ClassReference>,
    pub depends_on_past: bool,
    pub is_mapped: bool,
    pub wait_for_downstream: bool,
    pub retries: u32,
    pub queue: String,
    pub executor: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub execution_timeout: Option<TimeDelta>,
    pub retry_delay: TimeDelta,
    pub retry_exponential_backoff: bool,
    pub priority_weight: i32,
    pub weight_rule: String,
    pub ui_color: String,
    pub ui_fgcolor: String,
    /// `params` is the one field templates render in.
    pub template_fields: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    /// The operator as written in the DAG file (`echo`, `http@1.2.0`, …).
    pub operator: String,
    pub operator_version: String,
    /// `sha256:` digest of the operator component the task runs.
    pub plugin_digest: String,
}

/// Airflow's `ClassReference`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClassReference {
    pub module_path: String,
    pub class_name: String,
}

/// Airflow's `TaskCollection`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCollection {
    pub tasks: Vec<Task>,
    pub total_entries: usize,
}

/// The UI colours Airflow gives an operator that sets none.
const UI_COLOR: &str = "#fff";
const UI_FGCOLOR: &str = "#000";

pub(crate) fn task(spec: &DagSpec, t: &TaskSpec) -> Task {
    Task {
        class_ref: ClassReference {
            module_path: format!("aileron.operators.{}", t.operator_name),
            class_name: t.operator_name.clone(),
        },
        task_id: t.task_id.clone(),
        task_display_name: t.task_id.clone(),
        owner: spec.owner.clone(),
        start_date: spec.start_date,
        end_date: spec.end_date,
        trigger_rule: t.trigger_rule.as_str().to_owned(),
        extra_links: Vec::new(),
        depends_on_past: t.depends_on_past,
        is_mapped: t.expand.is_some(),
        wait_for_downstream: t.wait_for_downstream,
        retries: t.retries,
        queue: t.queue.clone(),
        executor: None,
        pool: t.pool.clone(),
        pool_slots: t.pool_slots,
        execution_timeout: t.execution_timeout.map(TimeDelta::from),
        retry_delay: t.retry_delay.into(),
        retry_exponential_backoff: t.retry_exponential_backoff,
        priority_weight: t.priority_weight,
        weight_rule: t.weight_rule.as_str().to_owned(),
        ui_color: UI_COLOR.to_owned(),
        ui_fgcolor: UI_FGCOLOR.to_owned(),
        template_fields: vec!["params".to_owned()],
        downstream_task_ids: t.downstream.clone(),
        doc_md: t.doc.clone(),
        operator: t.operator.clone(),
        operator_version: t.operator_version.clone(),
        plugin_digest: t.operator_digest.clone(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskOrder {
    /// `task_id` (default), `priority_weight`, `retries`, `pool`, `pool_slots`,
    /// `queue`, `trigger_rule`, `weight_rule` or `is_mapped`; `-` before it for
    /// descending.
    order_by: Option<String>,
}

/// The fields `order_by` may name.
const ORDER_FIELDS: [&str; 9] = [
    "task_id",
    "priority_weight",
    "retries",
    "pool",
    "pool_slots",
    "queue",
    "trigger_rule",
    "weight_rule",
    "is_mapped",
];

/// Compares two tasks by one of [`ORDER_FIELDS`].
fn compare(field: &str, a: &Task, b: &Task) -> Ordering {
    match field {
        "priority_weight" => a.priority_weight.cmp(&b.priority_weight),
        "retries" => a.retries.cmp(&b.retries),
        "pool" => a.pool.cmp(&b.pool),
        "pool_slots" => a.pool_slots.cmp(&b.pool_slots),
        "queue" => a.queue.cmp(&b.queue),
        "trigger_rule" => a.trigger_rule.cmp(&b.trigger_rule),
        "weight_rule" => a.weight_rule.cmp(&b.weight_rule),
        "is_mapped" => a.is_mapped.cmp(&b.is_mapped),
        _ => Ordering::Equal,
    }
    .then_with(|| a.task_id.cmp(&b.task_id))
}

/// The DAG's tasks in the order `order_by` asks for.
pub(crate) fn tasks(spec: &DagSpec, order: TaskOrder) -> ApiResult<Vec<Task>> {
    let order = order.order_by.as_deref().unwrap_or("task_id");
    let (descending, field) = match order.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, order),
    };
    if !ORDER_FIELDS.contains(&field) {
        return Err(ApiError::bad_request(format!(
            "Invalid attribute `{field}` in order_by"
        )));
    }
    let mut tasks: Vec<Task> = spec.tasks.iter().map(|t| task(spec, t)).collect();
    tasks.sort_by(|a, b| {
        let o = compare(field, a, b);
        if descending { o.reverse() } else { o }
    });
    Ok(tasks)
}

/// List a DAG's tasks.
#[utoipa::path(
    get, path = "/dags/{dag_id}/tasks", tag = "DAG", operation_id = "get_tasks",
    params(DagPath, TaskOrder),
    responses(
        (status = 200, description = "The DAG's tasks.", body = TaskCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn get_tasks(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    ApiQuery(q): ApiQuery<TaskOrder>,
) -> ApiResult<Json<TaskCollection>> {
    let (_, spec) = load_dag(&s, &caller, &dag_id)?;
    let tasks = tasks(&spec, q)?;
    let total_entries = tasks.len();
    Ok(Json(TaskCollection {
        tasks,
        total_entries,
    }))
}

/// Get one of a DAG's tasks.
#[utoipa::path(
    get, path = "/dags/{dag_id}/tasks/{task_id}", tag = "DAG", operation_id = "get_task",
    params(DagTaskPath),
    responses(
        (status = 200, description = "The task.", body = Task),
        NotFound,
    )
)]
pub async fn get_task(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagTaskPath { dag_id, task_id }): Path<DagTaskPath>,
) -> ApiResult<Json<Task>> {
    let (_, spec) = load_dag(&s, &caller, &dag_id)?;
    let t = spec.task(&task_id).ok_or_else(|| {
        ApiError::not_found(format!("Task `{task_id}` not found in DAG `{dag_id}`"))
    })?;
    Ok(Json(task(&spec, t)))
}
