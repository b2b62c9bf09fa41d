//! `/dagWarnings`: what is wrong with a DAG that parses. Aileron has Airflow's
//! `non-existent pool`: a task naming a pool the tenant does not have waits
//! for it forever, so each DAG with such tasks is warned about.

use super::super::{ApiError, ApiResult, ApiState, Caller, paginate};
use super::V2Query;
use crate::scheduler::DEFAULT_POOL;
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use utoipa::{IntoParams, ToSchema};

/// The warning types Airflow names; Aileron raises the second.
const NON_EXISTENT_POOL: &str = "non-existent pool";

/// Airflow's `DAGWarningResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagWarningResponse {
    pub dag_id: String,
    pub warning_type: String,
    pub message: String,
    /// When the DAG was last parsed.
    pub timestamp: Timestamp,
    pub dag_display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagWarningCollectionResponse {
    pub dag_warnings: Vec<DagWarningResponse>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WarningFilter {
    /// Only this DAG's warnings.
    dag_id: Option<String>,
    /// `asset conflict`, `non-existent pool` or `runtime varying value`.
    warning_type: Option<String>,
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `dag_id` (default), `warning_type`, `message` or `timestamp`, `-` before
    /// it for descending.
    order_by: Option<String>,
}

/// List the warnings about the tenant's DAGs.
#[utoipa::path(
    get, path = "/dagWarnings", tag = "DagWarning", operation_id = "list_dag_warnings",
    params(WarningFilter),
    responses(
        (status = 200, description = "One page of warnings.", body = DagWarningCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn list_dag_warnings(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<WarningFilter>,
) -> ApiResult<Json<DagWarningCollectionResponse>> {
    let order = q.order_by.clone().unwrap_or_else(|| "dag_id".to_owned());
    let (descending, field) = match order.strip_prefix('-') {
        Some(f) => (true, f.to_owned()),
        None => (false, order.clone()),
    };
    if !matches!(
        field.as_str(),
        "dag_id" | "warning_type" | "message" | "timestamp"
    ) {
        return Err(ApiError::bad_request(format!(
            "Ordering with '{field}' is disallowed or the attribute does not exist on the model"
        )));
    }
    let tenant = caller.tenant().to_owned();
    let (dag_warnings, total_entries) = s
        .blocking(move |m| {
            let pools: HashSet<String> = m.pools(&tenant)?.into_iter().map(|(n, _)| n).collect();
            let mut out = Vec::new();
            if q.warning_type
                .as_deref()
                .is_some_and(|t| t != NON_EXISTENT_POOL)
            {
                return Ok(paginate(out, q.limit, q.offset));
            }
            for d in m.tenant_dags(&tenant)? {
                if !d.is_active || q.dag_id.as_ref().is_some_and(|id| *id != d.dag_id) {
                    continue;
                }
                let Some(spec) = m.dag_version(&d.tenant, &d.dag_id, &d.version)? else {
                    continue;
                };
                let missing: BTreeSet<&str> = spec
                    .tasks
                    .iter()
                    .map(|t| t.pool.as_str())
                    .filter(|p| *p != DEFAULT_POOL && !pools.contains(*p))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let names: Vec<&str> = missing.into_iter().collect();
                out.push(DagWarningResponse {
                    message: format!(
                        "Dag '{}' references non-existent pools: {}",
                        d.dag_id,
                        names.join(", ")
                    ),
                    dag_display_name: d.dag_id.clone(),
                    dag_id: d.dag_id,
                    warning_type: NON_EXISTENT_POOL.to_owned(),
                    timestamp: d.last_parsed,
                });
            }
            out.sort_by(|a, b| {
                let o = match field.as_str() {
                    "message" => a.message.cmp(&b.message),
                    "timestamp" => a.timestamp.cmp(&b.timestamp),
                    _ => a.dag_id.cmp(&b.dag_id),
                };
                if descending { o.reverse() } else { o }
            });
            Ok(paginate(out, q.limit, q.offset))
        })
        .await?;
    Ok(Json(DagWarningCollectionResponse {
        dag_warnings,
        total_entries,
    }))
}
