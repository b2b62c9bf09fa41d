//! Running a guest: one fresh `Store` per call, limits installed, and every way a
//! call can end turned into a readable result.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{CallHook, Store, Trap, UpdateDeadline, WasmBacktrace};

use crate::bindings::{OperatorInfo, OperatorPre, Outcome, SkipScope, TaskError};
use crate::cpu::{BOUND_AFTER_TICKS, yield_thread};
use crate::engine::Runtime;
use crate::host::{ContractViolation, DeadlineExceeded, HostState, Phase, StateLimits};
use crate::log::{LogBuffer, LogLevel};
use crate::memory::{MemoryLimitExceeded, TenantCharge, TenantMemoryExceeded};
use crate::meter::TryUsage;
use crate::request::{TryReport, TryRequest, TryResult};

/// Longest failure, skip or trap reason kept, in bytes. A reason is one line in
/// the UI and the metastore; the guest's full message still goes to the log.
const MAX_REASON: usize = 4 << 10;

/// What `execute` came to, before the report is assembled.
pub(crate) struct Executed {
    pub(crate) result: TryResult,
    pub(crate) xcom: Vec<(String, String)>,
    pub(crate) usage: TryUsage,
}

impl Executed {
    /// A try that failed before its guest ran.
    pub(crate) fn failed(reason: String) -> Self {
        Executed {
            result: TryResult::Failed(reason),
            xcom: Vec::new(),
            usage: TryUsage::default(),
        }
    }
}

/// Runs `execute` of the component in a fresh store. Never panics on guest
/// behaviour; every failure is a `Failed`/`Fatal` result whose reason is logged.
pub(crate) async fn execute(
    runtime: &Runtime,
    pre: &OperatorPre<HostState>,
    req: &TryRequest,
    started: Instant,
) -> Executed {
    let TryRequest {
        info,
        params,
        limits,
        log,
        ..
    } = req;
    let memory = runtime.memory_cap(limits.memory_bytes);
    let deadline = limits.timeout.map(|t| started + t);
    let state = HostState::new(
        Phase::Execute,
        log.clone(),
        req.host.clone(),
        StateLimits {
            memory_bytes: memory,
            xcom_bytes: limits.xcom_bytes,
            xcom_total_bytes: limits.xcom_total_bytes,
            deadline,
            allow_hosts: limits.allow_hosts.clone(),
            allow_private_ips: limits.allow_private_ips,
            // Every try is counted in its tenant's pool, capped or not, so the
            // tenant's memory in use can be shown.
            tenant: Some(TenantCharge {
                pool: runtime.tenants.of(&req.tenant),
                cap: limits.tenant_memory_bytes,
            }),
            clock: runtime.clock.clone(),
            live: Some(req.live.clone()),
        },
    );
    let mut store = new_store(
        runtime,
        (&req.tenant, limits.tenant_weight),
        state,
        deadline,
    );
    let wit_info = crate::bindings::TaskInfo {
        dag_id: info.dag_id.clone(),
        run_id: info.run_id.clone(),
        task_id: info.task_id.clone(),
        map_index: info.map_index,
        try_number: info.try_number,
        logical_date: info.logical_date.clone(),
        data_interval_start: info.data_interval_start.clone(),
        data_interval_end: info.data_interval_end.clone(),
    };
    let params = if params.is_null() {
        "{}".to_owned()
    } else {
        params.to_string()
    };

    let outcome = within(deadline, pre.execute(&mut store, &wit_info, &params)).await;

    let state = store.data_mut();
    state.stdout.finish();
    state.stderr.finish();
    let result = match outcome {
        Ok(Ok(outcome)) => check_outcome(outcome, limits.xcom_bytes),
        Ok(Err(TaskError::Failed(msg))) => TryResult::Failed(reason(&msg)),
        Ok(Err(TaskError::Fatal(msg))) => TryResult::Fatal(reason(&msg)),
        Err(err) => {
            let failure = Failure::new(&err, state);
            if let Some(backtrace) = &failure.backtrace {
                // Drop wasmtime's header line ("error while executing at wasm
                // backtrace:") for ours.
                let frames = backtrace
                    .split_once('\n')
                    .map_or(backtrace.as_str(), |(_, f)| f);
                log.append_line(LogLevel::Error, &format!("wasm backtrace:\n{frames}"));
            }
            TryResult::Failed(failure.reason(limits.timeout, "execution_timeout of {} exceeded"))
        }
    };
    Executed {
        result,
        xcom: std::mem::take(&mut state.xcom.values),
        usage: state.usage(runtime.config.epoch_tick),
    }
}

