//! DagRuns in v2: list (per DAG, or every DAG with `~`), trigger, get, set state,
//! delete.

use super::super::dag_runs::{self as v1, DagRun as V1Run, RunFilter};
use super::super::paths::{AnyDagPath, DagPath, RunPath};
use super::super::query::ApiQuery;
use super::super::states::{DagRunType, DagState};
use super::super::{ApiError, ApiResult, ApiState, Caller, JsonBody, present};
use super::dag_versions::{DagVersionResponse, fill_versions};
use super::{V2Json, V2Query};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `DAGRunResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub logical_date: Option<Timestamp>,
    pub queued_at: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Seconds.
    pub duration: Option<f64>,
    pub data_interval_start: Option<Timestamp>,
    pub data_interval_end: Option<Timestamp>,
    /// When the run could start: the logical date of a manual run, the end of
    /// its interval for a scheduled one.
    pub run_after: Timestamp,
    pub last_scheduling_decision: Option<Timestamp>,
    pub run_type: DagRunType,
    pub state: DagState,
    /// Aileron does not record who or what triggered a run: `null`.
    pub triggered_by: Option<String>,
    pub triggering_user_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub conf: Option<Map<String, Value>>,
    /// Aileron does not keep notes: `null`.
    pub note: Option<String>,
    /// The DAG version the run ran (see `/dagVersions`).
    pub dag_versions: Vec<DagVersionResponse>,
    pub bundle_version: Option<String>,
    pub dag_display_name: String,
    pub partition_key: Option<String>,
    pub partition_date: Option<String>,
    /// Aileron's: the backfill that created (or last re-ran) this run; `null`
    /// for others.
    pub backfill_id: Option<u64>,
    /// The content hash of the run's DAG version, to fill `dag_versions` from.
    #[serde(skip)]
    pub version_hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagRunCollectionResponse {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: usize,
}

pub fn response(r: V1Run) -> DagRunResponse {
    let run_after = if r.run_type == DagRunType::Manual {
        r.logical_date
    } else {
        r.data_interval_end
    };
    DagRunResponse {
        dag_display_name: r.dag_id.clone(),
        dag_run_id: r.dag_run_id,
        dag_id: r.dag_id,
        logical_date: Some(r.logical_date),
        queued_at: Some(r.queued_at),
        start_date: r.start_date,
        end_date: r.end_date,
        duration: r.duration,
        data_interval_start: Some(r.data_interval_start),
        data_interval_end: Some(r.data_interval_end),
        run_after,
        last_scheduling_decision: None,
        run_type: r.run_type,
        state: r.state,
        triggered_by: None,
        triggering_user_name: None,
        conf: Some(r.conf),
        note: None,
        dag_versions: Vec::new(),
        version_hash: r.dag_version,
        bundle_version: None,
        partition_key: None,
        partition_date: None,
        backfill_id: r.backfill_id,
    }
}

/// The v2 form of one run the v1 handler answered, with its DAG version.
fn one(s: &ApiState, tenant: &str, run: V1Run) -> ApiResult<Json<DagRunResponse>> {
    let mut runs = [response(run)];
    fill_versions(s, tenant, &mut runs)?;
    let [run] = runs;
    Ok(Json(run))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// States (repeat the parameter).
    state: Option<String>,
    /// Run types (repeat the parameter): `manual`, `scheduled`, `backfill`.
    run_type: Option<String>,
    /// `id` (default), `logical_date`, `run_after`, `start_date`, `end_date`,
    /// `queued_at`, `dag_run_id` or `state`, `-` before it for descending.
    order_by: Option<String>,
}

/// List DagRuns of a DAG, or of every DAG with `~` as the DAG id.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns", tag = "DagRun", operation_id = "get_dag_runs",
    params(AnyDagPath, RunListFilter),
    responses(
        (status = 200, description = "One page of DagRuns.", body = DagRunCollectionResponse),
        (status = 400, description = "An order or state that cannot be used."),
        (status = 404, description = "No such DAG."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_dag_runs(
    caller: Caller,
    state: State<ApiState>,
    path: Path<AnyDagPath>,
    V2Query(q): V2Query<RunListFilter>,
) -> ApiResult<Json<DagRunCollectionResponse>> {
    let types: Vec<String> = q
        .run_type
        .as_deref()
        .map(|t| t.split(',').map(|t| t.trim().to_owned()).collect())
        .unwrap_or_default();
    for t in &types {
        if !matches!(t.as_str(), "manual" | "scheduled" | "backfill") {
            return Err(ApiError::bad_request(format!(
                "Aileron has no DagRuns of type `{t}`; it has manual, scheduled and backfill"
            )));
        }
    }
    let order_by = q.order_by.map(|o| o.replace("run_after", "logical_date"));
    let (s, tenant) = (state.0.clone(), caller.tenant().to_owned());
    if !types.is_empty() {
        // Filtered here: the run index has no type. Read every match, then page.
        let Json(all) = v1::list_runs(
            caller,
            state,
            path,
            ApiQuery(RunFilter {
                limit: Some(usize::MAX),
                offset: None,
                state: q.state,
                order_by,
            }),
        )
        .await?;
        let mut runs: Vec<DagRunResponse> = all
            .dag_runs
            .into_iter()
            .map(response)
            .filter(|r| {
                types
                    .iter()
                    .any(|t| serde_json::json!(r.run_type) == *t.as_str())
            })
            .collect();
        fill_versions(&s, &tenant, &mut runs)?;
        let (dag_runs, total_entries) = super::super::paginate(runs, q.limit, q.offset);
        return Ok(Json(DagRunCollectionResponse {
            dag_runs,
            total_entries,
        }));
    }
    let Json(page) = v1::list_runs(
        caller,
        state,
        path,
        ApiQuery(RunFilter {
            limit: q.limit,
            offset: q.offset,
            state: q.state,
            order_by,
        }),
    )
    .await?;
    let mut dag_runs: Vec<DagRunResponse> = page.dag_runs.into_iter().map(response).collect();
    fill_versions(&s, &tenant, &mut dag_runs)?;
    Ok(Json(DagRunCollectionResponse {
        dag_runs,
        total_entries: page.total_entries,
    }))
}

/// Airflow's `TriggerDAGRunPostBody`. `logical_date` must be given (it may be
/// `null`: now).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDagRunPostBody {
    dag_run_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    logical_date: Option<Option<String>>,
    data_interval_start: Option<String>,
    data_interval_end: Option<String>,
    run_after: Option<String>,
    #[schema(value_type = Option<Object>)]
    conf: Option<Value>,
    /// Accepted; Aileron does not keep notes.
    note: Option<String>,
    partition_key: Option<String>,
}

/// Trigger a DagRun.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns", tag = "DagRun", operation_id = "trigger_dag_run",
    params(DagPath),
    request_body = TriggerDagRunPostBody,
    responses(
        (status = 200, description = "The DagRun, queued.", body = DagRunResponse),
        (status = 400, description = "Params or conf that do not fit the DAG."),
        (status = 404, description = "No such DAG."),
        (status = 409, description = "A DagRun with that id exists."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn trigger_dag_run(
    caller: Caller,
    state: State<ApiState>,
    path: Path<DagPath>,
    V2Json(body): V2Json<TriggerDagRunPostBody>,
) -> ApiResult<Json<DagRunResponse>> {
    let Some(logical_date) = body.logical_date else {
        return Err(ApiError::unprocessable(
            "`logical_date` is required (it may be null, for now)",
        ));
    };
    for (field, value) in [
        ("data_interval_start", &body.data_interval_start),
        ("data_interval_end", &body.data_interval_end),
        ("run_after", &body.run_after),
        ("partition_key", &body.partition_key),
    ] {
        if value.is_some() {
            return Err(ApiError::bad_request(format!(
                "Aileron does not take `{field}` when triggering: a DagRun's interval \
                 follows from its logical date"
            )));
        }
    }
    let v1_body = serde_json::json!({
        "dag_run_id": body.dag_run_id,
        "logical_date": logical_date,
        "conf": body.conf,
        "note": body.note,
    });
    let v1_body = serde_json::from_value(v1_body)
        .map_err(|e| ApiError::unprocessable(format!("invalid body: {e}")))?;
    let (s, tenant) = (state.0.clone(), caller.tenant().to_owned());
    let Json(run) = v1::trigger_run(caller, state, path, JsonBody(v1_body)).await?;
    one(&s, &tenant, run)
}

/// Get a DagRun.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun", operation_id = "get_dag_run",
    params(RunPath),
    responses(
        (status = 200, description = "The DagRun.", body = DagRunResponse),
        (status = 404, description = "No such DagRun."),
    )
)]
pub async fn get_dag_run(
    caller: Caller,
    state: State<ApiState>,
    path: Path<RunPath>,
) -> ApiResult<Json<DagRunResponse>> {
    let (s, tenant) = (state.0.clone(), caller.tenant().to_owned());
    let Json(run) = v1::get_run(caller, state, path).await?;
    one(&s, &tenant, run)
}

/// Airflow's `DAGRunPatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagRunPatchBody {
    /// `queued`, `success` or `failed`.
    state: Option<String>,
    /// Accepted; Aileron does not keep notes.
    note: Option<String>,
}

