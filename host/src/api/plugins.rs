//! Plugins: the operator components the registry holds.

use super::ApiState;
use aileron_sandbox::OperatorMeta;
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
    }
}

/// List the operator plugins.
#[utoipa::path(
    get, path = "/plugins", tag = "Plugin", operation_id = "get_plugins",
    responses((status = 200, description = "Every plugin.", body = PluginCollection))
)]
pub async fn list_plugins(State(s): State<ApiState>) -> Json<PluginCollection> {
    let plugins: Vec<Plugin> = s.registry.list().iter().map(plugin).collect();
    Json(PluginCollection {
        total_entries: plugins.len(),
        plugins,
    })
}
