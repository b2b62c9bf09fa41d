//! The REST API under `/api/v1`, with Airflow's resource and field names, built as a
//! plain [`router`] so tests can drive it without a socket. Reads go straight to the
//! metastore (redb serves them beside the writer); changes to runs,
//! TaskInstances and backfills go through the scheduler, the single writer of
//! those. Variables,
//! connections and pools are plain records the scheduler only reads, so the API
//! writes them itself (redb serializes the write transactions).
//!
//! Each resource has its own module with its response types (serde + `ToSchema`)
//! and handlers (`#[utoipa::path]`). The router registers every handler through
//! `utoipa_axum::routes!`, which takes the route from the same attribute that
//! documents it, so `/api/v1/openapi.json` cannot drift from what is served.
//!
//! Outside `/api/v1`: `/metrics` (Prometheus text, see [`prometheus`]), the web UI
//! (`crate::web`, at `/` and `/assets/…`) and a plain `/health` for load balancers.

pub mod access;
mod backfills;
mod callbacks;
mod caller;
mod connections;
mod dag_runs;
mod dags;
mod error;
mod event_logs;
mod events;
mod import_errors;
mod maintenance;
mod monitor;
mod paths;
mod plugins;
mod pools;
pub mod prometheus;
mod query;
mod session;
mod states;
mod task_instances;
mod tasks;
mod tenants;
mod tokens;
mod usage;
mod users;
mod v2;
mod variables;
mod workers;
mod xcom;

use access::ApiRoutes;
pub use access::{Policy, RouteEntry, RouteTable};
pub use caller::Caller;
pub use error::{ApiError, Problem};
pub use plugins::{dags_running, plugin as plugin_json, runs_running, scoped_plugin};

use crate::metastore::{DagRecord, DagRun, Metastore, TaskInstance};
use crate::scheduler::{SchedulerError, SchedulerHandle};
use access::SecuritySchemes;
use aileron_model::dag::DagSpec;
use aileron_sandbox::Registry;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{Method, header};
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub metastore: Metastore,
    pub scheduler: SchedulerHandle,
    pub registry: Registry,
    /// The remote executor's workers and leases (`aileron scheduler`); `None`
    /// when tries run in this process (`aileron standalone`).
    pub remote: Option<Arc<crate::executors::remote::Remote>>,
    /// The scheduler's clock: "now" for requests that count back from it.
    pub clock: Arc<dyn aileron_model::clock::Clock>,
    /// Checks every request's credentials (`access.rs`).
    pub auth: crate::auth::Auth,
    /// Asks for the DAGs folder to be parsed again, after a tenant is created or
    /// deleted.
    pub rescan: Arc<tokio::sync::Notify>,
    /// `HOME/plugins`, where operators added through the API are stored.
    pub plugins_dir: std::path::PathBuf,
    /// What this process runs with, for `/config`.
    pub settings: Arc<crate::settings::Settings>,
}

impl ApiState {
    /// Runs metastore work on tokio's blocking pool: a history read may wait on
    /// the disk and a write waits for fsync, and neither may hold up the async
    /// workers serving everyone else. (A point read of one key stays inline: it is
    /// served from redb's cache in microseconds, less than the hop to the pool.)
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Metastore) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let metastore = self.metastore.clone();
        off_thread("the metastore could not be read or written", move || {
            f(&metastore)
        })
        .await?
    }
}

/// Runs blocking work (a metastore transaction, compiling or deleting an
/// operator) on tokio's blocking pool; a panic in it answers 500 with `failed`
/// as the detail, and is logged.
async fn off_thread<T: Send + 'static>(
    failed: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("{failed}: the work ended abnormally: {e}");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{failed}; see the server log"),
        )
    })
}

