//! Property-based fuzzing of the API's JSON bodies: every operation of both
//! OpenAPI documents (`/api/v1`, `/api/v2`) that takes a body is sent random
//! JSON (and near-misses of valid bodies) against objects that exist. Whatever
//! arrives, the answer is a JSON error (v1's problem, v2's `detail`) or success
//! with a status below 500, and the server keeps answering.
//!
//! CI runs `PROPTEST_CASES` (default 64 here) bodies per operation; set it higher
//! for a longer hunt.

use crate::api::{DAG, call, call_raw, get, ok};
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Any JSON value, with the field names and values the API's bodies use, so
/// random bodies often get past the shape check and into the handlers.
fn body() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "dag_run_id",
        "logical_date",
        "conf",
        "note",
        "state",
        "new_state",
        "is_paused",
        "dry_run",
        "task_ids",
        "include_downstream",
        "include_upstream",
        "only_failed",
        "reset_dag_runs",
        "key",
        "value",
        "description",
        "connection_id",
        "conn_type",
        "conn_id",
        "host",
        "port",
        "login",
        "password",
        "extra",
        "name",
        "slots",
        "dag_id",
        "from_date",
        "to_date",
        "max_active_runs",
        "reprocess_behavior",
        "run_backwards",
        "map_index",
        "start_date",
        "end_date",
        "include_past",
        "include_future",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        prop::sample::select(
            &[
                "success",
                "failed",
                "queued",
                "running",
                "skipped",
                "a",
                "api_dag",
                "r1",
                "2026-01-01T00:00:00Z",
                "2026-13-45",
                "",
                "none",
                "completed",
                "\u{0}",
            ][..]
        )
        .prop_map(|s| json!(s)),
        "[ -~]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..6).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Values for the path parameters only /api/v2's paths use; `plugin` names an
/// operator.
fn v2_ids(plugin: &'static str) -> [(&'static str, &'static str); 8] {
    [
        ("map_index", "-1"),
        ("task_try_number", "1"),
        ("version_number", "1"),
        ("import_error_id", "1"),
        ("plugin_name", plugin),
        ("version", "1.0.0"),
        ("section", "core"),
        ("option", "executor"),
    ]
}

/// Every operation with a request body, with its path (under `prefix`) filled
/// with existing ids.
fn operations(doc: &Value, prefix: &str) -> Vec<(Method, String)> {
    // No user by this name: random bodies must not change the admin the
    // requests sign in as.
    let mut ids: Vec<(&str, &str)> = crate::openapi::path_ids("1")
        .map(|(k, v)| (k, if k == "username" { "nobody" } else { v }))
        .to_vec();
    // The names only /api/v2's paths use.
    ids.extend(v2_ids("nothing"));
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let uri = crate::openapi::fill(path, &ids).replacen("/api/v1", prefix, 1);
            out.push((method.to_uppercase().parse().unwrap(), uri));
        }
    }
    out
}

/// Whether an error answer has the shape its API version promises: v1's
/// problem with its status, v2's `detail` (text, or a validation error list).
fn error_shape(prefix: &str, status: StatusCode, answer: &Value) -> bool {
    if prefix == "/api/v2" {
        answer["detail"].is_string() || answer["detail"].is_array()
    } else {
        answer["status"] == json!(status.as_u16()) && answer["detail"].is_string()
    }
}

