//! `db clean` and the history retention setting: finished runs older than a
//! cut-off go with their TaskInstances, XCom and logs, through the running server,
//! on the simulated clock.

use crate::api::{DAG, fails, finished, get, ok, trigger};
use aileron_model::TenantId;
use aileron_model::clock::Clock;
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use jiff::SignedDuration;
use serde_json::json;
use std::time::Duration;

async fn clean(env: &Env, body: serde_json::Value) -> serde_json::Value {
    ok(
        env,
        Method::POST,
        "/api/v1/dbClean",
        Some(&body.to_string()),
        StatusCode::OK,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_clean_deletes_old_finished_runs_with_what_they_hold() {
    let env = Env::builder().dag("api_dag.toml", DAG).start().await;
    for run in ["old1", "old2"] {
        trigger(&env, "api_dag", run).await;
        finished(&env, "api_dag", run).await;
    }
    let old_ti = env
        .app
        .metastore
        .task_instance(TenantId::DEFAULT, "api_dag", "old1", "a", -1)
        .unwrap()
        .expect("old1's `a` exists");
    assert!(!env.log(&old_ti, 1).is_empty(), "`a` logged something");
    env.clock
        .set(env.clock.now() + SignedDuration::from_hours(31 * 24));
    trigger(&env, "api_dag", "new").await;
    finished(&env, "api_dag", "new").await;

    // A dry run counts and deletes nothing.
    let v = clean(&env, json!({ "older_than": "30d", "dry_run": true })).await;
    assert_eq!(
        (v["dag_runs"].as_u64(), v["task_instances"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(v["dry_run"], true);
    assert_eq!(
        get(&env, "/api/v1/dags/api_dag/dagRuns").await["total_entries"],
        3
    );

    let v = clean(&env, json!({ "older_than": "30d" })).await;
    assert_eq!(
        (v["dag_runs"].as_u64(), v["task_instances"].as_u64()),
        (Some(2), Some(4))
    );
    let runs = get(&env, "/api/v1/dags/api_dag/dagRuns").await;
    assert_eq!(runs["total_entries"], 1);
    assert_eq!(runs["dag_runs"][0]["dag_run_id"], "new");
    fails(
        &env,
        Method::GET,
        "/api/v1/dags/api_dag/dagRuns/old1",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let m = &env.app.metastore;
    assert!(
        m.task_instances(TenantId::DEFAULT, "api_dag", "old1")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        m.log(&old_ti, 1).unwrap(),
        None,
        "the log went with its run"
    );
    assert!(
        m.xcom_entries(TenantId::DEFAULT, "api_dag", "old1", "a", -1)
            .unwrap()
            .is_empty()
    );
    // The counts /metrics and the run pages use followed.
    let metrics = crate::api::call_raw(&env, Method::GET, "/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.2).into_owned();
    for line in [
        "aileron_dag_runs{state=\"success\"} 1",
        "aileron_task_instances{state=\"success\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }

    // Nothing is left to clean; a timestamp works as well as an age.
    let v = clean(&env, json!({ "clean_before_timestamp": "2020-01-01" })).await;
    assert_eq!(v["dag_runs"], 0);
    let v = clean(&env, json!({ "older_than": "30d" })).await;
    assert_eq!(v["dag_runs"], 0);

    for bad in [
        json!({}),
        json!({ "older_than": "30d", "clean_before_timestamp": "2020-01-01" }),
        json!({ "older_than": "a month" }),
        json!({ "clean_before_timestamp": "yesterday" }),
        json!({ "older_than": "30d", "colour": "red" }),
    ] {
        let status = if bad.get("colour").is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        fails(
            &env,
            Method::POST,
            "/api/v1/dbClean",
            Some(&bad.to_string()),
            status,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_setting_cleans_every_hour() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .retention(Duration::from_secs(7 * 24 * 3600))
        .start()
        .await;
    trigger(&env, "api_dag", "old").await;
    finished(&env, "api_dag", "old").await;
    // Six days on, the run is younger than the retention: kept.
    env.clock
        .set(env.clock.now() + SignedDuration::from_hours(6 * 24));
    env.app.scheduler.sync().await.unwrap();
    env.app.scheduler.sync().await.unwrap();
    assert_eq!(
        get(&env, "/api/v1/dags/api_dag/dagRuns").await["total_entries"],
        1
    );
    // Eight days on it is older, and the hourly check deletes it without asking.
    env.clock
        .set(env.clock.now() + SignedDuration::from_hours(2 * 24));
    env.app.scheduler.sync().await.unwrap();
    env.app.scheduler.sync().await.unwrap();
    assert_eq!(
        get(&env, "/api/v1/dags/api_dag/dagRuns").await["total_entries"],
        0
    );
}
