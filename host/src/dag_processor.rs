//! Watches the DAGs folder and turns DAG files into parsed DAGs or import errors.
//!
//! Layout of the folder (ARCHITECTURE §9):
//! - `dags/*.toml` belong to the tenant `default`;
//! - `dags/<tenant>/*.toml` belong to `<tenant>`; a tenant folder's name is ASCII
//!   letters, digits, `-` and `_`;
//! - hidden files and folders (a name starting with `.`, as editors' swap files),
//!   files not ending in `.toml`, folders with other names and anything nested
//!   deeper are ignored.
//!
//! A file is known by its *fileloc*, its `/`-separated path relative to the folder
//! (`etl.toml`, `acme/etl.toml`). Within a tenant a `dag_id` belongs to the first file
//! (in fileloc order) that defines it; a later file defining it again is an import
//! error naming the first, as Airflow reports a duplicated DAG id.

use aileron_model::dag::{DagSpec, ImportError, OperatorCatalog, parse_dag_file};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

/// The tenant of files at the top of the DAGs folder.
pub const DEFAULT_TENANT: &str = "default";

/// DAG files are configuration; anything larger is refused rather than parsed, so one
/// tenant cannot make the DAG processor read gigabytes.
pub const MAX_DAG_FILE_BYTES: u64 = 1 << 20;

/// Quiet time that ends a batch of changes: an editor's write-temp-then-rename save
/// arrives as several events within a few milliseconds and is reported once.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// A batch is sent at the latest this long after its first event, even while changes
/// keep coming, so a busy folder cannot delay updates indefinitely.
pub const MAX_BATCH_DELAY: Duration = Duration::from_millis(500);

/// The outcome of parsing one DAG file.
#[derive(Debug, Clone)]
pub enum FileResult {
    Dag(Box<DagSpec>),
    Error(ImportError),
}

impl FileResult {
    pub fn dag(&self) -> Option<&DagSpec> {
        match self {
            FileResult::Dag(d) => Some(d),
            FileResult::Error(_) => None,
        }
    }
}

/// The DAGs folder.
#[derive(Debug, Clone)]
pub struct DagFolder {
    root: PathBuf,
}

impl DagFolder {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tenant a fileloc belongs to.
    pub fn tenant_of(fileloc: &str) -> &str {
        match fileloc.split_once('/') {
            Some((tenant, _)) => tenant,
            None => DEFAULT_TENANT,
        }
    }

