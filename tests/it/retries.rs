//! Retries and backoff on the simulated clock: tries are numbered from 1, delays grow
//! as `retry_delay * 2^(try-1)` capped by `max_retry_delay` (Airflow's
//! `retry_exponential_backoff`, without its jitter), fatal errors are never retried.

use aileron_model::DagRunState;
use aileron_model::TaskInstanceState::*;
use aileron_tests::{Env, assert_run, assert_states};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_exponentially_on_the_simulated_clock() {
    let dag = r#"
[defaults]
retries = 4
retry_delay = "60s"
retry_exponential_backoff = true
max_retry_delay = "3m"

[tasks.flaky]
operator = "fail"
params = { until_try = 5 }
"#;
    let env = Env::builder().dag("flaky.toml", dag).start().await;
    let wall = std::time::Instant::now();
    let o = env.run("flaky", serde_json::json!({})).await;
    assert_states(&o, &[("flaky", Success)]);
    assert_run(&o, DagRunState::Success);
    let ti = o.ti("flaky");
    assert_eq!(ti.try_number, 5);
    let tries = &ti.tries;
    assert_eq!(tries.len(), 5);
    assert_eq!(
        tries.iter().map(|t| t.state).collect::<Vec<_>>(),
        vec![UpForRetry, UpForRetry, UpForRetry, UpForRetry, Success]
    );
    let gaps: Vec<i64> = tries
        .windows(2)
        .map(|w| w[1].start_date.duration_since(w[0].end_date).as_secs())
        .collect();
    // 60, 120, 240 capped at 180, 480 capped at 180.
    assert_eq!(gaps, vec![60, 120, 180, 180]);
    // Ten minutes of delays cost no real time.
    assert!(wall.elapsed().as_secs() < 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_are_not_retried_and_retries_run_out() {
    let dag = r#"
[defaults]
retries = 2
retry_delay = "10s"

[tasks.fatal]
operator = "fail"
params = { fatal = true, message = "no point retrying" }
[tasks.hopeless]
operator = "fail"
params = { message = "always" }
[tasks.linear]
operator = "fail"
params = { until_try = 3 }
"#;
    let env = Env::builder().dag("fatal.toml", dag).start().await;
    let o = env.run("fatal", serde_json::json!({})).await;
    assert_states(
        &o,
        &[("fatal", Failed), ("hopeless", Failed), ("linear", Success)],
    );
    assert_eq!(o.ti("fatal").try_number, 1);
    assert_eq!(
        o.ti("fatal").tries[0].error.as_deref(),
        Some("no point retrying")
    );
    assert_eq!(o.ti("hopeless").try_number, 3, "retries = 2 allows 3 tries");
    let linear = &o.ti("linear").tries;
    let gaps: Vec<i64> = linear
        .windows(2)
        .map(|w| w[1].start_date.duration_since(w[0].end_date).as_secs())
        .collect();
    assert_eq!(gaps, vec![10, 10], "no backoff unless asked for");
    assert_run(&o, DagRunState::Failed);
}
