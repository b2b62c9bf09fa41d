//! End-to-end scheduling benchmarks through the same path `aileron standalone` runs:
//! DAG files → scheduler → durable redb metastore → local executor → wasm sandbox.
//!
//! - `chain_40`: 40 `noop` tasks in a line; time from trigger to run success.
//! - `fanout_1000`: one root and 1,000 `noop` tasks downstream of it; reported as
//!   TaskInstances per second.
//!
//! Run with `cargo bench -p aileron --bench scheduler`.

use aileron::app::{self, App, AppConfig};
use aileron::scheduler::{SchedulerConfig, Update};
use aileron_model::TenantId;
use aileron_model::clock::SystemClock;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn chain(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        writeln!(s, "[tasks.t{i}]\noperator = \"noop\"").unwrap();
        if i > 0 {
            writeln!(s, "upstream = [\"t{}\"]", i - 1).unwrap();
        }
    }
    s
}

fn fanout(n: usize) -> String {
    let mut s = String::from("max_active_tasks = 100000\n[tasks.root]\noperator = \"noop\"\n");
    for i in 0..n {
        writeln!(
            s,
            "[tasks.t{i}]\noperator = \"noop\"\nupstream = [\"root\"]"
        )
        .unwrap();
    }
    s
}

async fn start(dir: &std::path::Path, parallelism: usize) -> App {
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(dags.join("chain_40.toml"), chain(40)).unwrap();
    std::fs::write(dags.join("fanout_1000.toml"), fanout(1000)).unwrap();
    app::start(AppConfig {
        home: dir.to_path_buf(),
        dags,
        in_memory: false,
        watch: false,
        scheduler: SchedulerConfig {
            parallelism,
            create_scheduled_runs: false,
            ..Default::default()
        },
        clock: Arc::new(SystemClock),
        cache_dir: None,
    })
    .await
    .unwrap()
}

/// Triggers one run and waits for it to finish; returns the elapsed time.
async fn run_once(app: &App, dag_id: &str, n: &mut u64) -> Duration {
    *n += 1;
    let mut updates = app.scheduler.subscribe();
    let started = Instant::now();
    let run = app
        .scheduler
        .trigger(
            TenantId::DEFAULT,
            dag_id,
            Some(format!("bench_{n}")),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    loop {
        match updates.recv().await {
            Ok(Update::DagRun { run_id, state, .. })
                if run_id == run.run_id && state.is_finished() =>
            {
                assert_eq!(state, aileron_model::DagRunState::Success);
                return started.elapsed();
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let parallelism = std::env::var("AILERON_BENCH_PARALLELISM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let app = rt.block_on(start(dir.path(), parallelism));
    let mut n = 0;

    let mut g = c.benchmark_group("standalone");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("chain_40", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(run_once(&app, "chain_40", &mut n));
            }
            total
        })
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(1001));
    g.bench_function("fanout_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(run_once(&app, "fanout_1000", &mut n));
            }
            total
        })
    });
    g.finish();
    app.scheduler.shutdown();
}

criterion_group!(scheduler, benches);
criterion_main!(scheduler);
