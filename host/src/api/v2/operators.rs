//! Operator components in v2, at `/operators` (Airflow's `/plugins` is its
//! own thing; see `plugins.rs`): the same list, publish and remove as
//! `/api/v1/plugins`, under the name Aileron gives them.

use super::super::paths::PluginPath;
use super::super::plugins::{self as v1, Plugin, PluginCollection, PublishOptions, list_plugins};
use super::super::query::ApiQuery;
use super::super::{ApiResult, ApiState, Caller};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// List the operators the tenant may use: the global ones and its own.
#[utoipa::path(
    get, path = "/operators", tag = "Operator", operation_id = "get_operators",
    responses((status = 200, description = "Every operator.", body = PluginCollection))
)]
pub async fn get_operators(caller: Caller, state: State<ApiState>) -> Json<PluginCollection> {
    list_plugins(caller, state).await
}

/// Publish an operator component for the caller's tenant alone (its `Op` and
/// up): the body is the component's bytes (`application/wasm`).
#[utoipa::path(
    post, path = "/operators", tag = "Operator", operation_id = "post_operator",
    params(PublishOptions),
    request_body(content = Vec<u8>, content_type = "application/wasm",
        description = "A WebAssembly component implementing the operator world."),
    responses(
        (status = 201, description = "Published.", body = Plugin),
        (status = 400, description = "Not an operator component."),
        (status = 409, description = "That name and version exist."),
        (status = 413, description = "Too large."),
    )
)]
pub async fn post_operator(
    caller: Caller,
    state: State<ApiState>,
    options: ApiQuery<PublishOptions>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Plugin>)> {
    v1::publish_plugin(caller, state, options, body).await
}

/// Remove one version of an operator the caller's tenant published.
#[utoipa::path(
    delete, path = "/operators/{plugin_name}/{version}", tag = "Operator",
    operation_id = "delete_operator",
    params(PluginPath),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such operator."),
        (status = 409, description = "A DAG or an unfinished run uses it."),
    )
)]
pub async fn delete_operator(
    caller: Caller,
    state: State<ApiState>,
    path: Path<PluginPath>,
) -> ApiResult<StatusCode> {
    v1::remove_plugin(caller, state, path).await
}

/// Publish an operator component for every tenant (platform admins).
#[utoipa::path(
    post, path = "/platform/operators", tag = "Operator", operation_id = "post_platform_operator",
    params(PublishOptions),
    request_body(content = Vec<u8>, content_type = "application/wasm",
        description = "A WebAssembly component implementing the operator world."),
    responses(
        (status = 201, description = "Published.", body = Plugin),
        (status = 400, description = "Not an operator component."),
        (status = 409, description = "That name and version exist."),
        (status = 413, description = "Too large."),
    )
)]
pub async fn post_platform_operator(
    caller: Caller,
    state: State<ApiState>,
    options: ApiQuery<PublishOptions>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Plugin>)> {
    v1::publish_platform_plugin(caller, state, options, body).await
}

/// Remove one version of a global operator (platform admins).
#[utoipa::path(
    delete, path = "/platform/operators/{plugin_name}/{version}", tag = "Operator",
    operation_id = "delete_platform_operator",
    params(PluginPath),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such operator."),
        (status = 409, description = "A DAG or an unfinished run uses it."),
    )
)]
pub async fn delete_platform_operator(
    caller: Caller,
    state: State<ApiState>,
    path: Path<PluginPath>,
) -> ApiResult<StatusCode> {
    v1::remove_platform_plugin(caller, state, path).await
}
