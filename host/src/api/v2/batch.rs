//! v2's batch searches: `POST /dags/~/dagRuns/list` and
//! `POST /dags/~/dagRuns/~/taskInstances/list`, whose bodies filter by lists of
//! ids and states, by time ranges and durations. They read the DagRuns of the
//! DAGs asked for (every DAG of the tenant without `dag_ids`) and filter those:
//! the run index orders by id and logical date only, so a search on anything
//! else is a scan of the runs in scope, as an unindexed column is in SQL.

use super::super::dag_runs::dag_run;
use super::super::paths::{AnyDagPath, AnyRunPath};
use super::super::task_instances::task_instances;
use super::super::{ANY, ApiError, ApiResult, ApiState, Caller, Specs, page_size};
use super::V2Json;
use super::dag_runs::{DagRunCollectionResponse, DagRunResponse, response as run_response};
use super::dag_versions::fill_versions;
use super::task_instances::{
    TaskInstanceCollectionResponse, TaskInstanceResponse, response as ti_response,
};
use crate::metastore::{DagRun as RunRecord, Metastore};
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use std::cmp::Ordering;
use utoipa::ToSchema;

/// Bounds on one value: `>=`, `>`, `<=`, `<` (each optional), as Airflow's
/// `*_gte`, `*_gt`, `*_lte`, `*_lt` filters give them.
pub(super) struct Bounds<T> {
    pub(super) gte: Option<T>,
    pub(super) gt: Option<T>,
    pub(super) lte: Option<T>,
    pub(super) lt: Option<T>,
}

impl<T: PartialOrd + Copy> Bounds<T> {
    /// Whether `v` is inside; a missing value is inside only when nothing bounds it.
    pub(super) fn holds(&self, v: Option<T>) -> bool {
        let bounded =
            self.gte.is_some() || self.gt.is_some() || self.lte.is_some() || self.lt.is_some();
        let Some(v) = v else { return !bounded };
        self.gte.is_none_or(|b| v >= b)
            && self.gt.is_none_or(|b| v > b)
            && self.lte.is_none_or(|b| v <= b)
            && self.lt.is_none_or(|b| v < b)
    }
}

/// The time and duration bounds both bodies share.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Ranges {
    run_after_gte: Option<Timestamp>,
    run_after_gt: Option<Timestamp>,
    run_after_lte: Option<Timestamp>,
    run_after_lt: Option<Timestamp>,
    logical_date_gte: Option<Timestamp>,
    logical_date_gt: Option<Timestamp>,
    logical_date_lte: Option<Timestamp>,
    logical_date_lt: Option<Timestamp>,
    start_date_gte: Option<Timestamp>,
    start_date_gt: Option<Timestamp>,
    start_date_lte: Option<Timestamp>,
    start_date_lt: Option<Timestamp>,
    end_date_gte: Option<Timestamp>,
    end_date_gt: Option<Timestamp>,
    end_date_lte: Option<Timestamp>,
    end_date_lt: Option<Timestamp>,
    duration_gte: Option<f64>,
    duration_gt: Option<f64>,
    duration_lte: Option<f64>,
    duration_lt: Option<f64>,
}

/// One record's times, for [`Ranges::hold`].
struct Times {
    run_after: Timestamp,
    logical_date: Timestamp,
    start_date: Option<Timestamp>,
    end_date: Option<Timestamp>,
    duration: Option<f64>,
}

impl Ranges {
    fn hold(&self, t: &Times) -> bool {
        let r = self;
        Bounds {
            gte: r.run_after_gte,
            gt: r.run_after_gt,
            lte: r.run_after_lte,
            lt: r.run_after_lt,
        }
        .holds(Some(t.run_after))
            && Bounds {
                gte: r.logical_date_gte,
                gt: r.logical_date_gt,
                lte: r.logical_date_lte,
                lt: r.logical_date_lt,
            }
            .holds(Some(t.logical_date))
            && Bounds {
                gte: r.start_date_gte,
                gt: r.start_date_gt,
                lte: r.start_date_lte,
                lt: r.start_date_lt,
            }
            .holds(t.start_date)
            && Bounds {
                gte: r.end_date_gte,
                gt: r.end_date_gt,
                lte: r.end_date_lte,
                lt: r.end_date_lt,
            }
            .holds(t.end_date)
            && Bounds {
                gte: r.duration_gte,
                gt: r.duration_gt,
                lte: r.duration_lte,
                lt: r.duration_lt,
            }
            .holds(t.duration)
    }
}