/// Calls `describe` in a fresh store with the given deadline and memory cap.
/// Returns the reason (one line) when it fails.
pub(crate) async fn describe(
    runtime: &Runtime,
    pre: &OperatorPre<HostState>,
    timeout: Duration,
    memory: u64,
    log: &Arc<LogBuffer>,
) -> Result<OperatorInfo, String> {
    let deadline = Some(Instant::now() + timeout);
    let state = HostState::new(
        Phase::Describe,
        log.clone(),
        Arc::new(crate::request::NoHostServices),
        StateLimits {
            memory_bytes: memory,
            xcom_bytes: 0,
            xcom_total_bytes: 0,
            deadline,
            // `describe` runs outside any task: no outbound HTTP.
            allow_hosts: Vec::new(),
            allow_private_ips: false,
            tenant: None,
            clock: runtime.clock.clone(),
            live: None,
        },
    );
    // (`describe` belongs to no tenant: its CPU turns are the host's.)
    let mut store = new_store(runtime, ("", 1), state, deadline);
    let outcome = within(deadline, pre.describe(&mut store)).await;
    let state = store.data_mut();
    state.stdout.finish();
    state.stderr.finish();
    outcome.map_err(|err| {
        Failure::new(&err, state).reason(Some(timeout), "it did not return within {}")
    })
}

/// A store with the try's limits: the memory limiter, and an epoch callback that
/// runs every tick while wasm executes. The callback meters the tick (`meter.rs`),
/// yields to tokio (a busy guest gives its thread to other tasks a hundred times a
/// second; a CPU-bound one waits for its next turn, `cpu.rs`) and traps once
/// the deadline has passed.
fn new_store(
    runtime: &Runtime,
    (tenant, weight): (&str, u32),
    state: HostState,
    deadline: Option<Instant>,
) -> Store<HostState> {
    let mut store = Store::new(&runtime.engine, state);
    store.limiter_async(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    let gate = runtime.cpu_gate.clone();
    let tenant = tenant.to_owned();
    let tick = runtime.config.epoch_tick;
    store.epoch_deadline_callback(move |mut ctx| {
        let state = ctx.data_mut();
        let ran_through = state.meter.on_epoch();
        if let Some(live) = &state.live {
            live.publish(&state.usage(tick));
        }
        let bound = state.meter.ticks() > BOUND_AFTER_TICKS;
        let resumed = state.meter.resume_marker();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            Err(DeadlineExceeded.into())
        } else if bound && (ran_through || !state.turn.held()) {
            // Its slice ended, or it is back from the host without a turn.
            let next = gate.next_turn((&tenant, weight), &state.turn, resumed);
            Ok(UpdateDeadline::YieldCustom(1, next))
        } else if !ran_through {
            // Back from a wait in a host call: the epoch moved on while it was
            // there; it runs a tick before it yields.
            Ok(UpdateDeadline::Continue(1))
        } else {
            Ok(UpdateDeadline::YieldCustom(1, yield_thread(resumed)))
        }
    });
    // Calling the host may wait there (WASI, HTTP, the scheduler): the CPU turn
    // goes to another guest meanwhile. A CPU-bound guest coming back without
    // one meets its epoch check at once, and takes a turn there.
    store.call_hook(|mut ctx, hook| {
        match hook {
            CallHook::CallingHost => ctx.data().turn.give_back(),
            CallHook::ReturningFromHost => {
                let state = ctx.data();
                if state.meter.ticks() > BOUND_AFTER_TICKS && !state.turn.held() {
                    ctx.set_epoch_deadline(0);
                }
            }
            CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
        }
        Ok(())
    });
    store
}

