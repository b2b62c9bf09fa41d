//! The standard `http_sensor` operator end to end through the scheduler: a tiny
//! HTTP server on 127.0.0.1 answers 503 a few times, then 200; the sensor
//! reschedules (same try) until it is ready and returns the status and body. Without
//! the task's `allow_hosts` grant, or without the host letting tasks reach private
//! addresses, the request never leaves the sandbox and the task fails at once,
//! whatever its retries.

use aileron::scheduler::Update;
use aileron_model::TenantId;
use aileron_model::{DagRunState, TaskInstanceState as S};
use aileron_tests::http_peer::{Opening, read_head};
use aileron_tests::{Env, Outcome};
use jiff::SignedDuration;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A server on 127.0.0.1: the first `failures` requests are answered 503, the
/// others 200 with `body`. Its port, and the request lines it received.
async fn serve(failures: usize, body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let Opening::Head(head) = read_head(&mut stream).await else {
                    return;
                };
                let line = head.lines().next().unwrap_or_default().to_owned();
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(line);
                    seen.len()
                };
                let response = if n <= failures {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, requests)
}

/// A DAG whose `wait` task pokes `http://127.0.0.1:<port>/ready` every 30 s, with
/// `allow_hosts` as given (TOML), then `after`.
fn dag(port: u16, allow_hosts: &str) -> String {
    format!(
        r#"
[tasks.wait]
operator = "http_sensor"
allow_hosts = {allow_hosts}
retries = 2
retry_delay = "1m"
params = {{ url = "http://127.0.0.1:{port}/ready", poke_interval = 30, response_contains = "ready" }}

[tasks.after]
operator = "noop"
upstream = ["wait"]
"#
    )
}

/// Runs the DAG; its outcome, and the (state, try) updates of `wait` in order.
async fn run(env: &Env, dag_id: &str) -> (Outcome, Vec<(S, u32)>) {
    let mut updates = env.app.scheduler.subscribe();
    let outcome = env.run(dag_id, json!({})).await;
    let mut seen = Vec::new();
    while let Ok(u) = updates.try_recv() {
        if let Update::TaskInstance {
            dag_id: d,
            task_id,
            state,
            try_number,
            ..
        } = u
            && d == dag_id
            && task_id == "wait"
        {
            seen.push((state, try_number));
        }
    }
    (outcome, seen)
}

fn return_value(env: &Env, o: &Outcome, task_id: &str) -> Option<Value> {
    env.app
        .metastore
        .xcom(
            TenantId::DEFAULT,
            &o.run.dag_id,
            &o.run.run_id,
            task_id,
            "return_value",
        )
        .unwrap()
        .into_iter()
        .find(|(m, _)| *m == -1)
        .map(|(_, v)| serde_json::from_str(&v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pokes_until_the_server_is_ready_in_one_try() {
    let (port, requests) = serve(2, "ready at last").await;
    let env = Env::builder()
        .dag("ready.toml", &dag(port, &format!("[\"127.0.0.1:{port}\"]")))
        .allow_private_ips()
        .start()
        .await;
    assert!(env.import_errors().is_empty(), "{:?}", env.import_errors());

    let (o, seen) = run(&env, "ready").await;
    assert_eq!(o.run.state, DagRunState::Success);
    assert_eq!(o.state("after"), S::Success);
    let wait = o.ti("wait");
    assert_eq!((wait.state, wait.try_number), (S::Success, 1));

    // Two 503s, then the 200: three pokes of the same try, 30 s apart on the
    // simulated clock.
    assert_eq!(
        *requests.lock().unwrap(),
        vec!["GET /ready HTTP/1.1"; 3],
        "requests the server got"
    );
    let tries: Vec<(S, u32)> = wait.tries.iter().map(|t| (t.state, t.try_number)).collect();
    assert_eq!(
        tries,
        [
            (S::UpForReschedule, 1),
            (S::UpForReschedule, 1),
            (S::Success, 1)
        ]
    );
    assert_eq!(
        wait.tries[1]
            .start_date
            .duration_since(wait.tries[0].start_date),
        SignedDuration::from_secs(30),
        "poke_interval"
    );
    assert!(
        seen.contains(&(S::UpForReschedule, 1)) && seen.iter().all(|(_, t)| *t <= 1),
        "updates of `wait`: {seen:?}"
    );
    assert_eq!(
        return_value(&env, &o, "wait"),
        Some(json!({"status": 200, "body": "ready at last"}))
    );
    let log = env.log(wait, 1);
    assert!(log.contains("status 200"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_task_was_not_granted_fails_at_once() {
    let (port, requests) = serve(0, "ready").await;
    let env = Env::builder()
        .dag("no_grant.toml", &dag(port, "[\"example.com\"]"))
        .dag("no_list.toml", &dag(port, "[]"))
        .allow_private_ips()
        .start()
        .await;
    assert!(env.import_errors().is_empty(), "{:?}", env.import_errors());

    for dag_id in ["no_grant", "no_list"] {
        let (o, _) = run(&env, dag_id).await;
        assert_eq!(o.run.state, DagRunState::Failed, "{dag_id}");
        assert_eq!(o.state("after"), S::UpstreamFailed, "{dag_id}");
        let wait = o.ti("wait");
        assert_eq!(
            (wait.state, wait.try_number, wait.tries.len()),
            (S::Failed, 1, 1),
            "{dag_id}: a refusal is not retried (retries = 2)"
        );
        let error = wait.tries[0].error.clone().unwrap_or_default();
        assert!(
            error.contains("refused by the host") && error.contains("allow_hosts"),
            "{dag_id}: {error}"
        );
        let log = env.log(wait, 1);
        assert!(log.contains("denied"), "{dag_id}: {log}");
    }
    assert!(
        requests.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_needs_the_hosts_permission() {
    let (port, requests) = serve(0, "ready").await;
    // The task's grant names 127.0.0.1, but the host does not let tasks reach
    // loopback or private addresses (the default).
    let env = Env::builder()
        .dag(
            "loopback.toml",
            &dag(port, &format!("[\"127.0.0.1:{port}\"]")),
        )
        .start()
        .await;
    assert!(env.import_errors().is_empty(), "{:?}", env.import_errors());

    let (o, _) = run(&env, "loopback").await;
    assert_eq!(o.run.state, DagRunState::Failed);
    let wait = o.ti("wait");
    assert_eq!(
        (wait.state, wait.try_number, wait.tries.len()),
        (S::Failed, 1, 1)
    );
    let error = wait.tries[0].error.clone().unwrap_or_default();
    assert!(error.contains("refused by the host"), "{error}");
    let log = env.log(wait, 1);
    assert!(log.contains("private"), "{log}");
    assert!(
        requests.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
}
