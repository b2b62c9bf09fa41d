//! Watching the plugins folder: new or changed drop-ins, and components another
//! process put into a store, global or a tenant's, are published within a second.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::store::{STORE_DIR, is_drop_in, scope_dir, stored_digest, tenant_folder};
use super::{Inner, OperatorScope, Registry};
use crate::error::RegistryError;

/// Quiet time after the last event before a batch is processed: a copy shows up
/// as several events (create, writes, close) over a few milliseconds; 150 ms lets
/// it settle so the file is read whole.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Longest a batch waits for quiet, so a file written continuously is still
/// picked up within about a second (a partial file fails validation and is
/// retried on its next event).
const MAX_BATCH_WAIT: Duration = Duration::from_millis(750);

/// Keeps the plugins folder watched; dropping it stops the watching.
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGuard").finish_non_exhaustive()
    }
}

impl Registry {
    /// Watches `plugins_dir` and its tenant folders for drop-ins, and their
    /// stores for components installed by another process (e.g. `aileron plugins
    /// add` next to a running server), publishing them within about a second. Failures are logged and listed by
    /// [`rejected`](Registry::rejected). Watching stops when the guard is dropped;
    /// the guard does not keep the registry alive.
    pub fn watch(&self, plugins_dir: &Path) -> Result<WatchGuard, RegistryError> {
        let store = plugins_dir.join(STORE_DIR);
        std::fs::create_dir_all(&store).map_err(|e| RegistryError::io("create", &store, e))?;
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                match event {
                    // A closed channel means the thread below has stopped; nothing to do.
                    Ok(event) => event.paths.into_iter().for_each(|path| {
                        let _ = tx.send(path);
                    }),
                    Err(e) => tracing::warn!("plugin folder watch error: {e}"),
                }
            })
            .map_err(|source| RegistryError::Watch {
                path: plugins_dir.to_owned(),
                source,
            })?;
        // Recursive, so a tenant folder made later is watched too; what lies
        // deeper than a scope's store is ignored by `on_change`.
        watcher
            .watch(plugins_dir, RecursiveMode::Recursive)
            .map_err(|source| RegistryError::Watch {
                path: plugins_dir.to_owned(),
                source,
            })?;
        let registry = Arc::downgrade(&self.inner);
        let dir = plugins_dir.to_owned();
        std::thread::Builder::new()
            .name("aileron-plugin-watch".into())
            .spawn(move || watch_loop(&registry, &dir, &rx))
            .map_err(|e| RegistryError::io("start a thread to watch", plugins_dir, e))?;
        Ok(WatchGuard { _watcher: watcher })
    }

    /// Handles one changed path of the plugins folder: a drop-in or a store file
    /// of the global scope or of a tenant's.
    fn on_change(&self, plugins_dir: &Path, path: &Path) {
        let Ok(relative) = path.strip_prefix(plugins_dir) else {
            return;
        };
        let parts: Vec<&str> = relative.iter().filter_map(|p| p.to_str()).collect();
        let (scope, in_store) = match parts.as_slice() {
            [_] => (OperatorScope::Global, false),
            [STORE_DIR, _] => (OperatorScope::Global, true),
            [tenant, _] => match tenant_folder(tenant) {
                Some(scope) => (scope, false),
                None => return,
            },
            [tenant, STORE_DIR, _] => match tenant_folder(tenant) {
                Some(scope) => (scope, true),
                None => return,
            },
            _ => return,
        };
        if in_store {
            let Some(digest) = stored_digest(path) else {
                return;
            };
            let published = self
                .get(&digest)
                .is_some_and(|meta| self.read().names.holds(&scope, &meta.name, &digest));
            if !path.is_file() || published {
                return;
            }
            if let Err(e) = self.load_stored(&scope, path) {
                self.reject(path, &e);
            }
        } else {
            if path.extension().is_none_or(|ext| ext != "wasm") {
                return;
            }
            if !is_drop_in(path) {
                // Removed (or renamed away): forget its old failure.
                self.clear_rejected(path);
                return;
            }
            let dir = scope_dir(plugins_dir, &scope);
            if let Err(e) = self.ingest_drop_in(&dir, &scope, path) {
                self.reject(path, &e);
            }
        }
    }
}

/// Collects changed paths into debounced batches and processes them, until the
/// watcher (and so the channel's sender) is dropped or the registry is gone.
fn watch_loop(registry: &Weak<Inner>, plugins_dir: &Path, rx: &mpsc::Receiver<PathBuf>) {
    while let Ok(first) = rx.recv() {
        let mut batch = BTreeSet::from([first]);
        let started = Instant::now();
        let mut closed = false;
        while started.elapsed() < MAX_BATCH_WAIT {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(path) => {
                    batch.insert(path);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let Some(inner) = registry.upgrade() else {
            return;
        };
        let live = Registry { inner };
        for path in &batch {
            live.on_change(plugins_dir, path);
        }
        if closed {
            return;
        }
    }
}
