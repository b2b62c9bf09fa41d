//! The sandbox: loads operator components, keeps the plugin registry, and runs one
//! TaskInstance try per fresh wasmtime `Store` with limits and only granted capabilities.
//!
//! - [`Sandbox`] runs tries ([`TryRequest`] in, [`TryReport`] out) and owns the engine.
//! - [`Registry`] validates, stores, watches and resolves operator components.
//! - [`LogBuffer`] is a try's log, readable while the try runs.
//! - [`host_allowed`] is the allow-list check of outbound HTTP (`wasi:http`).

mod bindings;
mod builtin;
mod cache;
mod config;
mod connection;
mod cpu;
mod engine;
mod error;
mod held_http;
mod host;
mod ledger;
mod log;
mod memory;
mod meter;
mod older_worlds;
mod outbound;
mod registry;
mod request;
mod run;
mod sandbox;
mod stdio;

pub use bindings::{OPERATOR_WORLD, OPERATOR_WORLDS};
pub use builtin::STANDARD_PLUGINS;
pub use config::SandboxConfig;
pub use error::{RegistryError, SandboxError, chain as error_chain};
pub use held_http::MAX_RESPONSE_BYTES;
pub use ledger::{
    Held, HoldFuture, HoldRequest, Holder, LedgerUnreachable, MemoryLedger, QuotaLedger,
};
pub use log::{DEFAULT_LOG_BYTES, LogBuffer, LogLevel};
pub use memory::TenantMemoryUsage;
pub use meter::{LiveUsage, TryUsage};
pub use outbound::{MAX_HTTP_TIMEOUT, host_allowed};
pub use registry::{
    MAX_COMPONENT_BYTES, OperatorMeta, OperatorScope, Registry, RejectedPlugin, TenantOperators,
    WatchGuard, operator_name_problem, scope_dir,
};
pub use request::{
    DEFAULT_XCOM_BYTES, DEFAULT_XCOM_TOTAL_BYTES, HostServices, Limits, NoHostServices, TaskInfo,
    TryReport, TryRequest, TryResult,
};
pub use sandbox::Sandbox;
