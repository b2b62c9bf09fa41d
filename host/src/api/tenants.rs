//! Tenants: the teams sharing this Aileron. Platform admins create, list and
//! delete them; everyone else only ever sees the tenants they hold a role in
//! (`GET /me`).

use super::error::{BadRequest, Conflict, NotFound, Unprocessable};
use super::paths::TenantPath;
use super::{ApiError, ApiResult, ApiState, Caller, JsonBody};
use crate::metastore::{TenantLimits, TenantRecord};
use aileron_model::TenantId;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    pub description: String,
    pub created_at: jiff::Timestamp,
    /// Its weight when tenants compete for executor slots: each gets slots in
    /// proportion to it, whatever the length of its backlog.
    pub weight: u32,
    /// Its tries queued or running at once, across every executor and worker;
    /// null: no cap but `parallelism`.
    pub max_running: Option<u32>,
    /// Bytes of linear memory its tries running in one process may hold
    /// together; a growth past it fails that try. Null: no quota.
    pub max_memory: Option<u64>,
    /// Guest CPU seconds its tries may use in a rolling hour; once spent, its new
    /// tries wait (`scheduled`) until the hour rolls. Null: no budget.
    pub cpu_per_hour: Option<u64>,
    /// Ceiling of its DAGs' `max_active_runs` (a DAG that sets none gets the
    /// lower of it and 16).
    pub max_active_runs: Option<u32>,
    /// Ceiling (and default) of its tasks' `execution_timeout`, in seconds.
    pub execution_timeout: Option<u64>,
    /// Ceiling (and default) of its tasks' `memory_limit`, in bytes.
    pub memory_limit: Option<u64>,
}

impl From<TenantRecord> for Tenant {
    fn from(r: TenantRecord) -> Self {
        let l = r.limits;
        Tenant {
            name: r.name.to_string(),
            description: r.description,
            created_at: r.created_at,
            weight: l.weight(),
            max_running: l.max_running,
            max_memory: l.max_memory,
            cpu_per_hour: l.cpu_per_hour,
            max_active_runs: l.max_active_runs,
            execution_timeout: l.execution_timeout,
            memory_limit: l.memory_limit,
        }
    }
}

/// A change to a tenant: each field present is set; `null` clears a limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub description: Option<String>,
    /// 1 to 1000.
    pub weight: Option<u32>,
    /// 0 to 100000, or null for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u32>)]
    pub max_running: Option<Option<u32>>,
    /// Bytes, at least 1 MiB; null for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u64>)]
    pub max_memory: Option<Option<u64>>,
    /// Seconds, 1 to 3600000; null for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u64>)]
    pub cpu_per_hour: Option<Option<u64>>,
    /// 1 to 10000; null for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u32>)]
    pub max_active_runs: Option<Option<u32>>,
    /// Seconds, 1 to 2678400 (31 days); null for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u64>)]
    pub execution_timeout: Option<Option<u64>>,
    /// Bytes, 1 MiB to 4 GiB; null for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u64>)]
    pub memory_limit: Option<Option<u64>>,
}

impl TenantPatch {
    /// Refuses a value out of its range, naming the field.
    fn check(&self) -> ApiResult<()> {
        fn within<T: PartialOrd + Copy>(
            value: Option<Option<T>>,
            range: std::ops::RangeInclusive<T>,
            field: &str,
            what: &str,
        ) -> ApiResult<()> {
            match value.flatten() {
                Some(v) if !range.contains(&v) => Err(ApiError::bad_request(format!(
                    "`{field}` must be {what}, or null for none"
                ))),
                _ => Ok(()),
            }
        }
        if self.weight.is_some_and(|w| !(1..=1000).contains(&w)) {
            return Err(ApiError::bad_request("`weight` must be 1 to 1000"));
        }
        within(self.max_running, 0..=100_000, "max_running", "0 to 100000")?;
        within(
            self.max_memory,
            1 << 20..=1 << 40,
            "max_memory",
            "1048576 (1 MiB) to 1099511627776 (1 TiB) bytes",
        )?;
        within(
            self.cpu_per_hour,
            1..=3_600_000,
            "cpu_per_hour",
            "1 to 3600000 seconds",
        )?;
        within(
            self.max_active_runs,
            1..=10_000,
            "max_active_runs",
            "1 to 10000",
        )?;
        within(
            self.execution_timeout,
            1..=31 * 24 * 3600,
            "execution_timeout",
            "1 to 2678400 seconds",
        )?;
        within(
            self.memory_limit,
            1 << 20..=1 << 32,
            "memory_limit",
            "1048576 (1 MiB) to 4294967296 (4 GiB) bytes",
        )
    }

