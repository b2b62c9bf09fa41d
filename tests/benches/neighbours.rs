//! Noisy neighbours, contained: tenant `team_b` runs a 40-task `noop` chain
//! alone, then while tenant `team_a` has guests that spin on the CPU (the
//! `testkit` operator's `busy_loop`, each until its 60 s timeout), and the
//! median chain times are compared (the target: within noise, say 1.5x).
//!
//! Before that, it meters a guest spinning for 1 s and one sleeping for 1 s
//! (the calibration the README quotes).
//!
//! `cargo bench -p aileron-tests --bench neighbours` (release build).
//! `AILERON_BENCH_SPINNERS` sets how many of team_a's guests spin at once
//! (default 4, twice this machine's cores); the executor has 32 slots.

/// DAG builders and run helpers shared with `host/benches/`.
#[path = "../../host/benches/common/mod.rs"]
mod common;

use aileron::app::{self, App};
use aileron::metastore::{Metastore, TenantLimits, TenantRecord};
use aileron_model::{DagRunState, TenantId};
use aileron_tests::guests;
use std::path::Path;
use std::time::Duration;

const A: &str = "team_a";
const B: &str = "team_b";
const ROUNDS: usize = 7;

fn spinners() -> usize {
    common::env_usize("AILERON_BENCH_SPINNERS", 4)
}

/// One guest spinning for 1 s and one sleeping for 1 s: what the meter makes
/// of each (the README's calibration).
const CALIBRATE: &str = r#"
[tasks.spin]
operator = "testkit"
params = { mode = "busy_loop" }
execution_timeout = "1s"
[tasks.sleep]
operator = "testkit"
params = { mode = "sleep", seconds = 1 }
"#;

/// `n` guests of `team_a` spinning until their 60 s timeout.
fn spin(n: usize) -> String {
    let tasks = common::wide(n, "testkit", r#"{ mode = "busy_loop" }"#);
    format!("{tasks}[defaults]\nexecution_timeout = \"60s\"\n")
}

async fn start(home: &Path) -> App {
    let dags = home.join("dags");
    for (file, text) in [
        ("team_a/spin.toml", spin(spinners())),
        ("team_b/chain_40.toml", common::chain(40, "noop")),
        ("team_a/calibrate.toml", CALIBRATE.to_owned()),
    ] {
        let path = dags.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let plugins = home.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guests::TESTKIT, plugins.join("testkit.wasm")).unwrap();
    {
        let metastore = Metastore::open(&app::metastore_path(home)).unwrap();
        for tenant in [A, B] {
            metastore
                .create_tenant(&TenantRecord {
                    name: TenantId::new(tenant).unwrap(),
                    description: String::new(),
                    created_at: jiff::Timestamp::now(),
                    limits: TenantLimits::default(),
                })
                .unwrap();
        }
    }
    common::start_app(home, 32).await
}

async fn median_chain(app: &App, label: &str) -> Duration {
    let mut times = Vec::new();
    for i in 0..ROUNDS {
        let (state, took) = common::run_to_end(app, B, "chain_40", &format!("{label}{i}")).await;
        assert_eq!(state, DagRunState::Success);
        times.push(took);
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // One worker thread per core, as `aileron standalone` has.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(start(dir.path()));
    let (warm, _) = rt.block_on(common::run_to_end(&app, B, "chain_40", "warm"));
    assert_eq!(warm, DagRunState::Success);
    // (The calibration run fails: its spinner times out.)
    rt.block_on(common::run_to_end(&app, A, "calibrate", "calibrate"));
    for task in ["spin", "sleep"] {
        let ti = app
            .metastore
            .task_instance(A, "calibrate", "calibrate", task, -1)
            .unwrap()
            .unwrap();
        let usage = ti.tries[0].usage.unwrap();
        println!(
            "calibration: a guest that {task}s for {:.3} s is metered {:.3} CPU s",
            ti.tries[0].duration, usage.cpu_seconds
        );
    }
    let alone = rt.block_on(median_chain(&app, "alone"));
    rt.block_on(common::trigger(&app, A, "spin", "spin"));
    // Once every spinner runs.
    loop {
        let running = app
            .metastore
            .task_instances(A, "spin", "spin")
            .unwrap()
            .iter()
            .filter(|ti| ti.state == aileron_model::TaskInstanceState::Running)
            .count();
        if running == spinners() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let beside = rt.block_on(median_chain(&app, "beside"));
    // Where a step's time goes: queued to started, started to ended, ended to
    // the next one queued (medians over the last run beside the spinners).
    let tis = app
        .metastore
        .task_instances(B, "chain_40", &format!("beside{}", ROUNDS - 1))
        .unwrap();
    let mut tis: Vec<_> = tis.iter().filter(|t| t.end_date.is_some()).collect();
    tis.sort_by_key(|t| t.queued_at);
    let ms = |a: jiff::Timestamp, b: jiff::Timestamp| b.duration_since(a).as_secs_f64() * 1e3;
    let mut waits: Vec<f64> = tis
        .iter()
        .map(|t| ms(t.queued_at.unwrap(), t.start_date.unwrap()))
        .collect();
    let mut runs: Vec<f64> = tis
        .iter()
        .map(|t| ms(t.start_date.unwrap(), t.end_date.unwrap()))
        .collect();
    let mut gaps: Vec<f64> = tis
        .windows(2)
        .map(|w| ms(w[0].end_date.unwrap(), w[1].queued_at.unwrap()))
        .collect();
    for v in [&mut waits, &mut runs, &mut gaps] {
        v.sort_by(f64::total_cmp);
    }
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let max = |v: &[f64]| v.last().copied().unwrap_or_default();
    println!(
        "the chain's steps beside the spinners, total (longest): queued→started {:.1} ms ({:.1}), \
         started→ended {:.1} ms ({:.1}), ended→next queued {:.1} ms ({:.1})",
        sum(&waits),
        max(&waits),
        sum(&runs),
        max(&runs),
        sum(&gaps),
        max(&gaps)
    );
    println!(
        "team_b chain_40: alone {alone:>9.1?}   beside {} of team_a's busy loops {beside:>9.1?}   ({:.2}x)",
        spinners(),
        beside.as_secs_f64() / alone.as_secs_f64()
    );
    rt.block_on(common::stop(app));
}