    /// Every DAG file's fileloc, sorted. A missing folder has none.
    pub fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(kind) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if kind.is_file() && is_dag_file_name(name) {
                out.push(name.to_owned());
            } else if kind.is_dir() && is_tenant_name(name) {
                out.extend(self.list_tenant(name));
            }
        }
        out.sort();
        out
    }

    /// The filelocs of one tenant folder, sorted.
    fn list_tenant(&self, tenant: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.root.join(tenant)) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_dag_file_name(name) && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file())
            {
                out.push(format!("{tenant}/{name}"));
            }
        }
        out.sort();
        out
    }

    /// The fileloc of `path` if it is (or would be) a DAG file of this folder.
    pub fn fileloc_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        match parts.as_slice() {
            [file] if is_dag_file_name(file) => Some((*file).to_owned()),
            [tenant, file] if is_tenant_name(tenant) && is_dag_file_name(file) => {
                Some(format!("{tenant}/{file}"))
            }
            _ => None,
        }
    }

    /// The absolute path of a well-formed fileloc.
    fn path_of(&self, fileloc: &str) -> Option<PathBuf> {
        let path = self.root.join(fileloc);
        (self.fileloc_of(&path).as_deref() == Some(fileloc)).then_some(path)
    }

    /// Parses every DAG file. Files are taken in fileloc order, so the first file to
    /// define a `dag_id` in a tenant keeps it.
    pub fn scan(&self, catalog: &dyn OperatorCatalog) -> BTreeMap<String, FileResult> {
        let mut out = BTreeMap::new();
        // (tenant, dag_id) → the fileloc that defines it.
        let mut owners: BTreeMap<(String, String), String> = BTreeMap::new();
        for fileloc in self.list() {
            let Some(mut result) = self.parse_alone(&fileloc, catalog) else {
                continue;
            };
            if let FileResult::Dag(dag) = &result {
                let key = (dag.tenant.clone(), dag.dag_id.clone());
                match owners.get(&key) {
                    Some(first) => result = FileResult::Error(duplicate_error(dag, first)),
                    None => {
                        owners.insert(key, fileloc.clone());
                    }
                }
            }
            out.insert(fileloc, result);
        }
        out
    }

    /// Parses one DAG file after it changed; `None` if it no longer exists (or is not
    /// a DAG file of this folder).
    pub fn parse_file(&self, fileloc: &str, catalog: &dyn OperatorCatalog) -> Option<FileResult> {
        let result = self.parse_alone(fileloc, catalog)?;
        let FileResult::Dag(dag) = &result else {
            return Some(result);
        };
        // Does a file before this one in the same tenant define the same dag_id? A
        // cheap look at each file's `id` first; a full parse only for a match, since
        // a file that fails to import claims nothing.
        let tenant = Self::tenant_of(fileloc);
        let earlier = self
            .list()
            .into_iter()
            .filter(|f| f.as_str() < fileloc && Self::tenant_of(f) == tenant);
        for other in earlier {
            if self.dag_id_hint(&other).as_deref() != Some(dag.dag_id.as_str()) {
                continue;
            }
            if let Some(FileResult::Dag(first)) = self.parse_alone(&other, catalog)
                && first.dag_id == dag.dag_id
            {
                return Some(FileResult::Error(duplicate_error(dag, &other)));
            }
        }
        Some(result)
    }

    /// Parses one file without looking at the others.
    fn parse_alone(&self, fileloc: &str, catalog: &dyn OperatorCatalog) -> Option<FileResult> {
        let path = self.path_of(fileloc)?;
        let error = |message: String| {
            Some(FileResult::Error(ImportError {
                filename: fileloc.to_owned(),
                line: None,
                column: None,
                message,
            }))
        };
        let source = match read_dag_file(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return error(e.to_string()),
            Err(e) => return error(format!("cannot read the file: {e}")),
        };
        Some(
            match parse_dag_file(Self::tenant_of(fileloc), fileloc, &source, catalog) {
                Ok(dag) => FileResult::Dag(Box::new(dag)),
                Err(e) => FileResult::Error(e),
            },
        )
    }

    /// The dag_id a file claims, read cheaply (its `id` key, else its file stem),
    /// without validating it. `None` if the file is missing or not valid TOML.
    pub fn dag_id_hint(&self, fileloc: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: Option<String>,
        }
        let source = read_dag_file(&self.path_of(fileloc)?).ok()?;
        let parsed: IdOnly = toml::from_str(&source).ok()?;
        let stem = fileloc.rsplit('/').next()?.strip_suffix(".toml")?;
        Some(parsed.id.unwrap_or_else(|| stem.to_owned()))
    }
}

