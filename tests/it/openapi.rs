//! `/api/v1/openapi.json` describes what the API really answers. Every GET
//! operation in the document is called on a populated Aileron and its answer
//! validated against the documented schema; every operation is called with ids
//! that do not exist and a malformed body, and the error status it answers must be
//! documented, with a body of the documented shape. Schemas are made strict for the
//! check (no properties beyond the documented ones), so a field served but not
//! documented fails too.

use crate::api::{DAG, FLAKY, app, call_raw, get, ok};
use crate::backfill_api::{DAILY, wait_all_runs, wait_backfill};
use aileron_model::params_schema::validate;
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

/// Inlines `$ref`s, merges `allOf` object parts (what `#[serde(flatten)]` produces)
/// and forbids undocumented properties, so the subset validator can check a whole
/// answer against it. `workers_api.rs` checks a populated worker list with it too.
pub(crate) fn strict(doc: &Value, schema: &Value, depth: usize) -> Value {
    assert!(depth < 32, "schema nesting too deep (a recursive $ref?)");
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    if let Some(Value::String(r)) = map.get("$ref") {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "$ref {r} points nowhere");
        return strict(doc, target, depth + 1);
    }
    let mut out = Map::new();
    for (k, v) in map {
        let v = match k.as_str() {
            "properties" => Value::Object(
                v.as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, s)| (name.clone(), strict(doc, s, depth + 1)))
                    .collect(),
            ),
            "items" | "additionalProperties" if v.is_object() => strict(doc, v, depth + 1),
            "oneOf" | "anyOf" | "allOf" => Value::Array(
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| strict(doc, s, depth + 1))
                    .collect(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    // allOf of plain objects: one object with every part's properties, so the
    // "nothing undocumented" rule sees them all at once.
    if let Some(Value::Array(parts)) = out.get("allOf").cloned()
        && parts.iter().all(|p| p.get("properties").is_some())
    {
        out.remove("allOf");
        let mut props = Map::new();
        let mut required = Vec::new();
        for p in parts {
            props.extend(p["properties"].as_object().unwrap().clone());
            required.extend(p["required"].as_array().cloned().unwrap_or_default());
        }
        out.insert("type".into(), json!("object"));
        out.insert("properties".into(), Value::Object(props));
        out.insert("required".into(), Value::Array(required));
    }
    if out.contains_key("properties") && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// The JSON schema documented for `status` of an operation.
fn response_schema(doc: &Value, op: &Value, status: u16, what: &str) -> Value {
    let response = &op["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{what} answered {status}, which the document does not list (it lists {:?})",
        op["responses"]
            .as_object()
            .map(|r| r.keys().collect::<Vec<_>>())
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{what}: no JSON schema for {status}");
    strict(doc, schema, 0)
}

/// Calls `uri` and checks the answer against the operation's documented schema for
/// the status it got; the status must be `want` if given, and documented anyway.
async fn check(
    env: &Env,
    doc: &Value,
    (method, path): (&Method, &str),
    uri: &str,
    body: Option<&str>,
    want: Option<StatusCode>,
) -> Value {
    let op = &doc["paths"][path][method.as_str().to_lowercase()];
    assert!(!op.is_null(), "{method} {path} is not in the document");
    let what = format!("{method} {uri}");
    let (status, _, bytes) = call_raw(env, method.clone(), uri, body).await;
    if let Some(want) = want {
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&bytes));
    }
    if status == StatusCode::NO_CONTENT {
        assert!(
            !op["responses"]["204"].is_null(),
            "{what}: 204 undocumented"
        );
        return Value::Null;
    }
    let schema = response_schema(doc, op, status.as_u16(), &what);
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{what}: not JSON: {}", String::from_utf8_lossy(&bytes)));
    if let Err(errors) = validate(&schema, &value) {
        let errors = errors.join("\n  ");
        panic!(
            "{what} ({status}) does not match its documented schema:\n  {errors}\n\
             answer: {value:#}\nschema: {schema:#}"
        );
    }
    value
}

