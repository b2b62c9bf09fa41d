//! Pools in v2: Airflow 3's shapes over the `/api/v1` handlers. Aileron has no
//! deferred tasks, so `include_deferred` is false and `deferred_slots` 0.

use super::super::paths::PoolPath;
use super::super::pools::{self as v1, NewPool, Pool, PoolPatch};
use super::super::query::{ApiQuery, items};
use super::super::{ApiError, ApiResult, ApiState, Caller, JsonBody, Page, paginate};
use super::dags::like;
use super::{V2Json, V2Query};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Airflow's `PoolResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolResponse {
    pub name: String,
    pub slots: u32,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: u64,
    pub running_slots: u64,
    pub queued_slots: u64,
    pub scheduled_slots: u64,
    pub open_slots: u64,
    pub deferred_slots: u64,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolCollectionResponse {
    pub pools: Vec<PoolResponse>,
    pub total_entries: usize,
}

fn response(p: Pool) -> PoolResponse {
    PoolResponse {
        name: p.name,
        slots: p.slots,
        description: p.description,
        include_deferred: false,
        occupied_slots: p.occupied_slots,
        running_slots: p.running_slots,
        queued_slots: p.queued_slots,
        scheduled_slots: p.scheduled_slots,
        open_slots: p.open_slots,
        deferred_slots: 0,
        team_name: None,
    }
}

/// Refuses what Aileron's pools cannot hold: deferred slots, another team.
fn check_extras(include_deferred: Option<bool>, team_name: &Option<String>) -> ApiResult<()> {
    if include_deferred == Some(true) {
        return Err(ApiError::bad_request(
            "`include_deferred` cannot be true: Aileron has no deferred tasks",
        ));
    }
    if team_name.is_some() {
        return Err(ApiError::bad_request(
            "`team_name` cannot be set: a pool belongs to the tenant of the request",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoolFilter {
    /// Page size (default 100).
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
    /// `name` or `id` (the default: `default_pool` first, then by name), `-`
    /// before it for descending.
    order_by: Option<String>,
    /// A SQL `LIKE` pattern on the pool name.
    pool_name_pattern: Option<String>,
    /// Only pools whose name starts with this.
    pool_name_prefix_pattern: Option<String>,
}

/// List pools with their occupancy.
#[utoipa::path(
    get, path = "/pools", tag = "Pool", operation_id = "get_pools",
    params(PoolFilter),
    responses(
        (status = 200, description = "One page of pools.", body = PoolCollectionResponse),
        (status = 400, description = "An order that cannot be used."),
        (status = 422, description = "A parameter that does not validate."),
    )
)]
pub async fn get_pools(
    caller: Caller,
    state: State<ApiState>,
    V2Query(q): V2Query<PoolFilter>,
) -> ApiResult<Json<PoolCollectionResponse>> {
    let order = q.order_by.as_deref().unwrap_or("id");
    let descending = order.starts_with('-');
    let by_name = match order.trim_start_matches('-') {
        "id" => false,
        "name" | "pool" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
            )));
        }
    };
    let Json(all) = v1::list_pools(
        caller,
        state,
        ApiQuery(Page {
            limit: Some(usize::MAX),
            offset: None,
        }),
    )
    .await?;
    let mut pools: Vec<PoolResponse> = all
        .pools
        .into_iter()
        .filter(|p| {
            q.pool_name_pattern
                .as_ref()
                .is_none_or(|pat| like(pat, &p.name))
                && q.pool_name_prefix_pattern
                    .as_ref()
                    .is_none_or(|pre| p.name.starts_with(pre.as_str()))
        })
        .map(response)
        .collect();
    if by_name {
        pools.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if descending {
        pools.reverse();
    }
    let (pools, total_entries) = paginate(pools, q.limit, q.offset);
    Ok(Json(PoolCollectionResponse {
        pools,
        total_entries,
    }))
}

