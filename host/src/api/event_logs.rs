//! The audit log as Airflow's `eventLogs`: every change asked of the API (made or
//! refused), newest first. A tenant's members see their tenant's; platform
//! admins see the platform's (tenants, users, workers, refused anonymous calls)
//! under `/platform/eventLogs`.

use super::error::{BadRequest, NotFound};
use super::paths::EventLogPath;
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState, Caller, Page, page_size};
use crate::metastore::AuditRecord;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

/// One event, with Airflow's field names.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventLog {
    pub event_log_id: u64,
    pub when: jiff::Timestamp,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    /// The operation, e.g. `post_variables`, `post_dag_run`.
    pub event: String,
    /// Who: a user name, `token:<name>` or `anonymous`.
    pub owner: String,
    /// The tenant; null for platform events.
    pub tenant: Option<String>,
    /// `{"method", "path", "status", "source"}` as JSON text.
    pub extra: String,
}

impl From<AuditRecord> for EventLog {
    fn from(r: AuditRecord) -> Self {
        EventLog {
            event_log_id: r.id,
            when: r.when,
            dag_id: r.dag_id,
            task_id: r.task_id,
            run_id: r.run_id,
            event: r.event,
            owner: r.actor,
            tenant: r.tenant,
            extra: serde_json::json!({
                "method": r.method, "path": r.path, "status": r.status, "source": r.source,
            })
            .to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventLogCollection {
    pub event_logs: Vec<EventLog>,
    pub total_entries: usize,
}

async fn page(
    s: &ApiState,
    scope: Option<String>,
    page: Page,
) -> ApiResult<Json<EventLogCollection>> {
    let (offset, limit) = (page.offset.unwrap_or(0), page_size(page.limit));
    let (records, total) = s
        .blocking(move |m| Ok(m.audit_page(scope.as_deref(), offset, limit)?))
        .await?;
    Ok(Json(EventLogCollection {
        event_logs: records.into_iter().map(EventLog::from).collect(),
        total_entries: total,
    }))
}

/// List the tenant's audit log, newest first.
#[utoipa::path(
    get, path = "/eventLogs", tag = "EventLog", operation_id = "get_event_logs",
    params(Page),
    responses((status = 200, description = "One page of events.", body = EventLogCollection), BadRequest)
)]
pub async fn list_event_logs(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(p): ApiQuery<Page>,
) -> ApiResult<Json<EventLogCollection>> {
    page(&s, Some(caller.tenant().to_owned()), p).await
}

/// Get one event of the tenant's audit log.
#[utoipa::path(
    get, path = "/eventLogs/{event_log_id}", tag = "EventLog", operation_id = "get_event_log",
    params(EventLogPath),
    responses((status = 200, description = "The event.", body = EventLog), NotFound)
)]
pub async fn get_event_log(
    caller: Caller,
    State(s): State<ApiState>,
    Path(EventLogPath { event_log_id }): Path<EventLogPath>,
) -> ApiResult<Json<EventLog>> {
    s.metastore
        .audit_record(Some(caller.tenant()), event_log_id)?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found(format!("event log {event_log_id} not found")))
}

/// List the platform's audit log, newest first (platform admins).
#[utoipa::path(
    get, path = "/platform/eventLogs", tag = "EventLog", operation_id = "get_platform_event_logs",
    params(Page),
    responses((status = 200, description = "One page of events.", body = EventLogCollection), BadRequest)
)]
pub async fn list_platform_event_logs(
    _caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(p): ApiQuery<Page>,
) -> ApiResult<Json<EventLogCollection>> {
    page(&s, None, p).await
}
