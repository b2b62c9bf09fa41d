//! [`TaskInfo`]: which TaskInstance try an operator is executing.

use serde::{Deserialize, Serialize};

use crate::wit;

/// What the host tells an operator about the TaskInstance try it runs.
///
/// Mirrors the WIT record `task-info`. It serializes with the same snake_case
/// field names, so an operator can hand it on as JSON (for example into an XCom).
///
/// New WIT versions may add fields, so the struct is `#[non_exhaustive]`: outside
/// this crate, start from [`TaskInfo::default()`] and set the fields a test needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The DAG the task belongs to.
    pub dag_id: String,
    /// The DagRun this try belongs to.
    pub run_id: String,
    /// The task's id within its DAG.
    pub task_id: String,
    /// Index within a mapped task; `None` for a task that is not mapped.
    pub map_index: Option<u32>,
    /// 1 for the first try, growing by one with every retry.
    pub try_number: u32,
    /// The run's logical date, RFC 3339.
    pub logical_date: String,
    /// Start of the run's data interval, RFC 3339.
    pub data_interval_start: String,
    /// End of the run's data interval, RFC 3339.
    pub data_interval_end: String,
}

impl TaskInfo {
    /// Whether this try is a retry, that is not the first try.
    pub fn is_retry(&self) -> bool {
        self.try_number > 1
    }
}

/// A first try of an unnamed task: a starting point for tests.
///
/// `try_number` is 1 (the host never sends 0) and every other field is empty.
impl Default for TaskInfo {
    fn default() -> Self {
        Self {
            dag_id: String::new(),
            run_id: String::new(),
            task_id: String::new(),
            map_index: None,
            try_number: 1,
            logical_date: String::new(),
            data_interval_start: String::new(),
            data_interval_end: String::new(),
        }
    }
}

impl From<wit::TaskInfo> for TaskInfo {
    fn from(info: wit::TaskInfo) -> Self {
        Self {
            dag_id: info.dag_id,
            run_id: info.run_id,
            task_id: info.task_id,
            map_index: info.map_index,
            try_number: info.try_number,
            logical_date: info.logical_date,
            data_interval_start: info.data_interval_start,
            data_interval_end: info.data_interval_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_wit_field_names_in_snake_case() {
        let info = TaskInfo {
            task_id: "extract".into(),
            map_index: Some(2),
            try_number: 3,
            ..TaskInfo::default()
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["task_id"], "extract");
        assert_eq!(json["map_index"], 2);
        assert_eq!(json["try_number"], 3);
        assert!(info.is_retry());
        assert!(!TaskInfo::default().is_retry());
    }
}
