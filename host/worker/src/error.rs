//! Why a worker could not start: each case its own variant, so the CLI (and a
//! test) can tell a bad flag from an unreachable dependency.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A flag with a value the worker cannot use; the message says which and why.
    #[error("{0}")]
    BadFlag(String),
    #[error("no OS randomness for the worker id: {0}")]
    Randomness(getrandom::Error),
    #[error("--queue {url:?} is not a Redis URL: {source}")]
    QueueUrl {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("cannot open the sandbox in {home}: {source}")]
    Sandbox {
        home: PathBuf,
        /// Boxed: the sandbox's error is large, and this enum travels on every
        /// path of the start-up.
        source: Box<aileron_sandbox::SandboxError>,
    },
    #[error("opening the sandbox failed: {0}")]
    SandboxTask(#[from] tokio::task::JoinError),
    #[error("cannot listen for SIGTERM: {0}")]
    Signals(std::io::Error),
}

/// Fails with [`WorkerError::BadFlag`] unless `ok`.
pub(crate) fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), WorkerError> {
    if ok {
        Ok(())
    } else {
        Err(WorkerError::BadFlag(message()))
    }
}
