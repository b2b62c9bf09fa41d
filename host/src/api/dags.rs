//! DAGs: list with filters and paging, one DAG with its tasks, edges and source,
//! Airflow's `details` view of one, pause.

use super::Caller;
use super::error::{BadRequest, NotFound, PayloadTooLarge, Unavailable, Unprocessable};
use super::paths::DagPath;
use super::query::{ApiQuery, items};
use super::{ApiError, ApiResult, ApiState, JsonBody, load_dag, paginate};
use crate::metastore::{
    DagRecord, DagRun as RunRecord, ImportErrorRecord, Metastore, RunOrder, RunQuery,
};
use aileron_model::dag::DagSpec;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// A DAG as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dag {
    pub dag_id: String,
    pub dag_display_name: String,
    pub description: Option<String>,
    /// The DAG file, relative to the DAGs folder.
    pub fileloc: String,
    pub is_paused: bool,
    /// False once the DAG's file is gone; its runs stay readable.
    pub is_active: bool,
    pub has_import_errors: bool,
    pub owners: Vec<String>,
    pub tags: Vec<Tag>,
    /// The schedule as written (`@daily`, a cron expression, …); `null` for manual.
    pub timetable_summary: Option<String>,
    pub timetable_description: String,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub catchup: bool,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub timezone: String,
    /// DAG-level params: a plain default, or for a typed param Airflow's
    /// serialized `Param` (`{"__class", "value", "description", "schema"}`; `value`
    /// is null for a param every run must set).
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    pub last_parsed_time: Timestamp,
    /// Content hash of the DAG file the current version came from.
    pub dag_version: String,
    /// Logical date of the next scheduled run; `null` if the DAG will not be
    /// scheduled again.
    pub next_dagrun: Option<Timestamp>,
    pub next_dagrun_data_interval_start: Option<Timestamp>,
    pub next_dagrun_data_interval_end: Option<Timestamp>,
    /// When the next scheduled run may be created.
    pub next_dagrun_create_after: Option<Timestamp>,
    /// With `dag_runs_limit=N` on the list: the DAG's latest N runs by logical
    /// date, oldest first (the name Airflow's UI API uses). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_dag_runs: Option<Vec<super::dag_runs::DagRun>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tag {
    pub name: String,
}

/// A DAG with its tasks, their edges and its source file.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagWithTasks {
    #[serde(flatten)]
    pub dag: Dag,
    pub tasks: Vec<DagTask>,
    /// Every upstream → downstream dependency, once.
    pub edges: Vec<Edge>,
    /// The DAG file's text.
    pub source: String,
    pub doc_md: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagTask {
    pub task_id: String,
    /// The operator as written in the DAG file (`echo`, `http@1.2.0`, …).
    pub operator: String,
    pub operator_name: String,
    pub operator_version: String,
    /// `sha256:` digest of the operator component the task runs.
    pub plugin_digest: String,
    pub upstream_task_ids: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub trigger_rule: String,
    pub retries: u32,
    /// Seconds.
    pub retry_delay: f64,
    pub retry_exponential_backoff: bool,
    /// Seconds; `null` for no limit.
    pub execution_timeout: Option<f64>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    pub queue: String,
    pub is_mapped: bool,
    /// The task's params as written (templates unrendered).
    #[schema(value_type = Object)]
    pub params: Value,
    pub doc_md: Option<String>,
}

/// A dependency between two tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct Edge {
    pub source_id: String,
    pub target_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagCollection {
    pub dags: Vec<Dag>,
    pub total_entries: usize,
}

