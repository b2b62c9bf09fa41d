//! A tenant's quotas, set through the API and metered inside the sandbox: a
//! spent CPU budget holds its new tries back (`scheduled`, the reason in its
//! usage) until the rolling hour frees it (simulated clock), while another
//! tenant's work goes on; `max_memory` fails the try that grows past it with the
//! reason, counted as a refused allocation; usage shows per tenant (API and
//! `/metrics`) and per try.

use crate::api::{call_raw, get, get_in, ok};
use aileron_model::TaskInstanceState as S;
use aileron_model::clock::Clock;
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use jiff::SignedDuration;

const SPIN: &str = r#"
[tasks.spin]
operator = "testkit"
params = { mode = "busy_loop" }
execution_timeout = "3s"
"#;

const QUICK: &str = r#"
[tasks.a]
operator = "echo"
params = { message = "hi" }
"#;

const BOMB: &str = r#"
[tasks.bomb]
operator = "testkit"
params = { mode = "memory_bomb" }
memory_limit = "64MiB"
"#;

async fn patch(env: &Env, tenant: &str, body: &str) -> serde_json::Value {
    ok(
        env,
        Method::PATCH,
        &format!("/api/v1/tenants/{tenant}"),
        Some(body),
        StatusCode::OK,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_cpu_budget_holds_new_tries_until_the_hour_rolls() {
    let env = Env::builder()
        .dag("team_a/spin.toml", SPIN)
        .dag("team_a/quick.toml", QUICK)
        .dag("team_b/quick.toml", QUICK)
        .start()
        .await;
    let tenant = patch(&env, "team_a", r#"{"cpu_per_hour": 1}"#).await;
    assert_eq!(tenant["cpu_per_hour"], 1);
    let scheduler = &env.app.scheduler;
    let mut updates = scheduler.subscribe();

    // The busy loop spins through its 3 s timeout: metered at about 3 CPU
    // seconds, three times the budget.
    scheduler
        .trigger(
            "team_a",
            "spin",
            Some("r1".into()),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    env.wait_run_in(&mut updates, "team_a", "spin", "r1").await;
    let spin = env
        .app
        .metastore
        .task_instance("team_a", "spin", "r1", "spin", -1)
        .unwrap()
        .unwrap();
    let usage = spin.tries[0].usage.expect("the try's usage is stored");
    assert!(usage.cpu_seconds > 1.0, "{usage:?}");
    assert!(usage.peak_memory_bytes > 0, "{usage:?}");

    // team_a's next try waits; team_b's runs.
    for tenant in ["team_a", "team_b"] {
        scheduler
            .trigger(tenant, "quick", Some("r2".into()), None, Default::default())
            .await
            .unwrap();
    }
    env.wait_run_in(&mut updates, "team_b", "quick", "r2").await;
    scheduler.sync().await.unwrap();
    let waiting = env
        .app
        .metastore
        .task_instance("team_a", "quick", "r2", "a", -1)
        .unwrap()
        .unwrap();
    assert_eq!(waiting.state, S::Scheduled);
    let usage = get_in(&env, "team_a", "/api/v1/tenants/team_a/usage").await;
    assert_eq!(usage["waiting"], 1, "{usage}");
    assert_eq!(usage["tries_total"], 1, "{usage}");
    let reason = usage["held_back_reason"].as_str().unwrap();
    assert!(reason.contains("cpu_per_hour"), "{reason}");
    assert!(usage["cpu_seconds_last_hour"].as_f64().unwrap() > 1.0);
    assert_eq!(usage["minutes"].as_array().unwrap().len(), 1, "{usage}");
    let b = get_in(&env, "team_b", "/api/v1/tenants/team_b/usage").await;
    assert_eq!(b["held_back_reason"], serde_json::Value::Null, "{b}");
    assert_eq!(b["tries_total"], 1, "{b}");

    let (status, _, metrics) = call_raw(&env, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).unwrap();
    for line in [
        "aileron_tenant_held_back{tenant=\"team_a\"} 1",
        "aileron_tenant_held_back{tenant=\"team_b\"} 0",
        "aileron_tenant_waiting{tenant=\"team_a\"} 1",
        "aileron_tenant_tries_total{tenant=\"team_b\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // An hour on, the spin's minute has left the window: the try runs.
    env.clock
        .set(env.clock.now() + SignedDuration::from_mins(61));
    scheduler.sync().await.unwrap();
    env.wait_run_in(&mut updates, "team_a", "quick", "r2").await;
    let usage = get_in(&env, "team_a", "/api/v1/tenants/team_a/usage").await;
    assert_eq!(
        usage["held_back_reason"],
        serde_json::Value::Null,
        "{usage}"
    );
    assert_eq!(usage["tries_total"], 2, "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_memory_fails_the_try_that_grows_past_it_and_no_other() {
    let env = Env::builder()
        .dag("team_a/bomb.toml", BOMB)
        .dag("team_b/bomb.toml", BOMB)
        .start()
        .await;
    patch(&env, "team_a", r#"{"max_memory": 16777216}"#).await;
    let scheduler = &env.app.scheduler;
    let mut updates = scheduler.subscribe();
    for tenant in ["team_a", "team_b"] {
        scheduler
            .trigger(tenant, "bomb", Some("r1".into()), None, Default::default())
            .await
            .unwrap();
    }
    for tenant in ["team_a", "team_b"] {
        env.wait_run_in(&mut updates, tenant, "bomb", "r1").await;
    }
    let reason = |tenant: &str| {
        let ti = env
            .app
            .metastore
            .task_instance(tenant, "bomb", "r1", "bomb", -1)
            .unwrap()
            .unwrap();
        ti.tries[0].error.clone().unwrap()
    };
    // team_a's bomb hits the tenant's 16 MiB; team_b's, without a quota, its
    // own 64 MiB memory_limit.
    assert!(
        reason("team_a").starts_with("tenant memory quota (max_memory) of 16 MiB exceeded"),
        "{}",
        reason("team_a")
    );
    assert_eq!(
        reason("team_b"),
        "memory limit of 67108864 bytes (64 MiB) exceeded"
    );
    let usage = get_in(&env, "team_a", "/api/v1/tenants/team_a/usage").await;
    assert_eq!(usage["refused_allocations_total"], 1, "{usage}");
    // Every sandbox gave its memory back.
    assert_eq!(usage["memory_in_use_bytes"], 0, "{usage}");
    let b = get_in(&env, "team_b", "/api/v1/tenants/team_b/usage").await;
    assert_eq!(b["refused_allocations_total"], 0, "{b}");

    // Limits are checked; another tenant's usage is not for its members.
    let bad = crate::api::fails(
        &env,
        Method::PATCH,
        "/api/v1/tenants/team_a",
        Some(r#"{"max_memory": 5}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(bad.contains("max_memory"), "{bad}");
    patch(&env, "team_a", r#"{"max_memory": null}"#).await;
    assert_eq!(
        get(&env, "/api/v1/tenants/team_a").await["max_memory"],
        serde_json::Value::Null
    );
}

const LONG: &str = r#"
max_active_runs = 8
[tasks.a]
operator = "echo"
params = { message = "hi" }
execution_timeout = "2h"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceilings_make_a_dag_asking_for_more_an_import_error() {
    let env = Env::builder()
        .dag("team_a/long.toml", LONG)
        .dag("team_a/quick.toml", QUICK)
        .start()
        .await;
    let mut updates = env.app.scheduler.subscribe();
    patch(
        &env,
        "team_a",
        r#"{"execution_timeout": 600, "max_active_runs": 8, "memory_limit": 33554432}"#,
    )
    .await;
    // The DAGs folder is parsed again within the ceilings.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        if let Some(e) = env
            .app
            .metastore
            .import_errors()
            .unwrap()
            .into_iter()
            .find(|e| e.filename == "team_a/long.toml")
        {
            break e;
        }
        assert!(
            tokio::time::timeout_at(deadline, updates.recv())
                .await
                .is_ok(),
            "no import error for long.toml"
        );
    };
    assert_eq!(
        error.message,
        "execution_timeout of 2h is above the tenant's ceiling of 10m (set by a platform admin)"
    );
    assert_eq!(error.line, Some(6));
    // A DAG asking for nothing gets the ceilings, and runs within them.
    env.app.scheduler.sync().await.unwrap();
    let dag = env.app.metastore.dag("team_a", "quick").unwrap().unwrap();
    let spec = env
        .app
        .metastore
        .dag_version("team_a", "quick", &dag.version)
        .unwrap()
        .unwrap();
    assert_eq!(spec.max_active_runs, 8);
    assert_eq!(
        spec.tasks[0].execution_timeout,
        Some(std::time::Duration::from_secs(600))
    );
    assert_eq!(spec.tasks[0].memory_limit, Some(32 << 20));
    let tenant = get(&env, "/api/v1/tenants/team_a").await;
    assert_eq!(
        (
            &tenant["execution_timeout"],
            &tenant["max_active_runs"],
            &tenant["memory_limit"]
        ),
        (
            &serde_json::json!(600),
            &serde_json::json!(8),
            &serde_json::json!(33554432)
        )
    );
}
