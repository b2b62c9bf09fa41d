//! `PUT /parseDagFile/{file_token}`: parse a DAG file again now (Airflow's
//! "reparse"), for a file one of the tenant's DAGs came from.

use super::super::{ApiError, ApiResult, ApiState, Caller};
use super::V2Path;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FileTokenPath {
    /// A DAG's `file_token`, as `/dags/{dag_id}` gives it.
    file_token: String,
}

/// Ask for the DAGs folder to be parsed again now (the file named among it).
#[utoipa::path(
    put, path = "/parseDagFile/{file_token}", tag = "DagParsing", operation_id = "reparse_dag_file",
    params(FileTokenPath),
    responses(
        (status = 201, description = "Asked for.", body = Object),
        (status = 404, description = "No DAG of the tenant comes from that file."),
    )
)]
pub async fn reparse_dag_file(
    caller: Caller,
    State(s): State<ApiState>,
    V2Path(FileTokenPath { file_token }): V2Path<FileTokenPath>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let not_found = || ApiError::not_found("no DAG file has that file_token");
    let fileloc = hex::decode(&file_token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(not_found)?;
    // Only a file one of the caller's tenant's DAGs came from: another
    // tenant's files are not named here, nor anything else on the disk.
    let known = s
        .metastore
        .tenant_dags(caller.tenant())?
        .iter()
        .any(|d| d.fileloc == fileloc);
    if !known {
        return Err(not_found());
    }
    s.rescan.notify_one();
    Ok((StatusCode::CREATED, Json(Value::Object(Map::new()))))
}
