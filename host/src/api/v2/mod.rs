//! Airflow 3's public REST API, `/api/v2`: the paths, parameters, shapes and
//! status codes of Airflow's own v2 document, so `apache-airflow-client` 3 and
//! `airflowctl` work unchanged. Handlers read through the same metastore queries
//! and change through the same scheduler calls as `/api/v1`; what differs is the
//! shape, and errors: a bad request body or parameter is a 422 whose `detail` is
//! a list of `{loc, msg, type}` (FastAPI's validation error), every other error a
//! `{"detail": "..."}` body (with the `title` and `status` of `/api/v1` beside it).
//!
//! What Airflow lacks (operators, workers, tenants, users and members, API
//! tokens, usage, the event stream, callbacks, the platform's audit log) lives
//! here too, under paths of the same style, served by the `/api/v1` handlers
//! with their shapes: `api_routes` lists them apart.

mod backfills;
mod batch;
mod config;
mod connections;
mod dag_parsing;
mod dag_runs;
mod dag_sources;
mod dag_stats;
mod dag_versions;
mod dag_warnings;
mod dags;
mod event_logs;
mod favorites;
mod import_errors;
mod jobs;
mod monitor;
mod operators;
mod plugins;
mod pools;
mod providers;
mod run_actions;
mod task_instances;
mod tasks;
mod ti_state;
mod ti_tries;
mod variables;
mod xcom;

use super::access::{ApiRoutes, SecuritySchemes};
use super::{ApiError, ApiState};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aileron REST API (Airflow 3's v2)",
        description = "Airflow 3's public API as Aileron serves it. Errors are \
            `{\"detail\": ...}`; a request that does not validate is a 422 whose \
            `detail` lists `{loc, msg, type}`."
    ),
    servers((url = "/api/v2")),
    modifiers(&SecuritySchemes),
    tags(
        (name = "DAG"), (name = "DagRun"), (name = "TaskInstance"), (name = "XCom"),
        (name = "ImportError"), (name = "Variable"), (name = "Monitor"), (name = "Version"),
        (name = "Task"), (name = "DagSource"), (name = "DagVersion"), (name = "DagStats"), (name = "DagWarning"), (name = "Provider"), (name = "DagParsing"), (name = "Pool"), (name = "Connection"),
        (name = "EventLog"), (name = "Backfill"), (name = "Plugin"), (name = "Job"), (name = "Config"),
        (name = "Operator", description = "Aileron's operator components"),
        (name = "Worker", description = "The `aileron worker` processes of a multi-node setup"),
        (name = "Event", description = "Server-sent events of state changes"),
        (name = "Tenant", description = "The teams sharing this Aileron (platform admins)"),
        (name = "User", description = "Users, and the members of a tenant with their roles"),
        (name = "Token", description = "API tokens of service accounts")
    )
)]
struct V2Doc;

