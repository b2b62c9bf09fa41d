//! The wasmtime engine all sandboxes share: its configuration and pooling
//! allocator, the linker with the host imports, the epoch ticker and the cache.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{v0_1, v0_2, v0_3};
use crate::cache::ArtifactCache;
use crate::config::{SandboxConfig, WASM32_MAX_MEMORY};
use crate::cpu::CpuGate;
use crate::error::SandboxError;
use crate::host::HostState;
use crate::memory::TenantPools;
use crate::meter::EpochClock;

/// Core wasm instances one component may create. A Rust `wasm32-wasip2` operator
/// has 3 (its module and two glue modules); dynamically linked interpreters
/// (componentize-py) have around a dozen; 32 leaves room while keeping one
/// hostile component from exhausting the pool.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Linear memories one component may define. Toolchains emit one (the WASI
/// adapter and glue modules share the main module's); 2 admits a component that
/// composes two independent modules. Each memory slot reserves address space
/// (see `MEMORY_RESERVATION`), so this multiplies the pool's reservation.
const MEMORIES_PER_COMPONENT: u32 = 2;

/// Tables one component may define: Rust operators have 2 (the module's function
/// table and the adapter glue's), dynamically linked Python a few more.
const TABLES_PER_COMPONENT: u32 = 8;

/// Tables one core module may define (reference-types modules may have several).
const TABLES_PER_MODULE: u32 = 4;

/// Elements per table. A Rust operator's function table has a few hundred; an
/// interpreter compiled to wasm (CPython, SpiderMonkey) tens of thousands.
/// Elements are pointer-sized, so a slot reserves 800 KiB of address space and
/// only touched pages cost memory.
const TABLE_ELEMENTS: usize = 100_000;

/// Address space reserved per linear memory: all 4 GiB a wasm32 guest can address.
/// With the guard region after it, every load and store is in bounds or faults
/// into unmapped memory, so compiled code needs no bounds checks (the fast path
/// that wasmtime's defaults aim at). Reserving costs address space, not memory.
const MEMORY_RESERVATION: u64 = WASM32_MAX_MEMORY;

/// Unmapped guard after each memory's reservation: loads with a static offset
/// below 32 MiB need no check. Wasmtime's default on 64-bit hosts.
const MEMORY_GUARD: u64 = 32 << 20;

/// The most address space the memory pool may reserve: half of x86-64's 128 TiB
/// user address space, leaving the rest to the host, its heap and other engines.
const MAX_POOL_RESERVATION: u64 = 64 << 40;

/// Linear memory kept resident when a memory slot is released, where Linux can
/// tell which pages are resident (`PAGEMAP_SCAN`, kernel 6.7+): only the pages the
/// guest touched are reset with `memset`, and the next try in the slot reuses them
/// without page faults. A Rust operator touches the top of its 1 MiB shadow stack,
/// its data and the start of its heap, all within the first 2 MiB. Measured on the
/// `noop` bench: 8.7 µs per try instead of 21 µs with `madvise`. The cost is that
/// each slot that was ever used keeps up to 2 MiB resident (at most 2 GiB at the
/// default 1000 slots, all having run at once).
const MEMORY_KEEP_RESIDENT: usize = 2 << 20;

/// Without `PAGEMAP_SCAN` the low `keep_resident` bytes would be `memset` whether
/// touched or not, which costs more than it saves; reset with `madvise` instead.
const MEMORY_KEEP_RESIDENT_WITHOUT_PAGEMAP: usize = 0;

/// Table elements kept resident the same way: a Rust operator's tables fit in a
/// page or two.
const TABLE_KEEP_RESIDENT: usize = 8 << 10;

/// Host stack for each guest (async) call: wasm may use up to `MAX_WASM_STACK`
/// of it and host functions called from wasm need the rest. Wasmtime's default.
const ASYNC_STACK: usize = 2 << 20;

/// Wasm stack limit before a stack-overflow trap: wasmtime's default, deep
/// enough for recursive JSON parsers.
const MAX_WASM_STACK: usize = 512 << 10;

/// Bounds on `SandboxConfig::epoch_tick`: below 1 ms the ticker thread itself
/// becomes a cost; above 1 s timeouts and fair sharing get too coarse.
const MIN_TICK: Duration = Duration::from_millis(1);
const MAX_TICK: Duration = Duration::from_secs(1);

/// Everything shared by all sandboxes and registry clones of one `Sandbox::new`.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: SandboxConfig,
    pub(crate) cache: ArtifactCache,
    /// The epoch as stores meter CPU by it (`meter.rs`).
    pub(crate) clock: EpochClock,
    /// Each tenant's memory pool, charged by its running stores.
    pub(crate) tenants: TenantPools,
    /// The turns CPU-bound tries take (`cpu.rs`).
    pub(crate) cpu_gate: CpuGate,
    _ticker: EpochTicker,
}

impl Runtime {
    pub(crate) fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        validate(&config)?;
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| SandboxError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        let linker_error = |e: wasmtime::Error| SandboxError::Linker(e.to_string());
        // All of WASI 0.2 (sockets are linked but denied in every `WasiCtx`), and
        // `wasi:http/outgoing-handler` + `types`, every request checked against the
        // try's allow-list: a component that imports them loads, and one that may
        // not use them gets an error back, not a missing import.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(linker_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(linker_error)?;
        // The `context` imports of every operator world the host loads.
        v0_3::Operator::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(linker_error)?;
        v0_2::Operator::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(linker_error)?;
        v0_1::Operator::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(linker_error)?;
        let cache = ArtifactCache::new(&engine, config.cache_dir.as_deref())?;
        let clock = EpochClock::default();
        let ticker = EpochTicker::start(engine.clone(), clock.clone(), config.epoch_tick)
            .map_err(SandboxError::Ticker)?;
        Ok(Runtime {
            cpu_gate: CpuGate::new(config.cpu_bound_threads),
            engine,
            linker,
            config,
            cache,
            clock,
            tenants: TenantPools::default(),
            _ticker: ticker,
        })
    }
}

