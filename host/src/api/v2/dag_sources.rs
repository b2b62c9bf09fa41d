//! DAG files and tags in v2: `/dagSources/{dag_id}` (the file a DAG came from,
//! as JSON or plain text) and `/dagTags` (every tag the tenant's DAGs use).

use super::super::paths::DagPath;
use super::super::{ApiError, ApiResult, ApiState, Caller, load_dag, paginate};
use super::V2Query;
use super::dags::like;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

/// Airflow's `DAGSourceResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagSourceResponse {
    pub content: Option<String>,
    pub dag_id: String,
    /// The version the content is of (see `/dagVersions`).
    pub version_number: Option<u32>,
    pub dag_display_name: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceQuery {
    /// A numbered version (default: the current one).
    version_number: Option<u32>,
}

/// What the `Accept` header asks for: JSON (the default), plain text, or
/// something this operation cannot give.
pub(super) fn wants_text(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(false);
    };
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .collect();
    if types
        .iter()
        .any(|t| matches!(*t, "application/json" | "*/*" | "application/*"))
    {
        return Ok(false);
    }
    if types.iter().any(|t| matches!(*t, "text/plain" | "text/*")) {
        return Ok(true);
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "Only application/json or text/plain is supported".to_owned(),
    ))
}

/// Get the DAG file a DAG came from.
#[utoipa::path(
    get, path = "/dagSources/{dag_id}", tag = "DagSource", operation_id = "get_dag_source",
    params(DagPath, SourceQuery),
    responses(
        (status = 200, description = "The DAG file's text (as JSON, or plain text with \
            `Accept: text/plain`).", body = DagSourceResponse),
        (status = 404, description = "No such DAG or version."),
        (status = 406, description = "An `Accept` this operation cannot answer."),
    )
)]
pub async fn get_dag_source(
    caller: Caller,
    State(s): State<ApiState>,
    Path(DagPath { dag_id }): Path<DagPath>,
    V2Query(q): V2Query<SourceQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let text = wants_text(&headers)?;
    let (d, current) = load_dag(&s, &caller, &dag_id)?;
    let not_found = |n: u32| {
        ApiError::not_found(format!(
            "The source code of the DAG {dag_id}, version_number {n} was not found"
        ))
    };
    let (spec, number) = match q.version_number {
        None => {
            let number = s
                .metastore
                .version_info(&d.tenant, &d.dag_id, &d.version)?
                .map(|v| v.number);
            (current, number)
        }
        Some(n) => {
            let info = s
                .metastore
                .version_by_number(&d.tenant, &d.dag_id, n)?
                .ok_or_else(|| not_found(n))?;
            let spec = s
                .metastore
                .dag_version(&d.tenant, &d.dag_id, &info.hash)?
                .ok_or_else(|| not_found(n))?;
            (std::sync::Arc::new(spec), Some(n))
        }
    };
    if text {
        return Ok(spec.source.clone().into_response());
    }
    Ok(Json(DagSourceResponse {
        content: Some(spec.source.clone()),
        dag_display_name: d.dag_id.clone(),
        dag_id: d.dag_id,
        version_number: number,
    })
    .into_response())
}

/// Airflow's `DAGTagCollectionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagTagCollectionResponse {
    pub tags: Vec<String>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `name` (default) or `-name`.
    order_by: Option<String>,
    /// A SQL `LIKE` pattern on the tag.
    tag_name_pattern: Option<String>,
    /// Only tags that start with this.
    tag_name_prefix_pattern: Option<String>,
}

/// List the tags of the tenant's DAGs, each once.
#[utoipa::path(
    get, path = "/dagTags", tag = "DAG", operation_id = "get_dag_tags",
    params(TagFilter),
    responses(
        (status = 200, description = "One page of tags.", body = DagTagCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_dag_tags(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<TagFilter>,
) -> ApiResult<Json<DagTagCollectionResponse>> {
    let descending = match q.order_by.as_deref().unwrap_or("name") {
        "name" => false,
        "-name" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
            )));
        }
    };
    let tags: BTreeSet<String> = s
        .metastore
        .tenant_dags(caller.tenant())?
        .into_iter()
        .flat_map(|d| d.tags)
        .filter(|t| {
            q.tag_name_pattern.as_ref().is_none_or(|p| like(p, t))
                && q.tag_name_prefix_pattern
                    .as_ref()
                    .is_none_or(|p| t.starts_with(p.as_str()))
        })
        .collect();
    let mut tags: Vec<String> = tags.into_iter().collect();
    if descending {
        tags.reverse();
    }
    let (tags, total_entries) = paginate(tags, q.limit, q.offset);
    Ok(Json(DagTagCollectionResponse {
        tags,
        total_entries,
    }))
}
