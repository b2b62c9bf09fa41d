//! History retention: Airflow's `db clean` as `POST /dbClean`, over the caller's
//! tenant, while the server runs. Deletion goes through the scheduler in chunks
//! (it is the writer of runs and must forget the runs it deletes); a dry run only
//! reads.

use super::Caller;
use super::error::{BadRequest, PayloadTooLarge, Unavailable, Unprocessable};
use super::{ApiError, ApiResult, ApiState, JsonBody, user_datetime};
use axum::Json;
use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Runs deleted per scheduler command: small enough that one chunk holds up the
/// scheduler for a few milliseconds, large enough that a big clean-up is quick.
const CHUNK: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DbClean {
    /// Delete what is older than this date-time (Airflow's
    /// `--clean-before-timestamp`). Give this or `older_than`.
    clean_before_timestamp: Option<String>,
    /// Delete what is older than this long before the server's now, e.g. `30d`.
    older_than: Option<String>,
    /// Only count what would be deleted.
    #[serde(default)]
    dry_run: bool,
}

/// What a clean-up deleted, or would delete with `dry_run`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DbCleanResult {
    pub clean_before_timestamp: Timestamp,
    pub dry_run: bool,
    /// DagRuns deleted, each with its TaskInstances, XCom, logs and callbacks.
    pub dag_runs: usize,
    pub task_instances: usize,
}

/// Delete finished DagRuns older than a cut-off, with everything they hold.
///
/// A run goes when it is finished and both its logical date and its end are
/// before the cut-off; each DAG keeps its latest non-manual run, as in
/// Airflow's `db clean`.
#[utoipa::path(
    post, path = "/dbClean", tag = "Monitoring", operation_id = "db_clean",
    request_body = DbClean,
    responses(
        (status = 200, description = "What was deleted, or would be.", body = DbCleanResult),
        BadRequest,
        Unprocessable,
        PayloadTooLarge,
        Unavailable,
    )
)]
pub async fn db_clean(
    caller: Caller,
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<DbClean>,
) -> ApiResult<Json<DbCleanResult>> {
    let before = match (&body.clean_before_timestamp, &body.older_than) {
        (Some(t), None) => user_datetime("clean_before_timestamp", t)?,
        (None, Some(d)) => {
            let age = aileron_model::units::parse_duration(d)
                .map_err(|e| ApiError::bad_request(format!("`older_than`: {e}")))?;
            let age = SignedDuration::try_from(age)
                .map_err(|_| ApiError::bad_request("`older_than` is too long"))?;
            s.clock
                .now()
                .checked_sub(age)
                .map_err(|_| ApiError::bad_request("`older_than` is too long"))?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `clean_before_timestamp` and `older_than`",
            ));
        }
    };
    let tenant = caller.tenant().to_owned();
    let (mut dag_runs, mut task_instances) = (0, 0);
    if body.dry_run {
        (dag_runs, task_instances) = s
            .blocking(move |m| {
                let runs = m.expired_runs(Some(&tenant), before, usize::MAX)?;
                Ok((runs.len(), runs.iter().map(|r| r.task_instances).sum()))
            })
            .await?;
    } else {
        loop {
            let chunk = s
                .scheduler
                .clean_history(Some(&tenant), before, CHUNK)
                .await?;
            dag_runs += chunk.dag_runs;
            task_instances += chunk.task_instances;
            if !chunk.more {
                break;
            }
        }
    }
    Ok(Json(DbCleanResult {
        clean_before_timestamp: before,
        dry_run: body.dry_run,
        dag_runs,
        task_instances,
    }))
}
