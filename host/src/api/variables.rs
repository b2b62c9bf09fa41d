//! Variables: string values tasks read through templates (`var.value.<key>`) and
//! the `variable` host call.

use super::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unprocessable};
use super::paths::VariablePath;
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState, JsonBody, Page, check_id, paginate};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariableCollection {
    pub variables: Vec<Variable>,
    pub total_entries: usize,
}

fn not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("variable `{key}` not found"))
}

/// List variables.
#[utoipa::path(
    get, path = "/variables", tag = "Variable", operation_id = "get_variables",
    params(Page),
    responses(
        (status = 200, description = "One page of variables.", body = VariableCollection),
        BadRequest,
    )
)]
pub async fn list_variables(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<VariableCollection>> {
    let all = s
        .metastore
        .variables(caller.tenant())?
        .into_iter()
        .map(|(key, value)| Variable { key, value })
        .collect();
    let (variables, total_entries) = paginate(all, page.limit, page.offset);
    Ok(Json(VariableCollection {
        variables,
        total_entries,
    }))
}

/// Get a variable.
#[utoipa::path(
    get, path = "/variables/{variable_key}", tag = "Variable", operation_id = "get_variable",
    params(VariablePath),
    responses((status = 200, description = "The variable.", body = Variable), NotFound)
)]
pub async fn get_variable(
    caller: Caller,
    State(s): State<ApiState>,
    Path(VariablePath { variable_key: key }): Path<VariablePath>,
) -> ApiResult<Json<Variable>> {
    let value = s
        .metastore
        .variable(caller.tenant(), &key)?
        .ok_or_else(|| not_found(&key))?;
    Ok(Json(Variable { key, value }))
}

/// Create a variable; 409 if it exists (change it with PATCH).
#[utoipa::path(
    post, path = "/variables", tag = "Variable", operation_id = "post_variables",
    request_body = Variable,
    responses(
        (status = 200, description = "The variable as created.", body = Variable),
        BadRequest,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
    )
)]
pub async fn post_variable(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<Variable>,
) -> ApiResult<Json<Variable>> {
    check_id("`key`", &body.key)?;
    if s.metastore.variable(caller.tenant(), &body.key)?.is_some() {
        return Err(ApiError::conflict(format!(
            "variable `{}` already exists; change it with PATCH",
            body.key
        )));
    }
    let (tenant, key, value) = (
        caller.tenant().to_owned(),
        body.key.clone(),
        body.value.clone(),
    );
    s.blocking(move |m| Ok(m.set_variable(&tenant, &key, &value)?))
        .await?;
    Ok(Json(body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchVariable {
    /// If given, must be the key in the path: variables cannot be renamed.
    key: Option<String>,
    value: String,
}

/// Change a variable's value.
#[utoipa::path(
    patch, path = "/variables/{variable_key}", tag = "Variable", operation_id = "patch_variable",
    params(VariablePath),
    request_body = PatchVariable,
    responses(
        (status = 200, description = "The variable as changed.", body = Variable),
        BadRequest,
        NotFound,
        Unprocessable,
        PayloadTooLarge,
    )
)]
pub async fn patch_variable(
    caller: Caller,
    State(s): State<ApiState>,
    Path(VariablePath { variable_key: key }): Path<VariablePath>,
    JsonBody(body): JsonBody<PatchVariable>,
) -> ApiResult<Json<Variable>> {
    if body.key.as_ref().is_some_and(|k| *k != key) {
        return Err(ApiError::bad_request(
            "`key` in the body differs from the path; variables cannot be renamed",
        ));
    }
    if s.metastore.variable(caller.tenant(), &key)?.is_none() {
        return Err(not_found(&key));
    }
    let (tenant, k, value) = (caller.tenant().to_owned(), key.clone(), body.value.clone());
    s.blocking(move |m| Ok(m.set_variable(&tenant, &k, &value)?))
        .await?;
    Ok(Json(Variable {
        key,
        value: body.value,
    }))
}

/// Delete a variable.
#[utoipa::path(
    delete, path = "/variables/{variable_key}", tag = "Variable", operation_id = "delete_variable",
    params(VariablePath),
    responses((status = 204, description = "Deleted"), NotFound)
)]
pub async fn delete_variable(
    caller: Caller,
    State(s): State<ApiState>,
    Path(VariablePath { variable_key: key }): Path<VariablePath>,
) -> ApiResult<StatusCode> {
    let (tenant, k) = (caller.tenant().to_owned(), key.clone());
    if s.blocking(move |m| Ok(m.delete_variable(&tenant, &k)?))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&key))
    }
}
