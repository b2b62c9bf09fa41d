//! Variables in v2: a value is any JSON, stored as text (a string as it is,
//! anything else as its JSON), as Airflow 3 stores it.

use super::super::paths::VariablePath;
use super::super::{ApiError, ApiResult, ApiState, Caller, check_id, paginate};
use super::dags::like;
use super::{V2Json, V2Query};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `VariableResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariableResponse {
    pub key: String,
    pub value: Option<String>,
    /// Aileron keeps no descriptions: `null`.
    pub description: Option<String>,
    /// Variables are stored in the metastore as given (connections are the
    /// encrypted ones).
    pub is_encrypted: bool,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariableCollectionResponse {
    pub variables: Vec<VariableResponse>,
    pub total_entries: usize,
}

/// Airflow's `VariableBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    key: String,
    #[schema(value_type = Object)]
    value: Value,
    /// Accepted; Aileron keeps no descriptions.
    description: Option<String>,
    /// Accepted when `null`: a variable belongs to the tenant of the request.
    team_name: Option<String>,
}

impl VariableBody {
    /// The stored text, after refusing what Aileron cannot keep.
    fn text(&self) -> ApiResult<String> {
        let _ = &self.description;
        if self.team_name.is_some() {
            return Err(ApiError::bad_request(
                "`team_name` cannot be set: a variable belongs to the tenant of the request",
            ));
        }
        Ok(match &self.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

fn response(key: String, value: String) -> VariableResponse {
    VariableResponse {
        key,
        value: Some(value),
        description: None,
        is_encrypted: false,
        team_name: None,
    }
}

fn not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("The Variable with key: `{key}` was not found"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VariableFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `key` (default) or `-key`.
    order_by: Option<String>,
    /// A SQL `LIKE` pattern on the key.
    variable_key_pattern: Option<String>,
}

/// List variables.
#[utoipa::path(
    get, path = "/variables", tag = "Variable", operation_id = "get_variables",
    params(VariableFilter),
    responses(
        (status = 200, description = "One page of variables.", body = VariableCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_variables(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<VariableFilter>,
) -> ApiResult<Json<VariableCollectionResponse>> {
    let descending = match q.order_by.as_deref().unwrap_or("key") {
        "key" | "id" => false,
        "-key" | "-id" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
            )));
        }
    };
    let mut all: Vec<VariableResponse> = s
        .metastore
        .variables(caller.tenant())?
        .into_iter()
        .filter(|(key, _)| q.variable_key_pattern.as_ref().is_none_or(|p| like(p, key)))
        .map(|(key, value)| response(key, value))
        .collect();
    if descending {
        all.reverse();
    }
    let (variables, total_entries) = paginate(all, q.limit, q.offset);
    Ok(Json(VariableCollectionResponse {
        variables,
        total_entries,
    }))
}

/// Get a variable.
#[utoipa::path(
    get, path = "/variables/{variable_key}", tag = "Variable", operation_id = "get_variable",
    params(VariablePath),
    responses(
        (status = 200, description = "The variable.", body = VariableResponse),
        (status = 404, description = "No such variable."),
    )
)]
pub async fn get_variable(
    caller: Caller,
    State(s): State<ApiState>,
    Path(VariablePath { variable_key: key }): Path<VariablePath>,
) -> ApiResult<Json<VariableResponse>> {
    let value = s
        .metastore
        .variable(caller.tenant(), &key)?
        .ok_or_else(|| not_found(&key))?;
    Ok(Json(response(key, value)))
}

/// Create a variable.
#[utoipa::path(
    post, path = "/variables", tag = "Variable", operation_id = "post_variable",
    request_body = VariableBody,
    responses(
        (status = 201, description = "The variable as created.", body = VariableResponse),
        (status = 409, description = "A variable with that key exists."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn post_variable(
    caller: Caller,
    State(s): State<ApiState>,
    V2Json(body): V2Json<VariableBody>,
) -> ApiResult<(StatusCode, Json<VariableResponse>)> {
    check_id("`key`", &body.key)?;
    let value = body.text()?;
    if s.metastore.variable(caller.tenant(), &body.key)?.is_some() {
        return Err(ApiError::conflict(format!(
            "The Variable with key: `{}` already exists",
            body.key
        )));
    }
    let (tenant, key, stored) = (caller.tenant().to_owned(), body.key.clone(), value.clone());
    s.blocking(move |m| Ok(m.set_variable(&tenant, &key, &stored)?))
        .await?;
    Ok((StatusCode::CREATED, Json(response(body.key, value))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VariableMask {
    /// The fields to change: `value` (`description` is accepted and not kept).
    update_mask: Option<String>,
}

/// Change a variable's value.
#[utoipa::path(
    patch, path = "/variables/{variable_key}", tag = "Variable", operation_id = "patch_variable",
    params(VariablePath, VariableMask),
    request_body = VariableBody,
    responses(
        (status = 200, description = "The variable as changed.", body = VariableResponse),
        (status = 400, description = "A key that differs from the path."),
        (status = 404, description = "No such variable."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_variable(
    caller: Caller,
    State(s): State<ApiState>,
    Path(VariablePath { variable_key: key }): Path<VariablePath>,
    V2Query(mask): V2Query<VariableMask>,
    V2Json(body): V2Json<VariableBody>,
) -> ApiResult<Json<VariableResponse>> {
    if body.key != key {
        return Err(ApiError::bad_request(
            "Invalid body, key from request body doesn't match uri parameter",
        ));
    }
    let value = body.text()?;
    let current = s
        .metastore
        .variable(caller.tenant(), &key)?
        .ok_or_else(|| not_found(&key))?;
    let fields: Vec<&str> = mask
        .update_mask
        .as_deref()
        .map(|m| m.split(',').collect())
        .unwrap_or_default();
    if let Some(bad) = fields
        .iter()
        .find(|f| !matches!(**f, "value" | "description" | "key"))
    {
        return Err(ApiError::bad_request(format!(
            "`{bad}` cannot be updated; the fields are value and description"
        )));
    }
    if !fields.is_empty() && !fields.contains(&"value") {
        return Ok(Json(response(key, current)));
    }
    let (tenant, k, stored) = (caller.tenant().to_owned(), key.clone(), value.clone());
    s.blocking(move |m| Ok(m.set_variable(&tenant, &k, &stored)?))
        .await?;
    Ok(Json(response(key, value)))
}

/// Delete a variable.
#[utoipa::path(
    delete, path = "/variables/{variable_key}", tag = "Variable", operation_id = "delete_variable",
    params(VariablePath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such variable."),
    )
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
