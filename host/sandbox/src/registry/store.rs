//! The content-addressed plugin store on disk: `<plugins_dir>/store/sha256-<hex>.wasm`,
//! plus drop-ins (`<plugins_dir>/*.wasm`) copied into it.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{OperatorMeta, Origin, Registry};
use crate::error::RegistryError;

/// The store's folder inside the plugins folder.
pub(super) const STORE_DIR: &str = "store";

impl Registry {
    /// Opens the plugin store under `plugins_dir` (creating it if needed): registers
    /// every stored component, then ingests drop-ins, i.e. every `*.wasm` directly
    /// in `plugins_dir`, which is validated, copied into the store and registered.
    ///
    /// A bad file is logged, listed by [`rejected`](Registry::rejected) and skipped,
    /// never fatal; only failing to create or list the folders is an error. Returns
    /// the components registered from the folder. Compiles: call from a blocking
    /// context.
    pub fn open_store(&self, plugins_dir: &Path) -> Result<Vec<OperatorMeta>, RegistryError> {
        let store = create_store(plugins_dir)?;
        let mut loaded: Vec<OperatorMeta> = Vec::new();
        for path in list_dir(&store)? {
            if stored_digest(&path).is_none() {
                continue;
            }
            match self.load_stored(&path) {
                Ok(meta) => loaded.push(meta),
                Err(e) => self.reject(&path, &e),
            }
        }
        for path in list_dir(plugins_dir)? {
            if !is_drop_in(&path) {
                continue;
            }
            match self.ingest_drop_in(plugins_dir, &path) {
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

    /// Validates and registers `bytes` (like [`add`](Registry::add)), then saves them
    /// in the store under `plugins_dir` so they are loaded on every start. Used by
    /// `aileron plugins add FILE.wasm`. Compiles: call from a blocking context.
    pub fn install(&self, plugins_dir: &Path, bytes: &[u8]) -> Result<OperatorMeta, RegistryError> {
        let meta = self.add(bytes)?;
        let store = create_store(plugins_dir)?;
        let path = persist(&store, &meta.digest, bytes)?;
        self.set_origin(&meta.digest, Origin::Stored(path));
        Ok(meta)
    }

    /// Registers a stored component after checking its content against its name.
    pub(super) fn load_stored(&self, path: &Path) -> Result<OperatorMeta, RegistryError> {
        let bytes = std::fs::read(path).map_err(|e| RegistryError::io("read", path, e))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if stored_digest(path).as_deref() != Some(actual.as_str()) {
            return Err(RegistryError::CorruptStoreFile {
                path: path.to_owned(),
                actual,
            });
        }
        let meta = self.add(&bytes)?;
        self.set_origin(&meta.digest, Origin::Stored(path.to_owned()));
        self.clear_rejected(path);
        Ok(meta)
    }

    /// Registers a drop-in and copies it into the store.
    pub(super) fn ingest_drop_in(
        &self,
        plugins_dir: &Path,
        path: &Path,
    ) -> Result<OperatorMeta, RegistryError> {
        let bytes = std::fs::read(path).map_err(|e| RegistryError::io("read", path, e))?;
        let meta = self.add(&bytes)?;
        let stored = persist(&plugins_dir.join(STORE_DIR), &meta.digest, &bytes)?;
        self.set_origin(&meta.digest, Origin::Stored(stored));
        self.clear_rejected(path);
        Ok(meta)
    }
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
