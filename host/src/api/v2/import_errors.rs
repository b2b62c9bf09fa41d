//! Import errors of DAG files in v2.

use super::super::import_errors::{ImportError, import_error, import_error_id};
use super::super::{ApiError, ApiResult, ApiState, Caller, paginate};
use super::dags::BUNDLE_NAME;
use super::{V2Path, V2Query};
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `ImportErrorResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrorResponse {
    /// Names the broken file within its tenant (see `/api/v1`'s).
    pub import_error_id: u64,
    pub timestamp: Timestamp,
    /// The DAG file, relative to the DAGs folder.
    pub filename: String,
    pub bundle_name: Option<String>,
    /// `file:line:column: message`.
    pub stack_trace: String,
}

fn response(e: ImportError) -> ImportErrorResponse {
    ImportErrorResponse {
        import_error_id: e.import_error_id,
        timestamp: e.timestamp,
        filename: e.filename,
        bundle_name: Some(BUNDLE_NAME.to_owned()),
        stack_trace: e.stack_trace,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrorCollectionResponse {
    pub import_errors: Vec<ImportErrorResponse>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportErrorFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// Only this file's errors.
    filename: Option<String>,
}

/// List the DAG files that failed to import, and why.
#[utoipa::path(
    get, path = "/importErrors", tag = "ImportError", operation_id = "get_import_errors",
    params(ImportErrorFilter),
    responses(
        (status = 200, description = "One page of import errors.", body = ImportErrorCollectionResponse),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_import_errors(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<ImportErrorFilter>,
) -> ApiResult<Json<ImportErrorCollectionResponse>> {
    let errors = s
        .metastore
        .tenant_import_errors(caller.tenant())?
        .iter()
        .filter(|e| q.filename.as_ref().is_none_or(|f| *f == e.filename))
        .map(|e| response(import_error(e)))
        .collect();
    let (import_errors, total_entries) = paginate(errors, q.limit, q.offset);
    Ok(Json(ImportErrorCollectionResponse {
        import_errors,
        total_entries,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ImportErrorPath {
    /// The error's id, as listed.
    import_error_id: u64,
}

/// Get one import error.
#[utoipa::path(
    get, path = "/importErrors/{import_error_id}", tag = "ImportError",
    operation_id = "get_import_error",
    params(ImportErrorPath),
    responses(
        (status = 200, description = "The import error.", body = ImportErrorResponse),
        (status = 404, description = "No such import error."),
    )
)]
pub async fn get_import_error(
    caller: Caller,
    State(s): State<ApiState>,
    V2Path(ImportErrorPath {
        import_error_id: wanted,
    }): V2Path<ImportErrorPath>,
) -> ApiResult<Json<ImportErrorResponse>> {
    s.metastore
        .tenant_import_errors(caller.tenant())?
        .iter()
        .find(|e| import_error_id(e) == wanted)
        .map(|e| Json(response(import_error(e))))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The ImportError with import_error_id: `{wanted}` was not found"
            ))
        })
}
