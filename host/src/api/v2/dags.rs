//! DAGs in v2: list (filters, ordering, the caller's favorites, each DAG's latest
//! runs on request), get, details, pause and unpause, delete.

use super::super::dag_runs::dag_run as v1_run;
use super::super::dags::{
    Dag as V1Dag, dag as v1_dag, file_token, latest_runs, params_json, runs_limit,
};
use super::super::paths::DagPath;
use super::super::query::items;
use super::super::{ApiError, ApiResult, ApiState, Caller, load_dag, paginate};
use super::dag_runs::{DagRunResponse, response as run_response};
use super::dag_versions::{DagVersionResponse, fill_versions, version_response};
use super::{V2Json, V2Query};
use crate::metastore::{DagRecord, ImportErrorRecord, RunQuery};
use aileron_model::DagRunState;
use aileron_model::dag::DagSpec;
use aileron_model::schedule::Schedule;
use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use utoipa::{IntoParams, ToSchema};

/// The one DAG bundle Aileron has: the DAGs folder.
pub const BUNDLE_NAME: &str = "dags-folder";

/// Airflow's `DAGResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub is_paused: bool,
    /// True once the DAG's file is gone.
    pub is_stale: bool,
    pub last_parsed_time: Option<Timestamp>,
    pub last_parse_duration: Option<f64>,
    pub last_expired: Option<Timestamp>,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub relative_fileloc: Option<String>,
    pub fileloc: String,
    pub description: Option<String>,
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_partitioned: bool,
    pub timetable_periodic: bool,
    pub tags: Vec<DagTagResponse>,
    pub max_active_tasks: u32,
    pub max_active_runs: Option<u32>,
    pub max_consecutive_failed_dag_runs: u32,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    pub next_dagrun_logical_date: Option<Timestamp>,
    pub next_dagrun_data_interval_start: Option<Timestamp>,
    pub next_dagrun_data_interval_end: Option<Timestamp>,
    pub next_dagrun_run_after: Option<Timestamp>,
    pub allowed_run_types: Option<Vec<String>>,
    pub owners: Vec<String>,
    pub is_backfillable: bool,
    /// Names the DAG file for `/dagSources`.
    pub file_token: String,
    /// Whether the DAG is one of the caller's favorites: Airflow's field of
    /// `DAGDetailsResponse`, which Aileron gives on every DAG.
    pub is_favorite: bool,
    /// Aileron's: with `dag_runs_limit=N` on the list, the DAG's latest N runs
    /// by logical date, oldest first (as Airflow's UI API names them). Absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_dag_runs: Option<Vec<DagRunResponse>>,
}

/// Airflow's `DagTagResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagTagResponse {
    pub name: String,
    pub dag_id: String,
    pub dag_display_name: String,
}

/// Airflow's `DAGDetailsResponse`: the DAG with what its file says.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagDetailsResponse {
    #[serde(flatten)]
    pub dag: DagResponse,
    pub catchup: bool,
    /// ISO 8601 duration, as Airflow writes a timedelta.
    pub dag_run_timeout: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub asset_expression: Option<Value>,
    pub doc_md: Option<String>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub is_paused_upon_creation: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub params: Option<Map<String, Value>>,
    pub render_template_as_native_obj: bool,
    pub template_search_path: Option<Vec<String>>,
    pub timezone: Option<String>,
    pub last_parsed: Option<Timestamp>,
    #[schema(value_type = Option<Object>)]
    pub default_args: Option<Value>,
    pub active_runs_count: usize,
    pub concurrency: u32,
    /// The DAG's current version (see `/dagVersions`).
    pub latest_dag_version: Option<DagVersionResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagCollectionResponse {
    pub dags: Vec<DagResponse>,
    pub total_entries: usize,
}

fn periodic(spec: &DagSpec) -> bool {
    matches!(spec.schedule, Schedule::Cron(_) | Schedule::Interval(_))
}

