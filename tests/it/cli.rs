//! The command line as a user runs it: `aileron dags test` (text and `--json`,
//! exit codes), `aileron tasks test`, `plugins list|inspect`, and against a real
//! `aileron standalone`: `dags backfill` (dry run, `--no-wait --json`, followed to
//! the end, exit codes) and `tasks clear`.

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

#[test]
fn a_rebuild_replaces_its_version_and_remove_local_takes_it_out() {
    use aileron_tests::guests::{VERSIONED_V1, rebuilt};
    let home = home_with(&[("uses.toml", "[tasks.v]\noperator = \"versioned@1.0.0\"\n")]);
    let dir = tempfile::tempdir().unwrap();
    let second = dir.path().join("versioned.wasm");
    std::fs::write(&second, rebuilt(VERSIONED_V1, "again")).unwrap();
    let second = second.to_str().unwrap();
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let ok = |args: &[&str]| {
        let out = aileron(home.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        text(&out)
    };
    let versioned = |args: &[&str]| -> Vec<String> {
        let v: Value = serde_json::from_str(&ok(args)).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "versioned")
            .map(|p| p["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let stored = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        home.path()
            .join(format!("plugins/store/sha256-{hex}.wasm"))
            .exists()
    };
    ok(&["plugins", "add", VERSIONED_V1]);
    let old = versioned(&["plugins", "list", "--json"]).remove(0);

    // A plain add of the rebuild is refused; --replace takes the version over.
    let out = aileron(home.path(), &["plugins", "add", second]);
    assert!(!out.status.success());
    assert!(text(&out).contains("new version"), "{}", text(&out));
    let said = ok(&["plugins", "add", "--replace", second]);
    assert!(said.contains("Removed versioned@1.0.0"), "{said}");
    let now = versioned(&["plugins", "list", "--json"]);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], old);
    assert!(!stored(&old) && stored(&now[0]));

    // The DAG runs the rebuild; once removed, it has nothing to run.
    assert!(ok(&["dags", "test", "uses"]).contains("success"));
    ok(&["plugins", "remove", "--local", "versioned@1.0.0"]);
    assert!(versioned(&["plugins", "list", "--json"]).is_empty());
    assert!(!stored(&now[0]));
    let out = aileron(home.path(), &["dags", "test", "uses"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("versioned"), "{}", text(&out));
    // A tenant's own copy goes from that tenant alone.
    ok(&["plugins", "add", "--tenant", "team_x", VERSIONED_V1]);
    let team_x = ["plugins", "list", "--json", "--tenant", "team_x"];
    assert_eq!(versioned(&team_x).len(), 1);
    let out = aileron(
        home.path(),
        &["plugins", "remove", "--local", "versioned@1.0.0"],
    );
    assert!(!out.status.success(), "the global scope has none left");
    ok(&[
        "plugins",
        "remove",
        "--local",
        "--tenant",
        "team_x",
        "versioned@1.0.0",
    ]);
    assert!(versioned(&team_x).is_empty());
}

/// `aileron` against a running server (no `--home`: these commands only talk to it).
/// Signed in as the platform admin with a session token from `POST /auth/token`.
fn aileron_at(server: &aileron_tests::server::Server, args: &[&str]) -> std::process::Output {
    let body = format!(
        r#"{{"username": "admin", "password": "{}"}}"#,
        aileron_tests::TEST_ADMIN_PASSWORD
    );
    let (status, answer) = aileron_tests::server::http_as(
        None,
        "POST",
        &format!("{}/auth/token", server.root),
        Some(&body),
    )
    .expect("POST /auth/token answered");
    assert_eq!(status, 201, "{answer}");
    Command::new(aileron_bin())
        .args(args)
        .arg("--server")
        .arg(&server.root)
        .env("AILERON_LOG", "warn")
        .env("AILERON_TOKEN", answer["access_token"].as_str().unwrap())
        .output()
        .unwrap()
}

const DAILY: &str = r#"
schedule = "@daily"
start_date = "2025-01-01"
[tasks.a]
operator = "echo"
params = { message = "day {{ ds }}" }
[tasks.b]
operator = "noop"
upstream = ["a"]
"#;

const DAILY_FAILING: &str = r#"
schedule = "@daily"
start_date = "2025-01-01"
[tasks.boom]
operator = "fail"
params = { message = "boom" }
"#;

/// Polls the server until backfill `id` is complete; its JSON.
fn wait_backfill(server: &aileron_tests::server::Server, id: u64) -> Value {
    wait_for(&format!("{}/backfills/{id}", server.base), |b| {
        !b["completed_at"].is_null()
    })
}

/// Polls a GET of the server (bounded) until its JSON answer satisfies `done`.
pub(crate) fn wait_for(url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let v = aileron_tests::server::get(url).expect("the server answers");
        if done(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{url}: {v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn dags_backfill_plans_creates_and_follows_a_backfill() {
    let home = home_with(&[("daily.toml", DAILY), ("failing.toml", DAILY_FAILING)]);
    let port = aileron_tests::server::free_port();
    let server = aileron_tests::server::Server::start(home.path(), port);
    let range = ["--from", "2025-02-01", "--to", "2025-02-03"];

    // A dry run creates nothing.
    let mut args = vec!["dags", "backfill", "daily"];
    args.extend(range);
    args.extend(["--dry-run", "--json"]);
    let out = aileron_at(&server, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["backfill"], Value::Null);
    let plan = v["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 3, "{v}");
    assert!(plan.iter().all(|d| d["action"] == "create"), "{v}");
    assert!(
        plan[0]["logical_date"]
            .as_str()
            .unwrap()
            .starts_with("2025-02-01")
    );

    // --no-wait: created, answered at once.
    let mut args = vec!["dags", "backfill", "daily"];
    args.extend(range);
    args.extend(["--no-wait", "--json", "--max-active-runs", "2"]);
    args.extend(["--conf", r#"{"k": 1}"#]);
    let out = aileron_at(&server, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["plan"].as_array().unwrap().len(), 3);
    let b = &v["backfill"];
    assert_eq!(b["dag_id"], "daily");
    assert_eq!(b["total_runs"], 3, "{v}");
    assert_eq!(b["max_active_runs"], 2);
    assert_eq!(b["dag_run_conf"], serde_json::json!({"k": 1}));
    let id = b["id"].as_u64().unwrap();
    let done = wait_backfill(&server, id);
    assert_eq!(done["runs_by_state"]["success"], 3, "{done}");

    // Followed to the end (stdout is a pipe: one line per change, no bar), the
    // existing runs re-run with `all`.
    let mut args = vec!["dags", "backfill", "daily"];
    args.extend(range);
    args.extend(["--reprocess", "all"]);
    let out = aileron_at(&server, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0 to create, 3 to re-run, 0 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("3/3 runs done: 3 success"), "{stdout}");
    assert!(
        stdout.contains("is complete: 3 runs, 3 success, 0 failed"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\r'),
        "no progress bar into a pipe: {stdout:?}"
    );

    // A backfill whose runs fail exits 1 and names them.
    let mut args = vec!["dags", "backfill", "failing"];
    args.extend(["--from", "2025-02-01", "--to", "2025-02-02"]);
    let out = aileron_at(&server, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 failed"), "{stdout}");
    assert!(
        stdout.contains("Failed runs:\n  backfill__2025-02-01T00:00:00+00:00"),
        "{stdout}"
    );

    // Refusals come from the server, as errors with its detail.
    let out = aileron_at(
        &server,
        &[
            "dags",
            "backfill",
            "nope",
            "--from",
            "2025-02-01",
            "--to",
            "2025-02-02",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
    let out = aileron_at(
        &server,
        &[
            "dags",
            "backfill",
            "daily",
            "--from",
            "soon",
            "--to",
            "2025-02-02",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from"),
        "{out:?}"
    );

    // `tasks clear` through the same server: a dry run lists, a real one clears.
    let run = done["run_ids"][0].as_str().unwrap().to_owned();
    let out = aileron_at(
        &server,
        &[
            "tasks",
            "clear",
            "daily",
            &run,
            "--task-ids",
            "a",
            "--downstream",
            "--dry-run",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {:?}", out.stderr);
    assert!(stdout.contains("Would clear 2 TaskInstances"), "{stdout}");
    let out = aileron_at(
        &server,
        &["tasks", "clear", "daily", &run, "--task-ids", "b"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {:?}", out.stderr);
    assert!(
        stdout.contains("Cleared 1 TaskInstance of DagRun"),
        "{stdout}"
    );
}

#[test]
fn db_clean_counts_then_deletes_old_runs_on_a_running_server() {
    let home = home_with(&[("daily.toml", DAILY)]);
    let server =
        aileron_tests::server::Server::start(home.path(), aileron_tests::server::free_port());
    let out = aileron_at(
        &server,
        &[
            "dags",
            "backfill",
            "daily",
            "--from",
            "2025-02-01",
            "--to",
            "2025-02-03",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The schedule may have made a run of its own: wait until every run ended.
    let runs_url = format!("{}/dags/daily/dagRuns?order_by=logical_date", server.base);
    let runs = wait_for(&runs_url, |v| {
        v["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "success")
    })["dag_runs"]
        .as_array()
        .unwrap()
        .clone();
    // Every run ended before 2099; the DAG keeps its latest scheduled one.
    let expired = runs.len() - 1;
    let dry = [
        "db",
        "clean",
        "--clean-before-timestamp",
        "2099-01-01",
        "--dry-run",
    ];
    let out = aileron_at(&server, &dry);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "would delete {expired} DagRuns and {} TaskInstances finished before 2099-01-01",
            2 * expired
        )),
        "{stdout}"
    );
    let after = aileron_tests::server::get(&runs_url).unwrap();
    assert_eq!(after["total_entries"], runs.len());

    let out = aileron_at(
        &server,
        &["db", "clean", "--older-than", "0s", "--yes", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        (v["dag_runs"].as_u64(), v["dry_run"].as_bool()),
        (Some(expired as u64), Some(false)),
        "{v}"
    );
    let after = aileron_tests::server::get(&runs_url).unwrap();
    assert_eq!(after["total_entries"], 1);
    assert_eq!(
        after["dag_runs"][0]["dag_run_id"],
        runs.last().unwrap()["dag_run_id"]
    );

    // A cut-off is required, and only one.
    let out = aileron_at(&server, &["db", "clean"]);
    assert_eq!(out.status.code(), Some(2));
    let out = aileron_at(&server, &["db", "clean", "--older-than", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--older-than"));
}

/// `aileron` against `server` with only what `aileron login` kept (no token).
fn aileron_signed_in(
    server: &aileron_tests::server::Server,
    credentials: &std::path::Path,
    envs: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let out = Command::new(aileron_bin())
        .args(args)
        .arg("--server")
        .arg(&server.root)
        .env("AILERON_LOG", "warn")
        .env("AILERON_CREDENTIALS", credentials)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aileron {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn login_then_manage_tenants_users_roles_and_tokens() {
    let dir = home_with(&[("ok.toml", OK)]);
    let server =
        aileron_tests::server::Server::start(dir.path(), aileron_tests::server::free_port());
    let creds = dir.path().join("credentials");
    // A wrong password is refused and keeps nothing.
    let out = Command::new(aileron_bin())
        .args([
            "login",
            "--server",
            &server.root,
            "--password",
            "wrong password",
        ])
        .env("AILERON_CREDENTIALS", &creds)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert!(!creds.exists());

    let pw = aileron_tests::TEST_ADMIN_PASSWORD;
    aileron_signed_in(&server, &creds, &[], &["login", "--password", pw]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the credentials file is owner-only");
    }
    aileron_signed_in(&server, &creds, &[], &["tenants", "create", "team_a"]);
    let tenants = aileron_signed_in(&server, &creds, &[], &["tenants", "list"]);
    assert!(String::from_utf8_lossy(&tenants.stdout).contains("team_a"));
    let user_pw = [("AILERON_USER_PASSWORD", "ada's password")];
    aileron_signed_in(
        &server,
        &creds,
        &user_pw,
        &["users", "create", "ada", "--role", "team_a=Viewer"],
    );
    aileron_signed_in(
        &server,
        &creds,
        &[],
        &["roles", "grant", "ada", "Op", "--tenant", "team_a"],
    );
    let members = aileron_signed_in(
        &server,
        &creds,
        &[],
        &["roles", "list", "--tenant", "team_a"],
    );
    let members: Value = serde_json::from_slice(&members.stdout).unwrap();
    assert_eq!(members[0]["username"], "ada");
    assert_eq!(members[0]["role"], "Op");

    // An operator published for team_a alone, then removed.
    let published = aileron_signed_in(
        &server,
        &creds,
        &[],
        &[
            "plugins",
            "publish",
            aileron_tests::guests::VERSIONED_V1,
            "--tenant",
            "team_a",
        ],
    );
    let said = String::from_utf8_lossy(&published.stdout);
    assert!(
        said.contains("Published versioned@1.0.0 for team_a"),
        "{said}"
    );
    aileron_signed_in(
        &server,
        &creds,
        &[],
        &["plugins", "remove", "versioned@1.0.0", "--tenant", "team_a"],
    );
    let gone = Command::new(aileron_bin())
        .args(["plugins", "remove", "versioned@1.0.0", "--tenant", "team_a"])
        .args(["--server", &server.root])
        .env("AILERON_CREDENTIALS", &creds)
        .output()
        .unwrap();
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));

    // A token of team_a works for the CLI, then stops working once revoked.
    let made = aileron_signed_in(
        &server,
        &creds,
        &[],
        &[
            "tokens", "create", "ci", "--role", "User", "--tenant", "team_a",
        ],
    );
    let token = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert!(token.starts_with("ail_"), "{token}");
    let with_token = [("AILERON_TOKEN", token.as_str())];
    aileron_signed_in(&server, &creds, &with_token, &["dags", "list"]);
    // The use is recorded off the request's path: look a few times.
    let mut list = Value::Null;
    for _ in 0..50 {
        let out = aileron_signed_in(
            &server,
            &creds,
            &[],
            &["tokens", "list", "--tenant", "team_a"],
        );
        list = serde_json::from_slice(&out.stdout).unwrap();
        if list[0]["last_used_at"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let id = list[0]["token_id"].as_str().unwrap().to_owned();
    assert!(list[0]["last_used_at"].is_string(), "{list}");
    aileron_signed_in(
        &server,
        &creds,
        &[],
        &["tokens", "revoke", &id, "--tenant", "team_a"],
    );
    let refused = Command::new(aileron_bin())
        .args(["dags", "list", "--server", &server.root, "--token", &token])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"));
}
