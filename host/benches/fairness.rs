//! Fair sharing of the executor between tenants, through the whole standalone
//! path (DAG files, scheduler, durable metastore, local executor, sandbox):
//!
//! 1. **A flood does not slow a neighbour.** Tenant `team_b` runs a 40-task
//!    chain and a 200-task fan-out alone, then again while tenant `team_a` has
//!    10,000 `noop` tries queued; printed: each time and the ratio (the target
//!    is within 1.5x).
//! 2. **Weights.** Both tenants keep a backlog of 100 ms `sleep` tries, with
//!    weights 3:1; over 10 s, the tries each tenant started are counted (the
//!    target is within 10 % of 3:1).
//!
//! Run with `cargo bench -p aileron --bench fairness`; `AILERON_BENCH_PARALLELISM`
//! sets the executor's slots (default 32).

mod common;

use aileron::app::{self, App};
use aileron::metastore::{Metastore, TenantLimits, TenantRecord};
use aileron_model::{DagRunState, TaskInstanceState, TenantId};
use std::path::Path;
use std::time::Duration;

const A: &str = "team_a";
const B: &str = "team_b";

fn parallelism() -> usize {
    common::env_usize("AILERON_BENCH_PARALLELISM", 32)
}

/// A home with both tenants (made before start, as `aileron tenants create`
/// would) and their DAG files, `team_a` weighted `weight_a`.
async fn start(home: &Path, weight_a: u32) -> App {
    let dags = home.join("dags");
    for (file, text) in [
        ("team_a/flood.toml", common::wide(10_000, "noop", "{}")),
        (
            "team_a/slow.toml",
            common::wide(3_000, "sleep", "{ seconds = 0.1 }"),
        ),
        (
            "team_b/slow.toml",
            common::wide(3_000, "sleep", "{ seconds = 0.1 }"),
        ),
        ("team_b/chain_40.toml", common::chain(40, "noop")),
        ("team_b/fanout_200.toml", common::wide(200, "noop", "{}")),
    ] {
        let path = dags.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    {
        let metastore = Metastore::open(&app::metastore_path(home)).unwrap();
        for (tenant, weight) in [(A, weight_a), (B, 1)] {
            metastore
                .create_tenant(&TenantRecord {
                    name: TenantId::new(tenant).unwrap(),
                    description: String::new(),
                    created_at: jiff::Timestamp::now(),
                    limits: TenantLimits {
                        weight: Some(weight),
                        ..TenantLimits::default()
                    },
                })
                .unwrap();
        }
    }
    common::start_app(home, parallelism()).await
}

/// Runs `team_b`'s `dag_id` to success; the time it took.
async fn run_b(app: &App, dag_id: &str, run_id: &str) -> Duration {
    let (state, took) = common::run_to_end(app, B, dag_id, run_id).await;
    assert_eq!(state, DagRunState::Success);
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median chain time and fan-out rate of `team_b` over `rounds` runs each.
async fn measure_b(app: &App, label: &str, rounds: usize) -> (Duration, f64) {
    let mut chains = Vec::new();
    let mut fans = Vec::new();
    for i in 0..rounds {
        chains.push(run_b(app, "chain_40", &format!("{label}_c{i}")).await);
        fans.push(run_b(app, "fanout_200", &format!("{label}_f{i}")).await);
    }
    let fan = median(fans);
    (median(chains), 200.0 / fan.as_secs_f64())
}

/// TaskInstances of a run that have started (running or finished).
fn started(app: &App, tenant: &str, dag_id: &str, run_id: &str) -> usize {
    app.metastore
        .task_instances(tenant, dag_id, run_id)
        .unwrap()
        .iter()
        .filter(|ti| ti.start_date.is_some() || ti.state == TaskInstanceState::Running)
        .count()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("parallelism {}", parallelism());

    // 1. team_b alone, then beside team_a's flood of 10,000 noop tries.
    let dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(start(dir.path(), 1));
    rt.block_on(run_b(&app, "chain_40", "warm"));
    let (chain_alone, fan_alone) = rt.block_on(measure_b(&app, "alone", 5));
    rt.block_on(common::trigger(&app, A, "flood", "flood"));
    // Once the flood fills the executor.
    while started(&app, A, "flood", "flood") < parallelism() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (chain_flood, fan_flood) = rt.block_on(measure_b(&app, "flood", 5));
    let flood_left = 10_000 - started(&app, A, "flood", "flood");
    println!(
        "team_b chain_40:    alone {chain_alone:>9.1?}   beside the flood {chain_flood:>9.1?}   ({:.2}x)",
        chain_flood.as_secs_f64() / chain_alone.as_secs_f64()
    );
    println!(
        "team_b fanout_200:  alone {fan_alone:>7.0} TI/s beside the flood {fan_flood:>7.0} TI/s ({:.2}x slower)",
        fan_alone / fan_flood
    );
    println!(
        "team_a's flood still had {flood_left} of 10,000 tries not started when team_b was done"
    );
    rt.block_on(common::stop(app));

    // 2. Weights 3:1, both tenants backlogged.
    let dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(start(dir.path(), 3));
    rt.block_on(common::trigger(&app, A, "slow", "s"));
    rt.block_on(common::trigger(&app, B, "slow", "s"));
    // Past the start, when both have filled their shares.
    std::thread::sleep(Duration::from_secs(2));
    let (a0, b0) = (started(&app, A, "slow", "s"), started(&app, B, "slow", "s"));
    std::thread::sleep(Duration::from_secs(10));
    let (a1, b1) = (started(&app, A, "slow", "s"), started(&app, B, "slow", "s"));
    let (a, b) = (a1 - a0, b1 - b0);
    println!(
        "weights 3:1 over 10 s: team_a started {a}, team_b {b}: {:.2}:1",
        a as f64 / b.max(1) as f64
    );
    rt.block_on(common::stop(app));
}
