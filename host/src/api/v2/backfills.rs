//! Backfills in v2: Airflow 3's shapes over the `/api/v1` handlers.

use super::super::backfills::{
    self as v1, Backfill, BackfillFilter, BackfillPostBody as V1Body, RunsByState,
};
use super::super::paths::BackfillPath;
use super::super::query::ApiQuery;
use super::super::{ApiError, ApiResult, ApiState, Caller, JsonBody};
use super::{V2Json, V2Path, V2Query};
use crate::metastore::ReprocessBehavior;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `BackfillResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillResponse {
    pub id: u64,
    pub dag_id: String,
    pub from_date: Timestamp,
    pub to_date: Timestamp,
    #[schema(value_type = Object)]
    pub dag_run_conf: Map<String, Value>,
    pub is_paused: bool,
    pub reprocess_behavior: ReprocessBehavior,
    pub max_active_runs: u32,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Aileron keeps no time of the last change: when it completed, else when
    /// it was created.
    pub updated_at: Timestamp,
    pub dag_display_name: String,
    /// Aileron's own fields: the DagRuns it created or re-ran, how many and in
    /// which states, the dates it skipped, and its order.
    pub run_ids: Vec<String>,
    pub total_runs: usize,
    pub runs_by_state: RunsByState,
    pub skipped_dates: Vec<Timestamp>,
    pub run_backwards: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillCollectionResponse {
    pub backfills: Vec<BackfillResponse>,
    pub total_entries: usize,
}

fn response(b: Backfill) -> BackfillResponse {
    BackfillResponse {
        id: b.id,
        dag_display_name: b.dag_id.clone(),
        dag_id: b.dag_id,
        from_date: b.from_date,
        to_date: b.to_date,
        dag_run_conf: b.dag_run_conf,
        is_paused: b.is_paused,
        reprocess_behavior: b.reprocess_behavior,
        max_active_runs: b.max_active_runs,
        updated_at: b.completed_at.unwrap_or(b.created_at),
        created_at: b.created_at,
        completed_at: b.completed_at,
        run_ids: b.run_ids,
        total_runs: b.total_runs,
        runs_by_state: b.runs_by_state,
        skipped_dates: b.skipped_dates,
        run_backwards: b.run_backwards,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackfillListQuery {
    /// The DAG whose backfills to list (required, as in Airflow).
    dag_id: Option<String>,
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `id` (oldest first, the default) or `-id`.
    order_by: Option<String>,
}

/// List a DAG's backfills.
#[utoipa::path(
    get, path = "/backfills", tag = "Backfill", operation_id = "list_backfills",
    params(BackfillListQuery),
    responses(
        (status = 200, description = "One page of backfills.", body = BackfillCollectionResponse),
        (status = 404, description = "No such DAG."),
        (status = 422, description = "No `dag_id`, or a parameter that does not validate."),
    )
)]
pub async fn list_backfills(
    caller: Caller,
    state: State<ApiState>,
    V2Query(q): V2Query<BackfillListQuery>,
) -> ApiResult<Json<BackfillCollectionResponse>> {
    let Some(dag_id) = q.dag_id else {
        return Err(ApiError::unprocessable(
            "invalid query string: `dag_id` is required",
        ));
    };
    let Json(page) = v1::list_backfills(
        caller,
        state,
        ApiQuery(BackfillFilter {
            dag_id: Some(dag_id),
            limit: q.limit,
            offset: q.offset,
            order_by: q.order_by,
        }),
    )
    .await?;
    Ok(Json(BackfillCollectionResponse {
        backfills: page.backfills.into_iter().map(response).collect(),
        total_entries: page.total_entries,
    }))
}

/// Get a backfill.
#[utoipa::path(
    get, path = "/backfills/{backfill_id}", tag = "Backfill", operation_id = "get_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill.", body = BackfillResponse),
        (status = 404, description = "No such backfill."),
    )
)]
pub async fn get_backfill(
    caller: Caller,
    state: State<ApiState>,
    V2Path(path): V2Path<BackfillPath>,
) -> ApiResult<Json<BackfillResponse>> {
    let Json(b) = v1::get_backfill(caller, state, Path(path)).await?;
    Ok(Json(response(b)))
}

/// Airflow's `BackfillPostBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillPostBody {
    dag_id: String,
    from_date: String,
    to_date: String,
    #[serde(default)]
    run_backwards: bool,
    #[schema(value_type = Option<Object>)]
    dag_run_conf: Option<Value>,
    #[serde(default)]
    reprocess_behavior: ReprocessBehavior,
    #[serde(default = "ten")]
    max_active_runs: u32,
    /// Accepted when not true: each run runs the DAG's current version.
    run_on_latest_version: Option<bool>,
}

fn ten() -> u32 {
    10
}

impl BackfillPostBody {
    fn v1(self) -> V1Body {
        let _ = self.run_on_latest_version;
        V1Body {
            dag_id: self.dag_id,
            from_date: self.from_date,
            to_date: self.to_date,
            run_backwards: self.run_backwards,
            dag_run_conf: self.dag_run_conf,
            reprocess_behavior: self.reprocess_behavior,
            max_active_runs: self.max_active_runs,
        }
    }
}

