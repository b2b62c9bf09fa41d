//! The plugin registry: validated operator components by digest, name and version,
//! each with its `InstancePre` ready for a try.

mod catalog;
mod scope;
mod store;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use wasmtime::component::types::ComponentItem;

use crate::bindings::{OperatorInfo, OperatorPre};
use crate::engine::Runtime;
use crate::error::{RegistryError, chain};
use crate::host::HostState;
use crate::log::LogBuffer;

pub use catalog::TenantOperators;
pub use scope::OperatorScope;
pub use store::scope_dir;
pub use watch::WatchGuard;

use scope::ScopedNames;

/// Largest component accepted, in bytes. A Rust operator is a few hundred KiB; a
/// Python (componentize-py) or JavaScript one with its interpreter 10 to 40 MiB;
/// 128 MiB admits those with room while bounding what one upload costs to hash,
/// compile and keep.
pub const MAX_COMPONENT_BYTES: usize = 128 << 20;

/// Log kept of a `describe` call (it should print nothing); only its stderr tail
/// is used, to name a panic.
const DESCRIBE_LOG_BYTES: usize = 16 << 10;

/// Longest operator name: names appear in DAG files, URLs and log lines.
const MAX_NAME: usize = 64;

/// Longest description and params schema that `describe` may return: they are
/// shown in the UI and kept in memory for every registered component.
const MAX_DESCRIPTION: usize = 4 << 10;
const MAX_SCHEMA: usize = 64 << 10;

/// What an operator may import, for the message refusing a component that needs more.
const PROVIDED_IMPORTS: &str =
    "WASI 0.2 (wasi:http/outgoing-handler included) and aileron:operator/context@0.2.0 or @0.1.0";

/// Events buffered per subscriber; a subscriber that falls further behind gets a
/// `Lagged` error and should re-read [`Registry::list`].
const EVENT_CAPACITY: usize = 256;

/// What the registry knows about one registered component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorMeta {
    pub name: String,
    pub version: String,
    pub description: String,
    /// JSON Schema of the `params` that `execute` accepts.
    pub params_schema: serde_json::Value,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Whether it is one of the standard operators embedded in the host.
    pub builtin: bool,
    /// The world it targets, which names the WIT version it was built against:
    /// `aileron:operator/operator@0.3.0`, `…@0.2.0` or `…@0.1.0`.
    pub world: String,
}

/// A drop-in or stored file that could not be registered, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedPlugin {
    pub path: PathBuf,
    pub error: String,
}

/// The registered operator components. Thread-safe; clones share one registry.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Arc<Runtime>,
    index: RwLock<Index>,
    events: broadcast::Sender<OperatorMeta>,
    rejected: Mutex<BTreeMap<PathBuf, String>>,
}

/// A registered component, ready to instantiate.
pub(crate) struct Entry {
    pub(crate) meta: OperatorMeta,
    pub(crate) pre: OperatorPre<HostState>,
}

#[derive(Default)]
struct Index {
    /// Every component some scope publishes, compiled once however many tenants
    /// publish it.
    by_digest: HashMap<String, Arc<Entry>>,
    /// Which scope publishes which digest under which name and version.
    names: ScopedNames,
    /// digest → where its bytes can be read again, for the components that have
    /// such a place (see [`Registry::component_bytes`]); the first is used.
    origins: HashMap<String, Vec<Origin>>,
}

/// Where the bytes of a registered component are kept. The registry does not hold
/// them in memory (a component may be tens of MiB, and only its compiled form is
/// needed to run it), so it remembers where to find them.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    /// One of the standard operators embedded in the host.
    Builtin(&'static [u8]),
    /// A file of the plugin store, named by the digest.
    Stored(PathBuf),
}