fn read_dag_file(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_DAG_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the file is {} bytes; DAG files may be at most {MAX_DAG_FILE_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not valid UTF-8"))
}

fn duplicate_error(dag: &DagSpec, first: &str) -> ImportError {
    ImportError {
        filename: dag.fileloc.clone(),
        line: id_line(&dag.source),
        column: id_line(&dag.source).map(|_| 1),
        message: format!(
            "dag id `{}` is already defined in `{first}`; dag ids must be unique within a tenant",
            dag.dag_id
        ),
    }
}

/// The line of the top-level `id = …` key, if the file has one.
fn id_line(source: &str) -> Option<u32> {
    for (i, line) in source.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with('[') {
            // Keys after the first table header belong to tables.
            return None;
        }
        if let Some(rest) = line.strip_prefix("id")
            && rest.trim_start().starts_with('=')
        {
            return u32::try_from(i + 1).ok();
        }
    }
    None
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn is_dag_file_name(name: &str) -> bool {
    !is_hidden(name) && name.len() > ".toml".len() && name.ends_with(".toml")
}

fn is_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

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
            .is_some_and(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()));
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
    use super::*;
    use aileron_model::dag::ResolvedOperator;
    use serde_json::json;

    /// One operator, `echo`, with a fake digest.
    struct Catalog;

    impl OperatorCatalog for Catalog {
        fn resolve(&self, reference: &str) -> Result<ResolvedOperator, String> {
            if reference != "echo" {
                return Err(format!("unknown operator `{reference}`; installed: echo"));
            }
            Ok(ResolvedOperator {
                name: "echo".into(),
                version: "1.0.0".into(),
                digest: "sha256:0000".into(),
                params_schema: json!({"type": "object"}),
            })
        }
    }

    fn dag(id: Option<&str>) -> String {
        let mut s = String::new();
        if let Some(id) = id {
            s.push_str(&format!("id = \"{id}\"\n"));
        }
        s.push_str("[tasks.t]\noperator = \"echo\"\n");
        s
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn summary(results: &BTreeMap<String, FileResult>) -> Vec<String> {
        results
            .iter()
            .map(|(f, r)| match r {
                FileResult::Dag(d) => format!("{f}: dag {}/{}", d.tenant, d.dag_id),
                FileResult::Error(e) => format!("{f}: error {}", e.message),
            })
            .collect()
    }

    #[test]
    fn scan_maps_folders_to_tenants_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "top.toml", &dag(None));
        write(root, "acme/etl.toml", &dag(Some("etl")));
        write(root, "acme/broken.toml", "[tasks.t]\noperator = \"nope\"\n");
        write(root, ".hidden.toml", &dag(None));
        write(root, "acme/.swap.toml", &dag(None));
        write(root, "notes.txt", "hi");
        write(root, "acme/deep/nested.toml", &dag(None));
        write(root, ".git/x.toml", &dag(None));
        write(root, "bad name/x.toml", &dag(None));
        let folder = DagFolder::new(root);
        assert_eq!(
            summary(&folder.scan(&Catalog)),
            [
                "acme/broken.toml: error task `t`: unknown operator `nope`; installed: echo",
                "acme/etl.toml: dag acme/etl",
                "top.toml: dag default/top",
            ]
        );
        assert_eq!(DagFolder::tenant_of("acme/etl.toml"), "acme");
        assert_eq!(DagFolder::tenant_of("top.toml"), "default");
    }

    #[test]
    fn a_duplicate_dag_id_is_an_error_in_the_later_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "acme/a.toml", &dag(Some("etl")));
        write(
            root,
            "acme/b.toml",
            &format!("# second\n{}", dag(Some("etl"))),
        );
        // Another tenant may use the same id; a broken file claims nothing.
        write(root, "other/etl.toml", &dag(None));
        write(
            root,
            "other/0broken.toml",
            "id = \"etl\"\n[tasks.t]\noperator = \"nope\"\n",
        );
        let folder = DagFolder::new(root);
        let results = folder.scan(&Catalog);
        let FileResult::Error(e) = &results["acme/b.toml"] else {
            panic!("b.toml should be an import error");
        };
        assert_eq!(
            e.message,
            "dag id `etl` is already defined in `acme/a.toml`; dag ids must be unique within a tenant"
        );
        assert_eq!(e.line, Some(2));
        assert!(results["acme/a.toml"].dag().is_some());
        assert!(results["other/etl.toml"].dag().is_some());

        // parse_file agrees with scan, in both directions.
        assert!(matches!(
            folder.parse_file("acme/b.toml", &Catalog),
            Some(FileResult::Error(_))
        ));
        assert!(
            folder
                .parse_file("acme/a.toml", &Catalog)
                .unwrap()
                .dag()
                .is_some()
        );
        assert!(
            folder
                .parse_file("other/etl.toml", &Catalog)
                .unwrap()
                .dag()
                .is_some()
        );
        std::fs::remove_file(root.join("acme/a.toml")).unwrap();
        assert!(
            folder.parse_file("acme/a.toml", &Catalog).is_none(),
            "deleted"
        );
        assert!(
            folder
                .parse_file("acme/b.toml", &Catalog)
                .unwrap()
                .dag()
                .is_some()
        );
    }

    #[test]
    fn unreadable_files_are_import_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("bin.toml"), [0xff, 0xfe, 0x00]).unwrap();
        let big = "# padding\n".repeat((MAX_DAG_FILE_BYTES / 10 + 1) as usize);
        std::fs::write(root.join("big.toml"), big).unwrap();
        let results = DagFolder::new(root).scan(&Catalog);
        assert_eq!(
            summary(&results),
            [
                format!(
                    "big.toml: error the file is {} bytes; DAG files may be at most {MAX_DAG_FILE_BYTES} bytes",
                    (MAX_DAG_FILE_BYTES / 10 + 1) * 10
                ),
                "bin.toml: error the file is not valid UTF-8".to_owned(),
            ]
        );
        // Not a DAG file of this folder at all.
        assert!(
            DagFolder::new(root)
                .parse_file("../escape.toml", &Catalog)
                .is_none()
        );
        assert!(
            DagFolder::new(root)
                .parse_file("a/b/c.toml", &Catalog)
                .is_none()
        );
    }

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
