//! API errors as JSON `{"title","status","detail"}` (the shape of Airflow's API
//! problems), with the right status and nothing internal in them, plus the OpenAPI
//! response entries that document them.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::{self, ContentBuilder, Ref, RefOr, ResponseBuilder};

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// The reason phrase of the status, e.g. `Not Found`.
    pub title: String,
    /// The HTTP status code, repeated for clients that only see the body.
    pub status: u16,
    /// What was wrong, in words meant for the person who sent the request.
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
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
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
            "the metastore could not be read or written; see the server log",
        )
    }
}

impl From<crate::metastore::AccessError> for ApiError {
    fn from(e: crate::metastore::AccessError) -> Self {
        use crate::metastore::AccessError;
        match e {
            AccessError::TenantExists(_)
            | AccessError::UserExists(_)
            | AccessError::TenantInUse { .. } => ApiError::conflict(e.to_string()),
            AccessError::NoTenant(_) | AccessError::NoUser(_) => ApiError::not_found(e.to_string()),
            AccessError::Metastore(m) => m.into(),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Refused(why) => ApiError::new(StatusCode::UNAUTHORIZED, why),
            AuthError::Locked(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            AuthError::Metastore(m) => m.into(),
        }
    }
}

/// Largest error body the middleware below reads back. axum's rejection texts are
/// one line; anything longer is not one of them and is cut rather than buffered.
const MAX_REJECTION_BYTES: usize = 64 * 1024;

/// Turns every error response that is not already JSON (axum's own rejections of a
/// bad path, query, method or oversized body) into the same problem shape.
pub async fn problem_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_REJECTION_BYTES)
        .await
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_owned();
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    let mut problem = ApiError::new(status, detail).into_response();
    // A 405 must say which methods the resource has.
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

/// OpenAPI response entries for the error statuses, used in `#[utoipa::path]`
/// `responses(...)` next to the success entry, so every operation documents the
/// problems it can answer with (and the schema test checks them).
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $description:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<openapi::response::Response>> {
                problem_response($status, $description)
            }
        }
    )*};
}

pub(super) fn problem_response(
    status: u16,
    description: &str,
) -> BTreeMap<String, RefOr<openapi::response::Response>> {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    BTreeMap::from([(status.to_string(), RefOr::T(response))])
}

problem_responses! {
    /// 400: a malformed body, path or query parameter.
    BadRequest => 400, "The request is malformed; `detail` says what is wrong.";
    /// 404: the resource (or one it hangs under) does not exist.
    NotFound => 404, "The resource does not exist.";
    /// 409: the change conflicts with the resource's current state.
    Conflict => 409, "The change conflicts with the current state.";
    /// 413: the body is larger than the API accepts.
    PayloadTooLarge => 413, "The request body is too large.";
    /// 422: well-formed JSON whose fields have the wrong type or value.
    Unprocessable => 422, "The body is JSON but not of the expected shape.";
    /// 401: no credentials, or credentials that are not (or no longer) valid.
    Unauthorized => 401, "No valid credentials: a bearer token (session JWT or API token), HTTP Basic, or the UI's session cookie.";
    /// 403: a caller whose role in its tenant is too small.
    Forbidden => 403, "The caller's role does not allow this; `detail` names the role needed.";
    /// 429: too many failed sign-ins for the user name or the address.
    TooManyRequests => 429, "Too many failed sign-ins from this name or address; try again later.";
    /// 503: the scheduler, which applies every change, is not running.
    Unavailable => 503, "The scheduler is not running.";
}