pub fn dag(d: &DagRecord, spec: &DagSpec, errors: &[ImportErrorRecord]) -> Dag {
    // The scheduler decides with its own clock; this is the wall-clock view of the
    // same rule, for display.
    let next = if d.is_active {
        spec.schedule.next_dagrun(
            &spec.schedule_context(),
            d.last_scheduled_interval.as_ref(),
            Timestamp::now(),
        )
    } else {
        None
    };
    Dag {
        dag_id: d.dag_id.clone(),
        dag_display_name: d.dag_id.clone(),
        description: spec.description.clone(),
        fileloc: d.fileloc.clone(),
        is_paused: d.is_paused,
        is_active: d.is_active,
        has_import_errors: errors
            .iter()
            .any(|e| e.tenant == d.tenant && e.filename == d.fileloc),
        owners: vec![spec.owner.clone()],
        tags: spec.tags.iter().map(|t| Tag { name: t.clone() }).collect(),
        timetable_summary: spec.schedule_str.clone(),
        timetable_description: spec.schedule.description(),
        max_active_runs: spec.max_active_runs,
        max_active_tasks: spec.max_active_tasks,
        catchup: spec.catchup,
        start_date: spec.start_date,
        end_date: spec.end_date,
        timezone: spec.timezone.clone(),
        params: params_json(spec),
        last_parsed_time: d.last_parsed,
        dag_version: d.version.clone(),
        next_dagrun: next.map(|i| i.logical_date()),
        next_dagrun_data_interval_start: next.map(|i| i.start),
        next_dagrun_data_interval_end: next.map(|i| i.end),
        next_dagrun_create_after: next.map(|i| i.run_after()),
        latest_dag_runs: None,
    }
}

fn with_tasks(d: &DagRecord, spec: &DagSpec, errors: &[ImportErrorRecord]) -> DagWithTasks {
    let tasks = spec
        .tasks
        .iter()
        .map(|t| DagTask {
            task_id: t.task_id.clone(),
            operator: t.operator.clone(),
            operator_name: t.operator_name.clone(),
            operator_version: t.operator_version.clone(),
            plugin_digest: t.operator_digest.clone(),
            upstream_task_ids: t.upstream.clone(),
            downstream_task_ids: t.downstream.clone(),
            trigger_rule: t.trigger_rule.as_str().to_owned(),
            retries: t.retries,
            retry_delay: t.retry_delay.as_secs_f64(),
            retry_exponential_backoff: t.retry_exponential_backoff,
            execution_timeout: t.execution_timeout.map(|d| d.as_secs_f64()),
            pool: t.pool.clone(),
            pool_slots: t.pool_slots,
            priority_weight: t.priority_weight,
            queue: t.queue.clone(),
            is_mapped: t.expand.is_some(),
            params: t.params.clone(),
            doc_md: t.doc.clone(),
        })
        .collect();
    let edges = spec
        .tasks
        .iter()
        .flat_map(|t| {
            t.downstream.iter().map(|down| Edge {
                source_id: t.task_id.clone(),
                target_id: down.clone(),
            })
        })
        .collect();
    DagWithTasks {
        dag: dag(d, spec, errors),
        tasks,
        edges,
        source: spec.source.clone(),
        doc_md: spec.doc.clone(),
    }
}

// No `#[serde(flatten)]` of the paging fields here: query strings flattened through
// serde lose their types ("10" stays a string), so each filter repeats them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// Only DAGs whose id contains this.
    dag_id_pattern: Option<String>,
    /// Only DAGs whose file still exists (default true).
    only_active: Option<bool>,
    paused: Option<bool>,
    /// Tags, comma-separated or the parameter repeated: a DAG with any of them,
    /// as in Airflow.
    tags: Option<String>,
    /// Include each listed DAG's latest runs (at most 25) as `latest_dag_runs`,
    /// so a DAG list with recent runs takes one request.
    dag_runs_limit: Option<usize>,
}

/// The most runs `dag_runs_limit` may ask for per DAG.
const MAX_LATEST_RUNS: usize = 25;

