//! Callbacks of a DagRun: every `on_failure`, `on_success` and `on_retry`
//! operator its tasks or the DAG fired, with how it went and its log.

use super::Caller;
use super::error::{BadRequest, NotFound};
use super::paths::RunPath;
use super::query::ApiQuery;
use super::{ApiResult, ApiState, Page, load_run, paginate};
use crate::metastore::CallbackRecord;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Callback {
    pub dag_id: String,
    pub dag_run_id: String,
    /// Order within the run.
    pub seq: u64,
    /// `on_failure`, `on_success` or `on_retry`.
    pub event: String,
    /// The task whose try fired it; `null` for a DAG-level callback.
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<u32>,
    /// The callback's operator as written in the DAG file.
    pub operator: String,
    /// `sha256:` digest of the operator component.
    pub plugin_digest: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    /// Why it fired (`failed`, `timed_out`, `success`, the task's error, …).
    pub reason: Option<String>,
    pub queued_at: Timestamp,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Why the callback itself failed, when it did.
    pub error: Option<String>,
    /// What the callback logged.
    pub log: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackCollection {
    pub callbacks: Vec<Callback>,
    pub total_entries: usize,
}

fn callback(c: CallbackRecord) -> Callback {
    Callback {
        dag_id: c.dag_id,
        dag_run_id: c.run_id,
        seq: c.seq,
        event: c.event,
        task_id: c.task_id,
        map_index: c.map_index,
        try_number: c.try_number,
        operator: c.operator,
        plugin_digest: c.plugin_digest,
        state: c.state,
        reason: c.reason,
        queued_at: c.queued_at,
        start_date: c.start_date,
        end_date: c.end_date,
        error: c.error,
        log: c.log,
    }
}

/// List the callbacks a DagRun fired, in the order they fired, with their logs.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/callbacks", tag = "DagRun",
    operation_id = "get_dag_run_callbacks",
    params(RunPath, Page),
    responses(
        (status = 200, description = "One page of the run's callbacks.", body = CallbackCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn list_callbacks(
    caller: Caller,
    State(s): State<ApiState>,
    Path(RunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<RunPath>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<CallbackCollection>> {
    load_run(&s, &caller, &dag_id, &run_id)?;
    let mut all = s.metastore.callbacks(caller.tenant(), &dag_id, &run_id)?;
    all.sort_by_key(|c| c.seq);
    let (page, total_entries) = paginate(all, page.limit, page.offset);
    Ok(Json(CallbackCollection {
        callbacks: page.into_iter().map(callback).collect(),
        total_entries,
    }))
}