/// Bounds the whole call by the deadline, including time the guest spends blocked
/// in a host call (a WASI sleep, a slow XCom pull), which epoch interruption
/// cannot see: dropping the call's future cancels the guest at its await point.
async fn within<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), call)
            .await
            .unwrap_or_else(|_| Err(DeadlineExceeded.into())),
        None => call.await,
    }
}

/// Applies the output caps to what `execute` returned.
fn check_outcome(outcome: Outcome, xcom_bytes: usize) -> TryResult {
    match outcome {
        Outcome::Success(None) => TryResult::Success(None),
        Outcome::Success(Some(value)) => {
            if value.len() > xcom_bytes {
                return TryResult::Failed(format!(
                    "return value is {} bytes, over the XCom limit of {xcom_bytes} bytes",
                    value.len()
                ));
            }
            match serde_json::from_str::<serde::de::IgnoredAny>(&value) {
                Ok(_) => TryResult::Success(Some(value)),
                Err(e) => TryResult::Failed(format!("return value is not valid JSON: {e}")),
            }
        }
        Outcome::Skip(why) => TryResult::Skip(reason(&why)),
        Outcome::Branch(task_ids) => {
            let size: usize = task_ids.iter().map(String::len).sum();
            if size > xcom_bytes {
                return TryResult::Failed(format!(
                    "branch list is {size} bytes, over the XCom limit of {xcom_bytes} bytes"
                ));
            }
            if task_ids.iter().any(String::is_empty) {
                return TryResult::Failed("branch list contains an empty task id".into());
            }
            TryResult::Branch(task_ids)
        }
        Outcome::Reschedule(seconds) => TryResult::Reschedule(seconds),
        Outcome::SkipDownstream(scope) => TryResult::SkipDownstream {
            all: match scope {
                SkipScope::All => true,
                SkipScope::Direct => false,
            },
        },
    }
}

/// Why a guest call failed: the error classified, with what the log needs.
struct Failure {
    kind: FailureKind,
    backtrace: Option<String>,
}

enum FailureKind {
    Deadline,
    Memory(u64),
    TenantMemory { cap: u64, in_use: u64, grow: u64 },
    Message(String),
}

impl Failure {
    fn new(err: &wasmtime::Error, state: &HostState) -> Self {
        let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
        let kind = if err.is::<DeadlineExceeded>() {
            FailureKind::Deadline
        } else if err.is::<MemoryLimitExceeded>() {
            FailureKind::Memory(state.limiter.cap())
        } else if let Some(hit) = err.downcast_ref::<TenantMemoryExceeded>() {
            FailureKind::TenantMemory {
                cap: hit.cap,
                in_use: hit.in_use,
                grow: hit.grow,
            }
        } else if let Some(violation) = err.downcast_ref::<ContractViolation>() {
            FailureKind::Message(violation.0.clone())
        } else if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            FailureKind::Message(format!(
                "operator exited with status {} instead of returning a result",
                exit.0
            ))
        } else if let Some(trap) = err.downcast_ref::<Trap>() {
            // A Rust guest's panic prints its message to stderr, then traps with
            // `unreachable`; the message says far more than the trap.
            match (*trap, rust_panic(&state.stderr.tail())) {
                (Trap::UnreachableCodeReached, Some(panic)) => FailureKind::Message(panic),
                (Trap::MemoryOutOfBounds, _) if below_address_zero(err) || looks_recursive(err) => {
                    FailureKind::Message(SHADOW_STACK_OVERFLOW.to_owned())
                }
                _ => FailureKind::Message(trap.to_string()),
            }
        } else {
            FailureKind::Message(one_line(err, backtrace.as_deref()))
        };
        Failure { kind, backtrace }
    }

    /// The one-line reason; `timeout_text` has a `{}` for the timeout's length.
    fn reason(&self, timeout: Option<Duration>, timeout_text: &str) -> String {
        match &self.kind {
            FailureKind::Deadline => {
                let limit = timeout.map_or_else(|| "the deadline".to_owned(), seconds);
                timeout_text.replace("{}", &limit)
            }
            FailureKind::Memory(cap) => format!("memory limit of {} exceeded", bytes(*cap)),
            FailureKind::TenantMemory { cap, in_use, grow } => format!(
                "tenant memory quota (max_memory) of {} exceeded: the tenant's running tries \
                 hold {} and this one asked for {} more",
                short_bytes(*cap),
                about_bytes(*in_use),
                about_bytes(*grow)
            ),
            FailureKind::Message(msg) => reason(msg),
        }
    }
}

