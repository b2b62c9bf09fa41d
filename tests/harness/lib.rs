//! Test harness shared by the integration tests: a temporary Aileron home with DAG
//! files, the real sandbox and scheduler on a simulated clock, and helpers to run a
//! DAG and read back every TaskInstance.

/// The platform admin's password in every home the tests start.
pub const TEST_ADMIN_PASSWORD: &str = "test admin password";

pub mod browser;
pub mod guests;
pub mod http_peer;
pub mod multinode;
pub mod server;

use aileron::app::{self, App, AppConfig};
use aileron::dag_processor::DagFolder;
use aileron::metastore::{DagRun, TaskInstance};
use aileron::scheduler::{Command, SchedulerConfig, Update};
use aileron_model::TenantId;
use aileron_model::clock::SimClock;
use aileron_model::{DagRunState, TaskInstanceState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Compiled components are cached here across tests, so each test does not compile
/// the standard operators again.
pub fn cache_dir() -> PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir);
    target.join("aileron-test-cache")
}

/// The `aileron` binary of this build profile, built on first use if `cargo test`
/// did not build it (it builds a package's binaries only for that package's own
/// integration tests, and these live in a separate package).
pub fn aileron_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test binary path");
            let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
            let bin = profile_dir.join("aileron");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "aileron", "--bin", "aileron"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            // Always ask cargo: it is a no-op when the binary is fresh, and a stale
            // binary would test old code.
            let status = cmd
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cannot build the aileron binary");
            assert!(bin.exists(), "{} missing after the build", bin.display());
            bin
        })
        .clone()
}

/// The simulated clock's start: a Monday, so schedules are easy to reason about.
pub fn t0() -> jiff::Timestamp {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub dags: PathBuf,
    pub clock: Arc<SimClock>,
    pub app: App,
}

/// What a finished run looked like.
pub struct Outcome {
    pub run: DagRun,
    pub tis: BTreeMap<(String, i64), TaskInstance>,
}

impl Outcome {
    pub fn ti(&self, task_id: &str) -> &TaskInstance {
        self.tis
            .get(&(task_id.to_owned(), -1))
            .unwrap_or_else(|| panic!("no TaskInstance `{task_id}` in {:?}", self.tis.keys()))
    }
    pub fn state(&self, task_id: &str) -> TaskInstanceState {
        self.ti(task_id).state
    }
    pub fn mapped(&self, task_id: &str) -> Vec<&TaskInstance> {
        self.tis
            .iter()
            .filter(|((t, m), _)| t == task_id && *m >= 0)
            .map(|(_, ti)| ti)
            .collect()
    }
}

pub struct EnvBuilder {
    dags: Vec<(String, String)>,
    plugins: Vec<PathBuf>,
    schedule: bool,
    watch: bool,
    parallelism: usize,
    start_at: Option<jiff::Timestamp>,
    allow_private_ips: bool,
    remote: Option<std::time::Duration>,
    retention: Option<std::time::Duration>,
}

