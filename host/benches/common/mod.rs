//! What the end-to-end benchmarks share: DAG files written in code, settings
//! from the environment, and running a DAG to its end. Used by this crate's
//! benches and, by path, by `tests/benches/` (as `host/sandbox/build.rs` and
//! `tests/build.rs` share `wasm_build.rs`).

// Each bench is its own crate and uses only some of these.
#![allow(dead_code)]

use aileron::app::{self, App, AppConfig};
use aileron::scheduler::{SchedulerConfig, Update};
use aileron_model::DagRunState;
use aileron_model::clock::SystemClock;
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `n` tasks of `operator`, each downstream of the one before (`echo` gets a
/// templated message, so rendering is part of the work).
pub fn chain(n: usize, operator: &str) -> String {
    let mut s = String::new();
    for i in 0..n {
        writeln!(s, "[tasks.t{i}]\noperator = \"{operator}\"").unwrap();
        if operator == "echo" {
            writeln!(s, "params = {{ message = \"step {i} of {{{{ ds }}}}\" }}").unwrap();
        }
        if i > 0 {
            writeln!(s, "upstream = [\"t{}\"]", i - 1).unwrap();
        }
    }
    s
}

/// `n` independent tasks of `operator` with `params` (a TOML inline table),
/// admitted as slots allow.
pub fn wide(n: usize, operator: &str, params: &str) -> String {
    let mut s = String::from("max_active_tasks = 100000\n");
    for i in 0..n {
        writeln!(
            s,
            "[tasks.t{i}]\noperator = \"{operator}\"\nparams = {params}"
        )
        .unwrap();
    }
    s
}

/// A number from the environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Triggers run `run_id` of `tenant`'s `dag_id` and waits for it to finish:
/// its final state and the time from the trigger.
pub async fn run_to_end(
    app: &App,
    tenant: &str,
    dag_id: &str,
    run_id: &str,
) -> (DagRunState, Duration) {
    let mut updates = app.scheduler.subscribe();
    let started = Instant::now();
    trigger(app, tenant, dag_id, run_id).await;
    loop {
        match updates.recv().await {
            Ok(Update::DagRun {
                tenant: t,
                run_id: id,
                state,
                ..
            }) if t == tenant && id == run_id && state.is_finished() => {
                return (state, started.elapsed());
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Triggers run `run_id` of `tenant`'s `dag_id`, without waiting for it.
pub async fn trigger(app: &App, tenant: &str, dag_id: &str, run_id: &str) {
    app.scheduler
        .trigger(
            tenant,
            dag_id,
            Some(run_id.into()),
            None,
            Default::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{tenant}/{dag_id}: {e}"));
}

/// Starts Aileron as `standalone` does, on the durable metastore in `home`
/// with the DAG files of `home/dags` (read once, not watched), no schedules
/// creating runs, and `parallelism` slots.
pub async fn start_app(home: &Path, parallelism: usize) -> App {
    app::start(AppConfig {
        home: home.to_path_buf(),
        dags: home.join("dags"),
        in_memory: false,
        watch: false,
        scheduler: SchedulerConfig {
            parallelism,
            create_scheduled_runs: false,
            ..Default::default()
        },
        clock: Arc::new(SystemClock),
        cache_dir: None,
        admin_password: Some("bench admin password".into()),
    })
    .await
    .unwrap()
}

/// Stops the app and waits for its scheduler to let go of the metastore.
pub async fn stop(app: App) {
    app.scheduler.shutdown();
    app.task.await.unwrap().unwrap();
}