/// Request bodies above this are refused with 413: every body the API takes is a
/// small JSON document, and a cap keeps a client from making the host buffer
/// arbitrary amounts of memory.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Airflow's wildcard for a DAG or DagRun id in a path: "any".
const ANY: &str = "~";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aileron REST API",
        description = "Aileron's stable REST API, with the resource and field names of \
            Airflow's. Errors are JSON problems `{\"title\", \"status\", \"detail\"}`. \
            Collections are `{\"<plural>\": [...], \"total_entries\": N}` and take \
            `limit` (default 100) and `offset`."
    ),
    servers((url = "/api/v1")),
    modifiers(&SecuritySchemes),
    // The event payloads are not a response body of any operation: listed so the
    // document describes what `/events` sends.
    components(schemas(
        Problem, events::DagRunEvent, events::TaskInstanceEvent, events::ResyncEvent
    )),
    tags(
        (name = "DAG"), (name = "DagRun"), (name = "TaskInstance"), (name = "XCom"),
        (name = "ImportError"), (name = "Plugin"), (name = "Variable"),
        (name = "Connection"), (name = "Pool"),
        (name = "Worker", description = "The `aileron worker` processes of a multi-node setup"),
        (name = "Backfill", description = "Runs of a DAG over a range of past logical dates"),
        (name = "Monitoring"),
        (name = "Event", description = "Server-sent events of state changes"),
        (name = "Tenant", description = "The teams sharing this Aileron (platform admins)"),
        (name = "User", description = "Users, and the members of a tenant with their roles"),
        (name = "Token", description = "API tokens of service accounts"),
        (name = "EventLog", description = "The audit log of changes")
    )
)]
struct ApiDoc;

/// Every documented route of `/api/v1` with its policy, and its OpenAPI
/// document. One handler per `add`, so each operation states its own policy.
fn api_routes() -> ApiRoutes<ApiState> {
    use access::Policy::{Platform, Public, SignedIn, Tenant};
    use aileron_model::Role::{Op, User, Viewer};
    aileron_routes(ApiRoutes::new(
        OpenApiRouter::with_openapi(ApiDoc::openapi()),
        "/api/v1",
    ))
    .add(Tenant(Viewer), routes!(dags::list_dags))
    .add(Tenant(Viewer), routes!(dags::get_dag))
    .add(Tenant(Viewer), routes!(dags::get_dag_details))
    .add(Tenant(Viewer), routes!(tasks::get_tasks))
    .add(Tenant(Viewer), routes!(tasks::get_task))
    .add(Tenant(User), routes!(dags::patch_dag))
    .add(Tenant(Viewer), routes!(dag_runs::list_runs))
    .add(Tenant(User), routes!(dag_runs::trigger_run))
    .add(Tenant(Viewer), routes!(dag_runs::get_run))
    .add(Tenant(User), routes!(dag_runs::patch_run))
    .add(Tenant(User), routes!(dag_runs::delete_run))
    .add(Tenant(User), routes!(dag_runs::clear_run))
    .add(Tenant(Viewer), routes!(task_instances::list_tis))
    .add(Tenant(Viewer), routes!(task_instances::get_ti))
    .add(Tenant(User), routes!(task_instances::patch_ti))
    .add(Tenant(Viewer), routes!(task_instances::list_tries))
    .add(Tenant(Viewer), routes!(task_instances::get_try))
    .add(Tenant(Viewer), routes!(task_instances::get_log))
    .add(Tenant(User), routes!(task_instances::clear_tis))
    .add(Tenant(Viewer), routes!(xcom::list_xcom))
    .add(Tenant(Viewer), routes!(xcom::get_xcom))
    .add(Tenant(Viewer), routes!(import_errors::list_import_errors))
    .add(Tenant(Viewer), routes!(plugins::list_plugins))
    .add(Tenant(Op), routes!(plugins::publish_plugin))
    .add(Tenant(Op), routes!(plugins::remove_plugin))
    .add(Platform, routes!(plugins::publish_platform_plugin))
    .add(Platform, routes!(plugins::remove_platform_plugin))
    // Variables and connections hold credentials: Op and up, as in Airflow.
    .add(Tenant(Op), routes!(variables::list_variables))
    .add(Tenant(Op), routes!(variables::post_variable))
    .add(Tenant(Op), routes!(variables::get_variable))
    .add(Tenant(Op), routes!(variables::patch_variable))
    .add(Tenant(Op), routes!(variables::delete_variable))
    .add(Tenant(Op), routes!(connections::list_connections))
    .add(Tenant(Op), routes!(connections::post_connection))
    .add(Tenant(Op), routes!(connections::get_connection))
    .add(Tenant(Op), routes!(connections::patch_connection))
    .add(Tenant(Op), routes!(connections::delete_connection))
    // A pool's name and size are shown with every TaskInstance: readable by all.
    .add(Tenant(Viewer), routes!(pools::list_pools))
    .add(Tenant(Op), routes!(pools::post_pool))
    .add(Tenant(Viewer), routes!(pools::get_pool))
    .add(Tenant(Op), routes!(pools::patch_pool))
    .add(Tenant(Op), routes!(pools::delete_pool))
    .add(Tenant(Viewer), routes!(backfills::list_backfills))
    .add(Tenant(User), routes!(backfills::create_backfill))
    .add(Tenant(Viewer), routes!(backfills::get_backfill))
    .add(Tenant(Viewer), routes!(backfills::dry_run_backfill))
    .add(Tenant(User), routes!(backfills::pause_backfill))
    .add(Tenant(User), routes!(backfills::unpause_backfill))
    .add(Tenant(User), routes!(backfills::cancel_backfill))
    // Airflow's health check needs no sign-in (load balancers, probes).
    .add(Public, routes!(monitor::health))
    .add(SignedIn, routes!(monitor::version))
    .add(Tenant(Viewer), routes!(event_logs::list_event_logs))
    .add(Tenant(Viewer), routes!(event_logs::get_event_log))
}