/// Create a backfill: its runs are queued at once and started oldest first
/// (newest first with `run_backwards`), at most `max_active_runs` at a time.
#[utoipa::path(
    post, path = "/backfills", tag = "Backfill", operation_id = "create_backfill",
    request_body = BackfillPostBody,
    responses(
        (status = 200, description = "The backfill, created.", body = BackfillResponse),
        (status = 400, description = "Dates or conf that do not fit the DAG."),
        (status = 404, description = "No such DAG."),
        (status = 409, description = "The DAG has a backfill in progress."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn create_backfill(
    caller: Caller,
    state: State<ApiState>,
    V2Json(body): V2Json<BackfillPostBody>,
) -> ApiResult<Json<BackfillResponse>> {
    let Json(b) = v1::create_backfill(caller, state, JsonBody(body.v1())).await?;
    Ok(Json(response(b)))
}

/// Airflow's `DryRunBackfillResponse`: one logical date a backfill would run,
/// with what Aileron would do with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunBackfillResponse {
    pub logical_date: Option<Timestamp>,
    pub partition_key: Option<String>,
    pub partition_date: Option<Timestamp>,
    /// `create`, `reprocess` (an existing run re-run) or, with
    /// `include_skipped`, `skip`.
    pub action: String,
    /// The existing run, when there is one.
    pub run_id: Option<String>,
    /// Why a date is skipped.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRunQuery {
    /// Also list the dates the backfill would skip, with why (Aileron's own;
    /// Airflow lists the runs it would make only).
    #[serde(default)]
    include_skipped: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunBackfillCollectionResponse {
    pub backfills: Vec<DryRunBackfillResponse>,
    pub total_entries: usize,
}

/// The logical dates a backfill with this body would run (created or re-run),
/// without creating anything.
#[utoipa::path(
    post, path = "/backfills/dry_run", tag = "Backfill", operation_id = "create_backfill_dry_run",
    params(DryRunQuery),
    request_body = BackfillPostBody,
    responses(
        (status = 200, description = "The dates it would run.", body = DryRunBackfillCollectionResponse),
        (status = 400, description = "Dates or conf that do not fit the DAG."),
        (status = 404, description = "No such DAG."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn create_backfill_dry_run(
    caller: Caller,
    state: State<ApiState>,
    V2Query(q): V2Query<DryRunQuery>,
    V2Json(body): V2Json<BackfillPostBody>,
) -> ApiResult<Json<DryRunBackfillCollectionResponse>> {
    let Json(plan) = v1::dry_run_backfill(caller, state, JsonBody(body.v1())).await?;
    let backfills: Vec<DryRunBackfillResponse> = plan
        .backfills
        .into_iter()
        .filter(|d| q.include_skipped || d.action != "skip")
        .map(|d| DryRunBackfillResponse {
            logical_date: Some(d.logical_date),
            partition_key: None,
            partition_date: None,
            action: d.action,
            run_id: d.run_id,
            reason: d.reason,
        })
        .collect();
    Ok(Json(DryRunBackfillCollectionResponse {
        total_entries: backfills.len(),
        backfills,
    }))
}

/// Pause a backfill: it starts no more runs.
#[utoipa::path(
    put, path = "/backfills/{backfill_id}/pause", tag = "Backfill",
    operation_id = "pause_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill as changed.", body = BackfillResponse),
        (status = 404, description = "No such backfill."),
        (status = 409, description = "The backfill has completed."),
    )
)]
pub async fn pause_backfill(
    caller: Caller,
    state: State<ApiState>,
    V2Path(path): V2Path<BackfillPath>,
) -> ApiResult<Json<BackfillResponse>> {
    let Json(b) = v1::pause_backfill(caller, state, Path(path)).await?;
    Ok(Json(response(b)))
}

/// Unpause a backfill.
#[utoipa::path(
    put, path = "/backfills/{backfill_id}/unpause", tag = "Backfill",
    operation_id = "unpause_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill as changed.", body = BackfillResponse),
        (status = 404, description = "No such backfill."),
        (status = 409, description = "The backfill has completed."),
    )
)]
pub async fn unpause_backfill(
    caller: Caller,
    state: State<ApiState>,
    V2Path(path): V2Path<BackfillPath>,
) -> ApiResult<Json<BackfillResponse>> {
    let Json(b) = v1::unpause_backfill(caller, state, Path(path)).await?;
    Ok(Json(response(b)))
}

/// Cancel a backfill: it starts no more runs; running ones finish.
#[utoipa::path(
    put, path = "/backfills/{backfill_id}/cancel", tag = "Backfill",
    operation_id = "cancel_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill as changed.", body = BackfillResponse),
        (status = 404, description = "No such backfill."),
        (status = 409, description = "The backfill has completed."),
    )
)]
pub async fn cancel_backfill(
    caller: Caller,
    state: State<ApiState>,
    V2Path(path): V2Path<BackfillPath>,
) -> ApiResult<Json<BackfillResponse>> {
    let Json(b) = v1::cancel_backfill(caller, state, Path(path)).await?;
    Ok(Json(response(b)))
}
