//! A multi-node cluster of real processes for the integration tests: `redis-server`,
//! `aileron scheduler` and `aileron worker` on loopback ports, the faults the tests
//! inject (`kill -9`, SIGSTOP/SIGCONT, restarts on the same port or home), and the
//! closing exactly-once check (`docs/design/multi-node.md` §7).
//!
//! Each process writes stdout and stderr to a file in the test's directory; when a
//! test fails, the tail of every file is printed as the processes are dropped
//! (`AILERON_TEST_LOGS=N` with `--nocapture`: always, N lines of each;
//! `AILERON_TEST_LOG_FILTER` replaces the processes' log filter). Every process is
//! killed on drop, and one global lock keeps a single cluster running at a time,
//! since a scheduler, Redis and three workers already fill two cores.

use crate::server::{free_port, get, home_with, http, post};
use crate::{aileron_bin, cache_dir};
use aileron::metastore::{Metastore, TaskInstance};
use aileron_protocol::wire::{GROUP, QUEUES_KEY, stream_key};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The shared secret between the scheduler and the workers of a test cluster.
pub const TOKEN: &str = "multinode-test-token";

/// The heartbeat timeout every test scheduler gets: a silent try is failed after
/// this long.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(3);

/// How often workers heartbeat: the scheduler tells them a sixth of the timeout.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// Deadline for a process to come up or a run to finish. Generous: two cores are
/// shared by Redis, the scheduler, up to three workers and the other tests of the
/// binary, and a first start may compile components.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The log filter of every Aileron process (`AILERON_TEST_LOG_FILTER` overrides
/// it): the `fenced` and `backing off` lines the tests look for are at info level
/// or above.
const LOG_FILTER: &str = "info,wasmtime=warn,cranelift=warn";

/// How much of each process's output a failed test prints.
const TAIL_LINES: usize = 150;

/// Polls `probe` every 50 ms until it gives a value; panics naming `what` after
/// `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The directory of one multinode test, holding the lock that keeps other
/// multinode tests out while it lives. Create it first so it is dropped last.
pub struct TestDir {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    _lock: MutexGuard<'static, ()>,
}

impl TestDir {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        static LOCK: Mutex<()> = Mutex::new(());
        // A test that failed poisons the lock; the next one may still run.
        let lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        Self {
            path: dir.path().to_path_buf(),
            _dir: dir,
            _lock: lock,
        }
    }

    /// A scheduler home with these DAG files, the testkit guest as a plugin and the
    /// shared compiled-component cache.
    pub fn scheduler_home(&self, dags: &[(&str, &str)]) -> PathBuf {
        let home = self.path.join("scheduler-home");
        home_with(&home, dags);
        home
    }

    /// A worker home: empty but for the shared compiled-component cache when
    /// `shared_cache`, so the worker still downloads each component it runs.
    pub fn worker_home(&self, name: &str, shared_cache: bool) -> PathBuf {
        let home = self.path.join(format!("worker-{name}-home"));
        std::fs::create_dir_all(&home).unwrap();
        if shared_cache {
            let _ = std::fs::create_dir_all(cache_dir());
            let _ = std::os::unix::fs::symlink(cache_dir(), home.join("cache"));
        }
        home
    }
}

