//! The REST API through its router (no socket): shapes, status codes, paging and
//! bad input always answered with a JSON problem, never a panic.

use aileron::api::{ApiState, router};
use aileron_tests::Env;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(env: &Env, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let app = router(ApiState {
        metastore: env.app.metastore.clone(),
        scheduler: env.app.scheduler.clone(),
        registry: env.app.sandbox.registry().clone(),
    });
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_owned()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{uri} answered non-JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

fn assert_problem(v: &Value, status: StatusCode) {
    assert_eq!(v["status"], status.as_u16(), "{v}");
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
}

const DAG: &str = r#"
description = "API test"
tags = ["api"]
[tasks.a]
operator = "echo"
params = { message = "hi" }
[tasks.b]
operator = "noop"
upstream = ["a"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dags_runs_and_task_instances() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .dag("broken.toml", "x = [")
        .start()
        .await;
    let (s, v) = call(&env, Method::GET, "/api/v1/dags?limit=10&offset=0", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total_entries"], 1);
    assert_eq!(v["dags"][0]["dag_id"], "api_dag");
    assert_eq!(v["dags"][0]["tags"][0]["name"], "api");
    let (_, v) = call(&env, Method::GET, "/api/v1/dags/api_dag", None).await;
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2);
    let (_, v) = call(&env, Method::GET, "/api/v1/importErrors", None).await;
    assert_eq!(v["import_errors"][0]["filename"], "broken.toml");

    let (s, run) = call(
        &env,
        Method::POST,
        "/api/v1/dags/api_dag/dagRuns",
        Some(r#"{"dag_run_id": "api_run", "conf": {"k": 1}}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["dag_run_id"], "api_run");
    assert_eq!(run["conf"], json!({"k": 1}));
    let mut updates = env.app.scheduler.subscribe();
    let o = env.wait_run(&mut updates, "api_dag", "api_run").await;
    assert_eq!(o.run.state, aileron_model::DagRunState::Success);

    let (_, v) = call(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/dagRuns/api_run",
        None,
    )
    .await;
    assert_eq!(v["state"], "success");
    for field in [
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "start_date",
        "end_date",
    ] {
        assert!(v[field].is_string(), "{field} in {v}");
    }
    let (_, v) = call(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances",
        None,
    )
    .await;
    assert_eq!(v["total_entries"], 2);
    let a = &v["task_instances"][0];
    assert_eq!(
        (
            a["task_id"].as_str(),
            a["state"].as_str(),
            a["try_number"].as_u64()
        ),
        (Some("a"), Some("success"), Some(1))
    );
    assert_eq!(a["map_index"], -1);
    let (_, v) = call(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a/logs/1",
        None,
    )
    .await;
    assert!(v["content"].as_str().unwrap().contains("hi"), "{v}");
    let (_, v) = call(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a/xcomEntries",
        None,
    )
    .await;
    assert_eq!(v["xcom_entries"][0]["value"], "hi");
    let (_, v) = call(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/dagRuns?limit=1&offset=0",
        None,
    )
    .await;
    assert_eq!(v["dag_runs"].as_array().unwrap().len(), 1);

    let (s, v) = call(
        &env,
        Method::PATCH,
        "/api/v1/dags/api_dag",
        Some(r#"{"is_paused": true}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["is_paused"], true);
    let (_, v) = call(&env, Method::GET, "/api/v1/health", None).await;
    assert_eq!(v["metadatabase"]["status"], "healthy");
    let (_, v) = call(&env, Method::GET, "/api/v1/plugins", None).await;
    assert!(v["total_entries"].as_u64().unwrap() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_problems() {
    let env = Env::builder().dag("api_dag.toml", DAG).start().await;
    let cases: &[(Method, &str, Option<&str>, StatusCode)] = &[
        (
            Method::GET,
            "/api/v1/dags/nope",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/dags/nope/dagRuns",
            Some("{}"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/dags/api_dag/dagRuns",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/dags/api_dag/dagRuns",
            Some(r#"{"conf": [1]}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/dags/api_dag/dagRuns",
            Some(r#"{"logical_date": "yesterday"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/api/v1/dags/api_dag",
            Some(r#"{"is_paused": "maybe"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/api/v1/dags/api_dag/dagRuns/none",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/dags/api_dag/dagRuns/x/taskInstances/a/logs/notanumber",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/no/such/thing",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/api/v1/dags",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, uri, body, want) in cases {
        let (s, v) = call(&env, method.clone(), uri, *body).await;
        assert_eq!(s, *want, "{method} {uri}: {v}");
        assert_problem(&v, *want);
    }
    // A run id that exists already conflicts.
    let body = Some(r#"{"dag_run_id": "once"}"#);
    let (s, _) = call(&env, Method::POST, "/api/v1/dags/api_dag/dagRuns", body).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&env, Method::POST, "/api/v1/dags/api_dag/dagRuns", body).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_problem(&v, StatusCode::CONFLICT);
    // Oversized bodies are refused before they are read.
    let big = format!(r#"{{"conf": {{"x": "{}"}}}}"#, "a".repeat(2 << 20));
    let (s, v) = call(
        &env,
        Method::POST,
        "/api/v1/dags/api_dag/dagRuns",
        Some(&big),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(&v, StatusCode::PAYLOAD_TOO_LARGE);
}
