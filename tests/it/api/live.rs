//! What the API streams and exports: the server-sent event stream and
//! `/metrics`.

use super::*;

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
        .header("authorization", aileron_tests::server::ADMIN_AUTH)
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
