//! Airflow's own Python clients against a real server, as an Airflow user's
//! scripts use them: `apache-airflow-client` 3 over `/api/v2` with a token
//! from `/auth/token`, 2 over `/api/v1` with basic auth, and `airflowctl`
//! (`tests/clients/airflow_v3.py`, `airflow_v2.py` and `airflowctl.py` hold
//! the calls and what each must answer). `.ci/airflow-clients` installs the clients.

use crate::access::Server;
use aileron_model::TenantId;
use aileron_tests::Env;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};

const CLIENT_DAG: &str = r#"
tags = ["clients"]
[tasks.greet]
operator = "echo"
params = { message = "hello {{ dag_run.conf.greeting | default('nobody') }}" }
[tasks.fan]
operator = "echo"
expand = { message = ["a", "b"] }
"#;

/// A scheduled DAG for backfills, whose runs take a few seconds each: a
/// backfill of it is still going when the calls after its creation pause,
/// unpause and cancel it.
const DAILY_DAG: &str = r#"
schedule = "@daily"
start_date = "2026-01-01"
[tasks.a]
operator = "sleep"
params = { seconds = 5 }
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The virtualenv's Python of client `version` (`v2`, `v3`).
fn python(version: &str) -> PathBuf {
    let python = repo().join(format!("target/airflow-clients/{version}/bin/python"));
    assert!(
        python.is_file(),
        "{} is missing: run .ci/airflow-clients first",
        python.display()
    );
    python
}

/// Airflow 3's OpenAPI document for `/api/v2`, which `.ci/airflow-clients`
/// takes out of the `apache-airflow-core` wheel of the client's version.
fn airflow_spec() -> PathBuf {
    let spec = repo().join("target/airflow-clients/airflow-3.3.2-v2.yaml");
    assert!(
        spec.is_file(),
        "{} is missing: run .ci/airflow-clients first",
        spec.display()
    );
    spec
}

/// Runs `script` (in `tests/clients/`) with the server's root URL, a user's
/// credentials and `extra` arguments; its output when it exits 0.
async fn run_script(version: &str, script: &str, root: String, extra: &[&Path]) -> String {
    let (python, script) = (python(version), repo().join("tests/clients").join(script));
    let extra: Vec<PathBuf> = extra.iter().map(|p| p.to_path_buf()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([root.as_str(), "ada", "a good password"])
            .env("AILERON_ADMIN_PASSWORD", aileron_tests::TEST_ADMIN_PASSWORD)
            .args(extra)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}",
        script = "the client script"
    );
    stdout
}

/// A server with the client DAG, a daily one and a file that does not parse, and an Admin of the default tenant who signs in with a password.
async fn server() -> (Env, Server) {
    let env = Env::builder()
        .dag("client_dag.toml", CLIENT_DAG)
        .dag("daily_dag.toml", DAILY_DAG)
        .dag("broken.toml", "[tasks.a]\noperator = ")
        .start()
        .await;
    let (server, _) = Server::start(&env).await;
    server
        .admin(
            TenantId::DEFAULT,
            Method::POST,
            "/api/v1/users",
            json!({ "username": "ada", "password": "a good password",
                    "roles": { TenantId::DEFAULT: "Admin" } }),
        )
        .await;
    (env, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_airflow_3_client_lists_triggers_waits_and_reads_through_api_v2() {
    let (_env, server) = server().await;
    let out = run_script("v3", "airflow_v3.py", server.root().to_owned(), &[]).await;
    assert_eq!(out.trim(), "ok");
    // On what the client left behind: every v2 operation's answer against the
    // schemas of Airflow's own document.
    let spec = airflow_spec();
    let out = run_script(
        "v3",
        "v2_conformance.py",
        server.root().to_owned(),
        &[spec.as_path()],
    )
    .await;
    assert!(out.trim().starts_with("ok "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_airflow_2_client_lists_triggers_waits_and_reads_through_api_v1() {
    let (_env, server) = server().await;
    let out = run_script("v2", "airflow_v2.py", server.root().to_owned(), &[]).await;
    assert_eq!(out.trim(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflowctl_signs_in_lists_triggers_and_reads_through_api_v2() {
    let (_env, server) = server().await;
    let out = run_script("ctl", "airflowctl.py", server.root().to_owned(), &[]).await;
    assert_eq!(out.trim(), "ok");
}
