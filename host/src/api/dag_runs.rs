//! DagRuns: list (per DAG or across DAGs with `~`), trigger, get, set state, delete,
//! clear.

use super::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, Unprocessable};
use super::paths::{AnyDagPath, DagPath, RunPath};
use super::query::ApiQuery;
use super::states::{DagRunType, DagState, parse_run_states};
use super::task_instances::{TaskInstanceCollection, task_instances};
use super::{
    ANY, ApiError, ApiResult, ApiState, JsonBody, Specs, load_dag, load_run, page_size, paginate,
};
use crate::metastore::{DagRun as RunRecord, RunOrder, RunQuery};
use crate::scheduler::ClearOptions;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct DagRun {
    pub dag_run_id: String,
    pub dag_id: String,
    pub logical_date: Timestamp,
    pub data_interval_start: Timestamp,
    pub data_interval_end: Timestamp,
    pub run_type: DagRunType,
    pub state: DagState,
    /// The run's configuration, as given when it was triggered.
    #[schema(value_type = Object)]
    pub conf: Map<String, Value>,
    /// True for runs triggered by hand or through the API.
    pub external_trigger: bool,
    pub queued_at: Timestamp,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// Seconds from start to end, once the run has ended.
    pub duration: Option<f64>,
    /// The DAG version the run runs with (a hash of the file and the
    /// components it resolved to): the one it was created with, or the DAG's
    /// latest when it was cleared.
    pub dag_version: String,
    /// The backfill that created (or last re-ran) this run; `null` for others.
    pub backfill_id: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagRunCollection {
    pub dag_runs: Vec<DagRun>,
    pub total_entries: usize,
}

pub fn dag_run(r: &RunRecord) -> DagRun {
    DagRun {
        dag_run_id: r.run_id.clone(),
        dag_id: r.dag_id.clone(),
        logical_date: r.logical_date,
        data_interval_start: r.data_interval.start,
        data_interval_end: r.data_interval.end,
        run_type: r.run_type.into(),
        state: r.state.into(),
        conf: r.conf.clone(),
        external_trigger: r.run_type == crate::metastore::RunType::Manual,
        queued_at: r.queued_at,
        start_date: r.start_date,
        end_date: r.end_date,
        duration: match (r.start_date, r.end_date) {
            (Some(s), Some(e)) => Some(e.duration_since(s).as_secs_f64()),
            _ => None,
        },
        dag_version: r.dag_version.clone(),
        backfill_id: r.backfill_id,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Page size (default 100).
    pub(crate) limit: Option<usize>,
    /// Entries to skip.
    pub(crate) offset: Option<usize>,
    /// States, e.g. `running,queued` (or the parameter repeated).
    pub(crate) state: Option<String>,
    /// `id` (creation order, the default), `logical_date`, `start_date`,
    /// `end_date`, `queued_at`, `dag_run_id` or `state`; prefix `-` for descending.
    pub(crate) order_by: Option<String>,
}

/// How a list of runs is ordered: `order_by` parsed, before any reading.
struct RunSort {
    descending: bool,
    /// The index that keeps this order, if one does; else the records are sorted.
    indexed: Option<RunOrder>,
    cmp: fn(&RunRecord, &RunRecord) -> Ordering,
}

fn run_sort(order_by: Option<&str>) -> ApiResult<RunSort> {
    let order_by = order_by.unwrap_or("id");
    let (descending, field) = match order_by.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, order_by),
    };
    let (indexed, cmp): (_, fn(&RunRecord, &RunRecord) -> Ordering) = match field {
        "id" => (Some(RunOrder::Id), |a, b| a.seq.cmp(&b.seq)),
        // `execution_date` is Airflow 2's name for the logical date.
        "logical_date" | "execution_date" => (Some(RunOrder::LogicalDate), |a, b| {
            a.logical_date.cmp(&b.logical_date)
        }),
        "start_date" => (None, |a, b| a.start_date.cmp(&b.start_date)),
        "end_date" => (None, |a, b| a.end_date.cmp(&b.end_date)),
        "queued_at" => (None, |a, b| a.queued_at.cmp(&b.queued_at)),
        "dag_run_id" => (None, |a, b| a.run_id.cmp(&b.run_id)),
        "state" => (None, |a, b| a.state.as_str().cmp(b.state.as_str())),
        other => {
            return Err(ApiError::bad_request(format!(
                "cannot order DagRuns by `{other}`; use id, logical_date, start_date, \
                 end_date, queued_at, dag_run_id or state, with `-` for descending"
            )));
        }
    };
    Ok(RunSort {
        descending,
        indexed,
        cmp,
    })
}

