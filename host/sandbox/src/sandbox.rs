//! The public face of the crate: [`Sandbox`] runs TaskInstance tries.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;

use crate::config::SandboxConfig;
use crate::engine::Runtime;
use crate::error::SandboxError;
use crate::log::LogLevel;
use crate::memory::TenantMemoryUsage;
use crate::registry::Registry;
use crate::request::{TryReport, TryRequest};
use crate::run::{self, Executed};

/// Sandbox slots beyond a process's task slots: `describe` calls of plugins being
/// loaded take a slot too, and must not fail because every task slot is busy.
const DESCRIBE_SLOTS: u32 = 8;

/// Runs operator components, one fresh wasmtime `Store` per try, with limits and
/// no capability beyond the `context` imports. Cheap to clone: clones share the
/// engine, the registry and the epoch ticker, which stops once the last clone
/// (and the last clone of its [`Registry`]) is dropped.
#[derive(Clone, Debug)]
pub struct Sandbox {
    registry: Registry,
}

impl Sandbox {
    /// Builds the engine (pooling allocator sized by `max_concurrent`), the linker
    /// and the registry, starts the epoch ticker, and registers the standard
    /// operators unless `config.load_builtin` is off.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let load_builtin = config.load_builtin;
        let registry = Registry::new(Arc::new(Runtime::new(config)?));
        if load_builtin {
            registry.load_builtin().map_err(SandboxError::Builtin)?;
        }
        Ok(Sandbox { registry })
    }

    /// The sandbox of an Aileron process whose state lives in `home`: compiled
    /// components cached in `cache_dir` (default `HOME/cache`), room for
    /// `task_slots` tries at once plus the `describe` calls of plugins being
    /// loaded, and the plugins of `HOME/plugins` registered. Compiles components:
    /// call it from a blocking context.
    pub fn open_home(
        home: &Path,
        cache_dir: Option<PathBuf>,
        task_slots: usize,
    ) -> Result<Self, SandboxError> {
        let sandbox = Sandbox::new(SandboxConfig {
            cache_dir: Some(cache_dir.unwrap_or_else(|| home.join("cache"))),
            // Each slot reserves address space for its memories; size the pool to
            // what this process can use rather than the library's generous default.
            max_concurrent: u32::try_from(task_slots)
                .unwrap_or(u32::MAX)
                .saturating_add(DESCRIBE_SLOTS),
            ..SandboxConfig::default()
        })?;
        let plugins = home.join("plugins");
        sandbox
            .registry()
            .open_store(&plugins)
            .map_err(|source| SandboxError::Plugins {
                path: plugins,
                source,
            })?;
        Ok(sandbox)
    }

    /// Deletes cached compiled components nothing here publishes and nothing
    /// loaded for a week (see [`Registry::prune_cache`](crate::Registry::prune_cache)).
    /// For a long-lived process (a server, a worker) to call once it has
    /// opened its home; a CLI command that opens the home for a moment need not.
    pub fn prune_cache(&self) {
        let pruned = self.registry.prune_cache();
        if pruned > 0 {
            tracing::info!("pruned {pruned} compiled components nothing publishes any more");
        }
    }

    /// Each tenant's linear memory held by its running tries in this process,
    /// and its growths refused by its `max_memory`, by tenant name.
    pub fn tenant_memory(&self) -> Vec<(String, TenantMemoryUsage)> {
        self.registry.tenant_memory()
    }

    /// Makes this process ask `ledger` before a tenant with a `max_memory`
    /// holds more of it than the ledger granted, so the tenant's tries in
    /// every process together stay within the quota. Call it before the first
    /// try: `false` (and no change) after, or when a ledger is already set.
    pub fn share_memory_quotas(&self, ledger: Arc<dyn crate::MemoryLedger>) -> bool {
        self.registry.share_memory_quotas(ledger)
    }

    /// What this process holds of each capped tenant's quota (tenants holding
    /// nothing left out): what a worker tells the ledger when it registers.
    pub fn memory_held(&self) -> std::collections::BTreeMap<String, u64> {
        self.registry.memory_held()
    }

    /// The registry of operators this sandbox can run.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs one try: instantiates the component named by `req.digest` in a fresh
    /// store and calls `execute`. Never panics and never fails: every failure
    /// (unknown digest, trap, panic, limit, timeout) becomes `Failed` or `Fatal`
    /// with a one-line reason that is also the last line of the try's log.
    ///
    /// Must be called within a tokio runtime (timers and WASI need one).
    pub async fn run(&self, req: TryRequest) -> TryReport {
        let started = Instant::now();
        let attempt = AssertUnwindSafe(self.run_try(&req, started)).catch_unwind();
        match attempt.await {
            Ok(report) => report,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                tracing::error!(digest = %req.digest, "sandbox panicked running a try: {what}");
                let failed = Executed::failed(format!("internal error in the sandbox: {what}"));
                run::finish(failed, &req.log, started)
            }
        }
    }

    async fn run_try(&self, req: &TryRequest, started: Instant) -> TryReport {
        let Some(entry) = self.registry.entry(&req.digest) else {
            let failed = Executed::failed(format!(
                "operator {} is not registered on this host",
                req.digest
            ));
            return run::finish(failed, &req.log, started);
        };
        let runtime = self.registry.runtime();
        let info = &req.info;
        let meta = &entry.meta;
        let map = info
            .map_index
            .map_or_else(String::new, |i| format!("[{i}]"));
        // A DAG-level callback runs for the whole run: no task id.
        let target = if info.task_id.is_empty() {
            format!("{} {}", info.dag_id, info.run_id)
        } else {
            format!("{}.{}{map}", info.dag_id, info.task_id)
        };
        let memory = runtime.memory_cap(req.limits.memory_bytes);
        let timeout = req
            .limits
            .timeout
            .map_or_else(|| "none".to_owned(), run::seconds);
        req.log.append_line(
            LogLevel::Info,
            &format!(
                "Running {}@{} ({}) for {target}, try {}: memory limit {}, execution_timeout {timeout}",
                meta.name,
                meta.version,
                meta.digest,
                info.try_number,
                run::short_bytes(memory),
            ),
        );
        let executed = run::execute(runtime, &entry.pre, req, started).await;
        let report = run::finish(executed, &req.log, started);
        tracing::debug!(
            tenant = %req.tenant,
            dag_id = %info.dag_id,
            task_id = %info.task_id,
            try_number = info.try_number,
            operator = %meta.name,
            result = ?report.result,
            duration = ?report.duration,
            "try finished"
        );
        report
    }
}
