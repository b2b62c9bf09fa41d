//! The data of one sandbox `Store`, the `context` imports the guest calls (0.3.0's;
//! the older worlds' delegate to them in `older_worlds.rs`) and its `wasi:http`
//! view (`outbound.rs`).
//!
//! Every host function returns `wasmtime::Result<T>`: an `Err` there traps the
//! guest (contract violations such as a `describe` that pulls XComs, or a call made
//! after the deadline), while a WIT-level `Err(String)` inside is an answer the guest
//! handles (an XCom value over the cap, a missing connection).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::v0_3::aileron::operator::{context, types};
use crate::bindings::{HttpRequest, HttpResponse, Level};
use crate::connection::{HeldConnection, guest_view};
use crate::cpu::Turn;
use crate::log::{LogBuffer, LogLevel};
use crate::memory::{MemoryLimiter, TenantCharge};
use crate::meter::{CpuMeter, EpochClock, LiveUsage};
use crate::outbound::HttpGrant;
use crate::request::HostServices;
use crate::stdio::GuestOutput;

/// Longest XCom key, in bytes: Airflow's `xcom.key` column is `VARCHAR(512)`.
const MAX_XCOM_KEY: usize = 512;

/// Most distinct XCom keys one try may push. Each key is a row of the metastore
/// with its own overhead (record, index entry, API listing), so the byte budget
/// alone would still let a try of tiny values write hundreds of thousands of rows;
/// an operator with more results than this should push one structured value.
pub(crate) const MAX_XCOM_KEYS: usize = 1000;

/// The wall-clock deadline of a call passed; raised as a trap by the epoch callback
/// and by host calls, and recognised by `run` to report the timeout.
#[derive(Debug, thiserror::Error)]
#[error("execution deadline passed")]
pub(crate) struct DeadlineExceeded;

/// The guest broke the operator contract in a way it cannot be allowed to handle.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ContractViolation(pub(crate) String);

/// What the sandbox runs: `execute` for a try, `describe` when registering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Describe,
    Execute,
}

/// The data of one `Store`: one per try (or per `describe` call), never reused.
pub(crate) struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_grant: HttpGrant,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) meter: CpuMeter,
    /// The CPU turn this store holds once it is CPU-bound (`cpu.rs`).
    pub(crate) turn: Turn,
    pub(crate) live: Option<Arc<LiveUsage>>,
    log: Arc<LogBuffer>,
    services: Arc<dyn HostServices>,
    phase: Phase,
    deadline: Option<Instant>,
    pub(crate) xcom: XcomBuffer,
    pub(crate) stdout: GuestOutput,
    pub(crate) stderr: GuestOutput,
}

/// Caps that [`HostState`] enforces on the guest.
pub(crate) struct StateLimits {
    pub(crate) memory_bytes: u64,
    pub(crate) xcom_bytes: usize,
    pub(crate) xcom_total_bytes: usize,
    pub(crate) deadline: Option<Instant>,
    /// Host patterns outbound HTTP may reach; empty = none.
    pub(crate) allow_hosts: Vec<String>,
    pub(crate) allow_private_ips: bool,
    /// The tenant pool the guest's memory is charged to (none for `describe`).
    pub(crate) tenant: Option<TenantCharge>,
    pub(crate) clock: EpochClock,
    /// Where the usage so far is published at each tick (none for `describe`).
    pub(crate) live: Option<Arc<LiveUsage>>,
}

