//! Pools: named slot counts that tasks take slots of (`pool`, `pool_slots` in the
//! DAG file). The occupancy figures are computed from the TaskInstances in flight
//! at the moment of the request. `default_pool` always exists.

use super::Caller;
use super::error::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unprocessable};
use super::paths::PoolPath;
use super::query::ApiQuery;
use super::{ApiError, ApiResult, ApiState, JsonBody, Page, Specs, check_id, paginate};
use aileron_model::TaskInstanceState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

use crate::metastore::PoolRecord;
use crate::scheduler::{Command, DEFAULT_POOL, DEFAULT_POOL_SLOTS};

fn default_pool() -> PoolRecord {
    PoolRecord {
        slots: DEFAULT_POOL_SLOTS,
        description: Some("Default pool".to_owned()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pool {
    pub name: String,
    pub slots: u32,
    pub description: Option<String>,
    /// Slots taken by running and queued TaskInstances.
    pub occupied_slots: u64,
    pub running_slots: u64,
    pub queued_slots: u64,
    /// Slots that scheduled TaskInstances will take once queued.
    pub scheduled_slots: u64,
    /// `slots` minus `occupied_slots`, never below zero.
    pub open_slots: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolCollection {
    pub pools: Vec<Pool>,
    pub total_entries: usize,
}

/// Slots taken in one pool, by TaskInstance state.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    running: u64,
    queued: u64,
    scheduled: u64,
}

/// What every pool has in use now: the unfinished runs' TaskInstances that hold or
/// are about to take slots, each counted with its task's `pool_slots`.
fn usage(s: &ApiState, tenant: &str) -> ApiResult<HashMap<String, Usage>> {
    let mut specs = Specs::new(&s.metastore);
    let mut out: HashMap<String, Usage> = HashMap::new();
    for run in s.metastore.unfinished_runs()? {
        if run.tenant != tenant {
            continue;
        }
        let Some(spec) = specs.get(&run.tenant, &run.dag_id, &run.dag_version)? else {
            continue;
        };
        for ti in s
            .metastore
            .task_instances(&run.tenant, &run.dag_id, &run.run_id)?
        {
            let Some(task) = spec.task(&ti.task_id) else {
                continue;
            };
            let slots = u64::from(task.pool_slots);
            let u = out.entry(task.pool.clone()).or_default();
            match ti.state {
                TaskInstanceState::Running => u.running += slots,
                TaskInstanceState::Queued => u.queued += slots,
                TaskInstanceState::Scheduled => u.scheduled += slots,
                _ => {}
            }
        }
    }
    Ok(out)
}

fn pool(name: String, p: PoolRecord, u: Usage) -> Pool {
    let occupied = u.running + u.queued;
    Pool {
        name,
        slots: p.slots,
        description: p.description,
        occupied_slots: occupied,
        running_slots: u.running,
        queued_slots: u.queued,
        scheduled_slots: u.scheduled,
        open_slots: u64::from(p.slots).saturating_sub(occupied),
    }
}

fn parse(name: &str, json: &str) -> ApiResult<PoolRecord> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!("pool `{name}` is not a readable record: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pool `{name}` is stored in a form the API cannot read"),
        )
    })
}

/// The stored pool, or the built-in default for `default_pool` never changed.
fn load(s: &ApiState, tenant: &str, name: &str) -> ApiResult<Option<PoolRecord>> {
    match s.metastore.pool(tenant, name)? {
        Some(json) => parse(name, &json).map(Some),
        None if name == DEFAULT_POOL => Ok(Some(default_pool())),
        None => Ok(None),
    }
}

async fn save(s: &ApiState, tenant: &str, name: &str, p: &PoolRecord) -> ApiResult<()> {
    let json = serde_json::to_string(p).expect("a pool serializes");
    let (tenant, name) = (tenant.to_owned(), name.to_owned());
    s.blocking(move |m| Ok(m.set_pool(&tenant, &name, &json)?))
        .await?;
    // The scheduler admits by pool size: tell it, so a bigger pool starts waiting
    // tasks at once.
    let _ = s.scheduler.send(Command::PoolsChanged);
    Ok(())
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("pool `{name}` not found"))
}

