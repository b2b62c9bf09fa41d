//! A user's favorite DAGs (Airflow 3.1's favorite and unfavorite): kept per
//! user within the tenant; `is_favorite` on a DAG and the `is_favorite` filter
//! of the DAG list read them.

use super::super::paths::DagPath;
use super::super::{ApiError, ApiResult, ApiState, Caller, load_dag};
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// Mark a DAG as one of your favorites (again is no change).
#[utoipa::path(
    post, path = "/dags/{dag_id}/favorite", tag = "DAG", operation_id = "favorite_dag",
    params(DagPath),
    responses(
        (status = 204, description = "It is a favorite."),
        (status = 404, description = "No such DAG."),
    )
)]
pub async fn favorite_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<StatusCode> {
    load_dag(&s, &caller, &dag_id)?;
    s.metastore
        .favorite_dag(caller.tenant(), &dag_id, &caller.actor())?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a DAG off your favorites.
#[utoipa::path(
    post, path = "/dags/{dag_id}/unfavorite", tag = "DAG", operation_id = "unfavorite_dag",
    params(DagPath),
    responses(
        (status = 204, description = "It is no longer a favorite."),
        (status = 404, description = "No such DAG."),
        (status = 409, description = "It was not a favorite."),
    )
)]
pub async fn unfavorite_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<StatusCode> {
    load_dag(&s, &caller, &dag_id)?;
    if !s
        .metastore
        .unfavorite_dag(caller.tenant(), &dag_id, &caller.actor())?
    {
        return Err(ApiError::conflict("DAG is not marked as favorite"));
    }
    Ok(StatusCode::NO_CONTENT)
}
