//! Backfills and callbacks through the REST API's router: dry run, create, list,
//! get, pause, unpause, cancel, the progress counted from the runs, the runs'
//! `run_type` and `backfill_id`, a run's callbacks with their logs, and every bad
//! request answered with the right status.

use crate::api::{call, fails, get, ok};
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// A daily DAG: the simulated clock starts on 2026-01-05, so December 2025 is past.
/// Each run takes a fifth of a second of real time (`b`), so a backfill is still
/// in progress while a test pauses or cancels it.
pub const DAILY: &str = r#"
schedule = "@daily"
start_date = "2026-01-01"
on_success = { operator = "echo", params = { message = "run {{ run_id }} succeeded" } }
[tasks.a]
operator = "echo"
params = { message = "day {{ ds }}" }
[tasks.b]
operator = "sleep"
upstream = ["a"]
params = { seconds = 0.2 }
"#;

const MANUAL: &str = r#"
[tasks.a]
operator = "noop"
"#;

async fn post(env: &Env, uri: &str, body: Value, want: StatusCode) -> Value {
    ok(env, Method::POST, uri, Some(&body.to_string()), want).await
}

async fn put(env: &Env, uri: &str, want: StatusCode) -> Value {
    let (s, v) = call(env, Method::PUT, uri, None).await;
    assert_eq!(s, want, "PUT {uri}: {v}");
    v
}

