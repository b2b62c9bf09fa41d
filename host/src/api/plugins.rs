//! Plugins: the operator components the registry holds.

use super::ApiState;
use super::caller::Caller;
use aileron_sandbox::{OperatorMeta, OperatorScope};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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
