//! DAGs, DagRuns and TaskInstances through the API: lists, paging and ordering,
//! changes made by hand (state, clear, mark, delete) and bad requests.

use super::*;

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
    // Airflow 2's details and tasks views of the same DAG.
    let v = get(&env, "/api/v1/dags/api_dag/details").await;
    assert_eq!(
        (v["dag_id"].clone(), v["is_subdag"].clone()),
        (json!("api_dag"), json!(false))
    );
    assert!(
        v["file_token"].is_string() && v["params"].is_object(),
        "{v}"
    );
    let v = get(&env, "/api/v1/dags/api_dag/tasks?order_by=-task_id").await;
    let ids: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "a"]);
    let a = &v["tasks"][1];
    assert_eq!(a["downstream_task_ids"], json!(["b"]));
    assert_eq!(a["retry_delay"]["__type"], "TimeDelta");
    assert_eq!(a["class_ref"]["module_path"], "aileron.operators.echo");
    assert_eq!(
        get(&env, "/api/v1/dags/api_dag/tasks/b").await["task_id"],
        "b"
    );
    ok(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/tasks/nope",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    ok(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/tasks?order_by=colour",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // `tags` matches a DAG with any of them, as in Airflow.
    assert_eq!(
        get(&env, "/api/v1/dags?tags=other&tags=api").await["total_entries"],
        1
    );
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