/// The reason of a try whose stack in linear memory ran out.
const SHADOW_STACK_OVERFLOW: &str = "stack overflow: the operator's stack ran out (too deep a \
                                     recursion, or too large local variables)";

/// Accesses this close to 4 GiB are taken for a stack pointer that went below
/// address 0 and wrapped around. 16 MiB is far more than one stack frame and far
/// less than the gap to any memory a try can have.
const WRAP_WINDOW: u64 = 16 << 20;

/// Whether an out-of-bounds access hit just around 4 GiB. Compilers that put the
/// stack first in linear memory (Rust's and C's for wasm32 with `--stack-first`)
/// let it grow down towards address 0; one frame too many wraps the stack
/// pointer around, and its next access lands there. Wasmtime says where the fault
/// was in the error's context ("memory fault at wasm address 0x…"); without that
/// context the trap is reported as it is.
fn below_address_zero(err: &wasmtime::Error) -> bool {
    const MARK: &str = "memory fault at wasm address 0x";
    err.chain().any(|cause| {
        let text = cause.to_string();
        let Some(at) = text.find(MARK) else {
            return false;
        };
        let hex: String = text[at + MARK.len()..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        u64::from_str_radix(&hex, 16)
            // An access's static offset can carry it a little past 4 GiB too.
            .is_ok_and(|addr| addr.abs_diff(1 << 32) <= WRAP_WINDOW)
    })
}

/// Frames of one function in a trap's backtrace from which an out-of-bounds
/// access is taken for a stack that ran out: recursion that deep is how stacks
/// run out, and a plain bad pointer rarely has eight frames of one function
/// above it.
const RECURSIVE_FRAMES: usize = 8;

/// Whether the trap's backtrace shows one function many times over. Needed
/// beside [`below_address_zero`] because an access made by a bulk-memory
/// instruction (`memory.fill` initialising a large local) is checked by the
/// runtime, not by the hardware, and so comes without a fault address.
fn looks_recursive(err: &wasmtime::Error) -> bool {
    let Some(backtrace) = err.downcast_ref::<WasmBacktrace>() else {
        return false;
    };
    let mut counts: std::collections::HashMap<(u32, Option<&str>), usize> = Default::default();
    backtrace.frames().iter().any(|frame| {
        let n = counts
            .entry((frame.func_index(), frame.func_name()))
            .or_default();
        *n += 1;
        *n >= RECURSIVE_FRAMES
    })
}

/// An error's chain on one line, without the wasm backtrace (logged separately).
fn one_line(err: &wasmtime::Error, backtrace: Option<&str>) -> String {
    let parts: Vec<String> = err
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| Some(text.as_str()) != backtrace)
        .collect();
    parts.join(": ").replace('\n', " ")
}

