//! Durability: `kill -9` of a real `aileron standalone` mid-run, then a restart.
//! Nothing committed is lost, and tries that were running are failed and retried
//! where retries remain (as Airflow treats tasks whose worker vanished), never left
//! `running`.

use aileron_tests::{aileron_bin, cache_dir};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(home: &std::path::Path, port: u16) -> Self {
        let child = Command::new(aileron_bin())
            .args(["standalone", "--port", &port.to_string()])
            .arg("--home")
            .arg(home)
            .env("AILERON_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aileron binary runs");
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let s = Self { child, base };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if get(&format!("{}/health", self.base)).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not come up");
    }

    fn kill9(mut self) {
        // SIGKILL: no shutdown code runs, exactly like `kill -9`.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client over a TCP socket: enough for this test, and it keeps
/// the test free of tools a fresh machine may lack.
fn http(method: &str, url: &str, body: Option<&str>) -> Option<(u16, Value)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(payload).ok()?))
}

fn get(url: &str) -> Option<Value> {
    http("GET", url, None)
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
}

fn post(url: &str, body: &str) -> Value {
    let (status, v) = http("POST", url, Some(body)).expect("POST answered");
    assert_eq!(status, 200, "POST {url}: {v}");
    v
}

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
    std::fs::create_dir_all(home.join("dags")).unwrap();
    std::fs::create_dir_all(home.join("plugins")).unwrap();
    std::fs::write(home.join("dags/crashy.toml"), DAG).unwrap();
    std::fs::copy(
        aileron_tests::guests::TESTKIT,
        home.join("plugins/testkit.wasm"),
    )
    .unwrap();
    // Share the compiled-component cache with the other tests.
    let _ = std::fs::create_dir_all(cache_dir());
    let _ = std::os::unix::fs::symlink(cache_dir(), home.join("cache"));

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
