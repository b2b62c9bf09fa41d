//! Health and version.

use super::ApiState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthInfo {
    pub metadatabase: HealthStatus,
    pub scheduler: SchedulerStatus,
}

/// The scheduler's health, as Airflow 2 reports it: healthy while its loop
/// turned within the last 30 s (an idle one turns every 5 s).
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerStatus {
    pub status: Health,
    pub latest_scheduler_heartbeat: Option<jiff::Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    pub status: Health,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Unhealthy,
}

impl From<bool> for Health {
    fn from(ok: bool) -> Self {
        if ok { Self::Healthy } else { Self::Unhealthy }
    }
}

/// Health of the metastore and the scheduler.
#[utoipa::path(
    get, path = "/health", tag = "Monitoring", operation_id = "get_health",
    responses((status = 200, description = "The health of each part.", body = HealthInfo))
)]
pub async fn health(State(s): State<ApiState>) -> Json<HealthInfo> {
    Json(HealthInfo {
        metadatabase: HealthStatus {
            status: s.metastore.schema_version().is_ok().into(),
        },
        scheduler: SchedulerStatus {
            status: s.scheduler.is_healthy().into(),
            latest_scheduler_heartbeat: s.scheduler.heartbeat().last(),
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    pub version: String,
    /// The commit Aileron was built from, when the build recorded it.
    pub git_version: Option<String>,
}

/// Aileron's version.
#[utoipa::path(
    get, path = "/version", tag = "Monitoring", operation_id = "get_version",
    responses((status = 200, description = "The version.", body = VersionInfo))
)]
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_version: option_env!("AILERON_GIT_VERSION").map(str::to_owned),
    })
}
