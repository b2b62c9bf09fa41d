//! Connections: how tasks reach outside systems, handed to operators as a JSON
//! object by the `connection` host call. The password goes in and is stored, but
//! is never sent back out of the API; unless the connection is marked `exposed`,
//! operators never see it either, and use it through the host instead
//! (`http-with-connection`, `aileron_sandbox`'s `connection.rs`).

use super::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unprocessable};
use super::paths::ConnectionPath;
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState, JsonBody, Page, check_id, paginate};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What is stored, and what an operator's `connection` call receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredConnection {
    conn_id: String,
    conn_type: String,
    description: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    login: Option<String>,
    password: Option<String>,
    schema: Option<String>,
    extra: Option<String>,
    /// Whether operators may read the password. Absent in connections stored
    /// before host-held secrets, which count as exposed, as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exposed: Option<bool>,
}

/// A connection as the API shows it: everything but the password.
#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    pub conn_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub login: Option<String>,
    pub schema: Option<String>,
    /// Extra settings, a JSON object encoded as a string (as in Airflow).
    pub extra: Option<String>,
    /// Whether operators may read the password. False (the default for new
    /// connections): the password is host-held, and operators use the
    /// connection through the host's `http-with-connection` without seeing it.
    pub exposed: bool,
}

impl From<StoredConnection> for Connection {
    fn from(c: StoredConnection) -> Self {
        // Field by field, so a new stored field is not shown unless added here.
        Self {
            conn_id: c.conn_id,
            conn_type: c.conn_type,
            description: c.description,
            host: c.host,
            port: c.port,
            login: c.login,
            schema: c.schema,
            extra: c.extra,
            exposed: c.exposed.unwrap_or(true),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionCollection {
    pub connections: Vec<Connection>,
    pub total_entries: usize,
}

/// A new connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub(crate) conn_id: String,
    pub(crate) conn_type: String,
    pub(crate) description: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) login: Option<String>,
    /// Stored for the operators; never returned.
    pub(crate) password: Option<String>,
    pub(crate) schema: Option<String>,
    /// A JSON object encoded as a string.
    pub(crate) extra: Option<String>,
    /// Let operators read the password (default false: host-held).
    #[serde(default)]
    pub(crate) exposed: bool,
}

/// Changes to a connection: absent fields stay as they are, `null` clears one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    /// If given, must be the id in the path: connections cannot be renamed.
    pub(crate) conn_id: Option<String>,
    pub(crate) conn_type: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) description: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) host: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u16>)]
    pub(crate) port: Option<Option<u16>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) login: Option<Option<String>>,
    /// Stored for the operators; never returned. Absent keeps the current one.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) password: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) schema: Option<Option<String>>,
    /// A JSON object encoded as a string.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) extra: Option<Option<String>>,
    /// Let operators read the password, or make it host-held again.
    pub(crate) exposed: Option<bool>,
}

fn not_found(conn_id: &str) -> ApiError {
    ApiError::not_found(format!("connection `{conn_id}` not found"))
}

fn load(s: &ApiState, tenant: &str, conn_id: &str) -> ApiResult<Option<StoredConnection>> {
    s.metastore
        .connection(tenant, conn_id)?
        .map(|json| parse(conn_id, &json))
        .transpose()
}

fn parse(conn_id: &str, json: &str) -> ApiResult<StoredConnection> {
    match serde_json::from_str(json) {
        Ok(c) => Ok(c),
        Err(e) => {
            // Not one the API wrote; say so in the log, never echo what is in it
            // (it may hold a secret).
            tracing::error!("connection `{conn_id}` is not a readable record: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("connection `{conn_id}` is stored in a form the API cannot read"),
            ))
        }
    }
}

fn check(c: &StoredConnection) -> ApiResult<()> {
    check_id("`conn_id`", &c.conn_id)?;
    if c.conn_type.trim().is_empty() {
        return Err(ApiError::bad_request("`conn_type` must not be empty"));
    }
    if let Some(extra) = &c.extra
        && !matches!(
            serde_json::from_str(extra),
            Ok(serde_json::Value::Object(_))
        )
    {
        return Err(ApiError::bad_request(
            "`extra` must be a JSON object encoded as a string, e.g. \"{\\\"timeout\\\": 5}\"",
        ));
    }
    Ok(())
}

async fn save(s: &ApiState, tenant: &str, c: &StoredConnection) -> ApiResult<()> {
    let json = serde_json::to_string(c).expect("a connection serializes");
    let (tenant, conn_id) = (tenant.to_owned(), c.conn_id.clone());
    s.blocking(move |m| Ok(m.set_connection(&tenant, &conn_id, &json)?))
        .await
}

