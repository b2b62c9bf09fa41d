//! Tenants: the teams sharing this Aileron. Platform admins create, list and
//! delete them; everyone else only ever sees the tenants they hold a role in
//! (`GET /me`).

use super::error::{BadRequest, Conflict, NotFound, Unprocessable};
use super::paths::TenantPath;
use super::{ApiError, ApiResult, ApiState, Caller, JsonBody};
use crate::metastore::TenantRecord;
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
}

impl From<TenantRecord> for Tenant {
    fn from(r: TenantRecord) -> Self {
        Tenant {
            name: r.name.to_string(),
            description: r.description,
            created_at: r.created_at,
        }
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
    };
    let r = record.clone();
    s.blocking(move |m| Ok(m.create_tenant(&r)?)).await?;
    // Its folder of DAG files, if one is waiting, is read now.
    s.rescan.notify_one();
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Delete a tenant (platform admins), with its members, tokens, variables,
/// connections and pools. Refused (409) while it still has DAGs.
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
    s.blocking(move |m| Ok(m.delete_tenant(&tenant_name)?))
        .await?;
    s.rescan.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
