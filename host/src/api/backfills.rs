//! Backfills (Airflow 3's first-class backfill, AIP-78): runs of one DAG over a
//! range of past logical dates, planned (dry run), created, paused, unpaused and
//! cancelled through the scheduler. Each answer carries the backfill's progress,
//! counted from the states of its runs at the moment of the request, so a client
//! can draw a progress bar without reading every run.

use super::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, Unprocessable};
use super::paths::BackfillPath;
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState, JsonBody, load_dag, paginate};
use crate::metastore::{BackfillRecord, ReprocessBehavior};
use crate::scheduler::{BackfillDate, BackfillRequest, SchedulerError};
use aileron_model::DagRunState;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

/// How many of a backfill's runs are in each state.
#[derive(Debug, Default, Clone, Copy, Serialize, ToSchema)]
pub struct RunsByState {
    pub queued: usize,
    pub running: usize,
    pub success: usize,
    pub failed: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Backfill {
    pub id: u64,
    pub dag_id: String,
    /// Logical dates from `from_date` to `to_date`, both included.
    pub from_date: Timestamp,
    pub to_date: Timestamp,
    /// Newest logical date first.
    pub run_backwards: bool,
    /// The conf every run of the backfill gets.
    #[schema(value_type = Object)]
    pub dag_run_conf: Map<String, Value>,
    pub reprocess_behavior: ReprocessBehavior,
    /// How many of this backfill's runs may be running at once.
    pub max_active_runs: u32,
    /// A paused backfill starts no more runs; a cancelled one is paused and
    /// completed.
    pub is_paused: bool,
    pub created_at: Timestamp,
    /// When its last run finished (or it was cancelled); `null` while in progress.
    pub completed_at: Option<Timestamp>,
    /// The runs it created or re-ran, in the order they start.
    pub run_ids: Vec<String>,
    /// Logical dates it left alone because a run already covered them.
    pub skipped_dates: Vec<Timestamp>,
    /// `run_ids.len()`.
    pub total_runs: usize,
    /// Its runs by their current state (runs deleted since are not counted).
    pub runs_by_state: RunsByState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillCollection {
    pub backfills: Vec<Backfill>,
    pub total_entries: usize,
}

/// What a backfill would do, one entry per logical date in its range.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunBackfillCollection {
    pub backfills: Vec<BackfillDate>,
    pub total_entries: usize,
}

/// The states of runs, read once per DAG for a whole page of backfills.
struct RunStates<'a> {
    s: &'a ApiState,
    by_dag: HashMap<String, HashMap<String, DagRunState>>,
}

impl<'a> RunStates<'a> {
    fn new(s: &'a ApiState) -> Self {
        Self {
            s,
            by_dag: HashMap::new(),
        }
    }

    fn backfill(&mut self, b: BackfillRecord) -> ApiResult<Backfill> {
        if !self.by_dag.contains_key(&b.dag_id) {
            let states = self
                .s
                .metastore
                .dag_runs(&b.tenant, &b.dag_id)?
                .into_iter()
                .map(|r| (r.run_id, r.state))
                .collect();
            self.by_dag.insert(b.dag_id.clone(), states);
        }
        let states = &self.by_dag[&b.dag_id];
        let mut by_state = RunsByState::default();
        for id in &b.run_ids {
            match states.get(id) {
                Some(DagRunState::Queued) => by_state.queued += 1,
                Some(DagRunState::Running) => by_state.running += 1,
                Some(DagRunState::Success) => by_state.success += 1,
                Some(DagRunState::Failed) => by_state.failed += 1,
                None => {}
            }
        }
        Ok(Backfill {
            id: b.id,
            dag_id: b.dag_id,
            from_date: b.from_date,
            to_date: b.to_date,
            run_backwards: b.run_backwards,
            dag_run_conf: b.dag_run_conf,
            reprocess_behavior: b.reprocess_behavior,
            max_active_runs: b.max_active_runs,
            is_paused: b.is_paused,
            created_at: b.created_at,
            completed_at: b.completed_at,
            total_runs: b.run_ids.len(),
            run_ids: b.run_ids,
            skipped_dates: b.skipped_dates,
            runs_by_state: by_state,
        })
    }
}

