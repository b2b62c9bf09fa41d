//! `/plugins` in v2. Airflow's plugins are Python code loaded into its
//! processes; Aileron's are operator components. Each operator the tenant may
//! use is listed as a plugin with Airflow's fields (all empty but `name` and
//! `source`) and Aileron's own beside them. Components never fail to import
//! into the host, so `/plugins/importErrors` is always empty.

use super::super::plugins::{Plugin, list_plugins};
use super::super::{ApiResult, ApiState, Caller, Page, paginate};
use super::V2Query;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Airflow's `PluginResponse`, with the operator's details.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginResponse {
    /// `name@version`: one entry per published version.
    pub name: String,
    pub macros: Vec<String>,
    pub flask_blueprints: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub fastapi_apps: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub fastapi_root_middlewares: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub external_views: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub react_apps: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub appbuilder_views: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub appbuilder_menu_items: Vec<Value>,
    pub global_operator_extra_links: Vec<String>,
    pub operator_extra_links: Vec<String>,
    /// Where it comes from: `aileron:builtin`, `aileron:platform` or
    /// `aileron:tenant`.
    pub source: String,
    pub listeners: Vec<String>,
    pub timetables: Vec<String>,
    /// The operator component, as `/api/v1/plugins` shows it.
    pub operator: Plugin,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginCollectionResponse {
    pub plugins: Vec<PluginResponse>,
    pub total_entries: usize,
}

fn response(p: Plugin) -> PluginResponse {
    let source = if p.builtin {
        "aileron:builtin"
    } else if p.tenant.is_some() {
        "aileron:tenant"
    } else {
        "aileron:platform"
    };
    PluginResponse {
        name: format!("{}@{}", p.name, p.version),
        macros: Vec::new(),
        flask_blueprints: Vec::new(),
        fastapi_apps: Vec::new(),
        fastapi_root_middlewares: Vec::new(),
        external_views: Vec::new(),
        react_apps: Vec::new(),
        appbuilder_views: Vec::new(),
        appbuilder_menu_items: Vec::new(),
        global_operator_extra_links: Vec::new(),
        operator_extra_links: Vec::new(),
        source: source.to_owned(),
        listeners: Vec::new(),
        timetables: Vec::new(),
        operator: p,
    }
}

/// List the operator components the tenant may use, as plugins.
#[utoipa::path(
    get, path = "/plugins", tag = "Plugin", operation_id = "get_plugins",
    params(Page),
    responses(
        (status = 200, description = "One page of plugins.", body = PluginCollectionResponse),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_plugins(
    caller: Caller,
    state: State<ApiState>,
    V2Query(page): V2Query<Page>,
) -> ApiResult<Json<PluginCollectionResponse>> {
    let Json(all) = list_plugins(caller, state).await;
    let plugins: Vec<PluginResponse> = all.plugins.into_iter().map(response).collect();
    let (plugins, total_entries) = paginate(plugins, page.limit, page.offset);
    Ok(Json(PluginCollectionResponse {
        plugins,
        total_entries,
    }))
}

/// Airflow's `PluginImportErrorCollectionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginImportErrorCollectionResponse {
    #[schema(value_type = Vec<Object>)]
    pub import_errors: Vec<Value>,
    pub total_entries: usize,
}

/// Plugins that failed to load: none ever, since a component that does not
/// load is refused when it is published.
#[utoipa::path(
    get, path = "/plugins/importErrors", tag = "Plugin", operation_id = "import_errors",
    responses(
        (status = 200, description = "No import errors.", body = PluginImportErrorCollectionResponse),
    )
)]
pub async fn import_errors(_caller: Caller) -> Json<PluginImportErrorCollectionResponse> {
    Json(PluginImportErrorCollectionResponse {
        import_errors: Vec::new(),
        total_entries: 0,
    })
}