/// Aileron's own resources, which Airflow's API does not have, with their
/// policies: registered alike under `/api/v1` and `/api/v2`.
fn aileron_routes(routes: ApiRoutes<ApiState>) -> ApiRoutes<ApiState> {
    use access::Policy::{Platform, SignedIn, Tenant};
    use aileron_model::Role::{Admin, Viewer};
    routes
        .add(Tenant(Admin), routes!(maintenance::db_clean))
        .add(Tenant(Viewer), routes!(callbacks::list_callbacks))
        .add(Platform, routes!(workers::list_workers))
        .add(Tenant(Viewer), routes!(events::events))
        .add(SignedIn, routes!(session::me))
        .add(Platform, routes!(tenants::list_tenants))
        .add(Platform, routes!(tenants::create_tenant))
        .add(Platform, routes!(tenants::get_tenant))
        .add(Platform, routes!(tenants::patch_tenant))
        .add(Platform, routes!(tenants::delete_tenant))
        // A tenant's own members see its usage; the handler refuses other tenants.
        .add(Tenant(Viewer), routes!(usage::get_usage))
        .add(Platform, routes!(users::list_users))
        .add(Platform, routes!(users::create_user))
        .add(Platform, routes!(users::get_user))
        .add(Platform, routes!(users::patch_user))
        .add(Platform, routes!(users::delete_user))
        .add(Tenant(Admin), routes!(users::list_members))
        .add(Tenant(Admin), routes!(users::put_member))
        .add(Tenant(Admin), routes!(users::delete_member))
        .add(Tenant(Admin), routes!(tokens::list_tokens))
        .add(Tenant(Admin), routes!(tokens::create_token))
        .add(Tenant(Admin), routes!(tokens::revoke_token))
        .add(Platform, routes!(tokens::list_platform_tokens))
        .add(Platform, routes!(tokens::create_platform_token))
        .add(Platform, routes!(tokens::revoke_platform_token))
        .add(Platform, routes!(event_logs::list_platform_event_logs))
}