fn run_times(r: &DagRunResponse) -> Times {
    Times {
        run_after: r.run_after,
        logical_date: r.logical_date.unwrap_or(r.run_after),
        start_date: r.start_date,
        end_date: r.end_date,
        duration: r.duration,
    }
}

/// The tenant's runs of `dag_ids` (every DAG's without).
fn runs_in_scope(
    m: &Metastore,
    tenant: &str,
    dag_ids: Option<&[String]>,
) -> ApiResult<Vec<RunRecord>> {
    Ok(match dag_ids {
        None => m.tenant_dag_runs(tenant)?,
        Some(ids) => {
            let mut out = Vec::new();
            for id in ids {
                out.extend(m.dag_runs(tenant, id)?);
            }
            out
        }
    })
}

/// `order_by` parsed: the field and whether descending.
fn order(order_by: Option<&str>, default: &str, fields: &[&str]) -> ApiResult<(String, bool)> {
    let order = order_by.unwrap_or(default);
    let (descending, field) = match order.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, order),
    };
    if !fields.contains(&field) {
        return Err(ApiError::bad_request(format!(
            "Ordering with '{field}' is disallowed or the attribute does not exist on the model"
        )));
    }
    Ok((field.to_owned(), descending))
}

fn page<T>(mut items: Vec<T>, offset: usize, limit: Option<usize>) -> (Vec<T>, usize) {
    let total = items.len();
    let items: Vec<T> = items
        .drain(..)
        .skip(offset)
        .take(page_size(limit))
        .collect();
    (items, total)
}

/// The path's DAG must be `~`: the body names the DAGs.
fn any_dag(dag_id: &str) -> ApiResult<()> {
    if dag_id != ANY {
        return Err(ApiError::unprocessable(
            "invalid path: batch searches take `~` as the ids and name DAGs and runs in the body",
        ));
    }
    Ok(())
}

/// The names [`Ranges`] takes.
const RANGE_FIELDS: [&str; 20] = [
    "run_after_gte",
    "run_after_gt",
    "run_after_lte",
    "run_after_lt",
    "logical_date_gte",
    "logical_date_gt",
    "logical_date_lte",
    "logical_date_lt",
    "start_date_gte",
    "start_date_gt",
    "start_date_lte",
    "start_date_lt",
    "end_date_gte",
    "end_date_gt",
    "end_date_lte",
    "end_date_lt",
    "duration_gte",
    "duration_gt",
    "duration_lte",
    "duration_lt",
];

/// A batch body from its JSON: refuses a field neither `own` nor a range names
/// (serde cannot deny unknown fields beside a flattened struct), as Airflow's
/// bodies forbid extra fields.
fn body<T: serde::de::DeserializeOwned>(v: Value, own: &[&str]) -> ApiResult<T> {
    let Value::Object(map) = &v else {
        return Err(ApiError::unprocessable("the body must be a JSON object"));
    };
    if let Some(extra) = map
        .keys()
        .find(|k| !own.contains(&k.as_str()) && !RANGE_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::unprocessable(format!(
            "unknown field `{extra}`: Extra inputs are not permitted"
        )));
    }
    serde_json::from_value(v).map_err(|e| ApiError::unprocessable(format!("invalid body: {e}")))
}

/// Airflow's `DAGRunsBatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DagRunsBatchBody {
    /// `id` (default), `run_id`/`dag_run_id`, `logical_date`, `run_after`,
    /// `start_date`, `end_date`, `state` or `dag_id`; `-` before it for descending.
    order_by: Option<String>,
    #[serde(default)]
    page_offset: usize,
    page_limit: Option<usize>,
    dag_ids: Option<Vec<String>>,
    states: Option<Vec<Option<String>>>,
    /// A text the run's conf (as JSON) must contain.
    conf_contains: Option<String>,
    #[serde(flatten)]
    ranges: Ranges,
}

