//! What hostile files and clients do to a real `aileron standalone`: entries in
//! the DAGs folder that are not small regular files of their tenant, requests for
//! a name the server does not answer for or from another origin, and clients that
//! send half a request and wait.

use aileron_tests::server::{Server, free_port, get, home_with, http, raw};
use serde_json::Value;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const GOOD: &str = "[tasks.a]\noperator = \"noop\"\n";

fn wait_until<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `filename → message` of the default tenant's import errors.
fn import_errors(base: &str) -> Vec<(String, String)> {
    let v = get(&format!("{base}/importErrors?limit=100")).unwrap_or(Value::Null);
    v["import_errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["filename"].as_str().unwrap_or_default().to_owned(),
                        e["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn hostile_dag_folder_entries_are_import_errors_and_the_server_lives() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    home_with(&home, &[("good.toml", GOOD)]);
    let dags = home.join("dags");
    // Another tenant's DAG, and a file outside the folder whose key names are
    // secret: a parse of either would show them in an import error.
    std::fs::create_dir_all(dags.join("beta")).unwrap();
    std::fs::write(dags.join("beta/private.toml"), GOOD).unwrap();
    let outside = dir.path().join("outside.toml");
    std::fs::write(&outside, "aws_secret_key = \"x\"\n").unwrap();

    let port = free_port();
    let mut server = Server::start(&home, port);
    let base = server.base.clone();
    let rss_before = server.rss_kib();

    // Created while the server runs, so the file-watch path reads them.
    symlink("/dev/zero", dags.join("zero.toml")).unwrap();
    mkfifo(&dags.join("pipe.toml"));
    symlink("/proc/self/environ", dags.join("environ.toml")).unwrap();
    symlink(&outside, dags.join("outside.toml")).unwrap();
    symlink("beta/private.toml", dags.join("borrowed.toml")).unwrap();
    symlink("missing.toml", dags.join("dangling.toml")).unwrap();
    // A device node inside the folder, where the machine allows making one.
    let device = Command::new("mknod")
        .arg(dags.join("device.toml"))
        .args(["c", "1", "5"])
        .status()
        .is_ok_and(|s| s.success());
    // A valid DAG written after them is still picked up: nothing blocked.
    std::fs::write(dags.join("later.toml"), GOOD).unwrap();

    let mut expected = vec![
        "borrowed.toml",
        "dangling.toml",
        "environ.toml",
        "outside.toml",
        "pipe.toml",
        "zero.toml",
    ];
    if device {
        expected.push("device.toml");
    }
    expected.sort_unstable();
    let errors = wait_until("the import errors and the later DAG", 30, || {
        let errors = import_errors(&base);
        let names: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        let later = get(&format!("{base}/dags/later")).is_some();
        (later && names == expected).then_some(errors)
    });
    let message = |file: &str| {
        errors
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, m)| m.clone())
            .unwrap()
    };
    let link_out = "the file is a symbolic link whose target is missing or outside this \
                    tenant's part of the DAGs folder; links must stay inside it";
    for file in [
        "zero.toml",
        "environ.toml",
        "outside.toml",
        "borrowed.toml",
        "dangling.toml",
    ] {
        assert_eq!(message(file), link_out, "{file}");
    }
    assert_eq!(
        message("pipe.toml"),
        "the file is a FIFO (named pipe); only regular files are read as DAG files"
    );
    if device {
        assert_eq!(
            message("device.toml"),
            "the file is a device; only regular files are read as DAG files"
        );
    }
    // Nothing of what the links point at leaked or was imported.
    let all = format!("{errors:?}");
    for secret in ["aws_secret_key", "PATH", "HOME"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(get(&format!("{base}/dags/borrowed")).is_none());
    assert!(get(&format!("{base}/dags/good")).is_some());
    assert!(server.alive(), "the server survived");
    let grown = server.rss_kib().saturating_sub(rss_before);
    assert!(grown < 100 << 10, "RSS grew by {grown} KiB");
}

/// A request as a browser on `origin` would send it to this server under `host`.
fn request(method: &str, path: &str, host: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\n\
         Authorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        aileron_tests::server::ADMIN_AUTH,
        body.len()
    )
}