/// Everything the server answers but the execution API: `/api/v1` (with its
/// OpenAPI document at `/api/v1/openapi.json`), `/auth/*`, `/metrics`, the web
/// UI and `/health`, each route with its policy; and the table of them.
pub fn surface(state: ApiState) -> (Router, RouteTable) {
    use access::Policy::{Platform, Public, SignedIn};
    let metrics = prometheus::install_recorder();
    let (api, mut table) = api_routes().split();
    let (api, doc) = api.split_for_parts();
    // Rendered once: the document does not change while the process runs.
    let doc = Bytes::from(serde_json::to_vec(&doc).expect("the OpenAPI document serializes"));
    let openapi = access::plain_route(
        &mut table,
        "/api/v1",
        "/openapi.json",
        &[Method::GET],
        SignedIn,
        "get_openapi",
        get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
        }),
    );
    let api = api
        .route("/openapi.json", openapi)
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(error::problem_json))
        .with_state(state.clone());
    let metrics_route = access::plain_route(
        &mut table,
        "",
        "/metrics",
        &[Method::GET],
        Platform,
        "get_metrics",
        get(prometheus::scrape).with_state(prometheus::MetricsState {
            metastore: state.metastore.clone(),
            scheduler: state.scheduler.clone(),
            registry: state.registry.clone(),
            clock: state.clock.clone(),
            handle: metrics,
            remote: state.remote.clone(),
        }),
    );
    let v2 = v2_router(state.clone(), &mut table);
    let (auth_routes, auth_table) = session::routes(state.clone());
    table.extend(auth_table);
    let (web, web_table) = crate::web::router();
    table.extend(web_table);
    let health = access::plain_route(
        &mut table,
        "",
        "/health",
        &[Method::GET],
        Public,
        "health",
        get(|| async { "ok" }),
    );
    let access = access::Access {
        auth: state.auth.clone(),
        metastore: state.metastore.clone(),
    };
    let router = Router::new()
        .nest("/api/v1", api)
        .nest("/api/v2", v2)
        .route("/metrics", metrics_route)
        .merge(auth_routes)
        .merge(web)
        .route("/health", health)
        .layer(axum::Extension(access));
    (router, table)
}

/// `/api/v2` with its OpenAPI document at `/api/v2/openapi.json`; its routes
/// join `table`.
fn v2_router(state: ApiState, table: &mut RouteTable) -> Router {
    use access::Policy::SignedIn;
    let (api, v2_table) = v2::api_routes().split();
    table.extend(v2_table);
    let (api, doc) = api.split_for_parts();
    let doc = Bytes::from(serde_json::to_vec(&doc).expect("the OpenAPI document serializes"));
    let openapi = access::plain_route(
        table,
        "/api/v2",
        "/openapi.json",
        &[Method::GET],
        SignedIn,
        "get_openapi_v2",
        get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
        }),
    );
    api.route("/openapi.json", openapi)
        .fallback(|| async { ApiError::not_found("Not Found") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // The inner layer sees a response first: rejections become problems,
        // then 422s take FastAPI's shape.
        .layer(axum::middleware::map_response(error::problem_json))
        .layer(axum::middleware::map_response(v2::validation_errors))
        .with_state(state)
}

/// [`surface`]'s router.
pub fn router(state: ApiState) -> Router {
    surface(state).0
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body whose rejections (syntax, shape, content type, size) are
/// [`ApiError`] problems with axum's own explanation as the detail.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// Largest page a client may ask for. Airflow caps pages too; this cap is high
/// because the web UI asks for whole histories at once.
const MAX_PAGE: usize = 10_000;
const DEFAULT_PAGE: usize = 100;

/// Airflow's paging parameters, for collections that take no other filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
}

/// The page size a `limit` asks for, capped.
fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
}

/// One page of `items` and the total before paging, as Airflow's `limit`/`offset`.
fn paginate<T>(items: Vec<T>, limit: Option<usize>, offset: Option<usize>) -> (Vec<T>, usize) {
    let total = items.len();
    let limit = page_size(limit);
    let page = items
        .into_iter()
        .skip(offset.unwrap_or(0))
        .take(limit)
        .collect();
    (page, total)
}

