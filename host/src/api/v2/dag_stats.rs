//! `/dagStats`: how many DagRuns each DAG has in each state, from the run
//! counts the metastore keeps per DAG and state (no run is read).

use super::super::query::items;
use super::super::{ApiResult, ApiState, Caller};
use super::V2Query;
use crate::metastore::{RunOrder, RunQuery};
use aileron_model::DagRunState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `DagStatsStateResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagStatsStateResponse {
    pub state: String,
    pub count: usize,
}

/// Airflow's `DagStatsResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagStatsResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub stats: Vec<DagStatsStateResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagStatsCollectionResponse {
    pub dags: Vec<DagStatsResponse>,
    pub total_entries: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The DAGs (repeat the parameter); every DAG of the tenant without it.
    dag_ids: Option<String>,
}

/// Count each DAG's runs by state.
#[utoipa::path(
    get, path = "/dagStats", tag = "DagStats", operation_id = "get_dag_stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "Run counts by state.", body = DagStatsCollectionResponse),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_dag_stats(
    caller: Caller,
    State(s): State<ApiState>,
    V2Query(q): V2Query<StatsQuery>,
) -> ApiResult<Json<DagStatsCollectionResponse>> {
    let tenant = caller.tenant().to_owned();
    let dags = s
        .blocking(move |m| {
            let wanted: Option<Vec<String>> = q
                .dag_ids
                .as_deref()
                .map(|l| items(l).map(str::to_owned).collect());
            let mut out = Vec::new();
            for d in m.tenant_dags(&tenant)? {
                if wanted.as_ref().is_some_and(|w| !w.contains(&d.dag_id)) {
                    continue;
                }
                let mut stats = Vec::new();
                for state in DagRunState::ALL {
                    let count = m
                        .runs_page(&RunQuery {
                            tenant: &tenant,
                            dag_id: Some(&d.dag_id),
                            order: RunOrder::Id,
                            descending: false,
                            states: Some(&[state]),
                            offset: 0,
                            limit: 0,
                        })?
                        .total;
                    stats.push(DagStatsStateResponse {
                        state: state.as_str().to_owned(),
                        count,
                    });
                }
                out.push(DagStatsResponse {
                    dag_display_name: d.dag_id.clone(),
                    dag_id: d.dag_id,
                    stats,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(Json(DagStatsCollectionResponse {
        total_entries: dags.len(),
        dags,
    }))
}
