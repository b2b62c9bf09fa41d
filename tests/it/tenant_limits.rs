//! A tenant's share of the executor, set through the API: `max_running` holds
//! its TaskInstances back (they stay `scheduled`) while another tenant's run,
//! and lifting it lets them go; the weight is stored and shown. (How slots are
//! divided between tenants is the planner's, tested in
//! `scheduler/planner/tests.rs`.)

use crate::api::{fails, get, ok};
use aileron_model::TaskInstanceState as S;
use aileron_tests::Env;
use axum::http::{Method, StatusCode};

const DAG: &str = r#"
[tasks.a]
operator = "echo"
params = { message = "hi" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_running_holds_a_tenant_back_and_leaves_the_others_alone() {
    let env = Env::builder()
        .dag("team_a/work.toml", DAG)
        .dag("team_b/work.toml", DAG)
        .start()
        .await;
    let env = &env;
    let patch = |body: &'static str| async move {
        ok(
            env,
            Method::PATCH,
            "/api/v1/tenants/team_b",
            Some(body),
            StatusCode::OK,
        )
        .await
    };
    let tenant = patch(r#"{"max_running": 0, "weight": 3}"#).await;
    assert_eq!(
        (tenant["max_running"].as_u64(), tenant["weight"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(get(env, "/api/v1/tenants/team_b").await["weight"], 3);

    let scheduler = &env.app.scheduler;
    let mut updates = scheduler.subscribe();
    for tenant in ["team_a", "team_b"] {
        scheduler
            .trigger(tenant, "work", Some("r1".into()), None, Default::default())
            .await
            .unwrap();
    }
    // team_a's run finishes while team_b's task waits, scheduled.
    env.wait_run_in(&mut updates, "team_a", "work", "r1").await;
    scheduler.sync().await.unwrap();
    let waiting = env
        .app
        .metastore
        .task_instance("team_b", "work", "r1", "a", -1)
        .unwrap()
        .unwrap();
    assert_eq!(waiting.state, S::Scheduled);

    // Lifted: it runs.
    let tenant = patch(r#"{"max_running": null}"#).await;
    assert!(tenant["max_running"].is_null(), "{tenant}");
    env.wait_run_in(&mut updates, "team_b", "work", "r1").await;

    // Limits out of range are refused.
    let detail = fails(
        env,
        Method::PATCH,
        "/api/v1/tenants/team_b",
        Some(r#"{"weight": 0}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(detail.contains("weight"), "{detail}");
}
