//! End-to-end benchmarks through the same path `aileron standalone` runs (DAG files →
//! scheduler → durable redb metastore → local executor → wasm sandbox → REST API),
//! each measured twice: on a new metastore ("empty": one page, 25 runs, of history,
//! so every read has rows to return) and on one full of history.
//!
//! - `chain_40`: 40 `noop` tasks in a line; time from trigger to run success.
//! - `fanout_1000`: one root and 1,000 `noop` tasks downstream of it; reported as
//!   TaskInstances per second.
//! - `get_dags`: `GET /api/v1/dags`, the API's DAG list.
//! - `runs_page`: a DAG's 25 latest runs, as its page in the UI asks for them.
//! - `metrics`: a Prometheus scrape of `/metrics`.
//! - `ui_dag_list`: the UI's DAG list, every DAG with its 10 latest runs, in one
//!   request (through `/api/v2`, as the UI asks).
//! - `ui_dag_details`: what the UI's DAG page reads on every refresh: the DAG's
//!   details (its active runs counted, its latest version, the caller's favorite).
//! - `v2_get_dags`, `v2_runs_page`, `v2_dag_versions`, `v2_dag_stats`: the same
//!   reads through `/api/v2` (Airflow 3's shapes, each run with its numbered
//!   version), a DAG's versions, and every DAG's run counts by state.
//!
//! "Full" is 100,000 finished runs of a 5-task DAG (500,000 TaskInstances with
//! their logs; `AILERON_BENCH_RUNS` changes the count), written as copies of one
//! real run so every record has the shape the scheduler gives it. The fill, the
//! start-up time on each metastore and the metastore's size per TaskInstance are
//! printed before the measurements.
//!
//! Run with `cargo bench -p aileron --bench scheduler`.

mod common;

use aileron::api::{ApiState, router};
use aileron::app::{self, App};
use aileron::metastore::WriteBatch;
use aileron_model::TenantId;
use axum::Router;
use axum::body::Body;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The DAG whose copies fill the history: five `echo` tasks in a line.
const HISTORY_DAG: &str = "history_5";

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

fn parallelism() -> usize {
    common::env_usize("AILERON_BENCH_PARALLELISM", 64)
}

async fn start(home: &Path) -> App {
    let dags = home.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(dags.join("chain_40.toml"), common::chain(40, "noop")).unwrap();
    std::fs::write(dags.join("fanout_1000.toml"), fanout(1000)).unwrap();
    std::fs::write(
        dags.join(format!("{HISTORY_DAG}.toml")),
        common::chain(5, "echo"),
    )
    .unwrap();
    common::start_app(home, parallelism()).await
}

/// Triggers one run of the default tenant and waits for it to succeed; returns
/// its id and the time taken.
async fn run_once(app: &App, dag_id: &str, n: &mut u64) -> (String, Duration) {
    *n += 1;
    let run_id = format!("bench_{n}");
    let (state, took) = common::run_to_end(app, TenantId::DEFAULT, dag_id, &run_id).await;
    assert_eq!(state, aileron_model::DagRunState::Success);
    (run_id, took)
}

/// Writes `count` finished copies of one real run of [`HISTORY_DAG`] (its
/// TaskInstances and logs too), an hour of logical date apart, older than it.
/// Returns the bytes of log text written.
async fn fill(app: &App, count: u64) -> u64 {
    let (template, _) = run_once(app, HISTORY_DAG, &mut 0).await;
    let m = &app.metastore;
    let run = m
        .dag_run(TenantId::DEFAULT, HISTORY_DAG, &template)
        .unwrap()
        .unwrap();
    let tis = m
        .task_instances(TenantId::DEFAULT, HISTORY_DAG, &template)
        .unwrap();
    let logs: Vec<Vec<u8>> = tis
        .iter()
        .map(|ti| m.log(ti, 1).unwrap().unwrap_or_default().into_bytes())
        .collect();
    let log_bytes = logs.iter().map(|l| l.len() as u64).sum::<u64>() * count;
    let first_seq = m.next_run_seq().unwrap();
    let mut batch = WriteBatch::default();
    for i in 0..count {
        let mut copy = run.clone();
        copy.run_id = format!("history_{i:07}");
        copy.seq = first_seq + i;
        let back = jiff::SignedDuration::from_hours(i64::try_from(count - i).unwrap());
        copy.logical_date = run.logical_date - back;
        copy.data_interval.start = copy.logical_date;
        copy.data_interval.end = copy.logical_date;
        batch.put_run(&copy);
        for (ti, log) in tis.iter().zip(&logs) {
            let mut ti = ti.clone();
            ti.run_id = copy.run_id.clone();
            batch.put_log(&ti, 1, log.clone());
            batch.put_ti(&ti);
        }
        if batch.len() >= 20_000 {
            m.commit(std::mem::take(&mut batch)).unwrap();
        }
    }
    m.commit(batch).unwrap();
    log_bytes
}

/// Bytes the metastore file takes on disk. redb sets a file's length ahead of
/// use (doubling it while under 4 GiB) and the part never written takes no disk,
/// so the length says little; the blocks allocated are what `du` shows.
fn file_size(home: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(app::metastore_path(home))
        .unwrap()
        .blocks()
        * 512
}