/// Polls a backfill until it is complete (bounded); its last answer.
pub async fn wait_backfill(env: &Env, id: u64) -> Value {
    let uri = format!("/api/v1/backfills/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let b = get(env, &uri).await;
        if !b["completed_at"].is_null() {
            return b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backfill {id} did not complete: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until no run of `dag_id` is queued or running.
pub async fn wait_all_runs(env: &Env, dag_id: &str) {
    let uri = format!("/api/v1/dags/{dag_id}/dagRuns?state=queued,running");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let v = get(env, &uri).await;
        if v["total_entries"] == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs of {dag_id} did not finish: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["backfills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["logical_date"].as_str().unwrap()[..10].to_owned(),
                d["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn counted(b: &Value) -> u64 {
    ["queued", "running", "success", "failed"]
        .iter()
        .map(|k| b["runs_by_state"][k].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_plan_create_list_pause_and_finish() {
    let env = Env::builder().dag("daily.toml", DAILY).start().await;
    // An existing run on 2025-12-02, then marked failed: what a backfill re-runs.
    let body = json!({"dag_run_id": "m1", "logical_date": "2025-12-02"});
    post(&env, "/api/v1/dags/daily/dagRuns", body, StatusCode::OK).await;
    wait_all_runs(&env, "daily").await;
    let uri = "/api/v1/dags/daily/dagRuns/m1";
    let body = Some(r#"{"state": "failed"}"#);
    ok(&env, Method::PATCH, uri, body, StatusCode::OK).await;

    let request = |reprocess: &str| {
        json!({
            "dag_id": "daily",
            "from_date": "2025-12-01",
            "to_date": "2025-12-05T00:00:00Z",
            "reprocess_behavior": reprocess,
            "max_active_runs": 2,
            "dag_run_conf": {"k": 1},
        })
    };
    let dry = "/api/v1/backfills/dry_run";
    let plan = post(&env, dry, request("none"), StatusCode::OK).await;
    assert_eq!(plan["total_entries"], 5, "{plan}");
    let want = |second: &str| {
        [
            ("2025-12-01", "create"),
            ("2025-12-02", second),
            ("2025-12-03", "create"),
            ("2025-12-04", "create"),
            ("2025-12-05", "create"),
        ]
        .map(|(d, a)| (d.to_owned(), a.to_owned()))
        .to_vec()
    };
    assert_eq!(actions(&plan), want("skip"));
    let skipped = &plan["backfills"][1];
    assert_eq!(
        (&skipped["run_id"], &skipped["reason"]),
        (&json!("m1"), &json!("already exists"))
    );
    assert_eq!(plan["backfills"][0]["run_id"], Value::Null);
    for reprocess in ["failed", "completed", "all"] {
        let plan = post(&env, dry, request(reprocess), StatusCode::OK).await;
        assert_eq!(actions(&plan), want("reprocess"), "{reprocess}");
    }
    let mut backwards = request("none");
    backwards["run_backwards"] = json!(true);
    let plan = post(&env, dry, backwards, StatusCode::OK).await;
    assert_eq!(actions(&plan)[0].0, "2025-12-05", "{plan}");
    // A dry run creates nothing.
    assert_eq!(get(&env, "/api/v1/backfills").await["total_entries"], 0);

    let b = post(&env, "/api/v1/backfills", request("failed"), StatusCode::OK).await;
    let id = b["id"].as_u64().unwrap();
    assert_eq!(b["dag_id"], "daily");
    assert_eq!(b["reprocess_behavior"], "failed");
    assert_eq!(b["max_active_runs"], 2);
    assert_eq!(b["dag_run_conf"], json!({"k": 1}));
    assert_eq!(b["is_paused"], false);
    assert_eq!(b["completed_at"], Value::Null);
    assert_eq!(b["total_runs"], 5, "{b}");
    assert_eq!(b["run_ids"].as_array().unwrap().len(), 5);
    assert!(
        b["run_ids"].as_array().unwrap().contains(&json!("m1")),
        "{b}"
    );
    assert_eq!(b["skipped_dates"], json!([]));
    assert_eq!(counted(&b), 5, "{b}");
    assert!(
        b["from_date"]
            .as_str()
            .unwrap()
            .starts_with("2025-12-01T00:00:00")
    );

    // One backfill in progress per DAG.
    let detail = fails(
        &env,
        Method::POST,
        "/api/v1/backfills",
        Some(&request("none").to_string()),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(detail.contains("already has a backfill"), "{detail}");

    let list = get(&env, "/api/v1/backfills?dag_id=daily").await;
    assert_eq!(list["total_entries"], 1);
    assert_eq!(list["backfills"][0]["id"], id);
    assert_eq!(get(&env, "/api/v1/backfills").await["total_entries"], 1);
    let one = get(&env, &format!("/api/v1/backfills/{id}")).await;
    assert_eq!(one["run_ids"], b["run_ids"]);

    let v = put(
        &env,
        &format!("/api/v1/backfills/{id}/pause"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["is_paused"], true);
    let v = put(
        &env,
        &format!("/api/v1/backfills/{id}/unpause"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["is_paused"], false);

    let done = wait_backfill(&env, id).await;
    assert_eq!(
        done["runs_by_state"],
        json!({"queued": 0, "running": 0, "success": 5, "failed": 0}),
        "{done}"
    );
    // Its runs say whose they are, and what they ran with.
    let runs = get(&env, "/api/v1/dags/daily/dagRuns?limit=100").await;
    assert_eq!(runs["total_entries"], 5, "{runs}");
    for r in runs["dag_runs"].as_array().unwrap() {
        assert_eq!(r["run_type"], "backfill", "{r}");
        assert_eq!(r["backfill_id"], id, "{r}");
        assert_eq!(r["state"], "success", "{r}");
        assert_eq!(r["conf"], json!({"k": 1}), "{r}");
        assert!(
            r["dag_version"].as_str().is_some_and(|v| !v.is_empty()),
            "{r}"
        );
    }
    let created = runs["dag_runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dag_run_id"] != "m1")
        .unwrap();
    assert!(
        created["dag_run_id"]
            .as_str()
            .unwrap()
            .starts_with("backfill__2025-12-"),
        "{created}"
    );

    // A finished backfill cannot be paused or cancelled.
    for action in ["pause", "unpause", "cancel"] {
        fails(
            &env,
            Method::PUT,
            &format!("/api/v1/backfills/{id}/{action}"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
    }
    // Newest first on request; the next backfill of the DAG may start now.
    let mut next = request("none");
    next["from_date"] = json!("2025-11-30");
    next["to_date"] = json!("2025-11-30");
    let second = post(&env, "/api/v1/backfills", next, StatusCode::OK).await;
    let list = get(&env, "/api/v1/backfills?dag_id=daily&order_by=-id").await;
    assert_eq!(list["backfills"][0]["id"], second["id"], "{list}");
    assert_eq!(list["backfills"][1]["id"], id, "{list}");
    let page = get(&env, "/api/v1/backfills?limit=1&offset=1").await;
    assert_eq!(page["total_entries"], 2);
    assert_eq!(page["backfills"][0]["id"], second["id"], "{page}");
    wait_backfill(&env, second["id"].as_u64().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_backfill_fails_its_queued_runs() {
    let env = Env::builder().dag("daily.toml", DAILY).start().await;
    let body = json!({
        "dag_id": "daily",
        "from_date": "2025-12-01",
        "to_date": "2025-12-06",
        "max_active_runs": 1,
    });
    let b = post(&env, "/api/v1/backfills", body, StatusCode::OK).await;
    let id = b["id"].as_u64().unwrap();
    assert_eq!(b["total_runs"], 6);
    let paused = put(
        &env,
        &format!("/api/v1/backfills/{id}/pause"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(paused["is_paused"], true);
    let cancelled = put(
        &env,
        &format!("/api/v1/backfills/{id}/cancel"),
        StatusCode::OK,
    )
    .await;
    assert!(!cancelled["completed_at"].is_null(), "{cancelled}");
    assert_eq!(cancelled["is_paused"], true);
    assert_eq!(cancelled["runs_by_state"]["queued"], 0, "{cancelled}");
    // The runs it had not started failed; a run already running goes on.
    let failed = cancelled["runs_by_state"]["failed"].as_u64().unwrap();
    assert!(failed >= 3, "{cancelled}");
    wait_all_runs(&env, "daily").await;
    let after = get(&env, &format!("/api/v1/backfills/{id}")).await;
    assert_eq!(counted(&after), 6, "{after}");
    fails(
        &env,
        Method::PUT,
        &format!("/api/v1/backfills/{id}/unpause"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_bad_requests_get_json_problems() {
    let env = Env::builder()
        .dag("daily.toml", DAILY)
        .dag("manual.toml", MANUAL)
        .start()
        .await;
    let body = |changes: Value| {
        let mut b = json!({"dag_id": "daily", "from_date": "2025-12-01", "to_date": "2025-12-02"});
        for (k, v) in changes.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string()
    };
    let cases: Vec<(Method, &str, Option<String>, StatusCode)> = vec![
        (
            Method::POST,
            "/api/v1/backfills",
            Some("{".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(json!({"from_date": "yesterday"}))),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/backfills/dry_run",
            Some(body(json!({"dag_run_conf": [1]}))),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(json!({"dag_id": "nope"}))),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/backfills/dry_run",
            Some(body(json!({"dag_id": "manual"}))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(json!({"from_date": "2025-12-03"}))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(
                json!({"from_date": "2027-01-01", "to_date": "2027-01-02"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(json!({"max_active_runs": 0}))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(json!({"reprocess_behavior": "sometimes"}))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(body(json!({"surprise": 1}))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/backfills",
            Some(r#"{"dag_id": "daily"}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/api/v1/backfills/999",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/backfills/abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/backfills/999/pause",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/api/v1/backfills/999/unpause",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/api/v1/backfills/999/cancel",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/backfills?dag_id=nope",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/backfills?order_by=size",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/backfills?limit=-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/backfills/1",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/api/v1/dags/daily/dagRuns/nope/callbacks",
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, uri, body, want) in cases {
        fails(&env, method, uri, body.as_deref(), want).await;
    }
    // Nothing above created a backfill.
    assert_eq!(get(&env, "/api/v1/backfills").await["total_entries"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_callbacks_are_listed_with_their_logs() {
    let env = Env::builder().dag("daily.toml", DAILY).start().await;
    let body = json!({"dag_run_id": "c1"});
    post(&env, "/api/v1/dags/daily/dagRuns", body, StatusCode::OK).await;
    let uri = "/api/v1/dags/daily/dagRuns/c1/callbacks";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let v = loop {
        let v = get(&env, uri).await;
        let done = v["callbacks"].as_array().is_some_and(|c| {
            !c.is_empty()
                && c.iter()
                    .all(|c| c["state"] != "queued" && c["state"] != "running")
        });
        if done {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no finished callback: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v["total_entries"], 1, "{v}");
    let c = &v["callbacks"][0];
    assert_eq!(c["event"], "on_success", "{c}");
    assert_eq!(c["operator"], "echo", "{c}");
    assert_eq!(c["state"], "success", "{c}");
    assert_eq!(c["dag_run_id"], "c1");
    assert_eq!(c["task_id"], Value::Null, "a DAG-level callback: {c}");
    assert!(
        c["log"].as_str().unwrap().contains("run c1 succeeded"),
        "{c}"
    );
    let page = get(&env, &format!("{uri}?limit=0")).await;
    assert_eq!(page["callbacks"], json!([]));
    assert_eq!(page["total_entries"], 1);
}
