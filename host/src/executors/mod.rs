//! The executors: what runs the work the scheduler hands out, behind the
//! scheduler's [`Executor`](crate::scheduler::Executor) trait. [`local`] runs tries in
//! this process (`aileron standalone`); [`redis_streams`] publishes them to Redis Streams for
//! `aileron worker` processes (`docs/design/multi-node.md`), with [`remote`] holding
//! what this process knows of those tries (queued attempts, leases, workers). The
//! contract with workers lives in `aileron-protocol`; the API they call is
//! `crate::execution_api`. Callbacks run in this process whatever the executor
//! ([`callbacks`]).

pub mod callbacks;
pub mod local;
pub mod redis_streams;
pub mod remote;