impl Registry {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Self {
        Registry {
            inner: Arc::new(Inner {
                runtime,
                index: RwLock::new(Index::default()),
                events: broadcast::channel(EVENT_CAPACITY).0,
                rejected: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Each tenant's linear memory held by tries running in this process, and
    /// its growths refused by its `max_memory` (see [`crate::Sandbox::tenant_memory`]).
    pub fn tenant_memory(&self) -> Vec<(String, crate::TenantMemoryUsage)> {
        self.runtime().tenants.usage()
    }

    /// See [`Sandbox::share_memory_quotas`](crate::Sandbox::share_memory_quotas).
    pub(crate) fn share_memory_quotas(&self, ledger: Arc<dyn crate::MemoryLedger>) -> bool {
        self.runtime().tenants.share_quotas(ledger)
    }

    /// See [`Sandbox::memory_held`](crate::Sandbox::memory_held).
    pub(crate) fn memory_held(&self) -> std::collections::BTreeMap<String, u64> {
        self.runtime().tenants.held()
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Registers the standard operators embedded in the host (see
    /// [`STANDARD_PLUGINS`](crate::STANDARD_PLUGINS)), for every tenant. Idempotent.
    pub fn load_builtin(&self) -> Result<(), RegistryError> {
        for &(name, bytes) in crate::builtin::STANDARD_PLUGINS {
            let meta = self
                .register(&OperatorScope::Global, bytes, true)
                .map_err(|source| RegistryError::Builtin {
                    name: name.to_owned(),
                    source: Box::new(source),
                })?;
            self.add_origin(&meta.digest, Origin::Builtin(bytes));
            if meta.name != name {
                tracing::warn!(
                    "standard operator built as `{name}` describes itself as `{}`",
                    meta.name
                );
            }
        }
        Ok(())
    }

    /// Validates a component and publishes it for every tenant, returning what it
    /// describes; see [`add_to`](Registry::add_to).
    pub fn add(&self, bytes: &[u8]) -> Result<OperatorMeta, RegistryError> {
        self.add_to(&OperatorScope::Global, bytes)
    }

    /// Validates a component and publishes it in `scope`, returning what it
    /// describes. Idempotent for the same bytes in the same scope.
    ///
    /// Validation compiles the component (or loads it from the cache), checks that
    /// it targets the operator world and needs no import the sandbox lacks, then
    /// calls `describe` in a sandbox with a deadline and a memory cap, and checks
    /// the name, version and schema it returns. A component another scope already
    /// publishes is not compiled again. Compiling takes CPU time: call this from a
    /// blocking context (`spawn_blocking`), not from an async task.
    pub fn add_to(
        &self,
        scope: &OperatorScope,
        bytes: &[u8],
    ) -> Result<OperatorMeta, RegistryError> {
        self.register(scope, bytes, false)
    }

    /// The component with this digest (`sha256:<hex>`), if some scope publishes it.
    /// Runs and workers use digests resolved when the DAG was parsed, so this does
    /// not look at scopes.
    pub fn get(&self, digest: &str) -> Option<OperatorMeta> {
        self.entry(digest).map(|entry| entry.meta.clone())
    }

    /// The bytes of the component with this digest (`sha256:<hex>`), so they can be
    /// served to a worker that lacks it: the embedded bytes of a standard
    /// operator, or the plugin store's file. `None` if the digest is not
    /// registered, or was registered with [`add`](Registry::add) alone and so was
    /// never stored. A store file that can no longer be read, or no longer has
    /// this digest, is an error. Reads a file: call from a blocking context.
    pub fn component_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let origin = self
            .read()
            .origins
            .get(digest)
            .and_then(|o| o.first().cloned());
        match origin {
            None => Ok(None),
            Some(Origin::Builtin(bytes)) => Ok(Some(bytes.to_vec())),
            Some(Origin::Stored(path)) => {
                let bytes =
                    std::fs::read(&path).map_err(|e| RegistryError::io("read", &path, e))?;
                // The file was checked when it was registered; check again, since
                // whoever gets these bytes trusts them to be the digest's.
                let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
                if actual != digest {
                    return Err(RegistryError::CorruptStoreFile { path, actual });
                }
                Ok(Some(bytes))
            }
        }
    }

    /// Records a place where the bytes of a registered component are. The embedded
    /// bytes come first: they cannot go missing.
    fn add_origin(&self, digest: &str, origin: Origin) {
        let mut index = self.write();
        if !index.by_digest.contains_key(digest) {
            return;
        }
        let origins = index.origins.entry(digest.to_owned()).or_default();
        if origins.contains(&origin) {
            return;
        }
        match origin {
            Origin::Builtin(_) => origins.insert(0, origin),
            Origin::Stored(_) => origins.push(origin),
        }
    }

    pub(crate) fn entry(&self, digest: &str) -> Option<Arc<Entry>> {
        self.read().by_digest.get(digest).cloned()
    }

    /// Every global component, sorted by name, then version (semver order).
    pub fn list(&self) -> Vec<OperatorMeta> {
        self.list_scoped(Some(&OperatorScope::Global))
            .into_iter()
            .map(|(_, meta)| meta)
            .collect()
    }

    /// What `viewer` may use (the global components and, for a tenant, its own),
    /// or with `None` every scope's: with the scope each is published in, sorted by
    /// name, then version. A component published in two scopes is listed twice.
    pub fn list_scoped(
        &self,
        viewer: Option<&OperatorScope>,
    ) -> Vec<(OperatorScope, OperatorMeta)> {
        let index = self.read();
        index
            .names
            .listing(viewer)
            .into_iter()
            .map(|(scope, _, _, digest)| (scope.clone(), index.by_digest[digest].meta.clone()))
            .collect()
    }

    /// Resolves an operator reference among the global operators; see
    /// [`resolve_in`](Registry::resolve_in).
    pub fn resolve(&self, reference: &str) -> Result<OperatorMeta, RegistryError> {
        self.resolve_in(&OperatorScope::Global, reference)
    }

    /// Resolves an operator reference from a DAG file of `viewer`'s tenant, among
    /// the global operators and the tenant's own:
    /// - `name`: its highest version (semver order); a standard operator's name
    ///   always means the standard operator, since no other component may take it;
    /// - `name@1.2.0`: that version;
    /// - `name@sha256:<hex>`: that component, which must be named `name`.
    ///
    /// Another tenant's operator is unknown here, by name and by digest alike.
    pub fn resolve_in(
        &self,
        viewer: &OperatorScope,
        reference: &str,
    ) -> Result<OperatorMeta, RegistryError> {
        let invalid = || RegistryError::InvalidReference(reference.to_owned());
        let (name, selector) = match reference.split_once('@') {
            Some((name, selector)) => (name, Some(selector)),
            None => (reference, None),
        };
        if check_name(name).is_err() {
            return Err(invalid());
        }
        let index = self.read();
        let Some(versions) = index.names.versions(viewer, name) else {
            return Err(RegistryError::UnknownOperator {
                name: name.to_owned(),
                available: list_or_none(&index.names.names(viewer)),
            });
        };
        let digest = match selector {
            None => versions.values().next_back(),
            Some(digest) if digest.starts_with("sha256:") => {
                if let Some(entry) = index.by_digest.get(digest)
                    && versions.values().any(|d| d == digest)
                {
                    return Ok(entry.meta.clone());
                }
                // Named otherwise, or not visible here: say only what this tenant
                // may know, that no component of that name has this digest.
                return Err(match index.by_digest.get(digest) {
                    Some(entry) if entry.meta.name != name && self_sees(&index, viewer, entry) => {
                        RegistryError::DigestNameMismatch {
                            digest: digest.to_owned(),
                            actual: entry.meta.name.clone(),
                            requested: name.to_owned(),
                        }
                    }
                    _ => RegistryError::UnknownDigest(digest.to_owned()),
                });
            }
            Some(version) => {
                let parsed = semver::Version::parse(version).map_err(|_| invalid())?;
                versions.get(&parsed)
            }
        };
        match digest {
            Some(digest) => Ok(index.by_digest[digest].meta.clone()),
            None => {
                let available: Vec<String> = versions.keys().map(ToString::to_string).collect();
                let available: Vec<&str> = available.iter().map(String::as_str).collect();
                Err(RegistryError::UnknownVersion {
                    name: name.to_owned(),
                    version: selector.unwrap_or_default().to_owned(),
                    available: list_or_none(&available),
                })
            }
        }
    }

    /// Fires for every component newly published in a scope (not for repeated
    /// registrations of known bytes in the same scope), and for every removal.
    pub fn subscribe(&self) -> broadcast::Receiver<OperatorMeta> {
        self.inner.events.subscribe()
    }

    /// Drop-ins and stored files that could not be registered, by path. An entry
    /// goes away when the file is fixed or removed.
    pub fn rejected(&self) -> Vec<RejectedPlugin> {
        self.lock_rejected()
            .iter()
            .map(|(path, error)| RejectedPlugin {
                path: path.clone(),
                error: error.clone(),
            })
            .collect()
    }

    fn register(
        &self,
        scope: &OperatorScope,
        bytes: &[u8],
        builtin: bool,
    ) -> Result<OperatorMeta, RegistryError> {
        let (meta, version, pre) = self.validate(bytes, builtin)?;
        self.publish(scope, &meta, &version, pre)
    }

    /// Checks `bytes` is an operator component, as [`add_to`](Registry::add_to)
    /// does, without publishing it: what it describes. Compiles (the compiled
    /// form is cached): call from a blocking context.
    pub fn inspect(&self, bytes: &[u8]) -> Result<OperatorMeta, RegistryError> {
        self.validate(bytes, false).map(|(meta, _, _)| meta)
    }

    /// What `bytes` describes, checked, with its compiled form when it is new to
    /// the registry (`None`: some scope publishes it already).
    fn validate(
        &self,
        bytes: &[u8],
        builtin: bool,
    ) -> Result<
        (
            OperatorMeta,
            semver::Version,
            Option<OperatorPre<HostState>>,
        ),
        RegistryError,
    > {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(RegistryError::TooLarge {
                size: bytes.len(),
                max: MAX_COMPONENT_BYTES,
            });
        }
        let digest_hex = hex::encode(Sha256::digest(bytes));
        let digest = format!("sha256:{digest_hex}");
        if let Some(entry) = self.entry(&digest) {
            // Known bytes (another scope's, or this one's again): nothing to compile.
            let version = semver::Version::parse(&entry.meta.version)
                .map_err(|e| RegistryError::InvalidInfo(e.to_string()))?;
            return Ok((entry.meta.clone(), version, None));
        }
        check_header(bytes)?;
        let runtime = self.runtime();
        let component = runtime
            .cache
            .load_or_compile(&runtime.engine, &digest_hex, bytes)
            .map_err(|e| RegistryError::Compile(e.to_string()))?;
        check_exports(&component, &runtime.engine)?;
        let instance_pre = runtime.linker.instantiate_pre(&component).map_err(|e| {
            // Wasmtime names the missing import and blames "the linker"; say
            // what an operator may import instead.
            let missing = e.to_string().replace(
                ", but a matching implementation was not found in the linker",
                "",
            );
            RegistryError::UnsupportedImport(format!(
                "{missing} (operators may import {PROVIDED_IMPORTS})"
            ))
        })?;
        let pre = OperatorPre::new(instance_pre)
            .map_err(|e| RegistryError::NotAnOperator(format!("{e:#}").replace('\n', " ")))?;
        let info = describe(runtime, &pre)?;
        let (version, params_schema) = check_info(&info)?;
        let meta = OperatorMeta {
            name: info.name,
            version: info.version,
            description: info.description,
            params_schema,
            digest,
            size: bytes.len() as u64,
            builtin,
            world: pre.world().to_owned(),
        };
        Ok((meta, version, Some(pre)))
    }

    /// Publishes a validated component in `scope`: `pre` is its compiled form when
    /// it is new to the registry, `None` when some scope already holds it.
    fn publish(
        &self,
        scope: &OperatorScope,
        meta: &OperatorMeta,
        version: &semver::Version,
        pre: Option<OperatorPre<HostState>>,
    ) -> Result<OperatorMeta, RegistryError> {
        let mut index = self.write();
        if let Some(entry) = index.by_digest.get(&meta.digest)
            && index.names.holds(scope, &meta.name, &meta.digest)
        {
            // Published here already (perhaps concurrently by another caller).
            return Ok(entry.meta.clone());
        }
        if let Err(conflict) = index
            .names
            .publish(scope, &meta.name, version, &meta.digest)
        {
            return Err(RegistryError::VersionConflict {
                name: meta.name.clone(),
                version: meta.version.clone(),
                existing: conflict.existing,
                digest: meta.digest.clone(),
            });
        }
        if !meta.builtin && is_standard_name(&meta.name) {
            // A DAG that says `operator = "echo"` means the standard operator; a
            // component taking the name could otherwise run in its place as a
            // "higher version", in every tenant's DAGs.
            index.names.unpublish(scope, &meta.name, version);
            return Err(RegistryError::ReservedName {
                name: meta.name.clone(),
                version: meta.version.clone(),
            });
        }
        let meta = match (index.by_digest.get(&meta.digest), pre) {
            (Some(entry), _) => entry.meta.clone(),
            (None, Some(pre)) => {
                index.by_digest.insert(
                    meta.digest.clone(),
                    Arc::new(Entry {
                        meta: meta.clone(),
                        pre,
                    }),
                );
                meta.clone()
            }
            (None, None) => {
                // Removed between the look-up and now: take the name back.
                index.names.unpublish(scope, &meta.name, version);
                return Err(RegistryError::UnknownDigest(meta.digest.clone()));
            }
        };
        drop(index);
        tracing::info!(
            name = %meta.name,
            version = %meta.version,
            digest = %meta.digest,
            builtin = meta.builtin,
            %scope,
            "published operator"
        );
        // No subscriber is not an error.
        let _ = self.inner.events.send(meta.clone());
        Ok(meta)
    }

    /// Takes `name@version` out of `scope`: its store file and any drop-in with
    /// the same bytes in the scope's folder under `plugins_dir` are deleted, and
    /// the component is forgotten once no scope publishes it. Standard operators
    /// stay. Whether a DAG still uses it is for the caller to check first. Deletes
    /// files: call from a blocking context.
    pub fn remove(
        &self,
        plugins_dir: &std::path::Path,
        scope: &OperatorScope,
        name: &str,
        version: &str,
    ) -> Result<OperatorMeta, RegistryError> {
        let meta = self.resolve_exact(scope, name, version)?;
        if meta.builtin {
            return Err(RegistryError::ReservedName {
                name: meta.name,
                version: meta.version,
            });
        }
        let removed = store::delete_copies(plugins_dir, scope, &meta.digest)?;
        let mut index = self.write();
        let parsed = semver::Version::parse(&meta.version)
            .map_err(|e| RegistryError::InvalidInfo(e.to_string()))?;
        index.names.unpublish(scope, &meta.name, &parsed);
        if let Some(origins) = index.origins.get_mut(&meta.digest) {
            origins.retain(|o| !matches!(o, Origin::Stored(p) if removed.contains(p)));
        }
        let forgotten = !index.names.publishes(&meta.digest);
        if forgotten {
            index.by_digest.remove(&meta.digest);
            index.origins.remove(&meta.digest);
        }
        drop(index);
        if forgotten {
            // Its compiled form would otherwise stay in the cache for good.
            let hex = meta.digest.strip_prefix("sha256:").unwrap_or(&meta.digest);
            self.runtime().cache.forget(hex);
        }
        for path in &removed {
            self.clear_rejected(path);
        }
        tracing::info!(name, version, digest = %meta.digest, %scope, "removed operator");
        let _ = self.inner.events.send(meta.clone());
        Ok(meta)
    }

    /// Installs `bytes` in `scope` like [`install_to`](Registry::install_to),
    /// but where the scope already publishes another build under the same name
    /// and version, that build is removed first (its files and, unless another
    /// scope publishes it, its compiled form): the development loop of a
    /// toolchain whose builds differ byte for byte. Returns the new operator and
    /// the one it replaced. Whether a run still needs the old build is for the
    /// caller to check first. Compiles and deletes files: call from a blocking
    /// context.
    pub fn install_replacing(
        &self,
        plugins_dir: &std::path::Path,
        scope: &OperatorScope,
        bytes: &[u8],
    ) -> Result<(OperatorMeta, Option<OperatorMeta>), RegistryError> {
        match self.install_to(plugins_dir, scope, bytes) {
            // Only a build this scope itself publishes is replaced: a conflict
            // with another scope's (a global name a tenant also publishes)
            // stays a conflict, and nothing is removed.
            Err(RegistryError::VersionConflict {
                name,
                version,
                existing,
                digest,
            }) if self
                .resolve_exact(scope, &name, &version)
                .is_ok_and(|own| own.digest == existing) =>
            {
                // Removed, then installed: a parse in between may briefly
                // miss the operator, and the parse the second change starts
                // finds it again.
                let old = self.remove(plugins_dir, scope, &name, &version)?;
                match self.install_to(plugins_dir, scope, bytes) {
                    Ok(new) => Ok((new, Some(old))),
                    Err(e) => Err(RegistryError::ReplaceFailed(
                        format!(
                            "{name}@{version}: the old build ({}) was removed but the new one \
                             ({digest}) could not be installed",
                            old.digest
                        ),
                        Box::new(e),
                    )),
                }
            }
            other => other.map(|new| (new, None)),
        }
    }

    /// The build `bytes` would replace in `scope`: the one published there
    /// under the same name and version with other bytes. Compiles (or loads
    /// from the cache) to learn the name: call from a blocking context.
    pub fn would_replace(
        &self,
        scope: &OperatorScope,
        bytes: &[u8],
    ) -> Result<Option<OperatorMeta>, RegistryError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let (name, version) = match self.entry(&digest) {
            Some(entry) => (entry.meta.name.clone(), entry.meta.version.clone()),
            None => {
                let meta = self.inspect(bytes)?;
                (meta.name, meta.version)
            }
        };
        Ok(self
            .resolve_exact(scope, &name, &version)
            .ok()
            .filter(|old| old.digest != digest))
    }

    /// Deletes compiled forms of components no scope publishes any more (see
    /// [`ArtifactCache::prune`](crate::cache::ArtifactCache)); returns how many.
    pub fn prune_cache(&self) -> usize {
        let index = self.read();
        self.runtime()
            .cache
            .prune(|digest| index.by_digest.contains_key(digest))
    }

    /// Whether `viewer`'s DAGs may run the component `digest`: it is published
    /// globally or in the viewer's own scope (what a worker serving one tenant
    /// may download).
    pub fn sees(&self, viewer: &OperatorScope, digest: &str) -> bool {
        let index = self.read();
        index
            .by_digest
            .get(digest)
            .is_some_and(|entry| self_sees(&index, viewer, entry))
    }

    /// Removes everything `scope` itself publishes, as [`remove`](Registry::remove)
    /// does one version: what a deleted tenant leaves, so a tenant made later
    /// under the same name starts without it. Deletes files: call from a
    /// blocking context.
    pub fn remove_scope(
        &self,
        plugins_dir: &std::path::Path,
        scope: &OperatorScope,
    ) -> Result<Vec<OperatorMeta>, RegistryError> {
        let own: Vec<(String, String)> = self
            .list_scoped(Some(scope))
            .into_iter()
            .filter(|(s, _)| s == scope)
            .map(|(_, meta)| (meta.name, meta.version))
            .collect();
        own.iter()
            .map(|(name, version)| self.remove(plugins_dir, scope, name, version))
            .collect()
    }

    /// `name@version` as published in `scope` itself (not what the scope sees).
    pub fn resolve_exact(
        &self,
        scope: &OperatorScope,
        name: &str,
        version: &str,
    ) -> Result<OperatorMeta, RegistryError> {
        let index = self.read();
        let Some(versions) = index.names.own(scope, name) else {
            return Err(RegistryError::UnknownOperator {
                name: name.to_owned(),
                available: format!("none of that name in {scope}"),
            });
        };
        let found = semver::Version::parse(version)
            .ok()
            .and_then(|v| versions.get(&v));
        match found {
            Some(digest) => Ok(index.by_digest[digest].meta.clone()),
            None => {
                let available: Vec<String> = versions.keys().map(ToString::to_string).collect();
                let available: Vec<&str> = available.iter().map(String::as_str).collect();
                Err(RegistryError::UnknownVersion {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    available: list_or_none(&available),
                })
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // The index is updated in one step under the lock; a panic elsewhere while
        // holding it leaves it consistent, so poisoning is ignored.
        self.inner.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_rejected(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, String>> {
        self.inner
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn reject(&self, path: &std::path::Path, error: &RegistryError) {
        let error = chain(error);
        tracing::warn!(path = %path.display(), "plugin not registered: {error}");
        self.lock_rejected().insert(path.to_owned(), error);
    }

    fn clear_rejected(&self, path: &std::path::Path) {
        self.lock_rejected().remove(path);
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("components", &self.read().by_digest.len())
            .finish()
    }
}

/// Whether `viewer` sees `entry` under its own name in some scope.
fn self_sees(index: &Index, viewer: &OperatorScope, entry: &Entry) -> bool {
    index
        .names
        .versions(viewer, &entry.meta.name)
        .is_some_and(|v| v.values().any(|d| *d == entry.meta.digest))
}

/// Refuses what is not a component binary before handing it to the compiler, with
/// a message saying what it is instead. (This also refuses precompiled `.cwasm`
/// files, which would be native code.)
fn check_header(bytes: &[u8]) -> Result<(), RegistryError> {
    const MAGIC: &[u8] = b"\0asm";
    // The version field after the magic: 1 for core modules; 0x0d with layer 1
    // for components.
    const CORE: [u8; 4] = [1, 0, 0, 0];
    const COMPONENT_LAYER: [u8; 2] = [1, 0];
    if !bytes.starts_with(MAGIC) || bytes.len() < 8 {
        return Err(RegistryError::NotAComponent(
            "the file is not a WebAssembly binary".into(),
        ));
    }
    if bytes[4..8] == CORE {
        return Err(RegistryError::NotAComponent(
            "this is a core WebAssembly module; build the operator for wasm32-wasip2 \
             (or wrap the module with `wasm-tools component new`)"
                .into(),
        ));
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Err(RegistryError::NotAComponent(
            "unknown WebAssembly binary layer".into(),
        ));
    }
    Ok(())
}

/// Checks for the two exports by name first, so a component built for another
/// world gets an error naming what is missing instead of a type-check failure.
fn check_exports(
    component: &wasmtime::component::Component,
    engine: &wasmtime::Engine,
) -> Result<(), RegistryError> {
    let ty = component.component_type();
    let mut missing = Vec::new();
    for name in ["describe", "execute"] {
        match ty.get_export(engine, name).map(|export| export.ty) {
            Some(ComponentItem::ComponentFunc(_)) => {}
            Some(_) => {
                return Err(RegistryError::NotAnOperator(format!(
                    "its export `{name}` is not a function"
                )));
            }
            None => missing.push(format!("`{name}`")),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    Err(RegistryError::NotAnOperator(format!(
        "it does not export {} (its exports: {})",
        missing.join(" or "),
        list_or_none(&exports)
    )))
}

/// Calls `describe` on a helper thread with its own small tokio runtime: `add` is
/// synchronous, and may be called from inside another runtime.
fn describe(
    runtime: &Runtime,
    pre: &OperatorPre<HostState>,
) -> Result<OperatorInfo, RegistryError> {
    let log = Arc::new(LogBuffer::new(DESCRIBE_LOG_BYTES));
    let memory = runtime.config.default_memory_bytes;
    let timeout = runtime.config.describe_timeout;
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("aileron-describe".into())
            .spawn_scoped(scope, || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime to call it: {e}"))?;
                rt.block_on(crate::run::describe(runtime, pre, timeout, memory, &log))
            })
            .map_err(|e| format!("cannot start a thread to call it: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the sandbox panicked while calling it".into()))
    });
    outcome.map_err(RegistryError::Describe)
}

/// Checks what `describe` returned; gives back the parsed version and schema.
fn check_info(info: &OperatorInfo) -> Result<(semver::Version, serde_json::Value), RegistryError> {
    let invalid = |msg: String| Err(RegistryError::InvalidInfo(msg));
    if let Err(why) = check_name(&info.name) {
        return invalid(format!("name `{}` {why}", info.name.escape_debug()));
    }
    let version = match semver::Version::parse(&info.version) {
        Ok(version) => version,
        Err(e) => {
            return invalid(format!(
                "version `{}` is not a semantic version like 1.2.0: {e}",
                info.version.escape_debug()
            ));
        }
    };
    if info.description.len() > MAX_DESCRIPTION {
        return invalid(format!(
            "description is {} bytes, over the limit of {MAX_DESCRIPTION}",
            info.description.len()
        ));
    }
    if info.params_schema.len() > MAX_SCHEMA {
        return invalid(format!(
            "params schema is {} bytes, over the limit of {MAX_SCHEMA}",
            info.params_schema.len()
        ));
    }
    match serde_json::from_str::<serde_json::Value>(&info.params_schema) {
        Ok(schema @ (serde_json::Value::Object(_) | serde_json::Value::Bool(_))) => {
            Ok((version, schema))
        }
        Ok(_) => invalid("params schema must be a JSON object (a JSON Schema)".into()),
        Err(e) => invalid(format!("params schema is not valid JSON: {e}")),
    }
}

/// Operator names are what DAG files write after `operator =`: lower-case ASCII
/// letters, digits, `-` and `_`, starting with a letter.
/// Whether `name` is one of the standard operators' names, which only the
/// embedded components may register under.
pub(crate) fn is_standard_name(name: &str) -> bool {
    crate::builtin::STANDARD_PLUGINS
        .iter()
        .any(|(standard, _)| *standard == name)
}

/// Why `name` cannot name a new operator (`plugins new` checks it before the
/// registry would): not a valid name, or a standard operator's.
pub fn operator_name_problem(name: &str) -> Option<String> {
    if let Err(why) = check_name(name) {
        return Some(format!("an operator name {why}"));
    }
    is_standard_name(name).then(|| format!("`{name}` is reserved for a standard operator"))
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("must be 1 to 64 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err("may only contain lower-case letters, digits, `-` and `_`");
    }
    Ok(())
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, version: &str, schema: &str) -> OperatorInfo {
        OperatorInfo {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            params_schema: schema.into(),
        }
    }

    #[test]
    fn operator_info_is_checked() {
        assert!(check_info(&info("echo", "1.2.0", "{}")).is_ok());
        assert!(check_info(&info("my_op-2", "0.1.0-rc.1", "true")).is_ok());
        let err = |i| check_info(&i).unwrap_err().to_string();
        assert!(err(info("Echo", "1.0.0", "{}")).contains("lower-case"));
        assert!(err(info("", "1.0.0", "{}")).contains("1 to 64"));
        assert!(err(info("a b", "1.0.0", "{}")).contains("may only contain"));
        assert!(err(info("echo", "1.0", "{}")).contains("semantic version"));
        assert!(err(info("echo", "1.0.0", "[1]")).contains("JSON object"));
        assert!(err(info("echo", "1.0.0", "{")).contains("not valid JSON"));
    }

    #[test]
    fn headers_say_what_the_file_is() {
        let err = |b: &[u8]| check_header(b).unwrap_err().to_string();
        assert!(err(b"hello world").contains("not a WebAssembly binary"));
        assert!(err(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
        assert!(err(b"\x7fELF\x02\x01\x01\0").contains("not a WebAssembly binary"));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
