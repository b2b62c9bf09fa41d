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
    /// Names the broken file within its tenant: the same for as long as the
    /// file stays broken, whatever else breaks or is fixed.
    pub import_error_id: u64,
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

/// The id of a file's import error: 48 bits of a hash of its tenant and
/// file, so it stays put across parses, is exact as a JSON number in every
/// client, and does not name the same error in another tenant.
pub(crate) fn import_error_id(e: &ImportErrorRecord) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\0{}", e.tenant, e.filename).as_bytes());
    let mut id = [0u8; 8];
    id[2..].copy_from_slice(&digest[..6]);
    u64::from_be_bytes(id)
}

pub(crate) fn import_error(e: &ImportErrorRecord) -> ImportError {
    let location = match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", e.filename),
        (Some(l), None) => format!("{}:{l}", e.filename),
        _ => e.filename.clone(),
    };
    ImportError {
        import_error_id: import_error_id(e),
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
        .map(import_error)
        .collect();
    let (import_errors, total_entries) = paginate(errors, page.limit, page.offset);
    Ok(Json(ImportErrorCollection {
        import_errors,
        total_entries,
    }))
}
