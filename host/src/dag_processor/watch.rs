//! Watching the DAGs folder: raw file events, debounced into batches of filelocs to
//! parse again.

use super::{DEBOUNCE, DagFolder, MAX_BATCH_DELAY, is_tenant_name};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

/// Watches `root` recursively and sends batches of changed filelocs (created,
/// modified, removed or renamed DAG files), sorted and without duplicates.
///
/// Changes are debounced: a batch is sent after [`DEBOUNCE`] without events, and at
/// the latest [`MAX_BATCH_DELAY`] after its first event. A batch also names the other
/// files of the tenant that claim the same dag_id as a changed file (before or after
/// the change), since the change may move the duplicate-id error between them; and a
/// tenant folder created, removed or renamed is reported as all of its files.
///
/// Watching stops when the returned watcher is dropped; the receiver then ends.
pub fn watch(
    root: &Path,
) -> Result<(RecommendedWatcher, tokio::sync::mpsc::Receiver<Vec<String>>), notify::Error> {
    let (raw_tx, raw_rx) = std_mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |event| {
        // The receiver is gone only when the debounce thread ended; nothing to do then.
        let _ = raw_tx.send(event);
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;

    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let folder = DagFolder::new(root);
    // Known files and the dag_id each claims, to expand batches (see above). Built
    // after the watch started, so no change falls between the listing and the watch.
    let known: BTreeMap<String, Option<String>> = folder
        .list()
        .into_iter()
        .map(|f| {
            let hint = folder.dag_id_hint(&f);
            (f, hint)
        })
        .collect();
    std::thread::Builder::new()
        .name("dag-folder-watch".to_owned())
        .spawn(move || debounce_loop(&folder, known, &raw_rx, &tx))
        .map_err(notify::Error::io)?;
    Ok((watcher, rx))
}

/// Collects raw events into batches until the watcher or the receiver goes away.
fn debounce_loop(
    folder: &DagFolder,
    mut known: BTreeMap<String, Option<String>>,
    raw: &std_mpsc::Receiver<notify::Result<notify::Event>>,
    tx: &tokio::sync::mpsc::Sender<Vec<String>>,
) {
    loop {
        let Ok(first) = raw.recv() else { return };
        let mut paths = Vec::new();
        let mut rescan = false;
        collect(first, &mut paths, &mut rescan);
        let started = Instant::now();
        let mut disconnected = false;
        loop {
            let left = MAX_BATCH_DELAY.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match raw.recv_timeout(DEBOUNCE.min(left)) {
                Ok(event) => collect(event, &mut paths, &mut rescan),
                Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let batch = make_batch(folder, &mut known, &paths, rescan);
        if !batch.is_empty() && tx.blocking_send(batch).is_err() {
            return;
        }
        if disconnected {
            return;
        }
    }
}

/// Adds the paths of an event that may change a DAG file.
fn collect(event: notify::Result<notify::Event>, paths: &mut Vec<PathBuf>, rescan: &mut bool) {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            // A lost event (e.g. the inotify queue overflowed): look at everything.
            tracing::warn!(error = %e, "DAG folder watch error; rescanning the folder");
            *rescan = true;
            return;
        }
    };
    if event.need_rescan() {
        *rescan = true;
    }
    match event.kind {
        // Opening and reading files (the DAG processor's own reads among them) change
        // nothing; a close after writing does.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return,
        _ => {}
    }
    paths.extend(event.paths);
}

/// Turns the paths of one debounce window into a batch of filelocs and updates
/// `known`.
fn make_batch(
    folder: &DagFolder,
    known: &mut BTreeMap<String, Option<String>>,
    paths: &[PathBuf],
    rescan: bool,
) -> Vec<String> {
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut relist_all = rescan;
    for path in paths {
        if let Some(fileloc) = folder.fileloc_of(path) {
            changed.insert(fileloc);
            continue;
        }
        let Ok(rel) = path.strip_prefix(folder.root()) else {
            continue;
        };
        let mut parts = rel.components();
        match (parts.next(), parts.next()) {
            // The folder itself was replaced.
            (None, _) => relist_all = true,
            // A tenant folder appeared, vanished or was renamed: all its files, now
            // and before (it may hold files created before its watch was in place).
            (Some(Component::Normal(name)), None) => {
                if let Some(tenant) = name.to_str().filter(|n| is_tenant_name(n)) {
                    changed.extend(folder.list_tenant(tenant));
                    let prefix = format!("{tenant}/");
                    changed.extend(known.keys().filter(|k| k.starts_with(&prefix)).cloned());
                }
            }
            _ => {}
        }
    }
    if relist_all {
        changed.extend(folder.list());
        changed.extend(known.keys().cloned());
    }

    // Files whose claim on a dag_id may have changed hands.
    let mut batch = changed.clone();
    let mut updates = Vec::new();
    for fileloc in &changed {
        let before = known.get(fileloc).cloned().flatten();
        let exists = folder
            .path_of(fileloc)
            .is_some_and(|p| super::is_candidate(&p));
        let after = if exists {
            folder.dag_id_hint(fileloc)
        } else {
            None
        };
        let tenant = DagFolder::tenant_of(fileloc);
        for id in [&before, &after].into_iter().flatten() {
            batch.extend(
                known
                    .iter()
                    .filter(|(f, hint)| {
                        DagFolder::tenant_of(f) == tenant && hint.as_deref() == Some(id.as_str())
                    })
                    .map(|(f, _)| f.clone()),
            );
        }
        updates.push((fileloc.clone(), exists, after));
    }
    for (fileloc, exists, hint) in updates {
        if exists {
            known.insert(fileloc, hint);
        } else {
            known.remove(&fileloc);
        }
    }
    batch.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{dag, write};
    use super::*;
    use std::time::Duration;

    /// Receives batches until `want` has been seen, for at most a second.
    async fn expect_batch(rx: &mut tokio::sync::mpsc::Receiver<Vec<String>>, want: &[&str]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut seen = BTreeSet::new();
        while !want.iter().all(|w| seen.contains(*w)) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(batch)) => seen.extend(batch),
                Ok(None) => panic!("watch ended"),
                Err(_) => panic!("no batch with {want:?} within 1 s; saw {seen:?}"),
            }
        }
    }

    #[tokio::test]
    async fn watch_reports_created_modified_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (_watcher, mut rx) = watch(&root).unwrap();

        write(&root, "a.toml", &dag(None));
        expect_batch(&mut rx, &["a.toml"]).await;
        write(&root, "a.toml", &dag(Some("renamed")));
        expect_batch(&mut rx, &["a.toml"]).await;
        // An editor's save: write a temporary file, rename it over the original.
        write(&root, ".a.toml.tmp", &dag(None));
        std::fs::rename(root.join(".a.toml.tmp"), root.join("a.toml")).unwrap();
        expect_batch(&mut rx, &["a.toml"]).await;
        std::fs::remove_file(root.join("a.toml")).unwrap();
        expect_batch(&mut rx, &["a.toml"]).await;

        // A tenant folder created after the watch started.
        write(&root, "late/x.toml", &dag(None));
        expect_batch(&mut rx, &["late/x.toml"]).await;
        write(&root, "late/y.toml", &dag(None));
        expect_batch(&mut rx, &["late/y.toml"]).await;
        // Ignored files produce nothing.
        write(&root, "notes.txt", "x");
        write(&root, "late/deeper/z.toml", &dag(None));
        assert!(
            tokio::time::timeout(Duration::from_millis(400), rx.recv())
                .await
                .is_err(),
            "ignored files must not be reported"
        );
    }

    #[tokio::test]
    async fn watch_names_files_sharing_a_dag_id() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        write(&root, "t/a.toml", &dag(Some("etl")));
        write(&root, "t/b.toml", &dag(Some("etl")));
        let (_watcher, mut rx) = watch(&root).unwrap();
        // Removing a.toml frees the id for b.toml, so b.toml is re-parsed too.
        std::fs::remove_file(root.join("t/a.toml")).unwrap();
        expect_batch(&mut rx, &["t/a.toml", "t/b.toml"]).await;
    }
}
