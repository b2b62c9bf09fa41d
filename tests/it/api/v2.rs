//! `/api/v2` beyond what Airflow's clients check: a waiting TaskInstance's
//! dependencies, marking by hand with and without `dry_run`, `/wait`'s stream
//! with a task's result, XCom entries set by hand, and the fields of Aileron's
//! own the web UI reads.

use super::*;
use aileron::scheduler::Update;
use aileron_model::TaskInstanceState;

/// `a` holds the run for a minute unless marked; `b` follows it.
const HELD: &str = r#"
[tasks.a]
operator = "sleep"
params = { seconds = 60 }
[tasks.b]
operator = "echo"
upstream = ["a"]
params = { message = "after" }
"#;

/// Waits (bounded) until `task_id` of the run is running.
async fn running(
    env: &Env,
    updates: &mut tokio::sync::broadcast::Receiver<Update>,
    run: &str,
    task: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ti = env
            .app
            .metastore
            .task_instance("default", "held", run, task, -1)
            .unwrap();
        if ti.is_some_and(|t| t.state == TaskInstanceState::Running) {
            return;
        }
        tokio::time::timeout_at(deadline, updates.recv())
            .await
            .expect("the task never ran")
            .ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_dependencies_and_waiting_in_v2() {
    let env = Env::builder().dag("held.toml", HELD).start().await;
    let mut updates = env.app.scheduler.subscribe();
    trigger(&env, "held", "r").await;
    running(&env, &mut updates, "r", "a").await;
    let tis = "/api/v2/dags/held/dagRuns/r/taskInstances";

    // A reader follows the running try's log as ndjson until the try ends.
    let follower = {
        let app = app(&env);
        tokio::spawn(async move {
            let req = axum::http::Request::builder()
                .uri(format!("{tis}/a/logs/1"))
                .header("authorization", aileron_tests::server::ADMIN_AUTH)
                .header("accept", "application/x-ndjson")
                .body(Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let kind = resp.headers()["content-type"].clone();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, kind, String::from_utf8(body.to_vec()).unwrap())
        })
    };

    // `b` waits on its trigger rule; `a`, running, waits on nothing.
    let deps = get(&env, &format!("{tis}/b/dependencies")).await;
    let names: Vec<&str> = deps["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Trigger Rule"], "{deps}");
    assert_eq!(
        get(&env, &format!("{tis}/a/dependencies")).await["dependencies"],
        json!([])
    );

    // A dry run says what marking would change, and changes nothing.
    let body = r#"{"new_state": "success", "include_downstream": true}"#;
    let would = ok(
        &env,
        Method::PATCH,
        &format!("{tis}/a/dry_run"),
        Some(body),
        StatusCode::OK,
    )
    .await;
    let mut ids: Vec<&str> = would["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"], "{would}");
    assert_eq!(get(&env, &format!("{tis}/a")).await["state"], "running");

    // Marking `a` a success lets `b` run; the run ends with `b`'s result.
    let marked = ok(
        &env,
        Method::PATCH,
        &format!("{tis}/a"),
        Some(r#"{"new_state": "success"}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(marked["task_instances"][0]["state"], "success", "{marked}");
    let (status, kind, lines) = tokio::time::timeout(Duration::from_secs(120), follower)
        .await
        .expect("the followed log ends with its try")
        .unwrap();
    assert_eq!(
        (status, kind.to_str().unwrap()),
        (StatusCode::OK, "application/x-ndjson")
    );
    assert!(
        lines
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .any(|e| e["event"].as_str().unwrap_or("").contains("sleeping")),
        "{lines}"
    );
    assert_eq!(finished(&env, "held", "r").await, DagRunState::Success);
    let (status, headers, body) = call_raw(
        &env,
        Method::GET,
        "/api/v2/dags/held/dagRuns/r/wait?interval=0.1&result=b",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [json!({"state": "success", "results": {"b": "after"}})]
    );

    // XCom set by hand: created once, changed, read, deleted.
    let xcom = format!("{tis}/b/xcomEntries");
    let made = ok(
        &env,
        Method::POST,
        &xcom,
        Some(r#"{"key": "k", "value": {"n": 1}}"#),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(made["value"], json!({"n": 1}));
    let (status, _) = call(
        &env,
        Method::POST,
        &xcom,
        Some(r#"{"key": "k", "value": 2}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    ok(
        &env,
        Method::PATCH,
        &format!("{xcom}/k"),
        Some(r#"{"value": [2]}"#),
        StatusCode::OK,
    )
    .await;
    assert_eq!(get(&env, &format!("{xcom}/k")).await["value"], json!([2]));
    ok(
        &env,
        Method::DELETE,
        &format!("{xcom}/k"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let (status, _) = call(&env, Method::GET, &format!("{xcom}/k"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &env,
        Method::PATCH,
        &format!("{xcom}/k"),
        Some(r#"{"value": 3}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad input: a state that cannot be set by hand, a wait without interval.
    let (status, v) = call(
        &env,
        Method::PATCH,
        &format!("{tis}/a"),
        Some(r#"{"new_state": "running"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = call(&env, Method::GET, "/api/v2/dags/held/dagRuns/r/wait", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["query"]), "{v}");
    for (interval, want) in [
        ("-1", StatusCode::UNPROCESSABLE_ENTITY),
        ("nan", StatusCode::UNPROCESSABLE_ENTITY),
        // Huge is clamped, not an overflow.
        ("1e308", StatusCode::OK),
    ] {
        let uri = format!("/api/v2/dags/held/dagRuns/r/wait?interval={interval}");
        let (status, _, _) = call_raw(&env, Method::GET, &uri, None).await;
        assert_eq!(status, want, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dag_versions_are_numbered_as_the_file_changes() {
    let first = "[tasks.a]\noperator = \"echo\"\nparams = { message = \"one\" }\n";
    let second = "[tasks.a]\noperator = \"echo\"\nparams = { message = \"two\" }\n";
    let env = Env::builder().dag("versioned.toml", first).start().await;
    trigger(&env, "versioned", "on_first").await;
    assert_eq!(
        finished(&env, "versioned", "on_first").await,
        DagRunState::Success
    );
    env.put_dag("versioned.toml", second).await;
    // Put back as it was: the first content keeps its number.
    env.put_dag("versioned.toml", first).await;
    env.put_dag("versioned.toml", second).await;

    let v = get(&env, "/api/v2/dags/versioned/dagVersions").await;
    let numbers: Vec<u64> = v["dag_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["version_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "{v}");
    assert_eq!(v["total_entries"], 2);
    let newest = get(
        &env,
        "/api/v2/dags/versioned/dagVersions?order_by=-version_number&limit=1",
    )
    .await;
    assert_eq!(newest["dag_versions"][0]["version_number"], 2, "{newest}");
    assert_eq!(
        get(&env, "/api/v2/dags/versioned/dagVersions/1").await["dag_id"],
        "versioned"
    );
    let (status, _) = call(
        &env,
        Method::GET,
        "/api/v2/dags/versioned/dagVersions/3",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The run names the version it ran; the source of each version is kept.
    let run = get(&env, "/api/v2/dags/versioned/dagRuns/on_first").await;
    assert_eq!(run["dag_versions"][0]["version_number"], 1, "{run}");
    let old = get(&env, "/api/v2/dagSources/versioned?version_number=1").await;
    assert!(old["content"].as_str().unwrap().contains("one"), "{old}");
    let now = get(&env, "/api/v2/dagSources/versioned").await;
    assert_eq!(now["version_number"], 2);
    assert!(now["content"].as_str().unwrap().contains("two"), "{now}");
    let details = get(&env, "/api/v2/dags/versioned/details").await;
    assert_eq!(
        details["latest_dag_version"]["version_number"], 2,
        "{details}"
    );
}

/// What the web UI reads beyond Airflow's shapes, as Aileron's own fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_carries_the_fields_the_web_ui_reads() {
    let dag = "[tasks.a]\noperator = \"echo\"\nparams = { message = \"hi\" }\n[tasks.b]\noperator = \"noop\"\nupstream = [\"a\"]\n";
    let env = Env::builder().dag("extras.toml", dag).start().await;
    for run in ["r1", "r2", "r3"] {
        trigger(&env, "extras", run).await;
        assert_eq!(finished(&env, "extras", run).await, DagRunState::Success);
    }

    // The DAG list with each DAG's latest runs, oldest first, in v2's shape.
    let list = get(&env, "/api/v2/dags?dag_runs_limit=2").await;
    let runs = &list["dags"][0]["latest_dag_runs"];
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dag_run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r2", "r3"], "{list}");
    assert_eq!(runs[0]["dag_versions"][0]["version_number"], 1, "{runs}");
    assert!(runs[0]["backfill_id"].is_null(), "{runs}");
    // Without it, no such field; more than 25 is refused.
    let plain = get(&env, "/api/v2/dags").await;
    assert!(plain["dags"][0].get("latest_dag_runs").is_none(), "{plain}");
    let (status, body) = call(&env, Method::GET, "/api/v2/dags?dag_runs_limit=26", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("dag_runs_limit"),
        "{body}"
    );

    // A task names its operator as written and the component's digest.
    let task = get(&env, "/api/v2/dags/extras/tasks/a").await;
    assert_eq!(task["operator"], "echo", "{task}");
    assert!(
        task["plugin_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{task}"
    );

    // A TaskInstance and each of its tries carry the digest; a try its usage.
    let ti = get(&env, "/api/v2/dags/extras/dagRuns/r1/taskInstances/a").await;
    assert_eq!(ti["plugin_digest"], task["plugin_digest"], "{ti}");
    assert!(ti["next_try_at"].is_null(), "{ti}");
    let tries = get(&env, "/api/v2/dags/extras/dagRuns/r1/taskInstances/a/tries").await;
    let first = &tries["task_instances"][0];
    assert_eq!(first["plugin_digest"], task["plugin_digest"], "{tries}");
    assert!(first["cpu_seconds"].as_f64().is_some(), "{tries}");
    assert!(first["host_call_seconds"].as_f64().is_some(), "{tries}");
    assert!(first["peak_memory_bytes"].as_u64().unwrap() > 0, "{tries}");

    // An event of the tenant's audit log names the tenant.
    let events = get(&env, "/api/v2/eventLogs?order_by=-id&limit=1").await;
    assert_eq!(events["event_logs"][0]["tenant"], "default", "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_naming_a_missing_pool_is_a_dag_warning_until_the_pool_exists() {
    let gpu = "[tasks.train]\noperator = \"noop\"\npool = \"gpu\"\n";
    let env = Env::builder()
        .dag("gpu.toml", gpu)
        .dag("api_dag.toml", DAG)
        .start()
        .await;
    let v = get(&env, "/api/v2/dagWarnings").await;
    assert_eq!(v["total_entries"], 1, "{v}");
    let w = &v["dag_warnings"][0];
    assert_eq!(
        (w["dag_id"].as_str(), w["warning_type"].as_str()),
        (Some("gpu"), Some("non-existent pool"))
    );
    assert!(w["message"].as_str().unwrap().contains("gpu"), "{w}");
    let other = get(&env, "/api/v2/dagWarnings?warning_type=asset%20conflict").await;
    assert_eq!(other["total_entries"], 0);
    ok(
        &env,
        Method::POST,
        "/api/v2/pools",
        Some(r#"{"name": "gpu", "slots": 1}"#),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(get(&env, "/api/v2/dagWarnings").await["total_entries"], 0);
    assert_eq!(get(&env, "/api/v2/providers").await["providers"], json!([]));
    // A path number that is not one is a validation error located at `path`.
    for uri in [
        "/api/v2/importErrors/abc",
        "/api/v2/dags/gpu/dagVersions/-1",
        "/api/v2/eventLogs/1.5",
    ] {
        let (status, v) = call(&env, Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {v}");
        assert_eq!(v["detail"][0]["loc"], json!(["path"]), "{uri}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_dag_takes_its_history_and_its_file_brings_it_back() {
    let env = Env::builder()
        .dag("held.toml", HELD)
        .dag("api_dag.toml", DAG)
        .start()
        .await;
    let mut updates = env.app.scheduler.subscribe();
    trigger(&env, "api_dag", "old").await;
    assert_eq!(finished(&env, "api_dag", "old").await, DagRunState::Success);
    // Refused while a TaskInstance runs.
    trigger(&env, "held", "r").await;
    running(&env, &mut updates, "r", "a").await;
    let (status, v) = call(&env, Method::DELETE, "/api/v2/dags/held", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");

    let (status, v) = call(&env, Method::DELETE, "/api/v2/dags/api_dag", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Its run went with it; its file, still there, is parsed again at once.
    let (status, _) = call(&env, Method::GET, "/api/v2/dags/api_dag/dagRuns/old", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        env.app
            .metastore
            .dag_runs("default", "api_dag")
            .unwrap()
            .is_empty()
    );
    let (status, _) = call(
        &env,
        Method::DELETE,
        "/api/v2/dags/nothing_by_this_name",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Parsed again, it is back with no runs and a first version.
    env.rescan().await;
    assert_eq!(
        get(&env, "/api/v2/dags/api_dag/dagRuns").await["total_entries"],
        0
    );
    let versions = get(&env, "/api/v2/dags/api_dag/dagVersions").await;
    assert_eq!(
        versions["dag_versions"][0]["version_number"], 1,
        "{versions}"
    );
    let stats = get(&env, "/api/v2/dagStats?dag_ids=api_dag").await;
    assert!(
        stats["dags"][0]["stats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["count"] == 0),
        "{stats}"
    );
}

/// Favorites are each user's own: marked and unmarked, listed by
/// `is_favorite`, unseen by another user, gone with the DAG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_has_their_own_favorite_dags() {
    use base64::Engine;
    let env = Env::builder()
        .dag("liked.toml", "[tasks.a]\noperator = \"noop\"\n")
        .dag("other.toml", "[tasks.a]\noperator = \"noop\"\n")
        .start()
        .await;
    let (s, _) = crate::access::Server::start(&env).await;
    s.admin(
        "default",
        Method::POST,
        "/api/v1/users",
        serde_json::json!({ "username": "fan", "password": "fan password", "roles": { "default": "Viewer" } }),
    )
    .await;
    let fan = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("fan:fan password")
    );
    let as_fan = |method: Method, path: &'static str| s.send(Some(&fan), None, method, path, None);
    let names = |v: &Value| -> Vec<String> {
        v["dags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["dag_id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, _) = as_fan(Method::POST, "/api/v2/dags/liked/favorite").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Again is no change.
    let (status, _) = as_fan(Method::POST, "/api/v2/dags/liked/favorite").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = as_fan(Method::GET, "/api/v2/dags?is_favorite=true").await;
    assert_eq!(
        names(&serde_json::from_str(&body).unwrap()),
        ["liked"],
        "{body}"
    );
    let (_, body) = as_fan(Method::GET, "/api/v2/dags?is_favorite=false").await;
    assert_eq!(
        names(&serde_json::from_str(&body).unwrap()),
        ["other"],
        "{body}"
    );
    let (_, body) = as_fan(Method::GET, "/api/v2/dags/liked/details").await;
    assert!(body.contains("\"is_favorite\":true"), "{body}");

    // The admin, another user, has no favorites.
    let mine = get(&env, "/api/v2/dags?is_favorite=true").await;
    assert!(names(&mine).is_empty(), "{mine}");
    assert_eq!(get(&env, "/api/v2/dags/liked").await["is_favorite"], false);

    // Unmarked once; a second time is a conflict; an unknown DAG is a 404.
    let (status, _) = as_fan(Method::POST, "/api/v2/dags/liked/unfavorite").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = as_fan(Method::POST, "/api/v2/dags/liked/unfavorite").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = as_fan(Method::POST, "/api/v2/dags/nowhere/favorite").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting the DAG takes its favorites: back from its file, it is no one's.
    as_fan(Method::POST, "/api/v2/dags/liked/favorite").await;
    let (status, body) = call(&env, Method::DELETE, "/api/v2/dags/liked", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !env.app
            .metastore
            .is_favorite("default", "liked", "fan")
            .unwrap()
    );
}

/// The scheduler's heartbeat: in both versions' health, and as Airflow's
/// `SchedulerJob` (the only job of a process that is API, DAG processor and
/// scheduler at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_heartbeats_in_health_and_jobs() {
    let env = Env::builder()
        .dag("beat.toml", "[tasks.a]\noperator = \"noop\"\n")
        .start()
        .await;
    trigger(&env, "beat", "r").await;
    assert_eq!(finished(&env, "beat", "r").await, DagRunState::Success);
    let recent = |v: &Value| {
        let t: jiff::Timestamp = v.as_str().unwrap().parse().unwrap();
        jiff::Timestamp::now().duration_since(t).unsigned_abs() < Duration::from_secs(30)
    };

    let health = get(&env, "/api/v2/monitor/health").await;
    assert_eq!(health["scheduler"]["status"], "healthy", "{health}");
    assert!(
        recent(&health["scheduler"]["latest_scheduler_heartbeat"]),
        "{health}"
    );
    let v1 = get(&env, "/api/v1/health").await;
    assert_eq!(v1["scheduler"]["status"], "healthy", "{v1}");
    assert!(
        recent(&v1["scheduler"]["latest_scheduler_heartbeat"]),
        "{v1}"
    );

    let jobs = get(&env, "/api/v2/jobs").await;
    assert_eq!(jobs["total_entries"], 1, "{jobs}");
    let job = &jobs["jobs"][0];
    assert_eq!(job["job_type"], "SchedulerJob", "{job}");
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["executor_class"], "LocalExecutor", "{job}");
    assert!(recent(&job["latest_heartbeat"]), "{job}");
    // Airflow's filters.
    for (query, n) in [
        ("?job_type=SchedulerJob&is_alive=true", 1),
        ("?job_type=TriggererJob", 0),
        ("?is_alive=false", 0),
        ("?start_date_gte=2999-01-01T00:00:00Z", 0),
        ("?end_date_lte=2999-01-01T00:00:00Z", 0),
        ("?order_by=-latest_heartbeat&limit=1", 1),
    ] {
        let page = get(&env, &format!("/api/v2/jobs{query}")).await;
        assert_eq!(page["jobs"].as_array().unwrap().len(), n, "{query}: {page}");
    }
    let (status, body) = call(&env, Method::GET, "/api/v2/jobs?order_by=bogus", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// `/config`: what the process runs with, by Airflow's section and option
/// names, as JSON or `airflow.cfg` text; secrets never in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_is_readable_and_holds_no_secret() {
    let env = Env::builder().start().await;
    let all = get(&env, "/api/v2/config").await;
    let names: Vec<&str> = all["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"core") && names.contains(&"aileron"),
        "{all}"
    );
    let core = get(&env, "/api/v2/config?section=core").await;
    assert_eq!(core["sections"].as_array().unwrap().len(), 1, "{core}");
    let executor = get(&env, "/api/v2/config/section/core/option/executor").await;
    assert_eq!(
        executor["sections"][0]["options"][0],
        serde_json::json!({ "key": "executor", "value": "LocalExecutor" })
    );
    for missing in [
        "/api/v2/config?section=nowhere",
        "/api/v2/config/section/core/option/nothing",
        "/api/v2/config/section/nowhere/option/executor",
    ] {
        let (status, body) = call(&env, Method::GET, missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
    }

    // As `airflow.cfg` text; an Accept it cannot answer is a 406.
    async fn with_accept(env: &Env, accept: &str) -> (StatusCode, String) {
        let req = axum::http::Request::builder()
            .uri("/api/v2/config")
            .header("authorization", aileron_tests::server::ADMIN_AUTH)
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let resp = app(env).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
    let (status, cfg) = with_accept(&env, "text/plain").await;
    assert_eq!(status, StatusCode::OK, "{cfg}");
    assert!(
        cfg.starts_with("[core]\n") && cfg.contains("\nparallelism = "),
        "{cfg}"
    );
    let (status, _) = with_accept(&env, "application/xml").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}
