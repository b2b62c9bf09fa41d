//! The command line (ARCHITECTURE §7): one subcommand group per file.

mod access;
mod backfill;
pub mod client;
mod dags;
mod db;
mod login;
mod plugins;
mod project;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "aileron",
    version,
    about = "Airflow-style workflows whose operators are sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run everything in one process: API and UI, DAG processor, scheduler, executor.
    Standalone(StandaloneArgs),
    /// Run the API and UI, DAG processor and scheduler, with tries queued in Redis
    /// Streams for `aileron worker` processes (multi-node).
    Scheduler(SchedulerArgs),
    /// Take TaskInstances from Redis Streams and run them (multi-node).
    Worker(aileron_worker::WorkerArgs),
    /// Work with DAGs.
    #[command(subcommand)]
    Dags(dags::DagsCommand),
    /// Work with tasks.
    #[command(subcommand)]
    Tasks(dags::TasksCommand),
    /// Work with operator plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Maintain the metastore.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Sign in to a server and keep the token in ~/.aileron/credentials.
    Login(login::LoginArgs),
    /// Tenants (platform admins).
    #[command(subcommand)]
    Tenants(access::TenantsCommand),
    /// Users (platform admins).
    #[command(subcommand)]
    Users(access::UsersCommand),
    /// Members of a tenant and their roles (the tenant's Admins).
    #[command(subcommand)]
    Roles(access::RolesCommand),
    /// API tokens of a tenant's service accounts (the tenant's Admins).
    #[command(subcommand)]
    Tokens(access::TokensCommand),
}

/// Where Aileron keeps its state.
#[derive(Args, Clone)]
pub struct HomeArgs {
    /// Holds the metastore, logs and the compiled-component cache.
    #[arg(long, env = "AILERON_HOME")]
    pub home: Option<PathBuf>,
    /// The DAGs folder (default HOME/dags).
    #[arg(long, env = "AILERON_DAGS")]
    pub dags: Option<PathBuf>,
    /// Where compiled components are kept (default HOME/cache). Processes
    /// given the same folder (workers of one machine with their own homes)
    /// compile each component once; it must belong to this user.
    #[arg(long, env = "AILERON_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl HomeArgs {
    pub fn home(&self) -> PathBuf {
        self.home
            .clone()
            .unwrap_or_else(aileron_protocol::default_home)
    }
    pub fn dags(&self) -> PathBuf {
        self.dags
            .clone()
            .unwrap_or_else(|| self.home().join("dags"))
    }
}

/// How to reach a running server.
#[derive(Args, Clone)]
pub struct ServerArgs {
    #[arg(long, env = "AILERON_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A session token (`POST /auth/token`) or an API token.
    #[arg(long, env = "AILERON_TOKEN")]
    pub token: Option<String>,
    /// The tenant to act in, for a caller with roles in several.
    #[arg(long, env = "AILERON_TENANT")]
    pub tenant: Option<String>,
}

#[derive(Args)]
struct StandaloneArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on; loopback unless you say otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// TaskInstances that may run at once.
    #[arg(long, env = "AILERON_PARALLELISM", default_value_t = 32)]
    parallelism: usize,
    /// The URL users and browsers reach this server at, when it is not a loopback
    /// address or an IP (behind a proxy, or on a name): its host is answered
    /// and state-changing requests from its origin are allowed.
    #[arg(long, env = "AILERON_PUBLIC_URL")]
    public_url: Option<String>,
    /// More host names to answer for, comma-separated (`*` for any). Loopback
    /// names and IP addresses are always answered.
    #[arg(long, env = "AILERON_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// A client that has not sent a request's headers within this long is
    /// disconnected (idle kept-alive connections too).
    #[arg(long, env = "AILERON_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    header_timeout: std::time::Duration,
    /// Connections served at once; further ones wait until one closes.
    #[arg(long, env = "AILERON_MAX_CONNECTIONS", default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Delete finished runs (with their TaskInstances, XCom and logs) once they
    /// are older than this, checked every hour, as `aileron db clean
    /// --older-than` does. Unset: history is kept.
    #[arg(long, env = "AILERON_HISTORY_RETENTION", value_parser = parse_positive_duration, value_name = "AGE")]
    history_retention: Option<std::time::Duration>,
}

/// A positive duration (`10s`, `30d`).
fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = aileron_model::units::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

#[derive(Args)]
struct SchedulerArgs {
    #[command(flatten)]
    server: StandaloneArgs,
    /// The Redis server holding the queues: `redis://HOST:PORT[/DB]`.
    #[arg(long, env = "AILERON_QUEUE")]
    queue: String,
    /// The secret workers must present. Without it, one is generated on first
    /// start and kept in HOME/worker.token.
    #[arg(long, env = "AILERON_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Option<String>,
    /// A try whose worker has not sent a heartbeat for this long is failed (and
    /// retried if it has retries left).
    #[arg(long, env = "AILERON_WORKER_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    worker_timeout: std::time::Duration,
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = aileron_model::units::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_millis(600) {
        return Err("must be at least 600ms".to_owned());
    }
    Ok(d)
}

