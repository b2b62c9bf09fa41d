//! API tokens of service accounts: a tenant's Admins make and revoke its tokens
//! (`/tokens`), platform admins the platform's (`/platform/tokens`, for
//! Prometheus, automation across tenants). A token's text is shown once, in the
//! answer that creates it; afterwards only its id, name, role and dates.

use super::error::{BadRequest, NotFound, Unprocessable};
use super::paths::TokenPath;
use super::{ApiError, ApiResult, ApiState, Caller, JsonBody};
use crate::auth::api_token;
use crate::metastore::ApiTokenRecord;
use aileron_model::Role;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiToken {
    pub token_id: String,
    pub name: String,
    /// The tenant it acts in; null for a platform token.
    pub tenant: Option<String>,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_by: String,
    pub created_at: jiff::Timestamp,
    pub expires_at: Option<jiff::Timestamp>,
    /// When it was last used, to within five minutes.
    pub last_used_at: Option<jiff::Timestamp>,
    pub revoked_at: Option<jiff::Timestamp>,
    /// A worker token: for `aileron worker` alone, which then takes the tries
    /// of this tenant only (of every tenant for a platform one).
    pub worker: bool,
}

impl From<ApiTokenRecord> for ApiToken {
    fn from(r: ApiTokenRecord) -> Self {
        ApiToken {
            token_id: r.id,
            name: r.name,
            tenant: r.tenant.map(|t| t.to_string()),
            role: r.role,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            worker: r.worker,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenCollection {
    pub tokens: Vec<ApiToken>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The service account's name (shown in lists and the audit log).
    pub name: String,
    /// The role it acts with in the tenant (Viewer by default). Ignored for
    /// platform tokens, which act as platform admins.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// When it stops working; never if absent.
    pub expires_at: Option<String>,
    /// Make a worker token (`aileron worker --token`), which takes this
    /// tenant's tries alone (every tenant's for a platform token) and is
    /// refused by the REST API.
    #[serde(default)]
    pub worker: bool,
}

/// The answer that creates a token: the only time its text is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// `ail_<id>_<secret>`: send it as `Authorization: Bearer …`.
    pub token: String,
    #[serde(flatten)]
    pub record: ApiToken,
}

async fn create(
    s: &ApiState,
    caller: &Caller,
    body: NewToken,
    platform: bool,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    super::check_id("`name`", &body.name)?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| super::user_datetime("expires_at", t))
        .transpose()?;
    if expires_at.is_some_and(|e| e <= jiff::Timestamp::now()) {
        return Err(ApiError::bad_request("`expires_at` is in the past"));
    }
    let new = api_token::generate().map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the operating system gave no random bytes",
        )
    })?;
    let record = ApiTokenRecord {
        id: new.id,
        tenant: (!platform).then(|| caller.tenant_id().clone()),
        name: body.name,
        role: if platform {
            Role::Admin
        } else {
            body.role.unwrap_or(Role::Viewer)
        },
        secret_sha256: new.secret_sha256,
        created_by: caller.actor(),
        created_at: jiff::Timestamp::now(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
        worker: body.worker,
    };
    let r = record.clone();
    s.blocking(move |m| Ok(m.create_api_token(&r)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: new.text,
            record: record.into(),
        }),
    ))
}

fn list(s: &ApiState, tenant: Option<&str>) -> ApiResult<Json<ApiTokenCollection>> {
    let tokens: Vec<ApiToken> = s
        .metastore
        .api_tokens(tenant)?
        .into_iter()
        .map(ApiToken::from)
        .collect();
    Ok(Json(ApiTokenCollection {
        total_entries: tokens.len(),
        tokens,
    }))
}

async fn revoke(s: &ApiState, tenant: Option<&str>, id: String) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found(format!("token `{id}` not found"));
    let mut record = s
        .metastore
        .api_token(&id)?
        .filter(|r| r.tenant.as_ref().map(|t| t.as_str()) == tenant)
        .ok_or_else(not_found)?;
    if record.revoked_at.is_none() {
        record.revoked_at = Some(jiff::Timestamp::now());
        s.blocking(move |m| Ok(m.update_api_token(&record)?))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// List the tenant's API tokens (tenant Admins).
#[utoipa::path(
    get, path = "/tokens", tag = "Token", operation_id = "get_tokens",
    responses((status = 200, description = "The tenant's tokens, revoked ones included.", body = ApiTokenCollection))
)]
pub async fn list_tokens(
    caller: Caller,
    State(s): State<ApiState>,
) -> ApiResult<Json<ApiTokenCollection>> {
    list(&s, Some(caller.tenant()))
}

/// Make an API token for a service account of the tenant (tenant Admins).
#[utoipa::path(
    post, path = "/tokens", tag = "Token", operation_id = "post_token",
    request_body = NewToken,
    responses((status = 201, description = "The token, whose text is shown this once.", body = CreatedToken), BadRequest, Unprocessable)
)]
pub async fn create_token(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    create(&s, &caller, body, false).await
}

/// Revoke one of the tenant's tokens (tenant Admins); it stays listed.
#[utoipa::path(
    delete, path = "/tokens/{token_id}", tag = "Token", operation_id = "delete_token",
    params(TokenPath),
    responses((status = 204, description = "Revoked"), NotFound)
)]
pub async fn revoke_token(
    caller: Caller,
    State(s): State<ApiState>,
    Path(TokenPath { token_id }): Path<TokenPath>,
) -> ApiResult<StatusCode> {
    revoke(&s, Some(caller.tenant()), token_id).await
}

/// List the platform's API tokens (platform admins).
#[utoipa::path(
    get, path = "/platform/tokens", tag = "Token", operation_id = "get_platform_tokens",
    responses((status = 200, description = "The platform's tokens.", body = ApiTokenCollection))
)]
pub async fn list_platform_tokens(
    _caller: Caller,
    State(s): State<ApiState>,
) -> ApiResult<Json<ApiTokenCollection>> {
    list(&s, None)
}

/// Make a platform token, which acts as a platform admin (platform admins).
#[utoipa::path(
    post, path = "/platform/tokens", tag = "Token", operation_id = "post_platform_token",
    request_body = NewToken,
    responses((status = 201, description = "The token, whose text is shown this once.", body = CreatedToken), BadRequest, Unprocessable)
)]
pub async fn create_platform_token(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    create(&s, &caller, body, true).await
}

/// Revoke a platform token (platform admins).
#[utoipa::path(
    delete, path = "/platform/tokens/{token_id}", tag = "Token", operation_id = "delete_platform_token",
    params(TokenPath),
    responses((status = 204, description = "Revoked"), NotFound)
)]
pub async fn revoke_platform_token(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(TokenPath { token_id }): Path<TokenPath>,
) -> ApiResult<StatusCode> {
    revoke(&s, None, token_id).await
}
