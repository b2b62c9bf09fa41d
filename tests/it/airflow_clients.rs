//! Airflow's own Python clients against a real server, as an Airflow user's
//! scripts use them: `apache-airflow-client` 3 over `/api/v2` with a token
//! from `/auth/token` (`tests/clients/airflow_v3.py` holds the calls and what
//! each must answer). `.ci/airflow-clients` installs the clients.

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

/// Runs `script` (in `tests/clients/`) with the server's root URL and a user's
/// credentials; its output when it exits 0.
async fn run_script(version: &str, script: &str, root: String) -> String {
    let (python, script) = (python(version), repo().join("tests/clients").join(script));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([root.as_str(), "ada", "a good password"])
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

/// A server with the client DAG (paused, as DAGs start) and a file that does
/// not parse, and an Admin of the default tenant who signs in with a password.
async fn server() -> (Env, Server) {
    let env = Env::builder()
        .dag("client_dag.toml", CLIENT_DAG)
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
    let out = run_script("v3", "airflow_v3.py", server.root().to_owned()).await;
    assert_eq!(out.trim(), "ok");
}
