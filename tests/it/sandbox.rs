//! Hostile and buggy operators fail their own TaskInstance and nothing else: a busy
//! loop and a long sleep hit `execution_timeout`, a memory bomb hits the memory cap,
//! a trap and a panic fail the try with the reason in its log, and a guest that tries
//! to reach the filesystem, environment or network finds nothing.

use aileron_model::DagRunState;
use aileron_model::TaskInstanceState::*;
use aileron_tests::{Env, assert_run, assert_states};
use std::time::Instant;

const HOSTILE: &str = r#"
[tasks.busy]
operator = "testkit"
params = { mode = "busy_loop" }
execution_timeout = "1s"
[tasks.sleepy]
operator = "testkit"
params = { mode = "sleep", seconds = 60 }
execution_timeout = "1s"
[tasks.bomb]
operator = "testkit"
params = { mode = "memory_bomb" }
memory_limit = "32MiB"
[tasks.trap]
operator = "testkit"
params = { mode = "trap" }
[tasks.panic]
operator = "testkit"
params = { mode = "panic" }
[tasks.bystander]
operator = "echo"
params = { message = "still here" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_operators_fail_only_their_own_task() {
    let env = Env::builder().dag("hostile.toml", HOSTILE).start().await;
    let started = Instant::now();
    let o = env.run("hostile", serde_json::json!({})).await;
    // Both timeouts are 1 s; the whole run must not wait for the 60 s sleep.
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    assert_states(
        &o,
        &[
            ("busy", Failed),
            ("sleepy", Failed),
            ("bomb", Failed),
            ("trap", Failed),
            ("panic", Failed),
            ("bystander", Success),
        ],
    );
    assert_run(&o, DagRunState::Failed);
    let reason = |task: &str| {
        o.ti(task).tries[0]
            .error
            .clone()
            .unwrap_or_default()
            .to_lowercase()
    };
    assert!(
        reason("busy").contains("execution_timeout"),
        "{}",
        reason("busy")
    );
    assert!(
        reason("sleepy").contains("execution_timeout"),
        "{}",
        reason("sleepy")
    );
    assert!(reason("bomb").contains("memory"), "{}", reason("bomb"));
    assert!(!reason("trap").is_empty());
    assert!(
        reason("panic").contains("panicked on purpose"),
        "{}",
        reason("panic")
    );
    // The reason is in the try's log too, where an operator author looks first.
    let log = env.log(o.ti("panic"), 1);
    assert!(log.contains("panicked on purpose"), "log: {log}");
    let log = env.log(o.ti("busy"), 1);
    assert!(
        log.to_lowercase().contains("execution_timeout"),
        "log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_no_filesystem_environment_or_network() {
    let dag = r#"
[tasks.escape]
operator = "testkit"
params = { mode = "escape" }
"#;
    let env = Env::builder().dag("escape.toml", dag).start().await;
    let o = env.run("escape", serde_json::json!({})).await;
    assert_states(&o, &[("escape", Success)]);
    let xcom = env
        .app
        .metastore
        .xcom("default", "escape", &o.run.run_id, "escape", "return_value")
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&xcom[0].1).unwrap();
    // Whatever the guest tried, nothing outside its memory was reachable.
    for (what, value) in report.as_object().unwrap() {
        let reached = match value {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Object(o) => o.get("ok").and_then(|v| v.as_bool()).unwrap_or(false),
            _ => false,
        };
        assert!(!reached, "guest reached {what}: {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_logs_are_captured_per_try_and_capped() {
    let dag = r#"
[tasks.talk]
operator = "testkit"
params = { mode = "stdout", text = "hello from stdout", repeat = 3 }
[tasks.spam]
operator = "testkit"
params = { mode = "log_spam", text = "0123456789012345678901234567890123456789", repeat = 100000 }
"#;
    let env = Env::builder().dag("talk.toml", dag).start().await;
    let o = env.run("talk", serde_json::json!({})).await;
    assert_states(&o, &[("talk", Success), ("spam", Success)]);
    let log = env.log(o.ti("talk"), 1);
    assert_eq!(
        log.matches("hello from stdout").count(),
        6,
        "stdout and stderr: {log}"
    );
    let spam = env.log(o.ti("spam"), 1);
    // 4 MB of log calls are cut at the 1 MiB cap, with a marker saying so.
    assert!(spam.len() <= (1 << 20) + 200, "log is {} bytes", spam.len());
    assert!(spam.contains("truncated"), "no truncation marker");
}

/// A guest whose stack (in its own linear memory) runs out is reported as a stack
/// overflow, not as the out-of-bounds access the wrapped stack pointer makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_is_named_as_such() {
    let dag = r#"
[tasks.deep]
operator = "testkit"
params = { mode = "stack_overflow" }

[tasks.bystander]
operator = "noop"
"#;
    let env = Env::builder().dag("deep.toml", dag).start().await;
    let o = env.run("deep", serde_json::json!({})).await;
    assert_states(&o, &[("deep", Failed), ("bystander", Success)]);
    let reason = o.ti("deep").tries[0].error.clone().unwrap_or_default();
    assert!(
        reason.starts_with("stack overflow: the operator's stack ran out"),
        "{reason}"
    );
    assert!(env.log(o.ti("deep"), 1).contains("stack overflow"));
}

/// The local executor reports a try that ends within 10 ms by its end alone:
/// its TaskInstance goes from `queued` to `success` with its start time kept.
/// A longer try is seen `running` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_try_is_reported_once_and_a_long_one_is_seen_running() {
    let mut dag = String::from("[tasks.slow]\noperator = \"sleep\"\nparams = { seconds = 0.3 }\n");
    for i in 0..20 {
        dag.push_str(&format!("[tasks.q{i}]\noperator = \"noop\"\n"));
    }
    let env = Env::builder().dag("mixed.toml", &dag).start().await;
    let mut updates = env.app.scheduler.subscribe();
    env.app
        .scheduler
        .trigger(
            aileron_model::TenantId::DEFAULT,
            "mixed",
            Some("r1".into()),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    let mut seen: std::collections::HashMap<String, Vec<aileron_model::TaskInstanceState>> =
        Default::default();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while seen.get("slow").is_none_or(|s| s.last() != Some(&Success)) {
        assert!(Instant::now() < deadline, "{seen:?}");
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(aileron::scheduler::Update::TaskInstance { task_id, state, .. })) =
            tokio::time::timeout(left, updates.recv()).await
        {
            seen.entry(task_id).or_default().push(state);
        }
    }
    assert!(seen["slow"].contains(&Running), "{:?}", seen["slow"]);
    // On a loaded machine a noop can take longer than 10 ms; most do not.
    let straight = (0..20)
        .filter(|i| {
            seen.get(&format!("q{i}"))
                .is_some_and(|s| !s.contains(&Running))
        })
        .count();
    assert!(straight > 0, "{seen:?}");
    env.wait_run(&mut updates, "mixed", "r1").await;
    for i in 0..20 {
        let ti = env
            .app
            .metastore
            .task_instance(
                aileron_model::TenantId::DEFAULT,
                "mixed",
                "r1",
                &format!("q{i}"),
                -1,
            )
            .unwrap()
            .unwrap();
        assert_eq!(ti.state, Success);
        let (start, end) = (ti.start_date.unwrap(), ti.end_date.unwrap());
        assert!(start <= end && ti.tries[0].start_date == start, "{ti:?}");
    }
}
