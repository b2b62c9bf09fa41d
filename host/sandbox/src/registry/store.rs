//! The plugin store on disk, one folder per scope: the global operators in
//! `<plugins_dir>/`, a tenant's in `<plugins_dir>/<tenant>/`. Each scope folder
//! holds drop-ins (`*.wasm`, copied into the store) and its content-addressed
//! store (`store/sha256-<hex>.wasm`). A tenant named `store` has no folder here:
//! the name is the global store's.

use std::io::Write;
use std::path::{Path, PathBuf};

use aileron_model::TenantId;
use sha2::{Digest, Sha256};

use super::{OperatorMeta, OperatorScope, Origin, Registry};
use crate::error::RegistryError;

/// The store's folder inside a scope's folder.
pub(super) const STORE_DIR: &str = "store";

/// The folder of a scope's drop-ins and store.
pub fn scope_dir(plugins_dir: &Path, scope: &OperatorScope) -> PathBuf {
    match scope {
        OperatorScope::Global => plugins_dir.to_owned(),
        OperatorScope::Tenant(t) => plugins_dir.join(t.as_str()),
    }
}

/// The scope a folder directly inside the plugins folder belongs to, if any.
pub(super) fn tenant_folder(name: &str) -> Option<OperatorScope> {
    (!OperatorScope::reserved_tenant(name) && !name.starts_with('.'))
        .then(|| TenantId::new(name).ok())
        .flatten()
        .map(OperatorScope::Tenant)
}

impl Registry {
    /// Opens the plugin store under `plugins_dir` (creating it if needed): the
    /// global scope, then every tenant folder in it. In each, every stored
    /// component is published, then drop-ins (every `*.wasm` directly in the
    /// scope's folder) are validated, copied into the store and published.
    ///
    /// A bad file is logged, listed by [`rejected`](Registry::rejected) and skipped,
    /// never fatal; only failing to create or list the folders is an error. Returns
    /// the components published from the folders. Compiles: call from a blocking
    /// context.
    pub fn open_store(&self, plugins_dir: &Path) -> Result<Vec<OperatorMeta>, RegistryError> {
        let mut loaded = self.open_scope(plugins_dir, &OperatorScope::Global)?;
        for path in list_dir(plugins_dir)? {
            let scope = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(tenant_folder);
            if let Some(scope) = scope
                && path.is_dir()
            {
                loaded.extend(self.open_scope(plugins_dir, &scope)?);
            }
        }
        Ok(loaded)
    }

    /// Opens one scope's folder; see [`open_store`](Registry::open_store).
    fn open_scope(
        &self,
        plugins_dir: &Path,
        scope: &OperatorScope,
    ) -> Result<Vec<OperatorMeta>, RegistryError> {
        let dir = scope_dir(plugins_dir, scope);
        let store = create_store(&dir)?;
        let mut loaded: Vec<OperatorMeta> = Vec::new();
        for path in list_dir(&store)? {
            if stored_digest(&path).is_none() {
                continue;
            }
            match self.load_stored(scope, &path) {
                Ok(meta) => loaded.push(meta),
                Err(e) => self.reject(&path, &e),
            }
        }
        for path in list_dir(&dir)? {
            if !is_drop_in(&path) {
                continue;
            }
            match self.ingest_drop_in(&dir, scope, &path) {
                Ok(meta) => {
                    if !loaded.iter().any(|m| m.digest == meta.digest) {
                        loaded.push(meta);
                    }
                }
                Err(e) => self.reject(&path, &e),
            }
        }
        Ok(loaded)
    }

    /// Validates and publishes `bytes` globally (like [`add`](Registry::add)), then
    /// saves them in the store under `plugins_dir` so they are loaded on every
    /// start. Compiles: call from a blocking context.
    pub fn install(&self, plugins_dir: &Path, bytes: &[u8]) -> Result<OperatorMeta, RegistryError> {
        self.install_to(plugins_dir, &OperatorScope::Global, bytes)
    }

    /// Validates and publishes `bytes` in `scope` (like
    /// [`add_to`](Registry::add_to)), then saves them in that scope's store under
    /// `plugins_dir`. Used by `aileron plugins add` and the API. Compiles: call
    /// from a blocking context.
    pub fn install_to(
        &self,
        plugins_dir: &Path,
        scope: &OperatorScope,
        bytes: &[u8],
    ) -> Result<OperatorMeta, RegistryError> {
        let meta = self.add_to(scope, bytes)?;
        let store = create_store(&scope_dir(plugins_dir, scope))?;
        let path = persist(&store, &meta.digest, bytes)?;
        self.add_origin(&meta.digest, Origin::Stored(path));
        Ok(meta)
    }