impl Env {
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            dags: Vec::new(),
            plugins: vec![PathBuf::from(guests::TESTKIT)],
            schedule: false,
            watch: false,
            parallelism: 16,
            start_at: None,
            allow_private_ips: false,
            remote: None,
            retention: None,
        }
    }

    /// Triggers a manual run and waits (bounded) until it finishes.
    pub async fn run(&self, dag_id: &str, conf: serde_json::Value) -> Outcome {
        let conf = match conf {
            serde_json::Value::Object(m) => m,
            _ => Default::default(),
        };
        let mut updates = self.app.scheduler.subscribe();
        let run = self
            .app
            .scheduler
            .trigger(TenantId::DEFAULT, dag_id, None, None, conf)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot trigger {dag_id}: {e}; import errors: {:?}",
                    self.import_errors()
                )
            });
        self.wait_run(&mut updates, dag_id, &run.run_id).await
    }

    pub async fn wait_run(
        &self,
        updates: &mut tokio::sync::broadcast::Receiver<Update>,
        dag_id: &str,
        run_id: &str,
    ) -> Outcome {
        self.wait_run_in(updates, TenantId::DEFAULT, dag_id, run_id)
            .await;
        self.outcome(dag_id, run_id)
    }

    /// Waits (bounded) until a run of `tenant` has finished; its state.
    pub async fn wait_run_in(
        &self,
        updates: &mut tokio::sync::broadcast::Receiver<Update>,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
    ) -> aileron_model::DagRunState {
        let finished = |env: &Env| {
            env.app
                .metastore
                .dag_run(tenant, dag_id, run_id)
                .unwrap()
                .map(|r| r.state)
                .filter(|s| s.is_finished())
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(state) = finished(self) {
                return state;
            }
            let wait = tokio::time::timeout_at(deadline, updates.recv()).await;
            assert!(
                wait.is_ok(),
                "run {run_id} of {dag_id} in {tenant} did not finish in time"
            );
        }
    }

    pub fn outcome(&self, dag_id: &str, run_id: &str) -> Outcome {
        let run = self
            .app
            .metastore
            .dag_run(TenantId::DEFAULT, dag_id, run_id)
            .unwrap()
            .expect("run exists");
        let tis = self
            .app
            .metastore
            .task_instances(TenantId::DEFAULT, dag_id, run_id)
            .unwrap()
            .into_iter()
            .map(|ti| ((ti.task_id.clone(), ti.map_index), ti))
            .collect();
        Outcome { run, tis }
    }

    pub fn import_errors(&self) -> Vec<String> {
        self.app
            .metastore
            .import_errors()
            .unwrap()
            .into_iter()
            .map(|e| format!("{}:{:?}: {}", e.filename, e.line, e.message))
            .collect()
    }

    /// Writes a DAG file and makes the scheduler take it in.
    pub async fn put_dag(&self, file: &str, toml: &str) {
        std::fs::write(self.dags.join(file), toml).unwrap();
        self.rescan().await;
    }

    pub async fn rescan(&self) {
        let folder = DagFolder::new(&self.dags);
        let files = folder
            .scan(self.app.sandbox.registry())
            .into_iter()
            .map(|(f, r)| (f, Some(r)))
            .collect();
        self.app
            .scheduler
            .send(Command::DagFiles { files, full: true })
            .unwrap();
        self.app.scheduler.sync().await.unwrap();
    }

    pub fn log(&self, ti: &TaskInstance, try_number: u32) -> String {
        self.app
            .metastore
            .log(ti, try_number)
            .unwrap()
            .unwrap_or_default()
    }
}