    fn apply(self, limits: &mut TenantLimits) {
        if let Some(w) = self.weight {
            limits.weight = Some(w);
        }
        /// A field present in the patch replaces the limit (`null` clears it).
        fn set<T>(field: &mut Option<T>, value: Option<Option<T>>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut limits.max_running, self.max_running);
        set(&mut limits.max_active_runs, self.max_active_runs);
        set(&mut limits.max_memory, self.max_memory);
        set(&mut limits.cpu_per_hour, self.cpu_per_hour);
        set(&mut limits.execution_timeout, self.execution_timeout);
        set(&mut limits.memory_limit, self.memory_limit);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantCollection {
    pub tenants: Vec<Tenant>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 63 ASCII letters, digits, `-` and `_`: also the name of its folder
    /// under the DAGs and plugins folders.
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// List tenants (platform admins).
#[utoipa::path(
    get, path = "/tenants", tag = "Tenant", operation_id = "get_tenants",
    responses((status = 200, description = "Every tenant.", body = TenantCollection))
)]
pub async fn list_tenants(
    _caller: Caller,
    State(s): State<ApiState>,
) -> ApiResult<Json<TenantCollection>> {
    let tenants: Vec<Tenant> = s
        .metastore
        .tenants()?
        .into_iter()
        .map(Tenant::from)
        .collect();
    Ok(Json(TenantCollection {
        total_entries: tenants.len(),
        tenants,
    }))
}

/// Get a tenant (platform admins).
#[utoipa::path(
    get, path = "/tenants/{tenant_name}", tag = "Tenant", operation_id = "get_tenant",
    params(TenantPath),
    responses((status = 200, description = "The tenant.", body = Tenant), NotFound)
)]
pub async fn get_tenant(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(TenantPath { tenant_name }): Path<TenantPath>,
) -> ApiResult<Json<Tenant>> {
    s.metastore
        .tenant(&tenant_name)?
        .map(|t| Json(t.into()))
        .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant_name}` not found")))
}

/// Create a tenant (platform admins). Its DAG files go in `dags/<name>/`.
#[utoipa::path(
    post, path = "/tenants", tag = "Tenant", operation_id = "post_tenant",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The tenant as created.", body = Tenant),
        BadRequest, Conflict, Unprocessable,
    )
)]
pub async fn create_tenant(
    _caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<NewTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let name = TenantId::new(&body.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if aileron_sandbox::OperatorScope::reserved_tenant(name.as_str()) {
        return Err(ApiError::bad_request(format!(
            "`{name}` is reserved (it names the global operator store); choose another name"
        )));
    }
    let record = TenantRecord {
        name,
        description: body.description,
        created_at: jiff::Timestamp::now(),
        limits: Default::default(),
    };
    let r = record.clone();
    s.blocking(move |m| Ok(m.create_tenant(&r)?)).await?;
    if let Some(remote) = &s.remote {
        remote.announce([record.name.as_str()]);
    }
    // Its folder of DAG files, if one is waiting, is read now.
    // The scheduler's view of tenants (limits, usage) follows at once: a
    // tenant made again under an old name starts with nothing of the old one.
    let _ = s.scheduler.send(crate::scheduler::Command::TenantsChanged);
    s.rescan.notify_one();
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Change a tenant's description, weight or quotas (platform admins). The
/// scheduler applies them from its next admission on; the ceilings on its DAGs
/// from their next parse.
#[utoipa::path(
    patch, path = "/tenants/{tenant_name}", tag = "Tenant", operation_id = "patch_tenant",
    params(TenantPath),
    request_body = TenantPatch,
    responses((status = 200, description = "The tenant as changed.", body = Tenant), BadRequest, NotFound, Unprocessable)
)]
pub async fn patch_tenant(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(TenantPath { tenant_name }): Path<TenantPath>,
    JsonBody(mut patch): JsonBody<TenantPatch>,
) -> ApiResult<Json<Tenant>> {
    patch.check()?;
    let (record, ceilings_changed) = s
        .blocking(move |m| {
            let mut record = m
                .tenant(&tenant_name)?
                .ok_or_else(|| ApiError::not_found(format!("tenant `{tenant_name}` not found")))?;
            if let Some(d) = patch.description.take() {
                record.description = d;
            }
            let before = record.limits.ceilings();
            patch.apply(&mut record.limits);
            m.update_tenant(&record)?;
            let changed = record.limits.ceilings() != before;
            Ok((record, changed))
        })
        .await?;
    let _ = s.scheduler.send(crate::scheduler::Command::TenantsChanged);
    if ceilings_changed {
        // Its DAG files are parsed again within the ceilings as they are now.
        s.rescan.notify_one();
    }
    Ok(Json(record.into()))
}

/// Delete a tenant (platform admins), with its members, tokens, variables,
/// connections, pools and operators. Refused (409) while it still has DAGs.
#[utoipa::path(
    delete, path = "/tenants/{tenant_name}", tag = "Tenant", operation_id = "delete_tenant",
    params(TenantPath),
    responses((status = 204, description = "Deleted"), NotFound, Conflict)
)]
pub async fn delete_tenant(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(TenantPath { tenant_name }): Path<TenantPath>,
) -> ApiResult<StatusCode> {
    if tenant_name == TenantId::DEFAULT {
        return Err(ApiError::conflict("the `default` tenant cannot be deleted"));
    }
    let tenant = TenantId::new(&tenant_name)
        .map_err(|_| ApiError::not_found(format!("tenant `{tenant_name}` not found")))?;
    s.blocking(move |m| Ok(m.delete_tenant(&tenant_name)?))
        .await?;
    if let Some(remote) = &s.remote {
        remote.forget(tenant.as_str());
    }
    // Its operators go with it: a tenant made later under the same name must
    // not inherit them.
    let (registry, dir) = (s.registry.clone(), s.plugins_dir.clone());
    let scope = aileron_sandbox::OperatorScope::Tenant(tenant.clone());
    let removed = tokio::task::spawn_blocking(move || registry.remove_scope(&dir, &scope)).await;
    match removed {
        Ok(Ok(gone)) if !gone.is_empty() => {
            tracing::info!(%tenant, operators = gone.len(), "removed the deleted tenant's operators");
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(%tenant, "cannot remove the deleted tenant's operators: {e}"),
        Err(e) => {
            tracing::error!(%tenant, "removing the deleted tenant's operators ended abnormally: {e}")
        }
    }
    // The scheduler's view of tenants (limits, usage) follows at once: a
    // tenant made again under an old name starts with nothing of the old one.
    let _ = s.scheduler.send(crate::scheduler::Command::TenantsChanged);
    s.rescan.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
