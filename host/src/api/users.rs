//! Users (platform admins manage them) and the members of a tenant with their
//! roles (the tenant's Admins manage those). A user is a person who signs in with
//! a password; what they may do is the role they hold in each tenant.

use super::error::{BadRequest, Conflict, NotFound, Unprocessable};
use super::paths::UserPath;
use super::{ApiError, ApiResult, ApiState, Caller, JsonBody};
use crate::auth::password;
use crate::metastore::UserRecord;
use aileron_model::{Role, TenantId, UserName};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A user as the API shows it: never the password or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub username: String,
    pub platform_admin: bool,
    pub created_at: jiff::Timestamp,
    /// Role by tenant.
    #[schema(value_type = BTreeMap<String, String>)]
    pub roles: BTreeMap<String, Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserCollection {
    pub users: Vec<User>,
    pub total_entries: usize,
}

fn user_json(s: &ApiState, r: UserRecord) -> ApiResult<User> {
    let roles = s
        .metastore
        .user_roles(r.username.as_str())?
        .into_iter()
        .map(|(t, role)| (t.to_string(), role))
        .collect();
    Ok(User {
        username: r.username.to_string(),
        platform_admin: r.platform_admin,
        created_at: r.created_at,
        roles,
    })
}

fn parse_user(name: &str) -> ApiResult<UserName> {
    UserName::new(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn no_user(name: &str) -> ApiError {
    ApiError::not_found(format!("user `{name}` not found"))
}

/// Hashes on the blocking pool: argon2 takes tens of milliseconds on purpose.
async fn hash(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "hashing the password failed",
            )
        })?
        .map_err(|e| ApiError::bad_request(format!("`password`: {e}")))
}

/// List users (platform admins).
#[utoipa::path(
    get, path = "/users", tag = "User", operation_id = "get_users",
    responses((status = 200, description = "Every user.", body = UserCollection))
)]
pub async fn list_users(
    _caller: Caller,
    State(s): State<ApiState>,
) -> ApiResult<Json<UserCollection>> {
    let users = s
        .metastore
        .users()?
        .into_iter()
        .map(|r| user_json(&s, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(UserCollection {
        total_entries: users.len(),
        users,
    }))
}

/// Get a user (platform admins).
#[utoipa::path(
    get, path = "/users/{username}", tag = "User", operation_id = "get_user",
    params(UserPath),
    responses((status = 200, description = "The user.", body = User), NotFound)
)]
pub async fn get_user(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(UserPath { username }): Path<UserPath>,
) -> ApiResult<Json<User>> {
    let r = s
        .metastore
        .user(&username)?
        .ok_or_else(|| no_user(&username))?;
    Ok(Json(user_json(&s, r)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    /// At least 8 characters; kept only as an argon2id hash.
    pub password: String,
    #[serde(default)]
    pub platform_admin: bool,
    /// Roles to give at once, by tenant.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub roles: BTreeMap<String, Role>,
}

/// Create a user (platform admins).
#[utoipa::path(
    post, path = "/users", tag = "User", operation_id = "post_user",
    request_body = NewUser,
    responses((status = 201, description = "The user as created.", body = User), BadRequest, NotFound, Conflict, Unprocessable)
)]
pub async fn create_user(
    _caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let username = parse_user(&body.username)?;
    for tenant in body.roles.keys() {
        if TenantId::new(tenant).is_err() || s.metastore.tenant(tenant)?.is_none() {
            return Err(ApiError::not_found(format!("tenant `{tenant}` not found")));
        }
    }
    let record = UserRecord {
        username,
        password_hash: hash(body.password).await?,
        platform_admin: body.platform_admin,
        created_at: jiff::Timestamp::now(),
        sessions_after: None,
    };
    let (r, roles) = (record.clone(), body.roles);
    s.blocking(move |m| {
        m.create_user(&r)?;
        for (tenant, role) in roles {
            m.set_member(&tenant, r.username.as_str(), role)?;
        }
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user_json(&s, record)?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// A new password: every session of the user ends.
    pub password: Option<String>,
    pub platform_admin: Option<bool>,
}

/// Change a user's password or platform role (platform admins).
#[utoipa::path(
    patch, path = "/users/{username}", tag = "User", operation_id = "patch_user",
    params(UserPath),
    request_body = PatchUser,
    responses((status = 200, description = "The user as changed.", body = User), BadRequest, NotFound, Conflict, Unprocessable)
)]
pub async fn patch_user(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(UserPath { username }): Path<UserPath>,
    JsonBody(body): JsonBody<PatchUser>,
) -> ApiResult<Json<User>> {
    let mut record = s
        .metastore
        .user(&username)?
        .ok_or_else(|| no_user(&username))?;
    if let Some(password) = body.password {
        record.password_hash = hash(password).await?;
        // Sessions issued in this very second would otherwise survive.
        record.sessions_after = Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1));
    }
    if let Some(flag) = body.platform_admin {
        if !flag && record.platform_admin {
            last_admin_guard(&s, &username)?;
        }
        record.platform_admin = flag;
    }
    let r = record.clone();
    s.blocking(move |m| Ok(m.update_user(&r)?)).await?;
    Ok(Json(user_json(&s, record)?))
}

