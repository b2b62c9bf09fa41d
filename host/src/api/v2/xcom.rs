//! XCom entries in v2: list a TaskInstance's, get one with its value, and set,
//! change or delete one by hand (written straight to the metastore, as
//! Airflow's API writes its table; a try that runs again starts without them).

use super::super::paths::{TaskPath, XcomPath};
use super::super::{ApiError, ApiResult, ApiState, Caller, load_run, load_ti, paginate};
use super::{V2Json, V2Query};
use crate::metastore::{TaskInstance as TiRecord, XcomWrite};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `XComResponse` (in lists) and, with `value`, `XComResponseNative`.
#[derive(Debug, Serialize, ToSchema)]
pub struct XComResponse {
    pub key: String,
    /// When the TaskInstance ended (or started, while it runs): Aileron keeps
    /// no time per entry.
    pub timestamp: Timestamp,
    pub logical_date: Option<Timestamp>,
    pub map_index: i64,
    pub task_id: String,
    pub dag_id: String,
    pub run_id: String,
    pub dag_display_name: String,
    pub task_display_name: String,
    pub run_after: Timestamp,
    /// The value as the task pushed it (any JSON); only on a single entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct XComCollectionResponse {
    pub xcom_entries: Vec<XComResponse>,
    pub total_entries: usize,
}

fn entry(ti: &TiRecord, run: &crate::metastore::DagRun, key: String) -> XComResponse {
    let run_after = if run.run_type == crate::metastore::RunType::Manual {
        run.logical_date
    } else {
        run.data_interval.end
    };
    XComResponse {
        key,
        timestamp: ti.end_date.or(ti.start_date).unwrap_or(run.queued_at),
        logical_date: Some(run.logical_date),
        map_index: ti.map_index,
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        run_id: ti.run_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        task_display_name: ti.task_id.clone(),
        run_after,
        value: None,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XComFilter {
    /// Only this key.
    xcom_key: Option<String>,
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
    params(TaskPath, XComFilter),
    responses(
        (status = 200, description = "One page of XCom entries.", body = XComCollectionResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_xcom_entries(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TaskPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
    }): Path<TaskPath>,
    V2Query(q): V2Query<XComFilter>,
) -> ApiResult<Json<XComCollectionResponse>> {
    let run = load_run(&s, &caller, &dag_id, &run_id)?;
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    let entries = s
        .metastore
        .xcom_entries(&ti.tenant, &dag_id, &run_id, &task_id, ti.map_index)?
        .into_iter()
        .filter(|(k, _)| q.xcom_key.as_ref().is_none_or(|want| want == k))
        .map(|(k, _)| entry(&ti, &run, k))
        .collect();
    let (xcom_entries, total_entries) = paginate(entries, q.limit, q.offset);
    Ok(Json(XComCollectionResponse {
        xcom_entries,
        total_entries,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XComEntryQuery {
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    map_index: Option<i64>,
    /// Accepted: values are JSON and always sent as such.
    deserialize: Option<bool>,
    /// With true, the value is sent as its JSON text.
    stringify: Option<bool>,
}

/// Get one XCom entry of a TaskInstance, with its value.
#[utoipa::path(
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
    tag = "XCom", operation_id = "get_xcom_entry",
    params(XcomPath, XComEntryQuery),
    responses(
        (status = 200, description = "The XCom entry.", body = XComResponse),
        (status = 404, description = "No such TaskInstance or XCom."),
    )
)]
pub async fn get_xcom_entry(
    caller: Caller,
    State(s): State<ApiState>,
    Path(XcomPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        xcom_key: key,
    }): Path<XcomPath>,
    V2Query(q): V2Query<XComEntryQuery>,
) -> ApiResult<Json<XComResponse>> {
    let _ = q.deserialize;
    let run = load_run(&s, &caller, &dag_id, &run_id)?;
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    let (key, text) = s
        .metastore
        .xcom_entries(&ti.tenant, &dag_id, &run_id, &task_id, ti.map_index)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "XCom entry with key: `{key}` not found for task `{task_id}` of DagRun `{run_id}`"
            ))
        })?;
    // Values are stored as JSON text; one that is not (an older record) is the
    // string it is.
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    let mut out = entry(&ti, &run, key);
    out.value = Some(if q.stringify == Some(true) {
        Value::String(text)
    } else {
        value
    });
    Ok(Json(out))
}