    /// Publishes a stored component in `scope` after checking its content against
    /// its name.
    pub(super) fn load_stored(
        &self,
        scope: &OperatorScope,
        path: &Path,
    ) -> Result<OperatorMeta, RegistryError> {
        let bytes = std::fs::read(path).map_err(|e| RegistryError::io("read", path, e))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if stored_digest(path).as_deref() != Some(actual.as_str()) {
            return Err(RegistryError::CorruptStoreFile {
                path: path.to_owned(),
                actual,
            });
        }
        let meta = self.add_to(scope, &bytes)?;
        self.add_origin(&meta.digest, Origin::Stored(path.to_owned()));
        self.clear_rejected(path);
        Ok(meta)
    }

    /// Publishes a drop-in of the scope folder `dir` and copies it into its store.
    pub(super) fn ingest_drop_in(
        &self,
        dir: &Path,
        scope: &OperatorScope,
        path: &Path,
    ) -> Result<OperatorMeta, RegistryError> {
        let bytes = std::fs::read(path).map_err(|e| RegistryError::io("read", path, e))?;
        let meta = self.add_to(scope, &bytes)?;
        let stored = persist(&dir.join(STORE_DIR), &meta.digest, &bytes)?;
        self.add_origin(&meta.digest, Origin::Stored(stored));
        self.clear_rejected(path);
        Ok(meta)
    }
}

/// Deletes a scope's copies of a component: its store file and every drop-in
/// whose bytes have that digest (else the next start would publish it again).
/// Returns the paths deleted.
pub(super) fn delete_copies(
    plugins_dir: &Path,
    scope: &OperatorScope,
    digest: &str,
) -> Result<Vec<PathBuf>, RegistryError> {
    let dir = scope_dir(plugins_dir, scope);
    let mut deleted = Vec::new();
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let stored = dir.join(STORE_DIR).join(format!("sha256-{hex}.wasm"));
    let drop_ins = match list_dir(&dir) {
        Ok(paths) => paths.into_iter().filter(|p| is_drop_in(p)).collect(),
        Err(_) => Vec::new(),
    };
    for path in drop_ins {
        let same = std::fs::read(&path)
            .map(|b| format!("sha256:{}", hex::encode(Sha256::digest(&b))) == digest)
            .unwrap_or(false);
        if same {
            std::fs::remove_file(&path).map_err(|e| RegistryError::io("delete", &path, e))?;
            deleted.push(path);
        }
    }
    match std::fs::remove_file(&stored) {
        Ok(()) => deleted.push(stored),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RegistryError::io("delete", &stored, e)),
    }
    Ok(deleted)
}

fn create_store(plugins_dir: &Path) -> Result<PathBuf, RegistryError> {
    let store = plugins_dir.join(STORE_DIR);
    std::fs::create_dir_all(&store).map_err(|e| RegistryError::io("create", &store, e))?;
    Ok(store)
}

/// Files of a folder, sorted so that loading order (and so which of two
/// conflicting builds wins) does not depend on the file system.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RegistryError::io("list", dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => tracing::warn!(dir = %dir.display(), "skipping unreadable entry: {e}"),
        }
    }
    paths.sort();
    Ok(paths)
}

/// Whether `path` names a drop-in: a `*.wasm` regular file (hidden files are
/// editors' and copiers' temporaries).
pub(super) fn is_drop_in(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".wasm") && !name.starts_with('.') && path.is_file()
}

/// The digest (`sha256:<hex>`) a store file's name claims, if it is one.
pub(super) fn stored_digest(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let hex = name.strip_prefix("sha256-")?.strip_suffix(".wasm")?;
    let valid = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then(|| format!("sha256:{hex}"))
}

/// Writes a component into the store unless it is there already, and returns the
/// store file's path. The write goes to a temporary file that is renamed into
/// place, so a reader (another process, the watcher) never sees a partial file
/// under a store name.
fn persist(store: &Path, digest: &str, bytes: &[u8]) -> Result<PathBuf, RegistryError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let path = store.join(format!("sha256-{hex}.wasm"));
    if path.is_file() {
        return Ok(path);
    }
    let (tmp, mut file) = crate::cache::tempfile_in(store)
        .map_err(|e| RegistryError::io("create a file in", store, e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(RegistryError::io("write", path, e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_carry_the_digest() {
        let hex = "ab".repeat(32);
        let path = PathBuf::from(format!("/p/store/sha256-{hex}.wasm"));
        assert_eq!(stored_digest(&path), Some(format!("sha256:{hex}")));
        assert_eq!(stored_digest(Path::new("/p/store/sha256-abc.wasm")), None);
        assert_eq!(stored_digest(Path::new("/p/store/echo.wasm")), None);
        let upper = PathBuf::from(format!("/p/store/sha256-{}.wasm", "AB".repeat(32)));
        assert_eq!(stored_digest(&upper), None);
    }
}
