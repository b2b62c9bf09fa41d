//! Import errors of DAG files.

use super::Caller;
use super::error::BadRequest;
use super::query::ApiQuery;
use super::{ApiResult, ApiState, Page, paginate};
use crate::metastore::ImportErrorRecord;
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportError {
    /// Position in the list; import errors are replaced on every parse, so it is not
    /// a stable id.
    pub import_error_id: usize,
    /// The DAG file, relative to the DAGs folder.
    pub filename: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// `file:line:column: message`, Airflow's field for the whole report.
    pub stack_trace: String,
    pub message: String,
    pub timestamp: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrorCollection {
    pub import_errors: Vec<ImportError>,
    pub total_entries: usize,
}

pub(crate) fn import_error(i: usize, e: &ImportErrorRecord) -> ImportError {
    let location = match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", e.filename),
        (Some(l), None) => format!("{}:{l}", e.filename),
        _ => e.filename.clone(),
    };
    ImportError {
        import_error_id: i + 1,
        filename: e.filename.clone(),
        line: e.line,
        column: e.column,
        stack_trace: format!("{location}: {}", e.message),
        message: e.message.clone(),
        timestamp: e.timestamp,
    }
}

/// List the DAG files that failed to import, and why.
#[utoipa::path(
    get, path = "/importErrors", tag = "ImportError", operation_id = "get_import_errors",
    params(Page),
    responses(
        (status = 200, description = "One page of import errors.", body = ImportErrorCollection),
        BadRequest,
    )
)]
pub async fn list_import_errors(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<ImportErrorCollection>> {
    let errors = s
        .metastore
        .tenant_import_errors(caller.tenant())?
        .iter()
        .enumerate()
        .map(|(i, e)| import_error(i, e))
        .collect();
    let (import_errors, total_entries) = paginate(errors, page.limit, page.offset);
    Ok(Json(ImportErrorCollection {
        import_errors,
        total_entries,
    }))
}
