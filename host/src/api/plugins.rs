//! Plugins: the operator components the registry holds, and publishing and
//! removing them: a tenant's `Op` for the tenant's own scope, a platform admin
//! for the global one.

use super::caller::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge};
use super::paths::PluginPath;
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState};
use crate::metastore::Metastore;
use aileron_model::TenantId;
use aileron_sandbox::{MAX_COMPONENT_BYTES, OperatorMeta, OperatorScope, RegistryError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// An operator component: what its `describe()` said, and what it is on disk.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plugin {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `sha256:` digest of the component.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Whether it is one of the standard operators built into Aileron.
    pub builtin: bool,
    /// The WIT world it targets, e.g. `aileron:operator/operator@0.1.0`.
    pub world: String,
    /// JSON Schema of the params its tasks take.
    pub params_schema: Value,
    /// The tenant that published it, alone able to use it; `null` for an
    /// operator every tenant may use.
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginCollection {
    pub plugins: Vec<Plugin>,
    pub total_entries: usize,
}

/// The API form of a plugin; `aileron plugins list --json` prints the same.
pub fn plugin(p: &OperatorMeta) -> Plugin {
    Plugin {
        name: p.name.clone(),
        version: p.version.clone(),
        description: p.description.clone(),
        digest: p.digest.clone(),
        size: p.size,
        builtin: p.builtin,
        world: p.world.clone(),
        params_schema: p.params_schema.clone(),
        tenant: None,
    }
}

/// The API form of an operator as published in a scope.
pub fn scoped_plugin(scope: &OperatorScope, p: &OperatorMeta) -> Plugin {
    Plugin {
        tenant: scope.tenant().map(ToString::to_string),
        ..plugin(p)
    }
}

/// List the operator plugins the tenant may use: the global ones and its own
/// (another tenant's never appear).
#[utoipa::path(
    get, path = "/plugins", tag = "Plugin", operation_id = "get_plugins",
    responses((status = 200, description = "Every plugin.", body = PluginCollection))
)]
pub async fn list_plugins(caller: Caller, State(s): State<ApiState>) -> Json<PluginCollection> {
    let scope = OperatorScope::Tenant(caller.tenant_id().clone());
    let plugins: Vec<Plugin> = s
        .registry
        .list_scoped(Some(&scope))
        .iter()
        .map(|(scope, meta)| scoped_plugin(scope, meta))
        .collect();
    Json(PluginCollection {
        total_entries: plugins.len(),
        plugins,
    })
}

/// How a component is published.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PublishOptions {
    /// Replace the build published under the same name and version, for
    /// toolchains whose builds differ byte for byte (Python, JavaScript).
    /// Refused with 409 while an unfinished DagRun still runs the old build.
    #[serde(default)]
    replace: bool,
}

/// Publish an operator component for the caller's tenant alone (its `Op` and
/// up). The body is the component's bytes (`application/wasm`), checked and
/// compiled before it is stored; the tenant's DAGs are parsed again at once.
#[utoipa::path(
    post, path = "/plugins", tag = "Plugin", operation_id = "post_plugin",
    params(PublishOptions),
    request_body(content = Vec<u8>, content_type = "application/wasm",
        description = "A WebAssembly component implementing the operator world."),
    responses((status = 201, description = "Published.", body = Plugin), BadRequest, Conflict, PayloadTooLarge)
)]
pub async fn publish_plugin(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(options): ApiQuery<PublishOptions>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Plugin>)> {
    let scope = OperatorScope::Tenant(caller.tenant_id().clone());
    publish(&s, scope, options, body).await
}

/// Remove one version of an operator the caller's tenant published (its `Op`
/// and up). Refused with 409 while an active DAG of the tenant, or an
/// unfinished run made with an earlier version of one, runs it.
#[utoipa::path(
    delete, path = "/plugins/{plugin_name}/{version}", tag = "Plugin", operation_id = "delete_plugin",
    params(PluginPath),
    responses((status = 204, description = "Removed"), NotFound, Conflict)
)]
pub async fn remove_plugin(
    caller: Caller,
    State(s): State<ApiState>,
    Path(path): Path<PluginPath>,
) -> ApiResult<StatusCode> {
    remove(&s, OperatorScope::Tenant(caller.tenant_id().clone()), path).await
}