/// List pools with their occupancy; `default_pool` first.
#[utoipa::path(
    get, path = "/pools", tag = "Pool", operation_id = "get_pools",
    params(Page),
    responses((status = 200, description = "One page of pools.", body = PoolCollection), BadRequest)
)]
pub async fn list_pools(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<PoolCollection>> {
    let mut stored: Vec<(String, PoolRecord)> = Vec::new();
    for (name, json) in s.metastore.pools(caller.tenant())? {
        let p = parse(&name, &json)?;
        stored.push((name, p));
    }
    if !stored.iter().any(|(n, _)| n == DEFAULT_POOL) {
        stored.push((DEFAULT_POOL.to_owned(), default_pool()));
    }
    stored.sort_by(|(a, _), (b, _)| (a != DEFAULT_POOL, a).cmp(&(b != DEFAULT_POOL, b)));
    let usage = usage(&s, caller.tenant())?;
    let all = stored
        .into_iter()
        .map(|(name, p)| {
            let u = usage.get(&name).copied().unwrap_or_default();
            pool(name, p, u)
        })
        .collect();
    let (pools, total_entries) = paginate(all, page.limit, page.offset);
    Ok(Json(PoolCollection {
        pools,
        total_entries,
    }))
}

/// Get a pool with its occupancy.
#[utoipa::path(
    get, path = "/pools/{pool_name}", tag = "Pool", operation_id = "get_pool",
    params(PoolPath),
    responses((status = 200, description = "The pool.", body = Pool), NotFound)
)]
pub async fn get_pool(
    caller: Caller,
    State(s): State<ApiState>,
    Path(PoolPath { pool_name: name }): Path<PoolPath>,
) -> ApiResult<Json<Pool>> {
    let p = load(&s, caller.tenant(), &name)?.ok_or_else(|| not_found(&name))?;
    let u = usage(&s, caller.tenant())?
        .remove(&name)
        .unwrap_or_default();
    Ok(Json(pool(name, p, u)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPool {
    pub(crate) name: String,
    pub(crate) slots: u32,
    pub(crate) description: Option<String>,
}

/// Create a pool; 409 if it exists (change it with PATCH).
#[utoipa::path(
    post, path = "/pools", tag = "Pool", operation_id = "post_pool",
    request_body = NewPool,
    responses(
        (status = 200, description = "The pool as created.", body = Pool),
        BadRequest,
        Conflict,
        Unprocessable,
        PayloadTooLarge,
    )
)]
pub async fn post_pool(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<NewPool>,
) -> ApiResult<Json<Pool>> {
    check_id("`name`", &body.name)?;
    if load(&s, caller.tenant(), &body.name)?.is_some() {
        return Err(ApiError::conflict(format!(
            "pool `{}` already exists; change it with PATCH",
            body.name
        )));
    }
    let p = PoolRecord {
        slots: body.slots,
        description: body.description,
    };
    save(&s, caller.tenant(), &body.name, &p).await?;
    let u = usage(&s, caller.tenant())?
        .remove(&body.name)
        .unwrap_or_default();
    Ok(Json(pool(body.name, p, u)))
}

/// Changes to a pool: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolPatch {
    /// If given, must be the name in the path: pools cannot be renamed.
    pub(crate) name: Option<String>,
    pub(crate) slots: Option<u32>,
    /// `null` clears the description.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) description: Option<Option<String>>,
}

/// Change a pool's slots or description (`default_pool` included).
#[utoipa::path(
    patch, path = "/pools/{pool_name}", tag = "Pool", operation_id = "patch_pool",
    params(PoolPath),
    request_body = PoolPatch,
    responses(
        (status = 200, description = "The pool as changed.", body = Pool),
        BadRequest,
        NotFound,
        Unprocessable,
        PayloadTooLarge,
    )
)]
pub async fn patch_pool(
    caller: Caller,
    State(s): State<ApiState>,
    Path(PoolPath { pool_name: name }): Path<PoolPath>,
    JsonBody(body): JsonBody<PoolPatch>,
) -> ApiResult<Json<Pool>> {
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request(
            "`name` in the body differs from the path; pools cannot be renamed",
        ));
    }
    let mut p = load(&s, caller.tenant(), &name)?.ok_or_else(|| not_found(&name))?;
    if let Some(slots) = body.slots {
        p.slots = slots;
    }
    if let Some(description) = body.description {
        p.description = description;
    }
    save(&s, caller.tenant(), &name, &p).await?;
    let u = usage(&s, caller.tenant())?
        .remove(&name)
        .unwrap_or_default();
    Ok(Json(pool(name, p, u)))
}

/// Delete a pool; `default_pool` cannot be deleted.
#[utoipa::path(
    delete, path = "/pools/{pool_name}", tag = "Pool", operation_id = "delete_pool",
    params(PoolPath),
    responses((status = 204, description = "Deleted"), BadRequest, NotFound)
)]
pub async fn delete_pool(
    caller: Caller,
    State(s): State<ApiState>,
    Path(PoolPath { pool_name: name }): Path<PoolPath>,
) -> ApiResult<StatusCode> {
    if name == DEFAULT_POOL {
        return Err(ApiError::bad_request(
            "`default_pool` cannot be deleted; change its slots with PATCH instead",
        ));
    }
    let (tenant, n) = (caller.tenant().to_owned(), name.clone());
    if s.blocking(move |m| Ok(m.delete_pool(&tenant, &n)?)).await? {
        let _ = s.scheduler.send(Command::PoolsChanged);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}
