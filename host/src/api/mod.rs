//! The REST API under `/api/v1`, with Airflow's resource and field names, built as a
//! plain [`router`] so tests can drive it without a socket. Reads go straight to the
//! metastore (redb serves them beside the writer); changes go through the scheduler,
//! the single writer.

mod error;
mod json;

pub use json::plugin as plugin_json;

pub use error::ApiError;

use crate::metastore::{DEFAULT_TENANT, Metastore};
use crate::scheduler::{SchedulerError, SchedulerHandle, TiKey};
use aileron_sandbox::Registry;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub metastore: Metastore,
    pub scheduler: SchedulerHandle,
    pub registry: Registry,
}

/// Request bodies above this are refused with 413: every body the API takes is a
/// small JSON document, and a cap keeps a client from making the host buffer
/// arbitrary amounts of memory.
const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/dags", get(list_dags))
        .route("/dags/{dag_id}", get(get_dag).patch(patch_dag))
        .route("/dags/{dag_id}/dagRuns", get(list_runs).post(trigger_run))
        .route("/dags/{dag_id}/dagRuns/{run_id}", get(get_run))
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            get(list_tis),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            get(get_ti),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            get(get_log),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries",
            get(list_xcom),
        )
        .route("/importErrors", get(list_import_errors))
        .route("/plugins", get(list_plugins))
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(error::problem_json))
        .with_state(state);
    Router::new()
        .nest("/api/v1", api)
        .route("/", get(crate::web::index))
        .route("/health", get(|| async { "ok" }))
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// Paging as Airflow's API does it.
#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

impl Page {
    fn apply<T>(&self, items: Vec<T>) -> Vec<T> {
        let limit = self.limit.unwrap_or(100).min(10_000);
        items
            .into_iter()
            .skip(self.offset.unwrap_or(0))
            .take(limit)
            .collect()
    }
}

async fn health(State(s): State<ApiState>) -> ApiResult {
    let db = match s.metastore.schema_version() {
        Ok(_) => "healthy",
        Err(_) => "unhealthy",
    };
    Ok(Json(json!({
        "metadatabase": {"status": db},
        "scheduler": {"status": if s.scheduler.is_alive() { "healthy" } else { "unhealthy" }},
    })))
}

async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION"), "git_version": null}))
}

// No `#[serde(flatten)]` of `Page` here: query strings flattened through serde
// lose their types ("10" stays a string), so the paging fields are repeated.
#[derive(Deserialize)]
struct DagFilter {
    limit: Option<usize>,
    offset: Option<usize>,
    dag_id_pattern: Option<String>,
    only_active: Option<bool>,
    paused: Option<bool>,
    tags: Option<String>,
}

async fn list_dags(State(s): State<ApiState>, Query(q): Query<DagFilter>) -> ApiResult {
    let mut out = Vec::new();
    let errors = s.metastore.import_errors()?;
    for d in s.metastore.dags()? {
        if d.tenant != DEFAULT_TENANT
            || (q.only_active.unwrap_or(true) && !d.is_active)
            || q.paused.is_some_and(|p| p != d.is_paused)
            || q.dag_id_pattern
                .as_ref()
                .is_some_and(|p| !d.dag_id.contains(p.as_str()))
        {
            continue;
        }
        let Some(spec) = s.metastore.dag_version(&d.tenant, &d.dag_id, &d.version)? else {
            continue;
        };
        if let Some(tags) = &q.tags
            && !tags.split(',').all(|t| spec.tags.iter().any(|x| x == t))
        {
            continue;
        }
        out.push(json::dag(&d, &spec, &errors));
    }
    let total = out.len();
    Ok(Json(
        json!({"dags": Page { limit: q.limit, offset: q.offset }.apply(out), "total_entries": total}),
    ))
}

fn load_dag(
    s: &ApiState,
    dag_id: &str,
) -> ApiResult<(crate::metastore::DagRecord, aileron_model::dag::DagSpec)> {
    let d = s
        .metastore
        .dag(DEFAULT_TENANT, dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("DAG `{dag_id}` not found")))?;
    let spec = s
        .metastore
        .dag_version(&d.tenant, &d.dag_id, &d.version)?
        .ok_or_else(|| ApiError::not_found(format!("DAG `{dag_id}` not found")))?;
    Ok((d, spec))
}

