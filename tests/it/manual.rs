//! Changes made by hand, with Airflow's semantics: Clear (with downstream, failed
//! only, dry run), Mark success/failed on TaskInstances and DagRuns, and delete.

use aileron::scheduler::ClearOptions;
use aileron_model::TaskInstanceState::*;
use aileron_model::{DagRunState, TaskInstanceState};
use aileron_tests::{Env, assert_run, assert_states};
use serde_json::json;

const DAG: &str = r#"
[tasks.a]
operator = "echo"
params = { message = "a" }
[tasks.b]
operator = "fail"
upstream = ["a"]
params = { until_try = 2 }
[tasks.c]
operator = "noop"
upstream = ["b"]
[tasks.side]
operator = "noop"
"#;

async fn wait_finished(env: &Env, dag_id: &str, run_id: &str) -> aileron_tests::Outcome {
    let mut updates = env.app.scheduler.subscribe();
    env.wait_run(&mut updates, dag_id, run_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_failed_task_with_downstream_runs_them_again() {
    let env = Env::builder().dag("manual.toml", DAG).start().await;
    let o = env.run("manual", json!({})).await;
    // b fails on try 1 (no retries), so c is upstream_failed and the run fails.
    assert_states(
        &o,
        &[
            ("a", Success),
            ("b", Failed),
            ("c", UpstreamFailed),
            ("side", Success),
        ],
    );
    assert_run(&o, DagRunState::Failed);
    let run_id = o.run.run_id.clone();
    let s = &env.app.scheduler;

    let dry = s
        .clear(
            "default",
            "manual",
            &run_id,
            ClearOptions {
                task_ids: Some(vec!["b".into()]),
                downstream: true,
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut names: Vec<_> = dry.iter().map(|t| t.task_id.as_str()).collect();
    names.sort();
    assert_eq!(names, ["b", "c"]);
    // A dry run changes nothing.
    assert_eq!(
        env.outcome("manual", &run_id).run.state,
        DagRunState::Failed
    );

    s.clear(
        "default",
        "manual",
        &run_id,
        ClearOptions {
            task_ids: Some(vec!["b".into()]),
            downstream: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let o = wait_finished(&env, "manual", &run_id).await;
    // b's second try succeeds (until_try = 2), c runs; a and side were not touched.
    assert_states(
        &o,
        &[
            ("a", Success),
            ("b", Success),
            ("c", Success),
            ("side", Success),
        ],
    );
    assert_eq!(o.ti("b").try_number, 2);
    assert_eq!(
        o.ti("b").tries.len(),
        2,
        "the history of the first try is kept"
    );
    assert_eq!(o.ti("a").try_number, 1);
    assert_run(&o, DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_failed_clears_just_the_failures() {
    let env = Env::builder().dag("manual.toml", DAG).start().await;
    let o = env.run("manual", json!({})).await;
    let run_id = o.run.run_id.clone();
    let cleared = env
        .app
        .scheduler
        .clear(
            "default",
            "manual",
            &run_id,
            ClearOptions {
                only_failed: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut names: Vec<_> = cleared.iter().map(|t| t.task_id.as_str()).collect();
    names.sort();
    assert_eq!(names, ["b", "c"]);
    let o = wait_finished(&env, "manual", &run_id).await;
    assert_eq!(o.ti("a").try_number, 1);
    assert_run(&o, DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_tasks_and_runs() {
    let env = Env::builder().dag("manual.toml", DAG).start().await;
    let o = env.run("manual", json!({})).await;
    let run_id = o.run.run_id.clone();
    let s = &env.app.scheduler;

    // Marking the failed task success with its downstream re-finishes the run from
    // its leaves: now a success.
    let changed = s
        .set_task_state(
            "default", "manual", &run_id, "b", None, Success, true, false,
        )
        .await
        .unwrap();
    assert_eq!(changed.len(), 2);
    let o = env.outcome("manual", &run_id);
    assert_states(&o, &[("b", Success), ("c", Success)]);
    assert_run(&o, DagRunState::Success);

    let run = s
        .set_run_state("default", "manual", &run_id, DagRunState::Failed)
        .await
        .unwrap();
    assert_eq!(run.state, DagRunState::Failed);
    // Finished TaskInstances keep their state when a run is marked failed.
    assert_eq!(env.outcome("manual", &run_id).state("a"), Success);

    let bad = s
        .set_task_state(
            "default",
            "manual",
            &run_id,
            "a",
            None,
            TaskInstanceState::Running,
            false,
            false,
        )
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("success, failed or skipped"),
        "{bad}"
    );
    let missing = s
        .set_task_state(
            "default", "manual", &run_id, "nope", None, Success, false, false,
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_marked_failed_stops_and_the_run_goes_on() {
    let dag = r#"
[tasks.long]
operator = "testkit"
params = { mode = "sleep", seconds = 30 }
[tasks.after]
operator = "noop"
upstream = ["long"]
trigger_rule = "all_done"
"#;
    let env = Env::builder().dag("long.toml", dag).start().await;
    let mut updates = env.app.scheduler.subscribe();
    let run = env
        .app
        .scheduler
        .trigger("default", "long", None, None, Default::default())
        .await
        .unwrap();
    // Wait for the sleeper to run, then mark it failed.
    loop {
        let o = env.outcome("long", &run.run_id);
        if o.state("long") == Running {
            break;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), updates.recv()).await;
    }
    let started = std::time::Instant::now();
    env.app
        .scheduler
        .set_task_state(
            "default",
            "long",
            &run.run_id,
            "long",
            None,
            Failed,
            false,
            false,
        )
        .await
        .unwrap();
    let o = env.wait_run(&mut updates, "long", &run.run_id).await;
    assert!(
        started.elapsed().as_secs() < 10,
        "the 30 s sleeper was not stopped"
    );
    assert_states(&o, &[("long", Failed), ("after", Success)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_run_removes_it_with_its_task_instances_and_xcom() {
    let env = Env::builder().dag("manual.toml", DAG).start().await;
    let o = env.run("manual", json!({})).await;
    let run_id = o.run.run_id.clone();
    env.app
        .scheduler
        .delete_run("default", "manual", &run_id)
        .await
        .unwrap();
    let m = &env.app.metastore;
    assert!(m.dag_run("default", "manual", &run_id).unwrap().is_none());
    assert!(
        m.task_instances("default", "manual", &run_id)
            .unwrap()
            .is_empty()
    );
    assert!(
        m.xcom("default", "manual", &run_id, "a", "return_value")
            .unwrap()
            .is_empty()
    );
    let again = env
        .app
        .scheduler
        .delete_run("default", "manual", &run_id)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("not found"), "{again}");
}