/// For PATCH bodies: `Some(None)` for an explicit `null`, `None` (with
/// `#[serde(default)]`) for an absent field, so `null` clears a field and absence
/// keeps it.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Ids that end up in metastore keys (variables, connections, pools): keys are
/// NUL-joined, so control characters are refused, and Airflow's 250-character id
/// limit keeps them displayable.
/// A request's `conf`-style field: absent or `null` is empty, an object is taken,
/// anything else is a 400 naming `field`.
fn conf_object(
    field: &str,
    value: Option<serde_json::Value>,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(serde_json::Map::new()),
        Some(serde_json::Value::Object(m)) => Ok(m),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{field}` must be a JSON object"
        ))),
    }
}

/// A date or date-time a user typed (see `parse_user_datetime`); a 400 naming
/// `field` otherwise.
fn user_datetime(field: &str, text: &str) -> ApiResult<jiff::Timestamp> {
    aileron_model::dag::parse_user_datetime(text)
        .map_err(|e| ApiError::bad_request(format!("`{field}`: {e}")))
}

fn check_id(what: &str, id: &str) -> ApiResult<()> {
    if id.is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    if id.chars().count() > 250 {
        return Err(ApiError::bad_request(format!(
            "{what} is longer than 250 characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

fn load_dag(s: &ApiState, caller: &Caller, dag_id: &str) -> ApiResult<(DagRecord, Arc<DagSpec>)> {
    let not_found = || ApiError::not_found(format!("DAG `{dag_id}` not found"));
    let d = s
        .metastore
        .dag(caller.tenant(), dag_id)?
        .ok_or_else(not_found)?;
    let spec = s
        .metastore
        .dag_version(&d.tenant, &d.dag_id, &d.version)?
        .ok_or_else(not_found)?;
    Ok((d, Arc::new(spec)))
}

fn run_not_found(dag_id: &str, run_id: &str) -> ApiError {
    ApiError::not_found(format!("DagRun `{run_id}` of DAG `{dag_id}` not found"))
}

fn load_run(s: &ApiState, caller: &Caller, dag_id: &str, run_id: &str) -> ApiResult<DagRun> {
    s.metastore
        .dag_run(caller.tenant(), dag_id, run_id)?
        .ok_or_else(|| run_not_found(dag_id, run_id))
}

fn load_ti(
    s: &ApiState,
    caller: &Caller,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: Option<i64>,
) -> ApiResult<TaskInstance> {
    let map_index = map_index.unwrap_or(-1);
    s.metastore
        .task_instance(caller.tenant(), dag_id, run_id, task_id, map_index)?
        .ok_or_else(|| {
            let mapped = if map_index >= 0 {
                format!(" (map index {map_index})")
            } else {
                String::new()
            };
            ApiError::not_found(format!(
                "TaskInstance `{task_id}`{mapped} of DagRun `{run_id}` of DAG `{dag_id}` not found"
            ))
        })
}

/// DAG specs by version, read once per request: TaskInstances take their pool and
/// queue from the spec their run was created with, and their version number.
struct Specs<'a> {
    metastore: &'a Metastore,
    cache: HashMap<(String, String, String), Option<Arc<DagSpec>>>,
    numbers: HashMap<(String, String, String), Option<crate::metastore::DagVersionInfo>>,
}

impl<'a> Specs<'a> {
    fn new(metastore: &'a Metastore) -> Self {
        Self {
            metastore,
            cache: HashMap::new(),
            numbers: HashMap::new(),
        }
    }

    /// The number of a DAG's version `hash`.
    fn number(
        &mut self,
        tenant: &str,
        dag_id: &str,
        hash: &str,
    ) -> ApiResult<Option<crate::metastore::DagVersionInfo>> {
        let k = (tenant.to_owned(), dag_id.to_owned(), hash.to_owned());
        if let Some(v) = self.numbers.get(&k) {
            return Ok(v.clone());
        }
        let v = self.metastore.version_info(tenant, dag_id, hash)?;
        self.numbers.insert(k, v.clone());
        Ok(v)
    }

    fn get(
        &mut self,
        tenant: &str,
        dag_id: &str,
        version: &str,
    ) -> ApiResult<Option<Arc<DagSpec>>> {
        let k = (tenant.to_owned(), dag_id.to_owned(), version.to_owned());
        if let Some(spec) = self.cache.get(&k) {
            return Ok(spec.clone());
        }
        let spec = self
            .metastore
            .dag_version(tenant, dag_id, version)?
            .map(Arc::new);
        self.cache.insert(k, spec.clone());
        Ok(spec)
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::DagNotFound(_)
            | SchedulerError::RunNotFound { .. }
            | SchedulerError::TaskNotFound { .. } => ApiError::not_found(e.to_string()),
            SchedulerError::RunExists { .. } | SchedulerError::InvalidState(_) => {
                ApiError::conflict(e.to_string())
            }
            SchedulerError::BadConf(_) => ApiError::bad_request(e.to_string()),
            SchedulerError::Invalid(_) => ApiError::unprocessable(e.to_string()),
            SchedulerError::BackfillNotFound(_) => ApiError::not_found(e.to_string()),
            SchedulerError::Metastore(m) => m.into(),
            SchedulerError::Stopped => ApiError::unavailable("the scheduler is not running"),
            SchedulerError::Internal => {
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}