impl RunSort {
    fn sort(&self, runs: &mut [RunRecord]) {
        // Ties keep creation order, so paging through equal dates is stable.
        runs.sort_by(|a, b| {
            let o = (self.cmp)(a, b);
            let o = if self.descending { o.reverse() } else { o };
            o.then(a.seq.cmp(&b.seq))
        });
    }
}

/// List DagRuns of a DAG, or of every DAG with `~` as the DAG id.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns", tag = "DagRun", operation_id = "get_dag_runs",
    params(AnyDagPath, RunFilter),
    responses(
        (status = 200, description = "One page of DagRuns.", body = DagRunCollection),
        BadRequest,
        NotFound,
    )
)]
pub async fn list_runs(
    caller: Caller,
    State(s): State<ApiState>,
    Path(AnyDagPath { dag_id }): Path<AnyDagPath>,
    ApiQuery(q): ApiQuery<RunFilter>,
) -> ApiResult<Json<DagRunCollection>> {
    let states = q
        .state
        .as_deref()
        .map(parse_run_states)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let sort = run_sort(q.order_by.as_deref())?;
    let dag = (dag_id != ANY).then_some(dag_id);
    if let Some(dag_id) = &dag {
        load_dag(&s, &caller, dag_id)?;
    }
    let tenant = caller.tenant().to_owned();
    let (runs, total_entries) = s
        .blocking(move |m| {
            if let Some(order) = sort.indexed {
                // The common orders come from the run index: one page read, however
                // long the history.
                let page = m.runs_page(&RunQuery {
                    tenant: &tenant,
                    dag_id: dag.as_deref(),
                    order,
                    descending: sort.descending,
                    states: states.as_deref(),
                    offset: q.offset.unwrap_or(0),
                    limit: page_size(q.limit),
                })?;
                return Ok((page.runs, page.total));
            }
            let mut runs = match &dag {
                Some(dag_id) => m.dag_runs(&tenant, dag_id)?,
                None => m.tenant_dag_runs(&tenant)?,
            };
            if let Some(states) = &states {
                runs.retain(|r| states.contains(&r.state));
            }
            sort.sort(&mut runs);
            Ok(paginate(runs, q.limit, q.offset))
        })
        .await?;
    Ok(Json(DagRunCollection {
        dag_runs: runs.iter().map(dag_run).collect(),
        total_entries,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDagRun {
    /// Defaults to `manual__<logical date>`.
    dag_run_id: Option<String>,
    /// A date or an RFC 3339 date-time; defaults to now.
    logical_date: Option<String>,
    /// Must be a JSON object; validated against the DAG's params.
    #[schema(value_type = Option<Object>)]
    conf: Option<Value>,
    /// Accepted for compatibility with Airflow clients; Aileron does not keep notes.
    #[allow(dead_code)]
    note: Option<String>,
}

/// Trigger a DagRun.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns", tag = "DagRun", operation_id = "post_dag_run",
    params(DagPath),
    request_body = TriggerDagRun,
    responses(
        (status = 200, description = "The DagRun, queued.", body = DagRun),
        BadRequest,
        NotFound,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn trigger_run(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    JsonBody(body): JsonBody<TriggerDagRun>,
) -> ApiResult<Json<DagRun>> {
    let conf = super::conf_object("conf", body.conf)?;
    if let Some(id) = &body.dag_run_id {
        super::check_id("`dag_run_id`", id)?;
        if id == ANY {
            return Err(ApiError::bad_request(
                "`~` is reserved and cannot be a dag_run_id",
            ));
        }
    }
    let logical_date = body
        .logical_date
        .map(|d| super::user_datetime("logical_date", &d))
        .transpose()?;
    let run = s
        .scheduler
        .trigger(
            caller.tenant(),
            &dag_id,
            body.dag_run_id,
            logical_date,
            conf,
        )
        .await?;
    Ok(Json(dag_run(&run)))
}

/// Get a DagRun.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun", operation_id = "get_dag_run",
    params(RunPath),
    responses((status = 200, description = "The DagRun.", body = DagRun), NotFound)
)]
pub async fn get_run(
    caller: Caller,
    State(s): State<ApiState>,
    Path(RunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<RunPath>,
) -> ApiResult<Json<DagRun>> {
    Ok(Json(dag_run(&load_run(&s, &caller, &dag_id, &run_id)?)))
}

/// The states a DagRun may be set to by hand.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DagRunStateChange {
    Queued,
    Success,
    Failed,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDagRunState {
    state: DagRunStateChange,
}

/// Set a DagRun's state: `success` or `failed` marks it (and its unfinished
/// TaskInstances) done; `queued` runs it again.
#[utoipa::path(
    patch, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    operation_id = "update_dag_run_state",
    params(RunPath),
    request_body = UpdateDagRunState,
    responses(
        (status = 200, description = "The DagRun in its new state.", body = DagRun),
        BadRequest,
        NotFound,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn patch_run(
    caller: Caller,
    State(s): State<ApiState>,
    Path(RunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<RunPath>,
    JsonBody(body): JsonBody<UpdateDagRunState>,
) -> ApiResult<Json<DagRun>> {
    load_run(&s, &caller, &dag_id, &run_id)?;
    let state = match body.state {
        DagRunStateChange::Queued => DagState::Queued,
        DagRunStateChange::Success => DagState::Success,
        DagRunStateChange::Failed => DagState::Failed,
    };
    let run = s
        .scheduler
        .set_run_state(caller.tenant(), &dag_id, &run_id, state.into())
        .await?;
    Ok(Json(dag_run(&run)))
}

/// Delete a DagRun with its TaskInstances, logs and XCom.
#[utoipa::path(
    delete, path = "/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    operation_id = "delete_dag_run",
    params(RunPath),
    responses((status = 204, description = "Deleted"), NotFound, Conflict, Unavailable)
)]
pub async fn delete_run(
    caller: Caller,
    State(s): State<ApiState>,
    Path(RunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<RunPath>,
) -> ApiResult<StatusCode> {
    load_run(&s, &caller, &dag_id, &run_id)?;
    s.scheduler
        .delete_run(caller.tenant(), &dag_id, &run_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearDagRun {
    /// Only report what would be cleared (default true, as in Airflow).
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub(crate) dry_run: bool,
    /// Clear only failed and upstream-failed TaskInstances (default false).
    #[serde(default)]
    pub(crate) only_failed: bool,
}

/// What clearing a DagRun answers: the TaskInstances that would be cleared for a
/// dry run, the DagRun afterwards otherwise (as Airflow does).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ClearDagRunResult {
    DryRun(TaskInstanceCollection),
    Cleared(Box<DagRun>),
}

/// Clear a DagRun: its TaskInstances run again.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/clear", tag = "DagRun",
    operation_id = "clear_dag_run",
    params(RunPath),
    request_body = ClearDagRun,
    responses(
        (
            status = 200,
            description = "A dry run's TaskInstances, or the cleared DagRun.",
            body = ClearDagRunResult,
        ),
        BadRequest,
        NotFound,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn clear_run(
    caller: Caller,
    State(s): State<ApiState>,
    Path(RunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<RunPath>,
    JsonBody(body): JsonBody<ClearDagRun>,
) -> ApiResult<Json<ClearDagRunResult>> {
    load_run(&s, &caller, &dag_id, &run_id)?;
    let cleared = s
        .scheduler
        .clear(
            caller.tenant(),
            &dag_id,
            &run_id,
            ClearOptions {
                task_ids: None,
                downstream: false,
                upstream: false,
                only_failed: body.only_failed,
                dry_run: body.dry_run,
            },
        )
        .await?;
    if body.dry_run {
        let tis = task_instances(&mut Specs::new(&s.metastore), &cleared)?;
        return Ok(Json(ClearDagRunResult::DryRun(TaskInstanceCollection {
            total_entries: tis.len(),
            task_instances: tis,
        })));
    }
    Ok(Json(ClearDagRunResult::Cleared(Box::new(dag_run(
        &load_run(&s, &caller, &dag_id, &run_id)?,
    )))))
}
