//! DagRun and TaskInstance states, named exactly as Airflow names them (CONTRACT).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// State of a DagRun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DagRunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl DagRunState {
    pub const ALL: [DagRunState; 4] = [Self::Queued, Self::Running, Self::Success, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }
}

/// State of a TaskInstance. `None` (Airflow's null state: created, not yet
/// scheduled) is represented as `Option::<TaskInstanceState>::None` at the edges
/// and as [`TaskInstanceState::NoStatus`] inside the scheduler; in JSON it is `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskInstanceState {
    #[serde(rename = "none")]
    NoStatus,
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

impl TaskInstanceState {
    pub const ALL: [TaskInstanceState; 11] = [
        Self::NoStatus,
        Self::Scheduled,
        Self::Queued,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::Skipped,
        Self::UpstreamFailed,
        Self::UpForRetry,
        Self::UpForReschedule,
        Self::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoStatus => "none",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::UpstreamFailed => "upstream_failed",
            Self::UpForRetry => "up_for_retry",
            Self::UpForReschedule => "up_for_reschedule",
            Self::Removed => "removed",
        }
    }

    /// Airflow's "finished" states: the TaskInstance will not change again unless
    /// cleared. `removed` counts as done for trigger rules.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Skipped | Self::UpstreamFailed | Self::Removed
        )
    }

    /// The JSON value of the API and `--json` outputs: `null` for no status.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Self::NoStatus => serde_json::Value::Null,
            s => serde_json::Value::String(s.as_str().to_owned()),
        }
    }
}

impl fmt::Display for TaskInstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for DagRunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a state name that is not one of Airflow's.
#[derive(Debug, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for TaskInstanceState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl FromStr for DagRunState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in TaskInstanceState::ALL {
            assert_eq!(s.as_str().parse::<TaskInstanceState>().unwrap(), s);
        }
        for s in DagRunState::ALL {
            assert_eq!(s.as_str().parse::<DagRunState>().unwrap(), s);
        }
        assert_eq!(
            TaskInstanceState::NoStatus.to_json(),
            serde_json::Value::Null
        );
        assert!("bogus".parse::<TaskInstanceState>().is_err());
    }
}
