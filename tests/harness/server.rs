//! A real `aileron standalone` process on a free loopback port, and a tiny HTTP
//! client for talking to it (std only, so tests need no tool a fresh machine may
//! lack).

use crate::{aileron_bin, cache_dir};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prepares an Aileron home: DAG files, the testkit guest as a plugin, and the
/// shared compiled-component cache.
pub fn home_with(dir: &Path, dags: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("dags")).unwrap();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    for (file, toml) in dags {
        let path = dir.join("dags").join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, toml).unwrap();
    }
    std::fs::copy(crate::guests::TESTKIT, dir.join("plugins/testkit.wasm")).unwrap();
    let _ = std::fs::create_dir_all(cache_dir());
    let _ = std::os::unix::fs::symlink(cache_dir(), dir.join("cache"));
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT/api/v1`
    pub base: String,
    /// `http://127.0.0.1:PORT`
    pub root: String,
}

impl Server {
    pub fn start(home: &std::path::Path, port: u16) -> Self {
        Self::start_with(home, port, &[])
    }

    /// `start` with more command-line arguments for `standalone`.
    pub fn start_with(home: &std::path::Path, port: u16, args: &[&str]) -> Self {
        let child = Command::new(aileron_bin())
            .args(["standalone", "--port", &port.to_string()])
            .arg("--home")
            .arg(home)
            .args(args)
            .env("AILERON_LOG", "warn")
            .env("AILERON_ADMIN_PASSWORD", crate::TEST_ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aileron binary runs");
        let root = format!("http://127.0.0.1:{port}");
        let base = format!("{root}/api/v1");
        let s = Self { child, base, root };
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill9(mut self) {
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

/// `Authorization` of the platform admin every test home starts with
/// (`admin` : [`crate::TEST_ADMIN_PASSWORD`], HTTP Basic).
pub const ADMIN_AUTH: &str = "Basic YWRtaW46dGVzdCBhZG1pbiBwYXNzd29yZA==";

/// A minimal HTTP/1.1 client over a TCP socket, signed in as the platform admin:
/// enough for these tests, and it keeps them free of tools a fresh machine may
/// lack.
pub fn http(method: &str, url: &str, body: Option<&str>) -> Option<(u16, Value)> {
    http_as(Some(ADMIN_AUTH), method, url, body)
}

/// [`http`] with another `Authorization` value, or none.
pub fn http_as(
    authorization: Option<&str>,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Option<(u16, Value)> {
    http_with(authorization, None, method, url, body)
}

/// [`http`] acting in `tenant` (`X-Aileron-Tenant`).
pub fn http_in(tenant: &str, method: &str, url: &str, body: Option<&str>) -> Option<(u16, Value)> {
    http_with(Some(ADMIN_AUTH), Some(tenant), method, url, body)
}

fn http_with(
    authorization: Option<&str>,
    tenant: Option<&str>,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Option<(u16, Value)> {
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
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{}{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default(),
        tenant.map(|t| format!("X-Aileron-Tenant: {t}\r\n")).unwrap_or_default(),
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

pub fn get(url: &str) -> Option<Value> {
    http("GET", url, None)
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
}

pub fn post(url: &str, body: &str) -> Value {
    let (status, v) = http("POST", url, Some(body)).expect("POST answered");
    assert_eq!(status, 200, "POST {url}: {v}");
    v
}

/// Sends `request` (raw bytes: request line, headers, body) to `127.0.0.1:port`
/// and returns the status and the body of the answer, for requests the client
/// above cannot express (another `Host`, an `Origin`).
pub fn raw(port: u16, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}