fn one(s: &ApiState, b: BackfillRecord) -> ApiResult<Json<Backfill>> {
    Ok(Json(RunStates::new(s).backfill(b)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackfillFilter {
    /// Only the backfills of this DAG.
    pub(crate) dag_id: Option<String>,
    /// Page size (default 100).
    pub(crate) limit: Option<usize>,
    /// Entries to skip.
    pub(crate) offset: Option<usize>,
    /// `id` (oldest first, the default) or `-id` (newest first).
    pub(crate) order_by: Option<String>,
}

/// List backfills, of one DAG or of all.
#[utoipa::path(
    get, path = "/backfills", tag = "Backfill", operation_id = "list_backfills",
    params(BackfillFilter),
    responses(
        (status = 200, description = "One page of backfills.", body = BackfillCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn list_backfills(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<BackfillFilter>,
) -> ApiResult<Json<BackfillCollection>> {
    let newest_first = match q.order_by.as_deref() {
        None | Some("id") => false,
        Some("-id") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "cannot order backfills by `{other}`; use id or -id"
            )));
        }
    };
    if let Some(dag_id) = &q.dag_id {
        load_dag(&s, &caller, dag_id)?;
    }
    let mut all = s
        .metastore
        .backfills(caller.tenant(), q.dag_id.as_deref())?;
    all.sort_by_key(|b| b.id);
    if newest_first {
        all.reverse();
    }
    let (page, total_entries) = paginate(all, q.limit, q.offset);
    let mut runs = RunStates::new(&s);
    let backfills = page
        .into_iter()
        .map(|b| runs.backfill(b))
        .collect::<ApiResult<_>>()?;
    Ok(Json(BackfillCollection {
        backfills,
        total_entries,
    }))
}

/// Get a backfill with its progress.
#[utoipa::path(
    get, path = "/backfills/{backfill_id}", tag = "Backfill", operation_id = "get_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill.", body = Backfill),
        BadRequest,
        NotFound,
    )
)]
pub async fn get_backfill(
    caller: Caller,
    State(s): State<ApiState>,
    Path(BackfillPath { backfill_id: id }): Path<BackfillPath>,
) -> ApiResult<Json<Backfill>> {
    let b = s
        .metastore
        .backfill(caller.tenant(), id)?
        .ok_or(SchedulerError::BackfillNotFound(id))?;
    one(&s, b)
}

