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
//!
//! Anything else named like a DAG file (a link leading out of its tenant's part of
//! the folder, a FIFO, a device, a file too large) is an import error saying what
//! was refused (`read.rs`); `watch.rs` turns file events into batches to re-parse.

mod read;
mod watch;

pub use watch::watch;

use aileron_model::TenantId;
use aileron_model::dag::{
    Ceilings, DagSpec, ImportError, OperatorCatalog, ResolvedOperator, parse_dag_file,
};
use aileron_sandbox::Registry;
use read::{ReadError, read_dag_file};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The tenant of files at the top of the DAGs folder.
pub const DEFAULT_TENANT: &str = aileron_model::TenantId::DEFAULT;

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

/// What parsing a tenant's DAG files needs from the rest of the host: whether the
/// tenant exists, and the operators its files may name (the global ones and its
/// own).
pub trait TenantCatalogs: Sync {
    /// The catalog of `tenant`'s operators, or why its files are not read.
    fn catalog(&self, tenant: &TenantId) -> Result<Box<dyn OperatorCatalog + '_>, String>;
}

/// The registry alone: every tenant folder is taken as a tenant (`dags test`,
/// which reads the folder without a metastore).
impl TenantCatalogs for Registry {
    fn catalog(&self, tenant: &TenantId) -> Result<Box<dyn OperatorCatalog + '_>, String> {
        Ok(Box::new(self.for_tenant(tenant)))
    }
}

/// A tenant's operator catalog with the ceilings its limits set on its files.
pub struct WithCeilings<C> {
    pub catalog: C,
    pub ceilings: Ceilings,
}

impl<C: OperatorCatalog> OperatorCatalog for WithCeilings<C> {
    fn resolve(&self, reference: &str) -> Result<ResolvedOperator, String> {
        self.catalog.resolve(reference)
    }

    fn max_memory_bytes(&self) -> u64 {
        self.catalog.max_memory_bytes()
    }

    fn ceilings(&self) -> Ceilings {
        self.ceilings
    }
}

/// The message of a file in the folder of a tenant that does not exist.
pub fn unknown_tenant(tenant: &TenantId) -> String {
    format!(
        "tenant `{tenant}` does not exist, so the DAG files in its folder are not read; \
         a platform admin creates it (`aileron tenants create {tenant}`)"
    )
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
            let path = entry.path();
            if is_dag_file_name(name) && is_candidate(&path) {
                out.push(name.to_owned());
            } else if is_tenant_name(name) && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
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
            if is_dag_file_name(name) && is_candidate(&entry.path()) {
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
    pub fn scan(&self, catalog: &dyn TenantCatalogs) -> BTreeMap<String, FileResult> {
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
    pub fn parse_file(&self, fileloc: &str, catalog: &dyn TenantCatalogs) -> Option<FileResult> {
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
    fn parse_alone(&self, fileloc: &str, catalogs: &dyn TenantCatalogs) -> Option<FileResult> {
        let error = |message: String| {
            Some(FileResult::Error(ImportError {
                filename: fileloc.to_owned(),
                line: None,
                column: None,
                message,
            }))
        };
        let source = match read_dag_file(self, fileloc) {
            Ok(s) => s,
            Err(ReadError::Gone) => return None,
            Err(e) => return error(e.to_string()),
        };
        let tenant = match TenantId::new(Self::tenant_of(fileloc)) {
            Ok(tenant) => tenant,
            Err(e) => return error(e.to_string()),
        };
        let catalog = match catalogs.catalog(&tenant) {
            Ok(catalog) => catalog,
            Err(message) => return error(message),
        };
        Some(
            match parse_dag_file(tenant.as_str(), fileloc, &source, catalog.as_ref()) {
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
        let source = read_dag_file(self, fileloc).ok()?;
        let parsed: IdOnly = toml::from_str(&source).ok()?;
        let stem = fileloc.rsplit('/').next()?.strip_suffix(".toml")?;
        Some(parsed.id.unwrap_or_else(|| stem.to_owned()))
    }
}

/// Whether the entry at `path` is listed as a DAG file (when its name is one):
/// anything but a folder, dangling links included, so that what cannot be read
/// shows up as an import error rather than being silently passed over.
fn is_candidate(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => !m.is_dir(),
        Err(_) => std::fs::symlink_metadata(path).is_ok(),
    }
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
    aileron_model::TenantId::is_valid(name)
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

        fn max_memory_bytes(&self) -> u64 {
            1 << 32
        }
    }

    /// Every tenant but `ghost` exists, and sees [`Catalog`].
    impl TenantCatalogs for Catalog {
        fn catalog(&self, tenant: &TenantId) -> Result<Box<dyn OperatorCatalog + '_>, String> {
            if tenant.as_str() == "ghost" {
                return Err(unknown_tenant(tenant));
            }
            Ok(Box::new(Catalog))
        }
    }

    #[test]
    fn the_folder_of_a_tenant_that_does_not_exist_is_import_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "ghost/etl.toml", &dag(None));
        write(root, "acme/etl.toml", &dag(None));
        let folder = DagFolder::new(root);
        assert_eq!(
            summary(&folder.scan(&Catalog)),
            [
                "acme/etl.toml: dag acme/etl",
                "ghost/etl.toml: error tenant `ghost` does not exist, so the DAG files in its \
                 folder are not read; a platform admin creates it (`aileron tenants create ghost`)",
            ]
        );
        let again = folder.parse_file("ghost/etl.toml", &Catalog).unwrap();
        assert!(again.dag().is_none());
    }

    pub(super) fn dag(id: Option<&str>) -> String {
        let mut s = String::new();
        if let Some(id) = id {
            s.push_str(&format!("id = \"{id}\"\n"));
        }
        s.push_str("[tasks.t]\noperator = \"echo\"\n");
        s
    }

    pub(super) fn write(root: &Path, rel: &str, text: &str) {
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
}
