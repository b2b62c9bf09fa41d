//! API errors as JSON `{"title","status","detail"}` (the shape of Airflow's API
//! problems), with the right status and nothing internal in them.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = json!({"title": title, "status": self.status.as_u16(), "detail": self.detail});
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // axum's own text says what was wrong with the body (syntax, a missing or
        // unknown field, the content type) and carries nothing internal.
        Self::new(r.status(), r.body_text())
    }
}

impl From<crate::metastore::MetastoreError> for ApiError {
    fn from(e: crate::metastore::MetastoreError) -> Self {
        // The detail stays in the server log; the client learns only that it failed.
        tracing::error!("metastore error while serving the API: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metastore could not be read; see the server log",
        )
    }
}

/// Turns every error response that is not already JSON (axum's own rejections of a
/// bad path, query, method or oversized body) into the same problem shape.
pub async fn problem_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_owned();
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    ApiError::new(status, detail).into_response()
}
