//! Multi-node, scheduler side (`docs/design/multi-node.md`): the Redis executor
//! that publishes tries to the queue streams and watches their heartbeats
//! ([`redis_executor`]), what this process knows of remote tries ([`remote`]:
//! queued attempts, leases, workers), and the execution API the workers call
//! ([`api`], `/execution/v1`). The contract with workers lives in
//! `aileron-protocol`.

pub mod api;
pub mod redis_executor;
pub mod remote;
