//! Scheduled runs on the simulated clock: catchup creates one run per missed data
//! interval, each with the right interval and logical date (Airflow's data-interval
//! timetables: a run covers [start, end) and runs once `end` has passed).

use aileron_model::DagRunState;
use aileron_tests::{Env, t0};
use jiff::Timestamp;
use std::time::Duration;

async fn wait_for_runs(env: &Env, dag_id: &str, n: usize) -> Vec<aileron::metastore::DagRun> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = env.app.metastore.dag_runs("default", dag_id).unwrap();
        if runs.len() >= n && runs.iter().all(|r| r.state.is_finished()) {
            return runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs so far: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_creates_every_missed_interval() {
    // The clock starts at 2026-01-05T00:00Z; the DAG starts on the 1st.
    let dag = r#"
schedule = "@daily"
start_date = "2026-01-01"
catchup = true
[tasks.t]
operator = "noop"
"#;
    let env = Env::builder()
        .dag("daily.toml", dag)
        .scheduled()
        .start()
        .await;
    let runs = wait_for_runs(&env, "daily", 4).await;
    let intervals: Vec<(Timestamp, Timestamp)> = runs
        .iter()
        .map(|r| (r.data_interval.start, r.data_interval.end))
        .collect();
    assert_eq!(
        intervals,
        vec![
            (ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z")),
            (ts("2026-01-02T00:00:00Z"), ts("2026-01-03T00:00:00Z")),
            (ts("2026-01-03T00:00:00Z"), ts("2026-01-04T00:00:00Z")),
            (ts("2026-01-04T00:00:00Z"), ts("2026-01-05T00:00:00Z")),
        ]
    );
    for r in &runs {
        assert_eq!(r.logical_date, r.data_interval.start);
        assert_eq!(r.state, DagRunState::Success);
        let day = r.logical_date.strftime("%Y-%m-%d");
        assert_eq!(r.run_id, format!("scheduled__{day}T00:00:00+00:00"));
    }
    // Moving the clock a day on makes exactly one more run.
    env.clock.set(t0() + jiff::SignedDuration::from_hours(24));
    env.app.scheduler.sync().await.unwrap();
    let runs = wait_for_runs(&env, "daily", 5).await;
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[4].data_interval.start, ts("2026-01-05T00:00:00Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_catchup_only_the_latest_interval_runs() {
    let dag = r#"
schedule = "0 6 * * *"
start_date = "2025-12-01"
timezone = "Europe/Berlin"
[tasks.t]
operator = "noop"
"#;
    let env = Env::builder()
        .dag("latest.toml", dag)
        .scheduled()
        .start()
        .await;
    let runs = wait_for_runs(&env, "latest", 1).await;
    // 06:00 Berlin is 05:00Z in winter; the latest complete interval before
    // 2026-01-05T00:00Z is [01-03 05:00Z, 01-04 05:00Z).
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].data_interval.start, ts("2026-01-03T05:00:00Z"));
    assert_eq!(runs[0].data_interval.end, ts("2026-01-04T05:00:00Z"));
}
