//! Throughput and ready-to-running latency through Redis Streams with 1, 2 and 4
//! `aileron worker` processes, against `aileron standalone` as the baseline.
//!
//! `cargo bench -p aileron-tests --bench multinode` (release build; needs
//! `redis-server` on the PATH). Each configuration runs a 2,000-task noop fan-out
//! (throughput) and a 40-task chain (latency on an idle system). Both figures come
//! from timestamps the scheduler stamps with its own clock: `queued_when` when the
//! TaskInstance is committed as queued, `start_date` when its start is applied, so
//! latency covers the commit, the XADD, a worker waking up, the start call and the
//! second commit. On a 2-core machine a scheduler, Redis and 4 workers share the
//! cores: past 2 workers this measures overhead, not scaling.

use aileron_tests::multinode::{Redis, Scheduler, TestDir, Worker};
use aileron_tests::server::{Server, free_port, get, post};
use jiff::Timestamp;
use serde_json::Value;
use std::time::Duration;

const FANOUT: usize = 2000;
const CHAIN: usize = 40;
const SLOTS: u32 = 8;
const PARALLELISM: &str = "64";

fn fanout_dag() -> String {
    let mut s = String::from("[tasks.start]\noperator = \"noop\"\n");
    for i in 0..FANOUT {
        s.push_str(&format!(
            "[tasks.t{i}]\noperator = \"noop\"\nupstream = [\"start\"]\n"
        ));
    }
    s
}

fn chain_dag() -> String {
    let mut s = String::from("[tasks.c0]\noperator = \"noop\"\n");
    for i in 1..CHAIN {
        s.push_str(&format!(
            "[tasks.c{i}]\noperator = \"noop\"\nupstream = [\"c{}\"]\n",
            i - 1
        ));
    }
    s
}

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

struct Figures {
    throughput: f64,
    p50: Duration,
    p95: Duration,
    max: Duration,
}

/// Throughput over the fan-out's tasks and latency percentiles over `tis`.
fn figures(tis: &[Value]) -> Figures {
    let queued: Vec<Timestamp> = tis.iter().filter_map(|t| ts(&t["queued_when"])).collect();
    let ended: Vec<Timestamp> = tis.iter().filter_map(|t| ts(&t["end_date"])).collect();
    let first = queued.iter().min().copied().expect("queued TaskInstances");
    let last = ended.iter().max().copied().expect("ended TaskInstances");
    let span = last.duration_since(first).as_secs_f64().max(1e-6);
    let mut lat: Vec<Duration> = tis
        .iter()
        .filter_map(|t| {
            let d = ts(&t["start_date"])?.duration_since(ts(&t["queued_when"])?);
            Some(d.unsigned_abs())
        })
        .collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Figures {
        throughput: tis.len() as f64 / span,
        p50: pct(0.5),
        p95: pct(0.95),
        max: *lat.last().unwrap(),
    }
}

fn report(label: &str, fan: &Figures, chain: &Figures) {
    println!(
        "{label:<12} fan-out {FANOUT}: {:>7.0} TI/s, latency p50 {:>6.1} ms p95 {:>7.1} ms max {:>7.1} ms | \
         chain {CHAIN}: latency p50 {:>5.1} ms p95 {:>5.1} ms max {:>6.1} ms",
        fan.throughput,
        ms(fan.p50),
        ms(fan.p95),
        ms(fan.max),
        ms(chain.p50),
        ms(chain.p95),
        ms(chain.max)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dags() -> Vec<(String, String)> {
    vec![
        ("fanout.toml".to_owned(), fanout_dag()),
        ("chain.toml".to_owned(), chain_dag()),
    ]
}

/// Triggers `dag_id` through the API at `base` and waits for its TaskInstances.
fn run(base: &str, dag_id: &str, run_id: &str, wait: impl Fn() -> Vec<Value>) -> Vec<Value> {
    post(
        &format!("{base}/dags/{dag_id}/dagRuns"),
        &format!(r#"{{"dag_run_id": "{run_id}"}}"#),
    );
    let tis = wait();
    let failed: Vec<_> = tis.iter().filter(|t| t["state"] != "success").collect();
    assert!(
        failed.is_empty(),
        "{} TaskInstances did not succeed",
        failed.len()
    );
    tis
}

fn standalone() {
    let t = TestDir::new();
    let d = dags();
    let refs: Vec<(&str, &str)> = d.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let home = t.scheduler_home(&refs);
    let server = Server::start(&home, free_port());
    let base = server.base.clone();
    let wait_for = |dag: &str, id: &str| {
        let url = format!("{base}/dags/{dag}/dagRuns/{id}");
        let tis = format!("{base}/dags/{dag}/dagRuns/{id}/taskInstances?limit=10000");
        move || loop {
            if let Some(r) = get(&url)
                && (r["state"] == "success" || r["state"] == "failed")
            {
                return get(&tis).unwrap()["task_instances"]
                    .as_array()
                    .unwrap()
                    .clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let fan = run(&base, "fanout", "bench", wait_for("fanout", "bench"));
    let chain = run(&base, "chain", "bench", wait_for("chain", "bench"));
    report("standalone", &figures(&fan), &figures(&chain));
}

fn cluster(workers: usize) {
    let t = TestDir::new();
    let d = dags();
    let refs: Vec<(&str, &str)> = d.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let home = t.scheduler_home(&refs);
    let redis = Redis::start(&t);
    let scheduler = Scheduler::start(&t, &home, &redis.url, &["--parallelism", PARALLELISM]);
    let _workers: Vec<Worker> = (0..workers)
        .map(|i| {
            Worker::start(
                &t,
                &format!("b{i}"),
                "default",
                SLOTS,
                &redis.url,
                &scheduler.root,
            )
        })
        .collect();
    // Registered and reading before the clock starts.
    while scheduler.workers().len() < workers {
        std::thread::sleep(Duration::from_millis(50));
    }
    let timeout = Duration::from_secs(600);
    let fan = run(&scheduler.base, "fanout", "bench", || {
        scheduler.wait_run("fanout", "bench", timeout)
    });
    let chain = run(&scheduler.base, "chain", "bench", || {
        scheduler.wait_run("chain", "bench", timeout)
    });
    report(
        &format!("{workers} worker{}", if workers == 1 { "" } else { "s" }),
        &figures(&fan),
        &figures(&chain),
    );
}

fn main() {
    // `cargo test --benches` runs this with `--test`-like args; only `cargo bench`
    // (which passes `--bench`) measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "{FANOUT}-task fan-out and {CHAIN}-task chain, {SLOTS} slots per worker, parallelism {PARALLELISM}"
    );
    standalone();
    for n in [1, 2, 4] {
        cluster(n);
    }
}