fn response(v1: V1Dag, spec: &DagSpec) -> DagResponse {
    DagResponse {
        dag_display_name: v1.dag_display_name,
        is_paused: v1.is_paused,
        is_stale: !v1.is_active,
        last_parsed_time: Some(v1.last_parsed_time),
        last_parse_duration: None,
        last_expired: None,
        bundle_name: Some(BUNDLE_NAME.to_owned()),
        bundle_version: None,
        relative_fileloc: Some(v1.fileloc.clone()),
        file_token: file_token(&v1.fileloc),
        latest_dag_runs: None,
        is_favorite: false,
        fileloc: v1.fileloc,
        description: v1.description,
        timetable_summary: v1.timetable_summary,
        timetable_description: Some(v1.timetable_description),
        timetable_partitioned: false,
        timetable_periodic: periodic(spec),
        tags: v1
            .tags
            .into_iter()
            .map(|t| DagTagResponse {
                name: t.name,
                dag_id: v1.dag_id.clone(),
                dag_display_name: v1.dag_id.clone(),
            })
            .collect(),
        max_active_tasks: v1.max_active_tasks,
        max_active_runs: Some(v1.max_active_runs),
        max_consecutive_failed_dag_runs: spec.max_consecutive_failed_dag_runs.unwrap_or(0),
        has_task_concurrency_limits: spec
            .tasks
            .iter()
            .any(|t| t.max_active_tis_per_dag.is_some() || t.max_active_tis_per_dagrun.is_some()),
        has_import_errors: v1.has_import_errors,
        next_dagrun_logical_date: v1.next_dagrun,
        next_dagrun_data_interval_start: v1.next_dagrun_data_interval_start,
        next_dagrun_data_interval_end: v1.next_dagrun_data_interval_end,
        next_dagrun_run_after: v1.next_dagrun_create_after,
        allowed_run_types: None,
        owners: v1.owners,
        is_backfillable: periodic(spec),
        dag_id: v1.dag_id,
    }
}

pub fn dag(d: &DagRecord, spec: &DagSpec, errors: &[ImportErrorRecord]) -> DagResponse {
    response(v1_dag(d, spec, errors), spec)
}

/// ISO 8601 duration of whole and fractional seconds (`PT90S`).
fn iso_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("PT{}S", d.as_secs())
    } else {
        format!("PT{secs}S")
    }
}

fn details(
    s: &ApiState,
    d: &DagRecord,
    spec: &DagSpec,
    errors: &[ImportErrorRecord],
) -> ApiResult<DagDetailsResponse> {
    let active = s
        .metastore
        .runs_page(&RunQuery {
            tenant: &d.tenant,
            dag_id: Some(&d.dag_id),
            order: crate::metastore::RunOrder::Id,
            descending: false,
            states: Some(&[DagRunState::Queued, DagRunState::Running]),
            offset: 0,
            limit: 0,
        })?
        .total;
    Ok(DagDetailsResponse {
        dag: dag(d, spec, errors),
        catchup: spec.catchup,
        dag_run_timeout: spec.dagrun_timeout.map(iso_duration),
        asset_expression: None,
        doc_md: spec.doc.clone(),
        start_date: spec.start_date,
        end_date: spec.end_date,
        is_paused_upon_creation: None,
        params: Some(params_json(spec)),
        render_template_as_native_obj: false,
        template_search_path: None,
        timezone: Some(spec.timezone.clone()),
        last_parsed: Some(d.last_parsed),
        default_args: None,
        active_runs_count: active,
        concurrency: spec.max_active_tasks,
        latest_dag_version: s
            .metastore
            .version_info(&d.tenant, &d.dag_id, &d.version)?
            .map(|v| version_response(&d.dag_id, v)),
    })
}

// Every filter is a plain string or scalar: lists arrive comma-joined (see
// `query.rs`), and flattened serde structs would lose the scalars' types.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// Tags (repeat the parameter); see `tags_match_mode`.
    tags: Option<String>,
    /// `any` (default): a DAG with one of the tags; `all`: with every one.
    tags_match_mode: Option<TagsMatchMode>,
    /// Owners (repeat the parameter): a DAG owned by one of them.
    owners: Option<String>,
    /// A SQL `LIKE` pattern on the DAG id (`%` any text, `_` one character),
    /// case-insensitive; without a wildcard it matches ids containing it.
    dag_id_pattern: Option<String>,
    /// Only DAGs whose id starts with this.
    dag_id_prefix_pattern: Option<String>,
    /// Leave out DAGs whose file is gone (default true).
    exclude_stale: Option<bool>,
    paused: Option<bool>,
    has_import_errors: Option<bool>,
    /// Only the caller's favorite DAGs (true), or only the others (false).
    is_favorite: Option<bool>,
    /// Aileron's: include each listed DAG's latest runs (at most 25) as
    /// `latest_dag_runs`, so a DAG list with recent runs takes one request.
    dag_runs_limit: Option<usize>,
    /// `dag_id` (default), `next_dagrun`, `last_parsed_time` or `is_paused`,
    /// `-` before it for descending.
    order_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TagsMatchMode {
    Any,
    All,
}

