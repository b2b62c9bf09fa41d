//! Connections in v2: Airflow 3's shapes over the `/api/v1` handlers. The
//! password goes in and is never sent back (`null`), as in `/api/v1`; testing a
//! connection is declined, since the host does not open connections to places
//! a tenant names on an API request.

use super::super::connections::{self as v1, Connection, ConnectionPatch, NewConnection};
use super::super::paths::ConnectionPath;
use super::super::query::{ApiQuery, items};
use super::super::{ApiError, ApiResult, ApiState, Caller, JsonBody, Page, paginate};
use super::dags::like;
use super::{V2Json, V2Query};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `ConnectionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<u16>,
    /// Never sent back: `null`.
    pub password: Option<String>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
    /// Whether operators may read the password (Aileron's own field).
    pub exposed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionCollectionResponse {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: usize,
}

fn response(c: Connection) -> ConnectionResponse {
    ConnectionResponse {
        connection_id: c.conn_id,
        conn_type: c.conn_type,
        description: c.description,
        host: c.host,
        login: c.login,
        schema: c.schema,
        port: c.port,
        password: None,
        extra: c.extra,
        team_name: None,
        exposed: c.exposed,
    }
}

fn no_team(team_name: &Option<String>) -> ApiResult<()> {
    match team_name {
        Some(_) => Err(ApiError::bad_request(
            "`team_name` cannot be set: a connection belongs to the tenant of the request",
        )),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `connection_id` or `id` (the default), `-` before it for descending.
    order_by: Option<String>,
    /// A SQL `LIKE` pattern on the connection id.
    connection_id_pattern: Option<String>,
    /// Only connections whose id starts with this.
    connection_id_prefix_pattern: Option<String>,
}

/// List connections (passwords left out).
#[utoipa::path(
    get, path = "/connections", tag = "Connection", operation_id = "get_connections",
    params(ConnectionFilter),
    responses(
        (status = 200, description = "One page of connections.", body = ConnectionCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_connections(
    caller: Caller,
    state: State<ApiState>,
    V2Query(q): V2Query<ConnectionFilter>,
) -> ApiResult<Json<ConnectionCollectionResponse>> {
    let order = q.order_by.as_deref().unwrap_or("id");
    let descending = match order {
        "id" | "connection_id" | "conn_id" => false,
        "-id" | "-connection_id" | "-conn_id" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
            )));
        }
    };
    let Json(all) = v1::list_connections(
        caller,
        state,
        ApiQuery(Page {
            limit: Some(usize::MAX),
            offset: None,
        }),
    )
    .await?;
    let mut connections: Vec<ConnectionResponse> = all
        .connections
        .into_iter()
        .filter(|c| {
            q.connection_id_pattern
                .as_ref()
                .is_none_or(|p| like(p, &c.conn_id))
                && q.connection_id_prefix_pattern
                    .as_ref()
                    .is_none_or(|p| c.conn_id.starts_with(p.as_str()))
        })
        .map(response)
        .collect();
    connections.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    if descending {
        connections.reverse();
    }
    let (connections, total_entries) = paginate(connections, q.limit, q.offset);
    Ok(Json(ConnectionCollectionResponse {
        connections,
        total_entries,
    }))
}

/// Get a connection (password left out).
#[utoipa::path(
    get, path = "/connections/{connection_id}", tag = "Connection",
    operation_id = "get_connection",
    params(ConnectionPath),
    responses(
        (status = 200, description = "The connection.", body = ConnectionResponse),
        (status = 404, description = "No such connection."),
    )
)]
pub async fn get_connection(
    caller: Caller,
    state: State<ApiState>,
    path: Path<ConnectionPath>,
) -> ApiResult<Json<ConnectionResponse>> {
    let Json(c) = v1::get_connection(caller, state, path).await?;
    Ok(Json(response(c)))
}

/// Airflow's `ConnectionBody`, with Aileron's `exposed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    connection_id: String,
    conn_type: String,
    description: Option<String>,
    host: Option<String>,
    login: Option<String>,
    schema: Option<String>,
    port: Option<u16>,
    /// Stored for the operators; never returned.
    password: Option<String>,
    /// A JSON object encoded as a string.
    extra: Option<String>,
    team_name: Option<String>,
    /// Let operators read the password (default false: host-held).
    #[serde(default)]
    exposed: bool,
}