/// One child process whose output goes to a file, restartable with the same
/// command line.
struct Proc {
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(label: String, program: PathBuf, args: Vec<OsString>, log: PathBuf) -> Self {
        let mut p = Self {
            label,
            program,
            args,
            log,
            child: None,
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.label);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // Restarts append to the same file; this line separates the lives.
        writeln!(file, "===== harness: {} starts =====", self.label).unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(
                "AILERON_LOG",
                std::env::var("AILERON_TEST_LOG_FILTER").unwrap_or_else(|_| LOG_FILTER.into()),
            )
            .env("AILERON_ADMIN_PASSWORD", crate::TEST_ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.label))
            .id()
    }

    /// Whether the process is still alive (a stopped process is alive).
    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// SIGKILL, exactly like `kill -9`: no shutdown code runs. It also ends a
    /// stopped process.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal with `kill -SIG pid` (no crate needed for SIGSTOP/SIGCONT).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {} failed", self.label);
    }

    /// SIGTERM, then SIGKILL if the process has not exited within `grace`.
    fn terminate(&mut self, grace: Duration) {
        if !self.is_running() {
            self.child = None;
            return;
        }
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} ignored SIGTERM for {grace:?}: killed", self.label);
        self.kill9();
    }

    /// Everything the process (in all its lives) wrote so far.
    fn output(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn print_tail(&self) {
        let text = self.output();
        let lines: Vec<&str> = text.lines().collect();
        // `AILERON_TEST_LOGS=N` prints N lines instead.
        let tail = std::env::var("AILERON_TEST_LOGS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(TAIL_LINES);
        let from = lines.len().saturating_sub(tail);
        eprintln!(
            "----- {} output ({}), last {} of {} lines -----",
            self.label,
            self.log.display(),
            lines.len() - from,
            lines.len()
        );
        for line in &lines[from..] {
            eprintln!("{line}");
        }
        eprintln!("----- end of {} -----", self.label);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() || std::env::var_os("AILERON_TEST_LOGS").is_some() {
            self.print_tail();
        }
    }
}

/// A `redis-server` on a loopback port, by default without persistence.
pub struct Redis {
    proc: Proc,
    pub port: u16,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
}

impl Redis {
    /// No persistence: a restart comes back empty.
    pub fn start(t: &TestDir) -> Self {
        Self::start_on(t, free_port(), false)
    }

    /// With an append-only file: a restart comes back with what was written.
    pub fn start_aof(t: &TestDir) -> Self {
        Self::start_on(t, free_port(), true)
    }

    /// On a port chosen beforehand (for workers started before Redis).
    pub fn start_on(t: &TestDir, port: u16, aof: bool) -> Self {
        let data = t.path.join(format!("redis-{port}"));
        std::fs::create_dir_all(&data).unwrap();
        let args: Vec<OsString> = vec![
            "--port".into(),
            port.to_string().into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            (if aof { "yes" } else { "no" }).into(),
            "--dir".into(),
            data.into_os_string(),
        ];
        let proc = Proc::spawn(
            format!("redis-server :{port}"),
            PathBuf::from("redis-server"),
            args,
            t.path.join(format!("redis-{port}.log")),
        );
        let r = Self {
            proc,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        wait_for("redis-server to answer PING", DEADLINE, || {
            let mut con = self.try_connect()?;
            let pong: String = redis::cmd("PING").query(&mut con).ok()?;
            (pong == "PONG").then_some(())
        });
    }

    fn try_connect(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url.as_str()).ok()?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        con.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(con)
    }

    /// A fresh connection (the server must be up).
    pub fn con(&self) -> redis::Connection {
        self.try_connect()
            .unwrap_or_else(|| panic!("cannot connect to {}", self.url))
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc.launch();
        self.wait_ready();
    }

    /// Every queue stream: those named in `aileron:queues` and any `aileron:q:*` key.
    pub fn streams(&self) -> BTreeSet<String> {
        let mut con = self.con();
        let mut out: BTreeSet<String> = redis::cmd("KEYS")
            .arg(stream_key("*"))
            .query::<Vec<String>>(&mut con)
            .unwrap()
            .into_iter()
            .collect();
        let queues: Vec<String> = redis::cmd("SMEMBERS")
            .arg(QUEUES_KEY)
            .query(&mut con)
            .unwrap();
        out.extend(queues.iter().map(|q| stream_key(q)));
        out
    }

    /// `(stream, XLEN, pending count of group aileron)` for every queue stream.
    pub fn backlog(&self) -> Vec<(String, u64, u64)> {
        let mut con = self.con();
        self.streams()
            .into_iter()
            .map(|s| {
                let len: u64 = redis::cmd("XLEN").arg(&s).query(&mut con).unwrap();
                // Summary form: [count, min id, max id, consumers]. A stream without
                // the group (just recreated, or never read) has nothing pending.
                let pending = redis::cmd("XPENDING")
                    .arg(&s)
                    .arg(GROUP)
                    .query::<redis::Value>(&mut con)
                    .ok()
                    .and_then(|v| match v {
                        redis::Value::Array(items) => match items.first() {
                            Some(redis::Value::Int(n)) => Some(*n as u64),
                            _ => None,
                        },
                        _ => None,
                    })
                    .unwrap_or(0);
                (s, len, pending)
            })
            .collect()
    }

    /// Waits until no queue stream holds an entry or a pending delivery: the last
    /// acks land shortly after the last outcome is committed, and stale entries go
    /// at the next reconciliation (every 10 s).
    #[track_caller]
    pub fn assert_drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let backlog = self.backlog();
            if backlog
                .iter()
                .all(|(_, len, pending)| *len == 0 && *pending == 0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queue streams still hold entries (stream, XLEN, XPENDING): {backlog:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// An `aileron scheduler` process: API and UI, execution API, the only process
/// opening the metastore.
pub struct Scheduler {
    proc: Proc,
    pub home: PathBuf,
    pub port: u16,
    /// `http://127.0.0.1:PORT/api/v1`
    pub base: String,
    /// `http://127.0.0.1:PORT`
    pub root: String,
}

impl Scheduler {
    /// Starts on a free port; see [`Scheduler::start_on`].
    pub fn start(t: &TestDir, home: &Path, redis_url: &str, extra: &[&str]) -> Self {
        Self::start_on(t, home, redis_url, free_port(), extra)
    }

    /// Starts with `--worker-timeout 3s`, the test token and `extra` arguments,
    /// and waits until its API answers.
    pub fn start_on(t: &TestDir, home: &Path, redis_url: &str, port: u16, extra: &[&str]) -> Self {
        let mut args: Vec<OsString> = vec![
            "scheduler".into(),
            "--home".into(),
            home.into(),
            "--dags".into(),
            home.join("dags").into(),
            "--queue".into(),
            redis_url.into(),
            "--port".into(),
            port.to_string().into(),
            "--worker-token".into(),
            TOKEN.into(),
            "--worker-timeout".into(),
            format!("{}s", WORKER_TIMEOUT.as_secs()).into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let proc = Proc::spawn(
            "scheduler".to_owned(),
            aileron_bin(),
            args,
            t.path.join("scheduler.log"),
        );
        let root = format!("http://127.0.0.1:{port}");
        let mut s = Self {
            proc,
            home: home.to_path_buf(),
            port,
            base: format!("{root}/api/v1"),
            root,
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&mut self) {
        let url = format!("{}/health", self.base);
        wait_for("the scheduler's API", DEADLINE, || {
            assert!(
                self.proc.is_running(),
                "the scheduler exited while starting"
            );
            get(&url).map(|_| ())
        });
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// Starts it again with the same home, port and arguments.
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc.launch();
        self.wait_healthy();
    }

    /// SIGSTOP: the scheduler freezes, sockets and all, as in a VM pause, swap
    /// storm or debugger stop; the kernel keeps queueing what workers send it.
    pub fn pause(&self) {
        self.proc.signal("STOP");
    }

    /// SIGCONT after [`Scheduler::pause`].
    pub fn resume(&self) {
        self.proc.signal("CONT");
    }

    /// Starts it again after [`Scheduler::kill9`], and waits until it answers.
    pub fn start_again(&mut self) {
        self.proc.launch();
        self.wait_healthy();
    }

    /// SIGTERM (SIGKILL after 30 s), so the metastore file can be opened.
    pub fn stop(&mut self) {
        self.proc.terminate(Duration::from_secs(30));
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    pub fn output(&self) -> String {
        self.proc.output()
    }

    /// Triggers a run with this id, waiting for the DAG to be parsed first.
    pub fn trigger(&self, dag_id: &str, run_id: &str) {
        let url = format!("{}/dags/{dag_id}", self.base);
        wait_for(&format!("DAG `{dag_id}` to be parsed"), DEADLINE, || {
            get(&url).map(|_| ())
        });
        let run = post(
            &format!("{}/dags/{dag_id}/dagRuns", self.base),
            &format!(r#"{{"dag_run_id": "{run_id}"}}"#),
        );
        assert_eq!(run["dag_run_id"], run_id, "{run}");
    }

    /// The run's TaskInstances, as the API lists them.
    pub fn tis(&self, dag_id: &str, run_id: &str) -> Vec<Value> {
        let url = format!(
            "{}/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=10000",
            self.base
        );
        let v = get(&url).unwrap_or_else(|| panic!("GET {url} failed"));
        v["task_instances"].as_array().unwrap().clone()
    }

    /// One TaskInstance with its tries.
    pub fn ti(&self, dag_id: &str, run_id: &str, task_id: &str) -> Value {
        let url = format!(
            "{}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            self.base
        );
        get(&url).unwrap_or_else(|| panic!("GET {url} failed"))
    }

    /// The log of one try: `(content, still running)`.
    pub fn log(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        try_number: u32,
    ) -> (String, bool) {
        let url = format!(
            "{}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            self.base
        );
        let v = get(&url).unwrap_or_else(|| panic!("GET {url} failed"));
        (
            v["content"].as_str().unwrap_or_default().to_owned(),
            v["running"].as_bool().unwrap_or(false),
        )
    }

    /// The `return_value` XCom of a TaskInstance, if it has one.
    pub fn return_value(&self, dag_id: &str, run_id: &str, task_id: &str) -> Option<Value> {
        get(&format!(
            "{}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            self.base
        ))
        .map(|v| v["value"].clone())
    }

    /// Marks a TaskInstance `success`, `failed` or `skipped` by hand.
    pub fn mark(&self, dag_id: &str, run_id: &str, task_id: &str, state: &str) {
        let url = format!(
            "{}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            self.base
        );
        let body = format!(r#"{{"new_state": "{state}"}}"#);
        let (status, v) = http("PATCH", &url, Some(&body)).expect("PATCH answered");
        assert_eq!(status, 200, "PATCH {url}: {v}");
    }

    /// `GET /api/v1/workers`.
    pub fn workers(&self) -> Vec<Value> {
        let url = format!("{}/workers", self.base);
        let v = get(&url).unwrap_or_else(|| panic!("GET {url} failed"));
        assert_eq!(
            v["total_entries"].as_u64(),
            v["workers"].as_array().map(|w| w.len() as u64),
            "{v}"
        );
        v["workers"].as_array().unwrap().clone()
    }

    /// Counts the run's TaskInstances in `state`.
    pub fn count_in(&self, dag_id: &str, run_id: &str, state: &str) -> usize {
        self.tis(dag_id, run_id)
            .iter()
            .filter(|t| t["state"] == state)
            .count()
    }

    /// Waits until the run is finished and returns its TaskInstances.
    #[track_caller]
    pub fn wait_run(&self, dag_id: &str, run_id: &str, timeout: Duration) -> Vec<Value> {
        let url = format!("{}/dags/{dag_id}/dagRuns/{run_id}", self.base);
        let deadline = Instant::now() + timeout;
        loop {
            let run = get(&url);
            let state = run.as_ref().map(|r| r["state"].clone());
            if state
                .as_ref()
                .is_some_and(|s| s == "success" || s == "failed")
            {
                return self.tis(dag_id, run_id);
            }
            if Instant::now() >= deadline {
                let mut states: BTreeMap<String, usize> = BTreeMap::new();
                for ti in self.tis(dag_id, run_id) {
                    *states.entry(ti["state"].to_string()).or_default() += 1;
                }
                panic!(
                    "run {run_id} of {dag_id} did not finish in {timeout:?}: run {run:?}, \
                     TaskInstances by state {states:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An `aileron worker` process.
pub struct Worker {
    proc: Proc,
    /// `--name`: the prefix of the worker id `NAME-<8 hex>`.
    pub name: String,
    pub home: PathBuf,
}

impl Worker {
    /// A worker with its own home sharing the compiled-component cache, reading
    /// `queues` (comma-separated) with `slots` sandboxes.
    pub fn start(
        t: &TestDir,
        name: &str,
        queues: &str,
        slots: u32,
        redis_url: &str,
        server: &str,
    ) -> Self {
        let home = t.worker_home(name, true);
        Self::start_in(t, &home, name, queues, slots, redis_url, server)
    }

    /// As [`Worker::start`], with the given home.
    pub fn start_in(
        t: &TestDir,
        home: &Path,
        name: &str,
        queues: &str,
        slots: u32,
        redis_url: &str,
        server: &str,
    ) -> Self {
        Self::launch(t, home, name, queues, slots, redis_url, server, TOKEN, &[])
    }

    /// A worker of the `default` queue with 2 slots, presenting `token` (a
    /// tenant's worker token, say) and given `extra` arguments.
    pub fn start_as(
        t: &TestDir,
        name: &str,
        redis_url: &str,
        server: &str,
        token: &str,
        extra: &[&str],
    ) -> Self {
        let home = t.worker_home(name, true);
        Self::launch(
            t, &home, name, "default", 2, redis_url, server, token, extra,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        t: &TestDir,
        home: &Path,
        name: &str,
        queues: &str,
        slots: u32,
        redis_url: &str,
        server: &str,
        token: &str,
        extra: &[&str],
    ) -> Self {
        let mut args: Vec<OsString> = vec![
            "worker".into(),
            "--queue".into(),
            redis_url.into(),
            "--server".into(),
            server.into(),
            "--token".into(),
            token.into(),
            "--queues".into(),
            queues.into(),
            "--slots".into(),
            slots.to_string().into(),
            "--name".into(),
            name.into(),
            "--home".into(),
            home.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let proc = Proc::spawn(
            format!("worker {name}"),
            aileron_bin(),
            args,
            t.path.join(format!("worker-{name}.log")),
        );
        Self {
            proc,
            name: name.to_owned(),
            home: home.to_path_buf(),
        }
    }

    /// Whether `hostname` (a TaskInstance's or a try's) is one of this worker's ids.
    pub fn ran(&self, hostname: &Value) -> bool {
        hostname
            .as_str()
            .is_some_and(|h| h.starts_with(&format!("{}-", self.name)))
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// SIGSTOP: the process freezes, sockets and all, as on a long GC pause or a
    /// suspended VM.
    pub fn stop(&self) {
        self.proc.signal("STOP");
    }

    /// SIGCONT after [`Worker::stop`].
    pub fn cont(&self) {
        self.proc.signal("CONT");
    }

    /// SIGTERM: the graceful stop (SIGKILL after 30 s).
    pub fn terminate(&mut self) {
        self.proc.terminate(Duration::from_secs(30));
    }

    /// Starts it again with the same home and arguments (a new worker id).
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc.launch();
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// Everything the worker wrote, in all its lives.
    pub fn output(&self) -> String {
        self.proc.output()
    }
}

/// Whether `hostname` has the shape of a worker id, `NAME-<8 hex>`.
pub fn is_worker_id(hostname: &str) -> bool {
    hostname.rsplit_once('-').is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The closing check of every multinode test. Waits for the queue streams to
/// drain (no entry, nothing pending), stops the scheduler, opens its metastore and
/// checks that every TaskInstance ended, and ran each try exactly once:
/// - a finished state, in a finished run;
/// - tries numbered 1..=n without gaps or duplicates, n being `try_number`;
/// - one distinct attempt per try, the latest being the TaskInstance's;
/// - no try but the last ended in success, and the last one's state is the
///   TaskInstance's;
/// - every try ran on a worker (its hostname is a worker id);
/// - at most one `return_value` XCom.
///
/// Returns the metastore and its TaskInstances for the test's own checks.
#[track_caller]
pub fn assert_exactly_once(
    scheduler: &mut Scheduler,
    redis: &Redis,
) -> (Metastore, Vec<TaskInstance>) {
    redis.assert_drained();
    scheduler.stop();
    let store = Metastore::open(&aileron::app::metastore_path(&scheduler.home))
        .expect("the metastore opens once the scheduler stopped");
    let mut problems = Vec::new();
    for run in store.all_dag_runs().unwrap() {
        if !run.state.is_finished() {
            problems.push(format!(
                "run {}/{} is {:?}",
                run.dag_id, run.run_id, run.state
            ));
        }
    }
    let tis = store.all_task_instances().unwrap();
    assert!(!tis.is_empty(), "the metastore has no TaskInstance");
    for ti in &tis {
        problems.extend(check_ti(&store, ti).into_iter().map(|p| {
            format!(
                "{}/{}/{}[{}]: {p}",
                ti.dag_id, ti.run_id, ti.task_id, ti.map_index
            )
        }));
    }
    assert!(
        problems.is_empty(),
        "{} exactly-once violations:\n{}",
        problems.len(),
        problems.join("\n")
    );
    (store, tis)
}

/// The per-TaskInstance part of [`assert_exactly_once`]: its violations, none when
/// the TaskInstance is clean.
pub fn check_ti(store: &Metastore, ti: &TaskInstance) -> Vec<String> {
    let mut problems = Vec::new();
    if !ti.state.is_finished() {
        problems.push(format!("state {:?} is not finished", ti.state));
    }
    let numbers: Vec<u32> = ti.tries.iter().map(|t| t.try_number).collect();
    let expected: Vec<u32> = (1..=ti.try_number).collect();
    if numbers != expected {
        problems.push(format!(
            "tries numbered {numbers:?}, expected {expected:?} (try_number {})",
            ti.try_number
        ));
    }
    let attempts: Vec<u64> = ti.tries.iter().map(|t| t.attempt).collect();
    let distinct: BTreeSet<u64> = attempts.iter().copied().collect();
    if distinct.len() != attempts.len() || distinct.contains(&0) {
        problems.push(format!(
            "attempts {attempts:?} are not distinct and non-zero"
        ));
    }
    if let Some(last) = ti.tries.last() {
        if last.attempt != ti.attempt {
            problems.push(format!(
                "latest try has attempt {}, the TaskInstance {}",
                last.attempt, ti.attempt
            ));
        }
        if last.state != ti.state {
            problems.push(format!(
                "latest try ended {:?}, the TaskInstance is {:?}",
                last.state, ti.state
            ));
        }
    }
    let len = ti.tries.len();
    for t in ti.tries.iter().take(len.saturating_sub(1)) {
        if t.state == aileron_model::TaskInstanceState::Success {
            problems.push(format!(
                "try {} succeeded and yet another ran",
                t.try_number
            ));
        }
    }
    for t in &ti.tries {
        if !is_worker_id(&t.hostname) {
            problems.push(format!(
                "try {} ran on {:?}, not a worker id",
                t.try_number, t.hostname
            ));
        }
    }
    let returns = store
        .xcom_entries(
            &ti.tenant,
            &ti.dag_id,
            &ti.run_id,
            &ti.task_id,
            ti.map_index,
        )
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k == "return_value")
        .count();
    if returns > 1 {
        problems.push(format!("{returns} return_value XComs"));
    }
    problems
}
