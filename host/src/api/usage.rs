//! `GET /tenants/{tenant}/usage`: what a tenant uses of the shared Aileron
//! now and over the last hour, for its own members and platform admins.

use super::error::NotFound;
use super::paths::OwnTenantPath;
use super::{ApiError, ApiResult, ApiState, Caller};
use crate::metastore::UsageMinute;
use crate::scheduler::TenantNow;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

/// A tenant's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantUsage {
    pub tenant: String,
    /// Its tries running now, and queued for an executor or worker.
    pub running: u64,
    pub queued: u64,
    /// Its TaskInstances ready to run and not admitted yet (`scheduled`).
    pub waiting: u64,
    /// Linear memory its running tries hold now: in this process, or summed
    /// over the workers' last heartbeats (each worker enforces `max_memory`
    /// for its own process).
    pub memory_in_use_bytes: u64,
    /// Guest CPU seconds of its tries that ended in the last hour, and since it
    /// was made.
    pub cpu_seconds_last_hour: f64,
    pub cpu_seconds_total: f64,
    /// Time its tries spent waiting on host calls (XCom, variables,
    /// connections, outbound HTTP), since it was made.
    pub host_call_seconds_total: f64,
    pub tries_total: u64,
    /// Memory growths refused by its `max_memory`, since it was made.
    pub refused_allocations_total: u64,
    /// Its CPU budget (seconds per rolling hour), if it has one.
    pub cpu_per_hour: Option<u64>,
    /// Why its new tries wait, while its CPU budget is spent.
    pub held_back_reason: Option<String>,
    /// When its CPU budget comes back, while it is spent.
    pub held_back_until: Option<jiff::Timestamp>,
    /// The last hour, one entry per minute in which a try of it ended.
    pub minutes: Vec<UsageMinuteView>,
}

/// One minute of a tenant's tries.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageMinuteView {
    /// The minute's start.
    pub start: jiff::Timestamp,
    pub cpu_seconds: f64,
    pub host_call_seconds: f64,
    pub tries: u64,
    pub refused_allocations: u64,
    /// The largest peak memory of a try that ended in the minute.
    pub peak_memory_bytes: u64,
}

impl From<&UsageMinute> for UsageMinuteView {
    fn from(m: &UsageMinute) -> Self {
        UsageMinuteView {
            start: jiff::Timestamp::from_second(m.minute * 60).unwrap_or_default(),
            cpu_seconds: m.cpu_seconds,
            host_call_seconds: m.host_call_seconds,
            tries: m.tries,
            refused_allocations: m.refused_allocations,
            peak_memory_bytes: m.peak_memory_bytes,
        }
    }
}

/// A tenant's usage, for the request's own tenant (any role); any other tenant
/// answers 404, as if it did not exist.
#[utoipa::path(
    get, path = "/tenants/{tenant}/usage", tag = "Tenant", operation_id = "get_tenant_usage",
    params(OwnTenantPath),
    responses((status = 200, description = "The tenant's usage.", body = TenantUsage), NotFound)
)]
pub async fn get_usage(
    caller: Caller,
    State(s): State<ApiState>,
    Path(OwnTenantPath {
        tenant: tenant_name,
    }): Path<OwnTenantPath>,
) -> ApiResult<Json<TenantUsage>> {
    let not_found = || ApiError::not_found(format!("tenant `{tenant_name}` not found"));
    // Like every tenant route, it sees the tenant the request acts in (a
    // Viewer of it at least); a platform admin reads another tenant's usage by
    // acting in it (`X-Aileron-Tenant`), as for its DAGs.
    if tenant_name != caller.tenant() {
        return Err(not_found());
    }
    let Some(record) = s.metastore.tenant(&tenant_name)? else {
        return Err(not_found());
    };
    let now_by_tenant = s
        .scheduler
        .tenant_usage(Some(&tenant_name))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let now = now_by_tenant.get(&tenant_name).cloned().unwrap_or_default();
    let memory_in_use_bytes = match &s.remote {
        Some(remote) => remote.tenant_memory(&tenant_name),
        None => s
            .registry
            .tenant_memory()
            .into_iter()
            .find(|(t, _)| *t == tenant_name)
            .map_or(0, |(_, m)| m.in_use_bytes),
    };
    Ok(Json(view(
        &tenant_name,
        now,
        memory_in_use_bytes,
        record.limits.cpu_per_hour,
        s.clock.now(),
    )))
}

fn view(
    tenant: &str,
    now: TenantNow,
    memory_in_use_bytes: u64,
    cpu_per_hour: Option<u64>,
    at: jiff::Timestamp,
) -> TenantUsage {
    let usage = &now.usage;
    TenantUsage {
        tenant: tenant.to_owned(),
        running: now.running,
        queued: now.queued,
        waiting: now.waiting,
        memory_in_use_bytes,
        cpu_seconds_last_hour: usage.cpu_last_hour(at),
        cpu_seconds_total: usage.cpu_seconds,
        host_call_seconds_total: usage.host_call_seconds,
        tries_total: usage.tries,
        refused_allocations_total: usage.refused_allocations,
        cpu_per_hour,
        held_back_reason: now.held_back.as_ref().map(|h| h.reason.clone()),
        held_back_until: now.held_back.as_ref().and_then(|h| h.until),
        minutes: usage.last_hour(at).map(UsageMinuteView::from).collect(),
    }
}
