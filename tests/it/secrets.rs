//! Connections encrypted at rest, with a real server: a connection stored over
//! the API is not in the metastore file in the clear; with the server stopped,
//! `aileron db rotate-key` seals it again under a new key file; after a restart
//! an operator still gets it.

use aileron_tests::aileron_bin;
use aileron_tests::server::{Server, free_port, get, home_with, post};
use std::process::Command;

const DAG: &str = r#"
[tasks.c]
operator = "testkit"
params = { mode = "connection", conn_id = "pg" }
"#;

const PASSWORD: &str = "s3cr3t-pw-8c1f";

/// Triggers a run of `conn` and waits (bounded) for its return value.
fn connection_seen_by_an_operator(server: &Server, run_id: &str) -> serde_json::Value {
    post(
        &format!("{}/dags/conn/dagRuns", server.base),
        &format!(r#"{{"dag_run_id": "{run_id}"}}"#),
    );
    let url = format!("{}/dags/conn/dagRuns/{run_id}", server.base);
    crate::cli::wait_for(&url, |run| run["state"] == "success");
    get(&format!(
        "{}/dags/conn/dagRuns/{run_id}/taskInstances/c/xcomEntries/return_value",
        server.base
    ))
    .expect("the XCom")
}

/// `aileron db rotate-key` on `home`.
fn rotate_key(home: &std::path::Path) -> std::process::Output {
    Command::new(aileron_bin())
        .args(["db", "rotate-key", "--home"])
        .arg(home)
        .env("AILERON_LOG", "warn")
        .output()
        .unwrap()
}

fn file_holds(path: &std::path::Path, text: &str) -> bool {
    std::fs::read(path)
        .unwrap()
        .windows(text.len())
        .any(|w| w == text.as_bytes())
}

#[test]
fn connections_are_sealed_on_disk_and_the_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    home_with(home, &[("conn.toml", DAG)]);
    let port = free_port();
    let server = Server::start(home, port);
    post(
        &format!("{}/connections", server.base),
        &format!(
            r#"{{"conn_id": "pg", "conn_type": "postgres", "host": "db", "password": "{PASSWORD}", "exposed": true}}"#
        ),
    );
    server.kill9();

    // (Checked before any operator ran: this test operator returns what it
    // got as its XCom, which is stored like any return value.)
    let db = aileron::app::metastore_path(home);
    let key_file = home.join("connections.key");
    assert!(
        !file_holds(&db, PASSWORD),
        "the password is in the metastore file"
    );
    let key = std::fs::read_to_string(&key_file).unwrap();

    let out = rotate_key(home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sealed 1 connection(s) under a new key"),
        "{stdout}"
    );
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), key);

    // The server comes back with the new key; the operator still gets it.
    let server = Server::start(home, port);
    let seen = connection_seen_by_an_operator(&server, "r1");
    assert!(seen["value"].to_string().contains(PASSWORD), "{seen}");

    // While it runs, the file is locked: the command says why it cannot go on.
    let out = rotate_key(home);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop it first"), "{stderr}");
}