/// The longest key, and the most entries one TaskInstance holds: the limits a
/// task's own pushes have in the sandbox.
const MAX_KEY: usize = 512;
const MAX_KEYS: usize = 1000;

/// Airflow's `XComCreateBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct XComCreateBody {
    key: String,
    /// Any JSON.
    #[schema(value_type = Object)]
    value: Value,
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    #[serde(default = "unmapped")]
    map_index: i64,
}

fn unmapped() -> i64 {
    -1
}

/// Airflow's `XComUpdateBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct XComUpdateBody {
    /// Any JSON.
    #[schema(value_type = Object)]
    value: Value,
    #[serde(default = "unmapped")]
    map_index: i64,
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(ApiError::bad_request(format!(
            "an XCom key is 1 to {MAX_KEY} bytes"
        )));
    }
    Ok(())
}

/// Set a new XCom entry of a TaskInstance.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries",
    tag = "XCom", operation_id = "create_xcom_entry",
    params(TaskPath),
    request_body = XComCreateBody,
    responses(
        (status = 201, description = "The entry, set.", body = XComResponse),
        (status = 400, description = "A key that cannot be one."),
        (status = 404, description = "No such TaskInstance."),
        (status = 409, description = "The TaskInstance has an entry with that key."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn create_xcom_entry(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TaskPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
    }): Path<TaskPath>,
    V2Json(body): V2Json<XComCreateBody>,
) -> ApiResult<(StatusCode, Json<XComResponse>)> {
    check_key(&body.key)?;
    let run = load_run(&s, &caller, &dag_id, &run_id)?;
    let ti = load_ti(
        &s,
        &caller,
        &dag_id,
        &run_id,
        &task_id,
        Some(body.map_index),
    )?;
    let held = s
        .metastore
        .xcom_entries(&ti.tenant, &dag_id, &run_id, &task_id, ti.map_index)?
        .len();
    if held >= MAX_KEYS {
        return Err(ApiError::bad_request(format!(
            "a TaskInstance holds at most {MAX_KEYS} XCom entries"
        )));
    }
    if !s
        .metastore
        .put_xcom(&ti, &body.key, &body.value.to_string(), XcomWrite::Create)?
    {
        return Err(ApiError::conflict(format!(
            "The XCom with key: `{}` with mentioned task instance already exists.",
            body.key
        )));
    }
    let mut out = entry(&ti, &run, body.key);
    out.value = Some(body.value);
    Ok((StatusCode::CREATED, Json(out)))
}

/// Change the value of an XCom entry.
#[utoipa::path(
    patch,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
    tag = "XCom", operation_id = "update_xcom_entry",
    params(XcomPath),
    request_body = XComUpdateBody,
    responses(
        (status = 200, description = "The entry, changed.", body = XComResponse),
        (status = 404, description = "No such TaskInstance or entry."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn update_xcom_entry(
    caller: Caller,
    State(s): State<ApiState>,
    Path(XcomPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        xcom_key: key,
    }): Path<XcomPath>,
    V2Json(body): V2Json<XComUpdateBody>,
) -> ApiResult<Json<XComResponse>> {
    let run = load_run(&s, &caller, &dag_id, &run_id)?;
    let ti = load_ti(
        &s,
        &caller,
        &dag_id,
        &run_id,
        &task_id,
        Some(body.map_index),
    )?;
    if !s
        .metastore
        .put_xcom(&ti, &key, &body.value.to_string(), XcomWrite::Update)?
    {
        return Err(ApiError::not_found(format!(
            "The XCom with key: `{key}` with mentioned task instance doesn't exist."
        )));
    }
    let mut out = entry(&ti, &run, key);
    out.value = Some(body.value);
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XComDeleteQuery {
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    map_index: Option<i64>,
}

/// Delete an XCom entry.
#[utoipa::path(
    delete,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
    tag = "XCom", operation_id = "delete_xcom_entry",
    params(XcomPath, XComDeleteQuery),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such TaskInstance or entry."),
    )
)]
pub async fn delete_xcom_entry(
    caller: Caller,
    State(s): State<ApiState>,
    Path(XcomPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        xcom_key: key,
    }): Path<XcomPath>,
    V2Query(q): V2Query<XComDeleteQuery>,
) -> ApiResult<StatusCode> {
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    if s.metastore.delete_xcom(&ti, &key)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "The XCom with key: `{key}` with mentioned task instance doesn't exist."
        )))
    }
}