/// Every route of `/api/v2` with its policy (the same as the `/api/v1`
/// operation it mirrors), and its OpenAPI document.
pub(super) fn api_routes() -> ApiRoutes<ApiState> {
    use super::access::Policy::{Platform, Public, Tenant};
    use aileron_model::Role::{Op, User, Viewer};
    aileron_routes(ApiRoutes::new(
        OpenApiRouter::with_openapi(V2Doc::openapi()),
        "/api/v2",
    ))
    .add(Tenant(Viewer), routes!(dags::get_dags))
    .add(Tenant(Viewer), routes!(dags::get_dag))
    .add(Tenant(User), routes!(dags::patch_dag))
    .add(Tenant(User), routes!(dags::patch_dags))
    // A DAG's whole history goes: Op and up.
    .add(Tenant(Op), routes!(dags::delete_dag))
    .add(Tenant(Viewer), routes!(dags::get_dag_details))
    // A preference of the caller's own: whoever may read the DAG.
    .add(Tenant(Viewer), routes!(favorites::favorite_dag))
    .add(Tenant(Viewer), routes!(favorites::unfavorite_dag))
    .add(Tenant(Viewer), routes!(dag_sources::get_dag_source))
    .add(Tenant(Viewer), routes!(dag_sources::get_dag_tags))
    .add(Tenant(Viewer), routes!(dag_stats::get_dag_stats))
    .add(Tenant(Viewer), routes!(dag_warnings::list_dag_warnings))
    .add(Tenant(Viewer), routes!(providers::get_providers))
    // The platform's own processes: its admins'.
    .add(Platform, routes!(jobs::get_jobs))
    .add(Platform, routes!(config::get_config))
    .add(Platform, routes!(config::get_config_value))
    .add(Tenant(User), routes!(dag_parsing::reparse_dag_file))
    .add(Tenant(Viewer), routes!(dag_versions::get_dag_versions))
    .add(Tenant(Viewer), routes!(dag_versions::get_dag_version))
    .add(Tenant(Viewer), routes!(tasks::get_tasks))
    .add(Tenant(Viewer), routes!(tasks::get_task))
    .add(Tenant(Viewer), routes!(dag_runs::get_dag_runs))
    .add(Tenant(User), routes!(dag_runs::trigger_dag_run))
    .add(Tenant(Viewer), routes!(dag_runs::get_dag_run))
    .add(Tenant(User), routes!(dag_runs::patch_dag_run))
    .add(Tenant(User), routes!(dag_runs::delete_dag_run))
    .add(Tenant(User), routes!(run_actions::clear_dag_run))
    .add(Tenant(Viewer), routes!(batch::get_list_dag_runs_batch))
    .add(Tenant(Viewer), routes!(batch::get_task_instances_batch))
    .add(
        Tenant(Viewer),
        routes!(run_actions::wait_dag_run_until_finished),
    )
    .add(Tenant(Viewer), routes!(task_instances::get_task_instances))
    .add(Tenant(Viewer), routes!(task_instances::get_task_instance))
    .add(Tenant(Viewer), routes!(task_instances::get_log))
    .add(Tenant(Viewer), routes!(ti_tries::get_task_instance_tries))
    .add(
        Tenant(Viewer),
        routes!(ti_tries::get_mapped_task_instance_tries),
    )
    .add(
        Tenant(Viewer),
        routes!(ti_tries::get_task_instance_try_details),
    )
    .add(
        Tenant(Viewer),
        routes!(ti_tries::get_mapped_task_instance_try_details),
    )
    .add(Tenant(Viewer), routes!(ti_tries::get_mapped_task_instance))
    .add(Tenant(Viewer), routes!(ti_tries::get_mapped_task_instances))
    .add(Tenant(User), routes!(ti_state::patch_task_instance))
    .add(Tenant(User), routes!(ti_state::patch_task_instance_dry_run))
    .add(
        Tenant(User),
        routes!(ti_state::patch_task_instance_by_map_index),
    )
    .add(
        Tenant(User),
        routes!(ti_state::patch_task_instance_dry_run_by_map_index),
    )
    .add(
        Tenant(Viewer),
        routes!(ti_state::get_task_instance_dependencies),
    )
    .add(
        Tenant(Viewer),
        routes!(ti_state::get_task_instance_dependencies_by_map_index),
    )
    .add(
        Tenant(User),
        routes!(task_instances::post_clear_task_instances),
    )
    .add(Tenant(Viewer), routes!(xcom::get_xcom_entries))
    .add(Tenant(Viewer), routes!(xcom::get_xcom_entry))
    .add(Tenant(User), routes!(xcom::create_xcom_entry))
    .add(Tenant(User), routes!(xcom::update_xcom_entry))
    .add(Tenant(User), routes!(xcom::delete_xcom_entry))
    .add(Tenant(Viewer), routes!(import_errors::get_import_errors))
    .add(Tenant(Viewer), routes!(import_errors::get_import_error))
    .add(Tenant(Viewer), routes!(event_logs::get_event_logs))
    .add(Tenant(Viewer), routes!(event_logs::get_event_log))
    // Variables hold credentials: Op and up, as in Airflow.
    .add(Tenant(Op), routes!(variables::get_variables))
    .add(Tenant(Op), routes!(variables::post_variable))
    .add(Tenant(Op), routes!(variables::get_variable))
    .add(Tenant(Op), routes!(variables::patch_variable))
    .add(Tenant(Op), routes!(variables::delete_variable))
    // Connections hold credentials: Op and up, as in `/api/v1`.
    .add(Tenant(Op), routes!(connections::get_connections))
    .add(Tenant(Op), routes!(connections::get_connection))
    .add(Tenant(Op), routes!(connections::post_connection))
    .add(Tenant(Op), routes!(connections::patch_connection))
    .add(Tenant(Op), routes!(connections::delete_connection))
    .add(Tenant(Op), routes!(connections::test_connection))
    .add(Tenant(Viewer), routes!(backfills::list_backfills))
    .add(Tenant(Viewer), routes!(backfills::get_backfill))
    .add(Tenant(User), routes!(backfills::create_backfill))
    .add(Tenant(Viewer), routes!(backfills::create_backfill_dry_run))
    .add(Tenant(User), routes!(backfills::pause_backfill))
    .add(Tenant(User), routes!(backfills::unpause_backfill))
    .add(Tenant(User), routes!(backfills::cancel_backfill))
    .add(Tenant(Viewer), routes!(plugins::get_plugins))
    .add(Tenant(Viewer), routes!(plugins::import_errors))
    .add(Tenant(Viewer), routes!(pools::get_pools))
    .add(Tenant(Op), routes!(pools::post_pool))
    .add(Tenant(Viewer), routes!(pools::get_pool))
    .add(Tenant(Op), routes!(pools::patch_pool))
    .add(Tenant(Op), routes!(pools::delete_pool))
    .add(Public, routes!(monitor::get_health))
    // Public in Airflow 3: its clients send no credential for it.
    .add(Public, routes!(monitor::get_version))
}

