//! Operators written in Python and JavaScript: the examples in
//! `plugins/examples/` tested and built with the real `aileron plugins test`
//! and `plugins build` (componentize-py, componentize-js), then run in a real
//! server beside Rust operators: XCom across the three languages, HTTP through
//! `allow_hosts` to a local server and refused elsewhere, and errors (an
//! uncaught Python exception, a JavaScript `Fatal`) failing their own try with
//! a readable reason.
//!
//! The toolchains are pinned in the examples' manifests and installed by
//! `.ci/sdk-toolchains` (into `target/sdk-toolchains/` and
//! `plugins/examples/node_modules/`).

use aileron_model::{DagRunState, TaskInstanceState as S, TenantId};
use aileron_tests::http_peer::{Opening, read_head};
use aileron_tests::{Env, Outcome, aileron_bin};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const EXAMPLES: [&str; 4] = ["py_greet", "py_fetch", "js_greet", "js_fetch"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `aileron plugins <args>` with the pinned toolchains first on the PATH.
fn plugins(args: &[&str], dir: &Path, home: &Path) -> std::process::Output {
    let toolchains = repo().join("target/sdk-toolchains/py/bin");
    assert!(
        toolchains.join("componentize-py").is_file()
            && repo().join("plugins/examples/node_modules").is_dir(),
        "the SDK toolchains are not installed: run .ci/sdk-toolchains"
    );
    let path = std::env::join_paths(std::iter::once(toolchains).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    Command::new(aileron_bin())
        .arg("plugins")
        .args(args)
        .arg(dir)
        .env("PATH", path)
        .env("AILERON_HOME", home)
        .env("AILERON_LOG", "warn")
        .output()
        .unwrap()
}

/// Each example tested and built once per test process; the components' paths.
fn built() -> &'static [PathBuf] {
    static BUILT: OnceLock<Vec<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        // A home whose cache is the tests' shared one: the build's check
        // compiles each component there, once, for every server below.
        let home = tempfile::tempdir().unwrap();
        aileron_tests::server::home_with(home.path(), &[]);
        EXAMPLES
            .iter()
            .map(|example| {
                let dir = repo().join("plugins/examples").join(example);
                for step in ["test", "build"] {
                    let out = plugins(&[step], &dir, home.path());
                    assert!(
                        out.status.success(),
                        "aileron plugins {step} {example}:\n{}\n{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let component = dir.join(format!("dist/{example}.wasm"));
                assert!(component.is_file(), "{} was not built", component.display());
                component
            })
            .collect()
    })
}

async fn env_with(dags: &[(&str, &str)]) -> Env {
    let components = tokio::task::spawn_blocking(built).await.unwrap();
    let mut builder = Env::builder().allow_private_ips();
    for component in components {
        builder = builder.plugin(component.to_str().unwrap());
    }
    for (file, text) in dags {
        builder = builder.dag(file, text);
    }
    let env = builder.start().await;
    assert!(env.import_errors().is_empty(), "{:?}", env.import_errors());
    env
}

fn return_value(env: &Env, o: &Outcome, task_id: &str) -> Option<Value> {
    let xcom = env.app.metastore.xcom(
        TenantId::DEFAULT,
        &o.run.dag_id,
        &o.run.run_id,
        task_id,
        "return_value",
    );
    let value = xcom.unwrap().into_iter().find(|(m, _)| *m == -1)?.1;
    Some(serde_json::from_str(&value).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_javascript_and_python_tasks_hand_on_xcom() {
    let mixed = std::fs::read_to_string(repo().join("plugins/examples/dags/mixed.toml")).unwrap();
    let env = env_with(&[("mixed.toml", &mixed)]).await;
    let o = env.run("mixed", json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success, "{:?}", o.tis);
    assert_eq!(
        return_value(&env, &o, "js_greet"),
        Some(json!("Hello, Ada!"))
    );
    assert_eq!(
        return_value(&env, &o, "report"),
        Some(json!(
            "py_greet greeted Ada: Hi again, Ada! (js_greet said: Hello, Ada!)"
        ))
    );
    let log = env.log(o.ti("py_greet"), 1);
    assert!(log.contains("Hi again, Ada!"), "{log}");
}

/// Serves `{"data": {"name": "aileron"}}` to every GET on 127.0.0.1; its port.
async fn json_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Opening::Head(_) = read_head(&mut stream).await {
                    let body = r#"{"data": {"name": "aileron"}}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    port
}

fn fetch_dag(port: u16, allow_hosts: &str) -> String {
    format!(
        r#"
[defaults]
allow_hosts = {allow_hosts}
memory_limit = "16MiB"
[tasks.py]
operator = "py_fetch"
params = {{ url = "http://127.0.0.1:{port}/doc.json", field = "data.name" }}
[tasks.js]
operator = "js_fetch"
params = {{ url = "http://127.0.0.1:{port}/doc.json", field = "data.name" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_fetch_only_from_allowed_hosts() {
    let port = json_server().await;
    let env = env_with(&[
        (
            "fetch.toml",
            &fetch_dag(port, &format!("[\"127.0.0.1:{port}\"]")),
        ),
        ("refused.toml", &fetch_dag(port, "[\"api.example.com\"]")),
    ])
    .await;
    let o = env.run("fetch", json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success, "{:?}", o.tis);
    assert_eq!(
        return_value(&env, &o, "py"),
        Some(json!({"status": 200, "value": "aileron"}))
    );
    assert_eq!(
        return_value(&env, &o, "js"),
        Some(json!({"status": 200, "data.name": "aileron"}))
    );

    let o = env.run("refused", json!({})).await;
    assert_eq!(o.run.state, DagRunState::Failed);
    for task in ["py", "js"] {
        let ti = o.ti(task);
        assert_eq!(ti.state, S::Failed, "{task}");
        let error = ti.tries[0].error.clone().unwrap_or_default();
        assert!(error.contains("HttpError"), "{task}: {error}");
        let log = env.log(ti, 1);
        assert!(
            log.contains("not in the task's allow_hosts"),
            "{task}: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_python_and_javascript_fail_their_own_try_readably() {
    let dag = r#"
[tasks.py_bug]
operator = "py_greet"
params = { name = "Ada", template = "Hello, {nme}!" }
memory_limit = "16MiB"
[tasks.js_fatal]
operator = "js_greet"
params = { upstream = "nobody" }
retries = 2
memory_limit = "16MiB"
[tasks.fine]
operator = "echo"
params = { message = "unaffected" }
"#;
    let env = env_with(&[("errors.toml", dag)]).await;
    let o = env.run("errors", json!({})).await;
    assert_eq!(o.state("fine"), S::Success);
    // An uncaught exception: failed with its type and message, its traceback
    // in the log.
    let py = o.ti("py_bug");
    assert_eq!(py.state, S::Failed);
    let error = py.tries[0].error.clone().unwrap_or_default();
    assert!(error.starts_with("KeyError: 'nme'"), "{error}");
    let log = env.log(py, 1);
    assert!(log.contains("Traceback"), "{log}");
    // A `Fatal` thrown in JavaScript: failed at once despite retries, with
    // the operator's message, not a wasm trap.
    let js = o.ti("js_fatal");
    assert_eq!((js.state, js.tries.len()), (S::Failed, 1));
    let error = js.tries[0].error.clone().unwrap_or_default();
    assert!(error.contains("`nobody` returned nothing"), "{error}");
    assert!(!error.contains("unreachable"), "{error}");
}
