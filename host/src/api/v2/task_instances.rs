//! TaskInstances in v2: list (one run, a DAG's runs with `~`, or every DAG's),
//! get, and a try's log as structured lines.

use super::super::paths::{AnyRunPath, TaskPath, TryPath};
use super::super::query::ApiQuery;
use super::super::states::TaskState;
use super::super::task_instances::{self as v1, MapIndex, TaskInstance as V1Ti, TiFilter};
use super::super::{ApiError, ApiResult, ApiState, Caller, load_dag, load_ti};
use super::dag_versions::{DagVersionResponse, version_response};
use super::{V2Path, V2Query};
use aileron_model::TiKey;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `TaskInstanceResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceResponse {
    /// Stable for the TaskInstance: derived from its DAG, run, task and map index.
    pub id: String,
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub logical_date: Option<Timestamp>,
    pub run_after: Timestamp,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub duration: Option<f64>,
    pub state: Option<TaskState>,
    pub try_number: u32,
    pub max_tries: u32,
    pub task_display_name: String,
    pub dag_display_name: String,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub queue: Option<String>,
    pub priority_weight: Option<i32>,
    /// The operator as the DAG file names it.
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<Timestamp>,
    pub scheduled_when: Option<Timestamp>,
    pub pid: Option<u32>,
    pub executor: Option<String>,
    pub executor_config: String,
    pub note: Option<String>,
    pub rendered_map_index: Option<String>,
    #[schema(value_type = Object)]
    pub rendered_fields: Value,
    #[schema(value_type = Option<Object>)]
    pub trigger: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub triggerer_job: Option<Value>,
    /// The DAG version its run ran (see `/dagVersions`).
    pub dag_version: Option<DagVersionResponse>,
    /// Aileron's: `sha256:` digest of the operator component the latest try
    /// ran (or will run).
    pub plugin_digest: String,
    /// Aileron's: when a TaskInstance waiting to retry may run again.
    pub next_try_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceCollectionResponse {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: usize,
}

/// A UUID-shaped id from the TaskInstance's identity.
fn ti_id(ti: &V1Ti) -> String {
    let digest = Sha256::digest(
        format!(
            "{}\0{}\0{}\0{}",
            ti.dag_id, ti.dag_run_id, ti.task_id, ti.map_index
        )
        .as_bytes(),
    );
    let h = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn response(ti: V1Ti) -> TaskInstanceResponse {
    let dag_version = ti
        .dag_version
        .clone()
        .map(|v| version_response(&ti.dag_id, v));
    TaskInstanceResponse {
        id: ti_id(&ti),
        task_display_name: ti.task_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        logical_date: Some(ti.logical_date),
        run_after: ti.logical_date,
        rendered_map_index: (ti.map_index >= 0).then(|| ti.map_index.to_string()),
        hostname: (!ti.hostname.is_empty()).then_some(ti.hostname),
        unixname: None,
        pool: ti.pool,
        pool_slots: ti.pool_slots,
        queue: Some(ti.queue),
        priority_weight: Some(ti.priority_weight),
        operator_name: Some(ti.operator.clone()),
        operator: Some(ti.operator),
        queued_when: ti.queued_when,
        scheduled_when: None,
        pid: None,
        executor: None,
        executor_config: "{}".to_owned(),
        note: None,
        rendered_fields: ti.rendered_fields,
        trigger: None,
        triggerer_job: None,
        dag_version,
        plugin_digest: ti.plugin_digest,
        next_try_at: ti.next_try_at,
        start_date: ti.start_date,
        end_date: ti.end_date,
        duration: ti.duration,
        state: ti.state,
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        task_id: ti.task_id,
        dag_id: ti.dag_id,
        dag_run_id: ti.dag_run_id,
        map_index: ti.map_index,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TiListFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// States (repeat the parameter); `no_status` for TaskInstances without one.
    state: Option<String>,
    task_id: Option<String>,
    /// Pools (repeat the parameter).
    pool: Option<String>,
}

/// List TaskInstances of a DagRun; `~` as the DagRun id lists them across the
/// DAG's runs, and `~` as both ids across every DAG.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", tag = "TaskInstance",
    operation_id = "get_task_instances",
    params(AnyRunPath, TiListFilter),
    responses(
        (status = 200, description = "One page of TaskInstances.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state that does not exist."),
        (status = 404, description = "No such DAG or DagRun."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_task_instances(
    caller: Caller,
    state: State<ApiState>,
    path: Path<AnyRunPath>,
    V2Query(q): V2Query<TiListFilter>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    // Airflow 3 names the missing state `no_status`; Aileron's filters say `none`.
    let states = q.state.map(|s| {
        s.split(',')
            .map(|s| if s == "no_status" { "none" } else { s })
            .collect::<Vec<_>>()
            .join(",")
    });
    let Json(page) = v1::list_tis(
        caller,
        state,
        path,
        ApiQuery(TiFilter {
            limit: q.limit,
            offset: q.offset,
            state: states,
            task_id: q.task_id,
            pool: q.pool,
        }),
    )
    .await?;
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances: page.task_instances.into_iter().map(response).collect(),
        total_entries: page.total_entries,
    }))
}

/// Get a TaskInstance.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "TaskInstance", operation_id = "get_task_instance",
    params(TaskPath),
    responses(
        (status = 200, description = "The TaskInstance.", body = TaskInstanceResponse),
        (status = 404, description = "No such TaskInstance."),
    )
)]
pub async fn get_task_instance(
    caller: Caller,
    state: State<ApiState>,
    path: Path<TaskPath>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    let Json(detail) =
        v1::get_ti(caller, state, path, ApiQuery(MapIndex { map_index: None })).await?;
    Ok(Json(response(detail.task_instance)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The map index of a mapped TaskInstance (default -1: not mapped).
    map_index: Option<i64>,
    /// The `continuation_token` of the previous answer: read only what came
    /// after it.
    token: Option<String>,
    /// Accepted for Airflow's clients: the whole log is always sent.
    full_content: Option<bool>,
}

/// Airflow's `TaskInstancesLogResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstancesLogResponse {
    pub content: Vec<StructuredLogMessage>,
    /// Pass it back as `token` to read what the log gains after this.
    pub continuation_token: Option<String>,
}

