//! The execution API for remote workers (`/execution/v1`, see
//! `docs/design/multi-node.md` §4): the HTTP calls a worker makes to start, report,
//! log and finish the tries it runs, all answered by the scheduler.
//!
//! For now it holds the try tokens ([`token`]) that scope those calls to one
//! dispatch; the handlers come next.

pub mod api;
pub mod redis_executor;
pub mod remote;
pub mod streams;
pub mod token;
pub mod wire;

pub use token::{ExecutionKey, KeyError, TOKEN_LIFETIME, TokenError, TryClaims};