/// Set a DagRun's state.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    operation_id = "patch_dag_run",
    params(RunPath),
    request_body = DagRunPatchBody,
    responses(
        (status = 200, description = "The DagRun as changed.", body = DagRunResponse),
        (status = 400, description = "A state a DagRun cannot be set to."),
        (status = 404, description = "No such DagRun."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_dag_run(
    caller: Caller,
    state: State<ApiState>,
    path: Path<RunPath>,
    V2Json(body): V2Json<DagRunPatchBody>,
) -> ApiResult<Json<DagRunResponse>> {
    let _ = body.note;
    let (s, tenant) = (state.0.clone(), caller.tenant().to_owned());
    let Some(new_state) = body.state else {
        let Json(run) = v1::get_run(caller, state, path).await?;
        return one(&s, &tenant, run);
    };
    if !matches!(new_state.as_str(), "queued" | "success" | "failed") {
        return Err(ApiError::unprocessable(format!(
            "`state` must be queued, success or failed, not `{new_state}`"
        )));
    }
    let v1_body = serde_json::from_value(serde_json::json!({ "state": new_state }))
        .map_err(|e| ApiError::unprocessable(format!("invalid body: {e}")))?;
    let Json(run) = v1::patch_run(caller, state, path, JsonBody(v1_body)).await?;
    one(&s, &tenant, run)
}

/// Delete a DagRun with its TaskInstances, logs and XCom.
#[utoipa::path(
    delete, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    operation_id = "delete_dag_run",
    params(RunPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such DagRun."),
        (status = 409, description = "The DagRun is still running."),
    )
)]
pub async fn delete_dag_run(
    caller: Caller,
    state: State<ApiState>,
    path: Path<RunPath>,
) -> ApiResult<StatusCode> {
    v1::delete_run(caller, state, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_body_must_name_logical_date_but_may_make_it_null() {
        let absent: TriggerDagRunPostBody = serde_json::from_str("{}").unwrap();
        assert!(absent.logical_date.is_none());
        let null: TriggerDagRunPostBody =
            serde_json::from_str(r#"{"logical_date": null}"#).unwrap();
        assert_eq!(null.logical_date, Some(None));
        assert!(serde_json::from_str::<TriggerDagRunPostBody>(r#"{"nope": 1}"#).is_err());
    }
}