impl Runtime {
    /// A try's memory cap: what it asked for, or the default, within the ceiling.
    pub(crate) fn memory_cap(&self, requested: Option<u64>) -> u64 {
        requested
            .unwrap_or(self.config.default_memory_bytes)
            .min(self.config.max_memory_bytes)
    }
}

fn validate(config: &SandboxConfig) -> Result<(), SandboxError> {
    let invalid = |msg: String| Err(SandboxError::Config(msg));
    if config.max_concurrent == 0 {
        return invalid("max_concurrent must be at least 1".into());
    }
    let reservation = u64::from(config.max_concurrent)
        * u64::from(MEMORIES_PER_COMPONENT)
        * (MEMORY_RESERVATION + MEMORY_GUARD);
    if reservation > MAX_POOL_RESERVATION {
        return invalid(format!(
            "max_concurrent {} would reserve {} GiB of address space for linear memories, \
             over the limit of {} GiB; use at most {}",
            config.max_concurrent,
            reservation >> 30,
            MAX_POOL_RESERVATION >> 30,
            MAX_POOL_RESERVATION
                / (u64::from(MEMORIES_PER_COMPONENT) * (MEMORY_RESERVATION + MEMORY_GUARD)),
        ));
    }
    if config.max_memory_bytes == 0 || config.max_memory_bytes > WASM32_MAX_MEMORY {
        return invalid(format!(
            "max_memory_bytes must be between 1 and {WASM32_MAX_MEMORY} (4 GiB), not {}",
            config.max_memory_bytes
        ));
    }
    if config.default_memory_bytes == 0 || config.default_memory_bytes > config.max_memory_bytes {
        return invalid(format!(
            "default_memory_bytes must be between 1 and max_memory_bytes ({}), not {}",
            config.max_memory_bytes, config.default_memory_bytes
        ));
    }
    if config.describe_timeout < config.epoch_tick {
        return invalid(format!(
            "describe_timeout ({:?}) must be at least one epoch_tick ({:?})",
            config.describe_timeout, config.epoch_tick
        ));
    }
    if config.epoch_tick < MIN_TICK || config.epoch_tick > MAX_TICK {
        return invalid(format!(
            "epoch_tick must be between {MIN_TICK:?} and {MAX_TICK:?}, not {:?}",
            config.epoch_tick
        ));
    }
    Ok(())
}

fn engine_config(config: &SandboxConfig) -> Config {
    let n = config.max_concurrent;
    let mut pool = PoolingAllocationConfig::new();
    // One component instance, one fiber stack and up to the per-component counts
    // of everything else per concurrent try.
    pool.total_component_instances(n)
        .total_stacks(n)
        .total_core_instances(n * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(n * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(n * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_tables_per_module(TABLES_PER_MODULE)
        .table_elements(TABLE_ELEMENTS)
        // GC heaps (only for components using wasm GC) share the memory slots.
        .total_gc_heaps(n)
        // The pool's hard ceiling per memory; each try's own cap is enforced below
        // it by the store's limiter.
        .max_memory_size(config.max_memory_bytes as usize)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT);
    } else {
        pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_WITHOUT_PAGEMAP);
    }

    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        // Timeouts and fair sharing without fuel's 10-30% cost on every loop.
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_reservation(MEMORY_RESERVATION)
        .memory_guard_size(MEMORY_GUARD)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(ASYNC_STACK)
        // Function names from the name section are enough for a backtrace summary
        // in the log; parsing DWARF would slow every compilation.
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    cfg
}

/// Advances the engine's epoch every tick on a dedicated thread. Each store's
/// epoch deadline is one tick ahead, so every tick makes each running guest call
/// back into the host (to yield or to hit its timeout).
///
/// The thread stops within one tick of this handle being dropped: dropping the
/// sender disconnects the channel it waits on.
struct EpochTicker {
    _stop: mpsc::Sender<()>,
}

impl EpochTicker {
    fn start(engine: Engine, clock: EpochClock, tick: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("aileron-epoch".into())
            .spawn(move || {
                // Ticks at fixed instants rather than a fixed sleep after each one,
                // so ticks per second stay exact and metered CPU (ticks × tick)
                // does not drift with the thread's own wake-up latency.
                let mut next = Instant::now() + tick;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    clock.advance();
                    engine.increment_epoch();
                    next += tick;
                    // After a long stall (a suspended process), start afresh
                    // instead of firing the missed ticks in a burst.
                    let now = Instant::now();
                    if next + tick < now {
                        next = now + tick;
                    }
                }
            })?;
        Ok(EpochTicker { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let ok = SandboxConfig::default();
        assert!(validate(&ok).is_ok());
        let err = |c: SandboxConfig| validate(&c).unwrap_err().to_string();
        assert!(
            err(SandboxConfig {
                max_concurrent: 0,
                ..ok.clone()
            })
            .contains("at least 1")
        );
        assert!(
            err(SandboxConfig {
                max_concurrent: 1_000_000,
                ..ok.clone()
            })
            .contains("address space")
        );
        assert!(
            err(SandboxConfig {
                default_memory_bytes: 8 << 30,
                ..ok.clone()
            })
            .contains("default_memory_bytes")
        );
        assert!(
            err(SandboxConfig {
                epoch_tick: Duration::ZERO,
                ..ok.clone()
            })
            .contains("epoch_tick")
        );
    }
}