/// Publish an operator component for every tenant (platform admins).
#[utoipa::path(
    post, path = "/platform/plugins", tag = "Plugin", operation_id = "post_platform_plugin",
    params(PublishOptions),
    request_body(content = Vec<u8>, content_type = "application/wasm",
        description = "A WebAssembly component implementing the operator world."),
    responses((status = 201, description = "Published.", body = Plugin), BadRequest, Conflict, PayloadTooLarge)
)]
pub async fn publish_platform_plugin(
    _caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(options): ApiQuery<PublishOptions>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Plugin>)> {
    publish(&s, OperatorScope::Global, options, body).await
}

/// Remove one version of a global operator (platform admins). Refused with 409
/// while an active DAG of any tenant runs it; the standard operators stay.
#[utoipa::path(
    delete, path = "/platform/plugins/{plugin_name}/{version}", tag = "Plugin", operation_id = "delete_platform_plugin",
    params(PluginPath),
    responses((status = 204, description = "Removed"), NotFound, Conflict)
)]
pub async fn remove_platform_plugin(
    _caller: Caller,
    State(s): State<ApiState>,
    Path(path): Path<PluginPath>,
) -> ApiResult<StatusCode> {
    remove(&s, OperatorScope::Global, path).await
}

async fn publish(
    s: &ApiState,
    scope: OperatorScope,
    options: PublishOptions,
    body: Body,
) -> ApiResult<(StatusCode, Json<Plugin>)> {
    // The API's 1 MiB cap is for JSON; a component may be far larger (an
    // interpreter inside), up to what the registry takes at all.
    let bytes = axum::body::to_bytes(body, MAX_COMPONENT_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a component may be at most {MAX_COMPONENT_BYTES} bytes"),
            )
        })?;
    let registry = s.registry.clone();
    let dir = s.plugins_dir.clone();
    if options.replace {
        let (registry, within, bytes) = (registry.clone(), scope.clone(), bytes.clone());
        let old = super::off_thread("checking the operator failed", move || {
            registry.would_replace(&within, &bytes)
        })
        .await?
        .map_err(registry_error)?;
        if let Some(old) = old {
            refuse_while_runs_need(s, &scope, &old).await?;
        }
    }
    // Compiling takes from milliseconds to seconds of CPU: off the async workers.
    let published = super::off_thread("publishing the operator failed", move || {
        let meta = if options.replace {
            registry
                .install_replacing(&dir, &scope, &bytes)
                .map(|(m, _)| m)
        } else {
            registry.install_to(&dir, &scope, &bytes)
        };
        meta.map(|meta| scoped_plugin(&scope, &meta))
    })
    .await?
    .map_err(registry_error)?;
    Ok((StatusCode::CREATED, Json(published)))
}

/// Refuses to replace `old` while an unfinished run (of the scope's tenant, or
/// of any tenant for a global operator) was created with a DAG version that
/// runs it: its remaining tasks would find their build gone.
async fn refuse_while_runs_need(
    s: &ApiState,
    scope: &OperatorScope,
    old: &OperatorMeta,
) -> ApiResult<()> {
    let (tenant, digest) = (scope.tenant().cloned(), old.digest.clone());
    let runs = s
        .blocking(move |m| Ok(runs_running(m, tenant.as_ref(), &digest)?))
        .await?;
    if runs.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "{}@{} ({}) is still needed by unfinished runs: {}; let them finish or mark them \
         first",
        old.name,
        old.version,
        old.digest,
        runs.join(", ")
    )))
}

