//! How a [`Sandbox`](crate::Sandbox) is sized: concurrency, memory, epoch tick, cache.

use std::path::PathBuf;
use std::time::Duration;

/// Largest linear memory a wasm32 guest can address: 4 GiB.
pub const WASM32_MAX_MEMORY: u64 = 1 << 32;

/// Settings of a [`Sandbox`](crate::Sandbox). Start from `Default` and override.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where compiled components are cached:
    /// `<cache_dir>/<engine compatibility hash>/<digest hex>.cwasm`. `None` compiles
    /// every component on every start.
    pub cache_dir: Option<PathBuf>,
    /// Tries (and `describe` calls) that can hold an instance at once. Sizes the
    /// pooling allocator's instance, memory, table and stack slots; a try beyond it
    /// fails to instantiate with a clear reason, so the executor's slot count should
    /// not exceed it.
    pub max_concurrent: u32,
    /// Per-try memory cap when a request gives none.
    pub default_memory_bytes: u64,
    /// The largest memory cap any request may ask for (larger requests are
    /// clamped). At most 4 GiB, which is all a wasm32 guest can address.
    pub max_memory_bytes: u64,
    /// How often the engine's epoch advances: the granularity of timeouts and of
    /// yielding a busy guest back to tokio.
    pub epoch_tick: Duration,
    /// Threads CPU-bound tries (past 20 ms of CPU) take turns on; the others
    /// stay free for short tries and the rest of the process. Default: all
    /// cores but one, at least one.
    pub cpu_bound_threads: usize,
    /// How long a component's `describe` may run when it is registered.
    pub describe_timeout: Duration,
    /// Whether [`Sandbox::new`](crate::Sandbox::new) registers the standard
    /// operators (noop, echo, sleep, fail, skip, branch, short_circuit, wait_until,
    /// http_sensor).
    pub load_builtin: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            // Matches the pooling allocator's own default and a busy single host:
            // most tasks wait on I/O, and async stores let a thousand waiting tasks
            // share a handful of threads.
            max_concurrent: 1000,
            // Airflow workers commonly run tasks in a few hundred MiB; 256 MiB fits
            // typical transforms while a thousand concurrent tries stay within what
            // a large host can back.
            default_memory_bytes: 256 << 20,
            max_memory_bytes: WASM32_MAX_MEMORY,
            // 10 ms: a busy guest yields 100 times a second (fair sharing among
            // thousands of tries) and a timeout fires within 10 ms of its deadline,
            // while the ticker itself costs nothing measurable.
            epoch_tick: Duration::from_millis(10),
            cpu_bound_threads: crate::cpu::CpuGate::default_threads(),
            // Pre-initialised interpreters (componentize-py, StarlingMonkey) start in
            // well under a second; 10 s bounds a hostile or broken `describe`
            // without refusing a good component on a loaded machine.
            describe_timeout: Duration::from_secs(10),
            load_builtin: true,
        }
    }
}
