//! DAG versions in v2 (`/dags/{dag_id}/dagVersions`): each content a DAG's
//! file has had, numbered per DAG in the order it was first parsed.

use super::super::{ANY, ApiError, ApiResult, ApiState, Caller, load_dag, page_size};
use super::dag_runs::DagRunResponse;
use super::dags::BUNDLE_NAME;
use super::{V2Path, V2Query};
use crate::metastore::DagVersionInfo;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `DagVersionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagVersionResponse {
    /// UUID-shaped, from the content hash.
    pub id: String,
    pub version_number: u32,
    pub dag_id: String,
    pub bundle_name: Option<String>,
    /// The content hash of the DAG file (Aileron's version id).
    pub bundle_version: Option<String>,
    pub created_at: Timestamp,
    pub dag_display_name: String,
    pub bundle_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagVersionCollectionResponse {
    pub dag_versions: Vec<DagVersionResponse>,
    pub total_entries: usize,
}

pub fn version_response(dag_id: &str, v: DagVersionInfo) -> DagVersionResponse {
    let h = format!("{:0<32}", v.hash.trim_start_matches("sha256:"));
    DagVersionResponse {
        id: format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ),
        version_number: v.number,
        dag_id: dag_id.to_owned(),
        bundle_name: Some(BUNDLE_NAME.to_owned()),
        bundle_version: Some(v.hash),
        created_at: v.created_at,
        dag_display_name: dag_id.to_owned(),
        bundle_url: None,
    }
}

/// Fills each run's `dag_versions` with the version it ran, reading each
/// version once.
pub fn fill_versions(s: &ApiState, tenant: &str, runs: &mut [DagRunResponse]) -> ApiResult<()> {
    let mut seen: HashMap<(String, String), Option<DagVersionResponse>> = HashMap::new();
    for run in runs {
        let k = (run.dag_id.clone(), run.version_hash.clone());
        if !seen.contains_key(&k) {
            let info = s.metastore.version_info(tenant, &k.0, &k.1)?;
            seen.insert(k.clone(), info.map(|i| version_response(&k.0, i)));
        }
        run.dag_versions = seen[&k].iter().cloned().collect();
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// Only this version.
    version_number: Option<u32>,
    /// Only versions of this bundle (Aileron has one: `dags-folder`).
    bundle_name: Option<String>,
    /// Only the version with this content hash.
    bundle_version: Option<String>,
    /// `id` or `version_number` (the default order), `-` before it for
    /// descending.
    order_by: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionListPath {
    /// A DAG id, or `~` for every DAG's versions.
    dag_id: String,
}

/// List a DAG's versions (every DAG's with `~`).
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagVersions", tag = "DagVersion", operation_id = "get_dag_versions",
    params(VersionListPath, VersionFilter),
    responses(
        (status = 200, description = "One page of versions.", body = DagVersionCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 404, description = "No such DAG."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_dag_versions(
    caller: Caller,
    State(s): State<ApiState>,
    Path(VersionListPath { dag_id }): Path<VersionListPath>,
    V2Query(q): V2Query<VersionFilter>,
) -> ApiResult<Json<DagVersionCollectionResponse>> {
    let descending = match q.order_by.as_deref().unwrap_or("id") {
        "id" | "version_number" => false,
        "-id" | "-version_number" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
            )));
        }
    };
    let filtered =
        q.version_number.is_some() || q.bundle_name.is_some() || q.bundle_version.is_some();
    let dags: Vec<String> = if dag_id == ANY {
        s.metastore
            .tenant_dags(caller.tenant())?
            .into_iter()
            .map(|d| d.dag_id)
            .collect()
    } else {
        load_dag(&s, &caller, &dag_id)?;
        vec![dag_id]
    };
    let (offset, limit) = (q.offset.unwrap_or(0), page_size(q.limit));
    // One DAG without filters: the page is a range read. Otherwise the DAGs'
    // versions are read and filtered (a DAG has few).
    if let [only] = dags.as_slice()
        && !filtered
    {
        let (page, total_entries) =
            s.metastore
                .version_page(caller.tenant(), only, descending, offset, limit)?;
        return Ok(Json(DagVersionCollectionResponse {
            dag_versions: page
                .into_iter()
                .map(|v| version_response(only, v))
                .collect(),
            total_entries,
        }));
    }
    let mut all = Vec::new();
    for d in &dags {
        let (versions, _) = s
            .metastore
            .version_page(caller.tenant(), d, false, 0, usize::MAX)?;
        all.extend(
            versions
                .into_iter()
                .filter(|v| q.version_number.is_none_or(|n| n == v.number))
                .filter(|v| q.bundle_version.as_ref().is_none_or(|b| *b == v.hash))
                .filter(|_| q.bundle_name.as_deref().is_none_or(|b| b == BUNDLE_NAME))
                .map(|v| version_response(d, v)),
        );
    }
    all.sort_by(|a, b| (&a.dag_id, a.version_number).cmp(&(&b.dag_id, b.version_number)));
    if descending {
        all.reverse();
    }
    let total_entries = all.len();
    Ok(Json(DagVersionCollectionResponse {
        dag_versions: all.into_iter().skip(offset).take(limit).collect(),
        total_entries,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The DAG id.
    dag_id: String,
    /// The version's number.
    version_number: u32,
}

/// Get one version of a DAG.
#[utoipa::path(
    get, path = "/dags/{dag_id}/dagVersions/{version_number}", tag = "DagVersion",
    operation_id = "get_dag_version",
    params(VersionPath),
    responses(
        (status = 200, description = "The version.", body = DagVersionResponse),
        (status = 404, description = "No such DAG or version."),
    )
)]
pub async fn get_dag_version(
    caller: Caller,
    State(s): State<ApiState>,
    V2Path(VersionPath {
        dag_id,
        version_number,
    }): V2Path<VersionPath>,
) -> ApiResult<Json<DagVersionResponse>> {
    load_dag(&s, &caller, &dag_id)?;
    s.metastore
        .version_by_number(caller.tenant(), &dag_id, version_number)?
        .map(|v| Json(version_response(&dag_id, v)))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The DagVersion with dag_id: `{dag_id}` and version_number: `{version_number}` was not found"
            ))
        })
}