/// A value for every path parameter of the API: the objects the tests create
/// (DAG `api_dag`, run `r1`, task `a`, variable `v`, connection `c`, pool `p`),
/// the `default` tenant, the `admin` user and the first audit record.
pub(crate) fn path_ids(backfill_id: &str) -> [(&'static str, &str); 14] {
    [
        ("tenant", "default"),
        ("dag_id", "api_dag"),
        ("dag_run_id", "r1"),
        ("task_id", "a"),
        ("try_number", "1"),
        ("xcom_key", "return_value"),
        ("variable_key", "v"),
        ("connection_id", "c"),
        ("pool_name", "p"),
        ("backfill_id", backfill_id),
        ("tenant_name", "default"),
        ("username", "admin"),
        ("token_id", "0000000000000000"),
        ("event_log_id", "1"),
    ]
}

/// `path` with its `{param}`s replaced from `ids`.
pub(crate) fn fill(path: &str, ids: &[(&str, &str)]) -> String {
    let mut uri = format!("/api/v1{path}");
    for (name, value) in ids {
        uri = uri.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !uri.contains('{'),
        "no test value for a parameter of {path}"
    );
    uri
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_openapi_document() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .dag("flaky.toml", FLAKY)
        .dag("daily.toml", DAILY)
        .dag("broken.toml", "x = [")
        .start()
        .await;
    let _ = app(&env);
    for (dag, run) in [("api_dag", "r1"), ("flaky", "f1"), ("daily", "d1")] {
        let body = json!({ "dag_run_id": run, "conf": {"n": 1} }).to_string();
        let uri = format!("/api/v1/dags/{dag}/dagRuns");
        ok(&env, Method::POST, &uri, Some(&body), StatusCode::OK).await;
        let mut updates = env.app.scheduler.subscribe();
        env.wait_run(&mut updates, dag, run).await;
    }
    for (uri, body) in [
        ("/api/v1/variables", r#"{"key": "v", "value": "x"}"#),
        (
            "/api/v1/connections",
            r#"{"conn_id": "c", "conn_type": "http", "host": "h", "password": "p"}"#,
        ),
        ("/api/v1/pools", r#"{"name": "p", "slots": 2}"#),
    ] {
        ok(&env, Method::POST, uri, Some(body), StatusCode::OK).await;
    }
    // A finished backfill, and the DAG-level callback of `d1` finished too.
    let body = r#"{"dag_id": "daily", "from_date": "2025-12-01", "to_date": "2025-12-02"}"#;
    let backfill = ok(
        &env,
        Method::POST,
        "/api/v1/backfills",
        Some(body),
        StatusCode::OK,
    )
    .await;
    let backfill_id = backfill["id"].to_string();
    wait_backfill(&env, backfill["id"].as_u64().unwrap()).await;
    let callbacks = "/api/v1/dags/daily/dagRuns/d1/callbacks";
    let mut waited = 0;
    while get(&env, callbacks).await["callbacks"][0]["state"] != "success" {
        assert!(waited < 2400, "the callback of d1 did not finish");
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (s, headers, bytes) = call_raw(&env, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let paths = doc["paths"].as_object().unwrap().clone();
    assert!(paths.len() >= 20, "only {} paths documented", paths.len());
    // What OpenAPI 3.1 requires of operations and responses, and what generated
    // clients rely on: unique operation ids, every path parameter declared.
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in &paths {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no operationId"));
            assert!(
                operation_ids.insert(id.to_owned()),
                "{what}: operationId {id} used twice"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{what}: no tag"
            );
            for (status, response) in op["responses"].as_object().unwrap() {
                let described = response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty());
                assert!(described, "{what}: response {status} has no description");
            }
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for segment in path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        declared.contains(&name),
                        "{what}: path parameter {name} undeclared"
                    );
                }
            }
        }
    }

    // Every GET answers 200 with the documented shape.
    // Every operation but the public health check states the credentials it
    // takes and documents 401; the schemes are in the components.
    for scheme in ["bearer", "basic", "session"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    for (path, item) in &paths {
        for (method, op) in item.as_object().unwrap() {
            let public = path == "/health";
            assert_eq!(op["security"].is_array(), !public, "{method} {path}");
            assert_eq!(
                op["responses"]["401"].is_object(),
                !public,
                "{method} {path}"
            );
        }
    }
    let ids = path_ids(&backfill_id);
    for (path, item) in &paths {
        let Some(op) = item.get("get") else { continue };
        if op["responses"]["200"]["content"]["text/event-stream"].is_object() {
            continue; // The event stream never ends; tests/it/api.rs reads it.
        }
        let uri = fill(path, &ids);
        check(
            &env,
            &doc,
            (&Method::GET, path),
            &uri,
            None,
            Some(StatusCode::OK),
        )
        .await;
    }
    // More of the same operations: wildcards, failures and tries, nulls.
    let tis = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances";
    let ti = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}";
    for (path, uri) in [
        (
            "/dags/{dag_id}/dagRuns",
            "/api/v1/dags/~/dagRuns?order_by=-start_date",
        ),
        (tis, "/api/v1/dags/~/dagRuns/~/taskInstances"),
        (
            tis,
            "/api/v1/dags/flaky/dagRuns/~/taskInstances?state=failed,upstream_failed",
        ),
        (ti, "/api/v1/dags/flaky/dagRuns/f1/taskInstances/b"),
        (ti, "/api/v1/dags/flaky/dagRuns/f1/taskInstances/c"),
        (
            &format!("{ti}/tries"),
            "/api/v1/dags/flaky/dagRuns/f1/taskInstances/b/tries",
        ),
        ("/pools", "/api/v1/pools"),
        (
            "/dags/{dag_id}/dagRuns/{dag_run_id}/callbacks",
            "/api/v1/dags/daily/dagRuns/d1/callbacks",
        ),
        (
            "/dags/{dag_id}/dagRuns",
            "/api/v1/dags/daily/dagRuns?order_by=-logical_date",
        ),
        ("/backfills", "/api/v1/backfills?dag_id=daily&order_by=-id"),
        // Standalone: no workers (workers_api.rs checks a populated list).
        ("/workers", "/api/v1/workers?limit=10&offset=0"),
    ] {
        check(
            &env,
            &doc,
            (&Method::GET, path),
            uri,
            None,
            Some(StatusCode::OK),
        )
        .await;
    }

    // Every operation, with ids that do not exist and then a malformed body,
    // answers a documented error.
    let missing = [
        ("dag_id", "nope"),
        ("dag_run_id", "nope"),
        ("task_id", "nope"),
        ("try_number", "9"),
        ("xcom_key", "nope"),
        ("variable_key", "nope"),
        ("connection_id", "nope"),
        ("pool_name", "nope"),
        ("backfill_id", "999999"),
        ("tenant_name", "nope"),
        ("tenant", "nope"),
        ("username", "nope"),
        ("token_id", "0000000000000000"),
        ("event_log_id", "999999"),
        ("plugin_name", "nope"),
        ("version", "1.0.0"),
    ];
    for (path, item) in &paths {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if op["responses"]["200"]["content"]["text/event-stream"].is_object() {
                continue;
            }
            let has_body = !op["requestBody"].is_null();
            let uri = fill(path, &missing);
            let body = has_body.then_some("{}");
            check(&env, &doc, (&method, path), &uri, body, None).await;
            if has_body {
                let want = Some(StatusCode::BAD_REQUEST);
                check(&env, &doc, (&method, path), &uri, Some("{"), want).await;
            }
            let pages = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "limit"));
            if pages {
                let uri = format!("{}?limit=-1", fill(path, &ids));
                let want = Some(StatusCode::BAD_REQUEST);
                check(&env, &doc, (&method, path), &uri, None, want).await;
            }
        }
    }

    // The changes answer their documented shapes too.
    let run = "/dags/{dag_id}/dagRuns/{dag_run_id}";
    let bf = "/backfills/{backfill_id}";
    let this_backfill = format!("/api/v1/backfills/{backfill_id}");
    let (pause, unpause, cancel) = (
        format!("{this_backfill}/pause"),
        format!("{this_backfill}/unpause"),
        format!("{this_backfill}/cancel"),
    );
    // The second backfill gets the next id.
    let next_backfill = format!("/api/v1/backfills/{}", backfill["id"].as_u64().unwrap() + 1);
    let (next_pause, next_unpause, next_cancel) = (
        format!("{next_backfill}/pause"),
        format!("{next_backfill}/unpause"),
        format!("{next_backfill}/cancel"),
    );
    let changes: &[(Method, &str, &str, &str, StatusCode)] = &[
        (
            Method::POST,
            "/backfills/dry_run",
            "/api/v1/backfills/dry_run",
            r#"{"dag_id": "daily", "from_date": "2025-11-30", "to_date": "2025-12-01", "reprocess_behavior": "all"}"#,
            StatusCode::OK,
        ),
        (
            Method::PUT,
            &format!("{bf}/pause"),
            &pause,
            "",
            StatusCode::CONFLICT,
        ),
        (
            Method::PUT,
            &format!("{bf}/unpause"),
            &unpause,
            "",
            StatusCode::CONFLICT,
        ),
        (
            Method::PUT,
            &format!("{bf}/cancel"),
            &cancel,
            "",
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/backfills",
            "/api/v1/backfills",
            r#"{"dag_id": "daily", "from_date": "2025-11-01", "to_date": "2025-11-03", "max_active_runs": 1}"#,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/backfills",
            "/api/v1/backfills",
            r#"{"dag_id": "daily", "from_date": "2025-11-01", "to_date": "2025-11-03"}"#,
            StatusCode::CONFLICT,
        ),
        (
            Method::PUT,
            &format!("{bf}/pause"),
            &next_pause,
            "",
            StatusCode::OK,
        ),
        (
            Method::PUT,
            &format!("{bf}/unpause"),
            &next_unpause,
            "",
            StatusCode::OK,
        ),
        (
            Method::PUT,
            &format!("{bf}/cancel"),
            &next_cancel,
            "",
            StatusCode::OK,
        ),
        (Method::GET, bf, &next_backfill, "", StatusCode::OK),
        (
            Method::PATCH,
            "/dags/{dag_id}",
            "/api/v1/dags/api_dag",
            r#"{"is_paused": false}"#,
            StatusCode::OK,
        ),
        (
            Method::POST,
            &format!("{run}/clear"),
            "/api/v1/dags/flaky/dagRuns/f1/clear",
            "{}",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/dags/{dag_id}/clearTaskInstances",
            "/api/v1/dags/flaky/clearTaskInstances",
            r#"{"dag_run_id": "f1", "dry_run": false}"#,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/dags/{dag_id}/dagRuns",
            "/api/v1/dags/api_dag/dagRuns",
            r#"{"dag_run_id": "r1"}"#,
            StatusCode::CONFLICT,
        ),
        (
            Method::PATCH,
            ti,
            "/api/v1/dags/api_dag/dagRuns/r1/taskInstances/b",
            r#"{"new_state": "skipped"}"#,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            run,
            "/api/v1/dags/api_dag/dagRuns/r1",
            r#"{"state": "failed"}"#,
            StatusCode::OK,
        ),
        (
            Method::POST,
            &format!("{run}/clear"),
            "/api/v1/dags/api_dag/dagRuns/r1/clear",
            r#"{"dry_run": false}"#,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/variables/{variable_key}",
            "/api/v1/variables/v",
            r#"{"value": "y"}"#,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/variables",
            "/api/v1/variables",
            r#"{"key": "v", "value": "y"}"#,
            StatusCode::CONFLICT,
        ),
        (
            Method::PATCH,
            "/connections/{connection_id}",
            "/api/v1/connections/c",
            r#"{"port": 8080}"#,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/pools/{pool_name}",
            "/api/v1/pools/p",
            r#"{"slots": 4}"#,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/pools/{pool_name}",
            "/api/v1/pools/default_pool",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/pools/{pool_name}",
            "/api/v1/pools/p",
            "",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::DELETE,
            "/connections/{connection_id}",
            "/api/v1/connections/c",
            "",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::DELETE,
            "/variables/{variable_key}",
            "/api/v1/variables/v",
            "",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::DELETE,
            run,
            "/api/v1/dags/flaky/dagRuns/f1",
            "",
            StatusCode::NO_CONTENT,
        ),
    ];
    for (method, path, uri, body, want) in changes {
        let body = (!body.is_empty()).then_some(*body);
        check(&env, &doc, (method, path), uri, body, Some(*want)).await;
    }
    // The cleared run runs again; let it (and the cancelled backfill's running
    // run) finish before the test's home goes.
    let mut updates = env.app.scheduler.subscribe();
    env.wait_run(&mut updates, "api_dag", "r1").await;
    wait_all_runs(&env, "daily").await;
}

#[test]
fn strict_schemas_refuse_undocumented_fields() {
    let doc = json!({"components": {"schemas": {
        "Base": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
        "Wide": {"allOf": [
            {"$ref": "#/components/schemas/Base"},
            {"type": "object", "properties": {"b": {"type": ["string", "null"]}}}
        ]}
    }}});
    let wide = strict(&doc, &json!({"$ref": "#/components/schemas/Wide"}), 0);
    assert!(validate(&wide, &json!({"a": 1, "b": null})).is_ok());
    assert!(validate(&wide, &json!({"a": 1, "b": "x", "c": 0})).is_err());
    assert!(validate(&wide, &json!({"b": "x"})).is_err());
    let base = strict(&doc, &json!({"$ref": "#/components/schemas/Base"}), 0);
    assert!(validate(&base, &json!({"a": 1, "b": "x"})).is_err());
}