async fn get_dag(State(s): State<ApiState>, Path(dag_id): Path<String>) -> ApiResult {
    let (d, spec) = load_dag(&s, &dag_id)?;
    let errors = s.metastore.import_errors()?;
    let mut v = json::dag(&d, &spec, &errors);
    v["tasks"] = json::tasks(&spec);
    v["source"] = Value::String(spec.source.clone());
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchDag {
    is_paused: bool,
}

async fn patch_dag(
    State(s): State<ApiState>,
    Path(dag_id): Path<String>,
    body: Result<Json<PatchDag>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    load_dag(&s, &dag_id)?;
    s.scheduler
        .set_paused(DEFAULT_TENANT, &dag_id, body.is_paused)
        .await?;
    let (d, spec) = load_dag(&s, &dag_id)?;
    Ok(Json(json::dag(&d, &spec, &s.metastore.import_errors()?)))
}

async fn list_runs(
    State(s): State<ApiState>,
    Path(dag_id): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult {
    load_dag(&s, &dag_id)?;
    let runs: Vec<Value> = s
        .metastore
        .dag_runs(DEFAULT_TENANT, &dag_id)?
        .iter()
        .map(json::dag_run)
        .collect();
    let total = runs.len();
    Ok(Json(
        json!({"dag_runs": page.apply(runs), "total_entries": total}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    dag_run_id: Option<String>,
    logical_date: Option<String>,
    conf: Option<Value>,
    #[allow(dead_code)]
    note: Option<String>,
}

async fn trigger_run(
    State(s): State<ApiState>,
    Path(dag_id): Path<String>,
    body: Result<Json<TriggerBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let conf = match body.conf {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::bad_request("`conf` must be a JSON object")),
    };
    let logical_date = body
        .logical_date
        .map(|d| crate::cli::parse_datetime(&d))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let run = s
        .scheduler
        .trigger(DEFAULT_TENANT, &dag_id, body.dag_run_id, logical_date, conf)
        .await?;
    Ok(Json(json::dag_run(&run)))
}

async fn get_run(
    State(s): State<ApiState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult {
    let run = s
        .metastore
        .dag_run(DEFAULT_TENANT, &dag_id, &run_id)?
        .ok_or_else(|| {
            ApiError::not_found(format!("DagRun `{run_id}` of DAG `{dag_id}` not found"))
        })?;
    Ok(Json(json::dag_run(&run)))
}

async fn list_tis(
    State(s): State<ApiState>,
    Path((dag_id, run_id)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> ApiResult {
    if s.metastore
        .dag_run(DEFAULT_TENANT, &dag_id, &run_id)?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "DagRun `{run_id}` of DAG `{dag_id}` not found"
        )));
    }
    let tis: Vec<Value> = s
        .metastore
        .task_instances(DEFAULT_TENANT, &dag_id, &run_id)?
        .iter()
        .map(json::task_instance)
        .collect();
    let total = tis.len();
    Ok(Json(
        json!({"task_instances": page.apply(tis), "total_entries": total}),
    ))
}

#[derive(Deserialize)]
struct MapIndex {
    map_index: Option<i64>,
}

fn load_ti(
    s: &ApiState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: Option<i64>,
) -> ApiResult<crate::metastore::TaskInstance> {
    s.metastore
        .task_instance(
            DEFAULT_TENANT,
            dag_id,
            run_id,
            task_id,
            map_index.unwrap_or(-1),
        )?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "TaskInstance `{task_id}` of DagRun `{run_id}` of DAG `{dag_id}` not found"
            ))
        })
}

async fn get_ti(
    State(s): State<ApiState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(q): Query<MapIndex>,
) -> ApiResult {
    let ti = load_ti(&s, &dag_id, &run_id, &task_id, q.map_index)?;
    let mut v = json::task_instance(&ti);
    v["tries"] = json::tries(&ti);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct LogQuery {
    map_index: Option<i64>,
    /// Byte offset to read from, to tail a running try.
    offset: Option<usize>,
}

async fn get_log(
    State(s): State<ApiState>,
    Path((dag_id, run_id, task_id, try_number)): Path<(String, String, String, u32)>,
    Query(q): Query<LogQuery>,
) -> ApiResult {
    let ti = load_ti(&s, &dag_id, &run_id, &task_id, q.map_index)?;
    if try_number == 0 || try_number > ti.try_number.max(1) {
        return Err(ApiError::not_found(format!(
            "try {try_number} of `{task_id}` does not exist (latest is {})",
            ti.try_number
        )));
    }
    let key = TiKey {
        tenant: ti.tenant.clone(),
        dag_id: ti.dag_id.clone(),
        run_id: ti.run_id.clone(),
        task_id: ti.task_id.clone(),
        map_index: ti.map_index,
    };
    let (content, running) = match s.scheduler.live_log(&key, try_number) {
        Some(live) => (live, true),
        None => (s.metastore.log(&ti, try_number)?.unwrap_or_default(), false),
    };
    let offset = q.offset.unwrap_or(0).min(content.len());
    // Never split a UTF-8 character: move the offset back to a boundary.
    let offset = (0..=offset)
        .rev()
        .find(|i| content.is_char_boundary(*i))
        .unwrap_or(0);
    Ok(Json(json!({
        "content": &content[offset..],
        "offset": content.len(),
        "running": running,
    })))
}

async fn list_xcom(
    State(s): State<ApiState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(q): Query<MapIndex>,
) -> ApiResult {
    let ti = load_ti(&s, &dag_id, &run_id, &task_id, q.map_index)?;
    let entries: Vec<Value> = s
        .metastore
        .xcom_entries(&ti.tenant, &dag_id, &run_id, &task_id, ti.map_index)?
        .into_iter()
        .map(|(key, value)| {
            json!({
                "key": key,
                "value": serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value)),
                "task_id": task_id, "dag_id": dag_id, "dag_run_id": run_id, "map_index": ti.map_index,
            })
        })
        .collect();
    let total = entries.len();
    Ok(Json(
        json!({"xcom_entries": entries, "total_entries": total}),
    ))
}

async fn list_import_errors(State(s): State<ApiState>, Query(page): Query<Page>) -> ApiResult {
    let errors: Vec<Value> = s
        .metastore
        .import_errors()?
        .iter()
        .filter(|e| e.tenant == DEFAULT_TENANT)
        .enumerate()
        .map(|(i, e)| json::import_error(i, e))
        .collect();
    let total = errors.len();
    Ok(Json(
        json!({"import_errors": page.apply(errors), "total_entries": total}),
    ))
}

async fn list_plugins(State(s): State<ApiState>) -> ApiResult {
    let plugins: Vec<Value> = s.registry.list().iter().map(json::plugin).collect();
    let total = plugins.len();
    Ok(Json(json!({"plugins": plugins, "total_entries": total})))
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::DagNotFound(_) => ApiError::not_found(e.to_string()),
            SchedulerError::RunExists { .. } => ApiError::conflict(e.to_string()),
            SchedulerError::BadConf(_) => ApiError::bad_request(e.to_string()),
            SchedulerError::Metastore(m) => m.into(),
            SchedulerError::Stopped => ApiError::unavailable("the scheduler is not running"),
        }
    }
}
