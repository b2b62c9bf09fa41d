//! The compiled-component cache: components are compiled once per engine
//! configuration and reloaded from disk on later starts.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::SandboxError;

/// Where compiled artifacts live: `<cache_dir>/<compat hash>/<digest hex>.cwasm`,
/// or nowhere.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
}

impl ArtifactCache {
    /// A cache under `cache_dir` for artifacts of `engine`. The subdirectory is named
    /// by the engine's compatibility hash (wasmtime version, compiler settings,
    /// target features), so a wasmtime upgrade or config change starts a fresh
    /// directory instead of failing to load stale artifacts.
    pub(crate) fn new(engine: &Engine, cache_dir: Option<&Path>) -> Result<Self, SandboxError> {
        let Some(cache_dir) = cache_dir else {
            return Ok(ArtifactCache { dir: None });
        };
        let dir = cache_dir.join(compat_hash(engine));
        std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Cache {
            path: dir.clone(),
            source,
        })?;
        Ok(ArtifactCache { dir: Some(dir) })
    }

    /// The component with this digest: loaded from the cache when present and
    /// usable, otherwise compiled from `bytes` (and written to the cache).
    ///
    /// Cache problems are never fatal: a corrupt or unreadable artifact is compiled
    /// again, and a failed write only costs the next start a compilation.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest_hex: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let path = self
            .dir
            .as_ref()
            .map(|dir| dir.join(format!("{digest_hex}.cwasm")));
        if let Some(path) = &path
            && path.is_file()
        {
            // SAFETY: `deserialize_file` maps native code from the file and trusts it.
            // This directory is private to the host (under AILERON_HOME) and only
            // `store` below writes to it, with artifacts this process compiled from
            // the component whose sha256 names the file; wasmtime still checks the
            // header and the engine compatibility before using it.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "discarding unusable compiled component, compiling again: {e}"
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = &path
            && let Err(e) = store(&component, path)
        {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e}");
        }
        Ok(component)
    }
}

/// Writes the artifact atomically (temp file + rename), so a crash or a concurrent
/// writer never leaves a half-written file under the final name.
fn store(component: &Component, path: &Path) -> std::io::Result<()> {
    let artifact = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path.parent().expect("artifact paths have a parent");
    let (tmp, mut file) = tempfile_in(dir)?;
    let written = file
        .write_all(&artifact)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A uniquely named temporary file in `dir` (no dependency on `tempfile` at run
/// time: the name uses the process id and a counter).
pub(crate) fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A short stable name for the engine's compatibility hash. The hash is fed
/// through SHA-256 rather than `DefaultHasher`, whose output may change between
/// Rust releases.
fn compat_hash(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            let digest = self.0.clone().finalize();
            u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    // 16 hex digits (64 bits) cannot collide among the handful of engine
    // configurations one cache directory ever sees.
    hex::encode(&hasher.0.finalize()[..8])
}
