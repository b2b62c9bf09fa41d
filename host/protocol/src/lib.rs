//! What every Aileron process agrees on, and nothing that needs the metastore:
//! the contract between the scheduler and `aileron worker` ([`wire`]: stream
//! entries and `/execution/v1` bodies; [`streams`]: the two stream operations
//! both sides perform; [`token`]: per-try tokens), the retry policy of every loop
//! that talks to Redis or the scheduler ([`backoff`]), and a few conventions
//! (where state lives by default, how a host names itself, how a URL path
//! segment is escaped).
//!
//! The worker depends on this crate and on the sandbox, never on the `aileron`
//! crate: that is how "a worker cannot reach the metastore" holds.

pub mod backoff;
pub mod streams;
pub mod token;
pub mod wire;

pub use token::{ExecutionKey, KeyError, TOKEN_LIFETIME, TokenError, TryClaims};

use std::path::PathBuf;

/// `~/.aileron`: where Aileron keeps its state unless told otherwise (the
/// metastore of a scheduler, the plugins and compiled components of any process).
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".aileron")
}

/// This machine's name, recorded as where a try ran (a worker's id starts with it
/// unless the worker is given a name).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Escapes one path segment of a URL (ids in API paths may hold any character).
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