/// Refuses to take away the last platform admin: nobody could manage the
/// platform afterwards.
fn last_admin_guard(s: &ApiState, username: &str) -> ApiResult<()> {
    let others = s
        .metastore
        .users()?
        .iter()
        .any(|u| u.platform_admin && u.username.as_str() != username);
    if others {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "`{username}` is the last platform admin; make another user one first"
        )))
    }
}

/// Delete a user (platform admins): their roles go, their sessions stop working.
#[utoipa::path(
    delete, path = "/users/{username}", tag = "User", operation_id = "delete_user",
    params(UserPath),
    responses((status = 204, description = "Deleted"), NotFound, Conflict)
)]
pub async fn delete_user(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(UserPath { username }): Path<UserPath>,
) -> ApiResult<StatusCode> {
    let record = s
        .metastore
        .user(&username)?
        .ok_or_else(|| no_user(&username))?;
    if record.platform_admin {
        last_admin_guard(&s, &username)?;
    }
    s.blocking(move |m| Ok(m.delete_user(&username)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member of the caller's tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub username: String,
    #[schema(value_type = String)]
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberCollection {
    pub members: Vec<Member>,
    pub total_entries: usize,
}

/// List the members of the caller's tenant and their roles (tenant Admins).
#[utoipa::path(
    get, path = "/members", tag = "User", operation_id = "get_members",
    responses((status = 200, description = "The tenant's members.", body = MemberCollection))
)]
pub async fn list_members(
    caller: Caller,
    State(s): State<ApiState>,
) -> ApiResult<Json<MemberCollection>> {
    let members: Vec<Member> = s
        .metastore
        .members(caller.tenant())?
        .into_iter()
        .map(|(u, role)| Member {
            username: u.to_string(),
            role,
        })
        .collect();
    Ok(Json(MemberCollection {
        total_entries: members.len(),
        members,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    #[schema(value_type = String)]
    pub role: Role,
}

/// Give a user a role in the caller's tenant (tenant Admins).
#[utoipa::path(
    put, path = "/members/{username}", tag = "User", operation_id = "put_member",
    params(UserPath),
    request_body = SetRole,
    responses((status = 200, description = "The membership.", body = Member), BadRequest, NotFound, Unprocessable)
)]
pub async fn put_member(
    caller: Caller,
    State(s): State<ApiState>,
    Path(UserPath { username }): Path<UserPath>,
    JsonBody(body): JsonBody<SetRole>,
) -> ApiResult<Json<Member>> {
    parse_user(&username)?;
    let (tenant, u, role) = (caller.tenant().to_owned(), username.clone(), body.role);
    s.blocking(move |m| Ok(m.set_member(&tenant, &u, role)?))
        .await?;
    Ok(Json(Member {
        username,
        role: body.role,
    }))
}

/// Take a user's role in the caller's tenant away (tenant Admins).
#[utoipa::path(
    delete, path = "/members/{username}", tag = "User", operation_id = "delete_member",
    params(UserPath),
    responses((status = 204, description = "Removed"), NotFound)
)]
pub async fn delete_member(
    caller: Caller,
    State(s): State<ApiState>,
    Path(UserPath { username }): Path<UserPath>,
) -> ApiResult<StatusCode> {
    let (tenant, u) = (caller.tenant().to_owned(), username.clone());
    if s.blocking(move |m| Ok(m.remove_member(&tenant, &u)?))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "`{username}` is not a member of this tenant"
        )))
    }
}
