//! The compiled-component cache: components are compiled once per engine
//! configuration and reloaded from disk on later starts.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
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
        let error = |path: &Path| {
            let path = path.to_owned();
            move |source| SandboxError::Cache { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(error(&dir))?;
        for checked in [cache_dir, &dir] {
            private(checked).map_err(error(checked))?;
        }
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
        let Some(dir) = &self.dir else {
            return Component::new(engine, bytes);
        };
        let path = dir.join(format!("{digest_hex}.cwasm"));
        if let Some(component) = load(engine, &path) {
            return Ok(component);
        }
        // Processes sharing the cache (workers of one machine, a server and
        // the CLI) compile a component once: the others wait here for the
        // first, which takes a Python or JavaScript component 10 CPU-seconds,
        // and load what it wrote. A lock that cannot be taken only costs a
        // second compilation.
        let _lock = EntryLock::take(dir.join(format!("{digest_hex}.lock")));
        if let Some(component) = load(engine, &path) {
            return Ok(component);
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = store(&component, &path) {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e}");
        }
        Ok(component)
    }
}

/// The lock on one cache entry while it is compiled; its file goes when it is
/// dropped, however the compilation ended.
struct EntryLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl EntryLock {
    /// Waits for the entry's lock; `None` (after a warning) if it cannot be
    /// had, which only costs a second compilation.
    fn take(path: PathBuf) -> Option<Self> {
        match std::fs::File::create(&path).and_then(|f| f.lock().map(|()| f)) {
            Ok(file) => Some(EntryLock { path, _file: file }),
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot lock the cache entry: {e}");
                None
            }
        }
    }
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The cached artifact at `path`, if there is a usable one (marked used).
fn load(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: `deserialize_file` maps native code from the file and trusts it.
    // The directory is private to this user (`private` checks it when the cache
    // opens) and only `store` below writes to it, with artifacts compiled from
    // the component whose sha256 names the file; wasmtime still checks the
    // header and the engine compatibility before using it.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => {
            mark_used(path);
            Some(component)
        }
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                "discarding unusable compiled component, compiling again: {e}"
            );
            None
        }
    }
}

/// Refuses a cache folder another user could write to: whoever can put a file
/// there chooses the native code this process runs. One of this user's own
/// that its group or others may write to (made by an older Aileron under a
/// permissive umask) is made private instead.
fn private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me && meta.mode() & 0o022 != 0 {
        tracing::warn!(dir = %dir.display(), "others could write to the cache folder: making it private");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        return Ok(());
    }
    if meta.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "compiled code is loaded from it, so it must belong to this user (uid {me}) \
                 and be writable by no one else (it has uid {} and mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// How long an artifact no component here uses is kept: the cache may be
/// shared by several homes on one machine (each `--cache-dir`), and another
/// home's artifact is not this one's to delete while that home still loads it.
/// Loading an artifact marks it used (its modification time).
pub(crate) const PRUNE_UNUSED_AFTER: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// Marks an artifact used now, for [`ArtifactCache::prune`]; failing to is
/// harmless (it may be compiled again one day).
fn mark_used(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

impl ArtifactCache {
    /// Deletes the artifacts of components `keep` says are not registered here
    /// and that nothing loaded for [`PRUNE_UNUSED_AFTER`]: what removed and
    /// replaced builds left behind (a Python or JavaScript component compiles
    /// to tens of MiB). Returns how many were deleted. An artifact deleted while
    /// another process still wants it costs that process one compilation,
    /// never a wrong load.
    pub(crate) fn prune(&self, keep: impl Fn(&str) -> bool) -> usize {
        let Some(dir) = &self.dir else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(hex) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".cwasm"))
            else {
                continue;
            };
            let unused_for = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            let stale = unused_for.is_some_and(|d| d >= PRUNE_UNUSED_AFTER);
            if stale && !keep(&format!("sha256:{hex}")) {
                match std::fs::remove_file(&path) {
                    Ok(()) => deleted += 1,
                    Err(e) => tracing::warn!(path = %path.display(), "cannot prune: {e}"),
                }
            }
        }
        deleted
    }

    /// Deletes the artifact of one component, if it has one.
    pub(crate) fn forget(&self, digest_hex: &str) {
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{digest_hex}.cwasm"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %path.display(), "cannot prune: {e}"),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_cache_folder_is_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let engine = Engine::default();
        // This user's own folder, left writable by others (an older Aileron
        // under umask 002): made private rather than refused.
        ArtifactCache::new(&engine, Some(&shared)).unwrap();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        // Another user's folder is refused (when this test may give one away:
        // as root, which CI runs as).
        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        if std::os::unix::fs::chown(&foreign, Some(65534), None).is_ok() {
            let e = ArtifactCache::new(&engine, Some(&foreign)).unwrap_err();
            let e = crate::error::chain(&e);
            assert!(e.contains("must belong to this user"), "{e}");
        }
        // A new cache folder is made private to this user.
        let fresh = dir.path().join("fresh/cache");
        let cache = ArtifactCache::new(&engine, Some(&fresh)).unwrap();
        let mode = std::fs::metadata(cache.dir.unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn prune_deletes_what_is_unregistered_and_long_unused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache {
            dir: Some(dir.path().to_owned()),
        };
        let long_ago = SystemTime::now() - PRUNE_UNUSED_AFTER - Duration::from_secs(60);
        for (hex, old) in [("aa", true), ("bb", true), ("cc", false)] {
            let path = dir.path().join(format!("{hex}.cwasm"));
            let file = std::fs::File::create(&path).unwrap();
            if old {
                file.set_modified(long_ago).unwrap();
            }
        }
        std::fs::write(dir.path().join("notes.txt"), "kept").unwrap();
        // `aa` is registered; `cc` was used lately (another home may use it).
        assert_eq!(cache.prune(|digest| digest == "sha256:aa"), 1);
        let left = |hex: &str| dir.path().join(format!("{hex}.cwasm")).exists();
        assert!(left("aa") && !left("bb") && left("cc"));
        assert!(dir.path().join("notes.txt").exists());
        // Loading marks an artifact used: it is no longer stale.
        let aa = dir.path().join("aa.cwasm");
        mark_used(&aa);
        let age = std::fs::metadata(&aa)
            .unwrap()
            .modified()
            .unwrap()
            .elapsed();
        assert!(age.unwrap() < PRUNE_UNUSED_AFTER);
        cache.forget("cc");
        assert!(!left("cc"));
    }
}