fn default_max_active_runs() -> u32 {
    10
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillPostBody {
    pub(crate) dag_id: String,
    /// The first logical date: a date (`2026-01-01`) or an RFC 3339 date-time.
    pub(crate) from_date: String,
    /// The last logical date, included.
    pub(crate) to_date: String,
    /// Start with the newest logical date (default false).
    #[serde(default)]
    pub(crate) run_backwards: bool,
    /// The conf of every run (a JSON object; default `{}`), checked against the
    /// DAG's params.
    #[schema(value_type = Option<Object>)]
    pub(crate) dag_run_conf: Option<Value>,
    /// What to do with dates that already have a run (default `none`; `all` is
    /// accepted for `completed`).
    #[serde(default)]
    pub(crate) reprocess_behavior: ReprocessBehavior,
    /// How many of its runs may be running at once (default 10).
    #[serde(default = "default_max_active_runs")]
    #[schema(default = 10)]
    pub(crate) max_active_runs: u32,
}

fn request(tenant: &str, body: BackfillPostBody, dry_run: bool) -> ApiResult<BackfillRequest> {
    let dag_run_conf = super::conf_object("dag_run_conf", body.dag_run_conf)?;
    Ok(BackfillRequest {
        tenant: tenant.to_owned(),
        from_date: super::user_datetime("from_date", &body.from_date)?,
        to_date: super::user_datetime("to_date", &body.to_date)?,
        dag_id: body.dag_id,
        run_backwards: body.run_backwards,
        dag_run_conf,
        reprocess_behavior: body.reprocess_behavior,
        max_active_runs: body.max_active_runs,
        dry_run,
    })
}

/// Create a backfill: its runs are created at once, queued, and started by the
/// scheduler oldest first (newest first with `run_backwards`), at most
/// `max_active_runs` at a time. A DAG has at most one backfill in progress.
#[utoipa::path(
    post, path = "/backfills", tag = "Backfill", operation_id = "create_backfill",
    request_body = BackfillPostBody,
    responses(
        (status = 200, description = "The backfill, created.", body = Backfill),
        BadRequest,
        NotFound,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn create_backfill(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<BackfillPostBody>,
) -> ApiResult<Json<Backfill>> {
    let (record, _) = s
        .scheduler
        .create_backfill(request(caller.tenant(), body, false)?)
        .await?;
    one(&s, record)
}

/// What a backfill with this body would do with each logical date in its range
/// (`create`, `reprocess` or `skip`), without creating anything.
#[utoipa::path(
    post, path = "/backfills/dry_run", tag = "Backfill", operation_id = "create_backfill_dry_run",
    request_body = BackfillPostBody,
    responses(
        (status = 200, description = "The plan, one entry per logical date.", body = DryRunBackfillCollection),
        BadRequest,
        NotFound,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn dry_run_backfill(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<BackfillPostBody>,
) -> ApiResult<Json<DryRunBackfillCollection>> {
    let (_, dates) = s
        .scheduler
        .create_backfill(request(caller.tenant(), body, true)?)
        .await?;
    Ok(Json(DryRunBackfillCollection {
        total_entries: dates.len(),
        backfills: dates,
    }))
}

/// Pause a backfill: it starts no more runs; runs already running finish.
#[utoipa::path(
    put, path = "/backfills/{backfill_id}/pause", tag = "Backfill", operation_id = "pause_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill, paused.", body = Backfill),
        BadRequest,
        NotFound,
        Conflict,
        Unavailable,
    )
)]
pub async fn pause_backfill(
    caller: Caller,
    State(s): State<ApiState>,
    Path(BackfillPath { backfill_id: id }): Path<BackfillPath>,
) -> ApiResult<Json<Backfill>> {
    let b = s
        .scheduler
        .set_backfill_paused(caller.tenant(), id, true)
        .await?;
    one(&s, b)
}

/// Unpause a backfill: it starts its queued runs again.
#[utoipa::path(
    put, path = "/backfills/{backfill_id}/unpause", tag = "Backfill", operation_id = "unpause_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill, unpaused.", body = Backfill),
        BadRequest,
        NotFound,
        Conflict,
        Unavailable,
    )
)]
pub async fn unpause_backfill(
    caller: Caller,
    State(s): State<ApiState>,
    Path(BackfillPath { backfill_id: id }): Path<BackfillPath>,
) -> ApiResult<Json<Backfill>> {
    let b = s
        .scheduler
        .set_backfill_paused(caller.tenant(), id, false)
        .await?;
    one(&s, b)
}

/// Cancel a backfill: its queued runs fail, runs already running finish, and it
/// is complete.
#[utoipa::path(
    put, path = "/backfills/{backfill_id}/cancel", tag = "Backfill", operation_id = "cancel_backfill",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill, cancelled.", body = Backfill),
        BadRequest,
        NotFound,
        Conflict,
        Unavailable,
    )
)]
pub async fn cancel_backfill(
    caller: Caller,
    State(s): State<ApiState>,
    Path(BackfillPath { backfill_id: id }): Path<BackfillPath>,
) -> ApiResult<Json<Backfill>> {
    let b = s.scheduler.cancel_backfill(caller.tenant(), id).await?;
    one(&s, b)
}
