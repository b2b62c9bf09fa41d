//! The command line as a user runs it: `aileron dags test` (text and `--json`,
//! exit codes), `aileron tasks test`, and `plugins list|inspect`.

use aileron_tests::aileron_bin;
use serde_json::Value;
use std::process::Command;

fn home_with(dags: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    aileron_tests::server::home_with(dir.path(), dags);
    dir
}

fn aileron(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(aileron_bin())
        .args(args)
        .arg("--home")
        .arg(home)
        .env("AILERON_LOG", "warn")
        .output()
        .unwrap()
}

const OK: &str = r#"
[tasks.hello]
operator = "echo"
params = { message = "hi {{ dag_run.conf.who | default('nobody') }}" }
[tasks.fan]
operator = "echo"
upstream = ["hello"]
expand = { message = ["x", "y"] }
"#;

const BAD: &str = r#"
[tasks.boom]
operator = "fail"
params = { message = "boom" }
"#;

#[test]
fn dags_test_json_reports_every_task_and_exits_zero_on_success() {
    let home = home_with(&[("ok.toml", OK), ("bad.toml", BAD)]);
    let out = aileron(
        home.path(),
        &[
            "dags",
            "test",
            "ok",
            "--json",
            "--conf",
            r#"{"who": "you"}"#,
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(v["dag_id"], "ok");
    assert_eq!(v["state"], "success");
    assert!(v["run_id"].as_str().unwrap().starts_with("manual__"));
    let tis = v["task_instances"].as_array().unwrap();
    assert_eq!(tis.len(), 3);
    let hello = tis.iter().find(|t| t["task_id"] == "hello").unwrap();
    assert_eq!(hello["map_index"], -1);
    assert_eq!(hello["state"], "success");
    assert_eq!(hello["try_number"], 1);
    let mapped: Vec<_> = tis
        .iter()
        .filter(|t| t["task_id"] == "fan")
        .map(|t| t["map_index"].clone())
        .collect();
    assert_eq!(mapped, vec![Value::from(0), Value::from(1)]);

    let out = aileron(home.path(), &["dags", "test", "bad", "--json"]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "failed");
    assert_eq!(v["task_instances"][0]["state"], "failed");

    let out = aileron(home.path(), &["dags", "test", "missing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn tasks_test_runs_one_task_and_prints_its_log() {
    let home = home_with(&[("ok.toml", OK)]);
    let out = aileron(home.path(), &["tasks", "test", "ok", "hello", "2026-03-01"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("hello: success, returned \"hi nobody\""),
        "{stdout}"
    );
    assert!(stdout.contains("hi nobody"), "the log is printed: {stdout}");
}

#[test]
fn plugins_list_and_inspect_show_the_standard_operators() {
    let home = home_with(&[]);
    let out = aileron(home.path(), &["plugins", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for op in ["noop", "echo", "sleep", "fail", "skip", "branch"] {
        assert!(names.contains(&op), "{op} missing from {names:?}");
    }
    let out = aileron(home.path(), &["plugins", "inspect", "echo"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "echo");
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        v["params_schema"]["properties"]["message"]["type"],
        "string"
    );
}
