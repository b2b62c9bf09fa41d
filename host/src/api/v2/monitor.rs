//! `/api/v2/monitor/health` and `/api/v2/version`.

use super::super::ApiState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// Airflow's `HealthInfoResponse`: Aileron has no triggerer, so its status is
/// `null`; the DAG processor is part of the scheduler's process.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthInfoResponse {
    pub metadatabase: BaseInfoResponse,
    pub scheduler: SchedulerInfoResponse,
    pub triggerer: TriggererInfoResponse,
    pub dag_processor: DagProcessorInfoResponse,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BaseInfoResponse {
    /// `healthy` or `unhealthy`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerInfoResponse {
    pub status: Option<String>,
    pub latest_scheduler_heartbeat: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriggererInfoResponse {
    pub status: Option<String>,
    pub latest_triggerer_heartbeat: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagProcessorInfoResponse {
    pub status: Option<String>,
    pub latest_dag_processor_heartbeat: Option<String>,
}

fn health(ok: bool) -> Option<String> {
    Some(if ok { "healthy" } else { "unhealthy" }.to_owned())
}

/// Health of the metastore, the scheduler and the DAG processor.
#[utoipa::path(
    get, path = "/monitor/health", tag = "Monitor", operation_id = "get_health",
    responses((status = 200, description = "The health of each part.", body = HealthInfoResponse))
)]
pub async fn get_health(State(s): State<ApiState>) -> Json<HealthInfoResponse> {
    let beat = s.scheduler.heartbeat();
    let scheduler = s.scheduler.is_healthy();
    Json(HealthInfoResponse {
        metadatabase: BaseInfoResponse {
            status: health(s.metastore.schema_version().is_ok()),
        },
        scheduler: SchedulerInfoResponse {
            status: health(scheduler),
            latest_scheduler_heartbeat: beat.last().map(|t| t.to_string()),
        },
        triggerer: TriggererInfoResponse {
            status: None,
            latest_triggerer_heartbeat: None,
        },
        dag_processor: DagProcessorInfoResponse {
            status: health(scheduler),
            latest_dag_processor_heartbeat: None,
        },
    })
}

/// Aileron's version.
#[utoipa::path(
    get, path = "/version", tag = "Version", operation_id = "get_version",
    responses((status = 200, description = "The version.", body = super::super::monitor::VersionInfo))
)]
pub async fn get_version() -> Json<super::super::monitor::VersionInfo> {
    super::super::monitor::version().await
}