/// The worker token of `home`: read from HOME/worker.token, or generated (32
/// random bytes, hex) and written there readable by the owner only.
fn worker_token(home: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let path = home.join("worker.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random bytes: {e}"))?;
    let token = hex::encode(bytes);
    std::fs::create_dir_all(home)?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    tracing::info!("generated a worker token in {}", path.display());
    Ok(token)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server narrates what it does; one-shot commands only speak up on problems.
    let default_filter = match cli.command {
        Top::Standalone(_) | Top::Scheduler(_) | Top::Worker(_) => {
            "info,wasmtime=warn,cranelift=warn"
        }
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AILERON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Top::Standalone(a) => serve(a, None).await,
            Top::Scheduler(a) => {
                let token = match a.worker_token {
                    Some(t) if !t.is_empty() => t,
                    _ => worker_token(&a.server.home.home())?,
                };
                let executor = crate::app::ExecutorChoice::Redis {
                    url: a.queue,
                    worker_token: token,
                    timing: crate::executors::remote::Timing {
                        worker_timeout: a.worker_timeout,
                    },
                };
                serve(a.server, Some(executor)).await
            }
            Top::Worker(a) => Ok(aileron_worker::run(a).await?),
            Top::Dags(c) => dags::run(c).await,
            Top::Tasks(c) => dags::run_tasks(c).await,
            Top::Plugins(c) => plugins::run(c).await,
            Top::Db(c) => db::run(c).await,
            Top::Login(a) => login::run(a).await,
            Top::Tenants(c) => access::tenants(c).await,
            Top::Users(c) => access::users(c).await,
            Top::Roles(c) => access::roles(c).await,
            Top::Tokens(c) => access::tokens(c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `standalone` (no executor given: the local one) and `scheduler`.
async fn serve(
    a: StandaloneArgs,
    executor: Option<crate::app::ExecutorChoice>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    // Checked before anything starts, so a typo is a clear error at once.
    let policy = crate::server::HostPolicy::new(&a.allowed_hosts, a.public_url.as_deref())
        .map_err(anyhow::Error::msg)?;
    // Before anything records a metric: what is recorded earlier is lost.
    crate::api::prometheus::install_recorder();
    let home = a.home.home();
    let dags = a.home.dags();
    let mut app = crate::app::start_with(
        crate::app::AppConfig {
            home: home.clone(),
            dags: dags.clone(),
            in_memory: false,
            watch: true,
            scheduler: crate::scheduler::SchedulerConfig {
                parallelism: a.parallelism,
                retention: a.history_retention,
                ..Default::default()
            },
            clock: std::sync::Arc::new(aileron_model::clock::SystemClock),
            cache_dir: a.home.cache_dir.clone(),
            admin_password: std::env::var("AILERON_ADMIN_PASSWORD").ok(),
        },
        executor.unwrap_or(crate::app::ExecutorChoice::Local),
    )
    .await?;
    // The HTTP server's options, by Airflow's `[api]` names.
    for (key, value) in [
        ("host", a.bind.clone()),
        ("port", a.port.to_string()),
        ("base_url", a.public_url.clone().unwrap_or_default()),
        ("allowed_hosts", a.allowed_hosts.join(",")),
        (
            "header_timeout",
            aileron_model::units::format_duration(a.header_timeout),
        ),
        ("max_connections", a.max_connections.to_string()),
    ] {
        app.settings.set("api", key, value);
    }
    let router = crate::server::router(&app, policy);
    let listener = tokio::net::TcpListener::bind((a.bind.as_str(), a.port))
        .await
        .with_context(|| format!("cannot listen on {} port {}", a.bind, a.port))?;
    if !listener.local_addr()?.ip().is_loopback() {
        tracing::warn!(
            "listening on {} beyond this machine: passwords and tokens cross the network \
             in clear unless a TLS proxy is in front (see the README's security model)",
            listener.local_addr()?
        );
    }
    if let Some(remote) = &app.remote {
        // Workers can reach this process from here on.
        remote.listening(remote.clock.now());
    }
    tracing::info!(
        "Aileron is up: http://{} (home {}, DAGs {})",
        listener.local_addr()?,
        home.display(),
        dags.display()
    );
    let scheduler = app.scheduler.clone();
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        scheduler.shutdown();
    };
    let limits = crate::server::ConnectionLimits {
        header_timeout: a.header_timeout,
        max_connections: a.max_connections,
    };
    let serve = crate::server::serve(listener, router, limits, shutdown);
    let mut scheduler_task = app.task;
    tokio::select! {
        () = serve => {
            // Let the scheduler commit what it holds before the process ends.
            let _ = scheduler_task.await;
            Ok(ExitCode::SUCCESS)
        }
        stopped = &mut scheduler_task => {
            // Without its scheduler the server would only pretend to work: exit, so a
            // supervisor restarts it and recovery runs.
            match stopped {
                Ok(Ok(())) => anyhow::bail!("the scheduler stopped unexpectedly"),
                Ok(Err(e)) => anyhow::bail!("the scheduler stopped: {e}"),
                Err(e) => anyhow::bail!("the scheduler crashed: {e}"),
            }
        }
    }
}

/// Parses `--conf` JSON into an object.
pub fn parse_conf(s: Option<&str>) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match s {
        None => Ok(serde_json::Map::new()),
        Some(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => anyhow::bail!("--conf must be a JSON object, like '{{\"key\": 1}}'"),
            Err(e) => anyhow::bail!("--conf is not valid JSON: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    /// Clap checks a command's arguments only when it is parsed: two flags
    /// of one name in a subcommand would panic at its first use.
    #[test]
    fn every_command_s_arguments_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