/// How many latest runs `dag_runs_limit` asks for per DAG (none when absent);
/// more than [`MAX_LATEST_RUNS`] is a bad request.
pub fn runs_limit(asked: Option<usize>) -> ApiResult<usize> {
    let n = asked.unwrap_or(0);
    if n > MAX_LATEST_RUNS {
        return Err(ApiError::bad_request(format!(
            "dag_runs_limit may be at most {MAX_LATEST_RUNS}"
        )));
    }
    Ok(n)
}

/// List DAGs.
#[utoipa::path(
    get, path = "/dags", tag = "DAG", operation_id = "get_dags",
    params(DagFilter),
    responses((status = 200, description = "One page of DAGs.", body = DagCollection), BadRequest)
)]
pub async fn list_dags(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<DagFilter>,
) -> ApiResult<Json<DagCollection>> {
    let runs_limit = runs_limit(q.dag_runs_limit)?;
    let tenant = caller.tenant().to_owned();
    let (dags, total_entries) = s
        .blocking(move |m| {
            let tags: Vec<&str> = q
                .tags
                .as_deref()
                .map(|t| items(t).collect())
                .unwrap_or_default();
            // Filter on the records, then read the specs of the one page only.
            let matching: Vec<DagRecord> = m
                .tenant_dags(&tenant)?
                .into_iter()
                .filter(|d| {
                    (d.is_active || !q.only_active.unwrap_or(true))
                        && q.paused.is_none_or(|p| p == d.is_paused)
                        && q.dag_id_pattern
                            .as_ref()
                            .is_none_or(|p| d.dag_id.contains(p.as_str()))
                        && (tags.is_empty() || tags.iter().any(|t| d.tags.iter().any(|x| x == t)))
                })
                .collect();
            let (page, total) = paginate(matching, q.limit, q.offset);
            let errors = m.tenant_import_errors(&tenant)?;
            let mut out = Vec::with_capacity(page.len());
            for d in page {
                let Some(spec) = m.dag_version(&d.tenant, &d.dag_id, &d.version)? else {
                    continue;
                };
                let mut listed = dag(&d, &spec, &errors);
                if runs_limit > 0 {
                    let runs = latest_runs(m, &d.tenant, &d.dag_id, runs_limit)?;
                    listed.latest_dag_runs =
                        Some(runs.iter().map(super::dag_runs::dag_run).collect());
                }
                out.push(listed);
            }
            Ok((out, total))
        })
        .await?;
    Ok(Json(DagCollection {
        dags,
        total_entries,
    }))
}

/// A DAG's latest `n` runs by logical date, oldest first: one index page.
pub fn latest_runs(
    m: &Metastore,
    tenant: &str,
    dag_id: &str,
    n: usize,
) -> ApiResult<Vec<RunRecord>> {
    let mut page = m.runs_page(&RunQuery {
        tenant,
        dag_id: Some(dag_id),
        order: RunOrder::LogicalDate,
        descending: true,
        states: None,
        offset: 0,
        limit: n,
    })?;
    page.runs.reverse();
    Ok(page.runs)
}

/// Get a DAG with its tasks, edges and source.
#[utoipa::path(
    get, path = "/dags/{dag_id}", tag = "DAG", operation_id = "get_dag",
    params(DagPath),
    responses(
        (status = 200, description = "The DAG with its tasks, edges and source.", body = DagWithTasks),
        NotFound,
    )
)]
pub async fn get_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<Json<DagWithTasks>> {
    let (d, spec) = load_dag(&s, &caller, &dag_id)?;
    Ok(Json(with_tasks(
        &d,
        &spec,
        &s.metastore.tenant_import_errors(caller.tenant())?,
    )))
}

