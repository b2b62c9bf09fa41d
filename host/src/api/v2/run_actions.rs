//! What v2 does to or with one DagRun beyond reading and changing it: clear it
//! (`/clear`), and wait for it to finish (`/wait`, a stream of its state as
//! newline-delimited JSON, ending with the results asked for).

use super::super::dag_runs::{self as v1, ClearDagRun, ClearDagRunResult};
use super::super::paths::RunPath;
use super::super::query::items;
use super::super::{ApiError, ApiResult, ApiState, Caller, JsonBody, load_run};
use super::dag_runs::{DagRunResponse, response as run_response};
use super::dag_versions::fill_versions;
use super::task_instances::{TaskInstanceCollectionResponse, response as ti_response};
use super::{V2Json, V2Query};
use crate::scheduler::Update;
use aileron_model::DagRunState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `DAGRunClearBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagRunClearBody {
    /// Only say what would be cleared (default true).
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    only_failed: bool,
    /// Accepted when false: Aileron clears every TaskInstance of the run.
    #[serde(default)]
    only_new: bool,
    /// Accepted when not true: a cleared run keeps the DAG version it ran.
    run_on_latest_version: Option<bool>,
    /// Accepted; Aileron does not keep notes.
    note: Option<String>,
}

fn yes() -> bool {
    true
}

/// What clearing answers: a dry run's TaskInstances, or the DagRun afterwards.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ClearResponse {
    DryRun(TaskInstanceCollectionResponse),
    Cleared(Box<DagRunResponse>),
}

/// Clear a DagRun: its TaskInstances run again.
#[utoipa::path(
    post, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/clear", tag = "DagRun",
    operation_id = "clear_dag_run",
    params(RunPath),
    request_body = DagRunClearBody,
    responses(
        (status = 200, description = "A dry run's TaskInstances, or the cleared DagRun.",
            body = ClearResponse),
        (status = 400, description = "An option Aileron does not have."),
        (status = 404, description = "No such DagRun."),
        (status = 409, description = "The DagRun is still running."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn clear_dag_run(
    caller: Caller,
    state: State<ApiState>,
    path: Path<RunPath>,
    V2Json(body): V2Json<DagRunClearBody>,
) -> ApiResult<Json<ClearResponse>> {
    let _ = body.note;
    if body.only_new {
        return Err(ApiError::bad_request(
            "`only_new` cannot be true: Aileron has no TaskInstances a new DAG version adds",
        ));
    }
    if body.run_on_latest_version == Some(true) {
        return Err(ApiError::bad_request(
            "`run_on_latest_version` cannot be true: a cleared DagRun runs the DAG version it ran",
        ));
    }
    let (s, tenant) = (state.0.clone(), caller.tenant().to_owned());
    let Json(cleared) = v1::clear_run(
        caller,
        state,
        path,
        JsonBody(ClearDagRun {
            dry_run: body.dry_run,
            only_failed: body.only_failed,
        }),
    )
    .await?;
    Ok(Json(match cleared {
        ClearDagRunResult::DryRun(tis) => ClearResponse::DryRun(TaskInstanceCollectionResponse {
            total_entries: tis.total_entries,
            task_instances: tis.task_instances.into_iter().map(ti_response).collect(),
        }),
        ClearDagRunResult::Cleared(run) => {
            let mut runs = [run_response(*run)];
            fill_versions(&s, &tenant, &mut runs)?;
            let [run] = runs;
            ClearResponse::Cleared(Box::new(run))
        }
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds between two state lines; more than 0.
    interval: Option<f64>,
    /// Tasks whose `return_value` XCom the last line carries as `results`
    /// (repeat the parameter); a mapped task's is the list of its instances'.
    result: Option<String>,
}

/// The shortest `interval`: a client cannot make the server write lines in a
/// busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest: a proxy would drop a stream silent for longer.
const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// Wait for a DagRun to finish: one JSON line `{"state": ...}` at once and
/// then every `interval` seconds, the last (a finished state) with `results`.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/wait", tag = "DagRun",
    operation_id = "wait_dag_run_until_finished",
    params(RunPath, WaitQuery),
    responses(
        (status = 200, description = "The DagRun's state, one JSON object per line.",
            body = String, content_type = "application/x-ndjson"),
        (status = 404, description = "No such DagRun."),
        (status = 422, description = "No `interval`, or one that is not above 0."),
    )
)]
pub async fn wait_dag_run_until_finished(
    caller: Caller,
    State(s): State<ApiState>,
    Path(RunPath {
        dag_id,
        dag_run_id: run_id,
    }): Path<RunPath>,
    V2Query(q): V2Query<WaitQuery>,
) -> ApiResult<Response> {
    let interval = match q.interval {
        // Clamped as a number first: a huge one would overflow a Duration.
        Some(i) if i.is_finite() && i > 0.0 => {
            Duration::from_secs_f64(i.clamp(MIN_INTERVAL.as_secs_f64(), MAX_INTERVAL.as_secs_f64()))
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid query string: `interval` is required and must be a number above 0",
            ));
        }
    };
    let result_tasks: Vec<String> = q
        .result
        .as_deref()
        .map(|r| items(r).map(str::to_owned).collect())
        .unwrap_or_default();
    // Subscribed before the first read, so a change in between is not missed.
    let updates = s.scheduler.subscribe();
    let first = load_run(&s, &caller, &dag_id, &run_id)?.state;
    let waiter = Waiter {
        s,
        tenant: caller.tenant().to_owned(),
        dag_id,
        run_id,
        result_tasks,
        interval,
        updates,
    };
    let lines = futures::stream::unfold(
        (waiter, Some(first), false),
        |(mut w, next, done)| async move {
            if done {
                return None;
            }
            let state = match next {
                Some(state) => state,
                None => w.next_state().await?,
            };
            let line = w.line(state);
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (w, None, state.is_finished()),
            ))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// One `/wait` stream's state between lines.
struct Waiter {
    s: ApiState,
    tenant: String,
    dag_id: String,
    run_id: String,
    result_tasks: Vec<String>,
    interval: Duration,
    updates: broadcast::Receiver<Update>,
}

impl Waiter {
    /// The run's state once `interval` has passed, or at once when the run
    /// finishes; `None` once the run is gone or the server stops.
    async fn next_state(&mut self) -> Option<DagRunState> {
        let deadline = tokio::time::Instant::now() + self.interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                update = self.updates.recv() => match update {
                    Ok(Update::DagRun { tenant, dag_id, run_id, state })
                        if tenant == self.tenant && dag_id == self.dag_id
                            && run_id == self.run_id && state.is_finished() => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
        self.s
            .metastore
            .dag_run(&self.tenant, &self.dag_id, &self.run_id)
            .ok()
            .flatten()
            .map(|r| r.state)
    }

    /// The JSON line for `state`, with the results once it is finished.
    fn line(&self, state: DagRunState) -> String {
        let mut out = json!({ "state": state.as_str() });
        if state.is_finished() && !self.result_tasks.is_empty() {
            let results = self.results();
            if !results.is_empty() {
                out["results"] = Value::Object(results);
            }
        }
        format!("{out}\n")
    }

    /// The `return_value` of each task asked for that pushed one: a value, or
    /// for a mapped task the list of its instances' in map order.
    fn results(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for task_id in &self.result_tasks {
            let Ok(mut entries) = self.s.metastore.xcom(
                &self.tenant,
                &self.dag_id,
                &self.run_id,
                task_id,
                "return_value",
            ) else {
                continue;
            };
            entries.sort_by_key(|(map, _)| *map);
            let mut values: Vec<(i64, Value)> = entries
                .into_iter()
                .map(|(map, text)| {
                    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    (map, value)
                })
                .collect();
            match values.as_slice() {
                [] => {}
                [(map, _)] if *map < 0 => {
                    out.insert(task_id.clone(), values.remove(0).1);
                }
                _ => {
                    out.insert(
                        task_id.clone(),
                        Value::Array(values.into_iter().map(|(_, v)| v).collect()),
                    );
                }
            }
        }
        out
    }
}
