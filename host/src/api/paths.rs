//! The path parameters of `/api/v1`, one struct per path shape: a handler takes
//! `Path<RunPath>` and its `#[utoipa::path]` lists `params(RunPath)`, so the names
//! axum matches and the names the OpenAPI document shows come from one field list.
//!
//! Field names are the route's `{...}` segments (Airflow's names), since axum
//! deserializes a struct by name. A value that does not parse (`try_number` or
//! `backfill_id` that is not a number) is axum's 400 rejection, which
//! `error::problem_json` turns into a JSON problem like every other rejection.
//! The doc comments are the parameters' descriptions in the document.

use serde::Deserialize;
use utoipa::IntoParams;

/// `/dags/{dag_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DagPath {
    /// The DAG id.
    pub dag_id: String,
}

/// `/dags/{dag_id}/tasks/{task_id}`: a task of the DAG, not a TaskInstance.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DagTaskPath {
    /// The DAG id.
    pub dag_id: String,
    /// The task id, unique within its DAG.
    pub task_id: String,
}

/// `/dags/{dag_id}/dagRuns` when listing: the DAG id may be the wildcard. A shape of
/// its own, not [`DagPath`], because only the list operations take `~` and the
/// parameter's description is where clients learn it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AnyDagPath {
    /// A DAG id, or `~` for every DAG
    pub dag_id: String,
}

/// `/dags/{dag_id}/dagRuns/{dag_run_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunPath {
    /// The DAG id.
    pub dag_id: String,
    /// The DagRun id, unique within its DAG.
    pub dag_run_id: String,
}

/// `/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances` when listing: either id may
/// be the wildcard (see [`AnyDagPath`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AnyRunPath {
    /// A DAG id, or `~` (with `~` as the DagRun id) for every DAG
    pub dag_id: String,
    /// A DagRun id, or `~` for every run
    pub dag_run_id: String,
}

/// `/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}`; a mapped
/// TaskInstance's map index is the `map_index` query parameter, as in Airflow.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskPath {
    /// The DAG id.
    pub dag_id: String,
    /// The DagRun id, unique within its DAG.
    pub dag_run_id: String,
    /// The task id, unique within its DAG.
    pub task_id: String,
}

/// `/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/…/{try_number}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TryPath {
    /// The DAG id.
    pub dag_id: String,
    /// The DagRun id, unique within its DAG.
    pub dag_run_id: String,
    /// The task id, unique within its DAG.
    pub task_id: String,
    /// The try, counted from 1.
    pub try_number: u32,
}

/// `/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct XcomPath {
    /// The DAG id.
    pub dag_id: String,
    /// The DagRun id, unique within its DAG.
    pub dag_run_id: String,
    /// The task id, unique within its DAG.
    pub task_id: String,
    /// The XCom key, e.g. `return_value`.
    pub xcom_key: String,
}

/// `/variables/{variable_key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VariablePath {
    /// The Variable's key.
    pub variable_key: String,
}

/// `/connections/{connection_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConnectionPath {
    /// The Connection's `conn_id`.
    pub connection_id: String,
}

/// `/pools/{pool_name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PoolPath {
    /// The Pool's name.
    pub pool_name: String,
}

/// `/backfills/{backfill_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BackfillPath {
    /// The backfill's id.
    pub backfill_id: u64,
}

/// `/tenants/{tenant_name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's name.
    pub tenant_name: String,
}

/// `/tenants/{tenant}/usage`: a tenant seen from inside (its own members).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OwnTenantPath {
    /// The tenant's name: the one the request acts in (or any, for a platform
    /// admin).
    pub tenant: String,
}

/// `/users/{username}` and `/members/{username}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user's name.
    pub username: String,
}

/// `/tokens/{token_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// The token's id (the part after `ail_`, before the secret).
    pub token_id: String,
}

/// `/eventLogs/{event_log_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventLogPath {
    /// The event's id.
    pub event_log_id: u64,
}

/// `/plugins/{plugin_name}/{version}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginPath {
    /// The operator's name, as its `describe()` gives it.
    pub plugin_name: String,
    /// Its exact version (semver).
    pub version: String,
}
