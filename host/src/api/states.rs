//! DagRun and TaskInstance states and run types as the API documents them.
//!
//! The model's enums stay free of `utoipa`, so the API mirrors them here. The
//! conversions are exhaustive `match`es: a state added to the model fails to compile
//! until the API (and so its OpenAPI document) knows it too.

use crate::metastore::RunType;
use aileron_model::{DagRunState, TaskInstanceState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// State of a DagRun (Airflow's `DagState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DagState {
    Queued,
    Running,
    Success,
    Failed,
}

impl From<DagRunState> for DagState {
    fn from(s: DagRunState) -> Self {
        match s {
            DagRunState::Queued => Self::Queued,
            DagRunState::Running => Self::Running,
            DagRunState::Success => Self::Success,
            DagRunState::Failed => Self::Failed,
        }
    }
}

impl From<DagState> for DagRunState {
    fn from(s: DagState) -> Self {
        match s {
            DagState::Queued => Self::Queued,
            DagState::Running => Self::Running,
            DagState::Success => Self::Success,
            DagState::Failed => Self::Failed,
        }
    }
}

/// State of a TaskInstance (Airflow's `TaskState`). A TaskInstance that has no
/// state yet has `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    Skipped,
    UpstreamFailed,
    UpForRetry,
    UpForReschedule,
    Removed,
}

/// The API form of a TaskInstance state: `None` for Airflow's null state.
pub fn task_state(s: TaskInstanceState) -> Option<TaskState> {
    use TaskInstanceState as S;
    Some(match s {
        S::NoStatus => return None,
        S::Scheduled => TaskState::Scheduled,
        S::Queued => TaskState::Queued,
        S::Running => TaskState::Running,
        S::Success => TaskState::Success,
        S::Failed => TaskState::Failed,
        S::Skipped => TaskState::Skipped,
        S::UpstreamFailed => TaskState::UpstreamFailed,
        S::UpForRetry => TaskState::UpForRetry,
        S::UpForReschedule => TaskState::UpForReschedule,
        S::Removed => TaskState::Removed,
    })
}

/// How a DagRun came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DagRunType {
    Manual,
    Scheduled,
    Backfill,
}

impl From<RunType> for DagRunType {
    fn from(t: RunType) -> Self {
        match t {
            RunType::Manual => Self::Manual,
            RunType::Scheduled => Self::Scheduled,
            RunType::Backfill => Self::Backfill,
        }
    }
}

/// Parses a comma-separated state filter (`state=failed,upstream_failed`); `none`
/// selects TaskInstances without a state, as in Airflow's filters.
pub fn parse_ti_states(list: &str) -> Result<Vec<TaskInstanceState>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<TaskInstanceState>().map_err(|_| {
                format!(
                    "unknown TaskInstance state `{s}` in `state`; expected one of: {}",
                    TaskInstanceState::ALL
                        .map(TaskInstanceState::as_str)
                        .join(", ")
                )
            })
        })
        .collect()
}

/// Parses a comma-separated DagRun state filter.
pub fn parse_run_states(list: &str) -> Result<Vec<DagRunState>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<DagRunState>().map_err(|_| {
                format!(
                    "unknown DagRun state `{s}` in `state`; expected one of: {}",
                    DagRunState::ALL.map(DagRunState::as_str).join(", ")
                )
            })
        })
        .collect()
}