impl EnvBuilder {
    pub fn dag(mut self, file: &str, toml: &str) -> Self {
        self.dags.push((file.to_owned(), toml.to_owned()));
        self
    }
    pub fn plugin(mut self, path: &str) -> Self {
        self.plugins.push(PathBuf::from(path));
        self
    }
    /// Let the scheduler create runs from DAG schedules.
    pub fn scheduled(mut self) -> Self {
        self.schedule = true;
        self
    }
    /// Watch the DAGs and plugins folders as `standalone` does.
    pub fn watching(mut self) -> Self {
        self.watch = true;
        self
    }
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n;
        self
    }
    /// Start the simulated clock at `t` instead of [`t0`].
    pub fn start_at(mut self, t: jiff::Timestamp) -> Self {
        self.start_at = Some(t);
        self
    }

    /// Let tasks' outbound HTTP reach loopback and private addresses
    /// (`SchedulerConfig::allow_private_ips`), for tests that serve HTTP on
    /// 127.0.0.1. Off by default, as in production.
    pub fn allow_private_ips(mut self) -> Self {
        self.allow_private_ips = true;
        self
    }

    /// Runs tries on remote workers (the Redis executor) with this worker timeout
    /// and the worker token `secret`, instead of in process. Redis is never
    /// reached (the connection is lazy): the test plays the worker through the
    /// execution API and reads the queued entries from `App::remote`.
    pub fn remote(mut self, worker_timeout: std::time::Duration) -> Self {
        self.remote = Some(worker_timeout);
        self
    }

    /// Delete finished runs older than `age` every hour of the simulated clock
    /// (`SchedulerConfig::retention`).
    pub fn retention(mut self, age: std::time::Duration) -> Self {
        self.retention = Some(age);
        self
    }

    pub async fn start(self) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let dags = home.join("dags");
        std::fs::create_dir_all(home.join("plugins")).unwrap();
        std::fs::create_dir_all(&dags).unwrap();
        for p in &self.plugins {
            let name = p.file_name().unwrap();
            std::fs::copy(p, home.join("plugins").join(name)).unwrap();
        }
        for (file, toml) in &self.dags {
            let path = dags.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, toml).unwrap();
        }
        create_tenants_of(&home, self.dags.iter().map(|(file, _)| file.as_str()));
        let clock = Arc::new(SimClock::new(self.start_at.unwrap_or_else(t0)));
        let executor = match self.remote {
            None => app::ExecutorChoice::Local,
            Some(worker_timeout) => app::ExecutorChoice::Redis {
                url: "redis://127.0.0.1:1".to_owned(),
                worker_token: "secret".to_owned(),
                timing: aileron::executors::remote::Timing { worker_timeout },
            },
        };
        let app = app::start_with(
            AppConfig {
                home: home.clone(),
                dags: dags.clone(),
                in_memory: false,
                watch: self.watch,
                scheduler: SchedulerConfig {
                    parallelism: self.parallelism,
                    create_scheduled_runs: self.schedule,
                    allow_private_ips: self.allow_private_ips,
                    retention: self.retention,
                    ..Default::default()
                },
                clock: clock.clone(),
                cache_dir: Some(cache_dir()),
                admin_password: Some(TEST_ADMIN_PASSWORD.to_owned()),
            },
            executor,
        )
        .await
        .expect("Aileron starts");
        // The first scan of the DAGs folder is applied before the test looks.
        app.scheduler.sync().await.expect("scheduler runs");
        if let Some(remote) = &app.remote {
            // The test reaches the execution API through its router at once.
            remote.listening(remote.clock.now());
        }
        Env {
            dir,
            home,
            dags,
            clock,
            app,
        }
    }
}

/// Asserts the final state of every listed task.
#[track_caller]
pub fn assert_states(o: &Outcome, expected: &[(&str, TaskInstanceState)]) {
    for (task, state) in expected {
        assert_eq!(o.state(task), *state, "state of `{task}`");
    }
}

pub fn assert_run(o: &Outcome, state: DagRunState) {
    assert_eq!(
        o.run.state,
        state,
        "run state; tasks: {:?}",
        o.tis
            .values()
            .map(|t| (&t.task_id, t.state))
            .collect::<Vec<_>>()
    );
}

/// Waits until a remote executor holds a queued attempt of `task` (tests that play
/// the worker read entries here instead of from Redis) and returns its entry.
pub async fn queued_attempt(
    remote: &aileron::executors::remote::Remote,
    task: &str,
) -> aileron_protocol::wire::Entry {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        {
            let d = remote.dispatch.lock().unwrap();
            if let Some(q) = d.queued.values().find(|q| q.key.task_id == task) {
                return q.entry.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no queued attempt of {task}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes the tenants whose folders `files` are in (`team_a/etl.toml`), as a
/// platform admin would before their DAG files arrive: the DAG processor reads a
/// tenant folder only once its tenant exists.
pub fn create_tenants_of<'a>(home: &Path, files: impl Iterator<Item = &'a str>) {
    let tenants: std::collections::BTreeSet<&str> = files
        .filter_map(|f| f.split_once('/').map(|(tenant, _)| tenant))
        .collect();
    if tenants.is_empty() {
        return;
    }
    let metastore =
        aileron::metastore::Metastore::open(&aileron::app::metastore_path(home)).unwrap();
    for tenant in tenants {
        metastore
            .create_tenant(&aileron::metastore::TenantRecord {
                name: aileron_model::TenantId::new(tenant).unwrap(),
                description: String::new(),
                created_at: jiff::Timestamp::now(),
                limits: Default::default(),
            })
            .unwrap();
    }
}
