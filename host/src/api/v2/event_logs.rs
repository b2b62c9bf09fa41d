//! The audit log in v2 (`/eventLogs`): Airflow 3's `EventLogResponse`, oldest
//! first unless `order_by=-id`, with Airflow's filters.

use super::super::event_logs::{EventLog, get_event_log as v1_get};
use super::super::paths::EventLogPath;
use super::super::{ApiError, ApiResult, ApiState, Caller, page_size};
use super::dags::like;
use super::{V2Path, V2Query};
use crate::metastore::{AuditQuery, AuditRecord};
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `EventLogResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventLogResponse {
    pub event_log_id: u64,
    pub when: Timestamp,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<u32>,
    pub event: String,
    pub logical_date: Option<Timestamp>,
    pub owner: Option<String>,
    /// `{"method", "path", "status", "source"}` as JSON text.
    pub extra: Option<String>,
    pub dag_display_name: Option<String>,
    pub task_display_name: Option<String>,
    /// Aileron's: the tenant the event belongs to.
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventLogCollectionResponse {
    pub event_logs: Vec<EventLogResponse>,
    pub total_entries: usize,
}

fn response(e: EventLog) -> EventLogResponse {
    EventLogResponse {
        event_log_id: e.event_log_id,
        when: e.when,
        dag_display_name: e.dag_id.clone(),
        task_display_name: e.task_id.clone(),
        dag_id: e.dag_id,
        task_id: e.task_id,
        run_id: e.run_id,
        map_index: None,
        try_number: None,
        event: e.event,
        logical_date: None,
        owner: Some(e.owner),
        extra: Some(e.extra),
        tenant: e.tenant,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventLogFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `id` (default, oldest first) or `-id`; `when` and `event_log_id` are
    /// the same order.
    order_by: Option<String>,
    dag_id: Option<String>,
    task_id: Option<String>,
    run_id: Option<String>,
    /// Who made the change: a user name, `token:<name>` or `anonymous`.
    owner: Option<String>,
    /// The operation, e.g. `post_variable`.
    event: Option<String>,
    /// Leave out these events (repeat the parameter).
    excluded_events: Option<String>,
    /// Only these events (repeat the parameter).
    included_events: Option<String>,
    /// Only events before this time.
    before: Option<Timestamp>,
    /// Only events after this time.
    after: Option<Timestamp>,
    /// SQL `LIKE` patterns on the same fields.
    dag_id_pattern: Option<String>,
    task_id_pattern: Option<String>,
    run_id_pattern: Option<String>,
    owner_pattern: Option<String>,
    event_pattern: Option<String>,
}

impl EventLogFilter {
    fn filters(&self) -> bool {
        [
            &self.dag_id,
            &self.task_id,
            &self.run_id,
            &self.owner,
            &self.event,
            &self.excluded_events,
            &self.included_events,
            &self.dag_id_pattern,
            &self.task_id_pattern,
            &self.run_id_pattern,
            &self.owner_pattern,
            &self.event_pattern,
        ]
        .iter()
        .any(|f| f.is_some())
            || self.before.is_some()
            || self.after.is_some()
    }

    fn keeps(&self, r: &AuditRecord) -> bool {
        fn eq(want: &Option<String>, have: Option<&str>) -> bool {
            want.as_deref().is_none_or(|w| have == Some(w))
        }
        fn pattern(p: &Option<String>, have: Option<&str>) -> bool {
            p.as_deref()
                .is_none_or(|p| have.is_some_and(|h| like(p, h)))
        }
        fn listed(list: &Option<String>) -> Option<Vec<&str>> {
            list.as_deref()
                .map(|l| l.split(',').map(str::trim).collect())
        }
        eq(&self.dag_id, r.dag_id.as_deref())
            && eq(&self.task_id, r.task_id.as_deref())
            && eq(&self.run_id, r.run_id.as_deref())
            && eq(&self.owner, Some(&r.actor))
            && eq(&self.event, Some(&r.event))
            && listed(&self.excluded_events).is_none_or(|l| !l.contains(&r.event.as_str()))
            && listed(&self.included_events).is_none_or(|l| l.contains(&r.event.as_str()))
            && self.before.is_none_or(|t| r.when < t)
            && self.after.is_none_or(|t| r.when > t)
            && pattern(&self.dag_id_pattern, r.dag_id.as_deref())
            && pattern(&self.task_id_pattern, r.task_id.as_deref())
            && pattern(&self.run_id_pattern, r.run_id.as_deref())
            && pattern(&self.owner_pattern, Some(&r.actor))
            && pattern(&self.event_pattern, Some(&r.event))
    }
}

/// List the tenant's audit log.
#[utoipa::path(
    get, path = "/eventLogs", tag = "EventLog", operation_id = "get_event_logs",
    params(EventLogFilter),
    responses(
        (status = 200, description = "One page of events.", body = EventLogCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_event_logs(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<EventLogFilter>,
) -> ApiResult<Json<EventLogCollectionResponse>> {
    let newest_first = match q.order_by.as_deref().unwrap_or("id") {
        "id" | "event_log_id" | "when" | "dttm" => false,
        "-id" | "-event_log_id" | "-when" | "-dttm" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
            )));
        }
    };
    let tenant = caller.tenant().to_owned();
    let (records, total_entries) = s
        .blocking(move |m| {
            let keep = |r: &AuditRecord| q.keeps(r);
            let query = AuditQuery {
                newest_first,
                offset: q.offset.unwrap_or(0),
                limit: page_size(q.limit),
                keep: if q.filters() { Some(&keep) } else { None },
            };
            Ok(m.audit_search(Some(&tenant), &query)?)
        })
        .await?;
    Ok(Json(EventLogCollectionResponse {
        event_logs: records.into_iter().map(|r| response(r.into())).collect(),
        total_entries,
    }))
}

/// Get one event of the tenant's audit log.
#[utoipa::path(
    get, path = "/eventLogs/{event_log_id}", tag = "EventLog", operation_id = "get_event_log",
    params(EventLogPath),
    responses(
        (status = 200, description = "The event.", body = EventLogResponse),
        (status = 404, description = "No such event."),
    )
)]
pub async fn get_event_log(
    caller: Caller,
    state: State<ApiState>,
    V2Path(path): V2Path<EventLogPath>,
) -> ApiResult<Json<EventLogResponse>> {
    let Json(e) = v1_get(caller, state, Path(path)).await?;
    Ok(Json(response(e)))
}