fn api(app: &App) -> Router {
    router(ApiState {
        metastore: app.metastore.clone(),
        scheduler: app.scheduler.clone(),
        registry: app.sandbox.registry().clone(),
        remote: None,
        clock: app.clock.clone(),
        auth: app.auth.clone(),
        rescan: app.rescan.clone(),
        plugins_dir: app.plugins_dir.clone(),
        settings: std::sync::Arc::new(app.settings.clone()),
    })
}

/// `Authorization` of a new platform API token: what a Prometheus server or a
/// script sends, so every read below pays the access check a real one does.
fn bench_auth(app: &App) -> String {
    let new = aileron::auth::api_token::generate().unwrap();
    app.metastore
        .create_api_token(&aileron::metastore::ApiTokenRecord {
            id: new.id.clone(),
            tenant: None,
            name: "bench".into(),
            role: aileron_model::Role::Admin,
            secret_sha256: new.secret_sha256,
            created_by: "bench".into(),
            created_at: jiff::Timestamp::now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            worker: false,
        })
        .unwrap();
    format!("Bearer {}", new.text)
}

async fn get(api: &Router, auth: &str, uri: &str) {
    let req = axum::http::Request::get(uri)
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap();
    let resp = api.clone().oneshot(req).await.unwrap();
    assert!(resp.status().is_success(), "{uri}: {}", resp.status());
    resp.into_body().collect().await.unwrap();
}

/// The read paths a user and a Prometheus server hit, on `app`'s metastore.
fn reads(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, app: &App) {
    let api = api(app);
    let auth = bench_auth(app);
    let runs_page = format!("/api/v1/dags/{HISTORY_DAG}/dagRuns?limit=25&order_by=-logical_date");
    let v2_runs_page =
        format!("/api/v2/dags/{HISTORY_DAG}/dagRuns?limit=25&order_by=-logical_date");
    let v2_versions = format!("/api/v2/dags/{HISTORY_DAG}/dagVersions");
    let v2_details = format!("/api/v2/dags/{HISTORY_DAG}/details");
    let mut g = c.benchmark_group(format!("{name}/reads"));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(5));
    for (bench, uri) in [
        ("get_dags", "/api/v1/dags"),
        ("runs_page", runs_page.as_str()),
        ("metrics", "/metrics"),
        ("ui_dag_list", "/api/v2/dags?limit=10000&dag_runs_limit=10"),
        ("ui_dag_details", v2_details.as_str()),
        // Two trivial answers, one public and one behind the access check (an
        // API token looked up and checked): their difference is what
        // authorization costs a request.
        ("public_health", "/health"),
        ("signed_in_version", "/api/v1/version"),
        ("v2_get_dags", "/api/v2/dags"),
        ("v2_runs_page", v2_runs_page.as_str()),
        ("v2_dag_versions", v2_versions.as_str()),
        ("v2_dag_stats", "/api/v2/dagStats"),
    ] {
        g.bench_function(bench, |b| b.iter(|| rt.block_on(get(&api, &auth, uri))));
    }
    g.finish();
}

/// Scheduling through the whole path on `app`'s metastore.
fn runs(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, app: &App) {
    let mut n = 0;
    let mut g = c.benchmark_group(format!("{name}/standalone"));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("chain_40", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(run_once(app, "chain_40", &mut n)).1)
                .sum()
        })
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(1001));
    g.bench_function("fanout_1000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(run_once(app, "fanout_1000", &mut n)).1)
                .sum()
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let count: u64 = std::env::var("AILERON_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    let empty_dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let empty = rt.block_on(start(empty_dir.path()));
    eprintln!("start-up, empty metastore: {:?}", t.elapsed());
    rt.block_on(fill(&empty, 25));

    let full_dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(start(full_dir.path()));
    let before = file_size(full_dir.path());
    let t = Instant::now();
    let logs = rt.block_on(fill(&app, count));
    let grown = file_size(full_dir.path()) - before;
    eprintln!(
        "filled {count} runs ({} TaskInstances) in {:?}: the metastore grew {} MiB, \
         {} bytes per TaskInstance with its share of the run, indexes and log",
        count * 5,
        t.elapsed(),
        grown >> 20,
        grown / (count * 5).max(1)
    );
    for t in app.metastore.table_sizes().unwrap() {
        if t.entries > 0 {
            eprintln!(
                "  {:<18} {:>9} entries {:>6} B stored + {:>5} B overhead per TaskInstance",
                t.name,
                t.entries,
                t.stored_bytes / (count * 5).max(1),
                t.overhead_bytes / (count * 5).max(1),
            );
        }
    }
    eprintln!(
        "  apart from log text: {} bytes per TaskInstance",
        grown.saturating_sub(logs) / (count * 5).max(1)
    );
    // Started again on the full store, as after a restart.
    rt.block_on(common::stop(app));
    let t = Instant::now();
    let full = rt.block_on(start(full_dir.path()));
    eprintln!("start-up, {count} finished runs: {:?}", t.elapsed());

    reads(c, &rt, "empty", &empty);
    reads(c, &rt, "full", &full);
    runs(c, &rt, "empty", &empty);
    runs(c, &rt, "full", &full);
    empty.scheduler.shutdown();
    full.scheduler.shutdown();
}

criterion_group!(scheduler, benches);
criterion_main!(scheduler);