/// Airflow's `DAGDetail`: the DAG with what its file says, as Airflow 2's
/// `get_dag_details` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagDetail {
    #[serde(flatten)]
    pub dag: Dag,
    /// Names the DAG file (hex of its path), as Airflow 3's `/dagSources` takes it.
    pub file_token: String,
    pub root_dag_id: Option<String>,
    pub is_subdag: bool,
    pub concurrency: u32,
    pub dag_run_timeout: Option<TimeDelta>,
    pub doc_md: Option<String>,
    pub default_view: String,
    pub orientation: String,
    pub is_paused_upon_creation: Option<bool>,
    pub last_parsed: Timestamp,
    pub template_search_path: Option<Vec<String>>,
    pub render_template_as_native_obj: bool,
    #[schema(value_type = Option<Object>)]
    pub dataset_expression: Option<Value>,
}

/// Airflow's serialized `timedelta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeDelta {
    #[serde(rename = "__type")]
    pub kind: &'static str,
    pub days: u64,
    pub seconds: u64,
    pub microseconds: u32,
}

impl From<std::time::Duration> for TimeDelta {
    fn from(d: std::time::Duration) -> Self {
        const DAY: u64 = 24 * 3600;
        TimeDelta {
            kind: "TimeDelta",
            days: d.as_secs() / DAY,
            seconds: d.as_secs() % DAY,
            microseconds: d.subsec_micros(),
        }
    }
}

/// Get a DAG with what its file says (Airflow's `DAGDetail`).
#[utoipa::path(
    get, path = "/dags/{dag_id}/details", tag = "DAG", operation_id = "get_dag_details",
    params(DagPath),
    responses(
        (status = 200, description = "The DAG's details.", body = DagDetail),
        NotFound,
    )
)]
pub async fn get_dag_details(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<Json<DagDetail>> {
    let (d, spec) = load_dag(&s, &caller, &dag_id)?;
    let errors = s.metastore.tenant_import_errors(caller.tenant())?;
    Ok(Json(DagDetail {
        dag: dag(&d, &spec, &errors),
        file_token: file_token(&d.fileloc),
        root_dag_id: None,
        is_subdag: false,
        concurrency: spec.max_active_tasks,
        dag_run_timeout: spec.dagrun_timeout.map(TimeDelta::from),
        doc_md: spec.doc.clone(),
        default_view: "grid".to_owned(),
        orientation: "LR".to_owned(),
        is_paused_upon_creation: None,
        last_parsed: d.last_parsed,
        template_search_path: None,
        render_template_as_native_obj: false,
        dataset_expression: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDag {
    is_paused: bool,
}

/// Pause or unpause a DAG.
#[utoipa::path(
    patch, path = "/dags/{dag_id}", tag = "DAG", operation_id = "patch_dag",
    params(DagPath),
    request_body = PatchDag,
    responses(
        (status = 200, description = "The DAG as changed.", body = Dag),
        BadRequest,
        NotFound,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn patch_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    JsonBody(body): JsonBody<PatchDag>,
) -> ApiResult<Json<Dag>> {
    load_dag(&s, &caller, &dag_id)?;
    s.scheduler
        .set_paused(caller.tenant(), &dag_id, body.is_paused)
        .await?;
    let (d, spec) = load_dag(&s, &caller, &dag_id)?;
    Ok(Json(dag(
        &d,
        &spec,
        &s.metastore.tenant_import_errors(caller.tenant())?,
    )))
}

/// The file token of a DAG file, which `/dagSources` takes: its path,
/// hex-encoded (Airflow signs it; a tenant reads only its own files either way).
pub(crate) fn file_token(fileloc: &str) -> String {
    hex::encode(fileloc.as_bytes())
}

/// The DAG's params as Airflow's API shows them: plain values as they are, typed
/// params as serialized `Param` objects, which the trigger form builds fields from.
pub(crate) fn params_json(spec: &aileron_model::dag::DagSpec) -> Map<String, Value> {
    let mut out = spec.params.clone();
    for (name, p) in &spec.param_specs {
        out.insert(
            name.clone(),
            serde_json::json!({
                "__class": "airflow.models.param.Param",
                "value": p.default,
                "description": p.description,
                "schema": p.schema,
            }),
        );
    }
    out
}