/// Get a pool with its occupancy.
#[utoipa::path(
    get, path = "/pools/{pool_name}", tag = "Pool", operation_id = "get_pool",
    params(PoolPath),
    responses(
        (status = 200, description = "The pool.", body = PoolResponse),
        (status = 404, description = "No such pool."),
    )
)]
pub async fn get_pool(
    caller: Caller,
    state: State<ApiState>,
    path: Path<PoolPath>,
) -> ApiResult<Json<PoolResponse>> {
    let Json(p) = v1::get_pool(caller, state, path).await?;
    Ok(Json(response(p)))
}

/// Airflow's `PoolBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    name: String,
    slots: u32,
    description: Option<String>,
    include_deferred: Option<bool>,
    team_name: Option<String>,
}

/// Create a pool.
#[utoipa::path(
    post, path = "/pools", tag = "Pool", operation_id = "post_pool",
    request_body = PoolBody,
    responses(
        (status = 201, description = "The pool as created.", body = PoolResponse),
        (status = 400, description = "A field Aileron cannot keep."),
        (status = 409, description = "A pool with that name exists."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn post_pool(
    caller: Caller,
    state: State<ApiState>,
    V2Json(body): V2Json<PoolBody>,
) -> ApiResult<(StatusCode, Json<PoolResponse>)> {
    check_extras(body.include_deferred, &body.team_name)?;
    let Json(p) = v1::post_pool(
        caller,
        state,
        JsonBody(NewPool {
            name: body.name,
            slots: body.slots,
            description: body.description,
        }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(response(p))))
}

/// Airflow's `PoolPatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolPatchBody {
    /// The pool's name; must be the one in the path.
    pool: Option<String>,
    slots: Option<u32>,
    #[serde(default, deserialize_with = "super::super::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    include_deferred: Option<bool>,
    team_name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoolMask {
    /// The fields to change (`slots`, `description`, `name`); all given when
    /// absent.
    update_mask: Option<String>,
}

/// Change a pool's slots or description.
#[utoipa::path(
    patch, path = "/pools/{pool_name}", tag = "Pool", operation_id = "patch_pool",
    params(PoolPath, PoolMask),
    request_body = PoolPatchBody,
    responses(
        (status = 200, description = "The pool as changed.", body = PoolResponse),
        (status = 400, description = "A field that cannot be changed."),
        (status = 404, description = "No such pool."),
        (status = 422, description = "A body that does not validate."),
    )
)]
pub async fn patch_pool(
    caller: Caller,
    state: State<ApiState>,
    path: Path<PoolPath>,
    V2Query(mask): V2Query<PoolMask>,
    V2Json(body): V2Json<PoolPatchBody>,
) -> ApiResult<Json<PoolResponse>> {
    check_extras(body.include_deferred, &body.team_name)?;
    let fields: Option<Vec<String>> = mask
        .update_mask
        .map(|m| items(&m).map(str::to_owned).collect());
    if let Some(bad) = fields.iter().flatten().find(|f| {
        !matches!(
            f.as_str(),
            "slots" | "description" | "name" | "pool" | "include_deferred"
        )
    }) {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    let wanted = |f: &str| fields.as_ref().is_none_or(|fs| fs.iter().any(|x| x == f));
    let Json(p) = v1::patch_pool(
        caller,
        state,
        path,
        JsonBody(PoolPatch {
            name: body.pool,
            slots: body.slots.filter(|_| wanted("slots")),
            description: body.description.filter(|_| wanted("description")),
        }),
    )
    .await?;
    Ok(Json(response(p)))
}

/// Delete a pool; `default_pool` cannot be deleted.
#[utoipa::path(
    delete, path = "/pools/{pool_name}", tag = "Pool", operation_id = "delete_pool",
    params(PoolPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`default_pool`, which cannot be deleted."),
        (status = 404, description = "No such pool."),
    )
)]
pub async fn delete_pool(
    caller: Caller,
    state: State<ApiState>,
    path: Path<PoolPath>,
) -> ApiResult<StatusCode> {
    v1::delete_pool(caller, state, path).await
}
