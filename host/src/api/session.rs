//! Signing in and out: `POST /auth/token` (Airflow 3's: a JSON user name and
//! password for `{"access_token"}`; `/auth/token/cli` is the same for
//! `airflowctl`), the UI's `POST /auth/login` and
//! `/auth/logout`, which keep the session in cookies, and `GET /api/v1/me`
//! (who the caller is and the tenants it may act in).

use super::access::{CSRF_COOKIE, Policy, RouteTable, SESSION_COOKIE, plain_route};
use super::{ApiError, ApiResult, ApiState, Caller, JsonBody};
use crate::auth::session::SESSION_SECONDS;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    username: String,
    password: String,
}

fn source(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> String {
    super::access::client_address(peer.as_ref().map(|Extension(c)| c))
}

/// The `/auth/*` routes, each with its policy (all public: they are how one
/// signs in).
pub fn routes(state: ApiState) -> (Router, RouteTable) {
    let mut table = RouteTable::default();
    let mut route = |path: &str, op: &str, mr| {
        plain_route(
            &mut table,
            "",
            path,
            &[Method::POST],
            Policy::Public,
            op,
            mr,
        )
    };
    let router = Router::new()
        .route(
            "/auth/token",
            route("/auth/token", "create_token", post(token)),
        )
        // Where `airflowctl auth login` asks; the same session token.
        .route(
            "/auth/token/cli",
            route("/auth/token/cli", "create_token_cli", post(token)),
        )
        .route("/auth/login", route("/auth/login", "login", post(login)))
        .route(
            "/auth/logout",
            route("/auth/logout", "logout", post(logout)),
        )
        .layer(axum::middleware::map_response(super::error::problem_json))
        .with_state(state);
    (router, table)
}

async fn token(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(body): JsonBody<SignIn>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (token, _) = s
        .auth
        .sign_in(&body.username, &body.password, &source(peer))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "access_token": token })),
    ))
}

async fn login(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(body): JsonBody<SignIn>,
) -> ApiResult<Response> {
    let (token, _) = s
        .auth
        .sign_in(&body.username, &body.password, &source(peer))
        .await?;
    let mut csrf = [0u8; 24];
    getrandom::fill(&mut csrf)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no random bytes"))?;
    let csrf = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(csrf);
    let mut headers = HeaderMap::new();
    for cookie in [
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}"
        ),
        // Read by the page and sent back as X-CSRF-Token with every change.
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={SESSION_SECONDS}"),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("cookie text is ASCII"),
        );
    }
    Ok((
        headers,
        Json(serde_json::json!({ "username": body.username })),
    )
        .into_response())
}

async fn logout() -> Response {
    let mut headers = HeaderMap::new();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let cookie = format!("{name}=; Path=/; Max-Age=0; SameSite=Strict");
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("ASCII"),
        );
    }
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// A tenant the caller may act in.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyTenant {
    pub name: String,
    pub role: String,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// A user name, or `token:<name>`.
    pub name: String,
    pub platform_admin: bool,
    /// The tenant this request acted in, and the role there.
    pub tenant: String,
    pub role: Option<String>,
    /// Every tenant the caller may act in (all of them for a platform admin).
    pub tenants: Vec<MyTenant>,
}

/// Who am I, and in which tenants may I act.
#[utoipa::path(
    get, path = "/me", tag = "User", operation_id = "get_me",
    responses((status = 200, description = "The caller.", body = Me))
)]
pub async fn me(caller: Caller, State(s): State<ApiState>) -> ApiResult<Json<Me>> {
    let tenants = match caller.principal() {
        Some(p) if p.platform_admin => s
            .metastore
            .tenants()?
            .into_iter()
            .map(|t| MyTenant {
                role: p
                    .role_in(t.name.as_str())
                    .unwrap_or(aileron_model::Role::Admin)
                    .to_string(),
                name: t.name.to_string(),
            })
            .collect(),
        Some(p) => p
            .roles
            .iter()
            .map(|(t, r)| MyTenant {
                name: t.to_string(),
                role: r.to_string(),
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(Me {
        name: caller.actor(),
        platform_admin: caller.platform_admin(),
        tenant: caller.tenant().to_owned(),
        role: caller.role().map(|r| r.to_string()),
        tenants,
    }))
}