#[test]
fn random_json_bodies_get_json_answers_below_500() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = rt.block_on(async {
        let env = Env::builder().dag("api_dag.toml", DAG).start().await;
        // Objects for the paths to name: a run, a variable, a connection, a pool.
        let run = json!({"dag_run_id": "r1"}).to_string();
        ok(
            &env,
            Method::POST,
            "/api/v1/dags/api_dag/dagRuns",
            Some(&run),
            StatusCode::OK,
        )
        .await;
        let var = json!({"key": "v", "value": "1"}).to_string();
        ok(
            &env,
            Method::POST,
            "/api/v1/variables",
            Some(&var),
            StatusCode::OK,
        )
        .await;
        let conn = json!({"conn_id": "c", "conn_type": "http"}).to_string();
        ok(
            &env,
            Method::POST,
            "/api/v1/connections",
            Some(&conn),
            StatusCode::OK,
        )
        .await;
        let pool = json!({"name": "p", "slots": 2}).to_string();
        ok(
            &env,
            Method::POST,
            "/api/v1/pools",
            Some(&pool),
            StatusCode::OK,
        )
        .await;
        env
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        // Shrinking re-sends many bodies; the first failure says enough.
        max_shrink_iters: 32,
        ..Config::default()
    });
    for prefix in ["/api/v1", "/api/v2"] {
        let doc = rt.block_on(get(&env, &format!("{prefix}/openapi.json")));
        let ops = operations(&doc, prefix);
        assert!(ops.len() >= 10, "only {} operations take a body", ops.len());
        for (method, uri) in &ops {
            let result = runner.run(&body(), |body| {
                let text = body.to_string();
                let (status, answer) = rt.block_on(call(&env, method.clone(), uri, Some(&text)));
                prop_assert!(
                    status.as_u16() < 500,
                    "{method} {uri} with {text}: {status} {answer}"
                );
                if !status.is_success() {
                    prop_assert!(error_shape(prefix, status, &answer), "{}", answer);
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{method} {uri}: {e}");
            }
            // Bodies that are not JSON at all, or JSON of the wrong kind.
            for raw in ["", "{", "[1,", "nul", "\"\\ud800\"", "1e999", "{\"a\":1}{}"] {
                let (status, _, bytes) =
                    rt.block_on(call_raw(&env, method.clone(), uri, Some(raw)));
                assert!(
                    status.is_client_error(),
                    "{method} {uri} with {raw:?}: {status}"
                );
                let answer: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| panic!("{method} {uri} with {raw:?}: not JSON"));
                assert!(
                    error_shape(prefix, status, &answer),
                    "{method} {uri} with {raw:?}: {answer}"
                );
            }
        }
    }
    // Still serving.
    let dags = rt.block_on(get(&env, "/api/v1/dags"));
    assert!(dags["total_entries"].as_u64().unwrap() >= 1);
}

/// Hostile query strings on every read of both documents: numbers out of range
/// or not numbers, unknown orders and states, patterns of wildcards, NUL. The
/// answer is a success or a client error, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_query_strings_on_every_read_get_answers_below_500() {
    let env = Env::builder().dag("api_dag.toml", DAG).start().await;
    let run = json!({"dag_run_id": "r1"}).to_string();
    ok(
        &env,
        Method::POST,
        "/api/v1/dags/api_dag/dagRuns",
        Some(&run),
        StatusCode::OK,
    )
    .await;
    crate::api::finished(&env, "api_dag", "r1").await;
    const QUERIES: [&str; 12] = [
        "?limit=-1",
        "?limit=abc",
        "?offset=99999999999999999999",
        "?limit=18446744073709551615&offset=18446744073709551615",
        "?order_by=%00",
        "?order_by=-&order_by=--id",
        "?state=nope&state=",
        "?map_index=-99999999999",
        "?interval=1e400",
        "?dag_id_pattern=%25%25%25%5F%5F&tags=&owners=%00",
        "?token=-1&try_number=0",
        "?before=2026-13-45&after=yesterday",
    ];
    let mut answered = 0;
    for prefix in ["/api/v1", "/api/v2"] {
        let doc = get(&env, &format!("{prefix}/openapi.json")).await;
        let mut ids: Vec<(&str, &str)> = crate::openapi::path_ids("1").to_vec();
        ids.extend(v2_ids("echo"));
        for (path, item) in doc["paths"].as_object().unwrap() {
            // The event stream never ends; the other reads answer.
            if item.get("get").is_none() || path.ends_with("/events") {
                continue;
            }
            let uri = crate::openapi::fill(path, &ids).replacen("/api/v1", prefix, 1);
            for q in QUERIES {
                let (status, _, _) = call_raw(&env, Method::GET, &format!("{uri}{q}"), None).await;
                assert!(status.as_u16() < 500, "GET {uri}{q}: {status}");
                answered += 1;
            }
        }
    }
    assert!(answered > 500, "only {answered} reads");
}
