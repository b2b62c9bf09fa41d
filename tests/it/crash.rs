//! Durability: `kill -9` of a real `aileron standalone` mid-run, then a restart.
//! Nothing committed is lost, and tries that were running are failed and retried
//! where retries remain (as Airflow treats tasks whose worker vanished), never left
//! `running`.

use aileron_tests::server::{Server, free_port, get, home_with, post};
use serde_json::Value;
use std::time::{Duration, Instant};

const DAG: &str = r#"
[tasks.first]
operator = "noop"
[tasks.long_no_retry]
operator = "testkit"
upstream = ["first"]
params = { mode = "sleep", seconds = 3 }
[tasks.long_with_retry]
operator = "testkit"
upstream = ["first"]
params = { mode = "sleep", seconds = 3 }
retries = 1
retry_delay = "0s"
"#;

fn ti_states(base: &str, run: &str) -> Vec<(String, Value, u64)> {
    let v = get(&format!("{base}/dags/crashy/dagRuns/{run}/taskInstances")).unwrap();
    v["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap().to_owned(),
                t["state"].clone(),
                t["try_number"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn kill_9_mid_run_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    home_with(&home, &[("crashy.toml", DAG)]);

    let port = free_port();
    let server = Server::start(&home, port);
    let base = server.base.clone();
    let run = post(
        &format!("{base}/dags/crashy/dagRuns"),
        r#"{"dag_run_id": "r1"}"#,
    );
    assert_eq!(run["dag_run_id"], "r1");
    // Wait until both long tasks run, then kill the process outright.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states = ti_states(&base, "r1");
        let running = states.iter().filter(|(_, s, _)| s == "running").count();
        if running == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "tasks never ran: {states:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();

    let server = Server::start(&home, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = get(&format!("{}/dags/crashy/dagRuns/r1", server.base)).unwrap();
        if run["state"] == "failed" || run["state"] == "success" {
            break run;
        }
        assert!(Instant::now() < deadline, "run never finished: {run}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let states = ti_states(&server.base, "r1");
    let find = |t: &str| states.iter().find(|(id, _, _)| id == t).unwrap().clone();
    // Committed before the crash: kept.
    assert_eq!(find("first").1, "success");
    // Running at the crash, no retries: failed, not left running.
    assert_eq!(find("long_no_retry").1, "failed");
    assert_eq!(find("long_no_retry").2, 1);
    // Running at the crash with a retry left: tried again and succeeded.
    assert_eq!(find("long_with_retry").1, "success");
    assert_eq!(find("long_with_retry").2, 2);
    assert_eq!(run["state"], "failed");
    let ti = get(&format!(
        "{}/dags/crashy/dagRuns/r1/taskInstances/long_no_retry",
        server.base
    ))
    .unwrap();
    let error = ti["tries"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("stopped while this try was running"), "{ti}");
}
