//! Errors of building a sandbox and of registering, storing and resolving operators.
//!
//! A try never fails with these: `Sandbox::run` turns every failure into a
//! `TryResult`. Messages do not repeat their `source`; print the chain (`{:#}` with
//! anyhow) to see it. Wasmtime's errors are not `std::error::Error`, so where one is
//! the cause its text is part of the message.

use std::path::PathBuf;

use crate::bindings::OPERATOR_WORLD;

/// Building a [`Sandbox`](crate::Sandbox) failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot set up the host imports: {0}")]
    Linker(String),
    #[error("cannot use the compiled-component cache at {}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the epoch ticker thread")]
    Ticker(#[source] std::io::Error),
    #[error("cannot load the standard operators")]
    Builtin(#[source] RegistryError),
    #[error("cannot load the plugins in {}", path.display())]
    Plugins {
        path: PathBuf,
        #[source]
        source: RegistryError,
    },
}

/// Registering, storing or resolving an operator failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("component is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("component does not compile: {0}")]
    Compile(String),
    #[error("component does not target {OPERATOR_WORLD} (nor the older 0.2.0 or 0.1.0): {0}")]
    NotAnOperator(String),
    #[error("component needs imports the sandbox does not provide: {0}")]
    UnsupportedImport(String),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("describe() returned invalid operator info: {0}")]
    InvalidInfo(String),
    #[error(
        "operator {name}@{version} is already registered as {existing}; \
         give the new build ({digest}) a new version"
    )]
    VersionConflict {
        name: String,
        version: String,
        existing: String,
        digest: String,
    },
    #[error(
        "operator name `{name}` is reserved for the standard operator; \
         give {name}@{version} a name of its own"
    )]
    ReservedName { name: String, version: String },
    /// What was replaced and by what, and why the new build failed to go in.
    #[error("{0}; add it again")]
    ReplaceFailed(String, #[source] Box<RegistryError>),
    #[error("invalid operator reference `{0}`: expected NAME, NAME@VERSION or NAME@sha256:HEX")]
    InvalidReference(String),
    #[error("unknown operator `{name}`; registered operators: {available}")]
    UnknownOperator { name: String, available: String },
    #[error("operator `{name}` has no version {version}; available versions: {available}")]
    UnknownVersion {
        name: String,
        version: String,
        available: String,
    },
    #[error("no registered component has digest {0}")]
    UnknownDigest(String),
    #[error("digest {digest} is operator `{actual}`, not `{requested}`")]
    DigestNameMismatch {
        digest: String,
        actual: String,
        requested: String,
    },
    #[error("{} holds content with digest {actual}, not the digest its name says", path.display())]
    CorruptStoreFile { path: PathBuf, actual: String },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("standard operator `{name}`")]
    Builtin {
        name: String,
        #[source]
        source: Box<RegistryError>,
    },
}

impl RegistryError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RegistryError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Formats an error with its chain of sources on one line (`a: b: c`), for places
/// that keep errors as text: the operator catalog and rejected drop-ins.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
