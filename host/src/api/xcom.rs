//! XCom entries of a TaskInstance.

use super::Caller;
use super::error::{BadRequest, NotFound};
use super::paths::{TaskPath, XcomPath};
use super::query::ApiQuery;
use super::task_instances::MapIndex;
use super::{ApiError, ApiResult, ApiState, load_ti, paginate};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct XComEntry {
    pub key: String,
    /// The value as the task pushed it (any JSON).
    pub value: Value,
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct XComCollection {
    pub xcom_entries: Vec<XComEntry>,
    pub total_entries: usize,
}

fn entry(
    key: String,
    value: String,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i64,
) -> XComEntry {
    XComEntry {
        key,
        // Values are stored as JSON text; one that is not (an older record) is
        // shown as the string it is.
        value: serde_json::from_str(&value).unwrap_or(Value::String(value)),
        task_id: task_id.to_owned(),
        dag_id: dag_id.to_owned(),
        dag_run_id: run_id.to_owned(),
        map_index,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XComQuery {
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    map_index: Option<i64>,
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
}

/// List the XCom entries a TaskInstance pushed.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries",
    tag = "XCom", operation_id = "get_xcom_entries",
    params(TaskPath, XComQuery),
    responses(
        (status = 200, description = "One page of XCom entries.", body = XComCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn list_xcom(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TaskPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
    }): Path<TaskPath>,
    ApiQuery(q): ApiQuery<XComQuery>,
) -> ApiResult<Json<XComCollection>> {
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    let entries = s
        .metastore
        .xcom_entries(&ti.tenant, &dag_id, &run_id, &task_id, ti.map_index)?
        .into_iter()
        .map(|(k, v)| entry(k, v, &dag_id, &run_id, &task_id, ti.map_index))
        .collect();
    let (xcom_entries, total_entries) = paginate(entries, q.limit, q.offset);
    Ok(Json(XComCollection {
        xcom_entries,
        total_entries,
    }))
}

/// Get one XCom entry of a TaskInstance.
#[utoipa::path(
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
    tag = "XCom", operation_id = "get_xcom_entry",
    params(XcomPath, MapIndex),
    responses(
        (status = 200, description = "The XCom entry.", body = XComEntry),
        BadRequest,
        NotFound,
    )
)]
pub async fn get_xcom(
    caller: Caller,
    State(s): State<ApiState>,
    Path(XcomPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        xcom_key: key,
    }): Path<XcomPath>,
    ApiQuery(q): ApiQuery<MapIndex>,
) -> ApiResult<Json<XComEntry>> {
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    s.metastore
        .xcom_entries(&ti.tenant, &dag_id, &run_id, &task_id, ti.map_index)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(k, v)| Json(entry(k, v, &dag_id, &run_id, &task_id, ti.map_index)))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "TaskInstance `{task_id}` of DagRun `{run_id}` has no XCom `{key}`"
            ))
        })
}