/// Search the tenant's DagRuns.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns/list", tag = "DagRun",
    operation_id = "get_list_dag_runs_batch",
    params(AnyDagPath),
    request_body = DagRunsBatchBody,
    responses(
        (status = 200, description = "One page of DagRuns.", body = DagRunCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A DAG id other than `~`, or a body that does not validate."),
    )
)]
pub async fn get_list_dag_runs_batch(
    caller: Caller,
    State(s): State<ApiState>,
    Path(AnyDagPath { dag_id }): Path<AnyDagPath>,
    V2Json(raw): V2Json<Value>,
) -> ApiResult<Json<DagRunCollectionResponse>> {
    any_dag(&dag_id)?;
    let body: DagRunsBatchBody = body(
        raw,
        &[
            "order_by",
            "page_offset",
            "page_limit",
            "dag_ids",
            "states",
            "conf_contains",
        ],
    )?;
    let (field, descending) = order(
        body.order_by.as_deref(),
        "id",
        &[
            "id",
            "run_id",
            "dag_run_id",
            "logical_date",
            "run_after",
            "start_date",
            "end_date",
            "state",
            "dag_id",
        ],
    )?;
    let tenant = caller.tenant().to_owned();
    let s2 = s.clone();
    let (dag_runs, total_entries) = s
        .blocking(move |m| {
            let mut records = runs_in_scope(m, &tenant, body.dag_ids.as_deref())?;
            records.sort_by_key(|r| r.seq);
            let states: Option<Vec<String>> =
                body.states.map(|l| l.into_iter().flatten().collect());
            let mut runs: Vec<DagRunResponse> = records
                .iter()
                .filter(|r| {
                    states
                        .as_ref()
                        .is_none_or(|l| l.iter().any(|s| s == r.state.as_str()))
                })
                .filter(|r| {
                    body.conf_contains.as_ref().is_none_or(|c| {
                        Value::Object(r.conf.clone())
                            .to_string()
                            .contains(c.as_str())
                    })
                })
                .map(|r| run_response(dag_run(r)))
                .filter(|r| body.ranges.hold(&run_times(r)))
                .collect();
            fill_versions(&s2, &tenant, &mut runs)?;
            runs.sort_by(|a, b| {
                let o = match field.as_str() {
                    "run_id" | "dag_run_id" => a.dag_run_id.cmp(&b.dag_run_id),
                    "logical_date" => a.logical_date.cmp(&b.logical_date),
                    "run_after" => a.run_after.cmp(&b.run_after),
                    "start_date" => a.start_date.cmp(&b.start_date),
                    "end_date" => a.end_date.cmp(&b.end_date),
                    "state" => format!("{:?}", a.state).cmp(&format!("{:?}", b.state)),
                    "dag_id" => a.dag_id.cmp(&b.dag_id),
                    _ => Ordering::Equal,
                };
                if descending { o.reverse() } else { o }
            });
            Ok(page(runs, body.page_offset, body.page_limit))
        })
        .await?;
    Ok(Json(DagRunCollectionResponse {
        dag_runs,
        total_entries,
    }))
}

/// Airflow's `TaskInstancesBatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskInstancesBatchBody {
    dag_ids: Option<Vec<String>>,
    dag_run_ids: Option<Vec<String>>,
    task_ids: Option<Vec<String>>,
    /// States; `null` in the list for TaskInstances without one.
    state: Option<Vec<Option<String>>>,
    pool: Option<Vec<String>>,
    queue: Option<Vec<String>>,
    /// Aileron has one executor, the sandbox: only an empty list matches nothing.
    executor: Option<Vec<String>>,
    #[serde(default)]
    page_offset: usize,
    page_limit: Option<usize>,
    /// `map_index` (default), `task_id`, `dag_id`, `run_id`, `state`,
    /// `start_date`, `end_date`, `duration` or `priority_weight`; `-` for
    /// descending.
    order_by: Option<String>,
    #[serde(flatten)]
    ranges: Ranges,
}

