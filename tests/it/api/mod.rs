//! The REST API through its router (no socket): shapes, status codes, paging, the
//! changes made by hand (DagRun state, clear, set state, delete), variables,
//! connections and pools, the event stream, `/metrics`, and bad input always
//! answered with a JSON problem, never a panic.

use aileron::api::{ApiState, router};
use aileron_model::DagRunState;
use aileron_tests::Env;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

mod live;
mod records;
mod runs;
mod v2;

pub fn app(env: &Env) -> Router {
    router(ApiState {
        metastore: env.app.metastore.clone(),
        scheduler: env.app.scheduler.clone(),
        registry: env.app.sandbox.registry().clone(),
        remote: None,
        clock: env.app.clock.clone(),
        auth: env.app.auth.clone(),
        rescan: env.app.rescan.clone(),
        plugins_dir: env.app.plugins_dir.clone(),
        settings: std::sync::Arc::new(env.app.settings.clone()),
    })
}

/// One request; the status, headers and raw body.
pub async fn call_raw(
    env: &Env,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    call_raw_in(env, None, method, uri, body).await
}

/// [`call_raw`] acting in `tenant` (`X-Aileron-Tenant`) when one is given.
pub async fn call_raw_in(
    env: &Env,
    tenant: Option<&str>,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", aileron_tests::server::ADMIN_AUTH);
    if let Some(t) = tenant {
        req = req.header("x-aileron-tenant", t);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_owned()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = app(env).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// One request whose answer must be JSON (or empty, read as `null`).
pub async fn call(env: &Env, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let (status, _, bytes) = call_raw(env, method, uri, body).await;
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{uri} answered non-JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

/// A request that must succeed with `want`; its JSON answer.
pub async fn ok(
    env: &Env,
    method: Method,
    uri: &str,
    body: Option<&str>,
    want: StatusCode,
) -> Value {
    let (s, v) = call(env, method.clone(), uri, body).await;
    assert_eq!(s, want, "{method} {uri}: {v}");
    v
}

pub async fn get(env: &Env, uri: &str) -> Value {
    ok(env, Method::GET, uri, None, StatusCode::OK).await
}

/// A GET acting in `tenant` that must answer 200; its JSON.
pub async fn get_in(env: &Env, tenant: &str, uri: &str) -> Value {
    let (status, _, bytes) = call_raw_in(env, Some(tenant), Method::GET, uri, None).await;
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, StatusCode::OK, "{uri} in {tenant}: {text}");
    serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{uri} answered non-JSON: {text}"))
}

#[track_caller]
fn assert_problem(v: &Value, status: StatusCode) {
    assert_eq!(v["status"], status.as_u16(), "{v}");
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
}

/// A request that must fail with `want` and a JSON problem; its detail.
pub async fn fails(
    env: &Env,
    method: Method,
    uri: &str,
    body: Option<&str>,
    want: StatusCode,
) -> String {
    let (s, v) = call(env, method.clone(), uri, body).await;
    assert_eq!(s, want, "{method} {uri}: {v}");
    assert_problem(&v, want);
    v["detail"].as_str().unwrap().to_owned()
}

/// Waits (bounded) until a run has finished; its state.
pub async fn finished(env: &Env, dag_id: &str, run_id: &str) -> DagRunState {
    let mut updates = env.app.scheduler.subscribe();
    env.wait_run(&mut updates, dag_id, run_id).await.run.state
}

pub async fn trigger(env: &Env, dag_id: &str, run_id: &str) -> Value {
    let body = json!({ "dag_run_id": run_id }).to_string();
    ok(
        env,
        Method::POST,
        &format!("/api/v1/dags/{dag_id}/dagRuns"),
        Some(&body),
        StatusCode::OK,
    )
    .await
}

pub const DAG: &str = r#"
description = "API test"
tags = ["api"]
[tasks.a]
operator = "echo"
params = { message = "hi" }
[tasks.b]
operator = "noop"
upstream = ["a"]
"#;

/// b fails its first try and succeeds from the second; c follows b.
pub const FLAKY: &str = r#"
[tasks.a]
operator = "echo"
params = { message = "a" }
[tasks.b]
operator = "fail"
upstream = ["a"]
params = { until_try = 2 }
[tasks.c]
operator = "noop"
upstream = ["b"]
"#;
