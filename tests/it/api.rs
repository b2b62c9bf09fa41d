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

pub fn app(env: &Env) -> Router {
    router(ApiState {
        metastore: env.app.metastore.clone(),
        scheduler: env.app.scheduler.clone(),
        registry: env.app.sandbox.registry().clone(),
        remote: None,
        clock: env.app.clock.clone(),
    })
}

/// One request; the status, headers and raw body.
pub async fn call_raw(
    env: &Env,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dags_runs_and_task_instances() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .dag("broken.toml", "x = [")
        .start()
        .await;
    let v = get(&env, "/api/v1/dags?limit=10&offset=0").await;
    assert_eq!(v["total_entries"], 1);
    assert_eq!(v["dags"][0]["dag_id"], "api_dag");
    assert_eq!(v["dags"][0]["tags"][0]["name"], "api");
    // A DAG without a schedule is never scheduled.
    assert_eq!(v["dags"][0]["next_dagrun"], Value::Null);
    assert_eq!(
        get(&env, "/api/v1/dags?tags=other").await["total_entries"],
        0
    );
    assert_eq!(
        get(&env, "/api/v1/dags?dag_id_pattern=api").await["total_entries"],
        1
    );
    let v = get(&env, "/api/v1/dags/api_dag").await;
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(v["edges"], json!([{"source_id": "a", "target_id": "b"}]));
    assert!(v["source"].as_str().unwrap().contains("[tasks.a]"), "{v}");
    let v = get(&env, "/api/v1/importErrors").await;
    assert_eq!(v["import_errors"][0]["filename"], "broken.toml");

    let run = ok(
        &env,
        Method::POST,
        "/api/v1/dags/api_dag/dagRuns",
        Some(r#"{"dag_run_id": "api_run", "conf": {"k": 1}}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(run["dag_run_id"], "api_run");
    assert_eq!(run["conf"], json!({"k": 1}));
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["external_trigger"], true);
    assert_eq!(
        finished(&env, "api_dag", "api_run").await,
        DagRunState::Success
    );

    let v = get(&env, "/api/v1/dags/api_dag/dagRuns/api_run").await;
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
    assert!(v["duration"].as_f64().unwrap() >= 0.0, "{v}");
    let v = get(&env, "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances").await;
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
    assert_eq!(a["pool"], "default_pool");
    assert_eq!(a["mapped_params"], Value::Null);
    let v = get(&env, "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a").await;
    assert_eq!(v["tries"][0]["state"], "success");
    // What the try ran with, as rendered.
    assert_eq!(v["rendered_fields"], json!({"message": "hi"}), "{v}");
    let v = get(
        &env,
        "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a/logs/1",
    )
    .await;
    assert!(v["content"].as_str().unwrap().contains("hi"), "{v}");
    assert_eq!(v["running"], false);
    // Tailing: from the end there is nothing new.
    let end = v["offset"].as_u64().unwrap();
    let uri = format!("/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a/logs/1?offset={end}");
    assert_eq!(get(&env, &uri).await["content"], "");
    let v = get(
        &env,
        "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a/xcomEntries",
    )
    .await;
    assert_eq!(v["xcom_entries"][0]["value"], "hi");
    let v = get(
        &env,
        "/api/v1/dags/api_dag/dagRuns/api_run/taskInstances/a/xcomEntries/return_value",
    )
    .await;
    assert_eq!(
        (v["key"].as_str(), &v["value"]),
        (Some("return_value"), &json!("hi"))
    );
    let v = get(&env, "/api/v1/dags/api_dag/dagRuns?limit=1&offset=0").await;
    assert_eq!(v["dag_runs"].as_array().unwrap().len(), 1);

    let v = ok(
        &env,
        Method::PATCH,
        "/api/v1/dags/api_dag",
        Some(r#"{"is_paused": true}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["is_paused"], true);
    assert_eq!(
        get(&env, "/api/v1/dags?paused=false").await["total_entries"],
        0
    );
    let v = get(&env, "/api/v1/health").await;
    assert_eq!(v["metadatabase"]["status"], "healthy");
    assert_eq!(v["scheduler"]["status"], "healthy");
    let v = get(&env, "/api/v1/plugins").await;
    assert!(v["total_entries"].as_u64().unwrap() >= 6);
    let v = get(&env, "/api/v1/version").await;
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
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
            Method::POST,
            "/api/v1/dags/api_dag/dagRuns",
            Some(r#"{"dag_run_id": "~"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/dags/api_dag/dagRuns",
            Some(r#"{"surprise": 1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
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
            "/api/v1/dags?limit=-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/dags/api_dag/dagRuns?state=sideways",
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
        (
            Method::PUT,
            "/api/v1/variables/x",
            Some("{}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/api/v1/variables",
            Some(r#"{"key": "k", "value": "v""#),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, uri, body, want) in cases {
        fails(&env, method.clone(), uri, *body, *want).await;
    }
    // A 405 names the methods there are.
    let (s, headers, _) = call_raw(&env, Method::DELETE, "/api/v1/dags", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        headers["allow"].to_str().unwrap().contains("GET"),
        "{headers:?}"
    );
    // Without a JSON content type the body is not read.
    let (s, _, body) = call_raw(&env, Method::POST, "/api/v1/variables", None).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_problem(&v, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A run id that exists already conflicts.
    let body = Some(r#"{"dag_run_id": "once"}"#);
    ok(
        &env,
        Method::POST,
        "/api/v1/dags/api_dag/dagRuns",
        body,
        StatusCode::OK,
    )
    .await;
    fails(
        &env,
        Method::POST,
        "/api/v1/dags/api_dag/dagRuns",
        body,
        StatusCode::CONFLICT,
    )
    .await;
    // Oversized bodies are refused before they are read, on every endpoint.
    let big = format!(r#"{{"conf": {{"x": "{}"}}}}"#, "a".repeat(2 << 20));
    for uri in [
        "/api/v1/dags/api_dag/dagRuns",
        "/api/v1/variables",
        "/api/v1/pools",
    ] {
        fails(
            &env,
            Method::POST,
            uri,
            Some(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_set_state_and_delete_runs() {
    let env = Env::builder().dag("flaky.toml", FLAKY).start().await;
    trigger(&env, "flaky", "r1").await;
    assert_eq!(finished(&env, "flaky", "r1").await, DagRunState::Failed);
    let tis = "/api/v1/dags/flaky/dagRuns/r1/taskInstances";
    let v = get(&env, &format!("{tis}?state=failed,upstream_failed")).await;
    assert_eq!(v["total_entries"], 2, "{v}");
    // Airflow's max_tries counts retries: `b` has none.
    assert_eq!(get(&env, &format!("{tis}/b")).await["max_tries"], 0);

    // Airflow's default is a dry run: the answer lists, nothing changes.
    let clear = "/api/v1/dags/flaky/clearTaskInstances";
    let body = r#"{"dag_run_id": "r1", "task_ids": ["b"], "include_downstream": true}"#;
    let v = ok(&env, Method::POST, clear, Some(body), StatusCode::OK).await;
    let mut names: Vec<&str> = v["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(
        get(&env, "/api/v1/dags/flaky/dagRuns/r1").await["state"],
        "failed"
    );
    fails(
        &env,
        Method::POST,
        clear,
        Some(r#"{"dag_run_id": "r1", "task_ids": ["nope"]}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    fails(
        &env,
        Method::POST,
        clear,
        Some(r#"{"dag_run_id": "r9"}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    fails(
        &env,
        Method::POST,
        clear,
        Some(r#"{}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let body =
        r#"{"dag_run_id": "r1", "task_ids": ["b"], "include_downstream": true, "dry_run": false}"#;
    let v = ok(&env, Method::POST, clear, Some(body), StatusCode::OK).await;
    assert_eq!(v["total_entries"], 2);
    assert_eq!(finished(&env, "flaky", "r1").await, DagRunState::Success);

    // Every try is kept: b failed once, then succeeded.
    let b = format!("{tis}/b");
    let v = get(&env, &format!("{b}/tries")).await;
    assert_eq!(v["total_entries"], 2);
    assert_eq!(v["task_instances"][0]["state"], "failed");
    assert!(v["task_instances"][0]["error"].is_string(), "{v}");
    assert_eq!(v["task_instances"][1]["state"], "success");
    let v = get(&env, &format!("{b}/tries/2")).await;
    assert_eq!(
        (v["try_number"].as_u64(), v["state"].as_str()),
        (Some(2), Some("success"))
    );
    fails(
        &env,
        Method::GET,
        &format!("{b}/tries/3"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    fails(
        &env,
        Method::GET,
        &format!("{b}/tries/x"),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(get(&env, &b).await["try_number"], 2);
    // Cleared after try 1, as Airflow does: try_number + retries.
    assert_eq!(get(&env, &b).await["max_tries"], 1);
    assert_eq!(
        get(&env, &format!("{b}/tries")).await["task_instances"][1]["max_tries"],
        1
    );

    // Clearing a whole run: a dry run lists every TaskInstance; a real one answers
    // the run, queued again.
    let run_clear = "/api/v1/dags/flaky/dagRuns/r1/clear";
    let v = ok(&env, Method::POST, run_clear, Some("{}"), StatusCode::OK).await;
    assert_eq!(v["total_entries"], 3, "{v}");
    let v = ok(
        &env,
        Method::POST,
        run_clear,
        Some(r#"{"dry_run": false}"#),
        StatusCode::OK,
    )
    .await;
    // The run as it is when the answer is made: queued again, or already further
    // along (these tasks are quick).
    assert_eq!(v["dag_run_id"], "r1");
    assert_eq!(finished(&env, "flaky", "r1").await, DagRunState::Success);
    assert_eq!(get(&env, &format!("{tis}/a")).await["try_number"], 2);

    // Setting the run's state by hand.
    let run = "/api/v1/dags/flaky/dagRuns/r1";
    let v = ok(
        &env,
        Method::PATCH,
        run,
        Some(r#"{"state": "failed"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["state"], "failed");
    assert_eq!(get(&env, run).await["state"], "failed");
    let detail = fails(
        &env,
        Method::PATCH,
        run,
        Some(r#"{"state": "running"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("queued"), "{detail}");
    fails(
        &env,
        Method::PATCH,
        "/api/v1/dags/flaky/dagRuns/r9",
        Some(r#"{"state": "failed"}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    let v = ok(
        &env,
        Method::PATCH,
        run,
        Some(r#"{"state": "queued"}"#),
        StatusCode::OK,
    )
    .await;
    assert!(
        ["queued", "running"].contains(&v["state"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(finished(&env, "flaky", "r1").await, DagRunState::Success);

    // Deleting: 204 with no body, then the run and its TaskInstances are gone.
    let (s, _, body) = call_raw(&env, Method::DELETE, run, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    fails(&env, Method::GET, run, None, StatusCode::NOT_FOUND).await;
    fails(&env, Method::GET, tis, None, StatusCode::NOT_FOUND).await;
    fails(&env, Method::DELETE, run, None, StatusCode::NOT_FOUND).await;
    fails(
        &env,
        Method::POST,
        run_clear,
        Some("{}"),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_task_instances() {
    let env = Env::builder().dag("api_dag.toml", DAG).start().await;
    trigger(&env, "api_dag", "m1").await;
    assert_eq!(finished(&env, "api_dag", "m1").await, DagRunState::Success);
    let a = "/api/v1/dags/api_dag/dagRuns/m1/taskInstances/a";
    let v = ok(
        &env,
        Method::PATCH,
        a,
        Some(r#"{"new_state": "failed", "include_downstream": true}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["total_entries"], 2, "{v}");
    assert!(
        v["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "failed")
    );
    assert_eq!(finished(&env, "api_dag", "m1").await, DagRunState::Failed);
    let v = get(&env, "/api/v1/dags/api_dag/dagRuns/m1/taskInstances/b").await;
    assert_eq!(v["state"], "failed");

    // Marking it what it already is changes nothing.
    let v = ok(
        &env,
        Method::PATCH,
        a,
        Some(r#"{"new_state": "failed"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["total_entries"], 0);
    for (uri, body, want) in [
        (
            a,
            r#"{"new_state": "running"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            a,
            r#"{"state": "success"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/dags/api_dag/dagRuns/m1/taskInstances/nope",
            r#"{"new_state": "success"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/dags/api_dag/dagRuns/m1/taskInstances/a?map_index=3",
            r#"{"new_state": "success"}"#,
            StatusCode::NOT_FOUND,
        ),
    ] {
        fails(&env, Method::PATCH, uri, Some(body), want).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_instances_and_runs_across_runs_and_dags() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .dag("flaky.toml", FLAKY)
        .start()
        .await;
    for (dag, run) in [("api_dag", "r1"), ("api_dag", "r2"), ("flaky", "f1")] {
        trigger(&env, dag, run).await;
        finished(&env, dag, run).await;
    }
    let one_dag = "/api/v1/dags/api_dag/dagRuns/~/taskInstances";
    assert_eq!(get(&env, one_dag).await["total_entries"], 4);
    let v = get(&env, &format!("{one_dag}?task_id=a")).await;
    let runs: Vec<&str> = v["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dag_run_id"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["r1", "r2"]);
    let v = get(&env, &format!("{one_dag}?limit=1&offset=1")).await;
    assert_eq!(v["total_entries"], 4);
    assert_eq!(v["task_instances"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            v["task_instances"][0]["dag_run_id"].as_str(),
            v["task_instances"][0]["task_id"].as_str()
        ),
        (Some("r1"), Some("b"))
    );

    let all = "/api/v1/dags/~/dagRuns/~/taskInstances";
    assert_eq!(get(&env, all).await["total_entries"], 7);
    // A page across every run: runs in creation order, the total from the counts.
    let v = get(&env, &format!("{all}?limit=2&offset=3")).await;
    let page: Vec<(&str, &str)> = v["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["dag_run_id"].as_str().unwrap(),
                t["task_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        (page, v["total_entries"].as_u64()),
        (vec![("r2", "b"), ("f1", "a")], Some(7))
    );
    let v = get(&env, &format!("{all}?state=success&limit=1")).await;
    assert_eq!(v["total_entries"], 5);
    assert_eq!(v["task_instances"].as_array().unwrap().len(), 1);
    let v = get(&env, &format!("{all}?state=upstream_failed")).await;
    assert_eq!(v["total_entries"], 1);
    assert_eq!(
        (
            v["task_instances"][0]["dag_id"].as_str(),
            v["task_instances"][0]["task_id"].as_str()
        ),
        (Some("flaky"), Some("c"))
    );
    assert_eq!(
        get(&env, &format!("{all}?pool=default_pool")).await["total_entries"],
        7
    );
    assert_eq!(
        get(&env, &format!("{all}?pool=other")).await["total_entries"],
        0
    );
    let detail = fails(
        &env,
        Method::GET,
        &format!("{all}?state=bogus"),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        detail.contains("upstream_failed"),
        "the detail lists the states: {detail}"
    );
    fails(
        &env,
        Method::GET,
        "/api/v1/dags/~/dagRuns/r1/taskInstances",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    fails(
        &env,
        Method::GET,
        "/api/v1/dags/nope/dagRuns/~/taskInstances",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    let v = get(&env, "/api/v1/dags/~/dagRuns").await;
    assert_eq!(v["total_entries"], 3);
    assert_eq!(
        get(&env, "/api/v1/dags/~/dagRuns?state=failed").await["total_entries"],
        1
    );
    let v = get(&env, "/api/v1/dags/~/dagRuns?order_by=-id&limit=1").await;
    assert_eq!(v["dag_runs"][0]["dag_run_id"], "f1");
    let v = get(&env, "/api/v1/dags/api_dag/dagRuns?order_by=-dag_run_id").await;
    assert_eq!(v["dag_runs"][0]["dag_run_id"], "r2");
    // The indexed orders page and filter like the sorted ones.
    let v = get(
        &env,
        "/api/v1/dags/api_dag/dagRuns?order_by=-logical_date&limit=1&offset=1",
    )
    .await;
    assert_eq!(
        (
            v["dag_runs"][0]["dag_run_id"].as_str(),
            v["total_entries"].as_u64()
        ),
        (Some("r1"), Some(2))
    );
    let v = get(
        &env,
        "/api/v1/dags/~/dagRuns?order_by=logical_date&state=failed",
    )
    .await;
    assert_eq!(
        (
            v["dag_runs"][0]["dag_run_id"].as_str(),
            v["total_entries"].as_u64()
        ),
        (Some("f1"), Some(1))
    );

    // The DAG list carries each DAG's latest runs, oldest first, when asked.
    let v = get(&env, "/api/v1/dags?dag_runs_limit=2").await;
    let latest = |dag: &str| -> Vec<String> {
        v["dags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dag_id"] == dag)
            .unwrap()["latest_dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dag_run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(latest("api_dag"), ["r1", "r2"]);
    assert_eq!(latest("flaky"), ["f1"]);
    let v = get(&env, "/api/v1/dags?dag_runs_limit=1").await;
    assert!(
        v["dags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["latest_dag_runs"].as_array().unwrap().len() == 1)
    );
    assert!(
        get(&env, "/api/v1/dags").await["dags"][0]
            .get("latest_dag_runs")
            .is_none()
    );
    fails(
        &env,
        Method::GET,
        "/api/v1/dags?dag_runs_limit=26",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    fails(
        &env,
        Method::GET,
        "/api/v1/dags/~/dagRuns?order_by=colour",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_crud() {
    let dag = r#"
[tasks.read]
operator = "testkit"
params = { mode = "variable", key = "region" }
"#;
    let env = Env::builder().dag("reader.toml", dag).start().await;
    let vars = "/api/v1/variables";
    assert_eq!(
        get(&env, vars).await,
        json!({"variables": [], "total_entries": 0})
    );
    let v = ok(
        &env,
        Method::POST,
        vars,
        Some(r#"{"key": "region", "value": "eu"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v, json!({"key": "region", "value": "eu"}));
    fails(
        &env,
        Method::POST,
        vars,
        Some(r#"{"key": "region", "value": "us"}"#),
        StatusCode::CONFLICT,
    )
    .await;
    ok(
        &env,
        Method::POST,
        vars,
        Some(r#"{"key": "other", "value": ""}"#),
        StatusCode::OK,
    )
    .await;
    let v = ok(
        &env,
        Method::PATCH,
        "/api/v1/variables/region",
        Some(r#"{"value": "us"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["value"], "us");
    assert_eq!(get(&env, "/api/v1/variables/region").await["value"], "us");
    let v = get(&env, "/api/v1/variables?limit=1&offset=1").await;
    assert_eq!(
        v,
        json!({"variables": [{"key": "region", "value": "us"}], "total_entries": 2})
    );

    // What the API writes is what tasks read.
    trigger(&env, "reader", "r1").await;
    finished(&env, "reader", "r1").await;
    let v = get(
        &env,
        "/api/v1/dags/reader/dagRuns/r1/taskInstances/read/xcomEntries/return_value",
    )
    .await;
    assert_eq!(v["value"], "us");

    for (method, uri, body, want) in [
        (
            Method::POST,
            vars,
            r#"{"key": "", "value": "x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            vars,
            r#"{"key": "a\u0000b", "value": "x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            vars,
            r#"{"key": "n", "value": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            vars,
            r#"{"key": "n", "value": "1", "x": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            vars,
            r#"{"value": "1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PATCH,
            "/api/v1/variables/region",
            r#"{"key": "renamed", "value": "1"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/api/v1/variables/missing",
            r#"{"value": "1"}"#,
            StatusCode::NOT_FOUND,
        ),
    ] {
        fails(&env, method, uri, Some(body), want).await;
    }
    let long = json!({"key": "k".repeat(251), "value": "x"}).to_string();
    fails(
        &env,
        Method::POST,
        vars,
        Some(&long),
        StatusCode::BAD_REQUEST,
    )
    .await;

    ok(
        &env,
        Method::DELETE,
        "/api/v1/variables/region",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    fails(
        &env,
        Method::DELETE,
        "/api/v1/variables/region",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    fails(
        &env,
        Method::GET,
        "/api/v1/variables/region",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(get(&env, vars).await["total_entries"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_crud_never_echo_passwords() {
    const SECRET: &str = "s3cret-pw";
    let dag = r#"
[tasks.use]
operator = "testkit"
params = { mode = "connection", conn_id = "db" }
"#;
    let env = Env::builder().dag("user.toml", dag).start().await;
    let conns = "/api/v1/connections";
    let db = "/api/v1/connections/db";
    // Nothing the API sends back may contain the password, nor even name it.
    let no_secret = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(SECRET) && !text.contains("password"),
            "{text}"
        );
    };
    let body = json!({
        "conn_id": "db", "conn_type": "postgres", "host": "db.internal", "port": 5432,
        "login": "app", "password": SECRET, "schema": "main",
        "extra": "{\"sslmode\": \"require\"}",
    })
    .to_string();
    let (s, _, bytes) = call_raw(&env, Method::POST, conns, Some(&body)).await;
    assert_eq!(s, StatusCode::OK);
    no_secret(&bytes);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v,
        json!({
            "conn_id": "db", "conn_type": "postgres", "description": null,
            "host": "db.internal", "port": 5432, "login": "app", "schema": "main",
            "extra": "{\"sslmode\": \"require\"}",
        })
    );
    fails(&env, Method::POST, conns, Some(&body), StatusCode::CONFLICT).await;
    for uri in [conns, db] {
        let (s, _, bytes) = call_raw(&env, Method::GET, uri, None).await;
        assert_eq!(s, StatusCode::OK);
        no_secret(&bytes);
    }
    assert_eq!(get(&env, conns).await["total_entries"], 1);

    // A PATCH changes what it names and keeps the password it does not.
    let (s, _, bytes) = call_raw(
        &env,
        Method::PATCH,
        db,
        Some(r#"{"host": "db2.internal", "login": null}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    no_secret(&bytes);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["host"].as_str(), &v["login"]),
        (Some("db2.internal"), &Value::Null)
    );
    assert_eq!(v["port"], 5432);

    // Operators get the whole connection, password included.
    trigger(&env, "user", "r1").await;
    finished(&env, "user", "r1").await;
    let v = env
        .app
        .metastore
        .xcom("default", "user", "r1", "use", "return_value")
        .unwrap();
    let got: Value = serde_json::from_str(&v[0].1).unwrap();
    assert_eq!(got["connection"]["password"], SECRET, "{got}");
    assert_eq!(got["connection"]["host"], "db2.internal");

    // Errors do not echo what was sent either.
    let bad = json!({"conn_id": "x", "conn_type": "t", "password": SECRET, "extra": "not json"})
        .to_string();
    let (s, _, bytes) = call_raw(&env, Method::POST, conns, Some(&bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(!String::from_utf8_lossy(&bytes).contains(SECRET));
    let bad =
        json!({"conn_id": "x", "conn_type": "t", "password": SECRET, "port": 70000}).to_string();
    let (s, _, bytes) = call_raw(&env, Method::POST, conns, Some(&bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!String::from_utf8_lossy(&bytes).contains(SECRET));
    for (method, uri, body, want) in [
        (
            Method::POST,
            conns,
            r#"{"conn_id": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            conns,
            r#"{"conn_id": "x", "conn_type": " "}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            conns,
            r#"{"conn_id": "", "conn_type": "t"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            db,
            r#"{"conn_id": "renamed"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            db,
            r#"{"extra": "[1]"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/api/v1/connections/nope",
            r#"{"host": "h"}"#,
            StatusCode::NOT_FOUND,
        ),
    ] {
        fails(&env, method, uri, Some(body), want).await;
    }

    ok(&env, Method::DELETE, db, None, StatusCode::NO_CONTENT).await;
    fails(&env, Method::GET, db, None, StatusCode::NOT_FOUND).await;
    fails(&env, Method::DELETE, db, None, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_crud_and_occupancy() {
    let dag = r#"
[tasks.long]
operator = "testkit"
params = { mode = "sleep", seconds = 30 }
pool = "p1"
pool_slots = 2
"#;
    let env = Env::builder().dag("pooled.toml", dag).start().await;
    let pools = "/api/v1/pools";
    let v = get(&env, pools).await;
    assert_eq!(v["total_entries"], 1);
    assert_eq!(v["pools"][0]["name"], "default_pool");
    assert_eq!(v["pools"][0]["slots"], 128);
    fails(
        &env,
        Method::DELETE,
        "/api/v1/pools/default_pool",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let v = ok(
        &env,
        Method::PATCH,
        "/api/v1/pools/default_pool",
        Some(r#"{"slots": 64}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["slots"], 64);
    assert_eq!(get(&env, "/api/v1/pools/default_pool").await["slots"], 64);

    let v = ok(
        &env,
        Method::POST,
        pools,
        Some(r#"{"name": "p1", "slots": 3}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        v,
        json!({"name": "p1", "slots": 3, "description": null, "occupied_slots": 0,
               "running_slots": 0, "queued_slots": 0, "scheduled_slots": 0, "open_slots": 3})
    );
    fails(
        &env,
        Method::POST,
        pools,
        Some(r#"{"name": "p1", "slots": 1}"#),
        StatusCode::CONFLICT,
    )
    .await;
    fails(
        &env,
        Method::POST,
        pools,
        Some(r#"{"name": "default_pool", "slots": 1}"#),
        StatusCode::CONFLICT,
    )
    .await;
    let p1 = "/api/v1/pools/p1";
    let v = ok(
        &env,
        Method::PATCH,
        p1,
        Some(r#"{"slots": 5, "description": "test"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (v["slots"].as_u64(), v["description"].as_str()),
        (Some(5), Some("test"))
    );
    for (method, uri, body, want) in [
        (
            Method::PATCH,
            p1,
            r#"{"name": "p2"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            p1,
            r#"{"slots": -1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PATCH,
            "/api/v1/pools/nope",
            r#"{"slots": 1}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            pools,
            r#"{"name": "p3"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            pools,
            r#"{"name": "", "slots": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        fails(&env, method, uri, Some(body), want).await;
    }

    // A running task holds its pool_slots in its pool.
    trigger(&env, "pooled", "r1").await;
    let mut updates = env.app.scheduler.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while env.outcome("pooled", "r1").state("long") != aileron_model::TaskInstanceState::Running {
        let wait = tokio::time::timeout_at(deadline, updates.recv()).await;
        assert!(wait.is_ok(), "the task did not start");
    }
    let v = get(&env, p1).await;
    assert_eq!(
        (
            v["running_slots"].as_u64(),
            v["occupied_slots"].as_u64(),
            v["open_slots"].as_u64()
        ),
        (Some(2), Some(2), Some(3)),
        "{v}"
    );
    let v = get(&env, "/api/v1/dags/pooled/dagRuns/r1/taskInstances/long").await;
    assert_eq!(
        (v["pool"].as_str(), v["pool_slots"].as_u64()),
        (Some("p1"), Some(2))
    );
    // The running try shows in the tries, without an end.
    let v = get(
        &env,
        "/api/v1/dags/pooled/dagRuns/r1/taskInstances/long/tries",
    )
    .await;
    assert_eq!(v["task_instances"][0]["state"], "running");
    assert_eq!(v["task_instances"][0]["end_date"], Value::Null);
    ok(
        &env,
        Method::PATCH,
        "/api/v1/dags/pooled/dagRuns/r1/taskInstances/long",
        Some(r#"{"new_state": "success"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(finished(&env, "pooled", "r1").await, DagRunState::Success);
    assert_eq!(get(&env, p1).await["occupied_slots"], 0);

    ok(&env, Method::DELETE, p1, None, StatusCode::NO_CONTENT).await;
    fails(&env, Method::GET, p1, None, StatusCode::NOT_FOUND).await;
    fails(&env, Method::DELETE, p1, None, StatusCode::NOT_FOUND).await;
}

/// One server-sent event: its name and JSON data.
fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_state_changes() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .dag("flaky.toml", FLAKY)
        .start()
        .await;
    let req = Request::get("/api/v1/events?dag_id=api_dag")
        .body(Body::empty())
        .unwrap();
    // The answer (headers) is back once the stream has subscribed.
    let resp = app(&env).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();

    // Another DAG's changes are filtered out.
    trigger(&env, "flaky", "other").await;
    finished(&env, "flaky", "other").await;
    trigger(&env, "api_dag", "watched").await;

    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !events.iter().any(|(name, data): &(String, Value)| {
        name == "dag_run" && data["dag_run_id"] == "watched" && data["state"] == "success"
    }) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("the run's events arrive")
            .expect("the stream stays open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        events = parse_events(&text);
    }
    for (name, data) in &events {
        assert!(
            ["dag_run", "task_instance", "dags"].contains(&name.as_str()),
            "{name}"
        );
        if name != "dags" {
            assert_eq!(data["dag_id"], "api_dag", "{name}: {data}");
        }
    }
    let a_done = events.iter().any(|(name, d)| {
        name == "task_instance"
            && d["task_id"] == "a"
            && d["state"] == "success"
            && d["try_number"] == 1
            && d["map_index"] == -1
            && d["dag_run_id"] == "watched"
    });
    assert!(a_done, "{events:?}");
    assert!(
        events
            .iter()
            .any(|(name, d)| name == "dag_run" && d["state"] == "running"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_runs_and_task_instances_by_state() {
    let env = Env::builder().dag("api_dag.toml", DAG).start().await;
    // The recorder is installed with the first router, before the run records.
    let _ = app(&env);
    trigger(&env, "api_dag", "r1").await;
    finished(&env, "api_dag", "r1").await;
    let (s, headers, body) = call_raw(&env, Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    for line in [
        "# TYPE aileron_dag_runs gauge",
        "aileron_dag_runs{state=\"success\"} 1",
        "aileron_dag_runs{state=\"failed\"} 0",
        "# TYPE aileron_task_instances gauge",
        "aileron_task_instances{state=\"success\"} 2",
        "aileron_task_instances{state=\"none\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // What the scheduler, executor and sandbox record (other tests in this process
    // add to the same recorder, so only their presence is checked).
    for name in [
        "aileron_metastore_commit_seconds_bucket",
        "aileron_scheduling_latency_seconds_count",
        "aileron_sandbox_run_seconds_sum",
        "aileron_executor_slots_busy",
        "aileron_executor_queue_depth",
    ] {
        assert!(text.contains(name), "no `{name}` in:\n{text}");
    }
}