/// Search the tenant's TaskInstances.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list", tag = "TaskInstance",
    operation_id = "get_task_instances_batch",
    params(AnyRunPath),
    request_body = TaskInstancesBatchBody,
    responses(
        (status = 200, description = "One page of TaskInstances.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "Ids other than `~`, or a body that does not validate."),
    )
)]
pub async fn get_task_instances_batch(
    caller: Caller,
    State(s): State<ApiState>,
    Path(AnyRunPath { dag_id, dag_run_id }): Path<AnyRunPath>,
    V2Json(raw): V2Json<Value>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    any_dag(&dag_id)?;
    any_dag(&dag_run_id)?;
    let body: TaskInstancesBatchBody = body(
        raw,
        &[
            "dag_ids",
            "dag_run_ids",
            "task_ids",
            "state",
            "pool",
            "queue",
            "executor",
            "page_offset",
            "page_limit",
            "order_by",
        ],
    )?;
    let (field, descending) = order(
        body.order_by.as_deref(),
        "map_index",
        &[
            "map_index",
            "task_id",
            "dag_id",
            "run_id",
            "dag_run_id",
            "state",
            "start_date",
            "end_date",
            "duration",
            "priority_weight",
        ],
    )?;
    let tenant = caller.tenant().to_owned();
    let (task_instances, total_entries) = s
        .blocking(move |m| {
            let mut records = Vec::new();
            for run in runs_in_scope(m, &tenant, body.dag_ids.as_deref())? {
                if body
                    .dag_run_ids
                    .as_ref()
                    .is_some_and(|ids| !ids.contains(&run.run_id))
                {
                    continue;
                }
                records.extend(
                    m.task_instances(&tenant, &run.dag_id, &run.run_id)?
                        .into_iter()
                        .filter(|t| {
                            body.task_ids
                                .as_ref()
                                .is_none_or(|ids| ids.contains(&t.task_id))
                        }),
                );
            }
            let states: Option<Vec<String>> = body.state.map(|l| {
                l.into_iter()
                    .map(|s| s.unwrap_or_else(|| "no_status".to_owned()))
                    .collect()
            });
            let mut tis: Vec<TaskInstanceResponse> = task_instances(&mut Specs::new(m), &records)?
                .into_iter()
                .map(ti_response)
                .filter(|t| {
                    let state = t
                        .state
                        .and_then(|s| serde_json::to_value(s).ok())
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "no_status".to_owned());
                    states.as_ref().is_none_or(|l| l.contains(&state))
                        && body.pool.as_ref().is_none_or(|p| p.contains(&t.pool))
                        && body
                            .queue
                            .as_ref()
                            .is_none_or(|q| t.queue.as_ref().is_some_and(|tq| q.contains(tq)))
                        && body.executor.as_ref().is_none_or(|e| !e.is_empty())
                        && body.ranges.hold(&Times {
                            run_after: t.run_after,
                            logical_date: t.logical_date.unwrap_or(t.run_after),
                            start_date: t.start_date,
                            end_date: t.end_date,
                            duration: t.duration,
                        })
                })
                .collect();
            tis.sort_by(|a, b| {
                let o = match field.as_str() {
                    "task_id" => a.task_id.cmp(&b.task_id),
                    "dag_id" => a.dag_id.cmp(&b.dag_id),
                    "run_id" | "dag_run_id" => a.dag_run_id.cmp(&b.dag_run_id),
                    "state" => format!("{:?}", a.state).cmp(&format!("{:?}", b.state)),
                    "start_date" => a.start_date.cmp(&b.start_date),
                    "end_date" => a.end_date.cmp(&b.end_date),
                    "duration" => a
                        .duration
                        .partial_cmp(&b.duration)
                        .unwrap_or(Ordering::Equal),
                    "priority_weight" => a.priority_weight.cmp(&b.priority_weight),
                    _ => Ordering::Equal,
                }
                .then_with(|| a.map_index.cmp(&b.map_index));
                if descending { o.reverse() } else { o }
            });
            Ok(page(tis, body.page_offset, body.page_limit))
        })
        .await?;
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances,
        total_entries,
    }))
}