#[test]
fn a_rebound_name_or_another_origin_cannot_drive_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    home_with(&home, &[("good.toml", GOOD)]);
    let port = free_port();
    let server = Server::start_with(&home, port, &["--allowed-hosts", "aileron.test"]);
    let var = |key: &str| format!(r#"{{"key": "{key}", "value": "v"}}"#);
    let loopback = format!("127.0.0.1:{port}");

    // DNS rebinding: evil.example resolves to 127.0.0.1; the browser says so.
    let rebound = format!("evil.example:{port}");
    let origin = format!("Origin: http://evil.example:{port}\r\n");
    let (status, body) = raw(
        port,
        &request(
            "POST",
            "/api/v1/variables",
            &rebound,
            &origin,
            &var("rebound"),
        ),
    );
    assert_eq!(status, 403, "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 403);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not answer for host `evil.example`"),
        "{problem}"
    );
    // Reading is refused too: a rebound page must not read the API either.
    let (status, _) = raw(port, &request("GET", "/api/v1/dags", &rebound, "", ""));
    assert_eq!(status, 403);
    let (status, _) = raw(port, &request("GET", "/", &rebound, "", ""));
    assert_eq!(status, 403, "the UI too");

    // A cross-site form or fetch to the loopback address itself.
    for (extra, key) in [
        ("Origin: http://evil.example\r\n".to_owned(), "cross_origin"),
        ("Origin: null\r\n".to_owned(), "null_origin"),
        (
            format!("Origin: http://127.0.0.1:{}\r\n", port + 1),
            "other_port",
        ),
        ("Sec-Fetch-Site: cross-site\r\n".to_owned(), "cross_site"),
    ] {
        let (status, body) = raw(
            port,
            &request("POST", "/api/v1/variables", &loopback, &extra, &var(key)),
        );
        assert_eq!(status, 403, "{extra}: {body}");
        assert!(body.contains("refused"), "{body}");
    }
    // The server's own origin, a configured name and plain clients are served.
    let own = format!("Origin: http://{loopback}\r\nSec-Fetch-Site: same-origin\r\n");
    for (host, extra, key) in [
        (loopback.clone(), own, "same_origin"),
        (
            format!("aileron.test:{port}"),
            String::new(),
            "allowed_name",
        ),
        (format!("localhost:{port}"), String::new(), "localhost"),
        (loopback.clone(), String::new(), "no_origin"),
    ] {
        let (status, body) = raw(
            port,
            &request("POST", "/api/v1/variables", &host, &extra, &var(key)),
        );
        assert_eq!(status, 200, "{host} {extra}: {body}");
    }
    // Only what was allowed was written.
    let vars = get(&format!("{}/variables", server.base)).unwrap();
    let mut keys: Vec<&str> = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["allowed_name", "localhost", "no_origin", "same_origin"]
    );
    // `/health` answers any name (load balancers, workers).
    let (status, _) = raw(port, &request("GET", "/health", &rebound, "", ""));
    assert_eq!(status, 200);
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_every_connection() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    home_with(&home, &[("good.toml", GOOD)]);
    let port = free_port();
    let mut server = Server::start_with(
        &home,
        port,
        &["--header-timeout", "1s", "--max-connections", "64"],
    );
    // 400 clients send half a request and wait.
    let started = Instant::now();
    let mut slow: Vec<std::net::TcpStream> = (0..400)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /api/v1/dags HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s
        })
        .collect();
    // A well-behaved client is still answered meanwhile.
    let answered = wait_until("a health answer beside the slow clients", 30, || {
        http("GET", &format!("{}/health", server.base), None).map(|(s, _)| s)
    });
    assert_eq!(answered, 200);
    // Every slow client is disconnected: 64 at a time, each after 1 s.
    for (i, s) in slow.iter_mut().enumerate() {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        assert!(!left.is_zero(), "client {i} still connected after 60 s");
        s.set_read_timeout(Some(left)).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("client {i} not disconnected: {e}"),
        }
    }
    assert!(server.alive());
    assert!(get(&format!("{}/dags", server.base)).is_some());
}