/// Whether `text` matches the SQL `LIKE` `pattern` without regard to case; a
/// pattern without `%` or `_` matches any text containing it, as Airflow's
/// `*_pattern` filters do.
pub fn like(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_lowercase(), text.to_lowercase());
    if !pattern.contains(['%', '_']) {
        return text.contains(&pattern);
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic wildcard matching with one backtrack point for `%`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '_' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '%' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '%')
}

/// A list parameter's values (none when it is absent).
fn list(text: &Option<String>) -> Vec<&str> {
    text.as_deref()
        .map(|t| items(t).collect())
        .unwrap_or_default()
}

/// List DAGs.
#[utoipa::path(
    get, path = "/dags", tag = "DAG", operation_id = "get_dags",
    params(DagFilter),
    responses(
        (status = 200, description = "One page of DAGs.", body = DagCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_dags(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<DagFilter>,
) -> ApiResult<Json<DagCollectionResponse>> {
    let order = q.order_by.clone().unwrap_or_else(|| "dag_id".to_owned());
    let (descending, field) = match order.strip_prefix('-') {
        Some(f) => (true, f.to_owned()),
        None => (false, order.clone()),
    };
    if !matches!(
        field.as_str(),
        "dag_id" | "dag_display_name" | "next_dagrun" | "last_parsed_time" | "is_paused"
    ) {
        return Err(ApiError::bad_request(format!(
            "Ordering with '{field}' is disallowed or the attribute does not exist on the model"
        )));
    }
    let runs_limit = runs_limit(q.dag_runs_limit)?;
    let tenant = caller.tenant().to_owned();
    let user = caller.actor();
    let (mut dags, total_entries) = s
        .blocking(move |m| {
            let favorites = m.favorite_dags(&tenant, &user)?;
            let mut matching = matching(m, &tenant, &q, &favorites)?;
            matching.sort_by(|a, b| {
                let o = match field.as_str() {
                    "next_dagrun" => a.next_dagrun_logical_date.cmp(&b.next_dagrun_logical_date),
                    "last_parsed_time" => a.last_parsed_time.cmp(&b.last_parsed_time),
                    "is_paused" => a.is_paused.cmp(&b.is_paused),
                    _ => std::cmp::Ordering::Equal,
                };
                let o = o.then_with(|| a.dag_id.cmp(&b.dag_id));
                if descending { o.reverse() } else { o }
            });
            let (mut page, total) = paginate(matching, q.limit, q.offset);
            if runs_limit > 0 {
                for d in &mut page {
                    let runs = latest_runs(m, &tenant, &d.dag_id, runs_limit)?;
                    d.latest_dag_runs =
                        Some(runs.iter().map(|r| run_response(v1_run(r))).collect());
                }
            }
            Ok((page, total))
        })
        .await?;
    for d in &mut dags {
        if let Some(runs) = d.latest_dag_runs.as_mut() {
            fill_versions(&s, caller.tenant(), runs)?;
        }
    }
    Ok(Json(DagCollectionResponse {
        dags,
        total_entries,
    }))
}

/// The tenant's DAGs that pass `q`'s filters, in DAG id order. The records
/// are filtered first; only those that pass have their spec read.
fn matching(
    m: &crate::metastore::Metastore,
    tenant: &str,
    q: &DagFilter,
    favorites: &HashSet<String>,
) -> ApiResult<Vec<DagResponse>> {
    let tags = list(&q.tags);
    let owners = list(&q.owners);
    let all = q.tags_match_mode == Some(TagsMatchMode::All);
    let errors = m.tenant_import_errors(tenant)?;
    let mut matching = Vec::new();
    for d in m.tenant_dags(tenant)? {
        let tagged = tags.is_empty()
            || if all {
                tags.iter().all(|t| d.tags.iter().any(|x| x == t))
            } else {
                tags.iter().any(|t| d.tags.iter().any(|x| x == t))
            };
        if !((d.is_active || !q.exclude_stale.unwrap_or(true))
            && q.paused.is_none_or(|p| p == d.is_paused)
            && q.dag_id_pattern.as_ref().is_none_or(|p| like(p, &d.dag_id))
            && q.dag_id_prefix_pattern
                .as_ref()
                .is_none_or(|p| d.dag_id.starts_with(p.as_str()))
            && tagged)
        {
            continue;
        }
        let Some(spec) = m.dag_version(&d.tenant, &d.dag_id, &d.version)? else {
            continue;
        };
        if !owners.is_empty() && !owners.contains(&spec.owner.as_str()) {
            continue;
        }
        let mut listed = dag(&d, &spec, &errors);
        listed.is_favorite = favorites.contains(&d.dag_id);
        if q.has_import_errors
            .is_some_and(|h| h != listed.has_import_errors)
            || q.is_favorite.is_some_and(|f| f != listed.is_favorite)
        {
            continue;
        }
        matching.push(listed);
    }
    Ok(matching)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatchDagsFilter {
    /// The fields to change; only `is_paused` can be.
    update_mask: Option<String>,
    /// How many of the matching DAGs to change (default 100).
    limit: Option<usize>,
    /// Matching DAGs to skip, in DAG id order.
    offset: Option<usize>,
    tags: Option<String>,
    tags_match_mode: Option<TagsMatchMode>,
    owners: Option<String>,
    dag_id_pattern: Option<String>,
    dag_id_prefix_pattern: Option<String>,
    exclude_stale: Option<bool>,
    paused: Option<bool>,
}

/// Pause or unpause every DAG the filters match (one page of them).
#[utoipa::path(
    patch, path = "/dags", tag = "DAG", operation_id = "patch_dags",
    params(PatchDagsFilter),
    request_body = DagPatchBody,
    responses(
        (status = 200, description = "The DAGs as changed.", body = DagCollectionResponse),
        (status = 400, description = "A field that cannot be changed."),
        (status = 422, description = "A body or parameter that does not validate."),
    )
)]
pub async fn patch_dags(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<PatchDagsFilter>,
    V2Json(body): V2Json<DagPatchBody>,
) -> ApiResult<Json<DagCollectionResponse>> {
    only_is_paused(&q.update_mask)?;
    let filter = DagFilter {
        limit: q.limit,
        offset: q.offset,
        tags: q.tags,
        tags_match_mode: q.tags_match_mode,
        owners: q.owners,
        dag_id_pattern: q.dag_id_pattern,
        dag_id_prefix_pattern: q.dag_id_prefix_pattern,
        exclude_stale: q.exclude_stale,
        paused: q.paused,
        has_import_errors: None,
        is_favorite: None,
        dag_runs_limit: None,
        order_by: None,
    };
    let tenant = caller.tenant().to_owned();
    let favorites = s.metastore.favorite_dags(&tenant, &caller.actor())?;
    let (page, total_entries) = s
        .blocking({
            let tenant = tenant.clone();
            let favorites = favorites.clone();
            move |m| {
                Ok(paginate(
                    matching(m, &tenant, &filter, &favorites)?,
                    filter.limit,
                    filter.offset,
                ))
            }
        })
        .await?;
    for d in &page {
        s.scheduler
            .set_paused(&tenant, &d.dag_id, body.is_paused)
            .await?;
    }
    let errors = s.metastore.tenant_import_errors(&tenant)?;
    let mut dags = Vec::with_capacity(page.len());
    for d in page {
        let (record, spec) = load_dag(&s, &caller, &d.dag_id)?;
        let mut changed = dag(&record, &spec, &errors);
        changed.is_favorite = favorites.contains(&d.dag_id);
        dags.push(changed);
    }
    Ok(Json(DagCollectionResponse {
        dags,
        total_entries,
    }))
}

fn only_is_paused(mask: &Option<String>) -> ApiResult<()> {
    match list(mask).into_iter().find(|f| *f != "is_paused") {
        Some(bad) => Err(ApiError::bad_request(format!(
            "Only `is_paused` field can be updated through the REST API, not `{bad}`"
        ))),
        None => Ok(()),
    }
}

/// One of the caller's tenant's DAGs as v2 shows it, with whether it is the
/// caller's favorite.
fn one_dag(s: &ApiState, caller: &Caller, dag_id: &str) -> ApiResult<DagResponse> {
    let (d, spec) = load_dag(s, caller, dag_id)?;
    let errors = s.metastore.tenant_import_errors(caller.tenant())?;
    let mut one = dag(&d, &spec, &errors);
    one.is_favorite = s
        .metastore
        .is_favorite(caller.tenant(), dag_id, &caller.actor())?;
    Ok(one)
}

/// Get a DAG.
#[utoipa::path(
    get, path = "/dags/{dag_id}", tag = "DAG", operation_id = "get_dag",
    params(DagPath),
    responses(
        (status = 200, description = "The DAG.", body = DagResponse),
        (status = 404, description = "No such DAG."),
    )
)]
pub async fn get_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<Json<DagResponse>> {
    Ok(Json(one_dag(&s, &caller, &dag_id)?))
}

