//! Aileron's domain model: the types and pure rules every other part shares.
//!
//! Nothing in this crate does I/O, reads the wall clock or knows about wasmtime,
//! redb or axum, so the scheduler's decisions can be tested exhaustively and fast.

pub mod access;
pub mod clock;
pub mod dag;
pub mod ids;
pub mod params_schema;
pub mod schedule;
pub mod state;
pub mod template;
pub mod trigger_rule;
pub mod units;

pub use access::{Role, UserName};
pub use ids::{DagKey, PoolKey, RunKey, TenantId, TiKey};
pub use state::{DagRunState, TaskInstanceState};
