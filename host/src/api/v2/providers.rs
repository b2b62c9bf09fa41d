//! `/providers`: Airflow's provider packages. Aileron has none (what they
//! bring, operators and hooks, are operator components here: `/operators`),
//! so the list is empty.

use super::super::{ApiResult, Caller, Page};
use super::V2Query;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Airflow's `ProviderCollectionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderCollectionResponse {
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<Value>,
    pub total_entries: usize,
}

/// List provider packages: none.
#[utoipa::path(
    get, path = "/providers", tag = "Provider", operation_id = "get_providers",
    params(Page),
    responses(
        (status = 200, description = "No providers.", body = ProviderCollectionResponse),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_providers(
    _caller: Caller,
    V2Query(_page): V2Query<Page>,
) -> ApiResult<Json<ProviderCollectionResponse>> {
    Ok(Json(ProviderCollectionResponse {
        providers: Vec::new(),
        total_entries: 0,
    }))
}