/// Get a DAG with what its file says.
#[utoipa::path(
    get, path = "/dags/{dag_id}/details", tag = "DAG", operation_id = "get_dag_details",
    params(DagPath),
    responses(
        (status = 200, description = "The DAG's details.", body = DagDetailsResponse),
        (status = 404, description = "No such DAG."),
    )
)]
pub async fn get_dag_details(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<Json<DagDetailsResponse>> {
    let (d, spec) = load_dag(&s, &caller, &dag_id)?;
    let errors = s.metastore.tenant_import_errors(caller.tenant())?;
    let mut one = details(&s, &d, &spec, &errors)?;
    one.dag.is_favorite = s
        .metastore
        .is_favorite(caller.tenant(), &dag_id, &caller.actor())?;
    Ok(Json(one))
}

/// Airflow's `DAGPatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagPatchBody {
    is_paused: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateMask {
    /// The fields to change; only `is_paused` can be.
    update_mask: Option<String>,
}

/// Pause or unpause a DAG.
#[utoipa::path(
    patch, path = "/dags/{dag_id}", tag = "DAG", operation_id = "patch_dag",
    params(DagPath, UpdateMask),
    request_body = DagPatchBody,
    responses(
        (status = 200, description = "The DAG as changed.", body = DagResponse),
        (status = 400, description = "A field that cannot be changed."),
        (status = 404, description = "No such DAG."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    V2Query(mask): V2Query<UpdateMask>,
    V2Json(body): V2Json<DagPatchBody>,
) -> ApiResult<Json<DagResponse>> {
    only_is_paused(&mask.update_mask)?;
    load_dag(&s, &caller, &dag_id)?;
    s.scheduler
        .set_paused(caller.tenant(), &dag_id, body.is_paused)
        .await?;
    Ok(Json(one_dag(&s, &caller, &dag_id)?))
}

/// Delete a DAG with its whole history: runs, TaskInstances, logs, XCom,
/// backfills, versions. Its file is not touched: a DAG whose file is still in
/// the DAGs folder is parsed again at once and comes back with no history.
#[utoipa::path(
    delete, path = "/dags/{dag_id}", tag = "DAG", operation_id = "delete_dag",
    params(DagPath),
    responses(
        (status = 200, description = "Deleted.", body = Object),
        (status = 404, description = "No such DAG."),
        (status = 409, description = "Its TaskInstances are still running."),
    )
)]
pub async fn delete_dag(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
) -> ApiResult<Json<Value>> {
    load_dag(&s, &caller, &dag_id)?;
    s.scheduler.delete_dag(caller.tenant(), &dag_id).await?;
    s.rescan.notify_one();
    Ok(Json(Value::Object(Map::new())))
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns_match_as_sql_does_without_case() {
        assert!(like("etl", "daily_ETL_job"));
        assert!(like("etl%", "ETL_daily"));
        assert!(!like("etl%", "daily_etl"));
        assert!(like("%_job", "daily_job"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("%", ""));
        assert!(like("a%b%c", "aXXbYYc"));
    }
}