/// One entry of a log: a line with the lines that continue it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StructuredLogMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    pub event: String,
    /// `info`, `warning`, … as the line says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// Splits a try's log (`[2026-01-02T03:04:05.678Z] INFO message` lines, a
/// message's own line breaks continuing its entry) into entries.
pub fn structured(text: &str) -> Vec<StructuredLogMessage> {
    let mut out: Vec<StructuredLogMessage> = Vec::new();
    for line in text.lines() {
        let parsed = line.strip_prefix('[').and_then(|rest| {
            let (stamp, rest) = rest.split_once("] ")?;
            let stamp: Timestamp = stamp.parse().ok()?;
            let (level, message) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((stamp, level.to_ascii_lowercase(), message))
        });
        match (parsed, out.last_mut()) {
            (Some((stamp, level, message)), _) => out.push(StructuredLogMessage {
                timestamp: Some(stamp),
                event: message.to_owned(),
                level: Some(level),
            }),
            (None, Some(last)) => {
                last.event.push('\n');
                last.event.push_str(line);
            }
            (None, None) => out.push(StructuredLogMessage {
                timestamp: None,
                event: line.to_owned(),
                level: None,
            }),
        }
    }
    out
}

/// Get a try's log: JSON with the entries and a continuation token, or with
/// `Accept: application/x-ndjson` one JSON entry per line, followed as it
/// grows while the try runs.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
    tag = "TaskInstance", operation_id = "get_log",
    params(TryPath, LogQuery),
    responses(
        (status = 200, description = "The log.", body = TaskInstancesLogResponse),
        (status = 404, description = "No such TaskInstance or try."),
    )
)]
pub async fn get_log(
    caller: Caller,
    axum::extract::State(s): State<ApiState>,
    V2Path(TryPath {
        dag_id,
        dag_run_id: run_id,
        task_id,
        try_number,
    }): V2Path<TryPath>,
    V2Query(q): V2Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let _ = q.full_content;
    let ti = load_ti(&s, &caller, &dag_id, &run_id, &task_id, q.map_index)?;
    if try_number == 0 || try_number > ti.try_number.max(1) {
        return Err(ApiError::not_found(format!(
            "try {try_number} of `{task_id}` does not exist (latest is {})",
            ti.try_number
        )));
    }
    let key = TiKey::from(&ti);
    let live = s.scheduler.live_log(&key, try_number);
    let running = live.is_some();
    let content = match live {
        Some(live) => live,
        None => s.metastore.log(&ti, try_number)?.unwrap_or_default(),
    };
    let from = match q.token.as_deref() {
        None | Some("") => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            ApiError::bad_request("`token` must be a continuation_token this API gave")
        })?,
    };
    // Never split a UTF-8 character: move the offset back to a boundary.
    let from = (0..=from.min(content.len()))
        .rev()
        .find(|i| content.is_char_boundary(*i))
        .unwrap_or(0);
    let entries = structured(&content[from..]);
    let ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"));
    if ndjson && running {
        let follow = LogFollower {
            s,
            ti,
            key,
            try_number,
            offset: from,
            done: false,
        };
        let lines = futures::stream::unfold(follow, |mut f| async move {
            let chunk = f.next_chunk().await?;
            Some((Ok::<_, std::convert::Infallible>(chunk), f))
        });
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            axum::body::Body::from_stream(lines),
        )
            .into_response());
    }
    if ndjson {
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            ndjson_lines(&entries),
        )
            .into_response());
    }
    Ok(Json(TaskInstancesLogResponse {
        content: entries,
        continuation_token: Some(content.len().to_string()),
    })
    .into_response())
}

fn ndjson_lines(entries: &[StructuredLogMessage]) -> String {
    let mut body = String::new();
    for entry in entries {
        body.push_str(&serde_json::to_string(entry).unwrap_or_default());
        body.push('\n');
    }
    body
}

