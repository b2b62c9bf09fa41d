//! Wiring: builds the parts of a running Aileron (sandbox, metastore, scheduler,
//! local executor, DAG processor) and starts them. `aileron standalone` and
//! `aileron dags test` both go through here, so they run the same code.

use crate::dag_processor::{self, DagFolder, TenantCatalogs};
use crate::executors::local::LocalExecutor;
use crate::metastore::Metastore;
use crate::scheduler::{Command, Scheduler, SchedulerConfig, SchedulerError, SchedulerHandle};
use aileron_model::TenantId;
use aileron_model::clock::Clock;
use aileron_model::dag::OperatorCatalog;
use aileron_sandbox::{RegistryError, Sandbox, SandboxError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

pub struct AppConfig {
    pub home: PathBuf,
    pub dags: PathBuf,
    /// Keep the metastore in memory (for `dags test`) instead of `HOME/aileron.redb`.
    pub in_memory: bool,
    /// Watch the DAGs and plugins folders for changes.
    pub watch: bool,
    pub scheduler: SchedulerConfig,
    pub clock: Arc<dyn Clock>,
    /// Where compiled components are cached; defaults to `HOME/cache`.
    pub cache_dir: Option<PathBuf>,
    /// The first admin's password on a home without users
    /// (`AILERON_ADMIN_PASSWORD`); generated into `HOME/admin.password` if `None`.
    pub admin_password: Option<String>,
}

/// Where tries run.
pub enum ExecutorChoice {
    /// In this process (`aileron standalone`): the queue lives in the executor.
    Local,
    /// On `aileron worker` processes, through Redis Streams (`aileron scheduler`).
    Redis {
        /// `redis://HOST:PORT[/DB]`.
        url: String,
        /// The secret workers present.
        worker_token: String,
        timing: crate::executors::remote::Timing,
    },
}

/// A running Aileron.
pub struct App {
    pub metastore: Metastore,
    pub sandbox: Sandbox,
    pub scheduler: SchedulerHandle,
    /// What the execution API needs, with a remote executor.
    pub remote: Option<Arc<crate::executors::remote::Remote>>,
    /// The scheduler's clock (simulated in tests).
    pub clock: Arc<dyn Clock>,
    /// Checks the credentials of API requests.
    pub auth: crate::auth::Auth,
    /// Asks for the DAGs folder to be parsed again (a tenant was created or
    /// deleted).
    pub rescan: Arc<tokio::sync::Notify>,
    /// `HOME/plugins`: the global operators' folder, and each tenant's inside it.
    pub plugins_dir: PathBuf,
    /// What this process runs with (`/api/v2/config`); the HTTP server's own
    /// options are added by whoever serves it.
    pub settings: crate::settings::Settings,
    pub task: JoinHandle<Result<(), SchedulerError>>,
    _watchers: Vec<Box<dyn std::any::Any + Send>>,
}

/// Why Aileron could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the home folder {path}: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// `place` is the file's path, or says the metastore is in memory.
    #[error("cannot open {place}: {source}")]
    Metastore {
        place: String,
        source: crate::metastore::MetastoreError,
    },
    #[error("cannot create the first admin: {0}")]
    Admin(#[from] crate::auth::BootstrapError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Queue(#[from] crate::executors::redis_streams::QueueUrlError),
    #[error("cannot watch {path}: {source}")]
    WatchDags {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot watch the plugins folder: {0}")]
    WatchPlugins(#[from] RegistryError),
    #[error("cannot start the scheduler's thread: {0}")]
    SchedulerThread(std::io::Error),
    #[error("the first scan of the DAGs folder failed: {0}")]
    Scan(#[from] tokio::task::JoinError),
}

pub fn metastore_path(home: &Path) -> PathBuf {
    home.join("aileron.redb")
}

pub async fn start(cfg: AppConfig) -> Result<App, StartError> {
    start_with(cfg, ExecutorChoice::Local).await
}

pub async fn start_with(cfg: AppConfig, executor: ExecutorChoice) -> Result<App, StartError> {
    // Taken before the executor and the scheduler's config move away.
    let settings = settings_of(&cfg, &executor);
    std::fs::create_dir_all(&cfg.home).map_err(|source| StartError::Home {
        path: cfg.home.clone(),
        source,
    })?;
    // With workers, this process runs only `describe` and callbacks.
    let local_slots = match executor {
        ExecutorChoice::Local => cfg.scheduler.parallelism,
        ExecutorChoice::Redis { .. } => crate::executors::callbacks::CALLBACK_SLOTS,
    };
    let sandbox = Sandbox::open_home(&cfg.home, cfg.cache_dir.clone(), local_slots)?;
    sandbox.prune_cache();
    let (opened, place) = if cfg.in_memory {
        (Metastore::in_memory(), "the in-memory metastore".to_owned())
    } else {
        let path = metastore_path(&cfg.home);
        (Metastore::open(&path), path.display().to_string())
    };
    let metastore = opened.map_err(|source| StartError::Metastore {
        place: place.clone(),
        source,
    })?;
    // `dags test` keeps nothing, so it makes no admin (nor a password file).
    if !cfg.in_memory {
        crate::auth::bootstrap_admin(&metastore, &cfg.home, cfg.admin_password.as_deref())?;
    }
    let auth =
        crate::auth::Auth::new(metastore.clone()).map_err(|source| StartError::Metastore {
            place: place.clone(),
            source,
        })?;
    let slots = cfg.scheduler.parallelism;
    let clock = cfg.clock.clone();
    let exec_sandbox = sandbox.clone();
    let mut remote = None;
    let scheduler = match executor {
        ExecutorChoice::Local => {
            Scheduler::new(metastore.clone(), clock.clone(), cfg.scheduler, move |tx| {
                LocalExecutor::start(exec_sandbox, slots, slots, tx, clock)
            })?
        }
        ExecutorChoice::Redis {
            url,
            worker_token,
            timing,
        } => {
            use crate::executors::redis_streams;
            use crate::executors::remote::{Remote, SCHEDULER_HOLDER};
            let key = metastore
                .execution_key()
                .map_err(|source| StartError::Metastore {
                    place: place.clone(),
                    source,
                })?;
            // Before the scheduler starts, so a bad URL is a clear error. Redis
            // itself may be down: the connection is made lazily.
            let conn = redis_streams::connect(&url)?;
            let tenants = metastore
                .tenants()
                .map_err(|source| StartError::Metastore { place, source })?;
            Scheduler::new(metastore.clone(), clock.clone(), cfg.scheduler, |tx| {
                let r = Remote::new(key, worker_token, timing, tx, clock);
                r.announce(tenants.iter().map(|t| t.name.as_str()));
                // Callbacks run in this process: they share each capped
                // tenant's max_memory with its tries on the workers.
                if !exec_sandbox.share_memory_quotas(r.memory.in_process(SCHEDULER_HOLDER)) {
                    tracing::error!("callbacks' memory is not shared with the workers' ledger");
                }
                remote = Some(r.clone());
                redis_streams::RedisExecutor::start(conn, r, exec_sandbox)
            })?
        }
    };
    let handle = scheduler.handle();

    let folder = Arc::new(DagFolder::new(&cfg.dags));
    let catalogs = Arc::new(HostCatalogs {
        registry: sandbox.registry().clone(),
        metastore: metastore.clone(),
    });
    let scan = {
        let (folder, catalogs) = (folder.clone(), catalogs.clone());
        tokio::task::spawn_blocking(move || folder.scan(catalogs.as_ref())).await?
    };
    handle.send(Command::DagFiles {
        files: scan.into_iter().map(|(f, r)| (f, Some(r))).collect(),
        full: true,
    })?;

    let mut watchers: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    if cfg.watch {
        std::fs::create_dir_all(&cfg.dags).ok();
        let (watcher, mut changes) =
            dag_processor::watch(&cfg.dags).map_err(|source| StartError::WatchDags {
                path: cfg.dags.clone(),
                source,
            })?;
        watchers.push(Box::new(watcher));
        let (h, f, c) = (handle.clone(), folder.clone(), catalogs.clone());
        tokio::spawn(async move {
            while let Some(batch) = changes.recv().await {
                let (f, c) = (f.clone(), c.clone());
                let Ok(files) = tokio::task::spawn_blocking(move || {
                    batch
                        .into_iter()
                        .map(|file| {
                            let result = f.parse_file(&file, c.as_ref());
                            (file, result)
                        })
                        .collect::<Vec<_>>()
                })
                .await
                else {
                    continue;
                };
                if h.send(Command::DagFiles { files, full: false }).is_err() {
                    break;
                }
            }
        });
        let guard = sandbox.registry().watch(&cfg.home.join("plugins"))?;
        watchers.push(Box::new(guard));
    }
    let rescan = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(rescan_loop(
        handle.clone(),
        folder,
        catalogs,
        rescan.clone(),
    ));
    let task = scheduler.spawn().map_err(StartError::SchedulerThread)?;
    Ok(App {
        metastore,
        sandbox,
        scheduler: handle,
        task,
        remote,
        clock: cfg.clock.clone(),
        auth,
        rescan,
        plugins_dir: cfg.home.join("plugins"),
        settings,
        _watchers: watchers,
    })
}

/// The configuration `cfg` and `executor` amount to, by Airflow's names where
/// it has them (`[core]`, `[scheduler]`), Aileron's own under `[aileron]`.
fn settings_of(cfg: &AppConfig, executor: &ExecutorChoice) -> crate::settings::Settings {
    use aileron_model::units::{format_duration, format_size};
    let mut s = crate::settings::Settings::default();
    s.set("core", "dags_folder", cfg.dags.display());
    s.set("core", "parallelism", cfg.scheduler.parallelism);
    s.set(
        "core",
        "dags_are_paused_at_creation",
        cfg.scheduler.paused_at_creation,
    );
    s.set(
        "core",
        "executor",
        match executor {
            ExecutorChoice::Local => "LocalExecutor",
            ExecutorChoice::Redis { .. } => "RedisStreamsExecutor",
        },
    );
    s.set(
        "scheduler",
        "scheduler_heartbeat_sec",
        crate::scheduler::heartbeat::EVERY.as_secs(),
    );
    s.set(
        "scheduler",
        "scheduler_health_check_threshold",
        crate::scheduler::heartbeat::STALE_AFTER.as_secs(),
    );
    s.set("aileron", "home", cfg.home.display());
    s.set(
        "aileron",
        "cache_dir",
        cfg.cache_dir
            .clone()
            .unwrap_or_else(|| cfg.home.join("cache"))
            .display(),
    );
    s.set(
        "aileron",
        "history_retention",
        cfg.scheduler
            .retention
            .map_or_else(|| "none".to_owned(), format_duration),
    );
    s.set(
        "aileron",
        "log_bytes_per_try",
        format_size(cfg.scheduler.log_bytes as u64),
    );
    s.set(
        "aileron",
        "allow_private_ips",
        cfg.scheduler.allow_private_ips,
    );
    if let ExecutorChoice::Redis { timing, .. } = executor {
        // The URL may carry the queue's password, and the token is the
        // workers' secret: only that they are set is shown.
        s.set("aileron", "queue", crate::settings::HIDDEN);
        s.set("aileron", "worker_token", crate::settings::HIDDEN);
        s.set(
            "aileron",
            "worker_timeout",
            format_duration(timing.worker_timeout),
        );
    }
    s
}

/// The catalogs DAG files are parsed against: a tenant folder is read only when
/// its tenant exists, against the global operators and the tenant's own, within
/// the ceilings of its limits.
struct HostCatalogs {
    registry: aileron_sandbox::Registry,
    metastore: Metastore,
}

impl TenantCatalogs for HostCatalogs {
    fn catalog(&self, tenant: &TenantId) -> Result<Box<dyn OperatorCatalog + '_>, String> {
        match self.metastore.tenant(tenant.as_str()) {
            Ok(Some(record)) => Ok(Box::new(dag_processor::WithCeilings {
                catalog: self.registry.for_tenant(tenant),
                ceilings: record.limits.ceilings(),
            })),
            Ok(None) => Err(dag_processor::unknown_tenant(tenant)),
            Err(e) => Err(format!("cannot look up tenant `{tenant}`: {e}")),
        }
    }
}

/// Parses the whole DAGs folder again whenever what it is parsed against
/// changes: an operator published or removed (a DAG naming it may now import, or
/// no longer), or a tenant created or deleted (its folder is read, or not).
async fn rescan_loop(
    scheduler: SchedulerHandle,
    folder: Arc<DagFolder>,
    catalogs: Arc<HostCatalogs>,
    asked: Arc<tokio::sync::Notify>,
) {
    let mut published = catalogs.registry.subscribe();
    loop {
        tokio::select! {
            event = published.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                // One scan covers every event already queued.
                while published.try_recv().is_ok() {}
            }
            () = asked.notified() => {}
            // Ends with the scheduler, so the metastore it holds is let go.
            () = scheduler.stopped() => return,
        }
        let (f, c) = (folder.clone(), catalogs.clone());
        let Ok(scan) = tokio::task::spawn_blocking(move || f.scan(c.as_ref())).await else {
            continue;
        };
        let files = scan.into_iter().map(|(f, r)| (f, Some(r))).collect();
        if scheduler
            .send(Command::DagFiles { files, full: true })
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_never_hold_the_queue_url_or_the_worker_token() {
        let cfg = AppConfig {
            home: PathBuf::from("/srv/aileron"),
            dags: PathBuf::from("/srv/dags"),
            in_memory: true,
            watch: false,
            scheduler: crate::scheduler::SchedulerConfig::default(),
            clock: Arc::new(aileron_model::clock::SystemClock),
            cache_dir: None,
            admin_password: None,
        };
        let executor = ExecutorChoice::Redis {
            url: "redis://:queue-password@redis:6379/0".to_owned(),
            worker_token: "worker-secret".to_owned(),
            timing: crate::executors::remote::Timing {
                worker_timeout: std::time::Duration::from_secs(30),
            },
        };
        let s = settings_of(&cfg, &executor);
        let text = crate::settings::ini(s.sections());
        assert!(
            !text.contains("queue-password") && !text.contains("worker-secret"),
            "{text}"
        );
        let aileron = s.section("aileron").unwrap();
        assert_eq!(aileron.option("queue"), Some(crate::settings::HIDDEN));
        assert_eq!(
            aileron.option("worker_token"),
            Some(crate::settings::HIDDEN)
        );
        assert_eq!(
            s.section("core").unwrap().option("executor"),
            Some("RedisStreamsExecutor")
        );
        assert_eq!(aileron.option("cache_dir"), Some("/srv/aileron/cache"));
    }
}
