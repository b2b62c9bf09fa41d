//! Watching the plugins folder: new or changed drop-ins, and components another
//! process put into the store, are registered within a second.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::store::{STORE_DIR, is_drop_in, stored_digest};
use super::{Inner, Registry};
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
    /// Watches `plugins_dir` for drop-ins and its store for components installed
    /// by another process (e.g. `aileron plugins add` next to a running server),
    /// registering them within about a second. Failures are logged and listed by
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
        for dir in [plugins_dir, store.as_path()] {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| RegistryError::Watch {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let registry = Arc::downgrade(&self.inner);
        let dir = plugins_dir.to_owned();
        std::thread::Builder::new()
            .name("aileron-plugin-watch".into())
            .spawn(move || watch_loop(&registry, &dir, &rx))
            .map_err(|e| RegistryError::io("start a thread to watch", plugins_dir, e))?;
        Ok(WatchGuard { _watcher: watcher })
    }

    /// Handles one changed path of the plugins folder or its store.
    fn on_change(&self, plugins_dir: &Path, path: &Path) {
        let parent = path.parent();
        if parent == Some(&plugins_dir.join(STORE_DIR)) {
            let Some(digest) = stored_digest(path) else {
                return;
            };
            if !path.is_file() || self.get(&digest).is_some() {
                return;
            }
            if let Err(e) = self.load_stored(path) {
                self.reject(path, &e);
            }
        } else if parent == Some(plugins_dir) {
            if path.extension().is_none_or(|ext| ext != "wasm") {
                return;
            }
            if !is_drop_in(path) {
                // Removed (or renamed away): forget its old failure.
                self.clear_rejected(path);
                return;
            }
            if let Err(e) = self.ingest_drop_in(plugins_dir, path) {
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