async fn remove(s: &ApiState, scope: OperatorScope, path: PluginPath) -> ApiResult<StatusCode> {
    let PluginPath {
        plugin_name,
        version,
    } = path;
    let meta = s
        .registry
        .resolve_exact(&scope, &plugin_name, &version)
        .map_err(|_| {
            ApiError::not_found(format!(
                "no operator {plugin_name}@{version} is published {}",
                match scope.tenant() {
                    Some(t) => format!("by tenant {t}"),
                    None => "globally".to_owned(),
                }
            ))
        })?;
    if meta.builtin {
        return Err(ApiError::conflict(format!(
            "{plugin_name}@{version} is a standard operator, which cannot be removed"
        )));
    }
    let digest = meta.digest.clone();
    let tenant = scope.tenant().cloned();
    let users = s
        .blocking(move |m| Ok(dags_running(m, tenant.as_ref(), &digest)?))
        .await?;
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "{plugin_name}@{version} is still run by {}; change or delete {} first",
            users.join(", "),
            if users.len() == 1 {
                "that DAG"
            } else {
                "those DAGs"
            }
        )));
    }
    // A run made before its DAG moved to another build still needs this one.
    refuse_while_runs_need(s, &scope, &meta).await?;
    let registry = s.registry.clone();
    let dir = s.plugins_dir.clone();
    super::off_thread("removing the operator failed", move || {
        registry.remove(&dir, &scope, &plugin_name, &version)
    })
    .await?
    .map_err(registry_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The active DAGs (of `tenant`, or of every tenant) whose current version runs
/// `digest`, as `tenant/dag_id`: what removing it would leave unable to run.
pub fn dags_running(
    m: &Metastore,
    tenant: Option<&TenantId>,
    digest: &str,
) -> crate::metastore::Result<Vec<String>> {
    let dags = match tenant {
        Some(t) => m.tenant_dags(t.as_str())?,
        None => m.dags()?,
    };
    let mut running = Vec::new();
    for dag in dags.into_iter().filter(|d| d.is_active) {
        let spec = m.dag_version(&dag.tenant, &dag.dag_id, &dag.version)?;
        if spec.is_some_and(|spec| spec.runs_component(digest)) {
            running.push(match tenant {
                Some(_) => dag.dag_id,
                None => format!("{}/{}", dag.tenant, dag.dag_id),
            });
        }
    }
    Ok(running)
}

/// The unfinished runs (of `tenant`, or of every tenant) created with a DAG
/// version that runs `digest`, as `dag_id/run_id` (`tenant/dag_id/run_id`
/// across tenants).
pub fn runs_running(
    m: &Metastore,
    tenant: Option<&TenantId>,
    digest: &str,
) -> crate::metastore::Result<Vec<String>> {
    let mut runs = Vec::new();
    // Many runs share a DAG version: each is read and decoded once.
    let mut uses: std::collections::HashMap<(String, String, String), bool> = Default::default();
    for run in m.unfinished_runs()? {
        if tenant.is_some_and(|t| t.as_str() != run.tenant) {
            continue;
        }
        let version = (
            run.tenant.clone(),
            run.dag_id.clone(),
            run.dag_version.clone(),
        );
        let runs_it = match uses.get(&version) {
            Some(&known) => known,
            None => {
                let spec = m.dag_version(&run.tenant, &run.dag_id, &run.dag_version)?;
                let known = spec.is_some_and(|spec| spec.runs_component(digest));
                uses.insert(version, known);
                known
            }
        };
        if runs_it {
            runs.push(match tenant {
                Some(_) => format!("{}/{}", run.dag_id, run.run_id),
                None => format!("{}/{}/{}", run.tenant, run.dag_id, run.run_id),
            });
        }
    }
    Ok(runs)
}

/// The status and message of a registry refusal: what is wrong with the
/// component is the caller's to fix (400, 409, 413); a file that cannot be
/// written is the server's.
fn registry_error(e: RegistryError) -> ApiError {
    let status = match &e {
        RegistryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        RegistryError::VersionConflict { .. } | RegistryError::ReservedName { .. } => {
            StatusCode::CONFLICT
        }
        RegistryError::UnknownOperator { .. } | RegistryError::UnknownVersion { .. } => {
            StatusCode::NOT_FOUND
        }
        RegistryError::Io { .. }
        | RegistryError::Watch { .. }
        | RegistryError::CorruptStoreFile { .. } => {
            tracing::error!("operator store: {}", aileron_sandbox::error_chain(&e));
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the operator store could not be written; see the server log",
            );
        }
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, aileron_sandbox::error_chain(&e))
}