/// The message of a Rust panic at the end of stderr, if there is one:
/// `thread '<unnamed>' panicked at src/lib.rs:7:5:\nboom\nnote: run with …`.
fn rust_panic(stderr: &str) -> Option<String> {
    let at = stderr.rfind("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest.trim_end(), ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|line| !line.starts_with("note: "))
        .collect();
    let message = message.join(" ");
    Some(if message.is_empty() {
        format!("operator panicked at {location}")
    } else {
        format!("operator panicked at {location}: {message}")
    })
}

/// A guest-supplied reason cut to one bounded line.
fn reason(text: &str) -> String {
    let line = text.trim().replace(['\r', '\n'], " ");
    if line.len() <= MAX_REASON {
        return line;
    }
    let mut end = MAX_REASON;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// `5s`, `0.25s`, `90s`: the form Airflow users write timeouts in.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        let text = format!("{:.3}", d.as_secs_f64());
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `256 MiB` when exact, else `65536 bytes`.
pub(crate) fn short_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// `12.5 MiB`, `640 KiB`: a measured amount, for people.
pub(crate) fn about_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else {
        format!("{} KiB", n.div_ceil(1 << 10))
    }
}

/// `268435456 bytes (256 MiB)`: exact for machines, readable for people.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{n} bytes ({} MiB)", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Assembles the report and writes the closing log line (kept even when the log
/// is full, so the outcome is always its last line).
pub(crate) fn finish(executed: Executed, log: &LogBuffer, started: Instant) -> TryReport {
    let duration = started.elapsed();
    // `{:.1?}`: 318.8µs, 201.7ms, 1.5s.
    let took = format!("{duration:.1?}");
    let (level, line) = match &executed.result {
        TryResult::Success(_) => (LogLevel::Info, format!("Task succeeded in {took}")),
        TryResult::Skip(why) => (LogLevel::Info, format!("Task skipped in {took}: {why}")),
        TryResult::Branch(ids) => (
            LogLevel::Info,
            format!(
                "Task branched in {took}: following {}",
                reason(&ids.join(", "))
            ),
        ),
        TryResult::Reschedule(s) => (
            LogLevel::Info,
            format!("Task asked to be rescheduled in {s}s (ran {took})"),
        ),
        TryResult::SkipDownstream { all } => (
            LogLevel::Info,
            format!(
                "Task succeeded in {took}; skipping {} downstream tasks",
                if *all { "all" } else { "the direct" }
            ),
        ),
        TryResult::Failed(why) => (LogLevel::Error, format!("Task failed after {took}: {why}")),
        TryResult::Fatal(why) => (
            LogLevel::Error,
            format!("Task failed without retry after {took}: {why}"),
        ),
    };
    let usage = executed.usage;
    log.append_line(
        LogLevel::Info,
        &format!(
            "Used CPU {:.2}s, host calls {:.2}s, peak memory {}",
            usage.cpu_seconds,
            usage.host_call_seconds,
            about_bytes(usage.peak_memory_bytes)
        ),
    );
    log.append_closing_line(level, &line);
    TryReport {
        result: executed.result,
        xcom: executed.xcom,
        duration,
        usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_read_from_stderr() {
        let stderr = "noise\n\nthread '<unnamed>' panicked at src/lib.rs:55:24:\nboom at t1\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            rust_panic(stderr).unwrap(),
            "operator panicked at src/lib.rs:55:24: boom at t1"
        );
        assert_eq!(rust_panic("all fine\n"), None);
    }

    #[test]
    fn durations_read_like_airflow_settings() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(bytes(256 << 20), "268435456 bytes (256 MiB)");
        assert_eq!(bytes(1000), "1000 bytes");
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(reason(" a\nb \r\n"), "a b");
        let long = reason(&"é".repeat(MAX_REASON));
        assert!(long.len() <= MAX_REASON + '…'.len_utf8());
        assert!(long.ends_with('…'));
    }

    #[test]
    fn outputs_are_capped_and_checked() {
        assert_eq!(
            check_outcome(Outcome::Success(Some("[1]".into())), 10),
            TryResult::Success(Some("[1]".into()))
        );
        let TryResult::Failed(why) =
            check_outcome(Outcome::Success(Some("\"0123456789\"".into())), 10)
        else {
            panic!("expected failure")
        };
        assert!(why.contains("over the XCom limit of 10 bytes"), "{why}");
        let TryResult::Failed(why) = check_outcome(Outcome::Success(Some("{".into())), 10) else {
            panic!("expected failure")
        };
        assert!(why.contains("not valid JSON"), "{why}");
        assert!(matches!(
            check_outcome(Outcome::Branch(vec![String::new()]), 10),
            TryResult::Failed(_)
        ));
    }
}
