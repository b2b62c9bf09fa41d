//! A tenant's quotas, set through the API and metered inside the sandbox: a
//! spent CPU budget holds its new tries back (`scheduled`, the reason in its
//! usage) until the rolling hour frees it (simulated clock), while another
//! tenant's work goes on; `max_memory` fails the try that grows past it with the
//! reason, counted as a refused allocation; usage shows per tenant (API and
//! `/metrics`) and per try; a try stopped by hand is charged for what it used;
//! running tries and callbacks are charged as they run.

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

const SPIN_LONG: &str = r#"
[tasks.spin]
operator = "testkit"
params = { mode = "busy_loop" }
execution_timeout = "60s"
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

/// A server whose `team_a` runs `spin` as run `r1`, once its try is running.
async fn start_spin() -> Env {
    let env = Env::builder()
        .dag("team_a/spin.toml", SPIN_LONG)
        .start()
        .await;
    let scheduler = &env.app.scheduler;
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while spin_state(&env) != Some(S::Running) {
        assert!(std::time::Instant::now() < deadline, "the spin never ran");
        scheduler.sync().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    env
}

/// Marks the running spin failed by hand, as a user would, and waits for
/// the scheduler to apply it.
async fn mark_spin_failed(env: &Env) {
    let scheduler = &env.app.scheduler;
    scheduler
        .set_task_state(
            "team_a",
            "spin",
            "r1",
            "spin",
            None,
            S::Failed,
            false,
            false,
        )
        .await
        .unwrap();
    scheduler.sync().await.unwrap();
}

fn spin_state(env: &Env) -> Option<S> {
    env.app
        .metastore
        .task_instance("team_a", "spin", "r1", "spin", -1)
        .unwrap()
        .map(|ti| ti.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_stopped_by_hand_is_charged_for_what_it_used() {
    let env = start_spin().await;
    let scheduler = &env.app.scheduler;
    // Real CPU time for the guest to burn: the meter counts ticks it ran through.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    mark_spin_failed(&env).await;
    let now = scheduler.tenant_usage(Some("team_a")).await.unwrap();
    let usage = &now["team_a"].usage;
    // The stopped try never reported an outcome; its usage as of its last tick
    // was charged all the same (at least a few of the ~60 ticks it ran).
    assert_eq!(usage.tries, 1, "{usage:?}");
    assert!(usage.cpu_seconds >= 0.1, "{usage:?}");
    let ti = env
        .app
        .metastore
        .task_instance("team_a", "spin", "r1", "spin", -1)
        .unwrap()
        .unwrap();
    assert_eq!(ti.state, S::Failed);
    // And it stopped: its store is gone (the tenant holds no memory) well
    // before its 60 s timeout, though it never waited for anything.
    let stopped = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while env
        .app
        .sandbox
        .tenant_memory()
        .iter()
        .any(|(t, m)| t == "team_a" && m.in_use_bytes > 0)
    {
        assert!(std::time::Instant::now() < stopped, "the spin still runs");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_try_is_charged_as_it_runs() {
    let env = start_spin().await;
    let scheduler = &env.app.scheduler;
    let state = || spin_state(&env);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // Nothing is charged to the stored record before the charging interval.
    scheduler.sync().await.unwrap();
    let stored = env.app.metastore.tenant_usage("team_a").unwrap();
    assert_eq!(stored.cpu_seconds, 0.0, "{stored:?}");
    // Once it has passed, what the try used so far is stored, and the try
    // does not count as run yet.
    env.clock
        .set(env.clock.now() + SignedDuration::from_secs(11));
    scheduler.sync().await.unwrap();
    let stored = env.app.metastore.tenant_usage("team_a").unwrap();
    assert_eq!(state(), Some(S::Running));
    assert!(stored.cpu_seconds >= 0.1, "{stored:?}");
    assert_eq!(stored.tries, 0, "{stored:?}");
    // Stopped, it is charged the rest and counted once.
    let charged = stored.cpu_seconds;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    mark_spin_failed(&env).await;
    let stored = env.app.metastore.tenant_usage("team_a").unwrap();
    assert_eq!(stored.tries, 1, "{stored:?}");
    assert!(stored.cpu_seconds > charged, "{stored:?}");
}

/// A run whose success fires a callback that spins until its 300 s timeout.
const SPINNING_CALLBACK: &str = r#"
on_success = { operator = "testkit", params = { mode = "busy_loop" } }

[tasks.a]
operator = "echo"
params = { message = "hi" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_callback_is_charged_as_it_runs() {
    let env = Env::builder()
        .dag("team_a/cb.toml", SPINNING_CALLBACK)
        .start()
        .await;
    let scheduler = &env.app.scheduler;
    let mut updates = scheduler.subscribe();
    scheduler
        .trigger("team_a", "cb", Some("r1".into()), None, Default::default())
        .await
        .unwrap();
    env.wait_run_in(&mut updates, "team_a", "cb", "r1").await;
    // The callback now spins, outside the task slots. Each pass moves the
    // clock past the charging interval: what it used so far must reach the
    // stored record while it still runs, as a running try's does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let stored = loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        env.clock
            .set(env.clock.now() + SignedDuration::from_secs(11));
        scheduler.sync().await.unwrap();
        let stored = env.app.metastore.tenant_usage("team_a").unwrap();
        if stored.cpu_seconds >= 0.1 {
            break stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the callback's CPU was never charged while it ran: {stored:?}"
        );
    };
    let callbacks = env.app.metastore.callbacks("team_a", "cb", "r1").unwrap();
    assert_eq!(callbacks.len(), 1);
    assert!(callbacks[0].end_date.is_none(), "{:?}", callbacks[0]);
    // Only the task counts as run so far; the callback counts when it ends.
    assert_eq!(stored.tries, 1, "{stored:?}");
    // The usage API sees it too.
    let usage = get_in(&env, "team_a", "/api/v1/tenants/team_a/usage").await;
    assert!(
        usage["cpu_seconds_total"].as_f64().unwrap() >= 0.1,
        "{usage}"
    );
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

/// `n` tasks that each hold 14 MiB (15 with the guest's own) for 1.5 s.
pub(crate) fn holders(n: usize) -> String {
    let mut s = String::from("max_active_tasks = 100\n");
    for i in 0..n {
        s.push_str(&format!(
            "[tasks.h{i}]\noperator = \"testkit\"\nparams = {{ mode = \"hold_memory\", mib = 14, seconds = 1.5 }}\nmemory_limit = \"32MiB\"\n"
        ));
    }
    s
}

/// With a real server: team_a's 20 guests share its 64 MiB; at most four hold
/// their memory at once, the others are refused with the reason; the server's
/// memory grows by what the quota allows, not by 20 guests' worth; team_b's
/// run succeeds meanwhile.
#[test]
fn twenty_guests_share_a_quota_and_the_host_stays_small() {
    use aileron_tests::server::{Server, free_port, home_with, http, http_in};
    let dir = tempfile::tempdir().unwrap();
    home_with(
        dir.path(),
        &[
            ("team_a/hold.toml", &holders(20)),
            ("team_b/quick.toml", QUICK),
        ],
    );
    let server = Server::start(dir.path(), free_port());
    let base = &server.base;
    for tenant in ["team_a", "team_b"] {
        let body = format!(r#"{{"name": "{tenant}"}}"#);
        let (status, v) = http("POST", &format!("{base}/tenants"), Some(&body)).unwrap();
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = http(
        "PATCH",
        &format!("{base}/tenants/team_a"),
        Some(r#"{"max_memory": 67108864}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{v}");
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let in_tenant = |tenant: &str, method: &str, path: &str, body: Option<&str>| {
        http_in(tenant, method, &format!("{base}{path}"), body).unwrap()
    };
    wait("both DAGs parsed", &|| {
        in_tenant("team_a", "GET", "/dags/hold", None).0 == 200
            && in_tenant("team_b", "GET", "/dags/quick", None).0 == 200
    });
    let rss_before = server.rss_kib();
    for (tenant, dag) in [("team_a", "hold"), ("team_b", "quick")] {
        in_tenant(
            tenant,
            "PATCH",
            &format!("/dags/{dag}"),
            Some(r#"{"is_paused": false}"#),
        );
        let (status, v) = in_tenant(
            tenant,
            "POST",
            &format!("/dags/{dag}/dagRuns"),
            Some(r#"{"dag_run_id": "r1"}"#),
        );
        assert_eq!(status, 200, "{v}");
    }
    let finished = |tenant: &str, dag: &str| {
        let (_, run) = in_tenant(tenant, "GET", &format!("/dags/{dag}/dagRuns/r1"), None);
        matches!(run["state"].as_str(), Some("success" | "failed"))
    };
    let mut rss_peak = rss_before;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(finished("team_a", "hold") && finished("team_b", "quick")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the runs did not finish"
        );
        rss_peak = rss_peak.max(server.rss_kib());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (_, b) = in_tenant("team_b", "GET", "/dags/quick/dagRuns/r1", None);
    assert_eq!(b["state"], "success", "{b}");

    let (_, tis) = in_tenant(
        "team_a",
        "GET",
        "/dags/hold/dagRuns/r1/taskInstances?limit=100",
        None,
    );
    let tis = tis["task_instances"].as_array().unwrap().clone();
    assert_eq!(tis.len(), 20);
    let mut held = Vec::new();
    let mut refused = 0;
    for ti in &tis {
        let task = ti["task_id"].as_str().unwrap();
        let (_, tries) = in_tenant(
            "team_a",
            "GET",
            &format!("/dags/hold/dagRuns/r1/taskInstances/{task}/tries"),
            None,
        );
        let try1 = &tries["task_instances"][0];
        match ti["state"].as_str() {
            Some("success") => {
                let at = |k: &str| {
                    try1[k]
                        .as_str()
                        .unwrap()
                        .parse::<jiff::Timestamp>()
                        .unwrap()
                };
                held.push((at("start_date"), at("end_date")));
                assert!(
                    try1["peak_memory_bytes"].as_u64().unwrap() >= 14 << 20,
                    "{try1}"
                );
            }
            Some("failed") => {
                let error = try1["error"].as_str().unwrap();
                assert!(
                    error.starts_with("tenant memory quota (max_memory) of 64 MiB exceeded"),
                    "{error}"
                );
                refused += 1;
            }
            other => panic!("{task}: {other:?}"),
        }
    }
    // Never more than four held their memory at once.
    let most_at_once = held
        .iter()
        .map(|(start, _)| held.iter().filter(|(s, e)| s <= start && start < e).count())
        .max()
        .unwrap_or(0);
    assert!(
        refused >= 1 && most_at_once <= 4,
        "{refused} refused, {most_at_once} at once"
    );
    let (_, usage) = in_tenant("team_a", "GET", "/tenants/team_a/usage", None);
    assert_eq!(usage["refused_allocations_total"], refused, "{usage}");
    // 20 guests of 15 MiB would be 300 MiB; the quota lets 64 MiB be held (plus
    // what the sandbox keeps resident per slot once used, at most 2 MiB each).
    let grew_mib = (rss_peak.saturating_sub(rss_before)) / 1024;
    eprintln!(
        "{} held, {refused} refused, at most {most_at_once} at once; the server grew by {grew_mib} MiB",
        held.len()
    );
    assert!(grew_mib < 150, "the server grew by {grew_mib} MiB");
}