/// Create a connection.
#[utoipa::path(
    post, path = "/connections", tag = "Connection", operation_id = "post_connection",
    request_body = ConnectionBody,
    responses(
        (status = 201, description = "The connection as created.", body = ConnectionResponse),
        (status = 400, description = "A field Aileron cannot keep."),
        (status = 409, description = "A connection with that id exists."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn post_connection(
    caller: Caller,
    state: State<ApiState>,
    V2Json(body): V2Json<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<ConnectionResponse>)> {
    no_team(&body.team_name)?;
    let Json(c) = v1::post_connection(
        caller,
        state,
        JsonBody(NewConnection {
            conn_id: body.connection_id,
            conn_type: body.conn_type,
            description: body.description,
            host: body.host,
            port: body.port,
            login: body.login,
            password: body.password,
            schema: body.schema,
            extra: body.extra,
            exposed: body.exposed,
        }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(response(c))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionMask {
    /// The fields to change; without it, every field of the body is set, and
    /// one left out is cleared (the password is kept unless given).
    update_mask: Option<String>,
}

/// Change a connection: the fields `update_mask` names, or all of them.
#[utoipa::path(
    patch, path = "/connections/{connection_id}", tag = "Connection",
    operation_id = "patch_connection",
    params(ConnectionPath, ConnectionMask),
    request_body = ConnectionBody,
    responses(
        (status = 200, description = "The connection as changed.", body = ConnectionResponse),
        (status = 400, description = "A field that cannot be changed."),
        (status = 404, description = "No such connection."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_connection(
    caller: Caller,
    state: State<ApiState>,
    path: Path<ConnectionPath>,
    V2Query(mask): V2Query<ConnectionMask>,
    V2Json(body): V2Json<ConnectionBody>,
) -> ApiResult<Json<ConnectionResponse>> {
    no_team(&body.team_name)?;
    if body.connection_id != path.connection_id {
        return Err(ApiError::bad_request(format!(
            "The connection_id in the request body does not match the URL parameter `{}`",
            path.connection_id
        )));
    }
    let fields: Option<Vec<String>> = mask
        .update_mask
        .map(|m| items(&m).map(str::to_owned).collect());
    const FIELDS: [&str; 9] = [
        "conn_type",
        "description",
        "host",
        "login",
        "schema",
        "port",
        "password",
        "extra",
        "exposed",
    ];
    if let Some(bad) = fields
        .iter()
        .flatten()
        .find(|f| !FIELDS.contains(&f.as_str()) && f.as_str() != "connection_id")
    {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    let wanted = |f: &str| fields.as_ref().is_none_or(|fs| fs.iter().any(|x| x == f));
    // Without a mask the body is the whole connection; the password, which is
    // never sent back, is kept unless the body gives one.
    let set = |f: &str, v: Option<String>| wanted(f).then_some(v);
    let Json(c) = v1::patch_connection(
        caller,
        state,
        path,
        JsonBody(ConnectionPatch {
            conn_id: None,
            conn_type: wanted("conn_type").then_some(body.conn_type),
            description: set("description", body.description),
            host: set("host", body.host),
            port: wanted("port").then_some(body.port),
            login: set("login", body.login),
            password: if fields.is_some() {
                set("password", body.password)
            } else {
                body.password.map(Some)
            },
            schema: set("schema", body.schema),
            extra: set("extra", body.extra),
            exposed: wanted("exposed").then_some(body.exposed),
        }),
    )
    .await?;
    Ok(Json(response(c)))
}

/// Delete a connection.
#[utoipa::path(
    delete, path = "/connections/{connection_id}", tag = "Connection",
    operation_id = "delete_connection",
    params(ConnectionPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such connection."),
    )
)]
pub async fn delete_connection(
    caller: Caller,
    state: State<ApiState>,
    path: Path<ConnectionPath>,
) -> ApiResult<StatusCode> {
    v1::delete_connection(caller, state, path).await
}

/// Airflow's `ConnectionTestResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionTestResponse {
    pub status: bool,
    pub message: String,
}

/// Test a connection: always answered `status: false` with the reason. A test
/// would have the host open a connection to wherever a tenant's request names,
/// which the sandbox's outbound rules exist to prevent; a task that uses the
/// connection is the test. (Airflow, whose testing is off by default, answers
/// 403 there; a 200 that says why keeps 403 meaning "not allowed to ask".)
#[utoipa::path(
    post, path = "/connections/test", tag = "Connection", operation_id = "test_connection",
    request_body = ConnectionBody,
    responses(
        (status = 200, description = "Not tested, and why.", body = ConnectionTestResponse),
        (status = 422, description = "A body that does not validate."),
    ),
)]
pub async fn test_connection(
    _caller: Caller,
    V2Json(body): V2Json<ConnectionBody>,
) -> Json<ConnectionTestResponse> {
    Json(ConnectionTestResponse {
        status: false,
        message: format!(
            "Aileron does not test connections: its host does not connect to the places a \
             request names. Run a task that uses `{}` to try it.",
            body.connection_id
        ),
    })
}