impl HostState {
    pub(crate) fn new(
        phase: Phase,
        log: Arc<LogBuffer>,
        services: Arc<dyn HostServices>,
        limits: StateLimits,
    ) -> Self {
        let stdout = GuestOutput::new(log.clone(), LogLevel::Stdout);
        let stderr = GuestOutput::new(log.clone(), LogLevel::Stderr);
        // Nothing is granted: no preopened directory, no environment variable, no
        // argument, no host stdio (stdin is closed, stdout/stderr go to the log).
        // Sockets are denied twice over: the protocols are off, and the address
        // check (left at its default) refuses every address.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        // Outbound HTTP goes through `wasi:http` only, checked per request against
        // the try's allow-list (`outbound.rs`); `describe` gets an empty one.
        let http_grant = HttpGrant::new(
            &limits.allow_hosts,
            limits.allow_private_ips,
            limits.deadline,
            log.clone(),
        );
        HostState {
            wasi,
            http: WasiHttpCtx::new(),
            http_grant,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes, limits.tenant),
            meter: CpuMeter::new(limits.clock),
            turn: Turn::default(),
            live: limits.live,
            log,
            services,
            phase,
            deadline: limits.deadline,
            xcom: XcomBuffer::new(limits.xcom_bytes, limits.xcom_total_bytes),
            stdout,
            stderr,
        }
    }

    /// What the guest used so far, CPU counted in ticks of `tick`.
    pub(crate) fn usage(&self, tick: std::time::Duration) -> crate::meter::TryUsage {
        let mut usage = self.meter.usage(tick, self.limiter.used());
        usage.host_call_seconds += self.http_grant.waited().as_secs_f64();
        usage.refused_allocations = self.limiter.refused();
        usage
    }

    /// Traps calls that must not happen: after the deadline (so a guest looping on
    /// cheap host calls stops as promptly as one looping in wasm), and calls to
    /// try-scoped services from `describe`, which runs outside any try.
    fn check_call(&self, function: &str, try_scoped: bool) -> wasmtime::Result<()> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(DeadlineExceeded.into());
        }
        if try_scoped && self.phase == Phase::Describe {
            return Err(ContractViolation(format!(
                "describe() called context.{function}, which only exists while a task runs"
            ))
            .into());
        }
        Ok(())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_grant,
        }
    }
}

/// XCom values pushed during a try, in the order their keys were first pushed.
/// Pushing a key again replaces its value, as Airflow's `XCom.set` does.
///
/// The byte budget counts keys and values together: both are stored, so a try of
/// long keys and one-byte values must not slip past it.
pub(crate) struct XcomBuffer {
    pub(crate) values: Vec<(String, String)>,
    /// Key → index in `values`.
    index: std::collections::HashMap<String, usize>,
    total: usize,
    value_cap: usize,
    total_cap: usize,
}

impl XcomBuffer {
    pub(crate) fn new(value_cap: usize, total_cap: usize) -> Self {
        XcomBuffer {
            values: Vec::new(),
            index: std::collections::HashMap::new(),
            total: 0,
            value_cap,
            total_cap,
        }
    }

    /// Checks a push against the caps and JSON syntax; the error is for the guest.
    fn push(&mut self, key: String, value: String) -> Result<(), String> {
        if key.is_empty() {
            return Err("XCom key must not be empty".into());
        }
        if key.len() > MAX_XCOM_KEY {
            return Err(format!(
                "XCom key is {} bytes, over the limit of {MAX_XCOM_KEY} bytes",
                key.len()
            ));
        }
        if value.len() > self.value_cap {
            return Err(format!(
                "XCom value `{key}` is {} bytes, over the limit of {} bytes",
                value.len(),
                self.value_cap
            ));
        }
        let existing = self.index.get(&key).copied();
        if existing.is_none() && self.values.len() >= MAX_XCOM_KEYS {
            return Err(format!(
                "this try already pushed {MAX_XCOM_KEYS} XCom keys, the most one try may \
                 push; push one structured value instead of many keys"
            ));
        }
        // A replaced value gives its bytes back; a new key costs its own bytes too.
        let freed = existing.map_or(0, |i| key.len() + self.values[i].1.len());
        let total = self.total - freed + key.len() + value.len();
        if total > self.total_cap {
            return Err(format!(
                "XCom keys and values of this try would total {total} bytes, over the limit \
                 of {} bytes",
                self.total_cap
            ));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&value) {
            return Err(format!("XCom value `{key}` is not valid JSON: {e}"));
        }
        self.total = total;
        match existing {
            Some(i) => self.values[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.values.len());
                self.values.push((key, value));
            }
        }
        Ok(())
    }
}

impl types::Host for HostState {}