/// List connections (without passwords).
#[utoipa::path(
    get, path = "/connections", tag = "Connection", operation_id = "get_connections",
    params(Page),
    responses(
        (status = 200, description = "One page of connections.", body = ConnectionCollection),
        BadRequest,
    )
)]
pub async fn list_connections(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<ConnectionCollection>> {
    let mut all = Vec::new();
    for (conn_id, json) in s.metastore.connections(caller.tenant())? {
        all.push(Connection::from(parse(&conn_id, &json)?));
    }
    let (connections, total_entries) = paginate(all, page.limit, page.offset);
    Ok(Json(ConnectionCollection {
        connections,
        total_entries,
    }))
}

/// Get a connection (without its password).
#[utoipa::path(
    get, path = "/connections/{connection_id}", tag = "Connection", operation_id = "get_connection",
    params(ConnectionPath),
    responses((status = 200, description = "The connection.", body = Connection), NotFound)
)]
pub async fn get_connection(
    caller: Caller,
    State(s): State<ApiState>,
    Path(ConnectionPath {
        connection_id: conn_id,
    }): Path<ConnectionPath>,
) -> ApiResult<Json<Connection>> {
    let c = load(&s, caller.tenant(), &conn_id)?.ok_or_else(|| not_found(&conn_id))?;
    Ok(Json(c.into()))
}

/// Create a connection; 409 if it exists (change it with PATCH).
#[utoipa::path(
    post, path = "/connections", tag = "Connection", operation_id = "post_connection",
    request_body = NewConnection,
    responses(
        (status = 200, description = "The connection as created.", body = Connection),
        BadRequest,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
    )
)]
pub async fn post_connection(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<NewConnection>,
) -> ApiResult<Json<Connection>> {
    let c = StoredConnection {
        conn_id: body.conn_id,
        conn_type: body.conn_type,
        description: body.description,
        host: body.host,
        port: body.port,
        login: body.login,
        password: body.password,
        schema: body.schema,
        extra: body.extra,
        exposed: Some(body.exposed),
    };
    check(&c)?;
    if s.metastore
        .connection(caller.tenant(), &c.conn_id)?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "connection `{}` already exists; change it with PATCH",
            c.conn_id
        )));
    }
    save(&s, caller.tenant(), &c).await?;
    Ok(Json(c.into()))
}

/// Change a connection: absent fields keep their value, `null` clears one.
#[utoipa::path(
    patch, path = "/connections/{connection_id}", tag = "Connection",
    operation_id = "patch_connection",
    params(ConnectionPath),
    request_body = ConnectionPatch,
    responses(
        (status = 200, description = "The connection as changed.", body = Connection),
        BadRequest,
        NotFound,
        Unprocessable,
        PayloadTooLarge,
    )
)]
pub async fn patch_connection(
    caller: Caller,
    State(s): State<ApiState>,
    Path(ConnectionPath {
        connection_id: conn_id,
    }): Path<ConnectionPath>,
    JsonBody(p): JsonBody<ConnectionPatch>,
) -> ApiResult<Json<Connection>> {
    if p.conn_id.as_ref().is_some_and(|id| *id != conn_id) {
        return Err(ApiError::bad_request(
            "`conn_id` in the body differs from the path; connections cannot be renamed",
        ));
    }
    let mut c = load(&s, caller.tenant(), &conn_id)?.ok_or_else(|| not_found(&conn_id))?;
    if let Some(t) = p.conn_type {
        c.conn_type = t;
    }
    let fields = [
        (p.description, &mut c.description),
        (p.host, &mut c.host),
        (p.login, &mut c.login),
        (p.password, &mut c.password),
        (p.schema, &mut c.schema),
        (p.extra, &mut c.extra),
    ];
    for (change, field) in fields {
        if let Some(v) = change {
            *field = v;
        }
    }
    if let Some(port) = p.port {
        c.port = port;
    }
    if let Some(exposed) = p.exposed {
        c.exposed = Some(exposed);
    }
    check(&c)?;
    save(&s, caller.tenant(), &c).await?;
    Ok(Json(c.into()))
}

/// Delete a connection.
#[utoipa::path(
    delete, path = "/connections/{connection_id}", tag = "Connection",
    operation_id = "delete_connection",
    params(ConnectionPath),
    responses((status = 204, description = "Deleted"), NotFound)
)]
pub async fn delete_connection(
    caller: Caller,
    State(s): State<ApiState>,
    Path(ConnectionPath {
        connection_id: conn_id,
    }): Path<ConnectionPath>,
) -> ApiResult<StatusCode> {
    let (tenant, id) = (caller.tenant().to_owned(), conn_id.clone());
    if s.blocking(move |m| Ok(m.delete_connection(&tenant, &id)?))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&conn_id))
    }
}