/// How often a followed log is read again while its try runs.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A running try's log, followed for an `application/x-ndjson` reader: whole
/// lines as they come, then the rest once the try has ended.
struct LogFollower {
    s: ApiState,
    ti: crate::metastore::TaskInstance,
    key: TiKey,
    try_number: u32,
    /// Bytes of the log already sent.
    offset: usize,
    done: bool,
}

impl LogFollower {
    /// The next entries as ndjson, waiting while the try runs and has written
    /// no new whole line; `None` once the ended try's log is all sent.
    async fn next_chunk(&mut self) -> Option<String> {
        loop {
            if self.done {
                return None;
            }
            let (text, ended) = match self.s.scheduler.live_log(&self.key, self.try_number) {
                Some(live) => (live, false),
                None => (
                    self.s
                        .metastore
                        .log(&self.ti, self.try_number)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    true,
                ),
            };
            let start = self.offset.min(text.len());
            // While the try runs, only whole lines: the last may still grow.
            let end = if ended {
                text.len()
            } else {
                text[start..].rfind('\n').map_or(start, |i| start + i + 1)
            };
            self.done = ended;
            if end > start && text.is_char_boundary(start) {
                self.offset = end;
                return Some(ndjson_lines(&structured(&text[start..end])));
            }
            if !ended {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_become_entries_and_continuations_stay_with_theirs() {
        let text = "[2026-01-02T03:04:05.678Z] INFO starting\n\
                    [2026-01-02T03:04:06.000Z] ERROR Traceback:\n  File \"x.py\", line 1\n\
                    plain text\n";
        let entries = structured(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].event, "starting");
        assert_eq!(entries[0].level.as_deref(), Some("info"));
        assert_eq!(
            entries[1].event,
            "Traceback:\n  File \"x.py\", line 1\nplain text"
        );
        assert_eq!(structured("no stamp\n")[0].event, "no stamp");
    }
}

/// Airflow's `ClearTaskInstancesBody`. Aileron clears within one DagRun, so
/// `dag_run_id` is needed, and the options that reach across runs (dates,
/// past, future) are refused when set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskInstancesBody {
    #[serde(default = "yes")]
    dry_run: bool,
    start_date: Option<Timestamp>,
    end_date: Option<Timestamp>,
    #[serde(default = "yes")]
    only_failed: bool,
    #[serde(default)]
    only_running: bool,
    /// Aileron always sets a cleared DagRun running again (Airflow's default).
    #[serde(default = "yes")]
    reset_dag_runs: bool,
    task_ids: Option<Vec<String>>,
    dag_run_id: Option<String>,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_downstream: bool,
    #[serde(default)]
    include_future: bool,
    #[serde(default)]
    include_past: bool,
    run_on_latest_version: Option<bool>,
    #[serde(default)]
    prevent_running_task: bool,
    /// Accepted; Aileron does not keep notes.
    note: Option<String>,
}

fn yes() -> bool {
    true
}

/// Clear TaskInstances of a DagRun so they run again. Answers the TaskInstances
/// cleared (or, for a dry run, that would be).
#[utoipa::path(
    post, path = "/dags/{dag_id}/clearTaskInstances", tag = "TaskInstance",
    operation_id = "post_clear_task_instances",
    params(super::super::paths::DagPath),
    request_body = ClearTaskInstancesBody,
    responses(
        (status = 200, description = "The TaskInstances cleared, as they were.", body = TaskInstanceCollectionResponse),
        (status = 400, description = "An option Aileron does not have, or a task that does not exist."),
        (status = 404, description = "No such DAG or DagRun."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn post_clear_task_instances(
    caller: Caller,
    state: State<ApiState>,
    path: Path<super::super::paths::DagPath>,
    super::V2Json(body): super::V2Json<ClearTaskInstancesBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let _ = &body.note;
    load_dag(&state, &caller, &path.dag_id)?;
    // Airflow 3's own options here; the rest are the v1 body's to refuse.
    let unsupported = [
        (
            "run_on_latest_version",
            body.run_on_latest_version == Some(false),
        ),
        ("prevent_running_task", body.prevent_running_task),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(ApiError::bad_request(format!(
            "Aileron clears within one DagRun and has no `{field}`"
        )));
    }
    let Some(dag_run_id) = body.dag_run_id else {
        return Err(ApiError::bad_request(
            "give `dag_run_id`: Aileron clears TaskInstances of one DagRun at a time",
        ));
    };
    let v1_body = serde_json::from_value(serde_json::json!({
        "dag_run_id": dag_run_id,
        "task_ids": body.task_ids,
        "include_upstream": body.include_upstream,
        "include_downstream": body.include_downstream,
        "only_failed": body.only_failed,
        "dry_run": body.dry_run,
        "reset_dag_runs": body.reset_dag_runs,
        "only_running": body.only_running,
        "include_future": body.include_future,
        "include_past": body.include_past,
        "start_date": body.start_date,
        "end_date": body.end_date,
    }))
    .map_err(|e| ApiError::unprocessable(format!("invalid body: {e}")))?;
    let Json(page) = v1::clear_tis(caller, state, path, super::super::JsonBody(v1_body)).await?;
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances: page.task_instances.into_iter().map(response).collect(),
        total_entries: page.total_entries,
    }))
}