/// Aileron's own resources, which Airflow's document does not have: those
/// `/api/v1` has too, and operators, which v1 calls plugins.
fn aileron_routes(routes: ApiRoutes<ApiState>) -> ApiRoutes<ApiState> {
    use super::access::Policy::{Platform, Tenant};
    use aileron_model::Role::{Op, Viewer};
    super::aileron_routes(routes)
        .add(Tenant(Viewer), routes!(operators::get_operators))
        .add(Tenant(Op), routes!(operators::post_operator))
        .add(Tenant(Op), routes!(operators::delete_operator))
        .add(Platform, routes!(operators::post_platform_operator))
        .add(Platform, routes!(operators::delete_platform_operator))
}

/// A JSON request body; anything wrong with it (syntax, shape, an unknown field)
/// is a 422, as FastAPI answers, and a wrong content type a 415.
pub struct V2Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for V2Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = match rejection.status() {
                    StatusCode::BAD_REQUEST => StatusCode::UNPROCESSABLE_ENTITY,
                    other => other,
                };
                Err(ApiError::new(status, rejection.body_text()))
            }
        }
    }
}

/// The query string of a v2 operation; one that does not parse is a 422.
pub struct V2Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for V2Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        super::query::parse(parts.uri.query().unwrap_or_default())
            .map(V2Query)
            .map_err(|e| ApiError::unprocessable(format!("invalid query string: {e}")))
    }
}

/// Path parameters of a v2 operation; one that does not parse (a number that
/// is not one) is a 422 located at `path`, as FastAPI answers.
pub struct V2Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for V2Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(V2Path(value)),
            Err(rejection) => Err(ApiError::unprocessable(format!(
                "invalid path: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Largest error body read back to reshape.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Reshapes a 422 problem into FastAPI's validation error, which Airflow's
/// clients parse: `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`.
pub async fn validation_errors(response: Response) -> Response {
    if response.status() != StatusCode::UNPROCESSABLE_ENTITY {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let msg = problem["detail"]
        .as_str()
        .unwrap_or("the request is not valid")
        .to_owned();
    let loc = if msg.starts_with("invalid query string") {
        "query"
    } else if msg.starts_with("invalid path") {
        "path"
    } else {
        "body"
    };
    let mut out = (
        parts.status,
        axum::Json(json!({
            "detail": [{ "loc": [loc], "msg": msg, "type": "value_error" }]
        })),
    )
        .into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
