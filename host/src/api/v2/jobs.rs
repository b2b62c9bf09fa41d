//! `GET /jobs`: Airflow's jobs. Aileron's API, DAG processor and scheduler are
//! one process (`standalone` or `scheduler`), so the list is that process's
//! `SchedulerJob`, its heartbeat the scheduler loop's last turn. `aileron
//! worker` processes are not jobs in Airflow's sense: `/workers` lists them.

use super::super::query::items;
use super::super::{ApiError, ApiResult, ApiState, paginate};
use super::V2Query;
use super::batch::Bounds;
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `JobResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub id: u64,
    pub dag_id: Option<String>,
    /// `running` while the scheduler's loop turns; `failed` once its heartbeat
    /// is older than 30 s (Airflow's health threshold).
    pub state: Option<String>,
    pub job_type: Option<String>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub latest_heartbeat: Option<Timestamp>,
    /// `LocalExecutor` (`aileron standalone`) or `RedisStreamsExecutor`
    /// (`aileron scheduler` with its workers).
    pub executor_class: Option<String>,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub dag_display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobCollectionResponse {
    pub jobs: Vec<JobResponse>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only jobs whose heartbeat is recent (true) or not (false).
    is_alive: Option<bool>,
    start_date_gte: Option<Timestamp>,
    start_date_gt: Option<Timestamp>,
    start_date_lte: Option<Timestamp>,
    start_date_lt: Option<Timestamp>,
    end_date_gte: Option<Timestamp>,
    end_date_gt: Option<Timestamp>,
    end_date_lte: Option<Timestamp>,
    end_date_lt: Option<Timestamp>,
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `id` (default), `job_type`, `state`, `start_date`, `end_date`,
    /// `latest_heartbeat`, `executor_class`, `hostname` or `unixname`, `-`
    /// before it for descending (repeat for more keys).
    order_by: Option<String>,
    job_state: Option<String>,
    /// `SchedulerJob`, `TriggererJob`, `DagProcessorJob`: Aileron has the first.
    job_type: Option<String>,
    hostname: Option<String>,
    executor_class: Option<String>,
}

const ORDERABLE: &[&str] = &[
    "id",
    "job_type",
    "state",
    "start_date",
    "end_date",
    "latest_heartbeat",
    "executor_class",
    "hostname",
    "unixname",
];

/// List jobs: this process's scheduler, with its heartbeat.
#[utoipa::path(
    get, path = "/jobs", tag = "Job", operation_id = "get_jobs",
    params(JobFilter),
    responses(
        (status = 200, description = "The jobs.", body = JobCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_jobs(
    State(s): State<ApiState>,
    V2Query(q): V2Query<JobFilter>,
) -> ApiResult<Json<JobCollectionResponse>> {
    if let Some(order) = &q.order_by {
        for key in items(order) {
            let field = key.strip_prefix('-').unwrap_or(key);
            if !ORDERABLE.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "Ordering with '{field}' is disallowed or the attribute does not exist on the model"
                )));
            }
        }
    }
    let beat = s.scheduler.heartbeat();
    let alive = s.scheduler.is_healthy();
    let scheduler = JobResponse {
        id: 1,
        dag_id: None,
        state: Some(if alive { "running" } else { "failed" }.to_owned()),
        job_type: Some("SchedulerJob".to_owned()),
        start_date: Some(beat.started()),
        end_date: None,
        latest_heartbeat: beat.last(),
        executor_class: Some(
            if s.remote.is_some() {
                "RedisStreamsExecutor"
            } else {
                "LocalExecutor"
            }
            .to_owned(),
        ),
        hostname: Some(aileron_protocol::hostname()),
        unixname: std::env::var("USER").ok(),
        dag_display_name: None,
    };
    let matches = |j: &JobResponse| {
        q.is_alive.is_none_or(|a| a == alive)
            && q.job_state
                .as_ref()
                .is_none_or(|w| j.state.as_ref() == Some(w))
            && q.job_type
                .as_ref()
                .is_none_or(|w| j.job_type.as_ref() == Some(w))
            && q.hostname
                .as_ref()
                .is_none_or(|w| j.hostname.as_ref() == Some(w))
            && q.executor_class
                .as_ref()
                .is_none_or(|w| j.executor_class.as_ref() == Some(w))
            && Bounds {
                gte: q.start_date_gte,
                gt: q.start_date_gt,
                lte: q.start_date_lte,
                lt: q.start_date_lt,
            }
            .holds(j.start_date)
            && Bounds {
                gte: q.end_date_gte,
                gt: q.end_date_gt,
                lte: q.end_date_lte,
                lt: q.end_date_lt,
            }
            .holds(j.end_date)
    };
    // One job: the order asked for (checked above) has nothing to sort.
    let jobs: Vec<JobResponse> = [scheduler].into_iter().filter(matches).collect();
    let (jobs, total_entries) = paginate(jobs, q.limit, q.offset);
    Ok(Json(JobCollectionResponse {
        jobs,
        total_entries,
    }))
}
