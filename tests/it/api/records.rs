//! Variables, connections and pools: create, read, update, delete, and what
//! never leaves the server (connection passwords).

use super::*;

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
            "extra": "{\"sslmode\": \"require\"}", "exposed": false,
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

    // A new connection is host-held: operators get everything but the password.
    let seen = |run_id: &'static str| {
        let env = &env;
        async move {
            trigger(env, "user", run_id).await;
            finished(env, "user", run_id).await;
            let v = env
                .app
                .metastore
                .xcom("default", "user", run_id, "use", "return_value")
                .unwrap();
            serde_json::from_str::<Value>(&v[0].1).unwrap()
        }
    };
    let got = seen("r1").await;
    assert_eq!(got["connection"]["password"], Value::Null, "{got}");
    assert_eq!(got["connection"]["host_held"], true, "{got}");
    assert_eq!(got["connection"]["host"], "db2.internal");
    assert!(!got.to_string().contains(SECRET), "{got}");

    // Marked exposed, it is handed over whole, password included.
    let (s, _, bytes) = call_raw(&env, Method::PATCH, db, Some(r#"{"exposed": true}"#)).await;
    assert_eq!(s, StatusCode::OK);
    no_secret(&bytes);
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap()["exposed"],
        true
    );
    let got = seen("r2").await;
    assert_eq!(got["connection"]["password"], SECRET, "{got}");

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