impl context::Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.check_call("log", false)?;
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.append_line(level, &message);
        Ok(())
    }

    async fn xcom_push(
        &mut self,
        key: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.check_call("xcom-push", true)?;
        Ok(self.xcom.push(key, value))
    }

    async fn xcom_pull(
        &mut self,
        task_id: String,
        key: Option<String>,
    ) -> wasmtime::Result<Option<String>> {
        self.check_call("xcom-pull", true)?;
        let started = Instant::now();
        let value = self.services.xcom_pull(&task_id, key.as_deref()).await;
        self.meter.add_host_call(started.elapsed());
        Ok(value)
    }

    async fn variable(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.check_call("variable", true)?;
        let started = Instant::now();
        let value = self.services.variable(&key).await;
        self.meter.add_host_call(started.elapsed());
        Ok(value)
    }

    async fn connection(&mut self, conn_id: String) -> wasmtime::Result<Result<String, String>> {
        self.check_call("connection", true)?;
        let started = Instant::now();
        let stored = self.services.connection(&conn_id).await;
        self.meter.add_host_call(started.elapsed());
        // The services hand over the connection as stored; a host-held secret
        // stops here (`connection.rs`).
        Ok(stored.and_then(|stored| guest_view(&conn_id, &stored)))
    }

    async fn http_with_connection(
        &mut self,
        conn_id: String,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, String>> {
        self.check_call("http-with-connection", true)?;
        let started = Instant::now();
        let stored = self.services.connection(&conn_id).await;
        self.meter.add_host_call(started.elapsed());
        let held = match stored.and_then(|stored| HeldConnection::parse(&conn_id, &stored)) {
            Ok(held) => held,
            Err(why) => return Ok(Err(why)),
        };
        Ok(crate::held_http::send(&self.http_grant, &self.log, &held, request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> XcomBuffer {
        XcomBuffer::new(16, 24)
    }

    #[test]
    fn xcom_push_checks_key_size_json_and_total() {
        let mut x = buffer();
        assert_eq!(x.push("a".into(), "{\"n\":1}".into()), Ok(()));
        assert!(
            x.push(String::new(), "1".into())
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            x.push("k".repeat(513), "1".into())
                .unwrap_err()
                .contains("key")
        );
        let big = format!("\"{}\"", "x".repeat(20));
        assert!(
            x.push("b".into(), big)
                .unwrap_err()
                .contains("over the limit of 16")
        );
        assert!(
            x.push("c".into(), "{nope".into())
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert_eq!(x.push("d".into(), "[1,2,3,4,5]".into()), Ok(()));
        assert!(
            x.push("e".into(), "[1,2,3,4]".into())
                .unwrap_err()
                .contains("total")
        );
        assert_eq!(x.values.len(), 2);
    }

    #[test]
    fn xcom_keys_count_in_the_budget_and_in_number() {
        // Long keys with one-byte values hit the byte budget.
        let mut x = XcomBuffer::new(16, 1000);
        let mut pushed = 0;
        while x.push(format!("{pushed:0>500}"), "1".into()).is_ok() {
            pushed += 1;
        }
        assert_eq!(pushed, 1, "501 bytes each: only one fits in 1000");
        // Many short keys hit the key cap.
        let mut x = XcomBuffer::new(16, usize::MAX);
        for i in 0..MAX_XCOM_KEYS {
            assert_eq!(x.push(format!("k{i}"), "1".into()), Ok(()));
        }
        let err = x.push("one_more".into(), "1".into()).unwrap_err();
        assert!(err.contains("already pushed 1000 XCom keys"), "{err}");
        // Pushing a known key again replaces its value and is still allowed.
        assert_eq!(x.push("k7".into(), "[2]".into()), Ok(()));
        assert_eq!(x.values.len(), MAX_XCOM_KEYS);
        assert_eq!(x.values[7], ("k7".to_owned(), "[2]".to_owned()));
        // Replacing gives the old value's bytes back.
        let mut x = XcomBuffer::new(16, 12);
        assert_eq!(x.push("a".into(), "\"123456789\"".into()), Ok(()));
        assert_eq!(x.push("a".into(), "\"abcdefghi\"".into()), Ok(()));
        assert!(
            x.push("b".into(), "1".into())
                .unwrap_err()
                .contains("total")
        );
    }
}
